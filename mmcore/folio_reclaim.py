"""Reclaim of a large anonymous folio (mm/vmscan.c shrink_folio_list(), mm/rmap.c
try_to_unmap() over a folio).

As 6.18 does: a partially mapped folio is split first (its unmapped pages are freed
without IO); any other folio is swapped out whole when the swap device has a naturally
aligned run of free slots for it (folio_alloc_swap(): ``swpout``, and thp_swpout for a
PMD size), every pte of every page becoming a swap entry in one walk of the folio; with
no such run it is split and its pages reclaimed one by one (``swpout_fallback``); a
folio a VM_LOCKED vma maps is kept. A folio some mapping of which the walk cannot
account for is split (mmcore's simplification: the order-0 path then reports the
failure page by page). A lazily freed (MADV_FREE) folio not written since is discarded
whole, without swap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .constants import VM_LOCKED
from .folio import HPAGE_PMD_ORDER
from .folio_split import split_folio, split_folio_for_swap
from .mm import MM_SWAPENTS
from .page import PG_ANON_EXCLUSIVE, PG_DIRTY, PG_LAZYFREE
from .pagetable import pte_dirty, swp_entry_to_pte

if TYPE_CHECKING:
    from .folio import Folio
    from .machine import Machine
    from .page import Page
    from .vma import Vma


def reclaim_large_folio(m: Machine, folio: Folio) -> str:
    """shrink_folio_list() for a large anonymous folio whose head the reclaim policy
    chose: ``"freed"`` when its head's frame went back (the whole folio, swapped out,
    or the head after a split), else the head's order-0 result; ``"locked"`` when a
    VM_LOCKED vma maps it; ``"busy"`` when it holds a reference its mappings do not
    explain."""
    from .reclaim import expected_refs, reclaim_page
    head = folio.head
    if any(p.refcount > expected_refs(p) for p in folio.pages):
        return "busy"  # folio_ref_freeze() would fail
    if folio.deferred:
        outcome = "split"  # split partially mapped folios right away
    elif head.flags & PG_LAZYFREE:
        return discard_lazyfree_folio(m, folio)
    else:
        outcome = swap_out_folio(m, folio)
    if outcome in ("swapped", "locked"):
        return "freed" if outcome == "swapped" else "locked"
    pages = list(folio.pages)
    split = split_folio_for_swap(m, folio) if outcome == "no_swap" else split_folio(m, folio)
    if not split:
        return "busy"
    result = "freed"
    for page in pages:
        if m.physmem.page(page.pfn) is page:  # not freed by the split
            r = reclaim_page(m, page)
            if page is head:
                result = r
    return result


def _unmap_walk(m: Machine, folio: Folio) -> list[tuple[Vma, int, Page]] | None:
    """try_to_unmap()'s walk of ``folio`` with TTU_SPLIT_HUGE_PMD: its mappings (pte
    mappings only: a PMD mapping is split into ptes first), or None when a VM_LOCKED
    vma maps it (try_to_unmap_one() stops there, before splitting anything)."""
    from .rmap import find_folio_mappings
    hits, cost = find_folio_mappings(m, folio)
    if m.in_reclaim:
        m.reclaim_walk_cost.add(cost)
    if any(vma.flags & VM_LOCKED for vma, _a, _p in hits):
        return None
    if folio.entire_mapcount:
        from .huge_memory import split_folio_pmds
        split_folio_pmds(m, folio)
        hits, cost = find_folio_mappings(m, folio)
        if m.in_reclaim:
            m.reclaim_walk_cost.add(cost)
    return hits


def discard_lazyfree_folio(m: Machine, folio: Folio) -> str:
    """try_to_unmap_one() of a lazily freed (MADV_FREE) large folio, its ptes in one
    batch (folio_unmap_pte_batch()): if no page and no pte mapping it was dirtied since
    and nothing else holds a reference, every pte is cleared and the folio freed whole
    without swap (``"freed"``); otherwise it was written again and becomes an ordinary
    anonymous folio (``"busy"``, PG_LAZYFREE cleared), or ``"locked"``."""
    hits = _unmap_walk(m, folio)
    if hits is None:
        return "locked"
    pages = folio.pages
    mapped = sum(p.mapcount for p in pages)
    dirty = any(p.flags & PG_DIRTY for p in pages) or any(
        pte_dirty(vma.mm.pgtable.entry(addr >> 12)) for vma, addr, _p in hits)
    if dirty or len(hits) != mapped or sum(p.refcount for p in pages) != mapped:
        for page in pages:
            page.flags &= ~PG_LAZYFREE  # folio_set_swapbacked()
        return "busy"
    for vma, addr, page in hits:
        vma.mm.pgtable.clear(addr)
        vma.mm.add_rss(page, -1)
        m.unmap_page_pte(page, vma, addr)
    m.counters.tlb_flushes += 1
    m.emit("unmap", 0, pfn=folio.pfn, ptes=len(hits), anon=True)
    return "freed"


def swap_out_folio(m: Machine, folio: Folio) -> str:
    """folio_alloc_swap() + try_to_unmap() + pageout of a whole folio. ``"swapped"``:
    every pte mapping it became a swap entry naming its page's slot (exclusive where the
    page was PG_anon_exclusive), and the folio left the swap cache and was freed. With
    nothing changed: ``"locked"`` (a VM_LOCKED vma maps it: try_to_unmap_one() stops and
    the folio is kept), ``"no_swap"`` (no aligned run of free slots: the caller splits),
    ``"missed"`` (the rmap walk did not find every mapping)."""
    hits = _unmap_walk(m, folio)
    if hits is None:
        return "locked"
    if len(hits) != sum(p.mapcount for p in folio.pages):
        return "missed"
    if m.swap.alloc_folio(folio.pages) is None:
        return "no_swap"
    for vma, addr, page in hits:
        mm = vma.mm
        if pte_dirty(mm.pgtable.clear(addr)):
            page.flags |= PG_DIRTY  # the hardware dirty bit moves to the page
        exclusive = bool(page.flags & PG_ANON_EXCLUSIVE)
        mm.pgtable.set(addr, swp_entry_to_pte(page.swap_slot, exclusive))
        m.swap.dup(page.swap_slot)
        mm.rss_stat[MM_SWAPENTS] += 1
        mm.add_rss(page, -1)
        m.unmap_page_pte(page, vma, addr)
    m.counters.pages_unmapped += len(hits)
    if hits:
        m.counters.tlb_flushes += 1
    nr = folio.nr_pages
    m.counters.pages_swapped_out += nr
    m.counters.pswpout += nr
    m.mthp_stats.count(folio.order, "swpout")
    if folio.order >= HPAGE_PMD_ORDER:
        m.vm_events.thp_swpout += 1
    m.emit("unmap", 0, pfn=folio.pfn, ptes=len(hits), anon=True)
    for page in list(folio.pages):  # pageout done: __remove_mapping() of the folio
        m.swap.delete_from_cache(page)
    return "swapped"
