"""Parameter grids: every combination of swept values times every valid configuration,
run on a local process pool.

>>> from mmcore.experiments.sweep import grid
>>> grid({"pages": ["8", "16"], "children": ["2"]})
[{'pages': '8', 'children': '2'}, {'pages': '16', 'children': '2'}]
"""

from __future__ import annotations

import itertools
import multiprocessing
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

from . import runner
from .results import Result


@dataclass(frozen=True)
class Job:
    """One cell of a sweep: a workload, parameters, and a configuration."""

    workload: str
    params: dict[str, Any]
    rmap: str
    policy: str | None
    seed: int = 0
    arch: str = "x86_64"


def grid(values: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of ``values`` (parameter -> values), first parameter slowest."""
    keys = list(values)
    return [dict(zip(keys, combo, strict=True))
            for combo in itertools.product(*(values[k] for k in keys))]


def jobs(workload: str, values: Mapping[str, Sequence[Any]], seed: int = 0,
         arch: str = "x86_64",
         configs: Sequence[tuple[str, str | None]] | None = None) -> list[Job]:
    """The jobs of a sweep: the parameter grid times the plugin matrix."""
    matrix = configs if configs is not None else runner.configurations()
    return [Job(workload, params, r, p, seed, arch)
            for params in grid(values) for r, p in matrix]


def run_job(job: Job) -> str:
    """Run one job and return its result as JSON (what crosses the process boundary)."""
    return runner.run(job.workload, job.params, rmap=job.rmap, mremap_policy=job.policy,
                      seed=job.seed, arch=job.arch).to_json()


def run_jobs(todo: Sequence[Job], processes: int = 1,
             progress: Callable[[Job], None] | None = None) -> list[Result]:
    """Run every job (in a pool of ``processes`` when more than 1), results in job order.
    ``progress`` is called once per finished job."""
    out: list[Result | None] = [None] * len(todo)
    if processes <= 1:
        for i, job in enumerate(todo):
            out[i] = Result.from_json(run_job(job))
            if progress is not None:
                progress(job)
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=processes, mp_context=ctx) as pool:
            futures = {pool.submit(run_job, job): i for i, job in enumerate(todo)}
            for fut in as_completed(futures):
                i = futures[fut]
                out[i] = Result.from_json(fut.result())
                if progress is not None:
                    progress(todo[i])
    return [r for r in out if r is not None]
