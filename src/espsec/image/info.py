"""What ``espsec image info`` (and ``esptool image-info``) reports about an image."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from espsec.chips import Chip, chip_by_image_id
from espsec.errors import FormatError
from espsec.image.app_image import EspImage, parse_image
from espsec.image.descriptors import AppDesc, BootloaderDesc, find_descriptor
from espsec.image.header import WP_PIN_DISABLED, revision_text
from espsec.image.validate import memory_types

IMAGE_VERSION = 1
"""The container version esptool reports for every ESP32-family image."""


@dataclass(frozen=True)
class SegmentInfo:
    """One segment as reported: where it loads, how long, and in which memory."""

    index: int
    load_addr: int
    length: int
    file_offset: int
    """File offset of the segment's 8-byte header (esptool's "File offs")."""
    memory_types: tuple[str, ...]


@dataclass(frozen=True)
class ImageInfo:
    """Everything ``image info`` reports, computed from the image bytes alone."""

    image: EspImage
    file_size: int
    chip: Chip | None
    segments: tuple[SegmentInfo, ...]
    calculated_checksum: int
    calculated_digest: bytes
    descriptor: AppDesc | BootloaderDesc | None
    descriptor_error: str | None
    """Why the descriptor at 0x20 could not be read, if its magic is there but it is bad."""
    signature_sector_offset: int | None
    signature_sector_length: int

    @property
    def checksum_valid(self) -> bool:
        """Whether the stored checksum byte matches the segments."""
        return self.image.checksum == self.calculated_checksum

    @property
    def digest_valid(self) -> bool | None:
        """Whether the appended SHA-256 matches (``None`` if none is appended)."""
        if self.image.digest is None:
            return None
        return hmac.compare_digest(self.image.digest, self.calculated_digest)

    @property
    def flash_freq(self) -> str | None:
        """The SPI flash frequency name for the chip (``"80m"``), if known."""
        if self.chip is None:
            return None
        code = self.image.header.spi_speed
        return next((name for name, c in self.chip.flash_freqs if c == code), None)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready report (addresses and sizes as integers, digests as hex)."""
        img = self.image
        hdr = img.header
        desc = self.descriptor
        return {
            "file_size": self.file_size,
            "image_length": img.image_length,
            "trailer_length": len(img.trailer),
            "image_version": IMAGE_VERSION,
            "chip": self.chip.name if self.chip else None,
            "chip_name": self.chip.display_name if self.chip else None,
            "chip_id": hdr.chip_id,
            "entry_addr": hdr.entry_addr,
            "flash_mode": hdr.spi_mode_name,
            "flash_mode_code": hdr.spi_mode,
            "flash_size": hdr.flash_size_name,
            "flash_size_code": hdr.spi_size,
            "flash_freq": self.flash_freq,
            "flash_freq_code": hdr.spi_speed,
            "wp_pin": hdr.wp_pin,
            "wp_pin_disabled": hdr.wp_pin == WP_PIN_DISABLED,
            "spi_pin_drv": hdr.pin_drive_strengths,
            "min_chip_rev": hdr.min_chip_rev,
            "min_chip_rev_full": hdr.min_chip_rev_full,
            "max_chip_rev_full": hdr.max_chip_rev_full,
            "min_chip_revision": revision_text(hdr.min_chip_rev_full),
            "max_chip_revision": revision_text(hdr.max_chip_rev_full),
            "hash_appended": hdr.hash_appended,
            "segments": [
                {
                    "index": s.index,
                    "load_addr": s.load_addr,
                    "length": s.length,
                    "file_offset": s.file_offset,
                    "memory_types": list(s.memory_types),
                }
                for s in self.segments
            ],
            "checksum": {
                "stored": img.checksum,
                "calculated": self.calculated_checksum,
                "valid": self.checksum_valid,
            },
            "validation_hash": None
            if img.digest is None
            else {
                "stored": img.digest.hex(),
                "calculated": self.calculated_digest.hex(),
                "valid": self.digest_valid,
            },
            "app_desc": _app_desc_dict(desc) if isinstance(desc, AppDesc) else None,
            "bootloader_desc": (
                _bootloader_desc_dict(desc) if isinstance(desc, BootloaderDesc) else None
            ),
            "descriptor_error": self.descriptor_error,
            "signature_sector": {
                "present": self.signature_sector_offset is not None,
                "offset": self.signature_sector_offset,
                "length": self.signature_sector_length,
            },
        }


def _app_desc_dict(desc: AppDesc) -> dict[str, Any]:
    return {
        "project_name": desc.project_name,
        "version": desc.version,
        "time": desc.time,
        "date": desc.date,
        "idf_ver": desc.idf_ver,
        "app_elf_sha256": desc.app_elf_sha256.hex(),
        "secure_version": desc.secure_version,
        "min_efuse_blk_rev_full": desc.min_efuse_blk_rev_full,
        "max_efuse_blk_rev_full": desc.max_efuse_blk_rev_full,
        "mmu_page_size": desc.mmu_page_bytes,
        "spi_flash_mode": desc.spi_flash_mode,
    }


def _bootloader_desc_dict(desc: BootloaderDesc) -> dict[str, Any]:
    return {
        "version": desc.version,
        "idf_ver": desc.idf_ver,
        "date_time": desc.date_time,
        "secure_version": desc.secure_version,
    }


def image_info(data: bytes) -> ImageInfo:
    """Parse ``data`` and compute the report; raises :class:`FormatError` if unparsable.

    An invalid checksum, SHA-256 or app descriptor is reported, not raised.
    """
    image = parse_image(data)
    chip = chip_by_image_id(image.header.chip_id)
    segments = tuple(
        SegmentInfo(
            index=i,
            load_addr=seg.load_addr,
            length=len(seg.data),
            file_offset=offset,
            memory_types=memory_types(chip, seg.load_addr) if chip else (),
        )
        for i, (seg, offset) in enumerate(zip(image.segments, image.segment_offsets, strict=True))
    )
    sector = image.signature_sector()
    descriptor: AppDesc | BootloaderDesc | None = None
    descriptor_error = None
    try:
        descriptor = find_descriptor(image)
    except FormatError as exc:
        descriptor_error = str(exc)
    return ImageInfo(
        image=image,
        file_size=len(data),
        chip=chip,
        segments=segments,
        calculated_checksum=image.calculated_checksum(),
        calculated_digest=image.calculated_digest(),
        descriptor=descriptor,
        descriptor_error=descriptor_error,
        signature_sector_offset=image.signature_sector_offset if sector is not None else None,
        signature_sector_length=len(sector) if sector is not None else 0,
    )
