"""Typed NVS values as the API and the CSV format name them (``u8`` … ``blob``)."""

from __future__ import annotations

import math
import struct
from enum import StrEnum

from espsec.nvs.layout import ItemType

Value = int | float | str | bytes
"""A value: ``int`` for integers, ``float``, ``str`` for strings, ``bytes`` for blobs."""


class ValueType(StrEnum):
    """``nvs_type_t`` by the names ``nvs_partition_gen`` CSV encodings use."""

    U8 = "u8"
    I8 = "i8"
    U16 = "u16"
    I16 = "i16"
    U32 = "u32"
    I32 = "i32"
    U64 = "u64"
    I64 = "i64"
    FLOAT = "float"
    DOUBLE = "double"
    STRING = "string"
    BLOB = "blob"

    @property
    def item_type(self) -> ItemType:
        """The item type this value is stored as (blobs: v2 ``BLOB_IDX``)."""
        return _ITEM_TYPES[self]

    @property
    def is_integer(self) -> bool:
        return self in _INT_RANGES

    @classmethod
    def of_item(cls, datatype: int) -> ValueType:
        """The value type an item of ``datatype`` holds (v1 blobs and chunks: ``blob``)."""
        return _BY_ITEM[datatype]


_ITEM_TYPES = {
    ValueType.U8: ItemType.U8,
    ValueType.I8: ItemType.I8,
    ValueType.U16: ItemType.U16,
    ValueType.I16: ItemType.I16,
    ValueType.U32: ItemType.U32,
    ValueType.I32: ItemType.I32,
    ValueType.U64: ItemType.U64,
    ValueType.I64: ItemType.I64,
    ValueType.FLOAT: ItemType.FLOAT,
    ValueType.DOUBLE: ItemType.DOUBLE,
    ValueType.STRING: ItemType.SZ,
    ValueType.BLOB: ItemType.BLOB_IDX,
}
_BY_ITEM: dict[int, ValueType] = {int(v): k for k, v in _ITEM_TYPES.items()}
_BY_ITEM[ItemType.BLOB] = ValueType.BLOB
_BY_ITEM[ItemType.BLOB_DATA] = ValueType.BLOB

_INT_RANGES = {
    ValueType.U8: (0, 0xFF),
    ValueType.I8: (-0x80, 0x7F),
    ValueType.U16: (0, 0xFFFF),
    ValueType.I16: (-0x8000, 0x7FFF),
    ValueType.U32: (0, 0xFFFFFFFF),
    ValueType.I32: (-0x80000000, 0x7FFFFFFF),
    ValueType.U64: (0, 0xFFFFFFFFFFFFFFFF),
    ValueType.I64: (-0x8000000000000000, 0x7FFFFFFFFFFFFFFF),
}


def int_range(vtype: ValueType) -> tuple[int, int]:
    """Smallest and largest value of an integer type."""
    return _INT_RANGES[vtype]


def check_value(vtype: ValueType, value: object) -> None:
    """Raise :class:`ValueError` (or :class:`TypeError`) unless ``value`` fits ``vtype``."""
    if vtype.is_integer:
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{vtype} value must be an int, found {type(value).__name__}")
        low, high = _INT_RANGES[vtype]
        if not low <= value <= high:
            raise ValueError(f"{value} does not fit {vtype} ({low}..{high})")
    elif vtype in (ValueType.FLOAT, ValueType.DOUBLE):
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise TypeError(f"{vtype} value must be a number, found {type(value).__name__}")
        if vtype is ValueType.FLOAT and math.isfinite(value):
            try:
                struct.pack("<f", value)
            except OverflowError:
                raise ValueError(f"{value} does not fit a 32-bit float") from None
    elif vtype is ValueType.STRING:
        if not isinstance(value, str):
            raise TypeError(f"string value must be a str, found {type(value).__name__}")
    elif not isinstance(value, bytes | bytearray):
        raise TypeError(f"blob value must be bytes, found {type(value).__name__}")


def string_payload(value: str) -> bytes:
    """The stored form of a string: its UTF-8 bytes and a terminating NUL."""
    return value.encode("utf-8", "surrogateescape") + b"\0"


def string_from_payload(payload: bytes) -> str:
    """The string a stored payload holds (up to its terminating NUL)."""
    if payload.endswith(b"\0"):
        payload = payload[:-1]
    return payload.decode("utf-8", "surrogateescape")
