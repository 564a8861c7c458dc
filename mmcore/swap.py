"""A swap device with a swap cache (mm/swapfile.c, mm/swap_state.c), kept in memory.

Each slot holds the content written at swap-out and a count of the swap ptes that name it
(swap_map). While some process has brought the page back, the page sits in the swap cache
so the others map the same page; the slot and the cache entry go when the last swap pte
that names the slot is gone.
"""

from __future__ import annotations

from collections.abc import Callable

from .errors import OutOfMemory
from .freepool import FreePool
from .page import PG_SWAPCACHE, Page


class SwapArea:
    """``nr_slots`` swap slots, allocated lowest-first (scan_swap_map_slots); slots
    cost memory only while they hold content. ``nr_slots = 0`` is a machine without
    swap."""

    def __init__(self, nr_slots: int, put_page: Callable[[Page], None]) -> None:
        if nr_slots < 0:
            raise ValueError(f"swap_pages must not be negative, not {nr_slots}")
        self.nr_slots = nr_slots
        self._free = FreePool(0, nr_slots)
        self.data: dict[int, bytes] = {}
        self.count: dict[int, int] = {}
        self.cache: dict[int, Page] = {}
        self._put_page = put_page
        self.writes = 0
        self.reads = 0

    @property
    def nr_used(self) -> int:
        """Slots in use."""
        return self.nr_slots - self._free.nr

    def alloc(self, page: Page) -> int:
        """folio_alloc_swap() + add_to_swap_cache(): give ``page`` a slot, write its
        content (swap_writepage) and put it in the swap cache."""
        if not self._free.nr:
            raise OutOfMemory("swap space exhausted")
        slot = self._free.pop()
        self.data[slot] = page.data
        self.count[slot] = 0
        self.writes += 1
        self.add_to_cache(slot, page)
        return slot

    def alloc_folio(self, pages: list[Page]) -> int | None:
        """folio_alloc_swap() of a large folio: a naturally aligned run of free slots,
        one per page (a swap cluster's share, as the cluster allocator hands out to an
        order > 0 folio), each page's content written and the page put in the swap
        cache; None when no such run is free (shrink_folio_list() then splits)."""
        first = self._free.pop_block(len(pages))
        if first is None:
            return None
        for i, page in enumerate(pages):
            self.data[first + i] = page.data
            self.count[first + i] = 0
            self.add_to_cache(first + i, page)
        self.writes += len(pages)
        return first

    def store(self, data: bytes) -> int:
        """shmem_writepage(): write ``data`` to a new slot owned by a shmem inode (one
        reference, no swap cache); raises :class:`OutOfMemory` when swap is full."""
        if not self._free.nr:
            raise OutOfMemory("swap space exhausted")
        slot = self._free.pop()
        self.data[slot] = data
        self.count[slot] = 1
        self.writes += 1
        return slot

    def take(self, slot: int) -> bytes:
        """shmem_swapin_folio(): read a shmem slot back and free it."""
        data = self.read(slot)
        self.free_entry(slot)
        return data

    @property
    def nr_free(self) -> int:
        """Free slots."""
        return self._free.nr

    def dup(self, slot: int) -> None:
        """swap_duplicate(): one more swap pte names ``slot``."""
        self.count[slot] += 1

    def read(self, slot: int) -> bytes:
        """swap_read_folio(): the content stored in ``slot``."""
        self.reads += 1
        return self.data[slot]

    def cache_lookup(self, slot: int) -> Page | None:
        """swap_cache_get_folio()."""
        return self.cache.get(slot)

    def add_to_cache(self, slot: int, page: Page) -> None:
        """add_to_swap_cache(): the cache holds a page reference."""
        page.flags |= PG_SWAPCACHE
        page.swap_slot = slot
        page.refcount += 1
        self.cache[slot] = page

    def delete_from_cache(self, page: Page) -> None:
        """delete_from_swap_cache(): drop the cache's reference (may free the page)."""
        slot = page.swap_slot
        del self.cache[slot]
        page.flags &= ~PG_SWAPCACHE
        page.swap_slot = -1
        self._release_if_unused(slot)
        self._put_page(page)

    def free_entry(self, slot: int) -> None:
        """swap_free(): one swap pte naming ``slot`` is gone."""
        self.count[slot] -= 1
        if self.count[slot] == 0:
            page = self.cache.get(slot)
            if page is not None:
                self.delete_from_cache(page)
            else:
                self._release_if_unused(slot)

    def _release_if_unused(self, slot: int) -> None:
        if self.count.get(slot, 0) == 0 and slot not in self.cache and slot in self.data:
            del self.data[slot]
            del self.count[slot]
            self._free.append(slot)
