"""The descriptors at file offset 0x20: ``esp_app_desc_t`` and ``esp_bootloader_desc_t``.

ESP-IDF ``components/esp_app_format/include/esp_app_desc.h`` (256 bytes, first thing in
the app's DROM segment 0) and
``components/esp_bootloader_format/include/esp_bootloader_desc.h`` (80 bytes, first
thing in the bootloader's DRAM segment 0).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Self

from espsec.errors import FormatError
from espsec.image._fields import (
    check_cstr,
    check_size,
    check_uint,
    decode_cstr,
    encode_cstr,
    require_length,
)
from espsec.image.app_image import SEGMENT_HEADER_SIZE, EspImage
from espsec.image.header import HEADER_SIZE

DESC_OFFSET = HEADER_SIZE + SEGMENT_HEADER_SIZE
"""File offset of either descriptor: just after the image and first segment headers."""

APP_DESC_MAGIC = 0xABCD5432
"""``ESP_APP_DESC_MAGIC_WORD``."""
APP_DESC_SIZE = 256
BOOTLOADER_DESC_MAGIC = 0x50
"""``ESP_BOOTLOADER_DESC_MAGIC_BYTE`` (80)."""
BOOTLOADER_DESC_SIZE = 80

_APP = struct.Struct("<II8s32s32s16s16s32s32sHHBB2s72s")
_BOOT = struct.Struct("<B2sBI32s24s16s")


@dataclass(frozen=True)
class AppDesc:
    """``esp_app_desc_t``: what the app says about itself (version, anti-rollback, …).

    ``mmu_page_size`` is stored as log2 (16 = 64 KB; 0 in images before ESP-IDF v5.4);
    ``spi_flash_mode`` is ``CONFIG_ESPTOOLPY_FLASHMODE_VAL``.
    """

    secure_version: int
    version: str
    project_name: str
    time: str
    date: str
    idf_ver: str
    app_elf_sha256: bytes = field(default=bytes(32), repr=False)
    min_efuse_blk_rev_full: int = 0
    max_efuse_blk_rev_full: int = 0xFFFF
    mmu_page_size: int = 0
    spi_flash_mode: int = 0
    reserv1: bytes = field(default=bytes(8), repr=False)
    reserv3: bytes = field(default=bytes(2), repr=False)
    reserv2: bytes = field(default=bytes(72), repr=False)

    def __post_init__(self) -> None:
        check_uint(self.secure_version, 32, field="secure_version")
        check_cstr(self.version, 32, field="version")
        check_cstr(self.project_name, 32, field="project_name")
        check_cstr(self.time, 16, field="time")
        check_cstr(self.date, 16, field="date")
        check_cstr(self.idf_ver, 32, field="idf_ver")
        check_size(self.app_elf_sha256, 32, field="app_elf_sha256")
        check_uint(self.min_efuse_blk_rev_full, 16, field="min_efuse_blk_rev_full")
        check_uint(self.max_efuse_blk_rev_full, 16, field="max_efuse_blk_rev_full")
        check_uint(self.mmu_page_size, 8, field="mmu_page_size")
        check_uint(self.spi_flash_mode, 8, field="spi_flash_mode")
        check_size(self.reserv1, 8, field="reserv1")
        check_size(self.reserv3, 2, field="reserv3")
        check_size(self.reserv2, 72, field="reserv2")

    @classmethod
    def parse(cls, data: bytes, *, offset: int = 0) -> Self:
        """Parse exactly 256 bytes; ``offset`` is where they sit in the file (for errors)."""
        require_length(data, APP_DESC_SIZE, offset=offset, field="esp_app_desc_t")
        (
            magic,
            secure_version,
            reserv1,
            version,
            project_name,
            time,
            date,
            idf_ver,
            app_elf_sha256,
            min_efuse,
            max_efuse,
            mmu_page_size,
            spi_flash_mode,
            reserv3,
            reserv2,
        ) = _APP.unpack(data)
        if magic != APP_DESC_MAGIC:
            raise FormatError(
                "not an app descriptor",
                offset=offset,
                field="magic_word",
                expected=APP_DESC_MAGIC,
                found=magic,
            )
        return cls(
            secure_version=secure_version,
            version=decode_cstr(version, offset=offset + 16, field="version"),
            project_name=decode_cstr(project_name, offset=offset + 48, field="project_name"),
            time=decode_cstr(time, offset=offset + 80, field="time"),
            date=decode_cstr(date, offset=offset + 96, field="date"),
            idf_ver=decode_cstr(idf_ver, offset=offset + 112, field="idf_ver"),
            app_elf_sha256=app_elf_sha256,
            min_efuse_blk_rev_full=min_efuse,
            max_efuse_blk_rev_full=max_efuse,
            mmu_page_size=mmu_page_size,
            spi_flash_mode=spi_flash_mode,
            reserv1=reserv1,
            reserv3=reserv3,
            reserv2=reserv2,
        )

    def to_bytes(self) -> bytes:
        """The 256 descriptor bytes."""
        return _APP.pack(
            APP_DESC_MAGIC,
            self.secure_version,
            self.reserv1,
            encode_cstr(self.version, 32, field="version"),
            encode_cstr(self.project_name, 32, field="project_name"),
            encode_cstr(self.time, 16, field="time"),
            encode_cstr(self.date, 16, field="date"),
            encode_cstr(self.idf_ver, 32, field="idf_ver"),
            self.app_elf_sha256,
            self.min_efuse_blk_rev_full,
            self.max_efuse_blk_rev_full,
            self.mmu_page_size,
            self.spi_flash_mode,
            self.reserv3,
            self.reserv2,
        )

    @property
    def mmu_page_bytes(self) -> int | None:
        """The MMU page size in bytes, or ``None`` if the image does not record it."""
        return 1 << self.mmu_page_size if 0 < self.mmu_page_size < 32 else None


@dataclass(frozen=True)
class BootloaderDesc:
    """``esp_bootloader_desc_t``: the second-stage bootloader's version and build."""

    version: int
    idf_ver: str
    date_time: str
    secure_version: int = 0
    """Bootloader anti-rollback version (one byte; ESP-IDF v5.5+ on chips that have it)."""
    reserved: bytes = field(default=bytes(2), repr=False)
    reserved2: bytes = field(default=bytes(16), repr=False)

    def __post_init__(self) -> None:
        check_uint(self.version, 32, field="version")
        check_cstr(self.idf_ver, 32, field="idf_ver")
        check_cstr(self.date_time, 24, field="date_time")
        check_uint(self.secure_version, 8, field="secure_version")
        check_size(self.reserved, 2, field="reserved")
        check_size(self.reserved2, 16, field="reserved2")

    @classmethod
    def parse(cls, data: bytes, *, offset: int = 0) -> Self:
        """Parse exactly 80 bytes; ``offset`` is where they sit in the file (for errors)."""
        require_length(data, BOOTLOADER_DESC_SIZE, offset=offset, field="esp_bootloader_desc_t")
        magic, reserved, secure_version, version, idf_ver, date_time, reserved2 = _BOOT.unpack(data)
        if magic != BOOTLOADER_DESC_MAGIC:
            raise FormatError(
                "not a bootloader descriptor",
                offset=offset,
                field="magic_byte",
                expected=BOOTLOADER_DESC_MAGIC,
                found=magic,
            )
        return cls(
            version=version,
            idf_ver=decode_cstr(idf_ver, offset=offset + 8, field="idf_ver"),
            date_time=decode_cstr(date_time, offset=offset + 40, field="date_time"),
            secure_version=secure_version,
            reserved=reserved,
            reserved2=reserved2,
        )

    def to_bytes(self) -> bytes:
        """The 80 descriptor bytes."""
        return _BOOT.pack(
            BOOTLOADER_DESC_MAGIC,
            self.reserved,
            self.secure_version,
            self.version,
            encode_cstr(self.idf_ver, 32, field="idf_ver"),
            encode_cstr(self.date_time, 24, field="date_time"),
            self.reserved2,
        )


def find_descriptor(image: EspImage) -> AppDesc | BootloaderDesc | None:
    """The descriptor at file offset 0x20 (start of segment 0), if the image has one.

    Decided by the magic, as ESP-IDF does (``esp_ota_get_partition_description``,
    ``esp_ota_get_bootloader_description``). The app magic is a 32-bit word, so a
    malformed or cut-off app descriptor raises :class:`FormatError`; the bootloader magic
    is a single byte, so data that starts with 0x50 but is no valid bootloader descriptor
    is taken for no descriptor at all.
    """
    if not image.segments:
        return None
    data = image.segments[0].data
    if len(data) >= 4 and int.from_bytes(data[:4], "little") == APP_DESC_MAGIC:
        return AppDesc.parse(data[:APP_DESC_SIZE], offset=DESC_OFFSET)
    if len(data) >= BOOTLOADER_DESC_SIZE and data[0] == BOOTLOADER_DESC_MAGIC:
        try:
            return BootloaderDesc.parse(data[:BOOTLOADER_DESC_SIZE], offset=DESC_OFFSET)
        except FormatError:
            return None
    return None


def find_app_desc(image: EspImage) -> AppDesc | None:
    """The app descriptor at 0x20, or ``None`` (e.g. for a bootloader)."""
    desc = find_descriptor(image)
    return desc if isinstance(desc, AppDesc) else None


def find_bootloader_desc(image: EspImage) -> BootloaderDesc | None:
    """The bootloader descriptor at 0x20, or ``None`` (e.g. for an app)."""
    desc = find_descriptor(image)
    return desc if isinstance(desc, BootloaderDesc) else None
