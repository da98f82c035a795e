"""The NOR flash model: erase by sector to 0xFF, program ANDs bits, every write counted."""

from __future__ import annotations

import pytest

from espsec.errors import UsageError
from espsec.flash import FlashAccessError, FlashRegion, NorFlash


def test_program_ands_bits_and_cannot_set_a_cleared_bit_like_nor_flash():
    flash = NorFlash(0x2000)
    flash.write(0x100, b"\x0f\xf0\xff\x00")
    flash.write(0x100, b"\xf0\xff\x0f\xff")  # asks for 0 -> 1 in every byte: no error
    assert flash.read(0x100, 4) == b"\x00\xf0\x0f\x00"  # what the chip stores: the AND


def test_erase_sets_a_whole_sector_to_ff_and_nothing_else():
    flash = NorFlash(0x4000)
    flash.write(0x1000, b"\x00" * 0x2000)
    flash.erase_sector(0x1000)
    assert flash.read(0x1000, 0x1000) == b"\xff" * 0x1000
    assert flash.read(0x2000, 0x1000) == b"\x00" * 0x1000
    flash.write(0x1000, b"\x5a" * 4)  # erased bits can be programmed again
    assert flash.read(0x1000, 4) == b"\x5a" * 4


def test_misaligned_or_out_of_range_access_is_refused_without_a_write():
    flash = NorFlash(0x2000)
    with pytest.raises(FlashAccessError, match="4 KiB sector boundary"):
        flash.erase_sector(0x800)
    with pytest.raises(FlashAccessError, match="32-bit words"):
        flash.write(2, b"\0\0\0\0")
    with pytest.raises(FlashAccessError, match="32-bit words"):
        flash.write(0, b"\0\0")
    with pytest.raises(FlashAccessError, match="outside"):
        flash.read(0x1FFC, 8)
    with pytest.raises(FlashAccessError, match="outside"):
        flash.read(-4, 4)
    with pytest.raises(FlashAccessError, match="outside"):
        flash.erase_sector(0x2000)
    with pytest.raises(FlashAccessError, match="whole 4 KiB sectors"):
        flash.erase_range(0, 0x800)
    with pytest.raises(FlashAccessError, match="outside"):
        flash.erase_range(0x1000, 0x2000)  # refused as a whole, not half done
    assert flash.snapshot() == b"\xff" * 0x2000 and flash.counter.total == 0


@pytest.mark.parametrize("size", [0, -0x1000, 0x1800, b"\xff" * 100])
def test_flash_size_must_be_whole_sectors(size: int | bytes):
    with pytest.raises(UsageError, match="multiple of 4 KiB"):
        NorFlash(size)


def test_initial_contents_are_copied():
    image = bytearray(b"\xff" * 0x1000)
    flash = NorFlash(image)
    flash.write(0, b"\0" * 4)
    assert image[:4] == b"\xff" * 4


def test_each_erase_and_program_is_one_counted_write():
    flash = NorFlash(0x4000)
    flash.erase_range(0, 0x3000)
    flash.write(0, b"\0" * 8)
    flash.read(0, 8)
    assert flash.counter.flash_writes == 4 and flash.counter.efuse_writes == 0


def test_nor_flash_is_the_flash_region_nvs_runs_on():
    assert isinstance(NorFlash(0x1000), FlashRegion)


def test_dirty_ranges_are_the_sectors_erased_or_programmed_since_mark_clean():
    flash = NorFlash(0x8000)
    assert flash.dirty_ranges() == []
    flash.write(0x1FFC, b"\0" * 8)  # straddles sectors 1 and 2
    flash.erase_sector(0x3000)
    flash.write(0x6000, b"\0" * 4)
    assert flash.dirty_ranges() == [(0x1000, 0x4000), (0x6000, 0x7000)]
    flash.mark_clean()
    assert flash.dirty_ranges() == []
    flash.read(0x0, 0x8000)  # reads change nothing
    assert flash.dirty_ranges() == []
