"""``esp_image_header_t``: the 24-byte header of every app and bootloader image.

ESP-IDF ``components/bootloader_support/include/esp_app_format.h``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Self

from espsec.errors import FormatError
from espsec.image._fields import check_size, check_uint, require_length

IMAGE_MAGIC = 0xE9
"""``ESP_IMAGE_HEADER_MAGIC``."""
HEADER_SIZE = 24
MAX_SEGMENTS = 16
"""``ESP_IMAGE_MAX_SEGMENTS``."""
WP_PIN_DISABLED = 0xEE
"""``wp_pin`` value meaning no write-protect pin is configured."""
REV_UNSET = 0xFFFF
"""A ``max_chip_rev_full`` of 0xFFFF (or 0) means "no maximum"."""

_HEADER = struct.Struct("<BBBBIB3sHBHH4sB")


def revision_text(rev_full: int) -> str:
    """``major*100+minor`` as esptool and ESP-IDF print it: 99 → ``v0.99``."""
    return f"v{rev_full // 100}.{rev_full % 100}"


class SpiMode(IntEnum):
    """``esp_image_spi_mode_t``: the flash read mode the ROM sets up."""

    QIO = 0
    QOUT = 1
    DIO = 2
    DOUT = 3
    FAST_READ = 4
    SLOW_READ = 5


@dataclass(frozen=True)
class ImageHeader:
    """The image header with its extended part (everything in the first 24 bytes).

    ``spi_speed`` and ``spi_size`` are the raw 4-bit codes of byte 3; ``spi_pin_drv``
    the three raw bytes of pin drive strengths (two 4-bit values per byte).
    """

    segment_count: int
    spi_mode: int
    spi_speed: int
    spi_size: int
    entry_addr: int
    wp_pin: int = WP_PIN_DISABLED
    spi_pin_drv: bytes = bytes(3)
    chip_id: int = 0
    min_chip_rev: int = 0
    """Legacy minimum revision (major only)."""
    min_chip_rev_full: int = 0
    """Minimum chip revision as major * 100 + minor."""
    max_chip_rev_full: int = REV_UNSET
    """Maximum chip revision as major * 100 + minor (apps only; 0xFFFF: none)."""
    reserved: bytes = bytes(4)
    hash_appended: bool = True
    """Whether a SHA-256 of the image follows the checksum byte."""

    def __post_init__(self) -> None:
        check_uint(self.segment_count, 8, field="segment_count")
        check_uint(self.spi_mode, 8, field="spi_mode")
        check_uint(self.spi_speed, 4, field="spi_speed")
        check_uint(self.spi_size, 4, field="spi_size")
        check_uint(self.entry_addr, 32, field="entry_addr")
        check_uint(self.wp_pin, 8, field="wp_pin")
        check_size(self.spi_pin_drv, 3, field="spi_pin_drv")
        check_uint(self.chip_id, 16, field="chip_id")
        check_uint(self.min_chip_rev, 8, field="min_chip_rev")
        check_uint(self.min_chip_rev_full, 16, field="min_chip_rev_full")
        check_uint(self.max_chip_rev_full, 16, field="max_chip_rev_full")
        check_size(self.reserved, 4, field="reserved")

    @classmethod
    def parse(cls, data: bytes, *, offset: int = 0) -> Self:
        """Parse exactly 24 bytes; ``offset`` is where they sit in the file (for errors)."""
        require_length(data, HEADER_SIZE, offset=offset, field="image header")
        (
            magic,
            segment_count,
            spi_mode,
            speed_size,
            entry_addr,
            wp_pin,
            spi_pin_drv,
            chip_id,
            min_chip_rev,
            min_chip_rev_full,
            max_chip_rev_full,
            reserved,
            hash_appended,
        ) = _HEADER.unpack(data)
        if magic != IMAGE_MAGIC:
            raise FormatError(
                "not an ESP image",
                offset=offset,
                field="magic",
                expected=IMAGE_MAGIC,
                found=magic,
            )
        if hash_appended not in (0, 1):
            raise FormatError(
                "invalid hash_appended flag",
                offset=offset + 23,
                field="hash_appended",
                expected="0 or 1",
                found=hash_appended,
            )
        return cls(
            segment_count=segment_count,
            spi_mode=spi_mode,
            spi_speed=speed_size & 0x0F,
            spi_size=speed_size >> 4,
            entry_addr=entry_addr,
            wp_pin=wp_pin,
            spi_pin_drv=spi_pin_drv,
            chip_id=chip_id,
            min_chip_rev=min_chip_rev,
            min_chip_rev_full=min_chip_rev_full,
            max_chip_rev_full=max_chip_rev_full,
            reserved=reserved,
            hash_appended=bool(hash_appended),
        )

    def to_bytes(self) -> bytes:
        """The 24 header bytes."""
        return _HEADER.pack(
            IMAGE_MAGIC,
            self.segment_count,
            self.spi_mode,
            self.spi_speed | (self.spi_size << 4),
            self.entry_addr,
            self.wp_pin,
            self.spi_pin_drv,
            self.chip_id,
            self.min_chip_rev,
            self.min_chip_rev_full,
            self.max_chip_rev_full,
            self.reserved,
            int(self.hash_appended),
        )

    @property
    def spi_mode_name(self) -> str | None:
        """``QIO``, ``DIO``, … or ``None`` for a code ESP-IDF does not define."""
        try:
            return SpiMode(self.spi_mode).name
        except ValueError:
            return None

    @property
    def flash_size(self) -> int | None:
        """Flash size in bytes the header declares (codes 0 to 7: 1 MB to 128 MB)."""
        return (1 << 20) << self.spi_size if self.spi_size <= 7 else None

    @property
    def flash_size_name(self) -> str | None:
        """The flash size as esptool writes it (``"4MB"``), or ``None`` if invalid."""
        return f"{1 << self.spi_size}MB" if self.spi_size <= 7 else None

    @property
    def pin_drive_strengths(self) -> dict[str, int]:
        """SPI pin drive settings by pin (clk, q, d, cs0, hd, wp), low nibble first."""
        names = ("clk_drv", "q_drv", "d_drv", "cs0_drv", "hd_drv", "wp_drv")
        nibbles = [n for b in self.spi_pin_drv for n in (b & 0x0F, b >> 4)]
        return dict(zip(names, nibbles, strict=True))
