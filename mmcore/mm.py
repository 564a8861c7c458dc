"""struct mm_struct: one address space (vmas, page table, counters)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .constants import DEFAULT_BRK_START
from .page import PG_ANON, PG_CACHE
from .pagetable import PageTable
from .vma import VmaTree

if TYPE_CHECKING:
    from .machine import Machine
    from .page import Page

# The rss_stat counters of struct mm_struct, in the kernel's enum order (mm_types.h).
MM_FILEPAGES = 0
MM_ANONPAGES = 1
MM_SWAPENTS = 2
MM_SHMEMPAGES = 3


def mm_counter(page: Page) -> int:
    """mm_counter(): which rss counter a mapping of ``page`` is charged to (anonymous,
    shmem for a swap-backed page-cache page, file otherwise)."""
    if page.flags & PG_ANON:
        return MM_ANONPAGES
    if page.flags & PG_CACHE and getattr(page.mapping, "shmem", False):
        return MM_SHMEMPAGES
    return MM_FILEPAGES


class Mm:
    """An address space: the vma tree (mm->mm_mt), the page table (mm->pgd), brk and the
    rmap plugin's per-mm slot (``rmap``: anonmm keeps its struct anonmm there)."""

    def __init__(self, machine: Machine, brk_start: int = DEFAULT_BRK_START) -> None:
        self.machine = machine
        self.vmas = VmaTree()
        self.pgtable = PageTable()
        self.start_brk = brk_start
        self.brk = brk_start
        self.rmap: object | None = None
        self.owner_pid = 0
        #: mm->rss_stat, indexed by MM_FILEPAGES, MM_ANONPAGES, MM_SWAPENTS, MM_SHMEMPAGES:
        #: kept incrementally where ptes are set and cleared, as the kernel does.
        self.rss_stat = [0, 0, 0, 0]
        #: mm->hiwater_rss and mm->hiwater_vm (pages): the peaks that VmHWM and VmPeak show.
        self.hiwater_rss = 0
        self.hiwater_vm = 0
        #: mm->def_flags: VM_LOCKED (and VM_LOCKONFAULT) after mlockall(MCL_FUTURE).
        self.def_flags = 0

    @property
    def rss(self) -> int:
        """get_mm_rss(): resident pages of every kind (file + anon + shmem)."""
        s = self.rss_stat
        return s[MM_FILEPAGES] + s[MM_ANONPAGES] + s[MM_SHMEMPAGES]

    def add_rss(self, page: Page, n: int) -> None:
        """add_mm_counter(mm, mm_counter(page), n); a decrease first records the peak
        (update_hiwater_rss(), which every unmap path calls before dropping ptes)."""
        if n < 0:
            rss = self.rss
            if rss > self.hiwater_rss:
                self.hiwater_rss = rss
        self.rss_stat[mm_counter(page)] += n

    def update_hiwater_vm(self) -> None:
        """update_hiwater_vm(): record the peak of total_vm before an unmap lowers it."""
        if self.vmas.total_pages > self.hiwater_vm:
            self.hiwater_vm = self.vmas.total_pages

    @property
    def map_count(self) -> int:
        """mm->map_count: the number of vmas."""
        return len(self.vmas)

    def __repr__(self) -> str:
        return f"Mm(pid={self.owner_pid}, vmas={self.map_count}, rss={self.rss})"
