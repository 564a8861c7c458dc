"""The conformance kit's reproducer shrinking (mmcore.testing.repro.minimize)."""

from __future__ import annotations

import time

from mmcore.experiments.ops import Op
from mmcore.testing.repro import minimize


def _ops(n: int) -> list[Op]:
    return [Op("spawn", pid=1)] + [Op("read", pid=1, addr=4096 * i) for i in range(n - 1)]


def test_minimize_shrinks_to_the_failing_op() -> None:
    """Delta debugging keeps only what the failure needs: here the spawn and one read."""
    ops = _ops(30)
    bad = ops[17]

    def still_fails(cand: list[Op]) -> int | None:
        return cand.index(bad) + 1 if bad in cand and cand[0].op == "spawn" else None

    assert minimize(ops, still_fails, budget_seconds=60) == [ops[0], bad]


def test_minimize_stops_at_the_wall_bound_when_checks_sleep() -> None:
    """The budget is CPU time, which a sleeping check does not spend: the wall bound
    (WALL_FACTOR times the budget) still stops the shrinking after a handful of checks."""
    calls = []

    def sleeps(cand: list[Op]) -> int | None:
        calls.append(len(cand))
        time.sleep(0.05)
        return None

    minimize(_ops(30), sleeps, budget_seconds=0.02)
    assert 1 <= len(calls) <= 3, calls
