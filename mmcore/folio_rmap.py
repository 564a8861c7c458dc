"""The core side of mm/rmap.c for large folios: mapping a new anonymous folio, duplicating
and removing runs of its ptes, and batching ptes by folio (mm/internal.h folio_pte_batch()).

Each function keeps the truth first (``page.mapcount`` and ``page.refcount`` of every page
of the run), then calls the rmap scheme once for the run (``m.rmap_folio_*``, which loops
over the per-page hooks for a scheme that has no folio hooks), then tells the mapcount
design (``m.mapcount_add`` / ``m.mapcount_remove``). Order-0 pages never come here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .constants import PAGE_SHIFT
from .folio_split import deferred_split_folio
from .page import PG_ANON, PG_ANON_EXCLUSIVE
from .pagetable import PTRS_PER_TABLE

if TYPE_CHECKING:
    from array import array

    from .folio import Folio
    from .machine import Machine
    from .pagetable import PageTable
    from .vma import Vma

#: The pte bits folio_pte_batch() ignores when it compares consecutive ptes: accessed and
#: dirty (FPB_IGNORE_DIRTY; the accessed bit is never compared).
_BATCH_IGNORED = (1 << 5) | (1 << 6)
_PFN_STEP = 1 << 12


def folio_add_new_anon_rmap(folio: Folio, vma: Vma, address: int) -> None:
    """folio_add_new_anon_rmap(folio, vma, address, RMAP_EXCLUSIVE) for a whole freshly
    allocated folio mapped by ptes from ``address``: every page anonymous, exclusive
    (SetPageAnonExclusive() per page), mapped once and referenced once by its pte
    (folio_ref_add(folio, nr_pages - 1) on top of the allocation's reference); the
    folio counts in its size's ``nr_anon`` (mod_mthp_stat(MTHP_STAT_NR_ANON))."""
    m = vma.mm.machine
    for page in folio.pages:
        page.flags = PG_ANON | PG_ANON_EXCLUSIVE
        page.mapcount = 1
        page.refcount = 1
    m.rmap_folio_add_new_anon(folio, 0, folio.nr_pages, vma, address, True)
    m.mapcount_add(folio, 0, folio.nr_pages, vma, address, False)
    m.mthp_stats.count(folio.order, "nr_anon")


def folio_dup_anon_ptes(folio: Folio, first: int, nr: int, dst: Vma, address: int) -> None:
    """folio_try_dup_anon_rmap_ptes() at fork: ``nr`` more ptes (the child's, in ``dst``
    from ``address``) map pages ``first..first + nr`` of an anonymous folio. Each page
    gains a mapping and a reference and loses PG_anon_exclusive (mmcore has no pinned
    pages, so the "may be pinned" fallback to copying never applies)."""
    m = dst.mm.machine
    for page in folio.pages[first:first + nr]:
        page.mapcount += 1
        page.refcount += 1
        page.flags &= ~PG_ANON_EXCLUSIVE
    m.rmap_folio_dup_ptes(folio, first, nr, dst, address)
    m.mapcount_add(folio, first, nr, dst, address, False)


def folio_remove_rmap_ptes(m: Machine, folio: Folio, first: int, nr: int, vma: Vma,
                           address: int) -> None:
    """folio_remove_rmap_ptes() and the reference drops that follow (tlb_flush_mmu()'s
    folio puts): ``nr`` ptes of ``vma`` from ``address`` no longer map pages
    ``first..first + nr``. An anonymous folio the design then sees as partly mapped is
    queued for deferred split (__folio_remove_rmap() -> deferred_split_folio()) before
    the references go, as in the kernel; a folio whose last reference goes is freed
    whole (Machine.put_page)."""
    pages = folio.pages[first:first + nr]
    for page in pages:
        page.mapcount -= 1
    anon = bool(folio.head.flags & PG_ANON)
    if anon:
        m.rmap_folio_remove_ptes(folio, first, nr, vma, address)
    m.mapcount_remove(folio, first, nr, vma, address, False)
    if anon and not folio.deferred and m.mapcount_partially_mapped(folio):
        deferred_split_folio(m, folio)
    for page in pages:
        m.put_page(page)


def folio_pte_batch(pt: PageTable, address: int, pte: int, folio: Folio, end: int) -> int:
    """folio_pte_batch(): how many consecutive ptes from ``address`` (whose pte is
    ``pte``, mapping a page of ``folio``), up to ``end``, the folio's last page and the
    end of the page table, map consecutive pages of the folio with the same bits but
    accessed and dirty."""
    vpn = address >> PAGE_SHIFT
    i = vpn & (PTRS_PER_TABLE - 1)
    limit = min(i + ((end - address) >> PAGE_SHIFT), PTRS_PER_TABLE)
    return table_pte_batch(pt.tables[vpn >> 9], i, limit, pte, folio)


def table_pte_batch(ptes: array[int], i: int, limit: int, pte: int, folio: Folio) -> int:
    """:func:`folio_pte_batch` over entries of one PTE page (or a copy of some): from
    index ``i``, whose entry is ``pte``, up to index ``limit``. copy_pte_range() and
    zap_pte_range() call folio_pte_batch() on the PTE page they hold, as the batched
    fork and zap do on their copy of its entries."""
    first = (pte >> 12) - folio.pfn
    limit = min(folio.nr_pages - first, limit - i)
    want = pte & ~_BATCH_IGNORED
    n = 1
    while n < limit:
        want += _PFN_STEP
        if ptes[i + n] & ~_BATCH_IGNORED != want:
            break
        n += 1
    return n
