"""``mmsim sweep``: a parameter grid times every configuration (times seeds), as cells
on an executor (``--executor local|dask``, ``--scheduler``), into a result store
(``--store DIR``) that a rerun resumes from.

:func:`add_sweep_options` adds the options to the ``sweep`` parser and :func:`cmd_sweep`
runs it, with the errors and exit statuses of every mmsim command; the exit status is 1
when any cell failed (each failure is one line on stderr, and the store keeps it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..cli import (
    EXIT_FAILURE,
    Failure,
    UsageError,
    _check_workload,
    _machine_note,
    _plot_path,
    _short_labels,
    parse_params,
    positive,
)
from ..errors import ConfigError
from ..plugins import plugins_of_kind, resolve
from .cells import Outcome
from .executors import ExecutorError, make_executor
from .results import DEFAULT_FILE_RMAP, DEFAULT_RECLAIM, Result
from .store import Store
from .sweep import Sweep, cells, grid, run_sweep

__all__ = ["add_sweep_options", "cmd_sweep", "show"]


def seconds(text: str) -> float:
    """An argparse type: a number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of seconds")
    return value


#: The plugin axes a sweep can run several plugins of, with their defaults.
PLUGIN_AXES = {"file_rmap": DEFAULT_FILE_RMAP, "reclaim": DEFAULT_RECLAIM}


def plugin_axis(given: str | None, kind: str) -> list[str]:
    """The plugins of ``kind`` a sweep runs: ``--file-rmap``/``--reclaim`` as one name,
    a comma list or ``all`` (every installed one), else the default; UsageError naming
    the choices for an unknown one."""
    if given == "all":
        return list(plugins_of_kind(kind))
    names = [n.strip() for n in (given or PLUGIN_AXES[kind]).split(",")]
    if len(set(names)) != len(names):
        raise UsageError(f"--{kind.replace('_', '-')} {given}: a name given twice")
    try:
        for name in names:
            resolve(name, kind)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    return names


def add_sweep_options(sp: argparse.ArgumentParser) -> None:
    """The plugin axes, executor, store and seed options of ``mmsim sweep``."""
    sp.add_argument("--file-rmap", default=None, metavar="NAME[,NAME...]|all",
                    help="file rmap plugins to sweep (default: i_mmap_tree)")
    sp.add_argument("--reclaim", default=None, metavar="NAME[,NAME...]|all",
                    help="reclaim policies to sweep (default: lru2)")
    sp.add_argument("--jobs", type=positive, default=1,
                    help="worker processes (local pool or Dask LocalCluster)")
    sp.add_argument("--executor", default="local", choices=["local", "dask"],
                    help="where cells run: a local process pool, or dask.distributed "
                         "(pip install 'mmcore-sim[dask]')")
    sp.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                    help="run on an existing Dask cluster (implies --executor dask)")
    sp.add_argument("--store", default=None, metavar="DIR",
                    help="result store: one JSON file per cell; a rerun skips the cells "
                         "already there (created if missing)")
    sp.add_argument("--force", action="store_true",
                    help="recompute cells already in the store")
    sp.add_argument("--retry-failed", action="store_true",
                    help="recompute the store's failed cells")
    sp.add_argument("--timeout", type=seconds, default=None, metavar="SECONDS",
                    help="a cell still running after this long is a failed result")
    sp.add_argument("--seeds", type=positive, default=1, metavar="N",
                    help="run each cell with seeds SEED..SEED+N-1; tables show the median "
                         "and the spread")


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops a sweep as Ctrl-C does (KeyboardInterrupt): workers stopped, the
    finished cells kept, no partial file."""
    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _failure_line(o: Outcome) -> str:
    """``failed: LABEL params seed N: [plugin/hook] kind: reason``."""
    f = o.failure
    assert f is not None
    where = "/".join(x for x in (f.plugin, f.hook) if x)
    params = " ".join(f"{k}={v}" for k, v in o.cell.params.items())
    return (f"mmsim: failed: {o.cell.label} ({params}; seed {o.cell.seed}): "
            f"{f'[{where}] ' if where else ''}{f.kind}: {f.reason}")


def _run(args: argparse.Namespace, todo: list[Any], store: Store | None) -> Sweep:
    """Run the sweep with a progress bar on stderr; SIGTERM is an interrupt meanwhile."""
    try:
        executor = make_executor(args.executor, args.jobs, args.scheduler)
    except ExecutorError as exc:
        raise Failure(str(exc)) from None
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True,
                  disable=args.json and not sys.stderr.isatty()) as bar:
        task = bar.add_task(f"sweep {args.workload}", total=None)
        try:
            with sigterm_as_interrupt():
                return run_sweep(todo, executor, store, force=args.force,
                                 retry_failed=args.retry_failed, timeout=args.timeout,
                                 progress=lambda n, total: bar.update(
                                     task, completed=n, total=total))
        except ExecutorError as exc:
            raise Failure(f"{exc}; run the same command to resume" if store is not None
                          else str(exc)) from None
        except KeyboardInterrupt:
            if store is not None:
                print(f"mmsim: {len(store)} cells are in {store.root}; run the same "
                      f"command to resume", file=sys.stderr)
            raise


def show(results: list[Result], workload: str, swept: str | None, plot: Path | None,
         out: Console, tables: bool = True) -> None:
    """The plot (against parameter ``swept``) and the tables, one per grid point, of a
    sweep's results: what ``mmsim sweep`` prints, and ``mmsim results report`` reprints
    from a store. With one file rmap and reclaim policy, rows are named by the scheme
    and the title names the plugins; with several, rows keep their full labels."""
    from .plots import sweep_plot
    from .report import compare_table, describe_params, seed_tables

    combos = {(r.config.file_rmap, r.config.reclaim) for r in results}
    fixed = len(combos) == 1
    note = _machine_note(dict(zip(("file_rmap", "reclaim"), combos.pop(), strict=True))
                         ) if fixed else ""
    if fixed:
        _short_labels(results)
    if plot is not None and results and swept is not None:
        sweep_plot(results, swept, plot, title=f"{workload}: sweep of {swept}{note}")
    if not tables:
        return
    seeds = len({r.config.seed for r in results})
    groups: dict[str, list[Result]] = {}
    for r in results:  # one table per grid point, in grid order
        groups.setdefault(json.dumps(r.config.params, sort_keys=True), []).append(r)
    for rows in groups.values():
        title = f"{workload} ({describe_params(rows[0].config.params)}{note}"
        if seeds == 1:
            # merging rows "scheme ±policy" would also merge file rmap/reclaim rows
            out.print(compare_table(rows, title=title + ")", merge=fixed))
        else:
            for part in seed_tables(rows, title=f"{title}; {seeds} seeds)"):
                out.print(part)
    if plot is not None and results and swept is not None:
        out.print(f"plot: {plot}")


def cmd_sweep(args: argparse.Namespace, out: Console) -> int:
    """A grid of parameter values times every configuration (times seeds), on an
    executor, into the store if one is given; exit 1 if any cell failed."""
    from .results import dumps

    values = parse_params(args.param, allow_lists=True)
    swept = [k for k, v in values.items() if len(v) > 1]
    if not swept:
        raise UsageError("sweep needs at least one --param with several values, "
                         "e.g. --param children=4,8,16")
    for combo in grid(values):
        _check_workload(args.workload, combo)
    axes = {kind: plugin_axis(getattr(args, kind), kind) for kind in ("file_rmap",
                                                                      "reclaim")}
    plot = _plot_path(args, f"{args.workload}-sweep-{swept[0]}.png")
    todo = cells(args.workload, values, seeds=range(args.seed, args.seed + args.seeds),
                 arch=args.arch, file_rmaps=axes["file_rmap"], reclaims=axes["reclaim"])
    if args.store is None:
        sweep = _run(args, todo, None)
    else:
        with Store(args.store) as store:
            sweep = _run(args, todo, store)
    results = [o.result for o in sweep.outcomes if o.result is not None]
    if args.json:
        print(dumps(results))
    show(results, args.workload, swept[0], plot, out, tables=not args.json)
    for o in sweep.failed:
        print(_failure_line(o), file=sys.stderr)
    print(f"mmsim: sweep {args.workload}: {len(todo)} cells, {sweep.computed} run, "
          f"{sweep.reused} from the store, {len(sweep.failed)} failed", file=sys.stderr)
    return EXIT_FAILURE if sweep.failed else 0
