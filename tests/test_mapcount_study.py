"""The mapcount study: op kinds, one design's sampled run, and ``mmsim compare --axis
mapcount`` (table, JSON, plot)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmcore import Machine
from mmcore.cli import main
from mmcore.constants import MADV_DONTNEED, MADV_HUGEPAGE
from mmcore.experiments.mapcount_study import (
    MADV_COLLAPSE,
    DesignRun,
    default_designs,
    op_kind,
    sample,
    study_ops,
)
from mmcore.experiments.ops import Op
from mmcore.mapcount_audit import DecisionAudit
from mmcore.testing.folio_hand import HandFolios


def test_ops_are_attributed_to_the_mm_operation_they_are() -> None:
    assert op_kind(Op("write")) == op_kind(Op("read")) == "fault"
    assert op_kind(Op("madvise", advice=MADV_DONTNEED)) == "zap"
    assert op_kind(Op("madvise", advice=MADV_COLLAPSE)) == "collapse"
    assert op_kind(Op("madvise", advice=MADV_HUGEPAGE)) == "other"
    assert [op_kind(Op(n)) for n in ("fork", "munmap", "exit", "mremap", "reclaim",
                                     "mmap")] == \
        ["fork", "zap", "zap", "mremap", "reclaim", "other"]


def test_default_designs_put_the_kernels_first() -> None:
    names = default_designs()
    assert names[0] == "per_page"
    assert {"no_page_mapcount", "per_folio_tuple", "total_mapped_pages"} <= set(names)


@pytest.mark.parametrize("design", ["per_page", "no_page_mapcount"])
def test_a_sample_measures_the_designs_errors_and_bytes(design: str) -> None:
    m = Machine(mapcount=design, ram_pages=1 << 13)
    h = HandFolios(m)
    p = h.spawn()
    h.fault(p, 0, 4)
    c = h.fork(p)
    h.unmap(c, 0, 8)  # the child keeps 8 of 16 pages
    run = DesignRun(design)
    sample(m, DecisionAudit(m), run)
    errors = run.accuracy.errors()
    assert run.samples == 1 and run.core_problems == 0
    assert run.accuracy.pages == 16 and run.accuracy.ptes == 24
    if design == "per_page":
        assert run.bytes_per_folio == 28 + 4 * 16
        assert errors["kpagecount"] == errors["pss"] == errors["anon_pages"] == 0
    else:
        assert run.bytes_per_folio == 24
        # 24 mappings over 16 pages average to 2 (rounded): pages 0-7 read 2, have 1
        assert errors["kpagecount"] == 0.5
        assert errors["anon_pages"] == 0  # whole folio counted, and all 16 are mapped


def test_study_of_ops_runs_every_design_on_the_same_ops() -> None:
    s = study_ops([Op("spawn"), Op("fork", child=2)])
    assert [r.design for r in s.runs] == default_designs()
    assert all(r.ops == 2 and r.samples == 2 and r.by_op["fork"] == [1, 0] for r in s.runs)
    assert s.to_dict()["axis"] == "mapcount"


def test_compare_along_the_mapcount_axis(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    plot = tmp_path / "mc.svg"
    assert main(["compare", "forking-server", "--param", "pages=4", "--param",
                 "children=2", "--axis", "mapcount", "--plot", str(plot), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["axis"] == "mapcount" and doc["designs"] == default_designs()
    assert {"errors", "decisions", "bytes_per_folio", "updates_per_op"} <= set(doc["runs"][0])
    assert plot.stat().st_size > 0
    assert main(["compare", "forking-server", "--param", "pages=4", "--axis", "mapcount",
                 "--only", "per_page", "--no-plot"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "per_page" in out and "no_page_mapcount" not in out and "kpagecount" in out


def test_compare_mapcount_rejects_observers(capsys: pytest.CaptureFixture[str]) -> None:
    """The study installs its own decision audit; the cell options work
    (tests/test_mapcount_cells.py), --observe does not."""
    import structlog

    try:
        assert main(["compare", "forking-server", "--axis", "mapcount", "--observe",
                     "event_log", "--no-plot"]) == 2
        assert "--observe" in capsys.readouterr().err
    finally:  # main() pointed structlog at this test's captured stderr (debug with --observe)
        structlog.reset_defaults()


def test_folio_workloads_ask_for_their_thp_knobs() -> None:
    from mmcore.experiments.runner import workload_thp
    from mmcore.experiments.workloads import make_params

    assert workload_thp(make_params("forking-server")) is None
    mthp = workload_thp(make_params("mthp-allocator"))
    assert mthp is not None and mthp.mode(4) == "always" and mthp.mode(9) == "madvise"
    snap = workload_thp(make_params("thp-fork-snapshot"))
    assert snap is not None and snap.allowed_orders(hugepage=True) == [9]
    shared = workload_thp(make_params("folio-shared-64", {"order": 4}))
    assert shared is not None and shared.allowed_orders(hugepage=False) == [4]


def test_folio_workload_parameters_convert_from_the_command_line() -> None:
    from mmcore.experiments.workloads import generate, make_params

    p = make_params("mthp-allocator", {"worker": "false", "chunks": "8"})
    assert p.worker is False and p.chunks == 8  # type: ignore[attr-defined]
    assert not any(o.op == "fork" for o in generate("mthp-allocator", {"worker": "false"}))


def test_extra_cow_copies_are_counted_from_the_cores_copies() -> None:
    """The last mm writing to a 64 kB folio once its 4 children are gone: the mm-id
    designs reuse it; per_folio_tuple's one page table gives folio_mapcount() 1, which
    the core's reuse rule (a folio mapped once is copied) reads as one pte: an extra
    copy exact knowledge would not make."""
    from mmcore.experiments.mapcount_study import study

    s = study("folio-shared-64", {"order": 4, "children": 4})
    by = {r.design: r.decisions for r in s.runs}
    assert by["per_page"]["cow_extra_copy"] == by["no_page_mapcount"]["cow_extra_copy"] == 0
    assert by["per_folio_tuple"]["cow_extra_copy"] >= 1
    assert all(d["cow_unsafe_reuse"] == 0 for d in by.values())


@pytest.mark.parametrize("design", default_designs())
@pytest.mark.parametrize("workload,params", [
    ("folio-shared-64", {"order": 4, "children": 6}),
    ("mthp-allocator", {"chunks": 8, "rounds": 2}),
    ("thp-mremap-buffer", {"order": 4, "offset_pages": 8, "grows": 2}),
    ("thp-fork-snapshot", {"hugepages": 1, "snapshots": 1, "dirty_pct": 2}),
    ("thp-mremap-buffer", {"grows": 2}),
    ("folio-shared-64", {"children": 4}),
    ("khugepaged-collapse", {"hugepages": 1, "holes": 2}),
])
def test_designs_keep_their_claims_on_the_real_core(design: str, workload: str,
                                                    params: dict[str, object]) -> None:
    """The exactness each design claims (claim_violations), and the core's counters
    against the page tables, after every op of a large-folio workload on the mTHP and
    PMD THP core."""
    import random

    from mmcore.experiments import workloads
    from mmcore.experiments.ops import Player
    from mmcore.experiments.runner import workload_thp
    from mmcore.folio_truth import check_core, folio_truth
    from mmcore.testing.folio_hand import claim_violations

    w = workloads.get(workload)
    p = workloads.make_params(workload, params)
    m = Machine(mapcount=design, thp=workload_thp(p), ram_pages=1 << 15)
    player = Player(m, strict=w.strict)
    peak: dict[object, int] = {}
    folios = 0
    for op in w.generator(p, random.Random(0)):
        player.apply(op)
        truth = folio_truth(m)
        folios += len(truth)
        for folio, t in truth.items():
            peak[folio] = max(peak.get(folio, 0), len(t.by_mm))
        assert check_core(m, truth) == []
        assert claim_violations(m, truth, peak) == [], op  # type: ignore[arg-type]
    assert folios > 0
