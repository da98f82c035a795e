"""Whole-flash encryption: the flash image a device with a given key holds after flashing.

Given the partition table and the files to place (or an ESP-IDF ``build/`` folder and
its ``flasher_args.json``), lay the files out as ``esptool write-flash`` would and encrypt
what the device reads through the flash-encryption engine:

* the second-stage bootloader (from the chip's ROM bootloader offset up to the table),
  and the partition table;
* every partition ESP-IDF always treats as encrypted (``is_partition_encrypted()``:
  app, bootloader and partition-table types, data ``ota``, ``tee_ota``, ``nvs_keys``);
* every partition flagged ``encrypted``.

Everything else is stored as written. Like esptool, an encrypted write is ``FF``-padded
to 16 bytes (then encrypted) and must start on a 16-byte boundary, a plain write is
``FF``-padded to 4 bytes, and two files may not share a 4 KiB flash sector. Erased flash
reads ``FF``. Images are placed as given: esptool's rewrite of the bootloader header's
flash mode/size (``--flash_mode`` etc.) is not applied, so the ESP-IDF build's own
settings are kept.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from espsec._io import PathLike, read_bytes
from espsec.chips import DEFAULT_CHIP, MAX_FLASH_SIZE, Chip, get_chip
from espsec.errors import EspsecError, FormatError, UsageError
from espsec.flash_encryption.cipher import FlashCipher
from espsec.flash_encryption.keys import FlashEncryptionKey
from espsec.image.partition_table import (
    MAX_TABLE_LENGTH,
    TABLE_SECTOR_SIZE,
    Partition,
    PartitionTable,
)

SECTOR = 0x1000
ENCRYPTED_WRITE_ALIGN = 16
PLAIN_WRITE_ALIGN = 4
BOOTLOADER_REGION = "bootloader"
TABLE_REGION = "partition table"

FLASH_SIZES = {f"{n}MB": n << 20 for n in (1, 2, 4, 8, 16, 32, 64, 128)}


def parse_flash_size(text: str | int) -> int:
    """``4MB`` (esptool's names), ``16M``, ``0x400000`` or ``4194304`` to bytes.

    Refused (before any work): sizes that are not a positive multiple of 4 KiB, or larger
    than :data:`MAX_FLASH_SIZE`.
    """
    value = str(text).strip().upper()
    if value in FLASH_SIZES:
        return FLASH_SIZES[value]
    try:
        if value.endswith("M") and value[:-1].isdigit():
            size = int(value[:-1]) << 20
        else:
            size = int(str(text), 0)
    except ValueError:
        raise UsageError(
            f"flash size {text!r} not understood (use e.g. 4MB, 16MB or a byte count)"
        ) from None
    if size <= 0 or size % SECTOR:
        raise UsageError(f"flash size 0x{size:x} is not a positive multiple of 4 KiB")
    if size > MAX_FLASH_SIZE:
        raise UsageError(
            f"flash size 0x{size:x} is larger than the chip's largest flash "
            f"({MAX_FLASH_SIZE >> 20}MB, the most an image header can name)"
        )
    return size


@dataclass(frozen=True)
class FlashWrite:
    """One file to place at a flash offset."""

    offset: int
    data: bytes = field(repr=False)
    name: str = ""


@dataclass(frozen=True)
class PlacedWrite:
    """A file as it lands in flash: where, in which region, and whether encrypted."""

    offset: int
    flash_data: bytes = field(repr=False)
    """The bytes stored in flash (ciphertext if encrypted), padded as esptool pads."""
    name: str
    region: str
    """``bootloader``, ``partition table`` or the partition's label."""
    encrypted: bool
    length: int
    """Length of the file before padding."""

    @property
    def end(self) -> int:
        return self.offset + len(self.flash_data)

    def report(self) -> dict[str, Any]:
        return {
            "offset": f"0x{self.offset:x}",
            "size": self.length,
            "file": self.name,
            "region": self.region,
            "encrypted": self.encrypted,
        }


@dataclass(frozen=True)
class EncryptedFlash:
    """The flash contents after flashing: placed writes over erased (``FF``) flash."""

    flash_size: int
    writes: tuple[PlacedWrite, ...]
    table: PartitionTable
    chip: Chip
    mode: str
    """``AES-128-XTS`` or ``AES-256-XTS``."""

    def to_bytes(self) -> bytes:
        image = bytearray(b"\xff" * self.flash_size)
        for w in self.writes:
            image[w.offset : w.end] = w.flash_data
        return bytes(image)

    def write_to(self, fh: BinaryIO) -> None:
        """Stream the whole image into ``fh`` without building it in memory."""
        pos = 0
        for w in self.writes:
            _write_erased(fh, w.offset - pos)
            fh.write(w.flash_data)
            pos = w.end
        _write_erased(fh, self.flash_size - pos)

    def report(self) -> dict[str, Any]:
        return {
            "chip": self.chip.name,
            "mode": self.mode,
            "flash_size": self.flash_size,
            "writes": [w.report() for w in self.writes],
        }


def encrypt_flash(
    key: FlashEncryptionKey,
    table: PartitionTable,
    writes: Sequence[FlashWrite],
    *,
    flash_size: int,
    chip: Chip | str = DEFAULT_CHIP,
    table_offset: int | None = None,
) -> EncryptedFlash:
    """Lay out ``writes`` in a flash of ``flash_size`` bytes and encrypt what must be.

    The partition table is placed at ``table_offset`` (the chip's default, 0x8000,
    when not given) from ``table`` unless one of ``writes`` already goes there.
    """
    chip = get_chip(chip) if isinstance(chip, str) else chip
    key.check_chip(chip)
    table_offset = chip.partition_table_offset if table_offset is None else table_offset
    if table.flash_end > flash_size:
        raise UsageError(
            f"the partition table needs 0x{table.flash_end:x} bytes of flash, "
            f"larger than the flash size 0x{flash_size:x}"
        )
    all_writes = list(writes)
    if not any(w.offset == table_offset for w in all_writes):
        all_writes.append(FlashWrite(table_offset, table.to_bytes(), "partition table"))
    all_writes.sort(key=lambda w: w.offset)
    for w in all_writes:
        if not w.data:
            raise UsageError(f"{w.name or 'file'} for 0x{w.offset:x} is empty")
    cipher = FlashCipher(key)
    placed = [_place(w, table, chip, table_offset, flash_size, cipher) for w in all_writes]
    _check_sectors(all_writes)
    return EncryptedFlash(flash_size, tuple(placed), table, chip, key.mode)


def read_partition(flash: bytes, key: FlashEncryptionKey, partition: Partition) -> bytes:
    """A partition's contents as the device's code reads them (decrypted if encrypted)."""
    raw = flash[partition.offset : partition.end]
    if partition.encrypted_on_flash:
        return FlashCipher(key).decrypt(raw, partition.offset)
    return bytes(raw)


# ------------------------------------------------------------------ ESP-IDF build/


@dataclass(frozen=True)
class BuildLayout:
    """What an ESP-IDF ``build/`` folder says to flash (from ``flasher_args.json``)."""

    chip: Chip
    table: PartitionTable
    table_offset: int
    writes: tuple[FlashWrite, ...]
    flash_size: int | None
    """``None`` when the build leaves it to detection (``detect``/``keep``)."""


def load_build_dir(build_dir: PathLike) -> BuildLayout:
    """Read ``flasher_args.json`` and the files it names from an ESP-IDF build folder."""
    folder = Path(build_dir)
    args_path = folder / "flasher_args.json"
    try:
        args = json.loads(read_bytes(args_path, what="flasher_args.json"))
    except json.JSONDecodeError as exc:
        raise FormatError(f"not valid JSON: {exc.msg}", source=str(args_path)) from None
    if not isinstance(args, dict) or not isinstance(args.get("flash_files"), dict):
        raise FormatError("no flash_files object", field="flash_files", source=str(args_path))
    extra = args.get("extra_esptool_args")
    chip_name = extra.get("chip") if isinstance(extra, dict) else None
    if not isinstance(chip_name, str):
        raise FormatError("no chip given", field="extra_esptool_args.chip", source=str(args_path))
    chip = get_chip(chip_name)
    pt = args.get("partition-table") or args.get("partition_table")
    if not isinstance(pt, dict) or "offset" not in pt or "file" not in pt:
        raise FormatError(
            "no partition-table entry", field="partition-table", source=str(args_path)
        )
    table_offset = _offset(pt["offset"], args_path, "partition-table.offset")
    writes = []
    for text, rel in args["flash_files"].items():
        offset = _offset(text, args_path, f"flash_files[{text!r}]")
        path = folder / str(rel)
        writes.append(FlashWrite(offset, read_bytes(path, what="flash file"), str(rel)))
    table_path = folder / str(pt["file"])
    try:
        table = PartitionTable.parse(read_bytes(table_path, what="partition table"))
    except EspsecError as exc:
        exc.source = exc.source or str(table_path)
        raise
    settings = args.get("flash_settings")
    size_text = settings.get("flash_size") if isinstance(settings, dict) else None
    flash_size = (
        parse_flash_size(size_text)
        if isinstance(size_text, str) and size_text not in ("detect", "keep")
        else None
    )
    return BuildLayout(chip, table, table_offset, tuple(writes), flash_size)


# --------------------------------------------------------------------------- internals


def _offset(text: object, source: Path, what: str) -> int:
    try:
        return int(str(text), 0)
    except ValueError:
        raise FormatError(
            "not a flash offset",
            field=what,
            expected="an integer such as 0x10000",
            found=str(text),
            source=str(source),
        ) from None


def _check_sectors(writes: Sequence[FlashWrite]) -> None:
    """esptool erases whole sectors, so two files may not share one."""
    last_end_sector = -1
    previous = ""
    for w in writes:
        first = w.offset // SECTOR
        if first <= last_end_sector:
            raise UsageError(
                f"{w.name or 'file'} at 0x{w.offset:x} overlaps the flash sector(s) of {previous}"
            )
        last_end_sector = (w.offset + len(w.data) - 1) // SECTOR
        previous = w.name or f"the file at 0x{w.offset:x}"


def _place(
    w: FlashWrite,
    table: PartitionTable,
    chip: Chip,
    table_offset: int,
    flash_size: int,
    cipher: FlashCipher,
) -> PlacedWrite:
    name = w.name or f"file at 0x{w.offset:x}"
    region, limit = _region(w, table, chip, table_offset, name)
    encrypted = region.encrypted
    align = ENCRYPTED_WRITE_ALIGN if encrypted else PLAIN_WRITE_ALIGN
    if encrypted and w.offset % ENCRYPTED_WRITE_ALIGN:
        raise UsageError(
            f"{name} at 0x{w.offset:x} goes to encrypted {region.name} but is not on a "
            "16-byte boundary"
        )
    data = w.data + b"\xff" * (-len(w.data) % align)
    end = w.offset + len(data)
    if end > min(limit, flash_size):
        where = (
            f"the flash size 0x{flash_size:x}"
            if flash_size < limit
            else f"{region.name} (ends at 0x{limit:x})"
        )
        raise UsageError(f"{name} ({len(w.data)} bytes at 0x{w.offset:x}) does not fit in {where}")
    stored = cipher.encrypt(data, w.offset) if encrypted else data
    return PlacedWrite(w.offset, stored, name, region.name, encrypted, len(w.data))


@dataclass(frozen=True)
class _Region:
    name: str
    encrypted: bool


def _region(
    w: FlashWrite, table: PartitionTable, chip: Chip, table_offset: int, name: str
) -> tuple[_Region, int]:
    """Which region a write lands in, and where that region ends."""
    if chip.bootloader_offset <= w.offset < table_offset:
        return _Region(BOOTLOADER_REGION, True), table_offset
    if w.offset == table_offset:
        if len(w.data) > TABLE_SECTOR_SIZE:
            raise UsageError(
                f"{name} at the partition table offset 0x{w.offset:x} is larger than "
                "the table's 4 KiB sector"
            )
        if PartitionTable.parse(w.data[:MAX_TABLE_LENGTH]) != table:
            raise UsageError(f"{name} at 0x{w.offset:x} is not the partition table being used")
        return _Region(TABLE_REGION, True), table_offset + TABLE_SECTOR_SIZE
    part = table.partition_at(w.offset)
    if part is None:
        raise UsageError(f"{name} at 0x{w.offset:x} is not inside any partition")
    return _Region(part.name, part.encrypted_on_flash), part.end


def _write_erased(fh: BinaryIO, length: int) -> None:
    block = b"\xff" * min(length, 1 << 20)
    while length > 0:
        n = min(length, len(block))
        fh.write(block[:n])
        length -= n
