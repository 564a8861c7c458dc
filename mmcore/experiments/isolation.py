"""Run one configuration so that a broken plugin costs only its own row.

:func:`run_guarded` runs one :func:`~mmcore.experiments.runner.run_from_spec` unit (or, for
a spec naming a ``trace``, one :func:`~mmcore.experiments.replay.replay_from_spec`; for
a spec naming a ``study``, one design's row of the mapcount study,
:func:`~mmcore.experiments.mapcount_study.design_from_spec`) and returns either its
:class:`~mmcore.experiments.results.Result` (its
:class:`~mmcore.experiments.replay.ReplayReport`, its
:class:`~mmcore.experiments.mapcount_study.DesignRun`) or a :class:`RunFailure` naming the
plugin, its distribution and the hook that failed; it is how every command runs a
configuration (a sweep cell, :func:`mmcore.experiments.cells.run_cell`, calls it).
With a time budget the run happens in a child process: inside it
:func:`mmcore.budget.time_budget` interrupts a looping hook (so the failure still names
it), and the parent kills a child that does not answer within :data:`GRACE_S` more
seconds (a hook stuck in C code, or one that swallows exceptions). Off the main thread
(a Dask worker's task thread) no signal can reach the run and a fork could inherit other
threads' locks, so there the budget is the deadline checked between ops.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import structlog
from dataclasses_json import DataClassJsonMixin

from ..budget import time_budget
from ..errors import RunTimeout
from ..plugins import discover
from .mapcount_study import DesignRun, design_from_spec
from .replay import ReplayReport, replay_from_spec
from .results import Result

#: Seconds a child gets past its budget to report the timeout itself before it is killed.
GRACE_S = 2.0

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RunFailure(DataClassJsonMixin):
    """A configuration that produced no result: ``status`` is ``broken`` (something
    raised) or ``timed out``; ``plugin``, ``distribution`` and ``hook`` name what failed
    when it was a plugin (None otherwise); ``reason`` is one line."""

    label: str
    status: str
    plugin: str | None
    distribution: str | None
    hook: str | None
    reason: str

    def where(self) -> str:
        """``plugin 'x' (dist 1.0), hook 'h'``, or ``mmcore`` when no plugin is named."""
        if self.plugin is None:
            return "mmcore" if self.hook is None else f"hook {self.hook!r}"
        out = f"plugin {self.plugin!r}"
        if self.distribution is not None:
            out += f" ({self.distribution})"
        return out + ("" if self.hook is None else f", hook {self.hook!r}")


def _distribution(plugin: str | None) -> str | None:
    """``name version`` of the installed distribution providing plugin ``plugin``."""
    entry = next((e for e in discover() if e.name == plugin and e.cls is not None), None)
    return None if entry is None else f"{entry.distribution} {entry.version}"


def failure_of(label: str, exc: BaseException) -> RunFailure:
    """The :class:`RunFailure` of configuration ``label`` that raised ``exc``: the plugin
    and hook from the exception's ``plugin`` and ``hook`` attributes
    (:class:`~mmcore.MachineBroken`, :class:`~mmcore.PluginError`)."""
    plugin = getattr(exc, "plugin", None)
    hook = getattr(exc, "hook", None)
    timed_out = isinstance(exc, RunTimeout) or isinstance(exc.__cause__, RunTimeout)
    # With the plugin named in its own column, the reason is what the plugin raised.
    cause = exc.__cause__ if plugin is not None and exc.__cause__ is not None else exc
    text = f"{type(cause).__name__}: {cause}"
    return RunFailure(label, "timed out" if timed_out else "broken", plugin,
                      _distribution(plugin), hook, " ".join(text.split()))


#: What a run gives: a workload's result, a trace's replay report, or one design's run
#: of the mapcount study.
Ran = Result | ReplayReport | DesignRun


def _attempt(label: str, spec: Mapping[str, Any], timeout: float | None
             ) -> Ran | RunFailure:
    """Run ``spec`` here, under ``timeout``; any failure becomes a RunFailure."""
    from .runner import run_from_spec

    try:
        with time_budget(timeout):
            if "trace" in spec:
                return replay_from_spec(spec)
            return design_from_spec(spec) if "study" in spec else run_from_spec(spec)
    except Exception as exc:  # the point: one configuration's failure stays its own
        if structlog.is_configured():
            log.debug("run.failed", config=label, exc_info=exc)
        return failure_of(label, exc)


def _child(label: str, spec: Mapping[str, Any], timeout: float, conn: Connection) -> None:
    """The child process of a run with a time budget: send back the result or failure."""
    outcome = _attempt(label, spec, timeout)
    conn.send((type(outcome).__name__, outcome.to_json()))
    conn.close()


def _decode(kind: str, text: str) -> Ran | RunFailure:
    """What a child sent back: ``kind`` is its class name."""
    if kind == "RunFailure":
        return RunFailure.from_json(text)
    if kind == "DesignRun":
        return DesignRun.from_json(text)
    return ReplayReport.from_json(text) if kind == "ReplayReport" else Result.from_json(text)


def run_guarded(label: str, spec: Mapping[str, Any], timeout: float | None = None
                ) -> Ran | RunFailure:
    """Run one configuration (``spec`` as for :func:`~mmcore.experiments.runner.run_from_spec`)
    and return its Result, or the RunFailure of configuration ``label``.

    Without ``timeout`` the run happens in this process. With it, on the main thread, in
    a child process (forked where the platform can, so plugins found here need no
    reloading), and elsewhere here (see the module's docstring): past ``timeout``
    seconds the run is a ``timed out`` failure.
    """
    if timeout is None:
        return _attempt(label, spec, None)
    # Checked between ops too: the whole budget where no alarm can be armed.
    spec = {**spec, "deadline": time.monotonic() + timeout}
    if threading.current_thread() is not threading.main_thread():
        return _attempt(label, spec, timeout)
    forks = "fork" in multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork") if forks else multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(label, spec, timeout, send), daemon=True)
    proc.start()
    send.close()
    try:
        if receive.poll(timeout + GRACE_S):
            kind, text = receive.recv()
            return _decode(kind, text)
    except EOFError:  # the child died without a word
        proc.join()
        return RunFailure(label, "broken", None, None, None,
                          f"the run's process exited with status {proc.exitcode}")
    finally:
        receive.close()
        if proc.is_alive():
            proc.kill()
        proc.join()
    return RunFailure(label, "timed out", None, None, None,
                      f"no result within {timeout:g} s; the run was killed")


def select(labels: Mapping[str, tuple[str, ...]], only: list[str], exclude: list[str]
           ) -> list[str]:
    """The labels to run, in order: ``labels`` maps each configuration's label to the
    names that choose it (its scheme, its plugin, the label itself); ``only`` keeps the
    configurations some name of which is listed, ``exclude`` drops them. A name that
    chooses nothing is a ConfigError listing the names that do."""
    from ..errors import ConfigError

    known = {n for names in labels.values() for n in names}
    unknown = [n for n in only + exclude if n not in known]
    if unknown:
        raise ConfigError(f"no configuration is named {', '.join(map(repr, unknown))}: "
                          f"choose from {', '.join(sorted(known))}")
    return [label for label, names in labels.items()
            if (not only or set(names) & set(only)) and not set(names) & set(exclude)]
