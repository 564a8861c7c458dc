"""The mapcount study: every mapcount design on the same workload, against the truth.

For each installed ``mapcount`` plugin, :func:`run_design` replays the workload's ops on a
fresh Machine using that design, with a :class:`~mmcore.mapcount_audit.DecisionAudit`
installed, and after every op takes a sample: the brute-force truth
(:func:`~mmcore.folio_truth.folio_truth`), the error of every /proc value the design
computes (:func:`~mmcore.folio_truth.accuracies`), the core's own counters checked against
the page tables, and the design's metadata bytes over the live large folios. Counter
updates are attributed to the kind of op that made them (:data:`OP_KINDS`) and to folio
splits.

Because each design's answers drive the simulation (COW reuse, deferred split), the runs
can diverge after the first differing decision; the figures are each design's own run.

>>> from mmcore.experiments.mapcount_study import study_ops
>>> from mmcore.experiments.ops import Op
>>> s = study_ops([Op("spawn")], designs=["per_page"])
>>> s.runs[0].design, s.runs[0].samples
('per_page', 1)
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from rich import box
from rich.table import Table

from ..constants import MADV_DONTNEED, MADV_FREE
from ..errors import RunTimeout
from ..folio_truth import Accuracy, accuracies, check_core, folio_truth
from ..machine import Machine
from ..mapcount_audit import CowCopyObserver, DecisionAudit
from ..plugins import plugins_of_kind
from ..thp import ThpSettings
from . import plots, workloads
from .ops import Op, Player
from .report import fmt
from .runner import DEFAULT_RAM_PAGES, DEFAULT_SWAP_PAGES, machine_sizes, workload_thp

#: MADV_COLLAPSE (include/uapi/asm-generic/mman-common.h).
MADV_COLLAPSE = 25
#: The op kinds updates are attributed to, in report order.
OP_KINDS = ("fault", "fork", "zap", "mremap", "collapse", "reclaim", "other")


def op_kind(op: Op) -> str:
    """Which kind of mm operation ``op`` is, for the per-operation update counts."""
    name = op.op
    if name in ("write", "read"):
        return "fault"
    if name == "fork":
        return "fork"
    if name in ("munmap", "exit"):
        return "zap"
    if name == "madvise" and op.advice in (MADV_DONTNEED, MADV_FREE):
        return "zap"
    if name == "mremap":
        return "mremap"
    if name == "reclaim":
        return "reclaim"
    if name == "madvise" and op.advice == MADV_COLLAPSE:
        return "collapse"
    return "other"


def default_designs() -> list[str]:
    """Every installed mapcount design, ``per_page`` (the kernel's) first."""
    names = sorted(plugins_of_kind("mapcount"))
    return sorted(names, key=lambda n: n != "per_page")


@dataclass
class DesignRun:
    """One design's run of the workload: accuracy, decisions, cost."""

    design: str
    ops: int = 0
    samples: int = 0
    accuracy: Accuracy = field(default_factory=Accuracy)
    #: The same over the folios exactly one mm maps (the "exclusive folios" of the series).
    accuracy_exclusive: Accuracy = field(default_factory=Accuracy)
    #: :data:`~mmcore.mapcount_audit.DECISIONS` counts.
    decisions: dict[str, int] = field(default_factory=dict)
    #: Metadata bytes and large folios summed over samples (for the per-folio mean).
    metadata_bytes: int = 0
    folio_samples: int = 0
    page_samples: int = 0
    #: The design's ``updates`` at the end, by hook.
    updates: dict[str, int] = field(default_factory=dict)
    #: Op kind -> [ops of that kind, counter updates they made].
    by_op: dict[str, list[int]] = field(default_factory=dict)
    #: Splits of a mapped large folio (mapcount_split with mappings left).
    splits: int = 0
    #: Ptes the design looked at to decide (per_folio_tuple's page-table scans).
    scanned: int = 0
    #: Where the core's own exact counters disagreed with the page tables (must be 0).
    core_problems: int = 0
    #: Removals the design could not match to its state (per_folio_tuple; must be 0).
    desyncs: int = 0
    #: What the simulation did: COW copies (fault_cow_copy) and thp_deferred_split_page.
    cow_copies: int = 0
    deferred_splits: int = 0

    @property
    def bytes_per_folio(self) -> float:
        """Mean metadata bytes per live large folio over the samples."""
        return round(self.metadata_bytes / self.folio_samples, 2) if self.folio_samples else 0.0

    @property
    def bytes_per_page(self) -> float:
        """Mean metadata bytes per page of a live large folio."""
        return round(self.metadata_bytes / self.page_samples, 3) if self.page_samples else 0.0

    def per_op(self, kind: str) -> float:
        """Mean counter updates per op of ``kind`` (0 if there was none)."""
        ops, updates = self.by_op.get(kind, [0, 0])
        return round(updates / ops, 2) if ops else 0.0

    @property
    def per_split(self) -> float:
        """Counter updates per split of a mapped folio."""
        return round(self.updates.get("split", 0) / self.splits, 2) if self.splits else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data, derived figures included."""
        d = asdict(self)
        d["errors"] = self.accuracy.errors()
        d["errors_exclusive"] = self.accuracy_exclusive.errors()
        d["bytes_per_folio"] = self.bytes_per_folio
        d["bytes_per_page"] = self.bytes_per_page
        d["updates_per_op"] = {k: self.per_op(k) for k in OP_KINDS}
        d["updates_per_split"] = self.per_split
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DesignRun:
        """The run :meth:`to_dict` gave (its derived figures are recomputed)."""
        kw = {f.name: d[f.name] for f in fields(cls)}
        kw["accuracy"] = Accuracy(**kw["accuracy"])
        kw["accuracy_exclusive"] = Accuracy(**kw["accuracy_exclusive"])
        return cls(**kw)

    def to_json(self) -> str:
        """:meth:`to_dict` as JSON text (what crosses a process boundary)."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> DesignRun:
        """Parse :meth:`to_json`."""
        return cls.from_dict(json.loads(text))


def _updates(design: object) -> int:
    return sum(getattr(design, "updates", {}).values())


def run_design(ops: Iterable[Op], design: str, *, thp: ThpSettings | None = None,
               ram_pages: int = DEFAULT_RAM_PAGES, swap_pages: int = DEFAULT_SWAP_PAGES,
               strict: bool = True, plugins: Mapping[str, str | None] | None = None,
               deadline: float | None = None) -> DesignRun:
    """Replay ``ops`` on a Machine with mapcount design ``design``, sampling after each;
    ``plugins`` chooses the other plugins (``rmap``, ``mremap_policy``, ``file_rmap``,
    ``reclaim``; the Machine's defaults otherwise); RunTimeout once
    :func:`time.monotonic` passes ``deadline`` (checked between ops)."""
    chosen = dict(plugins or {})
    m = Machine(rmap=chosen.get("rmap") or "anon_vma_chain",
                mremap_policy=chosen.get("mremap_policy"),
                file_rmap=chosen.get("file_rmap") or "i_mmap_tree",
                reclaim=chosen.get("reclaim") or "lru2", mapcount=design, thp=thp,
                ram_pages=ram_pages, swap_pages=swap_pages, observers=[CowCopyObserver])
    player = Player(m, strict=strict)
    audit = DecisionAudit(m)
    run = DesignRun(design)
    free = m.mapcount_free

    def counted_free(folio: Any) -> None:
        if folio.entire_mapcount or any(p.mapcount for p in folio.pages):
            run.splits += 1
        free(folio)

    m.mapcount_free = counted_free
    impl = m.mapcount_design
    for op in ops:
        if deadline is not None and time.monotonic() > deadline:
            raise RunTimeout(f"no result within the time budget ({run.ops} ops done)")
        before = _updates(impl) - getattr(impl, "updates", {}).get("split", 0)
        player.apply(op)
        after = _updates(impl) - getattr(impl, "updates", {}).get("split", 0)
        slot = run.by_op.setdefault(op_kind(op), [0, 0])
        slot[0] += 1
        slot[1] += after - before
        run.ops += 1
        sample(m, audit, run)
    if not run.samples:
        sample(m, audit, run)
    run.decisions = dict(audit.counts)
    run.updates = dict(getattr(impl, "updates", {}))
    run.scanned = int(getattr(impl, "scanned", 0))
    run.desyncs = int(getattr(impl, "desyncs", 0))
    run.cow_copies = m.counters.fault_cow_copy
    run.deferred_splits = getattr(m.vm_events, "thp_deferred_split_page", 0)
    return run


def sample(m: Machine, audit: DecisionAudit, run: DesignRun) -> None:
    """One sample into ``run``: the truth, the accuracy of the design's /proc values, the
    core checked against the page tables, the metadata bytes (the audit paused)."""
    audit.paused = True
    try:
        truth = folio_truth(m)
        every, exclusive = accuracies(m, truth)
        run.accuracy.add(every)
        run.accuracy_exclusive.add(exclusive)
        run.core_problems += len(check_core(m, truth))
        for folio in truth:
            run.metadata_bytes += m.mapcount_metadata_bytes(folio)
            run.folio_samples += 1
            run.page_samples += folio.nr_pages
        run.samples += 1
    finally:
        audit.paused = False


@dataclass
class MapcountStudy:
    """Every design's run of one workload."""

    workload: str
    params: dict[str, Any]
    seed: int
    runs: list[DesignRun]

    def to_dict(self) -> dict[str, Any]:
        """The machine form (``mmsim compare --axis mapcount --json``)."""
        return {"workload": self.workload, "params": self.params, "seed": self.seed,
                "axis": "mapcount", "designs": [r.design for r in self.runs],
                "runs": [r.to_dict() for r in self.runs]}


def study_design(workload: str, params: Mapping[str, Any] | None, design: str, *,
                 seed: int = 0, plugins: Mapping[str, str | None] | None = None,
                 deadline: float | None = None) -> DesignRun:
    """One design's run of built-in ``workload`` (one row of :func:`study`)."""
    w = workloads.get(workload)
    p = workloads.make_params(workload, params)
    ram, swap = machine_sizes(workload, p, None, None)
    return run_design(w.generator(p, random.Random(seed)), design, thp=workload_thp(p),
                      ram_pages=ram, swap_pages=swap, strict=w.strict, plugins=plugins,
                      deadline=deadline)


def design_from_spec(spec: Mapping[str, Any]) -> DesignRun:
    """:func:`study_design` with the keyword arguments of a study cell's spec
    (:meth:`mmcore.experiments.cells.Cell.spec`: ``workload``, ``params``, ``mapcount``,
    ``seed``, the other plugins, and ``deadline`` under a time budget)."""
    plugins = {k: spec.get(k) for k in ("rmap", "mremap_policy", "file_rmap", "reclaim")}
    return study_design(spec["workload"], spec.get("params"), spec["mapcount"],
                        seed=spec.get("seed", 0), plugins=plugins,
                        deadline=spec.get("deadline"))


def study(workload: str, params: Mapping[str, Any] | None = None, *, seed: int = 0,
          designs: Sequence[str] | None = None,
          plugins: Mapping[str, str | None] | None = None) -> MapcountStudy:
    """Run built-in ``workload`` once per design (default: every installed one), with
    the other ``plugins`` as :func:`run_design` takes them."""
    p = workloads.make_params(workload, params)
    runs = [study_design(workload, params, d, seed=seed, plugins=plugins)
            for d in (designs if designs is not None else default_designs())]
    return MapcountStudy(workload, p.to_dict(), seed, runs)


def study_ops(ops: Sequence[Op], *, designs: Sequence[str] | None = None,
              thp: ThpSettings | None = None) -> MapcountStudy:
    """The study of an explicit op list (each design replays the same ops)."""
    runs = [run_design(ops, d, thp=thp) for d in (designs or default_designs())]
    return MapcountStudy("ops", {}, 0, runs)


Column = tuple[str, str, Callable[[DesignRun], float], int]

#: The figures of the table and the plot: key, header, getter, digits.
COLUMNS: list[Column] = [
    ("kpagecount", "kpagecount\nwrong", lambda r: r.accuracy.errors()["kpagecount"], 4),
    ("pm_exclusive", "PM_EXCL\nfalse shared",
     lambda r: r.accuracy.errors()["pm_exclusive_false_shared"], 4),
    ("pss", "Pss\nerror", lambda r: r.accuracy.errors()["pss"], 4),
    ("uss", "Uss\nerror", lambda r: r.accuracy.errors()["uss"], 4),
    ("anon_pages", "AnonPages\nerror", lambda r: r.accuracy.errors()["anon_pages"], 4),
    ("mapped", "Mapped\nerror", lambda r: r.accuracy.errors()["mapped"], 4),
    ("extra_copies", "extra\nCOW copies", lambda r: r.decisions.get("cow_extra_copy", 0), 0),
    ("missed_splits", "missed\nsplits", lambda r: r.decisions.get("split_missed", 0), 0),
    ("false_shared", "false\nshared", lambda r: r.decisions.get("shared_false", 0), 0),
    ("bytes_per_folio", "bytes\n/folio", lambda r: r.bytes_per_folio, 1),
    ("fault", "updates\n/fault op", lambda r: r.per_op("fault"), 1),
    ("fork", "updates\n/fork", lambda r: r.per_op("fork"), 1),
    ("zap", "updates\n/zap op", lambda r: r.per_op("zap"), 1),
    ("split", "updates\n/split", lambda r: r.per_split, 1),
]


#: The two tables: /proc accuracy, then decisions and costs.
TABLES = (("accuracy against the truth (relative error)",
           ("kpagecount", "pm_exclusive", "pss", "uss", "anon_pages", "mapped")),
          ("decisions differing from exact knowledge, and cost",
           ("extra_copies", "missed_splits", "false_shared", "bytes_per_folio", "fault",
            "fork", "zap", "split")))


def study_rows(s: MapcountStudy, keys: Sequence[str]) -> list[list[str]]:
    """One row of formatted figures per design for the columns ``keys`` (the table's
    body, also for Markdown)."""
    cols = [c for c in COLUMNS if c[0] in keys]
    return [[r.design, *[fmt(get(r), digits) for _, _, get, digits in cols]]
            for r in s.runs]


def study_tables(s: MapcountStudy, title: str = "") -> list[Table]:
    """The comparison as two rich tables (:data:`TABLES`)."""
    out = []
    for i, (what, keys) in enumerate(TABLES):
        table = Table(title=f"{title}: {what}" if title and not i else what,
                      title_justify="left", header_style="bold", box=box.SIMPLE_HEAD,
                      pad_edge=False)
        table.add_column("design", style="bold cyan", no_wrap=True)
        for key, header, _, _ in COLUMNS:
            if key in keys:
                table.add_column(header, justify="right", no_wrap=True)
        for row in study_rows(s, keys):
            table.add_row(*row)
        out.append(table)
    return out


def study_plot(s: MapcountStudy, path: str | Path, title: str) -> Path:
    """Bar panels of the main figures, one bar per design."""
    keep = ("kpagecount", "pss", "anon_pages", "extra_copies", "missed_splits",
            "bytes_per_folio", "fault", "fork")
    panels = [(header.replace("\n", " "), [float(get(r)) for r in s.runs])
              for key, header, get, _ in COLUMNS if key in keep]
    return plots.bars([r.design for r in s.runs], panels, title, path)

