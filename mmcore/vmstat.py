"""/proc/vmstat (mm/vmstat.c vmstat_show): the node page counts and the event counters.

:class:`VmEvents` holds the vm_event counters the core counts as it runs (count_vm_event()
call sites: handle_mm_fault() for pgfault, do_swap_page()/filemap_fault()/shmem swap-in
for pgmajfault, shrink_inactive_list()/shrink_active_list() for pgscan, pgsteal,
pgactivate, pgdeactivate, pgrefill). pswpin/pswpout are the swap device's reads and
writes and oom_kill the OOM killer's count. The page counts (nr_*) come from
:func:`mmcore.meminfo.node_page_state`. Everything mmcore does not model (NUMA,
compaction, file THP, zswap, workingset shadow entries, slab scanning...) prints 0; the names
and their order are those of this 6.18 kernel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dataclasses_json import DataClassJsonMixin

from . import _reprs
from .proctext import numbered
from .smaps import is_swapbacked

if TYPE_CHECKING:
    from .machine import Machine
    from .page import Page

#: Every line of /proc/vmstat on the probed 6.18 kernel, in order.
VMSTAT_NAMES: tuple[str, ...] = (
    "nr_free_pages",
    "nr_free_pages_blocks",
    "nr_zone_inactive_anon",
    "nr_zone_active_anon",
    "nr_zone_inactive_file",
    "nr_zone_active_file",
    "nr_zone_unevictable",
    "nr_zone_write_pending",
    "nr_mlock",
    "nr_zspages",
    "nr_free_cma",
    "numa_hit",
    "numa_miss",
    "numa_foreign",
    "numa_interleave",
    "numa_local",
    "numa_other",
    "nr_inactive_anon",
    "nr_active_anon",
    "nr_inactive_file",
    "nr_active_file",
    "nr_unevictable",
    "nr_slab_reclaimable",
    "nr_slab_unreclaimable",
    "nr_isolated_anon",
    "nr_isolated_file",
    "workingset_nodes",
    "workingset_refault_anon",
    "workingset_refault_file",
    "workingset_activate_anon",
    "workingset_activate_file",
    "workingset_restore_anon",
    "workingset_restore_file",
    "workingset_nodereclaim",
    "nr_anon_pages",
    "nr_mapped",
    "nr_file_pages",
    "nr_dirty",
    "nr_writeback",
    "nr_shmem",
    "nr_shmem_hugepages",
    "nr_shmem_pmdmapped",
    "nr_file_hugepages",
    "nr_file_pmdmapped",
    "nr_anon_transparent_hugepages",
    "nr_vmscan_write",
    "nr_vmscan_immediate_reclaim",
    "nr_dirtied",
    "nr_written",
    "nr_throttled_written",
    "nr_kernel_misc_reclaimable",
    "nr_foll_pin_acquired",
    "nr_foll_pin_released",
    "nr_kernel_stack",
    "nr_page_table_pages",
    "nr_sec_page_table_pages",
    "nr_iommu_pages",
    "nr_swapcached",
    "pgpromote_success",
    "pgpromote_candidate",
    "pgpromote_candidate_nrl",
    "pgdemote_kswapd",
    "pgdemote_direct",
    "pgdemote_khugepaged",
    "pgdemote_proactive",
    "nr_hugetlb",
    "nr_balloon_pages",
    "nr_kernel_file_pages",
    "nr_dirty_threshold",
    "nr_dirty_background_threshold",
    "nr_memmap_pages",
    "nr_memmap_boot_pages",
    "pgpgin",
    "pgpgout",
    "pswpin",
    "pswpout",
    "pgalloc_dma",
    "pgalloc_dma32",
    "pgalloc_normal",
    "pgalloc_movable",
    "pgalloc_device",
    "allocstall_dma",
    "allocstall_dma32",
    "allocstall_normal",
    "allocstall_movable",
    "allocstall_device",
    "pgskip_dma",
    "pgskip_dma32",
    "pgskip_normal",
    "pgskip_movable",
    "pgskip_device",
    "pgfree",
    "pgactivate",
    "pgdeactivate",
    "pglazyfree",
    "pgfault",
    "pgmajfault",
    "pglazyfreed",
    "pgrefill",
    "pgreuse",
    "pgsteal_kswapd",
    "pgsteal_direct",
    "pgsteal_khugepaged",
    "pgsteal_proactive",
    "pgscan_kswapd",
    "pgscan_direct",
    "pgscan_khugepaged",
    "pgscan_proactive",
    "pgscan_direct_throttle",
    "pgscan_anon",
    "pgscan_file",
    "pgsteal_anon",
    "pgsteal_file",
    "zone_reclaim_success",
    "zone_reclaim_failed",
    "pginodesteal",
    "slabs_scanned",
    "kswapd_inodesteal",
    "kswapd_low_wmark_hit_quickly",
    "kswapd_high_wmark_hit_quickly",
    "pageoutrun",
    "pgrotated",
    "drop_pagecache",
    "drop_slab",
    "oom_kill",
    "numa_pte_updates",
    "numa_huge_pte_updates",
    "numa_hint_faults",
    "numa_hint_faults_local",
    "numa_pages_migrated",
    "pgmigrate_success",
    "pgmigrate_fail",
    "thp_migration_success",
    "thp_migration_fail",
    "thp_migration_split",
    "compact_migrate_scanned",
    "compact_free_scanned",
    "compact_isolated",
    "compact_stall",
    "compact_fail",
    "compact_success",
    "compact_daemon_wake",
    "compact_daemon_migrate_scanned",
    "compact_daemon_free_scanned",
    "htlb_buddy_alloc_success",
    "htlb_buddy_alloc_fail",
    "unevictable_pgs_culled",
    "unevictable_pgs_scanned",
    "unevictable_pgs_rescued",
    "unevictable_pgs_mlocked",
    "unevictable_pgs_munlocked",
    "unevictable_pgs_cleared",
    "unevictable_pgs_stranded",
    "thp_fault_alloc",
    "thp_fault_fallback",
    "thp_fault_fallback_charge",
    "thp_collapse_alloc",
    "thp_collapse_alloc_failed",
    "thp_file_alloc",
    "thp_file_fallback",
    "thp_file_fallback_charge",
    "thp_file_mapped",
    "thp_split_page",
    "thp_split_page_failed",
    "thp_deferred_split_page",
    "thp_underused_split_page",
    "thp_split_pmd",
    "thp_scan_exceed_none_pte",
    "thp_scan_exceed_swap_pte",
    "thp_scan_exceed_share_pte",
    "thp_split_pud",
    "thp_zero_page_alloc",
    "thp_zero_page_alloc_failed",
    "thp_swpout",
    "thp_swpout_fallback",
    "balloon_inflate",
    "balloon_deflate",
    "balloon_migrate",
    "swap_ra",
    "swap_ra_hit",
    "swpin_zero",
    "swpout_zero",
    "ksm_swpin_copy",
    "cow_ksm",
    "zswpin",
    "zswpout",
    "zswpwb",
    "direct_map_level2_splits",
    "direct_map_level3_splits",
    "direct_map_level2_collapses",
    "direct_map_level3_collapses",
    "nr_unstable",
)


@dataclass
class VmEvents(_reprs.Displayed):
    """The vm_event counters mmcore models (not part of results: Costs stays as it was)."""

    pgfault: int = 0
    pgmajfault: int = 0
    pgactivate: int = 0
    pgdeactivate: int = 0
    pgrefill: int = 0
    pgscan_kswapd: int = 0
    pgscan_direct: int = 0
    pgsteal_kswapd: int = 0
    pgsteal_direct: int = 0
    pgscan_anon: int = 0
    pgscan_file: int = 0
    pgsteal_anon: int = 0
    pgsteal_file: int = 0
    # THP events (count_vm_event(THP_*) in mm/huge_memory.c, mm/memory.c, mm/khugepaged.c).
    thp_fault_alloc: int = 0
    thp_fault_fallback: int = 0
    thp_collapse_alloc: int = 0
    thp_collapse_alloc_failed: int = 0
    thp_split_page: int = 0
    thp_split_page_failed: int = 0
    thp_deferred_split_page: int = 0
    thp_split_pmd: int = 0
    thp_scan_exceed_none_pte: int = 0
    thp_scan_exceed_swap_pte: int = 0
    thp_scan_exceed_share_pte: int = 0
    thp_zero_page_alloc: int = 0
    thp_zero_page_alloc_failed: int = 0
    thp_swpout: int = 0
    thp_swpout_fallback: int = 0

    def count_reclaim(self, page: Page, decision: str, reason: str) -> None:
        """Count one reclaim policy decision (ReclaimContext.decide()): a page aged on
        the active list is pgrefill (and pgdeactivate when it moves); any other decision
        scanned an inactive page (pgscan), which was freed (pgsteal) or activated."""
        if decision in ("keep_active", "deactivate"):
            self.pgrefill += 1
            self.pgdeactivate += int(decision == "deactivate")
            return
        kind = "anon" if is_swapbacked(page) else "file"
        where = "kswapd" if reason == "kswapd" else "direct"
        self._add(f"pgscan_{where}", f"pgscan_{kind}")
        if decision == "reclaim":
            self._add(f"pgsteal_{where}", f"pgsteal_{kind}")
        elif decision == "activate":
            self.pgactivate += 1

    def _add(self, *names: str) -> None:
        for name in names:
            setattr(self, name, getattr(self, name) + 1)


@dataclass(frozen=True)
class Vmstat(DataClassJsonMixin, _reprs.Displayed):
    """/proc/vmstat: every counter by name, in the kernel's order (``v["pgfault"]``)."""

    values: dict[str, int] = field(default_factory=dict)

    def __getitem__(self, name: str) -> int:
        return self.values[name]

    def text(self) -> str:
        """The file exactly as vmstat_show() prints it."""
        return "".join(f"{name} {value}\n" for name, value in self.values.items())


def vmstat(m: Machine) -> Vmstat:
    """What /proc/vmstat shows for machine ``m``."""
    from .meminfo import node_page_state
    known = node_page_state(m) | vars(m.vm_events) | {
        "pswpin": m.swap.reads, "pswpout": m.swap.writes, "oom_kill": m.counters.oom_kills}
    return Vmstat({name: known.get(name, 0) for name in VMSTAT_NAMES})


def parse_vmstat(text: str, source: str = "vmstat") -> Vmstat:
    """/proc/vmstat text to a :class:`Vmstat`; a malformed line raises ValueError naming
    ``source`` and the line."""
    values: dict[str, int] = {}
    for lineno, line in numbered(text):
        words = line.split()
        if len(words) != 2 or not words[1].lstrip("-").isdigit() or words[0] in values:
            raise ValueError(f"{source}:{lineno}: expected 'name number', got {line!r}")
        values[words[0]] = int(words[1])
    return Vmstat(values)
