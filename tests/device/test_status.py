"""``device_status``: the security posture, read without changing the device."""

from __future__ import annotations

from espsec import efuse
from espsec.device import VirtualDevice, device_status
from espsec.sdkconfig import BootloaderConfig

from .kit import FACTORY_TABLE, FE_DEV, LOCKED, OTA0, app, bootloader, device, signed


def test_blank_chip_is_reported_blank_with_every_finding():
    status = device_status(VirtualDevice.new("esp32s3", 1 << 20))
    assert status.posture == "blank" and not status.locked
    assert status.findings == (
        "Secure Boot is off (SECURE_BOOT_EN = 0)",
        "flash encryption is off",
        "ROM download mode is fully open",
        "JTAG is enabled",
    )
    assert "invalid magic byte" in status.bootloader and status.apps == ()


def test_locked_device_after_first_boot_is_production(sb_bootloader, k0):
    dev = device(LOCKED, boot=sb_bootloader, apps={OTA0: signed(app("1.0.0", 1), k0)})
    dev.boot()
    before = (dev.efuses.copy(), bytes(dev.flash.data))
    status = device_status(dev)
    assert (dev.efuses, bytes(dev.flash.data)) == before  # read-only
    assert status.posture == "production (locked)" and status.findings == ()
    assert status.security.flash_encryption_mode == "release"
    assert status.security.download_mode == "secure"
    assert status.jtag.efuse_mode == "hard-disabled"
    ota0 = status.apps[0]
    assert (ota0.partition, ota0.version, ota0.ota_state, ota0.efuse_slot) == (
        "ota_0",
        "1.0.0",
        "VALID",
        0,
    )
    assert status.bootloader == "ok (version 1)"
    ota1 = status.apps[1]  # never written: erased flash, not the noise it decrypts to
    assert (ota1.partition, ota1.ok, ota1.reason) == ("ota_1", False, "empty (erased)")
    doc = status.to_json()
    assert doc["security"]["digest_slots"][2]["revoked"] is True
    assert "CONFIG_SECURE_FLASH_ENCRYPTION_MODE_RELEASE=y" in doc["bootloader_config"]


def test_development_mode_flash_encryption_is_reported():
    dev = device(FE_DEV, boot=bootloader(), apps={0x10000: app()}, table=FACTORY_TABLE)
    dev.boot()
    status = device_status(dev)
    assert status.posture == "development"
    assert "flash encryption is in development mode" in status.findings
    assert [a.partition for a in status.apps] == ["factory", "ota_0", "ota_1"]
    assert status.apps[0].ok and not status.apps[1].ok


def test_status_reports_download_mode_on_every_interface():
    dev = VirtualDevice.new("esp32s3", 1 << 20)
    efuse.burn(dev.efuses, {"ENABLE_SECURITY_DOWNLOAD": 1, "DIS_USB_OTG_DOWNLOAD_MODE": 1})
    modes = {p["interface"]: p["mode"] for p in device_status(dev).to_json()["download_mode"]}
    assert modes == {"uart": "secure", "usb-serial-jtag": "secure", "usb-otg": "disabled"}


def test_status_shows_pms_memory_protection_of_an_s3_build():
    status = device_status(VirtualDevice.new("esp32s3", 1 << 20))
    assert status.to_json()["memory_protection"] == {
        "scheme": "PMS",
        "enabled": True,
        "locked": True,
        "apm": False,
        "option": "CONFIG_ESP_SYSTEM_MEMPROT",
    }


def test_status_shows_memory_protection_turned_off_by_the_build():
    config = BootloaderConfig.parse("CONFIG_ESP_SYSTEM_MEMPROT_FEATURE=n\n")
    status = device_status(VirtualDevice.new("esp32s3", 1 << 20, config=config))
    assert status.memory_protection is not None and not status.memory_protection.enabled
    assert status.memory_protection.describe().startswith("off (PMS")


def test_status_shows_pmp_and_apm_on_a_p4():
    config = BootloaderConfig.parse('CONFIG_IDF_TARGET="esp32p4"\n')
    status = device_status(VirtualDevice.new("esp32p4", 1 << 20, config=config))
    assert status.memory_protection is not None
    assert status.memory_protection.describe() == "on (PMP, APM present)"
