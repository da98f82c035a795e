"""NVS pages parsed: :class:`PageHeader` (the first 32 bytes of a page) and
:class:`PageImage` (a whole page). The page layout and states are in
:mod:`espsec.nvs.layout`."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from espsec.errors import FormatError
from espsec.nvs.item import Item
from espsec.nvs.layout import (
    ENTRY_COUNT,
    ENTRY_SIZE,
    ENTRY_TABLE_OFFSET,
    FIRST_ENTRY_OFFSET,
    HEADER_SIZE,
    PAGE_SIZE,
    EntryState,
    PageState,
    crc_a,
    decode_entry_states,
    encode_entry_states,
    entry_offset,
)

_HEADER = struct.Struct("<IIB19sI")


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
