"""Hostile syscall arguments, and the verdict on one call made with them.

The values a careless or malicious caller passes to the :class:`~mmcore.Process` API, by
the C type of the argument (:mod:`mmcore.sysargs` decides the rules), shared by the
syscall fuzzer (``tests/test_fuzz_syscalls.py``) and the audit
(``tools/audit_bad_calls.py``). :func:`judge` runs one call and says whether it ended
the way a bad argument may end: a value, an errno, a signal, an argument error raised
before any change, or a process killed by the OOM killer; anything else (an internal
traceback, a machine marked broken, a broken invariant) is a finding.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..constants import PAGE_SIZE, TASK_SIZE
from ..errors import BusError, ProcessKilled, SegmentationFault
from ..process import Process
from .invariants import find_violations

if TYPE_CHECKING:
    from ..machine import Machine

__all__ = [
    "ARGUMENT_ERRORS",
    "BAD_VALUES",
    "SYSCALLS",
    "WRONG_TYPES",
    "Verdict",
    "arg_kind",
    "judge",
    "parameters",
    "snapshot",
]

#: Values of the wrong Python type for any integer argument (bool included: see
#: :mod:`mmcore.sysargs`).
WRONG_TYPES: tuple[object, ...] = (None, 1.5, 4096.0, float("nan"), "4096", b"\x10",
                                   True, False, [4096], 1j)

#: Hostile values by C type: out of range, unaligned, negative, wrapping, too wide.
BAD_VALUES: dict[str, tuple[object, ...]] = {
    "ulong": (-1, -PAGE_SIZE, -65536, -(1 << 63), 1, PAGE_SIZE - 1, 1 << 47, TASK_SIZE,
              TASK_SIZE + PAGE_SIZE, 1 << 63, (1 << 64) - PAGE_SIZE, (1 << 64) - 1,
              1 << 64, -(1 << 63) - 1, 1 << 100),
    "int": (-1, -(1 << 31), (1 << 31) - 1, 1 << 31, -(1 << 31) - 1, 0xFFFF, 1 << 40),
    "loff": (-1, -PAGE_SIZE, 1, 1 << 62, (1 << 63) - 1, 1 << 63, (1 << 64) - 1, 1 << 64),
    "buffer": ("text", 7, None, [1, 2], bytearray(b"ok"), b"", b"\xff" * (3 * PAGE_SIZE)),
    "path": (b"/f", None, 7, "", "/missing", "/f/x"),
    "brk_start": (0, 1, PAGE_SIZE + 1, -PAGE_SIZE, TASK_SIZE, 1 << 64),
}

#: The C type of each Process syscall argument, by parameter name.
_KINDS = {
    "addr": "ulong", "length": "ulong", "old_addr": "ulong", "old_len": "ulong",
    "new_len": "ulong", "new_addr": "ulong", "offset": "loff", "n": "loff",
    "prot": "int", "flags": "int", "fd": "int", "advice": "int", "status": "int",
    "pid": "int", "resource": "int", "soft": "int", "hard": "int",
    "data": "buffer", "path": "path", "brk_start": "brk_start",
}

#: The Process methods that are syscalls or memory accesses, fuzzed and audited.
SYSCALLS: tuple[str, ...] = (
    "mmap", "munmap", "mprotect", "mremap", "brk", "madvise", "mlock", "munlock",
    "mlockall", "munlockall", "mseal", "msync", "getrlimit", "setrlimit", "write", "read",
    "touch", "open", "close", "dup", "pread", "pwrite", "ftruncate", "fsync", "fork",
    "execve", "exit", "waitpid", "pagemap",
)

#: What a bad argument may raise before anything changes (:mod:`mmcore.sysargs`).
ARGUMENT_ERRORS: tuple[type[Exception], ...] = (TypeError, OverflowError, ValueError)
#: What a call may end with besides a value: an errno or a signal, with Linux's effects.
_LINUX_OUTCOMES: tuple[type[Exception], ...] = (OSError, SegmentationFault, BusError)


def arg_kind(name: str) -> str | None:
    """The C type (a key of :data:`BAD_VALUES`) of the Process argument ``name``; None
    for an argument that is not a syscall's (``touch``'s ``write`` flag)."""
    return _KINDS.get(name)


def parameters(call: str) -> list[str]:
    """The argument names of ``Process.<call>``, in order."""
    return [n for n in inspect.signature(getattr(Process, call)).parameters if n != "self"]


def snapshot(m: Machine) -> tuple[Any, ...]:
    """What a call refused with an argument error must leave exactly as it was."""
    procs = tuple((p.pid, p.alive, p.mm.brk, p.maps_text(),
                   tuple(vpn for vpn, _pte in p.mm.pgtable.items()))
                  for p in m.processes.values())
    files = tuple((path, inode.size) for path, inode in sorted(m.files.items()))
    return procs, files, m.physmem.nr_used, m.swap.nr_used, m.broken


@dataclass
class Verdict:
    """How one call ended: ``outcome`` is ``"ok"``, ``"errno"``, ``"signal"``,
    ``"argument"``, ``"killed"`` (all acceptable) or ``"traceback"``, ``"broken"``,
    ``"changed"`` (an argument error after a change) or ``"invariant"`` (findings);
    ``detail`` says what was raised or violated."""

    outcome: str
    detail: str = ""

    @property
    def finding(self) -> bool:
        """True if the call exposed a bug."""
        return self.outcome in ("traceback", "broken", "changed", "invariant")


def judge(m: Machine, fn: Callable[[], object], check: bool = True) -> Verdict:
    """Run ``fn`` (one call on machine ``m``) and judge it; with ``check``, the
    invariants must hold afterwards (:func:`~mmcore.testing.invariants.find_violations`)."""
    before = snapshot(m)
    try:
        fn()
        verdict = Verdict("ok")
    except ARGUMENT_ERRORS as exc:
        verdict = Verdict("argument", f"{type(exc).__name__}: {exc}")
        if snapshot(m) != before:
            return Verdict("changed", verdict.detail)
    except _LINUX_OUTCOMES as exc:
        verdict = Verdict("signal" if not isinstance(exc, OSError) else "errno", str(exc))
    except ProcessKilled as exc:
        verdict = Verdict("killed", str(exc))
    except Exception as exc:  # the finding itself: report, never hide
        kind = "broken" if m.broken is not None else "traceback"
        return Verdict(kind, f"{type(exc).__name__}: {exc}")
    if m.broken is not None:
        return Verdict("broken", m.broken)
    if check:
        problems = find_violations(m)
        if problems:
            return Verdict("invariant", "; ".join(problems[:3]))
    return verdict
