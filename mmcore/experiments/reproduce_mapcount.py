"""``mmsim reproduce``, part two: the claims of the 2023-2026 mapcount cover letters, measured.

Each claim (docs/folios.md; the series' own statements, paraphrased) is tested on the
mapcount study (:mod:`mmcore.experiments.mapcount_study`) of the large-folio workloads,
every design on the same ops. A check is *not measured* when the runs it needs sampled no
large folio, or never asked the question it is about (a core without large folios gives
only that). Nothing here states an outcome in advance.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..folio_truth import Accuracy
from . import workloads
from .cells import MAPCOUNT_STUDY, make_cell
from .executors import Executor
from .isolation import RunFailure
from .mapcount_study import DesignRun, MapcountStudy, default_designs
from .report import describe_params, fmt, markdown_table
from .reproduce import Check, Claim
from .store import Store
from .sweep import run_sweep

#: The runs the claims read: label -> (workload, parameters).
RUNS: dict[str, tuple[str, dict[str, Any]]] = {
    "snapshot": ("thp-fork-snapshot", {"hugepages": 1, "dirty_pct": 5}),
    "snapshot-mthp": ("thp-fork-snapshot", {"hugepages": 1, "dirty_pct": 5, "order": 4}),
    "arena": ("mthp-allocator", {}),
    "arena-alone": ("mthp-allocator", {"worker": False}),
    "mremap": ("thp-mremap-buffer", {}),
    "mremap-alone": ("thp-mremap-buffer", {"fork_at": 0}),
    "mremap-alone-mthp": ("thp-mremap-buffer", {"fork_at": 0, "order": 4,
                                                "offset_pages": 8}),
    "collapse": ("khugepaged-collapse", {}),
    "shared64": ("folio-shared-64", {}),
    "shared64-mthp": ("folio-shared-64", {"order": 4}),
    "shared64-16k": ("folio-shared-64", {"order": 2}),
}
#: The folio-shared-64 runs by folio order (the constant-size claim).
SIZES = {"shared64": 9, "shared64-mthp": 4, "shared64-16k": 2}
AVERAGING = ("no_page_mapcount", "total_mapped_pages")


class Studies:
    """The mapcount study of each run: every run's designs are study cells
    (:mod:`mmcore.experiments.cells`), all run in one go on ``executor`` (inline by
    default), each for at most ``timeout`` seconds, into ``store`` when given. A design
    whose cell fails is left out of its run's study and listed in :attr:`failures`;
    ``cell_progress(done, total)`` follows the cells as run_sweep's ``progress``."""

    def __init__(self, designs: Sequence[str], executor: Executor | None = None,
                 store: Store | None = None, timeout: float | None = None,
                 cell_progress: Callable[[int, int], None] | None = None) -> None:
        self.designs = list(designs)
        self.executor = executor
        self.store = store
        self.timeout = timeout
        self.cell_progress = cell_progress
        self._done: dict[str, MapcountStudy] = {}
        #: The failed cells, labelled ``RUN on DESIGN``.
        self.failures: list[RunFailure] = []

    def _measure(self) -> None:
        """Run every run's study cells (on the first :meth:`get`)."""
        cells = {(label, design): make_cell(workload, params, rmap="anon_vma_chain",
                                            mapcount=design, study=MAPCOUNT_STUDY)
                 for label, (workload, params) in RUNS.items() for design in self.designs}
        sweep = run_sweep(list(cells.values()), self.executor, self.store,
                          timeout=self.timeout, progress=self.cell_progress)
        got = dict(zip(cells, sweep.outcomes, strict=True))
        for label, (workload, params) in RUNS.items():
            runs = []
            for design in self.designs:
                outcome = got[label, design]
                if outcome.study is not None:
                    runs.append(outcome.study)
                elif outcome.failure is not None:
                    self.failures.append(outcome.failure.run_failure(f"{label} on {design}"))
            self._done[label] = MapcountStudy(
                workload, workloads.make_params(workload, params).to_dict(), 0, runs)

    def get(self, label: str) -> MapcountStudy:
        """The study of run ``label`` (:data:`RUNS`)."""
        if not self._done:
            self._measure()
        return self._done[label]

    def run(self, label: str, design: str) -> DesignRun | None:
        """One design's run of ``label`` (None if the design is not installed)."""
        return next((r for r in self.get(label).runs if r.design == design), None)

    def total(self, design: str, labels: Sequence[str], exclusive: bool = False) -> Accuracy:
        """``design``'s accuracy added up over the runs ``labels``."""
        acc = Accuracy()
        for label in labels:
            r = self.run(label, design)
            if r is not None:
                acc.add(r.accuracy_exclusive if exclusive else r.accuracy)
        return acc

    def decision(self, design: str, labels: Sequence[str], key: str) -> int:
        """A decision count of ``design`` added up over ``labels``."""
        runs = [self.run(label, design) for label in labels]
        return sum(r.decisions.get(key, 0) for r in runs if r is not None)


def _na(what: str) -> Check:
    return Check(f"{what}: no large folio was sampled (the core made none)", None)


def claim_exclusive_exact(s: Studies) -> Claim:
    """Folios one mm maps keep exact kpagecount, PM_MMAP_EXCLUSIVE, Pss and Uss."""
    claim = Claim(
        "mapcount-exclusive-exact", "exclusive folios stay exact without per-page mapcounts",
        "Folios mapped by a single process, the common case before fork or after a "
        "short-lived child, keep exact answers (paraphrase).",
        "D. Hildenbrand, CONFIG_NO_PAGE_MAPCOUNT series, linux-mm, March 2025; RFC "
        "\"mm/rmap: support arbitrary folio mappings\", April 2026",
        "Every run of the table below; only the samples of folios exactly one mm maps. "
        "Errors are over those folios' mapped pages (kpagecount, PM_MMAP_EXCLUSIVE) and "
        "their Pss/Uss bytes.",
        headers=["design", "pages examined", "kpagecount wrong", "PM_EXCL wrong",
                 "Pss error", "Uss error"])
    labels = list(RUNS)
    for d in s.designs:
        acc = s.total(d, labels, exclusive=True)
        e = acc.errors()
        wrong = acc.exclusive_false_shared + acc.exclusive_false_exclusive
        claim.rows.append([d, str(acc.pages), str(acc.kpagecount_wrong), str(wrong),
                           fmt(e["pss"], 4), fmt(e["uss"], 4)])
        if d in AVERAGING:
            if not acc.pages:
                claim.checks.append(_na(d))
                continue
            exact = not (acc.kpagecount_wrong or wrong or acc.pss_err or acc.uss_err)
            claim.checks.append(Check(
                f"{d}: {acc.kpagecount_wrong} wrong kpagecounts, {wrong} wrong "
                f"PM_MMAP_EXCLUSIVE bits, Pss error {acc.pss_err} B, Uss error "
                f"{acc.uss_err} B over {acc.pages} pages of exclusive folios (all 0)",
                exact))
    return claim


def claim_no_false_exclusive(s: Studies) -> Claim:
    """No design ever calls a folio exclusive that another mm maps."""
    claim = Claim(
        "mapcount-no-false-exclusive", "no false positives for exclusivity",
        "The mm-id tracking decides \"certainly exclusive\" or \"maybe shared\" without "
        "false positives for exclusivity (paraphrase).",
        "D. Hildenbrand, \"mm: MM owner tracking for large folios (!hugetlb) + "
        "CONFIG_NO_PAGE_MAPCOUNT\", linux-mm, 2025",
        "Every run. COW questions answered \"exclusive\" while another mm mapped the "
        "folio, \"not shared\" answers to a shared folio, and PM_MMAP_EXCLUSIVE set on a "
        "page mapped more than once.",
        headers=["design", "COW questions", "unsafe reuses", "maybe-shared questions",
                 "false exclusive", "PM_EXCL false exclusive"])
    labels = list(RUNS)
    for d in s.designs:
        asked = s.decision(d, labels, "cow_asked")
        unsafe = s.decision(d, labels, "cow_unsafe_reuse")
        shared_asked = s.decision(d, labels, "shared_asked")
        false_excl = s.decision(d, labels, "exclusive_false")
        pm = s.total(d, labels).exclusive_false_exclusive
        ptes = s.total(d, labels).ptes
        claim.rows.append([d, str(asked), str(unsafe), str(shared_asked), str(false_excl),
                           str(pm)])
        if not (asked or shared_asked or ptes):
            claim.checks.append(_na(d))
        else:
            claim.checks.append(Check(
                f"{d}: {unsafe} unsafe reuses of {asked} COW questions, {false_excl} false "
                f"exclusive of {shared_asked}, {pm} false PM_MMAP_EXCLUSIVE of {ptes} "
                f"mappings (all 0)", unsafe == false_excl == pm == 0))
    return claim


def claim_partial_map(s: Studies) -> Claim:
    """Partial-map detection without per-page counts fails once several mms map a folio."""
    claim = Claim(
        "mapcount-partial-map", "partial-map detection is less reliable with several mms",
        "Detecting partially mapped folios becomes less reliable once several processes "
        "map them; exclusive folios are detected (paraphrase).",
        "D. Hildenbrand, CONFIG_NO_PAGE_MAPCOUNT series, Documentation/mm/transhuge.rst",
        "mthp-allocator with (arena) and without (arena-alone) a worker child sharing the "
        "arena, and folio-shared-64 (shared64): deferred-split questions after an unmap, "
        "and those answered \"not partly mapped\" where some pages were unmapped "
        "everywhere.",
        headers=["design", "arena-alone: asked", "missed", "arena + shared64: asked",
                 "missed", "spurious (all runs)"])
    multi = ["arena", "shared64"]
    for d in s.designs:
        alone_asked = s.decision(d, ["arena-alone"], "split_asked")
        alone_missed = s.decision(d, ["arena-alone"], "split_missed")
        multi_asked = s.decision(d, multi, "split_asked")
        multi_missed = s.decision(d, multi, "split_missed")
        spurious = s.decision(d, list(RUNS), "split_spurious")
        claim.rows.append([d, str(alone_asked), str(alone_missed), str(multi_asked),
                           str(multi_missed), str(spurious)])
        if d not in AVERAGING and d != "per_page":
            continue
        if not (alone_asked and multi_asked):
            claim.checks.append(_na(d))
        elif d == "per_page":
            claim.checks.append(Check(f"per_page (the exact reference) misses none: "
                                      f"{alone_missed + multi_missed}",
                                      alone_missed + multi_missed == 0))
        else:
            claim.checks.append(Check(f"{d}, one mm: {alone_missed} missed of "
                                      f"{alone_asked} (0)", alone_missed == 0))
            claim.checks.append(Check(f"{d}, several mms: {multi_missed} missed of "
                                      f"{multi_asked} (more than 0)", multi_missed > 0))
    return claim


def claim_whole_folio_stats(s: Studies) -> Claim:
    """AnonPages counts the whole folio once any page is mapped."""
    claim = Claim(
        "mapcount-whole-folio", "AnonPages and Mapped count the whole folio",
        "Without per-page mapcounts, a folio counts as fully mapped in AnonPages and "
        "Mapped as soon as any page of it is mapped (paraphrase; a stated functional "
        "change).",
        "D. Hildenbrand, CONFIG_NO_PAGE_MAPCOUNT series; RFC April 2026",
        "mthp-allocator without a worker (arena-alone): pages freed with MADV_DONTNEED "
        "inside 64 kB folios. Relative AnonPages error over the samples.",
        headers=["design", "AnonPages (exact, summed)", "AnonPages error"])
    for d in s.designs:
        acc = s.total(d, ["arena-alone"])
        claim.rows.append([d, str(acc.anon_pages), fmt(acc.errors()["anon_pages"], 4)])
        if not acc.pages:
            if d in (*AVERAGING, "per_page"):
                claim.checks.append(_na(d))
            continue
        if d == "per_page":
            claim.checks.append(Check(f"per_page counts mapped pages: error "
                                      f"{acc.anon_pages_err} (0)", acc.anon_pages_err == 0))
        elif d in AVERAGING:
            claim.checks.append(Check(f"{d} counts unmapped pages of mapped folios: error "
                                      f"{acc.anon_pages_err} pages (more than 0)",
                                      acc.anon_pages_err > 0))
    return claim


def claim_average_mapcount(s: Studies) -> Claim:
    """kpagecount and Pss read the folio's average page mapcount."""
    claim = Claim(
        "mapcount-average", "kpagecount and Pss use the average page mapcount",
        "kpagecount and Pss use the folio's average per-page mapcount (paraphrase; a "
        "stated functional change).",
        "D. Hildenbrand, CONFIG_NO_PAGE_MAPCOUNT series; RFC April 2026",
        "folio-shared-64 and thp-fork-snapshot, THP and 64 kB mTHP (shared64, "
        "shared64-mthp, snapshot, snapshot-mthp): pages mapped by different numbers of "
        "mms within one folio.",
        headers=["design", "pages examined", "kpagecount wrong", "mean |error|",
                 "Pss error"])
    labels = ["shared64", "shared64-mthp", "snapshot", "snapshot-mthp"]
    for d in s.designs:
        acc = s.total(d, labels)
        e = acc.errors()
        claim.rows.append([d, str(acc.pages), str(acc.kpagecount_wrong),
                           fmt(e["kpagecount_mean_abs"], 4), fmt(e["pss"], 4)])
        if d not in (*AVERAGING, "per_page"):
            continue
        if not acc.pages:
            claim.checks.append(_na(d))
        elif d == "per_page":
            claim.checks.append(Check(f"per_page is exact: {acc.kpagecount_wrong} wrong",
                                      acc.kpagecount_wrong == 0))
        else:
            claim.checks.append(Check(f"{d} differs from the exact count on "
                                      f"{acc.kpagecount_wrong} of {acc.pages} pages "
                                      f"(more than 0)", acc.kpagecount_wrong > 0))
    return claim


def claim_constant_size(s: Studies) -> Claim:
    """The designs without per-page counts keep the same bytes for any folio size."""
    claim = Claim(
        "mapcount-constant-size", "constant-size mapcount state",
        "One mapcount per folio (or a few counters and two mm slots) is constant-size "
        "state, where per-page mapcounts grow with the folio (paraphrase).",
        "M. Wilcox, linux-mm, early 2023; D. Hildenbrand, CONFIG_NO_PAGE_MAPCOUNT series",
        "folio-shared-64 with a 2 MiB THP, a 64 kB and a 16 kB mTHP: mean metadata bytes "
        "per live large folio (a size whose run made no folio is left out).",
        headers=["design", *[f"bytes/folio, order {o}" for o in SIZES.values()]])
    for d in s.designs:
        runs = {o: s.run(label, d) for label, o in SIZES.items()}
        sizes = {o: r.bytes_per_folio for o, r in runs.items()
                 if r is not None and r.folio_samples}
        claim.rows.append([d, *[fmt(sizes[o], 1) if o in sizes else "-"
                                for o in SIZES.values()]])
        if len(sizes) < 2:
            claim.checks.append(_na(f"{d} (two folio sizes needed)"))
        elif d == "per_page":
            grows = list(dict(sorted(sizes.items())).values())
            claim.checks.append(Check("per_page grows with the folio: "
                                      + " < ".join(fmt(b, 1) for b in grows) + " B",
                                      grows == sorted(set(grows))))
        else:
            claim.checks.append(Check(f"{d}: " + ", ".join(fmt(b, 1) for b in sizes.values())
                                      + " B for every size", len(set(sizes.values())) == 1))
    return claim


def claim_page_tables(s: Studies) -> Claim:
    """Wilcox: the mapcount counts page tables, so a folio straddling two counts 2."""
    claim = Claim(
        "mapcount-page-tables", "one mapcount per (vma, page table): a folio across two "
        "page tables counts 2",
        "The folio's mapcount counts the (vma, page table) pairs mapping it: a naturally "
        "aligned THP has mapcount 1, one straddling a page-table boundary 2 "
        "(paraphrase).",
        "M. Wilcox, linux-mm, early 2023",
        "thp-mremap-buffer without a child: one mm's THPs moved 16 pages past a 2 MiB "
        "boundary (mremap-alone), and its 64 kB mTHPs moved 8 pages past one "
        "(mremap-alone-mthp). PM_MMAP_EXCLUSIVE bits cleared on pages only that mm maps.",
        headers=["design", "mappings examined", "PM_EXCL false shared"])
    for d in s.designs:
        acc = s.total(d, ["mremap-alone", "mremap-alone-mthp"])
        claim.rows.append([d, str(acc.ptes), str(acc.exclusive_false_shared)])
        if d == "per_folio_tuple":
            if not acc.ptes:
                claim.checks.append(_na(d))
            else:
                claim.checks.append(Check(
                    f"per_folio_tuple calls {acc.exclusive_false_shared} of {acc.ptes} "
                    f"exclusive mappings shared (more than 0)",
                    acc.exclusive_false_shared > 0))
    return claim


def claim_update_cost(s: Studies) -> Claim:
    """Per-page mapcounts make fork touch every page's counter."""
    claim = Claim(
        "mapcount-update-cost", "per-page mapcounts cost an update per page on fork",
        "The price of per-page mapcounts is touching every page's counter on fork, zap "
        "and split, even with batched rmap calls (paraphrase).",
        "D. Hildenbrand, CONFIG_NO_PAGE_MAPCOUNT series",
        "mthp-allocator (arena; its fork shares 32 folios of 16 pages, its final reclaim "
        "splits them): counter updates per fork op, per zap op (munmap, MADV_DONTNEED, "
        "exit) and per split of a mapped folio.",
        headers=["design", "updates/fork", "updates/zap op", "updates/split"])
    runs = {d: s.run("arena", d) for d in s.designs}
    for d, r in runs.items():
        if r is not None:
            claim.rows.append([d, fmt(r.per_op("fork"), 1), fmt(r.per_op("zap"), 1),
                               fmt(r.per_split, 1)])
    base = runs.get("per_page")
    for d, r in runs.items():
        if d == "per_page" or r is None or base is None:
            continue
        if not base.per_op("fork"):
            claim.checks.append(_na(d))
        else:
            claim.checks.append(Check(
                f"per_page does at least 8x the updates per fork of {d}: "
                f"{fmt(base.per_op('fork'), 1)} vs {fmt(r.per_op('fork'), 1)}",
                base.per_op("fork") >= 8 * max(r.per_op("fork"), 1)))
        if base.splits and r.splits:
            claim.checks.append(Check(
                f"per_page does more updates per split than {d}: "
                f"{fmt(base.per_split, 1)} vs {fmt(r.per_split, 1)}",
                base.per_split > r.per_split))
    return claim


#: The mapcount claims by key (each function's :attr:`Claim.key`), in report order.
CLAIMS: dict[str, Callable[[Studies], Claim]] = {
    "mapcount-exclusive-exact": claim_exclusive_exact,
    "mapcount-no-false-exclusive": claim_no_false_exclusive,
    "mapcount-partial-map": claim_partial_map,
    "mapcount-whole-folio": claim_whole_folio_stats,
    "mapcount-average": claim_average_mapcount,
    "mapcount-constant-size": claim_constant_size,
    "mapcount-page-tables": claim_page_tables,
    "mapcount-update-cost": claim_update_cost,
}


def overview(s: Studies) -> list[str]:
    """The headline table: every run, every design, the main errors and decisions."""
    rows = []
    for label in RUNS:
        for r in s.get(label).runs:
            e = r.accuracy.errors()
            rows.append([label, r.design, str(r.folio_samples), fmt(e["kpagecount"], 4),
                         fmt(e["pss"], 4), fmt(e["uss"], 4), fmt(e["anon_pages"], 4),
                         str(r.decisions.get("cow_extra_copy", 0)), str(r.cow_copies),
                         str(r.decisions.get("split_missed", 0)),
                         fmt(r.bytes_per_folio, 1)])
    return [markdown_table(["run", "design", "folio samples", "kpagecount wrong",
                            "Pss err", "Uss err", "AnonPages err", "extra COW copies",
                            "COW copies", "missed splits", "bytes/folio"], rows), ""]


def render_mapcount(claims: Sequence[Claim], s: Studies) -> str:
    """Part two of results.md."""
    out = [
        "# The large-folio mapcount claims, measured",
        "",
        "Generated by `mmsim reproduce` from the mapcount study "
        "(`mmsim compare WORKLOAD --axis mapcount`) of the large-folio workloads, with "
        "the designs installed: " + ", ".join(f"`{d}`" for d in s.designs) + ". The "
        "runs (label: workload and parameters): "
        + "; ".join(f"{k}: `{w}` ({describe_params(p) or 'defaults'})"
                    for k, (w, p) in RUNS.items())
        + ". Errors are relative over every sample (one after each op); a check is *not "
        "measured* when its runs sampled no large folio.",
        "",
        markdown_table(["claim", "verdict"],
                       [[f"[{c.title}](#{c.key})", f"**{c.verdict}**"] for c in claims]),
        "",
        "## Every run",
        "",
        "*Extra COW copies* are copies of a large folio's page the core made where exact "
        "knowledge would have reused it (mmcore.mapcount_audit). The core's reuse rule "
        "(__wp_can_reuse_large_anon_folio()) copies a folio whose folio_mapcount() is 1 "
        "and compares the refcount with it; `per_folio_tuple` counts page tables there, "
        "not ptes, so it never passes the rule: porting the rule to that design would "
        "need the folio's ptes counted in its page table.",
        "",
        *overview(s),
    ]
    mark = {True: "held", False: "did not hold", None: "not measured"}
    for i, c in enumerate(claims, 1):
        out += [f'<a id="{c.key}"></a>', f"## M{i}. {c.title}", "", f"> {c.quote}", ">",
                f"> — {c.source}", "", f"**Setup.** {c.setup}", "",
                markdown_table(c.headers, c.rows), "", f"**Verdict: {c.verdict}.**", ""]
        out += [f"- {c_.text} — *{mark[c_.passed]}*" for c_ in c.checks]
        out.append("")
    return "\n".join(out)


def reproduce_mapcount(designs: Sequence[str] | None = None,
                       progress: Callable[[str], None] | None = None,
                       claims: Sequence[str] | None = None,
                       executor: Executor | None = None, store: Store | None = None,
                       timeout: float | None = None,
                       cell_progress: Callable[[int, int], None] | None = None
                       ) -> tuple[str, list[Claim]]:
    """Measure every mapcount claim (or only those whose keys ``claims`` lists: none
    studies nothing), the studies' cells on ``executor`` into ``store`` (see
    :class:`Studies`); the Markdown of part two and the claims. The part's overview
    table studies every run whenever one claim is measured. Each claim lists the failed
    cells as its :attr:`~mmcore.experiments.reproduce.Claim.failures` (a row without
    figures and a not-measured check each)."""
    s = Studies(designs if designs is not None else default_designs(), executor, store,
                timeout, cell_progress)
    measured = []
    for key, fn in CLAIMS.items():
        if claims is not None and key not in claims:
            continue
        if progress is not None:
            progress(fn.__name__)
        claim = fn(s)
        claim.failures = list(s.failures)
        claim.mark_failures()
        measured.append(claim)
    if not measured:
        return "", []
    return render_mapcount(measured, s), measured
