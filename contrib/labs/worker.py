"""The grading child: grades one submission under resource limits and reports as JSON.

:mod:`mmcore_contrib.labs.classroom` starts one of these per submission::

    python -m mmcore_contrib.labs.worker FILE --kind answers|plugin [--seed N]
        [--memory MIB] [--cpu SECONDS] [--test-timeout SECONDS] [--budget SECONDS]
        [--quick] [--reveal]

It caps its own memory, CPU time and file sizes first (:func:`limits.limit_resources`),
then moves its standard output aside: what the submission prints goes to standard error,
and the one JSON result goes to the original standard output. A student's plugin runs
here, so whatever it changes (the exercise generators, the grader's functions, the
checks) dies with this process and never reaches the grader or another student.

The result: ``{"status", "reason", "report"}``, ``report`` in the shape of
:meth:`Report.to_json`. Statuses: ``graded``; ``wrong-seed`` (an answer made for another
seed than ``--seed``, scored 0); ``invalid`` (not UTF-8, not JSON, not an answer file, a
plugin that does not import or defines no scheme); ``timeout`` (the plugin's module took
longer than a test may); ``memory`` (over ``--memory`` outside any one test); ``error``
(the grader itself failed on an answer file: a bug to report, not the student's fault).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .limits import TestTimeout, limit_resources, time_limit

__all__ = ["Outcome", "grade_answer_file", "grade_plugin_file", "find_scheme", "main"]


@dataclass
class Outcome:
    """What grading one submission gave: a status, a one-line reason and the report (a
    :meth:`Report.to_json` document, or ``None`` when nothing could be graded)."""

    status: str
    reason: str = ""
    report: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON the grader reads back."""
        return {"status": self.status, "reason": self.reason, "report": self.report}


def _entries(data: Any) -> list[dict[str, Any]]:
    """The answer file's submissions (one object or a list of them), checked for shape."""
    entries = data if isinstance(data, list) else [data]
    if not entries:
        raise ValueError("the file holds an empty list, no answers")
    for n, entry in enumerate(entries, 1):
        where = f"entry {n}" if isinstance(data, list) else "the file"
        if not isinstance(entry, dict):
            raise ValueError(f"{where} is a JSON {type(entry).__name__}, not an object "
                             "with exercise, seed and answers")
        missing = [k for k in ("exercise", "seed", "answers") if k not in entry]
        if missing:
            raise ValueError(f"{where} has no {', '.join(missing)} (start from "
                             "`mmsim lab template`)")
        if not isinstance(entry["answers"], dict):
            raise ValueError(f"{where}: answers is not an object")
        if isinstance(entry["seed"], bool) or not isinstance(entry["seed"], int | str):
            raise ValueError(f"{where}: seed {entry['seed']!r} is not an integer")
        try:
            int(entry["seed"])
        except ValueError:
            raise ValueError(f"{where}: seed {entry['seed']!r} is not an integer") from None
    return entries


def grade_answer_file(path: Path, assigned_seed: int | None = None,
                      reveal: bool = False) -> Outcome:
    """Grade a JSON answer file. With ``assigned_seed``, an entry made for another seed
    scores 0 (the reason says what it would have scored, for the teacher to judge)."""
    from .grader import Item, Report, grade_exercise

    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
        entries = _entries(data)
    except UnicodeDecodeError as exc:
        return Outcome("invalid", f"not UTF-8 text (byte {exc.start})")
    except json.JSONDecodeError as exc:
        return Outcome("invalid", f"not JSON: {exc.msg} (line {exc.lineno}, column "
                                  f"{exc.colno})")
    except RecursionError:
        return Outcome("invalid", "not an answer file: JSON nested too deeply")
    except ValueError as exc:  # a shape problem, or an integer too long to convert
        return Outcome("invalid", f"not an answer file: {exc}")
    report = Report(f"Grading {path.name}")
    wrong: list[str] = []
    for entry in entries:
        label = f"{entry['exercise']}/{entry['seed']}"
        try:
            ex, items = grade_exercise(entry, reveal)
        except (KeyError, ValueError, TypeError) as exc:
            report.items.append(Item(label, 0, 1, f"cannot grade this submission: {exc}"))
            continue
        if assigned_seed is not None and ex.seed != assigned_seed:
            earned = sum(i.score for i in items)
            wrong.append(f"{ex.name} was made for seed {ex.seed}, but seed "
                         f"{assigned_seed} is assigned (it would score {earned}/"
                         f"{ex.max_points})")
            report.items.append(Item(f"{ex.name}/{ex.seed}: seed", 0, ex.max_points,
                                     wrong[-1]))
            continue
        report.items += items
    if wrong:
        return Outcome("wrong-seed", "; ".join(wrong), report.to_json())
    return Outcome("graded", "", report.to_json())


def find_scheme(module: Any) -> type:
    """The rmap scheme class a student's module defines (a class whose ``info`` is a
    ``PluginInfo`` of kind ``rmap``); one it imports counts only if it defines none."""
    from mmcore.plugins import PluginInfo

    found = [v for v in vars(module).values() if isinstance(v, type)
             and isinstance(info := getattr(v, "info", None), PluginInfo)
             and info.kind == "rmap"]
    own = [c for c in found if c.__module__ == module.__name__]
    # A subclass chain (Base, Mine(Base)) keeps only its most derived classes.
    candidates = [c for c in own or found
                  if not any(o is not c and issubclass(o, c) for o in own or found)]
    if not candidates:
        raise ValueError("it defines no rmap scheme (a class with info = "
                         "PluginInfo(kind=\"rmap\", ...))")
    if len(candidates) > 1:
        names = ", ".join(sorted(c.__name__ for c in candidates))
        raise ValueError(f"it defines several rmap schemes ({names}): keep one")
    return candidates[0]


def _load_module(path: Path) -> Any:
    # Under a name of its own: a student's json.py must not replace the json module.
    spec = importlib.util.spec_from_file_location(f"student_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ValueError(f"cannot load {path.name} as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def grade_plugin_file(path: Path, quick: bool = False, test_timeout: float | None = None,
                      memory: int | None = None, budget: float | None = None) -> Outcome:
    """Import a student's Python file, find its scheme and grade it: the conformance kit
    (or, ``quick``, the built-in checks), each test bounded by ``test_timeout``
    and all of them by ``budget`` (``memory``, the limit in MiB, is only quoted in the
    reason)."""
    from .grader import grade_plugin

    try:
        with time_limit(test_timeout):
            cls = find_scheme(_load_module(path))
    except TestTimeout:
        return Outcome("timeout", f"importing it took more than {test_timeout:g} s")
    except SyntaxError as exc:
        return Outcome("invalid", f"cannot import it: SyntaxError: {exc.msg} (line "
                                  f"{exc.lineno})")
    except MemoryError:
        raise
    except Exception as exc:
        return Outcome("invalid", f"cannot import it: {type(exc).__name__}: "
                                  f"{_one_line(exc)}")
    report = grade_plugin(cls, kit=False if quick else None, test_timeout=test_timeout,
                          budget=budget)
    return _plugin_outcome(report.to_json(), memory)


def _plugin_outcome(report: dict[str, Any], memory: int | None) -> Outcome:
    """``graded``, unless some tests ran out of time or memory: then ``timeout`` or
    ``memory`` naming them (the points of the other tests stand)."""
    def failing(marker: str) -> list[str]:
        return [t["name"] for t in report["tests"] if marker in t["output"]]

    if hungry := failing("MemoryError"):
        limit = f"its {memory} MiB of memory" if memory else "memory"
        return Outcome("memory", f"ran out of {limit} in: {', '.join(hungry)}", report)
    if slow := failing("TestTimeout:"):
        return Outcome("timeout", f"tests that ran out of time: {', '.join(slow)}", report)
    return Outcome("graded", "", report)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] or type(exc).__name__


def _grade(args: argparse.Namespace) -> Outcome:
    path = Path(args.file)
    try:
        if args.kind == "plugin":
            return grade_plugin_file(path, args.quick, args.test_timeout, args.memory,
                                     args.budget)
        return grade_answer_file(path, args.seed, args.reveal)
    except MemoryError:
        return Outcome("memory", f"ran out of its {args.memory} MiB of memory")
    except Exception as exc:
        if args.kind == "plugin":  # the student's code raised it, outside any one test
            return Outcome("crashed", f"{type(exc).__name__}: {_one_line(exc)}")
        where = traceback.extract_tb(exc.__traceback__)[-1]
        return Outcome("error", f"grader error {type(exc).__name__}: {_one_line(exc)} "
                                f"({Path(where.filename).name}:{where.lineno})")


def main(argv: Sequence[str] | None = None) -> int:
    """Grade one submission; the JSON result goes to the original standard output."""
    parser = argparse.ArgumentParser(prog="python -m mmcore_contrib.labs.worker")
    parser.add_argument("file")
    parser.add_argument("--kind", choices=["answers", "plugin"], required=True)
    parser.add_argument("--seed", type=int, default=None, help="the assigned seed")
    parser.add_argument("--memory", type=int, default=512, help="address space, MiB")
    parser.add_argument("--cpu", type=int, default=600, help="CPU seconds")
    parser.add_argument("--test-timeout", type=float, default=None)
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds for all the tests of a plugin")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reveal", action="store_true")
    args = parser.parse_args(argv)
    limit_resources(args.memory, args.cpu)
    result = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # the submission's prints go to stderr, not into the result
    outcome = _grade(args)
    result.write(json.dumps(outcome.to_json()) + "\n")
    result.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
