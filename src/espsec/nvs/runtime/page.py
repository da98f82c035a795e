"""One NVS page at run time (ESP-IDF ``nvs_page.cpp``).

Write order, which power-loss safety rests on: an entry is written first and only then
marked WRITTEN in the entry-state table; a variable-length item's header is written
and marked before its payload; entries are erased by marking them ERASED. On load, an
ACTIVE page drops entries that were written but not yet marked (or marked but not
fully written), items whose span is not fully written, items with a bad CRC, and older
duplicates of the same key.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from espsec.nvs.item import Item, make_item
from espsec.nvs.layout import (
    CHUNK_ANY,
    CHUNK_MAX_SIZE,
    ENTRY_COUNT,
    ENTRY_SIZE,
    ENTRY_TABLE_OFFSET,
    FIRST_ENTRY_OFFSET,
    HEADER_SIZE,
    PAGE_SIZE,
    PRIMITIVE_TYPES,
    VARIABLE_LENGTH_TYPES,
    VERSION_2,
    EntryState,
    ItemType,
    PageState,
    crc_a,
    decode_entry_states,
    entries_for,
    entry_offset,
    var_data,
)
from espsec.nvs.page import PageHeader
from espsec.nvs.runtime import errors
from espsec.nvs.runtime.errors import NvsError, PageFull
from espsec.nvs.runtime.partition import NvsPartition

HashKey = tuple[int, bytes, int]
"""What identifies an item within a page: namespace index, key, chunk index."""

_EMPTY, _WRITTEN, _ERASED = EntryState.EMPTY, EntryState.WRITTEN, EntryState.ERASED
_ENTRIES_PER_WORD = 16
_ERASED_AREA = b"\xff" * (ENTRY_COUNT * ENTRY_SIZE)
_ERASED_ENTRY = b"\xff" * ENTRY_SIZE
_KNOWN_TYPES = PRIMITIVE_TYPES | VARIABLE_LENGTH_TYPES | {ItemType.BLOB_IDX}


def hash_key(item: Item) -> HashKey:
    return (item.ns_index, item.key_bytes, item.chunk_index)


def _sane(item: Item, index: int) -> bool:
    """A CRC-valid header that also makes structural sense at ``index``."""
    if item.datatype not in _KNOWN_TYPES or item.span < 1 or index + item.span > ENTRY_COUNT:
        return False
    if item.datatype in VARIABLE_LENGTH_TYPES:
        return item.var_size <= (item.span - 1) * ENTRY_SIZE
    return item.span == 1


class Page:
    """A page's state, its entry-state table and an index of its items."""

    def __init__(self, partition: NvsPartition, sector: int) -> None:
        self.partition = partition
        self.sector = sector
        self.base = sector * PAGE_SIZE
        self.state: int = PageState.UNINITIALIZED
        self.seq = 0
        self.version = VERSION_2
        self.table: list[int] = [_EMPTY] * ENTRY_COUNT
        self.first_used: int | None = None
        self.next_free = 0
        self.used = 0
        self.erased = 0
        self.items: dict[int, Item] = {}
        self._hash: dict[HashKey, list[int]] = {}
        self._plain = bytearray(_ERASED_AREA)
        """Plain text of the entries as on flash (no decryption on every read)."""

    def __repr__(self) -> str:
        return f"Page(sector={self.sector}, state=0x{self.state:x}, seq={self.seq})"

    # -- load ---------------------------------------------------------------------------

    def load(self, raw: bytes | None = None, plain: bytes | None = None) -> None:
        """Read the page from flash, repairing what a power cut may have left behind.

        ``raw`` (the page as on flash) and ``plain`` (its entries decrypted) can be
        passed in when the caller has read and decrypted many pages at once.
        """
        if raw is None:
            raw = self.partition.read_raw(self.base, PAGE_SIZE)
        header = PageHeader.parse(raw[:HEADER_SIZE])
        if header.state == PageState.UNINITIALIZED:
            self.state = (
                PageState.UNINITIALIZED if raw.count(0xFF) == PAGE_SIZE else PageState.CORRUPT
            )
            return
        if not header.crc_ok:
            self.state = PageState.CORRUPT
            return
        if header.version < VERSION_2:
            raise NvsError(
                errors.NEW_VERSION_FOUND,
                f"page {self.sector} has NVS format version 0x{header.version:02x}, newer "
                "than this implementation",
            )
        self.seq = header.seq
        self.version = header.version
        if header.state in (PageState.ACTIVE, PageState.FULL, PageState.FREEING):
            self.state = header.state
            area = raw[FIRST_ENTRY_OFFSET:]
            if plain is None:
                plain = self.partition.decode(area, self.base + FIRST_ENTRY_OFFSET)
            self._load_entry_table(raw[ENTRY_TABLE_OFFSET:FIRST_ENTRY_OFFSET], area, plain)
        else:
            self.state = PageState.CORRUPT

    def _load_entry_table(self, table: bytes, raw: bytes, plain: bytes) -> None:
        self.table = decode_entry_states(table)
        self._plain = bytearray(plain)
        self.used = self.table.count(_WRITTEN)
        self.erased = self.table.count(_ERASED)
        self.first_used = next((i for i, s in enumerate(self.table) if s == _WRITTEN), None)

        def item_at(i: int) -> Item:
            return Item.parse(plain[i * ENTRY_SIZE : (i + 1) * ENTRY_SIZE])

        if self.state != PageState.ACTIVE:
            self.next_free = ENTRY_COUNT
            i = self.first_used if self.first_used is not None else ENTRY_COUNT
            while i < ENTRY_COUNT:
                if self.table[i] != _WRITTEN:
                    i += 1
                    continue
                item = item_at(i)
                if not item.crc_ok or not _sane(item, i):
                    self.erase_entry_and_span(i)
                    i += 1
                    continue
                self._insert(i, item)
                if any(self.table[j] != _WRITTEN for j in range(i + 1, i + item.span)):
                    self.erase_entry_and_span(i)
                i += item.span
            return

        # ACTIVE: the first empty entry is where writing stopped, unless a write
        # reached flash but not the entry-state table: such entries are erased.
        # (ESP-IDF looks at an entry's first word only; a payload entry starting with
        # 0xFFFFFFFF would then be taken for free space and written over.)
        nf = self.table.index(_EMPTY) if _EMPTY in self.table else ENTRY_COUNT
        while nf < ENTRY_COUNT and raw[nf * ENTRY_SIZE : (nf + 1) * ENTRY_SIZE] != _ERASED_ENTRY:
            self._set_erased(nf)
            nf += 1
        self.next_free = nf
        i = 0
        while i < nf:
            state = self.table[i]
            if state != _WRITTEN:
                if state != _ERASED:
                    self._set_erased(i)
                i += 1
                continue
            item = item_at(i)
            if not item.crc_ok or not _sane(item, i):
                self.erase_entry_and_span(i)
                i += 1
                continue
            span = item.span
            self._insert(i, item)
            if any(self.table[j] != _WRITTEN for j in range(i, i + span)):
                self.erase_entry_and_span(i)
                i += span
                continue
            # A power cut between writing a new value and erasing the old one leaves
            # both: the later one wins.
            same = self._hash[hash_key(item)]
            for older in [j for j in same if j < i]:
                self.erase_entry_and_span(older)
            i += span

    # -- entry-state table --------------------------------------------------------------

    def _write_table_word(self, word: int) -> None:
        first = word * _ENTRIES_PER_WORD
        states = self.table[first : first + _ENTRIES_PER_WORD]
        value = 0xFFFFFFFF << (2 * len(states)) & 0xFFFFFFFF
        for k, state in enumerate(states):
            value |= state << (2 * k)
        self.partition.write_raw(
            self.base + ENTRY_TABLE_OFFSET + 4 * word, value.to_bytes(4, "little")
        )

    def _alter_state(self, index: int, state: int) -> None:
        self.table[index] = state
        self._write_table_word(index // _ENTRIES_PER_WORD)

    def _alter_range(self, begin: int, end: int, state: int) -> None:
        """Set entries ``begin..end-1``, writing table words from the last one back."""
        for i in range(end - 1, begin - 1, -1):
            self.table[i] = state
            if i == begin or (i - 1) // _ENTRIES_PER_WORD != i // _ENTRIES_PER_WORD:
                self._write_table_word(i // _ENTRIES_PER_WORD)

    def _set_erased(self, index: int) -> None:
        old = self.table[index]
        self._alter_state(index, _ERASED)
        if old == _WRITTEN:
            self.used -= 1
        if old != _ERASED:
            self.erased += 1

    def _alter_page_state(self, state: PageState) -> None:
        self.partition.write_raw(self.base, struct.pack("<I", state))
        self.state = state

    # -- item index ---------------------------------------------------------------------

    def _insert(self, index: int, item: Item) -> None:
        self.items[index] = item
        self._hash.setdefault(hash_key(item), []).append(index)

    def _remove(self, index: int) -> None:
        item = self.items.pop(index, None)
        if item is None:
            return
        indices = self._hash[hash_key(item)]
        indices.remove(index)
        if not indices:
            del self._hash[hash_key(item)]

    def find(self, ns: int, key: bytes, chunk_index: int = CHUNK_ANY) -> tuple[int, Item] | None:
        """The first item with this namespace, key and chunk index."""
        indices = self._hash.get((ns, key, chunk_index))
        if not indices:
            return None
        index = min(indices)
        return index, self.items[index]

    def find_all(self, ns: int, key: bytes, chunk_index: int = CHUNK_ANY) -> list[int]:
        """Every item with this namespace, key and chunk index, in entry order."""
        return sorted(self._hash.get((ns, key, chunk_index), ()))

    def iter_items(self) -> Iterator[tuple[int, Item]]:
        """``(index, item)`` of every valid item, in entry order."""
        yield from sorted(self.items.items())

    # -- read ---------------------------------------------------------------------------

    def read_entries(self, index: int, count: int) -> bytes:
        """Entries ``index .. index+count-1`` in plain text."""
        return bytes(self._plain[index * ENTRY_SIZE : (index + count) * ENTRY_SIZE])

    def read_payload(self, index: int, *, erase_corrupt: bool = True) -> bytes | None:
        """The payload of the variable-length item at ``index``, or None if corrupt.

        A payload whose CRC does not match is erased, as ESP-IDF does on a read, unless
        ``erase_corrupt`` is false (a comparison).
        """
        item = self.items[index]
        data = self.read_entries(index + 1, item.span - 1)[: item.var_size]
        if crc_a(data) != item.var_crc:
            if erase_corrupt:
                self.erase_entry_and_span(index)
            return None
        return data

    # -- write --------------------------------------------------------------------------

    def initialize(self) -> None:
        """Turn an erased page into the ACTIVE page with this page's sequence number."""
        self.state = PageState.ACTIVE
        self.version = VERSION_2
        self.partition.write_raw(
            self.base, PageHeader.make(PageState.ACTIVE, self.seq, self.version).to_bytes()
        )
        self.next_free = 0
        self.table = [_EMPTY] * ENTRY_COUNT

    def write_entry(self, raw: bytes) -> int:
        """Write one entry at the next free slot, then mark it WRITTEN; return its index."""
        index = self.next_free
        self.partition.write(self.base + entry_offset(index), raw)
        self._plain[index * ENTRY_SIZE : (index + 1) * ENTRY_SIZE] = raw
        self._alter_state(index, _WRITTEN)
        if self.first_used is None:
            self.first_used = index
        self.used += 1
        self.next_free += 1
        return index

    def _write_entry_data(self, data: bytes) -> None:
        count = len(data) // ENTRY_SIZE
        self.partition.write(self.base + entry_offset(self.next_free), data)
        at = self.next_free * ENTRY_SIZE
        self._plain[at : at + len(data)] = data
        self._alter_range(self.next_free, self.next_free + count, _WRITTEN)
        self.used += count
        self.next_free += count

    def write_item(
        self,
        ns: int,
        datatype: ItemType,
        key: bytes,
        data: bytes,
        chunk_index: int = CHUNK_ANY,
    ) -> None:
        """Append an item (``data``: the 8-byte data field, or the payload).

        Raises :class:`PageFull` when it does not fit in what is left of the page.
        """
        if self.state == PageState.INVALID:
            raise NvsError(errors.INVALID_STATE, "page is in an invalid state")
        if self.state == PageState.UNINITIALIZED:
            self.initialize()
        if self.state == PageState.FULL:
            raise PageFull
        variable = datatype in VARIABLE_LENGTH_TYPES
        if variable and len(data) > CHUNK_MAX_SIZE:
            raise NvsError(errors.VALUE_TOO_LONG, f"value of {len(data)} bytes is too long")
        span = 1 + entries_for(len(data)) if variable else 1
        if self.next_free + span > ENTRY_COUNT:
            raise PageFull
        key_field = key + b"\0" * (16 - len(key))
        if not variable:
            item = make_item(ns, datatype, key_field, data, chunk_index=chunk_index)
            self._insert(self.write_entry(item.to_bytes()), item)
            return
        header = make_item(
            ns,
            datatype,
            key_field,
            var_data(len(data), crc_a(data)),
            span=span,
            chunk_index=chunk_index,
        )
        self._insert(self.write_entry(header.to_bytes()), header)
        whole = len(data) // ENTRY_SIZE * ENTRY_SIZE
        if whole:
            self._write_entry_data(data[:whole])
        if whole < len(data):
            tail = data[whole:]
            self.write_entry(tail + b"\xff" * (ENTRY_SIZE - len(tail)))

    # -- erase --------------------------------------------------------------------------

    def erase_entry_and_span(self, index: int) -> None:
        """Mark the item at ``index`` and its payload entries ERASED."""
        span = 1
        if self.table[index] == _WRITTEN:
            item = self.items.get(index)
            if item is None:
                self._set_erased(index)
            else:
                self._remove(index)
                span = item.span
                for j in range(index, index + span):
                    if self.table[j] == _WRITTEN:
                        self.used -= 1
                    if self.table[j] != _ERASED:
                        self.erased += 1
                if span == 1:
                    self._alter_state(index, _ERASED)
                else:
                    self._alter_range(index, index + span, _ERASED)
        else:
            self._set_erased(index)
        if index == self.first_used:
            self.first_used = next(
                (
                    j
                    for j in range(index + span, min(self.next_free, ENTRY_COUNT))
                    if self.table[j] == _WRITTEN
                ),
                None,
            )
        self.next_free = max(self.next_free, index + span)

    def copy_items(self, other: Page) -> None:
        """Copy every written item to ``other`` (garbage collection)."""
        if self.first_used is None:
            return
        if other.state == PageState.UNINITIALIZED:
            other.initialize()
        i = self.first_used
        while i < ENTRY_COUNT:
            if self.table[i] != _WRITTEN:
                i += 1
                continue
            raw = self.read_entries(i, 1)
            item = Item.parse(raw)
            other._insert(other.write_entry(raw), item)
            for j in range(i + 1, i + item.span):
                other.write_entry(self.read_entries(j, 1))
            i += item.span

    def erase(self) -> None:
        """Erase the sector; the page becomes UNINITIALIZED."""
        self.partition.erase_page(self.sector)
        self.used = 0
        self.erased = 0
        self.first_used = None
        self.next_free = 0
        self.state = PageState.UNINITIALIZED
        self.version = VERSION_2
        self.table = [_EMPTY] * ENTRY_COUNT
        self.items.clear()
        self._hash.clear()
        self._plain = bytearray(_ERASED_AREA)

    def mark_freeing(self) -> None:
        if self.state not in (PageState.FULL, PageState.ACTIVE):
            raise NvsError(errors.INVALID_STATE, "only a full or active page can be freed")
        self._alter_page_state(PageState.FREEING)

    def mark_full(self) -> None:
        if self.state != PageState.ACTIVE:
            raise NvsError(errors.INVALID_STATE, "only the active page can be marked full")
        self._alter_page_state(PageState.FULL)

    def var_data_tailroom(self) -> int:
        """Payload bytes one more item could still carry on this page."""
        if self.state == PageState.UNINITIALIZED:
            return CHUNK_MAX_SIZE
        if self.state == PageState.FULL:
            return 0
        if self.next_free < ENTRY_COUNT - 1:
            return (ENTRY_COUNT - self.next_free - 1) * ENTRY_SIZE
        return 0
