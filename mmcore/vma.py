"""Virtual memory areas (struct vm_area_struct) and the per-mm ordered tree of them.

The kernel keeps vmas in a maple tree; here a sorted list keyed by ``vm_start`` gives the
same O(log n) find_vma(). Merge and split rules live in :mod:`mmcore.vma_ops`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from sortedcontainers import SortedKeyList  # type: ignore[import-untyped]  # no stubs; kept

# inline, not in a mypy override, so a plugin author's mypy --strict on mmcore passes too
from . import _reprs
from .constants import (
    PAGE_SHIFT,
    VM_ACCESS_FLAGS,
    VM_MAYWRITE,
    VM_SHARED,
    VM_SOFTDIRTY,
)

if TYPE_CHECKING:
    from .fs import OpenFile
    from .mm import Mm


class Vma:
    """One vm_area_struct.

    ``anon_vma`` is the rmap scheme's per-vma anon object (NULL until the first anonymous
    fault, exactly when the kernel's vma->anon_vma is NULL); ``rmap`` is a free slot for the
    scheme's other per-vma state (anon_vma_chain keeps the vma's chain there).
    """

    __slots__ = (
        "__weakref__",
        "anon_name",
        "anon_vma",
        "end",
        "file",
        "flags",
        "mm",
        "pgoff",
        "rmap",
        "start",
    )

    def __init__(self, mm: Mm, start: int, end: int, flags: int, pgoff: int,
                 file: OpenFile | None = None) -> None:
        self.mm = mm
        self.start = start
        self.end = end
        self.flags = flags
        self.pgoff = pgoff
        self.file = file
        self.anon_vma: object | None = None
        self.rmap: object | None = None
        self.anon_name: str | None = None

    @property
    def pages(self) -> int:
        """vma_pages()."""
        return (self.end - self.start) >> PAGE_SHIFT

    @property
    def is_anonymous(self) -> bool:
        """vma_is_anonymous(): no backing object (shared anonymous memory has a shmem file)."""
        return self.file is None

    @property
    def is_shared(self) -> bool:
        """VM_SHARED set (writes go to a shared object)."""
        return bool(self.flags & VM_SHARED)

    def linear_page_index(self, addr: int) -> int:
        """linear_page_index(): the page index ``addr`` has in this vma's object."""
        return ((addr - self.start) >> PAGE_SHIFT) + self.pgoff

    def address_of(self, pgoff: int) -> int:
        """vma_address(): the address at which page index ``pgoff`` is mapped, or -1."""
        addr = self.start + ((pgoff - self.pgoff) << PAGE_SHIFT)
        return addr if self.start <= addr < self.end else -1

    def copy(self) -> Vma:
        """vm_area_dup(): a field-by-field copy (rmap slots copied as references)."""
        new = Vma(self.mm, self.start, self.end, self.flags, self.pgoff, self.file)
        new.anon_vma = self.anon_vma
        new.rmap = None
        new.anon_name = self.anon_name
        return new

    def __repr__(self) -> str:
        return (f"Vma({self.start:#x}-{self.end:#x} flags={self.flags:#x} "
                f"pgoff={self.pgoff:#x} anon_vma={'yes' if self.anon_vma else 'no'})")

    def _repr_html_(self) -> str:  # Jupyter; mmcore.display draws every display
        return _reprs.html(self)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # IPython terminal
        _reprs.pretty(self, printer, cycle)

    def __rich__(self) -> object:  # rich.print()
        return _reprs.rich(self)

    def _repr_svg_(self) -> str | None:  # Jupyter; a method here, not _reprs.Pictured's:
        return _reprs.svg(self)  # a mypyc-compiled class cannot inherit a Python one


def vma_pgoff_range(vma: Vma) -> tuple[int, int]:
    """vma_start_pgoff() and vma_last_pgoff(): the closed page-index range ``vma`` maps,
    the key of the interval trees (anon_vma's chains, i_mmap)."""
    return vma.pgoff, vma.pgoff + vma.pages - 1


def is_cow_mapping(flags: int) -> bool:
    """is_cow_mapping(): private and possibly writable, so writes copy pages."""
    return (flags & (VM_SHARED | VM_MAYWRITE)) == VM_MAYWRITE


def anon_vma_compatible(a: Vma, b: Vma) -> bool:
    """anon_vma_compatible() (mm/vma.c): ``a`` directly precedes ``b`` and they could share
    one anon_vma: same file, flags equal but for access bits, and pgoff contiguous."""
    return (
        a.end == b.start
        and a.file is b.file
        and not ((a.flags ^ b.flags) & ~(VM_ACCESS_FLAGS | VM_SOFTDIRTY))
        and b.pgoff == a.pgoff + ((b.start - a.start) >> PAGE_SHIFT)
    )


class VmaTree:
    """The mm's vmas ordered by address (the maple tree), with O(log n) lookups."""

    def __init__(self) -> None:
        self._list: SortedKeyList = SortedKeyList(key=_vma_start)
        # The last vma found (the kernel's mm->mmap_cache / per-thread vmacache, before
        # the maple tree): most faults hit the vma of the previous one.
        self._cache: Vma | None = None
        #: mm->total_vm: pages covered by the vmas (VmSize), kept as vmas are linked,
        #: resized and removed.
        self.total_pages = 0

    def __len__(self) -> int:
        return len(self._list)

    def __iter__(self) -> Iterator[Vma]:
        return iter(list(self._list))

    def insert(self, vma: Vma) -> None:
        """vma_link()/vma_iter_store(): add a vma (caller guarantees no overlap)."""
        self._cache = None
        self._list.add(vma)
        self.total_pages += vma.pages

    def remove(self, vma: Vma) -> None:
        """vma_iter_clear(): remove a vma."""
        self._cache = None
        self._list.remove(vma)
        self.total_pages -= vma.pages

    def set_range(self, vma: Vma, start: int, end: int, pgoff: int) -> None:
        """vma_set_range(): change a linked vma's bounds, keeping the order consistent;
        then vma_complete() re-keys it in the schemes' trees (``vma_range_update``)."""
        self._cache = None
        self.total_pages += ((end - start) >> PAGE_SHIFT) - vma.pages
        if start != vma.start:
            self._list.remove(vma)
            vma.start, vma.end, vma.pgoff = start, end, pgoff
            self._list.add(vma)
        else:
            vma.end, vma.pgoff = end, pgoff
        update = vma.mm.machine.vma_range_update
        if update is not None:
            update(vma=vma)

    def find(self, addr: int) -> Vma | None:
        """find_vma(): the first vma with ``vm_end > addr`` (it may start above ``addr``)."""
        lst = self._list
        i = lst.bisect_key_right(addr) - 1
        if i >= 0:
            vma: Vma = lst[i]
            if vma.end > addr:
                return vma
        if i + 1 < len(lst):
            nxt: Vma = lst[i + 1]
            return nxt
        return None

    def lookup(self, addr: int) -> Vma | None:
        """vma_lookup(): the vma containing ``addr``, or None."""
        cached = self._cache
        if cached is not None and cached.start <= addr < cached.end:
            return cached
        lst = self._list
        i = lst.bisect_key_right(addr) - 1
        if i >= 0:
            vma: Vma = lst[i]
            if vma.end > addr:
                self._cache = vma
                return vma
        return None

    def prev(self, vma: Vma) -> Vma | None:
        """vma_prev(): the vma before ``vma``."""
        i = self._list.index(vma)
        return self._list[i - 1] if i > 0 else None

    def next(self, vma: Vma) -> Vma | None:
        """vma_next(): the vma after ``vma``."""
        i = self._list.index(vma)
        return self._list[i + 1] if i + 1 < len(self._list) else None

    def prev_of(self, addr: int) -> Vma | None:
        """The last vma that starts below ``addr`` (find_vma_prev's prev)."""
        i = self._list.bisect_key_left(addr) - 1
        return self._list[i] if i >= 0 else None

    def next_from(self, addr: int) -> Vma | None:
        """The first vma that starts at or above ``addr``."""
        i = self._list.bisect_key_left(addr)
        return self._list[i] if i < len(self._list) else None

    def intersecting(self, start: int, end: int) -> list[Vma]:
        """find_vma_intersection() for a range: every vma overlapping [start, end)."""
        lst = self._list
        i = max(lst.bisect_key_right(start) - 1, 0)
        out: list[Vma] = []
        while i < len(lst):
            vma: Vma = lst[i]
            if vma.start >= end:
                break
            if vma.end > start:
                out.append(vma)
            i += 1
        return out

    def gaps_top_down(self, low: int, high: int) -> Iterator[tuple[int, int]]:
        """Free gaps in [low, high), highest first (for the top-down unmapped-area search)."""
        lst = self._list
        i = lst.bisect_key_left(high) - 1
        top = high
        while i >= 0:
            vma: Vma = lst[i]
            if vma.end <= low:
                break
            if vma.end < top:
                yield vma.end, top
            top = min(top, vma.start)
            i -= 1
        if top > low:
            yield low, top


def _vma_start(vma: Vma) -> int:
    return vma.start
