"""The NVS layout on flash: entry and page geometry, item types, page and entry states,
and the packing of entry fields (ESP-IDF ``nvs_types.hpp``, ``nvs_page.hpp`` and
``private_include/nvs_constants.h``).

An item is a 32-byte entry (``Item`` in ``nvs_types.hpp``)::

    0  nsIndex   1  datatype   2  span   3  chunkIndex   4..8  crc32
    8..24  key (NUL-padded, at most 15 bytes)   24..32  data

``crc32`` is crcA over bytes 0..4 and 8..32. For strings and blobs ``data`` holds the
payload size and crcA; the payload follows in ``span - 1`` entries. A blob index
(``BLOB_IDX``) holds the total size, chunk count and chunk-start version instead.

A page is one 4096-byte flash sector: a 32-byte header (state, sequence number, format
version, crcA), a 32-byte entry-state table (2 bits per entry: ``11`` empty, ``10``
written, ``00`` erased) and 126 entries of 32 bytes. States only ever clear bits, so
they can be updated in place on NOR flash.

Only constants, enums and small functions live here, so that generating a partition
does not build the parsed-item and page classes (:mod:`espsec.nvs.item`,
:mod:`espsec.nvs.page`).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from enum import IntEnum

# -- items ------------------------------------------------------------------------------

ENTRY_SIZE = 32
KEY_FIELD_SIZE = 16
MAX_KEY_LENGTH = KEY_FIELD_SIZE - 1
CHUNK_ANY = 0xFF
"""``chunkIndex`` of everything that is not a multi-page blob chunk."""
NS_INDEX = 0
"""Namespace index of the namespace table itself."""
VER_0_OFFSET = 0x00
VER_1_OFFSET = 0x80
"""The two ``chunkStart`` values a blob index toggles between on each rewrite."""


class ItemType(IntEnum):
    """``ItemType`` / ``nvs_type_t``: the low nibble is the size, 0x10 marks signed."""

    U8 = 0x01
    I8 = 0x11
    U16 = 0x02
    I16 = 0x12
    U32 = 0x04
    I32 = 0x14
    U64 = 0x08
    I64 = 0x18
    FLOAT = 0x24
    """ESP-IDF master only; not produced by the PyPI generator."""
    DOUBLE = 0x28
    """ESP-IDF master only; not produced by the PyPI generator."""
    SZ = 0x21
    """A NUL-terminated string in one page."""
    BLOB = 0x41
    """Version 1 blob: one item, payload in the same page."""
    BLOB_DATA = 0x42
    """Version 2 blob chunk."""
    BLOB_IDX = 0x48
    """Version 2 blob index naming its chunks."""
    ANY = 0xFF


PRIMITIVE_TYPES = frozenset(
    {
        ItemType.U8,
        ItemType.I8,
        ItemType.U16,
        ItemType.I16,
        ItemType.U32,
        ItemType.I32,
        ItemType.U64,
        ItemType.I64,
        ItemType.FLOAT,
        ItemType.DOUBLE,
    }
)
VARIABLE_LENGTH_TYPES = frozenset({ItemType.SZ, ItemType.BLOB, ItemType.BLOB_DATA})
KNOWN_TYPES = frozenset(t.value for t in ItemType if t is not ItemType.ANY)
"""The ``datatype`` bytes an item may hold."""
PRIMITIVE_FORMATS: dict[int, str] = {
    ItemType.U8: "<B",
    ItemType.I8: "<b",
    ItemType.U16: "<H",
    ItemType.I16: "<h",
    ItemType.U32: "<I",
    ItemType.I32: "<i",
    ItemType.U64: "<Q",
    ItemType.I64: "<q",
    ItemType.FLOAT: "<f",
    ItemType.DOUBLE: "<d",
}
"""``struct`` format of each primitive type's value."""
VAR_DATA = struct.Struct("<HHI")
"""The data field of a string, v1 blob or blob chunk: payload size, 0xFFFF, payload crcA."""
INDEX_DATA = struct.Struct("<IBBH")
"""The data field of a ``BLOB_IDX`` item: total size, chunk count, chunk start, 0xFFFF."""


def crc_a(data: bytes) -> int:
    """ESP-IDF's ``esp_rom_crc32_le(0xFFFFFFFF, data)``."""
    return zlib.crc32(data, 0xFFFFFFFF)


def pack_primitive(datatype: ItemType, value: int | float) -> bytes:
    """The 8-byte data field of a primitive item: the value LE, padded with 0xFF."""
    raw = struct.pack(PRIMITIVE_FORMATS[datatype], value)
    return raw + b"\xff" * (8 - len(raw))


def unpack_primitive(datatype: int, data: bytes) -> int | float:
    """The value held in the data field of a primitive item."""
    fmt = PRIMITIVE_FORMATS[datatype]
    value: int | float = struct.unpack_from(fmt, data)[0]
    return value


def encode_key(key: str) -> bytes:
    """The 16-byte key field; raises :class:`ValueError` for keys NVS cannot hold."""
    raw = key.encode("utf-8")
    if not raw:
        raise ValueError("key must not be empty")
    if len(raw) > MAX_KEY_LENGTH:
        raise ValueError(f"key {key!r} is {len(raw)} bytes long, at most 15 allowed")
    if b"\0" in raw:
        raise ValueError(f"key {key!r} contains a NUL character")
    return raw + b"\0" * (KEY_FIELD_SIZE - len(raw))


def var_data(size: int, payload_crc: int) -> bytes:
    """The data field of a string / v1 blob / blob chunk header."""
    return VAR_DATA.pack(size, 0xFFFF, payload_crc)


def blob_index_data(total_size: int, chunk_count: int, chunk_start: int) -> bytes:
    """The data field of a ``BLOB_IDX`` item."""
    return INDEX_DATA.pack(total_size, chunk_count, chunk_start, 0xFFFF)


def entries_for(size: int) -> int:
    """Number of 32-byte entries a payload of ``size`` bytes occupies."""
    return (size + ENTRY_SIZE - 1) // ENTRY_SIZE


# -- pages ------------------------------------------------------------------------------

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


def entry_offset(index: int) -> int:
    """Offset of entry ``index`` inside its page."""
    return FIRST_ENTRY_OFFSET + ENTRY_SIZE * index


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
