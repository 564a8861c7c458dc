"""Splitting large folios and the deferred-split queue (mm/huge_memory.c
deferred_split_folio(), __folio_split(), deferred_split_scan()).

A large anonymous folio that loses the mappings of some but not all of its pages is not
split at once: it is queued (``Machine.deferred_split``), and the deferred-split shrinker
splits it when reclaim runs (shrink_slab() from shrink_node(), and drop_caches). Reclaim
also splits a large folio before it swaps it out (:mod:`mmcore.reclaim`).

Splitting to order 0, as 6.18 does on these paths: every page becomes an order-0 page
(``page.folio`` None); a page nothing references any more is freed; a mapped anonymous
page whose content is all zeros is replaced in every pte by the shared zero page and
freed (remap_page() with RMP_USE_SHARED_ZEROPAGE -> try_to_map_unused_to_zeropage(),
probed in docs/kernel-facts.md section 20); the others join the LRU next to the head.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .constants import VM_EXEC, VM_LOCKED, VM_READ, VM_WRITE
from .folio import HPAGE_PMD_ORDER
from .page import PG_ANON, PG_SWAPCACHE
from .pagetable import mk_pte, pte_modify

if TYPE_CHECKING:
    from .folio import Folio
    from .machine import Machine
    from .page import Page


def deferred_split_folio(m: Machine, folio: Folio) -> None:
    """deferred_split_folio(folio, partially_mapped=true): mark the folio partially
    mapped and queue it, unless it is in the swap cache (being swapped out). Counted per
    size (split_deferred, nr_anon_partially_mapped) and, for a PMD-sized folio only, as
    thp_deferred_split_page (probed: a 64 kB folio leaves that vm event alone)."""
    if folio.deferred or folio.head.flags & PG_SWAPCACHE:
        return  # a folio being swapped out is reclaim's already (folio_test_swapcache())
    folio.deferred = True
    m.deferred_split[folio] = None
    if folio.order >= HPAGE_PMD_ORDER:  # folio_test_pmd_mappable()
        m.vm_events.thp_deferred_split_page += 1
    m.mthp_stats.count(folio.order, "split_deferred")
    m.mthp_stats.count(folio.order, "nr_anon_partially_mapped")


def folio_unqueue_deferred_split(m: Machine, folio: Folio) -> None:
    """folio_unqueue_deferred_split(): off the queue, no longer counted as partially
    mapped (when the folio is freed or split)."""
    if folio.deferred:
        folio.deferred = False
        m.deferred_split.pop(folio, None)
        m.mthp_stats.count(folio.order, "nr_anon_partially_mapped", -1)


def _extra_refs(page: Page) -> bool:
    from .reclaim import expected_refs
    return page.refcount > expected_refs(page)


def split_folio(m: Machine, folio: Folio) -> bool:
    """split_folio() of an anonymous folio to order-0 pages; False (split_failed) when
    some page holds a reference its mappings, the swap cache and the page cache do not
    explain (can_split_folio(): e.g. the source of a COW copy in progress).

    The mapcount design drops its per-folio state first; each page keeps its exact
    mapcount, flags and rmap state, since every rmap scheme already keeps those per page.
    Counted as thp_split_page for a PMD-sized folio, and per size as ``split``. A folio
    not yet queued but mapped on two or more pages also counts ``split_deferred``:
    unmap_folio() removes its ptes one by one, so it is queued as partly mapped on the
    way (probed, section 20), and leaves the queue again with the split.
    """
    order = folio.order
    if folio.entire_mapcount:  # unmap_folio(): TTU_SPLIT_HUGE_PMD
        from .huge_memory import split_folio_pmds  # huge_memory queues deferred splits
        split_folio_pmds(m, folio)
    if any(_extra_refs(p) for p in folio.pages):
        m.mthp_stats.count(order, "split_failed")
        if order >= HPAGE_PMD_ORDER:
            m.vm_events.thp_split_page_failed += 1
        return False
    anon = bool(folio.head.flags & PG_ANON)
    if anon and folio.nr_pages_mapped >= 2:
        deferred_split_folio(m, folio)
    m.mapcount_free(folio)
    folio_unqueue_deferred_split(m, folio)
    if anon:
        m.mthp_stats.count(order, "nr_anon", -1)
    m.mthp_stats.count(order, "split")
    if order >= HPAGE_PMD_ORDER:
        m.vm_events.thp_split_page += 1
    head = folio.head
    survivors: list[Page] = []
    for page in folio.pages:
        page.folio = None
        if page.refcount:
            if page is not head:
                m.lru_add(page)  # lru_add_split_folio()
            survivors.append(page)
        else:
            if page is head:
                m.lru_del(head)
            page.mapping = None
            m.physmem.free(page)
    if anon:
        for page in survivors:
            if page.mapcount and not page.data.strip(b"\0"):
                _map_unused_to_zeropage(m, page)
    return True


def _map_unused_to_zeropage(m: Machine, page: Page) -> None:
    """try_to_map_unused_to_zeropage() for every pte of an all-zero page (not in a
    VM_LOCKED vma): the pte maps the shared zero page with the vma's protection instead,
    and the page loses that mapping (and is freed with the last one)."""
    from .rmap import find_mappings
    hits, _cost = find_mappings(m, page)
    for vma, addr in hits:
        if vma.flags & VM_LOCKED:
            continue
        mm = vma.mm
        mm.pgtable.clear(addr)
        zero = mk_pte(m.physmem.ZERO_PFN, writable=False)
        if not vma.flags & (VM_READ | VM_WRITE | VM_EXEC):
            zero = pte_modify(zero, accessible=False, writable=False)
        mm.pgtable.set(addr, zero)
        mm.add_rss(page, -1)
        m.unmap_page_pte(page, vma, addr)


def split_folio_for_swap(m: Machine, folio: Folio) -> bool:
    """The fallback of shrink_folio_list() when folio_alloc_swap() finds no run of slots
    for the whole folio: split it to order 0 (``swpout_fallback``, and
    thp_swpout_fallback for a PMD size), so its pages are swapped one by one. A
    partially mapped folio is split before swap is tried at all, without that count."""
    partially = folio.deferred
    if not split_folio(m, folio):
        return False
    if not partially:
        m.mthp_stats.count(folio.order, "swpout_fallback")
        if folio.order >= HPAGE_PMD_ORDER:
            m.vm_events.thp_swpout_fallback += 1
    return True


def deferred_split_scan(m: Machine, nr_to_scan: int | None = None) -> int:
    """deferred_split_scan(), the deferred-split shrinker: split queued folios oldest
    first (every one is partially mapped: the flag is never cleared while queued), up
    to ``nr_to_scan`` of them; one that cannot be split goes back to the tail. Returns
    the number split."""
    split = 0
    queue = m.deferred_split
    for folio in list(queue)[:nr_to_scan]:
        if split_folio(m, folio):
            split += 1
        else:
            queue.pop(folio)
            queue[folio] = None
    return split
