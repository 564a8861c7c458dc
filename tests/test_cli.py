"""mmsim, run in-process through main([...])."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import mmcore
from mmcore.cli import main
from mmcore.experiments.reproduce import claim_keys, deterministic
from mmcore.plugins import installed_plugins, valid_configurations

CONFIGS = valid_configurations()
LABELS = [r if p is None else f"{r}+{p}" for r, p in CONFIGS]
SMALL = ["--param", "pages=8", "--param", "children=2"]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert mmcore.__version__ in capsys.readouterr().out


def test_plugins_lists_every_installed_plugin(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    for name in installed_plugins():
        assert name in out
    assert f"valid configurations ({len(CONFIGS)})" in out


def test_workloads_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["workloads", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["forking-server"]["params"] == {"pages": 256, "children": 32}
    assert doc["large-file"]["params"]["vmas_per_proc"] == 1  # file mappings landed


def test_run_json(capsys: pytest.CaptureFixture[str]) -> None:
    rmap, policy = CONFIGS[0]
    argv = ["run", "forking-server", "--rmap", rmap, *SMALL, "--seed", "3", "--json"]
    if policy:
        argv += ["--mremap-policy", policy]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["config"]["rmap"] == rmap and doc["config"]["seed"] == 3
    assert doc["config"]["params"] == {"pages": 8, "children": 2}
    assert doc["derived"]["walks"] > 0


def test_run_table(capsys: pytest.CaptureFixture[str]) -> None:
    rmap, policy = CONFIGS[0]
    argv = ["run", "wide-fork", "--rmap", rmap, *SMALL] + (["--mremap-policy", policy] if policy
                                                           else [])
    assert main(argv) == 0
    assert rmap in capsys.readouterr().out


def test_compare_json_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plot = tmp_path / "fs.svg"
    assert main(["compare", "forking-server", *SMALL, "--plot", str(plot), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["configurations"] == LABELS
    assert [r["config"]["rmap"] for r in doc["results"]] == [r for r, _ in CONFIGS]
    assert set(doc["ratios_to_best"]) == set(LABELS)
    assert plot.stat().st_size > 0 and doc["plot"] == str(plot)


def test_compare_table_writes_the_default_plot(tmp_path: Path, monkeypatch:
                                               pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["compare", "forking-server", *SMALL]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "results" / "forking-server.png").stat().st_size > 0
    for rmap, _ in CONFIGS:
        assert rmap in out


def test_sweep(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plot = tmp_path / "sweep.png"
    assert main(["sweep", "forking-server", "--param", "pages=4,8", "--param", "children=2",
                 "--plot", str(plot), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    results = doc["results"]
    assert doc["failures"] == []
    assert len(results) == 2 * len(CONFIGS)
    assert sorted({r["config"]["params"]["pages"] for r in results}) == [4, 8]
    assert plot.stat().st_size > 0


def test_sweep_on_a_process_pool_matches_inline(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["sweep", "wide-fork", "--param", "children=1,3", "--param", "pages=4",
            "--no-plot", "--json"]
    assert main([*argv, "--jobs", "1"]) == 0
    inline = json.loads(capsys.readouterr().out)["results"]
    assert main([*argv, "--jobs", "2"]) == 0
    pooled = json.loads(capsys.readouterr().out)["results"]
    for r in inline + pooled:
        r.pop("wall_time_s")
    assert inline == pooled


def test_rerun_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rmap, policy = CONFIGS[-1]
    argv = ["run", "random-mix", "--rmap", rmap, "--param", "steps=80", "--json"]
    assert main(argv + (["--mremap-policy", policy] if policy else [])) == 0
    saved = tmp_path / "r.json"
    saved.write_text(capsys.readouterr().out)
    assert main(["rerun", str(saved)]) == 0
    assert "identical" in capsys.readouterr().out


@pytest.mark.parametrize("argv,fragment", [
    (["run", "no-such-workload", "--rmap", "pte_chains"], "unknown workload"),
    (["run", "large-file", "--rmap", "pte_chains", "--param", "vmas_per_proc=0"],
     "at least 1"),
    (["compare", "forking-server", "--param", "pages"], "malformed --param"),
    (["compare", "forking-server", "--param", "pages=lots"], "Not a valid integer"),
    (["compare", "forking-server", "--param", "nope=1"], "Unknown field"),
    (["compare", "forking-server", "--param", "pages=0"], "at least 1"),
    (["run", "forking-server", "--rmap", "no_such_scheme"], "choose one of"),
    (["run", "forking-server", "--rmap", "pte_chains", "--mremap-policy", "nope"], "choose one"),
    (["run", "forking-server"], "--rmap"),
    (["sweep", "forking-server", "--param", "pages=4"], "several values"),
    (["compare", "forking-server", "--plot", "x.txt"], ".png or .svg"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_input_is_one_line_and_exit_2(argv: list[str], fragment: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mmsim: error: "), err
    assert fragment in err


def test_a_scheme_missing_its_needs_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    needy = [name for name in installed_plugins()
             if (name, None) not in CONFIGS and any(r == name for r, _ in CONFIGS)]
    if not needy:
        pytest.skip("no installed scheme needs an mremap policy")
    assert main(["run", "forking-server", "--rmap", needy[0], *SMALL]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs" in err


DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.mark.slow  # every claim on every configuration: 25 s on an idle core
def test_reproduce_into_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                    ) -> None:
    """One reproduce of every claim gives the committed docs/results.md byte for byte
    (made by another process: the report is deterministic) and its plots."""
    assert main(["reproduce", "--out", str(tmp_path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [c["key"] for c in doc["claims"]] == claim_keys()
    text = (tmp_path / "results.md").read_text()
    for title in ("24 bytes", "anonmm probes", "mremap after fork", "vma splits",
                  "anon_vma_chain"):
        assert title in text
    assert "**Verdict:" in text
    images = sorted(p.name for p in (tmp_path / "img").iterdir())
    assert len(images) == 6 and all(f"img/{n}" in text for n in images)
    assert images == sorted(p.name for p in (DOCS / "img").iterdir())
    # deterministic, but for the trace study's one wall-time line
    assert deterministic(text) == deterministic((DOCS / "results.md").read_text()), (
        "the report differs from docs/results.md: not deterministic, or a model change "
        "whose docs were not regenerated (mmsim reproduce --out docs)")


def test_reproduce_measures_only_the_claims_chosen(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--claims`` measures those claims alone: the report has their sections and no
    part two without a mapcount claim; an unknown key is a usage error naming the keys,
    before anything is written."""
    argv = ["reproduce", "--out", str(tmp_path / "r"), "--json", "--only", "anon_vma"]
    assert main([*argv, "--claims", "memory,nothing"]) == 2
    assert "'nothing'; the claims are: memory, anonmm-probes" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
    assert main([*argv, "--claims", "split-flood", "--claims", "memory"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [c["key"] for c in doc["claims"]] == ["memory", "split-flood"]
    text = (tmp_path / "r" / "results.md").read_text()
    assert text.count("\n## ") == 2 and '<a id="memory"></a>' in text
    assert "mapcount" not in text
    assert sorted(p.name for p in (tmp_path / "r" / "img").iterdir()) == [
        "claim-memory.png", "claim-split-flood.png"]


def test_importing_the_library_does_not_configure_structlog() -> None:
    code = ("import structlog, mmcore, mmcore.cli, mmcore.experiments.runner, "
            "mmcore.experiments.reproduce; print(structlog.is_configured())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"


def test_compare_on_a_process_pool_matches_inline(capsys: pytest.CaptureFixture[str]
                                                   ) -> None:
    """compare's configurations are cells: on a pool of 2 they give the inline figures."""
    argv = ["compare", "wide-fork", "--param", "children=2", "--param", "pages=4",
            "--no-plot", "--json"]
    assert main([*argv, "--jobs", "1"]) == 0
    inline = json.loads(capsys.readouterr().out)
    assert main([*argv, "--jobs", "2"]) == 0
    pooled = json.loads(capsys.readouterr().out)
    for r in inline["results"] + pooled["results"]:
        r.pop("wall_time_s")
    assert inline == pooled and len(inline["results"]) == len(CONFIGS)
