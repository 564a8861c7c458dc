"""The conformance kit's driver: apply ops, keep the model, check, report.

:class:`Driver` applies :class:`~mmcore.experiments.ops.Op` values through a
:class:`~mmcore.experiments.ops.Player`, updates the :class:`~mmcore.testing.model.ContentModel`,
and after every op runs :func:`~mmcore.testing.invariants.find_violations` plus the model
checks. The first failure raises :class:`~mmcore.testing.repro.ConformanceFailure` with the
op list as runnable Python, minimised by delta debugging (the failure-category and
shrinking helpers live here too). :func:`replay` re-runs an op list under the Driver.
"""

from __future__ import annotations

import errno
import traceback
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from ..budget import time_budget
from ..constants import (
    MADV_DONTNEED,
    MADV_FREE,
    MADV_GUARD_INSTALL,
    MADV_GUARD_REMOVE,
    MADV_KEEPONFORK,
    MADV_POPULATE_WRITE,
    MADV_REMOVE,
    MADV_WIPEONFORK,
    MAP_POPULATE,
    MAP_SHARED,
    PROT_WRITE,
)
from ..errors import BusError, MachineBroken, ProcessKilled, RunTimeout, SegmentationFault
from ..experiments.ops import Op, Player
from ..machine import Machine
from .invariants import find_violations
from .model import DEFAULT_MACHINE_KWARGS, FILES, ContentModel, P, _pages
from .repro import (
    ConformanceFailure,
    format_op,
    format_reproducer,
    minimize,
    process_groups,
    renumber,
)

if TYPE_CHECKING:
    from ..process import Process

__all__ = ["Driver", "replay"]


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


#: Seconds one op, and the checks after it, may take before the kit stops it and reports
#: the plugin and hook that were running (:func:`mmcore.budget.time_budget`); 0 means no
#: budget. ``pytest --mmcore-timeout SECONDS`` sets it. Real ops take milliseconds.
OP_TIMEOUT_S = 10.0
#: The budget of later ops of a configuration that has already run past its budget in
#: this process: shrinking a hang (hypothesis, delta debugging) replays it many times.
HUNG_TIMEOUT_S = 1.0
_hung: set[str] = set()


class Driver:
    """Runs ops on a fresh Machine, keeps the :class:`ContentModel`, and checks every
    invariant after every op; the first failure raises :class:`ConformanceFailure`.

    ``minimize_budget`` is how long (seconds) a failure may spend shrinking its op list
    before it is reported (0 turns it off). ``op_timeout`` bounds each op and its checks
    (default :data:`OP_TIMEOUT_S`): a hook that hangs is a failure at that op. ``seed``,
    when the ops come from a seeded generator, is named in every failure.
    """

    def __init__(self, rmap: str | type, mremap_policy: str | type | None = None, *,
                 machine_kwargs: dict[str, Any] | None = None,
                 minimize_budget: float = 20.0, op_timeout: float | None = None,
                 seed: int | None = None) -> None:
        self.op_timeout = OP_TIMEOUT_S if op_timeout is None else op_timeout
        if self._key(rmap, mremap_policy) in _hung and self.op_timeout:
            self.op_timeout = min(self.op_timeout, HUNG_TIMEOUT_S)
        self.seed = seed
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
        #: An op is running, or was cut short by something other than a reported
        #: failure (a grader's TestTimeout, Ctrl-C): the machine is mid-op, so
        #: :meth:`finish` must not run its checks on it.
        self.interrupted = False
        #: Check every invariant after every op (off only while minimising).
        self.check_each = True
        self._next_pid = 1
        self._next_token = 1

    # --- bookkeeping ---------------------------------------------------------------------

    @staticmethod
    def _key(rmap: str | type, mremap_policy: str | type | None) -> str:
        """What identifies a configuration among the ones that hung."""
        return repr((rmap, mremap_policy))

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
        self.interrupted = True
        index = len(self.ops)
        self.ops.append(op)
        self.outcomes.append("")
        if op.op in ("spawn", "fork"):
            self._next_pid = max(self._next_pid, op.pid + 1, op.child + 1)
        result: object = None
        error: str | None = None
        sigbus = op.op in ("read", "write") and self.model.sigbus(op.pid, op.addr & ~(P - 1))
        guarded = op.op in ("read", "write") and self.model.guarded(op.pid, op.addr & ~(P - 1))
        try:
            with time_budget(self.op_timeout):
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
            if isinstance(exc.__cause__, RunTimeout):
                _hung.add(self._key(self.rmap, self.mremap_policy))
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
        if guarded and error != "SIGSEGV":
            self.fail(f"content: op #{index}: pid {op.pid} {op.op} at {op.addr:#x} "
                      f"{'gave ' + error if error else 'succeeded'} in a guard region "
                      "(SIGSEGV expected)")
        if self.check_each:
            with time_budget(self.op_timeout):  # a hanging walk hangs the checks too
                self.check(index)
        self.interrupted = False
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
        if name == "madvise":
            self._update_madvise(op, error)
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
            if op.flags & MAP_POPULATE and op.prot & PROT_WRITE:
                model.populate_write(op.pid, result, _pages(op.length))
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

    def _update_madvise(self, op: Op, error: str | None) -> None:
        """The model's share of one madvise. A hole (ENOMEM) does not stop DONTNEED or
        the guard pair; MADV_FREE may stop at a vma it refuses, which "data or zeros"
        covers; REMOVE, WIPEONFORK/KEEPONFORK and POPULATE_WRITE are drawn inside one
        vma, so their errors leave nothing done (POPULATE_WRITE's EFAULT, at a guard or
        EOF, is where the model's populate stops too)."""
        model, pid, addr, n = self.model, op.pid, op.addr, _pages(op.length)
        advice = op.advice
        if advice == MADV_FREE:
            model.free(pid, addr, n)
        elif error not in (None, "ENOMEM"):
            if advice == MADV_POPULATE_WRITE and error == "EFAULT":
                model.populate_write(pid, addr, n)
        elif advice == MADV_DONTNEED:
            model.dontneed(pid, addr, n)
        elif advice == MADV_GUARD_INSTALL:
            model.guard_install(pid, addr, n)
        elif advice == MADV_GUARD_REMOVE:
            model.guard_remove(pid, addr, n)
        elif error is not None:
            return
        elif advice == MADV_REMOVE:
            model.remove(pid, addr, n)
        elif advice in (MADV_WIPEONFORK, MADV_KEEPONFORK):
            model.set_wipeonfork(pid, addr, n, advice == MADV_WIPEONFORK)
        elif advice == MADV_POPULATE_WRITE:
            model.populate_write(pid, addr, n)

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
        return {(proc.pid, page): want for pid, proc in self.player.procs.items()
                for page, want in self.model.resident_expectations(pid)}

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
        if self.seed is not None:
            reason = f"[seed {self.seed}] {reason}"
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
                        minimize_budget=0, op_timeout=self.op_timeout, seed=self.seed)
        driver.check_each = check_each
        try:
            for op in ops:
                driver.apply(op)
            with time_budget(driver.op_timeout):  # a hanging walk hangs this check too
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
