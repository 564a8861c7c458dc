"""The operation vocabulary shared by workloads and traces, and its replay on a Machine.

An :class:`Op` is plain data (one JSON object per line in a trace). ``pid`` and ``child``
are the trace's own process ids; the :class:`Player` maps them to simulated processes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dataclasses_json import DataClassJsonMixin

from ..constants import MAP_FIXED, PAGE_SIZE
from ..costs import WalkCost
from ..errors import ENOENT, BusError, SegmentationFault, syscall_error
from ..machine import Machine
from ..pagetable import pte_pfn, pte_present
from ..process import Process


class CheckFailed(AssertionError):
    """A ``read`` op with expected ``data`` found other bytes: the simulation lost or
    mixed up memory contents."""

#: Every operation name with the Op fields it uses.
OP_FIELDS: dict[str, tuple[str, ...]] = {
    "spawn": ("pid",),
    "fork": ("pid", "child"),
    "exec": ("pid",),
    "exit": ("pid",),
    "mmap": ("pid", "addr", "length", "prot", "flags", "fd", "offset", "ret"),
    "munmap": ("pid", "addr", "length"),
    "mprotect": ("pid", "addr", "length", "prot"),
    "mremap": ("pid", "addr", "length", "new_len", "flags", "new_addr", "ret"),
    "madvise": ("pid", "addr", "length", "advice"),
    "mlock": ("pid", "addr", "length", "flags"),
    "munlock": ("pid", "addr", "length"),
    "brk": ("pid", "addr", "ret"),
    "write": ("pid", "addr", "length", "data"),
    "read": ("pid", "addr", "length", "data"),
    "reclaim": ("pid", "addr", "length", "path"),
    "create": ("path", "length", "data"),
    "open": ("pid", "path", "flags", "fd"),
    "close": ("pid", "fd"),
    "pread": ("pid", "fd", "length", "offset"),
    "pwrite": ("pid", "fd", "data", "offset"),
    "ftruncate": ("pid", "fd", "length"),
    "msync": ("pid", "addr", "length", "flags"),
    "fsync": ("pid", "fd"),
}


@dataclass
class Op(DataClassJsonMixin):
    """One step: a syscall, a memory access, or ``reclaim`` (try_to_unmap every page
    mapped in [addr, addr + length) of ``pid``; length 0 means every anonymous page of
    every process; with a ``path``, every mapped page of that file's page cache).
    ``create`` makes a file of ``length`` bytes (``data`` repeated, or zeros) before any
    process opens it. An ``mmap`` with ``fd >= 0`` maps that file.

    ``write`` stores ``data`` (or one byte 0x01) at the start of every page of
    [addr, addr + length); a ``read`` with ``data`` is its check: it loads ``len(data)``
    bytes at the start of every page of the range and compares them with ``data``
    (:class:`CheckFailed` in a strict Player, counted otherwise)."""

    op: str
    pid: int = 1
    addr: int = 0
    length: int = 0
    prot: int = 0
    flags: int = 0
    new_len: int = 0
    new_addr: int = 0
    advice: int = 0
    child: int = 0
    data: str = ""
    #: Files: the path (create, open), the trace's descriptor number (open, close, pread,
    #: pwrite, ftruncate, fsync, and mmap of a file), and the file offset.
    path: str = ""
    fd: int = -1
    offset: int = 0
    #: What the kernel returned (traces): mmap/mremap/brk results are replayed there.
    ret: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Player:
    """Apply ops to a Machine, keeping the trace-pid to process map.

    ``strict`` re-raises syscall errors, SIGSEGV, SIGBUS and failed checks; otherwise
    they are counted in ``errors``, ``segfaults``, ``sigbus`` and ``check_failures`` (a
    replayed trace may contain calls that failed in the real run too). ``checks`` counts
    the pages a ``read`` with ``data`` compared; ``anon_walk`` and ``file_walk`` add up
    the rmap walks that ``reclaim`` ops made for anonymous and for page-cache pages.
    """

    def __init__(self, machine: Machine, strict: bool = True) -> None:
        self.machine = machine
        self.procs: dict[int, Process] = {}
        #: (trace pid, trace fd) -> simulated fd.
        self.fds: dict[tuple[int, int], int] = {}
        self.strict = strict
        self.errors: dict[str, int] = {}
        self.segfaults = 0
        self.sigbus = 0
        self.checks = 0
        #: Failed checks, described (the first 20); ``check_failures`` counts them all.
        self.mismatches: list[str] = []
        self.check_failures = 0
        self.anon_walk = WalkCost()
        self.file_walk = WalkCost()

    def proc(self, pid: int) -> Process:
        """The simulated process standing for trace pid ``pid``."""
        try:
            return self.procs[pid]
        except KeyError:
            raise KeyError(f"pid {pid} is not running in this replay") from None

    def apply(self, op: Op) -> int | bytes | None:
        """Run one op and return its result (an address, bytes read, or None)."""
        try:
            return self._apply(op)
        except OSError as exc:
            if self.strict:
                raise
            key = f"{op.op}:{exc.errno}"
            self.errors[key] = self.errors.get(key, 0) + 1
            return None
        except SegmentationFault:
            if self.strict:
                raise
            self.segfaults += 1
            return None
        except BusError:
            if self.strict:
                raise
            self.sigbus += 1
            return None
        except CheckFailed as exc:
            if self.strict:
                raise
            self.check_failures += 1
            if len(self.mismatches) < 20:
                self.mismatches.append(str(exc))
            return None

    def _apply(self, op: Op) -> int | bytes | None:
        name = op.op
        if name == "spawn":
            self.procs[op.pid] = self.machine.spawn()
            return None
        if name == "create":
            self.machine.create_file(op.path, op.data.encode(), length=op.length)
            return None
        p = self.proc(op.pid)
        if name == "fork":
            self.procs[op.child] = p.fork()
            for (pid, tfd), fd in list(self.fds.items()):
                if pid == op.pid:
                    self.fds[(op.child, tfd)] = fd
            return None
        if name in ("open", "close", "pread", "pwrite", "ftruncate", "fsync"):
            return self._file_op(p, op)
        if name == "exec":
            p.execve()
            return None
        if name == "exit":
            p.exit(0)
            if p.parent is not None:
                p.parent.waitpid(p.pid)
            del self.procs[op.pid]
            return None
        if name == "mmap":
            fd = self.fds.get((op.pid, op.fd), -1) if op.fd >= 0 else -1
            if op.ret is not None:
                return p.mmap(op.ret, op.length, op.prot, op.flags | MAP_FIXED, fd, op.offset)
            return p.mmap(op.addr, op.length, op.prot, op.flags, fd, op.offset)
        if name == "munmap":
            p.munmap(op.addr, op.length)
        elif name == "mprotect":
            p.mprotect(op.addr, op.length, op.prot)
        elif name == "mremap":
            return p.mremap(op.addr, op.length, op.new_len, op.flags, op.new_addr)
        elif name == "madvise":
            p.madvise(op.addr, op.length, op.advice)
        elif name == "mlock":
            p.mlock(op.addr, op.length, op.flags)
        elif name == "munlock":
            p.munlock(op.addr, op.length)
        elif name == "brk":
            return p.brk(op.addr)
        elif name == "write":
            payload = op.data.encode() if op.data else b"\x01"
            p.touch_range(op.addr, max(op.length, 1), payload)
        elif name == "read":
            if op.data:
                return self._check(p, op)
            return p.read(op.addr, max(op.length, 1))
        elif name == "reclaim":
            self.reclaim(op)
        elif name == "msync":
            p.msync(op.addr, op.length, op.flags)
        else:
            raise ValueError(f"unknown op {name!r}: choose one of: " + ", ".join(OP_FIELDS))
        return None

    def _file_op(self, p: Process, op: Op) -> int | bytes | None:
        name = op.op
        if name == "open":
            fd = p.open(op.path, op.flags)
            self.fds[(op.pid, op.fd if op.fd >= 0 else fd)] = fd
            return fd
        fd = self.fds.get((op.pid, op.fd), -1)
        if name == "close":
            p.close(fd)
            self.fds.pop((op.pid, op.fd), None)
        elif name == "pread":
            return p.pread(fd, op.length, op.offset)
        elif name == "pwrite":
            return p.pwrite(fd, op.data.encode(), op.offset)
        elif name == "ftruncate":
            p.ftruncate(fd, op.length)
        else:
            p.fsync(fd)
        return None

    def _check(self, p: Process, op: Op) -> bytes:
        want = op.data.encode()
        got = b""
        for a in range(op.addr, op.addr + max(op.length, 1), PAGE_SIZE):
            got = p.read(a, len(want))
            self.checks += 1
            if got != want:
                raise CheckFailed(f"pid {op.pid} at {a:#x}: read {got[:32]!r}, "
                                  f"expected {want[:32]!r}")
        return got

    def reclaim(self, op: Op) -> None:
        """try_to_unmap every anonymous page in the range (or everywhere), or every
        mapped page of file ``op.path``."""
        m = self.machine
        if op.path:
            inode = m.files.get(op.path)
            if inode is None:
                raise syscall_error(ENOENT, "reclaim")
            pfns = [pg.pfn for _, pg in sorted(inode.pages.items()) if pg.mapcount]
        elif op.length == 0:
            pfns = [pg.pfn for pg in m.pages_in_use() if pg.is_anon and pg.mapcount]
        else:
            # The populated ptes of the range's pages, not every address: a huge length
            # costs what is mapped (walk_page_range() skips empty page tables too).
            first = op.addr // PAGE_SIZE
            last = first - (-op.length // PAGE_SIZE)
            pt = self.proc(op.pid).mm.pgtable
            pfns = [pte_pfn(pte) for _, pte in pt.range(first * PAGE_SIZE, last * PAGE_SIZE)
                    if pte_present(pte) and pte_pfn(pte) != m.physmem.ZERO_PFN]
        for pfn in dict.fromkeys(pfns):
            page = m.physmem.page(pfn)
            if page is not None and page.mapcount:
                walk = self.anon_walk if page.is_anon else self.file_walk
                walk.add(m.try_to_unmap(pfn).cost)
