"""The eFuse controller as the download-mode loaders see it: a window of 32-bit registers.

Register map (the same on ESP32-S3 and ESP32-P4; espefuse ``efuse/<chip>/mem_definition.py``):

* ``EFUSE_PGM_DATA0..7_REG`` (+0x000) and ``EFUSE_PGM_CHECK_VALUE0..2_REG`` (+0x020): the
  data of one program command, and the Reed-Solomon check bytes of BLOCK1..10;
* the read registers (+0x02C onwards: BLOCK0, BLOCK1..10, the error registers): what
  software sees of the eFuses, straight from the :class:`~espsec.efuse.Efuses` model
  (a read-protected block reads as zeros);
* ``EFUSE_CLK_REG``, ``EFUSE_CONF_REG`` (op code ``0x5A5A`` program / ``0x5AA5`` read),
  ``EFUSE_STATUS_REG``, ``EFUSE_CMD_REG`` (``PGM_CMD | block << 2`` or ``READ_CMD``) and the
  timing registers (+0x1C8 onwards).

The program sequence is espefuse's (``fields.py``, ``efuse_program`` / ``efuse_read``):
write the PGM registers, set CONF to the write op code, write ``PGM_CMD | block << 2`` to
CMD, wait for CMD to clear, clear the PGM registers, then a read command. The command
completes at once here, so CMD always reads back 0.

A program command is applied with :class:`espsec.efuse.Transaction`, the rules
``espsec efuse`` burns under: the bits become ``burn-efuse`` operations on the fields they
belong to, validated all together, and either every bit lands or none does. A refused
command programs nothing (the host sees it when it reads the block back) and is reported
through ``notify``. The RS check bytes must be the code of the data, as the hardware's
decoder expects.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from espsec.efuse import BurnField, Efuses, Transaction, rs
from espsec.efuse.layout import BlockDef
from espsec.errors import EspsecError

PGM_DATA = 0x000
PGM_DATA_WORDS = 8
CHECK_VALUE = 0x020
CHECK_VALUE_WORDS = 3
READ_WINDOW = 0x02C
CONTROL_REGS = 0x1C8
"""From here on: CLK, CONF, STATUS, CMD, interrupts, DAC and timing, DATE."""
CONF = 0x1CC
CMD = 0x1D4
WRITE_OP_CODE = 0x5A5A
READ_OP_CODE = 0x5AA5
READ_CMD = 0x1
PGM_CMD = 0x2


def _unused(_: str) -> None:
    """A ``notify`` that drops the message."""


class EfuseController:
    """Register-level eFuse controller over one chip's eFuse model."""

    def __init__(self, efuses: Efuses, *, notify: Callable[[str], None] = _unused) -> None:
        self.efuses = efuses
        self.notify = notify
        self._pgm = [0] * (PGM_DATA_WORDS + CHECK_VALUE_WORDS)
        self._control: dict[int, int] = {}
        self.burned = 0
        """Program commands that changed the eFuses (the owner saves them)."""
        self.reads = 0
        """Read commands: the read registers were reloaded (the ROM re-checks its policy)."""

    @property
    def size(self) -> int:
        return self.efuses.layout.mem_size

    def read(self, offset: int) -> int:
        """The register at ``offset`` from the controller base."""
        if offset < READ_WINDOW:
            return self._pgm[offset // 4]
        if offset >= CONTROL_REGS:
            return self._control.get(offset & ~3, 0)
        return self.efuses.read_reg(offset & ~3)

    def write(self, offset: int, value: int) -> None:
        """Write a register; a write to CMD runs the command."""
        offset &= ~3
        value &= 0xFFFFFFFF
        if offset < READ_WINDOW:
            self._pgm[offset // 4] = value
        elif offset >= CONTROL_REGS:
            self._control[offset] = value
            if offset == CMD:
                self._command(value)
        # the read registers are read-only

    def _command(self, value: int) -> None:
        op = self._control.get(CONF, 0)
        if value & PGM_CMD and op == WRITE_OP_CODE:
            self._program((value >> 2) & 0xF)
        elif value & READ_CMD and op == READ_OP_CODE:
            self.reads += 1
        self._control[CMD] = 0

    def _program(self, index: int) -> None:
        layout = self.efuses.layout
        if index >= len(layout.blocks):
            self.notify(f"eFuse PGM command for BLOCK{index}, which this chip does not have")
            return
        block = layout.blocks[index]
        raw = struct.pack(f"<{PGM_DATA_WORDS}I", *self._pgm[:PGM_DATA_WORDS])
        if block.rs_coded:
            check = struct.pack(f"<{CHECK_VALUE_WORDS}I", *self._pgm[PGM_DATA_WORDS:])
            if rs.check_value(raw) != check:
                self.notify(
                    f"eFuse PGM of {block.name} refused: the check value is not the "
                    "Reed-Solomon code of the data"
                )
                return
        bits = int.from_bytes(raw[: block.words * 4], "little")
        new = bits & ~self.efuses.block_value(block)
        if not new:
            return
        try:
            operations = _operations(self.efuses, block, new)
            Transaction(operations).apply(self.efuses)
        except EspsecError as exc:
            self.notify(f"eFuse PGM of {block.name} refused, nothing burned: {exc.message}")
            return
        self.burned += 1
        names = ", ".join(op.name for op in operations)
        self.notify(f"eFuse PGM of {block.name}: burned {names}")


def _operations(efuses: Efuses, block: BlockDef, new: int) -> list[BurnField]:
    """``burn-efuse`` operations that set exactly the bits ``new`` of ``block``."""
    current = efuses.block_value(block)
    covered = 0
    operations: list[BurnField] = []
    layout = efuses.layout
    # A key purpose split over KEY_PURPOSE_n and KEY_PURPOSE_n_H (P4 v3) is one request.
    split = {
        f.name: key_block
        for key_block in layout.key_blocks
        if key_block.purpose_field_high is not None
        for f, _ in layout.purpose_parts(key_block)
    }
    fields = sorted(layout.fields_in(block.index), key=lambda f: (f.start, -f.length))
    for f in fields:
        if f.reserved or not f.mask & new or f.mask & covered:
            continue
        if f.name in split:
            parts = layout.purpose_parts(split[f.name])
            covered |= sum(part.mask for part, _ in parts)
            value = sum(((current | new) & p.mask) >> p.start << shift for p, shift in parts)
            operations.append(BurnField(split[f.name].purpose_field or f.name, value))
            continue
        covered |= f.mask
        value = ((current | new) & f.mask) >> f.start
        if f.kind == "bytes":
            operations.append(BurnField(f.name, value.to_bytes(f.length // 8, "little")))
        else:
            operations.append(BurnField(f.name, value))
    stray = new & ~covered
    if stray:
        bits = [i for i in range(stray.bit_length()) if stray >> i & 1]
        shown = ",".join(str(b) for b in bits[:8]) + ("…" if len(bits) > 8 else "")
        raise EspsecError(f"{block.name} bit(s) {shown} belong to no eFuse field")
    return operations
