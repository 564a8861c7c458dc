"""Broken plugins are isolated, named and survivable (issue 8, item 2).

A plugin that raises in a hook, loops, fails in its constructor, fails to import or reuses
a shipped plugin's name costs only its own configuration: the error names the plugin and
the hook, ``mmsim compare`` still prints every healthy row and exits 1, and the rest of
mmcore keeps working. Faulty plugins are classes defined here, or a distribution written
to a temporary directory on ``sys.path`` (a ``.dist-info`` with ``entry_points.txt``, as
pip would install it).
"""

from __future__ import annotations

import json
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from mmcore_plugins.anon_vma_chain import AnonVmaChainScheme
from mmcore_plugins.pte_chains import PteChains

from mmcore import (
    MAP_ANONYMOUS,
    MAP_PRIVATE,
    PROT_READ,
    PROT_WRITE,
    ConfigError,
    Machine,
    MachineBroken,
    PluginError,
    PluginInfo,
    hookimpl,
)
from mmcore.budget import time_budget
from mmcore.cli import main
from mmcore.errors import RunTimeout
from mmcore.experiments.isolation import RunFailure, run_guarded
from mmcore.experiments.reproduce import CLAIMS as REPRODUCE_CELL_CLAIMS
from mmcore.experiments.results import Result
from mmcore.plugins import PluginLoadWarning, discover, installed_plugins, resolve

pytest_plugins = ["pytester"]

RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS
PAGE = 4096
SMALL = ["--param", "pages=8", "--param", "children=2", "--no-plot"]


def _info(name: str, base: type = PteChains) -> PluginInfo:
    return PluginInfo(name=name, kind="rmap", summary="faulty on purpose",
                      structs=base.info.structs)  # type: ignore[attr-defined]


class RaisesInWalk(PteChains):
    """Raises from a helper called by its rmap_walk (the hook is still the one named)."""

    info: ClassVar[PluginInfo] = _info("raises_in_walk")

    @hookimpl
    def rmap_walk(self, page: Any, cost: Any) -> Iterator[Any]:
        yield from self._helper()

    def _helper(self) -> Iterator[Any]:
        raise RuntimeError("boom")
        yield  # a generator, like a real walk


class InheritsWalk(RaisesInWalk):
    """Shares RaisesInWalk's hook code object: blame must name this plugin, not that."""

    info: ClassVar[PluginInfo] = _info("inherits_walk")


class PrepareReturnsNone(AnonVmaChainScheme):
    """Returns the wrong thing from rmap_anon_prepare (None, not an anon_vma)."""

    info: ClassVar[PluginInfo] = _info("prepare_returns_none", AnonVmaChainScheme)

    @hookimpl
    def rmap_anon_prepare(self, vma: Any) -> Any:
        return None


class RaisesInMmInit(PteChains):
    """Raises when a process is spawned (a hook spawn() calls outside any syscall)."""

    info: ClassVar[PluginInfo] = _info("raises_in_mm_init")

    @hookimpl
    def rmap_mm_init(self, mm: Any, parent: Any) -> None:
        raise KeyError("no mm for you")


class RaisesInInit(PteChains):
    """Its constructor raises."""

    info: ClassVar[PluginInfo] = _info("raises_in_init")

    def __init__(self, machine: Machine) -> None:
        raise ValueError("cannot start")


class LoopsInWalk(PteChains):
    """Never returns from rmap_walk."""

    info: ClassVar[PluginInfo] = _info("loops_in_walk")

    @hookimpl
    def rmap_walk(self, page: Any, cost: Any) -> Iterator[Any]:
        while True:
            pass
        yield


def _mapped_page(m: Machine) -> int:
    p = m.spawn()
    a = p.mmap(0, PAGE, RW, ANON)
    p.write(a, b"x")
    return p.pagemap(a).pfn


# --- attribution -------------------------------------------------------------------------


def test_machine_broken_names_the_plugin_and_the_hook() -> None:
    """The message and the ``plugin``/``hook`` attributes say who raised, and where."""
    m = Machine(rmap=RaisesInWalk)
    pfn = _mapped_page(m)
    with pytest.raises(MachineBroken) as info:
        m.rmap_walk(pfn)
    assert str(info.value) == ("plugin 'raises_in_walk' raised in hook 'rmap_walk': "
                               "RuntimeError: boom")
    assert (info.value.plugin, info.value.hook) == ("raises_in_walk", "rmap_walk")
    with pytest.raises(MachineBroken) as again:  # every later operation says the same
        m.spawn()
    assert (again.value.plugin, again.value.hook) == ("raises_in_walk", "rmap_walk")
    assert "machine is broken: plugin 'raises_in_walk'" in str(again.value)


def test_an_inherited_hook_is_blamed_on_the_plugin_running_it() -> None:
    """Two plugins sharing one hook function: the frame's ``self`` tells them apart."""
    m = Machine(rmap=InheritsWalk)
    with pytest.raises(MachineBroken) as info:
        m.rmap_walk(_mapped_page(m))
    assert info.value.plugin == "inherits_walk"


def test_a_wrong_return_value_is_blamed_on_the_hook_that_returned_it() -> None:
    """rmap_anon_prepare returning None is caught by mmcore and blamed on the scheme."""
    m = Machine(rmap=PrepareReturnsNone)
    p = m.spawn()
    a = p.mmap(0, PAGE, RW, ANON)
    with pytest.raises(MachineBroken) as info:
        p.write(a, b"x")
    assert (info.value.plugin, info.value.hook) == ("prepare_returns_none",
                                                    "rmap_anon_prepare")


def test_a_hook_raising_in_spawn_marks_the_machine_broken() -> None:
    """spawn() runs rmap_mm_init as an operation: a raise there is a MachineBroken too."""
    m = Machine(rmap=RaisesInMmInit)
    with pytest.raises(MachineBroken) as info:
        m.spawn()
    assert (info.value.plugin, info.value.hook) == ("raises_in_mm_init", "rmap_mm_init")
    assert m.broken is not None


def test_a_core_failure_names_no_plugin() -> None:
    """A check mmcore makes on what a plugin left behind has no plugin frame to blame."""

    class Leaky(PteChains):
        info: ClassVar[PluginInfo] = _info("leaky")

        @hookimpl
        def rmap_page_remove(self, page: Any, vma: Any, address: int) -> None:
            """Forget to drop the entry."""

    m = Machine(rmap=Leaky)
    p = m.spawn()
    a = p.mmap(0, PAGE, RW, ANON)
    p.write(a, b"x")
    with pytest.raises(MachineBroken, match=r"^machine marked broken: PluginError") as info:
        p.munmap(a, PAGE)
    assert (info.value.plugin, info.value.hook) == (None, None)


def test_a_constructor_that_raises_is_named() -> None:
    """PluginError carries the plugin and ``__init__`` as the hook."""
    with pytest.raises(PluginError, match=r"'raises_in_init' .* failed to start: "
                                          r"ValueError: cannot start") as info:
        Machine(rmap=RaisesInInit)
    assert (info.value.plugin, info.value.hook) == ("raises_in_init", "__init__")


def test_a_time_budget_interrupts_a_looping_hook_and_names_it() -> None:
    """time_budget raises RunTimeout inside the loop; the machine blames the hook."""
    m = Machine(rmap=LoopsInWalk)
    pfn = _mapped_page(m)
    with pytest.raises(MachineBroken) as info, time_budget(0.2):
        m.rmap_walk(pfn)
    assert (info.value.plugin, info.value.hook) == ("loops_in_walk", "rmap_walk")
    assert isinstance(info.value.__cause__, RunTimeout)


def test_a_time_budget_not_reached_changes_nothing() -> None:
    """Within budget the body's result stands and no alarm is left armed."""
    import signal

    with time_budget(5):
        m = Machine(rmap="pte_chains")
        _mapped_page(m)
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


# --- one configuration at a time ----------------------------------------------------------


def _spec(rmap: str | type) -> dict[str, Any]:
    return {"workload": "forking-server", "params": {"pages": 8, "children": 2},
            "rmap": rmap}


def test_run_guarded_turns_a_broken_plugin_into_a_failure() -> None:
    """A hook that raises gives a RunFailure naming plugin and hook, not an exception."""
    got = run_guarded("raises_in_walk", _spec(RaisesInWalk))
    assert isinstance(got, RunFailure)
    assert (got.status, got.plugin, got.hook, got.reason) == (
        "broken", "raises_in_walk", "rmap_walk", "RuntimeError: boom")
    assert got.distribution is None  # a class passed in-process is not installed
    healthy = run_guarded("pte_chains", _spec("pte_chains"))
    assert isinstance(healthy, Result) and healthy.derived.walks > 0


def test_run_guarded_with_a_timeout_reports_the_looping_hook() -> None:
    """In a child process the budget interrupts the loop, so the hook is still named."""
    got = run_guarded("loops_in_walk", _spec(LoopsInWalk), timeout=0.5)
    assert isinstance(got, RunFailure)
    assert (got.status, got.plugin, got.hook) == ("timed out", "loops_in_walk",
                                                   "rmap_walk")


class SwallowsEverything(PteChains):
    """Loops and catches every Exception, the budget's too: only a kill stops it."""

    info: ClassVar[PluginInfo] = _info("swallows_everything")

    @hookimpl
    def rmap_walk(self, page: Any, cost: Any) -> Iterator[Any]:
        while True:
            try:
                while True:
                    pass
            except Exception:  # the bug this plugin models
                continue
        yield


def test_run_guarded_kills_a_run_that_ignores_its_budget(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """Past the budget and the grace period the child is killed: timed out, not hung."""
    from mmcore.experiments import isolation

    monkeypatch.setattr(isolation, "GRACE_S", 0.3)
    got = run_guarded("swallows_everything", _spec(SwallowsEverything), timeout=0.3)
    assert isinstance(got, RunFailure)
    assert got.status == "timed out" and "killed" in got.reason


# --- installed plugins: a distribution on sys.path ----------------------------------------

BROKEN_DIST = '''
from typing import ClassVar
from mmcore import PluginInfo, hookimpl
from mmcore_plugins.pte_chains import PteChains

def _info(name, summary):
    return PluginInfo(name=name, kind="rmap", summary=summary, structs=("pte_chain",))

class Boom(PteChains):
    info: ClassVar[PluginInfo] = _info("boom", "raises in rmap_walk")
    @hookimpl
    def rmap_walk(self, page, cost):
        raise RuntimeError("boom")

class Loopy(PteChains):
    info: ClassVar[PluginInfo] = _info("loopy", "loops in rmap_walk")
    @hookimpl
    def rmap_walk(self, page, cost):
        while True:
            pass

class BadInit(PteChains):
    info: ClassVar[PluginInfo] = _info("badinit", "its constructor raises")
    def __init__(self, machine):
        raise ValueError("no constructor for you")

class Twin(PteChains):
    info: ClassVar[PluginInfo] = _info("anon_vma", "reuses a shipped plugin's name")

class Shared(PteChains):
    info: ClassVar[PluginInfo] = _info("shared", "a name two third parties use")
'''


def _install(site: Path, dist: str, module: str, source: str, entry_points: str) -> None:
    """Write ``module`` and a ``dist``-0.3.dist-info registering ``entry_points``."""
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist}-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text("[mmcore]\n" + textwrap.dedent(entry_points))


@pytest.fixture
def broken_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Two third-party distributions: ``brokenrmap`` (a raising, a looping, a
    constructor-raising plugin, one reusing ``anon_vma``, one that fails to import, one
    named ``shared``) and ``otherrmap`` (another ``shared``)."""
    _install(tmp_path, "brokenrmap", "brokenrmap_mod", BROKEN_DIST, """\
        boom = brokenrmap_mod:Boom
        loopy = brokenrmap_mod:Loopy
        badinit = brokenrmap_mod:BadInit
        anon_vma = brokenrmap_mod:Twin
        shared = brokenrmap_mod:Shared
        missing = brokenrmap_nosuch:X
        """)
    _install(tmp_path, "otherrmap", "otherrmap_mod",
             "from brokenrmap_mod import Shared\nclass Shared2(Shared):\n    pass\n",
             "shared = otherrmap_mod:Shared2\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    discover.cache_clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginLoadWarning)
        yield tmp_path
    discover.cache_clear()


@pytest.mark.usefixtures("broken_dist")
def test_an_installed_plugin_is_named_with_its_distribution() -> None:
    """The message of an installed plugin's failure says which distribution it came from;
    the ``plugin`` attribute stays the bare name."""
    m = Machine(rmap="boom")
    with pytest.raises(MachineBroken) as info:
        m.rmap_walk(_mapped_page(m))
    assert str(info.value) == ("plugin 'boom' (brokenrmap 0.3) raised in hook "
                               "'rmap_walk': RuntimeError: boom")
    assert info.value.plugin == "boom"


@pytest.mark.usefixtures("broken_dist")
def test_a_name_clash_leaves_the_shipped_plugin_and_every_other_working() -> None:
    """The shipped anon_vma keeps its name; the third-party twin is reachable as
    ``brokenrmap:anon_vma``; every other scheme builds as before."""
    from mmcore_plugins.anon_vma import AnonVmaScheme

    assert resolve("anon_vma", "rmap") is AnonVmaScheme
    assert resolve("brokenrmap:anon_vma", "rmap").__name__ == "Twin"
    assert Machine(rmap="pte_chains").rmap_name == "pte_chains"
    twin = next(e for e in discover() if e.distribution == "brokenrmap"
                and e.name == "anon_vma")
    assert twin.status == "clash"
    assert "brokenrmap 0.3" in twin.problem and "mmcore-sim" in twin.problem


@pytest.mark.usefixtures("broken_dist")
def test_a_clash_between_third_parties_is_an_error_only_when_asked_for() -> None:
    """Neither ``shared`` keeps the bare name: asking for it names both qualified ones."""
    with pytest.raises(ConfigError, match=r"ambiguous.*'brokenrmap:shared'.*"
                                          r"'otherrmap:shared'"):
        Machine(rmap="shared")
    assert Machine(rmap="otherrmap:shared").rmap_name == "shared"
    assert "shared" not in installed_plugins()


def test_an_entry_point_that_fails_to_load_is_one_warning_line(broken_dist: Path) -> None:
    """One PluginLoadWarning per unusable plugin, once, naming entry point and
    distribution; the CLI prints each as one ``mmsim: warning:`` line."""
    discover.cache_clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        discover()
        discover()
    texts = [str(w.message) for w in caught if w.category is PluginLoadWarning]
    missing = [t for t in texts if "missing = brokenrmap_nosuch:X" in t]
    assert len(missing) == 1 and "of brokenrmap 0.3 is broken: failed to load: " \
        "ModuleNotFoundError" in missing[0]
    assert all("\n" not in t for t in texts)
    assert next(e for e in discover() if e.name == "missing").status == "broken"


def _count_plugin_warnings(results: Any) -> None:
    """In a multiprocessing child: rediscover, and report how many warnings it issued."""
    discover.cache_clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        discover()
    results.put(sum(w.category is PluginLoadWarning for w in caught))


@pytest.mark.usefixtures("broken_dist")
def test_a_worker_process_does_not_repeat_the_warnings() -> None:
    """A pool worker (sweep --jobs, compare --timeout) rediscovering the plugins stays
    quiet: its parent has already warned, so each warning appears once per command."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    child = ctx.Process(target=_count_plugin_warnings, args=(results,))
    child.start()
    child.join(60)
    assert results.get(timeout=10) == 0


def test_mmsim_plugins_shows_broken_and_clashing_plugins(
        broken_dist: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``mmsim plugins --json`` lists every plugin with its status; warnings are one line
    each on stderr, never a traceback."""
    discover.cache_clear()
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        assert main(["plugins", "--json"]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    status = {(p["name"], p["distribution"]): p["status"] for p in doc["plugins"]}
    assert status[("anon_vma", "mmcore-sim")] == "ok"
    assert status[("anon_vma", "brokenrmap")] == "clash"
    assert status[("missing", "brokenrmap")] == "broken"
    lines = err.splitlines()
    assert lines and all(ln.startswith("mmsim: warning: mmcore plugin entry point ")
                         for ln in lines)
    assert sum("brokenrmap_nosuch" in ln for ln in lines) == 1


@pytest.mark.usefixtures("broken_dist")
def test_compare_prints_every_healthy_row_and_marks_the_broken_ones(
        capsys: pytest.CaptureFixture[str]) -> None:
    """The issue's failure: a raising plugin and a raising constructor no longer abort
    the comparison; healthy rows are measured, broken rows name plugin and hook, exit 1."""
    status = main(["compare", "forking-server", *SMALL,
                   "--only", "pte_chains,boom,badinit,anon_vma_chain"])
    out, err = capsys.readouterr()
    assert status == 1
    assert "Traceback" not in out + err
    for healthy in ("pte_chains", "anon_vma_chain"):
        assert healthy in out
    assert "failed configurations" in out
    assert "boom (brokenrmap 0.3)" in out and "rmap_walk" in out
    assert "badinit (brokenrmap 0.3)" in out and "__init__" in out
    assert err.splitlines()[-1].startswith("mmsim: error: 4 of 8 configurations failed")


@pytest.mark.usefixtures("broken_dist")
def test_compare_json_lists_the_failures(capsys: pytest.CaptureFixture[str]) -> None:
    """``--json`` carries the healthy results and a ``failures`` list."""
    status = main(["compare", "forking-server", *SMALL, "--json", "--only", "boom",
                   "--only", "pte_chains", "--exclude", "pte_chains+unshare,boom+unshare"])
    doc = json.loads(capsys.readouterr().out)
    assert status == 1
    assert doc["configurations"] == ["pte_chains"]
    assert doc["failures"] == [{"label": "boom", "status": "broken", "plugin": "boom",
                                "distribution": "brokenrmap 0.3", "hook": "rmap_walk",
                                "reason": "RuntimeError: boom"}]


@pytest.mark.usefixtures("broken_dist")
def test_compare_timeout_marks_a_looping_plugin_timed_out(
        capsys: pytest.CaptureFixture[str]) -> None:
    """``--timeout``: the looping scheme is a timed-out row naming its hook."""
    status = main(["compare", "forking-server", *SMALL, "--json", "--timeout", "1",
                   "--only", "loopy,pte_chains", "--exclude", "loopy+unshare"])
    doc = json.loads(capsys.readouterr().out)
    assert status == 1
    assert doc["configurations"] == ["pte_chains", "pte_chains+unshare"]
    [failure] = doc["failures"]
    assert (failure["label"], failure["status"], failure["plugin"], failure["hook"]) == (
        "loopy", "timed out", "loopy", "rmap_walk")


def test_compare_selection_errors_are_usage_errors(capsys: pytest.CaptureFixture[str]
                                                    ) -> None:
    """An --only name that chooses nothing, or a selection that leaves nothing: exit 2."""
    assert main(["compare", "forking-server", *SMALL, "--only", "nosuch"]) == 2
    assert "no configuration is named 'nosuch'" in capsys.readouterr().err
    assert main(["compare", "forking-server", *SMALL, "--only", "pte_chains",
                 "--exclude", "pte_chains"]) == 2
    assert main(["compare", "forking-server", *SMALL, "--timeout", "0"]) == 2


def test_compare_axis_honours_only(capsys: pytest.CaptureFixture[str]) -> None:
    """On ``--axis reclaim`` the names are the reclaim plugins."""
    assert main(["compare", "forking-server", *SMALL, "--axis", "reclaim", "--json",
                 "--only", "clock"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["config"]["reclaim"] for r in doc["results"]] == ["clock"]
    assert doc["failures"] == []


# --- the conformance kit ------------------------------------------------------------------


@pytest.mark.slow  # ~18 s: the failure is shrunk, and every hanging replay costs 0.5 s
def test_the_kit_reports_a_hanging_hook_with_seed_and_step(pytester: pytest.Pytester
                                                           ) -> None:
    """``--mmcore-timeout``: a scheme whose rmap_page_dup never returns fails the seeded
    test, naming plugin, hook, op and seed, instead of hanging the session."""
    pytester.makepyfile(test_hangs="""
        from typing import ClassVar
        from mmcore import PluginInfo, hookimpl
        from mmcore.testing import RmapConformance
        from mmcore_plugins.pte_chains import PteChains

        class Hangs(PteChains):
            info: ClassVar[PluginInfo] = PluginInfo(
                name="hangs", kind="rmap", summary="loops on fork", structs=("pte_chain",))

            @hookimpl
            def rmap_page_dup(self, page, vma, address):
                while True:
                    pass

        class TestHangs(RmapConformance):
            rmap = Hangs
    """)
    result = pytester.runpytest("-p", "no:cacheprovider", "-k", "seeded_random_walk",
                                "--mmcore-timeout", "0.5")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*[[]seed 1[]] op #* marked the machine broken: plugin "
                                 "'hangs' raised in hook 'rmap_page_dup': RunTimeout*"])


def test_the_kit_rejects_a_negative_timeout(pytester: pytest.Pytester) -> None:
    """A budget below 0 is a usage error, not a suite that never stops anything."""
    result = pytester.runpytest("--mmcore-timeout", "-1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_a_walk_that_yields_the_wrong_thing_is_blamed_on_it() -> None:
    """rmap_walk returning None (not an iterator of (vma, address)) names the scheme and
    the hook, and says what a walk must yield."""

    class WalkReturnsNone(PteChains):
        info: ClassVar[PluginInfo] = _info("walk_returns_none")

        @hookimpl
        def rmap_walk(self, page: Any, cost: Any) -> Any:
            return None

    m = Machine(rmap=WalkReturnsNone)
    with pytest.raises(MachineBroken, match=r"must yield \(vma, address\) pairs") as info:
        m.rmap_walk(_mapped_page(m))
    assert (info.value.plugin, info.value.hook) == ("walk_returns_none", "rmap_walk")


@pytest.mark.slow  # a fresh interpreter running the whole matrix, with a 2 s hang in it
def test_mmsim_compare_with_a_broken_distribution_installed(broken_dist: Path) -> None:
    """The issue's acceptance run, as a user types it: with a distribution holding a
    raising, a looping and a constructor-raising plugin installed, ``mmsim compare
    forking-server --timeout 2`` prints the whole table, marks those rows broken or timed
    out with plugin and hook, warns once per unusable entry point, and exits 1."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(broken_dist), "COLUMNS": "200"}
    done = subprocess.run([sys.executable, "-m", "mmcore.cli", "compare", "forking-server",
                           *SMALL, "--timeout", "2", "--exclude", "loopy+unshare"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    table, _, details = done.stdout.partition("failed configurations")

    def rows(text: str) -> dict[str, list[str]]:
        return {ln.split()[0]: ln.split()[1:] for ln in text.splitlines() if ln.strip()}

    measured, failed = rows(table), rows(details)
    for healthy in ("anon_vma_chain", "pte_chains", "brokenrmap:anon_vma"):
        assert healthy in measured and healthy not in failed
    assert measured["loopy"][:2] == ["timed", "out"] and "rmap_walk" in failed["loopy"]
    assert measured["boom"][0] == "broken" and "rmap_walk" in failed["boom"]
    assert measured["badinit"][0] == "broken" and "__init__" in failed["badinit"]
    warned = [ln for ln in done.stderr.splitlines() if ln.startswith("mmsim: warning:")]
    assert len(warned) == 4  # missing (broken); the anon_vma twin, both `shared` (clash)
    assert sum("brokenrmap_nosuch:X" in ln for ln in warned) == 1


# --- sweep, reproduce and trace replay: the same isolation ---------------------------------

SWEEP = ["sweep", "forking-server", "--param", "pages=4,8", "--param", "children=2",
         "--no-plot"]


@pytest.mark.usefixtures("broken_dist")
def test_sweep_finishes_every_healthy_cell_and_names_the_broken_ones(
        capsys: pytest.CaptureFixture[str]) -> None:
    """A raising, a looping (past ``--timeout``) and a constructor-raising plugin cost only
    their own cells: the JSON has the healthy results and one failure per broken cell,
    naming plugin, distribution and hook; exit 1."""
    status = main([*SWEEP, "--json", "--timeout", "1", "--only", "boom,loopy,badinit",
                   "--only", "pte_chains", "--exclude", "boom+unshare,loopy+unshare,"
                   "badinit+unshare,pte_chains+unshare"])
    out, err = capsys.readouterr()
    assert status == 1
    doc = json.loads(out)
    assert [(r["config"]["rmap"], r["config"]["params"]["pages"])
            for r in doc["results"]] == [("pte_chains", 4), ("pte_chains", 8)]
    got = {(f["label"], f["cell"]["params"]["pages"]): f["failure"] for f in doc["failures"]}
    assert set(got) == {(p, n) for p in ("boom", "loopy", "badinit") for n in (4, 8)}
    assert {(label, f["kind"], f["plugin"], f["distribution"], f["hook"])
            for (label, _), f in got.items()} == {
        ("boom", "broken", "boom", "brokenrmap 0.3", "rmap_walk"),
        ("loopy", "timeout", "loopy", "brokenrmap 0.3", "rmap_walk"),
        ("badinit", "broken", "badinit", "brokenrmap 0.3", "__init__")}
    assert "Traceback" not in err
    assert err.splitlines()[-1].endswith("8 cells, 8 run, 0 from the store, 6 failed")


@pytest.mark.usefixtures("broken_dist")
def test_sweep_tables_mark_the_broken_rows_and_a_pool_isolates_too(
        capsys: pytest.CaptureFixture[str]) -> None:
    """On a process pool too: each grid point's table has a red row per broken cell and
    a table of why; a looping plugin is stopped by the budget inside the worker."""
    status = main([*SWEEP, "--jobs", "2", "--timeout", "1", "--only", "loopy,boom",
                   "--only", "anon_vma", "--exclude", "loopy+unshare,boom+unshare,"
                   "anon_vma+unshare"])
    out, _ = capsys.readouterr()
    assert status == 1
    assert out.count("failed configurations") == 2  # one per grid point
    lines = [ln.split() for ln in out.splitlines() if ln.strip()]
    rows = {name: [ln for ln in lines if ln[0] == name] for name in ("loopy", "boom")}
    # per grid point: a red row without figures, and a row of why
    assert [ln[:4] for ln in rows["loopy"]] == [["loopy", "timed", "out", "-"],
                                                ["loopy", "timed", "out", "loopy"]] * 2
    assert [ln[:3] for ln in rows["boom"]] == [["boom", "broken", "-"],
                                               ["boom", "broken", "boom"]] * 2
    assert all("rmap_walk" in ln for ln in rows["loopy"][1::2] + rows["boom"][1::2])
    assert sum(ln[0] == "anon_vma" and ln[1] != "broken" for ln in lines) == 2


def _broken_rows(report: str) -> dict[str, list[str]]:
    """``{label: [status per claim table]}`` of the rows without figures."""
    out: dict[str, list[str]] = {}
    for line in report.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| ") and len(cells) > 2 and cells[1].startswith("**") \
                and not any(cells[2:]):
            out.setdefault(cells[0], []).append(cells[1].strip("*"))
    return out


@pytest.mark.usefixtures("broken_dist")
def test_reproduce_measures_the_healthy_schemes_and_marks_the_broken_ones(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every claim's table has a row without figures for each broken configuration, and a
    not-measured check naming the plugin and hook; the healthy schemes are measured as
    usual and the exit status is 1. (The budget is generous: healthy runs never reach
    it, however loaded the machine.)"""
    status = main(["reproduce", "--out", str(tmp_path), "--json", "--timeout", "60",
                   "--only", "boom,badinit,anon_vma,pte_chains", "--exclude",
                   "boom+unshare,badinit+unshare,anon_vma+unshare,pte_chains+unshare",
                   "--claims", ",".join(REPRODUCE_CELL_CLAIMS)])
    out, err = capsys.readouterr()
    assert status == 1
    doc = json.loads(out)
    assert {(f["label"], f["status"], f["plugin"], f["hook"]) for f in doc["failures"]
            if "/" not in f["label"]} == {
        ("boom", "broken", "boom", "rmap_walk"), ("badinit", "broken", "badinit", "__init__")}
    report = (tmp_path / "results.md").read_text()
    # part one's claims: the mapcount ones study the designs on one scheme, not the matrix
    claims = len(doc["claims"])
    assert claims == len(REPRODUCE_CELL_CLAIMS)
    rows = _broken_rows(report)
    assert {k: v for k, v in rows.items() if "/" not in k} == {
        "boom": ["broken"] * claims, "badinit": ["broken"] * claims}
    # the trace study's matrix has the file rmap and reclaim plugins too
    assert rows["boom/i_mmap_list/clock"] == ["broken"]
    assert report.count("- boom has no figures: broken in plugin 'boom' (brokenrmap 0.3), "
                        "hook 'rmap_walk': RuntimeError: boom — *not measured*") == claims
    # the healthy schemes are measured: anon_vma's 24-byte check is decided
    assert "anon_vma, one anon_vma per vma:" in report
    assert "| anon_vma/i_mmap_list | " in report
    assert err.splitlines()[-1].startswith("mmsim: error: 8 configurations have no "
                                           "figures: badinit (broken in plugin 'badinit'")
    assert "Traceback" not in err


@pytest.mark.usefixtures("broken_dist")
def test_reproduce_reports_a_looping_scheme_as_timed_out(tmp_path: Path) -> None:
    """Past ``timeout`` a claim's run of a looping scheme is a ``timed out`` failure
    naming the looping hook, in every claim."""
    from mmcore.experiments.reproduce import reproduce

    _, claims = reproduce(tmp_path, [("loopy", None)], timeout=0.3, traces=[MMTOY],
                          claims=list(REPRODUCE_CELL_CLAIMS))
    assert [c.key for c in claims] == list(REPRODUCE_CELL_CLAIMS)
    assert all([(f.label, f.status, f.plugin, f.hook) for f in c.failures if "/" not in
                f.label] == [("loopy", "timed out", "loopy", "rmap_walk")] for c in claims)
    assert all(c.verdict == "not measured" for c in claims)


TRACES = sorted((Path(__file__).parent.parent / "examples" / "traces").glob("*.jsonl"))
MMTOY = next(p for p in TRACES if p.name == "mmtoy.jsonl")


@pytest.mark.usefixtures("broken_dist")
def test_trace_replay_finishes_every_healthy_replay_and_names_the_broken_ones(
        capsys: pytest.CaptureFixture[str]) -> None:
    """``trace replay TRACE... --rmap all``: every trace on every configuration; a
    raising, looping or constructor-raising plugin is a failed replay naming plugin and
    hook, the healthy ones are reported in full, and the exit status is 1."""
    status = main(["trace", "replay", str(MMTOY), "--rmap", "all", "--check-walks", "4",
                   "--timeout", "1", "--json", "--only", "boom,loopy,badinit,anon_vma",
                   "--exclude", "boom+unshare,loopy+unshare,badinit+unshare"])
    out, err = capsys.readouterr()
    assert status == 1
    doc = json.loads(out)
    assert [(r["rmap"], r["mremap_policy"]) for r in doc["replays"]] == [
        ("anon_vma", None), ("anon_vma", "unshare")]
    assert all(r["walks_checked"] > 0 and r["walk_mismatches"] == [] for r in doc["replays"])
    assert {(f["label"], f["status"], f["plugin"], f["distribution"], f["hook"])
            for f in doc["failures"]} == {
        ("mmtoy.jsonl on boom", "broken", "boom", "brokenrmap 0.3", "rmap_walk"),
        ("mmtoy.jsonl on loopy", "timed out", "loopy", "brokenrmap 0.3", "rmap_walk"),
        ("mmtoy.jsonl on badinit", "broken", "badinit", "brokenrmap 0.3", "__init__")}
    assert err.splitlines()[-1].startswith("mmsim: error: 3 of 5 replays failed")
    assert "Traceback" not in err


@pytest.mark.usefixtures("broken_dist")
def test_trace_replay_of_one_broken_configuration_is_a_failed_row(
        capsys: pytest.CaptureFixture[str]) -> None:
    """One trace on one broken scheme: no partial report, a row naming plugin and hook
    (it was a summary ending STOPPED, exit 1, with the plugin only in the message)."""
    assert main(["trace", "replay", str(MMTOY), "--rmap", "boom", "--check-walks",
                 "2"]) == 1
    out, err = capsys.readouterr()
    [row] = [ln.split() for ln in out.splitlines() if ln.startswith(" mmtoy.jsonl on")]
    assert row[:8] == ["mmtoy.jsonl", "on", "boom", "broken", "boom", "(brokenrmap",
                       "0.3)", "rmap_walk"]
    assert err == "mmsim: error: 1 of 1 replays failed: mmtoy.jsonl on boom (broken)\n"


# --- run and rerun: one cell each, the same isolation ---------------------------------------

RUN = ["forking-server", "--param", "pages=8", "--param", "children=2"]


@pytest.mark.usefixtures("broken_dist")
def test_run_of_a_broken_or_looping_scheme_is_a_failed_row_naming_plugin_and_hook(
        capsys: pytest.CaptureFixture[str]) -> None:
    """``mmsim run`` runs its configuration as a cell: a raising hook is a failed row
    (in ``--json``, a ``failures`` list) naming plugin and hook, a looping one past
    ``--timeout`` a timed-out one, and the exit status is 1 (it was a MachineBroken
    message, and a loop never ended)."""
    assert main(["run", *RUN, "--rmap", "boom"]) == 1
    out, err = capsys.readouterr()
    assert "failed configurations" in out and "boom (brokenrmap 0.3)" in out
    assert err == ("mmsim: error: the run failed: boom broken in plugin 'boom' "
                   "(brokenrmap 0.3), hook 'rmap_walk': RuntimeError: boom\n")
    assert main(["run", *RUN, "--rmap", "loopy", "--timeout", "1", "--json"]) == 1
    [failure] = json.loads(capsys.readouterr().out)["failures"]
    assert (failure["label"], failure["status"], failure["plugin"], failure["hook"]) == (
        "loopy", "timed out", "loopy", "rmap_walk")


@pytest.mark.usefixtures("broken_dist")
def test_rerun_of_a_result_whose_plugin_now_fails_names_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``mmsim rerun`` runs the recorded configuration as a cell: a scheme that raises
    is a failed row naming plugin and hook, exit 1, not a traceback or a diff."""
    assert main(["run", *RUN, "--rmap", "pte_chains", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    doc["config"]["rmap"] = "boom"  # boom is pte_chains with a walk that raises
    saved = tmp_path / "r.json"
    saved.write_text(json.dumps(doc))
    assert main(["rerun", str(saved), "--json"]) == 1
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert report["identical"] is False and report["diff"] == []
    assert [(f["plugin"], f["hook"]) for f in report["failures"]] == [("boom", "rmap_walk")]
    assert err.startswith("mmsim: error: the run failed: boom broken in plugin 'boom'")
