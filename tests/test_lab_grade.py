"""``mmsim lab``: grading a whole class in child processes, one row per student.

The class below is what a teacher meets in a real export: correct and wrong answers, a
truncated JSON file, a file for another student's seed, rmap schemes that loop, ignore the
alarm, allocate without bound, exit, tamper with the grader, do not parse, plus a student
who handed in nothing and one who is not on the roster.
"""

from __future__ import annotations

import csv
import json
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mmcore_contrib.labs import classroom, worker
from mmcore_contrib.labs.classroom import Options, collect, read_roster, student_id
from mmcore_contrib.labs.exercises import make

from mmcore.cli import main as mmsim

SCHEME = '''
from typing import ClassVar
from mmcore import PluginInfo, hookimpl
from mmcore_plugins.anon_vma import AnonVmaScheme

class {name}(AnonVmaScheme):
    info: ClassVar[PluginInfo] = PluginInfo(
        name="{name}", kind="rmap", summary="a student's scheme",
        structs=AnonVmaScheme.info.structs)
{body}
'''
WALK = "    @hookimpl\n    def rmap_walk(self, page, cost):\n"
PLUGINS = {
    # A correct scheme: every quick check passes.
    "correct": SCHEME.format(name="Mine", body="    pass"),
    # Its walk never ends once a page is shared: the per-test alarm stops each test
    # after a fork, and the tests before (loads, fault) keep their points.
    "loops": SCHEME.format(name="Loops", body=WALK + "        while page.mapcount > 1:\n"
                           "            pass\n"
                           "        yield from AnonVmaScheme.rmap_walk(self, page, cost)"),
    # It swallows the alarm too: only the per-submission timeout (a kill) stops it.
    "stubborn": SCHEME.format(name="Stubborn", body=WALK + "        while True:\n"
                              "            try:\n                while True:\n"
                              "                    pass\n"
                              "            except BaseException:\n                pass\n"
                              "        yield from ()"),
    # It allocates without bound: RLIMIT_AS turns that into a MemoryError in the child.
    "hungry": SCHEME.format(name="Hungry", body=WALK + "        hoard = []\n"
                            "        while page.mapcount > 1:\n"
                            "            hoard.append(bytearray(64 << 20))\n"
                            "        yield from AnonVmaScheme.rmap_walk(self, page, cost)"),
    # It rewrites the grader's answer checking to pass everything, then exits at import:
    # neither may reach the grader or another student.
    "tamper": "import os\nimport mmcore_contrib.labs.grader as g\n"
              "g.check_answer = lambda q, given, reveal=False: g.Item(q.key, 99, 1)\n"
              "os._exit(3)\n",
    "syntax": "class Broken(:\n",
}


def answers(ex_name: str, seed: int, wrong: int = 0) -> dict[str, Any]:
    """A filled-in answer file for ``seed``, with the first ``wrong`` questions wrong."""
    ex = make(ex_name, seed)
    sub = ex.template()
    sub["answers"] = ex.answer_key()
    for q in ex.questions[:wrong]:
        sub["answers"][q.key] = "not it"
    return sub


def make_class(root: Path) -> tuple[Path, Path, dict[str, int]]:
    """Thirty files in a Canvas-style export directory and a roster; returns them and
    each answering student's expected score on ``cow`` (8 points)."""
    export = root / "export"
    export.mkdir()
    rows = [("student", "name", "seed")]
    expected: dict[str, int] = {}
    for n in range(20):
        sid, seed = f"s{n:02d}", 100 + n
        rows.append((sid, f"Student {n}", str(seed)))
        wrong = n % 4  # 0..3 wrong questions
        sub = answers("cow", seed, wrong)
        (export / f"{sid}_{1000 + n}_{2000 + n}_answers.json").write_text(json.dumps(sub))
        expected[sid] = make("cow", seed).max_points - sum(
            q.points for q in make("cow", seed).questions[:wrong])
    # A truncated file, a JSON that is no answer file, and a copy of s00's answers.
    rows += [("bad", "Bad JSON", "200"), ("odd", "Odd JSON", "201"),
             ("copy", "Copier", "202")]
    (export / "bad_1_2_answers.json").write_text(json.dumps(answers("cow", 200))[:-9])
    (export / "odd_1_2_answers.json").write_text("[1, 2, 3]")
    (export / "copy_1_2_answers.json").write_text(json.dumps(answers("cow", 100)))
    for sid, source in PLUGINS.items():
        rows.append((f"plugin-{sid}", f"Plugin {sid}", ""))
        (export / f"plugin-{sid}_1_2_scheme.py").write_text(source)
    # Not on the roster, and a roster student who handed in a .txt.
    (export / "late_1_2_answers.json").write_text(json.dumps(answers("cow", 5)))
    rows.append(("nothing", "Handed in a txt", "203"))
    (export / "nothing_1_2_answers.txt").write_text("I forgot")
    roster = root / "roster.csv"
    with roster.open("w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    return export, roster, expected


def read_rows(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as fh:
        return {row["student"]: row for row in csv.DictReader(fh)}


@pytest.mark.slow  # thirty child processes, two timeouts: about 25 s on two CPUs
def test_grades_a_class_of_thirty_without_hanging(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]
                                                  ) -> None:
    export, roster, expected = make_class(tmp_path)
    files = [p for p in export.iterdir() if p.suffix in (".json", ".py")]
    assert len(files) == 30
    out = tmp_path / "grades"
    start = time.monotonic()
    status = mmsim(["lab", "grade", str(export), "--roster", str(roster), "--out",
                    str(out), "--quick", "--timeout", "5", "--test-timeout", "0.5",
                    "--memory", "300", "--jobs", "2"])
    seconds = time.monotonic() - start
    assert seconds < 60, seconds
    assert status == 0, capsys.readouterr()
    rows = read_rows(out / "roster.csv")
    # Every roster student and the late one, each with a row.
    assert set(rows) == {*expected, "bad", "odd", "copy", "late", "nothing",
                         *(f"plugin-{s}" for s in PLUGINS)}
    for sid, score in expected.items():
        assert (rows[sid]["score"], rows[sid]["max_score"], rows[sid]["status"]) == \
            (str(score), "8", "graded"), rows[sid]
        assert rows[sid]["name"].startswith("Student")
    assert rows["bad"]["status"] == "invalid" and "not JSON" in rows["bad"]["reason"]
    assert "(line 1, column" in rows["bad"]["reason"]
    assert rows["odd"]["status"] == "invalid" and rows["odd"]["max_score"] == "8"
    assert rows["copy"]["status"] == "wrong-seed" and rows["copy"]["score"] == "0"
    assert "made for seed 100, but seed 202 is assigned (it would score 8/8)" in \
        rows["copy"]["reason"]
    assert rows["late"]["status"] == "graded" and "not on the roster" in rows["late"]["reason"]
    assert rows["nothing"]["status"] == "missing"
    assert "nothing_1_2_answers.txt" in rows["nothing"]["reason"]
    plugin = {s: rows[f"plugin-{s}"] for s in PLUGINS}
    assert (plugin["correct"]["score"], plugin["correct"]["status"]) == ("11", "graded")
    for hungry_or_slow in ("loops", "hungry"):
        assert plugin[hungry_or_slow]["score"] == "2"  # loads and fault pass
    assert plugin["loops"]["status"] == "timeout"
    assert "ran out of time: fork" in plugin["loops"]["reason"]
    assert plugin["stubborn"]["status"] == "timeout"
    assert "still running after 5 s: killed" in plugin["stubborn"]["reason"]
    assert plugin["hungry"]["status"] == "memory"
    assert "300 MiB" in plugin["hungry"]["reason"]
    assert plugin["tamper"]["status"] == "crashed"
    assert "exited with status 3" in plugin["tamper"]["reason"]
    assert plugin["syntax"]["status"] == "invalid" and "line 1" in plugin["syntax"]["reason"]
    for row in plugin.values():  # a plugin that fails is scored out of the full 11
        assert row["max_score"] == "11", row
    # Gradescope's results.json and a report per student.
    doc = json.loads((out / "gradescope" / "s01" / "results.json").read_text())
    assert (doc["score"], doc["max_score"]) == (expected["s01"], 8)
    assert [t["status"] for t in doc["tests"]].count("failed") == 1
    assert sum(t["max_score"] for t in doc["tests"]) == 8
    stubborn = json.loads((out / "gradescope" / "plugin-stubborn" / "results.json").read_text())
    assert (stubborn["score"], stubborn["max_score"]) == (0, 11)
    report = (out / "reports" / "copy.txt").read_text()
    assert "FAIL" in report and "Score: 0/8" in report
    printed = capsys.readouterr().out
    assert "31 students, 30 files graded" in printed
    assert "statuses: graded 22, wrong-seed 1, invalid 3, timeout 2, memory 1, " \
        "crashed 1, missing 1" in printed


def test_isolation_the_tampering_plugin_cannot_change_another_students_grade(
        tmp_path: Path) -> None:
    tamper = tmp_path / "evil_scheme.py"
    tamper.write_text(PLUGINS["tamper"].replace("os._exit(3)\n", ""))
    wrong = tmp_path / "honest_answers.json"
    wrong.write_text(json.dumps(answers("maps", 3, wrong=2)))
    subs, _ = collect([tamper, wrong])
    result = classroom.grade_class(subs, None, Options(jobs=1, quick=True, timeout=20))
    rows = {r.student: r for r in result.students}
    assert rows["evil"].status == "invalid"  # it defines no scheme
    assert rows["honest"].score == 0 < rows["honest"].max_score
    # In the grader's own process the checker is untouched too.
    from mmcore_contrib.labs import grader
    assert grader.check_answer.__name__ == "check_answer"


def test_a_zip_export_and_gradescope_ids(tmp_path: Path) -> None:
    export = tmp_path / "export.zip"
    with zipfile.ZipFile(export, "w") as z:
        z.writestr("submission_901/answers.json", json.dumps(answers("maps", 1)))
        z.writestr("submission_902/answers.json", "{")
        z.writestr("submission_metadata.yml", "ignored: true\n")
        z.writestr("__MACOSX/._answers.json", "junk")
    subs, skipped = collect([export])
    assert sorted(s.student for s in subs) == ["901", "902"] and skipped == []
    result = classroom.grade_class(subs, None, Options(timeout=20))
    rows = {r.student: r for r in result.students}
    assert rows["901"].score == rows["901"].max_score == make("maps", 1).max_points
    assert rows["902"].status == "invalid" and rows["902"].max_score == rows["901"].max_score
    assert result.all_graded
    assert rows["901"].reason == ""  # no roster given: nobody is "not on the roster"


@pytest.mark.parametrize(("path", "student"), [
    ("smithjohn_12345_67890_answers.json", "smithjohn"),
    ("smithjohn_LATE_12345_67890_answers.json", "smithjohn"),
    ("John Smith_123456_assignsubmission_file_/answers.json", "John Smith"),
    ("submission_4242/answers.json", "4242"),
    ("alice.json", "alice"),
])
def test_student_ids_from_learning_platform_file_names(path: str, student: str) -> None:
    assert student_id(path) == student


def test_an_id_pattern_overrides_the_default() -> None:
    import re
    assert student_id("smithjohn_12345_67890_a.json", re.compile(r"_(?P<id>\d+)_")) == "12345"
    assert student_id("x.json", re.compile(r"_(\d+)_")) == "x"


def test_roster_errors_name_file_and_line(tmp_path: Path) -> None:
    roster = tmp_path / "roster.csv"
    roster.write_text("student,seed\nalice,1\nbob,x\n")
    with pytest.raises(ValueError, match=r"roster.csv:3: seed 'x' is not an integer"):
        read_roster(roster)
    roster.write_text("student,seed\nalice,1\nalice,2\n")
    with pytest.raises(ValueError, match=r"roster.csv:3: .*listed twice \(first on line 2\)"):
        read_roster(roster)
    roster.write_text("id,seed\nalice,1\n")
    with pytest.raises(ValueError, match=r"roster.csv:1: the header has no 'student'"):
        read_roster(roster)
    roster.write_text("\ufeffStudent,Seed,Email\nalice,7,a@x\nbob,,b@x\n")
    entries = read_roster(roster)
    assert (entries["alice"].seed, entries["bob"].seed) == (7, None)
    assert entries["alice"].extra == {"email": "a@x"}


def test_answer_files_are_checked_in_the_worker(tmp_path: Path) -> None:
    """The worker's verdicts, called in-process (no limits): shape, seed and encoding."""
    f = tmp_path / "a.json"
    cases = {b'{"exercise": "cow"}': "has no seed, answers",
             b"\xff\xfe": "not UTF-8",
             b"[" * 100000: "nested too deeply",
             b'{"exercise": "cow", "seed": true, "answers": {}}': "not an integer",
             b"[]": "empty list"}
    for data, reason in cases.items():
        f.write_bytes(data)
        outcome = worker.grade_answer_file(f)
        assert outcome.status == "invalid" and reason in outcome.reason, outcome
    f.write_text(json.dumps(answers("maps", 4)))
    assert worker.grade_answer_file(f, assigned_seed=4).status == "graded"
    wrong = worker.grade_answer_file(f, assigned_seed=5)
    assert wrong.status == "wrong-seed" and wrong.report is not None
    assert wrong.report["score"] == 0


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
ENTRY = st.fixed_dictionaries({
    "exercise": st.sampled_from(["maps", "cow", "rmap", "nope"]) | JSON,
    "seed": st.integers(-3, 3) | JSON,
    "answers": st.dictionaries(st.sampled_from(["maps", "map_count", "pfns", "copies",
                                                "mappers"]), JSON, max_size=3) | JSON},
    optional={"options": st.fixed_dictionaries({}, optional={"rmap": JSON}) | JSON})


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(doc=JSON | ENTRY | st.lists(ENTRY, max_size=3))
def test_any_json_is_graded_or_invalid_never_a_grader_error(tmp_path: Path, doc: Any
                                                            ) -> None:
    """Whatever JSON a student hands in, the verdict is theirs: graded, wrong-seed or
    invalid, never the grader's ``error`` (which would make the run exit 1)."""
    f = tmp_path / "a.json"
    f.write_text(json.dumps(doc))
    outcome = worker.grade_answer_file(f, assigned_seed=1)
    assert outcome.status in ("graded", "wrong-seed", "invalid"), outcome


def test_cli_show_template_and_per_student_templates(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    assert mmsim(["lab", "list"]) == 0
    assert "splitmerge" in capsys.readouterr().out
    assert mmsim(["lab", "show", "cow", "--seed", "3", "--answers"]) == 0
    assert "ANSWER:" in capsys.readouterr().out
    assert mmsim(["lab", "template", "maps", "--seed", "2"]) == 0
    assert json.loads(capsys.readouterr().out) == make("maps", 2).template()
    roster = tmp_path / "roster.csv"
    roster.write_text("student,seed\nalice,11\nbob,12\n")
    out = tmp_path / "t"
    assert mmsim(["lab", "template", "cow", "--roster", str(roster), "--out", str(out)]) == 0
    assert json.loads((out / "bob_cow.json").read_text())["seed"] == 12


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert mmsim(["lab", "grade", str(tmp_path / "missing")]) == 1
    assert "no such file or directory" in capsys.readouterr().err
    assert mmsim(["lab", "grade", str(tmp_path)]) == 1
    assert "no submissions" in capsys.readouterr().err
    bad = tmp_path / "roster.csv"
    bad.write_text("student,seed\na,b\n")
    assert mmsim(["lab", "grade", str(tmp_path), "--roster", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "roster.csv:2" in err
    assert mmsim(["lab", "show", "nope"]) == 2


def test_one_student_as_a_gradescope_autograder_sees_them(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--student``: every file in /autograder/submission is one student's; the exit
    status is 0 although the answers are not all right."""
    submission = tmp_path / "submission"
    submission.mkdir()
    (submission / "answers.json").write_text(json.dumps(answers("cow", 9, wrong=1)))
    (submission / "maps.json").write_text(json.dumps(answers("maps", 9)))
    out = tmp_path / "out"
    assert mmsim(["lab", "grade", str(submission), "--student", "me", "--out", str(out),
                  "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert [s["student"] for s in summary["students"]] == ["me"]
    doc = json.loads((out / "gradescope" / "me" / "results.json").read_text())
    full = make("cow", 9).max_points + make("maps", 9).max_points
    assert doc["max_score"] == full
    assert doc["score"] == full - make("cow", 9).questions[0].points
    assert {t["name"].split(":")[0] for t in doc["tests"]} == {"answers.json", "maps.json"}


def test_a_students_module_cannot_shadow_the_standard_library(tmp_path: Path) -> None:
    """A plugin saved as json.py or random.py is imported under a name of its own, from
    a directory not on sys.path."""
    for name in ("json", "random"):
        (tmp_path / f"{name}.py").write_text(PLUGINS["correct"])
    subs, _ = collect([tmp_path])
    result = classroom.grade_class(subs, None, Options(quick=True, timeout=60))
    assert [(r.student, r.status, r.score) for r in result.students] == \
        [("json", "graded", 11), ("random", "graded", 11)]


def test_a_file_too_large_is_not_run(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (classroom.MAX_BYTES + 1))
    subs, _ = collect([big])
    graded = classroom.grade_submission(subs[0], None, Options())
    assert graded.status == "invalid" and "file too large" in graded.reason


def test_exit_status_1_only_when_the_grader_itself_fails(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A child that ends without a result on an answer file (no student code runs there)
    is the grader's error: exit 1. On a plugin it is the student's crash."""
    (tmp_path / "alice.json").write_text(json.dumps(answers("maps", 1)))
    (tmp_path / "bob.py").write_text(PLUGINS["correct"])
    monkeypatch.setattr(classroom, "_worker_command", lambda *a: [
        "python3", "-c", "import sys; print('boom', file=sys.stderr); sys.exit(4)"])
    assert mmsim(["lab", "grade", str(tmp_path), "--out", str(tmp_path / "g")]) == 1
    rows = read_rows(tmp_path / "g" / "roster.csv")
    assert (rows["alice"]["status"], rows["bob"]["status"]) == ("error", "crashed")
    assert rows["alice"]["reason"] == "exited with status 4 without a result: boom"
    capsys.readouterr()


def test_ctrl_c_kills_the_running_children_at_once(tmp_path: Path) -> None:
    (tmp_path / "quick.json").write_text(json.dumps(answers("maps", 1)))
    (tmp_path / "stubborn.py").write_text(PLUGINS["stubborn"])
    subs, _ = collect([tmp_path])

    def interrupt(graded: classroom.Graded) -> None:
        raise KeyboardInterrupt

    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        classroom.grade_class(subs, None, Options(quick=True, timeout=120,
                                                  test_timeout=None), progress=interrupt)
    assert time.monotonic() - start < 30  # not the stubborn plugin's 120 s
    deadline = time.monotonic() + 10
    while workers_grading("/submission/stubborn.py") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not workers_grading("/submission/stubborn.py")


def workers_grading(name: str) -> list[int]:
    """Pids of grading children whose command line names ``name``."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "mmcore_contrib.labs.worker" in cmdline and name in cmdline:
            pids.append(int(proc.name))
    return pids


def test_a_budget_keeps_the_points_of_the_tests_before_the_loop() -> None:
    """With a budget for all tests, a scheme that loops in every test after the first two
    still gets its report (and those two tests' points) in about the budget's time."""
    from mmcore_contrib.labs.grader import OUT_OF_TIME, grade_plugin
    ns: dict[str, Any] = {}
    exec(PLUGINS["loops"], ns)
    start = time.monotonic()
    report = grade_plugin(ns["Loops"], kit=False, test_timeout=30, budget=1.5)
    assert time.monotonic() - start < 5
    items = {i.name: i for i in report.items}
    assert report.score == 2 and items["loads"].passed and items["fault"].passed
    assert "TestTimeout" in items["fork"].feedback
    assert [i.feedback for i in report.items[-4:]] == [OUT_OF_TIME] * 4


def test_an_enclosing_alarm_is_not_postponed_by_nested_time_budgets() -> None:
    """mmcore.budget.time_budget (the kit's budget per op) restores an enclosing alarm
    less the time it took: a per-test limit around many short ops still fires."""
    from mmcore_contrib.labs.limits import TestTimeout, time_limit

    from mmcore.budget import time_budget
    start = time.monotonic()
    with pytest.raises(TestTimeout), time_limit(0.5):
        while time.monotonic() - start < 10:
            with time_budget(5):
                time.sleep(0.05)
    assert time.monotonic() - start < 2
