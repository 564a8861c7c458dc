"""PMD-mapped anonymous transparent huge pages (mm/huge_memory.c).

A 2 MiB THP is an order-9 folio mapped by one PMD. mmcore keeps that PMD as its 512 ptes
with ``_PAGE_PSE`` in the flat page table plus the PMD's index in
``PageTable.huge_pmds`` (:mod:`mmcore.pagetable`), so the MMU fast path reads it like
any pte. The exact counts: ``folio.entire_mapcount`` is the number of PMDs mapping the
folio and ``page.mapcount`` stays the pte-only count (0 while only PMDs map it). Each
PMD mapping holds one reference on every page of the folio, so that the folio's refcount
(the sum over its pages) is ``nr_pages`` times the kernel's per-mapping count and a
split needs no reference change (the kernel's folio_ref_add(folio, HPAGE_PMD_NR - 1) at
split time is what the per-page references already are). PG_anon_exclusive, which the
kernel keeps on the head page for a PMD mapping, is kept on all 512 pages alike: the
split hands it to every page (folio_add_anon_rmap_ptes(RMAP_EXCLUSIVE)) anyway.

The rules follow Linux 6.18 as probed (docs/kernel-facts.md sections 18 and 22): a write
fault in a THP-enabled vma maps a new THP (do_huge_pmd_anonymous_page), a read maps the
huge zero page; fork shares the PMD write-protected (copy_huge_pmd); a write to a shared
PMD splits the writer's PMD and copies one small page (do_huge_pmd_wp_page falls back
to the pte path), a write to the huge zero PMD maps a new THP (do_huge_zero_wp_pmd);
munmap, mprotect, mlock, mremap and MADV_DONTNEED of part of a PMD split it
(__split_huge_pmd_locked), the whole of one is zapped or moved as one (zap_huge_pmd,
move_huge_pmd).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .constants import PAGE_SHIFT, PAGE_SIZE, VM_HUGEPAGE, VM_NOHUGEPAGE, VM_WRITE
from .folio import HPAGE_PMD_ORDER
from .folio_split import deferred_split_folio
from .mm import MM_ANONPAGES
from .page import PG_ANON, PG_ANON_EXCLUSIVE, PG_ZERO, Page
from .pagetable import (
    PMD_SHIFT,
    mk_pte,
    pte_mkold,
    pte_mkwrite,
    pte_pfn,
    pte_wrprotect,
)

if TYPE_CHECKING:
    from .folio import Folio
    from .machine import Machine
    from .vma import Vma

#: HPAGE_PMD_NR: pages per PMD mapping.
HPAGE_PMD_NR = 1 << HPAGE_PMD_ORDER
#: HPAGE_PMD_SIZE: bytes per PMD mapping (2 MiB).
HPAGE_PMD_SIZE = 1 << PMD_SHIFT
#: HPAGE_PMD_MASK: rounds an address down to its PMD.
HPAGE_PMD_MASK = ~(HPAGE_PMD_SIZE - 1)
_PSE_BIT = 1 << 7


# --- policy ------------------------------------------------------------------------------


def thp_pmd_allowed(vma: Vma, collapse: bool = False) -> bool:
    """thp_vma_allowable_order(vma, vm_flags, TVA_PAGEFAULT or TVA_KHUGEPAGED, PMD_ORDER)
    for a private anonymous vma: never with VM_NOHUGEPAGE; otherwise the PMD size's
    effective mode (``hugepages-2048kB/enabled``, ``inherit`` meaning the top-level
    knob) is ``always``, or ``madvise`` and the vma has VM_HUGEPAGE. With ``collapse``
    (TVA_FORCED_COLLAPSE, MADV_COLLAPSE) the sysfs modes do not matter."""
    flags = vma.flags
    if flags & VM_NOHUGEPAGE or vma.file is not None:
        return False
    if collapse:
        return True
    thp = vma.mm.machine.thp
    mode = thp.per_order[HPAGE_PMD_ORDER]  # ThpSettings.mode(), inlined: every anon fault
    if mode == "inherit":
        mode = thp.enabled
    return mode == "always" or (mode == "madvise" and bool(flags & VM_HUGEPAGE))


def thp_vma_suitable(vma: Vma, haddr: int) -> bool:
    """thp_vma_suitable_order(vma, haddr, PMD_ORDER): the PMD-aligned 2 MiB at ``haddr``
    lies inside the vma (an anonymous vma needs no pgoff alignment)."""
    return vma.start <= haddr and haddr + HPAGE_PMD_SIZE <= vma.end


# --- the huge zero page ------------------------------------------------------------------


def huge_zero_folio(m: Machine) -> Folio | None:
    """mm_get_huge_zero_folio(): the one shared order-9 zero folio, allocated on first
    use (thp_zero_page_alloc, or thp_zero_page_alloc_failed and None). Like the small
    zero page its pages keep mapcount 0, are not on the LRU, never count in rss and are
    never freed (mmcore does not model the shrinker that frees an unused one)."""
    folio = m.huge_zero_folio
    if folio is None:
        folio = m.physmem.alloc_folio(HPAGE_PMD_ORDER)
        if folio is None:
            m.vm_events.thp_zero_page_alloc_failed += 1
            return None
        for page in folio.pages:
            page.flags = PG_ZERO
            page.refcount = 1
        m.huge_zero_folio = folio
        m.vm_events.thp_zero_page_alloc += 1
    return folio


def is_huge_zero_page(page: Page) -> bool:
    """is_huge_zero_folio() for a page: part of the huge zero folio."""
    return bool(page.flags & PG_ZERO) and page.folio is not None


def page_mapcount(page: Page) -> int:
    """folio_precise_page_mapcount(): the ptes mapping ``page`` plus the PMDs mapping its
    folio (the exact truth; the design's view is ``Machine.mapcount_page``)."""
    folio = page.folio
    return page.mapcount if folio is None else page.mapcount + folio.entire_mapcount


# --- fault -------------------------------------------------------------------------------


def do_huge_pmd_anonymous_page(vma: Vma, addr: int, write: bool) -> int:
    """do_huge_pmd_anonymous_page(), which __handle_mm_fault() -> create_huge_pmd() calls
    for an anonymous vma when the fault's PMD is none (no pte of its 2 MiB populated)
    and :func:`thp_pmd_allowed`. Outside a suitable range, fall back; prepare the
    anon_vma (vmf_anon_prepare(), even for a read); a read with ``use_zero_page`` maps
    the huge zero page read-only; otherwise a new order-9 folio is mapped writable, or,
    when none can be allocated, thp_fault_fallback and the pte path. Returns the pte now
    at ``addr``, or 0 for VM_FAULT_FALLBACK (the caller takes the pte path)."""
    from .fault import anon_vma_prepare
    haddr = addr & HPAGE_PMD_MASK
    if not thp_vma_suitable(vma, haddr):
        return 0
    m = vma.mm.machine
    anon_vma_prepare(vma)
    if not write and m.thp.use_zero_page:
        zero = huge_zero_folio(m)
        if zero is None:
            m.vm_events.thp_fault_fallback += 1
            return 0
        pte = mk_pte(zero.pfn, writable=False)
        vma.mm.pgtable.set_huge_pmd(haddr, [pte + (i << 12) for i in range(HPAGE_PMD_NR)])
        m.counters.fault_zero_page += 1
        return vma.mm.pgtable.entry(addr >> PAGE_SHIFT)
    folio = vma_alloc_anon_folio_pmd(vma)
    if folio is None:
        return 0
    map_anon_folio_pmd(vma, haddr, folio)
    m.counters.fault_anon += 1
    m.emit("fault", vma.mm.owner_pid, type="thp", address=haddr, pfn=folio.pfn)
    return vma.mm.pgtable.entry(addr >> PAGE_SHIFT)


def vma_alloc_anon_folio_pmd(vma: Vma) -> Folio | None:
    """vma_alloc_anon_folio_pmd(): a new zeroed order-9 folio, with direct reclaim if
    the vma has VM_HUGEPAGE (vma_thp_gfp_mask() under ``defrag=madvise``), or None
    after counting thp_fault_fallback and the PMD size's anon_fault_fallback."""
    m = vma.mm.machine
    folio = m.alloc_folio(HPAGE_PMD_ORDER, bool(vma.flags & VM_HUGEPAGE))
    if folio is None:
        m.vm_events.thp_fault_fallback += 1
        m.mthp_stats.count(HPAGE_PMD_ORDER, "anon_fault_fallback")
    return folio


def map_new_anon_pmd(vma: Vma, haddr: int, folio: Folio) -> None:
    """folio_add_new_anon_rmap(RMAP_EXCLUSIVE) of a PMD + set_pmd_at(): every page is
    anonymous, exclusive and referenced once by the PMD, and the folio counts in the PMD
    size's ``nr_anon``; the PMD is dirty and writable if the vma is
    (maybe_pmd_mkwrite(pmd_mkdirty()))."""
    m = vma.mm.machine
    for page in folio.pages:
        page.flags = (page.flags & ~PG_ZERO) | PG_ANON | PG_ANON_EXCLUSIVE
        page.refcount += 1
    folio.entire_mapcount = 1
    m.rmap_folio_add_new_anon(folio, 0, HPAGE_PMD_NR, vma, haddr, True)
    m.mapcount_add(folio, 0, HPAGE_PMD_NR, vma, haddr, True)
    m.mthp_stats.count(HPAGE_PMD_ORDER, "nr_anon")
    writable = bool(vma.flags & VM_WRITE)
    pte = mk_pte(folio.pfn, writable, dirty=True)
    vma.mm.pgtable.set_huge_pmd(haddr, [pte + (i << 12) for i in range(HPAGE_PMD_NR)])


def map_anon_folio_pmd(vma: Vma, haddr: int, folio: Folio) -> None:
    """map_anon_folio_pmd(): map a new THP at ``haddr``; rss grows by 512 pages and
    thp_fault_alloc and the PMD size's anon_fault_alloc count it."""
    m = vma.mm.machine
    map_new_anon_pmd(vma, haddr, folio)
    vma.mm.rss_stat[MM_ANONPAGES] += HPAGE_PMD_NR
    m.vm_events.thp_fault_alloc += 1
    m.mthp_stats.count(HPAGE_PMD_ORDER, "anon_fault_alloc")


def do_huge_pmd_wp_page(vma: Vma, addr: int, pte: int) -> int:
    """do_huge_pmd_wp_page(): a write hit a read-only huge PMD in a writable vma.

    The huge zero PMD gets a new THP (do_huge_zero_wp_pmd()). A THP that is
    PG_anon_exclusive, or whose only reference is this PMD (folio_ref_count() == 1:
    every page referenced once, by one PMD), is reused in place. Otherwise the PMD is
    split and the fault falls back to the pte path, which copies the one small page
    written (kernel-facts 18: the writer's PMD is split, the other mapper keeps its
    PMD). Returns the pte now at ``addr``."""
    from .fault import handle_pte_fault
    mm = vma.mm
    m = mm.machine
    haddr = addr & HPAGE_PMD_MASK
    page = m.physmem.pages[pte_pfn(pte)]
    assert page is not None and page.folio is not None
    folio = page.folio
    if is_huge_zero_page(page):
        if do_huge_zero_wp_pmd(vma, haddr):
            return mm.pgtable.entry(addr >> PAGE_SHIFT)
    elif folio.head.flags & PG_ANON_EXCLUSIVE or _only_this_pmd(folio):
        for p in folio.pages:
            p.flags |= PG_ANON_EXCLUSIVE
        pt = mm.pgtable
        for i in range(HPAGE_PMD_NR):
            a = (haddr >> PAGE_SHIFT) + i
            pt.update(a, pte_mkwrite(pt.entry(a)))
        m.counters.fault_cow_reuse += 1
        m.emit("fault", mm.owner_pid, type="thp_reuse", address=haddr, pfn=folio.pfn)
        return pt.entry(addr >> PAGE_SHIFT)
    split_huge_pmd(vma, haddr)
    return handle_pte_fault(vma, addr, True)


def _only_this_pmd(folio: Folio) -> bool:
    """folio_ref_count(folio) == 1 in the kernel's terms: one PMD and nothing else
    (no pte, no swap cache) references the folio."""
    return folio.entire_mapcount == 1 and all(p.refcount == 1 for p in folio.pages)


def do_huge_zero_wp_pmd(vma: Vma, haddr: int) -> bool:
    """do_huge_zero_wp_pmd(): replace the huge zero PMD by a new THP (probed: the write
    maps 2048 kB of new anonymous memory, thp_fault_alloc +1, no split); False when no
    THP can be allocated (the caller splits the PMD and takes the pte path)."""
    m = vma.mm.machine
    folio = vma_alloc_anon_folio_pmd(vma)
    if folio is None:
        return False
    vma.mm.pgtable.clear_huge_pmd(haddr)
    map_anon_folio_pmd(vma, haddr, folio)
    m.counters.fault_cow_copy += 1
    m.counters.tlb_flushes += 1
    return True


def split_folio_pmds(m: Machine, folio: Folio) -> None:
    """unmap_folio()'s TTU_SPLIT_HUGE_PMD before a folio split: every PMD mapping the
    folio, found through the rmap walk of its head, becomes 512 ptes."""
    from .rmap import find_mappings
    head = folio.head
    hits, _cost = find_mappings(m, head)
    for vma, addr in hits:
        if vma.mm.pgtable.entry(addr >> PAGE_SHIFT) & _PSE_BIT:
            split_huge_pmd(vma, addr & HPAGE_PMD_MASK)


# --- fork, zap, split, move --------------------------------------------------------------


def copy_huge_pmd(dst: Vma, src: Vma, haddr: int) -> None:
    """copy_huge_pmd(): fork shares a huge PMD. Both PMDs are write-protected and the
    child's is old (pmdp_set_wrprotect(), pmd_wrprotect(), pmd_mkold()); an anonymous
    THP loses PG_anon_exclusive (folio_try_dup_anon_rmap_pmd()), gains a PMD mapping and
    512 pages of the child's rss. The huge zero PMD is copied as it is."""
    m = src.mm.machine
    spt, dpt = src.mm.pgtable, dst.mm.pgtable
    base = haddr >> PAGE_SHIFT
    ptes = []
    for i in range(HPAGE_PMD_NR):
        pte = pte_wrprotect(spt.entry(base + i))
        spt.update(base + i, pte)
        ptes.append(pte_mkold(pte))
    dpt.set_huge_pmd(haddr, ptes)
    page = m.physmem.pages[pte_pfn(ptes[0])]
    assert page is not None and page.folio is not None
    if page.flags & PG_ZERO:
        return
    folio = page.folio
    for p in folio.pages:
        p.flags &= ~PG_ANON_EXCLUSIVE
        p.refcount += 1
    folio.entire_mapcount += 1
    m.rmap_folio_dup_ptes(folio, 0, HPAGE_PMD_NR, dst, haddr)
    m.mapcount_add(folio, 0, HPAGE_PMD_NR, dst, haddr, True)
    dst.mm.rss_stat[MM_ANONPAGES] += HPAGE_PMD_NR


def zap_huge_pmd(vma: Vma, haddr: int) -> None:
    """zap_huge_pmd(): remove a whole huge PMD. An anonymous THP loses the PMD mapping
    (folio_remove_rmap_pmd()), 512 pages of rss and one reference per page; if ptes
    still map part of it, it goes on the deferred-split queue. The huge zero PMD just
    goes."""
    mm = vma.mm
    m = mm.machine
    ptes = mm.pgtable.clear_huge_pmd(haddr)
    page = m.physmem.pages[pte_pfn(ptes[0])]
    assert page is not None and page.folio is not None
    m.counters.tlb_flushes += 1
    if page.flags & PG_ZERO:
        return
    folio = page.folio
    folio.entire_mapcount -= 1
    m.rmap_folio_remove_ptes(folio, 0, HPAGE_PMD_NR, vma, haddr)
    m.mapcount_remove(folio, 0, HPAGE_PMD_NR, vma, haddr, True)
    mm.add_rss(page, -HPAGE_PMD_NR)
    if not folio.deferred and m.mapcount_partially_mapped(folio):
        deferred_split_folio(m, folio)
    for p in list(folio.pages):
        m.put_page(p)


def split_huge_pmd(vma: Vma, haddr: int) -> None:
    """__split_huge_pmd_locked(): turn the huge PMD at ``haddr`` into 512 ptes (same
    pfns, write, dirty, young and PROT_NONE state; thp_split_pmd). An anonymous THP's
    PMD mapping becomes 512 pte mappings: the design is told (mapcount_remove of the
    PMD, then mapcount_add of 512 ptes) and every page's mapcount grows by one; the rmap
    and the references are unchanged. The huge zero PMD becomes 512 ptes of the small
    zero page (__split_huge_zero_page_pmd())."""
    mm = vma.mm
    m = mm.machine
    pt = mm.pgtable
    ptes = pt.clear_huge_pmd(haddr)
    m.vm_events.thp_split_pmd += 1
    head = m.physmem.pages[pte_pfn(ptes[0])]
    assert head is not None and head.folio is not None
    if head.flags & PG_ZERO:
        zero = mk_pte(m.physmem.ZERO_PFN, writable=False)
        for i in range(HPAGE_PMD_NR):
            pt.set(haddr + (i << PAGE_SHIFT), zero)
        return
    folio = head.folio
    for i, pte in enumerate(ptes):
        pt.set(haddr + (i << PAGE_SHIFT), pte & ~_PSE_BIT)
        folio.pages[i].mapcount += 1
    folio.entire_mapcount -= 1
    m.mapcount_remove(folio, 0, HPAGE_PMD_NR, vma, haddr, True)
    m.mapcount_add(folio, 0, HPAGE_PMD_NR, vma, haddr, False)


def split_huge_pmd_address(vma: Vma, addr: int) -> None:
    """split_huge_pmd_address(): split the huge PMD that ``addr`` falls strictly inside
    (vma_adjust_trans_huge() does this at a vma boundary that cuts a PMD)."""
    if addr & ~HPAGE_PMD_MASK and (addr >> PMD_SHIFT) in vma.mm.pgtable.huge_pmds:
        split_huge_pmd(vma, addr & HPAGE_PMD_MASK)


def zap_huge_pmds(vma: Vma, start: int, end: int) -> None:
    """zap_pmd_range() for the huge PMDs of [start, end): a PMD the range covers whole
    is zapped as one (zap_huge_pmd()), one it covers in part is split first
    (__split_huge_pmd()) and left to the pte zap."""
    for haddr in vma.mm.pgtable.huge_pmds_in(start, end):
        if start <= haddr and haddr + HPAGE_PMD_SIZE <= end:
            zap_huge_pmd(vma, haddr)
        else:
            split_huge_pmd(vma, haddr)


def move_huge_pmds(vma: Vma, old_addr: int, new_vma: Vma, new_addr: int,
                   length: int) -> None:
    """move_page_tables() for the huge PMDs of the old range: one the move covers whole
    and lands on a 2 MiB boundary moves as one entry (move_huge_pmd(); probed: still
    2048 kB of AnonHugePages), any other is split and its ptes move one by one. The rmap
    schemes hear of each page's move, as for ptes (rmap_page_move). An mremap policy is
    asked about every page; if it would copy one, the PMD is split so that the pte
    path copies exactly those pages."""
    mm = vma.mm
    m = mm.machine
    pt = mm.pgtable
    policy = m.mremap_policy
    delta = new_addr - old_addr
    for haddr in pt.huge_pmds_in(old_addr, old_addr + length):
        page = m.physmem.pages[pte_pfn(pt.entry(haddr >> PAGE_SHIFT))]
        assert page is not None and page.folio is not None
        pages = [] if page.flags & PG_ZERO else page.folio.pages
        whole = old_addr <= haddr and haddr + HPAGE_PMD_SIZE <= old_addr + length
        if (not whole or (haddr + delta) & ~HPAGE_PMD_MASK or (policy is not None and any(
                policy(p, vma, haddr + i * PAGE_SIZE, new_vma,
                       haddr + delta + i * PAGE_SIZE) == "copy"
                for i, p in enumerate(pages)))):
            split_huge_pmd(vma, haddr)
            continue
        pt.set_huge_pmd(haddr + delta, pt.clear_huge_pmd(haddr))
        for i, p in enumerate(pages):
            m.rmap_page_move(p, vma, haddr + i * PAGE_SIZE, new_vma,
                             haddr + delta + i * PAGE_SIZE)
        m.counters.mremap_ptes_moved += 1
