"""Synthetic but realistic app and bootloader images, for tests and demos.

The images look like what ``idf.py build`` writes for the chip: an app has its
descriptor at 0x20 in a DROM segment, IROM code on a fresh MMU page, DRAM and IRAM
segments (partly used to pad the flash segments into place, as esptool ``elf2image``
does); a bootloader has its descriptor at 0x20 in a DRAM segment and two IRAM segments.
Contents are deterministic filler, so the same arguments always give the same bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from espsec.chips import Chip, LoadAddresses
from espsec.errors import UnsupportedError, UsageError
from espsec.image.app_image import MAX_SEGMENT_LEN, SEGMENT_HEADER_SIZE, EspImage, Segment
from espsec.image.descriptors import DESC_OFFSET, AppDesc, BootloaderDesc
from espsec.image.header import HEADER_SIZE, WP_PIN_DISABLED, ImageHeader, SpiMode

BUILD_TIME = "00:00:00"
BUILD_DATE = "Jan  1 2025"
"""``__TIME__`` / ``__DATE__`` written into synthetic descriptors (fixed: reproducible)."""
FLASH_SIZE_2MB = 1
"""``spi_size`` code of the ESP-IDF default flash size (2 MB)."""
MAX_EFUSE_BLK_REV_FULL = 99
"""``CONFIG_ESP_EFUSE_BLOCK_REV_MAX_FULL`` default (v0.99)."""


def _filler(seed: str, length: int) -> bytes:
    return hashlib.shake_256(seed.encode()).digest(length) if length else b""


def _align4(n: int) -> int:
    return (n + 3) & ~3


def _addresses(chip: Chip) -> LoadAddresses:
    if chip.load_addresses is None:
        raise UnsupportedError(f"no load addresses recorded for {chip.display_name}")
    return chip.load_addresses


def _check(value: int, bits: int, name: str) -> None:
    if not 0 <= value < (1 << bits):
        raise UsageError(f"{name} must be between 0 and {(1 << bits) - 1}, got {value}")


def _layout(flash: Iterable[Segment], ram: Iterable[Segment], page: int) -> list[Segment]:
    """Order segments so each flash segment's data offset ≡ its address (mod ``page``).

    Gaps before a flash segment are filled with pieces of the RAM segments (lowest
    address first), then with a zero-filled padding segment at address 0; leftover RAM
    goes last. This is the layout esptool ``elf2image`` produces.
    """
    out: list[Segment] = []
    pending = sorted(ram, key=lambda s: s.load_addr)
    pos = HEADER_SIZE
    for seg in flash:
        gap = (seg.load_addr - SEGMENT_HEADER_SIZE - pos) % page
        while gap:
            if gap < SEGMENT_HEADER_SIZE:
                gap += page
                continue
            room = gap - SEGMENT_HEADER_SIZE
            take = 0
            if pending:
                avail = len(pending[0].data)
                if avail >= room:
                    take = room
                elif room - avail >= SEGMENT_HEADER_SIZE:
                    take = avail
                elif avail > SEGMENT_HEADER_SIZE:
                    take = avail - SEGMENT_HEADER_SIZE
            if take:
                head = pending.pop(0)
                out.append(Segment(head.load_addr, head.data[:take]))
                if len(head.data) > take:
                    pending.insert(0, Segment(head.load_addr + take, head.data[take:]))
            else:
                out.append(Segment(0, bytes(room)))
                take = room
            pos += SEGMENT_HEADER_SIZE + take
            gap -= SEGMENT_HEADER_SIZE + take
        out.append(seg)
        pos += SEGMENT_HEADER_SIZE + len(seg.data)
    return out + pending


def build_app_image(
    chip: Chip,
    *,
    version: str = "1.0.0",
    project_name: str = "app",
    secure_version: int = 0,
    idf_ver: str = "v5.5",
    code_size: int = 4096,
    hash_appended: bool = True,
    min_chip_rev_full: int = 0,
    max_chip_rev_full: int | None = None,
) -> bytes:
    """A valid app image for ``chip`` with an ``esp_app_desc_t`` at 0x20.

    ``code_size`` is the length of the IROM (flash code) segment, rounded up to a
    multiple of 4; DROM, DRAM and IRAM get sizes in proportion. ``max_chip_rev_full``
    defaults to what ESP-IDF writes for the chip (``Chip.rev_max_full``, e.g. v0.99 on
    ESP32-S3), or to vN.99 when ``min_chip_rev_full`` asks for a later major revision N.
    The checksum and (if ``hash_appended``) SHA-256 are valid.
    """
    addrs = _addresses(chip)
    page = chip.mmu_page_size
    _check(secure_version, 32, "secure_version")
    _check(min_chip_rev_full, 16, "min_chip_rev_full")
    if max_chip_rev_full is None:
        # ESP-IDF supports up to vN.99 of the chosen major revision.
        max_rev = min(max(chip.rev_max_full, min_chip_rev_full // 100 * 100 + 99), 0xFFFF)
    else:
        _check(max_chip_rev_full, 16, "max_chip_rev_full")
        max_rev = max_chip_rev_full
        if max_rev not in (0, 0xFFFF) and max_rev < min_chip_rev_full:
            raise UsageError(
                f"max_chip_rev_full {max_rev} is below min_chip_rev_full {min_chip_rev_full}"
            )
    if not 0 <= code_size < MAX_SEGMENT_LEN - 4:
        raise UsageError(f"code_size must be between 0 and 16 MiB, got {code_size}")

    seed = f"{chip.name}/{project_name}/{version}/{code_size}"
    text = _filler(seed + "/irom", _align4(max(code_size, 4)))
    rodata = _filler(seed + "/drom", _align4(code_size // 4))
    data = _filler(seed + "/dram", _align4(max(64, code_size // 8)))
    iram = _filler(seed + "/iram", _align4(max(256, code_size // 4)))
    try:
        desc = AppDesc(
            secure_version=secure_version,
            version=version,
            project_name=project_name,
            time=BUILD_TIME,
            date=BUILD_DATE,
            idf_ver=idf_ver,
            app_elf_sha256=hashlib.sha256(f"elf:{seed}".encode() + text).digest(),
            min_efuse_blk_rev_full=0,
            max_efuse_blk_rev_full=MAX_EFUSE_BLK_REV_FULL,
            mmu_page_size=page.bit_length() - 1,
            spi_flash_mode=int(SpiMode.DIO),
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None

    # Code (IROM) starts on the first page; read-only data (DROM) on the pages after it,
    # since the buses share one MMU table. Both sit 0x20 into their page, where the
    # image and segment headers put them in flash.
    irom_addr = addrs.irom + DESC_OFFSET
    irom_pages = -(-(DESC_OFFSET + len(text)) // page)
    drom_addr = addrs.drom + irom_pages * page + DESC_OFFSET
    flash = [Segment(drom_addr, desc.to_bytes() + rodata), Segment(irom_addr, text)]
    ram = [Segment(addrs.dram, data), Segment(addrs.iram, iram)]
    header = ImageHeader(
        segment_count=0,
        spi_mode=int(SpiMode.DIO),
        spi_speed=chip.flash_freqs[0][1],
        spi_size=FLASH_SIZE_2MB,
        entry_addr=addrs.iram + (len(iram) // 2 & ~3),
        wp_pin=WP_PIN_DISABLED,
        chip_id=chip.image_chip_id,
        min_chip_rev=min_chip_rev_full // 100,
        min_chip_rev_full=min_chip_rev_full,
        max_chip_rev_full=max_rev,
        hash_appended=hash_appended,
    )
    return EspImage.create(header, _layout(flash, ram, page)).to_bytes()


def build_bootloader_image(
    chip: Chip,
    *,
    version: int = 1,
    secure_version: int = 0,
    idf_ver: str = "v5.5",
    min_chip_rev_full: int = 0,
) -> bytes:
    """A valid second-stage bootloader image with an ``esp_bootloader_desc_t`` at 0x20.

    ``version`` is ``CONFIG_BOOTLOADER_PROJECT_VER``; ``secure_version`` the one-byte
    bootloader anti-rollback version; ``min_chip_rev_full`` the build's
    ``CONFIG_ESP_REV_MIN_FULL`` (e.g. 301 for an ESP-IDF v6.0 ESP32-P4 build).
    """
    addrs = _addresses(chip)
    _check(version, 32, "version")
    _check(secure_version, 8, "secure_version")
    _check(min_chip_rev_full, 16, "min_chip_rev_full")
    try:
        desc = BootloaderDesc(
            version=version,
            idf_ver=idf_ver,
            date_time=f"{BUILD_DATE} {BUILD_TIME}",
            secure_version=secure_version,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    seed = f"{chip.name}/bootloader/{version}/{idf_ver}"
    segments = [
        Segment(addrs.bootloader_dram, desc.to_bytes() + _filler(seed + "/dram", 0x400 - 80)),
        Segment(addrs.bootloader_iram, _filler(seed + "/iram_loader", 0x1000)),
        Segment(addrs.bootloader_iram + 0x3000, _filler(seed + "/iram", 0x2000)),
    ]
    header = ImageHeader(
        segment_count=0,
        spi_mode=int(SpiMode.DIO),
        spi_speed=chip.flash_freqs[0][1],
        spi_size=FLASH_SIZE_2MB,
        entry_addr=addrs.bootloader_iram + 0x3000 + 0x100,
        chip_id=chip.image_chip_id,
        min_chip_rev=min_chip_rev_full // 100,
        min_chip_rev_full=min_chip_rev_full,
        max_chip_rev_full=max(chip.rev_max_full, min_chip_rev_full // 100 * 100 + 99),
        hash_appended=True,
    )
    return EspImage.create(header, segments).to_bytes()
