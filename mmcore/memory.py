"""Page-table range operations of mm/memory.c: zap (unmap) and copy (fork)."""

from __future__ import annotations

from array import array
from typing import TYPE_CHECKING

from .constants import PAGE_SHIFT
from .folio_rmap import folio_dup_anon_ptes, folio_remove_rmap_ptes, table_pte_batch
from .huge_memory import copy_huge_pmd, zap_huge_pmds
from .mm import MM_ANONPAGES, MM_SWAPENTS
from .page import PG_ANON, PG_ANON_EXCLUSIVE, PG_ZERO
from .pagetable import (
    _EMPTY_TABLE,
    _PAGE_ACCESSED,
    _PAGE_RW,
    _SWP_EXCLUSIVE,
    GUARD_PTE,
    PFN_SHIFT,
    PMD_SHIFT,
    PTE_PRESENT_BITS,
    swp_slot,
)
from .vma import is_cow_mapping

if TYPE_CHECKING:
    from .vma import Vma


def zap_pte_range(vma: Vma, start: int, end: int, drop_markers: bool = False) -> int:
    """zap_pte_range(): remove every pte in [start, end) of ``vma``, one PTE page at a time.

    Present pages lose a mapping (folio_remove_rmap_pte + put); swap ptes release their
    slot reference (free_swap_and_cache). Guard markers stay unless ``drop_markers``
    (zap_nonpresent_ptes() keeps them for MADV_DONTNEED and truncation; munmap and exit
    free the page tables). Huge PMDs are zapped whole or split first
    (:func:`~mmcore.huge_memory.zap_huge_pmds`). Returns the number of ptes removed.

    As zap_pte_range() does under one PTE lock, each PTE page's entries are cleared in
    place and its populated count updated once; the anonymous and swap rss counters drop
    once for the range (the kernel's add_mm_rss_vec() once per PTE page). A large
    folio's run goes to the scheme as one range (folio_remove_rmap_ptes(), batched by
    folio_pte_batch()); an order-0 page is a run of one, which reaches the scheme
    through the per-page ``rmap_page_remove``. Every page is unmapped and released in
    address order, so frames are freed in the order the per-pte walk freed them.
    """
    mm = vma.mm
    m = mm.machine
    pt = mm.pgtable
    if pt.huge_pmds:
        zap_huge_pmds(vma, start, end)
    pages = m.physmem.pages
    folios = m.physmem.cols.folio  # page.folio without a property call per pte
    remove, put_page = m.rmap_page_remove, m.put_page
    n = nr_anon = nr_swap = 0
    anon_page = None  # an order-0 anonymous page zapped: names the rss counter at the end
    for key, lo, hi in pt.spans(start, end):
        table = pt.tables[key]
        seg = table[lo:hi]  # the entries as the walk found them
        base = key << PMD_SHIFT
        cleared = skip = 0
        for i, pte in enumerate(seg, lo):
            if not pte:
                continue
            if skip:  # a pte of the folio run just zapped
                skip -= 1
                continue
            if not pte & PTE_PRESENT_BITS:
                if pte == GUARD_PTE:
                    if drop_markers:
                        table[i] = 0
                        cleared += 1
                    continue
                table[i] = 0
                cleared += 1
                m.swap.free_entry(swp_slot(pte))
                nr_swap += 1
                continue
            pfn = pte >> PFN_SHIFT
            page = pages[pfn]
            assert page is not None
            addr = base + (i << PAGE_SHIFT)
            folio = folios[pfn] if pfn < len(folios) else None
            if folio is not None:
                nr = table_pte_batch(seg, i - lo, hi - lo, pte, folio)
                table[i:i + nr] = _EMPTY_TABLE[:nr]
                cleared += nr
                skip = nr - 1
                mm.add_rss(page, -nr)
                folio_remove_rmap_ptes(m, folio, folio.page_index(page), nr, vma, addr)
                continue
            table[i] = 0
            cleared += 1
            flags = page.flags
            if flags & PG_ZERO:
                continue
            page.mapcount -= 1
            if flags & PG_ANON:
                nr_anon += 1
                anon_page = page
                remove(page, vma, addr)
            else:
                mm.add_rss(page, -1)
            put_page(page)
        if cleared:
            n += cleared
            pt.release(key, cleared)
    if anon_page is not None:
        # The peak (update_hiwater_rss()) is the rss before the zap's first decrease,
        # whichever decrease comes first, and nothing reads rss during the walk.
        mm.add_rss(anon_page, -nr_anon)
    mm.rss_stat[MM_SWAPENTS] -= nr_swap
    if n:
        m.counters.tlb_flushes += 1
    return n


def copy_page_range(dst: Vma, src: Vma) -> int:
    """copy_page_range(): fork copies ``src``'s ptes into the child's ``dst``.

    Anonymous pages become shared copy-on-write: both ptes are write-protected in a COW
    mapping, the page loses PG_anon_exclusive (folio_try_dup_anon_rmap_pte) and gains a
    mapcount; the child's pte is old (copy_present_pte: pte_mkold). Swap ptes gain a swap
    reference and lose their exclusive mark on both sides (copy_nonpresent_pte).
    Guard markers are copied as they are (copy_nonpresent_pte). A huge PMD is copied as
    one (:func:`~mmcore.huge_memory.copy_huge_pmd`), counted as one entry.
    Returns the number of ptes copied.

    As copy_pte_range() does, one PTE page is copied at a time: the parent's entries are
    rewritten in one pass (write-protect, clear the swap exclusive bit) and the child's
    written in one (the same, made old), then the pages are accounted in address order.
    A large folio's run is one range for the scheme (folio_try_dup_anon_rmap_ptes(),
    batched by folio_pte_batch()); an order-0 page is a run of one, which reaches the
    scheme through the per-page ``rmap_page_dup``. The child's anonymous and swap rss
    counters are raised once, at the end.
    """
    m = src.mm.machine
    spt, dpt = src.mm.pgtable, dst.mm.pgtable
    cow = is_cow_mapping(src.flags)
    pages = m.physmem.pages
    folios = m.physmem.cols.folio  # page.folio without a property call per pte
    dup = m.rmap_page_dup
    n = nr_anon = nr_swap = 0
    for key, lo, hi in spt.spans(src.start, src.end):
        base = key << PMD_SHIFT
        if key in spt.huge_pmds:
            if not lo:
                copy_huge_pmd(dst, src, base)
                n += 1
            continue
        table = spt.tables[key]
        seg = table[lo:hi]
        nr_ptes = len(seg) - seg.count(0)
        if not nr_ptes:
            continue
        n += nr_ptes
        if cow:  # the swap exclusive bit is the write bit: one mask does both
            parent = array("Q", [pte & ~_PAGE_RW for pte in seg])
            child = array("Q", [pte & ~_PAGE_ACCESSED for pte in parent])
        else:
            parent = array("Q", [pte if pte & PTE_PRESENT_BITS or pte == GUARD_PTE
                                 else pte & ~_SWP_EXCLUSIVE for pte in seg])
            child = array("Q", [pte & ~_PAGE_ACCESSED if pte & PTE_PRESENT_BITS
                                else pte for pte in parent])
        table[lo:hi] = parent
        dpt.write_span(key, lo, child)
        skip = 0
        for i, pte in enumerate(seg):
            if not pte:
                continue
            if skip:  # a pte of the folio run just copied
                skip -= 1
                continue
            if not pte & PTE_PRESENT_BITS:
                if pte != GUARD_PTE:
                    m.swap.dup(swp_slot(pte))
                    nr_swap += 1
                continue
            pfn = pte >> PFN_SHIFT
            page = pages[pfn]
            assert page is not None
            addr = base + ((lo + i) << PAGE_SHIFT)
            folio = folios[pfn] if pfn < len(folios) else None
            if folio is not None:
                nr = table_pte_batch(seg, i, len(seg), pte, folio)
                skip = nr - 1
                first = pfn - folio.pfn
                dst.mm.add_rss(folio.pages[first], nr)
                folio_dup_anon_ptes(folio, first, nr, dst, addr)
                continue
            flags = page.flags
            if flags & PG_ZERO:
                continue
            page.mapcount += 1
            page.refcount += 1
            if flags & PG_ANON:
                page.flags = flags & ~PG_ANON_EXCLUSIVE
                nr_anon += 1
                dup(page, dst, addr)
            else:
                dst.mm.add_rss(page, 1)
    dst.mm.rss_stat[MM_ANONPAGES] += nr_anon
    dst.mm.rss_stat[MM_SWAPENTS] += nr_swap
    m.counters.fork_ptes_copied += n
    return n


def copy_guard_markers(dst: Vma, src: Vma) -> None:
    """copy_page_range() for a vma fork does not otherwise copy (no anon_vma, e.g.
    shared): its guard markers are still inherited, as probed on 6.18."""
    spt, dpt = src.mm.pgtable, dst.mm.pgtable
    for addr, pte in list(spt.range(src.start, src.end)):
        if pte == GUARD_PTE:
            dpt.set(addr, pte)
