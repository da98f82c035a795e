"""Namespaces, typed items and multi-page blobs over the pages (ESP-IDF ``nvs_storage.cpp``).

An update writes the new item first and erases the old one after it, so a power cut
leaves the old value, or both (resolved on the next load), never neither. A blob is
written as chunks and then a ``BLOB_IDX``; its chunk indices start at 0x00 or 0x80,
toggled on each rewrite, so new chunks never collide with the old ones. Chunks no
index claims are erased on load.

A key holds one value: writing it with another type replaces the old value.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

from espsec.nvs.item import Item
from espsec.nvs.layout import (
    CHUNK_ANY,
    CHUNK_MAX_SIZE,
    ENTRY_COUNT,
    ENTRY_SIZE,
    NS_INDEX,
    VER_0_OFFSET,
    VER_1_OFFSET,
    ItemType,
    PageState,
    blob_index_data,
    pack_primitive,
    unpack_primitive,
)
from espsec.nvs.runtime import errors
from espsec.nvs.runtime.errors import NvsError, PageFull
from espsec.nvs.runtime.page import HashKey, Page, hash_key
from espsec.nvs.runtime.page_manager import PageManager
from espsec.nvs.runtime.partition import NvsPartition

MAX_NAMESPACES = 254
MAX_BLOB_CHUNKS = (CHUNK_ANY - 1) // 2


class Found(NamedTuple):
    """Where an item is: its page, entry index and header."""

    page: Page
    entry: int
    item: Item


@dataclass(frozen=True)
class NvsStats:
    """``nvs_stats_t``: entry counts over the whole partition."""

    used_entries: int
    free_entries: int
    available_entries: int
    total_entries: int
    namespace_count: int


class Storage:
    """The NVS storage of one partition."""

    def __init__(self, partition: NvsPartition) -> None:
        self.partition = partition
        self.pages = PageManager(partition)
        self.namespaces: dict[str, int] = {}

    def init(self, *, read_only: bool = False) -> None:
        """Load the partition (``nvs_flash_init_partition``)."""
        self.pages.load(read_only=read_only)
        self.namespaces = {}
        for page in self.pages.pages:
            for _, item in page.iter_items():
                if item.ns_index == NS_INDEX and item.datatype == ItemType.U8:
                    self.namespaces[item.key] = item.data[0]
        self._erase_orphan_chunks()

    def _erase_orphan_chunks(self) -> None:
        claimed: set[tuple[int, bytes, int]] = set()
        for page in self.pages.pages:
            for _, item in page.iter_items():
                if item.datatype == ItemType.BLOB_IDX:
                    for n in range(item.chunk_count):
                        claimed.add((item.ns_index, item.key_bytes, item.chunk_start + n))
        for page in self.pages.pages:
            for index, item in list(page.iter_items()):
                if item.datatype == ItemType.BLOB_DATA and (
                    (item.ns_index, item.key_bytes, item.chunk_index) not in claimed
                ):
                    page.erase_entry_and_span(index)

    # -- lookup -------------------------------------------------------------------------

    def find(self, ns: int, key: bytes, chunk_index: int = CHUNK_ANY) -> Found | None:
        """The first item (oldest page first) with this namespace, key and chunk index."""
        for page in self.pages.pages:
            hit = page.find(ns, key, chunk_index)
            if hit is not None:
                return Found(page, *hit)
        return None

    def find_all(self, ns: int, key: bytes, chunk_index: int = CHUNK_ANY) -> list[Found]:
        """Every item with this namespace, key and chunk index, oldest first."""
        return [
            Found(page, index, page.items[index])
            for page in self.pages.pages
            for index in page.find_all(ns, key, chunk_index)
        ]

    def locate_all(self) -> dict[HashKey, Found]:
        """Where every item is, first occurrence first (as :meth:`find` would answer)."""
        where: dict[HashKey, Found] = {}
        for page in self.pages.pages:
            for index, item in page.iter_items():
                where.setdefault(hash_key(item), Found(page, index, item))
        return where

    def namespace_index(self, name: str, *, create: bool) -> int:
        """``createOrOpenNamespace``: the index of namespace ``name``."""
        if name in self.namespaces:
            return self.namespaces[name]
        if not create:
            raise NvsError(errors.NOT_FOUND, f"namespace {name!r} does not exist")
        used = set(self.namespaces.values())
        index = next((i for i in range(1, MAX_NAMESPACES + 1) if i not in used), None)
        if index is None:
            raise NvsError(errors.NOT_ENOUGH_SPACE, "no namespace index left")
        raw = name.encode("utf-8", "surrogateescape")
        self.write_item(NS_INDEX, ItemType.U8, raw, pack_primitive(ItemType.U8, index))
        self.namespaces[name] = index
        return index

    # -- write --------------------------------------------------------------------------

    def _write_to_current(
        self, ns: int, datatype: ItemType, key: bytes, data: bytes, chunk: int = CHUNK_ANY
    ) -> None:
        page = self.pages.current
        try:
            page.write_item(ns, datatype, key, data, chunk)
            return
        except PageFull:
            pass
        if page.state != PageState.FULL:
            page.mark_full()
        self.pages.request_new_page()
        try:
            self.pages.current.write_item(ns, datatype, key, data, chunk)
        except PageFull:
            raise NvsError(errors.NOT_ENOUGH_SPACE, "value does not fit in a page") from None

    def write_item(self, ns: int, datatype: ItemType, key: bytes, data: bytes) -> None:
        """Set a value: ``data`` is the 8-byte data field of a primitive, the payload of
        a string (with its NUL), or the contents of a blob (``datatype`` BLOB)."""
        old = self.find(ns, key)
        if datatype == ItemType.BLOB:
            next_start = VER_0_OFFSET
            if old is not None and old.item.datatype == ItemType.BLOB_IDX:
                if self._blob_equals(ns, key, old.item, data):
                    return
                next_start = VER_0_OFFSET if old.item.chunk_start == VER_1_OFFSET else VER_1_OFFSET
            self._write_multi_page_blob(ns, key, data, next_start)
        else:
            if old is not None and old.item.datatype == datatype and self._item_equals(old, data):
                return
            self._write_to_current(ns, datatype, key, data)
        if old is not None:
            # Erase the old value, found again (garbage collection may have moved it):
            # everything under this key but the item just written, the last one.
            for stale in self.find_all(ns, key)[:-1]:
                self._erase_found(stale)

    def _item_equals(self, found: Found, data: bytes) -> bool:
        item = found.item
        if item.datatype in (ItemType.SZ, ItemType.BLOB):
            if item.var_size != len(data):
                return False
            return found.page.read_payload(found.entry, erase_corrupt=False) == data
        return item.data == data

    def _blob_equals(self, ns: int, key: bytes, index: Item, data: bytes) -> bool:
        if index.blob_size != len(data):
            return False
        return self._read_chunks(ns, key, index, erase_corrupt=False) == data

    def _write_multi_page_blob(self, ns: int, key: bytes, data: bytes, start: int) -> None:
        max_pages = min(self.partition.page_count - 1, MAX_BLOB_CHUNKS)
        if len(data) > max_pages * CHUNK_MAX_SIZE:
            raise NvsError(errors.VALUE_TOO_LONG, f"blob of {len(data)} bytes is too long")
        written: list[Page] = []
        offset = 0
        remaining = len(data)
        try:
            while True:
                page = self.pages.current
                tailroom = page.var_data_tailroom()
                if (
                    not written
                    and (tailroom < len(data) or (tailroom == 0 and not data))
                    and tailroom < CHUNK_MAX_SIZE // 10
                ):
                    # Not worth starting the blob in this little space.
                    if page.state != PageState.FULL:
                        page.mark_full()
                    self.pages.request_new_page()
                    if self.pages.current.var_data_tailroom() == tailroom:
                        raise NvsError(errors.NOT_ENOUGH_SPACE, "no room for the blob")
                    continue
                if not tailroom:
                    raise NvsError(errors.NOT_ENOUGH_SPACE, "no room for the blob")
                size = min(remaining, tailroom)
                remaining -= size
                chunk = start + len(written)
                page.write_item(ns, ItemType.BLOB_DATA, key, data[offset : offset + size], chunk)
                written.append(page)
                if remaining or tailroom - size < ENTRY_SIZE:
                    if page.state != PageState.FULL:
                        page.mark_full()
                    self.pages.request_new_page()
                offset += size
                if not remaining:
                    index = blob_index_data(len(data), len(written), start)
                    self.pages.current.write_item(ns, ItemType.BLOB_IDX, key, index)
                    return
        except NvsError:
            for n in range(len(written)):
                hit = self.find(ns, key, start + n)
                if hit is not None:
                    hit.page.erase_entry_and_span(hit.entry)
            raise

    # -- erase --------------------------------------------------------------------------

    def _erase_found(self, found: Found | None) -> None:
        if found is None:
            return
        if found.item.datatype == ItemType.BLOB_IDX:
            self._erase_multi_page_blob(found)
        else:
            found.page.erase_entry_and_span(found.entry)

    def _erase_multi_page_blob(self, found: Found) -> None:
        """Erase a blob's index first (orphaning its chunks), then the chunks."""
        item = found.item
        found.page.erase_entry_and_span(found.entry)
        for n in range(item.chunk_count):
            hit = self.find(item.ns_index, item.key_bytes, item.chunk_start + n)
            if hit is not None:
                hit.page.erase_entry_and_span(hit.entry)

    def erase_item(self, ns: int, key: bytes) -> None:
        """``nvs_erase_key``."""
        found = self.find(ns, key)
        if found is None:
            raise NvsError(errors.NOT_FOUND, f"key {key.decode(errors='replace')!r} not found")
        self._erase_found(found)

    def erase_namespace(self, ns: int) -> None:
        """``nvs_erase_all``: every item of namespace ``ns``."""
        for page in self.pages.pages:
            for index, item in list(page.iter_items()):
                if item.ns_index == ns and index in page.items:
                    page.erase_entry_and_span(index)

    # -- read ---------------------------------------------------------------------------

    def read_payload(self, found: Found) -> bytes:
        """The payload of a string or v1 blob item."""
        data = found.page.read_payload(found.entry)
        if data is None:
            raise NvsError(errors.NOT_FOUND, f"value of {found.item.key!r} is corrupt")
        return data

    def _read_chunks(
        self,
        ns: int,
        key: bytes,
        index: Item,
        where: dict[HashKey, Found] | None = None,
        *,
        erase_corrupt: bool = True,
    ) -> bytes | None:
        parts = []
        for n in range(index.chunk_count):
            chunk = index.chunk_start + n
            hit = where.get((ns, key, chunk)) if where is not None else self.find(ns, key, chunk)
            if hit is None or hit.item.datatype != ItemType.BLOB_DATA:
                return None
            data = hit.page.read_payload(hit.entry, erase_corrupt=erase_corrupt)
            if data is None:
                return None
            parts.append(data)
        blob = b"".join(parts)
        return blob if len(blob) == index.blob_size else None

    def read_blob(self, found: Found, where: dict[HashKey, Found] | None = None) -> bytes:
        """The contents of a blob: a v2 index's chunks, or a v1 blob's payload.

        ``where`` (from :meth:`locate_all`) saves looking each chunk up page by page.
        """
        item = found.item
        if item.datatype == ItemType.BLOB:
            return self.read_payload(found)
        blob = self._read_chunks(item.ns_index, item.key_bytes, item, where)
        if blob is None:
            self._erase_multi_page_blob(found)
            raise NvsError(errors.NOT_FOUND, f"blob {item.key!r} is incomplete")
        return blob

    @staticmethod
    def primitive(item: Item) -> int | float:
        return unpack_primitive(item.datatype, item.data)

    def values(self, ns: int | None = None) -> Iterator[Found]:
        """Every value item (not namespaces, not chunks), in the order of first entry.

        A v2 blob is placed where its first chunk is.
        """
        order: list[tuple[tuple[int, int], Found]] = []
        firsts: dict[tuple[int, bytes, int], tuple[int, int]] = {}
        for p, page in enumerate(self.pages.pages):
            for index, item in page.iter_items():
                if item.datatype == ItemType.BLOB_DATA:
                    firsts.setdefault((item.ns_index, item.key_bytes, item.chunk_index), (p, index))
        for p, page in enumerate(self.pages.pages):
            for index, item in page.iter_items():
                if item.ns_index == NS_INDEX or item.datatype == ItemType.BLOB_DATA:
                    continue
                if ns is not None and item.ns_index != ns:
                    continue
                position = (p, index)
                if item.datatype == ItemType.BLOB_IDX:
                    first = (item.ns_index, item.key_bytes, item.chunk_start)
                    position = min(position, firsts.get(first, position))
                order.append((position, Found(page, index, item)))
        order.sort(key=lambda pair: pair[0])
        for _, found in order:
            yield found

    def stats(self) -> NvsStats:
        used = sum(p.used for p in self.pages.pages)
        free_pages = len(self.pages.free)
        total = (len(self.pages.pages) + free_pages) * ENTRY_COUNT
        free = total - used
        return NvsStats(
            used_entries=used,
            free_entries=free,
            available_entries=max(free - ENTRY_COUNT, 0),
            total_entries=total,
            namespace_count=len(self.namespaces),
        )
