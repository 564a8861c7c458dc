"""Sweeps on dask.distributed: a LocalCluster gives the local executor's results."""

from __future__ import annotations

import contextlib
import os
import re
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from mmcore.cli import main
from mmcore.experiments.cells import Outcome, make_cell
from mmcore.experiments.executors import DASK_MISSING, ExecutorError, make_executor
from mmcore.experiments.store import Store
from mmcore.experiments.sweep import cells, run_sweep
from mmcore.plugins import valid_configurations

#: Timing and the host differ between runs; every other byte must not.
UNREPRODUCIBLE = re.compile(r'"(wall_time_s|worker)": [^,\n]+')


def _texts(store: Path) -> dict[str, str]:
    return {p.name: UNREPRODUCIBLE.sub("", p.read_text())
            for p in sorted((store / "cells").iterdir())}


def test_without_dask_the_dask_executor_is_one_line(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed fails
    with pytest.raises(ExecutorError, match="pip install 'mmcore-sim\\[dask\\]'"):
        make_executor("dask", 2)
    assert main(["sweep", "wide-fork", "--param", "children=1,2", "--no-plot",
                 "--executor", "dask"]) == 1
    assert capsys.readouterr().err == f"mmsim: error: {DASK_MISSING}\n"


@pytest.mark.slow  # a LocalCluster of 2 workers and 220 cells: about 15 s on 2 CPUs
def test_a_dask_local_cluster_gives_the_local_executors_results(tmp_path: Path) -> None:
    pytest.importorskip("distributed", reason="dask.distributed is not installed "
                        "(pip install 'mmcore-sim[dask]')")
    todo = cells("forking-server", {"pages": list(range(1, 11)), "children": [1, 2]})
    assert len(todo) >= 200
    missing = replace(make_cell("wide-fork", rmap="anon_vma"), rmap="no_such_scheme")
    for name, executor in (("local", make_executor("local", 2)),
                           ("dask", make_executor("dask", 2))):
        with Store(tmp_path / name) as store:
            sweep = run_sweep([*todo, missing], executor, store)
        assert sweep.computed == len(todo) + 1 and len(sweep.failed) == 1
    local, dask = _texts(tmp_path / "local"), _texts(tmp_path / "dask")
    assert len(local) == len(todo) + 1
    assert local == dask
    failed = Store(tmp_path / "dask").get(missing.key)
    assert failed.failure is not None and failed.failure.kind == "missing"
    assert "'no_such_scheme' is not installed on worker" in failed.failure.reason
    assert Outcome.from_json((tmp_path / "dask" / "cells" / f"{todo[0].key}.json")
                             .read_text()).ok


@pytest.mark.slow  # starts a LocalCluster: about 6 s
def test_the_dask_command_line_runs_and_resumes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("distributed", reason="dask.distributed is not installed "
                        "(pip install 'mmcore-sim[dask]')")
    argv = ["sweep", "wide-fork", "--param", "children=1,2", "--param", "pages=2",
            "--no-plot", "--json", "--store", str(tmp_path / "s")]
    assert main([*argv, "--executor", "dask", "--jobs", "2"]) == 0
    n = 2 * len(valid_configurations())
    assert f"{n} cells, {n} run" in capsys.readouterr().err
    assert main(argv) == 0
    assert f"0 run, {n} from the store" in capsys.readouterr().err


def _descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (the LocalCluster's worker processes and their
    helpers), from /proc's children lists."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        for children in Path(f"/proc/{parent}/task").glob("*/children"):
            try:
                kids = [int(c) for c in children.read_text().split()]
            except OSError:  # the task ended meanwhile
                continue
            found += kids
            todo += kids
    return found


def _cells_stored(store: Path) -> int:
    return len(list((store / "cells").glob("[!.]*.json")))


@pytest.mark.slow  # starts a LocalCluster twice: about 15 s
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs /proc")
def test_a_sigterm_stops_a_dask_sweep_and_the_rerun_resumes(tmp_path: Path) -> None:
    """SIGTERM in the middle of a Dask sweep: exit 130 with no traceback, every stored
    cell whole, and the rerun computes exactly the cells that are missing and rewrites
    none of the others.

    Nothing here depends on timing: the signal is sent once 20 cells are stored (so
    the SIGTERM handler is installed) while the cluster's workers are stopped (SIGSTOP,
    so the sweep cannot finish first however the machine is loaded), and they go on
    (SIGCONT) once it is sent. The waits only bound a hang, generously. (It once sent
    the signal after a fixed 60 s whatever the sweep had done, and allowed the rerun
    120 s: both could fail on a loaded machine.)"""
    pytest.importorskip("distributed", reason="dask.distributed is not installed "
                        "(pip install 'mmcore-sim[dask]')")
    import signal
    import subprocess
    import time

    store = tmp_path / "s"
    argv = [sys.executable, "-m", "mmcore.cli", "sweep", "forking-server", "--param",
            "pages=" + ",".join(map(str, range(1, 11))), "--param", "children=1,2",
            "--no-plot", "--json", "--store", str(store), "--executor", "dask"]
    total = 20 * len(valid_configurations())
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        hang = time.monotonic() + 600
        while _cells_stored(store) < 20 and proc.poll() is None:
            assert time.monotonic() < hang, "no 20 cells in 600 s"
            time.sleep(0.01)
        assert proc.poll() is None, "the sweep ended before 20 cells were stored"
        workers = _descendants(proc.pid)
        assert workers, "no worker processes found"
        for pid in workers:
            os.kill(pid, signal.SIGSTOP)
        try:
            stored = _cells_stored(store)
            assert stored < total, "the sweep finished before it could be interrupted"
            proc.send_signal(signal.SIGTERM)
        finally:
            for pid in workers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
        _, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and b"Traceback" not in err, err
    kept = {p.name: p.stat().st_ino for p in (store / "cells").iterdir()}
    assert not [n for n in kept if n.startswith(".")]
    assert stored <= len(kept) < total
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert f"{total - len(kept)} run, {len(kept)} from the store".encode() in err
    assert {n: (store / "cells" / n).stat().st_ino for n in kept} == kept
