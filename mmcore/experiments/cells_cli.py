"""What every mmsim command that runs configurations shares: they build cells
(:mod:`mmcore.experiments.cells`) and hand them to one executor, optionally into a
result store, with the same options.

:func:`add_executor_options` adds ``--jobs``, ``--executor``, ``--scheduler``,
``--store``, ``--force``, ``--retry-failed`` and ``--timeout``;
:func:`add_selection_options` adds ``--only`` and ``--exclude`` (:func:`choose` applies
them); :func:`run_cells` runs the cells with a progress bar on stderr (SIGTERM stops it
as Ctrl-C does), or :func:`executor_of`, :func:`open_store` and :class:`ProgressBar` give
what the options chose, and the bar, to a command that runs cells its own way
(``reproduce``); :func:`failure_line` is
the one line on stderr of a failed cell.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from collections.abc import Iterator, Mapping, Sequence
from types import FrameType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..cli import Failure, UsageError, positive, seconds
from ..errors import ConfigError
from .cells import Cell, Outcome
from .executors import Executor, ExecutorError, make_executor
from .isolation import select
from .store import Store
from .sweep import Sweep, run_sweep

__all__ = ["ProgressBar", "add_executor_options", "add_selection_options", "choose",
           "executor_of", "failure_line", "open_store", "run_cells", "scheme_names",
           "sigterm_as_interrupt", "split_names"]


def add_executor_options(sp: argparse.ArgumentParser, what: str = "cell",
                         store: bool = True) -> None:
    """Where the cells run (``--jobs``, ``--executor``, ``--scheduler``), where their
    results are kept (``--store``, ``--force``, ``--retry-failed``; not with ``store``
    False, for a command whose point is to run again: ``rerun``) and how long each may
    take (``--timeout``); ``what`` names a cell in the help (``configuration``)."""
    sp.add_argument("--jobs", type=positive, default=1,
                    help="worker processes (local pool or Dask LocalCluster)")
    sp.add_argument("--executor", default="local", choices=["local", "dask"],
                    help="where cells run: a local process pool, or dask.distributed "
                         "(pip install 'mmcore-sim[dask]')")
    sp.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                    help="run on an existing Dask cluster (implies --executor dask)")
    if store:
        sp.add_argument("--store", default=None, metavar="DIR",
                        help="result store: one JSON file per cell; a rerun skips the "
                             "cells already there (created if missing)")
        sp.add_argument("--force", action="store_true",
                        help="recompute cells already in the store")
        sp.add_argument("--retry-failed", action="store_true",
                        help="recompute the store's failed cells")
    else:
        sp.set_defaults(store=None, force=False, retry_failed=False)
    sp.add_argument("--timeout", type=seconds, default=None, metavar="SECONDS",
                    help=f"time budget of each {what}'s run, in a child process killed "
                         f"if its plugin ignores the budget: a run past it is a failed, "
                         f"'timed out' result (default: no budget, in the worker "
                         f"process)")


def add_selection_options(sp: argparse.ArgumentParser, names: str = "a scheme, a "
                          "scheme+policy") -> None:
    """``--only`` and ``--exclude``: which configurations run (``names`` says what
    chooses one, for the help)."""
    sp.add_argument("--only", action="append", default=[], metavar="NAME[,NAME]",
                    help=f"run only these configurations: {names} (repeatable)")
    sp.add_argument("--exclude", action="append", default=[], metavar="NAME[,NAME]",
                    help="leave these configurations out (repeatable)")


def split_names(values: Sequence[str]) -> list[str]:
    """``--only a,b --only c`` (a repeatable option of comma lists) as ``[a, b, c]``."""
    return [n for v in values for n in v.split(",") if n]


def choose(args: argparse.Namespace, labels: Mapping[str, tuple[str, ...]]) -> list[str]:
    """The labels ``--only`` and ``--exclude`` keep, in order (``labels`` maps each
    configuration's label to the names that choose it); a UsageError for a name that
    chooses nothing or a selection that leaves nothing."""
    try:
        chosen = select(labels, split_names(args.only), split_names(args.exclude))
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    if not chosen:
        raise UsageError("--only and --exclude leave no configuration to run")
    return chosen


def scheme_names(rmap: str, policy: str | None) -> tuple[str, ...]:
    """The names that choose configuration (rmap, policy): the scheme and its label."""
    return (rmap, rmap if policy is None else f"{rmap}+{policy}")


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops a run of cells as Ctrl-C does (KeyboardInterrupt): workers
    stopped, the finished cells kept, no partial file."""
    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def failure_line(o: Outcome) -> str:
    """``mmsim: failed: LABEL (params; seed N): plugin 'p' (dist), hook 'h': kind:
    reason``: one failed cell on one line."""
    f = o.failure
    assert f is not None
    where = f.run_failure(o.cell.label).where() if f.plugin or f.hook else ""
    params = " ".join(f"{k}={v}" for k, v in o.cell.params.items())
    return (f"mmsim: failed: {o.cell.label} ({params}; seed {o.cell.seed}): "
            f"{f'{where}: ' if where else ''}{f.kind}: {f.reason}")


def executor_of(args: argparse.Namespace) -> Executor:
    """The executor ``--executor``, ``--jobs`` and ``--scheduler`` choose; Failure (one
    line) when it cannot run (dask missing)."""
    try:
        return make_executor(args.executor, args.jobs, args.scheduler)
    except ExecutorError as exc:
        raise Failure(str(exc)) from None


@contextlib.contextmanager
def open_store(args: argparse.Namespace) -> Iterator[Store | None]:
    """The ``--store`` (held locked), or None without one."""
    if args.store is None:
        yield None
        return
    with Store(args.store) as store:
        yield store


class ProgressBar:
    """A progress bar of cells on stderr, drawn only on a terminal (off one a bar cannot
    move, and a transient one would leave a blank line); use as a context manager."""

    def __init__(self, description: str) -> None:
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn())
        self.bar = Progress(*columns, console=Console(stderr=True), transient=True,
                            disable=not sys.stderr.isatty())
        self.task = self.bar.add_task(description, total=None)

    def __enter__(self) -> ProgressBar:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(None, None, None)

    def update(self, done: int, total: int) -> None:
        """``done`` of ``total`` cells have finished (run_sweep's ``progress``)."""
        self.bar.update(self.task, completed=done, total=total)

    def say(self, text: str) -> None:
        """A dim line above the bar, on a terminal only."""
        if sys.stderr.isatty():
            self.bar.console.print(f"[dim]{text}[/]")


def run_cells(args: argparse.Namespace, todo: Sequence[Cell], description: str) -> Sweep:
    """Run ``todo`` on the executor the options choose, into ``--store`` if given (held
    locked meanwhile), with a progress bar named ``description`` on stderr."""
    executor = executor_of(args)
    with open_store(args) as store, ProgressBar(description) as bar:
        try:
            with sigterm_as_interrupt():
                return run_sweep(todo, executor, store, force=args.force,
                                 retry_failed=args.retry_failed, timeout=args.timeout,
                                 progress=bar.update)
        except ExecutorError as exc:
            raise Failure(f"{exc}; run the same command to resume" if store is not None
                          else str(exc)) from None
        except KeyboardInterrupt:
            if store is not None:
                print(f"mmsim: {len(store)} cells are in {store.root}; run the same "
                      f"command to resume", file=sys.stderr)
            raise
