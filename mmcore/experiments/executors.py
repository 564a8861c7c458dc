"""Where sweep cells run: in this process, on a local process pool, or on Dask.

Every executor takes a list of :class:`~mmcore.experiments.cells.Cell` and calls
``done(index, outcome_json)`` in this process as each finishes, in any order; the cell's
own failures come back as failed outcomes (:func:`~mmcore.experiments.cells.run_cell`).
Ctrl-C (or SIGTERM turned into KeyboardInterrupt by the command line) stops the workers
and propagates, so a store keeps exactly the cells that finished.

* :class:`Inline`: one cell after another, here.
* :class:`LocalPool`: a ``spawn`` process pool, no dependency beyond the standard library.
  A worker that dies (killed, out of memory) ends the sweep with :class:`WorkerDied`; the
  cells finished so far are kept and a rerun resumes.
* :class:`Dask`: ``dask.distributed`` (the optional extra ``mmcore-sim[dask]``), on a
  LocalCluster it starts or on the scheduler at an address (``tcp://HOST:PORT``: any
  Dask deployment, dask-jobqueue or Kubernetes included). Workers need mmcore and the
  plugins the cells name; Dask retries a cell whose worker died, and one that kills
  its workers every time, or that a worker cannot even load (no mmcore there), is a
  failed outcome of kind ``worker``.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import multiprocessing
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol

from .cells import Cell, Failure, Outcome, one_line, run_cell

Done = Callable[[int, str], None]

#: The one line printed when ``--executor dask`` is asked for without dask.
DASK_MISSING = ("--executor dask needs dask.distributed: pip install 'mmcore-sim[dask]' "
                "(or pip install 'dask[distributed]')")


class ExecutorError(RuntimeError):
    """An executor that cannot run (dask missing, a scheduler that cannot be reached)."""


class WorkerDied(ExecutorError):
    """A pool worker died: the cells finished before it are kept."""


class Executor(Protocol):
    """Runs cells and reports each outcome's JSON to ``done``; ``description`` says
    where, for a report (``on a local pool of 2 processes``)."""

    @property
    def description(self) -> str:
        """Where the cells run, as a phrase."""

    def run(self, cells: Sequence[Cell], done: Done, timeout: float | None = None
            ) -> None:
        """Run every cell (each for at most ``timeout`` seconds), calling
        ``done(index, outcome_json)`` here as each finishes."""

    def __enter__(self) -> Executor:
        """Keep the workers (a pool, a cluster) from one :meth:`run` to the next until
        the ``with`` ends: a caller with several batches of cells starts them once."""

    def __exit__(self, *exc: object) -> None:
        """Stop the workers kept since ``__enter__``."""


class Inline:
    """Every cell in this process, in order."""

    description = "one after another in the mmsim process"

    def run(self, cells: Sequence[Cell], done: Done, timeout: float | None = None
            ) -> None:
        """Run ``cells`` one after another."""
        for i, cell in enumerate(cells):
            done(i, run_cell(cell, timeout))

    def __enter__(self) -> Inline:
        """Nothing to keep: the cells run here."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Nothing to stop."""


def _ignore_sigint() -> None:
    """Pool workers leave Ctrl-C (sent to the whole process group) to the parent, which
    stops them: no traceback per worker."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class LocalPool:
    """A pool of ``processes`` spawned worker processes on this machine: started by the
    first :meth:`run`, stopped after it, or inside ``with`` at the ``with``'s end (each
    spawned worker imports mmcore and the plugins, about a second of CPU apiece)."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self._pool: ProcessPoolExecutor | None = None
        self._others: set[multiprocessing.process.BaseProcess] = set()
        self._held = 0

    @property
    def description(self) -> str:
        """``on a local pool of N processes``."""
        return f"on a local pool of {self.processes} processes"

    def __enter__(self) -> LocalPool:
        """Keep the pool from one :meth:`run` to the next."""
        self._held += 1
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop the pool at the end of the outermost ``with``."""
        self._held -= 1
        if not self._held and self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def _started(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # The children alive before the pool are not ours to stop on an interrupt.
            self._others = set(multiprocessing.active_children())
            self._pool = ProcessPoolExecutor(max_workers=self.processes,
                                             mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_ignore_sigint)
        return self._pool

    def _stop(self, pool: ProcessPoolExecutor) -> None:
        """Stop an interrupted or broken pool: it runs nothing more (the next run starts
        another). Workers first: shutting down while they live queues the pool's stop
        sentinels, which its feeder thread then writes into pipes the shutdown has closed
        (a stray "Bad file descriptor" traceback, seen after a worker was SIGKILLed too).
        With the workers gone the pool is broken, and shutdown() just cleans up."""
        self._pool = None
        for child in set(multiprocessing.active_children()) - self._others:
            child.terminate()
        pool.shutdown(wait=True, cancel_futures=True)

    def run(self, cells: Sequence[Cell], done: Done, timeout: float | None = None
            ) -> None:
        """Run ``cells`` on the pool; stop every worker on an interrupt."""
        pool = self._started()
        try:
            pending = {pool.submit(run_cell, cell, timeout): i
                       for i, cell in enumerate(cells)}
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    done(pending.pop(fut), fut.result())
        except BrokenProcessPool:
            self._stop(pool)
            raise WorkerDied("a worker process died (killed, or out of memory); the "
                             "cells finished before it are kept") from None
        except BaseException:
            self._stop(pool)
            raise
        if not self._held:
            self._pool = None
            pool.shutdown()


def _worker_failure(cell: Cell, reason: str) -> str:
    """The JSON of a failed outcome of kind ``worker``."""
    return Outcome(cell, failure=Failure("worker", reason)).to_json()


def _distributed() -> Any:
    """The ``distributed`` module, untyped: mmcore type-checks with or without dask."""
    return importlib.import_module("distributed")


class Dask:
    """A ``dask.distributed`` cluster: a LocalCluster of ``workers`` single-threaded
    processes, or the scheduler at ``scheduler``."""

    def __init__(self, workers: int = 2, scheduler: str | None = None) -> None:
        try:  # found now, imported (2 s) only when there are cells to run
            found = importlib.util.find_spec("distributed") is not None
        except ValueError:  # a module set to None in sys.modules: as good as missing
            found = False
        if not found:
            raise ExecutorError(DASK_MISSING)
        self.workers = workers
        self.scheduler = scheduler
        self._kept: Any = None  # the client (and its LocalCluster) kept inside ``with``
        self._held = 0

    @property
    def description(self) -> str:
        """The LocalCluster's size, or the scheduler's address."""
        if self.scheduler is not None:
            return f"on the Dask cluster at {self.scheduler}"
        return f"on a Dask LocalCluster of {self.workers} workers"

    def __enter__(self) -> Dask:
        """Keep the client (and the LocalCluster it started) from one :meth:`run` to the
        next: starting a LocalCluster takes seconds."""
        self._held += 1
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the client at the end of the outermost ``with``."""
        self._held -= 1
        if not self._held and self._kept is not None:
            self._close(self._kept)
            self._kept = None

    def _close(self, client: Any) -> None:
        cluster = client.cluster
        client.close()
        if cluster is not None and self.scheduler is None:
            cluster.close()

    def _client(self) -> Any:
        d = _distributed()
        try:
            if self.scheduler is not None:
                return d.Client(self.scheduler, timeout="10s")
            cluster = d.LocalCluster(n_workers=self.workers, threads_per_worker=1,
                                     processes=True, dashboard_address=None,
                                     silence_logs=logging.ERROR)
            return d.Client(cluster)
        except (OSError, TimeoutError) as exc:
            where = self.scheduler or "a LocalCluster"
            raise ExecutorError(f"cannot reach the Dask scheduler at {where}: "
                                f"{one_line(exc)}") from None

    def run(self, cells: Sequence[Cell], done: Done, timeout: float | None = None
            ) -> None:
        """Run ``cells`` on the cluster; cancel what is left on an interrupt."""
        d = _distributed()
        client = self._kept if self._kept is not None else self._client()
        if self._held:
            self._kept = client
        futures: list[Any] = []
        try:
            futures = client.map(run_cell, list(cells), timeout=timeout, pure=False)
            index = {f.key: i for i, f in enumerate(futures)}
            for fut in d.as_completed(futures):
                i = index[fut.key]
                try:
                    text = fut.result()
                except d.KilledWorker as exc:
                    text = _worker_failure(cells[i], f"every worker that ran it died "
                                                     f"({one_line(exc)})")
                except Exception as exc:  # a worker without mmcore cannot even unpickle
                    text = _worker_failure(cells[i], f"the worker could not run it: "
                                                     f"{one_line(exc)}")
                done(i, text)
        except BaseException:
            client.cancel(futures)
            raise
        finally:
            if not self._held:
                self._close(client)


def make_executor(kind: str, jobs: int, scheduler: str | None = None) -> Executor:
    """The executor ``kind`` (``local`` or ``dask``) with ``jobs`` workers; ``local``
    with one job runs inline. ExecutorError when dask is asked for and missing."""
    if kind == "dask" or scheduler is not None:
        return Dask(jobs, scheduler)
    if kind != "local":
        raise ExecutorError(f"unknown executor {kind!r}: local or dask")
    return Inline() if jobs <= 1 else LocalPool(jobs)
