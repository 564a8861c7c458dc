"""Large folios in the page-table walks of MADV_COLD, MADV_PAGEOUT and MADV_FREE
(mm/madvise.c madvise_cold_or_pageout_pte_range(), madvise_free_pte_range()).

A large folio only partly inside the range is split first, unless it may be mapped by
another process (folio_maybe_mapped_shared()), in which case it is left alone; the
walk then sees order-0 pages (probed: MADV_FREE of 4 pages of a 64 kB folio splits it,
docs/kernel-facts.md section 20). A folio wholly inside the range is advised as one,
if this mapping is its only one (folio_mapcount() == folio_nr_pages(), or 1 for a
PMD-mapped THP, which stays PMD-mapped); MADV_PAGEOUT swaps it out whole
(:func:`~mmcore.folio_reclaim.swap_out_folio`; a lazily freed one is discarded), or
splits it when no swap run is free.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .constants import PAGE_SHIFT
from .folio_reclaim import discard_lazyfree_folio, swap_out_folio
from .folio_rmap import folio_pte_batch
from .folio_split import split_folio, split_folio_for_swap
from .page import PG_DIRTY, PG_LAZYFREE, PG_REFERENCED, PG_ZERO
from .pagetable import pte_huge, pte_mkold, pte_pfn, pte_present

if TYPE_CHECKING:
    from .folio import Folio
    from .machine import Machine
    from .vma import Vma

_PAGE_DIRTY = 1 << 6


def split_folios_in_range(vma: Vma, start: int, end: int, whole: bool) -> None:
    """The split step of the walk: every large folio mapped in [start, end) of ``vma``
    that the range covers only partly (or at all, with ``whole``) and that no other mm
    may map is split to order 0."""
    m = vma.mm.machine
    pt = vma.mm.pgtable
    skip = 0
    for addr, pte in list(pt.range(start, end)):
        if skip:
            skip -= 1
            continue
        if not pte_present(pte):
            continue
        page = m.physmem.pages[pte_pfn(pte)]
        folio = page.folio if page is not None else None
        if folio is None:
            continue
        nr = folio_pte_batch(pt, addr, pte, folio, end)
        skip = nr - 1
        # is_huge_zero_pmd(): the huge zero PMD is left alone, neither PMD nor folio split
        # (probed: no thp_split_pmd, no thp_split_page_failed); so is a shared folio.
        if folio.head.flags & PG_ZERO or m.mapcount_maybe_shared(folio):
            continue
        if nr < folio.nr_pages:
            split_folio(m, folio)
        elif whole:  # reclaim_pages() of the whole folio
            _pageout_folio(m, folio)


def _pageout_folio(m: Machine, folio: Folio) -> None:
    """shrink_folio_list() of one whole folio for MADV_PAGEOUT: discarded if lazily
    freed, else swapped out whole, else split (its pages then go one by one)."""
    if folio.head.flags & PG_LAZYFREE:
        discard_lazyfree_folio(m, folio)
    elif swap_out_folio(m, folio) in ("no_swap", "missed"):
        split_folio_for_swap(m, folio)


def advise_folio(vma: Vma, addr: int, pte: int, folio: Folio, end: int,
                 lazyfree: bool) -> int:
    """MADV_COLD (or with ``lazyfree`` MADV_FREE) of the run of ``folio``'s ptes that
    starts at ``addr``: when the run is the whole folio and this is its only mapping,
    its ptes become old (and clean: clear_young_dirty_ptes()), its pages lose
    PG_referenced (and PG_dirty, gaining PG_LAZYFREE: folio_mark_lazyfree()), and the
    folio is deactivated through its head. Returns the run's length, for the caller
    to step over."""
    m = vma.mm.machine
    pt = vma.mm.pgtable
    nr = folio_pte_batch(pt, addr, pte, folio, end)
    if nr < folio.nr_pages:
        return nr
    if pte_huge(pte):
        # madvise_free_huge_pmd() and the PMD case of madvise_cold_or_pageout_pte_range()
        # skip the huge zero PMD and a folio that folio_maybe_mapped_shared() (one
        # mapping counts as exclusive even if the mm-id shared bit stuck: probed).
        if folio.head.flags & PG_ZERO or m.mapcount_maybe_shared(folio):
            return nr
    elif m.mapcount_folio(folio) != folio.nr_pages:  # mapped only here, by all its ptes
        return nr
    vpn = addr >> PAGE_SHIFT
    for v in range(vpn, vpn + nr):
        p = pte_mkold(pt.entry(v))
        pt.update(v, p & ~_PAGE_DIRTY if lazyfree else p)
    for page in folio.pages:
        page.flags &= ~PG_REFERENCED
        if lazyfree:
            page.flags = (page.flags & ~PG_DIRTY) | PG_LAZYFREE
    m.lru_del(folio.head)
    m.lru_add(folio.head)
    return nr
