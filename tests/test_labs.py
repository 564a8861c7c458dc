"""The lab kit: seeded exercises, their answers, the grader and the worked lab."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest
from mmcore_contrib.labs import exercises, grader, lab1_cow_and_rmap, notebooks
from mmcore_contrib.labs.exercises import EXERCISES, Exercise, make
from mmcore_contrib.labs.grader import check_answer, grade_answers, grade_plugin
from mmcore_contrib.labs.scenario import BASE, PAGE, header
from mmcore_plugins.anon_vma_chain import AnonVmaChainScheme

from mmcore import PluginInfo, Vma, hookimpl
from mmcore.viz import vmprint

SEEDS = range(8)


def cases() -> list[tuple[str, int]]:
    return [(name, seed) for name in EXERCISES for seed in SEEDS]


# --- generation ------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "seed"), cases())
def test_exercises_are_deterministic_per_seed(name: str, seed: int) -> None:
    a, b = make(name, seed), make(name, seed)
    assert a.text(answers=True) == b.text(answers=True)
    assert a.answer_key() == b.answer_key()
    assert "ANSWER" not in a.text()
    assert a.text(answers=True).count("ANSWER:") == len(a.questions)


@pytest.mark.parametrize("name", list(EXERCISES))
def test_seeds_give_different_exercises(name: str) -> None:
    assert len({make(name, seed).text() for seed in SEEDS}) >= 5


def test_rmap_exercise_draws_every_scheme_and_honours_an_explicit_one() -> None:
    schemes = {make("rmap", seed).scenario.machine.rmap_name for seed in range(30)}
    assert schemes == set(exercises.RMAP_SCHEMES)
    ex = make("rmap", 3, rmap="pte_chains")
    assert ex.scenario.machine.rmap_name == "pte_chains"
    assert ex.template()["options"] == {"rmap": "pte_chains"}


# --- the answers are what the printed code makes the simulator report --------------------


def run_code(ex: Exercise, upto: int | None = None) -> tuple[dict[str, Any], list[str]]:
    """Execute the exercise's printed code (all of it, or its first ``upto`` lines) in a
    fresh namespace, independently of the generator's own Machine."""
    lines = ex.scenario.code().splitlines()
    ns: dict[str, Any] = {}
    exec(header() + "\n".join(lines[:upto]), ns)
    return ns, lines


def run_line(ns: dict[str, Any], line: str) -> None:
    exec(line, ns)


@pytest.mark.parametrize("seed", SEEDS)
def test_maps_answers(seed: int) -> None:
    ex = make("maps", seed)
    ns, _ = run_code(ex)
    text = ns["p"].maps_text()
    lines = [f"{ln.split()[0]} {ln.split()[1]}" for ln in text.splitlines()]
    assert ex.answer_key() == {"maps": lines,
                               "map_count": len(lines)}


@pytest.mark.parametrize("seed", SEEDS)
def test_splitmerge_answers(seed: int) -> None:
    ex = make("splitmerge", seed)
    lines = ex.scenario.code().splitlines()
    calls = [re.search(r"`(.*)`", q.prompt).group(1) for q in ex.questions]  # type: ignore[union-attr]
    first = lines.index(calls[0])
    ns, _ = run_code(ex, first)
    counters = ns["m"].counters
    for q, call in zip(ex.questions, calls, strict=True):
        splits, merges = counters.vma_splits, counters.vma_merges
        run_line(ns, call)
        assert q.answer == {"splits": counters.vma_splits - splits,
                            "merges": counters.vma_merges - merges,
                            "vmas": len(ns["p"].maps())}


@pytest.mark.parametrize("seed", SEEDS)
def test_cow_answers(seed: int) -> None:
    ex = make("cow", seed)
    lines = ex.scenario.code().splitlines()
    last_fork = max(i for i, ln in enumerate(lines) if ln.endswith(".fork()"))
    ns, _ = run_code(ex, last_fork + 1)
    m = ns["m"]
    copies = m.counters.fault_cow_copy
    for line in lines[last_fork + 1:]:
        run_line(ns, line)
    key = ex.answer_key()
    assert key["copies"] == m.counters.fault_cow_copy - copies
    npages = len(key["pfns"]["p"])
    names = [n for n in ("p", "c1", "c2") if n in ns]
    assert sorted(key["pfns"]) == sorted(names)
    for name in names:
        proc = ns[name]
        entries = [proc.pagemap(BASE + i * PAGE) for i in range(npages)]
        assert key["pfns"][name] == [e.pfn if e.present else None for e in entries]
        # vmprint's flags column says whether each pte is writable.
        flags = {int(ln.split()[1], 16): ln.split()[7] for ln in
                 vmprint(proc).splitlines()
                 if ln.startswith(" .. ") and " pfn " in ln}
        assert key["writable"][name] == [
            (flags[BASE + i * PAGE][1] == "w") if e.present else None
            for i, e in enumerate(entries)]
    used = {e for row in key["pfns"].values() for e in row if e}
    assert key["kpagecount"] == {str(pfn): m.kpagecount(pfn) for pfn in sorted(used)}


@pytest.mark.parametrize("seed", SEEDS)
def test_rmap_answers(seed: int) -> None:
    ex = make("rmap", seed)
    ns, _ = run_code(ex)
    m = ns["m"]
    pfn = int(re.search(r"\(pfn (\d+)\)", ex.questions[0].prompt).group(1))  # type: ignore[union-attr]
    by_pid = {ns[n].pid: n for n in ("p", "c1", "c2", "c3") if n in ns}
    walk = m.rmap_walk(pfn)
    key = ex.answer_key()
    assert sorted(key["mappers"]) == sorted({by_pid[pid] for pid, _ in m.rmap_truth(pfn)})
    assert key["vmas_visited"] == walk.cost.vmas_visited
    assert key["mms_visited"] == walk.cost.mms_visited
    assert key["ptes_probed"] == walk.cost.ptes_probed


# --- the command line ----------------------------------------------------------------------


def test_cli_prints_questions_answers_key_and_template(capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    assert exercises.main(["list"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in EXERCISES)
    exercises.main(["cow", "--seed", "3"])
    out = capsys.readouterr().out
    assert "Exercise cow, seed 3" in out and "ANSWER" not in out
    exercises.main(["cow", "--seed", "3", "--answers"])
    assert "ANSWER:" in capsys.readouterr().out
    exercises.main(["cow", "-s", "3", "--json"])
    key = json.loads(capsys.readouterr().out)
    assert key["answers"] == make("cow", 3).answer_key()
    exercises.main(["cow", "-s", "3", "--template"])
    blank = json.loads(capsys.readouterr().out)
    assert blank["exercise"] == "cow" and set(blank["answers"].values()) == {None}


def test_module_runs_as_a_script() -> None:
    out = subprocess.run([sys.executable, "-m", "mmcore_contrib.labs.exercises", "maps",
                          "--seed", "1", "-c"], capture_output=True, text=True, check=True)
    assert "ANSWER:" in out.stdout


# --- grading answers -------------------------------------------------------------------------


def submission(name: str, seed: int, **changes: Any) -> dict[str, Any]:
    ex = make(name, seed)
    sub = ex.template()
    sub["answers"] = {**ex.answer_key(), **changes}
    return sub


@pytest.mark.parametrize(("name", "seed"), cases()[::3])
def test_grader_gives_full_marks_for_the_simulators_answers(name: str, seed: int) -> None:
    report = grade_answers(submission(name, seed))
    assert report.score == report.max_score == make(name, seed).max_points
    assert all(item.passed for item in report.items)


def test_grader_takes_points_off_a_wrong_answer() -> None:
    ex = make("cow", 4)
    wrong = ex.answer_key()["copies"] + 1
    report = grade_answers(submission("cow", 4, copies=wrong))
    assert report.score == ex.max_points - 1
    failed = [i for i in report.items if not i.passed]
    assert [i.name for i in failed] == ["cow/4: copies"]
    assert f"you answered {wrong}" in failed[0].feedback
    assert "expected" not in failed[0].feedback
    revealed = grade_answers(submission("cow", 4, copies=wrong), reveal=True)
    assert f"expected {ex.answer_key()['copies']}" in revealed.text()


def test_grader_feedback_says_which_part_is_wrong() -> None:
    ex = make("cow", 1)
    pfns = json.loads(json.dumps(ex.answer_key()["pfns"]))
    pfns["c1"][0] = 999
    item = check_answer(ex.questions[0], pfns)
    assert item.score == 0 and item.feedback == "wrong for: c1"
    maps = make("maps", 2)
    lines = list(maps.answer_key()["maps"])
    item = check_answer(maps.questions[0], lines[:-1])
    assert "entries right" in item.feedback and f"has {len(lines)}" in item.feedback


def test_grader_accepts_equivalent_forms() -> None:
    maps = make("maps", 5)
    shouty = [f"  {line.upper()} " for line in maps.answer_key()["maps"]]
    assert check_answer(maps.questions[0], shouty).passed
    assert check_answer(maps.questions[1], hex(maps.answer_key()["map_count"])).passed
    rmap = make("rmap", 2)
    assert check_answer(rmap.questions[0], list(reversed(rmap.answer_key()["mappers"]))).passed
    assert not check_answer(rmap.questions[1], None).passed


def test_grader_reads_files_and_reports_bad_submissions(tmp_path: Path) -> None:
    good, bad = submission("maps", 1), {"exercise": "nope", "seed": 1, "answers": {}}
    path = tmp_path / "answers.json"
    path.write_text(json.dumps([good, bad]))
    report = grade_answers(path)
    assert report.score == make("maps", 1).max_points
    assert "cannot grade this submission" in report.text()
    results = tmp_path / "results.json"
    assert grader.main([str(path), "--json", str(results)]) == 1
    data = json.loads(results.read_text())
    assert data["score"] == report.score and data["max_score"] == report.max_score
    assert {t["name"] for t in data["tests"]} >= {"maps/1: maps", "maps/1: map_count"}
    ok = tmp_path / "ok.json"
    ok.write_text(json.dumps(good))
    assert grader.main([str(ok)]) == 0


# --- grading plugins ---------------------------------------------------------------------------


class ForgetsChildren(AnonVmaChainScheme):
    """Broken on purpose: a fork child shares its parent's anon_vma without a chain, so
    no walk ever finds the child's ptes."""

    info: ClassVar[PluginInfo] = PluginInfo(
        name="forgets_children", kind="rmap", summary="broken on purpose",
        structs=AnonVmaChainScheme.info.structs)

    @hookimpl
    def rmap_vma_fork(self, src: Vma, dst: Vma) -> None:
        dst.anon_vma = src.anon_vma


class NoInfo(AnonVmaChainScheme):
    info = None  # type: ignore[assignment]


def test_quick_check_passes_correct_schemes() -> None:
    for scheme in (AnonVmaChainScheme, "mmcore_plugins.anonmm:AnonMMScheme",
                   "mmcore_plugins.anon_vma:AnonVmaScheme"):
        report = grade_plugin(scheme, kit=False)
        assert report.score == report.max_score, report.text()
        assert "built-in quick checks" in report.text()


def test_quick_check_rejects_a_broken_scheme() -> None:
    report = grade_plugin(ForgetsChildren, kit=False)
    assert report.score < report.max_score
    items = {i.name: i for i in report.items}
    assert items["loads"].passed and items["fault"].passed
    assert not items["fork"].passed
    assert "the rmap walk of pfn" in items["fork"].feedback
    assert "reproduce with:" in items["fork"].feedback
    assert "c1 = p.fork()" in items["fork"].feedback


def test_grader_rejects_a_class_that_is_not_a_plugin() -> None:
    report = grade_plugin(NoInfo, kit=False)
    assert report.score == 0 and report.max_score == 1
    assert "PluginInfo" in report.items[0].feedback


def test_grader_loads_a_students_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                      ) -> None:
    student = tmp_path / "student_scheme.py"
    student.write_text("from mmcore_plugins.anon_vma import AnonVmaScheme as Mine\n")
    assert grader.main(["--plugin", f"{student}:Mine", "--quick"]) == 0
    assert "Score: 11/11" in capsys.readouterr().out


@pytest.mark.slow  # the whole conformance kit on a student's scheme, twice
def test_grader_uses_the_conformance_kit_when_present(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the kit importable the grader runs it: a correct scheme earns every point,
    one that forgets its fork children loses some, with the walk's finding as feedback.
    The hypothesis budget is the one ``--mmcore-max-examples`` sets (test_conformance
    runs anon_vma_chain at the full budget)."""
    stateful = pytest.importorskip("mmcore.testing.stateful")  # optional for the grader
    monkeypatch.setitem(stateful.OVERRIDES, "max_examples", 10)
    report = grade_plugin(AnonVmaChainScheme)
    assert "conformance kit" in report.text()
    assert report.score == report.max_score > 3, report.text()
    broken = grade_plugin(ForgetsChildren, kit=True)
    assert broken.score < broken.max_score
    assert any("rmap walk != truth" in i.feedback for i in broken.items)


# --- the worked lab ----------------------------------------------------------------------------


def test_lab1_runs_from_the_notebook_source_and_writes_its_graphs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The terminal lab 1 is the notebook's one source run cell by cell: every step, the
    scheme table, the teacher's answers (whose asserts pass) and a DOT file per picture
    the notebook shows, in order."""
    assert lab1_cow_and_rmap.main(["--answers", "--dot", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    sources = [c.source for c in notebooks.cells(lab1_cow_and_rmap.NAME, teacher=True)
               if c.kind == "markdown"]
    assert all(src in text for src in sources)
    assert "## Step 6: compare the schemes" in text and "**Answer:**" in text
    for scheme in ("pte_chains", "anonmm", "anon_vma", "anon_vma_chain"):
        assert re.search(rf"^{scheme} +\d+ +\d+ +\d+ +\d+ +\d+ +\d+$", text, re.M)
    assert "COW copies: 1; kpagecount(1) = 1" in text and "copies: +0, reuses: +1" in text
    dots = sorted(p.name for p in tmp_path.glob("*.dot"))
    assert dots == ["01_rmap_of_pfn_2_anon_vma_chain_walk_2_probes_found_2_of_2.dot",
                    "02_anon_objects_anon_vma_chain.dot"]
    assert "probe 1: maps it" in (tmp_path / dots[0]).read_text()
    assert (tmp_path / dots[0]).read_text().startswith("digraph mmcore {")


def test_lab1_student_version_has_no_answers(capsys: pytest.CaptureFixture[str]) -> None:
    """Without --answers the lab prints the questions and no answer."""
    assert lab1_cow_and_rmap.main([]) == 0
    text = capsys.readouterr().out
    assert "**Predict:**" in text and "**Answer:**" not in text
