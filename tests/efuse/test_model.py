"""The eFuse model: espefuse's file format, the sidecar, hardware vs software views,
the controller's PGM semantics and the error bits a damaged block shows."""

from __future__ import annotations

import json
import stat
import struct

import pytest

from espsec import efuse
from espsec.efuse import rs
from espsec.errors import FormatError, OutputExistsError, UsageError

KEY = bytes(range(1, 33))


def test_file_is_the_register_image_byte_reversed():
    e = efuse.new("esp32s3")
    efuse.burn(e, {"SECURE_VERSION": 0x7})
    data = e.to_file_bytes()
    assert len(data) == 0x200
    regs = data[::-1]
    # BLOCK0 read registers start at +0x2C; SECURE_VERSION is bits 142.. of the block.
    word4 = struct.unpack_from("<I", regs, 0x2C + 4 * 4)[0]
    assert word4 == 0x7 << 14
    assert efuse.Efuses.from_file_bytes("esp32s3", data) == e


def test_key_block_sits_at_0x9c_plus_0x20_n():
    e = efuse.new("esp32s3")
    efuse.burn_key(e, "BLOCK_KEY2", KEY, "HMAC_UP", read_protect=False)
    regs = e.to_file_bytes()[::-1]
    assert regs[0x9C + 0x20 * 2 : 0x9C + 0x20 * 3] == KEY


def test_wrong_file_size_is_a_format_error(tmp_path):
    path = tmp_path / "e.bin"
    path.write_bytes(bytes(100))
    with pytest.raises(FormatError, match="wrong size") as exc:
        efuse.load(path, "esp32s3")
    assert exc.value.source == str(path)


def test_create_writes_file_and_0600_sidecar_and_never_overwrites(tmp_path):
    path = tmp_path / "e.bin"
    efuse.create(path, "esp32p4")
    assert path.read_bytes() == bytes(0x200)
    side = efuse.sidecar_path(path)
    assert stat.S_IMODE(side.stat().st_mode) == 0o600
    assert json.loads(side.read_text())["chip"] == "esp32p4"
    with pytest.raises(OutputExistsError):
        efuse.create(path, "esp32p4")


def test_chip_comes_from_sidecar_or_must_be_given(tmp_path):
    path = tmp_path / "e.bin"
    path.write_bytes(bytes(0x200))  # as espefuse leaves a fresh file
    with pytest.raises(UsageError, match="pass --chip"):
        efuse.load(path)
    assert efuse.load(path, "esp32s3").chip == "esp32s3"
    efuse.save(efuse.new("esp32s3"), path)
    assert efuse.load(path).chip == "esp32s3"
    with pytest.raises(UsageError, match="does not match"):
        efuse.load(path, "esp32p4")


def test_read_protected_key_reads_as_zero_but_hardware_keeps_it(tmp_path):
    e = efuse.new("esp32s3")
    efuse.burn_key(e, "BLOCK_KEY0", KEY, "XTS_AES_128_KEY")
    assert e.read_block("BLOCK_KEY0") == bytes(32)
    assert e.hardware_block("BLOCK_KEY0") == KEY[::-1]  # XTS keys are burned reversed
    path = tmp_path / "e.bin"
    efuse.save(e, path)
    assert KEY[::-1] not in path.read_bytes()[::-1]
    side = efuse.sidecar_path(path)
    assert stat.S_IMODE(side.stat().st_mode) == 0o600
    again = efuse.load(path)
    assert again == e
    assert again.hardware_block(4) == KEY[::-1]
    assert "0102" not in repr(again) and "key" not in repr(again).lower()


def test_hardware_key_unknown_without_sidecar(tmp_path):
    e = efuse.new("esp32s3")
    efuse.burn_key(e, "BLOCK_KEY0", KEY, "XTS_AES_128_KEY")
    path = tmp_path / "e.bin"
    path.write_bytes(e.to_file_bytes())  # like espefuse: no sidecar
    lost = efuse.load(path, "esp32s3")
    with pytest.raises(efuse.KeyUnavailableError, match="BLOCK_KEY0 is read-protected"):
        lost.hardware_block(4)
    assert not lost.is_empty(4)


def test_stale_sidecar_entries_for_readable_blocks_are_ignored(tmp_path):
    path = tmp_path / "e.bin"
    efuse.create(path, "esp32s3")
    side = efuse.sidecar_path(path)
    meta = json.loads(side.read_text())
    meta["hardware_keys"] = {"BLOCK_KEY0": KEY.hex()}
    side.write_text(json.dumps(meta))
    e = efuse.load(path)
    assert e.hardware_keys() == {}
    assert e.hardware_block(4) == bytes(32)


def test_corrupt_sidecar_is_a_format_error(tmp_path):
    path = tmp_path / "e.bin"
    efuse.create(path, "esp32s3")
    side = efuse.sidecar_path(path)
    side.write_text("{not json")
    with pytest.raises(FormatError, match="sidecar"):
        efuse.load(path)
    side.write_text(json.dumps({"format": "espsec-efuse-sidecar", "chip": "esp32zz"}))
    with pytest.raises(UsageError, match="unknown chip") as exc:
        efuse.load(path)
    assert exc.value.source == str(side)


def test_program_masks_write_protected_bits_like_the_controller():
    e = efuse.new("esp32s3")
    efuse.write_protect(e, ["SECURE_VERSION"])
    f = e.field("SECURE_VERSION")
    e.program(0, 1 << f.start)
    assert e.get("SECURE_VERSION") == 0


def test_second_program_of_an_rs_block_shows_errors():
    e = efuse.new("esp32s3")
    efuse.burn_key(e, "BLOCK_KEY1", KEY, "USER", write_protect=False)
    assert e.block_errors(5).ok
    e.program(5, 1 << 255)  # what a raw second burn would do: check value ORed
    errors = e.block_errors(5)
    assert not errors.ok


@pytest.mark.parametrize("flips,errors,failed", [([3], 1, False), ([0, 9, 17, 300], 4, False)])
def test_rs_fault_is_corrected_and_counted(flips, errors, failed):
    e = efuse.new("esp32p4")
    efuse.burn_key(e, "BLOCK_KEY3", KEY, "HMAC_UP", read_protect=False)
    got = e.inject_fault("BLOCK_KEY3", flips)
    assert (got.errors, got.failed) == (errors, failed)
    assert e.read_block(7) == KEY  # corrected
    rs_err = e.read_reg(e.layout.block(7).rs_error.reg)  # type: ignore[union-attr]
    assert rs_err >> 24 & 0xF == errors  # BLOCK_KEY3: bits 24..27 of RS_ERR0


def test_rs_fault_beyond_six_bytes_sets_fail_bit():
    e = efuse.new("esp32s3")
    efuse.burn_key(e, "BLOCK_KEY1", KEY, "HMAC_UP", read_protect=False)
    got = e.inject_fault(5, [8 * i for i in range(8)])
    assert got.failed


def test_block0_repeat_fault_marks_the_field():
    e = efuse.new("esp32s3")
    f = e.field("SECURE_BOOT_EN")
    got = e.inject_fault(0, [f.start])
    assert got.failed and got.errors == 1
    assert e.field_has_errors(f) and not e.field_has_errors(e.field("SECURE_VERSION"))
    with pytest.raises(UsageError, match="no backup copy"):
        e.inject_fault(0, [3])


def test_codeword_is_data_then_check_value():
    e = efuse.new("esp32s3")
    efuse.burn_key(e, "BLOCK_KEY1", KEY, "HMAC_UP")
    assert e.codeword("BLOCK_KEY1") == KEY + rs.check_value(KEY)  # hardware view
    assert e.codeword("BLOCK1")[24:32] == bytes(8)  # a 6-word block is zero-padded
    with pytest.raises(UsageError, match="not RS-coded"):
        e.codeword(0)
