"""What /proc shows: /proc/PID/maps and smaps VmFlags, /proc/PID/pagemap, kpagecount.

Formats follow fs/proc/task_mmu.c (show_map_vma, show_smap_vma_flags, pagemap_pte_to_entry).
The offset column is vm_pgoff << PAGE_SHIFT only for file-backed vmas; anonymous vmas show
0 whatever their pgoff, dev 00:00 and inode 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from dataclasses_json import DataClassJsonMixin

from .constants import (
    PAGE_SHIFT,
    VM_EXEC,
    VM_MAYSHARE,
    VM_READ,
    VM_WRITE,
    vm_flags_mnemonics,
)
from .page import PG_ZERO
from .pagetable import GUARD_PTE, is_swap_pte, pte_huge, pte_pfn, pte_present, swp_slot

if TYPE_CHECKING:
    from .mm import Mm
    from .page import Page
    from .vma import Vma

PM_PFRAME_MASK = (1 << 55) - 1
PM_SOFT_DIRTY = 1 << 55
PM_MMAP_EXCLUSIVE = 1 << 56
PM_GUARD_REGION = 1 << 58
PM_FILE = 1 << 61
PM_SWAP = 1 << 62
PM_PRESENT = 1 << 63
#: What a guard marker reads as: the swap-entry encoding of PTE_MARKER_GUARD (type
#: SWP_PTE_MARKER = 31, offset 4) plus PM_SWAP and PM_GUARD_REGION (probed raw value
#: 0x440000000000009f).
PM_GUARD_VALUE = PM_SWAP | PM_GUARD_REGION | (4 << 5) | 31


@dataclass(frozen=True)
class MapsEntry(DataClassJsonMixin):
    """One line of /proc/PID/maps plus the smaps ``VmFlags`` string of that vma."""

    start: int
    end: int
    perms: str
    offset: int
    dev: str
    inode: int
    path: str
    vm_flags: str

    def __str__(self) -> str:
        # show_vma_header_prefix() ends in a space; seq_pad() puts the name at column 73.
        head = (f"{self.start:08x}-{self.end:08x} {self.perms} {self.offset:08x} "
                f"{self.dev} {self.inode} ")
        return f"{head:<73}{self.path}" if self.path else head


@dataclass(frozen=True)
class PagemapEntry(DataClassJsonMixin):
    """One 64-bit /proc/PID/pagemap entry, decoded (Documentation/admin-guide/mm/pagemap)."""

    present: bool
    swapped: bool
    pfn: int
    swap_offset: int
    exclusive: bool
    file_or_shared: bool
    value: int
    #: PM_GUARD_REGION: a MADV_GUARD_INSTALL marker (6.14+).
    guard: bool = False


def vma_is_initial_heap(mm: Mm, vma: Vma) -> bool:
    """vma_is_initial_heap(): ``vm_start < brk && vm_end > start_brk``, so a vma that
    merely touches the heap (starts at brk, ends at start_brk) is not the heap."""
    return vma.start < mm.brk and vma.end > mm.start_brk


def vma_name(mm: Mm, vma: Vma) -> str:
    """The name column: the file, [heap] for the brk area (:func:`vma_is_initial_heap`),
    or [anon:NAME]."""
    if vma.file is not None:
        return vma.file.path
    if vma_is_initial_heap(mm, vma):
        return "[heap]"
    if vma.anon_name is not None:
        return f"[anon:{vma.anon_name}]"
    return ""


def maps_entry(mm: Mm, vma: Vma) -> MapsEntry:
    """show_map_vma() for one vma."""
    f = vma.flags
    perms = ("r" if f & VM_READ else "-") + ("w" if f & VM_WRITE else "-") \
        + ("x" if f & VM_EXEC else "-") + ("s" if f & VM_MAYSHARE else "p")
    if vma.file is not None:
        offset, dev, inode = vma.pgoff << PAGE_SHIFT, vma.file.dev, vma.file.ino
    else:
        offset, dev, inode = 0, "00:00", 0
    return MapsEntry(vma.start, vma.end, perms, offset, dev, inode, vma_name(mm, vma),
                     vm_flags_mnemonics(f))


def page_mapped_exclusively(mm: Mm, page: Page, pmd: bool) -> bool:
    """PM_MMAP_EXCLUSIVE of a present page: mapped once (pte_to_pagemap_entry()), or, for
    a page of a large folio, __folio_page_mapped_exclusively() as the machine's mapcount
    design answers it: for the page itself when a pte maps it, for the folio's head page
    when a PMD does (pagemap_pmd_range() asks about pmd_page() for every page: probed,
    kernel-facts "What /proc and /sys show")."""
    folio = page.folio
    if folio is None:
        return page.mapcount == 1
    return bool(mm.machine.mapcount_page_exclusive(folio, folio.head if pmd else page))


def pagemap_entry(mm: Mm, addr: int) -> PagemapEntry:
    """pagemap_pte_to_entry() for the page at ``addr`` (the pfn is shown, as for root)."""
    pte = mm.pgtable.entry(addr >> PAGE_SHIFT)
    if pte_present(pte):
        pfn = pte_pfn(pte)
        page = mm.machine.physmem.page(pfn)
        pmd = pte_huge(pte)
        # pte_to_pagemap_entry() asks about vm_normal_page(), which is not the zero page;
        # pagemap_pmd_range() about pmd_page(), so the huge zero folio, not anonymous,
        # reads PM_FILE (probed) and never mapped exclusively.
        known = page is not None and (pmd or not page.flags & PG_ZERO)
        exclusive = known and page is not None and page_mapped_exclusively(mm, page, pmd)
        file = known and page is not None and not page.is_anon
        value = PM_PRESENT | pfn | (PM_MMAP_EXCLUSIVE if exclusive else 0) \
            | (PM_FILE if file else 0)
        return PagemapEntry(True, False, pfn, 0, exclusive, file, value)
    if pte == GUARD_PTE:
        return PagemapEntry(False, True, 0, 4, False, False, PM_GUARD_VALUE, guard=True)
    if is_swap_pte(pte):
        offset = swp_slot(pte)
        return PagemapEntry(False, True, 0, offset, False, False, PM_SWAP | (offset << 5))
    return PagemapEntry(False, False, 0, 0, False, False, 0)
