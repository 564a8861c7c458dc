"""An autograder for the lab kit: students' JSON answers, or students' rmap plugins.

**Answers.** A student fills in the answer file ``python -m mmcore_contrib.labs.exercises
EXERCISE --seed N --template`` printed (or a list of such files' contents in one JSON
array). The grader rebuilds each exercise from its name and seed, so the answer key is
whatever the simulator computes, and scores each question all-or-nothing with a line of
feedback (``--reveal`` adds the expected answer)::

    python -m mmcore_contrib.labs.grader answers.json [--reveal] [--json results.json]

**Plugins.** A student's rmap scheme class is run through the conformance kit
(:class:`mmcore.testing.RmapConformance`: every test method is worth points), or, when the
kit is not available or ``--quick`` is given, through built-in seeded scenarios (fault,
fork tree, split/merge, mremap, unmap through rmap, exit) that check after each step that
``m.rmap_walk(pfn)`` finds exactly ``m.rmap_truth(pfn)`` for every mapped page::

    python -m mmcore_contrib.labs.grader --plugin student_scheme.py:StudentScheme

``--json`` writes the report in the shape of Gradescope's ``results.json`` (``score``,
``max_score``, ``tests`` with ``name``/``score``/``max_score``/``output``). The exit status
is 0 only for full marks.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import random
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmcore import PROT_READ
from mmcore.atomicfile import write_text
from mmcore.plugins import plugin_info

from .exercises import Exercise, Question, make
from .limits import TestClock, TestTimeout, time_limit
from .scenario import BASE, PAGE, RW, Scenario, Step

# --- reports -------------------------------------------------------------------------


@dataclass
class Item:
    """One graded question or check."""

    name: str
    score: int
    max_score: int
    feedback: str = ""

    @property
    def passed(self) -> bool:
        """Full marks for this item."""
        return self.score == self.max_score


@dataclass
class Report:
    """A score with per-item feedback; :meth:`text` for people, :meth:`to_json` for an LMS."""

    title: str
    items: list[Item] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def score(self) -> int:
        """Points earned."""
        return sum(i.score for i in self.items)

    @property
    def max_score(self) -> int:
        """Points available."""
        return sum(i.max_score for i in self.items)

    def text(self) -> str:
        """An xv6 ``make grade``-style table, then the score."""
        out = [f"== {self.title} =="]
        out += [f"   {note}" for note in self.notes]
        width = max((len(i.name) for i in self.items), default=10) + 2
        for item in self.items:
            verdict = "OK" if item.passed else "FAIL"
            out.append(f"{item.name:.<{width}} {verdict:4} ({item.score}/{item.max_score})")
            out += [f"    {line}" for line in item.feedback.splitlines() if not item.passed]
        out.append(f"Score: {self.score}/{self.max_score}")
        return "\n".join(out) + "\n"

    def to_json(self) -> dict[str, Any]:
        """The report as Gradescope's results.json shape."""
        return {"score": self.score, "max_score": self.max_score,
                "output": "\n".join([self.title, *self.notes]),
                "tests": [{"name": i.name, "score": i.score, "max_score": i.max_score,
                           "status": "passed" if i.passed else "failed",
                           "output": i.feedback} for i in self.items]}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Report:
        """The report :meth:`to_json` wrote (``output``'s first line is the title)."""
        title, *notes = str(doc.get("output", "")).split("\n")
        items = [Item(str(t["name"]), int(t["score"]), int(t["max_score"]),
                      str(t.get("output", ""))) for t in doc["tests"]]
        return cls(title, items, notes)


# --- answers -------------------------------------------------------------------------


def _canon(value: Any) -> Any:
    """A comparable form: strings trimmed, lower-cased, whitespace collapsed, numeric
    strings (``"12"``, ``"0x1f"``) as ints, ``"true"``/``"false"`` as bools, dict keys as
    strings, tuples as lists."""
    if isinstance(value, str):
        text = " ".join(value.split()).lower()
        if text in ("true", "false"):
            return text == "true"
        try:
            return int(text, 0)
        except ValueError:
            return text
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list | tuple):
        return [_canon(v) for v in value]
    if isinstance(value, dict):
        return {str(k).strip().lower(): _canon(v) for k, v in value.items()}
    return value


def _sorted(values: list[Any]) -> list[Any]:
    return sorted(values, key=repr)


def check_answer(question: Question, given: Any, reveal: bool = False) -> Item:
    """Score one answer: full points when it equals the simulator's, else 0 with a line
    saying how far off it is (and, with ``reveal``, the expected answer)."""
    expected, got = _canon(question.answer), _canon(given)
    if question.unordered and isinstance(expected, list) and isinstance(got, list):
        expected, got = _sorted(expected), _sorted(got)
    if given is None:
        return Item(question.key, 0, question.points, "no answer given")
    if got == expected:
        return Item(question.key, question.points, question.points, "")
    feedback = _difference(expected, got)
    if reveal:
        feedback += f"; expected {json.dumps(question.answer)}"
    return Item(question.key, 0, question.points, feedback)


def _difference(expected: Any, got: Any) -> str:
    if isinstance(expected, list) and isinstance(got, list):
        right = sum(1 for a, b in zip(expected, got, strict=False) if a == b)
        more = "" if len(got) == len(expected) else \
            f" (you gave {len(got)} entries, the answer has {len(expected)})"
        return f"{right} of {len(expected)} entries right{more}"
    if isinstance(expected, dict) and isinstance(got, dict):
        wrong = sorted(k for k in expected if got.get(k) != expected[k])
        extra = sorted(k for k in got if k not in expected)
        parts = [f"wrong for: {', '.join(wrong)}"] if wrong else []
        if extra:
            parts.append(f"unexpected keys: {', '.join(extra)}")
        return "; ".join(parts) or "wrong"
    return f"wrong (you answered {json.dumps(got)})"


def grade_exercise(submission: dict[str, Any], reveal: bool = False) -> tuple[Exercise, list[Item]]:
    """Grade one ``{"exercise", "seed", ["options"], "answers"}`` submission."""
    ex = make(str(submission["exercise"]), int(submission["seed"]),
              **dict(submission.get("options") or {}))
    answers = submission.get("answers") or {}
    items = []
    for q in ex.questions:
        item = check_answer(q, answers.get(q.key), reveal)
        item.name = f"{ex.name}/{ex.seed}: {q.key}"
        items.append(item)
    return ex, items


def grade_answers(data: dict[str, Any] | list[dict[str, Any]] | str | Path,
                  reveal: bool = False) -> Report:
    """Grade an answer file (a path, or its parsed JSON: one submission or a list)."""
    title = "answers"
    if isinstance(data, str | Path):
        title = str(data)
        data = json.loads(Path(data).read_text())
    submissions: list[dict[str, Any]] = data if isinstance(data, list) else [data]  # type: ignore[list-item]
    report = Report(f"Grading {title}")
    for sub in submissions:
        try:
            _, items = grade_exercise(sub, reveal)
        except (KeyError, ValueError, TypeError) as exc:
            name = f"{sub.get('exercise', '?')}/{sub.get('seed', '?')}"
            report.items.append(Item(name, 0, 1, f"cannot grade this submission: {exc}"))
            continue
        report.items += items
    return report


# --- plugins -------------------------------------------------------------------------


class CheckFailed(AssertionError):
    """A quick check failed; the message ends with the scenario that reproduces it."""


def _where(s: Scenario, pairs: list[tuple[int, int]]) -> str:
    return ", ".join(f"{s.name_of(pid)} @ page {(addr - BASE) // PAGE}" for pid, addr in pairs) \
        or "nobody"


def _walks_agree(s: Scenario, when: str) -> None:
    """Every mapped page: the scheme's walk finds exactly the ptes that map it."""
    m = s.machine
    for page in list(m.pages_in_use()):
        if not page.mapcount:
            continue
        truth = m.rmap_truth(page.pfn)
        found = m.rmap_walk(page.pfn).mappings
        if found != truth:
            raise CheckFailed(f"{when}: the rmap walk of pfn {page.pfn} found "
                              f"[{_where(s, found)}] but [{_where(s, truth)}] map it")


def _fork_tree(s: Scenario, rng: random.Random, forks: int, npages: int) -> None:
    for i in range(1, forks + 1):
        parent = rng.choice(sorted(s.procs))
        s.run(Step(parent, "fork", child=f"c{i}"))
        s.run(Step(f"c{i}", "write", page=rng.randrange(npages), data=f"c{i}"))
        _walks_agree(s, f"after {parent} forked c{i} and c{i} wrote")


def _quick_loads(s: Scenario, rng: random.Random) -> None:
    """The scheme runs: a process maps and writes a page. Its walk is not asked for here
    (every other test checks it), so a walk that never ends still loads."""
    s.run(Step("p", "mmap", npages=2))
    s.run(Step("p", "write", page=0, data="x"))


def _quick_fault(s: Scenario, rng: random.Random) -> None:
    s.run(Step("p", "mmap", npages=8))
    for pg in sorted(rng.sample(range(8), 5)):
        s.run(Step("p", "write", page=pg, data=f"w{pg}"))
    _walks_agree(s, "after demand faults")


def _quick_fork(s: Scenario, rng: random.Random) -> None:
    s.run(Step("p", "mmap", npages=4))
    for pg in range(4):
        s.run(Step("p", "write", page=pg, data="p"))
    _fork_tree(s, rng, 4, 4)


def _quick_split_merge(s: Scenario, rng: random.Random) -> None:
    s.run(Step("p", "mmap", npages=8))
    for pg in range(8):
        s.run(Step("p", "write", page=pg, data="p"))
    s.run(Step("p", "fork", child="c1"))
    mid = rng.randrange(1, 7)
    for step, when in ((Step("p", "mprotect", page=mid, prot=PROT_READ), "split"),
                       (Step("c1", "mprotect", page=mid - 1, npages=2, prot=PROT_READ), "split"),
                       (Step("p", "mprotect", page=mid, prot=RW), "merge"),
                       (Step("c1", "munmap", page=rng.randrange(8)), "munmap"),
                       (Step("c1", "write", page=mid + 1, data="c"), "COW")):
        s.run(step)
        _walks_agree(s, f"after the {when} `{step.code()}`")


def _quick_mremap(s: Scenario, rng: random.Random) -> None:
    s.run(Step("p", "mmap", npages=4))
    for pg in range(4):
        s.run(Step("p", "write", page=pg, data="p"))
    s.run(Step("p", "fork", child="c1"))
    for step in (Step("p", "mremap", page=0, npages=4, new_page=8),
                 Step("c1", "write", page=rng.randrange(4), data="c"),
                 Step("p", "write", page=8 + rng.randrange(4), data="q"),
                 Step("c1", "mremap", page=2, npages=2, new_page=16)):
        s.run(step)
        _walks_agree(s, f"after `{step.code()}`")


def _quick_unmap(s: Scenario, rng: random.Random) -> None:
    s.run(Step("p", "mmap", npages=4))
    for pg in range(4):
        s.run(Step("p", "write", page=pg, data=f"p{pg}"))
    _fork_tree(s, rng, 2, 4)
    before = {(n, pg): proc.read(BASE + pg * PAGE, 4)
              for n, proc in s.procs.items() for pg in range(4)}
    m = s.machine
    for page in [pg for pg in m.pages_in_use() if pg.mapcount]:
        result = m.try_to_unmap(page.pfn)
        if not result.success or m.rmap_truth(page.pfn):
            raise CheckFailed(f"try_to_unmap(pfn {page.pfn}) left it mapped by "
                              f"[{_where(s, m.rmap_truth(page.pfn))}]: {result.reason}")
    for (n, pg), data in before.items():
        if s.procs[n].read(BASE + pg * PAGE, 4) != data:
            raise CheckFailed(f"after unmapping everything, {n} reads different data at "
                              f"page {pg}")
    _walks_agree(s, "after swapping everything back in")


def _quick_exit(s: Scenario, rng: random.Random) -> None:
    s.run(Step("p", "mmap", npages=4))
    for pg in range(4):
        s.run(Step("p", "write", page=pg, data="p"))
    _fork_tree(s, rng, 3, 4)
    for name in [*sorted(n for n in s.procs if n != "p"), "p"]:
        s.run(Step(name, "exit"))
    m = s.machine
    left = {k: v for k, v in m.meta.live.items() if v}
    if left or m.physmem.nr_used:
        raise CheckFailed(f"after every process exited, {m.physmem.nr_used} frames and "
                          f"these rmap objects are left: {left}")


#: The built-in quick checks: (name, points, scenario).
QUICK_CHECKS: list[tuple[str, int, Callable[[Scenario, random.Random], None]]] = [
    ("fault", 1, _quick_fault),
    ("fork", 2, _quick_fork),
    ("split_merge", 2, _quick_split_merge),
    ("mremap", 2, _quick_mremap),
    ("unmap", 2, _quick_unmap),
    ("exit", 1, _quick_exit),
]


def _first_lines(exc: BaseException, n: int = 3) -> str:
    text = str(exc).strip() or type(exc).__name__
    lines = text.splitlines()
    return "\n".join(lines[:n]) + (" ..." if len(lines) > n else "")


def _timed_out(seconds: float | None, exc: BaseException | None = None,
               scheme: type | None = None) -> str:
    """The feedback of a test stopped after ``seconds``: where in the ``scheme``'s source
    the TestTimeout ``exc`` found it, when it was there."""
    where = "" if exc is None or scheme is None else _stuck_in(exc, scheme)
    return (f"TestTimeout: still running after {seconds:g} s{where} (does a walk or a loop "
            "never end?)")


def _stuck_in(exc: BaseException, scheme: type) -> str:
    """`` in Loops.rmap_walk (scheme.py line 12)``: the innermost frame of the scheme's
    source file in the traceback of ``exc``, or ``""``."""
    files = {f.__code__.co_filename for f in vars(scheme).values() if hasattr(f, "__code__")}
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename in files]
    if not frames:
        return ""
    last = frames[-1]
    return f" in {scheme.__name__}.{last.name} ({Path(last.filename).name} line {last.lineno})"


def _run_quick(scheme: type, name: str, check: Callable[[Scenario, random.Random], None],
               seeds: Sequence[int], timeout: float | None = None) -> str:
    """'' if the check passes for every seed, else feedback with a reproducer. The check
    gets ``timeout`` seconds for all its seeds."""
    try:
        with time_limit(timeout):
            return _run_quick_seeds(scheme, name, check, seeds)
    except TestTimeout as exc:
        return f"{name}: {_timed_out(timeout, exc, scheme)}"


def _run_quick_seeds(scheme: type, name: str,
                     check: Callable[[Scenario, random.Random], None],
                     seeds: Sequence[int]) -> str:
    for seed in seeds:
        s: Scenario | None = None
        try:
            s = Scenario(scheme)
            check(s, random.Random(seed))
        except Exception as exc:
            where = f"{name} (seed {seed}): {type(exc).__name__}: {_first_lines(exc)}"
            code = "" if s is None else "\nreproduce with:\n    " + \
                s.code().replace("\n", "\n    ")
            return where + code
    return ""


def load_plugin(spec: str) -> type:
    """``module:Class`` or ``path/to/file.py:Class`` to the class."""
    where, _, name = spec.rpartition(":")
    if not where or not name:
        raise ValueError(f"expected MODULE:CLASS or FILE.py:CLASS, got {spec!r}")
    if where.endswith(".py"):
        loader = importlib.util.spec_from_file_location(Path(where).stem, where)
        if loader is None or loader.loader is None:
            raise ValueError(f"cannot load {where}")
        module = importlib.util.module_from_spec(loader)
        sys.modules[loader.name] = module
        loader.loader.exec_module(module)
    else:
        module = importlib.import_module(where)
    cls = getattr(module, name)
    if not isinstance(cls, type):
        raise ValueError(f"{spec} is not a class")
    return cls


def _conformance_suite() -> type | None:
    """mmcore.testing.RmapConformance, if this mmcore has the conformance kit."""
    try:
        from mmcore.testing import RmapConformance
    except ImportError:
        return None
    suite: type = RmapConformance
    return suite


def grade_plugin(plugin: type | str, *, kit: bool | None = None,
                 seeds: Sequence[int] = (0, 1, 2), points_per_test: int = 2,
                 test_timeout: float | None = None, budget: float | None = None
                 ) -> Report:
    """Grade a student's rmap scheme class (or ``"module:Class"``).

    ``kit=None`` uses the conformance kit when it is importable, ``False`` forces the
    built-in quick checks (run over ``seeds``), ``True`` insists on the kit. A class that
    cannot even build a Machine scores 0 with the reason. ``test_timeout`` (seconds, main
    thread only) bounds each test: one that runs longer scores 0 and the others still run.
    ``budget`` (seconds) bounds them all: a test that would start after it scores 0.
    """
    report = Report("Grading rmap plugin")
    clock = TestClock(test_timeout, budget)
    first = clock.next()
    try:
        with time_limit(first):
            cls = load_plugin(plugin) if isinstance(plugin, str) else plugin
            info = plugin_info(cls)
            report.title = f"Grading rmap plugin {info.name!r} ({cls.__module__}." \
                           f"{cls.__name__})"
            if info.kind != "rmap":
                raise ValueError(f"its PluginInfo kind is {info.kind!r}, not 'rmap'")
            _quick_loads(Scenario(cls), random.Random(0))
    except TestTimeout:
        report.items.append(Item("loads", 0, 1, _timed_out(first)))
        return report
    except Exception as exc:
        report.items.append(Item("loads", 0, 1, f"{type(exc).__name__}: {_first_lines(exc)}"))
        return report
    report.items.append(Item("loads", 1, 1))
    suite = _conformance_suite() if kit is not False else None
    if kit and suite is None:
        raise RuntimeError("the conformance kit (mmcore.testing.RmapConformance) is not "
                           "installed")
    if suite is not None:
        report.notes.append("checked by the conformance kit (mmcore.testing.RmapConformance)")
        report.items += _run_kit(suite, cls, points_per_test, clock)
    else:
        report.notes.append(f"checked by the built-in quick checks, seeds {list(seeds)}")
        for name, points, check in QUICK_CHECKS:
            limit = clock.next()
            problem = OUT_OF_TIME if limit == 0 else _run_quick(cls, name, check, seeds,
                                                                limit)
            report.items.append(Item(name, 0 if problem else points, points, problem))
    return report


#: The feedback of a test that did not start because the submission's time ran out.
OUT_OF_TIME = "not run: the time for this submission ran out"


def _run_kit(suite: type, cls: type, points: int, clock: TestClock) -> list[Item]:
    from .scenario import needed_policy
    tests = type("StudentConformance", (suite,), {"rmap": cls,
                                                  "mremap_policy": needed_policy(cls)})()
    items = []
    for name in sorted(n for n in dir(tests) if n.startswith("test_")):
        timeout = clock.next()
        if timeout == 0:
            items.append(Item(name[5:], 0, points, OUT_OF_TIME))
            continue
        try:
            with time_limit(timeout):
                getattr(tests, name)()
        except TestTimeout as exc:
            items.append(Item(name[5:], 0, points, _timed_out(timeout, exc, cls)))
            continue
        except ImportError as exc:  # e.g. hypothesis missing: not the student's fault
            items.append(Item(name[5:], 0, 0, f"skipped: {exc}"))
            continue
        except Exception as exc:
            reproducer = getattr(exc, "reproducer", "")
            feedback = _first_lines(getattr(exc, "reason", exc), 4)
            if reproducer:
                feedback += "\nreproduce with:\n    " + reproducer.rstrip().replace("\n", "\n    ")
            items.append(Item(name[5:], 0, points, feedback))
            continue
        items.append(Item(name[5:], points, points))
    return items


# --- command line --------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mmcore_contrib.labs.grader ANSWERS.json... | --plugin MOD:CLASS``."""
    parser = argparse.ArgumentParser(prog="python -m mmcore_contrib.labs.grader",
                                     description="Grade lab answers or an rmap plugin.")
    parser.add_argument("answers", nargs="*", help="JSON answer files")
    parser.add_argument("--plugin", help="a student's scheme: module:Class or file.py:Class")
    parser.add_argument("--quick", action="store_true",
                        help="use the built-in quick checks, not the conformance kit")
    parser.add_argument("--reveal", action="store_true", help="show expected answers")
    parser.add_argument("--json", metavar="FILE", help="write a Gradescope-style results.json")
    args = parser.parse_args(argv)
    if not args.answers and not args.plugin:
        parser.error("give answer files or --plugin")
    reports = [grade_answers(path, args.reveal) for path in args.answers]
    if args.plugin:
        reports.append(grade_plugin(args.plugin, kit=False if args.quick else None))
    for report in reports:
        sys.stdout.write(report.text())
    if args.json:
        merged = Report("; ".join(r.title for r in reports),
                        [i for r in reports for i in r.items],
                        [n for r in reports for n in r.notes])
        write_text(args.json, json.dumps(merged.to_json(), indent=2) + "\n")
    return 0 if all(r.score == r.max_score for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
