"""The Machine: physical memory, swap, processes and the plugins of one simulation."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from .constants import DEFAULT_BRK_START, DEFAULT_MAX_MAP_COUNT
from .costs import Costs, Counters, Metadata, WalkCost
from .errors import (
    BusError,
    ConfigError,
    MachineBroken,
    PluginError,
    SegmentationFault,
)
from .events import Event
from .fork import dup_mmap, exit_mmap
from .mm import Mm
from .page import PG_SHMEM, Page, PhysMem
from .plugins import PluginManager, instantiate, missing_needs, plugin_info, resolve
from .process import Process
from .rmap import UnmapResult, WalkResult, find_mappings, rmap_truth, try_to_unmap
from .shmem import ShmemObject
from .swap import SwapArea
from .vma import Vma

T = TypeVar("T")


class Machine:
    """One simulated computer running one rmap scheme.

    ``rmap`` names an installed rmap plugin (or passes its class); ``mremap_policy``
    optionally names an mremap policy plugin (e.g. ``"unshare"``); ``observers`` are extra
    observer plugins (names or classes). ``arch`` selects the metadata size profile.

    >>> m = Machine(rmap="anon_vma_chain")
    >>> p = m.spawn()
    """

    def __init__(self, rmap: str | type = "anon_vma_chain", *,
                 mremap_policy: str | type | None = None,
                 observers: Iterable[str | type] = (),
                 arch: str = "x86_64", ram_pages: int = 1 << 16, swap_pages: int = 1 << 16,
                 max_map_count: int = DEFAULT_MAX_MAP_COUNT) -> None:
        classes = [resolve(rmap, "rmap")]
        if mremap_policy is not None:
            classes.append(resolve(mremap_policy, "mremap_policy"))
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
        self.max_map_count = max_map_count
        self.physmem = PhysMem(ram_pages)
        self.swap = SwapArea(swap_pages, self.put_page)
        self.counters = Counters()
        self.walk_cost = WalkCost()
        self.processes: dict[int, Process] = {}
        self._next_pid = 1
        self._next_inode = 1
        self.broken: str | None = None

        self.pm = PluginManager()
        self.plugins = instantiate(classes, self)
        self.pm.register_plugins(self.plugins)
        self.hook = self.pm.hook
        # Per-page hooks are bound once: no pluggy dispatch on the fault path.
        self.rmap_page_new_anon = self.pm.bind_direct("rmap_page_new_anon")
        self.rmap_page_dup = self.pm.bind_direct("rmap_page_dup")
        self.rmap_page_remove = self.pm.bind_direct("rmap_page_remove")
        self.rmap_page_move = self.pm.bind_direct("rmap_page_move")
        self.rmap_walk_impl = self.pm.bind_direct("rmap_walk")
        self.mremap_policy: Callable[..., Any] | None = None
        if self.hook.mremap_move_pte.get_hookimpls():
            self.mremap_policy = self.pm.bind_direct("mremap_move_pte")
        self.observed = bool(self.hook.mmcore_event.get_hookimpls())

    # --- processes -----------------------------------------------------------------------

    def spawn(self, brk_start: int = DEFAULT_BRK_START) -> Process:
        """A new process with an empty address space (as after execve)."""
        self._check_usable()
        mm = Mm(self, brk_start)
        proc = Process(self, self._alloc_pid(), None, mm)
        self.processes[proc.pid] = proc
        self.hook.rmap_mm_init(mm=mm, parent=None)
        return proc

    def _alloc_pid(self) -> int:
        pid = self._next_pid
        self._next_pid += 1
        return pid

    def _fork(self, parent: Process) -> Process:
        mm = Mm(self, parent.mm.start_brk)
        child = Process(self, self._alloc_pid(), parent, mm)
        self.processes[child.pid] = child
        parent.children[child.pid] = child
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
        """alloc_page() for a user page."""
        return self.physmem.alloc()

    def put_page(self, page: Page) -> None:
        """put_page(): drop one reference, freeing the frame with the last one."""
        page.refcount -= 1
        if page.refcount == 0:
            if page.rmap is not None:
                raise PluginError(f"rmap scheme left per-page state on freed {page!r}")
            page.mapping = None
            self.physmem.free(page)

    def unmap_page_pte(self, page: Page, vma: Vma, addr: int) -> None:
        """folio_remove_rmap_pte() + put: one pte no longer maps ``page``."""
        page.mapcount -= 1
        if page.is_anon:
            self.rmap_page_remove(page, vma, addr)
        self.put_page(page)

    # --- shared anonymous memory -----------------------------------------------------------

    def new_shmem(self, size: int) -> ShmemObject:
        """shmem_zero_setup(): a new object backing a shared anonymous mapping."""
        obj = ShmemObject(self._next_inode, size)
        self._next_inode += 1
        return obj

    def shmem_get_page(self, obj: object, index: int) -> Page:
        """shmem_get_folio(): the object's page at ``index``, allocated zeroed if absent."""
        assert isinstance(obj, ShmemObject)
        page = obj.pages.get(index)
        if page is None:
            page = self.alloc_page()
            page.flags |= PG_SHMEM
            page.mapping = obj
            page.index = index
            page.refcount = 1  # the page cache's reference
            obj.pages[index] = page
        return page

    def i_mmap_insert(self, vma: Vma, after: Vma | None = None) -> None:
        """vma_interval_tree_insert(_after): add a file vma to its object's i_mmap."""
        obj = vma.file
        assert isinstance(obj, ShmemObject)
        if after is not None and after in obj.i_mmap:
            obj.i_mmap.insert(obj.i_mmap.index(after) + 1, vma)
        else:
            obj.i_mmap.append(vma)

    def i_mmap_remove(self, vma: Vma) -> None:
        """vma_interval_tree_remove(); the object dies with its last mapping."""
        obj = vma.file
        assert isinstance(obj, ShmemObject)
        obj.i_mmap.remove(vma)
        if not obj.i_mmap:
            for page in list(obj.pages.values()):
                del obj.pages[page.index]
                self.put_page(page)

    # --- reverse mapping -------------------------------------------------------------------

    def _page(self, pfn: int) -> Page:
        page = self.physmem.page(pfn)
        if page is None:
            raise ValueError(f"pfn {pfn} is not an allocated page")
        return page

    def rmap_walk(self, pfn: int) -> WalkResult:
        """The scheme's answer to "who maps this page?": (pid, vaddr) pairs and the cost."""
        self._check_usable()
        page = self._page(pfn)
        hits, cost = self.syscall(find_mappings, self, page)
        self.emit("walk", 0, pfn=pfn, found=len(hits), vmas=cost.vmas_visited)
        return WalkResult(pfn, sorted((v.mm.owner_pid, a) for v, a in hits), cost)

    def rmap_truth(self, pfn: int) -> list[tuple[int, int]]:
        """Brute force over every page table: the (pid, vaddr) pairs that map ``pfn``."""
        return rmap_truth(self, pfn)

    def try_to_unmap(self, pfn: int) -> UnmapResult:
        """Unmap a page from every process through the scheme's walk; anonymous pages go to
        swap and come back on the next access."""
        self._check_usable()
        return self.syscall(try_to_unmap, self, self._page(pfn))

    def kpagecount(self, pfn: int) -> int:
        """/proc/kpagecount: the page's mapcount (0 for the zero page or a free frame)."""
        page = self.physmem.page(pfn)
        return 0 if page is None else page.mapcount

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
            counters=Counters(**vars(self.counters)),
        )

    def emit(self, kind: str, pid: int, **data: Any) -> None:
        """Send an observer event (free when no observer is registered)."""
        if self.observed:
            self.hook.mmcore_event(event=Event(kind, pid, data))

    # --- safety ------------------------------------------------------------------------------

    def _check_usable(self) -> None:
        if self.broken is not None:
            raise MachineBroken(f"machine is broken: {self.broken}")

    def syscall(self, fn: Callable[..., T], *args: Any) -> T:
        """Run one operation. Errors Linux reports (OSError, signals) pass through and leave
        the machine consistent; anything else (a plugin bug, an exhausted resource) marks
        the machine broken, since its state may be half-changed."""
        self._check_usable()
        try:
            return fn(*args)
        except (OSError, SegmentationFault, BusError):
            raise
        except Exception as exc:
            self.broken = f"{type(exc).__name__}: {exc}"
            raise MachineBroken(f"machine marked broken: {self.broken}") from exc

    def pages_in_use(self) -> Iterator[Page]:
        """Every allocated frame except the zero page."""
        return iter(self.physmem.used_pages())

