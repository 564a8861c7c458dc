"""PTE-mapped large anonymous folios (mTHP) in the fault path of mm/memory.c:
alloc_anon_folio(), the large-folio tail of do_anonymous_page(), and the reuse test of a
write fault on a page of a large folio (__wp_can_reuse_large_anon_folio()).

A write fault on pte_none in a private anonymous vma tries the mTHP sizes the knobs
allow (:meth:`mmcore.thp.ThpSettings.pte_orders`), largest first, skipping a size whose
naturally aligned range leaves the vma or already has a pte; the first size that
allocates is mapped whole, every pte writable and dirty (kernel-facts section 18: the
first write maps all 16 pages of a 64 kB folio). A read fault maps the shared zero page
as before, and a later write to it copies an order-0 page (probed, section 20).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .constants import PAGE_SHIFT, VM_HUGEPAGE
from .folio_rmap import folio_add_new_anon_rmap
from .mm import MM_ANONPAGES

if TYPE_CHECKING:
    from .folio import Folio
    from .mm import Mm
    from .vma import Vma

#: mk_pte() | pte_mkwrite(pte_mkdirty()): present, rw, user, accessed, dirty.
_ANON_WRITE_PTE = 0x67


def alloc_anon_folio(vma: Vma, addr: int, orders: tuple[int, ...]) -> Folio | None:
    """alloc_anon_folio(): of ``orders`` (largest first), drop those whose aligned range
    around ``addr`` is not inside ``vma`` (thp_vma_suitable_order()), take the largest
    whose range is all pte_none (pte_range_none(); the smaller ranges inside it are then
    empty too), and allocate from there down (Machine.alloc_folio), counting each size
    that fails as ``anon_fault_fallback``. None: the caller maps an order-0 page."""
    m = vma.mm.machine
    pt = vma.mm.pgtable
    vpn = addr >> PAGE_SHIFT
    start, end = vma.start >> PAGE_SHIFT, vma.end >> PAGE_SHIFT
    suitable = []
    for order in orders:
        first = vpn & ~((1 << order) - 1)
        if first >= start and first + (1 << order) <= end:
            suitable.append(order)
    empty = [o for o in suitable if not pt.any_populated(vpn & ~((1 << o) - 1), 1 << o)]
    direct_reclaim = bool(vma.flags & VM_HUGEPAGE)
    for order in empty:
        folio = m.alloc_folio(order, direct_reclaim)
        if folio is not None:
            return folio
        m.mthp_stats.count(order, "anon_fault_fallback")
    return None


def do_anonymous_folio(vma: Vma, addr: int, orders: tuple[int, ...]) -> int:
    """do_anonymous_page() with a large folio: map all of it writable from its aligned
    start, account ``nr_pages`` anonymous pages and one ``anon_fault_alloc``; return the
    pte of ``addr``, or 0 when no large folio could be had (order 0 follows)."""
    folio = alloc_anon_folio(vma, addr, orders)
    if folio is None:
        return 0
    mm = vma.mm
    m = mm.machine
    nr = folio.nr_pages
    base = addr & ~((nr << PAGE_SHIFT) - 1)
    folio_add_new_anon_rmap(folio, vma, base)
    pt = mm.pgtable
    pfn = folio.pfn
    pt.set_run(base, [((pfn + i) << 12) | _ANON_WRITE_PTE for i in range(nr)])
    mm.rss_stat[MM_ANONPAGES] += nr
    m.mthp_stats.count(folio.order, "anon_fault_alloc")
    m.counters.fault_anon += 1
    if m.observed:
        m.emit("fault", mm.owner_pid, type="anon", address=addr,
               pfn=pfn + ((addr - base) >> PAGE_SHIFT), order=folio.order)
    return pt.entry(addr >> PAGE_SHIFT)


def wp_can_reuse_large_anon_folio(folio: Folio, mm: Mm) -> bool:
    """__wp_can_reuse_large_anon_folio(): a write to a read-only pte of a large folio
    may reuse the page in place only if the folio has more than one mapping (a folio
    mapped once is copied so that it can be freed), ``mm`` certainly maps it
    exclusively (the mapcount design's mm-id test), and every reference is one of those
    mappings (folio_ref_count() == folio_large_mapcount()). A large folio is in mmcore's
    swap cache only inside the reclaim that swaps it out whole, so folio_free_swap() has
    nothing to do here."""
    m = mm.machine
    mapcount = m.mapcount_folio(folio)
    if mapcount <= 1 or not m.mapcount_exclusive_to(folio, mm):
        return False
    return bool(sum(p.refcount for p in folio.pages) == mapcount)
