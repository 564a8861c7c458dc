"""Seeded random operation sequences (no hypothesis): a few thousand ops per configuration,
file mappings included, every invariant checked after every op, nothing left after every
process exits (but the files' page cache)."""

from __future__ import annotations

import pytest

from mmcore import valid_configurations
from mmcore.testing import run_random_sequence

CONFIGS = valid_configurations()
IDS = [r + (f"+{p}" if p else "") for r, p in CONFIGS]


@pytest.mark.slow  # 1.5 s a configuration, 11 configurations
@pytest.mark.parametrize(("rmap", "policy"), CONFIGS, ids=IDS)
def test_random_sequence(rmap: str, policy: str | None) -> None:
    driver = run_random_sequence(rmap, policy, seed=2024, steps=2000)
    ops = [op.op for op in driver.ops]
    # The walk really covered the interesting operations.
    for kind in ("mmap", "munmap", "mprotect", "mremap", "fork", "exit", "write", "read",
                 "reclaim", "madvise", "create", "open", "pread", "pwrite", "ftruncate"):
        assert kind in ops, kind
    assert any(op.op == "mmap" and op.fd >= 0 for op in driver.ops)
    assert "SIGBUS" in driver.outcomes
    assert len(ops) >= 1500
    assert not driver.machine.live_processes()
    # Only the files' page cache is left (cache, not a leak): dropping it frees everything.
    driver.machine.drop_caches()
    assert not driver.machine.physmem.used_pages()


@pytest.mark.parametrize(("rmap", "policy"), CONFIGS, ids=IDS)
def test_random_sequence_under_memory_pressure(rmap: str, policy: str | None) -> None:
    """24 frames: kswapd reclaim runs through the rmap walk in the middle of operations."""
    driver = run_random_sequence(rmap, policy, seed=7, steps=800,
                                 machine_kwargs={"ram_pages": 24})
    counters = driver.machine.costs().counters
    assert counters.kswapd_runs + counters.direct_reclaims > 0
    assert counters.pswpout > 0
