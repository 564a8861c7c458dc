"""Large folios: a head page and 2**order - 1 tail pages allocated, mapped and freed as one
(struct folio, include/linux/mm_types.h).

An order-0 page is its own folio and has no :class:`Folio` object (``page.folio`` is None),
so everything mmcore did before large folios runs unchanged for it. A large folio keeps its
pages as ordinary :class:`~mmcore.page.Page` objects: each still has its own ``mapping``,
``index``, ``rmap`` slot and content, so every rmap scheme keeps working page by page, and
``page.mapcount`` stays the exact number of ptes that map that page. That exact per-page
count is the simulator's truth. What the kernel *keeps and reports* about a large folio's
mappings is the business of the machine's mapcount design (a ``mapcount`` plugin, see
:mod:`mmcore.hookspecs`), whose answers are measured against that truth.

References are counted per page as before (one per pte, swap-cache or page-cache
reference); the folio's refcount is their sum. A page of a large folio whose last
reference goes is not freed alone: it stays allocated inside the folio, exactly as an
unmapped part of a partly mapped folio stays allocated until the folio is split. The folio
is freed when its last page loses its last reference (``nr_unref`` reaches ``nr_pages``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .page import Page

#: The PMD order on x86-64 (HPAGE_PMD_ORDER): 512 pages, 2 MiB.
HPAGE_PMD_ORDER = 9
#: The largest order mmcore allocates (MAX_PAGE_ORDER allows more; THP stops at PMD).
MAX_FOLIO_ORDER = HPAGE_PMD_ORDER


class Folio:
    """One large folio (order 1 to :data:`MAX_FOLIO_ORDER`).

    ``entire_mapcount`` counts PMD mappings of the whole folio (_entire_mapcount, kept by
    the core as truth). ``mc`` is the mapcount design's own per-folio state (what that
    design says the kernel keeps in struct folio), created and updated only by the
    ``mapcount`` plugin. ``deferred`` is set while the folio is on the deferred-split
    queue (folio_test_partially_mapped() and the ds_queue list).
    """

    __slots__ = ("deferred", "entire_mapcount", "mc", "nr_pages", "nr_unref", "order",
                 "pages")

    def __init__(self, pages: list[Page], order: int) -> None:
        if not 1 <= order <= MAX_FOLIO_ORDER or len(pages) != 1 << order:
            raise ValueError(f"a large folio has order 1..{MAX_FOLIO_ORDER} and "
                             f"2**order pages, not order {order} with {len(pages)}")
        self.pages = pages
        self.order = order
        self.nr_pages = 1 << order
        self.entire_mapcount = 0
        #: Pages whose last reference went (they stay allocated inside the folio).
        self.nr_unref = 0
        self.deferred = False
        self.mc: object | None = None
        for page in pages:
            page.folio = self

    @property
    def head(self) -> Page:
        """folio_page(folio, 0): the head page, which stands for the folio on the LRU."""
        return self.pages[0]

    @property
    def pfn(self) -> int:
        """folio_pfn(): the head page's frame; the folio's frames are naturally aligned."""
        return self.pages[0].pfn

    def page_index(self, page: Page) -> int:
        """folio_page_idx(): the position of ``page`` in this folio."""
        return page.pfn - self.pages[0].pfn

    @property
    def nr_pages_mapped(self) -> int:
        """How many pages at least one pte maps (the truth of _nr_pages_mapped)."""
        return sum(1 for p in self.pages if p.mapcount)

    @property
    def total_mapcount(self) -> int:
        """folio_mapcount() as exact truth: every pte mapping plus every PMD mapping."""
        return sum(p.mapcount for p in self.pages) + self.entire_mapcount

    def __repr__(self) -> str:
        return (f"Folio(pfn={self.pfn:#x}, order={self.order}, "
                f"entire={self.entire_mapcount}, mapped={self.nr_pages_mapped})")
