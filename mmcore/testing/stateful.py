"""The conformance kit's engine: random operation sequences with every invariant checked
after every step, as a hypothesis state machine, a seeded random walk, and fixed scenarios.

Pieces, bottom up:

* :class:`ContentModel` predicts, independently of the simulator, what every process must
  read on every page it maps (private pages copied at fork, shared pages shared, content
  moved by mremap, zeroed by MADV_DONTNEED) and which pages it maps at all;
* :class:`Driver` applies :class:`~mmcore.experiments.ops.Op` values through a
  :class:`~mmcore.experiments.ops.Player`, updates the model, and after every op runs
  :func:`~mmcore.testing.invariants.find_violations` plus the model checks. The first
  failure raises :class:`~mmcore.testing.repro.ConformanceFailure` with the op list as
  runnable Python (minimised by delta debugging);
* :class:`OpGenerator` draws the next op (mmap, munmap, mprotect, mremap, fork, exit,
  write, read, try_to_unmap, MADV_DONTNEED, a fork tree) from a :class:`Chooser`: hypothesis
  data in :func:`conformance_state_machine`, a seeded ``random.Random`` in
  :func:`run_random_sequence`;
* :class:`RmapConformance` is the suite a plugin author subclasses with one line.
"""

from __future__ import annotations

import errno
import os
import random
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, Protocol

from ..constants import (
    MADV_DONTNEED,
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    MAP_SHARED,
    MREMAP_DONTUNMAP,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PAGE_SIZE,
    PROT_EXEC,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
    VM_WRITE,
)
from ..errors import BusError, MachineBroken, ProcessKilled, SegmentationFault
from ..experiments.ops import Op, Player
from ..machine import Machine
from ..page import PG_ANON
from ..pagetable import pte_pfn, pte_present
from .invariants import find_violations
from .repro import (
    ConformanceFailure,
    format_op,
    format_reproducer,
    minimize,
    process_groups,
    renumber,
)

if TYPE_CHECKING:
    from hypothesis.stateful import RuleBasedStateMachine
    from hypothesis.strategies import DataObject

    from ..process import Process

__all__ = [
    "DEFAULT_MACHINE_KWARGS",
    "Chooser",
    "ContentModel",
    "Driver",
    "OpGenerator",
    "RandomChooser",
    "RmapConformance",
    "conformance_state_machine",
    "fork_tree_ops",
    "replay",
    "run_conformance",
    "run_fork_tree",
    "run_random_sequence",
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
MS_SYNC = 4


@dataclass(frozen=True)
class PrivFile:
    """A page of a MAP_PRIVATE file mapping: file ``obj``'s page ``index`` until the
    process writes it, then its own copy ``data`` (lost again, the file showing through,
    after MADV_DONTNEED or a truncation past it)."""

    obj: int
    index: int
    data: bytes | None = None


#: A model cell: private content, a shared object's page ``(object, index)``, a private
#: file page, or unknown.
Cell = bytes | tuple[int, int] | PrivFile | None


def _pages(length: int) -> int:
    return (length + P - 1) // P


# ----------------------------------------------------------------------------------------
# The content model
# ----------------------------------------------------------------------------------------

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

    def fork(self, parent: int, child: int) -> None:
        """Private pages are copied, shared pages stay shared."""
        self.procs[child] = dict(self.procs[parent])

    def exit(self, pid: int) -> None:
        """The address space is gone."""
        self.procs.pop(pid, None)

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

    def write(self, pid: int, addr: int, token: bytes) -> None:
        """A successful store of ``token`` at the page start."""
        cells = self.procs[pid]
        cell = cells.get(addr)
        if isinstance(cell, bytes):
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
            if isinstance(cell, bytes):
                cells[a] = ZERO
            elif isinstance(cell, PrivFile):
                cells[a] = PrivFile(cell.obj, cell.index)

    def mremap(self, pid: int, old: int, old_pages: int, new: int, new_pages: int,
               flags: int) -> None:
        """A successful mremap to ``new``: content moves, the old range is unmapped (or,
        with MREMAP_DONTUNMAP, stays mapped and empty), growth reads as zeros (or as the
        shared object's next pages)."""
        cells = self.procs[pid]
        moved: dict[int, Cell] = {}
        for i in range(old_pages):
            a = old + i * P
            if a in cells:
                moved[i] = cells.pop(a)
        if flags & MREMAP_DONTUNMAP:
            for i, cell in moved.items():
                cells[old + i * P] = ZERO if isinstance(cell, bytes) else \
                    PrivFile(cell.obj, cell.index) if isinstance(cell, PrivFile) else cell
        if flags & MREMAP_FIXED and old_pages == new_pages:
            # remap_move(): each source vma moves on its own; gaps stay untouched.
            for i in moved:
                cells.pop(new + i * P, None)
        else:
            for i in range(new_pages):
                cells.pop(new + i * P, None)
        for i, cell in moved.items():
            if i < new_pages:
                cells[new + i * P] = cell
        if new_pages > old_pages:
            last = moved.get(old_pages - 1)
            for k in range(1, new_pages - old_pages + 1):
                a = new + (old_pages - 1 + k) * P
                if isinstance(last, PrivFile):
                    cells[a] = PrivFile(last.obj, last.index + k)
                elif isinstance(last, tuple):
                    cells[a] = (last[0], last[1] + k)
                elif isinstance(last, bytes):
                    cells[a] = ZERO
                else:
                    cells[a] = None

    def expected(self, pid: int, addr: int) -> bytes | None:
        """What ``pid`` must read at page ``addr`` (None: unknown or past a shared EOF)."""
        cell = self.procs.get(pid, {}).get(addr)
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
        return cell

    def resident(self, pid: int, addr: int) -> bool:
        """False for a private file page not yet written (what it reads is the file's,
        which :func:`~mmcore.testing.invariants.peek` does not look up)."""
        cell = self.procs.get(pid, {}).get(addr)
        return not (isinstance(cell, PrivFile) and cell.data is None)

    def pages(self, pid: int) -> set[int]:
        """The pages ``pid`` maps according to the model."""
        return set(self.procs.get(pid, {}))


# ----------------------------------------------------------------------------------------
# The driver: apply, model, check, report
# ----------------------------------------------------------------------------------------

def _category(reason: str) -> str:
    """A coarse kind of failure, so minimisation keeps looking for the same bug."""
    for key, words in (("broken", ("marked itself broken", "marked the machine broken")),
                       ("walk", ("rmap walk",)), ("mapcount", ("mapcount",)),
                       ("refcount", ("refcount",)), ("leak", ("leak", "still allocated",
                                                             "still in use")),
                       ("content", ("content", "read ")), ("layout", ("layout",)),
                       ("exception", ("raised",))):
        if any(w in reason for w in words):
            return key
    return "other"


def _ranges(addrs: Iterable[int]) -> str:
    """Page addresses as ``start-end`` ranges."""
    out: list[str] = []
    run: list[int] = []
    for a in sorted(addrs):
        if run and a == run[-1] + P:
            run.append(a)
            continue
        if run:
            out.append(f"{run[0]:#x}-{run[-1] + P:#x}")
        run = [a]
    if run:
        out.append(f"{run[0]:#x}-{run[-1] + P:#x}")
    return ", ".join(out)


def _in_final_hypothesis_run() -> bool:
    """True outside hypothesis, or during its final (reporting) run of the minimal example:
    only then is a failure worth the cost of delta debugging."""
    try:
        from hypothesis.control import current_build_context, currently_in_test_context
        if not currently_in_test_context():
            return True
        return bool(current_build_context().is_final)
    except Exception:
        return True


class Driver:
    """Runs ops on a fresh Machine, keeps the :class:`ContentModel`, and checks every
    invariant after every op; the first failure raises :class:`ConformanceFailure`.

    ``minimize_budget`` is how long (seconds) a failure may spend shrinking its op list
    before it is reported (0 turns it off).
    """

    def __init__(self, rmap: str | type, mremap_policy: str | type | None = None, *,
                 machine_kwargs: dict[str, Any] | None = None,
                 minimize_budget: float = 20.0) -> None:
        self.rmap = rmap
        self.mremap_policy = mremap_policy
        #: Extra Machine arguments (``file_rmap`` among them), also in reproducers.
        self.extra_kwargs = dict(machine_kwargs or {})
        self.machine = Machine(rmap=rmap, mremap_policy=mremap_policy,
                               **{**DEFAULT_MACHINE_KWARGS, **self.extra_kwargs})
        self.player = Player(self.machine, strict=True)
        self.model = ContentModel()
        self.ops: list[Op] = []
        self.outcomes: list[str] = []
        self.minimize_budget = minimize_budget
        self.failed = False
        #: Check every invariant after every op (off only while minimising).
        self.check_each = True
        self._next_pid = 1
        self._next_token = 1

    # --- bookkeeping ---------------------------------------------------------------------

    def new_pid(self) -> int:
        """A fresh op-list pid (equal to the machine's pid in an unminimised run)."""
        pid = self._next_pid
        self._next_pid += 1
        return pid

    def new_token(self) -> str:
        """A fresh 8-character content token."""
        n = self._next_token
        self._next_token += 1
        return f"w{n:07d}"

    def live(self) -> list[int]:
        """Op-list pids of the live processes, ascending."""
        return sorted(self.player.procs)

    def proc(self, pid: int) -> Process:
        """The simulated process for op-list pid ``pid``."""
        return self.player.procs[pid]

    # --- applying ops ------------------------------------------------------------------

    def apply(self, op: Op) -> object:
        """Run one op, update the model, check everything; return the op's result."""
        if self.failed:
            raise RuntimeError("this Driver already reported a failure")
        index = len(self.ops)
        self.ops.append(op)
        self.outcomes.append("")
        if op.op in ("spawn", "fork"):
            self._next_pid = max(self._next_pid, op.pid + 1, op.child + 1)
        result: object = None
        error: str | None = None
        sigbus = op.op in ("read", "write") and self.model.sigbus(op.pid, op.addr & ~(P - 1))
        try:
            result = self.player.apply(op)
        except OSError as exc:
            error = errno.errorcode.get(exc.errno or 0, str(exc.errno))
        except SegmentationFault:
            error = "SIGSEGV"
        except BusError:
            error = "SIGBUS"
        except ProcessKilled:
            error = "OOM-killed"
        except MachineBroken as exc:
            self.fail(f"op #{index} {format_op(op)} marked the machine broken: "
                      f"{self.machine.broken or exc}", exc)
        except Exception as exc:
            self.fail(f"op #{index} {format_op(op)} raised {type(exc).__name__}: {exc}", exc)
        if error is not None:
            self.outcomes[index] = error
        elif isinstance(result, int) and op.op in ("mmap", "mremap"):
            self.outcomes[index] = f"-> {result:#x}"
        elif isinstance(result, bytes):
            self.outcomes[index] = f"-> {result!r}"
        self._update_model(op, result, error)
        self._reap_killed(index)
        if op.op == "read" and error is None and isinstance(result, bytes):
            want = self.model.expected(op.pid, op.addr & ~(P - 1))
            if want is not None and result[:len(want)] != want:
                self.fail(f"content: op #{index}: pid {op.pid} read {result!r} at "
                          f"{op.addr:#x}, expected {want!r}")
        self._check_file_op(index, op, result, error, sigbus)
        if self.check_each:
            self.check(index)
        return result

    def _check_file_op(self, index: int, op: Op, result: object, error: str | None,
                       sigbus: bool) -> None:
        """SIGBUS exactly past a file's EOF; pread returns what the model predicts."""
        if op.op in ("read", "write") and error in (None, "SIGBUS") \
                and (error == "SIGBUS") != sigbus:
            self.fail(f"content: op #{index}: pid {op.pid} {op.op} at {op.addr:#x} "
                      + ("raised SIGBUS, but the page is within the file" if error else
                         "succeeded, but the page is past the file's EOF (SIGBUS expected)"))
        if op.op == "pread" and error is None and isinstance(result, bytes) \
                and op.fd in FILES and FILES[op.fd] in self.model.files:
            want = self.model.pread(FILES[op.fd], op.offset // P)
            if result[:len(want)] != want or (not want and result):
                self.fail(f"content: op #{index}: pid {op.pid} pread {result!r} at file "
                          f"offset {op.offset:#x}, expected {want!r}")

    def _update_model(self, op: Op, result: object, error: str | None) -> None:
        model = self.model
        name = op.op
        if name == "madvise" and op.advice == MADV_DONTNEED and error in (None, "ENOMEM"):
            model.dontneed(op.pid, op.addr, _pages(op.length))
        if error is not None:
            return
        if name == "spawn":
            model.spawn(op.pid)
        elif name == "fork":
            model.fork(op.pid, op.child)
        elif name == "exit":
            model.exit(op.pid)
        elif name == "mmap" and isinstance(result, int):
            model.munmap(op.pid, result, _pages(op.length))
            if op.fd >= 0:
                model.mmap_file(op.pid, result, _pages(op.length), FILES[op.fd],
                                op.offset // P, bool(op.flags & MAP_SHARED))
            else:
                model.mmap(op.pid, result, _pages(op.length), bool(op.flags & MAP_SHARED))
        elif name == "create":
            model.create(op.path, op.length // P, op.data.encode())
        elif name == "pwrite" and op.fd in FILES:
            model.pwrite(FILES[op.fd], op.offset // P, op.data.encode())
        elif name == "ftruncate" and op.fd in FILES:
            model.ftruncate(FILES[op.fd], op.length // P)
        elif name == "munmap":
            model.munmap(op.pid, op.addr, _pages(op.length))
        elif name == "mremap" and isinstance(result, int):
            model.mremap(op.pid, op.addr, _pages(op.length), result, _pages(op.new_len),
                         op.flags)
        elif name == "write":
            model.write(op.pid, op.addr, op.data.encode())

    def _reap_killed(self, index: int) -> None:
        """A process the OOM killer ended is gone from the model and the player."""
        for pid, proc in list(self.player.procs.items()):
            if not proc.alive:
                del self.player.procs[pid]
                self.model.exit(pid)
                self.outcomes[index] += f" (pid {pid} OOM-killed)"

    # --- checking ------------------------------------------------------------------------

    def expectations(self) -> dict[tuple[int, int], bytes]:
        """The model's content expectations keyed by the machine's (pid, address)."""
        out: dict[tuple[int, int], bytes] = {}
        for pid, proc in self.player.procs.items():
            for page in self.model.pages(pid):
                want = self.model.expected(pid, page)
                if want is not None and self.model.resident(pid, page):
                    out[(proc.pid, page)] = want
        return out

    def layout_problems(self) -> list[str]:
        """Pages the machine maps but the model does not, and the reverse."""
        problems = []
        for pid, proc in sorted(self.player.procs.items()):
            mapped = {a for v in proc.mm.vmas for a in range(v.start, v.end, P)}
            model = self.model.pages(pid)
            if mapped - model:
                problems.append(f"layout: pid {proc.pid} maps {_ranges(mapped - model)}, which "
                                "the operations so far unmapped or never mapped")
            if model - mapped:
                problems.append(f"layout: pid {proc.pid} does not map {_ranges(model - mapped)}"
                                ", which the operations so far mapped")
        return problems

    def check(self, index: int | None = None) -> None:
        """Run every invariant now; fail with the op list on any violation."""
        problems = find_violations(self.machine, self.expectations())
        if self.machine.broken is None:
            problems += self.layout_problems()
        if problems:
            at = f"after op #{index} {format_op(self.ops[index])}" if index is not None \
                else "at the end"
            shown = problems[:12]
            more = f"\n  ... and {len(problems) - 12} more" if len(problems) > 12 else ""
            self.fail(f"invariant violated {at} ({self.config_name()}):\n  - "
                      + "\n  - ".join(shown) + more)

    def config_name(self) -> str:
        """``rmap=NAME[+policy]`` for messages."""
        name = self.machine.rmap_name
        if self.machine.mremap_policy_name is not None:
            name += f"+{self.machine.mremap_policy_name}"
        return f"rmap={name}"

    def finish(self) -> None:
        """Exit every live process (lowest pid first), checking after each; with none
        left, the checks include "nothing leaked"."""
        for pid in self.live():
            if pid in self.player.procs:
                self.apply(Op("exit", pid=pid))
        self.check()

    # --- failing -------------------------------------------------------------------------

    def fail(self, reason: str, cause: BaseException | None = None) -> NoReturn:
        """Report a failure: raise :class:`ConformanceFailure` with a (minimised)
        reproducer of the ops applied so far."""
        self.failed = True
        if cause is not None:
            reason += _traceback_tail(cause)
        ops, outcomes = list(self.ops), list(self.outcomes)
        note = ""
        if self.minimize_budget > 0 and len(ops) > 1 and _in_final_hypothesis_run():
            category = _category(reason)
            errors = {i for i, o in enumerate(outcomes[:-1]) if o and not o.startswith("->")}
            reads = {i for i, op in enumerate(ops[:-1]) if op.op == "read"}
            small = minimize(ops, lambda cand: self._still_fails(cand, category),
                             groups=[errors, reads, *process_groups(ops)],
                             budget_seconds=self.minimize_budget)
            replayed = self._replay_quietly(renumber(small), check_each=True)
            if replayed is not None and len(replayed.ops) < len(ops):
                note = (f"\n(shrunk from {len(ops)} ops; the full sequence failed first "
                        f"with: {reason.splitlines()[0]})")
                reason = replayed.reason
                ops, outcomes = replayed.ops, _outcomes_of(replayed)
        source = format_reproducer(ops, self.rmap, self.mremap_policy, outcomes=outcomes,
                                   reason=reason, machine_kwargs=self.extra_kwargs)
        failure = ConformanceFailure(reason + note, ops, source)
        failure.outcomes = outcomes  # type: ignore[attr-defined]
        # One raise site and no chained cause: hypothesis then sees a single kind of bug
        # (the cause's traceback is in the message).
        raise failure from None

    def _replay_quietly(self, ops: Sequence[Op], check_each: bool) -> ConformanceFailure | None:
        """Replay ``ops`` on a fresh machine; the failure, or None if none (or if the ops
        are not a valid sequence). Without ``check_each`` the invariants are checked only
        at the end (reads and plugin errors are still checked as they happen)."""
        driver = Driver(self.rmap, self.mremap_policy, machine_kwargs=self.extra_kwargs,
                        minimize_budget=0)
        driver.check_each = check_each
        try:
            for op in ops:
                driver.apply(op)
            driver.check()
        except ConformanceFailure as exc:
            exc.outcomes = list(driver.outcomes)  # type: ignore[attr-defined]
            return exc
        except Exception:
            return None  # an invalid candidate (e.g. an op on a pid never spawned)
        return None

    def _still_fails(self, ops: list[Op], category: str) -> int | None:
        failure = self._replay_quietly(ops, check_each=False)
        if failure is None or _category(failure.reason) != category:
            return None
        return len(failure.ops)


def _outcomes_of(failure: ConformanceFailure) -> list[str]:
    value = getattr(failure, "outcomes", [])
    return list(value) if isinstance(value, list) else []


def _traceback_tail(exc: BaseException, frames: int = 8) -> str:
    """The innermost exception's last ``frames`` frames, for the failure message."""
    inner: BaseException = exc
    while inner.__cause__ is not None:
        inner = inner.__cause__
    lines = traceback.format_exception(type(inner), inner, inner.__traceback__,
                                       limit=-frames)
    body = "".join(lines).rstrip().replace("\n", "\n    ")
    return f"\n  underlying exception:\n    {body}"


def replay(ops: Sequence[Op], rmap: str | type = "anon_vma_chain",
           mremap_policy: str | type | None = None, **machine_kwargs: Any) -> Driver:
    """Re-run an op list with every check after every op (what a reproducer calls).

    Raises :class:`ConformanceFailure` at the first failure; returns the :class:`Driver`
    (``driver.machine`` is the Machine) when every check passed. With no live process
    left at the end, that includes "nothing leaked".
    """
    driver = Driver(rmap, mremap_policy, machine_kwargs=machine_kwargs, minimize_budget=0)
    for op in ops:
        driver.apply(op)
    return driver


# ----------------------------------------------------------------------------------------
# Drawing operations
# ----------------------------------------------------------------------------------------

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
        "fork_tree": 2, "file_mmap": 5, "file_io": 4, "ftruncate": 1,
    }

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
        for vpn, pte in sorted(proc.mm.pgtable.ptes.items()):
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


# ----------------------------------------------------------------------------------------
# Runners: seeded random sequences, the hypothesis state machine, fork trees
# ----------------------------------------------------------------------------------------

def run_random_sequence(rmap: str | type, mremap_policy: str | type | None = None, *,
                        seed: int = 0, steps: int = 2000,
                        machine_kwargs: dict[str, Any] | None = None,
                        minimize_budget: float = 30.0) -> Driver:
    """``steps`` random operations from a seeded generator (no hypothesis), checked after
    every op, then every process exits and nothing may be left. Returns the Driver."""
    driver = Driver(rmap, mremap_policy, machine_kwargs=machine_kwargs,
                    minimize_budget=minimize_budget)
    gen = OpGenerator(driver, RandomChooser(random.Random(seed)))
    gen.spawn()
    for _ in range(steps):
        gen.random_step()
    driver.finish()
    return driver


def conformance_state_machine(rmap: str | type, mremap_policy: str | type | None = None, *,
                              machine_kwargs: dict[str, Any] | None = None,
                              max_live: int = MAX_LIVE,
                              minimize_budget: float = 20.0) -> type[RuleBasedStateMachine]:
    """A hypothesis ``RuleBasedStateMachine`` class for one configuration: one rule per
    operation kind, every invariant checked after every op, every process exited (and
    leaks checked) in teardown."""
    from hypothesis import strategies as st
    from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

    def alive(self: Any) -> bool:
        return bool(self.driver.live())

    def room(self: Any) -> bool:
        return len(self.driver.live()) < max_live

    class RmapStateMachine(RuleBasedStateMachine):
        """Random mmap/munmap/mprotect/mremap/fork/exit/write/read/try_to_unmap/
        MADV_DONTNEED sequences against one rmap scheme."""

        def __init__(self) -> None:
            super().__init__()
            self.driver = Driver(rmap, mremap_policy, machine_kwargs=machine_kwargs,
                                 minimize_budget=minimize_budget)

        def gen(self, data: DataObject) -> OpGenerator:
            return OpGenerator(self.driver, DataChooser(data), max_live)

        @initialize(data=st.data())
        def start(self, data: DataObject) -> None:
            g = self.gen(data)
            g.spawn()
            g.mmap()

        @precondition(room)
        @rule(data=st.data())
        def spawn(self, data: DataObject) -> None:
            self.gen(data).spawn()

        @precondition(alive)
        @rule(data=st.data())
        def mmap(self, data: DataObject) -> None:
            self.gen(data).mmap()

        @precondition(alive)
        @rule(data=st.data())
        def munmap(self, data: DataObject) -> None:
            self.gen(data).munmap()

        @precondition(alive)
        @rule(data=st.data())
        def mprotect(self, data: DataObject) -> None:
            self.gen(data).mprotect()

        @precondition(alive)
        @rule(data=st.data())
        def mremap(self, data: DataObject) -> None:
            self.gen(data).mremap()

        @precondition(lambda self: alive(self) and room(self))
        @rule(data=st.data())
        def fork(self, data: DataObject) -> None:
            self.gen(data).fork()

        @precondition(alive)
        @rule(data=st.data())
        def exit(self, data: DataObject) -> None:
            self.gen(data).exit()

        @precondition(alive)
        @rule(data=st.data())
        def write(self, data: DataObject) -> None:
            self.gen(data).write()

        @precondition(alive)
        @rule(data=st.data())
        def write_again(self, data: DataObject) -> None:
            self.gen(data).write()

        @precondition(alive)
        @rule(data=st.data())
        def read(self, data: DataObject) -> None:
            self.gen(data).read()

        @precondition(alive)
        @rule(data=st.data())
        def try_to_unmap(self, data: DataObject) -> None:
            self.gen(data).try_to_unmap()

        @precondition(alive)
        @rule(data=st.data())
        def madvise_dontneed(self, data: DataObject) -> None:
            self.gen(data).dontneed()

        @precondition(lambda self: alive(self) and room(self))
        @rule(data=st.data())
        def fork_tree(self, data: DataObject) -> None:
            self.gen(data).fork_tree()

        @precondition(alive)
        @rule(data=st.data())
        def file_mmap(self, data: DataObject) -> None:
            self.gen(data).file_mmap()

        @precondition(alive)
        @rule(data=st.data())
        def file_io(self, data: DataObject) -> None:
            self.gen(data).file_io()

        @precondition(alive)
        @rule(data=st.data())
        def ftruncate(self, data: DataObject) -> None:
            self.gen(data).ftruncate()

        def teardown(self) -> None:
            if not self.driver.failed:
                self.driver.finish()

    RmapStateMachine.__name__ = RmapStateMachine.__qualname__ = \
        f"RmapStateMachine[{_label(rmap, mremap_policy)}]"
    return RmapStateMachine


def _label(rmap: str | type, mremap_policy: str | type | None) -> str:
    def name(x: str | type) -> str:
        return x if isinstance(x, str) else x.__name__
    return name(rmap) + (f"+{name(mremap_policy)}" if mremap_policy is not None else "")


def run_conformance(rmap: str | type, mremap_policy: str | type | None = None, *,
                    max_examples: int = 25, step_count: int = 30,
                    machine_kwargs: dict[str, Any] | None = None,
                    minimize_budget: float = 20.0) -> None:
    """Run the hypothesis state machine for one configuration, deterministically
    (derandomized, no example database). Raises :class:`ConformanceFailure` (with a
    minimal reproducer) on the first failure hypothesis finds and shrinks."""
    from hypothesis import HealthCheck, Phase, Verbosity, settings
    from hypothesis.stateful import run_state_machine_as_test

    machine_cls = conformance_state_machine(rmap, mremap_policy,
                                            machine_kwargs=machine_kwargs,
                                            minimize_budget=minimize_budget)
    run_state_machine_as_test(machine_cls, settings=settings(
        max_examples=max_examples, stateful_step_count=step_count, derandomize=True,
        database=None, deadline=None, print_blob=False,
        phases=(Phase.explicit, Phase.generate, Phase.shrink), report_multiple_bugs=False,
        verbosity=Verbosity.quiet,
        suppress_health_check=list(HealthCheck)))


def fork_tree_ops(seed: int, *, height: int = 5, max_children: int = 3, pages: int = 4,
                  max_procs: int = 40) -> list[Op]:
    """The setup of selftests/mm/rmap.c as ops: a root maps ``pages`` private pages at
    WINDOW and writes them all, then a random fork tree (``height`` levels, at most
    ``max_children`` per process, ``max_procs`` in all) grows, every process writing
    its own token to one random page right after it is forked."""
    rng = random.Random(seed)
    ops = [Op("spawn", pid=1),
           Op("mmap", pid=1, addr=WINDOW, length=pages * P, prot=RW,
              flags=MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)]
    ops += [Op("write", pid=1, addr=WINDOW + i * P, data=f"root{i:04d}") for i in range(pages)]
    next_pid, count = 2, 1
    level = [1]
    for _ in range(height):
        nxt = []
        for parent in level:
            for _ in range(rng.randint(0, max_children)):
                if count >= max_procs:
                    break
                child, next_pid, count = next_pid, next_pid + 1, count + 1
                ops.append(Op("fork", pid=parent, child=child))
                ops.append(Op("write", pid=child, addr=WINDOW + rng.randrange(pages) * P,
                              data=f"p{child:03d}{rng.randrange(10000):04d}"))
                nxt.append(child)
        level = nxt
    return ops


def run_fork_tree(rmap: str | type, mremap_policy: str | type | None = None, *,
                  seed: int = 0, height: int = 5, max_children: int = 3, pages: int = 4,
                  machine_kwargs: dict[str, Any] | None = None) -> Driver:
    """selftests/mm/rmap.c as a property: after a random fork tree in which every process
    writes, one process has one page unmapped through the rmap walk (try_to_unmap: the
    "migration"); the walk must have found every mapping, every process must still read
    its own data, the processes that shared the old frame must all share one new frame
    once they read it back, and after they all exit nothing may be left."""
    rng = random.Random(seed ^ 0x5EED)
    driver = Driver(rmap, mremap_policy, machine_kwargs=machine_kwargs)
    for op in fork_tree_ops(seed, height=height, max_children=max_children, pages=pages):
        driver.apply(op)
    pids = driver.live()
    victim = rng.choice(pids)
    addr = WINDOW + rng.randrange(pages) * P
    entry = driver.proc(victim).pagemap(addr)
    sharers = [pid for pid in pids if driver.proc(pid).pagemap(addr).present
               and driver.proc(pid).pagemap(addr).pfn == entry.pfn]
    driver.apply(Op("reclaim", pid=victim, addr=addr, length=P))
    still = [pid for pid in sharers if driver.proc(pid).pagemap(addr).present]
    if still:
        driver.fail(f"try_to_unmap of pfn {entry.pfn} (pid {victim} @ {addr:#x}) left it "
                    f"mapped in pids {still}: the rmap walk did not find those mappings")
    for pid in pids:
        for i in range(pages):
            driver.apply(Op("read", pid=pid, addr=WINDOW + i * P, length=TOKEN_LEN))
    new_pfns = {driver.proc(pid).pagemap(addr).pfn for pid in sharers}
    if len(new_pfns) > 1:
        driver.fail(f"pids {sharers} shared pfn {entry.pfn} at {addr:#x}; after it was "
                    f"unmapped and read back they map different frames {sorted(new_pfns)}")
    order = list(pids)
    rng.shuffle(order)
    for pid in order:
        driver.apply(Op("exit", pid=pid))
    return driver


# ----------------------------------------------------------------------------------------
# Fixed scenarios (readable op lists)
# ----------------------------------------------------------------------------------------

PRIV = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED
SHARED = MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED
W = WINDOW


def _writes(pid: int, base: int, pages: int, tag: str) -> list[Op]:
    return [Op("write", pid=pid, addr=base + i * P, data=f"{tag}{i:0{8 - len(tag)}d}")
            for i in range(pages)]


def _reads(pid: int, base: int, pages: int) -> list[Op]:
    return [Op("read", pid=pid, addr=base + i * P, length=TOKEN_LEN) for i in range(pages)]


def _unmaps(pid: int, base: int, pages: int) -> list[Op]:
    return [Op("reclaim", pid=pid, addr=base + i * P, length=P) for i in range(pages)]


def scenario_mremap_after_fork() -> list[Op]:
    """Moving pages a fork child still shares (the 2004 thread's hard case), and
    rmap.c's "second half over the first half"::

        0123456789abcdef   (pages from WINDOW)
        AAAAAAAA           parent maps and writes 8 pages, forks 2
                AAAAAAAA   parent moves them up by 8 pages (MREMAP_FIXED)
        CCCC               child moves its upper half over its lower half
    """
    ops = [Op("spawn", pid=1), Op("mmap", pid=1, addr=W, length=8 * P, prot=RW, flags=PRIV)]
    ops += _writes(1, W, 8, "a")
    ops += [Op("fork", pid=1, child=2),
            Op("mremap", pid=1, addr=W, length=8 * P, new_len=8 * P,
               flags=MREMAP_MAYMOVE | MREMAP_FIXED, new_addr=W + 8 * P)]
    ops += _reads(1, W + 8 * P, 8) + _reads(2, W, 8)
    ops += _unmaps(1, W + 8 * P, 8) + _reads(2, W, 8)
    ops += _writes(2, W, 2, "c") + _writes(1, W + 14 * P, 2, "p")
    ops += [Op("mremap", pid=2, addr=W + 4 * P, length=4 * P, new_len=4 * P,
               flags=MREMAP_MAYMOVE | MREMAP_FIXED, new_addr=W)]
    ops += _reads(2, W, 4) + _reads(1, W + 8 * P, 8)
    ops += [Op("fork", pid=2, child=3),
            Op("mremap", pid=3, addr=W, length=4 * P, new_len=6 * P, flags=MREMAP_MAYMOVE)]
    ops += _unmaps(2, W, 4) + _reads(2, W, 4)
    ops += [Op("exit", pid=1), Op("exit", pid=2), Op("exit", pid=3)]
    return ops


def scenario_mremap_swapped_pages() -> list[Op]:
    """Pages swapped out while a fork child shares them, then moved by mremap in the
    child: the swap ptes move, and each process must find (and the walk must find) the
    page again when it is swapped back in::

        0123456789abcdef
        AAAA               parent writes 4 pages, forks 2, all 4 are swapped out
                CCCC       the child moves its 4 swap ptes up by 8 pages
    """
    ops = [Op("spawn", pid=1), Op("mmap", pid=1, addr=W, length=4 * P, prot=RW, flags=PRIV)]
    ops += _writes(1, W, 4, "q")
    ops += [Op("fork", pid=1, child=2)]
    ops += _unmaps(1, W, 4)
    ops += [Op("mremap", pid=2, addr=W, length=4 * P, new_len=4 * P,
               flags=MREMAP_MAYMOVE | MREMAP_FIXED, new_addr=W + 8 * P)]
    ops += _reads(1, W, 2) + _reads(2, W + 8 * P, 4) + _reads(1, W + 2 * P, 2)
    ops += _unmaps(2, W + 8 * P, 4) + _reads(2, W + 8 * P, 4) + _reads(1, W, 4)
    ops += _writes(2, W + 8 * P, 4, "r") + _reads(1, W, 4)
    ops += [Op("exit", pid=1), Op("exit", pid=2)]
    return ops


def scenario_merge_after_fork() -> list[Op]:
    """Two adjacent vmas with different anon objects must not merge unless the scheme
    can still find both vmas' pages (is_mergeable_anon_vma())::

        0123456789
        AABB         child: A from the parent (fork), B its own mapping (rwx, so it
                     does not merge at mmap), written; B made rw (a merge attempt),
                     moved away and back (copy_vma's merge attempt)
                        CD   parent: D faults, moves away, C faults: different anon
                             objects; D comes back and is made rw
        every page must stay findable through the walk
    """
    rwx = RW | PROT_EXEC
    ops = [Op("spawn", pid=1), Op("mmap", pid=1, addr=W, length=2 * P, prot=RW, flags=PRIV)]
    ops += _writes(1, W, 2, "f")
    ops += [Op("fork", pid=1, child=2),
            Op("mmap", pid=2, addr=W + 2 * P, length=2 * P, prot=rwx, flags=PRIV)]
    ops += _writes(2, W + P, 3, "g")
    ops += [Op("mprotect", pid=2, addr=W + 2 * P, length=2 * P, prot=RW)]
    ops += _reads(2, W, 4) + _unmaps(2, W, 4) + _reads(2, W, 4)
    ops += [Op("mprotect", pid=2, addr=W + 2 * P, length=2 * P, prot=rwx),
            Op("mremap", pid=2, addr=W + 2 * P, length=2 * P, new_len=2 * P,
               flags=MREMAP_MAYMOVE | MREMAP_FIXED, new_addr=W + 8 * P),
            Op("mprotect", pid=2, addr=W + 8 * P, length=2 * P, prot=RW),
            Op("mremap", pid=2, addr=W + 8 * P, length=2 * P, new_len=2 * P,
               flags=MREMAP_MAYMOVE | MREMAP_FIXED, new_addr=W + 2 * P)]
    ops += _reads(2, W, 4) + _unmaps(2, W, 4) + _reads(2, W, 4)
    ops += [Op("fork", pid=2, child=3),
            Op("mmap", pid=3, addr=W + 4 * P, length=P, prot=rwx, flags=PRIV)]
    ops += _writes(3, W + 3 * P, 2, "h")
    ops += [Op("mprotect", pid=3, addr=W, length=5 * P, prot=RW)]
    ops += _unmaps(3, W, 5) + _reads(3, W, 5) + _reads(1, W, 2)
    # Without fork: D faults first, moves away, then C faults: two anon objects; D
    # comes back (its pgoff still fits) and is made rw.
    c, d = W + 16 * P, W + 17 * P
    ops += [Op("mmap", pid=1, addr=c, length=P, prot=RW, flags=PRIV),
            Op("mmap", pid=1, addr=d, length=P, prot=rwx, flags=PRIV)]
    ops += _writes(1, d, 1, "d")
    ops += [Op("mremap", pid=1, addr=d, length=P, new_len=P,
               flags=MREMAP_MAYMOVE | MREMAP_FIXED, new_addr=W + 24 * P)]
    ops += _writes(1, c, 1, "c")
    ops += [Op("mremap", pid=1, addr=W + 24 * P, length=P, new_len=P,
               flags=MREMAP_MAYMOVE | MREMAP_FIXED, new_addr=d),
            Op("mprotect", pid=1, addr=d, length=P, prot=RW)]
    ops += _unmaps(1, c, 2) + _reads(1, c, 2)
    ops += [Op("exit", pid=2), Op("exit", pid=1), Op("exit", pid=3)]
    return ops


def scenario_mprotect_split_storm() -> list[Op]:
    """Split a shared-after-fork vma into single pages in parent and child, unmap every
    page through rmap, then let mprotect merge everything back::

        0123456789abcdef
        RWRWRWRWRWRWRWRW   parent: every other page read-only
        WRWRWRWRWRWRWRWR   child: the opposite pages
    """
    ops = [Op("spawn", pid=1), Op("mmap", pid=1, addr=W, length=16 * P, prot=RW, flags=PRIV)]
    ops += _writes(1, W, 16, "s")
    ops += [Op("fork", pid=1, child=2)]
    ops += [Op("mprotect", pid=1, addr=W + i * P, length=P, prot=PROT_READ)
            for i in range(0, 16, 2)]
    ops += [Op("mprotect", pid=2, addr=W + i * P, length=P, prot=PROT_READ)
            for i in range(1, 16, 2)]
    ops += _writes(1, W + P, 1, "x") + _writes(2, W, 1, "y")
    ops += _unmaps(1, W, 16) + _reads(2, W, 16) + _reads(1, W, 16)
    ops += [Op("mprotect", pid=1, addr=W, length=16 * P, prot=RW),
            Op("mprotect", pid=2, addr=W, length=16 * P, prot=RW)]
    ops += _writes(1, W, 16, "t") + _unmaps(2, W, 16) + _reads(2, W, 16)
    ops += [Op("munmap", pid=1, addr=W + 4 * P, length=8 * P),
            Op("fork", pid=2, child=3),
            Op("madvise", pid=3, addr=W + 2 * P, length=4 * P, advice=MADV_DONTNEED)]
    ops += _reads(3, W, 16) + _unmaps(3, W, 16)
    ops += [Op("exit", pid=2), Op("exit", pid=3), Op("exit", pid=1)]
    return ops


def scenario_shared_anon_after_fork() -> list[Op]:
    """MAP_SHARED anonymous memory is one object for parent and child: writes are
    seen by both, through unmap (reclaim) and fork, and it dies with its last mapping."""
    ops = [Op("spawn", pid=1), Op("mmap", pid=1, addr=W, length=4 * P, prot=RW, flags=SHARED),
           Op("mmap", pid=1, addr=W + 4 * P, length=4 * P, prot=RW, flags=PRIV)]
    ops += _writes(1, W, 8, "m")
    ops += [Op("fork", pid=1, child=2)]
    ops += _writes(2, W, 2, "k") + _reads(1, W, 8)
    ops += _unmaps(1, W, 8) + _reads(2, W, 8) + _reads(1, W, 8)
    ops += [Op("munmap", pid=1, addr=W, length=4 * P), *_reads(2, W, 4)]
    ops += [Op("exit", pid=2), Op("exit", pid=1)]
    return ops


def scenario_exit_orders() -> list[Op]:
    """A three-generation chain with pages swapped out at every level; parents exit
    before their children (reparenting) and nothing may be left."""
    ops = [Op("spawn", pid=1), Op("mmap", pid=1, addr=W, length=4 * P, prot=RW, flags=PRIV)]
    ops += _writes(1, W, 4, "g")
    ops += [Op("fork", pid=1, child=2), *_writes(2, W, 1, "h")]
    ops += [Op("fork", pid=2, child=3), *_writes(3, W + P, 1, "i")]
    ops += _unmaps(3, W, 4) + _unmaps(1, W, 4)
    ops += [Op("exit", pid=1), *_reads(2, W, 4)]
    ops += [Op("exit", pid=2), *_reads(3, W, 4)]
    ops += [Op("exit", pid=3)]
    return ops


def scenario_file_mappings() -> list[Op]:
    """A file mapped MAP_SHARED and MAP_PRIVATE: shared writes and pwrite are seen by
    the shared mapping, pread and unwritten private pages; a private write is a copy;
    the rmap walk of the file finds every mapping (after fork too); ftruncate makes the
    pages past EOF SIGBUS in both mappings (the private copy included) and zeros once the
    file grows again::

        0123456789ab   (pages from WINDOW; file pages 0-3)
        SSSS           MAP_SHARED, offset 0
                PPPP   MAP_PRIVATE, offset 0
    """
    fd, path = 3, FILES[3]
    sh, pr = W, W + 8 * P
    ops = [Op("spawn", pid=1), Op("create", pid=1, path=path, length=4 * P, data="file0000"),
           Op("open", pid=1, path=path, flags=os.O_RDWR, fd=fd),
           Op("mmap", pid=1, addr=sh, length=4 * P, prot=RW, flags=MAP_SHARED | MAP_FIXED,
              fd=fd),
           Op("mmap", pid=1, addr=pr, length=4 * P, prot=RW, flags=MAP_PRIVATE | MAP_FIXED,
              fd=fd)]
    ops += _writes(1, sh, 1, "s") + _reads(1, pr, 4) + _writes(1, pr + P, 2, "p")
    ops += [Op("pwrite", pid=1, fd=fd, data="pw000001", offset=P),
            Op("pwrite", pid=1, fd=fd, data="pw000003", offset=3 * P)]
    ops += _reads(1, sh, 4) + _reads(1, pr, 4)
    ops += [Op("fork", pid=1, child=2), *_writes(2, sh + 3 * P, 1, "c"),
            Op("reclaim", pid=2, path=path), Op("pread", pid=2, fd=fd, length=8, offset=0)]
    ops += _reads(2, sh, 4) + _reads(1, pr, 4) + _unmaps(1, pr, 4) + _reads(1, pr, 4)
    ops += [Op("msync", pid=2, addr=sh, length=4 * P, flags=MS_SYNC),
            Op("ftruncate", pid=2, fd=fd, length=2 * P),
            Op("pread", pid=1, fd=fd, length=8, offset=3 * P)]
    ops += _reads(1, sh, 4) + _reads(1, pr, 4) + _reads(2, pr, 4)
    ops += [Op("ftruncate", pid=1, fd=fd, length=4 * P), Op("close", pid=1, fd=fd)]
    ops += _reads(1, sh, 4) + _reads(2, pr, 4)
    ops += [Op("exit", pid=1), Op("exit", pid=2)]
    return ops


SCENARIOS: dict[str, Callable[[], list[Op]]] = {
    "file_mappings": scenario_file_mappings,
    "mremap_after_fork": scenario_mremap_after_fork,
    "mremap_swapped_pages": scenario_mremap_swapped_pages,
    "merge_after_fork": scenario_merge_after_fork,
    "mprotect_split_storm": scenario_mprotect_split_storm,
    "shared_anon_after_fork": scenario_shared_anon_after_fork,
    "exit_orders": scenario_exit_orders,
}


# ----------------------------------------------------------------------------------------
# The suite
# ----------------------------------------------------------------------------------------

#: Overrides set by the pytest plugin's options (``--mmcore-max-examples``).
OVERRIDES: dict[str, int] = {}


class RmapConformance:
    """The conformance suite for one rmap scheme. Subclass it with one line::

        class TestMine(RmapConformance):
            rmap = "my_scheme"          # a plugin name, or the plugin class itself

    Optional: ``mremap_policy`` (a name or class), ``file_rmap`` (the file rmap plugin,
    default ``"i_mmap_tree"``; file mappings are exercised too), ``max_examples`` and
    ``stateful_step_count`` (hypothesis budget), ``fork_tree_seeds``, ``random_steps``,
    ``machine_kwargs`` (extra :class:`~mmcore.Machine` arguments).
    """

    rmap: ClassVar[str | type | None] = None
    mremap_policy: ClassVar[str | type | None] = None
    file_rmap: ClassVar[str | type] = "i_mmap_tree"
    max_examples: ClassVar[int] = 80
    stateful_step_count: ClassVar[int] = 40
    fork_tree_seeds: ClassVar[Sequence[int]] = (0, 1, 2, 3)
    random_steps: ClassVar[int] = 600
    machine_kwargs: ClassVar[dict[str, Any]] = {}

    def _scheme(self) -> str | type:
        if self.rmap is None:
            raise TypeError(f"{type(self).__name__}: set `rmap = \"scheme_name\"` (or the "
                            "plugin class) on your RmapConformance subclass")
        return self.rmap

    def _kwargs(self, **extra: Any) -> dict[str, Any]:
        """Machine arguments: ``machine_kwargs``, ``file_rmap`` (unless the default), extra."""
        kwargs = dict(self.machine_kwargs)
        if self.file_rmap != "i_mmap_tree":
            kwargs["file_rmap"] = self.file_rmap
        return {**kwargs, **extra}

    def _driver(self) -> Driver:
        return Driver(self._scheme(), self.mremap_policy, machine_kwargs=self._kwargs())

    def test_random_operations(self) -> None:
        """Hypothesis stateful testing over every operation; invariants after every op."""
        run_conformance(self._scheme(), self.mremap_policy,
                        max_examples=OVERRIDES.get("max_examples", self.max_examples),
                        step_count=self.stateful_step_count,
                        machine_kwargs=self._kwargs())

    def test_random_operations_under_memory_pressure(self) -> None:
        """The same with 24 frames: kswapd reclaim runs through the rmap walk in the
        middle of operations (and the OOM killer may end a process)."""
        run_conformance(self._scheme(), self.mremap_policy,
                        max_examples=OVERRIDES.get("max_examples", self.max_examples) // 2,
                        step_count=self.stateful_step_count,
                        machine_kwargs=self._kwargs(ram_pages=24))

    def test_seeded_random_walk(self) -> None:
        """A longer seeded random sequence (no hypothesis) under memory pressure."""
        run_random_sequence(self._scheme(), self.mremap_policy, seed=1,
                            steps=self.random_steps,
                            machine_kwargs=self._kwargs(ram_pages=24))

    def test_fork_tree(self) -> None:
        """selftests/mm/rmap.c: random fork trees, one page unmapped, all read their data."""
        for seed in self.fork_tree_seeds:
            run_fork_tree(self._scheme(), self.mremap_policy, seed=seed,
                          machine_kwargs=self._kwargs())

    def test_mremap_after_fork(self) -> None:
        """mremap of pages shared with fork children, and the half-over-half move."""
        self._run_scenario("mremap_after_fork")

    def test_mremap_swapped_pages(self) -> None:
        """mremap moves swap ptes of pages a fork child shares; both swap them back in."""
        self._run_scenario("mremap_swapped_pages")

    def test_mprotect_split_storm(self) -> None:
        """Split into single pages after fork, unmap everything, merge back."""
        self._run_scenario("mprotect_split_storm")

    def test_merge_after_fork(self) -> None:
        """Adjacent vmas with different anon objects: merge attempts after fork."""
        self._run_scenario("merge_after_fork")

    def test_shared_anon_after_fork(self) -> None:
        """MAP_SHARED anonymous memory across fork and reclaim."""
        self._run_scenario("shared_anon_after_fork")

    def test_file_mappings(self) -> None:
        """Shared and private file mappings, pread/pwrite, ftruncate and SIGBUS."""
        self._run_scenario("file_mappings")

    def test_exit_orders(self) -> None:
        """Parents exit before children with pages swapped out: nothing may leak."""
        self._run_scenario("exit_orders")

    def _run_scenario(self, name: str) -> None:
        driver = self._driver()
        for op in SCENARIOS[name]():
            driver.apply(op)
        driver.check()
