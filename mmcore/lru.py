"""LRU lists threaded through pfn-indexed link arrays (struct page's ``lru`` list_head).

The kernel keeps a folio on an LRU list through the ``lru`` list_head inside struct page,
so a list costs nothing per page beyond the page itself. mmcore's reclaim policies kept
their lists as OrderedDicts (75 B of heap per page); :class:`LruList` keeps the same
order in :class:`LruLinks`, arrays indexed by pfn that every list of one machine shares
(9 B per frame): a page is on at most one list at a time, as a list_head allows.

The order semantics are an OrderedDict's keyed by pfn: :meth:`LruList.add` appends at
the tail (a page already on the list keeps its place), :meth:`LruList.pop` unlinks from
anywhere, :meth:`LruList.popleft` takes the oldest.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .page import Page

#: The end of a list (no previous or next page).
_NIL = -1


class LruLinks:
    """The link fields of every frame of one machine: ``prev`` and ``next`` pfn, and
    which list (0: none) the frame is on. They grow with the highest pfn ever listed."""

    __slots__ = ("list_of", "next", "nr_lists", "prev")

    def __init__(self, nr_frames: int) -> None:
        code = "i" if nr_frames < 2**31 else "q"  # pfns fit in 4 bytes up to 8 TiB of RAM
        self.prev = array(code)
        self.next = array(code)
        self.list_of = array("B")
        #: List ids handed out so far (an id is one byte).
        self.nr_lists = 0

    def grow(self, pfn: int) -> None:
        """Make room for ``pfn`` (and a little beyond, so growth is amortized)."""
        size = len(self.list_of)
        extra = max(pfn + 1, size + (size >> 4) + 64) - size
        self.prev.frombytes(bytes(extra * self.prev.itemsize))
        self.next.frombytes(bytes(extra * self.next.itemsize))
        self.list_of.frombytes(bytes(extra))


class LruList:
    """One LRU list, oldest page first, of the pages of ``pages`` (the mem_map)."""

    __slots__ = ("_head", "_id", "_links", "_nr", "_pages", "_tail")

    def __init__(self, links: LruLinks, pages: list[Page | None]) -> None:
        if links.nr_lists == 255:
            raise ValueError("at most 255 LRU lists share one machine's links")
        links.nr_lists += 1
        self._id = links.nr_lists
        self._links = links
        self._pages = pages
        self._head = _NIL
        self._tail = _NIL
        self._nr = 0

    def __len__(self) -> int:
        return self._nr

    def __contains__(self, pfn: int) -> bool:
        list_of = self._links.list_of
        return pfn < len(list_of) and list_of[pfn] == self._id

    def __iter__(self) -> Iterator[int]:
        """The pfns on the list, oldest first."""
        nxt = self._links.next
        pfn = self._head
        while pfn != _NIL:
            yield pfn
            pfn = nxt[pfn]

    def add(self, page: Page) -> None:
        """list_add_tail(): ``page`` becomes the newest (it stays put if already here)."""
        pfn = page.pfn
        links = self._links
        if pfn >= len(links.list_of):
            links.grow(pfn)
        on = links.list_of[pfn]
        if on:
            if on != self._id:
                raise AssertionError(f"pfn {pfn} is already on another LRU list")
            return
        links.list_of[pfn] = self._id
        tail = self._tail
        links.prev[pfn] = tail
        links.next[pfn] = _NIL
        if tail == _NIL:
            self._head = pfn
        else:
            links.next[tail] = pfn
        self._tail = pfn
        self._nr += 1

    def pop(self, pfn: int) -> Page | None:
        """list_del(): unlink the page at ``pfn`` and return it, or None if not here."""
        links = self._links
        if pfn >= len(links.list_of) or links.list_of[pfn] != self._id:
            return None
        self._unlink(pfn)
        return self._pages[pfn]

    def popleft(self) -> Page:
        """Unlink and return the oldest page; raises KeyError when the list is empty."""
        pfn = self._head
        if pfn == _NIL:
            raise KeyError("pop from an empty LRU list")
        self._unlink(pfn)
        page = self._pages[pfn]
        assert page is not None
        return page

    def oldest(self, n: int) -> list[Page]:
        """The ``n`` oldest pages (fewer if the list is shorter), oldest first."""
        pages = self._pages
        out: list[Page] = []
        nxt = self._links.next
        pfn = self._head
        while pfn != _NIL and len(out) < n:
            page = pages[pfn]
            assert page is not None
            out.append(page)
            pfn = nxt[pfn]
        return out

    def move_all(self, dst: LruList) -> None:
        """Append every page of this list to the tail of ``dst``, oldest first, and
        leave this list empty (list_splice_tail_init())."""
        pages = self._pages
        while self._head != _NIL:
            page = pages[self._head]
            assert page is not None
            self._unlink(self._head)
            dst.add(page)

    def _unlink(self, pfn: int) -> None:
        links = self._links
        prev, nxt = links.prev[pfn], links.next[pfn]
        if prev == _NIL:
            self._head = nxt
        else:
            links.next[prev] = nxt
        if nxt == _NIL:
            self._tail = prev
        else:
            links.prev[nxt] = prev
        links.list_of[pfn] = 0
        self._nr -= 1
