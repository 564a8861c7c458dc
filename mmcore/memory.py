"""Page-table range operations of mm/memory.c: zap (unmap) and copy (fork)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .constants import PAGE_SHIFT
from .folio_rmap import folio_dup_anon_ptes, folio_pte_batch, folio_remove_rmap_ptes
from .huge_memory import HPAGE_PMD_MASK, copy_huge_pmd, zap_huge_pmds
from .mm import MM_SWAPENTS
from .page import PG_ANON, PG_ANON_EXCLUSIVE, PG_ZERO
from .pagetable import (
    GUARD_PTE,
    is_swap_pte,
    pte_huge,
    pte_mkold,
    pte_pfn,
    pte_present,
    pte_swp_clear_exclusive,
    pte_swp_exclusive,
    pte_wrprotect,
    swp_slot,
)
from .vma import is_cow_mapping

if TYPE_CHECKING:
    from .folio import Folio
    from .vma import Vma


def zap_pte_range(vma: Vma, start: int, end: int, drop_markers: bool = False) -> int:
    """zap_pte_range(): remove every pte in [start, end) of ``vma``.

    Present pages lose a mapping (folio_remove_rmap_pte + put); swap ptes release their
    slot reference (free_swap_and_cache). Guard markers stay unless ``drop_markers``
    (zap_nonpresent_ptes() keeps them for MADV_DONTNEED and truncation; munmap and exit
    free the page tables). Huge PMDs are zapped whole or split first
    (:func:`~mmcore.huge_memory.zap_huge_pmds`). Returns the number of ptes removed.
    """
    mm = vma.mm
    m = mm.machine
    pt = mm.pgtable
    if pt.huge_pmds:
        zap_huge_pmds(vma, start, end)
    n = 0
    skip = 0
    for addr, pte in list(pt.range(start, end)):
        if skip:  # a pte of the folio run just zapped
            skip -= 1
            continue
        if pte == GUARD_PTE and not drop_markers:
            continue
        if pte_present(pte):
            page = m.physmem.pages[pte_pfn(pte)]
            assert page is not None
            folio = page.folio
            if folio is not None:
                nr = folio_pte_batch(pt, addr, pte, folio, end)
                pt.clear_run(addr, nr)
                n += nr
                skip = nr - 1
                mm.add_rss(page, -nr)
                folio_remove_rmap_ptes(m, folio, folio.page_index(page), nr, vma, addr)
                continue
            pt.clear(addr)
            n += 1
            if not page.flags & PG_ZERO:
                mm.add_rss(page, -1)
                m.unmap_page_pte(page, vma, addr)
            continue
        pt.clear(addr)
        n += 1
        if is_swap_pte(pte):
            m.swap.free_entry(swp_slot(pte))
            mm.rss_stat[MM_SWAPENTS] -= 1
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
    """
    m = src.mm.machine
    spt, dpt = src.mm.pgtable, dst.mm.pgtable
    cow = is_cow_mapping(src.flags)
    n = 0
    skip = 0
    for addr, pte in list(spt.range(src.start, src.end)):
        if skip:  # a pte of the folio run just copied
            skip -= 1
            continue
        if pte == GUARD_PTE:
            dpt.set(addr, pte)
            n += 1
            continue
        if is_swap_pte(pte):
            m.swap.dup(swp_slot(pte))
            if pte_swp_exclusive(pte):
                pte = pte_swp_clear_exclusive(pte)
                spt.update(addr >> PAGE_SHIFT, pte)
            dpt.set(addr, pte)
            dst.mm.rss_stat[MM_SWAPENTS] += 1
            n += 1
            continue
        if pte_huge(pte):
            if not addr & ~HPAGE_PMD_MASK:
                copy_huge_pmd(dst, src, addr)
                n += 1
            continue
        page = m.physmem.pages[pte_pfn(pte)]
        assert page is not None
        folio = page.folio
        if folio is not None:
            nr = _copy_folio_ptes(dst, src, addr, pte, folio, cow)
            n += nr
            skip = nr - 1
            continue
        if cow:
            pte = pte_wrprotect(pte)
            spt.update(addr >> PAGE_SHIFT, pte)
        dpt.set(addr, pte_mkold(pte))
        n += 1
        if page.flags & PG_ZERO:
            continue
        page.mapcount += 1
        page.refcount += 1
        dst.mm.add_rss(page, 1)
        if page.flags & PG_ANON:
            page.flags &= ~PG_ANON_EXCLUSIVE
            m.rmap_page_dup(page, dst, addr)
    m.counters.fork_ptes_copied += n
    return n


def _copy_folio_ptes(dst: Vma, src: Vma, addr: int, pte: int, folio: Folio,
                     cow: bool) -> int:
    """copy_present_ptes() for a run of ptes of one large anonymous folio
    (folio_pte_batch()): each pte copied as copy_page_range() copies one, the rmap and
    mapcount updated once for the run (folio_try_dup_anon_rmap_ptes()). Returns the
    run's length."""
    spt, dpt = src.mm.pgtable, dst.mm.pgtable
    nr = folio_pte_batch(spt, addr, pte, folio, src.end)
    vpn = addr >> PAGE_SHIFT
    run = [spt.entry(v) for v in range(vpn, vpn + nr)]
    if cow:
        run = [pte_wrprotect(p) for p in run]
        spt.set_run(addr, run)
    dpt.set_run(addr, [pte_mkold(p) for p in run])
    first = (pte >> 12) - folio.pfn
    dst.mm.add_rss(folio.pages[first], nr)
    folio_dup_anon_ptes(folio, first, nr, dst, addr)
    return nr


def copy_guard_markers(dst: Vma, src: Vma) -> None:
    """copy_page_range() for a vma fork does not otherwise copy (no anon_vma, e.g.
    shared): its guard markers are still inherited, as probed on 6.18."""
    spt, dpt = src.mm.pgtable, dst.mm.pgtable
    for addr, pte in list(spt.range(src.start, src.end)):
        if pte == GUARD_PTE:
            dpt.set(addr, pte)
