"""/proc/PID/smaps and /proc/PID/smaps_rollup (fs/proc/task_mmu.c).

The counters are gathered the way show_smap() gathers them: a walk of the vma's page
table (smaps_pte_entry), each present pte accounted through smaps_account() and
smaps_page_accumulate(), with proportional sizes kept in bytes << PSS_SHIFT so that the
rollup rounds only once. The zero page is not a "normal" page (vm_normal_page() returns
NULL), so it is not counted at all. A page of a large folio is accounted as the machine's
mapcount design would have 6.18 account it (:func:`smaps_account_folio`); THPeligible is
thp_vma_allowable_orders() for smaps (:func:`thp_eligible`). KSM, shmem/file THP and
hugetlb are not modelled: those lines are always 0.

:func:`parse_smaps` and :func:`parse_smaps_rollup` read the real files' text back into
the same objects, so that ``parse_smaps(open("/proc/self/smaps").read())`` renders back
to the very same text.
"""

from __future__ import annotations

import dataclasses
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dataclasses_json import DataClassJsonMixin

from .constants import (
    PAGE_SHIFT,
    PAGE_SIZE,
    VM_HUGEPAGE,
    VM_LOCKED,
    VM_NOHUGEPAGE,
    VM_SPECIAL,
)
from .page import PG_ANON, PG_CACHE, PG_DIRTY, PG_LAZYFREE, PG_REFERENCED, PG_ZERO, Page
from .pagetable import (
    is_swap_pte,
    pte_dirty,
    pte_huge,
    pte_pfn,
    pte_present,
    pte_young,
    swp_slot,
)
from .proc import MapsEntry, maps_entry
from .proctext import Field, check_labels, fields, numbered, parse_lines, render

if TYPE_CHECKING:
    from .folio import Folio
    from .machine import Machine
    from .mm import Mm
    from .vma import Vma

__all__ = [
    "PSS_SHIFT",
    "MemSizeStats",
    "SmapsEntry",
    "SmapsRollup",
    "parse_smaps",
    "parse_smaps_rollup",
    "smaps",
    "smaps_account_folio",
    "smaps_rollup",
    "thp_eligible",
    "thp_vma_suitable_order",
]

#: PSS_SHIFT: proportional sizes are summed in bytes << 12 before being shown in kB.
PSS_SHIFT = 12

#: The counters of __show_smap() that every vma and the rollup show, in order.
_MIDDLE = ("Shared_Clean", "Shared_Dirty", "Private_Clean", "Private_Dirty", "Referenced",
           "Anonymous", "KSM", "LazyFree", "AnonHugePages", "ShmemPmdMapped",
           "FilePmdMapped", "Shared_Hugetlb")
_TAIL = (Field("Private_Hugetlb", pad=17, width=7), *fields(("Swap", "SwapPss", "Locked")))
#: One vma of /proc/PID/smaps (show_smap()), between the maps line and VmFlags.
SMAPS_FIELDS = (fields(("Size", "KernelPageSize", "MMUPageSize", "Rss", "Pss", "Pss_Dirty"))
                + fields(_MIDDLE) + _TAIL + (Field("THPeligible", unit=""),))
#: The same on a machine where ``arch_pkeys_enabled()`` (x86 with PKU): __show_smap()
#: prints "ProtectionKey:" after THPeligible. The simulated machine models no protection
#: keys, so its own smaps never shows the line; a real file may.
SMAPS_PKEY_FIELDS = (*SMAPS_FIELDS, Field("ProtectionKey", unit=""))
#: /proc/PID/smaps_rollup after its header line (__show_smap(m, mss, true)).
ROLLUP_FIELDS = (fields(("Rss", "Pss", "Pss_Dirty", "Pss_Anon", "Pss_File", "Pss_Shmem"))
                 + fields(_MIDDLE) + _TAIL)


@dataclass
class MemSizeStats:
    """struct mem_size_stats: bytes, with the pss_* members in bytes << PSS_SHIFT."""

    resident: int = 0
    shared_clean: int = 0
    shared_dirty: int = 0
    private_clean: int = 0
    private_dirty: int = 0
    referenced: int = 0
    anonymous: int = 0
    anonymous_thp: int = 0
    lazyfree: int = 0
    swap: int = 0
    swap_pss: int = 0
    pss: int = 0
    pss_dirty: int = 0
    pss_anon: int = 0
    pss_file: int = 0
    pss_shmem: int = 0
    pss_locked: int = 0

    def kb(self, rollup: bool) -> dict[str, int]:
        """The values __show_smap() prints, in kB, by label."""
        shift = PSS_SHIFT + 10
        out = {"Rss": self.resident >> 10, "Pss": self.pss >> shift,
               "Pss_Dirty": self.pss_dirty >> shift}
        if rollup:
            out |= {"Pss_Anon": self.pss_anon >> shift, "Pss_File": self.pss_file >> shift,
                    "Pss_Shmem": self.pss_shmem >> shift}
        out |= {label: 0 for label in _MIDDLE}
        out |= {"Shared_Clean": self.shared_clean >> 10, "Shared_Dirty": self.shared_dirty >> 10,
                "Private_Clean": self.private_clean >> 10,
                "Private_Dirty": self.private_dirty >> 10, "Referenced": self.referenced >> 10,
                "Anonymous": self.anonymous >> 10, "LazyFree": self.lazyfree >> 10,
                "AnonHugePages": self.anonymous_thp >> 10,
                "Private_Hugetlb": 0, "Swap": self.swap >> 10,
                "SwapPss": self.swap_pss >> shift, "Locked": self.pss_locked >> shift}
        return out


@dataclass(frozen=True)
class SmapsEntry(DataClassJsonMixin):
    """One vma of /proc/PID/smaps: its maps line (with VmFlags) and its counters in kB,
    by the kernel's labels (``entry["Rss"]``)."""

    maps: MapsEntry
    values: dict[str, int] = field(default_factory=dict)

    def __getitem__(self, label: str) -> int:
        return self.values[label]

    def text(self) -> str:
        """The vma's block exactly as Linux prints it."""
        flags = "".join(f"{name} " for name in self.maps.vm_flags.split())
        counters = render(_smaps_table(self.values), self.values)
        return f"{self.maps}\n{counters}VmFlags: {flags}\n"


def _smaps_table(values: dict[str, int]) -> tuple[Field, ...]:
    """The lines of one smaps block: with ProtectionKey when the values have it."""
    return SMAPS_PKEY_FIELDS if "ProtectionKey" in values else SMAPS_FIELDS


@dataclass(frozen=True)
class SmapsRollup(DataClassJsonMixin):
    """/proc/PID/smaps_rollup: the span of the address space and the summed counters."""

    start: int
    end: int
    values: dict[str, int] = field(default_factory=dict)

    def __getitem__(self, label: str) -> int:
        return self.values[label]

    def text(self) -> str:
        """The file exactly as show_smaps_rollup() prints it."""
        head = MapsEntry(self.start, self.end, "---p", 0, "00:00", 0, "[rollup]", "")
        return f"{head}\n{render(ROLLUP_FIELDS, self.values)}"


def is_swapbacked(page: Page) -> bool:
    """folio_test_swapbacked(): anonymous pages, except those MADV_FREE marked lazily
    freed (folio_clear_swapbacked()), and shmem page-cache pages."""
    if page.flags & PG_ANON:
        return not page.flags & PG_LAZYFREE
    return bool(page.flags & PG_CACHE and getattr(page.mapping, "shmem", False))


def _accumulate(mss: MemSizeStats, page: Page, pss: int, dirty: bool, locked: bool,
                private: bool, size: int = PAGE_SIZE) -> None:
    """smaps_page_accumulate(): ``size`` bytes of the folio ``page`` stands for (its flags
    are the folio's), of which ``pss`` (<< PSS_SHIFT) are this mapping's share."""
    mss.pss += pss
    if page.flags & PG_ANON:
        mss.pss_anon += pss
    elif is_swapbacked(page):
        mss.pss_shmem += pss
    else:
        mss.pss_file += pss
    if locked:
        mss.pss_locked += pss
    if dirty or page.flags & PG_DIRTY:
        mss.pss_dirty += pss
        if private:
            mss.private_dirty += size
        else:
            mss.shared_dirty += size
    elif private:
        mss.private_clean += size
    else:
        mss.shared_clean += size


def smaps_account(mss: MemSizeStats, page: Page, young: bool, dirty: bool,
                  locked: bool) -> None:
    """smaps_account() for one pte-mapped small page: a page only this pte references
    (refcount 1) is private and wholly this vma's; otherwise the page's mapcount
    decides (2 or more: shared, its size divided among the mappers)."""
    if page.flags & PG_ANON:
        mss.anonymous += PAGE_SIZE
        if not is_swapbacked(page) and not dirty and not page.flags & PG_DIRTY:
            mss.lazyfree += PAGE_SIZE
    mss.resident += PAGE_SIZE
    if young or page.flags & PG_REFERENCED:
        mss.referenced += PAGE_SIZE
    full = PAGE_SIZE << PSS_SHIFT
    if page.refcount == 1 or page.mapcount < 2:
        _accumulate(mss, page, full, dirty, locked, True)
    else:
        _accumulate(mss, page, full // page.mapcount, dirty, locked, False)


def smaps_account_folio(mss: MemSizeStats, m: Machine, folio: Folio, pages: list[Page],
                        refcount: int, young: bool, dirty: bool, locked: bool) -> None:
    """smaps_account() for ``pages`` of a large folio: the one page a pte maps, or all
    pages of a PMD mapping. Rss, Anonymous and Referenced take the whole size, with the
    folio's flags (its head's). ``refcount`` is the folio's: 1 means this is its only
    mapping, wholly private. Otherwise every page is accounted alone, with the mapcount
    and the private/shared decision of the machine's mapcount design: with per-page
    mapcounts (CONFIG_PAGE_MAPCOUNT) folio_precise_page_mapcount() and ``mapcount < 2``,
    without them folio_average_page_mapcount() and ``!folio_maybe_mapped_shared()``
    (a PMD mapping is accounted page by page too: kernel-facts, "What /proc and /sys
    show")."""
    head = folio.head
    size = len(pages) * PAGE_SIZE
    if head.flags & PG_ANON:
        mss.anonymous += size
        if not is_swapbacked(head) and not dirty and not head.flags & PG_DIRTY:
            mss.lazyfree += size
    mss.resident += size
    if young or head.flags & PG_REFERENCED:
        mss.referenced += size
    if refcount == 1:
        _accumulate(mss, head, size << PSS_SHIFT, dirty, locked, True, size)
        return
    full = PAGE_SIZE << PSS_SHIFT
    for page in pages:
        mapcount = m.mapcount_page(folio, page)
        _accumulate(mss, head, full // mapcount if mapcount >= 2 else full, dirty, locked,
                    m.mapcount_page_exclusive(folio, page))


def smap_gather_stats(mm: Mm, vma: Vma, mss: MemSizeStats) -> None:
    """smap_gather_stats(): walk ``vma``'s ptes (smaps_pte_entry) and, for a shmem vma,
    add the pages of its range that shmem has swapped out (shmem_swap_usage())."""
    _gather_ptes(mm, vma, mm.pgtable.range(vma.start, vma.end), mss)


def _gather_ptes(mm: Mm, vma: Vma, ptes: Iterable[tuple[int, int]],
                 mss: MemSizeStats) -> None:
    """:func:`smap_gather_stats` of ``vma`` given its populated ``(addr, pte)`` pairs in
    address order (what ``mm.pgtable.range(vma.start, vma.end)`` yields)."""
    m = mm.machine
    locked = bool(vma.flags & VM_LOCKED)
    pages = m.physmem.pages
    entry = mm.pgtable.entry
    # folio_ref_count() of each large folio met, once per walk: the pages' references,
    # but one per PMD mapping (which holds one on each of its pages in mmcore).
    refcounts: dict[Folio, int] = {}
    pmd_end = 0
    for addr, pte in ptes:
        if addr < pmd_end:
            continue  # the rest of a PMD mapping already accounted
        if pte_present(pte):
            page = pages[pte_pfn(pte)]
            if page is None or page.flags & PG_ZERO:
                continue  # vm_normal_page(): the zero page is not counted
            folio = page.folio
            if folio is None:
                smaps_account(mss, page, pte_young(pte), pte_dirty(pte), locked)
                continue
            refcount = refcounts.get(folio)
            if refcount is None:
                refcount = refcounts[folio] = sum(p.refcount for p in folio.pages) \
                    - folio.entire_mapcount * (folio.nr_pages - 1)
            if not pte_huge(pte):
                smaps_account_folio(mss, m, folio, [page], refcount, pte_young(pte),
                                    pte_dirty(pte), locked)
                continue
            # smaps_pmd_entry(): the PMD's accessed and dirty bits are those of any of
            # the ptes standing for it; the whole folio is accounted at once.
            vpn = addr >> PAGE_SHIFT
            pmd = [entry(vpn + i) for i in range(folio.nr_pages)]
            smaps_account_folio(mss, m, folio, folio.pages, refcount,
                                any(map(pte_young, pmd)), any(map(pte_dirty, pmd)), locked)
            if folio.head.flags & PG_ANON:
                mss.anonymous_thp += folio.nr_pages * PAGE_SIZE
            pmd_end = addr + folio.nr_pages * PAGE_SIZE
        elif is_swap_pte(pte):
            mss.swap += PAGE_SIZE
            mapcount = m.swap.count.get(swp_slot(pte), 1)
            mss.swap_pss += (PAGE_SIZE << PSS_SHIFT) // max(mapcount, 1)
    if vma.file is not None and vma.file.inode.shmem:
        last = vma.pgoff + vma.pages
        mss.swap += PAGE_SIZE * sum(1 for i in vma.file.inode.swapped if vma.pgoff <= i < last)


def thp_vma_suitable_order(vma: Vma, addr: int, order: int) -> bool:
    """thp_vma_suitable_order(): the naturally aligned block of ``order`` around ``addr``
    lies inside ``vma`` (and, for a file vma, the file offset is aligned alike)."""
    nr = 1 << order
    if vma.file is not None and ((vma.start >> PAGE_SHIFT) - vma.pgoff) % nr:
        return False
    haddr = addr & ~((nr << PAGE_SHIFT) - 1)
    return vma.start <= haddr and haddr + (nr << PAGE_SHIFT) <= vma.end


def thp_eligible(m: Machine, vma: Vma) -> bool:
    """THPeligible: thp_vma_allowable_orders(vma, vm_flags, TVA_SMAPS, THP_ORDERS_ALL).

    Never under VM_NOHUGEPAGE or for a special (VM_PFNMAP/VM_IO...) mapping. A file or
    shmem vma never is on the reference machine (no CONFIG_READ_ONLY_THP_FOR_FS, shmem
    THP ``never``). An anonymous vma is if some order enabled for it (``always``, or
    ``madvise`` with VM_HUGEPAGE) fits: the block ending at ``vm_end`` aligned down lies
    inside the vma (probed, kernel-facts "What /proc and /sys show")."""
    if vma.flags & (VM_NOHUGEPAGE | VM_SPECIAL) or vma.file is not None:
        return False
    orders = m.thp.allowed_orders(hugepage=bool(vma.flags & VM_HUGEPAGE))
    return any(thp_vma_suitable_order(vma, vma.end - (PAGE_SIZE << order), order)
               for order in orders)


def smaps(mm: Mm) -> list[SmapsEntry]:
    """show_smap() for every vma of ``mm``."""
    out = []
    for vma in mm.vmas:
        mss = MemSizeStats()
        smap_gather_stats(mm, vma, mss)
        values = {"Size": (vma.end - vma.start) >> 10, "KernelPageSize": PAGE_SIZE >> 10,
                  "MMUPageSize": PAGE_SIZE >> 10} | mss.kb(rollup=False) \
            | {"THPeligible": int(thp_eligible(mm.machine, vma))}
        out.append(SmapsEntry(maps_entry(mm, vma), values))
    return out


def smaps_rollup(mm: Mm) -> SmapsRollup:
    """show_smaps_rollup(): every vma's stats summed before rounding; the header spans
    from the first vma's start to the last one's end (0-0 with no vma)."""
    mss = MemSizeStats()
    vmas = list(mm.vmas)
    # The page table read once and each vma's ptes found by a bisect of it, rather than
    # a walk of every vma's range: most vmas of the small address spaces the conformance
    # kit checks after every op have no pte at all. The walk only reads, so its ptes are
    # those a range() per vma would yield.
    items = list(mm.pgtable.items())
    vpns = [vpn for vpn, _ in items]
    for vma in vmas:
        lo = bisect_left(vpns, vma.start >> PAGE_SHIFT)
        hi = bisect_left(vpns, vma.end >> PAGE_SHIFT, lo)
        _gather_ptes(mm, vma, [(vpn << PAGE_SHIFT, pte) for vpn, pte in items[lo:hi]], mss)
    start, end = (vmas[0].start, vmas[-1].end) if vmas else (0, 0)
    return SmapsRollup(start, end, mss.kb(rollup=True))


# --- parsing the real files ----------------------------------------------------------

def parse_maps_line(line: str, source: str, lineno: int) -> MapsEntry:
    """One /proc/PID/maps line back into a :class:`MapsEntry` (VmFlags empty)."""
    parts = line.split(None, 5)
    try:
        start, end = (int(x, 16) for x in parts[0].split("-"))
        perms, offset, dev, inode = parts[1], int(parts[2], 16), parts[3], int(parts[4])
    except (ValueError, IndexError):
        raise ValueError(f"{source}:{lineno}: not a maps line: {line!r}") from None
    if len(perms) != 4:
        raise ValueError(f"{source}:{lineno}: bad permissions {perms!r}")
    path = parts[5].strip() if len(parts) > 5 else ""
    return MapsEntry(start, end, perms, offset, dev, inode, path, "")


def _is_header(line: str) -> bool:
    head = line.split(" ", 1)[0]
    return "-" in head and ":" not in head


def parse_smaps(text: str, source: str = "smaps") -> list[SmapsEntry]:
    """/proc/PID/smaps text to :class:`SmapsEntry` objects; a malformed file raises
    ValueError naming ``source`` and the line."""
    out: list[SmapsEntry] = []
    block: list[tuple[int, str]] = []
    header: MapsEntry | None = None

    def finish(lineno: int) -> None:
        assert header is not None
        if not block or not block[-1][1].startswith("VmFlags:"):
            raise ValueError(f"{source}:{lineno}: vma block without a VmFlags line")
        flags = block[-1][1][len("VmFlags:"):].split()
        values = parse_lines(block[:-1], source)
        check_labels(values, _smaps_table(values), f"{source}:{lineno}")
        out.append(SmapsEntry(dataclasses.replace(header, vm_flags=" ".join(flags)), values))

    lines = numbered(text)
    for lineno, line in lines:
        if _is_header(line):
            if header is not None:
                finish(lineno)
            header, block = parse_maps_line(line, source, lineno), []
        elif header is None:
            raise ValueError(f"{source}:{lineno}: counter before any maps line: {line!r}")
        else:
            block.append((lineno, line))
    if header is not None:
        finish(lines[-1][0])
    return out


def parse_smaps_rollup(text: str, source: str = "smaps_rollup") -> SmapsRollup:
    """/proc/PID/smaps_rollup text to a :class:`SmapsRollup`."""
    lines = numbered(text)
    if not lines or not _is_header(lines[0][1]):
        raise ValueError(f"{source}:1: expected the [rollup] header line")
    head = parse_maps_line(lines[0][1], source, lines[0][0])
    values = parse_lines(lines[1:], source)
    check_labels(values, ROLLUP_FIELDS, source)
    return SmapsRollup(head.start, head.end, values)
