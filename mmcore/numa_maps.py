"""/proc/PID/numa_maps (fs/proc/task_mmu.c show_numa_map(), gather_pte_stats(),
gather_stats()).

One line per vma: its start, its memory policy, what it maps, then counters of the
present normal pages (the zero page and the huge zero folio are not "normal":
can_gather_numa_stats() skips them). mapmax is the largest page mapcount met, and is
where the mapcount designs differ: 6.18 with CONFIG_PAGE_MAPCOUNT reads
folio_precise_page_mapcount() of the page a pte maps, or of the head page for a whole PMD
mapping (gather_stats() is called once with pmd_page()), and without per-page mapcounts
folio_average_page_mapcount(): the count kpagecount shows, so it is asked of the
machine's design through :meth:`Machine.kpagecount`. Probed in docs/kernel-facts.md,
"/proc/PID/numa_maps" (tools/kernel_probe/numa_maps.c).

mmcore has one NUMA node, no mempolicy (every vma reads ``default``), no hugetlb, no
stack vma and no writeback in flight, so ``huge``, ``stack``, ``writeback=`` and nodes
other than N0 never appear.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from dataclasses_json import DataClassJsonMixin

from .constants import PAGE_SHIFT, PAGE_SIZE
from .meminfo import mlocked_pfns
from .page import PG_ACTIVE, PG_DIRTY, PG_SWAPCACHE, PG_ZERO
from .pagetable import pte_dirty, pte_huge, pte_pfn, pte_present
from .proc import vma_is_initial_heap

if TYPE_CHECKING:
    from .mm import Mm
    from .vma import Vma

__all__ = ["NumaMapsEntry", "numa_maps"]


@dataclass(frozen=True)
class NumaMapsEntry(DataClassJsonMixin):
    """One line of /proc/PID/numa_maps: struct numa_maps of one vma, in pages."""

    start: int
    #: `` file=PATH``, `` heap`` or empty: what show_numa_map() prints after the policy.
    name: str
    pages: int = 0
    anon: int = 0
    dirty: int = 0
    mapmax: int = 0
    swapcache: int = 0
    active: int = 0

    def text(self) -> str:
        """The line as show_numa_map() prints it: a counter only when it says something
        (``mapped=`` when it differs from both anon and dirty, ``mapmax=`` above 1,
        ``active=`` below the pages), nothing after the name for a vma with no page."""
        out = f"{self.start:08x} default{self.name}"
        if not self.pages:
            return out + "\n"
        if self.anon:
            out += f" anon={self.anon}"
        if self.dirty:
            out += f" dirty={self.dirty}"
        if self.pages not in (self.anon, self.dirty):
            out += f" mapped={self.pages}"
        if self.mapmax > 1:
            out += f" mapmax={self.mapmax}"
        if self.swapcache:
            out += f" swapcache={self.swapcache}"
        if self.active < self.pages:
            out += f" active={self.active}"
        return out + f" N0={self.pages} kernelpagesize_kB={PAGE_SIZE >> 10}\n"


def _gather(mm: Mm, vma: Vma, locked: set[int]) -> NumaMapsEntry:
    """walk_page_vma() with gather_pte_stats(): gather_stats() once per pte, once per PMD
    mapping with its 512 pages and its head page's count."""
    m = mm.machine
    pages = m.physmem.pages
    entry = mm.pgtable.entry
    st = {"pages": 0, "anon": 0, "dirty": 0, "mapmax": 0, "swapcache": 0, "active": 0}
    pmd_end = 0
    for addr, pte in mm.pgtable.range(vma.start, vma.end):
        if addr < pmd_end or not pte_present(pte):
            continue
        page = pages[pte_pfn(pte)]
        if page is None or page.flags & PG_ZERO:
            continue  # can_gather_numa_stats(): not a normal page
        folio = page.folio
        nr, dirty = 1, pte_dirty(pte)
        if folio is not None and pte_huge(pte):
            page, nr = folio.head, folio.nr_pages
            vpn = addr >> PAGE_SHIFT
            dirty = any(pte_dirty(entry(vpn + i)) for i in range(nr))  # pmd_dirty()
            pmd_end = addr + nr * PAGE_SIZE
        # The folio's flags are its head's.
        flags = page.flags if folio is None else folio.head.flags
        st["pages"] += nr
        st["dirty"] += nr if dirty or flags & PG_DIRTY else 0
        st["swapcache"] += nr if flags & PG_SWAPCACHE else 0
        # folio_test_active() || folio_test_unevictable(): mlocked as meminfo counts it.
        st["active"] += nr if flags & PG_ACTIVE or page.pfn in locked else 0
        st["anon"] += nr if page.is_anon else 0
        st["mapmax"] = max(st["mapmax"], m.kpagecount(page.pfn))
    if vma.file is not None:
        name = f" file={vma.file.path}"
    else:
        name = " heap" if vma_is_initial_heap(mm, vma) else ""
    return NumaMapsEntry(vma.start, name, **st)


def numa_maps(mm: Mm) -> list[NumaMapsEntry]:
    """show_numa_map() for every vma of ``mm``."""
    locked = mlocked_pfns(mm.machine)
    return [_gather(mm, vma, locked) for vma in mm.vmas]
