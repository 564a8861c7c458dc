"""Issue 12 item 1, the kernel side of the benchmark: the C probe is built with gcc into a
cache directory (never the source tree) and reports every operation; ``mmsim bench``
writes one JSON report atomically that records the machine and the kernel, with the
simulated figures as ratios to the probe's. Tiny page counts: these check behaviour,
never speed."""

from __future__ import annotations

import json
import platform
import shutil
from pathlib import Path

import pytest

from mmcore import kernel_probe
from mmcore.bench_cli import LABELS
from mmcore.benchmark import OPERATIONS
from mmcore.cli import main

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
SMALL = ["bench", "--pages", "8", "--repeat", "1", "--heap-pages", "8",
         "--rmap", "anon_vma_chain"]


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test builds into its own cache directory."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "mmcore"


@needs_gcc
def test_probe_is_built_into_the_cache_and_times_every_operation(cache: Path) -> None:
    """run_probe() compiles benchmarks/kernel_probe.c into the cache directory, leaves
    the source directory as it was, and reports a positive time for each operation the
    simulated side measures."""
    source_dir = kernel_probe.SOURCE.parent
    before = sorted(p.name for p in source_dir.iterdir())
    report = kernel_probe.run_probe(16, 1)
    assert sorted(p.name for p in source_dir.iterdir()) == before
    assert [p.name.startswith("kernel_probe-") for p in cache.iterdir()] == [True]
    assert sorted(report["ns_per_page"]) == sorted(OPERATIONS) == sorted(LABELS)
    assert all(ns > 0 for ns in report["ns_per_page"].values())
    assert report["pages"] == 16


@needs_gcc
def test_probe_is_rebuilt_when_its_source_changes(tmp_path: Path) -> None:
    """The cached binary is keyed by the source: the same source reuses it, an edited
    source gets a new binary."""
    src = tmp_path / "probe.c"
    src.write_bytes(kernel_probe.SOURCE.read_bytes())
    first = kernel_probe.build(src)
    assert kernel_probe.build(src) == first
    src.write_bytes(kernel_probe.SOURCE.read_bytes() + b"\n/* edited */\n")
    assert kernel_probe.build(src) != first


def test_probe_without_gcc_is_unavailable_with_the_reason(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """No gcc on PATH: ProbeUnavailable says so (nothing is built)."""
    monkeypatch.setenv("PATH", "")
    with pytest.raises(kernel_probe.ProbeUnavailable, match="gcc is not on PATH"):
        kernel_probe.run_probe(8, 1)


def test_probe_with_a_source_that_does_not_compile_is_unavailable(
        tmp_path: Path, cache: Path) -> None:
    """A source gcc rejects gives ProbeUnavailable naming the file, and no binary."""
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc")
    src = tmp_path / "broken.c"
    src.write_text("int main( {\n")
    with pytest.raises(kernel_probe.ProbeUnavailable, match=r"broken\.c"):
        kernel_probe.build(src)
    assert not cache.exists() or not any(cache.iterdir())


def test_probe_rejects_a_non_positive_page_count() -> None:
    """run_probe(0, 1) is a ValueError before anything is built."""
    with pytest.raises(ValueError, match="positive"):
        kernel_probe.run_probe(0, 1)


@needs_gcc
def test_bench_report_records_machine_kernel_and_ratios_to_the_probe(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """mmsim bench --output F writes the report: the kernel release and machine it ran
    on, the probe's figures, and for each configuration of the scheme its per-page times
    and their ratios to the probe's and to the dict insert; the table shows them."""
    out = tmp_path / "bench.json"
    assert main([*SMALL, "--output", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["kernel"]["release"] == platform.release()
    assert doc["machine"]["arch"] == platform.machine()
    assert doc["mmcore"]["build"] in ("pure", "mypyc")
    assert doc["kernel_probe"]["available"] is True
    kernel = doc["kernel_probe"]["us_per_page"]
    assert [(r["rmap"], r["policy"]) for r in doc["rows"]] == [
        ("anon_vma_chain", None), ("anon_vma_chain", "unshare")]
    for row in doc["rows"]:
        for op in OPERATIONS:
            assert row["ratio_to_kernel"][op] == pytest.approx(
                row["us_per_page"][op] / kernel[op])
            assert row["ratio_to_dict_insert"][op] == pytest.approx(
                row["us_per_page"][op] * 1e3 / doc["dict_insert_ns"])
        assert row["heap_bytes_per_page"] > 0
    table = capsys.readouterr().out
    assert "real kernel" in table and "anon_vma_chain+unshare" in table
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.json", "cache"]  # no .tmp


def test_bench_without_gcc_still_reports_mmcore_and_says_why(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Without gcc the report has mmcore's figures, no kernel ratios, and the reason."""
    monkeypatch.setenv("PATH", "")
    out = tmp_path / "bench.json"
    assert main([*SMALL, "--output", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["kernel_probe"] == {"available": False, "reason": "gcc is not on PATH"}
    assert all("ratio_to_kernel" not in r and r["us_per_page"]["fork"] > 0
               for r in doc["rows"])
    assert "no kernel column: gcc is not on PATH" in capsys.readouterr().out


def test_bench_default_output_is_announced_before_it_is_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Without --output the report goes to results/bench.json, said on stderr first."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "")  # the probe's absence does not matter here
    assert main(SMALL) == 0
    assert "writing the report to results/bench.json" in capsys.readouterr().err
    assert json.loads((tmp_path / "results" / "bench.json").read_text())["rows"]


def test_bench_unknown_rmap_is_a_usage_error_naming_the_choices(
        capsys: pytest.CaptureFixture[str]) -> None:
    """--rmap with no valid configuration exits 2 and lists the schemes."""
    assert main(["bench", "--rmap", "nosuch", "--output", "/dev/null"]) == 2
    err = capsys.readouterr().err
    assert "choose one of:" in err and "anon_vma_chain" in err


def test_bench_unwritable_output_fails_before_measuring(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An --output in a missing directory is exit 1, one line naming the directory,
    and nothing is measured or written."""
    missing = tmp_path / "no" / "bench.json"
    assert main([*SMALL, "--output", str(missing)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(missing.parent) in err
    assert not missing.parent.exists()
