"""Collapsing 512 ptes into a PMD-mapped THP: khugepaged and MADV_COLLAPSE
(mm/khugepaged.c).

Both scan one PMD-aligned 2 MiB of a private anonymous vma (hpage_collapse_scan_pmd())
and, if it qualifies, copy its pages into a new order-9 folio mapped by one PMD
(collapse_huge_page()). khugepaged is bounded by the ``max_ptes_*`` knobs and wants
recently referenced pages; MADV_COLLAPSE ignores those limits and the sysfs THP modes
(probed, docs/kernel-facts.md section 22: a 2 MiB range with 10 written pages, or only
zero-page ptes, collapses).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .constants import PAGE_SHIFT
from .errors import EAGAIN, EINVAL, ENOMEM, syscall_error
from .folio import HPAGE_PMD_ORDER
from .huge_memory import (
    HPAGE_PMD_MASK,
    HPAGE_PMD_NR,
    HPAGE_PMD_SIZE,
    map_new_anon_pmd,
    page_mapcount,
    thp_pmd_allowed,
)
from .page import PG_REFERENCED, PG_SWAPCACHE, PG_ZERO
from .pagetable import is_swap_pte, pte_pfn, pte_present, pte_protnone, pte_young

if TYPE_CHECKING:
    from .machine import Machine
    from .mm import Mm
    from .vma import Vma

#: Scan results (enum scan_result, the names of the huge_memory trace events).
SCAN_FAIL = "failed"
SCAN_SUCCEED = "succeeded"
SCAN_PMD_NULL = "pmd_null"
SCAN_PMD_MAPPED = "page_pmd_mapped"
SCAN_EXCEED_NONE_PTE = "exceed_none_pte"
SCAN_EXCEED_SWAP_PTE = "exceed_swap_pte"
SCAN_EXCEED_SHARED_PTE = "exceed_shared_pte"
SCAN_PTE_NON_PRESENT = "pte_non_present"
SCAN_PAGE_ANON = "page_not_anon"
SCAN_PAGE_COUNT = "page_count"
SCAN_LACK_REFERENCED_PAGE = "lack_referenced_page"
SCAN_ALLOC_HUGE_PAGE_FAIL = "alloc_huge_page_failed"


@dataclass
class Khugepaged:
    """/sys/kernel/mm/transparent_hugepage/khugepaged: the knobs (defaults as found on
    the reference machine), the scan cursor and the counters it reports."""

    max_ptes_none: int = 511
    max_ptes_swap: int = 64
    max_ptes_shared: int = 256
    pages_to_scan: int = 4096
    #: scan_sleep_millisecs, alloc_sleep_millisecs, defrag: stored and shown only, since
    #: mmcore has no clock and khugepaged runs when Machine.khugepaged_scan() is called
    #: (its THP allocation never reclaims, as with defrag 0).
    scan_sleep_millisecs: int = 10000
    alloc_sleep_millisecs: int = 60000
    defrag: int = 1
    #: full_scans: passes over every mm completed.
    full_scans: int = 0
    #: pages_collapsed: THPs khugepaged made (MADV_COLLAPSE does not count here).
    pages_collapsed: int = 0
    #: Where the next scan resumes: (pid, address) (khugepaged_scan.mm_slot, .address).
    cursor: tuple[int, int] = (0, 0)


def hpage_collapse_scan_pmd(vma: Vma, haddr: int, khugepaged: bool) -> str:
    """hpage_collapse_scan_pmd(): may the 512 ptes at ``haddr`` be collapsed?

    pte_none and zero-page ptes count against ``max_ptes_none``, swap ptes against
    ``max_ptes_swap``, pages that may be mapped by another mm against
    ``max_ptes_shared`` (each exceeded limit counts its thp_scan_exceed_* event); those
    limits and the need for a referenced page apply to khugepaged only. A guard marker
    or PROT_NONE pte, a page that is not anonymous, or one with references the mappings
    do not explain stops the scan, as does a vma without anon_vma (only zero-page
    ptes: hugepage_vma_revalidate())."""
    m = vma.mm.machine
    k = m.khugepaged
    pt = vma.mm.pgtable
    if haddr >> 21 in pt.huge_pmds:
        return SCAN_PMD_MAPPED
    if pt.pmd_none(haddr):
        return SCAN_PMD_NULL
    if vma.anon_vma is None:  # hugepage_vma_revalidate(expect_anon): probed, EINVAL
        return SCAN_PAGE_ANON
    none = swap = shared = referenced = 0
    base = haddr >> PAGE_SHIFT
    for i in range(HPAGE_PMD_NR):
        pte = pt.entry(base + i)
        if is_swap_pte(pte):
            swap += 1
            if khugepaged and swap > k.max_ptes_swap:
                m.vm_events.thp_scan_exceed_swap_pte += 1
                return SCAN_EXCEED_SWAP_PTE
            continue
        present = pte_present(pte) and not pte_protnone(pte)
        if pte == 0 or (present and pte_pfn(pte) == m.physmem.ZERO_PFN):
            none += 1
            if khugepaged and none > k.max_ptes_none:
                m.vm_events.thp_scan_exceed_none_pte += 1
                return SCAN_EXCEED_NONE_PTE
            continue
        if not present:
            return SCAN_PTE_NON_PRESENT
        page = m.physmem.pages[pte_pfn(pte)]
        if page is None or not page.is_anon:
            return SCAN_PAGE_ANON
        folio = page.folio
        if (m.mapcount_maybe_shared(folio) if folio is not None else page.mapcount > 1):
            shared += 1
            if khugepaged and shared > k.max_ptes_shared:
                m.vm_events.thp_scan_exceed_share_pte += 1
                return SCAN_EXCEED_SHARED_PTE
        if page.refcount != page_mapcount(page) + (1 if page.flags & PG_SWAPCACHE else 0):
            return SCAN_PAGE_COUNT  # is_refcount_suitable()
        if pte_young(pte) or page.flags & PG_REFERENCED:
            referenced += 1
    if khugepaged and (not referenced or (swap and referenced < HPAGE_PMD_NR // 2)):
        return SCAN_LACK_REFERENCED_PAGE
    return SCAN_SUCCEED


def collapse_huge_page(vma: Vma, haddr: int) -> str:
    """collapse_huge_page(): swap in the swapped-out pages (__collapse_huge_page_swapin(),
    as read faults), allocate the THP (thp_collapse_alloc, or
    thp_collapse_alloc_failed), copy every page into it, zero-filling none and zero-page
    ptes (__collapse_huge_page_copy()), release the old pages and map the THP by one
    PMD, exclusive, dirty and writable if the vma is. The rss grows by the none and
    zero-page ptes the THP now covers.

    The kernel allocates before it swaps in and may reclaim for the THP; mmcore swaps in
    first and allocates without reclaim, so that nothing can reclaim a page of the
    range between the swap-in and the copy (mmcore has no page locks or LRU isolation
    to keep them). A range that reclaim emptied again during the swap-ins fails
    (SCAN_FAIL)."""
    from .fault import do_swap_page
    mm = vma.mm
    m = mm.machine
    pt = mm.pgtable
    base = haddr >> PAGE_SHIFT
    for i in range(HPAGE_PMD_NR):
        pte = pt.entry(base + i)
        if is_swap_pte(pte):
            do_swap_page(vma, haddr + (i << PAGE_SHIFT), pte, False)
    if any(is_swap_pte(pt.entry(base + i)) for i in range(HPAGE_PMD_NR)):
        return SCAN_FAIL
    folio = m.alloc_folio(HPAGE_PMD_ORDER, False)
    if folio is None:
        m.vm_events.thp_collapse_alloc_failed += 1
        return SCAN_ALLOC_HUGE_PAGE_FAIL
    m.vm_events.thp_collapse_alloc += 1
    for i, new in enumerate(folio.pages):
        addr = haddr + (i << PAGE_SHIFT)
        pte = pt.clear(addr)
        old = m.physmem.pages[pte_pfn(pte)] if pte else None
        if old is None or old.flags & PG_ZERO:
            continue
        new.copy_from(old)
        mm.add_rss(old, -1)
        m.unmap_page_pte(old, vma, addr)
    map_new_anon_pmd(vma, haddr, folio)
    mm.add_rss(folio.head, HPAGE_PMD_NR)
    m.counters.tlb_flushes += 1
    return SCAN_SUCCEED


def collapse_scan(vma: Vma, haddr: int, khugepaged: bool) -> str:
    """One 2 MiB: scan, and collapse when the scan says so."""
    result = hpage_collapse_scan_pmd(vma, haddr, khugepaged)
    if result != SCAN_SUCCEED:
        return result
    return collapse_huge_page(vma, haddr)


def madvise_collapse(vma: Vma, start: int, end: int) -> None:
    """madvise_collapse(): collapse every PMD-aligned 2 MiB of [start, end) in ``vma``.

    EINVAL when the vma cannot have THPs (not private anonymous, VM_NOHUGEPAGE);
    otherwise every 2 MiB-aligned range inside [start, end) is tried (none: EINVAL),
    one already PMD-mapped counting as done, and the call fails with the errno of the
    last failure (madvise_collapse_errno(): ENOMEM when no THP could be allocated,
    EAGAIN for a transient page state, else EINVAL)."""
    if not thp_pmd_allowed(vma, collapse=True):
        raise syscall_error(EINVAL, "madvise")
    hstart = (start + HPAGE_PMD_SIZE - 1) & HPAGE_PMD_MASK
    hend = end & HPAGE_PMD_MASK
    if hstart >= hend:  # probed: no whole aligned 2 MiB in the range is EINVAL
        raise syscall_error(EINVAL, "madvise")
    last_fail = None
    for haddr in range(hstart, hend, HPAGE_PMD_SIZE):  # [start, end) lies in the vma
        result = collapse_scan(vma, haddr, khugepaged=False)
        if result not in (SCAN_SUCCEED, SCAN_PMD_MAPPED):
            last_fail = result
    if last_fail is not None:
        errno = {SCAN_ALLOC_HUGE_PAGE_FAIL: ENOMEM, SCAN_PAGE_COUNT: EAGAIN}.get(
            last_fail, EINVAL)
        raise syscall_error(errno, "madvise")


def _scan_mm(mm: Mm, start: int, budget: int) -> tuple[int, int, int]:
    """khugepaged_scan_mm_slot(): scan ``mm``'s eligible 2 MiB ranges from ``start``
    until ``budget`` pages are spent; returns (pages spent, THPs made, where to resume,
    or -1 when the mm is done)."""
    spent = collapsed = 0
    for vma in mm.vmas:
        if vma.end <= start or not thp_pmd_allowed(vma):
            continue
        haddr = max(start, (vma.start + HPAGE_PMD_SIZE - 1) & HPAGE_PMD_MASK)
        while haddr + HPAGE_PMD_SIZE <= vma.end:
            if spent >= budget:
                return spent, collapsed, haddr
            if collapse_scan(vma, haddr, khugepaged=True) == SCAN_SUCCEED:
                collapsed += 1
            spent += HPAGE_PMD_NR
            haddr += HPAGE_PMD_SIZE
    return spent, collapsed, -1


def khugepaged_do_scan(m: Machine) -> int:
    """khugepaged_do_scan(): one wake-up, scanning up to ``pages_to_scan`` pages over the
    live processes in pid order from the saved cursor (the mm_slot list), each PMD
    range costing 512 pages; a pass that reaches the last process counts a full scan.
    Returns the THPs collapsed."""
    k = m.khugepaged
    budget = k.pages_to_scan
    pid, addr = k.cursor
    made = 0
    procs = [p for p in m.live_processes() if p.pid >= pid]
    for proc in procs:
        start = addr if proc.pid == pid else 0
        spent, collapsed, resume = _scan_mm(proc.mm, start, budget)
        made += collapsed
        budget -= spent
        if resume >= 0:
            k.cursor = (proc.pid, resume)
            k.pages_collapsed += made
            return made
    k.cursor = (0, 0)
    k.full_scans += 1
    k.pages_collapsed += made
    return made
