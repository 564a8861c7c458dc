"""Cost accounting: modelled kernel metadata bytes per arch, walk counters, event counters.

Metadata is counted as live objects per struct type; bytes come from an arch profile.
The profile sizes are the kernel's struct layouts (sources in :data:`PROFILE_SOURCES`), so
the 2004 argument (i386: anon_vma 12 bytes, 12 bytes per vma, 4-byte pte_chain slots) and
today's sizes (x86_64) can both be reproduced from one run.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from dataclasses_json import DataClassJsonMixin

from . import _reprs

#: Bytes per struct type. "(est.)" sizes are summed from the field lists, debug options off.
ARCH_PROFILES: dict[str, dict[str, int]] = {
    "i386": {
        # 2.6.7 struct anon_vma { spinlock_t lock; struct list_head head; }: 4 + 8.
        "anon_vma_2004": 12,
        # 2.6.7 vma fields: struct list_head anon_vma_node (8) + struct anon_vma * (4).
        "vma_anon_link": 12,
        # 2.6.34+ anon_vma on 32-bit (est.): root 4, rwsem 16, refcount 4, num_children 4,
        # num_active_vmas 4, parent 4, rb_root_cached 8.
        "anon_vma": 44,
        # anon_vma_chain on 32-bit (est.): vma 4, anon_vma 4, same_vma 8, rb 12, last 4.
        "anon_vma_chain": 32,
        # vma fields for AVC: anon_vma_chain list_head (8) + anon_vma pointer (4).
        "vma_avc_fields": 12,
        # Hugh's struct anonmm { atomic_t count; spinlock_t lock; struct mm_struct *mm;
        # struct anonmm *head; struct list_head list; } (est.): 4+4+4+4+8.
        "anonmm": 24,
        # 2.6.6 struct pte_chain { unsigned long next_and_idx; pte_addr_t ptes[NRPTE]; },
        # cache-line aligned: L1_CACHE_BYTES 32 (PIII) gives NRPTE = (32-4)/4 = 7.
        "pte_chain": 32,
        # anon_vma_global (contrib): a prio_tree node per anonymous vma (est.: 3 pointers
        # + radix/heap indices) and a per-mm root.
        "prio_tree_node": 20,
        "prio_tree_root": 8,
        # 2.6.6 vma shared.vm_set list_head on i_mmap (8); 3.7+ shared.rb (12) + last (4).
        "vma_i_mmap_list": 8,
        "vma_i_mmap_rb": 16,
        "page_table_page": 4096,
    },
    "x86_64": {
        "anon_vma_2004": 24,
        "vma_anon_link": 24,
        # struct anon_vma (est.): root 8, rw_semaphore 40, refcount 4 (+4 pad),
        # num_children 8, num_active_vmas 8, parent 8, rb_root_cached 16.
        "anon_vma": 96,
        # struct anon_vma_chain (est.): vma 8, anon_vma 8, same_vma 16, rb 24, last 8.
        "anon_vma_chain": 64,
        "vma_avc_fields": 24,
        "anonmm": 40,
        # pte_chain with 64-byte lines and 8-byte pte_addr_t: NRPTE = (64-8)/8 = 7.
        "pte_chain": 64,
        "prio_tree_node": 40,
        "prio_tree_root": 16,
        "vma_i_mmap_list": 16,
        "vma_i_mmap_rb": 32,
        "page_table_page": 4096,
    },
}

#: Slots per pte_chain block for each profile (NRPTE).
PTE_CHAIN_NRPTE = {"i386": 7, "x86_64": 7}

PROFILE_SOURCES = {
    "anon_vma_2004": "Hugh Dickins, rmap 39 add anon_vma rmap (2.6.7); Andrea, anon_vma RFC2",
    "vma_anon_link": "include/linux/mm.h (2.6.7) vm_area_struct anon_vma_node, anon_vma",
    "anon_vma": "include/linux/rmap.h struct anon_vma (6.x)",
    "anon_vma_chain": "include/linux/rmap.h struct anon_vma_chain (6.x)",
    "vma_avc_fields": "include/linux/mm_types.h vm_area_struct anon_vma_chain, anon_vma",
    "anonmm": "Hugh Dickins, rmap 10 add anonmm rmap (May 2004)",
    "pte_chain": "mm/rmap.c (2.6.6) struct pte_chain and NRPTE",
    "prio_tree_node": "include/linux/prio_tree.h (2.6.7) struct prio_tree_node",
    "prio_tree_root": "include/linux/prio_tree.h (2.6.7) struct prio_tree_root",
    "vma_i_mmap_list": "include/linux/mm.h (2.6.6) vm_area_struct shared.vm_set.list",
    "vma_i_mmap_rb": "include/linux/mm_types.h vm_area_struct shared.rb, rb_subtree_last",
    "page_table_page": "one 4 KiB page per page-table page (PGD/PUD/PMD/PTE)",
}


class Metadata:
    """Live object counts per struct type, with their high-water marks."""

    def __init__(self, arch: str) -> None:
        if arch not in ARCH_PROFILES:
            from .errors import ConfigError
            raise ConfigError(f"unknown arch {arch!r}: choose one of: "
                              + ", ".join(sorted(ARCH_PROFILES)))
        self.arch = arch
        self.sizes = ARCH_PROFILES[arch]
        self.live: dict[str, int] = {}
        self.peak: dict[str, int] = {}

    def alloc(self, struct: str, n: int = 1) -> None:
        """Count ``n`` new objects of ``struct`` (kmem_cache_alloc)."""
        if struct not in self.sizes:
            raise KeyError(f"struct {struct!r} has no size in the {self.arch} profile")
        count = self.live.get(struct, 0) + n
        self.live[struct] = count
        if count > self.peak.get(struct, 0):
            self.peak[struct] = count

    def free(self, struct: str, n: int = 1) -> None:
        """Count ``n`` objects of ``struct`` freed (kmem_cache_free)."""
        count = self.live.get(struct, 0) - n
        if count < 0:
            raise AssertionError(f"more {struct} freed than allocated")
        self.live[struct] = count

    def bytes_by_struct(self, peak: bool = False) -> dict[str, int]:
        """Modelled bytes per struct type (live, or at the high-water mark)."""
        counts = self.peak if peak else self.live
        return {k: v * self.sizes[k] for k, v in sorted(counts.items()) if v}


@dataclass
class WalkCost(DataClassJsonMixin, _reprs.Displayed):
    """Effort of rmap walks. The scheme fills the first four; the core the probe counts.

    ``ptes_probed`` page-table probes, of which ``hits`` found the page and ``wasted`` did
    not; ``find_vma`` calls; ``tree_steps`` models the O(log n) descent of an interval or
    prio tree (ceil(log2(n+1)) per query).
    """

    walks: int = 0
    mms_visited: int = 0
    vmas_visited: int = 0
    find_vma: int = 0
    tree_steps: int = 0
    ptes_probed: int = 0
    hits: int = 0
    wasted: int = 0

    def add(self, other: WalkCost) -> None:
        """Accumulate ``other`` into this counter (every rmap walk does: the field names
        are taken once, not by fields() per call)."""
        for name in _WALK_COST_FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))


_WALK_COST_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(WalkCost))


@dataclass
class Counters(DataClassJsonMixin, _reprs.Displayed):
    """Event counters of one Machine: faults by kind and the work done by syscalls."""

    fault_anon: int = 0
    fault_zero_page: int = 0
    fault_cow_copy: int = 0
    fault_cow_reuse: int = 0
    fault_swapin_major: int = 0
    fault_swapin_minor: int = 0
    fault_shmem: int = 0
    mremap_page_copies: int = 0
    swapin_copies: int = 0
    mremap_ptes_moved: int = 0
    fork_ptes_copied: int = 0
    forks: int = 0
    pages_unmapped: int = 0
    pages_swapped_out: int = 0
    tlb_flushes: int = 0
    vma_splits: int = 0
    vma_merges: int = 0
    fault_file_major: int = 0
    fault_file_minor: int = 0
    fault_around_mapped: int = 0
    pswpout: int = 0
    pages_written_back: int = 0
    reclaim_referenced_walks: int = 0
    kswapd_runs: int = 0
    direct_reclaims: int = 0
    oom_kills: int = 0


@dataclass
class Costs(DataClassJsonMixin, _reprs.Displayed):
    """What :meth:`Machine.costs` returns: everything needed to compare schemes."""

    arch: str
    rmap: str
    metadata_bytes: dict[str, int] = field(default_factory=dict)
    metadata_peak_bytes: dict[str, int] = field(default_factory=dict)
    metadata_objects: dict[str, int] = field(default_factory=dict)
    page_table_bytes: int = 0
    walk: WalkCost = field(default_factory=WalkCost)
    #: The part of ``walk`` spent by reclaim (page_referenced and try_to_unmap).
    reclaim_walk: WalkCost = field(default_factory=WalkCost)
    reclaim_decisions: dict[str, int] = field(default_factory=dict)
    counters: Counters = field(default_factory=Counters)

    @property
    def rmap_bytes(self) -> int:
        """Total modelled rmap metadata bytes now."""
        return sum(self.metadata_bytes.values())

    @property
    def rmap_peak_bytes(self) -> int:
        """Sum of the per-struct high-water marks."""
        return sum(self.metadata_peak_bytes.values())
