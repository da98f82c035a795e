"""The eFuse controller behind the registers: espefuse's program sequence, the OTP rules."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from espsec import efuse
from espsec.device.download.efuse_controller import (
    CMD,
    CONF,
    PGM_CMD,
    READ_CMD,
    READ_OP_CODE,
    WRITE_OP_CODE,
    EfuseController,
)
from espsec.device.download.slip import SlipDecoder, encode
from espsec.efuse import rs
from espsec.efuse.download_mode import Interface, download_policy


def program(ctrl: EfuseController, block: int, data: bytes, check: bytes | None = None) -> None:
    """espefuse's sequence (``burn_words``, ``efuse_program``, ``efuse_read``)."""
    words = struct.unpack("<8I", data.ljust(32, b"\0"))
    if check is None:
        check = rs.check_value(data.ljust(32, b"\0")) if block else bytes(12)
    for i, word in enumerate(words + struct.unpack("<3I", check)):
        ctrl.write(4 * i, word)
    ctrl.write(CONF, WRITE_OP_CODE)
    ctrl.write(CMD, PGM_CMD | block << 2)
    assert ctrl.read(CMD) == 0
    ctrl.write(CONF, READ_OP_CODE)
    ctrl.write(CMD, READ_CMD)


@pytest.fixture(params=["esp32s3", "esp32p4"])
def ctrl(request: pytest.FixtureRequest) -> tuple[EfuseController, list[str]]:
    log: list[str] = []
    return EfuseController(efuse.new(request.param), notify=log.append), log


def test_program_sequence_burns_a_key_block_readable_through_the_read_registers(ctrl):
    controller, _ = ctrl
    key = bytes(range(32))
    program(controller, 4, key)
    block = controller.efuses.layout.block("BLOCK_KEY0")
    regs = b"".join(struct.pack("<I", controller.read(block.offset + 4 * i)) for i in range(8))
    assert regs == key and controller.reads == 1


def test_check_value_that_is_not_the_rs_code_burns_nothing(ctrl):
    controller, log = ctrl
    program(controller, 4, bytes(range(32)), check=b"\x01" * 12)
    assert controller.efuses.is_empty("BLOCK_KEY0")
    assert "Reed-Solomon" in log[-1]


def test_second_program_of_an_rs_block_is_refused(ctrl):
    controller, log = ctrl
    program(controller, 5, b"\x01" * 32)
    program(controller, 5, b"\x03" * 32)
    assert controller.efuses.read_block("BLOCK_KEY1") == b"\x01" * 32
    assert "refused" in log[-1]


def test_write_protected_field_is_not_programmed(ctrl):
    controller, log = ctrl
    efuses = controller.efuses
    efuse.write_protect(efuses, ["SECURE_VERSION"])
    field = efuses.field("SECURE_VERSION")
    program(controller, 0, (1 << field.start).to_bytes(24, "little"))
    assert efuses.get_int("SECURE_VERSION") == 0
    assert "refused" in log[-1] and "SECURE_VERSION" in log[-1]


def test_bits_outside_every_field_are_refused(ctrl):
    controller, log = ctrl
    reserved = next(f for f in controller.efuses.layout.fields_in(0) if f.reserved)
    before = controller.efuses.copy()
    program(controller, 0, (1 << reserved.start).to_bytes(24, "little"))
    assert controller.efuses == before
    assert "no eFuse field" in log[-1]


def test_download_mode_policy_follows_the_efuses():
    chip = efuse.new("esp32s3")
    assert download_policy(chip).mode == "normal"
    efuse.burn(chip, {"DIS_USB_SERIAL_JTAG_DOWNLOAD_MODE": 1, "DIS_FORCE_DOWNLOAD": 1})
    assert download_policy(chip, Interface.USB_SERIAL_JTAG).mode == "disabled"
    assert download_policy(chip, Interface.UART).mode == "normal"
    assert not download_policy(chip).force_download
    efuse.burn(chip, {"ENABLE_SECURITY_DOWNLOAD": 1})
    assert download_policy(chip).mode == "secure"
    efuse.burn(chip, {"DIS_DOWNLOAD_MODE": 1})
    assert all(download_policy(chip, i).mode == "disabled" for i in Interface)


@given(st.lists(st.binary(max_size=64), max_size=5), st.integers(1, 7))
def test_slip_frames_survive_any_chunking(payloads, chunk):
    stream = b"".join(encode(p) for p in payloads)
    decoder = SlipDecoder(1024)
    frames = []
    for i in range(0, len(stream), chunk):
        frames += decoder.feed(stream[i : i + chunk])
    assert frames == [p for p in payloads if p]


@given(st.binary(max_size=300))
def test_slip_decoder_never_raises_on_noise(noise):
    for item in SlipDecoder(128).feed(noise):
        assert isinstance(item, bytes) or item.reason
