"""Parameter grids: every combination of swept values times every valid configuration
(times seeds), as cells run by an executor into an optional result store.

>>> from mmcore.experiments.sweep import grid
>>> grid({"pages": ["8", "16"], "children": ["2"]})
[{'pages': '8', 'children': '2'}, {'pages': '16', 'children': '2'}]
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from . import runner
from .cells import Cell, Outcome, make_cell
from .executors import Executor, Inline
from .results import DEFAULT_FILE_RMAP, DEFAULT_MAPCOUNT, DEFAULT_RECLAIM
from .store import Store


def grid(values: Mapping[str, Sequence[object]]) -> list[dict[str, object]]:
    """Every combination of ``values`` (parameter -> values), first parameter slowest."""
    keys = list(values)
    return [dict(zip(keys, combo, strict=True))
            for combo in itertools.product(*(values[k] for k in keys))]


def cells(workload: str, values: Mapping[str, Sequence[object]], *,
          seeds: Sequence[int] = (0,), arch: str = "x86_64",
          configs: Sequence[tuple[str, str | None]] | None = None,
          file_rmaps: Sequence[str] = (DEFAULT_FILE_RMAP,),
          reclaims: Sequence[str] = (DEFAULT_RECLAIM,),
          mapcounts: Sequence[str] = (DEFAULT_MAPCOUNT,)) -> list[Cell]:
    """The cells of a sweep: the parameter grid (slowest), times the file rmap plugins,
    the reclaim policies, the mapcount designs and the (rmap, mremap policy) matrix,
    times ``seeds`` (fastest)."""
    matrix = configs if configs is not None else runner.configurations()
    return [make_cell(workload, params, rmap=r, mremap_policy=p, seed=s, arch=arch,
                      file_rmap=f, reclaim=c, mapcount=m)
            for params in grid(values) for f in file_rmaps for c in reclaims
            for m in mapcounts for r, p in matrix for s in seeds]


@dataclass
class Sweep:
    """What a sweep gave: one outcome per cell, in cell order; ``computed`` cells ran
    now, ``reused`` came from the store."""

    outcomes: list[Outcome]
    computed: int
    reused: int

    @property
    def failed(self) -> list[Outcome]:
        """The failed outcomes."""
        return [o for o in self.outcomes if not o.ok]


def plan(todo: Sequence[Cell], store: Store | None, force: bool = False,
         retry_failed: bool = False) -> list[Cell]:
    """The distinct cells of ``todo`` that must run: all with ``force``, else those not
    in ``store`` (and its failed ones with ``retry_failed``)."""
    out: dict[str, Cell] = {}
    for cell in todo:
        key = cell.key
        status = None if store is None or force else store.status(key)
        if status is None or (retry_failed and status == "failed"):
            out.setdefault(key, cell)
    return list(out.values())


def run_sweep(todo: Sequence[Cell], executor: Executor | None = None,
              store: Store | None = None, *, force: bool = False,
              retry_failed: bool = False, timeout: float | None = None,
              progress: Callable[[int, int], None] | None = None) -> Sweep:
    """Run the cells of ``todo`` that ``store`` lacks (see :func:`plan`) on ``executor``
    (inline by default), storing each outcome as it arrives; ``progress(done, total)``
    is called before the first cell runs and after each. The caller holds the store's
    lock (``with store:``)."""
    run = plan(todo, store, force, retry_failed)
    got: dict[str, Outcome] = {}
    if progress is not None:
        progress(0, len(run))

    def done(i: int, text: str) -> None:
        outcome = Outcome.from_json(text)
        if store is not None:
            store.put(outcome, text)
        got[outcome.key] = outcome
        if progress is not None:
            progress(len(got), len(run))

    if run:  # a resumed sweep with nothing left starts no pool and no cluster
        (executor or Inline()).run(run, done, timeout)
    for c in todo:
        if c.key not in got and store is not None:
            got[c.key] = store.get(c.key)
    return Sweep([got[c.key] for c in todo], computed=len(run),
                 reused=len({c.key for c in todo} - {c.key for c in run}))
