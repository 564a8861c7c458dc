"""One mapcount per (vma, page table) pair: Matthew Wilcox's proposal on linux-mm (early
2023, the "folio mapcount" threads that preceded the large-mapcount work).

The folio keeps a single ``_mapcount`` counting the page tables that map any of its
pages: a naturally aligned PMD THP has mapcount 1, and splitting its PMD into ptes leaves
it at 1 (still one page table); a folio straddling two page tables, mapped from both
sides, has 2; fork adds one per child. The rmap calls take (folio, first page, n) once per
pair, and only the first mapping of the folio in a page table (and the last one going)
changes the counter. Finding out whether a mapping is the first or last one means looking
at the folio's other ptes in that page table, which the page-table lock held around rmap
makes possible; the cost is reported as ``scanned`` ptes, apart from counter updates.

mmcore keys a pair by (mm's page table, PMD index): two vmas of one mm that share a page
table and both map the folio (only after an mprotect or mremap cut inside it) count once,
where the proposal would count two. mremap's move_ptes() changes no mapcount in the
other designs, but here a pte moved to another page table moves the folio's pair: the
design follows it through ``rmap_page_move`` and counts those updates as "move". A
removal from a pair the design never saw (a core path that changed ptes without telling
it) is counted in ``desyncs`` and ignored.

What it can answer from one counter per folio: "mapped by one page table" (certainly one
mm: COW reuse, PM_MMAP_EXCLUSIVE, Uss), the folio mapcount itself for kpagecount and Pss
(no per-page or per-pte count is left to average), whole-folio AnonPages/Mapped, and a
partial mapping only when the only page table mapping the folio is the one just unmapped
from and it no longer maps all of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from mmcore import PluginInfo, hookimpl
from mmcore.constants import PAGE_SHIFT

if TYPE_CHECKING:
    from mmcore.folio import Folio
    from mmcore.machine import Machine
    from mmcore.mm import Mm
    from mmcore.page import Page
    from mmcore.pagetable import PageTable
    from mmcore.vma import Vma

#: Pages one PTE page maps (PTRS_PER_PTE); a pair is one PTE page or one PMD entry.
_PTRS_PER_PTE = 512
#: The folio's one atomic_t.
_PER_FOLIO_BYTES = 4

Pair = tuple["PageTable", int]


class TupleState:
    """The folio's ``mapcount`` (what the kernel keeps) and, standing for the page-table
    scan that tells first and last mappings apart, the entries each pair has left."""

    __slots__ = ("count", "pairs", "partial")

    def __init__(self) -> None:
        self.count = 0
        #: (page table, PMD index) -> ptes mapping the folio there (a PMD counts 512).
        self.pairs: dict[Pair, int] = {}
        #: The partial-map answer of the last removal.
        self.partial = False


def _state(folio: Folio) -> TupleState:
    mc = folio.mc
    if mc is None:
        mc = folio.mc = TupleState()
    assert isinstance(mc, TupleState)
    return mc


def _runs(first: int, nr: int, address: int, pmd: bool) -> list[tuple[int, int, int]]:
    """The run cut at page-table boundaries: (PMD index, first vpn, pages) per table."""
    vpn = address >> PAGE_SHIFT
    if pmd:
        return [(vpn // _PTRS_PER_PTE, vpn, nr)]
    out = []
    end = vpn + nr
    while vpn < end:
        stop = min(end, (vpn // _PTRS_PER_PTE + 1) * _PTRS_PER_PTE)
        out.append((vpn // _PTRS_PER_PTE, vpn, stop - vpn))
        vpn = stop
    return out


def _folio_span(folio: Folio, first: int, vpn: int, idx: int) -> int:
    """How many of the folio's pages can sit in page table ``idx`` when page ``first``
    is at ``vpn``: the ptes a first/last check has to look at."""
    start = vpn - first
    lo = max(start, idx * _PTRS_PER_PTE)
    hi = min(start + folio.nr_pages, (idx + 1) * _PTRS_PER_PTE)
    return max(hi - lo, 0)


class PerFolioTuple:
    """One mapcount per folio: the (vma, page table) pairs mapping any of its pages."""

    info: ClassVar[PluginInfo] = PluginInfo(
        name="per_folio_tuple", kind="mapcount",
        summary="Wilcox 2023: one mapcount per folio, counting (vma, page table) pairs",
        description="A single counter per folio, raised by the first mapping of the folio "
                    "in a page table and dropped by the last; constant size. Exclusive "
                    "while one page table maps it; kpagecount and Pss see the folio "
                    "mapcount; partial maps seen only within the last mapping page table.")

    def __init__(self, machine: Machine) -> None:
        self.machine = machine
        #: Counter updates by hook ("add", "remove", "split"): one per pair gained or lost.
        self.updates: dict[str, int] = {"add": 0, "remove": 0, "split": 0}
        #: Ptes looked at to tell a page table's first and last mapping of a folio.
        self.scanned = 0
        #: Removals from a pair the design had not seen (must stay 0).
        self.desyncs = 0
        self.updates["move"] = 0

    @hookimpl
    def mapcount_add(self, folio: Folio, first: int, nr: int, vma: Vma, address: int,
                     pmd: bool) -> None:
        """folio_add_*_rmap_ptes()/_pmd() per pair: the counter rises when the page
        table had no other entry mapping the folio."""
        st = _state(folio)
        table = vma.mm.pgtable
        for idx, vpn, n in _runs(first, nr, address, pmd):
            key = (table, idx)
            had = st.pairs.get(key, 0)
            if not pmd:
                self.scanned += _folio_span(folio, first, vpn, idx) - n
            st.pairs[key] = had + n
            if not had:
                st.count += 1
                self.updates["add"] += 1
            first += n

    @hookimpl
    def mapcount_remove(self, folio: Folio, first: int, nr: int, vma: Vma, address: int,
                        pmd: bool) -> None:
        """folio_remove_rmap_*() per pair: the counter drops with the page table's last
        entry mapping the folio; a partial map is seen when that table is the only one
        left and still maps part of the folio."""
        st = _state(folio)
        table = vma.mm.pgtable
        left = 0
        for idx, vpn, n in _runs(first, nr, address, pmd):
            key = (table, idx)
            if not pmd:
                self.scanned += _folio_span(folio, first, vpn, idx) - n
            if key not in st.pairs:
                self.desyncs += 1
                first += n
                continue
            rest = st.pairs[key] - n
            if rest:
                st.pairs[key] = rest
                left = rest
            else:
                del st.pairs[key]
                st.count -= 1
                self.updates["remove"] += 1
            first += n
        st.partial = st.count == 1 and 0 < left < folio.nr_pages

    @hookimpl
    def rmap_page_move(self, page: Page, old_vma: Vma, old_address: int, new_vma: Vma,
                       new_address: int) -> None:
        """move_ptes() of a pte mapping a large folio's page: if it lands in another page
        table, the old pair loses it (and is dropped with its last pte) and the new one
        gains it (counted when new)."""
        folio = page.folio
        if folio is None or folio.mc is None:
            return
        old = (old_vma.mm.pgtable, old_address >> (PAGE_SHIFT + 9))
        new = (new_vma.mm.pgtable, new_address >> (PAGE_SHIFT + 9))
        if old == new:
            return
        st = _state(folio)
        left = st.pairs.get(old, 0) - 1
        if left > 0:
            st.pairs[old] = left
        elif old in st.pairs:
            del st.pairs[old]
            st.count -= 1
            self.updates["move"] += 1
        if new not in st.pairs:
            st.count += 1
            self.updates["move"] += 1
        st.pairs[new] = st.pairs.get(new, 0) + 1

    @hookimpl
    def mapcount_split(self, folio: Folio) -> None:
        """__folio_split() of a mapped folio: one update per pte of the order-0 pages
        mapped back, one per pair unmapped."""
        ptes = sum(p.mapcount for p in folio.pages)
        if ptes or folio.entire_mapcount:
            self.updates["split"] += ptes + _state(folio).count
        folio.mc = None

    @hookimpl
    def mapcount_page(self, folio: Folio, page: Page) -> int:
        """page_mapcount() of any page reads the folio mapcount."""
        return _state(folio).count

    @hookimpl
    def mapcount_folio(self, folio: Folio) -> int:
        """folio_mapcount(): the pairs."""
        return _state(folio).count

    @hookimpl
    def mapcount_maybe_shared(self, folio: Folio) -> bool:
        """More than one page table maps the folio: maybe another mm."""
        return _state(folio).count > 1

    @hookimpl
    def mapcount_page_exclusive(self, folio: Folio, page: Page) -> bool:
        """Folio level: one page table maps the folio."""
        return _state(folio).count <= 1

    @hookimpl
    def mapcount_exclusive_to(self, folio: Folio, mm: Mm) -> bool:
        """One pair maps the folio and it is in ``mm``'s page table."""
        st = _state(folio)
        return st.count == 1 and next(iter(st.pairs))[0] is mm.pgtable

    @hookimpl
    def mapcount_mapped_pages(self, folio: Folio) -> int:
        """The whole folio while any page table maps it."""
        return folio.nr_pages if _state(folio).count else 0

    @hookimpl
    def mapcount_partially_mapped(self, folio: Folio) -> bool:
        """What the last removal saw (see :meth:`mapcount_remove`)."""
        return _state(folio).partial

    @hookimpl
    def mapcount_metadata_bytes(self, folio: Folio) -> int:
        """One atomic_t per folio."""
        return _PER_FOLIO_BYTES
