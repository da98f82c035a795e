"""The flash NVS lives on: a small NOR-flash protocol and a RAM-backed implementation.

NOR flash is erased to 0xFF a sector (4096 bytes) at a time; a write can only clear bits.
:class:`RamFlash` enforces both rules, so a store that tries to rewrite data in place
fails loudly here instead of silently on a chip, and it can simulate a power cut after
any number of flash operations.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from espsec.errors import EspsecError, UsageError

SECTOR_SIZE = 4096
WRITE_ALIGN = 4


@runtime_checkable
class FlashRegion(Protocol):
    """A region of NOR flash (for NVS: one partition), addressed from 0."""

    @property
    def size(self) -> int:
        """Size in bytes, a multiple of :data:`SECTOR_SIZE`."""
        ...

    def read(self, offset: int, length: int) -> bytes:
        """Read ``length`` bytes at ``offset``."""
        ...

    def write(self, offset: int, data: bytes) -> None:
        """Program ``data`` at ``offset``: only 1 -> 0 bit changes are allowed."""
        ...

    def erase_sector(self, offset: int) -> None:
        """Erase the sector starting at ``offset`` back to 0xFF."""
        ...


class PowerLoss(Exception):
    """The simulated power cut: raised by the flash operation that did not happen."""


class FlashWriteError(EspsecError):
    """A write that NOR flash cannot perform (setting a bit, misaligned, out of range)."""


class RamFlash:
    """NOR flash in a bytearray, with an optional power cut after ``cut_after`` operations.

    Every :meth:`write` and :meth:`erase_sector` is one operation. Once the budget is
    used up, the next operation raises :class:`PowerLoss` without touching the data,
    and so does every operation after it until :meth:`power_on`.
    """

    def __init__(self, size_or_data: int | bytes, *, cut_after: int | None = None) -> None:
        if isinstance(size_or_data, int):
            data = bytearray(b"\xff" * size_or_data)
        else:
            data = bytearray(size_or_data)
        if not data or len(data) % SECTOR_SIZE:
            raise UsageError(f"flash size must be a positive multiple of 4096, got {len(data)}")
        self.data = data
        self.operations = 0
        self.cut_after = cut_after
        self.powered = True

    @property
    def size(self) -> int:
        return len(self.data)

    def snapshot(self) -> bytes:
        """The current contents."""
        return bytes(self.data)

    def power_on(self, *, cut_after: int | None = None) -> None:
        """Restore power, optionally arming the next cut (counted from now)."""
        self.powered = True
        self.operations = 0
        self.cut_after = cut_after

    def read(self, offset: int, length: int) -> bytes:
        self._check_range(offset, length)
        return bytes(self.data[offset : offset + length])

    def write(self, offset: int, data: bytes) -> None:
        if offset % WRITE_ALIGN or len(data) % WRITE_ALIGN:
            raise FlashWriteError(f"write at 0x{offset:x} of {len(data)} bytes is not 4-aligned")
        self._check_range(offset, len(data))
        self._operation()
        old = int.from_bytes(self.data[offset : offset + len(data)], "little")
        new = int.from_bytes(data, "little")
        if new & ~old:
            raise FlashWriteError(
                f"write at 0x{offset:x} would set bits that are 0 (NOR flash only clears bits)"
            )
        self.data[offset : offset + len(data)] = data

    def erase_sector(self, offset: int) -> None:
        if offset % SECTOR_SIZE:
            raise FlashWriteError(f"erase at 0x{offset:x} is not sector-aligned")
        self._check_range(offset, SECTOR_SIZE)
        self._operation()
        self.data[offset : offset + SECTOR_SIZE] = b"\xff" * SECTOR_SIZE

    def _operation(self) -> None:
        if not self.powered or (self.cut_after is not None and self.operations >= self.cut_after):
            self.powered = False
            raise PowerLoss(f"power cut before flash operation {self.operations + 1}")
        self.operations += 1

    def _check_range(self, offset: int, length: int) -> None:
        if offset < 0 or length < 0 or offset + length > len(self.data):
            raise FlashWriteError(
                f"access at 0x{offset:x} of {length} bytes is outside the {len(self.data)}-byte "
                "flash region"
            )
