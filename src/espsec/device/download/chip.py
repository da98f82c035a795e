"""The virtual chip as the download-mode loaders see it: flash, registers, RAM, persistence.

:class:`DownloadChip` wraps a :class:`~espsec.device.VirtualDevice` with what the ROM
loader and the flasher stub reach: the SPI flash (raw: with flash encryption on, reads
return the ciphertext that is stored), the eFuse controller and the SPI flash controller
behind ``READ_REG``/``WRITE_REG``, and RAM for ``MEM_*`` uploads. After each command
:meth:`flush` writes what changed to the device folder: the flash bytes in place (only
the ranges written), the eFuse file atomically when a burn landed.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from espsec.device.download.efuse_controller import EfuseController
from espsec.device.download.protocol import LoaderFacts, loader_facts
from espsec.device.download.spi import REGION_SIZE, SpiFlashController
from espsec.device.flash import ENCRYPTED_WRITE_ALIGN
from espsec.device.virtual_device import EFUSE_FILE, FLASH_FILE, VirtualDevice
from espsec.efuse import Efuses, save
from espsec.errors import EspsecError
from espsec.flash import SECTOR_SIZE, WRITE_ALIGN

RAM_LIMIT = 1 << 20
"""Most RAM a host may upload in one session (the chips have well under 1 MiB of SRAM)."""


class ChipError(EspsecError):
    """An access the chip cannot make (outside flash, misaligned, no key)."""


def _unused(_: str) -> None:
    """A ``notify`` that drops the message."""


class DownloadChip:
    """One virtual chip reached over the serial download protocol."""

    def __init__(self, device: VirtualDevice, *, notify: Callable[[str], None] = _unused) -> None:
        self.device = device
        self.notify = notify
        self.facts: LoaderFacts = loader_facts(device.efuses.chip)
        self.efuse = EfuseController(device.efuses, notify=notify)
        self.spi = SpiFlashController(device.flash.size, self.read_flash)
        self.ram: dict[int, int] = {}
        self._dirty: list[tuple[int, int]] = []
        self._burns_saved = 0
        self._fd: int | None = None

    @property
    def efuses(self) -> Efuses:
        return self.device.efuses

    @property
    def flash_size(self) -> int:
        return self.device.flash.size

    def reset(self) -> None:
        """A chip reset: RAM (and whatever ran from it) is gone; eFuses and flash stay."""
        self.ram.clear()

    # -- registers -------------------------------------------------------------------

    def _decode(self, addr: int) -> tuple[EfuseController | SpiFlashController | None, int]:
        facts = self.facts
        if facts.efuse_base <= addr < facts.efuse_base + self.efuse.size:
            return self.efuse, addr - facts.efuse_base
        if facts.spi_base <= addr < facts.spi_base + REGION_SIZE:
            return self.spi, addr - facts.spi_base
        return None, addr

    def read_reg(self, addr: int) -> int:
        """``READ_REG``: a peripheral register or a RAM word (0 where nothing was written)."""
        device, offset = self._decode(addr)
        if device is None:
            return self.ram.get(addr & ~3, 0)
        return device.read(offset)

    def write_reg(self, addr: int, value: int, mask: int = 0xFFFFFFFF) -> None:
        """``WRITE_REG``: only the bits of ``mask`` change."""
        if mask != 0xFFFFFFFF:
            value = (value & mask) | (self.read_reg(addr) & ~mask)
        device, offset = self._decode(addr)
        if device is None:
            self.ram[addr & ~3] = value & 0xFFFFFFFF
        else:
            device.write(offset, value)

    # -- flash -----------------------------------------------------------------------

    def check_range(self, offset: int, length: int) -> None:
        if offset < 0 or length < 0 or offset + length > self.flash_size:
            raise ChipError(
                f"0x{offset:x}+0x{length:x} is outside the {self.flash_size >> 10} KiB flash"
            )

    def read_flash(self, offset: int, length: int) -> bytes:
        """What is stored (no decryption: the host sees ciphertext where flash is encrypted)."""
        self.check_range(offset, length)
        return self.device.flash.read_raw(offset, length)

    def erase(self, offset: int, length: int) -> None:
        """Erase every 4 KiB sector that ``[offset, offset + length)`` touches."""
        start = offset - offset % SECTOR_SIZE
        end = -(-(offset + length) // SECTOR_SIZE) * SECTOR_SIZE
        self.check_range(start, end - start)
        for sector in range(start, end, SECTOR_SIZE):
            self.device.flash.erase_sector(sector, what=f"download mode: erase 0x{sector:x}")
        if end > start:
            self._dirty.append((start, end))

    def program(self, offset: int, data: bytes, *, encrypted: bool = False) -> None:
        """Program ``data`` (padded with 0xFF to whole words, or 16-byte blocks if encrypted)."""
        align = ENCRYPTED_WRITE_ALIGN if encrypted else WRITE_ALIGN
        if offset % align:
            raise ChipError(f"write at 0x{offset:x} is not {align}-byte aligned")
        data = data + b"\xff" * (-len(data) % align)
        self.check_range(offset, len(data))
        if not data:
            return
        what = f"download mode: write 0x{offset:x}+{len(data)}"
        try:
            if encrypted:
                self.device.flash.write_encrypted(offset, data, what=what)
            else:
                self.device.flash.write(offset, data, what=what)
        except EspsecError as exc:
            raise ChipError(exc.message) from None
        self._dirty.append((offset, offset + len(data)))

    def manual_encryption_refusal(self) -> str | None:
        """Why the flash-encryption engine will not encrypt a host write, if it will not."""
        if self.efuses.get_int("DIS_DOWNLOAD_MANUAL_ENCRYPT"):
            return "DIS_DOWNLOAD_MANUAL_ENCRYPT is burned: the chip will not encrypt host data"
        if self.device.flash.engine_key() is None:
            return "no XTS-AES key is burned: there is nothing to encrypt with"
        return None

    # -- persistence -------------------------------------------------------------------

    def flush(self) -> None:
        """Write what changed since the last flush to the device folder (if it has one)."""
        folder = self.device.path
        if folder is None:
            self._dirty.clear()
            return
        if self.efuse.burned != self._burns_saved:
            save(self.efuses, folder / EFUSE_FILE)
            self._burns_saved = self.efuse.burned
        if not self._dirty:
            return
        if self._fd is None:
            self._fd = os.open(folder / FLASH_FILE, os.O_WRONLY)
        data = self.device.flash.data
        for start, end in _merge(self._dirty):
            os.pwrite(self._fd, bytes(data[start:end]), start)
        self._dirty.clear()

    def close(self) -> None:
        self.flush()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged
