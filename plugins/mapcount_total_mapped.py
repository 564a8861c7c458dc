"""The "total mapped pages" design: David Hildenbrand's RFC "mm/rmap: support arbitrary
folio mappings" (linux-mm, 12 April 2026, patch 13/13 of the mapcount series).

It removes CONFIG_PAGE_MAPCOUNT altogether and replaces ``_entire_mapcount`` by
``_total_mapped_pages``: the sum of the pages every mapping maps (a pte adds 1, a PMD
adds 512), updated with ``_large_mapcount`` (now a count of mappings, a PMD being one)
under the large-mapcount lock, next to the mm-id slots (:mod:`mmcore.mm_id`). A folio can
then be mapped by any mix of PTEs and PMDs (folios larger than a PMD mapped in pieces).
What it reports follows from the two counters:

- folio_average_page_mapcount() = total mapped pages / folio size, rounded, at least 1
  (kpagecount, Pss, numa_maps mapmax);
- __folio_certainly_partially_mapped() = 0 < total mapped pages < folio size;
- whole-folio AnonPages/Mapped and "maybe mapped shared" for PM_MMAP_EXCLUSIVE and Uss,
  as CONFIG_NO_PAGE_MAPCOUNT.
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

#: _large_mapcount (atomic_t), _total_mapped_pages (atomic_long_t), _mm_id[2] with the
#: shared bit (one unsigned long), _mm_id_mapcount[2].
_PER_FOLIO_BYTES = 4 + 8 + 8 + 2 * 4


class TotalMappedState(MmIdSlots):
    """The mm-id slots plus ``_total_mapped_pages``."""

    __slots__ = ("total",)

    def __init__(self) -> None:
        super().__init__()
        self.total = 0


def _state(folio: Folio) -> TotalMappedState:
    return slots_of(folio, TotalMappedState)


class TotalMappedPages:
    """``_large_mapcount`` (mappings) + ``_total_mapped_pages`` + mm-id slots."""

    info: ClassVar[PluginInfo] = PluginInfo(
        name="total_mapped_pages", kind="mapcount",
        summary="Hildenbrand RFC (Apr 2026): entire mapcount -> total mapped pages",
        description="_large_mapcount counts mappings (a PMD is one), _total_mapped_pages "
                    "the pages they map; average page mapcount = total / folio size for "
                    "kpagecount and Pss; partly mapped while 0 < total < folio size; mm-id "
                    "slots for exclusivity.")

    def __init__(self, machine: Machine) -> None:
        self.machine = machine
        #: Counter updates by hook ("add", "remove", "split"), as for ``per_page``.
        self.updates: dict[str, int] = {"add": 0, "remove": 0, "split": 0}

    @hookimpl
    def mapcount_add(self, folio: Folio, first: int, nr: int, vma: Vma, address: int,
                     pmd: bool) -> None:
        """folio_add_return_large_mapcount(folio, nr_mappings, nr_pages, vma): both
        counters and the slots in one locked update."""
        st = _state(folio)
        st.add(vma.mm, 1 if pmd else nr)
        st.total += nr
        self.updates["add"] += 1

    @hookimpl
    def mapcount_remove(self, folio: Folio, first: int, nr: int, vma: Vma, address: int,
                        pmd: bool) -> None:
        """folio_sub_return_large_mapcount(): the reverse of :meth:`mapcount_add`."""
        st = _state(folio)
        st.sub(vma.mm, 1 if pmd else nr)
        st.total -= nr
        self.updates["remove"] += 1

    @hookimpl
    def mapcount_split(self, folio: Folio) -> None:
        """__folio_split() of a mapped folio: one update per pte of the order-0 pages
        mapped back, one of the folio's counters per unmap."""
        ptes = sum(p.mapcount for p in folio.pages)
        if ptes or folio.entire_mapcount:
            self.updates["split"] += ptes + 1
        folio.mc = None

    @hookimpl
    def mapcount_page(self, folio: Folio, page: Page) -> int:
        """folio_average_page_mapcount() of the RFC: total mapped pages over the folio
        size, rounded to the nearest integer, at least 1 while mapped."""
        total = _state(folio).total
        if not total:
            return 0
        return max((total + (folio.nr_pages >> 1)) >> folio.order, 1)

    @hookimpl
    def mapcount_folio(self, folio: Folio) -> int:
        """folio_mapcount(): _large_mapcount, the number of mappings."""
        return _state(folio).large

    @hookimpl
    def mapcount_maybe_shared(self, folio: Folio) -> bool:
        """folio_maybe_mapped_shared() from the mm-id slots."""
        return _state(folio).maybe_shared()

    @hookimpl
    def mapcount_page_exclusive(self, folio: Folio, page: Page) -> bool:
        """Folio level, as without CONFIG_PAGE_MAPCOUNT."""
        return not _state(folio).maybe_shared()

    @hookimpl
    def mapcount_exclusive_to(self, folio: Folio, mm: Mm) -> bool:
        """The mm-id test of __wp_can_reuse_large_anon_folio()."""
        return _state(folio).exclusive_to(mm)

    @hookimpl
    def mapcount_mapped_pages(self, folio: Folio) -> int:
        """The whole folio while it has any mapping."""
        return folio.nr_pages if _state(folio).large else 0

    @hookimpl
    def mapcount_partially_mapped(self, folio: Folio) -> bool:
        """__folio_certainly_partially_mapped() of the RFC: 0 < total < folio size."""
        total = _state(folio).total
        return 0 < total < folio.nr_pages

    @hookimpl
    def mapcount_metadata_bytes(self, folio: Folio) -> int:
        """Two counters and the mm-id slots; nothing per page."""
        return _PER_FOLIO_BYTES
