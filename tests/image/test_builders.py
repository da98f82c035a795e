"""Synthetic images: realistic layout, requested descriptor fields, determinism."""

from __future__ import annotations

import pytest

from espsec.chips import CHIPS, Chip
from espsec.errors import UsageError
from espsec.image import (
    AppDesc,
    BootloaderDesc,
    build_app_image,
    build_bootloader_image,
    check_flash_mapping,
    find_descriptor,
    memory_types,
    parse_image,
    verify_image,
)


def test_app_image_is_deterministic(s3: Chip) -> None:
    assert build_app_image(s3) == build_app_image(s3)
    assert build_app_image(s3, version="1.0.1") != build_app_image(s3)


def test_app_desc_fields_from_arguments(s3: Chip) -> None:
    image = parse_image(
        build_app_image(s3, version="9.8.7", project_name="lock", secure_version=12, idf_ver="v5.4")
    )
    desc = find_descriptor(image)
    assert isinstance(desc, AppDesc)
    assert (desc.version, desc.project_name, desc.secure_version, desc.idf_ver) == (
        "9.8.7",
        "lock",
        12,
        "v5.4",
    )
    assert desc.mmu_page_bytes == 0x10000
    assert desc.app_elf_sha256 != bytes(32)


@pytest.mark.parametrize("name, max_rev", [("esp32s3", 99), ("esp32p4", 199)])
def test_max_chip_rev_defaults_to_what_esp_idf_writes(name: str, max_rev: int) -> None:
    header = parse_image(build_app_image(CHIPS[name])).header
    assert (header.min_chip_rev_full, header.max_chip_rev_full) == (0, max_rev)


def test_later_major_min_rev_raises_default_max(p4: Chip) -> None:
    header = parse_image(build_app_image(p4, min_chip_rev_full=300)).header
    assert (header.min_chip_rev, header.min_chip_rev_full, header.max_chip_rev_full) == (
        3,
        300,
        399,
    )


def test_explicit_max_chip_rev_is_kept(s3: Chip) -> None:
    assert parse_image(build_app_image(s3, max_chip_rev_full=0xFFFF)).header.max_chip_rev_full == (
        0xFFFF
    )


@pytest.mark.parametrize("name", sorted(CHIPS))
def test_app_segments_land_in_the_expected_memory(name: str) -> None:
    chip = CHIPS[name]
    image = parse_image(build_app_image(chip))
    kinds = [memory_types(chip, s.load_addr) for s in image.segments]
    assert "DROM" in kinds[0]  # descriptor segment first, at file offset 0x20
    assert any("IROM" in k for k in kinds[1:])
    assert any("DRAM" in k for k in kinds)
    assert any("IRAM" in k for k in kinds)
    assert all(k for k in kinds), "every segment is in a known region"
    assert "IRAM" in memory_types(chip, image.header.entry_addr)
    verify_image(image, chip)


@pytest.mark.parametrize("code_size", [0, 1, 4096, 70_000, 300_000])
def test_code_size_sets_irom_length_and_layout_stays_mappable(s3: Chip, code_size: int) -> None:
    image = parse_image(build_app_image(s3, code_size=code_size))
    irom = [s for s in image.segments if "IROM" in memory_types(s3, s.load_addr)]
    assert len(irom) == 1
    assert len(irom[0].data) == max(4, (code_size + 3) // 4 * 4)
    check_flash_mapping(image, s3)
    verify_image(image, s3)


def test_drom_pages_follow_irom_pages(p4: Chip) -> None:
    # ESP32-P4 maps code and data through one address range: they must not overlap.
    image = parse_image(build_app_image(p4, code_size=100_000))
    drom, irom = image.segments[0], next(s for s in image.segments if s.load_addr == 0x40000020)
    assert drom.load_addr >= irom.load_addr + len(irom.data)


@pytest.mark.parametrize("name", sorted(CHIPS))
def test_bootloader_desc_in_dram_segment(name: str) -> None:
    chip = CHIPS[name]
    image = parse_image(build_bootloader_image(chip, version=3, secure_version=1))
    desc = find_descriptor(image)
    assert isinstance(desc, BootloaderDesc)
    assert (desc.version, desc.secure_version, desc.idf_ver) == (3, 1, "v5.5")
    assert "DRAM" in memory_types(chip, image.segments[0].load_addr)
    assert image.header.hash_appended
    verify_image(image, chip)


def test_hash_can_be_left_out(s3: Chip) -> None:
    assert parse_image(build_app_image(s3, hash_appended=False)).digest is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"version": "v" * 33},
        {"project_name": "x" * 40},
        {"idf_ver": "v" * 33},
        {"secure_version": -1},
        {"secure_version": 1 << 32},
        {"code_size": -4},
        {"code_size": 16 * 1024 * 1024},
        {"min_chip_rev_full": 0x10000},
        {"min_chip_rev_full": 200, "max_chip_rev_full": 100},
    ],
)
def test_app_builder_rejects_bad_arguments(s3: Chip, kwargs: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        build_app_image(s3, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs", [{"secure_version": 256}, {"version": -1}, {"idf_ver": "v" * 33}]
)
def test_bootloader_builder_rejects_bad_arguments(s3: Chip, kwargs: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        build_bootloader_image(s3, **kwargs)  # type: ignore[arg-type]
