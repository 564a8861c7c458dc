"""Sweep cells: every axis of one run, its identity, and what running it gave.

A :class:`Cell` names everything that determines a run's numbers: the workload and its
parameters (all of them, defaults filled in), the seed, the arch profile, the rmap scheme,
mremap policy, file rmap and reclaim plugins and the observers, plus the versions of
mmcore and of each plugin it names. Its :attr:`Cell.key` is a content hash of all that:
the same cell built anywhere with the same versions has the same key, and a new version
of any plugin it uses gives a new key (so a result store never mixes versions).

A cell can replay a recorded trace instead (:func:`trace_cell`): its workload is
:data:`TRACE_WORKLOAD`, its parameters the replay's options, and the trace file is an
input identified by the SHA-256 of its bytes (``trace_sha256``, part of the key; the
path it is read from is not, so a copied or renamed trace keeps its cells). Its outcome
holds a :class:`~mmcore.experiments.replay.ReplayReport`, not a Result.

A cell names its mapcount design too (``mapcount``; :data:`DEFAULT_MAPCOUNT` is left out
of its data and key, so cells built before it was an axis keep their keys). A *study
cell* (``study`` :data:`MAPCOUNT_STUDY`) is one design's row of the mapcount study
(``mmsim compare --axis mapcount``): its outcome holds the
:class:`~mmcore.experiments.mapcount_study.DesignRun`, not a Result.

:func:`run_cell` runs a cell wherever it is sent (a pool process, a Dask worker) and
always returns an :class:`Outcome` as JSON text, never an exception: a cell that raises,
times out, breaks its machine or names a plugin the worker lacks is a failed outcome
with the plugin, the hook and a one-line reason.

>>> from mmcore.experiments.cells import make_cell
>>> c = make_cell("forking-server", {"pages": "8"}, rmap="pte_chains")
>>> c.params["pages"], len(c.key)
(8, 24)
"""

from __future__ import annotations

import hashlib
import json
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import ConfigError
from ..plugins import installed_plugins, plugin_version, resolve
from . import workloads
from .isolation import RunFailure, run_guarded
from .mapcount_study import DesignRun
from .replay import ReplayReport
from .results import DEFAULT_FILE_RMAP, DEFAULT_MAPCOUNT, DEFAULT_RECLAIM, OPS_WORKLOAD, Result
from .runner import machine_sizes

#: The version of the cell and outcome layout (part of every key).
CELL_FORMAT = 1
#: Hex digits of a cell's key: 96 bits, far from any collision in a sweep of millions.
KEY_LENGTH = 24
#: The ``workload`` of a cell that replays a trace.
TRACE_WORKLOAD = "<trace>"
#: The ``study`` of a cell that is one design's row of the mapcount study.
MAPCOUNT_STUDY = "mapcount"


def _canonical(doc: Any) -> str:
    """JSON with sorted keys: the one spelling a document is hashed and stored in."""
    return json.dumps(doc, sort_keys=True, indent=1)


@dataclass(frozen=True)
class Cell:
    """One run of a sweep, every axis named. Build cells with :func:`make_cell`, which
    normalises the parameters and records the versions in use."""

    workload: str
    params: Mapping[str, Any]
    rmap: str
    mremap_policy: str | None = None
    seed: int = 0
    arch: str = "x86_64"
    file_rmap: str = DEFAULT_FILE_RMAP
    reclaim: str = DEFAULT_RECLAIM
    observers: tuple[str, ...] = ()
    mmcore_version: str = __version__
    #: The version of each plugin the cell names, by name.
    plugin_versions: Mapping[str, str] = field(default_factory=dict)
    #: A trace cell's trace file: where it is read (not part of the key) and the
    #: SHA-256 of its bytes (part of the key).
    trace: str | None = None
    trace_sha256: str | None = None
    #: The mapcount design (a ``mapcount`` plugin).
    mapcount: str = DEFAULT_MAPCOUNT
    #: :data:`MAPCOUNT_STUDY` for a cell that is one design's row of the mapcount study
    #: (:func:`study_cell`), None for a plain run.
    study: str | None = None
    #: The machine's RAM frames and swap slots where they are not what the run chooses
    #: (:func:`~mmcore.experiments.runner.machine_sizes`): only a rerun of a result made
    #: with other sizes (:func:`result_cell`) sets them; None is left out of the data.
    ram_pages: int | None = None
    swap_pages: int | None = None

    def plugins(self) -> list[tuple[str, str]]:
        """The (kind, name) of every plugin the cell names (the mapcount design where it
        is not the default or the cell is a study's, so a default cell's versions, and
        key, are what they were before mapcount was an axis)."""
        named = [("rmap", self.rmap), ("mremap_policy", self.mremap_policy),
                 ("file_rmap", self.file_rmap), ("reclaim", self.reclaim)]
        named += [("observer", name) for name in self.observers]
        if self.mapcount != DEFAULT_MAPCOUNT or self.study is not None:
            named.append(("mapcount", self.mapcount))
        return [(kind, name) for kind, name in named if name is not None]

    def spec(self) -> dict[str, Any]:
        """The keyword arguments of the cell's run
        (:func:`~mmcore.experiments.runner.run_from_spec`, or for a trace cell
        :func:`~mmcore.experiments.replay.replay_from_spec`)."""
        plugins = {"rmap": self.rmap, "mremap_policy": self.mremap_policy,
                   "file_rmap": self.file_rmap, "reclaim": self.reclaim,
                   "observers": self.observers, "seed": self.seed, "arch": self.arch}
        if self.mapcount != DEFAULT_MAPCOUNT or self.study is not None:
            plugins["mapcount"] = self.mapcount
        if self.study is not None:
            plugins["study"] = self.study
        for size in ("ram_pages", "swap_pages"):
            if getattr(self, size) is not None:
                plugins[size] = getattr(self, size)
        if self.trace is not None:
            return {"trace": self.trace, "trace_sha256": self.trace_sha256,
                    **dict(self.params), **plugins}
        return {"workload": self.workload, "params": dict(self.params), **plugins}

    def to_dict(self) -> dict[str, Any]:
        """The cell as plain JSON data (observers as a list; the trace fields only in a
        trace cell, the mapcount design only where it is not the default, the study
        only in a study cell and the memory sizes only where set, so a cell's data and
        key are what they were before traces, mapcount designs and sizes were axes)."""
        d = asdict(self)
        d["params"] = dict(self.params)
        d["plugin_versions"] = dict(self.plugin_versions)
        d["observers"] = list(self.observers)
        if self.trace is None:
            del d["trace"], d["trace_sha256"]
        if self.mapcount == DEFAULT_MAPCOUNT:
            del d["mapcount"]
        if self.study is None:
            del d["study"]
        for size in ("ram_pages", "swap_pages"):
            if d[size] is None:
                del d[size]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Cell:
        """The cell :meth:`to_dict` gave."""
        kw = dict(d)
        kw["observers"] = tuple(kw.get("observers", ()))
        return cls(**kw)

    @property
    def key(self) -> str:
        """The content hash of the cell and the versions it names (hex)."""
        d = self.to_dict()
        d.pop("trace", None)  # where the trace is read is no part of what it is
        text = _canonical({"format": CELL_FORMAT, "cell": d})
        return hashlib.sha256(text.encode()).hexdigest()[:KEY_LENGTH]

    @property
    def label(self) -> str:
        """``rmap`` or ``rmap+policy``, then ``/file_rmap``, ``/reclaim`` and
        ``/mapcount`` where they are not the defaults (as :attr:`RunConfig.label`; a
        study cell always names its design)."""
        out = self.rmap if self.mremap_policy is None else f"{self.rmap}+{self.mremap_policy}"
        for value, default in ((self.file_rmap, DEFAULT_FILE_RMAP),
                               (self.reclaim, DEFAULT_RECLAIM)):
            if value != default:
                out += f"/{value}"
        if self.mapcount != DEFAULT_MAPCOUNT or self.study is not None:
            out += f"/{self.mapcount}"
        return out


def make_cell(workload: str, params: Mapping[str, Any] | None = None, *, rmap: str,
              mremap_policy: str | None = None, seed: int = 0, arch: str = "x86_64",
              file_rmap: str = DEFAULT_FILE_RMAP, reclaim: str = DEFAULT_RECLAIM,
              observers: Sequence[str] = (), mapcount: str = DEFAULT_MAPCOUNT,
              study: str | None = None) -> Cell:
    """A cell with every parameter of ``workload`` (given ones converted, as
    :func:`~mmcore.experiments.workloads.make_params` does) and the installed versions
    of mmcore and the named plugins; ``study`` :data:`MAPCOUNT_STUDY` makes it design
    ``mapcount``'s row of the mapcount study. ConfigError for an unknown workload,
    parameter or plugin, or an unknown study."""
    if study not in (None, MAPCOUNT_STUDY):
        raise ConfigError(f"unknown study {study!r} (known: {MAPCOUNT_STUDY})")
    full = workloads.make_params(workload, params).to_dict()
    cell = Cell(workload, full, rmap, mremap_policy, seed, arch, file_rmap, reclaim,
                tuple(observers), mapcount=mapcount, study=study)
    return _versioned(cell)


def _versioned(cell: Cell) -> Cell:
    """``cell`` with the installed version of every plugin it names."""
    return replace(cell, plugin_versions={name: plugin_version(resolve(name, kind))
                                          for kind, name in cell.plugins()})


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes (hex); OSError if it cannot be read."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def trace_cell(trace: str | Path, *, rmap: str, mremap_policy: str | None = None,
               seed: int = 0, arch: str = "x86_64", file_rmap: str = DEFAULT_FILE_RMAP,
               reclaim: str = DEFAULT_RECLAIM, observers: Sequence[str] = (),
               check_walks: int = 0, file_mappings: str = "file") -> Cell:
    """A cell replaying the trace file ``trace`` (hashed now) on one configuration, with
    the options of :func:`~mmcore.experiments.replay.replay` (``seed`` picks the pages
    ``check_walks`` samples). ConfigError for an unknown plugin; OSError if the trace
    cannot be read."""
    cell = Cell(TRACE_WORKLOAD, {"check_walks": check_walks, "file_mappings": file_mappings},
                rmap, mremap_policy, seed, arch, file_rmap, reclaim, tuple(observers),
                trace=str(trace), trace_sha256=file_sha256(trace))
    return _versioned(cell)


def result_cell(result: Result) -> Cell:
    """The cell that runs the configuration recorded in ``result`` again (``mmsim
    rerun``): the cell ``mmsim run`` builds for it, with the recorded memory sizes where
    they are not the ones the workload's run chooses. ConfigError for a result made from
    an op list (:func:`~mmcore.experiments.runner.run_ops`: no cell names its ops), an
    unknown workload or parameter, or an unknown plugin."""
    c = result.config
    if c.workload == OPS_WORKLOAD:
        raise ConfigError("a result made from an op list (run_ops) is no cell: rerun it "
                          "with mmcore.experiments.runner.rerun")
    cell = make_cell(c.workload, c.params, rmap=c.rmap, mremap_policy=c.policy,
                     seed=c.seed, arch=c.arch, file_rmap=c.file_rmap, reclaim=c.reclaim,
                     mapcount=c.mapcount)
    ram, swap = machine_sizes(c.workload, workloads.make_params(c.workload, c.params),
                              None, None)
    return replace(cell, ram_pages=None if c.ram_pages == ram else c.ram_pages,
                   swap_pages=None if c.swap_pages == swap else c.swap_pages)


@dataclass(frozen=True)
class Failure:
    """Why a cell failed: ``kind`` is ``broken`` (a plugin failed: it raised in a hook
    or in its constructor), ``error`` (something raised with no plugin to blame, or the
    run's process died), ``timeout``, ``missing`` (the worker lacks a plugin the cell
    names), ``version`` (the worker has other versions) or ``worker`` (the worker
    running it died). ``plugin``, its ``distribution`` (``name version``) and ``hook``
    name the culprit where it is known."""

    kind: str
    reason: str
    plugin: str | None = None
    hook: str | None = None
    distribution: str | None = None

    @classmethod
    def of(cls, f: RunFailure) -> Failure:
        """The failure of a cell whose run gave RunFailure ``f``."""
        kind = ("timeout" if f.status == "timed out" else
                "broken" if f.plugin is not None else "error")
        return cls(kind, f.reason, f.plugin, f.hook, f.distribution)

    def run_failure(self, label: str) -> RunFailure:
        """The failure as a comparison's row: ``timed out``, or ``broken``."""
        return RunFailure(label, "timed out" if self.kind == "timeout" else "broken",
                          self.plugin, self.distribution, self.hook, self.reason)


@dataclass
class Outcome:
    """What running a cell gave: its result (a trace cell's replay report), or its
    failure; ``worker`` is the host that ran it and ``wall_time_s`` how long it took
    (neither is reproducible)."""

    cell: Cell
    result: Result | None = None
    failure: Failure | None = None
    worker: str = ""
    wall_time_s: float = 0.0
    replay: ReplayReport | None = None
    #: A study cell's figures: its design's run of the mapcount study.
    study: DesignRun | None = None

    @property
    def ok(self) -> bool:
        """True when the cell produced a result, a replay report or study figures."""
        return self.result is not None or self.replay is not None or self.study is not None

    @property
    def key(self) -> str:
        """The cell's key."""
        return self.cell.key

    def to_json(self) -> str:
        """The outcome as one JSON document (what a store keeps per cell). Keys keep
        their order, so a workload's parameters load in its dataclass's order (the order
        tables print them in); the same outcome always gives the same text. A trace
        cell's has a ``replay`` too."""
        doc = {
            "format": CELL_FORMAT, "key": self.key, "cell": self.cell.to_dict(),
            "status": "ok" if self.ok else "failed",
            "result": None if self.result is None else
            self.result.to_dict(encode_json=True),
            "failure": None if self.failure is None else asdict(self.failure),
            "worker": self.worker, "wall_time_s": self.wall_time_s}
        if self.replay is not None:
            doc["replay"] = self.replay.to_dict(encode_json=True)
        if self.study is not None:
            doc["study"] = self.study.to_dict()
        return json.dumps(doc, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Outcome:
        """Parse :meth:`to_json`; ValueError naming what is wrong."""
        try:
            doc = json.loads(text)
            cell = Cell.from_dict(doc["cell"])
            result = None if doc["result"] is None else Result.from_dict(doc["result"])
            failure = None if doc["failure"] is None else Failure(**doc["failure"])
            replay = None if doc.get("replay") is None else \
                ReplayReport.from_dict(doc["replay"])
            study = None if doc.get("study") is None else DesignRun.from_dict(doc["study"])
            out = cls(cell, result, failure, str(doc.get("worker", "")),
                      float(doc.get("wall_time_s", 0.0)), replay, study)
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"not a cell outcome: {type(exc).__name__}: {exc}") from None
        if doc.get("key") != cell.key:
            raise ValueError(f"key {doc.get('key')!r} is not the hash of its cell "
                             f"({cell.key})")
        if sum(x is not None for x in (result, replay, study, failure)) != 1:
            raise ValueError("an outcome has a result, a replay, study figures or a "
                             "failure: exactly one")
        return out


def one_line(exc: BaseException) -> str:
    """``Type: message`` on one line."""
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def _worker_problem(cell: Cell) -> Failure | None:
    """A failure if this process lacks a plugin the cell names, or has other versions
    of mmcore or of its plugins than the cell was built with."""
    host = socket.gethostname()
    found = installed_plugins()
    for kind, name in cell.plugins():
        if name not in found:
            return Failure("missing", f"{kind} plugin {name!r} is not installed on worker "
                           f"{host}: install its distribution there", plugin=name)
    if cell.trace is not None:
        try:
            digest = file_sha256(cell.trace)
        except OSError as exc:
            return Failure("missing", f"trace {cell.trace} cannot be read on worker "
                           f"{host}: {exc.strerror or exc}")
        if digest != cell.trace_sha256:
            return Failure("version", f"trace {cell.trace} on worker {host} is not the "
                           f"trace of the cell (its content changed)")
    if __version__ != cell.mmcore_version:
        return Failure("version", f"worker {host} has mmcore {__version__}, the sweep "
                       f"{cell.mmcore_version}")
    for name, wanted in cell.plugin_versions.items():
        have = plugin_version(found[name])
        if have != wanted:
            return Failure("version", f"worker {host} has {name} {have}, the sweep "
                           f"{wanted}", plugin=name)
    return None


def run_cell(cell: Cell, timeout: float | None = None) -> str:
    """Run ``cell`` here and return its :class:`Outcome` as JSON text (what crosses a
    process or network boundary). Never raises for the cell's own failure: a cell that
    raises, runs past ``timeout`` seconds, breaks its machine or names a plugin this
    worker lacks gives a failed outcome. The run is
    :func:`~mmcore.experiments.isolation.run_guarded`'s: with a ``timeout``, in a child
    process that is killed if its plugin ignores the budget."""
    start = time.monotonic()
    result: Result | None = None
    replay: ReplayReport | None = None
    study: DesignRun | None = None
    failure = _worker_problem(cell)
    if failure is None:
        got = run_guarded(cell.label, cell.spec(), timeout)
        if isinstance(got, RunFailure):
            failure = Failure.of(got)
        elif isinstance(got, ReplayReport):
            replay = got
        elif isinstance(got, DesignRun):
            study = got
        else:
            result = got
    return Outcome(cell, result, failure, socket.gethostname(),
                   round(time.monotonic() - start, 6), replay, study).to_json()
