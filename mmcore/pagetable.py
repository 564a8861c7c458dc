"""The MMU's page tables: x86-style PTEs and a per-mm 4-level table.

A PTE is an ``int``. When ``_PAGE_PRESENT`` is set it holds the pfn and the x86 bits
(arch/x86/include/asm/pgtable_types.h); when it is clear and non-zero it is a swap entry
(the swap slot and the "exclusive" bit that pte_swp_exclusive() reports). Zero is pte_none.
A PMD mapping of a 2 MiB THP is kept in the same flat table as its 512 ptes, each
carrying ``_PAGE_PSE`` (:func:`pte_huge`), plus the PMD's index in
:attr:`PageTable.huge_pmds`; the MMU fast path reads them like any pte.
Two more non-present kinds exist, as on x86: a PROT_NONE pte (``_PAGE_PROTNONE`` set,
``_PAGE_PRESENT`` clear: the MMU faults, but pte_present() is true and the pfn is kept)
and a guard-region marker (PTE_MARKER_GUARD, a non-present pte that is no swap entry).

The table is stored flat (a dict from virtual page number to PTE), while the page-table
pages a 4-level x86-64 walk would need are counted, so that metadata and walk cost match a
real radix table: every :meth:`PageTable.lookup` is one walk of ``LEVELS`` levels.
"""

from __future__ import annotations

from collections.abc import Iterator

from .constants import PAGE_SHIFT

_PAGE_PRESENT = 1 << 0
_PAGE_RW = 1 << 1
_PAGE_USER = 1 << 2
_PAGE_ACCESSED = 1 << 5
_PAGE_DIRTY = 1 << 6
#: _PAGE_PSE: a huge (PMD) mapping; set on each of the 512 ptes that stand for one PMD.
_PAGE_PSE = 1 << 7
#: _PAGE_PROTNONE is _PAGE_GLOBAL reused (arch/x86/include/asm/pgtable_types.h).
_PAGE_PROTNONE = 1 << 8
PFN_SHIFT = 12
_FLAGS_MASK = (1 << PFN_SHIFT) - 1

# Swap PTE layout (non-present): bit 1 = exclusive, slot in the pfn field.
_SWP_EXCLUSIVE = 1 << 1
_SWP_MARK = 1 << 2  # keeps swap slot 0 distinguishable from pte_none
#: make_pte_marker(PTE_MARKER_GUARD): no swap slot, never present.
GUARD_PTE = 1 << 3
#: What pte_modify() keeps (_PAGE_CHG_MASK): the pfn and the accessed and dirty bits;
#: and _PAGE_PSE, as pmd_modify()'s _HPAGE_CHG_MASK does for a huge PMD (a 4 KiB pte
#: never has it, so for those this is _PAGE_CHG_MASK exactly).
_PAGE_CHG_MASK = ~_FLAGS_MASK | _PAGE_ACCESSED | _PAGE_DIRTY | _PAGE_PSE

LEVELS = 4
#: Entries per page-table page on x86-64 (PTRS_PER_PTE and friends).
PTRS_PER_TABLE = 512
#: PMD_SHIFT: one PMD entry maps 2 MiB.
PMD_SHIFT = 21


def mk_pte(pfn: int, writable: bool, dirty: bool = False, accessed: bool = True) -> int:
    """mk_pte(): a present user PTE for ``pfn``."""
    pte = (pfn << PFN_SHIFT) | _PAGE_PRESENT | _PAGE_USER
    if writable:
        pte |= _PAGE_RW
    if dirty:
        pte |= _PAGE_DIRTY
    if accessed:
        pte |= _PAGE_ACCESSED
    return pte


def pte_present(pte: int) -> bool:
    """pte_present(): mapped, including a PROT_NONE pte (x86 tests both bits)."""
    return bool(pte & (_PAGE_PRESENT | _PAGE_PROTNONE))


def pte_huge(pte: int) -> bool:
    """pmd_trans_huge() for the pte standing for one page of a PMD mapping."""
    return bool(pte & _PAGE_PSE)


def pte_mkhuge(pte: int) -> int:
    """pmd_mkhuge(): mark a pte as part of a PMD mapping."""
    return pte | _PAGE_PSE


def pte_protnone(pte: int) -> bool:
    """pte_protnone(): mapped but inaccessible (mprotect PROT_NONE)."""
    return bool(pte & _PAGE_PROTNONE)


def is_guard_pte(pte: int) -> bool:
    """is_guard_pte_marker(): a MADV_GUARD_INSTALL marker."""
    return pte == GUARD_PTE


def pte_modify(pte: int, accessible: bool, writable: bool) -> int:
    """pte_modify(): keep the pfn, accessed and dirty bits and take the new protection
    (PAGE_NONE: _PAGE_PROTNONE and no present, user or write bit)."""
    pte &= _PAGE_CHG_MASK
    if not accessible:
        return pte | _PAGE_PROTNONE
    return pte | _PAGE_PRESENT | _PAGE_USER | (_PAGE_RW if writable else 0)


def pte_pfn(pte: int) -> int:
    """pte_pfn(): the frame a present PTE maps."""
    return pte >> PFN_SHIFT


def pte_write(pte: int) -> bool:
    """pte_write()."""
    return bool(pte & _PAGE_RW)


def pte_dirty(pte: int) -> bool:
    """pte_dirty()."""
    return bool(pte & _PAGE_DIRTY)


def pte_young(pte: int) -> bool:
    """pte_young(): the accessed bit."""
    return bool(pte & _PAGE_ACCESSED)


def pte_wrprotect(pte: int) -> int:
    """pte_wrprotect()."""
    return pte & ~_PAGE_RW


def pte_mkwrite(pte: int) -> int:
    """pte_mkwrite() + pte_mkdirty(): used when a write fault makes the PTE writable."""
    return pte | _PAGE_RW | _PAGE_DIRTY | _PAGE_ACCESSED


def pte_mkold(pte: int) -> int:
    """pte_mkold(): clear the accessed bit."""
    return pte & ~_PAGE_ACCESSED


def pte_mkyoung(pte: int, dirty: bool) -> int:
    """Set the accessed bit (and the dirty bit on a write), as the hardware does."""
    return pte | _PAGE_ACCESSED | (_PAGE_DIRTY if dirty else 0)


def swp_entry_to_pte(slot: int, exclusive: bool) -> int:
    """swp_entry_to_pte(): a non-present PTE naming swap ``slot``."""
    return (slot << PFN_SHIFT) | _SWP_MARK | (_SWP_EXCLUSIVE if exclusive else 0)


def is_swap_pte(pte: int) -> bool:
    """is_swap_pte() for a swap entry proper: not pte_none, not present (nor PROT_NONE)
    and not a guard marker (mmcore keeps markers apart from swap entries)."""
    return pte != 0 and not pte & (_PAGE_PRESENT | _PAGE_PROTNONE) and pte != GUARD_PTE


def swp_slot(pte: int) -> int:
    """swp_offset(): the swap slot of a swap PTE."""
    return pte >> PFN_SHIFT


def pte_swp_exclusive(pte: int) -> bool:
    """pte_swp_exclusive(): the page was exclusive to this mapping when swapped out."""
    return bool(pte & _SWP_EXCLUSIVE)


def pte_swp_clear_exclusive(pte: int) -> int:
    """pte_swp_clear_exclusive()."""
    return pte & ~_SWP_EXCLUSIVE


class PageTable:
    """One mm's page table (pgd). ``walks`` counts lookups; table pages are accounted.

    ``huge_pmds`` holds ``addr >> PMD_SHIFT`` of every PMD that maps a THP
    (pmd_trans_huge()); its 512 ptes carry ``_PAGE_PSE`` (:meth:`set_huge_pmd`).
    """

    __slots__ = ("_pte_pages", "huge_pmds", "ptes", "walks")

    def __init__(self) -> None:
        self.ptes: dict[int, int] = {}
        self.walks = 0
        self.huge_pmds: set[int] = set()
        # Populated entries per PTE page (512 pages each); upper levels are derived.
        self._pte_pages: dict[int, int] = {}

    def lookup(self, addr: int) -> int:
        """Walk the table for ``addr``: the PTE, or 0 (pte_none). Counts one walk."""
        self.walks += 1
        return self.ptes.get(addr >> PAGE_SHIFT, 0)

    def set(self, addr: int, pte: int) -> None:
        """set_pte_at(): install ``pte`` (non-zero) for ``addr``, allocating tables."""
        vpn = addr >> PAGE_SHIFT
        ptes = self.ptes
        if vpn not in ptes:
            pages = self._pte_pages
            key = vpn >> 9
            pages[key] = pages.get(key, 0) + 1
        ptes[vpn] = pte

    def clear(self, addr: int) -> int:
        """ptep_get_and_clear(): remove and return the PTE for ``addr`` (0 if none)."""
        vpn = addr >> PAGE_SHIFT
        pte = self.ptes.pop(vpn, 0)
        if pte:
            pages = self._pte_pages
            key = vpn >> 9
            count = pages[key] - 1
            if count:
                pages[key] = count
            else:
                del pages[key]  # free_pte_range(): an empty PTE page is freed
        return pte

    def set_run(self, addr: int, ptes: list[int]) -> None:
        """set_ptes(): install consecutive ptes from ``addr``, all inside one PTE page
        (a folio run never crosses one: folio_pte_batch() stops at the page table)."""
        vpn = addr >> PAGE_SHIFT
        table = self.ptes
        new = 0
        for i, pte in enumerate(ptes):
            if vpn + i not in table:
                new += 1
            table[vpn + i] = pte
        if new:
            pages = self._pte_pages
            key = vpn >> 9
            pages[key] = pages.get(key, 0) + new

    def clear_run(self, addr: int, nr: int) -> None:
        """get_and_clear_full_ptes(): remove ``nr`` consecutive populated ptes from
        ``addr``, all inside one PTE page."""
        vpn = addr >> PAGE_SHIFT
        pop = self.ptes.pop
        for v in range(vpn, vpn + nr):
            pop(v)
        pages = self._pte_pages
        key = vpn >> 9
        count = pages[key] - nr
        if count:
            pages[key] = count
        else:
            del pages[key]  # free_pte_range(): an empty PTE page is freed

    def set_huge_pmd(self, haddr: int, ptes: list[int]) -> None:
        """set_pmd_at() of a huge PMD at the 2 MiB-aligned ``haddr``: the 512 ``ptes``
        (each gets ``_PAGE_PSE``) stand for it. The page-table page counted for them is
        the one the kernel deposits with every anonymous huge PMD
        (pgtable_trans_huge_deposit(): VmPTE grows by 4 kB per THP, probed)."""
        for i, pte in enumerate(ptes):
            self.set(haddr + (i << PAGE_SHIFT), pte | _PAGE_PSE)
        self.huge_pmds.add(haddr >> PMD_SHIFT)

    def clear_huge_pmd(self, haddr: int) -> list[int]:
        """pmdp_huge_get_and_clear(): remove the huge PMD at ``haddr``; return its 512
        ptes (with ``_PAGE_PSE``)."""
        self.huge_pmds.discard(haddr >> PMD_SHIFT)
        return [self.clear(haddr + (i << PAGE_SHIFT)) for i in range(PTRS_PER_TABLE)]

    def pmd_none(self, addr: int) -> bool:
        """pmd_none(): no pte of the 2 MiB around ``addr`` is populated (no PTE page,
        no huge PMD)."""
        return (addr >> PMD_SHIFT) not in self._pte_pages

    def huge_pmds_in(self, start: int, end: int) -> list[int]:
        """The addresses of the huge PMDs that intersect [start, end), in order."""
        if not self.huge_pmds:
            return []
        first, last = start >> PMD_SHIFT, (end - 1) >> PMD_SHIFT
        return [k << PMD_SHIFT for k in sorted(self.huge_pmds) if first <= k <= last]

    def range(self, start: int, end: int) -> Iterator[tuple[int, int]]:
        """Yield ``(addr, pte)`` for every non-none PTE in [start, end), in address order.

        Sparse ranges are scanned through the populated entries, dense ones directly, so the
        cost follows what a walk over populated page tables would touch.
        """
        first, last = start >> PAGE_SHIFT, end >> PAGE_SHIFT
        if last - first <= len(self.ptes):
            get = self.ptes.get
            for vpn in range(first, last):
                pte = get(vpn)
                if pte:
                    yield vpn << PAGE_SHIFT, pte
        else:
            for vpn in sorted(v for v in self.ptes if first <= v < last):
                pte = self.ptes.get(vpn, 0)
                if pte:
                    yield vpn << PAGE_SHIFT, pte

    @property
    def nr_table_pages(self) -> int:
        """Page-table pages in use: the pgd plus every populated PUD, PMD and PTE page."""
        pte_pages = self._pte_pages.keys()
        pmd_pages = {k >> 9 for k in pte_pages}
        pud_pages = {k >> 9 for k in pmd_pages}
        return 1 + len(pud_pages) + len(pmd_pages) + len(pte_pages)

    def __len__(self) -> int:
        return len(self.ptes)
