"""The 24-byte image header: field positions, strict parsing, round trip."""

from __future__ import annotations

import pytest

from espsec.errors import FormatError
from espsec.image import HEADER_SIZE, ImageHeader, SpiMode

HEADER = ImageHeader(
    segment_count=4,
    spi_mode=SpiMode.DIO,
    spi_speed=0xF,
    spi_size=2,
    entry_addr=0x40375A2C,
    wp_pin=0xEE,
    spi_pin_drv=bytes([0x21, 0x43, 0x65]),
    chip_id=9,
    min_chip_rev=1,
    min_chip_rev_full=101,
    max_chip_rev_full=199,
    hash_appended=True,
)


def test_header_fields_at_their_offsets() -> None:
    raw = HEADER.to_bytes()
    assert len(raw) == HEADER_SIZE
    assert raw[0] == 0xE9
    assert raw[1] == 4
    assert raw[2] == 2
    assert raw[3] == 0x2F  # size in the high nibble, speed in the low one
    assert raw[4:8] == (0x40375A2C).to_bytes(4, "little")
    assert raw[8] == 0xEE
    assert raw[9:12] == bytes([0x21, 0x43, 0x65])
    assert raw[12:14] == (9).to_bytes(2, "little")
    assert raw[14] == 1
    assert raw[15:17] == (101).to_bytes(2, "little")
    assert raw[17:19] == (199).to_bytes(2, "little")
    assert raw[19:23] == bytes(4)
    assert raw[23] == 1


def test_header_round_trip() -> None:
    assert ImageHeader.parse(HEADER.to_bytes()) == HEADER


def test_rejects_wrong_magic() -> None:
    raw = bytearray(HEADER.to_bytes())
    raw[0] = 0xE8
    with pytest.raises(FormatError) as exc:
        ImageHeader.parse(bytes(raw))
    assert exc.value.offset == 0
    assert exc.value.field == "magic"
    assert exc.value.expected == 0xE9
    assert exc.value.found == 0xE8


@pytest.mark.parametrize("flag", [2, 0x80, 0xFF])
def test_rejects_hash_appended_other_than_0_or_1(flag: int) -> None:
    raw = bytearray(HEADER.to_bytes())
    raw[23] = flag
    with pytest.raises(FormatError) as exc:
        ImageHeader.parse(bytes(raw))
    assert exc.value.offset == 23
    assert exc.value.field == "hash_appended"


def test_rejects_truncated_header() -> None:
    with pytest.raises(FormatError, match="truncated"):
        ImageHeader.parse(HEADER.to_bytes()[:20])


def test_reserved_bytes_survive_round_trip() -> None:
    raw = bytearray(HEADER.to_bytes())
    raw[19:23] = b"\x01\x02\x03\x04"
    header = ImageHeader.parse(bytes(raw))
    assert header.reserved == b"\x01\x02\x03\x04"
    assert header.to_bytes() == bytes(raw)


def test_flash_mode_and_size_names() -> None:
    assert HEADER.spi_mode_name == "DIO"
    assert HEADER.flash_size_name == "4MB"
    assert HEADER.flash_size == 4 * 1024 * 1024
    odd = ImageHeader(segment_count=0, spi_mode=9, spi_speed=0, spi_size=8, entry_addr=0)
    assert odd.spi_mode_name is None
    assert odd.flash_size_name is None
    assert odd.flash_size is None


def test_pin_drive_strengths_low_nibble_first() -> None:
    assert HEADER.pin_drive_strengths == {
        "clk_drv": 1,
        "q_drv": 2,
        "d_drv": 3,
        "cs0_drv": 4,
        "hd_drv": 5,
        "wp_drv": 6,
    }


@pytest.mark.parametrize(
    "field, value",
    [("spi_speed", 16), ("spi_size", -1), ("entry_addr", 1 << 32), ("chip_id", 0x10000)],
)
def test_constructor_rejects_out_of_range_fields(field: str, value: int) -> None:
    kwargs: dict[str, int] = {
        "segment_count": 0,
        "spi_mode": 0,
        "spi_speed": 0,
        "spi_size": 0,
        "entry_addr": 0,
    }
    kwargs[field] = value
    with pytest.raises(ValueError, match=field):
        ImageHeader(**kwargs)  # type: ignore[arg-type]
