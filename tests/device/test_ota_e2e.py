"""The device's fleet OTA client end to end: one behaviour or attack per test.

A real fleet server over HTTPS on loopback; a production virtual ESP32-S3 (Secure Boot
v2, release-mode flash encryption, rollback and anti-rollback) running ``1.0.0``
(secure_version 1) with an ``HMAC_UP`` eFuse key its ECIES decryption key derives from;
releases pre-encrypted for that key. Attacks on the server side are played by editing
the fleet's database, blobs or answers: what a compromised server (holding the manifest
key) could do.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from espsec import efuse, ota, secure_boot
from espsec.device import (
    DecryptionScheme,
    OtaOutcome,
    OtaProvisioning,
    OtaReport,
    OtaStateError,
    OtaStep,
    VirtualDevice,
    provision_ota,
    run_ota,
)
from espsec.device.identity import provision_identity, reissue_certificate
from espsec.device.nvs import app_nvs_keys, read_device_nvs
from espsec.device.ota_state import OtaNvs
from espsec.efuse import security_state
from espsec.errors import UsageError
from espsec.fleet import AdminClient, RunningServer, init_fleet, start_server
from espsec.fleet.tls import generate_tls
from espsec.identity.tls import generate_device_ca
from espsec.image.partition_table import PartitionTable
from espsec.nvs import NvsKeys, NvsStore, read_partition
from espsec.ota import TlsTrust
from espsec.ota import release as release_module
from espsec.ota.protocol import CheckIn

from ..fleet.conftest import CuttingProxy
from .kit import LOCKED, OTA0, OTA_TABLE, app, device, signed

HMAC_BLOCK = "BLOCK_KEY4"
HMAC_KEY = bytes(range(1, 33))
"""The device's HMAC_UP eFuse key (the factory's copy, in a test only)."""
OTA1 = 0x40000
SLOT = 0x30000
DEVICE_ID = "dev-1"
NVS_KEYS = 0x70000
DEVICE_CA = generate_device_ca("e2e device CA")
"""The CA the fleet trusts for device client certificates (mutual TLS)."""
IDENTITY_TABLE = PartitionTable.from_csv(
    OTA_TABLE.to_csv() + "esp_secure_cert, 0x3F, , 0x71000, 0x2000, encrypted\n"
)


@dataclass
class Fleet:
    server: RunningServer
    state: Path
    token: str
    ca_pem: bytes

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def manifest_pub(self) -> bytes:
        return (self.state / "manifest-key.pub.pem").read_bytes()

    def admin(self) -> AdminClient:
        return AdminClient(self.server.admin_url, self.token, TlsTrust.ca(self.ca_pem))

    def publish(self, bundle: bytes, cohort: str = "default") -> str:
        with self.admin() as admin:
            release_id: str = admin.upload_release(bundle)["id"]
            admin.assign_cohort(cohort, release_id)
        return release_id

    def device(self, device_id: str = DEVICE_ID) -> dict[str, Any] | None:
        with self.admin() as admin:
            return next((d for d in admin.devices() if d["device_id"] == device_id), None)

    def reports(self, device_id: str = DEVICE_ID) -> list[dict[str, Any]]:
        with self.admin() as admin:
            return admin.reports(device_id)

    def sql(self, statement: str, *args: object) -> None:
        """Edit the fleet's database behind the server's back (a compromised server)."""
        with contextlib.closing(sqlite3.connect(self.state / "fleet.sqlite3")) as db:
            db.execute(statement, args)
            db.commit()


@contextlib.contextmanager
def running_fleet(
    state: Path, digests: list[bytes | None], clock: Callable[[], float] = time.time
) -> Iterator[Fleet]:
    ca_pem = DEVICE_CA[0].public_bytes(serialization.Encoding.PEM)
    token = init_fleet(state, key_digests=digests, device_ca_pem=ca_pem)
    server = start_server(state, clock=clock)
    assert server.tls.ca_cert is not None
    try:
        yield Fleet(server, state, token, server.tls.ca_cert.read_bytes())
    finally:
        server.stop()


@pytest.fixture
def fleet(tmp_path: Path, k0: secure_boot.PrivateKey) -> Iterator[Fleet]:
    """A fleet trusting the device's Secure Boot key 0."""
    with running_fleet(tmp_path / "fleet", [secure_boot.key_digest(k0)]) as f:
        yield f


@pytest.fixture(scope="module")
def base(sb_bootloader: bytes, k0: secure_boot.PrivateKey) -> VirtualDevice:
    """A locked-down device after its first boot, running ota_0 1.0.0 (secure_version 1)."""
    dev = device(
        LOCKED, boot=sb_bootloader, apps={OTA0: signed(app("1.0.0", 1), k0)}, table=IDENTITY_TABLE
    )
    efuse.burn_key(dev.efuses, HMAC_BLOCK, HMAC_KEY, "HMAC_UP")
    provision_identity(dev, DEVICE_ID, *DEVICE_CA)  # the factory, before the first boot
    report = dev.boot()
    assert report.ok and security_state(dev.efuses).secure_version == 1
    return dev


@pytest.fixture(scope="module")
def release(k0: secure_boot.PrivateKey) -> Callable[..., bytes]:
    """Release bundles (cached): signed with key 0, pre-encrypted for the device's key."""
    cache: dict[tuple[object, ...], bytes] = {}
    recipient = ota.device_public_key(HMAC_KEY)

    def make(
        version: str,
        secure_version: int,
        *,
        signer: secure_boot.PrivateKey | None = None,
        encrypt_to: Any = recipient,
    ) -> bytes:
        key = (version, secure_version, id(signer), id(encrypt_to))
        if key not in cache:
            image = app(version, secure_version)
            cache[key] = ota.pack(
                image,
                [signer or k0],
                encrypt_to=[] if encrypt_to is None else [encrypt_to],
            ).to_bytes()
        return cache[key]

    return make


def as_device(base: VirtualDevice, device_id: str = DEVICE_ID) -> VirtualDevice:
    """A copy of ``base`` whose identity certificate names ``device_id`` (same eFuse key)."""
    dev = base.copy()
    if device_id != DEVICE_ID:
        reissue_certificate(dev, device_id, *DEVICE_CA)
    return dev


def provision(
    base: VirtualDevice, fleet: Fleet, device_id: str = DEVICE_ID, **changes: Any
) -> VirtualDevice:
    """A copy of ``base``, booted, its OTA client provisioned for ``fleet``."""
    dev = as_device(base, device_id)
    assert dev.boot().ok
    prov = OtaProvisioning(
        device_id=device_id,
        server_url=fleet.url,
        manifest_key_pem=fleet.manifest_pub,
        tls_ca_pem=fleet.ca_pem,
        decryption=DecryptionScheme.ECIES_P256,
        hmac_key_id=HMAC_BLOCK,
    )
    assert dev.running is not None
    provision_ota(dev.running, replace(prov, **changes))
    return dev


def steps(report: OtaReport) -> list[str]:
    return [e.step.value for e in report.events]


def slot(dev: VirtualDevice) -> bytes:
    """The passive slot as stored (ciphertext under flash encryption)."""
    return dev.flash.read_raw(OTA1, SLOT)


def refused(report: OtaReport, step: OtaStep, *words: str) -> None:
    assert report.outcome is OtaOutcome.REFUSED, report.reason
    assert report.step is step, (report.step, report.reason)
    for word in words:
        assert word in report.reason, report.reason


def still_on_v1(dev: VirtualDevice) -> None:
    again = dev.boot()
    assert again.ok and again.app is not None
    assert (again.app.partition, again.app.version) == ("ota_0", "1.0.0")
    assert security_state(dev.efuses).secure_version == 1


# -- updates that work ----------------------------------------------------------------


def test_update_decrypts_writes_encrypted_confirms_and_reports(
    base: VirtualDevice, fleet: Fleet, release: Callable[..., bytes]
) -> None:
    bundle = release("2.0.0", 2)
    release_id = fleet.publish(bundle)
    dev = provision(base, fleet)
    report = run_ota(dev)
    assert report.outcome is OtaOutcome.UPDATED, report.reason
    # the order of esp_https_ota and the ESP-IDF OTA examples with anti-rollback
    assert steps(report) == [
        "check-in",
        "manifest",
        "image-header",
        "esp_ota_begin",
        "download",
        "decrypt",
        "esp_ota_end",
        "esp_ota_set_boot_partition",
        "reboot",
        "self-test",
        "confirm",
        "report",
    ]
    reboot = next(e for e in report.events if e.step is OtaStep.REBOOT)
    assert reboot.detail == "running ota_1 2.0.0 (PENDING_VERIFY)"
    assert (report.partition, report.version, report.ota_state) == ("ota_1", "2.0.0", "VALID")
    assert report.release_id == release_id and report.reported
    assert report.efuse_secure_version == 2 == security_state(dev.efuses).secure_version
    # the image went through the flash-encryption engine: ciphertext at rest
    parsed = ota.ReleaseBundle.parse(bundle)
    image = ota.decrypt_image(parsed.payloads[0], ota.device_private_key(HMAC_KEY))
    assert dev.flash.read(OTA1, len(image), decrypt=True) == image
    assert dev.flash.read_raw(OTA1, len(image)) != image
    row = fleet.device()
    assert row is not None
    assert (row["last_outcome"], row["version"]) == ("updated", "1.0.0")
    # the next check-in: nothing to do, and the device boots 2.0.0 for good
    again = run_ota(dev)
    assert again.outcome is OtaOutcome.NO_UPDATE and again.reason == "up to date"
    boot = dev.boot()
    assert boot.app is not None and (boot.app.version, boot.app.ota_state) == ("2.0.0", "VALID")
    assert OtaNvs(dev.running).pending() is None  # type: ignore[arg-type]


def test_failed_self_test_rolls_back_and_the_release_is_not_offered_again(
    base: VirtualDevice, fleet: Fleet, release: Callable[..., bytes]
) -> None:
    fleet.publish(release("2.0.0", 2))
    dev = provision(base, fleet)
    assert run_ota(dev).outcome is OtaOutcome.UPDATED
    v3 = fleet.publish(release("3.0.0", 3))
    report = run_ota(dev, self_test=False)
    assert report.outcome is OtaOutcome.ROLLED_BACK
    assert report.reason == "self-test failed: rolled back to ota_1 2.0.0"
    assert steps(report)[-5:] == ["reboot", "self-test", "confirm", "reboot", "report"]
    assert (report.partition, report.version, report.ota_state) == ("ota_1", "2.0.0", "VALID")
    assert security_state(dev.efuses).secure_version == 2  # v3 never confirmed: no burn
    assert dev.running is not None and dev.running.state_of(dev.running.running) == "VALID"
    assert fleet.reports()[0]["outcome"] == "rolled_back"
    assert fleet.reports()[0]["release_id"] == v3
    again = run_ota(dev)
    assert again.outcome is OtaOutcome.NO_UPDATE
    assert "reported a failed update" in again.reason


def test_truncated_download_is_resumed_with_range(
    base: VirtualDevice, fleet: Fleet, release: Callable[..., bytes]
) -> None:
    fleet.publish(release("2.0.0", 2))
    proxy = CuttingProxy(fleet.server.port, cut_after=40_000)  # link drops mid-download
    try:
        dev = provision(base, fleet, server_url=f"https://127.0.0.1:{proxy.port}")
        report = run_ota(dev)
    finally:
        proxy.close()
    assert report.outcome is OtaOutcome.UPDATED, report.reason
    assert report.download is not None
    assert report.download.requests == 2 and len(report.download.resumed_at) == 1
    assert 0 < report.download.resumed_at[0] < report.download.length
    assert report.version == "2.0.0"


def test_rsa3072_pre_encrypted_release(
    base: VirtualDevice, fleet: Fleet, release: Callable[..., bytes], sb_key_dir: Path
) -> None:
    pem = (sb_key_dir / "rsa3072-c.pem").read_bytes()
    key = ota.load_decryption_key(pem)
    fleet.publish(release("2.0.0", 2, encrypt_to=key.public_key()))
    dev = provision(
        base, fleet, decryption=DecryptionScheme.RSA3072, hmac_key_id=None, rsa_key_pem=pem
    )
    report = run_ota(dev)
    assert report.outcome is OtaOutcome.UPDATED, report.reason
    assert report.version == "2.0.0"


def test_pinned_server_certificate_is_trusted(
    base: VirtualDevice, fleet: Fleet, release: Callable[..., bytes]
) -> None:
    fleet.publish(release("2.0.0", 2))
    pin = fleet.server.tls.server_cert.read_bytes()
    dev = provision(base, fleet, tls_ca_pem=None, tls_pin_pem=pin)
    assert run_ota(dev).outcome is OtaOutcome.UPDATED


# -- transport attacks ----------------------------------------------------------------


def test_untrusted_server_certificate_is_refused_before_any_request(
    base: VirtualDevice, fleet: Fleet, tmp_path: Path, release: Callable[..., bytes]
) -> None:
    fleet.publish(release("2.0.0", 2))
    other = generate_tls(tmp_path / "other-tls", ("127.0.0.1",))
    assert other.ca_cert is not None
    for trust in (
        {"tls_ca_pem": other.ca_cert.read_bytes()},
        {"tls_ca_pem": None, "tls_pin_pem": other.server_cert.read_bytes()},
    ):
        dev = provision(base, fleet, **trust)
        report = run_ota(dev)
        refused(report, OtaStep.CHECK_IN, "server certificate")
        assert not report.reported
        still_on_v1(dev)
    assert fleet.device() is None  # the server never heard from the device


def test_plain_http_is_refused(base: VirtualDevice, fleet: Fleet) -> None:
    with pytest.raises(UsageError, match="https only"):
        provision(base, fleet, server_url=fleet.url.replace("https://", "http://"))
    dev = provision(base, fleet)
    with pytest.raises(UsageError, match="https only"):
        run_ota(dev, server_url=fleet.url.replace("https://", "http://"))


# -- manifest attacks ------------------------------------------------------------------


def test_manifest_signed_by_another_key_is_refused(
    base: VirtualDevice, fleet: Fleet, release: Callable[..., bytes]
) -> None:
    fleet.publish(release("2.0.0", 2))
    other = ota.load_manifest_private_key(ota.generate_manifest_key()).public_key()
    dev = provision(base, fleet, manifest_key_pem=ota.public_key_pem(other))
    refused(run_ota(dev), OtaStep.MANIFEST, "bad signature")
    still_on_v1(dev)


def test_expired_manifest_is_refused(
    base: VirtualDevice, tmp_path: Path, k0: secure_boot.PrivateKey, release: Callable[..., bytes]
) -> None:
    hour_ago = lambda: time.time() - 3600  # noqa: E731 - the server's clock is an hour late
    with running_fleet(tmp_path / "fleet", [secure_boot.key_digest(k0)], hour_ago) as fleet:
        fleet.publish(release("2.0.0", 2))
        dev = provision(base, fleet)
        before = slot(dev)
        report = run_ota(dev)
        refused(report, OtaStep.MANIFEST, "expired")
        assert report.download is None and slot(dev) == before
        assert fleet.reports()[0]["outcome"] == "refused"
    still_on_v1(dev)


def test_replayed_manifest_is_refused(
    base: VirtualDevice,
    fleet: Fleet,
    release: Callable[..., bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fleet.publish(release("2.0.0", 2))
    service = fleet.server.service
    recorded: list[bytes | Exception] = []
    real_check_in_batch = service.check_in_batch

    def record(calls: Sequence[Any]) -> list[bytes | Exception]:
        answers = real_check_in_batch(calls)
        recorded.extend(answers)
        return answers

    monkeypatch.setattr(service, "check_in_batch", record)
    dev = provision(base, fleet)
    assert run_ota(dev).outcome is OtaOutcome.UPDATED
    assert dev.running is not None
    counter = OtaNvs(dev.running).trust_counter().last_counter
    # a man in the middle (or a compromised server) answers with the recorded offer
    monkeypatch.setattr(service, "check_in_batch", lambda calls: [recorded[0]] * len(calls))
    report = run_ota(dev)
    refused(report, OtaStep.MANIFEST, "replayed")
    assert OtaNvs(dev.running).trust_counter().last_counter == counter


# -- downgrades -----------------------------------------------------------------------


def test_server_refuses_to_offer_a_lower_secure_version(
    base: VirtualDevice, fleet: Fleet, release: Callable[..., bytes]
) -> None:
    fleet.publish(release("0.9.0", 0))
    dev = provision(base, fleet)
    before = slot(dev)
    report = run_ota(dev)
    assert report.outcome is OtaOutcome.NO_UPDATE
    assert report.reason.startswith("downgrade refused: release secure_version 0 is below")
    assert slot(dev) == before


def test_device_refuses_a_manifest_offering_a_lower_secure_version(
    base: VirtualDevice,
    fleet: Fleet,
    release: Callable[..., bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fleet.publish(release("0.9.0", 0))
    parse = CheckIn.parse

    def rewritten(body: bytes) -> CheckIn:  # a MITM rewrites the device's check-in
        return replace(parse(body), secure_version=0)

    monkeypatch.setattr(CheckIn, "parse", staticmethod(rewritten))
    dev = provision(base, fleet)
    before = slot(dev)
    report = run_ota(dev)
    refused(report, OtaStep.MANIFEST, "downgrade", "below the device's 1")
    assert report.download is None and slot(dev) == before
    still_on_v1(dev)


def test_device_refuses_a_lower_secure_version_image_before_downloading_the_rest(
    base: VirtualDevice, fleet: Fleet, release: Callable[..., bytes]
) -> None:
    old = fleet.publish(release("0.9.0", 0))
    # a compromised server (it holds the manifest key) claims secure_version 7
    fleet.sql("UPDATE releases SET secure_version = 7 WHERE id = ?", old)
    dev = provision(base, fleet)
    before = slot(dev)
    report = run_ota(dev)
    refused(report, OtaStep.IMAGE_HEADER, "secure_version 0 is below the eFuse secure version 1")
    assert report.download is not None
    assert report.download.received == 4096 < report.download.length // 10
    assert slot(dev) == before  # esp_ota_begin never ran: the slot was not even erased
    assert fleet.reports()[0]["outcome"] == "refused"
    still_on_v1(dev)


# -- image attacks --------------------------------------------------------------------


def test_corrupted_download_is_retried_and_does_not_block_the_release(
    base: VirtualDevice, fleet: Fleet, release: Callable[..., bytes]
) -> None:
    bundle = ota.ReleaseBundle.parse(release("2.0.0", 2))
    release_id = fleet.publish(bundle.to_bytes())
    blob = fleet.state / "blobs" / bundle.statement.payloads[0].sha256
    good = blob.read_bytes()
    data = bytearray(good)
    data[-100] ^= 0x01  # one bit of ciphertext, on the server's disk
    blob.write_bytes(bytes(data))
    dev = provision(base, fleet)
    report = run_ota(dev)
    assert report.outcome is OtaOutcome.FAILED and report.step is OtaStep.DOWNLOAD
    assert "does not match the manifest's SHA-256" in report.reason
    retries = [e.detail for e in report.events if e.step is OtaStep.DOWNLOAD and not e.ok]
    assert retries[0].endswith("downloading again")
    still_on_v1(dev)
    device = fleet.device()
    assert device is not None and device["blocked_release"] is None  # not refused: retried
    blob.write_bytes(good)  # the server's copy repaired: the next cycle takes the release
    again = run_ota(dev)
    assert again.outcome is OtaOutcome.UPDATED and again.release_id == release_id


def test_tampered_image_with_a_matching_manifest_is_refused_by_secure_boot(
    base: VirtualDevice, fleet: Fleet, release: Callable[..., bytes]
) -> None:
    bundle = ota.ReleaseBundle.parse(release("2.0.0", 2, encrypt_to=None))
    release_id = fleet.publish(bundle.to_bytes())
    image = bytearray(bundle.payloads[0])
    image[0x120] ^= 0x01  # two bits of code: the XOR checksum still matches,
    image[0x121] ^= 0x01  # only the Secure Boot signature can tell
    digest = hashlib.sha256(image).hexdigest()
    (fleet.state / "blobs" / digest).write_bytes(bytes(image))
    fleet.sql("UPDATE payloads SET sha256 = ? WHERE release_id = ?", digest, release_id)
    fleet.sql("UPDATE releases SET image_sha256 = ? WHERE id = ?", digest, release_id)
    dev = provision(base, fleet, decryption=DecryptionScheme.NONE, hmac_key_id=None)
    report = run_ota(dev)
    refused(report, OtaStep.OTA_END, "ESP_ERR_OTA_VALIDATE_FAILED", "signature")
    assert report.download is not None and report.download.received == len(image)
    still_on_v1(dev)


def test_release_signed_by_a_key_the_device_does_not_trust_is_refused(
    base: VirtualDevice,
    tmp_path: Path,
    k0: secure_boot.PrivateKey,
    rogue: secure_boot.PrivateKey,
    release: Callable[..., bytes],
) -> None:
    # the fleet is (mis)configured to trust a key whose digest is not in the device's eFuses
    digests: list[bytes | None] = [secure_boot.key_digest(k0), secure_boot.key_digest(rogue)]
    with running_fleet(tmp_path / "fleet", digests) as fleet:
        fleet.publish(release("2.0.0", 2, signer=rogue))
        dev = provision(base, fleet)
        report = run_ota(dev)
        refused(report, OtaStep.OTA_END, "ESP_ERR_OTA_VALIDATE_FAILED")
        assert fleet.reports()[0]["outcome"] == "refused"
    still_on_v1(dev)


def test_pre_encrypted_image_with_a_wrong_gcm_tag_is_refused(
    base: VirtualDevice,
    fleet: Fleet,
    k0: secure_boot.PrivateKey,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_encrypt = release_module.encrypt_image

    def wrong_tag(plaintext: bytes, recipient: Any) -> bytes:
        data = bytearray(real_encrypt(plaintext, recipient))
        data[408] ^= 0x01  # the GCM tag in the esp_encrypted_img header
        return bytes(data)

    monkeypatch.setattr(release_module, "encrypt_image", wrong_tag)
    bundle = ota.pack(app("2.0.0", 2), [k0], encrypt_to=[ota.device_public_key(HMAC_KEY)])
    fleet.publish(bundle.to_bytes())  # the signer vouched for these bytes: hashes match
    dev = provision(base, fleet)
    report = run_ota(dev)
    refused(report, OtaStep.DECRYPT, "GCM tag does not verify")
    assert report.download is not None and report.download.received == report.download.length
    assert "esp_ota_end" not in steps(report)
    assert fleet.reports()[0]["outcome"] == "refused"
    still_on_v1(dev)  # the unverified plaintext stayed in the passive slot, never selected


# -- startup ------------------------------------------------------------------------------


def test_app_left_pending_verify_runs_its_self_test_before_checking_in(
    base: VirtualDevice, fleet: Fleet, k0: secure_boot.PrivateKey
) -> None:
    dev = provision(base, fleet)
    with fleet.admin() as admin:  # reports come only from devices the fleet knows
        admin.assign_device(DEVICE_ID, "default")
    assert dev.running is not None
    assert dev.running.install(signed(app("2.0.0", 2), k0)).ok  # by another path
    assert dev.running.reboot().app.ota_state == "PENDING_VERIFY"  # type: ignore[union-attr]
    report = run_ota(dev)
    assert report.resumed and report.outcome is OtaOutcome.UPDATED
    assert steps(report) == ["startup", "self-test", "confirm", "report"]
    assert (report.partition, report.ota_state, report.efuse_secure_version) == (
        "ota_1",
        "VALID",
        2,
    )
    (reported,) = fleet.reports()
    assert (reported["outcome"], reported["release_id"]) == ("updated", None)
    assert run_ota(dev).outcome is OtaOutcome.NO_UPDATE  # then it checks in as usual


def test_ota_state_is_ciphertext_at_rest_on_a_production_device(
    base: VirtualDevice, fleet: Fleet, release: Callable[..., bytes]
) -> None:
    dev = provision(base, fleet)  # nvs_flash_init generated the NVS keys (LOCKED: NVS enc on)
    keys = app_nvs_keys(dev, generate=False)
    assert keys is not None
    fleet.publish(release("2.0.0", 2))
    assert run_ota(dev).outcome is OtaOutcome.UPDATED  # the new app reads the same keys
    raw_nvs = dev.flash.read_raw(0x9000, 0x4000)
    for secret in (DEVICE_ID.encode(), fleet.url.encode(), b"espsec_ota", b"BEGIN"):
        assert secret not in raw_nvs
    assert keys.eky not in dev.flash.read_raw(NVS_KEYS, 0x1000)  # under flash encryption
    values = {(e.namespace, e.key): e.value for e in read_device_nvs(dev).entries}
    assert values[("espsec_ota", "device_id")] == DEVICE_ID
    assert values[("espsec_ota", "counter")] >= 1


def test_encrypted_nvs_is_never_opened_without_its_keys(
    base: VirtualDevice, fleet: Fleet, release: Callable[..., bytes]
) -> None:
    dev = base.copy()
    assert dev.boot().ok and dev.running is not None
    keys = NvsKeys.generate()  # CONFIG_NVS_ENCRYPTION: the factory wrote encrypted NVS
    with NvsStore.init(dev.running.partition("nvs"), keys=keys).open("factory") as nvs:
        nvs.set_str("serial", "SN-0001")
    before = dev.flash.read_raw(0x9000, 0x4000)
    prov = OtaProvisioning(
        device_id=DEVICE_ID,
        server_url=fleet.url,
        manifest_key_pem=fleet.manifest_pub,
        tls_ca_pem=fleet.ca_pem,
        decryption=DecryptionScheme.ECIES_P256,
        hmac_key_id=HMAC_BLOCK,
    )
    with pytest.raises(OtaStateError, match="does not read with its NVS encryption keys"):
        provision_ota(dev.running, prov)  # the app's own keys: would wipe the factory data
    assert dev.flash.read_raw(0x9000, 0x4000) == before
    provision_ota(dev.running, prov, nvs_keys=keys)
    fleet.publish(release("2.0.0", 2))
    assert run_ota(dev, nvs_keys=keys).outcome is OtaOutcome.UPDATED
    stored = read_partition(dev.flash.read_raw(0x9000, 0x4000), keys=keys)
    values = {(e.namespace, e.key): e.value for e in stored.entries}
    assert values[("factory", "serial")] == "SN-0001"
    assert values[("espsec_ota", "device_id")] == DEVICE_ID
    with pytest.raises(OtaStateError):
        run_ota(dev)


def test_manifest_gone_stale_during_the_download_is_not_switched_to(
    base: VirtualDevice, fleet: Fleet, release: Callable[..., bytes]
) -> None:
    release_id = fleet.publish(release("2.0.0", 2))
    dev = provision(base, fleet)
    calls: list[float] = []

    def clock() -> float:  # the download took two hours (a slow or held-back link)
        calls.append(time.time() + (7200 if calls else 0))
        return calls[-1]

    report = run_ota(dev, now=clock)
    assert report.outcome is OtaOutcome.FAILED and report.step is OtaStep.SET_BOOT
    assert "manifest expired during the download" in report.reason
    still_on_v1(dev)
    device = fleet.device()
    assert device is not None and device["blocked_release"] is None
    again = run_ota(dev)  # a fresh manifest: the update goes ahead
    assert again.outcome is OtaOutcome.UPDATED and again.release_id == release_id


def test_device_reports_its_security_posture_at_check_in(base: VirtualDevice, fleet: Fleet) -> None:
    dev = provision(base, fleet)
    assert run_ota(dev).outcome is OtaOutcome.NO_UPDATE
    device = fleet.device()
    assert device is not None and device["posture"] is not None
    state = security_state(dev.efuses)
    assert device["posture"]["secure_boot"] is state.secure_boot_enabled
    assert device["posture"]["flash_encryption"] == state.flash_encryption_mode
    assert device["posture"]["secure_version"] == state.secure_version
    assert device["posture"]["app_version"] == "1.0.0"
    assert device["cert_sha256"] is not None
