"""Replay a trace on a Machine and report what happened, what was skipped and what it cost.

The replay honours what the kernel did in the recorded run:

* ``mmap`` ops with a ``ret`` are placed there (the Player maps MAP_FIXED at ``ret``);
* an ``mremap`` the kernel moved is replayed as ``MREMAP_MAYMOVE | MREMAP_FIXED`` to the
  address it returned; a ``brk`` the kernel refused or adjusted is replayed at its result;
* ``spawn`` and ``exec`` start the heap where the kernel did (``extra["brk_start"]``).

File mappings arrive as stand-ins (``extra["stand_in"]``, with the file, the offset, the
descriptor and the original flags): the trace does not hold the files' contents, so the
replay makes a *stand-in file* per path before the first op (``create``: as large as the
largest offset + length mapped, each page starting with the path, zeros after), opens it
in the mapping process at the trace's descriptor number (``O_RDONLY``, or ``O_RDWR`` if any
mapping of it is shared and writable; a descriptor that turns up with another path is
closed and reopened) and maps it with the kernel's flags and offset. Private file pages
are then page-cache pages until a write copies them (do_cow_fault), as in Linux.
``/dev/zero`` stays anonymous (Linux maps it as anonymous memory). These synthesised ops
are counted apart (``file_ops_synthesised``), not as trace ops; ``file_mappings=
"anonymous"`` replays stand-ins as anonymous memory instead, as format-1 replays did.
Traces of format 2 may also carry their own file ops (``create``, ``open``, a ``mmap`` with
``fd``): those are replayed as they are.

Ops on memory the trace never mapped (the binary, ld.so, the stack, the vdso: the kernel
maps them before the first traced syscall), ops the real run saw fail, and ops of
processes that are not running are skipped and counted by reason. Syscall errors the
simulator raises are counted by syscall and errno name, accesses it refuses as segfaults
(SIGSEGV) or ``sigbus`` (past the end of a file).
"""

from __future__ import annotations

import copy
import dataclasses
import errno as errno_mod
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dataclasses_json import DataClassJsonMixin

from ..constants import (
    DEFAULT_BRK_START,
    MAP_SHARED,
    MAP_SHARED_VALIDATE,
    MAP_TYPE,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PAGE_SIZE,
    PROT_WRITE,
    page_align,
)
from ..costs import Costs
from ..errors import ConfigError, MachineBroken
from ..machine import Machine
from .ops import Op, Player
from .trace import MAX_FILE_SIZE, TraceHeader, read_trace

__all__ = ["ReplayReport", "StandInFile", "replay", "replay_trace", "stand_in_files",
           "stand_in_data", "replay_from_spec", "FILE_MAPPINGS"]

_RANGE_OPS = ("munmap", "mprotect", "madvise", "mlock", "munlock")
#: How the replay maps a stand-in: as a mapping of a stand-in file, or (format 1's way)
#: as anonymous memory of the same size, protection and sharing type.
FILE_MAPPINGS = ("file", "anonymous")
#: Files Linux maps as anonymous memory (mmap_zero(): private is anonymous, shared is
#: shmem): their stand-ins stay anonymous.
ANONYMOUS_FILES = frozenset({"/dev/zero"})
#: The trace descriptor used for a stand-in whose ``extra`` has no ``fd`` (hand-written).
_NO_FD_BASE = 1 << 20


@dataclass
class StandInFile(DataClassJsonMixin):
    """A file the trace mapped: the size its stand-in has (the largest offset + length
    of a mapping that succeeded), how many mappings of it the trace made, how the replay
    opens it (``"r"``: O_RDONLY; ``"rw"``: O_RDWR, for a shared writable mapping), and
    whether it is mapped as anonymous memory instead (``/dev/zero``)."""

    path: str
    size: int = 0
    mappings: int = 0
    mode: str = "r"
    anonymous: bool = False


@dataclass
class ReplayReport(DataClassJsonMixin):
    """What :func:`replay` did with a trace on one configuration."""

    trace: str
    rmap: str
    mremap_policy: str | None
    ops_total: int = 0
    ops_applied: int = 0
    #: Ops the replay left out, by reason ("write: no mapping in trace").
    skipped: dict[str, int] = field(default_factory=dict)
    #: What the importer left out, by reason (from the trace header).
    import_skipped: dict[str, int] = field(default_factory=dict)
    #: Syscalls the simulator failed, by "syscall:ERRNO".
    errors: dict[str, int] = field(default_factory=dict)
    segfaults: int = 0
    #: Accesses past the end of a file (SIGBUS).
    sigbus: int = 0
    processes: int = 0
    stand_in_mappings: int = 0
    stand_in_files: list[StandInFile] = field(default_factory=list)
    #: How stand-ins were mapped: "file" or "anonymous" (see :data:`FILE_MAPPINGS`).
    file_mappings: str = "file"
    #: create/open/close ops the replay added for stand-in files (not in ``ops_total``).
    file_ops_synthesised: int = 0
    walks_checked: int = 0
    walk_mismatches: list[str] = field(default_factory=list)
    #: Why the replay stopped early (the machine was marked broken), else None.
    broken: str | None = None
    costs: Costs | None = None

    @property
    def skipped_total(self) -> int:
        """Every op skipped by the replay."""
        return sum(self.skipped.values())

    def summary(self) -> str:
        """A few lines for people."""
        cfg = self.rmap + (f"+{self.mremap_policy}" if self.mremap_policy else "")
        lines = [f"{self.trace} on {cfg}: {self.ops_applied}/{self.ops_total} ops applied, "
                 f"{self.skipped_total} skipped, {sum(self.errors.values())} syscall "
                 f"errors, {self.segfaults} segfaults, {self.processes} processes"
                 + (f", {self.sigbus} SIGBUS" if self.sigbus else "")]
        for title, table in (("skipped", self.skipped), ("skipped at import",
                                                         self.import_skipped),
                             ("errors", self.errors)):
            if table:
                lines.append(f"  {title}:")
                lines += [f"    {n:6d}  {k}" for k, n in sorted(table.items(),
                                                               key=lambda kv: -kv[1])]
        if self.stand_in_files:
            how = ("mapped as files" if self.file_mappings == "file"
                   else "mapped as anonymous memory")
            lines.append(f"  stand-in files ({self.stand_in_mappings} mappings, {how}; "
                         f"{self.file_ops_synthesised} create/open/close ops added):")
            lines += [f"    {f.size:10d}  {f.mode if not f.anonymous else 'anon':4s}  "
                      f"{f.path}" for f in self.stand_in_files]
        if self.walks_checked:
            lines.append(f"  rmap walks checked against the page tables: "
                         f"{self.walks_checked}, mismatches: {len(self.walk_mismatches)}")
        if self.costs is not None:
            c = self.costs
            file_faults = c.counters.fault_file_major + c.counters.fault_file_minor
            lines.append(f"  rmap metadata peak {c.rmap_peak_bytes} bytes; "
                         f"{c.counters.forks} forks, {c.counters.fault_anon} anon faults, "
                         f"{file_faults} file faults, {c.counters.fault_cow_copy} COW "
                         "copies")
        if self.broken:
            lines.append(f"  STOPPED: {self.broken}")
        return "\n".join(lines)


def stand_in_offset(op: Op) -> int:
    """The file offset of a stand-in mmap: ``extra["offset"]`` when it is an offset a
    file can have (an integer from 0 to MAX_LFS_FILESIZE), else 0 (a damaged trace)."""
    offset = op.extra.get("offset", 0)
    if isinstance(offset, int) and not isinstance(offset, bool) \
            and 0 <= offset <= MAX_FILE_SIZE:
        return offset
    return 0


def stand_in_data(path: str) -> str:
    """The ``data`` of a stand-in file's ``create`` op: one page that starts with the
    path and a newline, zeros after, so each page of the file starts with its name
    (and the simulator stores only those bytes per page)."""
    head = (path + "\n").encode("utf-8", "surrogateescape")[:PAGE_SIZE]
    text = head.decode("utf-8", "ignore")
    return text + "\0" * (PAGE_SIZE - len(text.encode("utf-8")))


def _shared_writable(op: Op) -> bool:
    flags = op.extra.get("file_flags", op.flags)
    kind = flags & MAP_TYPE if isinstance(flags, int) else 0
    return kind in (MAP_SHARED, MAP_SHARED_VALIDATE) and bool(op.prot & PROT_WRITE)


def stand_in_files(ops: list[Op]) -> tuple[int, list[StandInFile]]:
    """The stand-in mappings of ``ops`` (mmaps with ``extra["stand_in"]``) and, per file,
    its :class:`StandInFile`, sorted by path."""
    files: dict[str, StandInFile] = {}
    count = 0
    for op in ops:
        if op.op == "mmap" and op.extra.get("stand_in"):
            count += 1
            path = str(op.extra.get("file", "?"))
            f = files.setdefault(path, StandInFile(path, anonymous=path in ANONYMOUS_FILES))
            f.mappings += 1
            if op.ret is None or "errno" in op.extra:
                continue  # failed in the real run: never mapped
            f.size = max(f.size, stand_in_offset(op) + op.length)
            if _shared_writable(op):
                f.mode = "rw"
    return count, sorted(files.values(), key=lambda f: f.path)


class _Replayer:
    def __init__(self, machine: Machine, report: ReplayReport, check_walks: int,
                 check_every: int, seed: int, files: dict[str, StandInFile]) -> None:
        self.m = machine
        self.player = Player(machine, strict=False)
        self.report = report
        self.check_walks = check_walks
        self.check_every = check_every
        self.rng = random.Random(seed)
        self.as_files = report.file_mappings == "file"
        self.files = files
        #: (trace pid, trace fd) -> the stand-in path open there.
        self.open_paths: dict[tuple[int, int], str] = {}
        self.no_fd = {path: _NO_FD_BASE + i for i, path in enumerate(sorted(files))}

    def skip(self, reason: str) -> None:
        s = self.report.skipped
        s[reason] = s.get(reason, 0) + 1

    def skip_reason(self, op: Op) -> str | None:
        """Why ``op`` cannot be replayed here, or None."""
        procs = self.player.procs
        if op.op == "create":
            return None
        if op.op == "spawn":
            return "spawn: pid already running" if op.pid in procs else None
        if op.pid not in procs:
            return f"{op.op}: pid not running"
        if "errno" in op.extra:
            return f"{op.op}: failed in the real run"
        if op.op == "fork" and op.child in procs:
            return "fork: child pid already running"
        vmas = procs[op.pid].mm.vmas
        if op.op in ("write", "read"):
            mapped = vmas.lookup(op.addr) is not None
        elif op.op in _RANGE_OPS or op.op == "mremap":
            mapped = bool(vmas.intersecting(op.addr, op.addr + max(page_align(op.length), 1)))
        else:
            mapped = True
        return None if mapped else f"{op.op}: no mapping in trace"

    def synthesise(self, op: Op) -> None:
        """Apply an op the trace does not have (a stand-in file's create, open, close)."""
        self.report.file_ops_synthesised += 1
        self.player.apply(op)

    def create_files(self, ops: list[Op]) -> None:
        """Make every stand-in file the trace does not create itself."""
        if not self.as_files:
            return
        own = {op.path for op in ops if op.op == "create"}
        for f in self.files.values():
            if not f.anonymous and f.path not in own:
                self.synthesise(Op("create", path=f.path, length=f.size,
                                   data=stand_in_data(f.path)))

    def file_mmap(self, op: Op) -> Op:
        """A stand-in mmap as a mapping of its stand-in file, opened at the trace's fd."""
        path = str(op.extra.get("file", "?"))
        f = self.files.get(path)
        if not self.as_files or f is None or f.anonymous:
            return op
        fd = op.extra.get("fd")
        tfd = fd if isinstance(fd, int) and fd >= 0 else self.no_fd[path]
        key = (op.pid, tfd)
        current = self.open_paths.get(key)
        if current != path:
            if current is not None:
                self.synthesise(Op("close", pid=op.pid, fd=tfd))
            flags = os.O_RDWR if f.mode == "rw" else os.O_RDONLY
            self.synthesise(Op("open", pid=op.pid, path=path, flags=flags, fd=tfd))
            self.open_paths[key] = path
        file_flags = op.extra.get("file_flags", op.flags)
        return dataclasses.replace(op, flags=file_flags, fd=tfd,
                                   offset=stand_in_offset(op))

    def apply(self, op: Op) -> None:
        procs = self.player.procs
        if op.op == "spawn":
            procs[op.pid] = self.m.spawn(brk_start=op.extra.get("brk_start",
                                                                DEFAULT_BRK_START))
            self.report.processes += 1
            return
        if op.op == "exec":
            procs[op.pid].execve(op.extra.get("brk_start", DEFAULT_BRK_START))
            return
        if op.op == "exit":
            if self.check_walks:
                self.check()
            for key in [k for k in self.open_paths if k[0] == op.pid]:
                del self.open_paths[key]
        if op.op == "mremap" and op.ret is not None and op.ret != op.addr \
                and op.flags & MREMAP_MAYMOVE:
            op = dataclasses.replace(op, flags=op.flags | MREMAP_FIXED, new_addr=op.ret)
        elif op.op == "brk" and op.addr and op.ret is not None and op.ret != op.addr:
            op = dataclasses.replace(op, addr=op.ret)
        elif op.op == "fork":
            self.report.processes += 1
            for (pid, tfd), path in list(self.open_paths.items()):
                if pid == op.pid:
                    self.open_paths[(op.child, tfd)] = path
        elif op.op == "mmap" and op.extra.get("stand_in"):
            op = self.file_mmap(op)
        self.player.apply(op)

    def check(self) -> None:
        """rmap_walk == rmap_truth for a sample of mapped pages (walk costs untouched)."""
        m = self.m
        pages = [pg.pfn for pg in m.pages_in_use() if pg.mapcount]
        if not pages:
            return
        saved = copy.deepcopy(m.walk_cost)
        for pfn in self.rng.sample(pages, min(self.check_walks, len(pages))):
            walk = m.rmap_walk(pfn).mappings
            truth = m.rmap_truth(pfn)
            self.report.walks_checked += 1
            if walk != truth and len(self.report.walk_mismatches) < 20:
                self.report.walk_mismatches.append(
                    f"pfn {pfn}: walk found {_pairs(walk)}, page tables say "
                    f"{_pairs(truth)}")
        m.walk_cost = saved

    def run(self, ops: list[Op]) -> None:
        self.create_files(ops)
        n = 0
        for op in ops:
            self.report.ops_total += 1
            reason = self.skip_reason(op)
            if reason is not None:
                self.skip(reason)
                continue
            self.apply(op)
            self.report.ops_applied += 1
            n += 1
            if self.check_walks and self.check_every and n % self.check_every == 0:
                self.check()
        if self.check_walks:
            self.check()


def _pairs(mappings: list[tuple[int, int]]) -> str:
    """``[(pid, address), ...]`` for people: ``[pid 2 at 0x7f0000000000]``."""
    return "[" + ", ".join(f"pid {pid} at {addr:#x}" for pid, addr in mappings) + "]"


def replay(ops: list[Op], header: TraceHeader | None = None, *,
           rmap: str | type = "anon_vma_chain", mremap_policy: str | type | None = None,
           name: str = "<trace>", check_walks: int = 0, check_every: int = 1000,
           seed: int = 0, machine: Machine | None = None, file_mappings: str = "file",
           raise_broken: bool = False, **machine_kw: Any) -> ReplayReport:
    """Replay ``ops`` on a new Machine (non-strict) and report on it.

    ``check_walks`` > 0 compares the rmap walk with the brute-force page-table truth for
    that many sampled pages (anonymous and page-cache) before every exit, every
    ``check_every`` applied ops and at the end (the checks' walk costs are not counted).
    ``file_mappings`` says how stand-in mappings are replayed (:data:`FILE_MAPPINGS`:
    ``"file"``, mappings of stand-in files; ``"anonymous"``, anonymous memory).
    ``machine_kw`` goes to :class:`~mmcore.Machine` (``ram_pages``, ``file_rmap``,
    ``reclaim``, ``arch``...); or pass a fresh ``machine`` (then ``rmap``,
    ``mremap_policy`` and ``machine_kw`` are not used) to look at its state afterwards.
    A replay that breaks its machine stops there, with ``broken`` saying why; with
    ``raise_broken`` the :class:`~mmcore.MachineBroken` (naming the plugin and hook) is
    raised instead. Raises :class:`~mmcore.ConfigError` for an unknown
    ``file_mappings``.
    """
    if file_mappings not in FILE_MAPPINGS:
        raise ConfigError(f"unknown file_mappings {file_mappings!r}: choose one of: "
                          + ", ".join(FILE_MAPPINGS))
    if machine is None:
        machine = Machine(rmap, mremap_policy=mremap_policy, **machine_kw)
    report = ReplayReport(trace=name, rmap=machine.rmap_name,
                          mremap_policy=machine.mremap_policy_name,
                          file_mappings=file_mappings)
    if header is not None:
        report.import_skipped = dict(header.import_skipped)
    report.stand_in_mappings, report.stand_in_files = stand_in_files(ops)
    r = _Replayer(machine, report, check_walks, check_every, seed,
                  {f.path: f for f in report.stand_in_files})
    try:
        r.run(ops)
    except MachineBroken as exc:
        if raise_broken:
            raise
        report.broken = str(exc)
    for key, n in sorted(r.player.errors.items()):
        call, _, code = key.partition(":")
        name_ = errno_mod.errorcode.get(int(code), code) if code.isdigit() else code
        report.errors[f"{call}:{name_}"] = report.errors.get(f"{call}:{name_}", 0) + n
    report.segfaults = r.player.segfaults
    report.sigbus = r.player.sigbus
    report.costs = machine.costs()
    return report


def replay_trace(path: str | Path, **kw: Any) -> ReplayReport:
    """Read the trace at ``path`` and :func:`replay` it (same keyword arguments)."""
    header, ops = read_trace(path)
    kw.setdefault("name", Path(path).name)
    return replay(ops, header, **kw)


def replay_from_spec(spec: Mapping[str, Any]) -> ReplayReport:
    """The replay of a trace cell (:meth:`mmcore.experiments.cells.Cell.spec`): the trace
    at ``spec["trace"]`` on a Machine of the cell's plugins and arch, with its
    ``check_walks``, ``file_mappings`` and ``seed``. A machine the replay breaks raises
    :class:`~mmcore.MachineBroken`; ``trace_sha256`` (checked by the cell's worker) and a
    ``deadline`` (a replay is stopped by its time budget alone) are not used here."""
    kw = dict(spec)
    path = kw.pop("trace")
    for unused in ("trace_sha256", "deadline"):
        kw.pop(unused, None)
    machine = Machine(kw.pop("rmap"), mremap_policy=kw.pop("mremap_policy"),
                      file_rmap=kw.pop("file_rmap"), reclaim=kw.pop("reclaim"),
                      observers=kw.pop("observers"), arch=kw.pop("arch"))
    return replay_trace(path, machine=machine, raise_broken=True, **kw)
