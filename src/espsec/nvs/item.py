"""NVS items: the 32-byte entry every key, namespace and blob chunk is stored in.

Layout (``Item`` in ESP-IDF ``nvs_types.hpp``)::

    0  nsIndex   1  datatype   2  span   3  chunkIndex   4..8  crc32
    8..24  key (NUL-padded, at most 15 bytes)   24..32  data

``crc32`` is crcA over bytes 0..4 and 8..32. For strings and blobs ``data`` holds the
payload size and crcA; the payload follows in ``span - 1`` entries. A blob index
(``BLOB_IDX``) holds the total size, chunk count and chunk-start version instead.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from enum import IntEnum

from espsec.errors import FormatError

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
_KNOWN_TYPES = {t.value for t in ItemType if t is not ItemType.ANY}
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
_VAR = struct.Struct("<HHI")
_IDX = struct.Struct("<IBBH")


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


@dataclass(frozen=True)
class Item:
    """One 32-byte NVS entry header (or a namespace / primitive entry)."""

    ns_index: int
    datatype: int
    span: int
    chunk_index: int
    key_field: bytes
    data: bytes
    crc32: int
    """The stored CRC (see :func:`make_item` to compute it)."""
    key_bytes: bytes = field(init=False, repr=False, compare=False)
    """The key as stored, up to its first NUL."""

    @property
    def key(self) -> str:
        """The key up to its first NUL (undecodable bytes escaped)."""
        return self.key_field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")

    def __post_init__(self) -> None:
        # Looked up on every index operation: computed once.
        object.__setattr__(self, "key_bytes", self.key_field.split(b"\0", 1)[0][:MAX_KEY_LENGTH])

    @property
    def var_size(self) -> int:
        """Payload size of a string, v1 blob or blob chunk."""
        size: int = _VAR.unpack_from(self.data)[0]
        return size

    @property
    def var_crc(self) -> int:
        crc: int = _VAR.unpack_from(self.data)[2]
        return crc

    @property
    def blob_size(self) -> int:
        """Total size of the blob a ``BLOB_IDX`` item describes."""
        size: int = _IDX.unpack_from(self.data)[0]
        return size

    @property
    def chunk_count(self) -> int:
        return self.data[4]

    @property
    def chunk_start(self) -> int:
        return self.data[5]

    def calculate_crc(self) -> int:
        """crcA over the entry without its CRC field."""
        head = bytes((self.ns_index, self.datatype, self.span, self.chunk_index))
        return crc_a(head + self.key_field + self.data)

    @property
    def crc_ok(self) -> bool:
        return self.crc32 == self.calculate_crc()

    def to_bytes(self) -> bytes:
        return (
            bytes((self.ns_index, self.datatype, self.span, self.chunk_index))
            + struct.pack("<I", self.crc32)
            + self.key_field
            + self.data
        )

    @classmethod
    def parse(cls, raw: bytes, *, offset: int = 0) -> Item:
        """Read one entry; checks only its size (use :attr:`crc_ok` and :meth:`check`)."""
        if len(raw) != ENTRY_SIZE:
            raise FormatError(
                "entry must be 32 bytes", offset=offset, expected=ENTRY_SIZE, found=len(raw)
            )
        return cls(
            ns_index=raw[0],
            datatype=raw[1],
            span=raw[2],
            chunk_index=raw[3],
            key_field=bytes(raw[8:24]),
            data=bytes(raw[24:32]),
            crc32=struct.unpack_from("<I", raw, 4)[0],
        )

    def check(self, *, offset: int = 0) -> None:
        """Raise :class:`FormatError` unless this is a well-formed item header."""
        if not self.crc_ok:
            raise FormatError(
                "entry CRC mismatch",
                offset=offset + 4,
                field="crc32",
                expected=self.calculate_crc(),
                found=self.crc32,
            )
        if self.datatype not in _KNOWN_TYPES:
            raise FormatError("unknown item type", offset=offset + 1, found=self.datatype)
        if self.span < 1 or (self.datatype not in VARIABLE_LENGTH_TYPES and self.span != 1):
            raise FormatError("bad span for item type", offset=offset + 2, found=self.span)


def make_item(
    ns_index: int,
    datatype: ItemType,
    key_field: bytes,
    data: bytes,
    *,
    span: int = 1,
    chunk_index: int = CHUNK_ANY,
) -> Item:
    """A new item with its CRC computed."""
    head = bytes((ns_index, int(datatype), span, chunk_index))
    crc = crc_a(head + key_field + data)
    return Item(ns_index, int(datatype), span, chunk_index, key_field, data, crc)


def var_data(size: int, payload_crc: int) -> bytes:
    """The data field of a string / v1 blob / blob chunk header."""
    return _VAR.pack(size, 0xFFFF, payload_crc)


def blob_index_data(total_size: int, chunk_count: int, chunk_start: int) -> bytes:
    """The data field of a ``BLOB_IDX`` item."""
    return _IDX.pack(total_size, chunk_count, chunk_start, 0xFFFF)


def entries_for(size: int) -> int:
    """Number of 32-byte entries a payload of ``size`` bytes occupies."""
    return (size + ENTRY_SIZE - 1) // ENTRY_SIZE
