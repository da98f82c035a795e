"""Chip revisions: each wafer revision reads with its own eFuse layout (ESP32-P4 v3.0+:
``esp32p4_v3.0``, 5-bit key purposes), as espefuse picks its table."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from espsec import efuse
from espsec.chips import get_chip, parse_revision
from espsec.efuse import BurnRefused
from espsec.errors import UsageError

P384_SCALAR = ec.derive_private_key(0x1234_5678_9ABC_DEF0 << 300 | 0xF00D, ec.SECP384R1())
SCALAR = P384_SCALAR.private_numbers().private_value.to_bytes(48, "big")


def test_a_blank_chip_is_v0_0_with_the_first_layout():
    e = efuse.new("esp32p4")
    assert (e.revision, e.layout.table) == (0, "esp32p4")


@pytest.mark.parametrize(
    ("chip", "revision", "table"),
    [
        ("esp32p4", 1, "esp32p4"),
        ("esp32p4", 100, "esp32p4"),
        ("esp32p4", 300, "esp32p4_v3.0"),
        ("esp32p4", 301, "esp32p4_v3.0"),
        ("esp32s3", 2, "esp32s3"),
    ],
)
def test_a_new_chip_of_a_revision_reads_back_as_that_revision(chip, revision, table, tmp_path):
    path = tmp_path / "e.bin"
    made = efuse.create(path, chip, revision)
    assert (made.revision, made.layout.table) == (revision, table)
    # Without the sidecar the file alone says which layout it has.
    efuse.sidecar_path(path).unlink()
    read = efuse.load(path, chip)
    assert (read.revision, read.layout.table) == (revision, table)
    assert read == made


def test_the_wafer_version_is_factory_data_in_block1():
    e = efuse.new("esp32p4", 301)
    assert e.get_int("WAFER_VERSION_MINOR") == 1
    assert (e.get_int("WAFER_VERSION_MAJOR_HI"), e.get_int("WAFER_VERSION_MAJOR_LO")) == (0, 3)
    assert e.block_errors("BLOCK1").ok  # one program, a valid check value


def test_an_unknown_revision_is_refused_naming_the_known_ones():
    with pytest.raises(UsageError, match=r"no revision v2\.0 \(known: v0\.0, .*v3\.1\)"):
        efuse.new("esp32p4", 200)


@pytest.mark.parametrize(
    ("text", "value"), [("v3.1", 301), ("3.1", 301), ("301", 301), ("V0.2", 2), ("v1.0", 100)]
)
def test_revisions_are_written_as_esptool_writes_them(text, value):
    assert parse_revision(text) == value


@pytest.mark.parametrize("text", ["v3", "3.100", "x", "-1", "v3.x"])
def test_a_malformed_revision_is_one_usage_error(text):
    with pytest.raises(UsageError, match="not a chip revision"):
        parse_revision(text)


def test_the_newest_p4_revision_the_data_knows_is_v3_1():
    assert get_chip("esp32p4").latest_revision == 301


def test_p384_key_takes_two_blocks_with_5_bit_purposes_on_v3():
    e = efuse.new("esp32p4", 301)
    efuse.burn_key(e, "BLOCK_KEY1", SCALAR, "ECDSA_KEY_P384")
    assert e.layout.purpose_name(e.key_purpose("BLOCK_KEY1")) == "ECDSA_KEY_P384_H"
    assert e.layout.purpose_name(e.key_purpose("BLOCK_KEY2")) == "ECDSA_KEY_P384_L"
    # 18 = 0b1_0010: KEY_PURPOSE_1 holds 2, its _H bit the 16.
    assert (e.get_int("KEY_PURPOSE_1"), e.get_int("KEY_PURPOSE_1_H")) == (2, 1)
    state = efuse.security_state(e)
    assert state.key_blocks[1].purpose_write_protected
    assert state.key_blocks[1].read_protected and state.key_blocks[2].read_protected
    # espefuse's split: the high block gets 16 zero bytes and the key's top 16 bytes.
    high = e.hardware_block("BLOCK_KEY1")[::-1]
    low = e.hardware_block("BLOCK_KEY2")[::-1]
    assert high == bytes(16) + SCALAR[:16] and low == SCALAR[16:]


def test_p384_purposes_do_not_fit_a_v0_chip_and_nothing_is_burned():
    e = efuse.new("esp32p4")
    before = e.copy()
    with pytest.raises(UsageError, match=r"does not fit KEY_PURPOSE_1 \(4 bits\).*v3\.0 and later"):
        efuse.burn_key(e, "BLOCK_KEY1", SCALAR, "ECDSA_KEY_P384")
    assert e == before


def test_burn_efuse_of_a_5_bit_purpose_sets_its_high_bit():
    e = efuse.new("esp32p4", 301)
    efuse.burn(e, {"KEY_PURPOSE_3": 16})  # ECDSA_KEY_P192
    assert e.layout.purpose_name(e.key_purpose("BLOCK_KEY3")) == "ECDSA_KEY_P192"
    summary = efuse.summary(e)
    assert summary["KEY_PURPOSE_3"]["value"] == "ECDSA_KEY_P192"
    with pytest.raises(BurnRefused, match="1 -> 0"):
        efuse.burn(e, {"KEY_PURPOSE_3": 1})  # would clear the _H bit


def test_write_protecting_a_5_bit_purpose_locks_both_parts():
    e = efuse.new("esp32p4", 301)
    efuse.burn_key(e, "BLOCK_KEY0", bytes(range(32)), "HMAC_UP", read_protect=False)
    assert not e.is_writeable("KEY_PURPOSE_0") and not e.is_writeable("KEY_PURPOSE_0_H")
    assert not e.key_purpose_writeable("BLOCK_KEY0")


def test_a_p384_half_needs_a_free_block_whose_purpose_is_unset():
    e = efuse.new("esp32p4", 301)
    efuse.burn(e, {"KEY_PURPOSE_3_H": 1})  # BLOCK_KEY3 no longer free
    efuse.burn_key(e, "BLOCK_KEY2", SCALAR, "ECDSA_KEY_P384")
    assert e.layout.purpose_name(e.key_purpose("BLOCK_KEY4")) == "ECDSA_KEY_P384_L"
