"""The Machine: physical memory, swap, processes and the plugins of one simulation."""

from __future__ import annotations

import functools
import os
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from . import _reprs
from .constants import DEFAULT_BRK_START, DEFAULT_MAX_MAP_COUNT, PAGE_SIZE
from .costs import Costs, Counters, Metadata, WalkCost
from .errors import (
    BusError,
    ConfigError,
    MachineBroken,
    OutOfMemory,
    PluginError,
    ProcessKilled,
    SegmentationFault,
)
from .events import Event
from .folio import Folio
from .folio_rmap import folio_remove_rmap_ptes
from .folio_split import deferred_split_scan, folio_unqueue_deferred_split
from .fork import dup_mmap, exit_mmap
from .fs import FS_DEV, SHMEM_DEV, Inode, OpenFile
from .khugepaged import Khugepaged
from .kpageflags import kpageflags, kpageflags_bytes
from .meminfo import Meminfo, meminfo
from .mm import Mm
from .overcommit import fork_charge
from .page import PG_ANON, Page, PhysMem
from .pagecache import delete_from_page_cache, release_inode_pages, truncate_pages, write_inode
from .pagetable import is_swap_pte
from .plugins import (
    PluginManager,
    instantiate,
    missing_needs,
    plugin_info,
    plugin_label,
    resolve,
)
from .process import Process
from .reclaim import kswapd_hopeless, shrink
from .rmap import Probe, UnmapResult, WalkResult, WalkTrace, find_mappings, rmap_truth, try_to_unmap
from .swap import SwapArea
from .sysargs import brk_start as check_brk_start
from .thp import MthpStats, ThpSettings
from .vma import Vma
from .vmstat import VmEvents, Vmstat, vmstat

T = TypeVar("T")

#: Every live Machine. A Page holds no pointer to its machine (struct page has none, and
#: a slot would cost every page 8 bytes), so a display of a page finds the machine here
#: (:func:`machine_of`) to ask its mapcount design and draw its rmap.
_MACHINES: weakref.WeakSet[Machine] = weakref.WeakSet()


def machine_of(page: Page) -> Machine | None:
    """The live machine whose physical memory holds this very ``page`` object, or None
    (a Page made alone, or one freed since)."""
    for m in list(_MACHINES):
        if m.physmem.page(page.pfn) is page:
            return m
    return None


class Machine(_reprs.Pictured):
    """One simulated computer running one rmap scheme.

    ``rmap`` names an installed rmap plugin (or passes its class); ``mremap_policy``
    optionally names an mremap policy plugin (e.g. ``"unshare"``); ``file_rmap`` chooses
    how a file's mappings are found (``i_mmap_tree`` or ``i_mmap_list``); ``reclaim`` the
    reclaim policy (``lru2`` or ``clock``); ``observers`` are extra observer plugins.
    ``arch`` selects the metadata size profile; ``ram_pages`` and ``swap_pages`` size
    physical memory and the swap device. ``overcommit_memory`` (0, 1 or 2),
    ``overcommit_ratio`` and ``overcommit_kbytes`` are the vm sysctls of that name
    (:mod:`mmcore.overcommit`).

    >>> m = Machine(rmap="anon_vma_chain")
    >>> p = m.spawn()
    """

    def __init__(self, rmap: str | type = "anon_vma_chain", *,
                 mremap_policy: str | type | None = None,
                 file_rmap: str | type = "i_mmap_tree", reclaim: str | type = "lru2",
                 mapcount: str | type = "per_page", thp: ThpSettings | None = None,
                 observers: Iterable[str | type] = (),
                 arch: str = "x86_64", ram_pages: int = 1 << 16, swap_pages: int = 1 << 16,
                 max_map_count: int = DEFAULT_MAX_MAP_COUNT, overcommit_memory: int = 0,
                 overcommit_ratio: int = 50, overcommit_kbytes: int = 0) -> None:
        classes = [resolve(rmap, "rmap")]
        if mremap_policy is not None:
            classes.append(resolve(mremap_policy, "mremap_policy"))
        file_rmap_cls, reclaim_cls = resolve(file_rmap, "file_rmap"), resolve(reclaim, "reclaim")
        mapcount_cls = resolve(mapcount, "mapcount")
        classes += [file_rmap_cls, reclaim_cls, mapcount_cls]
        classes += [resolve(o, "observer") for o in observers]
        problems = missing_needs(classes)
        if problems:
            raise ConfigError("; ".join(problems))
        self.meta = Metadata(arch)
        infos = [plugin_info(c) for c in classes]
        for info in infos:
            for struct in info.structs:
                extra = info.struct_sizes.get(arch, {})
                if struct not in self.meta.sizes and struct not in extra:
                    raise PluginError(f"plugin {info.name!r} allocates {struct!r}, "
                                      f"which has no size in the {arch} profile")
                self.meta.sizes = {**self.meta.sizes, **extra}
        self.arch = arch
        self.rmap_name = infos[0].name
        self.mremap_policy_name = infos[1].name if mremap_policy is not None else None
        self.file_rmap_name = plugin_info(file_rmap_cls).name
        self.reclaim_name = plugin_info(reclaim_cls).name
        self.mapcount_name = plugin_info(mapcount_cls).name
        #: The THP/mTHP knobs (/sys/kernel/mm/transparent_hugepage).
        self.thp = thp if thp is not None else ThpSettings()
        self.mthp_stats = MthpStats()
        #: The deferred-split queue (ds_queue): partly mapped large folios, in queue order.
        self.deferred_split: dict[Folio, None] = {}
        #: The huge zero folio once a read fault has needed it (mm_get_huge_zero_folio).
        self.huge_zero_folio: Folio | None = None
        #: khugepaged's knobs, cursor and counters (:mod:`mmcore.khugepaged`).
        self.khugepaged = Khugepaged()
        self.max_map_count = max_map_count
        if overcommit_memory not in (0, 1, 2) or overcommit_ratio < 0 or overcommit_kbytes < 0:
            raise ConfigError("overcommit_memory must be 0, 1 or 2, and overcommit_ratio "
                              "and overcommit_kbytes non-negative")
        self.overcommit_memory = overcommit_memory
        self.overcommit_ratio = overcommit_ratio
        self.overcommit_kbytes = overcommit_kbytes
        self.vm_events = VmEvents()
        self.physmem = PhysMem(ram_pages)
        self.swap = SwapArea(swap_pages, self.put_page)
        self.counters = Counters()
        self.walk_cost = WalkCost()
        self.reclaim_walk_cost = WalkCost()
        self.reclaim_decisions: dict[str, int] = {}
        self.processes: dict[int, Process] = {}
        self.files: dict[str, Inode] = {}
        self._next_pid = 1
        self._next_inode = 1
        #: Why the machine is unusable (None while it is fine), and the plugin and hook
        #: that broke it when a plugin did (:meth:`syscall`).
        self.broken: str | None = None
        self.broken_by: tuple[str | None, str | None] = (None, None)
        self.current: Process | None = None
        self.in_reclaim = False
        #: pgdat->kswapd_failures: kswapd runs in a row that freed nothing (reclaim.shrink).
        self.kswapd_failures = 0
        # Watermarks in free pages (min/low/high as __setup_per_zone_wmarks spaces them).
        wmin = max(2, ram_pages // 128)
        self.watermarks = (wmin, wmin + wmin // 4 + 1, wmin + wmin // 2 + 2)

        self.pm = PluginManager()
        self.plugins = instantiate(classes, self)
        self.pm.register_plugins(self.plugins)
        #: The mapcount design's instance (its ``updates`` count what it would cost).
        self.mapcount_design = self.plugins[classes.index(mapcount_cls)]
        self.hook = self.pm.hook
        # Per-page hooks are bound once: no pluggy dispatch on the fault path.
        self.rmap_page_new_anon = self.pm.bind_direct("rmap_page_new_anon")
        self.rmap_page_dup = self.pm.bind_direct("rmap_page_dup")
        self.rmap_page_remove = self.pm.bind_direct("rmap_page_remove")
        self.rmap_page_move = self.pm.bind_direct("rmap_page_move")
        self.rmap_walk_impl = self.pm.bind_direct("rmap_walk")
        self.file_rmap_walk_impl = self.pm.bind_direct("file_rmap_walk")
        self.lru_add = self.pm.bind_direct("reclaim_lru_add")
        self.lru_del = self.pm.bind_direct("reclaim_lru_del")
        self.mark_accessed = self.pm.bind_direct("reclaim_mark_accessed")
        self.rmap_folio_add_new_anon = self._folio_rmap_hook(
            "rmap_folio_add_new_anon", self.rmap_page_new_anon)
        self.rmap_folio_dup_ptes = self._folio_rmap_hook("rmap_folio_dup_ptes",
                                                         self.rmap_page_dup)
        self.rmap_folio_remove_ptes = self._folio_rmap_hook("rmap_folio_remove_ptes",
                                                            self.rmap_page_remove)
        bind = self.pm.bind_direct
        self.mapcount_add = bind("mapcount_add")
        self.mapcount_remove = bind("mapcount_remove")
        self.mapcount_free = bind("mapcount_split")
        self.mapcount_page = bind("mapcount_page")
        self.mapcount_folio = bind("mapcount_folio")
        self.mapcount_maybe_shared = bind("mapcount_maybe_shared")
        self.mapcount_page_exclusive = bind("mapcount_page_exclusive")
        self.mapcount_exclusive_to = bind("mapcount_exclusive_to")
        self.mapcount_mapped_pages = bind("mapcount_mapped_pages")
        self.mapcount_partially_mapped = bind("mapcount_partially_mapped")
        self.mapcount_metadata_bytes = bind("mapcount_metadata_bytes")
        self.rmap_swapin_copy: Callable[..., Any] | None = None
        if self.hook.rmap_swapin_copy.get_hookimpls():
            self.rmap_swapin_copy = self.pm.bind_direct("rmap_swapin_copy")
        self.mremap_policy: Callable[..., Any] | None = None
        if self.hook.mremap_move_pte.get_hookimpls():
            self.mremap_policy = self.pm.bind_direct("mremap_move_pte")
        self.observed = bool(self.hook.mmcore_event.get_hookimpls())
        #: Called by VmaTree.set_range() when a scheme keeps vmas in a range-keyed tree.
        self.vma_range_update: Callable[..., Any] | None = (
            self.hook.vma_range_update if self.hook.vma_range_update.get_hookimpls()
            else None)
        _MACHINES.add(self)

    def _folio_rmap_hook(self, name: str, per_page: Callable[..., Any]) -> Callable[..., Any]:
        """The scheme's folio-range hook ``name``, or, for a scheme that has only the
        per-page hook, a loop calling ``per_page`` for each page of the range."""
        if getattr(self.hook, name).get_hookimpls():
            return self.pm.bind_direct(name)

        def per_page_loop(folio: Folio, first: int, nr: int, vma: Vma, address: int,
                          *extra: Any) -> None:
            for i in range(nr):
                per_page(folio.pages[first + i], vma, address + i * PAGE_SIZE, *extra)
        return per_page_loop

    # --- processes -----------------------------------------------------------------------

    def spawn(self, brk_start: int = DEFAULT_BRK_START) -> Process:
        """A new process with an empty address space (as after execve)."""
        brk_start = check_brk_start("spawn", brk_start)
        self._check_usable()
        mm = Mm(self, brk_start)
        proc = Process(self, self._alloc_pid(), None, mm)
        self.processes[proc.pid] = proc
        self.syscall(functools.partial(self.hook.rmap_mm_init, mm=mm, parent=None))
        return proc

    def _alloc_pid(self) -> int:
        pid = self._next_pid
        self._next_pid += 1
        return pid

    def _fork(self, parent: Process) -> Process:
        fork_charge(parent.mm)
        mm = Mm(self, parent.mm.start_brk)
        child = Process(self, self._alloc_pid(), parent, mm)
        child.rlimits = dict(parent.rlimits)  # copy_signal(): limits are inherited
        child.capabilities = set(parent.capabilities)
        self.processes[child.pid] = child
        parent.children[child.pid] = child
        child.files.copy_from(parent.files)
        dup_mmap(parent.mm, mm)
        self.counters.forks += 1
        self.emit("fork", parent.pid, child=child.pid)
        return child

    def _exec(self, proc: Process, brk_start: int) -> None:
        exit_mmap(proc.mm)
        proc.mm = Mm(self, brk_start)
        proc.mm.owner_pid = proc.pid
        self.hook.rmap_mm_init(mm=proc.mm, parent=None)

    def _exit(self, proc: Process, status: int) -> None:
        exit_mmap(proc.mm)
        for file in proc.files.close_all():
            self.fput(file)
        proc.exit_status = status
        for child in list(proc.children.values()):
            child.parent = None
            if not child.alive:
                self._reap(child)
        proc.children.clear()
        self.emit("exit", proc.pid, status=status)
        if proc.parent is None or not proc.parent.alive:
            self._reap(proc)

    def _reap(self, proc: Process) -> None:
        self.processes.pop(proc.pid, None)

    def live_processes(self) -> list[Process]:
        """Processes that have not exited, by pid."""
        return [p for p in self.processes.values() if p.alive]

    # --- physical pages ------------------------------------------------------------------

    def alloc_page(self) -> Page:
        """alloc_page() for a user page, put on the LRU.

        Below the low watermark kswapd reclaims up to the high one first, unless it is
        hopeless (:func:`~mmcore.reclaim.kswapd_hopeless`); with no free frame, direct
        reclaim runs, and when it frees nothing the OOM killer ends the process with the
        largest footprint (:meth:`oom_kill`). There is no retry of a direct reclaim that
        freed nothing: should_reclaim_retry() allows up to MAX_RECLAIM_RETRIES only while
        free plus reclaimable pages could reach the min watermark, and one mmcore shrink
        already scans every LRU page twice, so a retry would find nothing new.
        """
        pm = self.physmem
        free = pm.free_list
        if free.nr <= self.watermarks[1] and not self.in_reclaim \
                and not kswapd_hopeless(self):
            self._reclaim(self.watermarks[2] - free.nr, "kswapd")
        while not free.nr:
            if self.in_reclaim or not self._reclaim(32, "direct"):
                self.oom_kill()
        page = pm.alloc()
        self.lru_add(page)
        return page

    def alloc_folio(self, order: int, direct_reclaim: bool) -> Folio | None:
        """vma_alloc_folio() of a large anonymous folio with vma_thp_gfp_mask() under the
        default ``defrag=madvise``: GFP_TRANSHUGE_LIGHT, which never wakes kswapd nor
        calls the OOM killer, so the allocation succeeds only if a naturally aligned
        free block exists and taking it leaves the min watermark (the slow path's
        ALLOC_WMARK_MIN). With ``direct_reclaim`` (the vma has VM_HUGEPAGE:
        __GFP_DIRECT_RECLAIM) one direct reclaim of the folio's size runs first when
        the watermark fails, then the allocation is tried once more; compaction is not
        modelled. None: the caller falls back to a smaller order. The head page joins
        the LRU for the whole folio."""
        size = 1 << order
        pm = self.physmem
        if pm.free_list.nr - size < self.watermarks[0]:
            if not direct_reclaim or self.in_reclaim:
                return None
            self._reclaim(size, "direct")
            if pm.free_list.nr - size < self.watermarks[0]:
                return None
        folio = pm.alloc_folio(order)
        if folio is not None:
            self.lru_add(folio.head)
        return folio

    def _reclaim(self, nr: int, reason: str) -> int:
        if reason == "kswapd":
            self.counters.kswapd_runs += 1
        else:
            self.counters.direct_reclaims += 1
        self.in_reclaim = True
        try:
            return shrink(self, nr, reason)
        finally:
            self.in_reclaim = False

    def oom_kill(self) -> None:
        """out_of_memory(): kill the process with the highest badness (resident pages plus
        swap entries, oom_badness()). Raises :class:`ProcessKilled` if that is the
        process whose operation is running, :class:`OutOfMemory` if no process is left."""
        def badness(p: Process) -> int:
            swapped = sum(1 for pte in p.mm.pgtable.values() if is_swap_pte(pte))
            return p.mm.rss + swapped
        victims = [p for p in self.live_processes() if badness(p) > 0]
        if not victims:
            raise OutOfMemory("out of memory and no process to kill")
        victim = max(victims, key=badness)
        self.counters.oom_kills += 1
        self.emit("oom_kill", victim.pid, badness=badness(victim))
        self._exit(victim, 128 + 9)  # killed by SIGKILL
        victim.killed = True
        if victim is self.current:
            raise ProcessKilled(victim.pid)

    def khugepaged_scan(self) -> int:
        """One wake-up of khugepaged: scan up to ``pages_to_scan`` pages of THP-enabled
        vmas and collapse what qualifies (:func:`mmcore.khugepaged.khugepaged_do_scan`);
        returns the number of THPs collapsed."""
        from .khugepaged import khugepaged_do_scan
        self._check_usable()
        return self.syscall(khugepaged_do_scan, self)

    def put_page(self, page: Page) -> None:
        """put_page(): drop one reference, freeing the frame with the last one."""
        page.refcount -= 1
        if page.refcount == 0:
            if page.rmap is not None:
                raise PluginError(f"rmap scheme left per-page state on freed {page!r}")
            page.mapping = None
            folio = page.folio
            if folio is None:
                self.lru_del(page)
                self.physmem.free(page)
                return
            # A page of a large folio stays allocated until the whole folio is unused.
            folio.nr_unref += 1
            if folio.nr_unref == folio.nr_pages:
                self.free_folio(folio)

    def free_folio(self, folio: Folio) -> None:
        """__folio_put() of a large folio: off the LRU (its head stands for it there),
        off the deferred-split queue, the mapcount design's state dropped, then freed."""
        self.lru_del(folio.head)
        folio_unqueue_deferred_split(self, folio)
        if folio.head.flags & PG_ANON:
            self.mthp_stats.count(folio.order, "nr_anon", -1)
        self.mapcount_free(folio)
        self.physmem.free_folio(folio)

    def unmap_page_pte(self, page: Page, vma: Vma, addr: int) -> None:
        """folio_remove_rmap_pte() + put: one pte no longer maps ``page`` (for a page of
        a large folio, a run of one: :func:`~mmcore.folio_rmap.folio_remove_rmap_ptes`)."""
        folio = page.folio
        if folio is not None:
            folio_remove_rmap_ptes(self, folio, folio.page_index(page), 1, vma, addr)
            return
        page.mapcount -= 1
        if page.is_anon:
            self.rmap_page_remove(page, vma, addr)
        self.put_page(page)

    # --- files -------------------------------------------------------------------------------

    def create_file(self, path: str, data: bytes = b"", length: int | None = None) -> Inode:
        """Create (or replace the content of) a file in the in-memory filesystem: its
        content is ``data``, or with ``length``, ``length`` bytes of ``data`` repeated
        (zeros if ``data`` is empty), kept as a pattern that costs nothing per page."""
        if length is not None and length < 0:
            raise ValueError(f"create_file length must not be negative, not {length}")
        inode = self.files.get(path)
        if inode is None:
            inode = Inode(self._next_inode, path, FS_DEV)
            self._next_inode += 1
            self.files[path] = inode
        else:
            truncate_pages(self, inode, 0)
        if length is not None:
            inode.fill = data if data.strip(b"\0") else b""  # all zeros: a hole
            inode.fill_end = inode.size = length
            return inode
        for i in range(0, len(data), PAGE_SIZE):
            chunk = data[i:i + PAGE_SIZE].rstrip(b"\0")
            if chunk:
                inode.disk[i // PAGE_SIZE] = chunk
        inode.size = len(data)
        return inode

    def new_shmem(self, size: int) -> OpenFile:
        """shmem_zero_setup(): an unlinked shmem file backing a shared anonymous mapping."""
        inode = Inode(self._next_inode, "/dev/zero (deleted)", SHMEM_DEV, shmem=True)
        self._next_inode += 1
        inode.size = size
        return OpenFile(inode, os.O_RDWR)

    def file_vma_link(self, vma: Vma, after: Vma | None = None) -> None:
        """get_file() + vma_interval_tree_insert(_after) for a file vma."""
        assert vma.file is not None
        vma.file.refs += 1
        vma.file.inode.nr_mmaps += 1
        self.hook.file_rmap_insert(vma=vma, after=after)

    def file_vma_unlink(self, vma: Vma) -> None:
        """vma_interval_tree_remove() + fput(); an unlinked shmem file dies with its last
        mapping."""
        file = vma.file
        assert file is not None
        self.hook.file_rmap_remove(vma=vma)
        file.inode.nr_mmaps -= 1
        self.fput(file)

    def fput(self, file: OpenFile) -> None:
        """Drop a reference to an open file description."""
        file.refs -= 1
        if file.refs == 0 and file.inode.shmem and not file.inode.nr_mmaps:
            release_inode_pages(self, file.inode)

    def drop_caches(self) -> int:
        """echo 3 > /proc/sys/vm/drop_caches: write back, then free every unmapped
        page-cache page of regular files; returns the number freed. drop_slab() also
        runs every shrinker, so the deferred-split queue is split (deferred_split_scan(),
        probed in kernel-facts section 20)."""
        deferred_split_scan(self)
        freed = 0
        for inode in self.files.values():
            write_inode(self, inode)
            for page in [pg for pg in inode.pages.values() if not pg.mapcount]:
                if page.refcount == 1:
                    delete_from_page_cache(self, page)
                    freed += 1
        return freed

    # --- reverse mapping -------------------------------------------------------------------

    def _page(self, pfn: int) -> Page:
        page = self.physmem.page(pfn)
        if page is None:
            raise ValueError(f"pfn {pfn} is not an allocated page")
        return page

    def cached_pages(self) -> int:
        """Pages held by the page caches of regular files (not leaks: reclaimable)."""
        return sum(len(i.pages) for i in self.files.values())

    def rmap_walk(self, pfn: int) -> WalkResult:
        """The scheme's answer to "who maps this page?": (pid, vaddr) pairs and the cost."""
        self._check_usable()
        page = self._page(pfn)
        hits, cost = self.syscall(find_mappings, self, page)
        self.emit("walk", 0, pfn=pfn, found=len(hits), vmas=cost.vmas_visited)
        return WalkResult(pfn, sorted((v.mm.owner_pid, a) for v, a in hits), cost)

    def trace_walk(self, pfn: int) -> WalkTrace:
        """:meth:`rmap_walk` with every candidate the scheme proposed and what its pte held
        (:class:`~mmcore.rmap.Probe`), in walk order: the walk a teacher shows. It is a
        real walk, counted as :meth:`rmap_walk` counts one."""
        self._check_usable()
        page = self._page(pfn)
        probes: list[Probe] = []
        hits, cost = self.syscall(find_mappings, self, page, probes)
        self.emit("walk", 0, pfn=pfn, found=len(hits), vmas=cost.vmas_visited)
        return WalkTrace(pfn, sorted((v.mm.owner_pid, a) for v, a in hits), cost,
                         page.mapcount, probes)

    def rmap_truth(self, pfn: int) -> list[tuple[int, int]]:
        """Brute force over every page table: the (pid, vaddr) pairs that map ``pfn``."""
        return rmap_truth(self, pfn)

    def try_to_unmap(self, pfn: int) -> UnmapResult:
        """Unmap a page from every process through the scheme's walk; anonymous pages go to
        swap and come back on the next access."""
        self._check_usable()
        return self.syscall(try_to_unmap, self, self._page(pfn))

    def meminfo(self) -> Meminfo:
        """/proc/meminfo."""
        return meminfo(self)

    def meminfo_text(self) -> str:
        """/proc/meminfo as text."""
        return self.meminfo().text()

    def vmstat(self) -> Vmstat:
        """/proc/vmstat."""
        return vmstat(self)

    def vmstat_text(self) -> str:
        """/proc/vmstat as text."""
        return self.vmstat().text()

    def kpageflags(self, pfn: int) -> int:
        """/proc/kpageflags entry of ``pfn`` (KPF_* bits; see :mod:`mmcore.kpageflags`)."""
        return kpageflags(self, pfn)

    def kpageflags_bytes(self, pfn: int, count: int) -> bytes:
        """What reading ``count`` entries of /proc/kpageflags at ``pfn`` returns."""
        return kpageflags_bytes(self, pfn, count)

    def kpagecount(self, pfn: int) -> int:
        """/proc/kpagecount: the page's mapcount (0 for the zero page or a free frame);
        for a page of a large folio, what the mapcount design reports (page_mapcount():
        exact with per-page mapcounts)."""
        page = self.physmem.page(pfn)
        if page is None:
            return 0
        folio = page.folio
        return page.mapcount if folio is None else int(self.mapcount_page(folio, page))

    # --- accounting and events ---------------------------------------------------------------

    def costs(self) -> Costs:
        """Modelled metadata bytes by struct, page-table bytes, walk and event counters."""
        tables = sum(p.mm.pgtable.nr_table_pages for p in self.live_processes())
        return Costs(
            arch=self.arch,
            rmap=self.rmap_name if self.mremap_policy_name is None
            else f"{self.rmap_name}+{self.mremap_policy_name}",
            metadata_bytes=self.meta.bytes_by_struct(),
            metadata_peak_bytes=self.meta.bytes_by_struct(peak=True),
            metadata_objects={k: v for k, v in sorted(self.meta.live.items()) if v},
            page_table_bytes=tables * self.meta.sizes["page_table_page"],
            walk=WalkCost(**vars(self.walk_cost)),
            reclaim_walk=WalkCost(**vars(self.reclaim_walk_cost)),
            reclaim_decisions=dict(sorted(self.reclaim_decisions.items())),
            counters=Counters(**vars(self.counters)),
        )

    def emit(self, kind: str, pid: int, **data: Any) -> None:
        """Send an observer event (free when no observer is registered)."""
        if self.observed:
            self.hook.mmcore_event(event=Event(kind, pid, data))

    # --- safety ------------------------------------------------------------------------------

    def _check_usable(self) -> None:
        if self.broken is not None:
            plugin, hook = self.broken_by
            raise MachineBroken(f"machine is broken: {self.broken}", plugin=plugin,
                                hook=hook)

    def run(self, proc: Process, fn: Callable[..., T], *args: Any) -> T:
        """Run one operation on behalf of ``proc`` (the OOM killer needs to know whom)."""
        previous, self.current = self.current, proc
        try:
            return self.syscall(fn, *args)
        finally:
            self.current = previous

    def syscall(self, fn: Callable[..., T], *args: Any) -> T:
        """Run one operation. Errors Linux reports (OSError, signals, an OOM kill of the
        calling process) pass through and leave the machine consistent; anything else (a
        plugin bug, memory exhausted with nothing left to kill) marks the machine broken,
        since its state may be half-changed."""
        self._check_usable()
        try:
            return fn(*args)
        except (OSError, SegmentationFault, BusError, ProcessKilled):
            raise
        except MachineBroken:  # a nested operation already blamed the plugin
            raise
        except Exception as exc:
            plugin, hook = self.broken_by = self.pm.blame(exc)
            reason = f"{type(exc).__name__}: {exc}"
            if plugin is None:
                self.broken = reason
                raise MachineBroken(f"machine marked broken: {reason}", hook=hook) from exc
            self.broken = (f"plugin {plugin_label(plugin, self.plugins)} raised in hook "
                           f"{hook!r}: {reason}")
            raise MachineBroken(self.broken, plugin=plugin, hook=hook) from exc

    def pages_in_use(self) -> Iterator[Page]:
        """Every allocated frame except the zero page."""
        return iter(self.physmem.used_pages())

