"""``mmsim reproduce``: the claims of the March 2004 "anon_vma RFC2" thread, measured (and,
in a second part, the large-folio mapcount claims: :mod:`.reproduce_mapcount`).

Each claim names the schemes it is about; it runs built-in workloads on every valid
configuration, tabulates the figures, and decides whether the claim held from the numbers
with the tolerance written next to each check. A claim about a scheme that is not
installed is reported as not measured. Nothing here states an outcome in advance.

Every run is a cell (:mod:`mmcore.experiments.cells`), run by an executor into an
optional result store like a sweep's. A configuration whose run fails (a broken plugin,
or one past the time budget) has no figures: it is a row of its claim's table marked
``broken`` or ``timed out``, and a check of that claim that is *not measured*, naming
the plugin and the hook; every other configuration is measured as usual.

The output (``results.md`` and ``img/*.png``) is deterministic, no dates, with one
exception: the trace-scale study's wall time, on one line starting with
:data:`WALL_TIME_PREFIX`. Two runs give the same :func:`deterministic` text, byte for
byte.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..atomicfile import write_text
from ..errors import ConfigError
from . import plots, runner
from .cells import Cell, Outcome, make_cell
from .executors import Executor, Inline
from .isolation import RunFailure
from .replay import ReplayReport
from .report import fmt, markdown_table
from .results import Result
from .store import Store
from .sweep import Sweep, run_sweep

Config = tuple[str, str | None]

#: The start of the one line of the report that is not reproducible: the trace-scale
#: study's wall time (:attr:`Claim.timing`).
WALL_TIME_PREFIX = "**Wall time** (the one line that changes between runs):"


def deterministic(report: str) -> str:
    """``report`` without its wall-time line (the line starting with
    :data:`WALL_TIME_PREFIX`): what two runs of ``mmsim reproduce`` give byte for byte."""
    return "".join(line for line in report.splitlines(keepends=True)
                   if not line.startswith(WALL_TIME_PREFIX))


@dataclass
class Check:
    """One test of a claim against the measurements; ``passed`` None = not measurable."""

    text: str
    passed: bool | None


@dataclass
class Claim:
    """A claim of the thread with the measurements that test it."""

    key: str
    title: str
    quote: str
    source: str
    setup: str
    headers: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    image: str | None = None
    #: The configurations that have no figures here, each with why.
    failures: list[RunFailure] = field(default_factory=list)
    #: How long measuring it took (in ``reproduce --json``, not in the report).
    wall_time_s: float = 0.0
    #: How long its cells took, for a claim whose report shows it (the trace-scale
    #: study): the one line of the report after :data:`WALL_TIME_PREFIX`.
    timing: str | None = None

    def mark_failures(self) -> None:
        """A row (no figures) and a not-measured check for each failed configuration."""
        for f in self.failures:
            self.rows.append([f.label, f"**{f.status}**"]
                             + [""] * (len(self.headers) - 2))
            self.checks.append(Check(f"{f.label} has no figures: {f.status} in "
                                     f"{f.where()}: {f.reason}", None))

    @property
    def verdict(self) -> str:
        """``held``, ``did not hold``, ``not measured`` or ``held where measured``."""
        states = [c.passed for c in self.checks]
        if any(s is False for s in states):
            return "did not hold"
        if not states or all(s is None for s in states):
            return "not measured"
        if any(s is None for s in states):
            return "held where measured"
        return "held"


def label(c: Config) -> str:
    """``rmap`` or ``rmap+policy``."""
    return c[0] if c[1] is None else f"{c[0]}+{c[1]}"


def family(configs: Sequence[Config], name: str) -> list[Config]:
    """Configurations of scheme ``name`` and its variants (``anonmm``, ``anonmm_fullscan``).
    """
    return [c for c in configs if c[0] == name or c[0].startswith(name + "_")]


def exactly(configs: Sequence[Config], name: str) -> list[Config]:
    """Configurations whose rmap is exactly ``name``."""
    return [c for c in configs if c[0] == name]


def primary(configs: Sequence[Config]) -> list[Config]:
    """One configuration per scheme: the first valid one (policy-free when that is valid,
    as :func:`mmcore.plugins.valid_configurations` orders them)."""
    out: dict[str, Config] = {}
    for c in configs:
        out.setdefault(c[0], c)
    return list(out.values())


#: One run a claim needs of every configuration: (workload, params, arch).
Request = tuple[str, dict[str, Any], str]


class Runs:
    """The runs of the claims, as cells: (workload, params, config, arch) -> Result.

    ``configs`` is the whole matrix; ``schemes`` one configuration per scheme, which the
    claims about schemes use (an mremap policy only matters to the mremap claim). The
    cells run on ``executor`` (inline by default), each for at most ``timeout`` seconds,
    into ``store`` when given (cells already there are not run again);
    ``cell_progress(done, total)`` follows each batch of cells as run_sweep's
    ``progress``.
    """

    def __init__(self, configs: Sequence[Config], executor: Executor | None = None,
                 store: Store | None = None, timeout: float | None = None,
                 traces: Sequence[Path] = (),
                 cell_progress: Callable[[int, int], None] | None = None) -> None:
        self.configs = list(configs)
        self.traces = list(traces)
        self.schemes = primary(self.configs)
        self.executor = executor
        self.store = store
        self.timeout = timeout
        self.cell_progress = cell_progress
        self.outcomes: dict[str, Outcome] = {}

    def _cell(self, request: Request, c: Config) -> Cell:
        workload, params, arch = request
        return make_cell(workload, params, rmap=c[0], mremap_policy=c[1], arch=arch)

    def usable(self, claim: Claim, configs: Sequence[Config],
               requests: Sequence[Request]) -> list[Config]:
        """Run ``requests`` on every configuration of ``configs`` (the ones not run yet,
        in one go) and return the configurations all of whose runs succeeded; each other
        one is added to the claim's failures with its first failed run."""
        cells = {label(c): [self._cell(r, c) for r in requests] for c in configs}
        healthy = self.run(claim, cells)
        return [c for c in configs if label(c) in healthy]

    def run(self, claim: Claim, cells: dict[str, list[Cell]]) -> set[str]:
        """Run the cells of each configuration (by label; the ones not run yet, in one
        go) and return the labels all of whose cells succeeded; each other one is added
        to the claim's failures with its first failed cell."""
        self.measure([cell for todo in cells.values() for cell in todo])
        ok = set()
        for name, todo in cells.items():
            failed = [o.failure for o in (self.outcomes[c.key] for c in todo)
                      if o.failure is not None]
            if failed:
                claim.failures.append(failed[0].run_failure(name))
            else:
                ok.add(name)
        return ok

    def measure(self, cells: Sequence[Cell]) -> Sweep | None:
        """Run those of ``cells`` not run yet, in one go, on the executor (into the
        store); None when there were none."""
        missing = {cell.key: cell for cell in cells if cell.key not in self.outcomes}
        if not missing:
            return None
        done = run_sweep(list(missing.values()), self.executor, self.store,
                         timeout=self.timeout, progress=self.cell_progress)
        self.outcomes.update((o.key, o) for o in done.outcomes)
        return done

    def timing(self, sweep: Sweep | None, seconds: float) -> str:
        """What :meth:`measure` ran in ``seconds`` of wall time, on one line: the
        cells, how many ran and came from the store, where, and the sum of the cells'
        own run times (a stored cell keeps the time it took when it ran)."""
        outcomes = [] if sweep is None else sweep.outcomes
        where = (self.executor or Inline()).description
        return (f"{len(outcomes)} cells ({0 if sweep is None else sweep.computed} run, "
                f"{0 if sweep is None else sweep.reused} from the store) in "
                f"{seconds:.1f} s, {where} (mmsim ran on a machine with "
                f"{os.cpu_count()} CPUs); the cells' own run times add up to "
                f"{sum(o.wall_time_s for o in outcomes):.1f} s.")

    def replay(self, cell: Cell) -> ReplayReport:
        """The replay report of trace cell ``cell``, which :meth:`run` has run and found
        healthy."""
        report = self.outcomes[cell.key].replay
        assert report is not None, "Runs.replay of a cell run() did not keep"
        return report

    def get(self, workload: str, params: dict[str, Any], c: Config,
            arch: str = "x86_64") -> Result:
        """The result of ``workload`` with ``params`` on configuration ``c``, which
        :meth:`usable` has run and found healthy."""
        result = self.outcomes[self._cell((workload, params, arch), c).key].result
        assert result is not None, "Runs.get of a configuration usable() did not keep"
        return result

def _per(a: float, b: float) -> float:
    return a / b if b else 0.0


def _within(x: float, target: float, tol: float) -> bool:
    return abs(x - target) <= tol * target


def _na(what: str) -> Check:
    return Check(f"{what}: not measured (scheme not installed, or its runs failed)", None)


# --- claim 1: memory per vma vs per pte -----------------------------------------------------

def claim_memory(runs: Runs, img: Path) -> Claim:
    """anon_vma costs about 24 bytes per anonymous vma; pte_chains 8 bytes per pte."""
    k, pages = 8, 64
    private = ("malloc-after-fork", {"shared_pages": 0, "private_pages": pages,
                                     "children": k})
    shared = ("wide-fork", {"pages": pages, "children": k})
    shared2 = ("wide-fork", {"pages": 2 * pages, "children": k})
    claim = Claim(
        "memory", "anon_vma: ~24 bytes per anonymous vma; pte_chains: 8 bytes per pte",
        "pte_chain advocates \"were going to throw 8 bytes per-pte\", while anon_vma costs "
        "\"24 bytes per-vma\" (worst case).",
        "Andrea Arcangeli, Re: anon_vma RFC2, 13 Mar 2004 (rmap-reference §6)",
        f"arch i386 (4-byte pointers, as in 2004). *private*: malloc-after-fork with "
        f"{k} children each faulting {pages} pages of their own; *shared*: wide-fork, "
        f"{pages} pages shared by {k} idle children, and again with {2 * pages} pages. "
        "Bytes are rmap metadata at the first reclaim; divided by the anonymous vmas and "
        "by the ptes mapping anonymous pages at that moment.",
        headers=["configuration", "private: B/vma", "private: B/pte", "shared: B/vma",
                 "shared: B/pte", f"shared bytes, {2 * pages} vs {pages} pages"])
    series: dict[str, list[float]] = {}
    schemes = runs.usable(claim, runs.schemes, [(*private, "i386"), (*shared, "i386"),
                                                (*shared2, "i386")])
    for c in schemes:
        rp = runs.get(*private, c, arch="i386").derived
        rs = runs.get(*shared, c, arch="i386").derived
        rs2 = runs.get(*shared2, c, arch="i386").derived
        row = [_per(rp.rmap_bytes_before_reclaim, rp.anon_vmas_before_reclaim),
               _per(rp.rmap_bytes_before_reclaim, rp.mapped_ptes_before_reclaim),
               _per(rs.rmap_bytes_before_reclaim, rs.anon_vmas_before_reclaim),
               _per(rs.rmap_bytes_before_reclaim, rs.mapped_ptes_before_reclaim),
               _per(rs2.rmap_bytes_before_reclaim, rs.rmap_bytes_before_reclaim)]
        series[label(c)] = row
        claim.rows.append([label(c)] + [fmt(v, 2) for v in row[:4]] + [f"x{row[4]:.2f}"])
    av = exactly(schemes, "anon_vma")
    if av:
        per_vma = series[label(av[0])][0]
        worst = max(series[label(av[0])][0], series[label(av[0])][2])
        scale = series[label(av[0])][4]
        claim.checks.append(Check(
            f"anon_vma, one anon_vma per vma: {per_vma:.2f} B per anonymous vma, within "
            f"25% of 24 B", _within(per_vma, 24, 0.25)))
        claim.checks.append(Check(
            f"anon_vma never exceeds the 24 B worst case by more than 25%: worst "
            f"{worst:.2f} B", worst <= 24 * 1.25))
        claim.checks.append(Check(
            f"anon_vma cost is per vma, not per page: doubling the pages changes its bytes "
            f"x{scale:.2f} (within 10% of x1)", _within(scale, 1.0, 0.1)))
    else:
        claim.checks.append(_na("anon_vma bytes per vma"))
    pc = exactly(schemes, "pte_chains")
    if pc:
        per_pte = series[label(pc[0])][3]
        scale = series[label(pc[0])][4]
        claim.checks.append(Check(
            f"pte_chains, shared pages: {per_pte:.2f} B per pte, within a factor of 2 of "
            f"8 B (2.6.6 packs 7 slots in a 32 B block; 2002 used an 8 B node)",
            4 <= per_pte <= 16))
        claim.checks.append(Check(
            f"pte_chains cost is per pte: doubling the pages changes its bytes x{scale:.2f} "
            f"(within 10% of x2)", _within(scale, 2.0, 0.1)))
    else:
        claim.checks.append(_na("pte_chains bytes per pte"))
    labels = list(series)
    claim.image = plots.bars(labels, [
        ("private vmas: bytes per anonymous vma", [series[x][0] for x in labels]),
        ("shared pages: bytes per anonymous vma", [series[x][2] for x in labels]),
        ("shared pages: bytes per pte", [series[x][3] for x in labels]),
    ], "rmap metadata per vma and per pte (i386)", img / "claim-memory.png").name
    return claim


# --- claim 2: anonmm probes every mm -------------------------------------------------------

def claim_anonmm_probes(runs: Runs, img: Path) -> Claim:
    """anonmm's walk visits every mm of the fork group, even for a child's private page."""
    ks = (4, 16)
    claim = Claim(
        "anonmm-probes", "anonmm probes every mm in the group even for a child's private "
        "page",
        "With anonmm, a page a child faulted after fork (malloc) still makes the walk "
        "probe every mm in the group, \"on the order of the thousands\".",
        "Andrea Arcangeli, Re: anon_vma RFC2, 13 Mar 2004 (rmap-reference §2.3, §7.2)",
        "malloc-after-fork: the parent faults 16 pages and forks K children; each child "
        "maps and faults 32 private pages; only the children's private pages are "
        f"reclaimed. K = {', '.join(map(str, ks))}; the group has K+1 mms.",
        headers=["configuration"] + [f"visits/page K={k}" for k in ks]
        + [f"wasted/page K={ks[-1]}", f"visits vs K+1 at K={ks[-1]}"])
    pts: dict[str, list[tuple[float, float]]] = {}
    visits: dict[str, list[float]] = {}

    def params(k: int) -> dict[str, Any]:
        return {"shared_pages": 16, "private_pages": 32, "children": k}

    schemes = runs.usable(claim, runs.schemes,
                          [("malloc-after-fork", params(k), "x86_64") for k in ks])
    for c in schemes:
        vs = []
        for k in ks:
            d = runs.get("malloc-after-fork", params(k), c).derived
            vs.append(d.visits_per_page)
            wasted = d.wasted_per_page
        visits[label(c)] = vs
        pts[label(c)] = [(float(k), v) for k, v in zip(ks, vs, strict=True)]
        claim.rows.append([label(c)] + [fmt(v, 2) for v in vs]
                          + [fmt(wasted, 2), f"x{vs[-1] / (ks[-1] + 1):.2f}"])
    anonmm = family(schemes, "anonmm")
    for c in anonmm:
        v = visits[label(c)][-1]
        first = " (each page was found in the first mm visited)" if v <= 1.0 else ""
        claim.checks.append(Check(
            f"{label(c)}: {v:.2f} mms visited per private page with K={ks[-1]}{first}; the "
            f"claim needs at least 90% of the {ks[-1] + 1} mms in the group",
            v >= 0.9 * (ks[-1] + 1)))
    if not anonmm:
        claim.checks.append(_na("anonmm mms visited per private page"))
    # The schemes the reference expects to find a private page at once (§7.2).
    others = [c for n in ("anon_vma", "anon_vma_chain", "pte_chains")
              for c in exactly(schemes, n)]
    for c in others:
        v = visits[label(c)][-1]
        claim.checks.append(Check(
            f"contrast, {label(c)}: {v:.2f} visits per private page (at most 1.1)",
            v <= 1.1))
    claim.image = plots.xy_plot("children K", [("walk visits per private page", pts)],
                                "malloc after fork", img / "claim-anonmm-probes.png").name
    return claim


# --- claim 3: mremap after fork forces anonmm to copy --------------------------------------

def claim_mremap_copies(runs: Runs, img: Path) -> Claim:
    """anonmm (page->index is an address) must copy the shared pages an mremap moves."""
    params = {"pages": 64, "children": 4}
    claim = Claim(
        "mremap-copy", "mremap after fork forces anonmm to copy",
        "Linus's fix for anonmm: in copy_one_pte, if the page is anonymous and shared, "
        "copy it and set its index to the new address (Hugh's rmap 11, early COW).",
        "Linus Torvalds in Re: anon_vma RFC2 (rmap-reference §2.3, §7.3)",
        f"mremap-after-fork: the parent faults {params['pages']} pages and forks "
        f"{params['children']} children; each child moves the region with "
        "MREMAP_MAYMOVE|MREMAP_FIXED; then every page is reclaimed.",
        headers=["configuration", "ptes moved", "pages copied by mremap",
                 "copies per shared pte moved", "pages not reclaimed", "walk visits/page"])
    configs = runs.usable(claim, runs.configs, [("mremap-after-fork", params, "x86_64")])
    res = {label(c): runs.get("mremap-after-fork", params, c) for c in configs}
    moved_total = max((r.costs.counters.mremap_ptes_moved + r.derived.mremap_copies
                       for r in res.values()), default=0)
    for name, r in res.items():
        d = r.derived
        claim.rows.append([name, fmt(r.costs.counters.mremap_ptes_moved),
                           fmt(d.mremap_copies), fmt(_per(d.mremap_copies, moved_total), 2),
                           fmt(d.reclaim_missed), fmt(d.visits_per_page, 2)])
    anonmm = family(configs, "anonmm")
    if exactly(anonmm, "anonmm"):
        alone = ("anonmm", None) in runs.configs
        claim.checks.append(Check(
            "anonmm has no valid configuration without an mremap policy (the plugin "
            f"declares the need): {'it has one' if alone else 'none in the matrix'}",
            not alone))
    unshare = [c for c in anonmm if c[1] is not None]
    for c in unshare:
        d = res[label(c)].derived
        frac = _per(d.mremap_copies, moved_total)
        claim.checks.append(Check(
            f"{label(c)} copied {d.mremap_copies} of the {moved_total} shared ptes moved "
            f"({frac:.2f}; at least 0.99)", frac >= 0.99))
    if not unshare:
        claim.checks.append(_na("anonmm with an mremap unshare policy"))
    for c in configs:
        if c[1] is not None:
            continue
        d = res[label(c)].derived
        if c[0].startswith("anonmm"):
            best = min(res[label(x)].derived.visits_per_page for x in configs
                       if x[1] is None)
            claim.checks.append(Check(
                f"{label(c)} (the full-scan alternative) reclaims every page without "
                f"copying ({d.mremap_copies} copies, {d.reclaim_missed} not reclaimed) and "
                f"pays in the walk: {d.visits_per_page:.2f} visits per page, "
                f"x{_per(d.visits_per_page, best):.2f} the best policy-free scheme",
                d.mremap_copies == 0 and d.reclaim_missed == 0))
        else:
            claim.checks.append(Check(
                f"contrast, {label(c)}: {d.mremap_copies} copies, {d.reclaim_missed} pages "
                "not reclaimed (none of either)",
                d.mremap_copies == 0 and d.reclaim_missed == 0))
    labels = list(res)
    claim.image = plots.bars(labels, [
        ("pages copied by mremap", [float(res[x].derived.mremap_copies) for x in labels]),
        ("walk visits per page", [res[x].derived.visits_per_page for x in labels]),
    ], "mremap after fork", img / "claim-mremap-copy.png").name
    return claim


# --- claim 4: a flood of vma splits lengthens the anon_vma list ------------------------------

def claim_split_flood(runs: Runs, img: Path) -> Claim:
    """Splitting a vma into M pieces makes anon_vma's list walk O(M)."""
    sizes = (64, 256)
    claim = Claim(
        "split-flood", "a flood of vma splits lengthens the anon_vma list",
        "anon_vma's weak spot: a \"flood of vma_splits\" makes the list long.",
        "Andrea Arcangeli, Re: anon_vma RFC2 (rmap-reference §2.4(b), §7.4)",
        "mprotect-flood: one process faults N pages in one vma and mprotects every other "
        f"page read-only (M ~ N pieces), reclaims every page, then restores the protection. "
        f"N = {', '.join(map(str, sizes))}.",
        headers=["configuration"] + [f"M at N={n}" for n in sizes]
        + [f"visits/page N={n}" for n in sizes] + ["visits growth", "vmas after restore"])
    pts: dict[str, list[tuple[float, float]]] = {}
    growth: dict[str, tuple[float, float]] = {}
    schemes = runs.usable(claim, runs.schemes, [("mprotect-flood", {"pages": n, "stride": 2},
                                                 "x86_64") for n in sizes])
    for c in schemes:
        ds = [runs.get("mprotect-flood", {"pages": n, "stride": 2}, c).derived
              for n in sizes]
        ms = [d.vmas_before_reclaim for d in ds]
        vs = [d.visits_per_page for d in ds]
        g = _per(vs[1], vs[0])
        growth[label(c)] = (g, _per(ms[1], ms[0]))
        pts[label(c)] = [(float(m), v) for m, v in zip(ms, vs, strict=True)]
        claim.rows.append([label(c)] + [fmt(m) for m in ms] + [fmt(v, 2) for v in vs]
                          + [f"x{g:.2f}", fmt(ds[-1].final_vmas)])
        claim.checks.append(Check(
            f"{label(c)} re-merges to one vma after the restore ({ds[-1].final_vmas})",
            ds[-1].final_vmas == 1))
    av = exactly(schemes, "anon_vma")
    for c in av:
        g, mg = growth[label(c)]
        claim.checks.append(Check(
            f"{label(c)}: walk visits per page grew x{g:.2f} while M grew x{mg:.2f} (at "
            "least half as fast as M)", g >= 0.5 * mg))
    if not av:
        claim.checks.append(_na("anon_vma visits per page against M"))
    pc = exactly(schemes, "pte_chains")
    for c in pc:
        g, _ = growth[label(c)]
        claim.checks.append(Check(
            f"contrast, {label(c)}: visits per page grew x{g:.2f} (unaffected: at most "
            "x1.1)", g <= 1.1))
    claim.image = plots.xy_plot("vmas after the split flood (M)",
                                [("walk visits per page", pts)], "mprotect flood",
                                img / "claim-split-flood.png").name
    return claim


# --- claim 5: anon_vma_chain's forking server -----------------------------------------------

def claim_avc_forking_server(runs: Runs, img: Path) -> Claim:
    """anon_vma_chain's walk for the forking server averages about 2, whatever K."""
    ks = (8, 32)
    pages = 64
    claim = Claim(
        "avc-forking-server", "anon_vma_chain: the forking server's walk goes from O(N) to "
        "about 2",
        "\"O(1) for the pages of the 1000 child processes, with O(N) complexity for at "
        "most 1/N pages … average … from O(N) to 2\".",
        "Rik van Riel, 5beb49305251 (2.6.34; rmap-reference §2.5, §6, §7.1)",
        f"forking-server: the parent faults {pages} pages, forks K children that each "
        f"write every page, then every page is reclaimed. K = {', '.join(map(str, ks))}.",
        headers=["configuration"] + [f"visits/page K={k}" for k in ks]
        + ["growth with K", f"total visits K={ks[-1]}", f"total vs best K={ks[-1]}"])
    pts: dict[str, list[tuple[float, float]]] = {}
    per: dict[str, list[float]] = {}
    totals: dict[str, int] = {}
    schemes = runs.usable(claim, runs.schemes, [
        ("forking-server", {"pages": pages, "children": k}, "x86_64") for k in ks])
    for c in schemes:
        ds = [runs.get("forking-server", {"pages": pages, "children": k}, c).derived
              for k in ks]
        per[label(c)] = [d.visits_per_page for d in ds]
        totals[label(c)] = ds[-1].walk_visits
        pts[label(c)] = [(float(k), d.visits_per_page) for k, d in zip(ks, ds, strict=True)]
    best = min(totals.values(), default=0)
    for name, vs in per.items():
        claim.rows.append([name] + [fmt(v, 2) for v in vs]
                          + [f"x{_per(vs[-1], vs[0]):.2f}", fmt(totals[name]),
                             f"x{_per(totals[name], best):.2f}"])
    avc = exactly(schemes, "anon_vma_chain")
    for c in avc:
        vs = per[label(c)]
        claim.checks.append(Check(
            f"{label(c)}: {', '.join(f'{v:.2f}' for v in vs)} visits per page for K = "
            f"{', '.join(map(str, ks))} (at most 2.2 each)", max(vs) <= 2.2))
        claim.checks.append(Check(
            f"{label(c)}: visits per page grew x{_per(vs[-1], vs[0]):.2f} when K grew "
            f"x{ks[-1] / ks[0]:.0f} (O(1): at most x1.25)", _per(vs[-1], vs[0]) <= 1.25))
    if not avc:
        claim.checks.append(_na("anon_vma_chain visits per page"))
    av = exactly(schemes, "anon_vma")
    for c in av:
        vs = per[label(c)]
        g = _per(vs[-1], vs[0])
        claim.checks.append(Check(
            f"the O(N) it replaced, {label(c)}: visits per page grew x{g:.2f} when K grew "
            f"x{ks[-1] / ks[0]:.0f} (at least half as fast)", g >= 0.5 * ks[-1] / ks[0]))
    if not av:
        claim.checks.append(_na("anon_vma (the O(N) baseline)"))
    claim.image = plots.xy_plot("children K", [("walk visits per reclaimed page", pts)],
                                "forking server", img / "claim-avc-forking-server.png").name
    return claim


# --- the trace-scale study -------------------------------------------------------------

#: The sampled pages whose rmap walk the study checks against the page tables, per check.
STUDY_CHECK_WALKS = 8


def _peak(r: ReplayReport) -> int:
    """A replay's rmap metadata peak, in bytes."""
    return 0 if r.costs is None else r.costs.rmap_peak_bytes


def study_traces(runs: Runs, img: Path) -> Claim:
    """Every example trace replayed on every valid rmap x mremap policy x file rmap x
    reclaim policy, as cells through the executor: what each costs in rmap metadata,
    and whether every scheme's walk agrees with the page tables on real programs."""
    from ..plugins import plugins_of_kind
    from .cells import TRACE_WORKLOAD, trace_cell
    from .results import DEFAULT_FILE_RMAP, DEFAULT_RECLAIM

    names = [t.name for t in runs.traces]
    file_rmaps = sorted(plugins_of_kind("file_rmap"), key=lambda n: n != DEFAULT_FILE_RMAP)
    reclaims = sorted(plugins_of_kind("reclaim"), key=lambda n: n != DEFAULT_RECLAIM)
    matrix = [(c, f, r) for c in runs.configs for f in file_rmaps for r in reclaims]
    claim = Claim(
        "trace-study", "trace-scale study: every example trace under the full plugin "
        "matrix",
        "Replay every example trace under the full plugin matrix through the executor.",
        "mmcore issue 13, item 6",
        f"Each trace of examples/traces ({', '.join(names) or 'none found'}) replayed "
        f"on every valid rmap x mremap policy x file rmap x reclaim policy "
        f"({len(matrix)} configurations): {len(names) * len(matrix)} cells, run through "
        f"the executor. At every exit and at the end, the rmap walks of "
        f"{STUDY_CHECK_WALKS} sampled mapped pages are compared with the page tables. "
        "Bytes are the rmap metadata peak of each replay; no example trace reclaims, so "
        "where the reclaim policies give identical replays a row stands for all of them.",
        headers=["configuration"] + [f"{n}: rmap B peak" for n in names]
        + ["walks checked", "mismatches"])
    if not names:
        claim.checks.append(Check("the example traces: not measured (none found; a "
                                  "source checkout has examples/traces)", None))
        return claim
    cells: dict[str, list[Cell]] = {}
    rows: dict[str, list[str]] = {}  # a row (no reclaim in its label): its cells' labels
    for c, f, r in matrix:
        todo = [trace_cell(t, rmap=c[0], mremap_policy=c[1], file_rmap=f, reclaim=r,
                           check_walks=STUDY_CHECK_WALKS) for t in runs.traces]
        cells[todo[0].label] = todo
        rows.setdefault(Cell(TRACE_WORKLOAD, {}, c[0], c[1], file_rmap=f).label,
                        []).append(todo[0].label)
    began = time.monotonic()  # the study's cells, on the executor, then their verdicts
    sweep = runs.measure([cell for todo in cells.values() for cell in todo])
    claim.timing = runs.timing(sweep, time.monotonic() - began)
    ok = runs.run(claim, cells)
    reports = {name: [runs.replay(cell) for cell in todo]
               for name, todo in cells.items() if name in ok}
    if not reports:
        return claim
    same = all(len({tuple(r.to_json() for r in reports[n]) for n in labels if n in reports})
               <= 1 for labels in rows.values())
    shown = {row: next(reports[n] for n in labels if n in reports)
             for row, labels in rows.items() if any(n in reports for n in labels)
             } if same else reports
    for name, rs in shown.items():
        claim.rows.append([name] + [fmt(_peak(r)) for r in rs]
                          + [fmt(sum(r.walks_checked for r in rs)),
                             fmt(sum(len(r.walk_mismatches) for r in rs))])
    applied = {n: sorted({rs[i].ops_applied for rs in reports.values()})
               for i, n in enumerate(names)}
    claim.checks.append(Check(
        "every configuration replayed the same ops of each trace ("
        + ", ".join(f"{n}: {', '.join(map(str, a))}" for n, a in applied.items())
        + " applied)", all(len(a) == 1 for a in applied.values())))
    checked = sum(r.walks_checked for rs in reports.values() for r in rs)
    mismatched = sum(len(r.walk_mismatches) for rs in reports.values() for r in rs)
    claim.checks.append(Check(
        f"every scheme's rmap walk found exactly the mappings the page tables hold: "
        f"{checked} walks checked, {mismatched} mismatches",
        checked > 0 and mismatched == 0))
    claim.checks.append(Check(
        f"the reclaim policy ({', '.join(reclaims)}) changes no figure of any replay "
        f"(no trace reclaims)", same))
    plain = [name for name in reports if "/" not in name]  # default file rmap and reclaim
    claim.image = plots.bars(plain, [
        (f"{n}: rmap metadata peak (bytes)", [float(_peak(reports[x][i])) for x in plain])
        for i, n in enumerate(names)],
        f"example traces ({DEFAULT_FILE_RMAP}, {DEFAULT_RECLAIM})",
        img / "claim-trace-study.png").name
    return claim


#: The claims of part one by key (each function's :attr:`Claim.key`), in report order.
CLAIMS: dict[str, Callable[[Runs, Path], Claim]] = {
    "memory": claim_memory, "anonmm-probes": claim_anonmm_probes,
    "mremap-copy": claim_mremap_copies, "split-flood": claim_split_flood,
    "avc-forking-server": claim_avc_forking_server, "trace-study": study_traces,
}


def claim_keys() -> list[str]:
    """The key of every claim ``reproduce`` measures: part one's, then the mapcount
    claims of :mod:`~mmcore.experiments.reproduce_mapcount`."""
    from .reproduce_mapcount import CLAIMS as MAPCOUNT_CLAIMS

    return [*CLAIMS, *MAPCOUNT_CLAIMS]


def chosen_claims(claims: Sequence[str] | None) -> list[str]:
    """The keys of :func:`claim_keys` that ``claims`` names, in report order (``None``:
    every one); ConfigError naming the claims for an unknown key."""
    if isinstance(claims, str):
        raise TypeError(f"claims must be a list of claim keys, not the str {claims!r}")
    keys = claim_keys()
    if claims is None:
        return keys
    unknown = sorted(set(claims).difference(keys))
    if unknown:
        raise ConfigError(f"no claim is named {', '.join(map(repr, unknown))}; the "
                          f"claims are: {', '.join(keys)}")
    return [k for k in keys if k in claims]


def render(claims: Sequence[Claim], configs: Sequence[Config],
           versions: dict[str, str]) -> str:
    """The Markdown report."""
    out = [
        "# The 2004 rmap claims, measured",
        "",
        "<!-- Generated by `mmsim reproduce`; do not edit by hand. -->",
        "",
        f"Generated by `mmsim reproduce` with mmcore {__version__}. Configurations "
        "measured (every valid one installed): "
        + ", ".join(f"`{label(c)}`" + (f" {versions[label(c)]}" if label(c) in versions
                                       else "") for c in configs) + ".",
        "Each verdict is computed from the numbers below with the tolerance stated in its "
        "checks; a claim about a scheme that is not installed is *not measured*. "
        "Ratios (`x`) compare with the first figure or the best scheme, as labelled. "
        "See docs/experiments.md for the workloads and the meaning of each figure.",
        "",
        markdown_table(["claim", "verdict"],
                       [[f"[{c.title}](#{c.key})", f"**{c.verdict}**"] for c in claims]),
        "",
    ]
    for i, c in enumerate(claims, 1):
        out += [
            f'<a id="{c.key}"></a>',
            f"## {i}. {c.title}",
            "",
            f"> {c.quote}",
            ">",
            f"> — {c.source}",
            "",
            f"**Setup.** {c.setup}",
            "",
        ]
        if c.timing is not None:
            out += [f"{WALL_TIME_PREFIX} {c.timing}", ""]
        out += [
            markdown_table(c.headers, c.rows),
            "",
            f"**Verdict: {c.verdict}.**",
            "",
        ]
        mark = {True: "held", False: "did not hold", None: "not measured"}
        out += [f"- {c_.text} — *{mark[c_.passed]}*" for c_ in c.checks]
        out.append("")
        if c.image:
            out += [f"![{c.title}](img/{c.image})", ""]
    return "\n".join(out)


#: The traces of the trace-scale study: the example traces of a source checkout (an
#: installed wheel has none, and the study is then not measured).
EXAMPLE_TRACES = Path(__file__).resolve().parents[2] / "examples" / "traces"

#: Where ``mmsim reproduce`` writes without ``--out`` (the project's own docs/results.md
#: is made with ``--out docs``; in anyone else's repository ./docs is theirs).
DEFAULT_OUT_DIR = Path("results") / "reproduce"


def reproduce(out_dir: str | Path = DEFAULT_OUT_DIR,
              configs: Sequence[Config] | None = None,
              progress: Callable[[str], None] | None = None,
              executor: Executor | None = None, store: Store | None = None,
              timeout: float | None = None, traces: Sequence[Path] | None = None,
              claims: Sequence[str] | None = None,
              cell_progress: Callable[[int, int], None] | None = None
              ) -> tuple[Path, list[Claim]]:
    """Measure every claim (then the mapcount ones of
    :mod:`~mmcore.experiments.reproduce_mapcount`, as study cells the same way); write
    ``out_dir/results.md`` and ``out_dir/img/claim-*.png``. ``claims`` (keys of
    :func:`claim_keys`) measures only those, in report order: the report then has only
    their sections, and part two only when a mapcount claim is chosen; ConfigError
    names the keys for an unknown one, before anything is written.
    The runs are cells on ``executor`` (inline by default), each for at most ``timeout``
    seconds, into ``store`` (held by the caller) when given; a claim's
    :attr:`Claim.failures` are the configurations whose runs failed. The trace-scale
    study replays ``traces`` (default: those in :data:`EXAMPLE_TRACES`). ``progress``
    is called with each claim's name before it is measured, ``cell_progress(done,
    total)`` as its cells finish."""
    chosen = chosen_claims(claims)
    out = Path(out_dir)
    img = out / "img"
    img.mkdir(parents=True, exist_ok=True)
    matrix = list(configs if configs is not None else runner.configurations())
    if traces is None:
        traces = sorted(EXAMPLE_TRACES.glob("*.jsonl"))
    executor = executor or Inline()
    runs = Runs(matrix, executor, store, timeout, traces, cell_progress)
    measured = []
    from .reproduce_mapcount import reproduce_mapcount

    # Every claim's cells on the same workers: a pool (or a LocalCluster) started once,
    # not once per claim (issue 13: --jobs 2 was slower than inline).
    with executor:
        for key, fn in CLAIMS.items():
            if key not in chosen:
                continue
            if progress is not None:
                progress(fn.__name__)
            began = time.monotonic()
            claim = fn(runs, img)
            claim.wall_time_s = time.monotonic() - began
            claim.mark_failures()
            measured.append(claim)
        part_two, mapcount_claims = reproduce_mapcount(progress=progress, claims=chosen,
                                                       executor=executor, store=store,
                                                       timeout=timeout,
                                                       cell_progress=cell_progress)
    versions = {}
    for c in matrix:
        v = runner.plugin_versions(*c)
        versions[label(c)] = "(" + ", ".join(f"{k} {x}" for k, x in v.items()) + ")"
    path = out / "results.md"
    write_text(path, render(measured, matrix, versions) + "\n"
               + (part_two + "\n" if mapcount_claims else ""))
    return path, measured + mapcount_claims
