"""ESP-IDF partition tables: the binary format and the CSV source, both ways.

Follows ESP-IDF's ``components/partition_table/gen_esp32part.py`` (binary layout, CSV
syntax, offset auto-placement and the checks it runs by default) and
``esp_flash_partitions.h``. A table built from a CSV is byte-identical to what
``gen_esp32part.py`` writes for the same CSV and options.

Binary layout: 32-byte entries ``<2sBBLL16sL`` (magic ``AA 50``, type, subtype, offset,
size, NUL-padded label, flags), then an MD5 entry (``EB EB``, 14 x ``FF``, MD5 of the
entries before it), then a 32 x ``FF`` terminator; padded with ``FF`` to 0xC00 bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from espsec.errors import FormatError

APP = 0x00
DATA = 0x01
BOOTLOADER = 0x02
PARTITION_TABLE = 0x03

TYPES: Mapping[str, int] = {
    "bootloader": BOOTLOADER,
    "partition_table": PARTITION_TABLE,
    "app": APP,
    "data": DATA,
}

APP_OTA_MIN = 0x10
APP_OTA_COUNT = 16
APP_TEE_MIN = 0x30
APP_TEE_COUNT = 2

SUBTYPES: Mapping[int, Mapping[str, int]] = {
    BOOTLOADER: {"primary": 0x00, "ota": 0x01, "recovery": 0x02},
    PARTITION_TABLE: {"primary": 0x00, "ota": 0x01},
    APP: {
        "factory": 0x00,
        "test": 0x20,
        **{f"ota_{i}": APP_OTA_MIN + i for i in range(APP_OTA_COUNT)},
        **{f"tee_{i}": APP_TEE_MIN + i for i in range(APP_TEE_COUNT)},
    },
    DATA: {
        "ota": 0x00,
        "phy": 0x01,
        "nvs": 0x02,
        "coredump": 0x03,
        "nvs_keys": 0x04,
        "efuse": 0x05,
        "undefined": 0x06,
        "esphttpd": 0x80,
        "fat": 0x81,
        "spiffs": 0x82,
        "littlefs": 0x83,
        "tee_ota": 0x90,
    },
}

DATA_OTA = SUBTYPES[DATA]["ota"]
DATA_NVS = SUBTYPES[DATA]["nvs"]
DATA_COREDUMP = SUBTYPES[DATA]["coredump"]
DATA_NVS_KEYS = SUBTYPES[DATA]["nvs_keys"]
DATA_UNDEFINED = SUBTYPES[DATA]["undefined"]
DATA_TEE_OTA = SUBTYPES[DATA]["tee_ota"]

FLAG_ENCRYPTED = 1 << 0
FLAG_READONLY = 1 << 1
FLAGS: Mapping[str, int] = {"encrypted": FLAG_ENCRYPTED, "readonly": FLAG_READONLY}

ENTRY_SIZE = 32
ENTRY_MAGIC = b"\xaa\x50"
MD5_ENTRY_PREFIX = b"\xeb\xeb" + b"\xff" * 14
TERMINATOR = b"\xff" * ENTRY_SIZE
MAX_TABLE_LENGTH = 0xC00
"""Bytes the bootloader reads (96 entries); the rest of the sector was for SB v1."""
TABLE_SECTOR_SIZE = 0x1000
DEFAULT_TABLE_OFFSET = 0x8000
NAME_SIZE = 16
NVS_RW_MIN_SIZE = 0x3000
OTADATA_SIZE = 0x2000

OFFSET_ALIGNMENT: Mapping[int, int] = {
    APP: 0x10000,
    DATA: 0x1000,
    BOOTLOADER: 0x1000,
    PARTITION_TABLE: 0x1000,
}
APP_SIZE_ALIGNMENT = 0x1000

_ENTRY = struct.Struct("<2sBBLL16sL")


def offset_alignment(ptype: int) -> int:
    """Required offset alignment for partitions of ``ptype``."""
    return OFFSET_ALIGNMENT.get(ptype, OFFSET_ALIGNMENT[DATA])


@dataclass(frozen=True)
class Partition:
    """One partition table entry."""

    name: str
    type: int
    subtype: int
    offset: int
    size: int
    flags: int = 0
    """The raw flags word: bit 0 ``encrypted``, bit 1 ``readonly`` (others preserved)."""

    @property
    def end(self) -> int:
        return self.offset + self.size

    @property
    def encrypted(self) -> bool:
        """The ``encrypted`` flag as written in the table."""
        return bool(self.flags & FLAG_ENCRYPTED)

    @property
    def readonly(self) -> bool:
        return bool(self.flags & FLAG_READONLY)

    @property
    def always_encrypted(self) -> bool:
        """Encrypted whenever flash encryption is on, whatever the flag says.

        ESP-IDF ``esp_partition`` ``is_partition_encrypted()``: app, bootloader and
        partition-table partitions, and data partitions ``ota``, ``tee_ota`` and
        ``nvs_keys``.
        """
        if self.type in (APP, BOOTLOADER, PARTITION_TABLE):
            return True
        return self.type == DATA and self.subtype in (DATA_OTA, DATA_TEE_OTA, DATA_NVS_KEYS)

    @property
    def encrypted_on_flash(self) -> bool:
        """Whether this partition's contents are encrypted when flash encryption is on."""
        return self.encrypted or self.always_encrypted

    @property
    def type_name(self) -> str:
        return _keyword(self.type, TYPES)

    @property
    def subtype_name(self) -> str:
        return _keyword(self.subtype, SUBTYPES.get(self.type, {}))

    def contains(self, address: int, length: int = 1) -> bool:
        return self.offset <= address and address + length <= self.end

    def to_bytes(self) -> bytes:
        label = self.name.encode()
        if len(label) > NAME_SIZE:
            raise FormatError(
                "partition name too long",
                field=f"partition {self.name!r}",
                expected="at most 16 bytes",
                found=f"{len(label)} bytes",
            )
        for what, value, limit in (
            ("type", self.type, 0xFF),
            ("subtype", self.subtype, 0xFF),
            ("offset", self.offset, 0xFFFFFFFF),
            ("size", self.size, 0xFFFFFFFF),
            ("flags", self.flags, 0xFFFFFFFF),
        ):
            if not 0 <= value <= limit:
                raise FormatError(
                    f"{what} out of range",
                    field=f"partition {self.name!r}",
                    expected=f"0..0x{limit:x}",
                    found=value,
                )
        return _ENTRY.pack(
            ENTRY_MAGIC, self.type, self.subtype, self.offset, self.size, label, self.flags
        )

    @classmethod
    def parse(cls, data: bytes, *, offset: int = 0) -> Partition:
        """Parse one 32-byte entry; ``offset`` is only used in error messages."""
        if len(data) != ENTRY_SIZE:
            raise FormatError(
                "truncated partition entry", offset=offset, expected=ENTRY_SIZE, found=len(data)
            )
        magic, ptype, subtype, poffset, size, label, flags = _ENTRY.unpack(data)
        if magic != ENTRY_MAGIC:
            raise FormatError(
                "bad partition entry magic",
                offset=offset,
                field="magic",
                expected=ENTRY_MAGIC,
                found=magic,
            )
        raw, _, padding = label.partition(b"\x00")
        if padding.strip(b"\x00"):
            raise FormatError(
                "bytes after the label's NUL terminator", offset=offset + 12, field="label"
            )
        try:
            name = raw.decode()
        except UnicodeDecodeError:
            raise FormatError(
                "label is not UTF-8",
                offset=offset + 12,
                field="label",
                expected="UTF-8 text",
                found=raw,
            ) from None
        return cls(name, ptype, subtype, poffset, size, flags)

    def to_csv_row(self, *, simple: bool = False) -> str:
        """This entry as a CSV row, formatted as ``gen_esp32part.py`` writes it."""

        def number(value: int, with_suffix: bool) -> str:
            if not simple and with_suffix:
                for unit, suffix in ((0x100000, "M"), (0x400, "K")):
                    if value % unit == 0:
                        return f"{value // unit}{suffix}"
            return f"0x{value:x}"

        def keyword(value: int, names: Mapping[str, int]) -> str:
            return str(value) if simple else _keyword(value, names, decimal=True)

        flags = ":".join(name for name, bit in FLAGS.items() if self.flags & bit)
        return ",".join(
            [
                self.name,
                keyword(self.type, TYPES),
                keyword(self.subtype, SUBTYPES.get(self.type, {})),
                number(self.offset, False),
                number(self.size, True),
                flags,
            ]
        )


@dataclass(frozen=True)
class PartitionTable:
    """A partition table: its entries in table order, and whether it has an MD5 entry."""

    partitions: tuple[Partition, ...] = field(default_factory=tuple)
    md5: bool = True

    def __iter__(self) -> Iterator[Partition]:
        return iter(self.partitions)

    def __len__(self) -> int:
        return len(self.partitions)

    def find(self, name: str) -> Partition | None:
        """The partition labelled ``name``, if any."""
        return next((p for p in self.partitions if p.name == name), None)

    def find_by_type(self, ptype: int, subtype: int | None = None) -> list[Partition]:
        return [
            p
            for p in self.partitions
            if p.type == ptype and (subtype is None or p.subtype == subtype)
        ]

    def partition_at(self, address: int) -> Partition | None:
        """The partition that holds flash ``address``, if any."""
        return next((p for p in self.partitions if p.contains(address)), None)

    @property
    def flash_end(self) -> int:
        """End of the partition with the highest offset (``gen_esp32part`` flash_size)."""
        if not self.partitions:
            return 0
        last = max(self.partitions, key=lambda p: p.offset)
        return last.end

    # ------------------------------------------------------------------ binary

    def to_bytes(self) -> bytes:
        """The binary table, ``FF``-padded to 0xC00 bytes."""
        body = b"".join(p.to_bytes() for p in self.partitions)
        if self.md5:
            body += MD5_ENTRY_PREFIX + hashlib.md5(body, usedforsecurity=False).digest()
        if len(body) >= MAX_TABLE_LENGTH:
            raise FormatError(
                "partition table too long",
                expected=f"under {MAX_TABLE_LENGTH} bytes",
                found=f"{len(body)} bytes",
            )
        return body + b"\xff" * (MAX_TABLE_LENGTH - len(body))

    @classmethod
    def parse(cls, data: bytes) -> PartitionTable:
        """Parse a binary table (the first 0xC00 bytes count; the rest is ignored)."""
        data = bytes(data[:MAX_TABLE_LENGTH])
        parts: list[Partition] = []
        digest = hashlib.md5(usedforsecurity=False)
        has_md5 = False
        for pos in range(0, len(data), ENTRY_SIZE):
            entry = data[pos : pos + ENTRY_SIZE]
            if len(entry) < ENTRY_SIZE:
                break
            if entry == TERMINATOR:
                return cls(tuple(parts), md5=has_md5)
            if has_md5:
                raise FormatError(
                    "entry after the MD5 entry",
                    offset=pos,
                    expected="end-of-table marker",
                    found=entry[:2],
                )
            if entry[:2] == MD5_ENTRY_PREFIX[:2]:
                if entry[:16] != MD5_ENTRY_PREFIX:
                    raise FormatError("malformed MD5 entry", offset=pos, field="md5 entry")
                if not hmac.compare_digest(entry[16:], digest.digest()):
                    raise FormatError(
                        "MD5 checksum does not match the entries",
                        offset=pos + 16,
                        field="md5",
                        expected=digest.digest(),
                        found=entry[16:],
                    )
                has_md5 = True
                continue
            digest.update(entry)
            parts.append(Partition.parse(entry, offset=pos))
        raise FormatError(
            "partition table has no end-of-table marker",
            offset=len(data),
            expected="32 x 0xff",
            found="end of data",
        )

    # --------------------------------------------------------------------- CSV

    @classmethod
    def from_csv(
        cls,
        text: str,
        *,
        table_offset: int = DEFAULT_TABLE_OFFSET,
        bootloader_offset: int | None = None,
        recovery_bootloader_offset: int | None = None,
        md5: bool = True,
        verify: bool = True,
        flash_size: int | None = None,
    ) -> PartitionTable:
        """Build a table from ESP-IDF CSV (``Name, Type, SubType, Offset, Size, Flags``).

        Missing offsets are placed after the previous partition (aligned for the type),
        a negative size means "up to that offset", and, unless ``verify`` is false, the
        table is checked as ``gen_esp32part.py`` checks it. Environment variables in
        the CSV are not expanded.
        """
        rows: list[_Row] = []
        for line_no, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            rows.append(
                _Row.parse(
                    line, line_no, table_offset, bootloader_offset, recovery_bootloader_offset
                )
            )
        last_end = table_offset + TABLE_SECTOR_SIZE
        parts: list[Partition] = []
        for index, row in enumerate(rows):
            pos, size = row.offset, row.size
            if not row.is_primary_fixed:
                if pos is not None and pos < last_end:
                    what = (
                        f"partition table occupies 0x{table_offset:x}..0x{last_end:x}"
                        if index == 0
                        else f"previous partition ends at 0x{last_end:x}"
                    )
                    raise FormatError(
                        f"partitions overlap: offset 0x{pos:x} but {what}",
                        field=f"line {row.line_no}",
                    )
                if pos is None:
                    align = offset_alignment(row.type)
                    pos = -(-last_end // align) * align
                if size < 0:
                    size = -size - pos
                last_end = pos + size
            assert pos is not None
            parts.append(Partition(row.label, row.type, row.subtype, pos, size, row.flags))
        table = cls(tuple(parts), md5=md5)
        if verify:
            table.verify(table_offset=table_offset, flash_size=flash_size)
        return table

    def to_csv(self, *, simple: bool = False) -> str:
        """The table as CSV, as ``gen_esp32part.py`` prints a binary table."""
        rows = ["# ESP-IDF Partition Table", "# Name, Type, SubType, Offset, Size, Flags"]
        rows += [p.to_csv_row(simple=simple) for p in self.partitions]
        return "\n".join(rows) + "\n"

    # ------------------------------------------------------------------ checks

    def verify(
        self, *, table_offset: int = DEFAULT_TABLE_OFFSET, flash_size: int | None = None
    ) -> None:
        """Raise :class:`FormatError` for the problems ``gen_esp32part.py`` rejects."""
        for p in self.partitions:
            _verify_partition(p)
        seen: set[str] = set()
        for p in self.partitions:
            if p.name in seen:
                raise FormatError("partition names must be unique", field=f"partition {p.name!r}")
            seen.add(p.name)
        table_end = table_offset + TABLE_SECTOR_SIZE
        last: Partition | None = None
        for p in sorted(self.partitions, key=lambda p: p.offset):
            fixed = p.type in (BOOTLOADER, PARTITION_TABLE) and p.subtype == 0
            if p.offset < table_end and not fixed:
                raise FormatError(
                    f"partition offset 0x{p.offset:x} is below the end of the partition "
                    f"table (0x{table_end:x})",
                    field=f"partition {p.name!r}",
                )
            if last is not None and p.offset < last.end:
                raise FormatError(
                    f"partition at 0x{p.offset:x} overlaps {last.name!r} "
                    f"(0x{last.offset:x}-0x{last.end - 1:x})",
                    field=f"partition {p.name!r}",
                )
            last = p
        for subtype, what in ((DATA_OTA, "otadata"), (DATA_TEE_OTA, "TEE otadata")):
            found = self.find_by_type(DATA, subtype)
            if len(found) > 1:
                raise FormatError(
                    f"only one {what} partition (data/0x{subtype:x}) is allowed",
                    field=f"partition {found[1].name!r}",
                )
            if found and found[0].size != OTADATA_SIZE:
                raise FormatError(
                    f"{what} partition has the wrong size",
                    field=f"partition {found[0].name!r}",
                    expected=OTADATA_SIZE,
                    found=found[0].size,
                )
        if flash_size is not None and self.flash_end > flash_size:
            raise FormatError(
                "partitions do not fit in the flash",
                expected=f"end <= 0x{flash_size:x}",
                found=f"end 0x{self.flash_end:x}",
            )


def load_partition_table(
    data: bytes,
    *,
    table_offset: int = DEFAULT_TABLE_OFFSET,
    bootloader_offset: int | None = None,
) -> PartitionTable:
    """A table from either form: binary (starts with an entry, MD5 or end marker) or CSV."""
    if data[:2] in (ENTRY_MAGIC, MD5_ENTRY_PREFIX[:2]) or data[:ENTRY_SIZE] == TERMINATOR:
        return PartitionTable.parse(data)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise FormatError(
            "neither a binary partition table nor UTF-8 CSV",
            offset=0,
            expected="entry magic aa50 or CSV text",
            found=data[:2],
        ) from None
    return PartitionTable.from_csv(
        text, table_offset=table_offset, bootloader_offset=bootloader_offset
    )


# --------------------------------------------------------------------------- internals


@dataclass(frozen=True)
class _Row:
    line_no: int
    name: str
    type: int
    subtype: int
    offset: int | None
    size: int
    flags: int

    @property
    def label(self) -> str:
        """The name as stored: cut to 16 bytes, as ``gen_esp32part.py`` silently does."""
        raw = self.name.encode()
        if len(raw) <= NAME_SIZE:
            return self.name
        try:
            return raw[:NAME_SIZE].decode()
        except UnicodeDecodeError:
            raise FormatError(
                "name cut to 16 bytes splits a character", field=f"line {self.line_no}"
            ) from None

    @property
    def is_primary_fixed(self) -> bool:
        """Primary bootloader / table rows: placed by the tool, not in the running order."""
        return self.type in (BOOTLOADER, PARTITION_TABLE) and self.subtype == 0

    @classmethod
    def parse(
        cls,
        line: str,
        line_no: int,
        table_offset: int,
        bootloader_offset: int | None,
        recovery_offset: int | None,
    ) -> _Row:
        where = f"line {line_no}"
        # short rows get empty trailing fields (gen_esp32part pads them the same way)
        fields = [f.strip() for f in (line + ",,,,,").split(",")]
        name, type_s, subtype_s, offset_s, size_s, flags_s = fields[:6]
        if not type_s:
            raise FormatError("type can't be empty", field=where)
        ptype = _parse_int(type_s, TYPES, where, "type")
        if not subtype_s:
            if ptype == APP:
                raise FormatError("app partition cannot have an empty subtype", field=where)
            subtype = DATA_UNDEFINED
        else:
            subtype = _parse_int(subtype_s, SUBTYPES.get(ptype, {}), where, "subtype")

        def need(value: int | None, option: str) -> int:
            if value is None:
                raise FormatError(f"{option} is not set for this table", field=where)
            return value

        offset: int | None
        if ptype == BOOTLOADER and subtype == SUBTYPES[BOOTLOADER]["primary"]:
            offset = need(bootloader_offset, "primary bootloader offset")
        elif ptype == BOOTLOADER and subtype == SUBTYPES[BOOTLOADER]["recovery"]:
            offset = need(recovery_offset, "recovery bootloader offset")
        elif ptype == PARTITION_TABLE and subtype == SUBTYPES[PARTITION_TABLE]["primary"]:
            offset = table_offset
        else:
            offset = _parse_int(offset_s, {}, where, "offset") if offset_s else None

        if ptype == BOOTLOADER:
            size = table_offset - need(bootloader_offset, "primary bootloader offset")
        elif ptype == PARTITION_TABLE:
            size = TABLE_SECTOR_SIZE
        elif not size_s:
            raise FormatError("size can't be empty", field=where)
        else:
            size = _parse_int(size_s, {}, where, "size")

        flags = 0
        for flag in flags_s.split(":"):
            if flag in FLAGS:
                flags |= FLAGS[flag]
            elif flag:
                raise FormatError(
                    "unknown flag", field=where, expected=" or ".join(FLAGS), found=flag
                )
        return cls(line_no, name, ptype, subtype, offset, size, flags)


def _parse_int(text: str, keywords: Mapping[str, int], where: str, what: str) -> int:
    """``int(text, 0)`` with K/M suffixes and keyword names, as ``gen_esp32part`` reads."""
    lowered = text.lower()
    for suffix, multiplier in (("k", 1024), ("m", 1024 * 1024)):
        if lowered.endswith(suffix):
            return _parse_int(text[:-1], keywords, where, what) * multiplier
    try:
        return int(text, 0)
    except ValueError:
        pass
    if lowered in keywords:
        return keywords[lowered]
    expected = ("a number or one of " + ", ".join(keywords)) if keywords else "a number"
    raise FormatError(f"invalid {what}", field=where, expected=expected, found=text)


def _keyword(value: int, names: Mapping[str, int], *, decimal: bool = False) -> str:
    for name, number in names.items():
        if number == value:
            return name
    return str(value) if decimal else f"0x{value:x}"


def _verify_partition(p: Partition) -> None:
    where = f"partition {p.name!r}"
    align = offset_alignment(p.type)
    if p.offset % align:
        raise FormatError(f"offset 0x{p.offset:x} is not aligned to 0x{align:x}", field=where)
    if p.type == APP and p.size % APP_SIZE_ALIGNMENT:
        raise FormatError(
            f"size 0x{p.size:x} is not aligned to 0x{APP_SIZE_ALIGNMENT:x}", field=where
        )
    if p.type == DATA and p.subtype in (DATA_OTA, DATA_COREDUMP) and p.readonly:
        raise FormatError(
            f"data partition of subtype 0x{p.subtype:x} is always read-write and cannot be "
            "readonly",
            field=where,
        )
    if p.type == DATA and p.subtype == DATA_NVS and p.size < NVS_RW_MIN_SIZE and not p.readonly:
        raise FormatError(
            f"NVS partition smaller than 0x{NVS_RW_MIN_SIZE:x} must be flagged readonly",
            field=where,
            expected=f"at least 0x{NVS_RW_MIN_SIZE:x}, or the readonly flag",
            found=p.size,
        )
