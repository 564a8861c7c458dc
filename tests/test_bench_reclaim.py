"""benchmarks/bench_reclaim.py measures what it says (issue 14 item 5): both runs get
past their mmap (it once failed with ENOMEM, the heuristic overcommit refusing a mapping
larger than RAM + swap, so nothing was measured), swap out at least a full swap device,
and end in the OOM kill of the writing process, which frees its swap. A tiny RAM:
behaviour only, never speed."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from mmcore import Machine

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_reclaim  # a script directory, not a package


@pytest.mark.parametrize("run", [bench_reclaim.overcommit, bench_reclaim.populate],
                         ids=["overcommit", "populate"])
def test_the_run_fills_swap_and_ends_in_the_oom_kill(
        run: Callable[[int], tuple[float, Machine]]) -> None:
    seconds, m = run(1024)
    assert seconds > 0
    assert m.swap.nr_slots and m.counters.pages_swapped_out >= m.swap.nr_slots
    assert m.counters.oom_kills == 1 and m.broken is None
    assert not m.live_processes() and m.swap.nr_free == m.swap.nr_slots  # the kill freed it
