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

    __slots__ = ("_freed", "_next", "nr")

    def __init__(self, first: int, end: int) -> None:
        self._freed: list[int] = []
        self._next = first
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
        n = self._next
        self._next = n + 1
        return n

    def append(self, n: int) -> None:
        """Give ``n`` back (it was taken with :meth:`pop`)."""
        self._freed.append(n)
        self.nr += 1
