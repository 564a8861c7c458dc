"""The trace format: JSON Lines of :class:`~mmcore.experiments.ops.Op`, after a provenance header.

A trace file is UTF-8 text, one JSON object per line (blank lines are ignored)::

    {"format": "mmcore-trace", "version": 1, "source": "perf", "command": ["ls"], ...}
    {"op": "spawn", "pid": 4242, "extra": {"exec": "/usr/bin/ls", "brk_start": 94...}}
    {"op": "mmap", "pid": 4242, "length": 8192, "prot": 3, "flags": 34, "ret": 1398...}
    {"op": "write", "pid": 4242, "addr": 1398...}

The first line is the :class:`TraceHeader` (optional when reading: a trace written by hand may
start with its first op). Every other line is one Op as dataclasses-json maps it
(``Op.to_dict()`` / ``Op.from_dict()``, field for field; the per-op path is done by hand
because those calls cost 0.15-1 ms per op); fields left at their default are omitted,
except those an op needs (:data:`OP_REQUIRED`). The header goes through dataclasses-json.
Reading validates every line and fails with one :class:`TraceError` naming the file and
the line, e.g. ``trace.jsonl:17: unknown op 'mmapp'``.

This module also holds :class:`TraceBuilder`, the back end shared by the strace and perf
importers: it turns the syscalls, faults, forks and exits of real tasks into Ops, keeping
per-process knowledge of what the trace has mapped (faults elsewhere are skipped and counted).
"""

from __future__ import annotations

import bisect
import datetime
import gzip
import io
import json
import platform
import typing
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import IO, Any

from dataclasses_json import DataClassJsonMixin

from ..atomicfile import atomic_path
from ..constants import (
    MAP_ANONYMOUS,
    MAP_DENYWRITE,
    MAP_EXECUTABLE,
    MAP_SHARED,
    MAP_SHARED_VALIDATE,
    MAP_TYPE,
    MAX_LFS_FILESIZE,
    MREMAP_DONTUNMAP,
    PAGE_MASK,
    PAGE_SIZE,
    page_align,
)
from ..errors import ConfigError
from .ops import OP_FIELDS, Op
from .shape import describe, has_type

__all__ = [
    "TRACE_FORMAT",
    "TRACE_VERSION",
    "TRACE_VERSION_MAX",
    "FILE_OPS",
    "OP_REQUIRED",
    "MAX_FILE_SIZE",
    "MAX_OP_PAGES",
    "CLONE_VM",
    "CLONE_VFORK",
    "CLONE_THREAD",
    "TraceError",
    "TraceHeader",
    "new_header",
    "trace_version",
    "op_to_dict",
    "op_from_dict",
    "read_trace",
    "write_trace",
    "dumps_trace",
    "Regions",
    "Syscall",
    "TraceBuilder",
    "WORD_BITS",
    "check_word",
]

#: The ``format`` value of every header.
TRACE_FORMAT = "mmcore-trace"
#: The version of a trace that uses only the version-1 vocabulary (every trace the
#: importers make): what a new header says and what :func:`write_trace` writes for it.
TRACE_VERSION = 1
#: The newest format version this module reads. Version 2 adds files: the ops ``create``,
#: ``open``, ``close``, ``pread``, ``pwrite``, ``ftruncate``, ``msync`` and ``fsync``, an
#: ``mmap`` of a descriptor (``fd``, ``offset``) and a ``reclaim`` of a file (``path``).
#: :func:`write_trace` writes the lowest version that can hold the ops.
TRACE_VERSION_MAX = 2

#: The ops that exist only from format version 2 on.
FILE_OPS = ("create", "open", "close", "pread", "pwrite", "ftruncate", "msync", "fsync")

#: Fields that are always written for an op and must be present when it is read (a value
#: equal to the default, such as ``addr`` 0 or ``prot`` PROT_NONE, is still meaningful).
OP_REQUIRED: dict[str, tuple[str, ...]] = {
    "spawn": (),
    "fork": ("child",),
    "exec": (),
    "exit": (),
    "mmap": ("length", "prot", "flags"),
    "munmap": ("addr", "length"),
    "mprotect": ("addr", "length", "prot"),
    "mremap": ("addr", "length", "new_len"),
    "madvise": ("addr", "length", "advice"),
    "mlock": ("addr", "length"),
    "munlock": ("addr", "length"),
    "brk": ("addr",),
    "write": ("addr",),
    "read": ("addr",),
    "reclaim": (),
    "create": ("path", "length"),
    "open": ("path", "flags", "fd"),
    "close": ("fd",),
    "pread": ("fd", "length", "offset"),
    "pwrite": ("fd", "offset"),
    "ftruncate": ("fd", "length"),
    "msync": ("addr", "length", "flags"),
    "fsync": ("fd",),
}

#: The largest file a trace may create or address (the core's MAX_LFS_FILESIZE).
MAX_FILE_SIZE = MAX_LFS_FILESIZE
#: Per-op limit: the most pages one ``read`` or ``write`` op may touch (4 GiB). Each page
#: is a real access, so a longer op is one line that runs for hours; split it instead.
MAX_OP_PAGES = 1 << 20

# clone(2) flags (include/uapi/linux/sched.h) the importers need.
CLONE_VM = 0x00000100
CLONE_VFORK = 0x00004000
CLONE_THREAD = 0x00010000


class TraceError(ConfigError):
    """A trace (or a raw strace/perf log) that cannot be read; the message names the file
    and line: ``"trace.jsonl:17: unknown op 'mmapp'"``."""


@dataclass
class TraceHeader(DataClassJsonMixin):
    """The first line of a trace: what it is and where it came from.

    ``source`` is the producer (``"strace"``, ``"perf"``, ``"workload"``, ``"hand"``);
    ``command`` the traced program's argv; ``recorded_with`` the tool command lines used;
    ``kernel`` the ``uname -r`` of the machine that ran the program; ``import_skipped``
    counts what the importer left out, by reason; ``stats`` are importer counts (processes,
    threads, faults kept, stand-in mappings).
    """

    format: str = TRACE_FORMAT
    version: int = TRACE_VERSION
    source: str = "unknown"
    command: list[str] = field(default_factory=list)
    recorded_with: list[str] = field(default_factory=list)
    tool_version: str = ""
    kernel: str = ""
    arch: str = ""
    date: str = ""
    mmcore_version: str = ""
    notes: list[str] = field(default_factory=list)
    import_skipped: dict[str, int] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)


def _mmcore_version() -> str:
    from .. import __version__
    return __version__


def new_header(source: str, command: Iterable[str] = (), **kw: Any) -> TraceHeader:
    """A header for a trace made now on this machine: kernel release, architecture, date
    (UTC, ISO 8601) and mmcore version are filled in; ``kw`` sets any other field."""
    values: dict[str, Any] = {
        "source": source,
        "command": list(command),
        "kernel": platform.release(),
        "arch": platform.machine(),
        "date": datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat(),
        "mmcore_version": _mmcore_version(),
    }
    values.update(kw)
    return TraceHeader(**values)


# --- validation ---------------------------------------------------------------------------

_OP_HINTS: dict[str, Any] = typing.get_type_hints(Op)
_HEADER_HINTS: dict[str, Any] = typing.get_type_hints(TraceHeader)
_OP_FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Op))
_OP_DEFAULTS: dict[str, Any] = {
    f.name: f.default for f in fields(Op) if f.name not in ("op", "extra")
}


def _check_fields(data: dict[str, Any], hints: dict[str, Any]) -> None:
    for key, value in data.items():
        if key not in hints:
            raise ValueError(f"unknown field {key!r}")
        if not has_type(value, hints[key]):
            raise ValueError(f"field {key!r} must be {describe(hints[key])}")


def op_from_dict(data: Any) -> Op:
    """Validate one decoded JSON line and build the Op (ValueError says what is wrong)."""
    if not isinstance(data, dict):
        raise ValueError("an op line must be a JSON object")
    if "op" not in data:
        raise ValueError("missing field 'op'")
    name = data["op"]
    if not isinstance(name, str):
        raise ValueError("field 'op' must be a string")
    if name not in OP_FIELDS:
        raise ValueError(f"unknown op {name!r} (choose one of: {', '.join(OP_FIELDS)})")
    _check_fields(data, _OP_HINTS)
    for req in OP_REQUIRED[name]:
        if req not in data:
            raise ValueError(f"op {name!r} needs field {req!r}")
    _check_limits(name, data.get("length", 0))
    # Validated field by field above, so the dataclass is built directly: Op.from_dict
    # gives the same Op but re-evaluates the string annotations on every call (~1 ms/op).
    if "extra" in data:
        data = {**data, "extra": dict(data["extra"])}
    return Op(**data)


def _check_limits(name: str, length: int) -> None:
    """The per-op limits: a ``create`` is a file size, a ``read``/``write`` touches at
    most :data:`MAX_OP_PAGES` pages."""
    if name == "create" and not 0 <= length <= MAX_FILE_SIZE:
        raise ValueError(f"op 'create': length {length} is not a file size "
                         f"(0 to 2**63 - 1)")
    if name in ("read", "write") and length > MAX_OP_PAGES * PAGE_SIZE:
        raise ValueError(f"op {name!r}: length {length} covers more than {MAX_OP_PAGES} "
                         f"pages, the per-op limit; split it into smaller ops")


def op_to_dict(op: Op) -> dict[str, Any]:
    """The JSON object of one op: ``op``, ``pid``, the fields the op requires, and every
    other field that differs from its default."""
    need = set(OP_REQUIRED.get(op.op, ())) | {"op", "pid"}
    out: dict[str, Any] = {}
    for key in _OP_FIELD_NAMES:  # the keys of Op.to_dict(), without its ~150 us per op
        value = getattr(op, key)
        if key == "extra":
            value = dict(value)
        if key in need or (key == "extra" and value) or \
                (key not in ("op", "extra") and value != _OP_DEFAULTS[key]):
            out[key] = value
    return out


def _header_from_dict(data: dict[str, Any]) -> TraceHeader:
    if data.get("format") != TRACE_FORMAT:
        raise ValueError(f"not an mmcore trace header (field 'format' must be "
                         f"{TRACE_FORMAT!r})")
    _check_fields(data, _HEADER_HINTS)
    if data.get("version", TRACE_VERSION) > TRACE_VERSION_MAX:
        raise ValueError(f"trace format version {data['version']} is newer than this "
                         f"mmcore reads ({TRACE_VERSION_MAX})")
    return TraceHeader.from_dict(data)


def trace_version(ops: Iterable[Op]) -> int:
    """The lowest format version that holds ``ops``: 2 if any op uses files (a file op,
    an mmap of a descriptor, a reclaim of a file), else 1."""
    for op in ops:
        if op.op in FILE_OPS or (op.op == "mmap" and op.fd >= 0) \
                or (op.op == "reclaim" and op.path):
            return 2
    return TRACE_VERSION


# --- reading and writing ------------------------------------------------------------------

def _open_binary(path: Path) -> IO[bytes]:
    if path.suffix == ".gz":
        return typing.cast(IO[bytes], gzip.open(path, "rb"))
    return open(path, "rb")


def _decoded(lines: Iterable[bytes], name: str) -> Iterator[str]:
    """Each line as UTF-8 text; TraceError names the first line that is not."""
    for lineno, raw in enumerate(lines, 1):
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise TraceError(f"{name}:{lineno}: not UTF-8 text ({exc.reason} at byte "
                             f"{exc.start})") from None


def _json_line(line: str) -> Any:
    """One line of JSON; ValueError (never RecursionError) for what cannot be decoded."""
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc.msg} (column {exc.colno})") from None
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def parse_trace(lines: Iterable[str], name: str = "<trace>") -> tuple[TraceHeader, list[Op]]:
    """Parse trace text given as lines; ``name`` prefixes error messages."""
    header: TraceHeader | None = None
    ops: list[Op] = []
    seen_first = False
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = _json_line(line)
            if isinstance(data, dict) and "format" in data:
                if seen_first:
                    raise ValueError("a header is only allowed on the first line")
                header = _header_from_dict(data)
            else:
                ops.append(op_from_dict(data))
        except ValueError as exc:
            raise TraceError(f"{name}:{lineno}: {exc}") from None
        seen_first = True
    if header is None:
        header = TraceHeader(notes=["the trace has no header line"])
    return header, ops


def read_trace(path: str | Path) -> tuple[TraceHeader, list[Op]]:
    """Read a trace file (``.jsonl``, or ``.jsonl.gz``): its header and its ops.

    Raises :class:`TraceError` with ``"FILE:LINE: what is wrong"`` for the first bad line,
    and for a file that cannot be opened or decoded.
    """
    p = Path(path)
    try:
        with _open_binary(p) as fh:
            return parse_trace(_decoded(fh, str(path)), str(path))
    except OSError as exc:  # gzip.BadGzipFile too
        raise TraceError(f"{path}: {exc.strerror or exc}") from None
    except (EOFError, zlib.error) as exc:
        raise TraceError(f"{path}: truncated or corrupt gzip data ({exc})") from None


def iter_trace_lines(header: TraceHeader, ops: Iterable[Op]) -> Iterator[str]:
    """The lines of a trace (each ending in a newline); the header's ``version`` is
    written as :func:`trace_version` of the ops."""
    ops = list(ops)
    head = header.to_dict(encode_json=False)
    head["version"] = trace_version(ops)
    yield json.dumps(head, separators=(",", ":")) + "\n"
    for op in ops:
        yield json.dumps(op_to_dict(op), separators=(",", ":")) + "\n"


def dumps_trace(header: TraceHeader, ops: Iterable[Op]) -> str:
    """A whole trace as one string."""
    return "".join(iter_trace_lines(header, ops))


def write_trace(path: str | Path, header: TraceHeader, ops: Iterable[Op]) -> None:
    """Write ``header`` then one line per op (gzip-compressed if ``path`` ends in .gz),
    atomically: an error part-way leaves no file (and an existing one untouched)."""
    target = Path(path)
    with atomic_path(target) as tmp, open(tmp, "wb") as raw:
        if target.suffix == ".gz":  # the gzip header names the trace, not the temporary
            with gzip.GzipFile(filename=target.name, mode="wb", fileobj=raw) as gz, \
                    io.TextIOWrapper(gz, encoding="utf-8") as fh:
                fh.writelines(iter_trace_lines(header, ops))
        else:
            with io.TextIOWrapper(raw, encoding="utf-8") as fh:
                fh.writelines(iter_trace_lines(header, ops))


# --- the importers' back end --------------------------------------------------------------

class Regions:
    """A set of page ranges, kept as sorted disjoint ``[start, end)`` intervals: what a
    trace has mapped in one process (so faults elsewhere can be skipped)."""

    def __init__(self, spans: Iterable[tuple[int, int]] = ()) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []
        for s, e in spans:
            self.add(s, e)

    def copy(self) -> Regions:
        """An independent copy (fork)."""
        r = Regions()
        r.starts, r.ends = list(self.starts), list(self.ends)
        return r

    def clear(self) -> None:
        """Forget everything (exec)."""
        self.starts.clear()
        self.ends.clear()

    def add(self, start: int, end: int) -> None:
        """Add [start, end), merging with touching or overlapping intervals."""
        if end <= start:
            return
        i = bisect.bisect_left(self.ends, start)  # first interval ending at/after start
        j = bisect.bisect_right(self.starts, end)  # intervals starting at/before end
        if i < j:
            start = min(start, self.starts[i])
            end = max(end, self.ends[j - 1])
        self.starts[i:j] = [start]
        self.ends[i:j] = [end]

    def remove(self, start: int, end: int) -> None:
        """Remove [start, end), splitting intervals as needed."""
        if end <= start:
            return
        i = bisect.bisect_right(self.ends, start)
        j = bisect.bisect_left(self.starts, end)
        if i >= j:
            return
        keep: list[tuple[int, int]] = []
        if self.starts[i] < start:
            keep.append((self.starts[i], start))
        if self.ends[j - 1] > end:
            keep.append((end, self.ends[j - 1]))
        self.starts[i:j] = [s for s, _ in keep]
        self.ends[i:j] = [e for _, e in keep]

    def __contains__(self, addr: object) -> bool:
        if not isinstance(addr, int):
            return False
        i = bisect.bisect_right(self.starts, addr) - 1
        return i >= 0 and addr < self.ends[i]

    def spans(self) -> list[tuple[int, int]]:
        """The intervals, in address order."""
        return list(zip(self.starts, self.ends, strict=True))


#: The width of a register: what a syscall argument or return value can hold.
WORD_BITS = 64


def check_word(value: int, text: str) -> int:
    """``value`` if a 64-bit register holds it (signed or unsigned), else ValueError
    quoting ``text``: an importer's input with a wider number is not a tool's output."""
    if not -(1 << (WORD_BITS - 1)) <= value < 1 << WORD_BITS:
        raise ValueError(f"{text[:40]!r} does not fit in a 64-bit register")
    return value


@dataclass
class Syscall:
    """One completed system call of a real task, as an importer decoded it.

    ``args`` are named as in the kernel's prototypes (mmap: addr, length, prot, flags, fd,
    offset); ``ret`` is the return value (None when the tool printed ``?``); ``errno`` the
    error name when the call failed; ``path`` the file behind an mmap's fd, when known.
    """

    tid: int
    name: str
    args: dict[str, int] = field(default_factory=dict)
    ret: int | None = None
    errno: str | None = None
    path: str | None = None


@dataclass
class _Proc:
    pid: int
    regions: Regions = field(default_factory=Regions)
    start_op: Op | None = None
    ops_since_start: int = 0
    brk: int | None = None


#: Names the importers accept for each modelled memory syscall.
_MEMORY_SYSCALLS = frozenset({
    "mmap", "mmap2", "munmap", "mprotect", "pkey_mprotect", "mremap", "madvise", "mlock",
    "mlock2", "munlock", "brk",
})


class TraceBuilder:
    """Turn the events of real tasks into Ops (the back end of the strace and perf
    importers).

    Tasks are mapped to trace processes: a task created without ``CLONE_VM`` is a new
    process (an ``fork`` op); a ``CLONE_VM`` task (a thread, or a vfork child until it
    execs) acts on its creator's address space. A task first seen without a fork is
    ``spawn``-ed. A file mapping is written as a stand-in: an anonymous mapping of the
    same size, protection and sharing type, with ``extra = {"file", "stand_in": True,
    "offset", "fd", "file_flags"}`` (the path, the offset, the descriptor and the
    kernel's flags), which the replay turns into a mapping of a stand-in file (format 1
    holds no file contents, and an older replay still maps the anonymous stand-in).
    Faults are kept only where the trace itself has mapped the page: the kernel's own
    setup (the binary, ld.so, the stack, the vdso) never appears in the syscall stream, so
    faults there are counted in :attr:`skipped` as "no mapping in trace".
    """

    def __init__(self, max_faults: int | None = None) -> None:
        self.ops: list[Op] = []
        self.skipped: dict[str, int] = {}
        self.stats: dict[str, int] = {}
        self.procs: dict[int, _Proc] = {}
        self.owner: dict[int, int] = {}
        self.alias_kind: dict[int, str] = {}
        self.max_faults = max_faults
        self.faults_kept = 0
        #: Tasks whose process exited (perf can order another thread's last events
        #: after the exit_group); their later events are skipped, not spawned anew.
        self.dead: set[int] = set()

    # -- bookkeeping --

    def skip(self, reason: str, n: int = 1) -> None:
        """Count ``n`` events left out for ``reason``."""
        self.skipped[reason] = self.skipped.get(reason, 0) + n

    def _count(self, key: str) -> None:
        self.stats[key] = self.stats.get(key, 0) + 1

    def _emit(self, op: Op) -> None:
        self.ops.append(op)
        proc = self.procs.get(op.pid)
        if proc is not None:
            proc.ops_since_start += 1

    def _new_proc(self, pid: int, start_op: Op | None) -> _Proc:
        proc = _Proc(pid)
        self.procs[pid] = proc
        self.owner[pid] = pid
        self.alias_kind.pop(pid, None)
        if start_op is not None:
            self.ops.append(start_op)
            proc.start_op = start_op
        self._count("processes")
        return proc

    def resolve(self, tid: int) -> _Proc:
        """The trace process whose address space task ``tid`` uses (spawned if new)."""
        pid = self.owner.get(tid)
        if pid is not None:
            return self.procs[pid]
        return self._new_proc(tid, Op("spawn", pid=tid))

    # -- process lifecycle --

    def fork(self, parent_tid: int, child_tid: int, flags: int) -> None:
        """A task created a task (clone/fork/vfork returned ``child_tid``)."""
        parent = self.resolve(parent_tid)
        self.dead.discard(child_tid)
        if child_tid in self.owner:
            self.skip("fork: child task already seen")
            return
        if flags & CLONE_VM:
            self.owner[child_tid] = parent.pid
            kind = "thread" if flags & CLONE_THREAD else "vm"
            self.alias_kind[child_tid] = kind
            self._count("threads" if kind == "thread" else "clone_vm_children")
            return
        self._emit(Op("fork", pid=parent.pid, child=child_tid))
        child = self._new_proc(child_tid, None)
        child.regions = parent.regions.copy()
        child.brk = parent.brk

    def exec(self, tid: int, path: str) -> None:
        """Task ``tid`` completed an execve of ``path``: a fresh address space."""
        self.dead.discard(tid)
        kind = self.alias_kind.get(tid)
        if kind == "vm":  # a vfork child leaves its parent's mm
            parent_pid = self.owner[tid]
            del self.owner[tid]
            del self.alias_kind[tid]
            self._new_proc(tid, Op("spawn", pid=tid,
                                   extra={"exec": path, "vfork_of": parent_pid}))
            return
        if tid not in self.owner:
            self._new_proc(tid, Op("spawn", pid=tid, extra={"exec": path}))
            return
        proc = self.resolve(tid)
        start = proc.start_op
        if start is not None and start.op == "spawn" and proc.ops_since_start == 0 \
                and "exec" not in start.extra:
            start.extra["exec"] = path  # the first thing a spawned task did was exec
        else:
            op = Op("exec", pid=proc.pid, extra={"exec": path})
            self._emit(op)
            proc.start_op = op
            proc.ops_since_start = 0
        proc.regions.clear()
        proc.brk = None

    def exit_group(self, tid: int) -> None:
        """exit_group(2) (or the death of a process's last task): the process exits."""
        if tid not in self.owner:
            return
        if self.alias_kind.get(tid) == "vm":  # a vfork child that never exec'd
            del self.owner[tid]
            del self.alias_kind[tid]
            return
        pid = self.owner[tid]
        self._emit(Op("exit", pid=pid))
        for t in [t for t, p in self.owner.items() if p == pid]:
            del self.owner[t]
            self.alias_kind.pop(t, None)
            self.dead.add(t)
        del self.procs[pid]

    def task_exit(self, tid: int, group_dead: bool | None = None) -> None:
        """One task died (strace ``+++ exited``, perf sched_process_exit): a thread or
        vfork child goes away; a process leader (or ``group_dead``) ends the process."""
        if tid not in self.owner:
            return
        if group_dead or (tid == self.owner[tid] and group_dead is None):
            self.exit_group(tid)
        elif tid != self.owner[tid]:
            del self.owner[tid]
            self.alias_kind.pop(tid, None)

    # -- memory --

    def fault(self, tid: int, addr: int, write: bool) -> None:
        """A user page fault at ``addr``: a read or write op on its page, if mapped."""
        kind = "write" if write else "read"
        if tid in self.dead:
            self.skip(f"{kind} fault: after its process exited")
            return
        proc = self.resolve(tid)
        page = addr & PAGE_MASK
        if page not in proc.regions:
            self.skip(f"{kind} fault: no mapping in trace")
            return
        if self.max_faults is not None and self.faults_kept >= self.max_faults:
            self.skip(f"{kind} fault: over the max_faults limit")
            return
        self.faults_kept += 1
        self._emit(Op(kind, pid=proc.pid, addr=page))

    def syscall(self, sc: Syscall) -> None:
        """A completed memory syscall: one op, and the process's known regions updated."""
        name = "mmap" if sc.name == "mmap2" else sc.name
        if name not in _MEMORY_SYSCALLS:
            self.skip(f"{name}: not in the op vocabulary")
            return
        if sc.tid in self.dead:
            self.skip(f"{name}: after its process exited")
            return
        proc = self.resolve(sc.tid)
        a = sc.args
        if sc.ret is None and sc.errno is None:
            self.skip(f"{name}: no return value (unfinished)")
            return
        ok = sc.errno is None
        extra: dict[str, Any] = {} if ok else {"errno": sc.errno}
        r = proc.regions
        if name == "mmap":
            flags = a.get("flags", 0)
            length = a.get("length", 0)
            op = Op("mmap", pid=proc.pid, addr=a.get("addr", 0), length=length,
                    prot=a.get("prot", 0), flags=flags, ret=sc.ret if ok else None,
                    extra=extra)
            if not flags & MAP_ANONYMOUS:
                fd = a.get("fd", -1)
                op.flags = _stand_in_flags(flags)
                op.extra.update({"file": sc.path or f"fd:{fd}", "stand_in": True,
                                 "offset": a.get("offset", 0), "fd": fd,
                                 "file_flags": flags})
                self._count("stand_in_mappings")
            if ok and sc.ret is not None:
                r.add(sc.ret, sc.ret + page_align(length))
        elif name == "munmap":
            op = Op("munmap", pid=proc.pid, addr=a["addr"], length=a["length"], extra=extra)
            if ok:
                r.remove(a["addr"], a["addr"] + page_align(a["length"]))
        elif name in ("mprotect", "pkey_mprotect"):
            op = Op("mprotect", pid=proc.pid, addr=a["addr"], length=a["length"],
                    prot=a["prot"], extra=extra)
            if name == "pkey_mprotect":
                op.extra["pkey"] = a.get("pkey", -1)
        elif name == "mremap":
            old, new = a["addr"], a.get("new_addr", 0)
            op = Op("mremap", pid=proc.pid, addr=old, length=a["old_len"],
                    new_len=a["new_len"], flags=a["flags"], new_addr=new,
                    ret=sc.ret if ok else None, extra=extra)
            if ok and sc.ret is not None:
                old_len, new_len = page_align(a["old_len"]), page_align(a["new_len"])
                if sc.ret == old:
                    if new_len < old_len:
                        r.remove(old + new_len, old + old_len)
                    r.add(old, old + new_len)
                else:
                    if old_len and not a["flags"] & MREMAP_DONTUNMAP:
                        r.remove(old, old + old_len)
                    r.add(sc.ret, sc.ret + new_len)
        elif name == "madvise":
            op = Op("madvise", pid=proc.pid, addr=a["addr"], length=a["length"],
                    advice=a["advice"], extra=extra)
        elif name in ("mlock", "mlock2"):
            op = Op("mlock", pid=proc.pid, addr=a["addr"], length=a["length"],
                    flags=a.get("flags", 0), extra=extra)
        elif name == "munlock":
            op = Op("munlock", pid=proc.pid, addr=a["addr"], length=a["length"], extra=extra)
        else:  # brk
            op = Op("brk", pid=proc.pid, addr=a["addr"], ret=sc.ret, extra=extra)
            self._brk(proc, a["addr"], sc.ret)
        self._emit(op)

    def _brk(self, proc: _Proc, addr: int, ret: int | None) -> None:
        if ret is None:
            return
        if proc.brk is None:
            # The first brk of an address space: brk(NULL) returns mm->start_brk.
            if addr == 0 and proc.start_op is not None:
                proc.start_op.extra["brk_start"] = ret
            elif addr == 0:
                self.skip("brk: start of the heap unknown (no spawn or exec seen)")
            proc.brk = ret
            return
        old_end, new_end = page_align(proc.brk), page_align(ret)
        if new_end > old_end:
            proc.regions.add(old_end, new_end)
        elif new_end < old_end:
            proc.regions.remove(new_end, old_end)
        proc.brk = ret

    def finish(self) -> list[Op]:
        """The ops built so far; ``stats`` gains ``faults_kept`` and ``ops``."""
        self.stats["faults_kept"] = self.faults_kept
        self.stats["ops"] = len(self.ops)
        return self.ops


def _stand_in_flags(flags: int) -> int:
    """The anonymous flags standing in for a file mapping's: same sharing type, plus
    MAP_ANONYMOUS, minus the legacy file-only MAP_DENYWRITE/MAP_EXECUTABLE."""
    kind = flags & MAP_TYPE
    if kind == MAP_SHARED_VALIDATE:
        flags = (flags & ~MAP_TYPE) | MAP_SHARED
    return (flags & ~(MAP_DENYWRITE | MAP_EXECUTABLE)) | MAP_ANONYMOUS


assert PAGE_SIZE == 4096  # the importers assume 4 KiB pages (x86-64)
