"""Sweep cells, the result store, resuming, failures as data and ``mmsim results``."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

import mmcore
from mmcore.cli import main
from mmcore.experiments import runner
from mmcore.experiments.cells import Cell, Outcome, make_cell, run_cell
from mmcore.experiments.reproduce import CLAIMS as REPRODUCE_CELL_CLAIMS
from mmcore.experiments.reproduce import WALL_TIME_PREFIX, deterministic
from mmcore.experiments.store import Store, StoreError
from mmcore.experiments.sweep import cells, run_sweep
from mmcore.plugins import valid_configurations

CONFIGS = valid_configurations()
SWEEP = ["sweep", "forking-server", "--param", "pages=1,2", "--param", "children=1",
         "--no-plot"]


def test_a_cell_key_is_its_content_and_versions() -> None:
    a = make_cell("forking-server", {"pages": "8"}, rmap="pte_chains")
    assert a.key == make_cell("forking-server", {"pages": 8}, rmap="pte_chains").key
    assert a.plugin_versions.keys() == {"pte_chains", "i_mmap_tree", "lru2"}
    others = [replace(a, seed=1), replace(a, rmap="anonmm"), replace(a, arch="i386"),
              replace(a, mmcore_version="9.9"), replace(a, reclaim="clock"),
              replace(a, plugin_versions={**a.plugin_versions, "pte_chains": "9.9"}),
              replace(a, params={**a.params, "children": 99})]
    assert len({a.key, *(c.key for c in others)}) == len(others) + 1
    assert Cell.from_dict(json.loads(json.dumps(a.to_dict()))).key == a.key


def test_an_outcome_round_trips_and_checks_its_key() -> None:
    text = run_cell(make_cell("wide-fork", {"children": 1, "pages": 2}, rmap="anon_vma"))
    o = Outcome.from_json(text)
    assert o.ok and o.to_json() == text
    doc = json.loads(text)
    doc["cell"]["seed"] = 5
    with pytest.raises(ValueError, match="not the hash of its cell"):
        Outcome.from_json(json.dumps(doc))


def test_a_plugin_missing_on_the_worker_is_a_failed_outcome() -> None:
    cell = replace(make_cell("wide-fork", rmap="anon_vma"), rmap="no_such_scheme")
    o = Outcome.from_json(run_cell(cell))
    assert not o.ok and o.failure is not None
    assert o.failure.kind == "missing" and o.failure.plugin == "no_such_scheme"
    assert "not installed on worker" in o.failure.reason
    other = replace(make_cell("wide-fork", rmap="anon_vma"), mmcore_version="0.0.1")
    assert Outcome.from_json(run_cell(other)).failure.kind == "version"  # type: ignore[union-attr]


def test_a_cell_past_its_timeout_is_a_failed_outcome() -> None:
    o = Outcome.from_json(run_cell(make_cell("random-mix", rmap="anon_vma"), timeout=1e-9))
    assert o.failure is not None and o.failure.kind == "timeout"


def test_the_store_skips_present_cells_and_force_recomputes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "s"
    assert main([*SWEEP, "--store", str(store), "--json"]) == 0
    first = capsys.readouterr()
    files = sorted((store / "cells").iterdir())
    assert len(files) == 2 * len(CONFIGS)
    assert f"{len(files)} run, 0 from the store, 0 failed" in first.err
    stamps = {p.name: p.stat().st_ino for p in files}
    assert main([*SWEEP, "--store", str(store), "--json"]) == 0
    again = capsys.readouterr()
    assert f"0 run, {len(files)} from the store" in again.err
    assert again.out == first.out  # the report regenerates from the store alone
    assert {p.name: p.stat().st_ino for p in files} == stamps  # nothing rewritten
    index = json.loads((store / "index.json").read_text())
    assert set(index) == {p.stem for p in files}
    assert main([*SWEEP, "--store", str(store), "--force", "--json"]) == 0
    assert f"{len(files)} run, 0 from the store" in capsys.readouterr().err
    assert all(p.stat().st_ino != stamps[p.name] for p in files)  # atomic rewrites


def test_the_index_is_rebuilt_from_the_cells(tmp_path: Path) -> None:
    todo = cells("wide-fork", {"children": [1, 2], "pages": [2]}, configs=CONFIGS[:2])
    with Store(tmp_path / "s") as store:
        run_sweep(todo, store=store)
    (tmp_path / "s" / "index.json").unlink()
    (tmp_path / "s" / "cells" / f".{todo[0].key}.json.x.tmp").write_text("{partial")
    with Store(tmp_path / "s") as store:
        assert len(store) == 4 and all(store.status(c.key) == "ok" for c in todo)
        assert not list((tmp_path / "s" / "cells").glob(".*.tmp"))


def test_a_store_is_refused_when_it_is_not_one_or_is_busy(tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(StoreError, match="not an mmsim result store"):
        Store(tmp_path / "full")
    with Store(tmp_path / "s"), pytest.raises(StoreError, match="another mmsim"), \
            Store(tmp_path / "s"):
        pass


def test_failures_are_stored_counted_and_exit_1(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    real = runner.execute
    doomed = CONFIGS[0][0]

    def execute(ops, config, **kw):  # type: ignore[no-untyped-def]
        if config.rmap == doomed:
            exc = RuntimeError("plugin bug\nsecond line")
            exc.plugin, exc.hook = doomed, "rmap_add"  # type: ignore[attr-defined]
            raise exc
        return real(ops, config, **kw)

    monkeypatch.setattr(runner, "execute", execute)
    store = tmp_path / "s"
    assert main([*SWEEP, "--store", str(store)]) == 1
    err = capsys.readouterr().err.splitlines()
    doomed_rows = sum(1 for r, _ in CONFIGS if r == doomed)
    failures = [line for line in err if line.startswith("mmsim: failed: ")]
    assert len(failures) == 2 * doomed_rows
    assert (f"plugin {doomed!r} (mmcore-sim {mmcore.__version__}), hook 'rmap_add': broken: "
            "RuntimeError: plugin bug second line") in failures[0]
    assert err[-1].endswith(f", {2 * doomed_rows} failed")
    assert main(["results", "list", str(store), "--status", "failed", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {x["failure"]["plugin"] for x in listed} == {doomed}
    assert main(["results", "report", str(store)]) == 0  # failed cells as red rows
    out, err = capsys.readouterr()
    assert out.count("failed configurations") == 2  # a table of why per grid point
    red = [ln.split()[0] for ln in out.splitlines() if ln.split()[1:3] == ["broken", "-"]]
    assert sorted(red) == sorted(2 * [r if p is None else f"{r}+{p}" for r, p in CONFIGS
                                      if r == doomed])
    assert f"{2 * doomed_rows} failed cells are red rows" in err
    monkeypatch.setattr(runner, "execute", real)
    assert main([*SWEEP, "--store", str(store)]) == 1  # a failure stays a failure
    assert f"0 run, {2 * len(CONFIGS)} from the store" in capsys.readouterr().err
    assert main([*SWEEP, "--store", str(store), "--retry-failed"]) == 0
    assert f"{2 * doomed_rows} run" in capsys.readouterr().err


def _sweep_process(store: Path, jobs: int) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "mmcore.cli", "sweep", "forking-server", "--param",
            "pages=" + ",".join(map(str, range(1, 11))), "--param", "children=1,2",
            "--no-plot", "--json", "--store", str(store), "--jobs", str(jobs)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait_for_cells(proc: subprocess.Popen[bytes], store: Path, n: int) -> None:
    """Return once ``n`` cells are stored, the sweep still running."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list((store / "cells").glob("[!.]*.json"))) >= n:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the sweep ended before it could be interrupted"


def _kill_a_pool_worker(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL one of the sweep's spawned pool workers, as the OOM killer would."""
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    workers = [int(c) for c in children
               if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]
    assert workers, children
    os.kill(workers[0], signal.SIGKILL)


@pytest.mark.parametrize("sig,jobs", [(signal.SIGTERM, 1), (signal.SIGINT, 2),
                                      (signal.SIGKILL, 2)])
def test_a_killed_sweep_resumes_without_recomputing_or_losing_cells(
        tmp_path: Path, sig: int, jobs: int) -> None:
    """SIGTERM or Ctrl-C (SIGINT) to mmsim, or a pool worker SIGKILLed."""
    store = tmp_path / "s"
    total = 20 * len(CONFIGS)
    proc = _sweep_process(store, jobs)
    _wait_for_cells(proc, store, 30)
    if sig == signal.SIGKILL:
        _kill_a_pool_worker(proc)
    else:
        proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == (1 if sig == signal.SIGKILL else 130), err
    assert b"run the same command to resume" in err and b"Traceback" not in err
    names = os.listdir(store / "cells")
    assert not [n for n in names if n.startswith(".")]  # no partial files
    kept = {n: (store / "cells" / n).stat().st_ino for n in names}
    assert 30 <= len(kept) < total
    for n in kept:  # every kept cell is whole
        assert Outcome.from_json((store / "cells" / n).read_text()).ok
    proc = _sweep_process(store, jobs)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert f"{total - len(kept)} run, {len(kept)} from the store".encode() in err
    assert len(os.listdir(store / "cells")) == total
    assert {n: (store / "cells" / n).stat().st_ino for n in kept} == kept


def test_results_export_csv_filter_and_merge(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert main([*SWEEP, "--store", str(a), "--json"]) == 0
    assert main(["sweep", "wide-fork", "--param", "children=1,2", "--param", "pages=2",
                 "--no-plot", "--json", "--store", str(b)]) == 0
    capsys.readouterr()
    merged = tmp_path / "m"
    assert main(["results", "merge", str(merged), str(a), str(b)]) == 0
    assert f"{4 * len(CONFIGS)} in all" in capsys.readouterr().out
    out = tmp_path / "t.csv"
    rmap = CONFIGS[0][0]
    assert main(["results", "export", str(merged), "-o", str(out), "--where",
                 f"rmap={rmap}", "--where", "workload=forking-server"]) == 0
    capsys.readouterr()
    with out.open() as fh:
        table = list(csv.DictReader(fh))
    mine = [r for r in Store(a).outcomes() if r.cell.rmap == rmap]
    assert len(table) == len(mine) > 0
    for r in table:
        assert r["rmap"] == rmap and r["status"] == "ok"
        o = Store(a).get(r["key"])
        assert o.result is not None
        assert int(r["derived.rmap_peak_bytes"]) == o.result.derived.rmap_peak_bytes
        assert int(r["param.pages"]) == o.cell.params["pages"]
    assert main(["results", "list", str(merged), "--where", "colour=red"]) == 2
    assert "no cell has axis colour" in capsys.readouterr().err
    assert main(["results", "list", str(tmp_path / "nope")]) == 1
    assert "not an mmsim result store" in capsys.readouterr().err


def test_results_export_parquet(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                ) -> None:
    pq = pytest.importorskip("pyarrow.parquet", reason="Parquet export needs pyarrow")
    assert main([*SWEEP, "--store", str(tmp_path / "s"), "--json"]) == 0
    out = tmp_path / "t.parquet"
    assert main(["results", "export", str(tmp_path / "s"), "-o", str(out)]) == 0
    table = pq.read_table(out)
    assert table.num_rows == 2 * len(CONFIGS)
    assert sorted(set(table.column("param.pages").to_pylist())) == [1, 2]


def test_seeds_show_the_median_and_the_spread(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sweep", "random-mix", "--param", "steps=40,60", "--seeds", "3",
                 "--no-plot", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    assert len(results) == 2 * 3 * len(CONFIGS)
    assert sorted({r["config"]["seed"] for r in results}) == [0, 1, 2]
    assert main(["sweep", "random-mix", "--param", "steps=40,60", "--seeds", "3",
                 "--no-plot"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "3 seeds" in text and "median ±spread" in text
    assert "differences beyond the spread:" in text


def test_the_sweep_plot_shades_the_seeds_spread_around_the_median(tmp_path: Path) -> None:
    """With several seeds each line is the median and a band in its colour spans the
    seeds' smallest to largest value; one seed draws no band."""
    from mmcore.experiments.plots import sweep_plot

    def plot(seeds: range) -> str:
        results = [runner.run("random-mix", {"steps": n}, rmap="anon_vma", seed=s)
                   for n in (20, 40) for s in seeds]
        return sweep_plot(results, "steps", tmp_path / f"{len(seeds)}.svg").read_text()

    one, three = plot(range(1)), plot(range(3))
    assert "fill-opacity: 0.15" in three and "band: smallest to largest" in three
    assert "fill-opacity: 0.15" not in one and "band" not in one


def test_beyond_spread_is_whether_seed_ranges_overlap() -> None:
    from mmcore.experiments.report import Spread, beyond_spread

    apart = {"a": {"m": Spread(10, 9, 11)}, "b": {"m": Spread(20, 12, 30)}}
    overlapping = {"a": {"m": Spread(10, 9, 15)}, "b": {"m": Spread(20, 12, 30)}}
    same = {"a": {"m": Spread(10, 9, 15)}, "b": {"m": Spread(10, 2, 30)}}
    assert beyond_spread(apart, "m") is True
    assert beyond_spread(overlapping, "m") is False
    assert beyond_spread(same, "m") is None


def test_a_timeout_fails_every_cell_from_the_command_line(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*SWEEP, "--timeout", "1e-9"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert sum("timeout: RunTimeout: no result within" in line for line in err) == \
        2 * len(CONFIGS)
    assert err[-1].endswith(f"{2 * len(CONFIGS)} failed")


@pytest.mark.parametrize("argv,fragment", [
    ([*SWEEP, "--timeout", "0"], "not a positive number of seconds"),
    ([*SWEEP, "--timeout", "soon"], "not a number"),
    ([*SWEEP, "--seeds", "0"], "less than 1"),
    ([*SWEEP, "--executor", "slurm"], "invalid choice"),
    (["results", "export", "STORE", "-o", "t.txt"], "must end in .csv or .parquet"),
    (["results", "list", "STORE", "--where", "rmap"], "malformed --where"),
    (["results"], "required"),
])
def test_bad_sweep_and_results_input_is_one_line_and_exit_2(
        argv: list[str], fragment: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "s"
    if "STORE" in argv:
        Store(store)
    assert main([str(store) if a == "STORE" else a for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mmsim: error: "), err
    assert fragment in err


def test_a_sweep_runs_the_whole_plugin_matrix(capsys: pytest.CaptureFixture[str]) -> None:
    from mmcore.plugins import plugins_of_kind

    file_rmaps, reclaims = list(plugins_of_kind("file_rmap")), list(plugins_of_kind("reclaim"))
    assert main(["sweep", "large-file", "--param", "vmas_per_proc=1,2", "--param",
                 "pages=4", "--param", "procs=2", "--file-rmap", "all", "--reclaim",
                 "all", "--no-plot", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    combos = {(r["config"]["rmap"], r["config"]["policy"], r["config"]["file_rmap"],
               r["config"]["reclaim"], r["config"]["params"]["vmas_per_proc"])
              for r in results}
    assert len(results) == len(combos) == 2 * len(file_rmaps) * len(reclaims) * len(CONFIGS)
    assert main(["sweep", "large-file", "--param", "vmas_per_proc=1,2", "--file-rmap",
                 ",".join(file_rmaps), "--no-plot"]) == 0
    out = capsys.readouterr().out
    assert all(f"/{name}" in out for name in file_rmaps if name != "i_mmap_tree")


def test_results_report_reprints_the_sweep_from_the_store(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "s"
    argv = ["sweep", "forking-server", "--param", "pages=1,2", "--param", "children=1,2",
            "--no-plot", "--store", str(store)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    plot = tmp_path / "r.svg"
    assert main(["results", "report", str(store), "--plot", str(plot)]) == 0
    report = capsys.readouterr().out
    assert report == printed + f"plot: {plot}\n"  # the same stored figures, wall time too
    assert plot.stat().st_size > 0
    assert main(["results", "report", str(store), "--where", "children=2"]) == 0
    assert capsys.readouterr().out.count("forking-server (") == 2
    assert main(["sweep", "wide-fork", "--param", "children=1,2", "--no-plot", "--json",
                 "--store", str(store)]) == 0
    capsys.readouterr()
    assert main(["results", "report", str(store)]) == 2
    assert "--where workload=NAME" in capsys.readouterr().err


def test_parquet_without_pyarrow_is_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    Store(tmp_path / "s")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    assert main(["results", "export", str(tmp_path / "s"), "-o",
                 str(tmp_path / "t.parquet")]) == 1
    assert capsys.readouterr().err == ("mmsim: error: writing Parquet needs pyarrow: pip "
                                       "install 'mmcore-sim[parquet]' (or export to "
                                       ".csv)\n")
    assert not (tmp_path / "t.parquet").exists()


def test_a_temporary_orphaned_while_the_store_is_held_is_gone_when_it_is_left(
        tmp_path: Path) -> None:
    """A signal inside mkstemp() leaves a temporary atomic_path() never owned: the store
    removes it when its writer leaves, so an interrupted sweep leaves only whole cells."""
    with Store(tmp_path / "s") as store:
        orphan = store.cells / ".0123abcd.json.x1y2z3.tmp"
        orphan.write_text("{")
    assert not orphan.exists()


def test_compare_and_reproduce_keep_their_runs_in_a_store(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """compare's configurations and reproduce's runs are cells like a sweep's: stored
    under their keys, reused by a rerun (nothing rewritten, the same output), and shared
    with a sweep of the same cells."""
    store = tmp_path / "s"
    compare = ["compare", "forking-server", "--param", "pages=2", "--param", "children=1",
               "--no-plot", "--json", "--store", str(store)]
    assert main(compare) == 0
    first = capsys.readouterr().out
    files = sorted((store / "cells").iterdir())
    assert len(files) == len(CONFIGS)
    stamps = {p.name: p.stat().st_ino for p in files}
    assert main(compare) == 0
    assert capsys.readouterr().out == first  # wall times included: the stored results
    assert {p.name: p.stat().st_ino for p in sorted((store / "cells").iterdir())} == stamps
    assert main(["sweep", "forking-server", "--param", "pages=1,2", "--param",
                 "children=1", "--no-plot", "--store", str(store)]) == 0
    assert f"{len(CONFIGS)} run, {len(CONFIGS)} from the store" in capsys.readouterr().err
    out = tmp_path / "r"
    # part one's claims alone (the mapcount study's cells ignore the plugin selection)
    argv = ["reproduce", "--out", str(out), "--store", str(store), "--only", "pte_chains",
            "--exclude", "pte_chains+unshare", "--claims", ",".join(REPRODUCE_CELL_CLAIMS)]
    assert main(argv) == 0
    report = (out / "results.md").read_text()
    stored = len(list((store / "cells").iterdir()))
    # pte_chains: 3 + 2 + 1 + 2 + 2 claim runs, and the trace study's 4 traces on
    # 2 file rmaps x 2 reclaim policies
    assert stored == 2 * len(CONFIGS) + 10 + 4 * 2 * 2
    assert main(argv) == 0
    again = (out / "results.md").read_text()
    assert deterministic(again) == deterministic(report)  # all but the wall-time line
    assert f"{WALL_TIME_PREFIX} 16 cells (0 run, 16 from the store) in " in again
    assert len(list((store / "cells").iterdir())) == stored


MMTOY = Path(__file__).parent.parent / "examples" / "traces" / "mmtoy.jsonl"


def test_a_trace_cell_is_keyed_by_the_traces_content_not_its_path(tmp_path: Path) -> None:
    """A copy of a trace elsewhere is the same cell; a trace with one byte changed is
    another; the key of a workload cell does not depend on traces existing."""
    from mmcore.experiments.cells import TRACE_WORKLOAD, trace_cell

    copy = tmp_path / "renamed.jsonl"
    copy.write_bytes(MMTOY.read_bytes())
    a, b = trace_cell(MMTOY, rmap="anon_vma"), trace_cell(copy, rmap="anon_vma")
    assert a.workload == TRACE_WORKLOAD and a.trace != b.trace and a.key == b.key
    copy.write_bytes(MMTOY.read_bytes() + b"\n")  # one byte more
    assert trace_cell(copy, rmap="anon_vma").key != a.key
    assert trace_cell(MMTOY, rmap="pte_chains").key != a.key
    assert trace_cell(MMTOY, rmap="anon_vma", check_walks=3).key != a.key
    assert "trace" not in make_cell("wide-fork", rmap="anon_vma").to_dict()
    assert Cell.from_dict(json.loads(json.dumps(a.to_dict()))) == a


def test_a_trace_cell_whose_trace_is_gone_or_changed_on_the_worker_fails(
        tmp_path: Path) -> None:
    """The worker checks the trace it reads is the cell's, byte for byte."""
    from mmcore.experiments.cells import trace_cell

    path = tmp_path / "t.jsonl"
    path.write_bytes(MMTOY.read_bytes())
    cell = trace_cell(path, rmap="anon_vma")
    ok = Outcome.from_json(run_cell(cell))
    assert ok.ok and ok.replay is not None and ok.replay.ops_applied > 0
    assert Outcome.from_json(ok.to_json()).to_json() == ok.to_json()
    path.write_bytes(MMTOY.read_bytes() + b"\n")
    changed = Outcome.from_json(run_cell(cell)).failure
    assert changed is not None and changed.kind == "version" and "changed" in changed.reason
    path.unlink()
    gone = Outcome.from_json(run_cell(cell)).failure
    assert gone is not None and gone.kind == "missing" and "cannot be read" in gone.reason


def test_trace_replays_are_stored_and_reused(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """``trace replay --store``: one cell per trace and configuration, reused by a rerun
    (the report printed from the store is the report of the run)."""
    store = tmp_path / "s"
    argv = ["trace", "replay", str(MMTOY), "--rmap", "anon_vma,pte_chains", "--json",
            "--store", str(store)]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert len(json.loads(first)["replays"]) == 2
    files = sorted((store / "cells").iterdir())
    stamps = {p.name: p.stat().st_ino for p in files}
    assert len(files) == 2
    assert main(argv) == 0
    assert capsys.readouterr().out == first
    assert {p.name: p.stat().st_ino for p in sorted((store / "cells").iterdir())} == stamps
    assert main(["results", "list", str(store), "--where", "workload=<trace>",
                 "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2


def test_the_trace_study_tabulates_each_configuration_and_checks_the_walks(
        tmp_path: Path) -> None:
    """One scheme, one trace: a row per file rmap (the reclaim policies, which change
    nothing without reclaim, share it), the walks checked against the page tables; with
    no traces the study is not measured."""
    from mmcore.experiments.reproduce import Runs, render, study_traces

    claim = study_traces(Runs([("pte_chains", None)], traces=[MMTOY]), tmp_path)
    assert [row[0] for row in claim.rows] == ["pte_chains", "pte_chains/i_mmap_list"]
    assert "4 configurations): 4 cells" in claim.setup
    assert claim.timing is not None and claim.timing.startswith(
        "4 cells (4 run, 0 from the store) in ")
    assert "one after another in the mmsim process" in claim.timing
    # the wall time is one line of the report, the only one deterministic() drops
    report = render([claim], [("pte_chains", None)], {})
    [line] = [ln for ln in report.splitlines() if claim.timing in ln]
    assert line == f"{WALL_TIME_PREFIX} {claim.timing}"
    assert deterministic(report).splitlines() == [
        ln for ln in report.splitlines() if ln != line]
    assert [c.passed for c in claim.checks] == [True, True, True]
    assert "0 mismatches" in claim.checks[1].text and claim.verdict == "held"
    assert (tmp_path / "claim-trace-study.png").stat().st_size > 0
    empty = study_traces(Runs([("pte_chains", None)], traces=[]), tmp_path)
    assert empty.verdict == "not measured" and not empty.rows


def test_run_shares_its_cell_with_compare_and_rerun_keeps_the_memory_sizes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``mmsim run --store`` keeps the cell ``compare`` builds for that configuration
    (compare reuses it, the run's output is the same from the store); ``rerun`` of a
    result made with other memory sizes reruns it with them."""
    from mmcore.experiments.cells import result_cell
    from mmcore.experiments.runner import run

    store = tmp_path / "s"
    small = ["forking-server", "--param", "pages=2", "--param", "children=1"]
    argv = ["run", *small, "--rmap", "pte_chains", "--json", "--store", str(store)]
    assert main(argv) == 0
    first = capsys.readouterr().out
    [cell] = (store / "cells").iterdir()
    inode = cell.stat().st_ino
    assert main(argv) == 0
    assert capsys.readouterr().out == first  # the stored result, wall time included
    assert main(["compare", *small, "--no-plot", "--store", str(store), "--only",
                 "pte_chains", "--exclude", "pte_chains+unshare"]) == 0
    assert [p.stat().st_ino for p in (store / "cells").iterdir()] == [inode]
    capsys.readouterr()
    sized = run("forking-server", {"pages": 2, "children": 1}, rmap="pte_chains",
                ram_pages=512, swap_pages=64)
    assert result_cell(sized).ram_pages == 512
    assert result_cell(sized).key != make_cell("forking-server", {"pages": 2,
                                               "children": 1}, rmap="pte_chains").key
    saved = tmp_path / "sized.json"
    saved.write_text(sized.to_json())
    assert main(["rerun", str(saved), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["identical"] is True
