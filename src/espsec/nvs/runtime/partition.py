"""Flash access for the NVS runtime (``nvs_partition.cpp``, ``nvs_encrypted_partition.cpp``).

``read_raw``/``write_raw`` go straight to flash (page headers, entry-state tables and
the checks for erased flash); ``read``/``write`` move whole entries and, on an
encrypted partition, decrypt/encrypt each one with its offset as tweak.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from espsec.errors import UsageError
from espsec.flash import FlashRegion
from espsec.nvs.encryption import decrypt_entries, encrypt_entries
from espsec.nvs.layout import ENTRY_SIZE, FIRST_ENTRY_OFFSET, PAGE_SIZE
from espsec.nvs.nvs_keys import NvsKeys


class NvsPartition:
    """One NVS partition on ``flash``; encrypted when ``keys`` are given."""

    def __init__(self, flash: FlashRegion, keys: NvsKeys | None = None) -> None:
        if flash.size <= 0 or flash.size % PAGE_SIZE:
            raise UsageError(f"NVS partition size must be a multiple of 0x1000, got {flash.size}")
        self.flash = flash
        self._keys = keys

    @property
    def encrypted(self) -> bool:
        return self._keys is not None

    @property
    def page_count(self) -> int:
        return self.flash.size // PAGE_SIZE

    def read_raw(self, offset: int, length: int) -> bytes:
        return self.flash.read(offset, length)

    def write_raw(self, offset: int, data: bytes) -> None:
        self.flash.write(offset, data)

    def erase_page(self, page: int) -> None:
        self.flash.erase_sector(page * PAGE_SIZE)

    def decode(self, raw: bytes, offset: int) -> bytes:
        """Plain text of whole entries read raw from ``offset``."""
        if self._keys is None or not raw:
            return raw
        return decrypt_entries(self._keys, raw, self._offsets(offset, len(raw)))

    def read_pages(self) -> list[tuple[bytes, bytes | None]]:
        """Every page as on flash, with the plain text of its entries (None if erased).

        Decrypts all pages in one go, which is much faster than page by page.
        """
        data = self.flash.read(0, self.flash.size)
        pages = [data[i : i + PAGE_SIZE] for i in range(0, len(data), PAGE_SIZE)]
        live = [i for i, page in enumerate(pages) if page[:4] != b"\xff\xff\xff\xff"]
        plains: list[bytes | None] = [None] * len(pages)
        if self._keys is None:
            for i in live:
                plains[i] = pages[i][FIRST_ENTRY_OFFSET:]
        elif live:
            area = PAGE_SIZE - FIRST_ENTRY_OFFSET
            offsets = np.concatenate(
                [np.arange(FIRST_ENTRY_OFFSET, PAGE_SIZE, ENTRY_SIZE) + i * PAGE_SIZE for i in live]
            ).astype(np.int64)
            cipher = b"".join(pages[i][FIRST_ENTRY_OFFSET:] for i in live)
            plain = decrypt_entries(self._keys, cipher, offsets)
            for n, i in enumerate(live):
                plains[i] = plain[n * area : (n + 1) * area]
        return list(zip(pages, plains, strict=True))

    def read(self, offset: int, length: int) -> bytes:
        """Read whole entries (decrypted)."""
        return self.decode(self.flash.read(offset, length), offset)

    def write(self, offset: int, data: bytes) -> None:
        """Write whole entries (encrypted)."""
        if self._keys is not None:
            data = encrypt_entries(self._keys, data, self._offsets(offset, len(data)))
        self.flash.write(offset, data)

    @staticmethod
    def _offsets(offset: int, length: int) -> npt.NDArray[np.int64]:
        if offset % ENTRY_SIZE or length % ENTRY_SIZE:
            raise UsageError("encrypted NVS reads and writes must be whole 32-byte entries")
        return np.arange(offset, offset + length, ENTRY_SIZE, dtype=np.int64)
