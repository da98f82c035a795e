"""NVS items: the 32-byte entry every key, namespace and blob chunk is stored in, parsed
(:class:`Item`). Its layout, the item types and the packing of its fields are in
:mod:`espsec.nvs.layout`."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from espsec.errors import FormatError
from espsec.nvs.layout import (
    CHUNK_ANY,
    ENTRY_SIZE,
    INDEX_DATA,
    KNOWN_TYPES,
    MAX_KEY_LENGTH,
    VAR_DATA,
    VARIABLE_LENGTH_TYPES,
    ItemType,
    crc_a,
)


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
        size: int = VAR_DATA.unpack_from(self.data)[0]
        return size

    @property
    def var_crc(self) -> int:
        crc: int = VAR_DATA.unpack_from(self.data)[2]
        return crc

    @property
    def blob_size(self) -> int:
        """Total size of the blob a ``BLOB_IDX`` item describes."""
        size: int = INDEX_DATA.unpack_from(self.data)[0]
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
        if self.datatype not in KNOWN_TYPES:
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
