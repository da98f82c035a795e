"""SPI NOR flash as the chip behaves: erase by sector, program by AND, every write counted.

* An erase sets one 4 KiB sector (``SPI_FLASH_SEC_SIZE``) to 0xFF.
* A program can only clear bits: the chip ANDs the new data into what is stored. A
  program that would need a bit to go 0 -> 1 does not fail; that bit just stays 0, and
  the read-back differs from what was written. ESP-IDF's ``esp_flash_write`` does not
  notice either unless built with ``CONFIG_SPI_FLASH_VERIFY_WRITE`` (which reads back
  and fails) or ``CONFIG_SPI_FLASH_WARN_SETTING_ZERO_TO_ONE`` (which logs); both are off
  by default (ESP-IDF ``components/spi_flash/Kconfig``). Code that must not rely on
  setting bits checks the read-back, as ESP-IDF's NVS host tests do with their strict
  emulator (``components/nvs_flash/test_nvs_host/spi_flash_emulation.h``).
* Programs are whole 32-bit words; accesses outside the chip are refused.
* Every erase and program first asks the :class:`~espsec.flash.power.WriteCounter`,
  so an armed :class:`~espsec.flash.power.FaultPlan` can cut power between any two.

The contents are one ``bytearray`` (:attr:`NorFlash.data`) that only :meth:`NorFlash._program`
and :meth:`NorFlash._erase` change. Both record the sectors they touch, so whoever keeps
a copy of the chip on disk writes back only those (:meth:`NorFlash.dirty_ranges`).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from espsec.errors import EspsecError, UsageError
from espsec.flash.power import WriteCounter, WriteKind

SECTOR_SIZE = 0x1000
"""``SPI_FLASH_SEC_SIZE``: the erase unit."""
WRITE_ALIGN = 4
"""Plain programs are whole 32-bit words."""


class FlashAccessError(EspsecError):
    """A flash access the chip cannot make (out of range, misaligned, no key)."""


@runtime_checkable
class FlashRegion(Protocol):
    """A region of NOR flash addressed from 0 (for NVS: one partition)."""

    @property
    def size(self) -> int:
        """Size in bytes, a multiple of :data:`SECTOR_SIZE`."""
        ...

    def read(self, offset: int, length: int) -> bytes:
        """Read ``length`` bytes at ``offset``."""
        ...

    def write(self, offset: int, data: bytes) -> None:
        """Program ``data`` at ``offset`` (NOR: the stored bits are ANDed with it)."""
        ...

    def erase_sector(self, offset: int) -> None:
        """Erase the sector starting at ``offset`` back to 0xFF."""
        ...


class NorFlash:
    """A NOR flash chip held in memory; ``counter`` counts its writes and cuts power.

    ``size_or_data``: a size (erased flash) or the initial contents (copied). Both are
    a positive multiple of :data:`SECTOR_SIZE`.
    """

    def __init__(
        self, size_or_data: int | bytes | bytearray, counter: WriteCounter | None = None
    ) -> None:
        size = size_or_data if isinstance(size_or_data, int) else len(size_or_data)
        if size <= 0 or size % SECTOR_SIZE:
            raise UsageError(f"flash size must be a positive multiple of 4 KiB, got {size} bytes")
        if isinstance(size_or_data, int):
            self.data = bytearray(b"\xff") * size
        else:
            self.data = bytearray(size_or_data)
        self.counter = counter if counter is not None else WriteCounter()
        self._dirty: set[int] = set()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.size // 1024} KiB)"

    @property
    def size(self) -> int:
        return len(self.data)

    def snapshot(self) -> bytes:
        """A copy of the whole contents."""
        return bytes(self.data)

    def dirty_ranges(self) -> list[tuple[int, int]]:
        """``(start, end)`` of the runs of sectors erased or programmed since
        :meth:`mark_clean` (or since the chip was made), in address order."""
        ranges: list[tuple[int, int]] = []
        for sector in sorted(self._dirty):
            start = sector * SECTOR_SIZE
            if ranges and ranges[-1][1] == start:
                ranges[-1] = (ranges[-1][0], start + SECTOR_SIZE)
            else:
                ranges.append((start, start + SECTOR_SIZE))
        return ranges

    def mark_clean(self) -> None:
        """Forget the changed sectors (their contents were saved)."""
        self._dirty.clear()

    def _check(self, offset: int, length: int) -> None:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise FlashAccessError(
                f"flash access at 0x{offset:x} of {length} bytes is outside the "
                f"{self.size // 1024} KiB flash"
            )

    def read(self, offset: int, length: int) -> bytes:
        """What is stored at ``offset`` (an SPI read)."""
        self._check(offset, length)
        return bytes(memoryview(self.data)[offset : offset + length])  # one copy, not two

    def erase_sector(self, offset: int, *, what: str = "") -> None:
        """Erase the 4 KiB sector at ``offset`` to 0xFF (one counted write)."""
        if offset % SECTOR_SIZE:
            raise FlashAccessError(f"erase at 0x{offset:x} is not on a 4 KiB sector boundary")
        self._check(offset, SECTOR_SIZE)
        self.counter.before_write(WriteKind.FLASH, what or f"erase sector 0x{offset:x}")
        self._erase(offset)

    def erase_range(self, offset: int, length: int, *, what: str = "") -> None:
        """Erase every sector of ``[offset, offset + length)`` (both 4 KiB aligned)."""
        if offset % SECTOR_SIZE or length % SECTOR_SIZE:
            raise FlashAccessError(
                f"erase of 0x{offset:x}+0x{length:x} is not in whole 4 KiB sectors"
            )
        self._check(offset, length)
        for sector in range(offset, offset + length, SECTOR_SIZE):
            self.erase_sector(sector, what=what or f"erase sector 0x{sector:x}")

    def write(self, offset: int, data: bytes, *, what: str = "") -> None:
        """Program ``data`` at ``offset`` (one counted write): bits only go 1 -> 0."""
        if offset % WRITE_ALIGN or len(data) % WRITE_ALIGN:
            raise FlashAccessError(
                f"write at 0x{offset:x} of {len(data)} bytes is not in whole 32-bit words"
            )
        self._check(offset, len(data))
        self.counter.before_write(WriteKind.FLASH, what or f"write 0x{offset:x}+{len(data)}")
        self._program(offset, data)

    # -- the only two places the contents change ------------------------------------

    def _program(self, offset: int, data: bytes) -> None:
        end = offset + len(data)
        if not data:
            return
        old = int.from_bytes(self.data[offset:end], "little")
        new = old & int.from_bytes(data, "little")  # NOR: bits only go 1 -> 0
        self.data[offset:end] = new.to_bytes(len(data), "little")
        self._dirty.update(range(offset // SECTOR_SIZE, (end - 1) // SECTOR_SIZE + 1))

    def _erase(self, offset: int) -> None:
        self.data[offset : offset + SECTOR_SIZE] = b"\xff" * SECTOR_SIZE
        self._dirty.add(offset // SECTOR_SIZE)
