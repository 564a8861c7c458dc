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
from mmcore.mm_id import MmIdSlots

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
    mc = folio.mc
    if mc is None:
        mc = folio.mc = MmIdSlots()
    assert isinstance(mc, MmIdSlots)
    return mc


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
        #: Atomic counter updates by operation ("add", "remove"): the cost measured.
        self.updates: dict[str, int] = {"add": 0, "remove": 0}

    @hookimpl
    def mapcount_add(self, folio: Folio, first: int, nr: int, vma: Vma, address: int,
                     pmd: bool) -> None:
        """__folio_add_rmap(): per page one _mapcount (+ _nr_pages_mapped when it was
        unmapped) for ptes, _entire_mapcount for a PMD; then _large_mapcount."""
        _state(folio).add(vma.mm, 1 if pmd else nr)
        self.updates["add"] += (1 if pmd else 2 * nr) + 1

    @hookimpl
    def mapcount_remove(self, folio: Folio, first: int, nr: int, vma: Vma, address: int,
                        pmd: bool) -> None:
        """__folio_remove_rmap(): the reverse of :meth:`mapcount_add`."""
        _state(folio).sub(vma.mm, 1 if pmd else nr)
        self.updates["remove"] += (1 if pmd else 2 * nr) + 1

    @hookimpl
    def mapcount_split(self, folio: Folio) -> None:
        """The per-page counts carry over to the order-0 pages; the folio's go."""
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
