"""Page reclaim (mm/vmscan.c): the reason rmap exists.

The reclaim *policy* is a plugin that owns the LRU lists and decides whom to scan; the
core provides the two rmap-driven operations it needs, through :class:`ReclaimContext`:

* ``page_referenced`` (folio_referenced): walk every mapping, test-and-clear its accessed
  bit, and count the young ones;
* ``reclaim`` (shrink_folio_list for one page): unmap it everywhere through the rmap walk
  (try_to_unmap), then swap it out (anonymous, shmem) or write it back if dirty and drop
  it from the page cache (file), and free it.

The allocator calls reclaim below the watermarks (kswapd) and when no frame is left
(direct reclaim); when nothing can be freed, the OOM killer ends the largest process.
Reclaim that cannot succeed is bounded as in Linux: swap-backed pages are not scanned
while no swap slot is free (:meth:`ReclaimContext.no_swap_for`), and kswapd stops being
woken after ``MAX_RECLAIM_RETRIES`` runs in a row freed nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .constants import VM_LOCKED
from .folio_reclaim import reclaim_large_folio
from .folio_split import deferred_split_scan
from .huge_memory import page_mapcount
from .page import PG_CACHE, PG_DIRTY, PG_LAZYFREE, PG_REFERENCED, PG_SWAPCACHE, Page
from .pagetable import pte_dirty, pte_mkold, pte_present, pte_young

if TYPE_CHECKING:
    from .folio import Folio
    from .fs import Inode
    from .machine import Machine

#: MAX_RECLAIM_RETRIES (mm/internal.h): kswapd runs in a row that freed nothing before
#: the node is hopeless and wakeup_kswapd() leaves it to direct reclaim.
MAX_RECLAIM_RETRIES = 16


class ReclaimContext:
    """What a reclaim policy may ask of the core during one shrink."""

    def __init__(self, machine: Machine, reason: str) -> None:
        self.machine = machine
        self.reason = reason
        self.freed = 0
        #: Pages of the large folio whose head was checked or reclaimed last, by the
        #: head's pfn: a decision on it counts that many pages in /proc/vmstat, as the
        #: kernel counts pgscan, pgsteal, pgactivate and pgrefill in pages.
        self._folio_pages: dict[int, int] = {}

    def page_referenced(self, page: Page) -> int:
        """folio_referenced(): young ptes found (and cleared) through the rmap walk, plus
        one for PG_referenced (set by read()/write()); -1 if mapped in a VM_LOCKED vma."""
        m = self.machine
        m.counters.reclaim_referenced_walks += 1
        refs = 1 if page.flags & PG_REFERENCED else 0
        page.flags &= ~PG_REFERENCED
        if page.folio is not None:
            self._folio_pages[page.pfn] = page.folio.nr_pages
            return self._folio_referenced(page.folio, refs)
        if not page.mapcount:
            return refs
        from .rmap import find_mappings
        hits, cost = find_mappings(m, page)
        m.reclaim_walk_cost.add(cost)
        for vma, addr in hits:
            if vma.flags & VM_LOCKED:
                return -1
            pt = vma.mm.pgtable
            pte = pt.entry(addr >> 12)
            if pte_present(pte) and pte_young(pte):
                pt.update(addr >> 12, pte_mkold(pte))
                refs += 1
        return refs

    def _folio_referenced(self, folio: Folio, refs: int) -> int:
        """folio_referenced() of a large folio (``page_referenced`` of its head): one
        walk over the folio (:func:`~mmcore.rmap.find_folio_mappings`), each young pte
        of any of its pages counting one."""
        from .rmap import find_folio_mappings
        hits, cost = find_folio_mappings(self.machine, folio)
        self.machine.reclaim_walk_cost.add(cost)
        if any(vma.flags & VM_LOCKED for vma, _addr, _page in hits):
            return -1
        for vma, addr, _page in hits:
            pt = vma.mm.pgtable
            pte = pt.entry(addr >> 12)
            if pte_young(pte):
                pt.update(addr >> 12, pte_mkold(pte))
                refs += 1
        return refs

    def no_swap_for(self, page: Page) -> bool:
        """True if ``page`` is swap-backed, needs a new swap slot to be reclaimed, and no
        slot is free: a mapped anonymous page outside the swap cache, or a shmem page.

        get_scan_count() does not scan the anonymous (swap-backed) LRU at all when
        can_reclaim_anon_pages() is false (SCAN_FILE), so a policy should pass such a
        page by without a referenced check: scanning it can only fail. (The 2.6 single
        LRU did scan them; the 2.6.28 split LRU was made to stop that.)"""
        if self.machine.swap.nr_free:
            return False
        if page.is_anon:
            mapped = page.mapcount if page.folio is None else page.folio.total_mapcount
            return bool(mapped) and not page.flags & PG_SWAPCACHE
        inode: Inode | None = page.mapping if page.flags & PG_CACHE else None  # type: ignore[assignment]
        return inode is not None and inode.shmem

    def reclaim(self, page: Page) -> str:
        """Try to free ``page``; returns ``"freed"``, ``"busy"`` (someone holds an extra
        reference), ``"locked"`` (mlocked), ``"no_swap"`` or ``"unmap_failed"``."""
        if page.folio is not None:
            self._folio_pages[page.pfn] = page.folio.nr_pages
            before = self.machine.physmem.nr_free
            result = reclaim_large_folio(self.machine, page.folio)
            self.freed += self.machine.physmem.nr_free - before
            return result
        result = reclaim_page(self.machine, page)
        if result == "freed":
            self.freed += 1
        return result

    def decide(self, page: Page, decision: str) -> None:
        """Record a policy decision (activate, deactivate, keep, reclaim...) as an event."""
        m = self.machine
        key = f"reclaim_{decision}"
        m.reclaim_decisions[key] = m.reclaim_decisions.get(key, 0) + 1
        for _ in range(self._folio_pages.pop(page.pfn, 1)):
            m.vm_events.count_reclaim(page, decision, self.reason)
        if m.observed:
            m.emit("reclaim", 0, pfn=page.pfn, decision=decision, reason=self.reason)


def expected_refs(page: Page) -> int:
    """The references reclaim can account for: mappings, swap cache, page cache."""
    return page_mapcount(page) + (1 if page.flags & PG_SWAPCACHE else 0) \
        + (1 if page.flags & PG_CACHE else 0)


def reclaim_page(m: Machine, page: Page) -> str:
    """shrink_folio_list() for one page: unmap, write out, free. Returns ``"freed"`` only
    if the frame really went back to the free list."""
    result = _reclaim_page(m, page)
    if result == "freed" and m.physmem.page(page.pfn) is page:
        return "busy"  # still referenced by someone the LRU does not know about
    return result


def _reclaim_page(m: Machine, page: Page) -> str:
    from .pagecache import delete_from_page_cache, writeback_page
    from .rmap import try_to_unmap
    if page.refcount > expected_refs(page):
        return "busy"  # pinned by an operation in progress (folio_ref_freeze fails)
    if page.is_anon:
        if page.flags & PG_LAZYFREE and page.mapcount:
            return discard_lazyfree(m, page)
        if page_mapcount(page):
            if not page.flags & PG_SWAPCACHE and not m.swap.nr_free:
                return "no_swap"
            result = try_to_unmap(m, page)
            if not result.success:
                return "locked" if "VM_LOCKED" in result.reason else "unmap_failed"
            m.counters.pswpout += 1
            return "freed"
        if page.flags & PG_SWAPCACHE:
            m.swap.delete_from_cache(page)
            return "freed"
        return "busy"
    if page.flags & PG_CACHE:
        inode: Inode = page.mapping  # type: ignore[assignment]
        if inode.shmem and not m.swap.nr_free:
            return "no_swap"
        if page.mapcount:
            result = try_to_unmap(m, page)
            if not result.success:
                return "locked" if "VM_LOCKED" in result.reason else "unmap_failed"
        if inode.shmem:
            _shmem_writeout(m, inode, page)
        elif page.flags & PG_DIRTY:
            writeback_page(m, page)
        delete_from_page_cache(m, page)
        return "freed"
    return "busy"


def _shmem_writeout(m: Machine, inode: Inode, page: Page) -> None:
    """shmem_writeout(): move an unmapped shmem page's content to a new swap slot."""
    inode.swapped[page.index] = m.swap.store(page.data)
    m.counters.pswpout += 1


def pageout_cache_page(m: Machine, page: Page, pte_dirty: bool) -> None:
    """MADV_PAGEOUT of a page-cache page mapped once (reclaim_pages() ->
    shrink_folio_list() outside kswapd). A dirty file page (PG_dirty or a dirty pte) is
    left mapped: only kswapd writes file folios back, the others are activated. A clean
    file page is unmapped and dropped. A shmem page is unmapped and written to swap if a
    slot is free; without one it stays in the page cache (shmem_writeout() fails and
    the folio is kept), its next access a minor fault."""
    from .pagecache import delete_from_page_cache
    from .rmap import try_to_unmap
    inode: Inode = page.mapping  # type: ignore[assignment]
    if not inode.shmem and (pte_dirty or page.flags & PG_DIRTY):
        return
    if page.refcount > expected_refs(page) or not try_to_unmap(m, page).success:
        return
    if inode.shmem:
        if not m.swap.nr_free:
            return
        _shmem_writeout(m, inode, page)
    delete_from_page_cache(m, page)


def discard_lazyfree(m: Machine, page: Page) -> str:
    """try_to_unmap_one() for a lazily freed (MADV_FREE) page: if neither the page nor
    any pte mapping it was dirtied since, and no one else holds a reference, every pte
    is cleared (a later read sees zeros) and the page is freed without swap. Otherwise
    the page was written again: it becomes an ordinary anonymous page (folio_set_swapbacked)
    and stays. Returns ``"freed"``, ``"locked"`` or ``"busy"``."""
    from .rmap import find_mappings
    hits, cost = find_mappings(m, page)
    if m.in_reclaim:
        m.reclaim_walk_cost.add(cost)
    if any(vma.flags & VM_LOCKED for vma, _ in hits):
        return "locked"
    dirty = page.flags & PG_DIRTY or any(
        pte_dirty(vma.mm.pgtable.entry(addr >> 12)) for vma, addr in hits)
    if dirty or page.refcount != page.mapcount or len(hits) != page.mapcount:
        page.flags &= ~PG_LAZYFREE
        return "busy"
    for vma, addr in hits:
        vma.mm.pgtable.clear(addr)
        vma.mm.add_rss(page, -1)
        m.unmap_page_pte(page, vma, addr)
    m.counters.tlb_flushes += 1
    m.emit("unmap", 0, pfn=page.pfn, ptes=len(hits), anon=True)
    return "freed"


def shrink(m: Machine, nr_to_reclaim: int, reason: str) -> int:
    """Ask the reclaim policy for ``nr_to_reclaim`` pages; returns how many it freed.

    Keeps ``m.kswapd_failures`` as pgdat->kswapd_failures: balance_pgdat() counts a
    kswapd run that reclaimed nothing, and any reclaim that makes progress (kswapd or
    direct, shrink_node()) resets the count and so revives a hopeless kswapd."""
    ctx = ReclaimContext(m, reason)
    before = m.physmem.nr_free
    m.hook.reclaim_shrink(nr_to_reclaim=nr_to_reclaim, ctx=ctx)
    if m.deferred_split:  # shrink_node() -> shrink_slab(): the deferred-split shrinker
        deferred_split_scan(m)
    freed = m.physmem.nr_free - before
    if freed > 0:
        m.kswapd_failures = 0
    elif reason == "kswapd":
        m.kswapd_failures += 1
    return freed


def kswapd_hopeless(m: Machine) -> bool:
    """wakeup_kswapd(): a node whose kswapd failed ``MAX_RECLAIM_RETRIES`` times in a row
    is not woken again ("hopeless node, leave it to direct reclaim")."""
    return m.kswapd_failures >= MAX_RECLAIM_RETRIES

