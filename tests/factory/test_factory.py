"""Factory runs on virtual devices: what each device gets, what the manifest says,
and that a crash at any step boundary resumes without reusing a serial or losing a record."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from espsec.device.identity import read_identity
from espsec.device.virtual_device import VirtualDevice
from espsec.factory import BOUNDARIES, FactoryError, SpecError, VirtualTarget, open_factory
from espsec.factory.escrow import unwrap
from espsec.factory.journal import SqliteJournal
from espsec.nvs import NvsKeys, read_partition

from .kit import write_batch


class Crash(Exception):
    """Stands in for the process dying at a step boundary."""


def _manifest(folder: Path) -> list[dict]:
    text = (folder / "out" / "manifest.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


@pytest.mark.parametrize("chip", ["esp32s3", "esp32p4"])
def test_each_device_boots_with_its_identity_and_the_manifest_holds_no_secret(tmp_path, chip):
    spec = write_batch(tmp_path, chip=chip, count=2)
    with open_factory(spec) as factory:
        summary = factory.run(VirtualTarget(tmp_path / "devices"))
    assert summary.ok and summary.provisioned == 2
    records = _manifest(tmp_path)
    assert [r["serial"] for r in records] == ["SN00001", "SN00002"]
    for rec in records:
        assert rec["status"] == "done"
        assert set(rec["timestamps"]) >= {"allocated", "efuse-applied", "flashed", "done"}
        dev = VirtualDevice.open(tmp_path / "devices" / rec["serial"])
        assert dev.boot().ok
        identity = read_identity(dev)
        expected = "ecdsa-peripheral" if chip == "esp32p4" else "ds"
        assert identity.key_source.startswith(expected)
        assert identity.certificate.subject.rfc4514_string() == f"CN={rec['device_id']}"
        signature = identity.sign(b"attest")
        public = serialization.load_der_public_key(base64.b64decode(rec["public_keys"]["identity"]))
        assert isinstance(public, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
        signature.verify(public, b"attest")
        # No key material anywhere in the record: the device's eFuse keys are not in it.
        text = json.dumps(rec)
        for key in dev.efuses.hardware_keys().values():
            assert key.hex() not in text


def test_factory_nvs_is_encrypted_with_keys_from_the_burned_hmac_key(tmp_path):
    spec = write_batch(tmp_path, count=1)
    with open_factory(spec) as factory:
        factory.run(VirtualTarget(tmp_path / "devices"))
    dev = VirtualDevice.open(tmp_path / "devices" / "SN00001")
    hmac_key = dev.efuses.hardware_keys()[dev.efuses.block("BLOCK_KEY1").index]
    image = bytes(dev.flash.data[0x9000 : 0x9000 + 0x6000])
    contents = read_partition(image, keys=NvsKeys.from_hmac_key(hmac_key))
    values = {(e.namespace, e.key): e.value for e in contents.entries}
    assert values[("factory", "serial")] == "SN00001"
    assert values[("factory", "device_id")] == "test-batch-SN00001"
    with pytest.raises(Exception):  # noqa: B017 - without the key the image is ciphertext
        read_partition(image, keys=NvsKeys.generate())


def test_escrow_blob_opens_to_the_burned_flash_encryption_key(tmp_path):
    escrow_key = ec.generate_private_key(ec.SECP256R1())
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "escrow.pub.pem").write_bytes(
        escrow_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    spec = write_batch(tmp_path, count=1, keys='escrow = "escrow.pub.pem"')
    with open_factory(spec) as factory:
        factory.run(VirtualTarget(tmp_path / "devices"))
    line = json.loads((tmp_path / "out" / "escrow.jsonl").read_text().splitlines()[0])
    secrets_doc = json.loads(unwrap(escrow_key, base64.b64decode(line["escrow"]), "SN00001"))
    dev = VirtualDevice.open(tmp_path / "devices" / "SN00001")
    fe_key = dev.efuses.hardware_keys()[dev.efuses.block("BLOCK_KEY0").index]
    assert bytes.fromhex(secrets_doc["flash_encryption"]) in (fe_key, fe_key[::-1])
    with pytest.raises(Exception):  # noqa: B017 - bound to its serial
        unwrap(escrow_key, base64.b64decode(line["escrow"]), "SN00002")


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_crash_at_each_step_boundary_resumes_without_reusing_a_serial(tmp_path, boundary):
    spec = write_batch(tmp_path, count=3)
    target = VirtualTarget(tmp_path / "devices")
    crashed: list[str] = []

    def crash(name: str, serial: str) -> None:
        if name == boundary and serial == "SN00002" and not crashed:
            crashed.append(serial)
            raise Crash(name)

    with open_factory(spec, station="s1", boundary=crash) as factory, pytest.raises(Crash):
        factory.run(target)
    with open_factory(spec, station="s1") as factory:
        summary = factory.run(target)
        status = factory.status()
    assert summary.ok
    assert status["counts"]["done"] == 3 and not status["attention"]
    records = _manifest(tmp_path)
    assert sorted(r["serial"] for r in records) == ["SN00001", "SN00002", "SN00003"]
    macs = [r["mac"] for r in records]
    assert len(set(macs)) == 3
    for rec in records:
        assert VirtualDevice.open(tmp_path / "devices" / rec["serial"]).boot().ok


def test_half_burned_chip_found_on_resume_is_recorded_not_reburned(tmp_path):
    spec = write_batch(tmp_path, count=1)
    target = VirtualTarget(tmp_path / "devices")

    def crash(name: str, serial: str) -> None:
        if name == "efuse-applying":
            raise Crash(name)

    with open_factory(spec, boundary=crash) as factory, pytest.raises(Crash):
        factory.run(target)
    # The burn got as far as one key before power went (as espefuse's PGM steps can).
    dev = VirtualDevice.open(tmp_path / "devices" / "SN00001")
    from espsec.efuse import Transaction

    Transaction().burn_key("BLOCK_KEY0", os.urandom(32), "XTS_AES_128_KEY").apply(dev.efuses)
    dev.save()
    with open_factory(spec) as factory:
        summary = factory.resume(target)
        status = factory.status()
    assert summary.partial == ["SN00001"]
    assert status["attention"] == [
        {"serial": "SN00001", "state": "efuse-partial", "station": factory.station}
    ]


def test_two_stations_never_share_a_serial(tmp_path):
    spec = write_batch(tmp_path, count=4)
    with open_factory(spec, station="a") as a, open_factory(spec, station="b") as b:
        a.plan()
        first = a.run(VirtualTarget(tmp_path / "devices"), limit=1)
        second = b.run(VirtualTarget(tmp_path / "devices"), limit=2)
        third = a.run(VirtualTarget(tmp_path / "devices"))
    assert (first.provisioned, second.provisioned, third.provisioned) == (1, 2, 1)
    records = _manifest(tmp_path)
    assert [r["serial"] for r in records] == ["SN00001", "SN00002", "SN00003", "SN00004"]
    assert [r["station"] for r in records] == ["a", "b", "b", "a"]


def test_changed_spec_is_refused_for_a_planned_batch(tmp_path):
    spec = write_batch(tmp_path, count=2)
    with open_factory(spec) as factory:
        factory.plan()
    spec.write_text(spec.read_text().replace("count = 2", "count = 3"))
    with pytest.raises(Exception, match="another spec"), open_factory(spec) as factory:
        factory.plan()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("profile = ", 'profile = "fast" #'), r"\[batch\] profile: expected one of"),
        (('flash_encryption = "host"', 'flash_encryption = "usb"'), r"\[keys\] flash_encryption"),
        (("count = 2", "count = 0"), r"\[batch\] count: expected 1\.\."),
        (("[firmware]", "[firmware]\ncolour = 1"), r"\[firmware\] colour: unknown key"),
        (('hmac = "host"', 'hmac = "none"'), r"\[nvs\] encrypt"),
        (('key = "ca.key.pem"', ""), r"\[ca\]: give exactly one"),
    ],
)
def test_bad_spec_is_one_line_naming_the_key(tmp_path, edit, message):
    spec = write_batch(tmp_path, count=2)
    spec.write_text(spec.read_text().replace(*edit, 1))
    with pytest.raises(SpecError, match=message) as exc:
        open_factory(spec)
    assert "\n" not in str(exc.value) and str(spec) in str(exc.value)


def test_kill_9_mid_batch_then_resume_loses_no_record(tmp_path):
    spec = write_batch(tmp_path, count=4)
    script = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from espsec.factory import VirtualTarget, open_factory

        def die(name, serial):
            if name == "burned" and serial == "SN00003":
                os.kill(os.getpid(), signal.SIGKILL)

        with open_factory(Path({str(spec)!r}), station="s", boundary=die) as f:
            f.run(VirtualTarget(Path({str(tmp_path / "devices")!r})))
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=300)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    journal = SqliteJournal(tmp_path / "out" / "journal.sqlite")
    assert journal.counts("test-batch")["efuse-applying"] == 1
    journal.close()
    with open_factory(spec, station="s") as factory:
        summary = factory.run(VirtualTarget(tmp_path / "devices"))
    assert summary.ok
    records = _manifest(tmp_path)
    assert [r["serial"] for r in records] == ["SN00001", "SN00002", "SN00003", "SN00004"]
    assert all(r["status"] == "done" for r in records)


def test_chip_older_than_min_revision_is_refused_and_journaled(tmp_path):
    spec = write_batch(tmp_path, chip="esp32p4", count=2, extra="")
    spec.write_text(spec.read_text().replace('profile = "', 'min_revision = "v3.0"\nprofile = "'))
    with open_factory(spec) as factory:
        old = factory.run(VirtualTarget(tmp_path / "old", revision=100), limit=1)
        new = factory.run(VirtualTarget(tmp_path / "new"))
        status = factory.status()
    assert old.failed_count == 1 and old.provisioned == 0
    ((serial, error),) = old.failed
    assert serial == "SN00001" and "\n" not in error
    assert "min_revision: expected at least v3.0, found v1.0" in error
    assert new.provisioned == 1
    assert status["attention"] == [
        {"serial": "SN00001", "state": "failed", "station": factory.station}
    ]
    # Nothing was burned on the refused chip: its key blocks are as it left Espressif.
    dev = VirtualDevice.open(tmp_path / "old" / "SN00001")
    assert not dev.efuses.hardware_keys()


def test_bad_min_revision_is_one_line_naming_the_key(tmp_path):
    spec = write_batch(tmp_path, count=1)
    spec.write_text(spec.read_text().replace('profile = "', 'min_revision = "three"\nprofile = "'))
    with pytest.raises(SpecError, match=r"\[batch\] min_revision: expected a chip revision"):
        open_factory(spec)


def test_resume_after_the_burn_on_esp32p4_v3_finds_the_ecdsa_key_burned(tmp_path):
    # ESP32-P4 v3 names ECDSA_KEY's purpose value ECDSA_KEY_P256: the same burn.
    spec = write_batch(tmp_path, chip="esp32p4", count=1)
    target = VirtualTarget(tmp_path / "devices")

    def crash(name: str, serial: str) -> None:
        if name == "burned":
            raise Crash(name)

    with open_factory(spec, boundary=crash) as factory, pytest.raises(Crash):
        factory.run(target)
    with open_factory(spec) as factory:
        summary = factory.resume(target)
    assert summary.ok and summary.provisioned == 1
    assert _manifest(tmp_path)[0]["status"] == "done"


def test_the_commit_before_the_burn_is_forced_to_disk_with_the_flash_parts(tmp_path):
    spec = write_batch(tmp_path, count=1)
    statements: list[str] = []
    seen: dict[str, list[str]] = {}

    def at(name: str, serial: str) -> None:
        seen[name] = list(statements)

    with open_factory(spec, boundary=at) as factory:
        factory.journal.db.set_trace_callback(statements.append)  # type: ignore[attr-defined]
        factory.run(VirtualTarget(tmp_path / "devices"))
    planned = seen["efuse-planned"]
    assert ", artifacts = " in planned[-1]  # the flash parts go in with the plan
    applying = seen["efuse-applying"][len(planned) :]
    full = applying.index("PRAGMA synchronous=FULL")
    assert "UPDATE factory_devices" in applying[full + 1]
    assert applying[full + 2] == "PRAGMA synchronous=NORMAL"
    # Before the plan and after the burn, no commit waits for the disk.
    assert "PRAGMA synchronous=FULL" not in planned
    assert statements.count("PRAGMA synchronous=FULL") == 1


def test_resume_refuses_flash_parts_that_do_not_match_the_journal(tmp_path):
    spec = write_batch(tmp_path, count=1)

    def crash(name: str, serial: str) -> None:
        if name == "efuse-applied":
            raise Crash(name)

    target = VirtualTarget(tmp_path / "devices")
    with open_factory(spec, boundary=crash) as factory, pytest.raises(Crash):
        factory.run(target)
    journal = SqliteJournal(tmp_path / "out" / "journal.sqlite")
    journal.db.execute("UPDATE factory_devices SET artifacts = ?", (b"tampered",))
    journal.close()
    with open_factory(spec) as factory, pytest.raises(FactoryError) as exc:
        factory.resume(target)
    assert "SN00001" in str(exc.value) and "does not match its digest" in str(exc.value)
    flash = bytes(VirtualDevice.open(tmp_path / "devices" / "SN00001").flash.data[0x9000:0xF000])
    assert flash == b"\xff" * len(flash)  # nothing written from the bad parts


def test_the_spec_in_the_docs_parses():
    from espsec.factory import parse_spec

    docs = Path(__file__).resolve().parents[2] / "docs" / "factory.md"
    text = docs.read_text().split("```toml\n", 1)[1].split("```", 1)[0]
    spec = parse_spec(text, docs.parent / "batch.toml")
    assert (spec.name, spec.chip.name, spec.size, spec.min_revision) == (
        "line-a-0519",
        "esp32s3",
        1000,
        2,
    )
    assert spec.serial(0) == "SN000001" and spec.efuses == {"DIS_USB_SERIAL_JTAG": 1}
