"""The core side of reverse mapping: driving a scheme's walk, the brute-force truth, and
try_to_unmap (mm/rmap.c rmap_walk, try_to_unmap_one).

The scheme only proposes candidates; the core probes each candidate's page table, counts
hits and wasted probes, and stops as soon as every mapping (``page.mapcount``) was found,
as the kernel's ``done()`` callback does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dataclasses_json import DataClassJsonMixin

from . import _reprs
from .constants import PAGE_SHIFT, VM_LOCKED
from .costs import WalkCost
from .errors import PluginError
from .huge_memory import page_mapcount
from .mm import MM_SWAPENTS
from .page import PG_ANON_EXCLUSIVE, PG_DIRTY, PG_SWAPCACHE, PG_ZERO, Page
from .pagetable import (
    is_swap_pte,
    pte_dirty,
    pte_pfn,
    pte_present,
    swp_entry_to_pte,
)

if TYPE_CHECKING:
    from .folio import Folio
    from .machine import Machine
    from .vma import Vma


@dataclass
class WalkResult(DataClassJsonMixin, _reprs.Pictured):
    """What :meth:`Machine.rmap_walk` returns: the mappings found and the walk's cost."""

    pfn: int
    mappings: list[tuple[int, int]] = field(default_factory=list)
    cost: WalkCost = field(default_factory=WalkCost)


#: A :class:`Probe`'s verdict when the candidate's pte maps the page.
MAPS_IT = "maps it"


@dataclass
class Probe(DataClassJsonMixin):
    """One candidate a scheme's walk proposed, in walk order, and what the core found
    when it probed the candidate's pte (page_vma_mapped_walk() in the kernel)."""

    #: The candidate vma's owner and range.
    pid: int
    vma_start: int
    vma_end: int
    #: The address the scheme said the page is at in that vma.
    address: int
    #: :data:`MAPS_IT`, or why the probe was wasted: ``outside the vma``, ``no pte``,
    #: ``swap entry``, ``maps pfn N`` (another frame), ``repeat`` (found already).
    verdict: str

    @property
    def hit(self) -> bool:
        """The probe found a mapping of the page."""
        return self.verdict == MAPS_IT


@dataclass
class WalkTrace(WalkResult):
    """What :meth:`Machine.trace_walk` returns: a :class:`WalkResult` with every probe
    the walk made, in order, and the page's mapcount (the walk stops once it has found
    that many mappings, so candidates after that are never probed)."""

    mapcount: int = 0
    probes: list[Probe] = field(default_factory=list)


def _miss(page: Page, vma: Vma, addr: int, pte: int, repeat: bool) -> str:
    """Why probing ``pte`` of candidate (``vma``, ``addr``) found no new mapping."""
    if not vma.start <= addr < vma.end:
        return "outside the vma"
    if repeat:
        return "repeat"
    if pte_present(pte):
        return f"maps pfn {pte_pfn(pte)}"
    return "swap entry" if is_swap_pte(pte) else "no pte"


@dataclass
class UnmapResult(DataClassJsonMixin, _reprs.Displayed):
    """What :meth:`Machine.try_to_unmap` returns."""

    pfn: int
    success: bool
    unmapped: list[tuple[int, int]] = field(default_factory=list)
    swap_slot: int = -1
    reason: str = ""
    cost: WalkCost = field(default_factory=WalkCost)


def find_mappings(m: Machine, page: Page, probes: list[Probe] | None = None
                  ) -> tuple[list[tuple[Vma, int]], WalkCost]:
    """Run the walk for ``page``; return the (vma, address) pairs whose pte maps it.
    With a ``probes`` list, append a :class:`Probe` for every candidate, in walk order.

    Each candidate is verified before it counts, as rmap_walk_anon() does through
    page_vma_mapped_walk(): the address lies in the vma and its pte maps this page, and
    no (mm, address) is returned twice. A scheme may propose extra or repeated
    candidates (they are wasted probes); acting on a repeat would unmap one pte twice,
    driving rss negative and freeing a page another pte still maps.
    """
    cost = WalkCost(walks=1)
    hits: list[tuple[Vma, int]] = []
    want = page_mapcount(page)  # page_vma_mapped_walk() finds PMD mappings too
    if want == 0:
        return hits, cost
    walk = m.rmap_walk_impl if page.is_anon else m.file_rmap_walk_impl
    seen: set[tuple[int, int]] = set()
    try:
        for vma, addr in walk(page, cost):
            cost.ptes_probed += 1
            key = (id(vma.mm), addr)
            pte = vma.mm.pgtable.lookup(addr)
            if pte_present(pte) and pte_pfn(pte) == page.pfn \
                    and vma.start <= addr < vma.end and key not in seen:
                seen.add(key)
                cost.hits += 1
                hits.append((vma, addr))
                if probes is not None:
                    probes.append(Probe(vma.mm.owner_pid, vma.start, vma.end, addr, MAPS_IT))
                if len(hits) == want:
                    break
            else:
                cost.wasted += 1
                if probes is not None:
                    probes.append(Probe(vma.mm.owner_pid, vma.start, vma.end, addr,
                                        _miss(page, vma, addr, pte, key in seen)))
    except (TypeError, ValueError, AttributeError) as exc:
        if exc.__traceback__ is None or exc.__traceback__.tb_next is not None:
            raise  # raised inside the walk or deeper: the traceback names who
        hook = "rmap_walk" if page.is_anon else "file_rmap_walk"
        raise PluginError(f"{hook} must yield (vma, address) pairs: "
                          f"{type(exc).__name__}: {exc}", hook=hook) from exc
    m.walk_cost.add(cost)
    return hits, cost


def find_folio_mappings(m: Machine, folio: Folio) -> tuple[list[tuple[Vma, int, Page]],
                                                          WalkCost]:
    """rmap_walk() of a large folio: every (vma, address, page) whose pte maps a page of
    ``folio``. The scheme's walk runs for a page whose mappings are not all found yet;
    each vma it yields is then searched once over the range the folio would occupy
    there (page_vma_mapped_walk() over the folio), which finds the mappings of every
    other page in it too. A folio mapped contiguously thus costs one walk and one pass
    per vma, not one walk per page; a page moved elsewhere (mremap) gets its own walk."""
    cost = WalkCost()
    found: dict[tuple[int, int], tuple[Vma, int, Page]] = {}
    missing = {page.pfn: page_mapcount(page) for page in folio.pages}
    searched: set[tuple[int, int]] = set()
    for page in folio.pages:
        if missing[page.pfn] <= 0:
            continue
        hits, walk_cost = find_mappings(m, page)
        cost.add(walk_cost)
        window = WalkCost()
        for vma, addr in hits:
            base = addr - (folio.page_index(page) << PAGE_SHIFT)
            if (id(vma), base) in searched:
                continue
            searched.add((id(vma), base))
            entry = vma.mm.pgtable.entry
            for i, other in enumerate(folio.pages):
                a = base + (i << PAGE_SHIFT)
                if not vma.start <= a < vma.end:
                    continue
                window.ptes_probed += 1
                pte = entry(a >> PAGE_SHIFT)
                key = (id(vma.mm), a)
                if pte_present(pte) and pte_pfn(pte) == other.pfn and key not in found:
                    window.hits += 1
                    found[key] = (vma, a, other)
                    missing[other.pfn] -= 1
                else:
                    window.wasted += 1
        m.walk_cost.add(window)
        cost.add(window)
    return list(found.values()), cost


def rmap_truth(m: Machine, pfn: int) -> list[tuple[int, int]]:
    """Brute force: every (pid, address) whose present pte maps ``pfn``, sorted."""
    out = []
    for proc in m.live_processes():
        for vpn, pte in proc.mm.pgtable.items():
            if pte_present(pte) and pte_pfn(pte) == pfn:
                out.append((proc.pid, vpn << 12))
    return sorted(out)


def try_to_unmap(m: Machine, page: Page) -> UnmapResult:
    """try_to_unmap(): remove every pte that maps ``page``, found through the rmap walk.

    Anonymous pages are written to swap first (add_to_swap) and each pte becomes a swap
    entry, exclusive if the page was PG_anon_exclusive; when the last pte is gone the page
    leaves the swap cache and is freed. Page-cache pages (files, shmem) are only unmapped
    here, a dirty pte dirtying the page; reclaim then writes them out. A mapping
    in a VM_LOCKED vma makes the attempt fail with nothing changed (the kernel's
    try_to_unmap_one() stops there and mlocks the page). An anonymous page that cannot
    get a swap slot (no swap, or swap full) stays mapped: the attempt fails with nothing
    changed, as add_to_swap() failing does in shrink_folio_list(). The walk effort is added to
    the reclaim share when reclaim is running.
    """
    result = UnmapResult(pfn=page.pfn, success=False)
    if page.flags & PG_ZERO:
        result.reason = "the zero page is never unmapped"
        return result
    if page.folio is not None:
        # One pfn is unmapped here, so its large folio is split first (reclaim swaps a
        # folio out whole: mmcore.folio_reclaim; the kernel's try_to_unmap() takes the
        # whole folio).
        from .folio_split import split_folio
        if not split_folio(m, page.folio):
            result.reason = "the large folio could not be split"
            return result
        if not page.mapcount:  # the split mapped its zero content to the zero page
            result.success = True
            return result
    hits, cost = find_mappings(m, page)
    result.cost = cost
    if m.in_reclaim:
        m.reclaim_walk_cost.add(cost)
    if any(vma.flags & VM_LOCKED for vma, _ in hits):
        result.reason = "mapped in a VM_LOCKED vma"
        return result
    slot = -1
    anon = page.is_anon
    if anon and hits and not page.flags & PG_SWAPCACHE and not m.swap.nr_free:
        # add_to_swap() fails: shrink_folio_list() keeps the folio mapped (activate_locked)
        result.reason = "no swap space"
        return result
    if anon and hits:
        if page.flags & PG_SWAPCACHE:  # add_to_swap() only for a page not yet in swap
            slot = page.swap_slot
            m.swap.data[slot] = page.data
        else:
            slot = m.swap.alloc(page)
    exclusive = bool(page.flags & PG_ANON_EXCLUSIVE)
    for vma, addr in hits:
        mm = vma.mm
        if pte_dirty(mm.pgtable.clear(addr)):
            page.flags |= PG_DIRTY  # the hardware dirty bit moves to the page
        if anon:
            mm.pgtable.set(addr, swp_entry_to_pte(slot, exclusive))
            m.swap.dup(slot)
            mm.rss_stat[MM_SWAPENTS] += 1
        mm.add_rss(page, -1)
        m.unmap_page_pte(page, vma, addr)
        result.unmapped.append((mm.owner_pid, addr))
    m.counters.pages_unmapped += len(hits)
    if hits:
        m.counters.tlb_flushes += 1
    result.success = page.mapcount == 0
    if not result.success:
        result.reason = f"{page.mapcount} mapping(s) not found by the rmap walk"
    if anon and slot >= 0 and page.mapcount == 0:
        m.counters.pages_swapped_out += 1
        m.swap.delete_from_cache(page)  # pageout done: __remove_mapping()
    result.swap_slot = slot
    result.unmapped.sort()
    m.emit("unmap", 0, pfn=page.pfn, ptes=len(hits), anon=anon)
    return result
