"""The design without per-page mapcounts (CONFIG_NO_PAGE_MAPCOUNT, Linux 6.15+).

David Hildenbrand's series "mm: MM owner tracking for large folios (!hugetlb) +
CONFIG_NO_PAGE_MAPCOUNT" (merged for 6.15, March 2025) stops keeping ``_mapcount`` in the
pages of a large folio and ``_nr_pages_mapped`` in the folio. What is left is
``_large_mapcount`` (every pte and PMD mapping), ``_entire_mapcount`` (PMD mappings) and
the mm-id slots (:mod:`mmcore.mm_id`), whose "maybe mapped shared" bit answers COW reuse,
PM_MMAP_EXCLUSIVE and Uss without false "exclusive". The series states the price:

- AnonPages/Mapped count the whole folio once any page is mapped (__folio_add_rmap()
  counts ``folio_large_nr_pages()`` when the large mapcount goes from 0);
- kpagecount and Pss use folio_average_page_mapcount() (fs/proc/internal.h);
- PM_MMAP_EXCLUSIVE and Uss come from folio_maybe_mapped_shared();
- a partly mapped folio is detected only while its average page mapcount is below one
  (__folio_certainly_partially_mapped(), mm/rmap.c): once a second mm maps the folio,
  unmapping part of it in one mm is usually not seen.
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

#: _large_mapcount and _entire_mapcount (atomic_t each; _nr_pages_mapped is _unused_1),
#: _mm_id[2] packed with the shared bit in one unsigned long, _mm_id_mapcount[2].
_PER_FOLIO_BYTES = 4 + 4 + 8 + 2 * 4


def average_page_mapcount(folio: Folio, large: int) -> int:
    """folio_average_page_mapcount() of 6.18 (fs/proc/internal.h): the PMD mappings plus
    the pte mappings spread over the folio's pages, rounded to the nearest integer, at
    least 1 while the folio is mapped."""
    if large <= 0:
        return 0
    entire = folio.entire_mapcount
    if large <= entire:
        return entire
    avg = (large - entire + folio.nr_pages // 2) >> folio.order
    return max(avg + entire, 1)


class NoPageMapcount:
    """``_large_mapcount`` + ``_entire_mapcount`` + mm-id slots: constant size, inexact."""

    info: ClassVar[PluginInfo] = PluginInfo(
        name="no_page_mapcount", kind="mapcount",
        summary="CONFIG_NO_PAGE_MAPCOUNT (6.15+): large mapcount and mm-id slots only",
        description="No per-page _mapcount in large folios: _large_mapcount, "
                    "_entire_mapcount and two mm-id slots with a maybe-shared bit. Whole-"
                    "folio AnonPages/Mapped, average page mapcount for kpagecount and Pss, "
                    "best-effort partial-map detection.")

    def __init__(self, machine: Machine) -> None:
        self.machine = machine
        #: Counter updates by hook ("add", "remove", "split"), as for ``per_page``.
        self.updates: dict[str, int] = {"add": 0, "remove": 0, "split": 0}

    @hookimpl
    def mapcount_add(self, folio: Folio, first: int, nr: int, vma: Vma, address: int,
                     pmd: bool) -> None:
        """__folio_add_rmap(): ptes: one _large_mapcount update (with the mm-id slots,
        under the folio's mapcount lock) for the whole run; a PMD: _entire_mapcount too."""
        slots_of(folio, MmIdSlots).add(vma.mm, 1 if pmd else nr)
        self.updates["add"] += 2 if pmd else 1

    @hookimpl
    def mapcount_remove(self, folio: Folio, first: int, nr: int, vma: Vma, address: int,
                        pmd: bool) -> None:
        """__folio_remove_rmap(): the reverse of :meth:`mapcount_add`."""
        slots_of(folio, MmIdSlots).sub(vma.mm, 1 if pmd else nr)
        self.updates["remove"] += 2 if pmd else 1

    @hookimpl
    def mapcount_split(self, folio: Folio) -> None:
        """__folio_split() of a mapped folio: remap_page() sets each order-0 page's
        _mapcount once per pte, after one update of the large counters per unmap."""
        ptes = sum(p.mapcount for p in folio.pages)
        if ptes or folio.entire_mapcount:
            self.updates["split"] += ptes + 1
        folio.mc = None

    @hookimpl
    def mapcount_page(self, folio: Folio, page: Page) -> int:
        """kpagecount and Pss: folio_average_page_mapcount()."""
        return average_page_mapcount(folio, slots_of(folio, MmIdSlots).large)

    @hookimpl
    def mapcount_folio(self, folio: Folio) -> int:
        """folio_mapcount(): _large_mapcount."""
        return slots_of(folio, MmIdSlots).large

    @hookimpl
    def mapcount_maybe_shared(self, folio: Folio) -> bool:
        """folio_maybe_mapped_shared() from the mm-id slots."""
        return slots_of(folio, MmIdSlots).maybe_shared()

    @hookimpl
    def mapcount_page_exclusive(self, folio: Folio, page: Page) -> bool:
        """__folio_page_mapped_exclusively() without CONFIG_PAGE_MAPCOUNT: folio level."""
        return not slots_of(folio, MmIdSlots).maybe_shared()

    @hookimpl
    def mapcount_exclusive_to(self, folio: Folio, mm: Mm) -> bool:
        """The mm-id test of __wp_can_reuse_large_anon_folio()."""
        return slots_of(folio, MmIdSlots).exclusive_to(mm)

    @hookimpl
    def mapcount_mapped_pages(self, folio: Folio) -> int:
        """The whole folio while any page is mapped (__folio_add_rmap() counts
        folio_large_nr_pages() when the large mapcount leaves 0)."""
        return folio.nr_pages if slots_of(folio, MmIdSlots).large else 0

    @hookimpl
    def mapcount_partially_mapped(self, folio: Folio) -> bool:
        """__folio_certainly_partially_mapped(): mapped, no PMD mapping, and fewer
        mappings than pages (the average page mapcount is below one)."""
        large = slots_of(folio, MmIdSlots).large
        return bool(large) and not folio.entire_mapcount and large < folio.nr_pages

    @hookimpl
    def mapcount_metadata_bytes(self, folio: Folio) -> int:
        """The folio's counters and mm-id slots; nothing per page."""
        return _PER_FOLIO_BYTES
