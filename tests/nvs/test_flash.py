"""The RAM flash: NOR rules enforced, power cuts on demand."""

from __future__ import annotations

import pytest

from espsec.nvs import FlashRegion, FlashWriteError, PowerLoss, RamFlash


def test_ram_flash_is_a_flash_region():
    assert isinstance(RamFlash(0x1000), FlashRegion)


def test_writes_only_clear_bits():
    flash = RamFlash(0x2000)
    flash.write(0, b"\xf0\xff\xff\x0f")
    flash.write(0, b"\x30\xff\xff\x0f")
    with pytest.raises(FlashWriteError, match="only clears bits"):
        flash.write(0, b"\x31\xff\xff\x0f")
    assert flash.read(0, 4) == b"\x30\xff\xff\x0f"
    flash.erase_sector(0)
    assert flash.read(0, 4) == b"\xff" * 4


def test_misaligned_and_out_of_range_accesses_fail():
    flash = RamFlash(0x1000)
    with pytest.raises(FlashWriteError, match="4-aligned"):
        flash.write(2, b"\x00" * 4)
    with pytest.raises(FlashWriteError, match="outside"):
        flash.read(0xFFE, 4)
    with pytest.raises(FlashWriteError, match="sector-aligned"):
        flash.erase_sector(0x10)


def test_power_cut_after_n_operations_stops_everything_until_power_on():
    flash = RamFlash(0x2000, cut_after=2)
    flash.write(0, b"\x00" * 4)
    flash.erase_sector(0x1000)
    with pytest.raises(PowerLoss):
        flash.write(4, b"\x00" * 4)
    assert flash.read(4, 4) == b"\xff" * 4
    with pytest.raises(PowerLoss):
        flash.erase_sector(0)
    flash.power_on()
    flash.write(4, b"\x00" * 4)
    assert flash.read(0, 8) == b"\x00" * 8
