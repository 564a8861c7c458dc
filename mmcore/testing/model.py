"""The conformance kit's independent content model.

:class:`ContentModel` predicts, without looking at the simulator, what every process must
read on every page it maps (private pages copied at fork, shared pages shared, content
moved by mremap, zeroed by MADV_DONTNEED, made uncertain by MADV_FREE, punched by
MADV_REMOVE, wiped at fork by MADV_WIPEONFORK) and which pages it maps at all, and which of
them are guard regions. Also here: the model's cell types (:class:`PrivFile`,
:class:`LazyFree`, ``Cell``) and the constants the kit's op lists share (the address
window, token length, file paths, machine size).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..constants import MREMAP_DONTUNMAP, MREMAP_FIXED, MS_SYNC, PAGE_SIZE, PROT_READ, PROT_WRITE

__all__ = [
    "DEFAULT_MACHINE_KWARGS",
    "FILES",
    "FILE_PAGES_MAX",
    "MAX_LIVE",
    "MS_SYNC",
    "RW",
    "TOKEN_LEN",
    "WINDOW",
    "WINDOW_PAGES",
    "ZERO",
    "Cell",
    "ContentModel",
    "LazyFree",
    "P",
    "PrivFile",
]


P = PAGE_SIZE
#: Every token written is this long and lands at the start of a page.
TOKEN_LEN = 8
ZERO = bytes(TOKEN_LEN)
#: A small window where MAP_FIXED, mremap targets and hints land, so that operations
#: overlap, split and merge each other.
WINDOW = 0x10000000
WINDOW_PAGES = 32
#: Live processes at most (fork trees stop growing there).
MAX_LIVE = 8
#: Small physical memory and swap keep each check cheap (frames are scanned per step).
DEFAULT_MACHINE_KWARGS: dict[str, Any] = {"ram_pages": 4096, "swap_pages": 4096}
RW = PROT_READ | PROT_WRITE

#: File mappings: the paths the kit creates, keyed by the op list's descriptor number
#: (every process uses descriptor ``fd`` for ``FILES[fd]``), and their sizes in pages.
FILES: dict[int, str] = {3: "/conformance3", 4: "/conformance4"}
FILE_PAGES_MAX = 6


@dataclass(frozen=True)
class PrivFile:
    """A page of a MAP_PRIVATE file mapping: file ``obj``'s page ``index`` until the
    process writes it, then its own copy ``data`` (lost again, the file showing through,
    after MADV_DONTNEED or a truncation past it)."""

    obj: int
    index: int
    data: bytes | None = None


@dataclass(frozen=True)
class LazyFree:
    """A private anonymous page after MADV_FREE: it reads ``data`` until reclaim
    discards it, zeros after; a write makes it ordinary private content again."""

    data: bytes


#: A model cell: private content, a shared object's page ``(object, index)``, a private
#: file page, a lazily freed private page, or unknown.
Cell = bytes | tuple[int, int] | PrivFile | LazyFree | None


def _pages(length: int) -> int:
    return (length + P - 1) // P


class ContentModel:
    """What each process must read at the start of each page it maps.

    ``procs[pid][page]`` is a cell: ``bytes`` for private memory (what this process last
    wrote there, or zeros), ``(object, index)`` for a page of a MAP_SHARED object (the
    content lives in ``objs[object][index]``, seen by every process mapping it), None when
    the model cannot know. The keys of ``procs[pid]`` are exactly the pages the process
    maps. Pids are the op list's own pids.
    """

    def __init__(self) -> None:
        self.procs: dict[int, dict[int, Cell]] = {}
        self.objs: dict[int, dict[int, bytes]] = {}
        #: Size of each shared object in pages: a page at or past it is SIGBUS (EOF).
        self.obj_pages: dict[int, int] = {}
        #: Regular files: path -> object (their ``obj_pages`` is the file size).
        self.files: dict[str, int] = {}
        #: Pages holding a guard marker (any access is SIGSEGV), per pid.
        self.guards: dict[int, set[int]] = {}
        #: Pages of VM_WIPEONFORK vmas, per pid.
        self.wipe: dict[int, set[int]] = {}
        self._next_obj = 1

    def create(self, path: str, npages: int, token: bytes) -> None:
        """A new file of ``npages`` pages, each starting with ``token``."""
        obj = self._next_obj
        self._next_obj += 1
        self.files[path] = obj
        self.objs[obj] = dict.fromkeys(range(npages), token)
        self.obj_pages[obj] = npages

    def mmap_file(self, pid: int, addr: int, npages: int, path: str, first: int,
                  shared: bool) -> None:
        """A mapping of ``npages`` pages of file ``path`` from page ``first``."""
        cells = self.procs[pid]
        obj = self.files[path]
        for i in range(npages):
            cells[addr + i * P] = (obj, first + i) if shared else PrivFile(obj, first + i)

    def pwrite(self, path: str, index: int, token: bytes) -> None:
        """``token`` written at the start of page ``index`` (the file may grow)."""
        obj = self.files[path]
        self.objs[obj][index] = token
        self.obj_pages[obj] = max(self.obj_pages[obj], index + 1)

    def pread(self, path: str, index: int) -> bytes:
        """What pread of the start of page ``index`` returns (b"" past EOF)."""
        obj = self.files[path]
        if index >= self.obj_pages[obj]:
            return b""
        return self.objs[obj].get(index, ZERO)

    def ftruncate(self, path: str, npages: int) -> None:
        """The file is ``npages`` pages long: what lay past it is gone (zeros if it grows
        again), and private copies of those pages are dropped (truncate_pagecache)."""
        obj = self.files[path]
        content = self.objs[obj]
        for index in [i for i in content if i >= npages]:
            del content[index]
        self.obj_pages[obj] = npages
        for cells in self.procs.values():
            for a, cell in cells.items():
                if isinstance(cell, PrivFile) and cell.obj == obj and cell.index >= npages:
                    cells[a] = PrivFile(obj, cell.index)

    def sigbus(self, pid: int, addr: int) -> bool:
        """True when an access to page ``addr`` of ``pid`` must be SIGBUS (a page of a
        file or of shared anonymous memory past its end)."""
        cell = self.procs.get(pid, {}).get(addr)
        if isinstance(cell, PrivFile):
            return cell.index >= self.obj_pages[cell.obj]
        if isinstance(cell, tuple):
            return cell[1] >= self.obj_pages[cell[0]]
        return False

    def spawn(self, pid: int) -> None:
        """A new, empty address space."""
        self.procs[pid] = {}
        self.guards[pid] = set()
        self.wipe[pid] = set()

    def fork(self, parent: int, child: int) -> None:
        """Private pages are copied, shared pages stay shared, guard markers are
        inherited; a WIPEONFORK page starts empty (zeros, no guard) in the child."""
        cells = dict(self.procs[parent])
        wipe = self.wipe[parent]
        for a in wipe:
            cells[a] = ZERO
        self.procs[child] = cells
        self.guards[child] = self.guards[parent] - wipe
        self.wipe[child] = set(wipe)

    def exit(self, pid: int) -> None:
        """The address space is gone."""
        self.procs.pop(pid, None)
        self.guards.pop(pid, None)
        self.wipe.pop(pid, None)

    def mmap(self, pid: int, addr: int, npages: int, shared: bool) -> None:
        """A new mapping replaces whatever was there (MAP_FIXED) and reads as zeros."""
        cells = self.procs[pid]
        obj = 0
        if shared:
            obj = self._next_obj
            self._next_obj += 1
            self.objs[obj] = {}
            self.obj_pages[obj] = npages
        for i in range(npages):
            cells[addr + i * P] = (obj, i) if shared else ZERO

    def munmap(self, pid: int, addr: int, npages: int) -> None:
        """The pages are no longer mapped."""
        cells = self.procs[pid]
        for i in range(npages):
            cells.pop(addr + i * P, None)
            self.guards[pid].discard(addr + i * P)
            self.wipe[pid].discard(addr + i * P)

    def write(self, pid: int, addr: int, token: bytes) -> None:
        """A successful store of ``token`` at the page start."""
        cells = self.procs[pid]
        cell = cells.get(addr)
        if isinstance(cell, bytes | LazyFree):
            cells[addr] = token
        elif isinstance(cell, PrivFile):
            cells[addr] = PrivFile(cell.obj, cell.index, token)
        elif isinstance(cell, tuple):
            self.objs[cell[0]][cell[1]] = token

    def dontneed(self, pid: int, addr: int, npages: int) -> None:
        """MADV_DONTNEED: private pages read as zeros again; shared ones keep content."""
        cells = self.procs[pid]
        for i in range(npages):
            a = addr + i * P
            cell = cells.get(a)
            if isinstance(cell, bytes | LazyFree):
                cells[a] = ZERO
            elif isinstance(cell, PrivFile):
                cells[a] = PrivFile(cell.obj, cell.index)

    def free(self, pid: int, addr: int, npages: int) -> None:
        """MADV_FREE: private anonymous content may now be discarded at any time (the
        call may have stopped at a shared or file vma: "data or zeros" covers both)."""
        cells = self.procs[pid]
        for i in range(npages):
            cell = cells.get(addr + i * P)
            if isinstance(cell, bytes) and cell != ZERO:
                cells[addr + i * P] = LazyFree(cell)

    def remove(self, pid: int, addr: int, npages: int) -> None:
        """MADV_REMOVE of a shared range: a hole in the object, seen by every mapping
        (private file pages not yet copied read zeros too; copies keep their data)."""
        cells = self.procs[pid]
        for i in range(npages):
            cell = cells.get(addr + i * P)
            if isinstance(cell, tuple):
                self.objs[cell[0]].pop(cell[1], None)

    def guard_install(self, pid: int, addr: int, npages: int) -> None:
        """MADV_GUARD_INSTALL: the mapped pages lose their ptes (as MADV_DONTNEED) and
        become guard regions."""
        self.dontneed(pid, addr, npages)
        cells = self.procs[pid]
        self.guards[pid].update(a for a in range(addr, addr + npages * P, P) if a in cells)

    def guard_remove(self, pid: int, addr: int, npages: int) -> None:
        """MADV_GUARD_REMOVE: the markers go; what was zapped reads as after DONTNEED."""
        self.guards[pid].difference_update(range(addr, addr + npages * P, P))

    def set_wipeonfork(self, pid: int, addr: int, npages: int, wipe: bool) -> None:
        """MADV_WIPEONFORK (``wipe``) or MADV_KEEPONFORK of one private anonymous vma."""
        pages = range(addr, addr + npages * P, P)
        if wipe:
            self.wipe[pid].update(pages)
        else:
            self.wipe[pid].difference_update(pages)

    def populate_write(self, pid: int, addr: int, npages: int) -> None:
        """MADV_POPULATE_WRITE (or a writable private MAP_POPULATE) of one writable vma:
        each private file page gets its copy of the file's content now, in address order,
        stopping at a guard region or at EOF (EFAULT)."""
        cells = self.procs[pid]
        for a in range(addr, addr + npages * P, P):
            cell = cells.get(a)
            if a in self.guards[pid] or self.sigbus(pid, a):
                return
            if isinstance(cell, PrivFile) and cell.data is None:
                cells[a] = PrivFile(cell.obj, cell.index,
                                    self.objs[cell.obj].get(cell.index, ZERO))

    def guarded(self, pid: int, addr: int) -> bool:
        """True when page ``addr`` of ``pid`` is a guard region (access: SIGSEGV)."""
        return addr in self.guards.get(pid, set())

    def mremap(self, pid: int, old: int, old_pages: int, new: int, new_pages: int,
               flags: int) -> None:
        """A successful mremap to ``new``: content moves, the old range is unmapped (or,
        with MREMAP_DONTUNMAP, stays mapped and empty), growth reads as zeros (or as the
        shared object's next pages)."""
        cells, guards, wipe = self.procs[pid], self.guards[pid], self.wipe[pid]
        moved: dict[int, Cell] = {}
        moved_guards: set[int] = set()
        moved_wipe: set[int] = set()
        for i in range(old_pages):
            a = old + i * P
            if a in cells:
                moved[i] = cells.pop(a)
            if a in guards:  # the marker moves with the ptes
                guards.discard(a)
                moved_guards.add(i)
            if a in wipe:
                wipe.discard(a)
                moved_wipe.add(i)
        if flags & MREMAP_DONTUNMAP:
            for i, cell in moved.items():
                cells[old + i * P] = ZERO if isinstance(cell, bytes | LazyFree) else \
                    PrivFile(cell.obj, cell.index) if isinstance(cell, PrivFile) else cell
            wipe.update(old + i * P for i in moved_wipe)  # the old vma keeps its flags
        if flags & MREMAP_FIXED and old_pages == new_pages:
            # remap_move(): each source vma moves on its own; gaps stay untouched.
            dest = [new + i * P for i in moved]
        else:
            dest = [new + i * P for i in range(new_pages)]
        for a in dest:
            cells.pop(a, None)
            guards.discard(a)
            wipe.discard(a)
        for i, cell in moved.items():
            if i < new_pages:
                cells[new + i * P] = cell
        guards.update(new + i * P for i in moved_guards if i < new_pages)
        wipe.update(new + i * P for i in moved_wipe if i < new_pages)
        if new_pages > old_pages and old_pages - 1 in moved_wipe:  # the vma grows
            wipe.update(new + i * P for i in range(old_pages, new_pages))
        if new_pages > old_pages:
            last = moved.get(old_pages - 1)
            for k in range(1, new_pages - old_pages + 1):
                a = new + (old_pages - 1 + k) * P
                if isinstance(last, PrivFile):
                    cells[a] = PrivFile(last.obj, last.index + k)
                elif isinstance(last, tuple):
                    cells[a] = (last[0], last[1] + k)
                elif isinstance(last, bytes | LazyFree):
                    cells[a] = ZERO
                else:
                    cells[a] = None

    def expected(self, pid: int, addr: int) -> bytes | None:
        """What ``pid`` must read at page ``addr`` (None: unknown, lazily freed or past a
        shared EOF)."""
        return self._content(self.procs.get(pid, {}).get(addr))

    def resident_expectations(self, pid: int) -> Iterator[tuple[int, bytes]]:
        """``(page, bytes)`` for every page of ``pid`` with an :meth:`expected` content,
        but private file pages not yet written (what they read is the file's, which
        :func:`~mmcore.testing.invariants.peek` does not look up): in one pass over its
        cells, as the checks after every op ask for all of them."""
        for addr, cell in self.procs.get(pid, {}).items():
            if isinstance(cell, PrivFile) and cell.data is None:
                continue
            want = self._content(cell)
            if want is not None:
                yield addr, want

    def _content(self, cell: Cell) -> bytes | None:
        """What a page holding ``cell`` reads (see :meth:`expected`)."""
        if isinstance(cell, PrivFile):
            if cell.index >= self.obj_pages[cell.obj]:
                return None
            return cell.data if cell.data is not None else \
                self.objs[cell.obj].get(cell.index, ZERO)
        if isinstance(cell, tuple):
            obj, index = cell
            if index >= self.obj_pages[obj]:
                return None
            return self.objs[obj].get(index, ZERO)
        return None if isinstance(cell, LazyFree) else cell

    def pages(self, pid: int) -> set[int]:
        """The pages ``pid`` maps according to the model."""
        return set(self.procs.get(pid, {}))
