"""NVS encryption of whole partition images (``nvs_encrypted_partition.cpp``).

XTS-AES-256 with key ``eky ‖ tky``; every 32-byte entry is its own data unit and its
tweak is the entry's offset in the partition (LE32, then 12 zero bytes). Page headers
and entry-state tables stay in plain text; empty entries stay 0xFF.

A partition being generated is encrypted in place, a few pages at a time, without NumPy
(:func:`encrypt_pages_in_place`): a 32-byte entry is only two AES blocks, so its XTS
masks ``T`` and ``T * alpha`` are computed for many entries at once as one Python
integer with one 256-bit lane per entry, and the data is XORed with them the same way.
Converting existing images (:func:`encrypt_partition`, :func:`decrypt_partition`) and
single entries goes through the vectorised XTS engine (NumPy).
"""

from __future__ import annotations

import functools
import struct
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from espsec.errors import FormatError
from espsec.nvs.layout import (
    ENTRY_COUNT,
    ENTRY_SIZE,
    ENTRY_TABLE_OFFSET,
    FIRST_ENTRY_OFFSET,
    PAGE_SIZE,
    EntryState,
    PageState,
)
from espsec.nvs.nvs_keys import NvsKeys

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


def encrypt_entries(keys: NvsKeys, plain: bytes, offsets: npt.NDArray[np.int64]) -> bytes:
    """Encrypt consecutive 32-byte entries whose partition offsets are ``offsets``."""
    from espsec.flash_encryption.xts import tweaks_from_le32, xts_encrypt

    return xts_encrypt(keys.xts_key, plain, tweaks_from_le32(offsets), ENTRY_SIZE)


def decrypt_entries(keys: NvsKeys, cipher: bytes, offsets: npt.NDArray[np.int64]) -> bytes:
    """Decrypt consecutive 32-byte entries whose partition offsets are ``offsets``."""
    from espsec.flash_encryption.xts import tweaks_from_le32, xts_decrypt

    return xts_decrypt(keys.xts_key, cipher, tweaks_from_le32(offsets), ENTRY_SIZE)


PAGES_PER_CALL = 64
"""Pages :func:`encrypt_pages_in_place` encrypts per step (about 256 KiB)."""

_LANE = struct.Struct("<I28x")  # an entry's tweak in its 32-byte lane: LE32(offset), zeros
_ALPHA_FOLD = 0x87  # x^128 = x^7 + x^2 + x + 1 in XTS's GF(2^128)


@functools.cache
def _lanes(pages: int) -> tuple[int, int, int, int]:
    """Constants for ``pages`` pages of entries, one 256-bit lane per entry.

    Bit 0 of every lane; the low 128 bits of every lane; the same without bit 0; and
    the tweaks of the entries of pages ``0 .. pages-1`` (each entry's offset).
    """
    count = pages * ENTRY_COUNT
    lane_bit = int.from_bytes((b"\x01" + bytes(ENTRY_SIZE - 1)) * count, "little")
    low = int.from_bytes((b"\xff" * 16 + bytes(16)) * count, "little")
    offsets = [
        page * PAGE_SIZE + FIRST_ENTRY_OFFSET + entry * ENTRY_SIZE
        for page in range(pages)
        for entry in range(ENTRY_COUNT)
    ]
    tweaks = int.from_bytes(b"".join(map(_LANE.pack, offsets)), "little")
    return lane_bit, low, low ^ lane_bit, tweaks


def encrypt_pages_in_place(
    keys: NvsKeys, image: bytearray | memoryview, pages: int | None = None, *, first_page: int = 0
) -> None:
    """Encrypt every entry slot of the first ``pages`` pages of ``image`` (writable; default:
    all of it), whose first page is page ``first_page`` of the partition.

    Works through :data:`PAGES_PER_CALL` pages at a time, so the memory it needs does not
    grow with the partition. Headers and entry-state tables are left as they are; the
    caller re-erases the slots that must stay empty.
    """
    view = memoryview(image).cast("B")
    count = len(view) // PAGE_SIZE if pages is None else pages
    tweak_ecb = Cipher(algorithms.AES(keys.tky), modes.ECB()).encryptor()  # noqa: S305
    data_ecb = Cipher(algorithms.AES(keys.eky), modes.ECB()).encryptor()  # noqa: S305
    area = PAGE_SIZE - FIRST_ENTRY_OFFSET
    for first in range(0, count, PAGES_PER_CALL):
        n = min(PAGES_PER_CALL, count - first)
        lane_bit, low, low_but_bit0, tweaks = _lanes(n)
        size = n * area
        # every entry's tweak, encrypted: T in the low half of its lane
        plain_tweaks = tweaks + (first_page + first) * PAGE_SIZE * lane_bit  # below 2^32
        t = int.from_bytes(tweak_ecb.update(plain_tweaks.to_bytes(size, "little")), "little")
        t &= low
        # T * alpha: shift left by one within the lane's low half, fold the top bit back
        t_alpha = ((t << 1) & low_but_bit0) ^ (((t >> 127) & lane_bit) * _ALPHA_FOLD)
        masks = t | (t_alpha << 128)
        starts = range(first * PAGE_SIZE + FIRST_ENTRY_OFFSET, (first + n) * PAGE_SIZE, PAGE_SIZE)
        plain = int.from_bytes(b"".join([view[s : s + area] for s in starts]), "little")
        mixed = data_ecb.update((plain ^ masks).to_bytes(size, "little"))
        cipher = (int.from_bytes(mixed, "little") ^ masks).to_bytes(size, "little")
        for i, start in enumerate(starts):
            view[start : start + area] = cipher[i * area : (i + 1) * area]


def _pages(data: bytes) -> npt.NDArray[np.uint8]:
    import numpy as np

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
    import numpy as np

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
    import numpy as np

    pages = _pages(data)
    state = pages[:, :4].copy().view("<u4").reshape(-1)
    live = np.isin(state, [PageState.ACTIVE, PageState.FULL, PageState.FREEING])
    tables = pages[:, ENTRY_TABLE_OFFSET:FIRST_ENTRY_OFFSET]
    slots = np.arange(ENTRY_COUNT)
    states = (tables[:, slots >> 2] >> ((slots & 3) * 2).astype(np.uint8)) & 3
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
    import numpy as np

    entries = _entries(_pages(data))
    mask = ~np.all(entries == 0xFF, axis=2)
    return _transform(data, mask, keys, decrypt=True)
