"""The device commands as library calls: each opens the folder, does one session or
power-on, saves, and returns what happened; bad input fails before the device changes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from espsec import _pem, secure_boot
from espsec.device import VirtualDevice, workflow
from espsec.device.boot_select import EspErr
from espsec.device.workflow import AppAction, NoAppRunning
from espsec.errors import UsageError
from espsec.flash import FaultPlan

from .kit import OTA_TABLE, app, signed
from .test_ota_e2e import HMAC_BLOCK, Fleet, as_device, base, fleet

__all__ = ["base", "fleet"]  # fixtures shared with test_ota_e2e

LOCKED_SDKCONFIG = (
    "CONFIG_SECURE_BOOT=y\nCONFIG_SECURE_FLASH_ENC_ENABLED=y\n"
    "CONFIG_SECURE_FLASH_ENCRYPTION_MODE_RELEASE=y\n"
    "CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE=y\nCONFIG_BOOTLOADER_APP_ANTI_ROLLBACK=y\n"
)


@pytest.fixture()
def files(tmp_path: Path, sb_bootloader: bytes, k0: secure_boot.PrivateKey) -> Path:
    (tmp_path / "bootloader.bin").write_bytes(sb_bootloader)
    (tmp_path / "app.bin").write_bytes(signed(app("1.0.0", 1), k0))
    (tmp_path / "app2.bin").write_bytes(signed(app("2.0.0", 2), k0))
    (tmp_path / "old.bin").write_bytes(signed(app("0.9.0", 0), k0))
    (tmp_path / "patch.bin").write_bytes(signed(app("1.1.0", 1), k0))
    (tmp_path / "partitions.csv").write_text(OTA_TABLE.to_csv())
    (tmp_path / "sdkconfig").write_text(LOCKED_SDKCONFIG)
    return tmp_path


def flashed(files: Path) -> Path:
    dev = files / "dev"
    workflow.create_device(dev, "esp32s3", "1MB")
    result = workflow.flash_device(
        dev,
        writes=[(0x0, files / "bootloader.bin"), (0x10000, files / "app.bin")],
        partition_table=files / "partitions.csv",
        config=workflow.bootloader_config(files / "sdkconfig"),
    )
    assert [f.offset for f in result.written] == [0x0, 0x8000, 0x10000]
    assert result.config_recorded and result.to_json()["device"] == str(dev)
    return dev


def folder_digest(folder: Path) -> str:
    return hashlib.sha256(
        b"".join(p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file())
    ).hexdigest()


def test_bootloader_config_options_come_after_the_file(files: Path):
    assert workflow.bootloader_config() is None
    config = workflow.bootloader_config(files / "sdkconfig", ["SECURE_BOOT=n"])
    assert config is not None and not config.secure_boot_v2_enabled
    assert workflow.bootloader_config(files / "sdkconfig").secure_boot_v2_enabled  # type: ignore[union-attr]
    with pytest.raises(UsageError, match="NAME=VALUE"):
        workflow.bootloader_config(options=["SECURE_BOOT"])


def test_create_takes_esptool_flash_sizes(tmp_path: Path):
    dev = workflow.create_device(tmp_path / "d", "esp32p4", "0x200000")
    assert dev.flash_size == 0x200000 and VirtualDevice.open(tmp_path / "d").chip.name == "esp32p4"


def test_nothing_to_flash_is_refused(files: Path):
    workflow.create_device(files / "dev", "esp32s3", "1MB")
    with pytest.raises(UsageError, match="nothing to flash"):
        workflow.flash_device(files / "dev")


def test_first_boot_is_saved_with_the_folder(files: Path):
    dev = flashed(files)
    result = workflow.boot_device(dev)
    assert result.ok and result.final is result.report and not result.app_calls
    assert result.report.app is not None and result.report.app.version == "1.0.0"
    assert workflow.read_status(dev).posture == "production (locked)"


def test_power_cut_during_first_boot_is_reported_not_raised(files: Path):
    dev = flashed(files)
    result = workflow.boot_device(dev, fault_plan=FaultPlan(20))
    assert not result.ok and result.report.power_cut is not None
    assert result.to_json()["outcome"] == "power-lost"


def test_update_then_self_rejection_rolls_back(files: Path):
    dev = flashed(files)
    workflow.boot_device(dev)
    update = workflow.install_image(dev, files / "patch.bin", confirm=True)
    assert update.ok and update.after is not None and update.confirm is not None
    assert update.after.app is not None and update.after.app.ota_state == "PENDING_VERIFY"
    assert update.to_json()["confirm"] == workflow.op_json(update.confirm)
    assert update.to_json()["update"]["ok"] is True
    result = workflow.boot_device(dev, app_action=AppAction.MARK_INVALID)
    assert result.report.app is not None and result.report.app.version == "1.1.0"
    assert len(result.app_calls) == 1 and result.app_calls[0].ok
    assert result.after_reboot is not None and result.final is result.after_reboot
    assert result.final.app is not None and result.final.app.version == "1.0.0"
    doc = result.to_json()
    assert doc["app_calls"] == [workflow.op_json(result.app_calls[0])]
    assert doc["after_reboot"] == result.after_reboot.to_json()


def test_downgrade_is_refused_by_anti_rollback(files: Path):
    dev = flashed(files)
    workflow.boot_device(dev)
    first = workflow.install_image(dev, files / "app2.bin", confirm=True)
    assert first.ok and first.confirm is not None and first.confirm.ok
    old = workflow.install_image(dev, files / "old.bin")
    assert not old.ok and old.after is None
    assert old.update.error is EspErr.ESP_ERR_OTA_SMALL_SEC_VER


def test_app_requests_on_a_device_without_an_app_carry_the_boot_report(files: Path):
    workflow.create_device(files / "dev", "esp32s3", "1MB")
    with pytest.raises(NoAppRunning) as info:
        workflow.revoke_key(files / "dev", 1)
    assert not info.value.report.ok and "refused" in info.value.report.to_json()["outcome"]


def test_revoke_key_burns_the_revocation(files: Path):
    dev = flashed(files)
    workflow.boot_device(dev)
    result = workflow.revoke_key(dev, 1)
    assert result.ok
    assert VirtualDevice.open(dev).efuses.get_int("SECURE_BOOT_KEY_REVOKE1") == 1


def test_provisioning_checks_every_input_before_power_on(files: Path):
    dev = flashed(files)
    workflow.boot_device(dev)
    before = folder_digest(dev)
    (files / "ca.pem").write_bytes(b"not a certificate")
    (files / "manifest.pem").write_bytes((files / "sdkconfig").read_bytes())
    with pytest.raises(UsageError, match="either a CA"):
        workflow.provision_device_ota(
            dev, server_url="https://fleet", manifest_key=files / "manifest.pem"
        )
    with pytest.raises(_pem.PemError) as info:
        workflow.provision_device_ota(
            dev,
            server_url="https://fleet",
            manifest_key=files / "manifest.pem",
            pin=files / "ca.pem",
            device_id="d1",
        )
    assert info.value.source == str(files / "ca.pem") and info.value.found == "no PEM data"
    with pytest.raises(UsageError, match="decrypts nothing"):
        workflow.provision_device_ota(
            dev,
            server_url="https://fleet",
            manifest_key=files / "manifest.pem",
            ca=files / "ca.pem",
            public_key_out=files / "pub.pem",
        )
    assert folder_digest(dev) == before and not (files / "pub.pem").exists()


def test_jtag_option_combinations_are_refused(files: Path):
    workflow.create_device(files / "dev", "esp32s3", "1MB")
    with pytest.raises(UsageError):
        workflow.jtag(files / "dev", token=bytes(32), disable=True)
    with pytest.raises(UsageError):
        workflow.jtag(files / "dev", permanent=True)
    assert "JTAG" in workflow.jtag(files / "dev").describe()


def test_provisioned_device_checks_in_and_finds_no_update(
    tmp_path: Path, base: VirtualDevice, fleet: Fleet
):
    as_device(base, "wf-1").save(tmp_path / "dev")
    (tmp_path / "ca.pem").write_bytes(fleet.ca_pem)
    (tmp_path / "manifest.pub.pem").write_bytes(fleet.manifest_pub)
    provisioned = workflow.provision_device_ota(
        tmp_path / "dev",
        server_url=fleet.url,
        ca=tmp_path / "ca.pem",
        manifest_key=tmp_path / "manifest.pub.pem",
        device_id="wf-1",
        hmac_key_block=HMAC_BLOCK,
        public_key_out=tmp_path / "dev.pub.pem",
    )
    doc = provisioned.to_json()
    assert doc["device_id"] == "wf-1" and doc["public_key_out"] == str(tmp_path / "dev.pub.pem")
    assert provisioned.identity.recipient_pem == (tmp_path / "dev.pub.pem").read_bytes()
    update = workflow.fleet_update(tmp_path / "dev")
    assert update.ok and update.to_json()["outcome"] == "no_update"
    assert update.running.app is not None and update.running.app.version == "1.0.0"
