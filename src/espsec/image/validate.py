"""Checks the second-stage bootloader makes on an image, as functions.

``esp_image_format.c`` (checksum, SHA-256, segment placement) and
``bootloader_common.c: bootloader_common_check_chip_validity`` (chip id, revisions).
Each raises :class:`VerificationError` naming the offset and field that failed.
"""

from __future__ import annotations

from typing import Literal

from espsec.chips import Chip, chip_by_image_id
from espsec.errors import VerificationError
from espsec.image.app_image import SEGMENT_HEADER_SIZE, EspImage
from espsec.image.descriptors import BootloaderDesc, find_descriptor
from espsec.image.header import REV_UNSET, revision_text

ImageKind = Literal["app", "bootloader"]

#: Memory types (``Chip.memory_map`` names) reached through the flash MMU.
FLASH_MAPPED = frozenset({"DROM", "IROM"})


def _failed(
    what: str, *, offset: int, field: str, expected: object, found: object
) -> VerificationError:
    return VerificationError(
        f"offset 0x{offset:x} {field}: {what} (expected {expected}, found {found})"
    )


def check_checksum(image: EspImage) -> None:
    """The stored checksum byte equals 0xEF XOR all segment data."""
    calculated = image.calculated_checksum()
    if image.checksum != calculated:
        raise _failed(
            "checksum mismatch",
            offset=image.checksum_offset,
            field="checksum",
            expected=f"0x{calculated:02x}",
            found=f"0x{image.checksum:02x}",
        )


def check_digest(image: EspImage) -> None:
    """The appended SHA-256 (if ``hash_appended``) matches the image bytes."""
    if image.digest_valid is False:
        raise VerificationError(
            f"offset 0x{image.checksum_offset + 1:x} hash: appended SHA-256 does not match "
            "the image"
        )


def image_kind(image: EspImage) -> ImageKind:
    """``bootloader`` if the image carries a bootloader descriptor at 0x20, else ``app``."""
    return "bootloader" if isinstance(find_descriptor(image), BootloaderDesc) else "app"


def check_chip(
    image: EspImage,
    chip: Chip,
    *,
    chip_rev_full: int | None = None,
    kind: ImageKind | None = None,
) -> None:
    """The image is built for ``chip`` and, given its revision, runs on it.

    ``chip_rev_full`` is major * 100 + minor (eFuse ``WAFER_VERSION_*``). The maximum
    revision binds apps only, and 0 or 0xFFFF means no maximum, as in ESP-IDF. ``kind``
    defaults to what :func:`image_kind` detects.
    """
    header = image.header
    if header.chip_id != chip.image_chip_id:
        other = chip_by_image_id(header.chip_id)
        raise _failed(
            f"image is not for {chip.display_name}",
            offset=12,
            field="chip_id",
            expected=chip.image_chip_id,
            found=f"{header.chip_id} ({other.display_name if other else 'unknown chip'})",
        )
    if chip_rev_full is None:
        return
    if chip_rev_full < header.min_chip_rev_full:
        raise _failed(
            f"image needs a newer chip than {revision_text(chip_rev_full)}",
            offset=15,
            field="min_chip_rev_full",
            expected=f"at most {revision_text(chip_rev_full)}",
            found=revision_text(header.min_chip_rev_full),
        )
    if (kind or image_kind(image)) != "app":
        return
    max_rev = header.max_chip_rev_full
    if max_rev not in (0, REV_UNSET) and chip_rev_full > max_rev:
        raise _failed(
            f"image does not support chip revision {revision_text(chip_rev_full)}",
            offset=17,
            field="max_chip_rev_full",
            expected=f"at least {revision_text(chip_rev_full)}",
            found=revision_text(max_rev),
        )


def check_flash_mapping(image: EspImage, chip: Chip) -> None:
    """Each flash-mapped segment sits at a file offset congruent to its address.

    The bootloader maps flash-resident segments page by page, so ``load_addr`` and the
    data's offset must agree modulo the MMU page size (apps start on a page boundary).
    """
    page = chip.mmu_page_size
    for index, (seg, offset) in enumerate(zip(image.segments, image.segment_offsets, strict=True)):
        types = memory_types(chip, seg.load_addr)
        data_offset = offset + SEGMENT_HEADER_SIZE
        if FLASH_MAPPED & set(types) and (seg.load_addr - data_offset) % page:
            raise _failed(
                "flash-mapped segment is not aligned to its load address",
                offset=offset,
                field=f"segment {index} load_addr",
                expected=f"data offset = 0x{seg.load_addr % page:x} modulo 0x{page:x}",
                found=f"0x{data_offset % page:x}",
            )


def memory_types(chip: Chip, addr: int) -> tuple[str, ...]:
    """Names of the chip's memory regions containing ``addr`` (esptool's "Memory types")."""
    return tuple(r.name for r in chip.memory_map if r.start <= addr < r.end)


def verify_image(
    image: EspImage,
    chip: Chip | None = None,
    *,
    chip_rev_full: int | None = None,
) -> None:
    """Run every check: checksum, SHA-256, chip id and revisions, flash mapping.

    Without ``chip`` the chip is taken from the header; for a chip id espsec does not
    know, only the checksum and SHA-256 are checked.
    """
    check_checksum(image)
    check_digest(image)
    target = chip if chip is not None else chip_by_image_id(image.header.chip_id)
    if target is not None:
        check_chip(image, target, chip_rev_full=chip_rev_full)
        check_flash_mapping(image, target)
