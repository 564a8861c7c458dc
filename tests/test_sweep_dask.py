"""Sweeps on dask.distributed: a LocalCluster gives the local executor's results."""

from __future__ import annotations

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


@pytest.mark.slow  # starts a LocalCluster: about 6 s
def test_a_sigterm_stops_a_dask_sweep_and_the_rerun_resumes(tmp_path: Path) -> None:
    pytest.importorskip("distributed", reason="dask.distributed is not installed "
                        "(pip install 'mmcore-sim[dask]')")
    import signal
    import subprocess
    import time

    store = tmp_path / "s"
    argv = [sys.executable, "-m", "mmcore.cli", "sweep", "forking-server", "--param",
            "pages=" + ",".join(map(str, range(1, 11))), "--param", "children=1,2",
            "--no-plot", "--json", "--store", str(store), "--executor", "dask"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while len(list((store / "cells").glob("[!.]*.json"))) < 20 and proc.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the sweep ended before it could be interrupted"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and b"Traceback" not in err, err
    kept = {p.name: p.stat().st_ino for p in (store / "cells").iterdir()}
    assert not [n for n in kept if n.startswith(".")]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, err = proc.communicate(timeout=120)
    total = 20 * len(valid_configurations())
    assert proc.returncode == 0, err
    assert f"{total - len(kept)} run, {len(kept)} from the store".encode() in err
    assert {n: (store / "cells" / n).stat().st_ino for n in kept} == kept
