"""JTAG on the virtual device: eFuse state, HMAC soft re-enable, and first-boot lockdown."""

from __future__ import annotations

import pytest

from espsec import efuse
from espsec.device import JtagError, VirtualDevice
from espsec.efuse import jtag_token
from espsec.sdkconfig import BootloaderConfig

from .kit import OTA0, app, device, signed

HMAC_KEY = bytes(range(0x40, 0x60))


def soft_disabled(purpose: str = "HMAC_DOWN_JTAG") -> VirtualDevice:
    dev = VirtualDevice.new("esp32s3", 1 << 20)
    efuse.burn_key(dev.efuses, "BLOCK_KEY4", HMAC_KEY, purpose)
    efuse.burn(dev.efuses, {"SOFT_DIS_JTAG": 1})
    return dev


def test_blank_chip_has_jtag_enabled():
    status = VirtualDevice.new("esp32s3", 1 << 20).jtag()
    assert status.efuse_mode == "enabled" and status.available


def test_odd_soft_dis_jtag_disables_and_even_count_enables_again():
    dev = soft_disabled()
    assert dev.jtag().efuse_mode == "soft-disabled" and not dev.jtag().available
    efuse.burn(dev.efuses, {"SOFT_DIS_JTAG": 0b011})
    assert dev.jtag().efuse_mode == "enabled"


def test_hmac_token_reenables_soft_disabled_jtag_until_reset():
    dev = soft_disabled()
    status = dev.jtag_enable(jtag_token(HMAC_KEY))
    assert status.available and status.reenabled
    dev.boot()  # a reset (the boot itself fails: nothing is flashed)
    assert not dev.jtag().available


def test_hmac_down_all_key_also_reenables_jtag():
    dev = soft_disabled("HMAC_DOWN_ALL")
    assert dev.jtag_enable(jtag_token(HMAC_KEY), "BLOCK_KEY4").available


def test_wrong_token_is_refused():
    dev = soft_disabled()
    with pytest.raises(JtagError, match="does not match"):
        dev.jtag_enable(jtag_token(bytes(32)))
    assert not dev.jtag().available


def test_token_under_a_key_of_another_purpose_is_refused():
    dev = soft_disabled()
    efuse.burn_key(dev.efuses, "BLOCK_KEY1", HMAC_KEY, "HMAC_UP")
    with pytest.raises(JtagError, match="HMAC_UP, not HMAC_DOWN_JTAG"):
        dev.jtag_enable(jtag_token(HMAC_KEY), "BLOCK_KEY1")


def test_hard_disabled_jtag_cannot_be_reenabled():
    dev = soft_disabled()
    efuse.burn(dev.efuses, {"DIS_PAD_JTAG": 1})
    with pytest.raises(JtagError, match="hard-disabled"):
        dev.jtag_enable(jtag_token(HMAC_KEY))


def test_soft_disable_is_volatile_and_permanent_disable_burns_soft_dis_jtag():
    dev = soft_disabled()
    dev.jtag_enable(jtag_token(HMAC_KEY))
    assert not dev.jtag_disable().available
    open_chip = VirtualDevice.new("esp32s3", 1 << 20)
    assert open_chip.jtag_disable(permanent=True).efuse_mode == "soft-disabled"
    assert open_chip.efuses.get_int("SOFT_DIS_JTAG") == 0b001


def test_secure_boot_with_allow_jtag_leaves_jtag_enabled(sb_bootloader, k0):
    config = BootloaderConfig.from_options(
        secure_boot=True, secure_boot_insecure=True, secure_boot_allow_jtag=True
    )
    dev = device(config, boot=sb_bootloader, apps={OTA0: signed(app(), k0)})
    report = dev.boot()
    assert report.ok and dev.jtag().efuse_mode == "enabled"
    assert any("SECURITY COMPROMISED" in n for s in report.stages for n in s.notes)
