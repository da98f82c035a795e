"""The bootloader's checks: chip id, revisions, flash mapping, verify_image."""

from __future__ import annotations

from dataclasses import replace

import pytest

from espsec.chips import Chip, get_chip
from espsec.errors import VerificationError
from espsec.image import (
    EspImage,
    Segment,
    build_app_image,
    build_bootloader_image,
    check_chip,
    check_flash_mapping,
    image_kind,
    memory_types,
    parse_image,
    verify_image,
)


def test_verify_accepts_built_images(demo_app: bytes, demo_bootloader: bytes, s3: Chip) -> None:
    verify_image(parse_image(demo_app))
    verify_image(parse_image(demo_app), s3, chip_rev_full=2)
    verify_image(parse_image(demo_bootloader), s3, chip_rev_full=2)


def test_image_kind(demo_app: bytes, demo_bootloader: bytes) -> None:
    assert image_kind(parse_image(demo_app)) == "app"
    assert image_kind(parse_image(demo_bootloader)) == "bootloader"


def test_rejects_image_for_another_chip(demo_app: bytes, p4: Chip) -> None:
    with pytest.raises(VerificationError, match="chip_id") as exc:
        check_chip(parse_image(demo_app), p4)
    assert "ESP32-S3" in str(exc.value)
    assert "offset 0xc" in str(exc.value)


def test_rejects_chip_older_than_min_rev(s3: Chip) -> None:
    image = parse_image(build_app_image(s3, min_chip_rev_full=102))
    check_chip(image, s3, chip_rev_full=102)
    with pytest.raises(VerificationError, match="min_chip_rev_full"):
        check_chip(image, s3, chip_rev_full=101)


def test_rejects_chip_newer_than_max_rev_for_app(s3: Chip) -> None:
    image = parse_image(build_app_image(s3))  # max v0.99 as ESP-IDF writes
    check_chip(image, s3, chip_rev_full=99)
    with pytest.raises(VerificationError, match="max_chip_rev_full"):
        check_chip(image, s3, chip_rev_full=100)


def test_max_rev_not_checked_for_bootloader(demo_bootloader: bytes, s3: Chip) -> None:
    image = parse_image(demo_bootloader)
    assert image.header.max_chip_rev_full == 99
    check_chip(image, s3, chip_rev_full=300)


@pytest.mark.parametrize("unset", [0, 0xFFFF])
def test_max_rev_0_or_ffff_means_no_maximum(s3: Chip, unset: int) -> None:
    image = parse_image(build_app_image(s3, max_chip_rev_full=unset))
    check_chip(image, s3, chip_rev_full=9999)


def test_misaligned_flash_segment_rejected(s3: Chip) -> None:
    image = parse_image(build_app_image(s3))
    check_flash_mapping(image, s3)
    # Move IROM one word: its data offset no longer matches its address modulo 64 KiB.
    segs = [
        Segment(s.load_addr + 4, s.data) if "IROM" in memory_types(s3, s.load_addr) else s
        for s in image.segments
    ]
    moved = EspImage.create(image.header, segs)
    with pytest.raises(VerificationError, match="flash-mapped") as exc:
        check_flash_mapping(moved, s3)
    assert "segment 4 load_addr" in str(exc.value)
    with pytest.raises(VerificationError):
        verify_image(moved)


def test_verify_image_checks_checksum_first(demo_app: bytes) -> None:
    image = parse_image(demo_app)
    with pytest.raises(VerificationError, match="checksum"):
        verify_image(replace(image, checksum=image.checksum ^ 1))


def test_verify_image_skips_chip_checks_for_unknown_chip(demo_app: bytes) -> None:
    image = parse_image(demo_app)
    alien = EspImage.create(replace(image.header, chip_id=0x7777), image.segments)
    verify_image(alien)


def test_memory_types_follow_the_chip_map() -> None:
    s3 = get_chip("esp32s3")
    assert memory_types(s3, 0x3C010020) == ("DROM",)
    assert memory_types(s3, 0x42000020) == ("IROM",)
    assert memory_types(s3, 0x3FC88000) == ("BYTE_ACCESSIBLE", "MEM_INTERNAL", "DRAM")
    assert memory_types(s3, 0) == ("PADDING",)
    assert memory_types(s3, 0x10000000) == ()


def test_bootloader_segments_are_not_flash_mapped(p4: Chip) -> None:
    image = parse_image(build_bootloader_image(p4))
    check_flash_mapping(image, p4)
    assert all("DRAM" in memory_types(p4, s.load_addr) for s in image.segments)
