"""NVS encryption of whole partition images (``nvs_encrypted_partition.cpp``).

XTS-AES-256 with key ``eky ‖ tky``; every 32-byte entry is its own data unit and its
tweak is the entry's offset in the partition (LE32, then 12 zero bytes). Page headers
and entry-state tables stay in plain text; empty entries stay 0xFF. All entries of a
partition go through one vectorised XTS call (a generated partition is encrypted in
place, a few pages at a time: :func:`encrypt_pages_in_place`).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from espsec.errors import FormatError
from espsec.flash_encryption.xts import XtsEngine, tweaks_from_le32, xts_decrypt, xts_encrypt
from espsec.nvs.item import ENTRY_SIZE
from espsec.nvs.nvs_keys import NvsKeys
from espsec.nvs.page import (
    ENTRY_COUNT,
    ENTRY_TABLE_OFFSET,
    FIRST_ENTRY_OFFSET,
    PAGE_SIZE,
    EntryState,
    PageState,
)

_SHIFTS = (np.arange(ENTRY_COUNT) & 3).astype(np.uint8) * 2
_TABLE_BYTE = np.arange(ENTRY_COUNT) >> 2


def encrypt_entries(keys: NvsKeys, plain: bytes, offsets: npt.NDArray[np.int64]) -> bytes:
    """Encrypt consecutive 32-byte entries whose partition offsets are ``offsets``."""
    return xts_encrypt(keys.xts_key, plain, tweaks_from_le32(offsets), ENTRY_SIZE)


def decrypt_entries(keys: NvsKeys, cipher: bytes, offsets: npt.NDArray[np.int64]) -> bytes:
    """Decrypt consecutive 32-byte entries whose partition offsets are ``offsets``."""
    return xts_decrypt(keys.xts_key, cipher, tweaks_from_le32(offsets), ENTRY_SIZE)


PAGES_PER_CALL = 64
"""Pages :func:`encrypt_pages_in_place` encrypts per XTS call (about 256 KiB)."""


def encrypt_pages_in_place(keys: NvsKeys, pages: npt.NDArray[np.uint8]) -> None:
    """Encrypt every entry slot of ``pages`` (``(n, 4096)``, writable, page 0 at offset 0).

    Works through :data:`PAGES_PER_CALL` pages at a time in one reused buffer, so the
    memory it needs does not grow with the partition. Headers and entry-state tables
    are left as they are; the caller re-erases the slots that must stay empty.
    """
    engine = XtsEngine(keys.xts_key, ENTRY_SIZE, threads=1)
    area = PAGE_SIZE - FIRST_ENTRY_OFFSET
    step = min(PAGES_PER_CALL, len(pages))
    buffer = np.empty(step * area, dtype=np.uint8)
    in_page = FIRST_ENTRY_OFFSET + np.arange(ENTRY_COUNT, dtype=np.int64) * ENTRY_SIZE
    for first in range(0, len(pages), step):
        n = min(step, len(pages) - first)
        chunk = buffer[: n * area]
        rows = chunk.reshape(n, area)
        rows[...] = pages[first : first + n, FIRST_ENTRY_OFFSET:]
        starts = np.arange(first, first + n, dtype=np.int64)[:, None] * PAGE_SIZE
        tweaks = tweaks_from_le32((starts + in_page[None, :]).reshape(-1))
        engine.process(chunk, tweaks, chunk)  # each batch is read before it is written
        pages[first : first + n, FIRST_ENTRY_OFFSET:] = rows


def _pages(data: bytes) -> npt.NDArray[np.uint8]:
    if not data or len(data) % PAGE_SIZE:
        raise FormatError(
            "NVS partition size must be a positive multiple of 4096",
            offset=0,
            expected="a multiple of 4096",
            found=len(data),
        )
    return np.frombuffer(data, dtype=np.uint8).reshape(-1, PAGE_SIZE)


def _entries(pages: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    return pages[:, FIRST_ENTRY_OFFSET:].reshape(len(pages), ENTRY_COUNT, ENTRY_SIZE)


def _transform(data: bytes, mask: npt.NDArray[np.bool_], keys: NvsKeys, *, decrypt: bool) -> bytes:
    pages = _pages(data)
    out = pages.copy()
    entries = _entries(out)
    page_idx, entry_idx = np.nonzero(mask)
    if page_idx.size:
        offsets = (
            page_idx.astype(np.int64) * PAGE_SIZE + FIRST_ENTRY_OFFSET + entry_idx * ENTRY_SIZE
        )
        block = entries[page_idx, entry_idx].tobytes()
        fn = decrypt_entries if decrypt else encrypt_entries
        done = np.frombuffer(fn(keys, block, offsets), dtype=np.uint8)
        entries[page_idx, entry_idx] = done.reshape(-1, ENTRY_SIZE)
    return out.tobytes()


def used_entry_mask(data: bytes) -> npt.NDArray[np.bool_]:
    """``(pages, 126)``: entries a plain partition has written or erased.

    Uses each page's entry-state table, so payload entries that happen to be all 0xFF
    are still counted as used.
    """
    pages = _pages(data)
    state = pages[:, :4].copy().view("<u4").reshape(-1)
    live = np.isin(state, [PageState.ACTIVE, PageState.FULL, PageState.FREEING])
    tables = pages[:, ENTRY_TABLE_OFFSET:FIRST_ENTRY_OFFSET]
    states = (tables[:, _TABLE_BYTE] >> _SHIFTS) & 3
    mask: npt.NDArray[np.bool_] = (states != EntryState.EMPTY) & live[:, None]
    return mask


def encrypt_partition(plain: bytes, keys: NvsKeys) -> bytes:
    """Encrypt every used entry of a plain NVS partition image."""
    return _transform(plain, used_entry_mask(plain), keys, decrypt=False)


def decrypt_partition(data: bytes, keys: NvsKeys) -> bytes:
    """Decrypt every entry slot that is not erased flash (all 0xFF).

    This is what ``esp-idf-nvs-partition-gen decrypt`` does; the result is the plain
    image the generator would have made.
    """
    entries = _entries(_pages(data))
    mask = ~np.all(entries == 0xFF, axis=2)
    return _transform(data, mask, keys, decrypt=True)
