"""Drawing operations for the conformance kit.

:class:`OpGenerator` draws the next op (mmap, munmap, mprotect, mremap, fork, exit, write,
read, try_to_unmap, MADV_DONTNEED and the rest of the madvise family, a fork tree, file
mappings and I/O, sometimes with MAP_POPULATE) for the current
state and applies it through a :class:`~mmcore.testing.driver.Driver`. Its random
decisions come from a :class:`Chooser`: :class:`DataChooser` (hypothesis data, so they
shrink) or :class:`RandomChooser` (a seeded ``random.Random``).
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from ..constants import (
    MADV_COLD,
    MADV_DONTNEED,
    MADV_FREE,
    MADV_GUARD_INSTALL,
    MADV_GUARD_REMOVE,
    MADV_KEEPONFORK,
    MADV_PAGEOUT,
    MADV_POPULATE_READ,
    MADV_POPULATE_WRITE,
    MADV_REMOVE,
    MADV_WIPEONFORK,
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_POPULATE,
    MAP_PRIVATE,
    MAP_SHARED,
    MREMAP_DONTUNMAP,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PROT_EXEC,
    PROT_NONE,
    PROT_READ,
    VM_WRITE,
)
from ..experiments.ops import Op
from ..page import PG_ANON
from ..pagetable import pte_pfn, pte_present
from .driver import Driver
from .model import (
    FILE_PAGES_MAX,
    FILES,
    MAX_LIVE,
    MS_SYNC,
    RW,
    TOKEN_LEN,
    WINDOW,
    WINDOW_PAGES,
    P,
)

if TYPE_CHECKING:
    from hypothesis.strategies import DataObject

__all__ = ["Chooser", "DataChooser", "OpGenerator", "RandomChooser"]



class Chooser(Protocol):
    """Where random decisions come from (hypothesis data, or a seeded Random)."""

    def integer(self, lo: int, hi: int) -> int:
        """An integer in [lo, hi]; lower values should be the simpler choices."""


class RandomChooser:
    """Decisions from a seeded :class:`random.Random`."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def integer(self, lo: int, hi: int) -> int:
        """An integer in [lo, hi]."""
        return self.rng.randint(lo, hi)


class DataChooser:
    """Decisions drawn from hypothesis ``st.data()`` (so they shrink)."""

    def __init__(self, data: DataObject) -> None:
        self.data = data

    def integer(self, lo: int, hi: int) -> int:
        """An integer in [lo, hi], shrinking towards lo."""
        from hypothesis import strategies as st
        return int(self.data.draw(st.integers(lo, hi)))


class OpGenerator:
    """Draws valid-looking operations for the current state and applies them.

    Targets (processes, vmas, pages) are chosen from the machine's current state, but
    what each op must do is predicted by the :class:`ContentModel` alone.
    """

    #: Op kinds with their weights for :meth:`random_step`.
    WEIGHTS: ClassVar[dict[str, int]] = {
        "write": 24, "read": 10, "mmap": 10, "mremap": 10, "mprotect": 8,
        "try_to_unmap": 8, "fork": 6, "munmap": 5, "dontneed": 3, "exit": 2, "spawn": 1,
        "fork_tree": 2, "file_mmap": 5, "file_io": 4, "ftruncate": 1, "advise": 6,
    }
    #: madvise advice :meth:`advise` draws, over any range or inside one vma.
    RANGE_ADVICE = (MADV_FREE, MADV_COLD, MADV_PAGEOUT, MADV_GUARD_INSTALL,
                    MADV_GUARD_REMOVE)
    VMA_ADVICE = (MADV_REMOVE, MADV_WIPEONFORK, MADV_KEEPONFORK, MADV_POPULATE_READ,
                  MADV_POPULATE_WRITE)

    def __init__(self, driver: Driver, chooser: Chooser, max_live: int = MAX_LIVE) -> None:
        self.d = driver
        self.c = chooser
        self.max_live = max_live

    # --- choosing ----------------------------------------------------------------------

    def choice(self, seq: Sequence[Any]) -> Any:
        """One element of a non-empty sequence."""
        return seq[self.c.integer(0, len(seq) - 1)]

    def pid(self) -> int | None:
        """A live process (op-list pid), or None."""
        live = self.d.live()
        return self.choice(live) if live else None

    def _vmas(self, pid: int, writable: bool = False) -> list[tuple[int, int, int]]:
        vmas = [(v.start, v.end, v.flags) for v in self.d.proc(pid).mm.vmas]
        if writable:
            vmas = [v for v in vmas if v[2] & VM_WRITE]
        return vmas

    def page(self, pid: int, prefer_writable: bool = False) -> int | None:
        """A mapped page of ``pid`` (usually a writable one when asked)."""
        vmas = self._vmas(pid)
        if prefer_writable and self.c.integer(0, 3):
            vmas = self._vmas(pid, writable=True) or vmas
        if not vmas:
            return None
        start, end, _ = self.choice(vmas)
        return int(start + self.c.integer(0, (end - start) // P - 1) * P)

    def window_page(self) -> int:
        """A page of the shared address window."""
        return WINDOW + self.c.integer(0, WINDOW_PAGES - 1) * P

    def range(self, pid: int) -> tuple[int, int]:
        """(start, length) of a range starting in a vma, sometimes running past its end."""
        vmas = self._vmas(pid)
        if not vmas or not self.c.integer(0, 9):
            return self.window_page(), self.c.integer(1, 4) * P
        start, end, _ = self.choice(vmas)
        first = self.c.integer(0, (end - start) // P - 1)
        left = (end - start) // P - first
        return start + first * P, self.c.integer(1, left + 2) * P

    # --- operations ----------------------------------------------------------------------

    def spawn(self) -> None:
        """A new process (as after execve)."""
        if len(self.d.live()) < self.max_live:
            self.d.apply(Op("spawn", pid=self.d.new_pid()))

    def mmap(self) -> None:
        """An anonymous mapping: private or shared; no hint, a hint, or MAP_FIXED (often
        over existing mappings)."""
        pid = self.pid()
        if pid is None:
            return
        npages = self.c.integer(1, 6)
        shared = self.c.integer(0, 4) == 4
        prot = self.choice([RW, RW, RW, RW | PROT_EXEC, PROT_READ, PROT_NONE])
        placement = self.c.integer(0, 2)
        flags = MAP_ANONYMOUS | (MAP_SHARED if shared else MAP_PRIVATE)
        if not self.c.integer(0, 4):
            flags |= MAP_POPULATE
        addr = 0
        if placement:
            addr = self.window_page()
            if placement == 2:
                flags |= MAP_FIXED
        self.d.apply(Op("mmap", pid=pid, addr=addr, length=npages * P, prot=prot,
                        flags=flags))

    def munmap(self) -> None:
        """munmap of a range (whole vmas, parts, across holes)."""
        pid = self.pid()
        if pid is not None:
            addr, length = self.range(pid)
            self.d.apply(Op("munmap", pid=pid, addr=addr, length=length))

    def mprotect(self) -> None:
        """mprotect of a range: splits and merges vmas."""
        pid = self.pid()
        if pid is not None:
            addr, length = self.range(pid)
            prot = self.choice([PROT_READ, RW, RW, RW | PROT_EXEC, PROT_NONE])
            self.d.apply(Op("mprotect", pid=pid, addr=addr, length=length, prot=prot))

    def dontneed(self) -> None:
        """madvise(MADV_DONTNEED) of a range."""
        pid = self.pid()
        if pid is not None:
            addr, length = self.range(pid)
            self.d.apply(Op("madvise", pid=pid, addr=addr, length=length,
                            advice=MADV_DONTNEED))

    def advise(self) -> None:
        """madvise with the rest of the family: FREE, COLD, PAGEOUT and the guard pair
        over any range; REMOVE, WIPEONFORK/KEEPONFORK and POPULATE_READ/WRITE (on a
        writable vma) inside one vma, since their errors stop the walk at a vma that the
        model does not know about."""
        pid = self.pid()
        if pid is None:
            return
        advice = self.choice(self.RANGE_ADVICE + self.VMA_ADVICE)
        if advice in self.RANGE_ADVICE:
            addr, length = self.range(pid)
        else:
            vmas = self._vmas(pid, writable=advice == MADV_POPULATE_WRITE)
            if not vmas:
                return
            start, end, _ = self.choice(vmas)
            pages = (end - start) // P
            first = self.c.integer(0, pages - 1)
            addr, length = start + first * P, self.c.integer(1, pages - first) * P
        self.d.apply(Op("madvise", pid=pid, addr=addr, length=length, advice=advice))

    def mremap(self) -> None:
        """mremap: shrink, grow (in place or moving), move with MREMAP_FIXED, DONTUNMAP,
        the second half over the first (selftests/mm/rmap.c), or a multi-vma move."""
        pid = self.pid()
        if pid is None:
            return
        vmas = self._vmas(pid)
        if not vmas:
            return
        start, end, _ = self.choice(vmas)
        pages = (end - start) // P
        kind = self.c.integer(0, 5)
        first = self.c.integer(0, pages - 1)
        addr = start + first * P
        to_end = pages - first
        if kind == 0 and to_end >= 2:  # shrink in place
            old = self.c.integer(2, to_end)
            op = Op("mremap", pid=pid, addr=addr, length=old * P,
                    new_len=self.c.integer(1, old - 1) * P)
        elif kind <= 1:  # grow: in place when the gap allows, else move (MAYMOVE)
            op = Op("mremap", pid=pid, addr=addr, length=to_end * P,
                    new_len=(to_end + self.c.integer(1, 3)) * P,
                    flags=self.choice([MREMAP_MAYMOVE, 0]))
        elif kind == 2:  # move to a fixed address, maybe resizing
            old = self.c.integer(1, to_end)
            op = Op("mremap", pid=pid, addr=addr, length=old * P,
                    new_len=self.c.integer(1, old + 2) * P,
                    flags=MREMAP_MAYMOVE | MREMAP_FIXED, new_addr=self.window_page())
        elif kind == 3:  # MREMAP_DONTUNMAP, anywhere or fixed
            old = self.c.integer(1, to_end)
            fixed = self.c.integer(0, 1)
            op = Op("mremap", pid=pid, addr=addr, length=old * P, new_len=old * P,
                    flags=MREMAP_MAYMOVE | MREMAP_DONTUNMAP | (MREMAP_FIXED if fixed else 0),
                    new_addr=self.window_page() if fixed else 0)
        elif kind == 4 and pages >= 2:  # rmap.c: the second half over the first half
            half = pages // 2
            op = Op("mremap", pid=pid, addr=start + half * P, length=half * P,
                    new_len=half * P, flags=MREMAP_MAYMOVE | MREMAP_FIXED, new_addr=start)
        else:  # a multi-vma move of [start, some later vma's end) (remap_move, 6.17+)
            later = [v for v in vmas if v[0] >= start]
            _, last_end, _ = self.choice(later)
            length = last_end - start
            op = Op("mremap", pid=pid, addr=start, length=length, new_len=length,
                    flags=MREMAP_MAYMOVE | MREMAP_FIXED, new_addr=self.window_page())
        self.d.apply(op)

    def file_fd(self, pid: int) -> int | None:
        """A descriptor of ``pid`` for one of :data:`FILES`: the file is created (a few
        pages, each starting with a fresh token) and opened O_RDWR first when needed."""
        fd = self.choice(sorted(FILES))
        path = FILES[fd]
        if path not in self.d.model.files:
            self.d.apply(Op("create", pid=pid, path=path,
                            length=self.c.integer(1, FILE_PAGES_MAX) * P,
                            data=self.d.new_token()))
        if (pid, fd) not in self.d.player.fds:
            self.d.apply(Op("open", pid=pid, path=path, flags=os.O_RDWR, fd=fd))
        if pid not in self.d.player.procs or (pid, fd) not in self.d.player.fds:
            return None
        return int(fd)

    def file_mmap(self) -> None:
        """A file mapping, MAP_SHARED or MAP_PRIVATE, at a random page offset (it may
        reach past EOF); no hint, a hint, or MAP_FIXED."""
        pid = self.pid()
        fd = None if pid is None else self.file_fd(pid)
        if pid is None or fd is None:
            return
        npages = self.c.integer(1, 4)
        first = self.c.integer(0, FILE_PAGES_MAX - 1)
        flags = MAP_SHARED if self.c.integer(0, 1) else MAP_PRIVATE
        if not self.c.integer(0, 4):
            flags |= MAP_POPULATE
        prot = self.choice([RW, RW, RW, PROT_READ])
        placement = self.c.integer(0, 2)
        addr = 0
        if placement:
            addr = self.window_page()
            if placement == 2:
                flags |= MAP_FIXED
        self.d.apply(Op("mmap", pid=pid, addr=addr, length=npages * P, prot=prot,
                        flags=flags, fd=fd, offset=first * P))

    def file_io(self) -> None:
        """pwrite or pread of a page start, msync of a range, close, or try_to_unmap of
        every mapped page of a file."""
        pid = self.pid()
        fd = None if pid is None else self.file_fd(pid)
        if pid is None or fd is None:
            return
        kind = self.c.integer(0, 5)
        index = self.c.integer(0, FILE_PAGES_MAX)
        if kind <= 1:
            self.d.apply(Op("pwrite", pid=pid, fd=fd, data=self.d.new_token(),
                            offset=index * P))
        elif kind <= 3:
            self.d.apply(Op("pread", pid=pid, fd=fd, length=TOKEN_LEN, offset=index * P))
        elif kind == 4:
            addr, length = self.range(pid)
            self.d.apply(Op("msync", pid=pid, addr=addr, length=length, flags=MS_SYNC))
        elif self.c.integer(0, 1):
            self.d.apply(Op("close", pid=pid, fd=fd))
        else:
            self.d.apply(Op("reclaim", pid=pid, path=FILES[fd]))

    def ftruncate(self) -> None:
        """ftruncate to a whole number of pages: shrinking unmaps the pages past EOF from
        every mapping (SIGBUS there afterwards), growing adds zero pages."""
        pid = self.pid()
        fd = None if pid is None else self.file_fd(pid)
        if pid is not None and fd is not None:
            self.d.apply(Op("ftruncate", pid=pid, fd=fd,
                            length=self.c.integer(0, FILE_PAGES_MAX) * P))

    def fork(self) -> None:
        """fork of a random process."""
        pid = self.pid()
        if pid is not None and len(self.d.live()) < self.max_live:
            self.d.apply(Op("fork", pid=pid, child=self.d.new_pid()))

    def exit(self) -> None:
        """exit of a random process (its parent reaps it)."""
        pid = self.pid()
        if pid is not None:
            self.d.apply(Op("exit", pid=pid))

    def write(self, pid: int | None = None) -> None:
        """Store a fresh token at the start of a mapped page (SIGSEGV is fine)."""
        pid = self.pid() if pid is None else pid
        if pid is None or pid not in self.d.player.procs:  # (the OOM killer may have won)
            return
        addr = self.page(pid, prefer_writable=True)
        if addr is not None:
            self.d.apply(Op("write", pid=pid, addr=addr, data=self.d.new_token()))

    def read(self) -> None:
        """Load the token at the start of a mapped page and compare it with the model."""
        pid = self.pid()
        if pid is None:
            return
        addr = self.page(pid)
        if addr is not None:
            self.d.apply(Op("read", pid=pid, addr=addr, length=TOKEN_LEN))

    def try_to_unmap(self) -> None:
        """try_to_unmap() of one mapped page (usually anonymous) through the rmap walk."""
        pid = self.pid()
        if pid is None:
            return
        proc = self.d.proc(pid)
        physmem = self.d.machine.physmem
        anon: list[int] = []
        other: list[int] = []
        for vpn, pte in proc.mm.pgtable.items():
            if pte_present(pte) and pte_pfn(pte) != physmem.ZERO_PFN:
                page = physmem.page(pte_pfn(pte))
                (anon if page is not None and page.flags & PG_ANON else other).append(vpn * P)
        pool = anon if anon and (not other or self.c.integer(0, 3)) else other
        if pool:
            self.d.apply(Op("reclaim", pid=pid, addr=self.choice(pool), length=P))

    def fork_tree(self, height: int | None = None, max_children: int = 3) -> None:
        """A random fork tree below a random process (selftests/mm/rmap.c): each node
        forks up to ``max_children`` children, ``height`` levels deep, and every new
        process writes its own token to one of its pages."""
        root = self.pid()
        if root is None:
            return
        height = self.c.integer(1, 3) if height is None else height
        level = [root]
        for _ in range(height):
            nxt = []
            for parent in level:
                for _ in range(self.c.integer(0, max_children)):
                    if len(self.d.live()) >= self.max_live or parent not in self.d.player.procs:
                        break
                    child = self.d.new_pid()
                    self.d.apply(Op("fork", pid=parent, child=child))
                    self.write(child)
                    nxt.append(child)
            level = nxt
            if not level:
                break

    def step(self, kind: str) -> None:
        """Run one op of kind ``kind`` (a key of :attr:`WEIGHTS`)."""
        getattr(self, kind)()

    def random_step(self) -> None:
        """One op of a kind drawn by :attr:`WEIGHTS` (spawns when nobody is alive)."""
        if not self.d.live():
            self.spawn()
            return
        total = sum(self.WEIGHTS.values())
        pick = self.c.integer(0, total - 1)
        for kind, weight in self.WEIGHTS.items():
            if pick < weight:
                self.step(kind)
                return
            pick -= weight
