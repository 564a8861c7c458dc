"""Seeded random operation sequences (no hypothesis): a few thousand ops per configuration,
every invariant checked after every op, nothing left after every process exits."""

from __future__ import annotations

import pytest

from mmcore import valid_configurations
from mmcore.testing import run_random_sequence

CONFIGS = valid_configurations()
IDS = [r + (f"+{p}" if p else "") for r, p in CONFIGS]


@pytest.mark.parametrize(("rmap", "policy"), CONFIGS, ids=IDS)
def test_random_sequence(rmap: str, policy: str | None) -> None:
    driver = run_random_sequence(rmap, policy, seed=2024, steps=2000)
    ops = [op.op for op in driver.ops]
    # The walk really covered the interesting operations.
    for kind in ("mmap", "munmap", "mprotect", "mremap", "fork", "exit", "write", "read",
                 "reclaim", "madvise"):
        assert kind in ops, kind
    assert len(ops) >= 1500
    assert not driver.machine.live_processes()
    assert not driver.machine.physmem.used_pages()


@pytest.mark.parametrize(("rmap", "policy"), CONFIGS, ids=IDS)
def test_random_sequence_under_memory_pressure(rmap: str, policy: str | None) -> None:
    """24 frames: kswapd reclaim runs through the rmap walk in the middle of operations."""
    driver = run_random_sequence(rmap, policy, seed=7, steps=800,
                                 machine_kwargs={"ram_pages": 24})
    counters = driver.machine.costs().counters
    assert counters.kswapd_runs + counters.direct_reclaims > 0
    assert counters.pswpout > 0
