"""NVS pages: one 4096-byte flash sector each (``nvs_page.hpp``).

A page is a 32-byte header (state, sequence number, format version, crcA), a 32-byte
entry-state table (2 bits per entry: ``11`` empty, ``10`` written, ``00`` erased) and
126 entries of 32 bytes. States only ever clear bits, so they can be updated in place
on NOR flash.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import IntEnum

from espsec.errors import FormatError
from espsec.nvs.item import ENTRY_SIZE, Item, crc_a

PAGE_SIZE = 4096
HEADER_SIZE = 32
ENTRY_TABLE_OFFSET = 32
ENTRY_TABLE_SIZE = 32
FIRST_ENTRY_OFFSET = 64
ENTRY_COUNT = 126
CHUNK_MAX_SIZE = (ENTRY_COUNT - 1) * ENTRY_SIZE
"""Largest payload one item can carry in one page (4000 bytes)."""
VERSION_1 = 0xFF
"""Page format version byte of NVS without multi-page blobs."""
VERSION_2 = 0xFE
"""Page format version byte of NVS with multi-page blobs (the current one)."""


class PageState(IntEnum):
    """The header's first word; each step clears one more bit."""

    UNINITIALIZED = 0xFFFFFFFF
    ACTIVE = 0xFFFFFFFE
    FULL = 0xFFFFFFFC
    FREEING = 0xFFFFFFF8
    CORRUPT = 0xFFFFFFF0
    INVALID = 0
    """Runtime only: a flash operation on the page failed."""


class EntryState(IntEnum):
    EMPTY = 0b11
    WRITTEN = 0b10
    ERASED = 0b00
    ILLEGAL = 0b01


_HEADER = struct.Struct("<IIB19sI")


def entry_offset(index: int) -> int:
    """Offset of entry ``index`` inside its page."""
    return FIRST_ENTRY_OFFSET + ENTRY_SIZE * index


@dataclass(frozen=True)
class PageHeader:
    """The first 32 bytes of a page."""

    state: int
    seq: int
    version: int
    crc32: int
    reserved: bytes = b"\xff" * 19

    @classmethod
    def make(cls, state: int, seq: int, version: int) -> PageHeader:
        """A header with its CRC computed."""
        body = struct.pack("<IB19s", seq, version, b"\xff" * 19)
        return cls(state, seq, version, crc_a(body))

    def calculate_crc(self) -> int:
        return crc_a(struct.pack("<IB19s", self.seq, self.version, self.reserved))

    @property
    def crc_ok(self) -> bool:
        return self.crc32 == self.calculate_crc()

    def to_bytes(self) -> bytes:
        return _HEADER.pack(self.state, self.seq, self.version, self.reserved, self.crc32)

    @classmethod
    def parse(cls, raw: bytes) -> PageHeader:
        if len(raw) != HEADER_SIZE:
            raise FormatError("page header must be 32 bytes", expected=32, found=len(raw))
        state, seq, version, reserved, crc = _HEADER.unpack(raw)
        return cls(state, seq, version, crc, reserved)


def decode_entry_states(table: bytes) -> list[int]:
    """The 126 two-bit states of a 32-byte entry-state table."""
    return [(table[i >> 2] >> ((i & 3) * 2)) & 3 for i in range(ENTRY_COUNT)]


def encode_entry_states(states: Sequence[int]) -> bytes:
    """The 32-byte table for ``states`` (bits past the last entry stay 1)."""
    table = bytearray(b"\xff" * ENTRY_TABLE_SIZE)
    for i, state in enumerate(states):
        shift = (i & 3) * 2
        table[i >> 2] = (table[i >> 2] & ~(3 << shift)) | ((state & 3) << shift)
    return bytes(table)


_LOW_BITS = int.from_bytes(b"\x55" * ENTRY_TABLE_SIZE, "little")
"""The low bit of every entry's two-bit state."""


def written_entry_table(count: int) -> bytes:
    """The table of a page whose first ``count`` entries are written and the rest empty:
    :func:`encode_entry_states` of ``count`` times WRITTEN (``10``: EMPTY with its low
    bit cleared), in a few integer operations instead of a loop over the entries."""
    empty = (1 << 8 * ENTRY_TABLE_SIZE) - 1
    written = _LOW_BITS & ((1 << 2 * count) - 1)
    return (empty ^ written).to_bytes(ENTRY_TABLE_SIZE, "little")


@dataclass(frozen=True)
class PageImage:
    """A whole page as stored, for inspection and strict parsing.

    ``entries`` are the 126 raw (for an encrypted partition: decrypted) entries.
    """

    header: PageHeader
    entry_states: tuple[int, ...]
    entries: tuple[bytes, ...]

    @classmethod
    def parse(cls, data: bytes, *, offset: int = 0) -> PageImage:
        """Parse a 4096-byte page; ``offset`` is where it sits in the partition."""
        if len(data) != PAGE_SIZE:
            raise FormatError(
                "page must be 4096 bytes", offset=offset, expected=PAGE_SIZE, found=len(data)
            )
        header = PageHeader.parse(data[:HEADER_SIZE])
        if header.state == PageState.UNINITIALIZED:
            if data.count(0xFF) != PAGE_SIZE:
                raise FormatError(
                    "uninitialized page holds data", offset=offset, field="page state"
                )
        elif header.state not in (PageState.ACTIVE, PageState.FULL, PageState.FREEING):
            raise FormatError(
                "unknown page state", offset=offset, field="page state", found=header.state
            )
        elif not header.crc_ok:
            raise FormatError(
                "page header CRC mismatch",
                offset=offset + 28,
                field="header crc32",
                expected=header.calculate_crc(),
                found=header.crc32,
            )
        states = tuple(decode_entry_states(data[ENTRY_TABLE_OFFSET:FIRST_ENTRY_OFFSET]))
        entries = tuple(
            bytes(data[entry_offset(i) : entry_offset(i) + ENTRY_SIZE]) for i in range(ENTRY_COUNT)
        )
        return cls(header, states, entries)

    def to_bytes(self) -> bytes:
        return (
            self.header.to_bytes() + encode_entry_states(self.entry_states) + b"".join(self.entries)
        )

    def items(self) -> Iterator[tuple[int, Item]]:
        """``(index, item)`` of each written item header, skipping payload entries."""
        i = 0
        while i < ENTRY_COUNT:
            if self.entry_states[i] != EntryState.WRITTEN:
                i += 1
                continue
            item = Item.parse(self.entries[i])
            yield i, item
            i += item.span if item.crc_ok and item.span > 0 else 1
