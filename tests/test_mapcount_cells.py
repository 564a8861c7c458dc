"""The mapcount design as a cell axis (issue 13, item 1; issue 11's ``--axis mapcount``).

A cell names its mapcount design (default per_page, left out of its hashed form so every
earlier cell keeps its key); a study cell is one design's row of the mapcount study, its
figures kept in the outcome; ``mmsim compare --axis mapcount`` runs its designs as cells
through the shared executor and store options, and a broken design is a failed row.
"""

from __future__ import annotations

import csv
import json
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from mmcore.cli import main
from mmcore.experiments.cells import MAPCOUNT_STUDY, Cell, Outcome, make_cell, run_cell
from mmcore.experiments.mapcount_study import DesignRun, study
from mmcore.plugins import PluginLoadWarning, discover

SMALL = ["--param", "hugepages=1", "--param", "snapshots=1"]
PARAMS = {"hugepages": "1", "snapshots": "1"}


def test_a_default_mapcount_cell_keeps_the_key_it_had_before_mapcount_was_an_axis() -> None:
    """Keys computed on main before the mapcount field existed (mmcore 0.1.0, plugins
    0.1.0): a default-design cell's data and hash are unchanged."""
    assert make_cell("forking-server", {"pages": "8"}, rmap="pte_chains").key == \
        "50f7d1019bb28a422dc3db7f"
    assert make_cell("forking-server", {"pages": "8"}, rmap="anon_vma_chain", seed=3,
                     observers=["event_log"]).key == "2e889334ec3b0a81692cff2d"
    d = make_cell("forking-server", rmap="pte_chains").to_dict()
    assert "mapcount" not in d and "study" not in d


def test_a_mapcount_design_is_part_of_the_key_with_its_version() -> None:
    base = make_cell("forking-server", rmap="anon_vma_chain")
    other = make_cell("forking-server", rmap="anon_vma_chain", mapcount="no_page_mapcount")
    assert other.key != base.key and other.to_dict()["mapcount"] == "no_page_mapcount"
    assert other.plugin_versions["no_page_mapcount"] == "0.1.0"
    assert "per_page" not in base.plugin_versions
    assert Cell.from_dict(other.to_dict()) == other
    assert other.label == "anon_vma_chain/no_page_mapcount"
    studied = make_cell("forking-server", rmap="anon_vma_chain", study=MAPCOUNT_STUDY)
    assert studied.key != base.key and studied.plugin_versions["per_page"] == "0.1.0"


def test_a_plain_cell_runs_its_machine_with_the_mapcount_design() -> None:
    """The design drives the run: per_folio_tuple's folio-wide mapcount makes the core
    copy on COW where per_page reuses (the extra copies of the study)."""
    def copies(design: str) -> int:
        o = Outcome.from_json(run_cell(make_cell("thp-fork-snapshot", PARAMS,
                                                 rmap="anon_vma_chain", mapcount=design)))
        assert o.result is not None
        return int(o.result.derived.cow_copies)

    assert copies("per_folio_tuple") > copies("per_page")


def test_a_study_cell_stores_the_study_figures_and_round_trips() -> None:
    cell = make_cell("thp-fork-snapshot", PARAMS, rmap="anon_vma_chain",
                     mapcount="per_folio_tuple", study=MAPCOUNT_STUDY)
    text = run_cell(cell)
    o = Outcome.from_json(text)
    assert o.ok and o.result is None and o.study is not None
    direct = study("thp-fork-snapshot", PARAMS, designs=["per_folio_tuple"]).runs[0]
    assert o.study == direct
    assert json.loads(text)["study"] == direct.to_dict()
    assert DesignRun.from_json(direct.to_json()) == direct
    # under a time budget the study runs in a child and comes back the same
    assert Outcome.from_json(run_cell(cell, timeout=60)).study == direct


def test_compare_mapcount_through_store_jobs_and_timeout(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The same JSON with and without the cell options; a rerun reuses the store."""
    args = ["compare", "thp-fork-snapshot", *SMALL, "--axis", "mapcount", "--no-plot",
            "--json"]
    assert main(args) == 0
    plain = capsys.readouterr().out
    store = tmp_path / "store"
    assert main([*args, "--store", str(store), "--jobs", "2", "--timeout", "60"]) == 0
    assert capsys.readouterr().out == plain
    cells = list((store / "cells").glob("*.json"))
    assert len(cells) == len(json.loads(plain)["designs"]) == 4
    mtimes = {p: p.stat().st_mtime_ns for p in cells}
    assert main([*args, "--store", str(store)]) == 0
    assert capsys.readouterr().out == plain
    assert {p: p.stat().st_mtime_ns for p in cells} == mtimes
    # the export has each design and its study figures
    csv_path = tmp_path / "cells.csv"
    assert main(["results", "export", str(store), "-o", str(csv_path)]) == 0
    with csv_path.open() as fh:
        rows = list(csv.DictReader(fh))
    runs = {r["design"]: r for r in json.loads(plain)["runs"]}
    assert {r["mapcount"]: int(r["study.cow_copies"]) for r in rows} == \
        {d: r["cow_copies"] for d, r in runs.items()}
    assert {r["study"] for r in rows} == {MAPCOUNT_STUDY}
    # the design and the study are axes --where filters on, as any other
    one = runs.keys() - {"per_page"}
    design = sorted(one)[0]
    capsys.readouterr()
    assert main(["results", "list", str(store), "--where", f"mapcount={design}",
                 "--where", f"study={MAPCOUNT_STUDY}", "--json"]) == 0
    assert [c["cell"]["mapcount"] for c in json.loads(capsys.readouterr().out)] == [design]


BROKEN = '''\
from dataclasses import replace
from typing import ClassVar

from mmcore import PluginInfo, hookimpl
from mmcore_plugins.mapcount_per_page import PerPageMapcount

class BoomMapcount(PerPageMapcount):
    info: ClassVar[PluginInfo] = replace(PerPageMapcount.info, name="boom_mapcount",
                                         summary="raises in mapcount_add")
    @hookimpl
    def mapcount_add(self, folio, first, nr, vma, address, pmd):
        raise RuntimeError("boom")
'''


@pytest.fixture
def broken_mapcount(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A distribution ``brokenmapcount`` with a design that raises in mapcount_add."""
    (tmp_path / "brokenmapcount_mod.py").write_text(textwrap.dedent(BROKEN))
    info = tmp_path / "brokenmapcount-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: brokenmapcount\n"
                                   "Version: 0.3\n")
    (info / "entry_points.txt").write_text(
        "[mmcore]\nboom_mapcount = brokenmapcount_mod:BoomMapcount\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    discover.cache_clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginLoadWarning)
        yield
    discover.cache_clear()


@pytest.mark.usefixtures("broken_mapcount")
def test_a_broken_mapcount_design_is_a_failed_row_naming_plugin_and_hook(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", "thp-fork-snapshot", *SMALL, "--axis", "mapcount",
                 "--only", "per_page,boom_mapcount", "--no-plot", "--json"]) == 1
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["designs"] == ["per_page"]
    [failure] = doc["failures"]
    assert (failure["label"], failure["status"], failure["plugin"], failure["hook"]) == \
        ("boom_mapcount", "broken", "boom_mapcount", "mapcount_add")
    assert failure["reason"] == "RuntimeError: boom"
    assert "boom_mapcount (broken)" in captured.err
    assert main(["compare", "thp-fork-snapshot", *SMALL, "--axis", "mapcount",
                 "--only", "per_page,boom_mapcount", "--no-plot"]) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "mapcount_add" in out and "per_page" in out


def test_result_config_records_the_mapcount_design_only_when_not_the_default() -> None:
    """A default run's JSON has no ``mapcount`` key (earlier result files keep their
    bytes); another design is recorded, labelled and rerun on that design."""
    from mmcore.experiments.runner import rerun, run

    plain = run("thp-fork-snapshot", PARAMS, rmap="anon_vma")
    assert "mapcount" not in plain.reproducible_dict()["config"]
    other = run("thp-fork-snapshot", PARAMS, rmap="anon_vma", mapcount="per_folio_tuple")
    assert other.reproducible_dict()["config"]["mapcount"] == "per_folio_tuple"
    assert other.label == "anon_vma/per_folio_tuple"
    again = rerun(other.reproducible_json())
    assert again.reproducible_json() == other.reproducible_json()


def test_sweep_mapcount_runs_each_design_as_a_plain_run(
        capsys: pytest.CaptureFixture[str]) -> None:
    """``mmsim sweep --mapcount a,b``: every grid point times every design, each
    result's config naming its design (the default one by omission)."""
    rc = main(["sweep", "thp-fork-snapshot", "--param", "hugepages=1,2", "--param",
               "snapshots=1", "--mapcount", "per_page,no_page_mapcount", "--only",
               "anon_vma", "--json", "--jobs", "1", "--no-plot"])
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    seen = sorted((r["config"]["params"]["hugepages"], r["config"]["policy"] or "",
                   r["config"].get("mapcount", "default")) for r in doc["results"])
    assert seen == sorted((h, p, m) for h in (1, 2) for p in ("", "unshare")
                          for m in ("default", "no_page_mapcount"))


def test_sweep_mapcount_rejects_an_unknown_design(
        capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown design is a usage error naming it, before any cell runs."""
    rc = main(["sweep", "thp-fork-snapshot", "--param", "hugepages=1,2",
               "--mapcount", "per_page,nosuch"])
    assert rc != 0
    assert "nosuch" in capsys.readouterr().err
