"""/proc/meminfo (fs/proc/meminfo.c meminfo_proc_show, mm/show_mem.c si_mem_available).

The page counts are read off the frames, as the kernel's node counters describe them:
AnonPages are mapped anonymous pages (NR_ANON_MAPPED), Mapped the mapped page-cache
pages, file and shmem (NR_FILE_MAPPED): for a large folio, as many pages as the machine's
mapcount design accounts (``mapcount_mapped_pages``: _nr_pages_mapped with per-page
mapcounts, the whole folio without). AnonHugePages are the pages of anonymous folios
mapped by a PMD (NR_ANON_THPS; kernel-facts, "What /proc and /sys show"). Shmem is every
shmem page-cache page, Cached the page cache (NR_FILE_PAGES less the swap cache). Every
user page is on an LRU list: a page mapped in a VM_LOCKED vma is Unevictable (and
Mlocked), the others are split by PG_active into Active/Inactive, anon for swap-backed
pages (anonymous and shmem) and file otherwise; a large folio's pages go by its head's
flags. Slab is the rmap metadata (anon_vma, anon_vma_chain... are slab objects). Kernel
memory mmcore does not simulate (kernel stacks, vmalloc, per-cpu, hugetlb, the direct
map) shows 0, apart from the fixed VmallocTotal and Hugepagesize of x86-64.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .constants import PAGE_SHIFT, VM_LOCKED
from .folio import HPAGE_PMD_ORDER
from .overcommit import committed_pages, totalram_pages, vm_commit_limit
from .page import PG_ACTIVE, PG_ANON, PG_CACHE, PG_DIRTY, PG_SWAPCACHE, PG_ZERO
from .pagetable import pte_pfn, pte_present
from .proctext import Field, ProcTable, check_labels, fields, numbered, parse_lines
from .smaps import is_swapbacked

if TYPE_CHECKING:
    from .machine import Machine

#: VMALLOC_TOTAL >> 10 on x86-64 with 4-level paging (32 TiB).
VMALLOC_TOTAL_KB = 34359738367

MEMINFO_FIELDS: tuple[Field, ...] = (
    *fields(("MemTotal", "MemFree", "MemAvailable", "Buffers", "Cached", "SwapCached",
             "Active", "Inactive", "Active(anon)", "Inactive(anon)", "Active(file)",
             "Inactive(file)", "Unevictable", "Mlocked", "SwapTotal", "SwapFree", "Zswap",
             "Zswapped", "Dirty", "Writeback", "AnonPages", "Mapped", "Shmem",
             "KReclaimable", "Slab", "SReclaimable", "SUnreclaim", "KernelStack",
             "PageTables", "SecPageTables", "NFS_Unstable", "Bounce", "WritebackTmp",
             "CommitLimit", "Committed_AS", "VmallocTotal", "VmallocUsed", "VmallocChunk",
             "Percpu", "AnonHugePages", "ShmemHugePages", "ShmemPmdMapped", "FileHugePages",
             "FilePmdMapped", "Balloon")),
    *fields(("HugePages_Total", "HugePages_Free", "HugePages_Rsvd", "HugePages_Surp"),
            pad=19, width=5, unit=""),
    *fields(("Hugepagesize", "Hugetlb", "DirectMap4k", "DirectMap2M", "DirectMap1G")),
)


class Meminfo(ProcTable):
    """/proc/meminfo, values in kB (the HugePages_* lines are counts)."""

    TABLE = MEMINFO_FIELDS


def mlocked_pfns(m: Machine) -> set[int]:
    """Frames mapped by a pte of a VM_LOCKED vma (PG_mlocked, on the unevictable LRU).
    A large folio is mlocked only as a whole: every one of its pages so mapped
    (mlock_pte_range() -> allow_mlock_munlock(); probed in kernel-facts section 20)."""
    out: set[int] = set()
    for proc in m.live_processes():
        mm = proc.mm
        for vma in mm.vmas:
            if vma.flags & VM_LOCKED:
                out.update(pte_pfn(pte) for _a, pte in mm.pgtable.range(vma.start, vma.end)
                           if pte_present(pte) and pte_pfn(pte) != m.physmem.ZERO_PFN)
    partial = set()
    for pfn in out:
        page = m.physmem.pages[pfn]
        folio = page.folio if page is not None else None
        if folio is not None and not all(p.pfn in out for p in folio.pages):
            partial.add(pfn)
    return out - partial


def node_page_state(m: Machine) -> dict[str, int]:
    """The nr_* page counts of /proc/vmstat (pages), from the frames."""
    locked = mlocked_pfns(m)
    c = dict.fromkeys(("nr_inactive_anon", "nr_active_anon", "nr_inactive_file",
                       "nr_active_file", "nr_unevictable", "nr_anon_pages", "nr_mapped",
                       "nr_file_pages", "nr_dirty", "nr_shmem", "nr_swapcached"), 0)
    thps = 0
    for page in m.physmem.used_pages():
        if page.flags & PG_ZERO:
            continue  # the huge zero folio: on no LRU, mapped by no rmap
        folio = page.folio
        # A large folio is on the LRU, active or not, swap-backed or not, as its head is.
        flags = page.flags if folio is None else folio.head.flags
        if page.pfn in locked:
            c["nr_unevictable"] += 1
        else:
            lru = "anon" if is_swapbacked(page if folio is None else folio.head) else "file"
            c[f"nr_{'active' if flags & PG_ACTIVE else 'inactive'}_{lru}"] += 1
        if folio is None:
            if flags & PG_ANON and page.mapcount:
                c["nr_anon_pages"] += 1
            c["nr_mapped"] += bool(flags & PG_CACHE and page.mapcount)
        elif page is folio.head:
            mapped = m.mapcount_mapped_pages(folio)
            if flags & PG_ANON:
                c["nr_anon_pages"] += mapped
                thps += folio.nr_pages if folio.entire_mapcount else 0
            elif flags & PG_CACHE:
                c["nr_mapped"] += mapped
        if flags & PG_CACHE:
            c["nr_file_pages"] += 1
            if is_swapbacked(page):
                c["nr_shmem"] += 1
            elif flags & PG_DIRTY:
                c["nr_dirty"] += 1
        if flags & PG_SWAPCACHE:
            c["nr_swapcached"] += 1
            c["nr_file_pages"] += 1
    slab = sum(b for k, b in m.meta.bytes_by_struct().items() if k != "page_table_page")
    # NR_ANON_THPS counts pages; /proc/vmstat shows it in PMD units (vmstat_start()).
    c |= {"nr_anon_thps": thps, "nr_anon_transparent_hugepages": thps >> HPAGE_PMD_ORDER,
          "nr_free_pages": m.physmem.nr_free, "nr_mlock": len(locked),
          "nr_slab_unreclaimable": slab >> PAGE_SHIFT,
          "nr_page_table_pages": sum(p.mm.pgtable.nr_table_pages for p in m.live_processes())}
    c |= {f"nr_zone_{k}": c[f"nr_{k}"] for k in ("inactive_anon", "active_anon",
                                                  "inactive_file", "active_file",
                                                  "unevictable")}
    c["nr_zone_write_pending"] = c["nr_dirty"]
    return c


def si_mem_available(m: Machine, c: dict[str, int]) -> int:
    """si_mem_available(): free pages above the reserve, plus the page cache and
    reclaimable slab that reclaim could free without going below the low watermark."""
    wmark_low = m.watermarks[1]
    available = c["nr_free_pages"] - m.watermarks[2]
    pagecache = c["nr_active_file"] + c["nr_inactive_file"]
    available += pagecache - min(pagecache // 2, wmark_low)
    return max(available, 0)


def meminfo(m: Machine) -> Meminfo:
    """What /proc/meminfo shows for machine ``m``."""
    c = node_page_state(m)
    pages = {
        "MemTotal": totalram_pages(m), "MemFree": c["nr_free_pages"],
        "MemAvailable": si_mem_available(m, c),
        "Cached": c["nr_file_pages"] - c["nr_swapcached"], "SwapCached": c["nr_swapcached"],
        "Active": c["nr_active_anon"] + c["nr_active_file"],
        "Inactive": c["nr_inactive_anon"] + c["nr_inactive_file"],
        "Active(anon)": c["nr_active_anon"], "Inactive(anon)": c["nr_inactive_anon"],
        "Active(file)": c["nr_active_file"], "Inactive(file)": c["nr_inactive_file"],
        "Unevictable": c["nr_unevictable"], "Mlocked": c["nr_mlock"],
        "SwapTotal": m.swap.nr_slots, "SwapFree": m.swap.nr_free, "Dirty": c["nr_dirty"],
        "AnonPages": c["nr_anon_pages"], "Mapped": c["nr_mapped"], "Shmem": c["nr_shmem"],
        "AnonHugePages": c["nr_anon_thps"],
        "Slab": c["nr_slab_unreclaimable"], "SUnreclaim": c["nr_slab_unreclaimable"],
        "PageTables": c["nr_page_table_pages"], "CommitLimit": vm_commit_limit(m),
        "Committed_AS": committed_pages(m),
    }
    kb = {k: v << (PAGE_SHIFT - 10) for k, v in pages.items()}
    kb |= {"VmallocTotal": VMALLOC_TOTAL_KB, "Hugepagesize": 2048}
    return Meminfo({f.label: kb.get(f.label, 0) for f in MEMINFO_FIELDS})


def parse_meminfo(text: str, source: str = "meminfo") -> Meminfo:
    """/proc/meminfo text to a :class:`Meminfo`; a malformed file raises ValueError naming
    ``source`` and the line."""
    values = parse_lines(numbered(text), source)
    check_labels(values, MEMINFO_FIELDS, source)
    return Meminfo({f.label: values[f.label] for f in MEMINFO_FIELDS})


__all__ = ["MEMINFO_FIELDS", "Meminfo", "meminfo", "mlocked_pfns", "node_page_state",
           "parse_meminfo"]
