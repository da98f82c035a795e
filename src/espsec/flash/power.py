"""Power cuts: a fault plan that cuts power after the Nth physical write.

A write is one physical operation the chip makes on non-volatile storage: a NOR flash
sector erase, a NOR flash program, or one eFuse block program (the eFuse controller's
PGM command; ESP-IDF ``esp_efuse_utility_burn_chip`` programs the blocks of a batch one
at a time, highest block first, BLOCK0 last). "Cut after N" lets N writes complete and
raises :class:`PowerCut` instead of the next one; everything already written stays, and
the device restarts from what is on flash and in eFuses.

:class:`~espsec.flash.nor.NorFlash` asks its :class:`WriteCounter` before every erase
and program; the virtual device's eFuse controller asks the same counter before every
block program. The NVS power-loss tests and the device's fault plans are this one
mechanism.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from espsec.errors import UsageError


class WriteKind(StrEnum):
    """What a counted write touches."""

    FLASH = "flash"
    EFUSE = "efuse"


@dataclass(frozen=True)
class FaultPlan:
    """Cut power after ``cut_after`` writes (of ``kind`` only, or of both kinds).

    ``FaultPlan(0)`` cuts before the first write; ``FaultPlan(5, WriteKind.EFUSE)`` lets
    five eFuse block programs complete (and any number of flash writes) and cuts before
    the sixth.
    """

    cut_after: int
    kind: WriteKind | None = None

    def __post_init__(self) -> None:
        if self.cut_after < 0:
            raise UsageError(f"a fault plan cuts after N >= 0 writes, got {self.cut_after}")

    def describe(self) -> str:
        what = f"{self.kind} writes" if self.kind else "flash or eFuse writes"
        return f"cut power after {self.cut_after} {what}"


class PowerCut(Exception):
    """Power was cut before a write: raised by the write that did not happen.

    It unwinds whatever the device was doing; nothing is rolled back. ``write`` says
    what the interrupted write would have done; ``completed`` how many writes counted
    by the plan were made.
    """

    def __init__(self, kind: WriteKind, write: str, completed: int) -> None:
        super().__init__(f"power cut before {kind} write {completed + 1}: {write}")
        self.kind = kind
        self.write = write
        self.completed = completed


class WriteCounter:
    """Counts the device's writes and enforces an armed :class:`FaultPlan`."""

    def __init__(self, plan: FaultPlan | None = None) -> None:
        self.plan = plan
        self.flash_writes = 0
        self.efuse_writes = 0
        self.cut: PowerCut | None = None

    @property
    def total(self) -> int:
        return self.flash_writes + self.efuse_writes

    def counted(self, kind: WriteKind | None = None) -> int:
        """Writes the plan counts (of ``kind``, or both)."""
        if kind is WriteKind.FLASH:
            return self.flash_writes
        if kind is WriteKind.EFUSE:
            return self.efuse_writes
        return self.total

    def before_write(self, kind: WriteKind, what: str) -> None:
        """Call before each physical write; raises :class:`PowerCut` when the plan says.

        Once power is cut, every later write raises too (the chip is off).
        """
        if self.cut is not None:
            raise PowerCut(kind, what, self.cut.completed)
        plan = self.plan
        if plan is not None and (plan.kind is None or plan.kind is kind):
            done = self.counted(plan.kind)
            if done >= plan.cut_after:
                self.cut = PowerCut(kind, what, done)
                raise self.cut
        if kind is WriteKind.FLASH:
            self.flash_writes += 1
        else:
            self.efuse_writes += 1
