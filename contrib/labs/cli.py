"""``mmsim lab``: the lab kit on mmsim's command line.

    mmsim lab list                                   the exercises
    mmsim lab show EXERCISE --seed N [--answers]     an exercise (and its answers)
    mmsim lab template EXERCISE --seed N             a blank answer file on stdout
    mmsim lab template EXERCISE --roster R --out DIR one per student, with their seed
    mmsim lab grade PATH... [--roster R] [--out DIR] grade a class (files, dirs, zips)

Each subcommand is added by one function in :data:`SUBCOMMANDS` (``add(subparsers)``,
setting ``func(args) -> int``), so a module can add its own (``notebook``, ``export``) by
appending its adder there. Errors and exit statuses are mmsim's: one line on stderr, 1
for an input that cannot be used or an output that cannot be written, 2 for a bad
command line. ``mmsim lab grade`` exits 0 when every submission was graded (whatever the
scores; a malformed file, a timeout or a crash is graded as that student's failure) and
1 when the grader itself failed on a submission.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TypeAlias

from mmcore.atomicfile import write_text
from mmcore.cli import Failure, UsageError, add_json_option, announce, positive, print_json
from mmcore.errors import ConfigError, PluginError

from .classroom import (
    STATUSES,
    Options,
    RosterEntry,
    collect,
    grade_class,
    progress_line,
    read_roster,
    roster_rows,
    safe_names,
    write_outputs,
)
from .exercises import EXERCISES, Exercise, make

__all__ = ["add_lab_command", "SUBCOMMANDS", "DEFAULT_OUT"]

SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
DEFAULT_OUT = Path("grades")


def _exercise_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("exercise", choices=list(EXERCISES), help="an exercise (mmsim lab list)")
    p.add_argument("--seed", type=int, default=0, help="the exercise's seed")
    p.add_argument("--rmap", default=None,
                   help="rmap scheme (default anon_vma_chain; for rmap: chosen by the seed)")


def _exercise(args: argparse.Namespace, seed: int) -> Exercise:
    """The exercise the command line names; an unknown ``--rmap`` is a usage error."""
    try:
        return make(args.exercise, seed, rmap=args.rmap)
    except (ConfigError, PluginError) as exc:
        raise UsageError(str(exc)) from None


def _cmd_list(args: argparse.Namespace) -> int:
    if args.json:
        print_json({name: summary for name, (_, summary) in EXERCISES.items()})
        return 0
    for name, (_, summary) in EXERCISES.items():
        print(f"{name:12} {summary}")
    return 0


def _add_list(sub: SubParsers) -> None:
    p = sub.add_parser("list", help="the exercises")
    add_json_option(p)
    p.set_defaults(func=_cmd_list)


def _cmd_show(args: argparse.Namespace) -> int:
    ex = _exercise(args, args.seed)
    if args.json:
        print_json({**ex.template(), "answers": ex.answer_key() if args.answers else None,
                    "questions": {q.key: q.prompt for q in ex.questions}})
    else:
        sys.stdout.write(ex.text(answers=args.answers))
    return 0


def _add_show(sub: SubParsers) -> None:
    p = sub.add_parser("show", help="an exercise: its scenario and questions")
    _exercise_options(p)
    p.add_argument("--answers", "-c", action="store_true",
                   help="also the answers the simulator computes, and why")
    add_json_option(p)
    p.set_defaults(func=_cmd_show)


def _cmd_template(args: argparse.Namespace) -> int:
    if args.roster is None:
        if args.out is not None:
            raise UsageError("--out needs --roster (one template per student)")
        print(json.dumps(_exercise(args, args.seed).template(), indent=2))
        return 0
    roster = _roster(args.roster)
    out = Path(args.out or "templates")
    if args.out is None:
        announce(out, "one answer template per student", "the default; --out DIR")
    out.mkdir(parents=True, exist_ok=True)
    names = safe_names(roster)
    for student, entry in roster.items():
        seed = args.seed if entry.seed is None else entry.seed
        ex = _exercise(args, seed)
        write_text(out / f"{names[student]}_{args.exercise}.json",
                   json.dumps(ex.template(), indent=2) + "\n")
    print(f"wrote {len(roster)} templates to {out}")
    return 0


def _add_template(sub: SubParsers) -> None:
    p = sub.add_parser("template", help="a blank answer file (or one per student)")
    _exercise_options(p)
    p.add_argument("--roster", default=None, metavar="CSV",
                   help="write one template per student, with the seed the roster assigns "
                        "(--seed for students without one)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="with --roster: the directory (default templates, created if "
                        "missing)")
    p.set_defaults(func=_cmd_template)


def _roster(path: str) -> dict[str, RosterEntry]:
    try:
        return read_roster(path)
    except ValueError as exc:
        raise Failure(str(exc)) from None


def _cmd_grade(args: argparse.Namespace) -> int:
    try:
        pattern = re.compile(args.id_pattern) if args.id_pattern else None
    except re.error as exc:
        raise UsageError(f"--id-pattern {args.id_pattern!r}: {exc}") from None
    roster = _roster(args.roster) if args.roster else None
    if args.student is not None and pattern is not None:
        raise UsageError("--student and --id-pattern exclude each other")
    try:
        submissions, skipped = collect(args.paths, pattern, args.student)
    except ValueError as exc:
        raise Failure(str(exc)) from None
    if not submissions and not roster:
        raise Failure(f"no submissions (.json or .py files) in {' '.join(args.paths)}")
    out = Path(args.out or DEFAULT_OUT)
    if args.out is None:
        announce(out, "the roster, reports and results.json files", "the default; --out DIR")
    out.mkdir(parents=True, exist_ok=True)
    opts = Options(timeout=args.timeout, test_timeout=args.test_timeout or None,
                   memory=args.memory, jobs=args.jobs, quick=args.quick,
                   reveal=args.reveal, points=args.points)
    for student, source in skipped:
        print(f"mmsim: skipping {source} ({student}): not a .json or .py file",
              file=sys.stderr)
    show = None if args.json else (lambda g: print(progress_line(g), flush=True))
    result = grade_class(submissions, roster, opts, skipped, progress=show)
    path = write_outputs(result, out)
    if args.json:
        header, rows = roster_rows(result)
        print_json({"roster": str(path), "seconds": round(result.seconds, 2),
                    "all_graded": result.all_graded,
                    "students": [dict(zip(header, r, strict=True)) for r in rows]})
    else:
        print(f"{len(result.students)} students, {len(submissions)} files graded in "
              f"{result.seconds:.1f} s; roster: {path}")
        counts = Counter(row.status for row in result.students)
        print("statuses: " + ", ".join(f"{s} {counts[s]}" for s in STATUSES if counts[s]))
        for row in result.students:
            if row.status != "graded" or row.reason:
                print(f"  {row.student}: {row.status}: {row.reason}")
    return 0 if result.all_graded else 1


def _add_grade(sub: SubParsers) -> None:
    p = sub.add_parser(
        "grade", help="grade a class: answer files and rmap plugins, one student per file",
        description="Grade every .json answer file and .py rmap plugin under PATHs (files, "
                    "directories, zip exports), each in its own process with a timeout and "
                    "a memory limit, and write OUT/roster.csv, OUT/reports/STUDENT.txt and "
                    "OUT/gradescope/STUDENT/results.json.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="files, directories or zips")
    p.add_argument("--roster", default=None, metavar="CSV",
                   help="students and their seeds (columns student, seed, any others): "
                        "every roster student gets a row, an answer for another seed "
                        "scores 0")
    p.add_argument("--out", default=None, metavar="DIR",
                   help=f"output directory (default {DEFAULT_OUT}, created if missing)")
    p.add_argument("--timeout", type=float, default=Options.timeout, metavar="SECONDS",
                   help="wall time per submission; then its processes are killed")
    p.add_argument("--test-timeout", type=float, default=Options.test_timeout,
                   metavar="SECONDS", help="time per test of a plugin (0: none)")
    p.add_argument("--memory", type=positive, default=Options.memory, metavar="MIB",
                   help="address space per grading process (RLIMIT_AS)")
    p.add_argument("--jobs", type=positive, default=Options.jobs,
                   help="submissions graded at a time")
    p.add_argument("--quick", action="store_true",
                   help="plugins: the built-in checks, not the conformance kit")
    p.add_argument("--reveal", action="store_true", help="expected answers in the feedback")
    p.add_argument("--points", type=positive, default=None,
                   help="the assignment's total, for submissions that cannot be graded "
                        "(default: the largest total graded in the run)")
    p.add_argument("--id-pattern", default=None, metavar="REGEX",
                   help="student id from the path inside the export: group 'id', else "
                        "group 1, else the match")
    p.add_argument("--student", default=None, metavar="ID",
                   help="every file is this one student's (a Gradescope autograder's "
                        "/autograder/submission)")
    add_json_option(p)
    p.set_defaults(func=_cmd_grade)


def _cmd_notebook(args: argparse.Namespace) -> int:
    from . import notebooks

    names = [args.name] if args.name else list(notebooks.LABS)
    try:
        paths = [notebooks.write(n, args.out, teacher=args.teacher) for n in names]
    except ImportError as exc:  # nbformat missing: how to install it
        raise Failure(str(exc)) from None
    for path in paths:
        print(path)
    return 0


def _add_notebook(sub: SubParsers) -> None:
    from .notebooks import LABS

    p = sub.add_parser("notebook", help="write a lab notebook (all four without NAME)")
    p.add_argument("name", nargs="?", choices=list(LABS), metavar="NAME",
                   help=f"one of {', '.join(LABS)} (default: every lab)")
    p.add_argument("--teacher", action="store_true",
                   help="the teacher version, with the answers (NAME_teacher.ipynb)")
    p.add_argument("--out", default=".", metavar="DIR",
                   help="directory to write to (default: the current one)")
    p.set_defaults(func=_cmd_notebook)


def _cmd_export(args: argparse.Namespace) -> int:
    from .stepthrough import WATCH, export_html

    try:
        print(export_html(Path(args.out), rmaps=args.rmap or ["anon_vma_chain"],
                          watch=args.watch or WATCH))
    except (ConfigError, PluginError) as exc:  # an unknown scheme
        raise UsageError(str(exc)) from None
    return 0


def _watch(text: str) -> tuple[str, int]:
    """--watch's type: :func:`~.stepthrough.parse_watch`, imported only when used (the
    step-through pulls in the displays)."""
    from .stepthrough import parse_watch
    return parse_watch(text)


def _add_export(sub: SubParsers) -> None:
    p = sub.add_parser("export", help="the fork-and-COW step-through as one offline HTML "
                                      "file")
    p.add_argument("out", metavar="OUT.html", help="the file to write")
    p.add_argument("--rmap", action="append", metavar="SCHEME",
                   help="scheme to step through; repeat to show several side by side "
                        "(default: anon_vma_chain)")
    p.add_argument("--watch", action="append", type=_watch, metavar="NAME@ADDR",
                   help="a page whose rmap walk to highlight, e.g. p@0x10001000 (repeat; "
                        "default: p@0x10000000, p@0x10001000, c@0x10000000)")
    p.set_defaults(func=_cmd_export)


#: The ``mmsim lab`` subcommands: each adds its parser and sets ``func``.
SUBCOMMANDS: list[Callable[[SubParsers], None]] = [_add_list, _add_show, _add_template,
                                                   _add_grade, _add_notebook, _add_export]


def add_lab_command(subparsers: SubParsers) -> argparse.ArgumentParser:
    """Add ``lab`` and its :data:`SUBCOMMANDS` to mmsim's subcommands; returns the
    ``lab`` parser."""
    lab = subparsers.add_parser("lab", help="the lab kit: exercises, templates, grading",
                                description="Seeded exercises and a grader for a class "
                                            "(docs/labs.md).")
    sub = lab.add_subparsers(dest="lab_command", required=True, metavar="COMMAND",
                             parser_class=type(lab))
    for add in SUBCOMMANDS:
        add(sub)
    return lab
