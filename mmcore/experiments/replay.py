"""Replay a trace on a Machine and report what happened, what was skipped and what it cost.

The replay honours what the kernel did in the recorded run:

* ``mmap`` ops with a ``ret`` are placed there (the Player maps MAP_FIXED at ``ret``);
* an ``mremap`` the kernel moved is replayed as ``MREMAP_MAYMOVE | MREMAP_FIXED`` to the
  address it returned; a ``brk`` the kernel refused or adjusted is replayed at its result;
* ``spawn`` and ``exec`` start the heap where the kernel did (``extra["brk_start"]``).

File mappings arrive as anonymous stand-ins (``extra["stand_in"]``): the report lists the
stand-in files, with the size each would need, and counts the mappings. Ops on memory the
trace never mapped (the binary, ld.so, the stack, the vdso: the kernel maps them before
the first traced syscall), ops the real run saw fail, and ops of processes that are not
running are skipped and counted by reason. Syscall errors the simulator raises are counted
by syscall and errno name, accesses it refuses as segfaults.
"""

from __future__ import annotations

import copy
import dataclasses
import errno as errno_mod
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dataclasses_json import DataClassJsonMixin

from ..constants import DEFAULT_BRK_START, MREMAP_FIXED, MREMAP_MAYMOVE, page_align
from ..costs import Costs
from ..errors import MachineBroken
from ..machine import Machine
from .ops import Op, Player
from .trace import TraceHeader, read_trace

__all__ = ["ReplayReport", "StandInFile", "replay", "replay_trace"]

_RANGE_OPS = ("munmap", "mprotect", "madvise", "mlock", "munlock")


@dataclass
class StandInFile(DataClassJsonMixin):
    """A file the trace mapped: the size a stand-in needs (the largest offset + length
    mapped) and how many mappings of it the trace made."""

    path: str
    size: int = 0
    mappings: int = 0


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
    processes: int = 0
    stand_in_mappings: int = 0
    stand_in_files: list[StandInFile] = field(default_factory=list)
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
                 f"errors, {self.segfaults} segfaults, {self.processes} processes"]
        for title, table in (("skipped", self.skipped), ("skipped at import",
                                                         self.import_skipped),
                             ("errors", self.errors)):
            if table:
                lines.append(f"  {title}:")
                lines += [f"    {n:6d}  {k}" for k, n in sorted(table.items(),
                                                               key=lambda kv: -kv[1])]
        if self.stand_in_files:
            lines.append(f"  stand-in files ({self.stand_in_mappings} mappings):")
            lines += [f"    {f.size:10d}  {f.path}" for f in self.stand_in_files]
        if self.walks_checked:
            lines.append(f"  rmap walks checked against the page tables: "
                         f"{self.walks_checked}, mismatches: {len(self.walk_mismatches)}")
        if self.costs is not None:
            c = self.costs
            lines.append(f"  rmap metadata peak {c.rmap_peak_bytes} bytes; "
                         f"{c.counters.forks} forks, {c.counters.fault_anon} anon faults, "
                         f"{c.counters.fault_cow_copy} COW copies")
        if self.broken:
            lines.append(f"  STOPPED: {self.broken}")
        return "\n".join(lines)


class _Replayer:
    def __init__(self, machine: Machine, report: ReplayReport, check_walks: int,
                 check_every: int, seed: int) -> None:
        self.m = machine
        self.player = Player(machine, strict=False)
        self.report = report
        self.check_walks = check_walks
        self.check_every = check_every
        self.rng = random.Random(seed)

    def skip(self, reason: str) -> None:
        s = self.report.skipped
        s[reason] = s.get(reason, 0) + 1

    def skip_reason(self, op: Op) -> str | None:
        """Why ``op`` cannot be replayed here, or None."""
        procs = self.player.procs
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
        if op.op == "exit" and self.check_walks:
            self.check()
        if op.op == "mremap" and op.ret is not None and op.ret != op.addr \
                and op.flags & MREMAP_MAYMOVE:
            op = dataclasses.replace(op, flags=op.flags | MREMAP_FIXED, new_addr=op.ret)
        elif op.op == "brk" and op.addr and op.ret is not None and op.ret != op.addr:
            op = dataclasses.replace(op, addr=op.ret)
        elif op.op == "fork":
            self.report.processes += 1
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
                    f"pfn {pfn}: walk found {walk}, page tables say {truth}")
        m.walk_cost = saved

    def run(self, ops: Iterable[Op]) -> None:
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


def _stand_ins(ops: list[Op]) -> tuple[int, list[StandInFile]]:
    files: dict[str, StandInFile] = {}
    count = 0
    for op in ops:
        if op.op == "mmap" and op.extra.get("stand_in"):
            count += 1
            path = str(op.extra.get("file", "?"))
            f = files.setdefault(path, StandInFile(path))
            f.mappings += 1
            offset = op.extra.get("offset", 0)
            f.size = max(f.size, (offset if isinstance(offset, int) else 0) + op.length)
    return count, sorted(files.values(), key=lambda f: f.path)


def replay(ops: list[Op], header: TraceHeader | None = None, *,
           rmap: str | type = "anon_vma_chain", mremap_policy: str | type | None = None,
           name: str = "<trace>", check_walks: int = 0, check_every: int = 1000,
           seed: int = 0, machine: Machine | None = None,
           **machine_kw: Any) -> ReplayReport:
    """Replay ``ops`` on a new Machine (non-strict) and report on it.

    ``check_walks`` > 0 compares the scheme's rmap walk with the brute-force page-table
    truth for that many sampled pages before every exit, every ``check_every`` applied
    ops and at the end (the checks' walk costs are not counted). ``machine_kw`` goes to
    :class:`~mmcore.Machine` (``ram_pages``, ``arch``...); or pass a fresh ``machine``
    (then ``rmap``, ``mremap_policy`` and ``machine_kw`` are not used) to look at its
    state afterwards.
    """
    if machine is None:
        machine = Machine(rmap, mremap_policy=mremap_policy, **machine_kw)
    report = ReplayReport(trace=name, rmap=machine.rmap_name,
                          mremap_policy=machine.mremap_policy_name)
    if header is not None:
        report.import_skipped = dict(header.import_skipped)
    report.stand_in_mappings, report.stand_in_files = _stand_ins(ops)
    r = _Replayer(machine, report, check_walks, check_every, seed)
    try:
        r.run(ops)
    except MachineBroken as exc:
        report.broken = str(exc)
    for key, n in sorted(r.player.errors.items()):
        call, _, code = key.partition(":")
        name_ = errno_mod.errorcode.get(int(code), code) if code.isdigit() else code
        report.errors[f"{call}:{name_}"] = report.errors.get(f"{call}:{name_}", 0) + n
    report.segfaults = r.player.segfaults
    report.costs = machine.costs()
    return report


def replay_trace(path: str | Path, **kw: Any) -> ReplayReport:
    """Read the trace at ``path`` and :func:`replay` it (same keyword arguments)."""
    header, ops = read_trace(path)
    kw.setdefault("name", Path(path).name)
    return replay(ops, header, **kw)
