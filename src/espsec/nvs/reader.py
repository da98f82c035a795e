"""Read an NVS partition image back into its namespaces and values.

The image is loaded by the same runtime the virtual device uses, on a private copy, so
the reader sees exactly what a device would see (duplicates left by a power cut
resolved, torn items dropped).
"""

from __future__ import annotations

from dataclasses import dataclass

from espsec.errors import FormatError
from espsec.flash import NorFlash
from espsec.nvs.entry import NvsEntry
from espsec.nvs.item import Item
from espsec.nvs.layout import (
    ENTRY_COUNT,
    ENTRY_SIZE,
    ENTRY_TABLE_OFFSET,
    FIRST_ENTRY_OFFSET,
    PAGE_SIZE,
    VERSION_1,
    EntryState,
    PageState,
    decode_entry_states,
)
from espsec.nvs.nvs_keys import NvsKeys
from espsec.nvs.page import PageHeader
from espsec.nvs.runtime import NvsStore
from espsec.nvs.runtime.partition import NvsPartition

_LIVE = (PageState.ACTIVE, PageState.FULL, PageState.FREEING)
_PROBE = 8


@dataclass(frozen=True)
class NvsContents:
    """What an NVS partition holds."""

    size: int
    version: int | None
    """1 or 2 (page format of the first page in use); None for an empty partition."""
    encrypted: bool
    namespaces: dict[str, int]
    entries: tuple[NvsEntry, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "size": self.size,
            "version": self.version,
            "encrypted": self.encrypted,
            "namespaces": self.namespaces,
            "entries": [e.to_json() for e in self.entries],
        }


def _check_readable(data: bytes, keys: NvsKeys | None) -> int | None:
    """Fail early with a clear message when the keys (or their absence) are wrong."""
    partition = NvsPartition(NorFlash(data), keys)
    version = None
    for base in range(0, len(data), PAGE_SIZE):
        header = PageHeader.parse(data[base : base + 32])
        if header.state not in _LIVE or not header.crc_ok:
            continue
        if version is None:
            version = 1 if header.version == VERSION_1 else 2
        states = decode_entry_states(data[base + ENTRY_TABLE_OFFSET : base + FIRST_ENTRY_OFFSET])
        written = [i for i in range(ENTRY_COUNT) if states[i] == EntryState.WRITTEN][:_PROBE]
        if not written:
            continue
        for i in written:
            offset = base + FIRST_ENTRY_OFFSET + i * ENTRY_SIZE
            if Item.parse(partition.read(offset, ENTRY_SIZE)).crc_ok:
                return version
        first = base + FIRST_ENTRY_OFFSET + written[0] * ENTRY_SIZE
        if keys is None:
            raise FormatError(
                "entries fail their CRC: is the partition encrypted? give its keys",
                offset=first,
            )
        plain = data[first : first + ENTRY_SIZE]
        if Item.parse(plain).crc_ok:
            raise FormatError(
                "partition is not encrypted: its entries are plain (read it without keys)",
                offset=first,
            )
        raise FormatError("entries do not decrypt to a valid CRC: wrong NVS keys", offset=first)
    return version


def read_partition(data: bytes, *, keys: NvsKeys | None = None) -> NvsContents:
    """Every namespace and value of an NVS partition image (encrypted with ``keys``)."""
    if not data or len(data) % PAGE_SIZE:
        raise FormatError(
            "NVS partition size must be a multiple of 4096",
            offset=0,
            expected="a multiple of 4096",
            found=len(data),
        )
    version = _check_readable(data, keys)
    store = NvsStore.init(NorFlash(data), keys=keys, read_only=True)
    return NvsContents(
        size=len(data),
        version=version,
        encrypted=keys is not None,
        namespaces=store.namespaces,
        entries=tuple(store.entries()),
    )
