"""struct mm_struct: one address space (vmas, page table, counters)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .constants import DEFAULT_BRK_START
from .pagetable import PageTable
from .vma import VmaTree

if TYPE_CHECKING:
    from .machine import Machine


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
        #: Resident anonymous and shared pages (MM_ANONPAGES + MM_SHMEMPAGES).
        self.rss = 0

    @property
    def map_count(self) -> int:
        """mm->map_count: the number of vmas."""
        return len(self.vmas)

    def __repr__(self) -> str:
        return f"Mm(pid={self.owner_pid}, vmas={self.map_count}, rss={self.rss})"
