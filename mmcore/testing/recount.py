"""Brute-force recount of the counters /proc shows, from the page tables alone.

The kernel keeps its counters incrementally (mm->rss_stat at every pte change, total_vm
at every vma change) or derives them from per-page state (a page's mapcount for Pss, its
flags for AnonPages and Mapped). :func:`recount` recomputes each of them by scanning
every live page table once, knowing nothing but which pte maps which frame: a page's
sharing is the number of ptes found for it, not its mapcount. :func:`recount_problems`
compares the two and is part of the invariants checked after every step of the stateful
and random-sequence tests.

Committed_AS and VmLck are computed from the vmas in mmcore itself (see
:mod:`mmcore.overcommit` and :mod:`mmcore.mlock`), so a recount of them would be the same
sum again; they are not recounted here.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..constants import PAGE_SIZE
from ..meminfo import node_page_state
from ..mm import MM_ANONPAGES, MM_FILEPAGES, MM_SHMEMPAGES, MM_SWAPENTS
from ..page import PG_ANON, PG_CACHE, PG_ZERO
from ..pagetable import is_swap_pte, pte_pfn, pte_present
from ..smaps import PSS_SHIFT, smaps_rollup

if TYPE_CHECKING:
    from ..machine import Machine
    from ..page import Page

__all__ = ["MmRecount", "Recount", "count_mapped", "finish_recount", "recount",
           "recount_problems"]

_NAMES = {MM_FILEPAGES: "RssFile", MM_ANONPAGES: "RssAnon", MM_SWAPENTS: "VmSwap",
          MM_SHMEMPAGES: "RssShmem"}


@dataclass
class MmRecount:
    """One process, recounted: rss_stat (pages), total_vm (pages), Pss (bytes <<
    PSS_SHIFT) and the pfns it maps with how many of its ptes map each."""

    rss_stat: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    total_vm: int = 0
    pss: int = 0
    ptes_per_pfn: Counter[int] = field(default_factory=Counter)


@dataclass
class Recount:
    """The whole machine, recounted: per pid, and the frames mapped anywhere."""

    mms: dict[int, MmRecount] = field(default_factory=dict)
    anon_mapped: int = 0
    file_mapped: int = 0


def count_mapped(rc: MmRecount, page: Page) -> None:
    """Count in ``rc`` one present pte that maps ``page`` (an allocated frame other than
    the zero page), by the kind mm_counter() files it under."""
    if page.flags & PG_ANON:
        rc.rss_stat[MM_ANONPAGES] += 1
    elif page.flags & PG_CACHE and getattr(page.mapping, "shmem", False):
        rc.rss_stat[MM_SHMEMPAGES] += 1
    else:
        rc.rss_stat[MM_FILEPAGES] += 1
    rc.ptes_per_pfn[page.pfn] += 1


def recount(m: Machine) -> Recount:
    """Scan every live page table once and rebuild the counters."""
    mms: dict[int, MmRecount] = {}
    for proc in m.live_processes():
        rc = MmRecount(total_vm=sum(v.pages for v in proc.mm.vmas))
        for pte in proc.mm.pgtable.values():
            if is_swap_pte(pte):
                rc.rss_stat[MM_SWAPENTS] += 1
            elif pte_present(pte):
                page = m.physmem.pages[pte_pfn(pte)]
                if page is not None and not page.flags & PG_ZERO:
                    count_mapped(rc, page)
        mms[proc.pid] = rc
    return finish_recount(m, mms)


def finish_recount(m: Machine, mms: dict[int, MmRecount]) -> Recount:
    """The machine-wide part of the recount, from each process's counts (its rss_stat,
    total_vm and ptes per pfn, as :func:`recount` or one pass of the invariants' scan
    took them): every Pss, and the frames mapped anywhere by kind."""
    out = Recount(mms)
    total: Counter[int] = Counter()
    for rc in mms.values():
        total.update(rc.ptes_per_pfn)
    full = PAGE_SIZE << PSS_SHIFT
    for rc in mms.values():
        for pfn, n in rc.ptes_per_pfn.items():
            page = m.physmem.pages[pfn]
            assert page is not None
            mappers = total[pfn]
            rc.pss += n * (full if page.refcount == 1 or mappers < 2 else full // mappers)
    for pfn in total:
        page = m.physmem.pages[pfn]
        assert page is not None
        if page.flags & PG_ANON:
            out.anon_mapped += 1
        elif page.flags & PG_CACHE:
            out.file_mapped += 1
    return out


def recount_problems(m: Machine, rc: Recount | None = None) -> list[str]:
    """Every counter that differs from its recount, one line each; ``rc`` is the recount
    when the caller already took it (:func:`finish_recount`), else it is taken here."""
    if rc is None:
        rc = recount(m)
    problems = []
    for proc in m.live_processes():
        mm, want = proc.mm, rc.mms[proc.pid]
        for i, name in _NAMES.items():
            if mm.rss_stat[i] != want.rss_stat[i]:
                problems.append(f"pid {proc.pid}: {name} counter is {mm.rss_stat[i]} pages "
                                f"but the page table holds {want.rss_stat[i]}")
        if mm.vmas.total_pages != want.total_vm:
            problems.append(f"pid {proc.pid}: total_vm is {mm.vmas.total_pages} pages but "
                            f"the vmas cover {want.total_vm}")
        if mm.hiwater_rss < 0 or mm.rss < 0:
            problems.append(f"pid {proc.pid}: negative rss ({mm.rss}) or hiwater_rss")
        roll = smaps_rollup(mm)
        rss_kb = (want.rss_stat[MM_ANONPAGES] + want.rss_stat[MM_FILEPAGES]
                  + want.rss_stat[MM_SHMEMPAGES]) * (PAGE_SIZE >> 10)
        if roll["Rss"] != rss_kb or roll["Pss"] != want.pss >> (PSS_SHIFT + 10):
            problems.append(f"pid {proc.pid}: smaps_rollup says Rss {roll['Rss']} kB, Pss "
                            f"{roll['Pss']} kB; the page tables give Rss {rss_kb} kB, Pss "
                            f"{want.pss >> (PSS_SHIFT + 10)} kB")
        if roll["Anonymous"] != want.rss_stat[MM_ANONPAGES] * (PAGE_SIZE >> 10):
            problems.append(f"pid {proc.pid}: smaps_rollup Anonymous {roll['Anonymous']} kB "
                            f"but {want.rss_stat[MM_ANONPAGES]} anonymous pages are mapped")
    node = node_page_state(m)
    if node["nr_anon_pages"] != rc.anon_mapped or node["nr_mapped"] != rc.file_mapped:
        problems.append(f"meminfo AnonPages/Mapped are {node['nr_anon_pages']}/"
                        f"{node['nr_mapped']} pages but the page tables map "
                        f"{rc.anon_mapped}/{rc.file_mapped}")
    return problems
