"""The partition table as the bootloader reads it, and the partitions it cares about.

``flash_partitions.c: esp_partition_table_verify`` (entry magic, each partition inside the
flash chip, at most one MD5 entry that must match, an end marker) and
``bootloader_utility.c: bootloader_utility_load_partition_table`` (factory, test and OTA
app partitions, the otadata partition).
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from espsec.device.boot_select import FACTORY, TEST, AppKind, AppPartition, ota
from espsec.image.partition_table import (
    APP,
    APP_OTA_MIN,
    DATA,
    DATA_OTA,
    ENTRY_SIZE,
    MAX_TABLE_LENGTH,
    Partition,
)

ESP_PARTITION_MAGIC = 0x50AA
ESP_PARTITION_MAGIC_MD5 = 0xEBEB
ESP_PARTITION_TABLE_MAX_ENTRIES = MAX_TABLE_LENGTH // ENTRY_SIZE
_ENTRY = struct.Struct("<HBBII16sI")
_SUBTYPE_FACTORY = 0x00
_SUBTYPE_TEST = 0x20


class PartitionTableInvalid(Exception):
    """``esp_partition_table_verify`` failed (the message says why, as ESP-IDF logs it)."""


def partition_table_verify(data: bytes, chip_size: int) -> tuple[Partition, ...]:
    """The partitions of a table read from flash, checked as the bootloader checks them.

    Raises :class:`PartitionTableInvalid` for an entry with a bad magic (erased or
    encrypted flash reads like that), a partition beyond ``chip_size``, a second or
    wrong MD5 entry, or no end marker.
    """
    data = bytes(data[:MAX_TABLE_LENGTH]).ljust(MAX_TABLE_LENGTH, b"\xff")
    parts: list[Partition] = []
    md5_found = False
    for index in range(ESP_PARTITION_TABLE_MAX_ENTRIES):
        raw = data[index * ENTRY_SIZE : (index + 1) * ENTRY_SIZE]
        magic, ptype, subtype, offset, size, label, flags = _ENTRY.unpack(raw)
        if magic == ESP_PARTITION_MAGIC:
            if offset > chip_size or size > chip_size - offset:
                raise PartitionTableInvalid(
                    f"partition {index} invalid - offset 0x{offset:x} size 0x{size:x} exceeds "
                    f"flash chip size 0x{chip_size:x}"
                )
            name = label.split(b"\0", 1)[0].decode("utf-8", "replace")
            parts.append(Partition(name, ptype, subtype, offset, size, flags))
        elif magic == ESP_PARTITION_MAGIC_MD5:
            if md5_found:
                raise PartitionTableInvalid("only one MD5 checksum is allowed")
            digest = hashlib.md5(data[: index * ENTRY_SIZE], usedforsecurity=False).digest()
            if not hmac.compare_digest(raw[16:], digest):
                raise PartitionTableInvalid("incorrect MD5 checksum")
            md5_found = True
        elif index != 0 and magic == 0xFFFF and ptype == 0xFF and subtype == 0xFF:
            return tuple(parts)
        else:
            raise PartitionTableInvalid(f"partition {index} invalid magic number 0x{magic:x}")
    raise PartitionTableInvalid("partition table has no terminating entry, not valid")


@dataclass(frozen=True)
class BootloaderState:
    """``bootloader_state_t``: the partitions the bootloader boots from."""

    partitions: tuple[Partition, ...]
    factory: Partition | None = None
    test: Partition | None = None
    ota: Mapping[int, Partition] = field(default_factory=lambda: MappingProxyType({}))
    ota_info: Partition | None = None
    """The otadata partition (data/ota)."""
    app_count: int = 0
    """OTA app partitions in the table (``bs->app_count``)."""

    @classmethod
    def from_partitions(cls, partitions: tuple[Partition, ...]) -> BootloaderState:
        factory = test = ota_info = None
        slots: dict[int, Partition] = {}
        count = 0
        for p in partitions:
            if p.type == APP:
                if p.subtype == _SUBTYPE_FACTORY:
                    factory = p
                elif p.subtype == _SUBTYPE_TEST:
                    test = p
                elif p.subtype & 0xF0 == APP_OTA_MIN:
                    slots[p.subtype & 0x0F] = p
                    count += 1
            elif p.type == DATA and p.subtype == DATA_OTA:
                ota_info = p
        return cls(partitions, factory, test, MappingProxyType(slots), ota_info, count)

    def app(self, part: AppPartition) -> Partition | None:
        """``index_to_partition``: the table entry of an app partition, if any."""
        if part.kind is AppKind.FACTORY:
            return self.factory
        if part.kind is AppKind.TEST:
            return self.test
        if part.slot >= self.app_count:
            return None
        return self.ota.get(part.slot)

    def app_partition(self, p: Partition) -> AppPartition | None:
        """The boot-selection name of a table entry (``None`` for non-app partitions)."""
        if p.type != APP:
            return None
        if p.subtype == _SUBTYPE_FACTORY:
            return FACTORY
        if p.subtype == _SUBTYPE_TEST:
            return TEST
        if p.subtype & 0xF0 == APP_OTA_MIN:
            return ota(p.subtype & 0x0F)
        return None

    def find(self, name: str) -> Partition | None:
        """A partition by label."""
        return next((p for p in self.partitions if p.name == name), None)
