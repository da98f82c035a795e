"""Decoded security state and the ROM's GET_SECURITY_INFO record."""

from __future__ import annotations

import struct

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac

from espsec import efuse
from espsec.errors import FormatError

KEY = bytes(range(32))


@pytest.mark.parametrize("cnt,on", [(0, False), (1, True), (3, False), (7, True)])
def test_flash_encryption_is_odd_popcount(cnt, on):
    e = efuse.new("esp32s3")
    efuse.burn_key(e, "BLOCK_KEY0", KEY, "XTS_AES_128_KEY")
    if cnt:
        efuse.burn(e, {"SPI_BOOT_CRYPT_CNT": cnt})
    s = efuse.security_state(e)
    assert s.flash_encryption_enabled is on
    assert s.flash_crypt_cnt == cnt


@pytest.mark.parametrize(
    "chip,release",
    [
        ("esp32s3", ["DIS_DOWNLOAD_MANUAL_ENCRYPT", "DIS_DOWNLOAD_ICACHE", "DIS_DOWNLOAD_DCACHE"]),
        ("esp32p4", ["DIS_DOWNLOAD_MANUAL_ENCRYPT", "SPI_DOWNLOAD_MSPI_DIS"]),
    ],
)
def test_release_mode_needs_locked_counter_and_download_lockdown(chip, release):
    e = efuse.new(chip)
    efuse.burn_key(e, "BLOCK_KEY0", KEY, "XTS_AES_128_KEY")
    efuse.burn(e, {"SPI_BOOT_CRYPT_CNT": 1})
    assert efuse.security_state(e).flash_encryption_mode == "development"
    efuse.burn(e, dict.fromkeys(release, 1))
    assert efuse.security_state(e).flash_encryption_mode == "development"
    efuse.write_protect(e, ["SPI_BOOT_CRYPT_CNT"])
    assert efuse.security_state(e).flash_encryption_mode == "release"


def test_counter_at_maximum_counts_as_locked():
    e = efuse.new("esp32p4")
    efuse.burn(e, {"SPI_BOOT_CRYPT_CNT": 7, "DIS_DOWNLOAD_MANUAL_ENCRYPT": 1})
    efuse.burn(e, {"SPI_DOWNLOAD_MSPI_DIS": 1})
    assert efuse.security_state(e).flash_encryption_mode == "release"


def test_download_modes():
    e = efuse.new("esp32s3")
    assert efuse.security_state(e).download_mode == "normal"
    efuse.burn(e, {"ENABLE_SECURITY_DOWNLOAD": 1})
    assert efuse.security_state(e).download_mode == "secure"
    efuse.burn(e, {"DIS_DOWNLOAD_MODE": 1})
    assert efuse.security_state(e).download_mode == "disabled"


def test_jtag_soft_disable_is_parity_and_hmac_can_reenable():
    e = efuse.new("esp32s3")
    efuse.burn_key(e, "BLOCK_KEY3", KEY, "HMAC_DOWN_JTAG")
    efuse.burn(e, {"SOFT_DIS_JTAG": 1})
    s = efuse.security_state(e).jtag
    assert s.mode == "soft-disabled" and s.hmac_reenable_blocks == ("BLOCK_KEY3",)
    efuse.burn(e, {"SOFT_DIS_JTAG": 3})
    assert efuse.security_state(e).jtag.mode == "enabled"
    efuse.burn(e, {"DIS_PAD_JTAG": 1, "DIS_USB_JTAG": 1})
    j = efuse.security_state(e).jtag
    assert j.mode == "hard-disabled" and j.usb_jtag_disabled


def test_jtag_token_is_hmac_of_32_zero_bytes():
    h = crypto_hmac.HMAC(KEY, hashes.SHA256())
    h.update(bytes(32))
    assert efuse.jtag_token(KEY) == h.finalize()


@pytest.mark.parametrize("raw,version", [(0, 0), (0b1, 1), (0b111, 3), (0b101, 2), (0xFFFF, 16)])
def test_secure_version_is_the_thermometer_count(raw, version):
    e = efuse.new("esp32p4")
    if raw:
        efuse.burn(e, {"SECURE_VERSION": raw})
    assert efuse.security_state(e).secure_version == version
    assert efuse.secure_version_bits(3) == 0b111


def test_secure_boot_slots_and_revocation():
    e = efuse.new("esp32s3")
    efuse.burn_key_digest(e, "BLOCK_KEY1", KEY, "SECURE_BOOT_DIGEST0")
    efuse.burn_key_digest(e, "BLOCK_KEY2", bytes(31) + b"\x01", "SECURE_BOOT_DIGEST2")
    efuse.burn(e, {"SECURE_BOOT_EN": 1, "SECURE_BOOT_KEY_REVOKE2": 1})
    s = efuse.security_state(e)
    assert s.secure_boot_enabled
    d0, d1, d2 = s.digest_slots
    assert (d0.block, d0.digest, d0.revoked, d0.valid) == ("BLOCK_KEY1", KEY.hex(), False, True)
    assert (d1.block, d1.valid) == (None, False)
    assert (d2.block, d2.revoked, d2.valid) == ("BLOCK_KEY2", True, False)
    assert s.to_dict()["digest_slots"][0]["valid"] is True


def test_security_info_record_layout_esp32s3():
    e = efuse.new("esp32s3")
    efuse.burn_key(e, "BLOCK_KEY0", KEY, "XTS_AES_128_KEY")
    efuse.burn_key_digest(e, "BLOCK_KEY1", KEY, "SECURE_BOOT_DIGEST0")
    efuse.burn(
        e,
        {
            "SPI_BOOT_CRYPT_CNT": 1,
            "SECURE_BOOT_EN": 1,
            "ENABLE_SECURITY_DOWNLOAD": 1,
            "SECURE_BOOT_KEY_REVOKE1": 1,
            "SOFT_DIS_JTAG": 1,
            "DIS_PAD_JTAG": 1,
            "DIS_USB_OTG": 1,
            "DIS_DOWNLOAD_ICACHE": 1,
        },
    )
    info = efuse.security_info(e)
    raw = info.to_bytes()
    flags = 1 | 1 << 2 | 1 << 4 | 1 << 6 | 1 << 7 | 1 << 8 | 1 << 10
    assert raw == struct.pack("<IBBBBBBBBII", flags, 1, 4, 9, 0, 0, 0, 0, 12, 9, 0)
    assert len(raw) == 20
    assert efuse.SecurityInfo.parse(raw) == info
    assert info.flash_encryption_enabled and info.secure_download
    assert "HARD_DIS_JTAG" in info.flag_names and "SECURE_BOOT_KEY_REVOKE1" in info.flag_names


def test_security_info_esp32p4_chip_id():
    info = efuse.security_info(efuse.new("esp32p4"), api_version=1)
    assert (info.chip_id, info.api_version, info.key_purposes[6]) == (18, 1, 13)


def test_security_info_parse_rejects_wrong_size():
    with pytest.raises(FormatError, match="wrong size"):
        efuse.SecurityInfo.parse(bytes(12))
