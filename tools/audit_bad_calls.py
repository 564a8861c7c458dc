"""Audit: generated bad calls on the Process API, with the verdict on each (issue 14).

Every syscall of :data:`mmcore.testing.hostile.SYSCALLS` is called on a machine holding
private, shared-anonymous and file mappings and a forked child, first with valid
arguments, then with each argument in turn replaced by every hostile value of its C type
and every wrong-typed value, then on an exited process, then with random pairs of bad
arguments. Each call runs on a fresh machine and is judged by
:func:`mmcore.testing.hostile.judge` (invariants checked after it). Prints the counts by
category and outcome; exits 1 if any call was a finding (an internal traceback, a
poisoned machine, a change before an argument error, a broken invariant).

Usage: ``python tools/audit_bad_calls.py [--seed N] [--pairs N] [--show N]``
"""

from __future__ import annotations

import argparse
import os
import random
import sys
from collections import Counter
from collections.abc import Callable
from typing import Any

from mmcore import (
    MADV_DONTNEED,
    MAP_ANONYMOUS,
    MAP_PRIVATE,
    MAP_SHARED,
    MCL_CURRENT,
    MREMAP_MAYMOVE,
    PROT_READ,
    PROT_WRITE,
    RLIMIT_MEMLOCK,
    Machine,
    Process,
)
from mmcore.constants import DEFAULT_BRK_START, PAGE_SIZE
from mmcore.testing.hostile import (
    BAD_VALUES,
    SYSCALLS,
    WRONG_TYPES,
    Verdict,
    arg_kind,
    judge,
    parameters,
)

P = PAGE_SIZE
RW = PROT_READ | PROT_WRITE
MS_SYNC = 4


class World:
    """The machine each call runs on: process ``p`` with a 16-page private mapping
    ``anon`` (written, then COW-shared with ``child``), a 4-page shared anonymous one,
    a 2-page file mapped shared (``fd`` open read-write), and an exited process."""

    def __init__(self) -> None:
        self.m = Machine(ram_pages=128, swap_pages=256)
        self.p = p = self.m.spawn()
        self.anon = p.mmap(0, 16 * P, RW, MAP_PRIVATE | MAP_ANONYMOUS)
        self.shared = p.mmap(0, 4 * P, RW, MAP_SHARED | MAP_ANONYMOUS)
        self.m.create_file("/f", b"file" * (P // 2))
        self.fd = p.open("/f", os.O_RDWR)
        self.file = p.mmap(0, 2 * P, RW, MAP_SHARED, self.fd)
        for addr in (self.anon, self.shared, self.file):
            p.write(addr, b"data")
        self.child = p.fork()
        self.child.write(self.anon, b"kid!")
        self.dead = self.m.spawn()
        self.dead.exit(0)

    def valid(self, call: str) -> list[Any]:
        """Arguments with which ``call`` succeeds here."""
        p, a = self.p, self.anon
        limit = p.getrlimit(RLIMIT_MEMLOCK)
        valid: dict[str, list[Any]] = {
            "mmap": [0, 4 * P, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0],
            "munmap": [a, 4 * P], "mprotect": [a, 4 * P, PROT_READ],
            "mremap": [a, 4 * P, 8 * P, MREMAP_MAYMOVE, 0], "brk": [p.mm.brk + P],
            "madvise": [a, 4 * P, MADV_DONTNEED], "mlock": [a, P, 0], "munlock": [a, P],
            "mlockall": [MCL_CURRENT], "munlockall": [], "mseal": [a, P, 0],
            "msync": [self.file, P, MS_SYNC], "getrlimit": [RLIMIT_MEMLOCK],
            "setrlimit": [RLIMIT_MEMLOCK, *limit], "write": [a, b"data"], "read": [a, 4],
            "touch": [a, True], "open": ["/f", os.O_RDWR], "close": [self.fd],
            "dup": [self.fd], "pread": [self.fd, 4, 0], "pwrite": [self.fd, b"x", 0],
            "ftruncate": [self.fd, 2 * P], "fsync": [self.fd], "fork": [],
            "execve": [DEFAULT_BRK_START], "exit": [0], "waitpid": [self.child.pid],
            "pagemap": [a],
        }
        return valid[call]


def run(call: str, args: list[Any], on_dead: bool = False) -> Verdict:
    """One call on a fresh World, judged."""
    w = World()
    proc: Process = w.dead if on_dead else w.p
    fn: Callable[..., object] = getattr(proc, call)
    return judge(w.m, lambda: fn(*args))


def generate(seed: int, pairs: int) -> list[tuple[str, str, list[Any], bool]]:
    """(category, call, args, on an exited process) for every generated bad call."""
    w = World()
    out: list[tuple[str, str, list[Any], bool]] = []
    slots: list[tuple[str, int, str]] = []
    for call in SYSCALLS:
        valid = w.valid(call)
        out.append(("valid", call, valid, False))
        out.append(("exited process", call, valid, True))
        for i, name in enumerate(parameters(call)[:len(valid)]):
            kind = arg_kind(name)
            if kind is None:
                continue
            slots.append((call, i, kind))
            for value in BAD_VALUES[kind]:
                out.append((f"bad {kind}", call, _with(valid, i, value), False))
            for value in WRONG_TYPES:
                out.append(("wrong type", call, _with(valid, i, value), False))
    rng = random.Random(seed)
    for _ in range(pairs):
        call, i, kind = rng.choice(slots)
        others = [s for s in slots if s[0] == call and s[1] != i]
        args = _with(w.valid(call), i, rng.choice(BAD_VALUES[kind] + WRONG_TYPES))
        if others:
            _, j, kind2 = rng.choice(others)
            args = _with(args, j, rng.choice(BAD_VALUES[kind2] + WRONG_TYPES))
        out.append(("random pair", call, args, False))
    return out


def _with(args: list[Any], i: int, value: object) -> list[Any]:
    return [*args[:i], value, *args[i + 1:]]


def main(argv: list[str] | None = None) -> int:
    """Run the audit; print the table; 1 if any call was a finding."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0, help="seed of the random pairs")
    ap.add_argument("--pairs", type=int, default=200, help="random pairs of bad arguments")
    ap.add_argument("--show", type=int, default=10, help="findings to print in full")
    opts = ap.parse_args(argv)
    cases = generate(opts.seed, opts.pairs)
    table: dict[str, Counter[str]] = {}
    findings: list[str] = []
    for category, call, args, on_dead in cases:
        verdict = run(call, args, on_dead)
        table.setdefault(category, Counter())[verdict.outcome] += 1
        if verdict.finding:
            findings.append(f"{verdict.outcome}: {call}{tuple(args)!r:.120} "
                            f"({category}): {verdict.detail:.300}")
    outcomes = ["ok", "errno", "signal", "argument", "killed",
                "traceback", "broken", "changed", "invariant"]
    print(f"{'category':<16}" + "".join(f"{o:>10}" for o in outcomes) + f"{'total':>8}")
    total: Counter[str] = Counter()
    for category, counts in table.items():
        total.update(counts)
        print(f"{category:<16}" + "".join(f"{counts[o]:>10}" for o in outcomes)
              + f"{sum(counts.values()):>8}")
    print(f"{'all':<16}" + "".join(f"{total[o]:>10}" for o in outcomes)
          + f"{sum(total.values()):>8}")
    bad = len(cases) - len(SYSCALLS)  # all but the one valid call per syscall
    print(f"{bad} bad calls; internal tracebacks {total['traceback']}, poisoned machines "
          f"{total['broken']}, changed before an argument error {total['changed']}, "
          f"invariant violations {total['invariant']}")
    for line in findings[:opts.show]:
        print(line)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
