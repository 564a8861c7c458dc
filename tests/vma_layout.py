"""Small helpers for VMA-layout tests, in the style of the kernel's tools/testing/vma.

The kernel's VMA tests draw each address layout as a ruler of page columns::

    0123456789abc
    AA B   **  CC

and then assert vm_start, vm_end, vm_pgoff and the anon_vma of every vma. The helpers here
do the same for a simulated process: :func:`ruler` renders the vmas that lie in a window as
such a line (each vma gets the next letter, gaps are blanks), :func:`spans` lists them as
``(start_page, end_page, pgoff)`` relative to the window, and :class:`VmaHarness` drives the
merge code of :mod:`mmcore.vma_ops` directly on hand-made vmas, as the kernel's userland
harness drives mm/vma.c.

Every test picks a window (``WINDOW`` by default) well above vm.mmap_min_addr and far from
where the top-down allocator places hint-less mappings, so page ``n`` of a picture is the
address ``WINDOW + n * PAGE``.
"""

from __future__ import annotations

import string
from collections.abc import Iterable

from mmcore import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
    VM_MAYREAD,
    VM_MAYWRITE,
    VM_READ,
    VM_WRITE,
    Machine,
    Process,
    Vma,
)
from mmcore.fault import anon_vma_prepare
from mmcore.vma_ops import (
    MergeRange,
    dup_anon_vma,
    vma_link,
    vma_merge_existing_range,
    vma_merge_new_range,
)

PAGE = 4096
PAGE_SHIFT = 12
#: Base of the page-numbered window every picture is drawn over (page 0 of a ruler).
WINDOW = 0x10000000
RW = PROT_READ | PROT_WRITE
PA = MAP_PRIVATE | MAP_ANONYMOUS
#: The flags tools/testing/vma gives its vmas: VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE.
VMA_FLAGS = VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE

_LETTERS = string.ascii_uppercase + string.ascii_lowercase


def addr(page: int, base: int = WINDOW) -> int:
    """The address of page ``page`` of the window."""
    return base + page * PAGE


def window_vmas(vmas: Iterable[Vma], base: int = WINDOW, npages: int = 64) -> list[Vma]:
    """The vmas that overlap the ``npages``-page window starting at ``base``."""
    end = base + npages * PAGE
    return [v for v in vmas if v.end > base and v.start < end]


def spans(vmas: Iterable[Vma], base: int = WINDOW, npages: int = 64,
          ) -> list[tuple[int, int, int]]:
    """``[(start_page, end_page, pgoff)]`` of the vmas in the window, pages and pgoff
    relative to ``base`` (so an anonymous vma that kept its linear pgoff shows
    ``pgoff == start_page``)."""
    base_pgoff = base >> PAGE_SHIFT
    return [((v.start - base) // PAGE, (v.end - base) // PAGE, v.pgoff - base_pgoff)
            for v in window_vmas(vmas, base, npages)]


def ruler(vmas: Iterable[Vma], base: int = WINDOW, npages: int = 64) -> str:
    """The window as one line: each vma is drawn as a run of its own letter (A, B, C... in
    address order), unmapped pages are blanks; trailing blanks are dropped.

    Two adjacent vmas therefore show as ``AAABB`` and a merged one as ``AAAAA``.
    """
    cells = [" "] * npages
    for i, v in enumerate(window_vmas(vmas, base, npages)):
        first = max(0, (v.start - base) // PAGE)
        last = min(npages, (v.end - base) // PAGE)
        for page in range(first, last):
            cells[page] = _LETTERS[i % len(_LETTERS)]
    return "".join(cells).rstrip()


def carveout(p: Process, npages: int = 30, base: int = WINDOW) -> int:
    """selftests/mm/merge.c FIXTURE_SETUP: reserve the window with a PROT_NONE mapping
    that the test then maps over with MAP_FIXED."""
    return p.mmap(base, npages * PAGE, PROT_NONE, PA | MAP_FIXED)


class VmaHarness:
    """Direct access to the merge machinery of :mod:`mmcore.vma_ops`, like the kernel's
    userland VMA harness: vmas are allocated and linked by hand with a page-numbered range
    and pgoff (pgoff ``n`` means page ``n`` of the window's linear index), then
    ``vma_merge_new_range`` / ``vma_merge_existing_range`` are called on them."""

    def __init__(self, rmap: str, base: int = WINDOW) -> None:
        self.machine = Machine(rmap=rmap)
        self.process = self.machine.spawn()
        self.mm = self.process.mm
        self.base = base
        self.base_pgoff = base >> PAGE_SHIFT

    # --- building blocks ---------------------------------------------------------------

    def addr(self, page: int) -> int:
        """The address of page ``page`` of the window."""
        return self.base + page * PAGE

    def alloc_and_link(self, start: int, end: int, pgoff: int,
                       flags: int = VMA_FLAGS) -> Vma:
        """alloc_and_link_vma(): a new anonymous vma over pages [start, end)."""
        vma = Vma(self.mm, self.addr(start), self.addr(end), flags, self.base_pgoff + pgoff)
        vma_link(self.mm, vma)
        return vma

    def fault_anon(self, vma: Vma) -> object:
        """Give ``vma`` an anon_vma of its own, as its first anonymous fault would
        (anon_vma_prepare; it may reuse a compatible neighbour's, as the kernel does)."""
        anon_vma_prepare(vma)
        assert vma.anon_vma is not None
        return vma.anon_vma

    def share_anon(self, vma: Vma, like: Vma) -> object:
        """Make ``vma`` use ``like``'s anon_vma, linked as dup_anon_vma() links it (one
        chain entry per entry of ``like``: a singular chain when ``like`` has one)."""
        dup_anon_vma(vma, like)
        assert vma.anon_vma is like.anon_vma
        return vma.anon_vma

    def pages(self, vma: Vma) -> tuple[int, int, int]:
        """``(start_page, end_page, pgoff)`` of one vma, relative to the window."""
        return ((vma.start - self.base) // PAGE, (vma.end - self.base) // PAGE,
                vma.pgoff - self.base_pgoff)

    @property
    def map_count(self) -> int:
        """mm->map_count."""
        return self.mm.map_count

    def ruler(self, npages: int = 16) -> str:
        """The layout as a ruler line (see :func:`ruler`)."""
        return ruler(self.mm.vmas, self.base, npages)

    # --- the operations under test -------------------------------------------------------

    def merge_new(self, start: int, end: int, pgoff: int, flags: int = VMA_FLAGS,
                  anon: object | None = None, copied_from: Vma | None = None) -> Vma | None:
        """merge_new(): vma_merge_new_range() for pages [start, end), with prev and next
        looked up around the gap as the kernel's helper does."""
        r = MergeRange(self.mm, self.addr(start), self.addr(end), flags,
                       self.base_pgoff + pgoff, None, anon=anon,
                       prev=self.mm.vmas.prev_of(self.addr(start)),
                       next=self.mm.vmas.next_from(self.addr(end)),
                       copied_from=copied_from)
        return vma_merge_new_range(r)

    def try_merge_new(self, start: int, end: int, pgoff: int,
                      flags: int = VMA_FLAGS) -> tuple[Vma, bool]:
        """try_merge_new_vma(): merge the new range or else allocate and link a vma;
        returns ``(vma, merged)``."""
        merged = self.merge_new(start, end, pgoff, flags)
        if merged is not None:
            return merged, True
        return self.alloc_and_link(start, end, pgoff, flags), False

    def merge_existing(self, middle: Vma, start: int, end: int,
                       flags: int | None = None) -> Vma | None:
        """merge_existing(): vma_merge_existing_range() for pages [start, end) of
        ``middle`` becoming ``flags`` (unchanged flags by default: only the merge runs)."""
        vmas = self.mm.vmas
        r = MergeRange(self.mm, self.addr(start), self.addr(end),
                       middle.flags if flags is None else flags,
                       middle.linear_page_index(self.addr(start)), middle.file,
                       anon=middle.anon_vma, anon_name=middle.anon_name, middle=middle,
                       prev=vmas.prev(middle), next=vmas.next(middle))
        return vma_merge_existing_range(r)
