"""Reproducers: a failing operation sequence as runnable Python, and its minimisation.

A conformance failure carries the exact :class:`~mmcore.experiments.ops.Op` list that led
to it. :func:`format_reproducer` prints that list as a script that replays it through
:func:`mmcore.testing.replay` (which checks every invariant after every op, exactly as the
kit did) so the failure can be pasted into a test or a REPL; :func:`minimize` shrinks the
list first by delta debugging (drop chunks of ops while the failure persists).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import fields, replace
from typing import Any

from .. import flagnames
from ..experiments.ops import OP_FIELDS, Op

__all__ = ["ConformanceFailure", "format_op", "format_reproducer", "minimize", "process_groups",
           "renumber"]

#: Op fields printed in hexadecimal (addresses and sizes; flags without names).
_HEX_FIELDS = frozenset({"addr", "length", "new_len", "new_addr", "flags", "prot", "advice"})
_DEFAULTS = {f.name: f.default for f in fields(Op)}
#: How a flag field of an op reads as the constants' names, by (op, field); ``prot`` is
#: named for every op.
_SYMBOLIC: dict[tuple[str, str], Callable[[int], str]] = {
    ("mmap", "flags"): flagnames.mmap_flags_expr,
    ("mremap", "flags"): flagnames.mremap_flags_expr,
    ("mlock", "flags"): flagnames.mlock_flags_expr,
    ("madvise", "advice"): flagnames.advice_expr,
}


class ConformanceFailure(AssertionError):
    """A conformance check failed. ``reason`` says what broke, ``ops`` is the operation
    sequence that reproduces it (ending with the op after which the check failed) and
    ``reproducer`` the same as runnable Python; ``str()`` shows all three."""

    def __init__(self, reason: str, ops: Sequence[Op], reproducer: str) -> None:
        self.reason = reason
        self.ops = list(ops)
        self.reproducer = reproducer
        super().__init__(f"{reason}\n\nMinimal reproducer ({len(self.ops)} ops; paste it into "
                         f"a test or a REPL):\n\n{reproducer}")


def format_op(op: Op) -> str:
    """One op as a constructor call with only the meaningful, non-default fields:
    addresses and sizes in hex, flags as the constants' names
    (``prot=PROT_READ | PROT_WRITE, flags=MAP_PRIVATE | MAP_ANONYMOUS``)."""
    parts = [repr(op.op)]
    names = OP_FIELDS.get(op.op, tuple(_DEFAULTS))
    for name in names:
        value = getattr(op, name)
        if name != "pid" and value == _DEFAULTS.get(name):
            continue
        symbolic = flagnames.prot_expr if name == "prot" else _SYMBOLIC.get((op.op, name))
        if isinstance(value, int) and symbolic is not None:
            parts.append(f"{name}={symbolic(value)}")
        elif isinstance(value, int) and name in _HEX_FIELDS:
            parts.append(f"{name}={value:#x}")
        else:
            parts.append(f"{name}={value!r}")
    if op.extra:
        parts.append(f"extra={op.extra!r}")
    return f"Op({', '.join(parts)})"


def _scheme_source(value: str | type | None, alias: str) -> tuple[str, str]:
    """(import line, expression) for a plugin given by name or by class."""
    if value is None or isinstance(value, str):
        return "", repr(value)
    top = value.__qualname__.split(".")[0]
    rest = value.__qualname__[len(top):]
    if value.__module__ == "__main__" or "<locals>" in value.__qualname__:
        return f"# {alias}: define {value.__qualname__} (from {value.__module__}) here\n", \
            value.__qualname__.split(".")[-1]
    return f"from {value.__module__} import {top}\n", f"{top}{rest}"


def format_reproducer(ops: Sequence[Op], rmap: str | type, mremap_policy: str | type | None,
                      *, outcomes: Sequence[str] = (), reason: str = "",
                      machine_kwargs: dict[str, Any] | None = None) -> str:
    """The op list as a runnable script that replays it with every check enabled.

    ``outcomes`` (one per op) become trailing comments, e.g. ``# -> 0x7ffff7ff0000`` or
    ``# EINVAL``; ``reason`` becomes the header comment.
    """
    rmap_import, rmap_expr = _scheme_source(rmap, "rmap")
    pol_import, pol_expr = _scheme_source(mremap_policy, "mremap_policy")
    lines = []
    if reason:
        first = reason.strip().splitlines()[0]
        lines.append(f"# {first[:200]}")
    body = [format_op(op) for op in ops]
    names = flagnames.names_in("\n".join(body))
    if names:
        lines.append(f"from mmcore.constants import {', '.join(names)}")
    lines.append("from mmcore.experiments.ops import Op")
    lines.append("from mmcore.testing import replay")
    for imp in (rmap_import, pol_import):
        if imp:
            lines.append(imp.rstrip("\n"))
    lines.append("")
    lines.append("replay(")
    lines.append("    [")
    for i, text in enumerate(body):
        note = outcomes[i] if i < len(outcomes) else ""
        line = f"        {text},"
        if note:
            line += f"  # {note}"
        lines.append(line)
    lines.append("    ],")
    lines.append(f"    rmap={rmap_expr},")
    lines.append(f"    mremap_policy={pol_expr},")
    for key, value in sorted((machine_kwargs or {}).items()):
        lines.append(f"    {key}={value!r},")
    lines.append(")")
    return "\n".join(lines) + "\n"


def renumber(ops: Sequence[Op]) -> list[Op]:
    """The same ops with process ids renumbered 1, 2, 3... in order of appearance, which
    is the order in which the machine hands out pids (so messages and ops agree)."""
    mapping: dict[int, int] = {}

    def new(pid: int) -> int:
        if pid not in mapping:
            mapping[pid] = len(mapping) + 1
        return mapping[pid]

    out = []
    for op in ops:
        child = new(op.child) if op.op == "fork" else op.child
        out.append(replace(op, pid=new(op.pid), child=child))
    return out


def process_groups(ops: Sequence[Op]) -> list[set[int]]:
    """For each process, the indices of its ops, of its descendants' ops and of the fork
    that created it: removing a whole group keeps the rest of the list valid."""
    children: dict[int, list[int]] = {}
    created: dict[int, int] = {}
    for i, op in enumerate(ops):
        if op.op == "fork":
            children.setdefault(op.pid, []).append(op.child)
            created[op.child] = i
    groups = []
    for pid in dict.fromkeys(op.pid for op in ops):
        family, todo = set(), [pid]
        while todo:
            p = todo.pop()
            family.add(p)
            todo += children.get(p, [])
        idx = {i for i, op in enumerate(ops) if op.pid in family}
        if pid in created:
            idx.add(created[pid])
        groups.append(idx)
    return groups


#: How many times the CPU budget of :func:`minimize` its wall time may run.
WALL_FACTOR = 5.0


def _budget(seconds: float) -> Callable[[], bool]:
    """A check that says when ``seconds`` of this process's CPU time (or
    ``WALL_FACTOR * seconds`` of wall time) have passed since the call."""
    cpu_end = time.process_time() + seconds
    wall_end = time.monotonic() + WALL_FACTOR * seconds
    return lambda: time.process_time() >= cpu_end or time.monotonic() >= wall_end


def minimize(ops: Sequence[Op], still_fails: Callable[[list[Op]], int | None], *,
             groups: Sequence[set[int]] = (), budget_seconds: float = 20.0) -> list[Op]:
    """Shrink ``ops`` while ``still_fails(candidate)`` reports a failure, within
    ``budget_seconds``: first try dropping each of ``groups`` (sets of indices, e.g. every
    op that failed with an errno, or a whole process subtree), then delta debugging
    (drop halves, quarters, ... single ops).

    ``still_fails`` returns None if the candidate does not fail, else the number of ops
    that ran up to and including the failing one (the rest is cut off).

    The budget is CPU time of this process, so a loaded machine shrinks as far as an idle
    one and a reproducer does not depend on the load; wall time is bounded too, at
    :data:`WALL_FACTOR` times the budget, for a plugin that sleeps.
    """
    current = list(ops)
    out_of_time = _budget(budget_seconds)
    # Group passes work on the original indices; keep a map from them to current ops.
    alive = list(range(len(current)))
    for group in sorted(groups, key=len, reverse=True):
        if out_of_time():
            break
        keep = [i for i in alive if i not in group]
        if len(keep) == len(alive) or not keep:
            continue
        candidate = [ops[i] for i in keep]
        ran = still_fails(candidate)
        if ran is not None:
            alive = keep[:ran]
    current = [ops[i] for i in alive]
    n = 2
    while len(current) >= 2 and not out_of_time():
        chunk = max(1, -(-len(current) // n))
        reduced = False
        for lo in range(0, len(current), chunk):
            if out_of_time():
                break
            candidate = current[:lo] + current[lo + chunk:]
            ran = still_fails(candidate) if candidate else None
            if ran is not None:
                current = candidate[:ran]
                reduced = True
                break
        if reduced:
            n = max(n - 1, 2)
        elif chunk == 1:
            break
        else:
            n = min(n * 2, len(current))
    return current
