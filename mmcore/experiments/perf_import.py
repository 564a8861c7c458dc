"""Import ``perf script`` output of user page faults and memory syscalls into the trace format.

Record with (all one command; :data:`PERF_EVENTS` lists the events)::

    perf record -d -e exceptions:page_fault_user -e sched:sched_process_fork \\
        -e sched:sched_process_exec -e sched:sched_process_exit \\
        -e syscalls:sys_enter_mmap -e syscalls:sys_exit_mmap ... -o raw.data -- COMMAND
    perf script -i raw.data --show-mmap-events -F comm,pid,tid,cpu,time,event,trace > raw.perf

and import ``raw.perf`` with :func:`import_perf`. Each line is
``comm pid/tid [cpu] time: event: fields`` (the default ``comm tid [cpu] time:`` form is
read too, but then threads created by clone3 cannot be told from processes).

What each event becomes:

* ``exceptions:page_fault_user`` ``address=A error_code=E``: a ``write`` op on A's page
  if bit 1 (write) of E is set, else a ``read`` (instruction fetches are reads); faults
  where the trace has mapped nothing are skipped and counted.
* ``syscalls:sys_enter_X`` / ``sys_exit_X`` pairs: the syscall with its return value
  (perf prints raw registers: ``0xfffffffffffffff4`` is -ENOMEM).
* ``sched:sched_process_fork``: a fork, or a thread when the clone had CLONE_VM;
  ``sched_process_exec``: an exec; ``sched_process_exit`` with ``group_dead=true``: an exit.
* ``PERF_RECORD_MMAP2`` (``perf record -d`` with ``--show-mmap-events``): the path of the
  file an mmap maps, since the syscall tracepoints only show the fd; it names the stand-in
  file the replay maps there (``fd:N`` without it).
"""

from __future__ import annotations

import errno as errno_mod
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .ops import Op
from .trace import (
    CLONE_THREAD,
    CLONE_VFORK,
    CLONE_VM,
    Syscall,
    TraceBuilder,
    TraceError,
    TraceHeader,
    check_word,
    new_header,
)

__all__ = ["import_perf", "parse_perf_line", "PERF_EVENTS", "PERF_SYSCALLS", "PerfLine"]

#: Syscalls whose enter/exit tracepoints the recorder asks for.
PERF_SYSCALLS = ("mmap", "munmap", "mprotect", "mremap", "brk", "madvise", "mlock", "mlock2",
                 "munlock", "clone", "clone3", "fork", "vfork", "execve", "exit_group")

#: Every event ``perf record`` needs for a complete trace.
PERF_EVENTS: tuple[str, ...] = (
    "exceptions:page_fault_user",
    "sched:sched_process_fork",
    "sched:sched_process_exec",
    "sched:sched_process_exit",
    *(f"syscalls:sys_{kind}_{name}" for name in PERF_SYSCALLS for kind in ("enter", "exit")),
)

#: perf's tracepoint field names -> the importer's argument names.
_FIELD_NAMES: dict[str, dict[str, str]] = {
    "mmap": {"addr": "addr", "len": "length", "prot": "prot", "flags": "flags", "fd": "fd",
             "off": "offset"},
    "munmap": {"addr": "addr", "len": "length"},
    "mprotect": {"start": "addr", "len": "length", "prot": "prot"},
    "pkey_mprotect": {"start": "addr", "len": "length", "prot": "prot", "pkey": "pkey"},
    "mremap": {"addr": "addr", "old_len": "old_len", "new_len": "new_len", "flags": "flags",
               "new_addr": "new_addr"},
    "brk": {"brk": "addr"},
    "madvise": {"start": "addr", "len_in": "length", "behavior": "advice"},
    "mlock": {"start": "addr", "len": "length"},
    "mlock2": {"start": "addr", "len": "length", "flags": "flags"},
    "munlock": {"start": "addr", "len": "length"},
}
_INT_FIELDS = {"fd", "pkey"}  # C ints printed as unsigned longs

_LINE = re.compile(
    r"^\s*(?P<comm>.*?)\s+(?P<pid>-?\d+)(?:/(?P<tid>-?\d+))?\s+(?:\[(?P<cpu>\d+)\]\s+)?"
    r"(?P<time>\d+\.\d+):\s+(?:\d+\s+)?"
    r"(?:(?P<event>[\w-]+:[\w-]+):|(?P<record>PERF_RECORD_\w+))\s?(?P<rest>.*)$")
_KV_COLON = re.compile(r"(\w+): (0x[0-9a-fA-F]+|-?\d+)")
_KV_EQ = re.compile(r"(\w+)=(\S+)")
_MMAP_RECORD = re.compile(
    r"^(?P<pid>-?\d+)/(?P<tid>-?\d+): \[(?P<start>0x[0-9a-fA-F]+)\((?P<len>0x[0-9a-fA-F]+)\)"
    r" @ \S+(?: [^\]]*)?\]: \S+ (?P<path>.*)$")


@dataclass
class PerfLine:
    """One sample line of ``perf script``: who, when, which event, and its fields."""

    lineno: int
    comm: str
    pid: int | None
    tid: int
    time: float
    event: str
    rest: str


def parse_perf_line(line: str, lineno: int = 0) -> PerfLine | None:
    """Parse one ``perf script`` line; None for blank lines and ``#`` comments.

    Raises ValueError for anything else that is not a perf script sample line.
    """
    text = line.rstrip("\n")
    if not text.strip() or text.lstrip().startswith("#"):
        return None
    m = _LINE.match(text)
    if m is None:
        raise ValueError(f"not perf script output: {text.strip()[:70]!r}")
    tid = int(m["tid"] if m["tid"] is not None else m["pid"])
    pid = int(m["pid"]) if m["tid"] is not None else None
    return PerfLine(lineno, m["comm"], pid, tid, float(m["time"]),
                    m["event"] or m["record"], m["rest"])


def _signed(value: int, bits: int = 64) -> int:
    return value - (1 << bits) if value >= 1 << (bits - 1) else value


def _fields(rest: str) -> dict[str, int]:
    return {k: check_word(int(v, 0), v) for k, v in _KV_COLON.findall(rest)}


@dataclass
class _Enter:
    name: str
    args: dict[str, int]
    path: str | None = None


class _PerfImporter:
    def __init__(self, name: str, builder: TraceBuilder) -> None:
        self.name = name
        self.b = builder
        self.pending: dict[int, _Enter] = {}
        self.last_clone: dict[int, int | None] = {}
        self.last_mmap_record: dict[int, tuple[int, str]] = {}
        self.tgid: dict[int, int] = {}
        self.exec_path = ""

    def run(self, lines: list[PerfLine]) -> None:
        for ln in lines:
            if ln.pid is not None:
                self.tgid.setdefault(ln.tid, ln.pid)
        for ln in lines:
            try:
                self.event(ln)
            except (KeyError, ValueError) as exc:
                raise TraceError(f"{self.name}:{ln.lineno}: cannot import {ln.event}: "
                                 f"{exc}") from None
        for enter in self.pending.values():
            self.b.skip(f"{enter.name}: no return value (unfinished at the end of the log)")

    def event(self, ln: PerfLine) -> None:
        ev = ln.event
        if ev == "exceptions:page_fault_user":
            kv = dict(_KV_EQ.findall(ln.rest))
            try:
                addr = int(kv["address"], 16)
            except (KeyError, ValueError):
                self.b.skip("fault: address not printed as a number")
                return
            code = int(kv.get("error_code", "0"), 16)
            self.b.fault(ln.tid, addr, bool(code & 0x2))
        elif ev.startswith("syscalls:sys_enter_"):
            self.enter(ln, ev[len("syscalls:sys_enter_"):])
        elif ev.startswith("syscalls:sys_exit_"):
            self.exit(ln, ev[len("syscalls:sys_exit_"):])
        elif ev == "sched:sched_process_fork":
            kv = dict(_KV_EQ.findall(ln.rest))
            parent, child = int(kv["pid"]), int(kv["child_pid"])
            self.b.fork(parent, child, self.clone_flags(parent, child))
        elif ev == "sched:sched_process_exec":
            kv = dict(_KV_EQ.findall(ln.rest))
            if "filename=" not in ln.rest:
                raise ValueError("no filename= field")
            path = ln.rest.split("filename=", 1)[1].rsplit(" pid=", 1)[0]
            self.exec_path = self.exec_path or path
            self.b.exec(int(kv["pid"]), path)
        elif ev == "sched:sched_process_exit":
            kv = dict(_KV_EQ.findall(ln.rest))
            dead = kv.get("group_dead")
            self.b.task_exit(int(kv["pid"]), None if dead is None else dead == "true")
        elif ev in ("PERF_RECORD_MMAP2", "PERF_RECORD_MMAP"):
            m = _MMAP_RECORD.match(ln.rest)
            if m is not None:
                self.last_mmap_record[int(m["tid"])] = (int(m["start"], 16), m["path"])
        elif ev.startswith("PERF_RECORD_LOST"):
            self.b.skip("perf lost events (perf record -m to enlarge its buffer)")
        elif not ev.startswith("PERF_RECORD_"):
            self.b.skip(f"{ev}: not used")

    def clone_flags(self, parent: int, child: int) -> int:
        enter = self.pending.get(parent)
        name = enter.name if enter else None
        if name == "fork":
            return 0
        if name == "vfork":
            return CLONE_VM | CLONE_VFORK
        if name == "clone" and enter is not None:
            return enter.args.get("clone_flags", 0)
        # clone3's flags sit in a user struct perf does not print: use the thread group.
        parent_tgid, child_tgid = self.tgid.get(parent), self.tgid.get(child)
        if parent_tgid is not None and child_tgid is not None:
            return CLONE_VM | CLONE_THREAD if parent_tgid == child_tgid else 0
        self.b.skip("clone3: flags not visible to perf (child taken for a process)")
        return 0

    def enter(self, ln: PerfLine, name: str) -> None:
        if name == "exit_group":
            self.b.exit_group(ln.tid)
            return
        self.pending[ln.tid] = _Enter(name, _fields(ln.rest))
        self.last_mmap_record.pop(ln.tid, None)

    def exit(self, ln: PerfLine, name: str) -> None:
        enter = self.pending.get(ln.tid)
        if enter is None or enter.name != name:
            return  # an exit whose enter came before recording (the first execve, clones)
        del self.pending[ln.tid]
        m = re.match(r"\s*(0x[0-9a-fA-F]+|-?\d+)", ln.rest)
        if m is None:
            raise ValueError(f"no return value in {ln.rest[:40]!r}")
        ret = _signed(check_word(int(m[1], 0), m[1]))
        err = errno_mod.errorcode.get(-ret, f"E{-ret}") if -4096 < ret < 0 else None
        if name in ("clone", "clone3", "fork", "vfork"):
            if err is not None:
                self.b.skip(f"{name}: failed in the real run ({err})")
            return  # the fork itself came from sched_process_fork
        if name == "execve":
            if err is not None:
                self.b.skip(f"execve: failed in the real run ({err})")
            return  # a successful exec came from sched_process_exec
        names = _FIELD_NAMES.get(name)
        if names is None:
            self.b.skip(f"{name}: not in the op vocabulary")
            return
        args: dict[str, int] = {}
        for key, value in enter.args.items():
            if key in names:
                small = key in _INT_FIELDS and value < 1 << 32
                args[names[key]] = _signed(value, 32) if small else _signed(value)
        path = None
        if name == "mmap" and err is None:
            rec = self.last_mmap_record.get(ln.tid)
            if rec is not None and rec[0] == ret:
                path = rec[1]
        self.b.syscall(Syscall(ln.tid, name, args, None if err else ret, err, path))


def import_perf(path: str | Path, *, command: list[str] | None = None,
                recorded_with: list[str] | None = None, notes: Iterable[str] = (),
                max_faults: int | None = None,
                **header: Any) -> tuple[TraceHeader, list[Op]]:
    """Read ``perf script`` output from ``path``: the trace header and its ops.

    ``command`` defaults to the first exec'd file. Raises :class:`TraceError` naming the
    line for text that is not perf script output.
    """
    lines: list[PerfLine] = []
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for lineno, line in enumerate(fh, 1):
                try:
                    parsed = parse_perf_line(line, lineno)
                except ValueError as exc:
                    raise TraceError(f"{path}:{lineno}: {exc}") from None
                if parsed is not None:
                    lines.append(parsed)
    except OSError as exc:
        raise TraceError(f"{path}: {exc.strerror or exc}") from None
    b = TraceBuilder(max_faults=max_faults)
    imp = _PerfImporter(str(path), b)
    imp.run(lines)
    ops = b.finish()
    with_tgid = any(ln.pid is not None for ln in lines)
    base_notes = ["imported from perf script: page faults, memory syscalls, fork/exec/exit"]
    if not with_tgid:
        base_notes.append("perf script ran without -F pid,tid: threads made by clone3 "
                          "cannot be told from processes")
    hdr = new_header(
        "perf", command if command is not None else ([imp.exec_path] if imp.exec_path else []),
        recorded_with=list(recorded_with or []),
        notes=[*base_notes, *notes],
        import_skipped=dict(sorted(b.skipped.items())), stats=dict(sorted(b.stats.items())),
        **header)
    return hdr, ops
