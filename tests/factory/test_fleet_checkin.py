"""Devices from the factory check in to the fleet over mutual TLS.

The factory signs each device certificate with the device CA the fleet trusts (its key
in a file, or in a PKCS#11 token); the device boots, is provisioned for OTA and checks
in with the identity in its esp_secure_cert partition (DS or ECDSA peripheral). A
factory signing with another CA makes devices the fleet refuses at the handshake.
Everything crosses the wire as a device's would: the tests use the fleet's public
fixtures and its check-in protocol only.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from espsec._pem import PrivateKey
from espsec.device.ota_client import OtaOutcome, OtaReport, run_ota
from espsec.device.ota_state import OtaProvisioning, provision_ota
from espsec.device.virtual_device import VirtualDevice
from espsec.factory import VirtualTarget, open_factory
from espsec.fleet.config import device_ca_signer
from espsec.identity.tls import generate_device_ca

from ..fleet.conftest import Fleet
from ..hsm.softhsm import SoftHsm
from .kit import write_app_sdkconfig, write_batch


def _pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _factory_batch(
    folder: Path,
    chip: str,
    ca_cert: x509.Certificate,
    ca_key: PrivateKey,
    *,
    ca_uri: str | None = None,
) -> list[str]:
    """Provision two devices of ``chip`` with the CA; return their device ids."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    (folder / "ca.key.pem").write_bytes(_pem(ca_key))
    spec = write_batch(
        folder,
        chip=chip,
        count=2,
        ca_files=(folder / "ca.pem", folder / "ca.key.pem"),
        ca_uri=ca_uri,
        extra=write_app_sdkconfig(folder, chip),
    )
    with open_factory(spec) as factory:
        summary = factory.run(VirtualTarget(folder / "devices"))
    assert summary.ok and summary.provisioned == 2
    return [f"test-batch-SN0000{n}" for n in (1, 2)]


def _boot_and_check_in(folder: Path, device_id: str, fleet: Fleet) -> OtaReport:
    """What the device does after the line: boot, take its OTA settings, check in."""
    dev = VirtualDevice.open(folder / "devices" / device_id.removeprefix("test-batch-"))
    assert dev.boot().ok and dev.running is not None
    assert fleet.trust.ca_pem is not None
    provision_ota(
        dev.running,
        OtaProvisioning(
            device_id=device_id,
            server_url=fleet.url,
            manifest_key_pem=fleet.manifest_key.public_bytes(  # type: ignore[attr-defined]
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            tls_ca_pem=fleet.trust.ca_pem,
        ),
    )
    report = run_ota(dev, timeout=30)
    dev.save()
    return report


def _fleet_knows(fleet: Fleet) -> set[str]:
    with fleet.admin() as admin:
        return {d["device_id"] for d in admin.devices()}


@pytest.mark.slow
@pytest.mark.parametrize("chip", ["esp32s3", "esp32p4"])
def test_factory_devices_check_in_over_mutual_tls(
    tmp_path: Path, make_fleet: Callable[..., Fleet], chip: str
) -> None:
    fleet = make_fleet()
    ca_cert, ca_key = device_ca_signer(fleet.state)
    ids = _factory_batch(tmp_path / "line", chip, ca_cert, ca_key)
    for device_id in ids:
        report = _boot_and_check_in(tmp_path / "line", device_id, fleet)
        assert report.outcome is OtaOutcome.NO_UPDATE, report.reason  # accepted, nothing offered
    assert _fleet_knows(fleet) == set(ids)


@pytest.mark.slow
def test_devices_signed_in_the_token_check_in(
    tmp_path: Path, make_fleet: Callable[..., Fleet], softhsm: SoftHsm
) -> None:
    fleet = make_fleet()
    ca_cert, ca_key = device_ca_signer(fleet.state)
    softhsm.import_key(ca_key, "fleet-device-ca")
    uri = softhsm.uri("fleet-device-ca")
    ids = _factory_batch(tmp_path / "line", "esp32p4", ca_cert, ca_key, ca_uri=uri)
    report = _boot_and_check_in(tmp_path / "line", ids[0], fleet)
    assert report.outcome is OtaOutcome.NO_UPDATE, report.reason
    assert _fleet_knows(fleet) == {ids[0]}


@pytest.mark.slow
def test_devices_signed_by_another_ca_are_refused(
    tmp_path: Path, make_fleet: Callable[..., Fleet]
) -> None:
    fleet = make_fleet()
    rogue_cert, rogue_key = generate_device_ca("another factory's CA")
    ids = _factory_batch(tmp_path / "line", "esp32p4", rogue_cert, rogue_key)
    report = _boot_and_check_in(tmp_path / "line", ids[0], fleet)
    assert report.outcome is not OtaOutcome.NO_UPDATE
    assert report.outcome is OtaOutcome.FAILED and report.step == "check-in"
    assert _fleet_knows(fleet) == set()  # nothing reached the device API
