"""``mmsim lab grade`` in kit mode (the conformance kit, the default) on rmap schemes whose
walk never ends: through the real grader path (a grading child per submission), every
kit test gets its own time limit, the tests that never meet the looping walk keep their
points, and each one that does says where it was stuck.

Two bugs stood in the way: a nested time budget (the kit's per-op budget) postponed the
grader's shorter per-test alarm, and the kit's stateful teardown, run in a ``finally``
after that alarm, walked again and turned the TestTimeout into a failure of its own; the
submission then hung until the grader killed it, with 0 points.
"""

from __future__ import annotations

import csv
import re
import time
from pathlib import Path

import pytest

from mmcore.cli import main as mmsim

HEAD = '''from time import sleep
from typing import ClassVar
from mmcore import PluginInfo, hookimpl
from mmcore_plugins.anon_vma import AnonVmaScheme


class {name}(AnonVmaScheme):
    info: ClassVar[PluginInfo] = PluginInfo(
        name="{name}", kind="rmap", summary="a student's scheme",
        structs=AnonVmaScheme.info.structs)

    @hookimpl
    def rmap_walk(self, page, cost):
'''
#: Its walk never ends for a page in a vma whose pgoff is not its address (a vma mremap
#: moved, or a private file mapping): the kit's scenarios without one pass.
MOVED = HEAD.format(name="Moved") + '''\
        for vma, addr in AnonVmaScheme.rmap_walk(self, page, cost):
            while vma.pgoff != vma.start >> 12:
                pass
            yield vma, addr
'''
#: Its walk never ends at all: only "loads" (which does not walk) passes. It waits
#: instead of spinning: the grader's per-test ITIMER_REAL stops a sleep as it stops a
#: spin, and its 12 looping tests would otherwise burn 48 s of the suite's CPU (Moved's
#: walk spins, so a spinning student loop under the grader's RLIMIT_CPU stays covered).
FOREVER = HEAD.format(name="Forever") + '''        while True:
            sleep(1)
        yield from ()
'''
#: Its walk never ends for a page mapped more than once.
SHARED = HEAD.format(name="Shared") + '''        while page.mapcount > 1:
            pass
        yield from AnonVmaScheme.rmap_walk(self, page, cost)
'''
#: The kit's fixed scenarios (not hypothesis-generated) each of the two meets or not.
WITHOUT_A_MOVED_VMA = ("exit_orders", "fork_tree", "mapcount_design_on_hand_mapped_folios",
                       "mprotect_split_storm", "shared_anon_after_fork")
WITH_A_MOVED_VMA = ("file_mappings", "large_folios", "merge_after_fork", "mremap_after_fork",
                    "mremap_swapped_pages")


def items(report: str) -> dict[str, tuple[str, str]]:
    """A report's tests: name -> (verdict and points, the feedback's first line)."""
    found = re.findall(r"^(\w+)\.+ (OK  |FAIL) \((\d+/\d+)\)\n(?:    (.*)\n)?", report, re.M)
    return {name: (f"{verdict.strip()} {points}", feedback)
            for name, verdict, points, feedback in found}


#: The grader's per-test timeout for Moved: each of its 5 looping tests spins for it, so
#: it is short, yet under the kit's own per-op budget (a nested budget must not postpone
#: it) and 3x the slowest passing test (fork_tree, 1.2 s of CPU) for a loaded machine.
TEST_TIMEOUT_S = 4
#: Forever's: its 12 looping tests sleep through it, and its passing tests ("loads" and
#: the hand-mapped folios, which never walk) take about 0.7 s.
FOREVER_TIMEOUT_S = 2


def _grade(export: Path, out: Path, test_timeout: int) -> list[str]:
    return ["lab", "grade", str(export), "--out", str(out), "--timeout", "240",
            "--test-timeout", str(test_timeout), "--jobs", "1"]


def _stuck(scheme: str, timeout: int) -> str:
    return (f"TestTimeout: still running after {timeout} s in {scheme}.rmap_walk "
            f"({scheme.lower()}_1_2_scheme.py line 15) (does a walk or a loop never end?)")


@pytest.mark.slow  # Moved's 5 looping tests spin 4 s each; Forever's 12 sleep 2 s each
def test_kit_grades_a_looping_walk_test_by_test(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    import subprocess
    import sys

    from mmcore.testing.driver import OP_TIMEOUT_S

    assert TEST_TIMEOUT_S < OP_TIMEOUT_S
    for name, source in (("moved", MOVED), ("forever", FOREVER)):
        (tmp_path / name).mkdir()
        (tmp_path / name / f"{name}_1_2_scheme.py").write_text(source)
    # Forever is graded in a second mmsim, alongside: it mostly sleeps, so the two
    # together take about as long as Moved alone.
    forever_run = subprocess.Popen(
        [sys.executable, "-m", "mmcore.cli",
         *_grade(tmp_path / "forever", tmp_path / "grades-forever", FOREVER_TIMEOUT_S)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        status = mmsim(_grade(tmp_path / "moved", tmp_path / "grades", TEST_TIMEOUT_S))
    finally:
        forever_output = forever_run.communicate(timeout=240)[0]
    assert status == 0, capsys.readouterr()
    assert forever_run.returncode == 0, forever_output
    rows = {}
    for out in (tmp_path / "grades", tmp_path / "grades-forever"):
        with (out / "roster.csv").open(newline="") as fh:
            rows |= {row["student"]: row for row in csv.DictReader(fh)}

    moved = (tmp_path / "grades" / "reports" / "moved.txt").read_text()
    tests = items(moved)
    assert "checked by the conformance kit" in moved and len(tests) == 14, moved
    assert tests["loads"][0] == "OK 1/1"
    for name in WITHOUT_A_MOVED_VMA:
        assert tests[name][0] == "OK 2/2", moved
    for name in WITH_A_MOVED_VMA:
        assert tests[name] == ("FAIL 0/2", _stuck("Moved", TEST_TIMEOUT_S)), moved
    earned = sum(int(v.split()[1].split("/")[0]) for v, _ in tests.values())
    assert rows["moved"]["score"] == str(earned) and earned >= 9
    assert rows["moved"]["max_score"] == "27" and rows["moved"]["status"] == "timeout"
    assert "mremap_after_fork" in rows["moved"]["reason"]

    forever = (tmp_path / "grades-forever" / "reports" / "forever.txt").read_text()
    tests = items(forever)
    assert tests.pop("loads")[0] == "OK 1/1" and len(tests) == 13, forever
    # the mapcount test drives a design's hooks on hand-mapped folios: no walk
    assert tests.pop("mapcount_design_on_hand_mapped_folios")[0] == "OK 2/2", forever
    assert set(tests.values()) == {("FAIL 0/2", _stuck("Forever", FOREVER_TIMEOUT_S))}
    assert (rows["forever"]["score"], rows["forever"]["max_score"]) == ("3", "27")


def test_the_kits_stateful_teardown_does_not_swallow_the_graders_timeout() -> None:
    """Hypothesis calls the state machine's teardown in a ``finally``; after an op cut
    short by the grader's TestTimeout it must not exit every process (checking the walks
    after each exit), or the walk's own timeout replaces the TestTimeout with a kit
    failure and hypothesis goes on shrinking it (here: a walk that never ends for a
    shared page, met with the first fork)."""
    from mmcore_contrib.labs.limits import TestTimeout, time_limit

    from mmcore.testing.stateful import run_conformance
    ns: dict[str, object] = {}
    exec(SHARED, ns)
    start = time.monotonic()
    with pytest.raises(TestTimeout), time_limit(2):
        run_conformance(ns["Shared"])  # type: ignore[arg-type]
    assert time.monotonic() - start < 6
