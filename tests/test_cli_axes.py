"""mmsim's plugin axes: --file-rmap and --reclaim on run, compare and sweep, and
``compare --axis file_rmap|reclaim`` (the file workloads' comparisons)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmcore.cli import main
from mmcore.plugins import plugins_of_kind

FILE_RMAPS = list(plugins_of_kind("file_rmap"))
RECLAIMS = list(plugins_of_kind("reclaim"))
LARGE = ["--param", "pages=32", "--param", "procs=3", "--param", "vmas_per_proc=4"]


def test_compare_along_the_file_rmap_axis(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    plot = tmp_path / "lf.svg"
    assert main(["compare", "large-file", *LARGE, "--axis", "file_rmap", "--rmap",
                 "pte_chains", "--plot", str(plot), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["axis"] == "file_rmap" and doc["configurations"] == FILE_RMAPS
    by = {r["config"]["file_rmap"]: r for r in doc["results"]}
    assert {r["config"]["rmap"] for r in doc["results"]} == {"pte_chains"}
    if {"i_mmap_list", "i_mmap_tree"} <= set(by):
        visits = {k: by[k]["derived"]["file_visits_per_page"] for k in by}
        assert visits["i_mmap_list"] > 2 * visits["i_mmap_tree"] == 2 * 3
    assert plot.stat().st_size > 0
    assert main(["compare", "large-file", *LARGE, "--axis", "file_rmap",
                 "--no-plot"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # titles wrap
    assert "file rmap plugins with anon_vma_chain" in out and "tree" in out
    for name in FILE_RMAPS:
        assert name in out


def test_compare_along_the_reclaim_axis(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", "memory-pressure", "--param", "anon_pages=24", "--param",
                 "file_pages=8", "--param", "shmem_pages=8", "--param", "ram_pages=24",
                 "--param", "swap_pages=128", "--axis", "reclaim", "--no-plot"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "reclaim plugins with anon_vma_chain" in out and "swapped" in out
    for name in RECLAIMS:
        assert name in out


def test_run_and_compare_with_a_chosen_file_rmap(capsys: pytest.CaptureFixture[str]
                                                 ) -> None:
    assert main(["run", "private-file-cow", "--rmap", "anon_vma", "--file-rmap",
                 FILE_RMAPS[0], "--reclaim", RECLAIMS[-1], "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["config"]["file_rmap"] == FILE_RMAPS[0]
    assert doc["config"]["reclaim"] == RECLAIMS[-1]
    assert main(["run", "private-file-cow", "--rmap", "anon_vma"]) == 0
    out = capsys.readouterr().out
    assert "file rmap walks" in out and "data checked" in out
    assert main(["compare", "large-file", *LARGE, "--file-rmap", FILE_RMAPS[0],
                 "--no-plot", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {r["config"]["file_rmap"] for r in doc["results"]} == {FILE_RMAPS[0]}


@pytest.mark.slow  # a grid on a process pool: 7 s in a loaded -n 2 run
def test_sweep_with_a_chosen_file_rmap_inline_and_pooled(
        capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["sweep", "large-file", "--param", "vmas_per_proc=1,2", "--param", "pages=8",
            "--param", "procs=2", "--file-rmap", "i_mmap_list", "--no-plot", "--json"]
    if "i_mmap_list" not in FILE_RMAPS:
        pytest.skip("i_mmap_list is not installed")
    assert main([*argv, "--jobs", "1"]) == 0
    inline = json.loads(capsys.readouterr().out)["results"]
    assert main([*argv, "--jobs", "2"]) == 0
    pooled = json.loads(capsys.readouterr().out)["results"]
    for r in inline + pooled:
        r.pop("wall_time_s")
        assert r["config"]["file_rmap"] == "i_mmap_list"
    assert inline == pooled
    assert main([*argv[:-1]]) == 0  # the table names the plugin in each title
    assert "file rmap i_mmap_list" in " ".join(capsys.readouterr().out.split())


def test_rerun_of_a_result_with_chosen_plugins(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "large-file", "--rmap", "anon_vma_chain", *LARGE, "--file-rmap",
                 FILE_RMAPS[0], "--reclaim", RECLAIMS[0], "--json"]) == 0
    saved = tmp_path / "r.json"
    saved.write_text(capsys.readouterr().out)
    assert main(["rerun", str(saved)]) == 0
    assert "identical" in capsys.readouterr().out


@pytest.mark.parametrize("argv,fragment", [
    (["compare", "large-file", "--rmap", "pte_chains"], "--axis rmap runs every"),
    (["compare", "large-file", "--axis", "file_rmap", "--file-rmap", "i_mmap_list"],
     "give one or the other"),
    (["compare", "large-file", "--axis", "colour"], "invalid choice"),
    (["run", "large-file", "--rmap", "pte_chains", "--file-rmap", "nope"],
     "unknown file_rmap plugin 'nope': choose one of"),
    (["compare", "memory-pressure", "--reclaim", "fifo"], "unknown reclaim plugin"),
    (["compare", "large-file", "--axis", "reclaim", "--rmap", "nope"], "choose one of"),
    (["run", "memory-pressure", "--rmap", "pte_chains", "--param", "swap_pages=8"],
     "swap_pages must hold"),
])
def test_bad_axis_input_is_one_line_and_exit_2(argv: list[str], fragment: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*argv, "--no-plot"] if argv[0] == "compare" else argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mmsim: error: "), err
    assert fragment in err
