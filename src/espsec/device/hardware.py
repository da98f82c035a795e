"""The chip the boot stages run on: eFuses, flash, the write counter, and the stage log.

Stages (ROM, bootloader, first boot, app startup) get a :class:`Hardware` and do
everything through it: eFuse batches are validated with :class:`espsec.efuse.Transaction`
and then programmed block by block, highest block first, BLOCK0 and then ``WR_DIS`` last,
as ESP-IDF's ``esp_efuse_utility_burn_chip`` does, so a power cut can fall between two; flash
updates are recorded with the number of erase/program operations they needed and made.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from espsec.chips import Chip, get_chip
from espsec.device.flash import SpiFlash
from espsec.device.report import EfuseBurn, FlashWrite, ImageCheck, Stage, StageReport
from espsec.efuse import Efuses, KeyUnavailableError, Transaction, chip_revision
from espsec.errors import EspsecError
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


class EfuseProgramError(EspsecError):
    """A block did not read back as programmed: ``esp_efuse_batch_write_commit`` fails
    (``ESP_FAIL``), with what was programmed before it left burned."""


class Hardware:
    """One chip: its eFuses and flash, the write counter, and the running stage's log."""

    def __init__(self, efuses: Efuses, flash: SpiFlash, *, defer_wr_dis: bool = True) -> None:
        self.efuses = efuses
        self.flash = flash
        self.counter: WriteCounter = flash.counter
        self.chip: Chip = get_chip(efuses.chip)
        self.log = StageLog(Stage.ROM)
        self.defer_wr_dis = defer_wr_dis
        """``WR_DIS`` burned in its own program after the rest of the batch (ESP-IDF
        v6.1+, the default); ``False``: with the rest of BLOCK0 (ESP-IDF v6.0 and older)."""

    @property
    def chip_rev(self) -> int:
        return chip_revision(self.efuses)

    @property
    def rom_schemes(self) -> frozenset[str]:
        """The Secure Boot v2 schemes this chip's ROM verifies, for its revision and
        eFuses (ESP32-P4: ECDSA-P384 from v3.0, and only with ``SECURE_BOOT_SHA384_EN``;
        with it, only ECDSA-P384)."""
        efuses = self.efuses
        burned = frozenset(
            g.efuse
            for g in self.chip.gated_schemes
            if efuses.layout.has_field(g.efuse) and efuses.get_int(g.efuse)
        )
        return self.chip.rom_schemes(self.chip_rev, burned)

    # -- eFuses ----------------------------------------------------------------------

    def burn(
        self,
        transaction: Transaction,
        reason: str,
        *,
        masked: Mapping[int, int] | None = None,
    ) -> EfuseBurn | None:
        """Validate and burn a batch; ``None`` when there is nothing to burn.

        Raises :class:`~espsec.efuse.BurnRefused` / :class:`~espsec.errors.UsageError`
        (nothing burned) when the chip's state forbids the batch; :class:`PowerCut`
        between two programs; :class:`EfuseProgramError` when a block does not read back
        as written (see :meth:`burn_chip`). ``masked``: bits (by block) that ESP-IDF's
        eFuse API writes although they are write-protected (it does not check; the
        controller masks them): they go into the write registers with the rest.
        """
        staged = transaction.stage(self.efuses)
        requests: dict[int, int] = {}
        for step in staged.steps:
            requests[step.block] = requests.get(step.block, 0) | step.bits
        for block, bits in (masked or {}).items():
            requests[block] = requests.get(block, 0) | bits
        operations = tuple(op.describe() for op in transaction.operations)
        return self.burn_chip(requests, reason, operations)

    def burn_chip(
        self, requests: Mapping[int, int], reason: str, operations: tuple[str, ...]
    ) -> EfuseBurn | None:
        """``esp_efuse_utility_burn_chip``: program the write registers, block by block.

        ESP-IDF ``components/efuse/src/esp_efuse_utility.c`` and
        ``<chip>/esp_efuse_utility.c: esp_efuse_utility_burn_chip_opt``: blocks from the
        highest to BLOCK0 (BLOCK0 holds the protection bits of the others), each read back
        after its program; a block that does not read back as written (after 3 tries) is
        an error, and no block after it is programmed. Since ESP-IDF v6.1 (commit
        be517fa8c06, "Defer WR_DIS eFuse burning") ``WR_DIS`` is taken out of BLOCK0 and
        programmed on its own afterwards, only if everything else succeeded; v6.0 and
        earlier program BLOCK0, ``WR_DIS`` included, at once (:attr:`defer_wr_dis`).
        """
        blocks = self.efuses.layout.blocks
        wr_dis = self.efuses.layout.field("WR_DIS").mask
        programs: list[tuple[int, int, str]] = [
            (b, bits, blocks[b].name) for b, bits in sorted(requests.items(), reverse=True) if bits
        ]
        if programs and programs[-1][0] == 0 and self.defer_wr_dis and programs[-1][1] & wr_dis:
            _, bits0, name0 = programs.pop()
            if bits0 & ~wr_dis:
                programs.append((0, bits0 & ~wr_dis, name0))
            programs.append((0, bits0 & wr_dis, f"{name0} (WR_DIS)"))
        if not programs:
            return None
        names = tuple(name for _, _, name in programs)
        done = 0
        failed: str | None = None
        try:
            for block, bits, name in programs:
                self.counter.before_write(
                    WriteKind.EFUSE, f"eFuse {name} ({reason}: {'; '.join(operations)})"
                )
                self.efuses.program(block, bits)
                done += 1
                if not self._reads_back(block, bits):
                    failed = name
                    break
        finally:
            burn = EfuseBurn(reason, operations, names, done)
            self.log.burn(burn)
        if failed is not None:
            skipped = ", ".join(names[done:]) or "nothing"
            raise EfuseProgramError(
                f"eFuse {failed} does not read back as written (write-protected bits are "
                f"masked by the controller): ESP_FAIL; not programmed after it: {skipped}"
            )
        return burn

    def _reads_back(self, block: int, bits: int) -> bool:
        """``esp_efuse_utility_is_correct_written_data``: every written bit reads as 1."""
        try:
            got = int.from_bytes(self.efuses.hardware_block(block), "little")
        except KeyUnavailableError:  # pragma: no cover - a block hidden before this burn
            return True
        return got & bits == bits

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
