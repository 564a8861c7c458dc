"""Physical memory: ``struct page`` and the frame allocator.

A :class:`Page` mirrors the fields of the kernel's struct page/folio that reverse mapping
uses: ``_refcount``, ``_mapcount``, ``mapping`` and ``index``, the page flags, and one slot
(``rmap``) that belongs to the rmap plugin (pte_chains keeps its chain there). A small
content payload lets tests prove that no byte is lost or leaked across COW, mremap and swap.

The fields every fault touches (counts, flags, mapping, content) are slots of the Page.
``index``, ``rmap``, ``folio`` and ``swap_slot`` live in :class:`FrameColumns`, arrays
indexed by pfn that the allocator owns, behind properties of the same names (issue 12
item 4): a Python int index above 2**30 costs 36 B of heap where an array entry costs 8,
and the other three are unset on most pages, so their columns cost nothing until used.
"""

from __future__ import annotations

from array import array
from typing import TYPE_CHECKING, Any

from . import _reprs
from .errors import OutOfMemory
from .freepool import FreePool
from .lru import LruLinks

if TYPE_CHECKING:
    from .folio import Folio

# Page flags (a subset of include/linux/page-flags.h).
PG_ANON = 1 << 0  # PAGE_MAPPING_ANON: mapping is an anon rmap object
PG_ANON_EXCLUSIVE = 1 << 1  # PG_anon_exclusive: mapped by exactly one process, may be reused
PG_SWAPCACHE = 1 << 2  # the page is in the swap cache (private = swap slot)
PG_DIRTY = 1 << 3
PG_CACHE = 1 << 4  # in a page cache (a file's or a shmem object's)
PG_ZERO = 1 << 5  # the shared zero page
PG_REFERENCED = 1 << 6
PG_ACTIVE = 1 << 7
#: An anonymous page that MADV_FREE made lazily freeable (!PG_swapbacked in Linux).
PG_LAZYFREE = 1 << 8


class FrameColumns:
    """The rarely set or large-valued struct page fields of every frame of one machine,
    indexed by pfn: ``index`` (page->index), ``rmap`` (the rmap plugin's slot),
    ``folio`` (page_folio() of a large folio's page) and ``swap_slot`` (page->private).

    Each column is created on the first non-default value and grows to the highest pfn
    given one, so a machine whose pages keep a field at its default pays nothing for it.
    """

    __slots__ = ("folio", "index", "rmap", "swap_slot")

    def __init__(self) -> None:
        self.index = array("q")
        self.rmap: list[object | None] = []
        self.folio: list[Folio | None] = []
        #: Swap slots by pfn, only for pages in the swap cache.
        self.swap_slot: dict[int, int] = {}

    def grow_index(self, pfn: int) -> None:
        """Make room for ``pfn`` in the index column (amortized: a sixteenth more each
        time, as :class:`~mmcore.lru.LruLinks` grows)."""
        size = len(self.index)
        extra = max(pfn + 1, size + (size >> 4) + 64) - size
        self.index.frombytes(bytes(extra * self.index.itemsize))

    def clear(self, pfn: int) -> None:
        """Reset every column of ``pfn`` to its default, for a fresh page at that frame:
        the page allocator hands out a reused struct page with ->mapping cleared
        (free_pages_prepare()) and ->private cleared (prep_new_page() ->
        post_alloc_hook()); its old index and folio must not leak either."""
        if pfn < len(self.index):
            self.index[pfn] = 0
        if pfn < len(self.rmap):
            self.rmap[pfn] = None
        if pfn < len(self.folio):
            self.folio[pfn] = None
        if self.swap_slot:
            self.swap_slot.pop(pfn, None)


def _grow_refs(column: list[Any], pfn: int) -> None:
    """Extend an object column with None up to ``pfn``."""
    column.extend([None] * (pfn + 1 - len(column)))


class Page:
    """One physical frame (struct page).

    ``refcount`` counts every reference: one per pte mapping, one for the swap cache, one
    for a page cache. ``mapcount`` counts pte mappings only (page_mapcount()); the zero page
    keeps mapcount 0 however often it is mapped, as in Linux.

    ``cols`` is the allocator's :class:`FrameColumns`; a page made on its own gets a
    private one.
    """

    __slots__ = (
        "_cols",
        "data",
        "flags",
        "mapcount",
        "mapping",
        "pfn",
        "refcount",
    )

    def __init__(self, pfn: int, cols: FrameColumns | None = None) -> None:
        self.pfn = pfn
        self.flags = 0
        self.refcount = 0
        self.mapcount = 0
        #: page->mapping: the scheme's anon object (anon_vma, anonmm...) or an AddressSpace.
        self.mapping: object | None = None
        #: Content; trailing zero bytes are implicit so a page costs only what was written.
        self.data = b""
        if cols is None:
            cols = FrameColumns()
        else:
            cols.clear(pfn)
        self._cols = cols

    @property
    def index(self) -> int:
        """page->index: linear page index (anon_vma schemes), virtual address (anonmm) or
        file offset in pages (page cache)."""
        column = self._cols.index
        pfn = self.pfn
        return column[pfn] if pfn < len(column) else 0

    @index.setter
    def index(self, value: int) -> None:
        cols = self._cols
        if self.pfn >= len(cols.index):
            cols.grow_index(self.pfn)
        cols.index[self.pfn] = value

    @property
    def rmap(self) -> object | None:
        """The rmap plugin's per-page slot (pte_chains: the direct pointer or chain)."""
        column = self._cols.rmap
        pfn = self.pfn
        return column[pfn] if pfn < len(column) else None

    @rmap.setter
    def rmap(self, value: object | None) -> None:
        column = self._cols.rmap
        if self.pfn >= len(column):
            if value is None:
                return
            _grow_refs(column, self.pfn)
        column[self.pfn] = value

    @property
    def folio(self) -> Folio | None:
        """The large folio this page is part of (page_folio()); None for an order-0 page,
        which is its own folio and keeps every count in the Page's own fields."""
        column = self._cols.folio
        pfn = self.pfn
        return column[pfn] if pfn < len(column) else None

    @folio.setter
    def folio(self, value: Folio | None) -> None:
        column = self._cols.folio
        if self.pfn >= len(column):
            if value is None:
                return
            _grow_refs(column, self.pfn)
        column[self.pfn] = value

    @property
    def swap_slot(self) -> int:
        """Swap slot while PG_SWAPCACHE is set (page->private), else -1."""
        return self._cols.swap_slot.get(self.pfn, -1)

    @swap_slot.setter
    def swap_slot(self, value: int) -> None:
        if value == -1:
            self._cols.swap_slot.pop(self.pfn, None)
        else:
            self._cols.swap_slot[self.pfn] = value

    @property
    def is_anon(self) -> bool:
        """PageAnon(): the page belongs to an anonymous rmap object."""
        return bool(self.flags & PG_ANON)

    def read(self, offset: int, n: int) -> bytes:
        """Return ``n`` bytes of content from ``offset`` (implicit zeros past the payload)."""
        chunk = self.data[offset:offset + n]
        return chunk + bytes(n - len(chunk))

    def write(self, offset: int, payload: bytes) -> None:
        """Store ``payload`` at ``offset``, growing the explicit part of the content."""
        data = self.data
        if len(data) < offset:
            data = data + bytes(offset - len(data))
        self.data = data[:offset] + payload + data[offset + len(payload):]

    def copy_from(self, other: Page) -> None:
        """copy_user_highpage(): take ``other``'s content."""
        self.data = other.data

    def __repr__(self) -> str:
        return (f"Page(pfn={self.pfn}, ref={self.refcount}, map={self.mapcount}, "
                f"flags={self.flags:#x}, index={self.index:#x})")

    def _repr_html_(self) -> str:  # Jupyter; mmcore.display draws every display
        return _reprs.html(self)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # IPython terminal
        _reprs.pretty(self, printer, cycle)

    def __rich__(self) -> object:  # rich.print()
        return _reprs.rich(self)

    def _repr_svg_(self) -> str | None:  # Jupyter; a method here, not _reprs.Pictured's:
        return _reprs.svg(self)  # a mypyc-compiled class cannot inherit a Python one


class PhysMem:
    """A fixed number of frames with a deterministic LIFO free list.

    Frame 0 is the shared zero page (ZERO_PAGE(0)); it is never allocated or freed.
    Memory is taken lazily: ``pages`` (the mem_map) grows to the highest frame ever
    allocated and the free list keeps the never-used frames as a count, so a machine
    with 2**24 frames costs nothing until its frames are used.
    """

    ZERO_PFN = 0

    def __init__(self, nr_frames: int) -> None:
        if nr_frames < 2:
            raise ValueError("physical memory needs at least 2 frames")
        self.nr_frames = nr_frames
        #: index, rmap, folio and swap_slot of every frame (see :class:`FrameColumns`).
        self.cols = FrameColumns()
        zero = Page(self.ZERO_PFN, self.cols)
        zero.flags = PG_ZERO
        zero.refcount = 1
        #: Frames by pfn up to the highest ever allocated (None: free).
        self.pages: list[Page | None] = [zero]
        self.zero_page = zero
        #: Free frames, lowest never-used pfn first so the first allocation is pfn 1.
        self.free_list = FreePool(1, nr_frames)
        #: The lru list_heads of every frame, shared by the reclaim policy's lists.
        self.lru = LruLinks(nr_frames)

    @property
    def nr_free(self) -> int:
        """Number of frames on the free list."""
        return self.free_list.nr

    @property
    def nr_used(self) -> int:
        """Frames in use, not counting the zero page."""
        return self.nr_frames - 1 - self.free_list.nr

    def alloc(self) -> Page:
        """alloc_page(): take a free frame; raises :class:`OutOfMemory` when none is left."""
        try:
            pfn = self.free_list.pop()
        except IndexError:
            raise OutOfMemory("no free page frame") from None
        page = Page(pfn, self.cols)
        if pfn == len(self.pages):  # a never-used frame: the mem_map grows by one
            self.pages.append(page)
        else:
            self.pages[pfn] = page
        return page

    def alloc_folio(self, order: int) -> Folio | None:
        """folio_alloc(order): take a naturally aligned block of ``2**order`` free frames
        as one large folio, or None when no such block is free (the caller falls back to
        a smaller order). Its pages start with no reference, like :meth:`alloc`'s."""
        from .folio import Folio
        first = self.free_list.pop_block(1 << order)
        if first is None:
            return None
        pages = [Page(pfn, self.cols) for pfn in range(first, first + (1 << order))]
        grow = first + len(pages) - len(self.pages)
        if grow > 0:
            self.pages.extend([None] * grow)
        self.pages[first:first + len(pages)] = pages
        return Folio(pages, order)

    def free_folio(self, folio: Folio) -> None:
        """free_frozen_pages() of a whole large folio: every page has lost its last
        reference; the block goes back whole."""
        for page in folio.pages:
            if page.refcount or page.mapcount:
                raise AssertionError(f"freeing a folio whose page is in use: {page!r}")
            self.pages[page.pfn] = None
        self.free_list.append_block(folio.pfn, folio.nr_pages)

    def free(self, page: Page) -> None:
        """__free_page(): return a frame whose last reference was dropped."""
        if page.folio is not None:
            raise AssertionError(f"freeing a page of a large folio alone: {page!r}")
        if page.refcount != 0 or page.mapcount != 0:
            raise AssertionError(f"freeing a page still in use: {page!r}")
        if page.flags & PG_ZERO:
            raise AssertionError("freeing the zero page")
        self.pages[page.pfn] = None
        self.free_list.append(page.pfn)

    def page(self, pfn: int) -> Page | None:
        """pfn_to_page(): the page at ``pfn`` if it is allocated."""
        if 0 <= pfn < len(self.pages):
            return self.pages[pfn]
        return None

    def used_pages(self) -> list[Page]:
        """Every allocated page except the zero page, in pfn order."""
        return [p for p in self.pages[1:] if p is not None]

