"""The chip the boot stages run on: eFuses, flash, the write counter, and the stage log.

Stages (ROM, bootloader, first boot, app startup) get a :class:`Hardware` and do
everything through it: eFuse batches are validated with :class:`espsec.efuse.Transaction`
and then programmed block by block, highest block first and BLOCK0 last, as ESP-IDF's
``esp_efuse_utility_burn_chip`` does, so a power cut can fall between two blocks; flash
updates are recorded with the number of erase/program operations they needed and made.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from espsec.chips import Chip, get_chip
from espsec.device.flash import SpiFlash
from espsec.device.report import EfuseBurn, FlashWrite, ImageCheck, Stage, StageReport
from espsec.efuse import Efuses, Transaction
from espsec.flash import WriteCounter, WriteKind


@dataclass
class StageLog:
    """What a stage did so far (mutable while the stage runs; frozen by :meth:`report`)."""

    stage: Stage
    notes: list[str] = field(default_factory=list)
    images: list[ImageCheck] = field(default_factory=list)
    burns: list[EfuseBurn] = field(default_factory=list)
    writes: list[FlashWrite] = field(default_factory=list)
    error: str | None = None
    timeline: list[tuple[str, int]] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.timeline.append(("note", len(self.notes)))
        self.notes.append(text)

    def image(self, check: ImageCheck) -> None:
        self.timeline.append(("image", len(self.images)))
        self.images.append(check)

    def burn(self, burn: EfuseBurn) -> None:
        self.timeline.append(("burn", len(self.burns)))
        self.burns.append(burn)

    def write(self, write: FlashWrite) -> None:
        self.timeline.append(("write", len(self.writes)))
        self.writes.append(write)

    def fail(self, error: str) -> None:
        if self.error is None:
            self.error = error

    def report(self) -> StageReport:
        return StageReport(
            stage=self.stage,
            ok=self.error is None,
            notes=tuple(self.notes),
            images=tuple(self.images),
            efuse_burns=tuple(self.burns),
            flash_writes=tuple(self.writes),
            error=self.error,
            timeline=tuple(self.timeline),
        )


def chip_revision(efuses: Efuses) -> int:
    """The wafer revision as ``major * 100 + minor`` (``efuse_hal_chip_revision``).

    ESP32-S3: ``WAFER_VERSION_MAJOR``, minor = ``MINOR_HI << 3 | MINOR_LO``; ESP32-P4:
    major = ``MAJOR_HI << 2 | MAJOR_LO``, ``WAFER_VERSION_MINOR``. A blank virtual chip
    is v0.0.
    """
    layout = efuses.layout

    def get(name: str) -> int:
        return efuses.get_int(name) if layout.has_field(name) else 0

    if layout.has_field("WAFER_VERSION_MINOR_LO"):
        minor = get("WAFER_VERSION_MINOR_HI") << 3 | get("WAFER_VERSION_MINOR_LO")
    else:
        minor = get("WAFER_VERSION_MINOR")
    if layout.has_field("WAFER_VERSION_MAJOR_LO"):
        major = get("WAFER_VERSION_MAJOR_HI") << 2 | get("WAFER_VERSION_MAJOR_LO")
    else:
        major = get("WAFER_VERSION_MAJOR")
    return major * 100 + minor


class Hardware:
    """One chip: its eFuses and flash, the write counter, and the running stage's log."""

    def __init__(self, efuses: Efuses, flash: SpiFlash) -> None:
        self.efuses = efuses
        self.flash = flash
        self.counter: WriteCounter = flash.counter
        self.chip: Chip = get_chip(efuses.chip)
        self.log = StageLog(Stage.ROM)

    @property
    def chip_rev(self) -> int:
        return chip_revision(self.efuses)

    # -- eFuses ----------------------------------------------------------------------

    def burn(self, transaction: Transaction, reason: str) -> EfuseBurn | None:
        """Validate and burn a batch; ``None`` when there is nothing to burn.

        Raises :class:`~espsec.efuse.BurnRefused` / :class:`~espsec.errors.UsageError`
        (nothing burned) when the chip's state forbids the batch, as
        ``esp_efuse_batch_write_commit`` fails; :class:`PowerCut` between blocks.
        """
        staged = transaction.stage(self.efuses)
        programs: list[tuple[int, int]] = []
        for step in staged.steps:
            if programs and programs[-1][0] == step.block:
                programs[-1] = (step.block, programs[-1][1] | step.bits)
            else:
                programs.append((step.block, step.bits))
        if not programs:
            return None
        names = tuple(self.efuses.layout.blocks[b].name for b, _ in programs)
        operations = tuple(op.describe() for op in transaction.operations)
        done = 0
        try:
            for (block, bits), name in zip(programs, names, strict=True):
                self.counter.before_write(
                    WriteKind.EFUSE, f"eFuse {name} ({reason}: {'; '.join(operations)})"
                )
                self.efuses.program(block, bits)
                done += 1
        finally:
            burn = EfuseBurn(reason, operations, names, done)
            self.log.burn(burn)
        return burn

    # -- flash -----------------------------------------------------------------------

    @contextmanager
    def flash_update(
        self, what: str, offset: int, length: int, *, encrypted: bool, operations: int
    ) -> Iterator[None]:
        """Record a logical flash update and how many of its operations were made."""
        start = self.counter.flash_writes
        try:
            yield
        finally:
            done = self.counter.flash_writes - start
            self.log.write(FlashWrite(what, offset, length, encrypted, operations, done))

    def write_region(self, what: str, offset: int, data: bytes, *, encrypted: bool) -> None:
        """Erase the sectors of ``data`` and program it (an otadata-style update)."""
        sectors = -(-len(data) // 0x1000)
        with self.flash_update(
            what, offset, len(data), encrypted=encrypted, operations=sectors + 1
        ):
            self.flash.erase_range(offset, sectors * 0x1000, what=f"{what}: erase")
            if encrypted:
                self.flash.write_encrypted(offset, data, what=f"{what}: write")
            else:
                self.flash.write(offset, data, what=f"{what}: write")
