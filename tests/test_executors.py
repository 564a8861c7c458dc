"""An executor used as a context manager keeps its workers from one batch of cells to the
next, so ``mmsim reproduce --jobs N`` (a batch per claim) starts its pool once (issue 13:
a pool per claim made ``--jobs 2`` slower than inline)."""

from __future__ import annotations

import dataclasses
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from mmcore.experiments import executors
from mmcore.experiments.cells import Outcome, make_cell
from mmcore.experiments.executors import Inline, LocalPool
from mmcore.experiments.reproduce import reproduce

CELLS = [make_cell("forking-server", {"pages": 2, "children": 1}, rmap=rmap)
         for rmap in ("anon_vma", "pte_chains", "anon_vma_chain")]


def _count_pools(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The process pools the executors start from now on."""
    started: list[object] = []

    def counted(*args: Any, **kwargs: Any) -> object:
        pool = ProcessPoolExecutor(*args, **kwargs)
        started.append(pool)
        return pool

    monkeypatch.setattr(executors, "ProcessPoolExecutor", counted)
    return started


def _outcomes(executor: executors.Executor) -> dict[int, object]:
    """Each cell's result by index, but for the wall times (not reproducible)."""
    got: dict[int, object] = {}

    def done(i: int, text: str) -> None:
        result = Outcome.from_json(text).result
        assert result is not None
        got[i] = dataclasses.replace(result, wall_time_s=0.0)

    executor.run(CELLS, done)
    return got


@pytest.mark.slow  # spawns worker processes (each imports mmcore): a few seconds
def test_a_local_pool_inside_with_is_started_once_for_every_run(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside ``with`` two runs share one pool, whose workers are gone at its end;
    without it each run starts and stops its own. The outcomes are the inline ones."""
    started = _count_pools(monkeypatch)
    before = set(multiprocessing.active_children())
    inline = _outcomes(Inline())
    pool = LocalPool(1)
    with pool:
        assert _outcomes(pool) == inline
        assert _outcomes(pool) == inline
        assert len(started) == 1 and set(multiprocessing.active_children()) - before
    assert set(multiprocessing.active_children()) == before
    assert _outcomes(pool) == inline and _outcomes(pool) == inline
    assert len(started) == 3 and set(multiprocessing.active_children()) == before


@pytest.mark.slow
def test_reproduce_starts_one_pool_for_all_its_claims(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Two claims (two batches of cells) on ``LocalPool``: one pool, stopped at the end."""
    from mmcore.experiments import runner

    started = _count_pools(monkeypatch)
    before = set(multiprocessing.active_children())
    configs = [c for c in runner.configurations() if c == ("anon_vma", None)]
    _, claims = reproduce(tmp_path, configs, executor=LocalPool(1),
                          claims=["memory", "split-flood"])
    assert [c.key for c in claims] == ["memory", "split-flood"]
    assert len(started) == 1
    assert set(multiprocessing.active_children()) == before
