"""The per-page mapcount design (CONFIG_PAGE_MAPCOUNT), the one 6.18 runs here.

Every page of a large folio keeps its own ``_mapcount``; the folio adds
``_entire_mapcount`` (PMD mappings), ``_large_mapcount`` (all mappings, so that
folio_mapcount() needs no loop), ``_nr_pages_mapped`` (pages with a pte mapping) and the
mm-id slots (:mod:`mmcore.mm_id`). Every answer is exact; the price is per-page state and
one atomic per page on every fork, zap and split (mm/rmap.c __folio_add_rmap(),
__folio_remove_rmap()).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from mmcore import PluginInfo, hookimpl
from mmcore.mm_id import MmIdSlots, slots_of

if TYPE_CHECKING:
    from mmcore.folio import Folio
    from mmcore.machine import Machine
    from mmcore.mm import Mm
    from mmcore.page import Page
    from mmcore.vma import Vma

#: struct page's _mapcount (atomic_t) for every page, plus in the folio's first tail
#: pages: _large_mapcount, _entire_mapcount, _nr_pages_mapped (atomic_t each), and
#: _mm_id[2] (packed in one unsigned long with the shared bit) and _mm_id_mapcount[2].
_PER_PAGE_BYTES = 4
_PER_FOLIO_BYTES = 4 + 4 + 4 + 8 + 2 * 4


def _state(folio: Folio) -> MmIdSlots:
    return slots_of(folio, MmIdSlots)


def _nr_pages_mapped_changed(folio: Folio, first: int, nr: int, now: int) -> bool:
    """Whether a pte add (``now`` 1) or remove (``now`` 0) changed _nr_pages_mapped: some
    page of the run went from unmapped to mapped or back (the core has already updated
    ``page.mapcount``). The fork path (__folio_try_dup_anon_rmap()) never does."""
    return any(p.mapcount == now for p in folio.pages[first:first + nr])


class PerPageMapcount:
    """Per-page ``_mapcount`` plus the folio counters: exact, at per-page cost."""

    info: ClassVar[PluginInfo] = PluginInfo(
        name="per_page", kind="mapcount",
        summary="CONFIG_PAGE_MAPCOUNT: per-page _mapcount plus folio counters (exact)",
        description="The long-standing design and the one Linux 6.18 runs on the reference "
                    "machine: every page keeps _mapcount, the folio keeps _entire_mapcount, "
                    "_large_mapcount, _nr_pages_mapped and two mm-id slots. Exact answers; "
                    "fork, zap and split touch every page's counter.")

    def __init__(self, machine: Machine) -> None:
        self.machine = machine
        #: Counter updates (atomic read-modify-writes, and the stores done under the large
        #: mapcount lock counted as one) by hook: "add", "remove", "split".
        self.updates: dict[str, int] = {"add": 0, "remove": 0, "split": 0}

    @hookimpl
    def mapcount_add(self, folio: Folio, first: int, nr: int, vma: Vma, address: int,
                     pmd: bool) -> None:
        """__folio_add_rmap() / __folio_try_dup_anon_rmap(): ptes: one _mapcount per page,
        _nr_pages_mapped once if a page became mapped; a PMD: _entire_mapcount, and
        _nr_pages_mapped once for the first PMD; then _large_mapcount (with the mm-id
        slots, under its lock)."""
        _state(folio).add(vma.mm, 1 if pmd else nr)
        if pmd:
            self.updates["add"] += 2 + (folio.entire_mapcount == 1)
        else:
            self.updates["add"] += nr + 1 + _nr_pages_mapped_changed(folio, first, nr, 1)

    @hookimpl
    def mapcount_remove(self, folio: Folio, first: int, nr: int, vma: Vma, address: int,
                        pmd: bool) -> None:
        """__folio_remove_rmap(): the reverse of :meth:`mapcount_add`."""
        _state(folio).sub(vma.mm, 1 if pmd else nr)
        if pmd:
            self.updates["remove"] += 2 + (folio.entire_mapcount == 0)
        else:
            self.updates["remove"] += nr + 1 + _nr_pages_mapped_changed(folio, first, nr, 0)

    @hookimpl
    def mapcount_split(self, folio: Folio) -> None:
        """__folio_split() of a mapped folio unmaps it and maps the pages back
        (unmap_folio(), remap_page()): one _mapcount update per pte mapping on either
        side, plus the folio's counters; the per-page counts carry over, the folio's go."""
        ptes = sum(p.mapcount for p in folio.pages)
        if ptes or folio.entire_mapcount:
            self.updates["split"] += 2 * ptes + 2
        folio.mc = None

    @hookimpl
    def mapcount_page(self, folio: Folio, page: Page) -> int:
        """page_mapcount(): the page's own count plus the PMD mappings."""
        return page.mapcount + folio.entire_mapcount

    @hookimpl
    def mapcount_folio(self, folio: Folio) -> int:
        """folio_mapcount(): _large_mapcount."""
        return _state(folio).large

    @hookimpl
    def mapcount_maybe_shared(self, folio: Folio) -> bool:
        """folio_maybe_mapped_shared() from the mm-id slots."""
        return _state(folio).maybe_shared()

    @hookimpl
    def mapcount_page_exclusive(self, folio: Folio, page: Page) -> bool:
        """__folio_page_mapped_exclusively(): folio_precise_page_mapcount() == 1."""
        return page.mapcount + folio.entire_mapcount == 1

    @hookimpl
    def mapcount_exclusive_to(self, folio: Folio, mm: Mm) -> bool:
        """The mm-id test of __wp_can_reuse_large_anon_folio()."""
        return _state(folio).exclusive_to(mm)

    @hookimpl
    def mapcount_mapped_pages(self, folio: Folio) -> int:
        """_nr_pages_mapped, or the whole folio while a PMD maps it."""
        return folio.nr_pages if folio.entire_mapcount else folio.nr_pages_mapped

    @hookimpl
    def mapcount_partially_mapped(self, folio: Folio) -> bool:
        """__folio_remove_rmap(): some but not all pages still mapped by ptes, and no
        PMD mapping."""
        mapped = folio.nr_pages_mapped
        return not folio.entire_mapcount and 0 < mapped < folio.nr_pages

    @hookimpl
    def mapcount_metadata_bytes(self, folio: Folio) -> int:
        """4 bytes per page plus the folio's counters and mm-id slots."""
        return folio.nr_pages * _PER_PAGE_BYTES + _PER_FOLIO_BYTES
