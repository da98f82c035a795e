"""Power cuts: a fault plan lets N writes complete and cuts power before the next."""

from __future__ import annotations

import pytest

from espsec.errors import UsageError
from espsec.flash import FaultPlan, NorFlash, PowerCut, WriteCounter, WriteKind


def test_fault_plan_cuts_before_the_next_write_and_keeps_what_was_written():
    flash = NorFlash(0x2000, WriteCounter(FaultPlan(2)))
    flash.write(0, b"\0" * 4)
    flash.erase_sector(0x1000)
    with pytest.raises(PowerCut) as cut:
        flash.write(4, b"\0" * 4)
    assert cut.value.completed == 2 and cut.value.kind is WriteKind.FLASH
    assert "write 0x4+4" in str(cut.value)
    assert flash.read(0, 8) == b"\0" * 4 + b"\xff" * 4


def test_after_a_cut_every_write_fails_until_power_returns():
    flash = NorFlash(0x2000, WriteCounter(FaultPlan(0)))
    with pytest.raises(PowerCut):
        flash.write(0, b"\0" * 4)
    with pytest.raises(PowerCut):  # the chip is off
        flash.erase_sector(0)
    assert flash.snapshot() == b"\xff" * 0x2000
    flash.counter = WriteCounter()  # power back, unarmed: counted from now
    flash.write(0, b"\0" * 4)
    assert flash.read(0, 4) == b"\0" * 4 and flash.counter.total == 1


def test_fault_plan_of_one_kind_ignores_the_other():
    counter = WriteCounter(FaultPlan(1, WriteKind.EFUSE))
    flash = NorFlash(0x1000, counter)
    flash.write(0, b"\0" * 4)  # flash writes do not count towards an eFuse plan
    counter.before_write(WriteKind.EFUSE, "eFuse BLOCK0")
    flash.write(4, b"\0" * 4)
    with pytest.raises(PowerCut) as cut:
        counter.before_write(WriteKind.EFUSE, "eFuse BLOCK_KEY0")
    assert cut.value.kind is WriteKind.EFUSE and cut.value.completed == 1
    assert counter.counted(WriteKind.FLASH) == 2


def test_fault_plan_refuses_a_negative_count():
    with pytest.raises(UsageError, match="N >= 0"):
        FaultPlan(-1)
