"""esp_app_desc_t and esp_bootloader_desc_t: layout, strict parsing, lookup at 0x20."""

from __future__ import annotations

import struct

import pytest

from espsec.chips import Chip
from espsec.errors import FormatError
from espsec.image import (
    APP_DESC_SIZE,
    BOOTLOADER_DESC_SIZE,
    DESC_OFFSET,
    AppDesc,
    BootloaderDesc,
    EspImage,
    ImageHeader,
    Segment,
    find_app_desc,
    find_bootloader_desc,
    find_descriptor,
    parse_image,
)

APP = AppDesc(
    secure_version=5,
    version="v1.2.3-rc1",
    project_name="thermostat",
    time="12:34:56",
    date="Mar  4 2025",
    idf_ver="v5.5.1-dirty",
    app_elf_sha256=bytes(range(32)),
    min_efuse_blk_rev_full=1,
    max_efuse_blk_rev_full=99,
    mmu_page_size=16,
    spi_flash_mode=2,
)
BOOT = BootloaderDesc(
    version=42, idf_ver="v5.5", date_time="Mar  4 2025 12:34:56", secure_version=3
)
HEADER = ImageHeader(segment_count=0, spi_mode=2, spi_speed=0xF, spi_size=1, entry_addr=0)


def test_app_desc_fields_at_their_offsets() -> None:
    raw = APP.to_bytes()
    assert len(raw) == APP_DESC_SIZE
    assert struct.unpack_from("<II", raw) == (0xABCD5432, 5)
    assert raw[16:32] == b"v1.2.3-rc1".ljust(16, b"\0")
    assert raw[48:58] == b"thermostat"
    assert raw[80:88] == b"12:34:56"
    assert raw[96:107] == b"Mar  4 2025"
    assert raw[112:124] == b"v5.5.1-dirty"
    assert raw[144:176] == bytes(range(32))
    assert struct.unpack_from("<HHBB", raw, 176) == (1, 99, 16, 2)
    assert raw[182:] == bytes(74)


def test_app_desc_round_trip() -> None:
    assert AppDesc.parse(APP.to_bytes()) == APP


def test_app_desc_mmu_page_size_is_log2() -> None:
    assert APP.mmu_page_bytes == 65536
    assert AppDesc.parse(APP.to_bytes()[:180] + bytes(76)).mmu_page_bytes is None


def test_rejects_wrong_app_magic() -> None:
    raw = bytearray(APP.to_bytes())
    raw[0] ^= 0xFF
    with pytest.raises(FormatError) as exc:
        AppDesc.parse(bytes(raw), offset=0x20)
    assert exc.value.offset == 0x20
    assert exc.value.field == "magic_word"


def test_rejects_garbage_after_string_terminator() -> None:
    raw = bytearray(APP.to_bytes())
    raw[16 + 20] = ord("X")  # inside version, after its NUL
    with pytest.raises(FormatError) as exc:
        AppDesc.parse(bytes(raw), offset=0x20)
    assert exc.value.field == "version"
    assert exc.value.offset == 0x20 + 16 + 20


def test_rejects_non_utf8_string() -> None:
    raw = bytearray(APP.to_bytes())
    raw[48] = 0xFF
    with pytest.raises(FormatError, match="UTF-8") as exc:
        AppDesc.parse(bytes(raw))
    assert exc.value.field == "project_name"


def test_string_may_fill_the_whole_field() -> None:
    desc = AppDesc(0, "v" * 32, "p" * 32, "t" * 16, "d" * 16, "i" * 32)
    assert AppDesc.parse(desc.to_bytes()) == desc


def test_constructor_rejects_too_long_version() -> None:
    with pytest.raises(ValueError, match="version"):
        AppDesc(0, "v" * 33, "p", "t", "d", "i")


def test_app_desc_reserved_bytes_survive_round_trip() -> None:
    raw = bytearray(APP.to_bytes())
    raw[8] = 1
    raw[183] = 2
    raw[255] = 3
    assert AppDesc.parse(bytes(raw)).to_bytes() == bytes(raw)


def test_bootloader_desc_fields_at_their_offsets() -> None:
    raw = BOOT.to_bytes()
    assert len(raw) == BOOTLOADER_DESC_SIZE
    assert raw[0] == 0x50
    assert raw[1:3] == b"\0\0"
    assert raw[3] == 3  # secure_version
    assert struct.unpack_from("<I", raw, 4) == (42,)
    assert raw[8:12] == b"v5.5"
    assert raw[40:60] == b"Mar  4 2025 12:34:56"
    assert raw[64:] == bytes(16)


def test_bootloader_desc_round_trip() -> None:
    assert BootloaderDesc.parse(BOOT.to_bytes()) == BOOT


def test_rejects_wrong_bootloader_magic() -> None:
    with pytest.raises(FormatError) as exc:
        BootloaderDesc.parse(b"\x51" + BOOT.to_bytes()[1:])
    assert exc.value.field == "magic_byte"


def test_find_descriptor_of_app(demo_app: bytes) -> None:
    desc = find_descriptor(parse_image(demo_app))
    assert isinstance(desc, AppDesc)
    assert (desc.version, desc.project_name, desc.secure_version) == ("2.1.0", "demo", 3)
    assert demo_app[DESC_OFFSET : DESC_OFFSET + 256] == desc.to_bytes()
    assert find_bootloader_desc(parse_image(demo_app)) is None


def test_find_descriptor_of_bootloader(demo_bootloader: bytes) -> None:
    image = parse_image(demo_bootloader)
    desc = find_descriptor(image)
    assert isinstance(desc, BootloaderDesc)
    assert (desc.version, desc.secure_version) == (7, 2)
    assert find_app_desc(image) is None
    assert find_bootloader_desc(image) == desc


def test_image_without_descriptor() -> None:
    image = EspImage.create(HEADER, [Segment(0x3FC88000, bytes(256))])
    assert find_descriptor(image) is None
    assert find_descriptor(EspImage.create(HEADER, [])) is None


def test_truncated_app_desc_rejected() -> None:
    # Segment 0 of an app must hold the whole esp_app_desc_t.
    image = EspImage.create(HEADER, [Segment(0x3C000020, APP.to_bytes()[:128])])
    with pytest.raises(FormatError, match="truncated") as exc:
        find_descriptor(image)
    assert exc.value.field == "esp_app_desc_t"


def test_bootloader_magic_byte_without_valid_descriptor_is_no_descriptor(s3: Chip) -> None:
    data = b"\x50" + bytes(7) + b"\xff" * 72  # idf_ver is not UTF-8
    image = EspImage.create(HEADER, [Segment(0x3FC88000, data)])
    assert find_descriptor(image) is None
