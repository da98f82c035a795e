"""eFuse, device, anti-rollback, bundle and per-device key rules, on virtual devices after
their first boot, on eFuse states burned by espefuse, and on states built burn by burn."""

from __future__ import annotations

from pathlib import Path

import pytest

from espsec import efuse, ota
from espsec.audit import load_inputs
from espsec.audit.inputs import load_path
from espsec.audit.subjects import (
    BundleSubject,
    DeviceSubject,
    ImageSubject,
    Inputs,
    ManifestRecord,
)
from espsec.device import VirtualDevice
from espsec.device.status import AppInfo
from espsec.image import find_app_desc, parse_image
from espsec.nvs import DataRow, NamespaceRow, ValueType, generate_partition

from ..device.kit import FE_DEV, OTA0, PLAIN, app, bootloader, device
from .conftest import DATA, rule_ids

EFUSE_RULES = {f"EF{n:03d}" for n in range(1, 13)}
CORPUS = DATA / "efuse"


def subject(efuses: efuse.Efuses, source: str = "chip") -> DeviceSubject:
    return DeviceSubject(source, "eFuse state", efuses)


def corpus(name: str) -> Inputs:
    chip = "esp32p4" if name.startswith("p4") else "esp32s3"
    return load_inputs([CORPUS / f"{name}.bin"], chip=chip)


def test_release_mode_first_boot_passes_every_efuse_rule(run, release_device):
    report = run(devices=[subject(release_device.efuses)])
    assert rule_ids(report) & EFUSE_RULES == set()


@pytest.mark.parametrize("state", ["s3-release", "p4-release"])
def test_release_states_burned_by_espefuse_pass_every_efuse_rule(run, state):
    assert rule_ids(run(corpus(state))) & EFUSE_RULES == set()


def test_blank_chip_fails_the_lockdown_rules(run):
    report = run(corpus("s3-blank"))
    assert rule_ids(report) == {"EF001", "EF003", "EF007", "EF009", "EF010", "EF011"}
    (dl,) = report.by_rule("EF010")
    assert {e.name for e in dl.evidence} == {"DIS_DOWNLOAD_MODE", "ENABLE_SECURITY_DOWNLOAD"}
    assert all(e.source.endswith("s3-blank.bin") for e in dl.evidence)


def test_development_mode_first_boot_is_development_flash_encryption(run, development_device):
    report = run(devices=[subject(development_device.efuses)])
    assert "EF004" in rule_ids(report) and "EF003" not in rule_ids(report)
    (finding,) = report.by_rule("EF004")
    assert "DIS_DOWNLOAD_MANUAL_ENCRYPT" in {e.name for e in finding.evidence}


def test_development_state_burned_by_espefuse(run):
    assert {"EF004", "EF001"} <= rule_ids(run(corpus("s3-development")))


def test_readable_flash_encryption_key(run):
    (finding,) = run(corpus("s3-readable-key")).by_rule("EF005")
    assert "BLOCK_KEY0" in finding.message and "XTS_AES_128_KEY" in finding.message
    assert finding.fix == "espefuse read-protect-efuse BLOCK_KEY0"


def test_key_block_left_writable(run):
    chip = efuse.new("esp32s3")
    efuse.burn_key(chip, "BLOCK_KEY2", bytes(range(32)), "HMAC_UP", write_protect=False)
    (finding,) = run(devices=[subject(chip)]).by_rule("EF006")
    # the purpose is write-protected whatever the caller asks, as espefuse does
    assert {e.name for e in finding.evidence} == {"WR_DIS(BLOCK_KEY2)"}
    assert finding.fix == "espefuse write-protect-efuse BLOCK_KEY2 KEY_PURPOSE_2"


def _secure_boot_only(revoke: bool, protect_rd_dis: bool) -> efuse.Efuses:
    chip = efuse.new("esp32s3")
    efuse.burn_key_digest(chip, "BLOCK_KEY1", bytes([7]) * 32, "SECURE_BOOT_DIGEST0")
    fields = {"SECURE_BOOT_EN": 1}
    if revoke:
        fields |= {"SECURE_BOOT_KEY_REVOKE1": 1, "SECURE_BOOT_KEY_REVOKE2": 1}
    efuse.burn(chip, fields)
    if protect_rd_dis:
        efuse.write_protect(chip, ["RD_DIS"])
    return chip


def test_unused_digest_slots_must_be_revoked(run):
    report = run(devices=[subject(_secure_boot_only(revoke=False, protect_rd_dis=True))])
    assert [f.fix for f in report.by_rule("EF002")] == [
        "espefuse burn-efuse SECURE_BOOT_KEY_REVOKE1 1",
        "espefuse burn-efuse SECURE_BOOT_KEY_REVOKE2 1",
    ]
    report = run(devices=[subject(_secure_boot_only(revoke=True, protect_rd_dis=True))])
    assert "EF002" not in rule_ids(report) and "EF001" not in rule_ids(report)


def test_rd_dis_left_writable_with_secure_boot(run):
    assert "EF012" in rule_ids(
        run(devices=[subject(_secure_boot_only(revoke=True, protect_rd_dis=False))])
    )
    assert "EF012" not in rule_ids(
        run(devices=[subject(_secure_boot_only(revoke=True, protect_rd_dis=True))])
    )


def test_soft_disabled_jtag_with_a_reenable_key_is_noted(run):
    chip = efuse.new("esp32s3")
    efuse.burn_key(chip, "BLOCK_KEY3", bytes(range(32)), "HMAC_DOWN_JTAG")
    efuse.burn(chip, {"SOFT_DIS_JTAG": 1})
    report = run(devices=[subject(chip)])
    assert "EF008" in rule_ids(report) and "EF007" not in rule_ids(report)
    efuse.burn(chip, {"DIS_PAD_JTAG": 1})
    assert rule_ids(run(devices=[subject(chip)])).isdisjoint({"EF007", "EF008"})


def test_usb_jtag_and_direct_boot_once_burned_are_not_findings(run):
    chip = efuse.new("esp32p4")
    assert {"EF009", "EF011"} <= rule_ids(run(devices=[subject(chip)]))
    efuse.burn(chip, {"DIS_USB_JTAG": 1, "DIS_DIRECT_BOOT": 1})
    assert rule_ids(run(devices=[subject(chip)])).isdisjoint({"EF009", "EF011"})


def test_secure_download_mode_is_not_a_finding(run):
    chip = efuse.new("esp32s3")
    efuse.burn(chip, {"ENABLE_SECURITY_DOWNLOAD": 1})
    assert "EF010" not in rule_ids(run(devices=[subject(chip)]))


# -- NVS on the device ------------------------------------------------------------------


def _device_with_nvs(rows: list, tmp_path: Path) -> Path:
    nvs = generate_partition(rows, 0x4000)
    dev = device(
        PLAIN,
        boot=bootloader(),
        apps={OTA0: app()},
        extra=[(0x9000, nvs, "nvs")],
    )
    folder = tmp_path / "dev"
    dev.save(folder)
    return folder


def test_wifi_credentials_in_plaintext_nvs_on_flash(run, tmp_path):
    rows = [
        NamespaceRow("nvs.net80211"),
        DataRow("sta.pswd", ValueType.BLOB, b"hunter2".ljust(65, b"\0")),
    ]
    report = run(load_path(_device_with_nvs(rows, tmp_path)))
    (finding,) = report.by_rule("NVS003")
    (evidence,) = finding.evidence
    assert (evidence.name, evidence.offset) == ("nvs/nvs.net80211", 0x9000)


def test_plaintext_nvs_without_wifi_credentials_is_not_nvs003(run, tmp_path):
    rows = [NamespaceRow("app"), DataRow("boots", ValueType.U32, 3)]
    assert "NVS003" not in rule_ids(run(load_path(_device_with_nvs(rows, tmp_path))))


# -- anti-rollback ------------------------------------------------------------------------


def _image(secure_version: int, source: str = "app.bin") -> ImageSubject:
    desc = find_app_desc(parse_image(app("2.0.0", secure_version)))
    assert desc is not None
    return ImageSubject(source, "esp32s3", desc)


def test_image_below_the_burned_secure_version(run, release_device):
    burned = efuse.security_state(release_device.efuses).secure_version
    assert burned == 1
    dev = subject(release_device.efuses, "device")
    report = run(devices=[dev], images=[_image(0, "old.bin"), _image(1, "same.bin")])
    assert [f.subject for f in report.by_rule("AR001")] == ["old.bin"]


def test_release_bundle_below_the_burned_secure_version(run, release_device, keys):
    old = ota.pack(app("0.9.0", 0), [keys[0]])
    new = ota.pack(app("2.0.0", 2), [keys[0]])
    dev = subject(release_device.efuses, "device")
    report = run(
        devices=[dev],
        bundles=[BundleSubject("old.zip", old.statement), BundleSubject("new.zip", new.statement)],
    )
    assert [f.subject for f in report.by_rule("AR001")] == ["old.zip"]


def test_efuse_secure_version_lagging_a_valid_app(run, release_device):
    efuses = release_device.efuses
    config = release_device.config

    def info(secure_version: int) -> AppInfo:
        return AppInfo("ota_0", OTA0, True, "", "1.0.0", secure_version, 0, "VALID")

    behind = DeviceSubject("device", "virtual device", efuses, config, (info(3),))
    level = DeviceSubject("device", "virtual device", efuses, config, (info(1),))
    assert "AR002" in rule_ids(run(devices=[behind]))
    assert "AR002" not in rule_ids(run(devices=[level]))


def test_release_device_after_first_boot_has_its_secure_version_burned(
    run, release_device, tmp_path
):
    loaded = _saved(release_device, tmp_path / "dev")
    assert [a.secure_version for a in loaded.devices[0].apps if a.ok] == [1]
    assert "AR002" not in rule_ids(run(loaded))


def _saved(dev: VirtualDevice, folder: Path) -> Inputs:
    dev.save(folder)
    return load_path(folder)


def test_secure_version_wider_than_the_efuse_field(run):
    assert "AR003" in rule_ids(run(images=[_image(17)]))
    assert "AR003" not in rule_ids(run(images=[_image(16)]))


def test_plaintext_release_bundle(run, keys, sb_keys):
    plain = ota.pack(app("2.0.0", 2), [keys[0]])
    encrypted = ota.pack(app("2.0.0", 2), [keys[0]], encrypt_to=[sb_keys["rsa3072-c"].public_key()])
    report = run(
        bundles=[
            BundleSubject("plain.zip", plain.statement),
            BundleSubject("encrypted.zip", encrypted.statement),
        ]
    )
    assert [f.subject for f in report.by_rule("OTA005")] == ["plain.zip"]


# -- per-device keys --------------------------------------------------------------------


def _chip_with_key(key: bytes, tmp_path: Path, name: str) -> Inputs:
    chip = efuse.new("esp32s3")
    efuse.burn_key(chip, "BLOCK_KEY0", key, "XTS_AES_128_KEY")
    path = tmp_path / f"{name}.bin"
    efuse.save(chip, path)
    return load_path(path)


def test_one_flash_encryption_key_in_two_devices(run, tmp_path):
    found = Inputs()
    for name in ("a", "b"):
        found.merge(_chip_with_key(bytes(range(32)), tmp_path, name))
    (finding,) = run(found).by_rule("KEY001")
    assert len(finding.evidence) == 2
    assert all("key fingerprint" in e.value and len(e.value) < 40 for e in finding.evidence)
    assert bytes(range(32)).hex() not in repr(finding.to_json())


def test_per_device_keys_are_not_a_finding(run, tmp_path):
    found = Inputs()
    found.merge(_chip_with_key(bytes(range(32)), tmp_path, "a"))
    found.merge(_chip_with_key(bytes(range(1, 33)), tmp_path, "b"))
    assert "KEY001" not in rule_ids(run(found))


def test_two_first_boots_generate_different_keys(run, tmp_path, keys):
    found = Inputs()
    for name in ("a", "b"):
        dev = device(FE_DEV, boot=bootloader(), apps={OTA0: app()})
        dev.boot()
        found.merge(_saved(dev, tmp_path / name))
    assert all(d.key_fingerprints for d in found.devices)
    assert "KEY001" not in rule_ids(run(found))


def test_manifest_records_sharing_an_identity_key(run):
    def record(line: int, serial: str, key: str) -> ManifestRecord:
        return ManifestRecord("manifest.jsonl", line, serial, {"identity": key}, None)

    shared = [record(1, "s1", "04ab" * 16), record(2, "s2", "04ab" * 16)]
    unique = [record(1, "s1", "04ab" * 16), record(2, "s2", "04cd" * 16)]
    (finding,) = run(manifests=shared).by_rule("KEY001")
    assert "identity" in finding.message and len(finding.evidence) == 2
    assert "KEY001" not in rule_ids(run(manifests=unique))
