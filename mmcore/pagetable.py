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

The PTE level is stored as the kernel stores it: one 512-entry table per PTE page
(an ``array('Q')``, 8 bytes a pte), kept in a dict from ``vpn >> 9`` to the table, with
the populated count of each; the upper levels are only counted, so that metadata and walk
cost match a real radix table: every :meth:`PageTable.lookup` is one walk of ``LEVELS``
levels. Code that reads ptes without walking (the MMU fast path, the rmap walks, the
checkers) uses :meth:`PageTable.entry` and :meth:`PageTable.items`.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator
from itertools import compress

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
#: What pte_present() tests: x86 takes a PROT_NONE pte (which keeps its page) as present.
#: Loops over every pte of a PTE page test it inline, without a call per pte.
PTE_PRESENT_BITS = _PAGE_PRESENT | _PAGE_PROTNONE
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
    return bool(pte & PTE_PRESENT_BITS)


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
    return pte != 0 and not pte & PTE_PRESENT_BITS and pte != GUARD_PTE


def swp_slot(pte: int) -> int:
    """swp_offset(): the swap slot of a swap PTE."""
    return pte >> PFN_SHIFT


def pte_swp_exclusive(pte: int) -> bool:
    """pte_swp_exclusive(): the page was exclusive to this mapping when swapped out."""
    return bool(pte & _SWP_EXCLUSIVE)


def pte_swp_clear_exclusive(pte: int) -> int:
    """pte_swp_clear_exclusive()."""
    return pte & ~_SWP_EXCLUSIVE


#: An empty PTE page: what a new table is copied from (pte_alloc() zeroes the page).
_EMPTY_TABLE = array("Q", bytes(8 * PTRS_PER_TABLE))
_INDEX_MASK = PTRS_PER_TABLE - 1
#: Bytes of one PTE in a PTE page's array.
_PTE_BYTES = _EMPTY_TABLE.itemsize
#: bytes.translate() table: 0 stays 0, every other byte becomes 1.
_NONZERO_BYTES = bytes([0] + [1] * 255)


class PageTable:
    """One mm's page table (pgd). ``walks`` counts lookups; table pages are accounted.

    ``tables`` maps ``vpn >> 9`` to the PTE page (512 ptes, index ``vpn & 511``) that
    holds the pte of virtual page ``vpn``; a PTE page exists while one of its ptes is
    populated (free_pte_range()). ``huge_pmds`` holds ``addr >> PMD_SHIFT`` of every PMD
    that maps a THP (pmd_trans_huge()); its 512 ptes carry ``_PAGE_PSE``
    (:meth:`set_huge_pmd`).
    """

    __slots__ = ("_populated", "huge_pmds", "tables", "walks")

    def __init__(self) -> None:
        self.tables: dict[int, array[int]] = {}
        self.walks = 0
        self.huge_pmds: set[int] = set()
        # Populated entries per PTE page; upper levels are derived from the keys.
        self._populated: dict[int, int] = {}

    def lookup(self, addr: int) -> int:
        """Walk the table for ``addr``: the PTE, or 0 (pte_none). Counts one walk."""
        self.walks += 1
        vpn = addr >> PAGE_SHIFT
        try:  # a subscript is cheaper than get() plus a None test; a miss is rare
            return self.tables[vpn >> 9][vpn & _INDEX_MASK]
        except KeyError:
            return 0

    def entry(self, vpn: int) -> int:
        """The PTE of virtual page ``vpn`` (0 if none), read as the MMU reads it: no
        walk is counted."""
        try:
            return self.tables[vpn >> 9][vpn & _INDEX_MASK]
        except KeyError:
            return 0

    def update(self, vpn: int, pte: int) -> None:
        """Rewrite the populated PTE of virtual page ``vpn`` with the non-zero ``pte``
        (the accessed, dirty and write bits change in place: no table is allocated)."""
        self.tables[vpn >> 9][vpn & _INDEX_MASK] = pte

    def _table(self, key: int) -> array[int]:
        """__pte_alloc(): the PTE page ``key``, allocated (zeroed) if missing."""
        table = self.tables.get(key)
        if table is None:
            table = self.tables[key] = array("Q", _EMPTY_TABLE)
            self._populated[key] = 0
        return table

    def release(self, key: int, nr: int) -> None:
        """Account ``nr`` ptes of PTE page ``key`` cleared; free the page once empty.
        The batched zap clears a PTE page's entries in place and accounts them here once
        per page, as zap_pte_range() drops the PTE lock once per page."""
        count = self._populated[key] - nr
        if count:
            self._populated[key] = count
        else:  # free_pte_range(): an empty PTE page is freed
            del self._populated[key]
            del self.tables[key]

    def set(self, addr: int, pte: int) -> None:
        """set_pte_at(): install ``pte`` (non-zero) for ``addr``, allocating tables."""
        vpn = addr >> PAGE_SHIFT
        key = vpn >> 9
        try:
            table = self.tables[key]
        except KeyError:
            table = self._table(key)
        i = vpn & _INDEX_MASK
        if not table[i]:
            self._populated[key] += 1
        table[i] = pte

    def clear(self, addr: int) -> int:
        """ptep_get_and_clear(): remove and return the PTE for ``addr`` (0 if none)."""
        vpn = addr >> PAGE_SHIFT
        key = vpn >> 9
        table = self.tables.get(key)
        if table is None:
            return 0
        i = vpn & _INDEX_MASK
        pte = table[i]
        if pte:
            table[i] = 0
            self.release(key, 1)
        return pte

    def set_run(self, addr: int, ptes: list[int]) -> None:
        """set_ptes(): install consecutive ptes from ``addr``, all inside one PTE page
        (a folio run never crosses one: folio_pte_batch() stops at the page table)."""
        vpn = addr >> PAGE_SHIFT
        key = vpn >> 9
        table = self._table(key)
        lo = vpn & _INDEX_MASK
        hi = lo + len(ptes)
        assert hi <= PTRS_PER_TABLE, "a pte run crosses its page table"
        new = len(ptes) - sum(1 for pte in table[lo:hi] if pte)
        table[lo:hi] = array("Q", ptes)
        self._populated[key] += new

    def clear_run(self, addr: int, nr: int) -> None:
        """get_and_clear_full_ptes(): remove ``nr`` consecutive populated ptes from
        ``addr``, all inside one PTE page."""
        vpn = addr >> PAGE_SHIFT
        key = vpn >> 9
        lo = vpn & _INDEX_MASK
        self.tables[key][lo:lo + nr] = _EMPTY_TABLE[:nr]
        self.release(key, nr)

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
        return (addr >> PMD_SHIFT) not in self.tables

    def huge_pmds_in(self, start: int, end: int) -> list[int]:
        """The addresses of the huge PMDs that intersect [start, end), in order."""
        if not self.huge_pmds:
            return []
        first, last = start >> PMD_SHIFT, (end - 1) >> PMD_SHIFT
        return [k << PMD_SHIFT for k in sorted(self.huge_pmds) if first <= k <= last]

    def any_populated(self, vpn: int, nr: int) -> bool:
        """Whether a pte of the ``nr`` virtual pages from ``vpn`` is populated."""
        entry = self.entry
        return any(entry(v) for v in range(vpn, vpn + nr))

    def _keys(self, first: int, last: int) -> Iterable[int]:
        """The keys of the PTE pages that may hold ptes of virtual pages first..last - 1,
        in order: every key in the span when that is shorter than the table dict (the
        caller skips the missing ones), else the dict's keys in the span, sorted."""
        tables = self.tables
        lo_key, hi_key = first >> 9, (last - 1) >> 9
        if hi_key - lo_key < len(tables):
            return range(lo_key, hi_key + 1)
        return sorted(k for k in tables if lo_key <= k <= hi_key)

    def spans(self, start: int, end: int) -> list[tuple[int, int, int]]:
        """``(key, lo, hi)`` for every populated PTE page that intersects [start, end),
        in address order: its entries ``lo..hi - 1`` lie in the range. The batched walks
        (copy_pte_range(), zap_pte_range()) work on one PTE page at a time, as the kernel
        maps one PTE page and loops over its entries under one lock."""
        first, last = start >> PAGE_SHIFT, end >> PAGE_SHIFT
        if last <= first:
            return []
        tables = self.tables
        return [(key, max(first - (key << 9), 0), min(last - (key << 9), PTRS_PER_TABLE))
                for key in self._keys(first, last) if key in tables]

    def write_span(self, key: int, lo: int, ptes: array[int]) -> None:
        """set_ptes() over a span that was empty: install ``ptes`` (zeros included, which
        stay none) in PTE page ``key`` from index ``lo``, allocating the page; fork's
        copy_pte_range() fills the child's PTE page this way. At least one entry of
        ``ptes`` is non-zero."""
        table = self._table(key)
        hi = lo + len(ptes)
        assert not any(table[lo:hi]), "write_span over populated ptes"
        table[lo:hi] = ptes
        self._populated[key] += len(ptes) - ptes.count(0)

    def _vpn_range(self, first: int, last: int) -> Iterator[tuple[int, int]]:
        """``(vpn, pte)`` for every non-none PTE with first <= vpn < last, in address
        order: the populated PTE pages that intersect it, each read as it is reached."""
        tables = self.tables
        for key in self._keys(first, last):
            table = tables.get(key)
            if table is None:
                continue
            base = key << 9
            lo = max(first - base, 0)
            hi = min(last - base, PTRS_PER_TABLE)
            part = table[lo:hi]
            # compress and filter skip the none PTEs in C: most of a table is none
            yield from zip(compress(range(base + lo, base + hi), part), filter(None, part),
                           strict=True)

    def range(self, start: int, end: int) -> Iterator[tuple[int, int]]:
        """Yield ``(addr, pte)`` for every non-none PTE in [start, end), in address order.

        Only the populated PTE pages that intersect the range are scanned, so the cost
        follows what a walk over populated page tables would touch.
        """
        first, last = start >> PAGE_SHIFT, end >> PAGE_SHIFT
        if last <= first:
            return
        for vpn, pte in self._vpn_range(first, last):
            yield vpn << PAGE_SHIFT, pte

    def items(self) -> Iterator[tuple[int, int]]:
        """``(vpn, pte)`` for every populated PTE, in address order, each PTE page read
        as it is reached (as :meth:`range` reads them)."""
        for key in sorted(self.tables):
            table, base = self.tables[key], key << 9
            # Only the entries from the first populated one to the last: compress and
            # filter make an int of every entry they pass (most of a PTE page is none),
            # while marking the page's non-zero bytes and finding the first and last
            # mark run in C (memchr).
            marks = table.tobytes().translate(_NONZERO_BYTES)
            first = marks.find(1)
            if first < 0:
                continue
            lo, hi = first // _PTE_BYTES, marks.rfind(1) // _PTE_BYTES + 1
            part = table[lo:hi]
            yield from zip(compress(range(base + lo, base + hi), part), filter(None, part),
                           strict=True)

    def values(self) -> Iterator[int]:
        """Every populated PTE, in address order."""
        for _vpn, pte in self.items():
            yield pte

    @property
    def nr_table_pages(self) -> int:
        """Page-table pages in use: the pgd plus every populated PUD, PMD and PTE page."""
        pte_pages = self.tables.keys()
        pmd_pages = {k >> 9 for k in pte_pages}
        pud_pages = {k >> 9 for k in pmd_pages}
        return 1 + len(pud_pages) + len(pmd_pages) + len(pte_pages)

    def __len__(self) -> int:
        return sum(self._populated.values())
