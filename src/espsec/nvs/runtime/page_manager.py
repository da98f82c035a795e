"""The list of pages in sequence order and the free pages (ESP-IDF ``nvs_pagemanager.cpp``).

Writes go to the last page of the list. When it is full, a free page is activated; if
only one free page is left, the page with the most erased entries is garbage-collected
into it first: marked FREEING, its live items copied, then erased. A power cut during
that is finished on the next load, driven by the FREEING state.
"""

from __future__ import annotations

from espsec.nvs.layout import ENTRY_COUNT, PageState
from espsec.nvs.runtime import errors
from espsec.nvs.runtime.errors import NvsError
from espsec.nvs.runtime.page import Page, hash_key
from espsec.nvs.runtime.partition import NvsPartition

_LIVE = (PageState.ACTIVE, PageState.FULL, PageState.FREEING)


class PageManager:
    """Pages in use (oldest first) and free pages."""

    def __init__(self, partition: NvsPartition) -> None:
        self.partition = partition
        self.pages: list[Page] = []
        self.free: list[Page] = []
        self._seq = 0

    def load(self, *, read_only: bool = False) -> None:
        """Load every page and finish whatever a power cut interrupted.

        ``read_only`` skips the repairs that need a free page and does not require one.
        """
        pages = [Page(self.partition, i) for i in range(self.partition.page_count)]
        for page, (raw, plain) in zip(pages, self.partition.read_pages(), strict=True):
            page.load(raw, plain)
        self.pages = sorted((p for p in pages if p.state in _LIVE), key=lambda p: p.seq)
        self.free = [p for p in pages if p.state not in _LIVE]
        if not self.pages:
            self._seq = 0
            self.activate_page()
            return
        self._seq = self.pages[-1].seq + 1
        if read_only:
            return
        self._erase_stale_duplicate()
        self._finish_freeing()
        if not self.free:
            raise NvsError(
                errors.NO_FREE_PAGES,
                "NVS partition has no free page (truncated?); erase it and initialize again",
            )

    def _erase_stale_duplicate(self) -> None:
        """A cut after a new value was written but before the old one was erased.

        The newest item is the last one of the last page; an older item with the same
        namespace, key and chunk index in an earlier page is erased, whatever its type
        (so a v2 blob index also replaces a v1 blob, and a value that changed type
        replaces the old one).
        """
        last = self.pages[-1]
        newest = None
        for _, item in last.iter_items():
            newest = item
        if newest is None:
            return
        key = hash_key(newest)
        for page in self.pages[:-1]:
            if page.state == PageState.FREEING:
                continue
            found = page.find(*key)
            if found is not None:
                page.erase_entry_and_span(found[0])
                return

    def _finish_freeing(self) -> None:
        """A cut during garbage collection: redo the copy from the FREEING page."""
        for page in list(self.pages):
            if page.state != PageState.FREEING:
                continue
            target = self.pages[-1]
            if target.state == PageState.ACTIVE:
                target.erase()
                self.pages.remove(target)
                self.free.append(target)
            self.activate_page()
            page.copy_items(self.pages[-1])
            page.erase()
            self.pages.remove(page)
            self.free.append(page)
            return

    @property
    def current(self) -> Page:
        """The page new items go to."""
        return self.pages[-1]

    def activate_page(self) -> None:
        """Take the first free page as the new current page (written on first use)."""
        if not self.free:
            raise NvsError(errors.NOT_ENOUGH_SPACE, "no free NVS page left")
        page = self.free.pop(0)
        if page.state == PageState.CORRUPT:
            page.erase()
        page.seq = self._seq
        self._seq += 1
        self.pages.append(page)

    def request_new_page(self) -> None:
        """Make a fresh current page, garbage-collecting one page if needed."""
        if not self.free:
            raise NvsError(errors.INVALID_STATE, "no free NVS page")
        if len(self.free) >= 2:
            self.activate_page()
            return
        victim = max(self.pages, key=lambda p: ENTRY_COUNT - p.used, default=None)
        if victim is None or victim.used >= ENTRY_COUNT:
            raise NvsError(errors.NOT_ENOUGH_SPACE, "NVS partition is full")
        victim.mark_freeing()
        self.activate_page()
        victim.copy_items(self.pages[-1])
        victim.erase()
        self.pages.remove(victim)
        self.free.append(victim)
