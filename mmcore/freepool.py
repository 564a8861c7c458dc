"""A pool of free numbers (page frames, swap slots) that costs nothing until used.

The kernel's allocators hand out frames and swap slots from structures whose size does
not depend on how much of the device was ever touched; a Python list of every free
number does (``Machine(ram_pages=2**24)`` held 16M ints before the first fault). The
never-used tail is kept here as a counter instead.
"""

from __future__ import annotations


class FreePool:
    """The free numbers in [first, end): freed numbers come back first, last freed
    first (LIFO), then never-used numbers lowest first; exactly the order of a list
    ``[end - 1, ..., first]`` popped from its end and appended to on free."""

    __slots__ = ("_end", "_freed", "_next", "_ranges", "nr")

    def __init__(self, first: int, end: int) -> None:
        self._freed: list[int] = []
        self._next = first
        self._end = end
        #: Whole aligned blocks given back by :meth:`append_block`, by size, LIFO.
        self._ranges: dict[int, list[int]] = {}
        #: How many numbers are free (a plain attribute: the allocator's watermark
        #: check reads it on every page allocation).
        self.nr = max(0, end - first)

    def pop(self) -> int:
        """Take a free number; raises IndexError when none is left."""
        if not self.nr:
            raise IndexError("pop from an empty pool")
        self.nr -= 1
        if self._freed:
            return self._freed.pop()
        if self._next >= self._end:  # only whole blocks are left: break the smallest
            size = min(k for k, v in self._ranges.items() if v)
            first = self._ranges[size].pop()
            self._freed.extend(range(first + size - 1, first, -1))
            return first
        n = self._next
        self._next = n + 1
        return n

    def append(self, n: int) -> None:
        """Give ``n`` back (it was taken with :meth:`pop`)."""
        self._freed.append(n)
        self.nr += 1

    def pop_block(self, size: int) -> int | None:
        """Take ``size`` (a power of two) consecutive free numbers starting at a multiple
        of ``size``, the way the buddy allocator hands out an order-N block; return the
        first, or None when no such block is free (the caller falls back to a smaller
        order, as alloc_anon_folio() does).

        A block comes from the blocks given back whole, else from the never-used tail;
        never-used numbers skipped to reach the alignment join the free numbers, lowest
        first. Numbers freed one by one are not coalesced (there is no buddy merging).
        """
        blocks = self._ranges.get(size)
        if blocks:
            self.nr -= size
            return blocks.pop()
        start = -(-self._next // size) * size
        if start + size > self._end:
            return None
        self._freed.extend(range(start - 1, self._next - 1, -1))
        self._next = start + size
        self.nr -= size
        return start

    def append_block(self, first: int, size: int) -> None:
        """Give back a whole block taken with :meth:`pop_block`."""
        self._ranges.setdefault(size, []).append(first)
        self.nr += size
