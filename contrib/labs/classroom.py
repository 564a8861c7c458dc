"""Grading a whole class: many submissions, one child process each, one row per student.

:func:`collect` gathers submissions from files, directories and zip files (as learning
platforms export them: one student per file, the student id in the file name);
:func:`read_roster` reads the seeds the teacher assigned; :func:`grade_class` grades every
submission in its own :mod:`~mmcore_contrib.labs.worker` process (``jobs`` at a time)
under a wall-clock timeout, a per-test timeout and a memory limit; :func:`write_outputs`
writes a report per student, the roster CSV and a Gradescope ``results.json`` per
student. A malformed or hostile file, a crash, a loop or a memory blow-up is that
student's failure, scored and explained in one line; the others are graded regardless.

Student ids, unless ``id_pattern`` says otherwise: the file's top directory inside the
export, or else its file name without the extension, up to the first ``_`` (Canvas
``smithjohn_12345_67890_answers.json`` and Moodle ``John Smith_123456_assignsubmission_
file_/answers.json`` give ``smithjohn`` and ``John Smith``); Gradescope's
``submission_12345/`` gives ``12345``.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from mmcore.atomicfile import atomic_open, write_text

from .grader import Item, Report

__all__ = [
    "Submission", "RosterEntry", "Options", "Graded", "StudentResult", "ClassResult",
    "collect", "student_id", "read_roster", "grade_submission", "grade_class",
    "write_outputs", "Sessions", "STATUSES",
]

#: Every status a submission or student can get, from best to worst: a student's status
#: is the worst of their files'. ``error`` (the grader's own failure) alone means "not
#: graded" and makes ``mmsim lab grade`` exit 1.
STATUSES = ("graded", "wrong-seed", "invalid", "timeout", "memory", "crashed", "missing",
            "error")
#: Submissions larger than this are not run (an answer file is a few KiB).
MAX_BYTES = 1 << 20
#: How much of a child's output the grader reads back.
MAX_OUTPUT = 4 << 20
KINDS = {".json": "answers", ".py": "plugin"}
#: Files of an export that are not students' work (Gradescope's metadata, macOS's).
IGNORED = re.compile(r"(^|/)(\.|__MACOSX/)|(^|/)submission_metadata\.yml$")


@dataclass
class Submission:
    """One student's file: where it came from, its kind (``answers`` or ``plugin``) and
    its bytes (``None`` with ``problem`` when it cannot be read or is too large)."""

    student: str
    #: The path inside the export (a directory or zip), with ``/`` separators.
    relpath: str
    source: str
    kind: str
    data: bytes | None
    problem: str = ""

    @property
    def filename(self) -> str:
        """The file's own name, without the export's directories."""
        return PurePosixPath(self.relpath).name


def student_id(relpath: str, pattern: re.Pattern[str] | None = None) -> str:
    """The student a file belongs to (see the module docstring). ``pattern``: a regex
    searched in the path inside the export; its group ``id``, else its first group,
    else its match is the id (a path it does not match falls back to the default)."""
    if pattern is not None:
        match = pattern.search(relpath)
        if match:
            if "id" in pattern.groupindex:
                return match.group("id")
            return match.group(1) if pattern.groups else match.group(0)
    parts = PurePosixPath(relpath).parts
    name = parts[0] if len(parts) > 1 else PurePosixPath(parts[-1]).stem
    if name.startswith("submission_"):
        return name[len("submission_"):]
    return name.split("_", 1)[0] or name


def _read_capped(read: Callable[[int], bytes], size: int) -> tuple[bytes | None, str]:
    if size > MAX_BYTES:
        return None, f"file too large ({size} bytes; the limit is {MAX_BYTES})"
    data = read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:  # a zip member whose header lied about its size
        return None, f"file too large (over {MAX_BYTES} bytes)"
    return data, ""


def _zip_members(path: Path) -> Iterable[tuple[str, bytes | None, str]]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ValueError(f"{path}: not a readable zip file ({exc})") from None
    with archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            try:
                with archive.open(info) as fh:
                    data, problem = _read_capped(fh.read, info.file_size)
            except (zipfile.BadZipFile, OSError, NotImplementedError, RuntimeError) as exc:
                data, problem = None, f"cannot unpack it from {path.name}: {exc}"
            yield info.filename, data, problem


def _dir_members(root: Path) -> Iterable[tuple[str, bytes | None, str]]:
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        yield file.relative_to(root).as_posix(), *_read_file(file)


def _read_file(file: Path) -> tuple[bytes | None, str]:
    try:
        with file.open("rb") as fh:
            return _read_capped(fh.read, os.fstat(fh.fileno()).st_size)
    except OSError as exc:
        return None, f"cannot read it: {exc.strerror}"


def collect(paths: Sequence[str | Path], id_pattern: re.Pattern[str] | None = None,
            student: str | None = None) -> tuple[list[Submission], list[tuple[str, str]]]:
    """Every submission under ``paths`` (files, directories, zips), and the skipped
    files as ``(student, source)`` (neither ``.json`` nor ``.py``). ``student`` gives every
    file to that one student. Raises ``ValueError`` for a path that does not exist or a
    zip that cannot be opened."""
    found: list[Submission] = []
    skipped: list[tuple[str, str]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            members = _dir_members(path)
            prefix = f"{path}/"
        elif path.suffix.lower() == ".zip":
            members = _zip_members(path)
            prefix = f"{path}:"
        elif path.is_file():
            members = iter([(path.name, *_read_file(path))])
            prefix = f"{path.parent}/" if str(path.parent) != "." else ""
        else:
            raise ValueError(f"{path}: no such file or directory")
        for rel, data, problem in members:
            if IGNORED.search(rel):
                continue
            who = student if student is not None else student_id(rel, id_pattern)
            kind = KINDS.get(PurePosixPath(rel).suffix.lower())
            if kind is None:
                skipped.append((who, prefix + rel))
                continue
            found.append(Submission(who, rel, prefix + rel, kind, data, problem))
    return found, skipped


# --- the roster ---------------------------------------------------------------------


@dataclass
class RosterEntry:
    """A roster line: the student, their assigned seed (``None`` if the cell is empty)
    and the other columns (name, email...), kept for the output roster."""

    student: str
    seed: int | None
    extra: dict[str, str] = field(default_factory=dict)


def read_roster(path: str | Path) -> dict[str, RosterEntry]:
    """Read a roster CSV with a header naming at least ``student`` (and usually
    ``seed``). Raises ``ValueError`` with ``FILE:LINE: what is wrong``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a spreadsheet's BOM is fine
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    reader = csv.reader(text.splitlines())
    header = [h.strip().lower() for h in next(reader, [])]
    if "student" not in header:
        raise ValueError(f"{path}:1: the header has no 'student' column (got "
                         f"{', '.join(header) or 'an empty line'})")
    roster: dict[str, RosterEntry] = {}
    lines: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise ValueError(f"{path}:{line}: {len(row)} cells, the header has "
                             f"{len(header)}")
        cells = {h: c.strip() for h, c in zip(header, row, strict=True)}
        student = cells.pop("student")
        seed_text = cells.pop("seed", "")
        if not student:
            raise ValueError(f"{path}:{line}: no student id")
        if student in roster:
            raise ValueError(f"{path}:{line}: student {student!r} is listed twice (first "
                             f"on line {lines[student]})")
        try:
            seed = int(seed_text) if seed_text else None
        except ValueError:
            raise ValueError(f"{path}:{line}: seed {seed_text!r} is not an integer"
                             ) from None
        roster[student] = RosterEntry(student, seed, cells)
        lines[student] = line
    return roster


# --- grading ------------------------------------------------------------------------


@dataclass
class Options:
    """How to grade: ``timeout`` wall seconds per submission (then the child's process
    group is killed), ``test_timeout`` seconds per test inside it, ``memory`` MiB of
    address space per child, ``jobs`` children at a time, ``quick`` (built-in checks, not
    the conformance kit), ``reveal`` (expected answers in the feedback), ``points`` (the
    assignment's total, given to a submission that cannot be graded; default the largest
    total graded in the run)."""

    timeout: float = 600.0
    test_timeout: float | None = 60.0
    memory: int = 1024
    jobs: int = 2
    quick: bool = False
    reveal: bool = False
    points: int | None = None


@dataclass
class Graded:
    """One submission's result: status, one-line reason, report (``None`` when nothing
    was graded) and the wall time it took."""

    submission: Submission
    status: str
    reason: str = ""
    report: Report | None = None
    seconds: float = 0.0


def _tail(data: bytes) -> str:
    lines = [ln for ln in data.decode("utf-8", "replace").splitlines() if ln.strip()]
    return " ".join(lines[-1].split())[:200] if lines else ""


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _read_result(out: bytes) -> tuple[str, str, Report | None]:
    doc = json.loads(out.decode("utf-8").strip().splitlines()[-1])
    status, reason = str(doc["status"]), str(doc.get("reason", ""))
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}")
    report = None if doc.get("report") is None else Report.from_json(doc["report"])
    return status, reason, report


def _worker_command(file: Path, sub: Submission, seed: int | None, opts: Options
                    ) -> list[str]:
    # -P: the child's directory is not put on sys.path (nothing there to import).
    cmd = [sys.executable, "-P", "-m", "mmcore_contrib.labs.worker", str(file), "--kind",
           sub.kind, "--memory", str(opts.memory), "--cpu", str(int(opts.timeout) + 5)]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    if opts.test_timeout is not None:
        cmd += ["--test-timeout", str(opts.test_timeout)]
    # The tests stop in time for the child to report before the kill: a second or so
    # of start-up, and a tenth of the timeout to write the result.
    cmd += ["--budget", f"{max(1.0, opts.timeout * 0.9 - 1.0):g}"]
    return cmd + ["--quick"] * opts.quick + ["--reveal"] * opts.reveal


class Sessions:
    """The grading children alive now, each the leader of its own session. A child's
    pid stays in :attr:`live` until it has been killed (with its whole session) and not
    yet reaped, so that a kill never reaches a recycled pid; :meth:`kill_all` is what
    Ctrl-C in the grader does."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.live: set[int] = set()

    def start(self, cmd: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        """Start ``cmd`` as a session leader and remember it."""
        with self._lock:
            child = subprocess.Popen(cmd, start_new_session=True, **kwargs)
            self.live.add(child.pid)
        return child

    def end(self, child: subprocess.Popen[bytes]) -> None:
        """Kill whatever is left in the child's session (the child itself, or processes
        it started), forget it, then reap it."""
        with self._lock:
            self._kill(child.pid)
            self.live.discard(child.pid)
        child.wait()

    def kill_all(self) -> None:
        """Kill every live child's session (they are reaped by :meth:`end`)."""
        with self._lock:
            for pid in self.live:
                self._kill(pid)

    @staticmethod
    def _kill(pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):  # the session is already empty
            os.killpg(pid, signal.SIGKILL)


def grade_submission(sub: Submission, seed: int | None, opts: Options,
                     sessions: Sessions | None = None) -> Graded:
    """Grade one submission in a fresh child process under ``opts``' limits. Never
    raises for anything the submission does."""
    if sub.data is None:
        return Graded(sub, "invalid", sub.problem)
    sessions = sessions or Sessions()
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mmsim-lab-") as scratch:
        # A copy, so that the child never sees the export itself, in a directory of its
        # own, so that a student's random.py cannot shadow the standard library's.
        safe = re.sub(r"[^A-Za-z0-9_]", "_", PurePosixPath(sub.filename).stem) or "sub"
        (Path(scratch) / "submission").mkdir()
        file = Path(scratch) / "submission" / \
            f"{safe}{PurePosixPath(sub.filename).suffix.lower()}"
        file.write_bytes(sub.data)
        out_path, err_path = Path(scratch) / "out", Path(scratch) / "err"
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}
        with out_path.open("wb") as out, err_path.open("wb") as err:
            child = sessions.start(_worker_command(file, sub, seed, opts),
                                   stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                   cwd=scratch, env=env)
            code = _wait(child, opts.timeout, sessions)
        seconds = time.monotonic() - start
        stdout = out_path.read_bytes()[:MAX_OUTPUT]
        stderr = err_path.read_bytes()[-MAX_OUTPUT:]
    if code is None:
        return Graded(sub, "timeout", f"still running after {opts.timeout:g} s: killed",
                      seconds=seconds)
    try:
        status, reason, report = _read_result(stdout)
    except (ValueError, KeyError, TypeError, IndexError):
        return Graded(sub, *_no_result(sub, code, stderr, opts), seconds=seconds)
    return Graded(sub, status, reason, report, seconds)


def _wait(child: subprocess.Popen[bytes], timeout: float, sessions: Sessions
          ) -> int | None:
    """Wait up to ``timeout`` for the child to exit (through a pidfd, which does not reap
    it), end its session, and return its exit status (``None``: it ran out of time)."""
    pidfd = os.pidfd_open(child.pid)
    try:
        exited = bool(select.select([pidfd], [], [], timeout)[0])
    finally:
        os.close(pidfd)
        sessions.end(child)
    return child.returncode if exited else None


def _no_result(sub: Submission, code: int, stderr: bytes, opts: Options
               ) -> tuple[str, str]:
    """Status and reason for a child that ended without a readable result."""
    last = _tail(stderr)
    if "MemoryError" in last:
        return "memory", f"ran out of its {opts.memory} MiB of memory"
    if code == -signal.SIGXCPU:
        return "timeout", f"used more than {int(opts.timeout) + 5} s of CPU: killed"
    how = f"killed by {_signal_name(-code)}" if code < 0 else f"exited with status {code}"
    # An answer file runs none of the student's code: a crash there is the grader's.
    status = "crashed" if sub.kind == "plugin" else "error"
    return status, f"{how} without a result" + (f": {last}" if last else "")


# --- per-student results --------------------------------------------------------------


@dataclass
class StudentResult:
    """A roster row: one student, their roster entry (if any) and their graded files."""

    student: str
    entry: RosterEntry | None
    graded: list[Graded] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    #: Whether there is a roster to be on (grading without one flags nobody).
    rostered: bool = True
    #: Points available of each graded file, or of the missing submission, once
    #: :meth:`ClassResult.finish` has set them.
    totals: list[int] = field(default_factory=list)

    @property
    def seed(self) -> int | None:
        """The assigned seed, if the roster gives one."""
        return None if self.entry is None else self.entry.seed

    @property
    def status(self) -> str:
        """The worst status among the student's files (``missing`` if none)."""
        if not self.graded:
            return "missing"
        return max((g.status for g in self.graded), key=STATUSES.index)

    @property
    def score(self) -> int:
        """Points earned over all files."""
        return sum(g.report.score for g in self.graded if g.report is not None)

    @property
    def max_score(self) -> int:
        """Points available over all files."""
        return sum(self.totals)

    @property
    def flags(self) -> list[str]:
        """Things a teacher should look at beyond the score."""
        out = ["not on the roster"] if self.entry is None and self.rostered else []
        if len(self.graded) > 1:
            out.append(f"{len(self.graded)} files")
        return out

    @property
    def reason(self) -> str:
        """One line: what went wrong with each file that was not simply graded."""
        parts = [self._label(g, g.reason) for g in self.graded if g.reason]
        if not self.graded:
            parts.append("no submission" + (f" (skipped: {', '.join(self.skipped)})"
                                            if self.skipped else ""))
        return "; ".join(parts + self.flags)

    def _label(self, g: Graded, text: str) -> str:
        """``text``, after the file's name when the student handed in several files."""
        return f"{g.submission.filename}: {text}" if len(self.graded) > 1 else text

    def report(self) -> Report:
        """The student's report: every file's items, a failed file as one item."""
        out = Report(f"{self.student}: {self.score}/{self.max_score}"
                     + (f" (seed {self.seed})" if self.seed is not None else ""))
        if not self.graded:
            out.items.append(Item("submission", 0, self.max_score, self.reason))
        for g, total in zip(self.graded, self.totals, strict=False):
            name = g.submission.filename
            if g.reason:
                out.notes.append(self._label(g, f"{g.status}: {g.reason}"))
            if g.report is None:
                out.items.append(Item(name, 0, total, f"{g.status}: {g.reason}"))
                continue
            out.notes += [self._label(g, g.report.title), *g.report.notes]
            out.items += [Item(self._label(g, i.name), i.score, i.max_score, i.feedback)
                          for i in g.report.items]
            if total > g.report.max_score:  # stopped early (e.g. at "loads")
                out.items.append(Item(self._label(g, "not run"), 0,
                                      total - g.report.max_score,
                                      "the tests after the first failure did not run"))
        return out


@dataclass
class ClassResult:
    """Every student's row, in student order, and how long the run took."""

    students: list[StudentResult]
    seconds: float = 0.0

    @property
    def all_graded(self) -> bool:
        """True when every submission got a score (none hit a grader ``error``)."""
        return all(g.status != "error" for s in self.students for g in s.graded)

    def finish(self, points: int | None) -> None:
        """Give each file its points available: its report's for graded answer files;
        for a failed file or a plugin stopped early, the assignment's total (``points``,
        else the largest total graded of that kind)."""
        best: dict[str, int] = {}
        for g in (g for s in self.students for g in s.graded):
            if g.report is not None and g.status == "graded":
                kind = g.submission.kind
                best[kind] = max(best.get(kind, 0), g.report.max_score)
        for s in self.students:
            s.totals = []
            for g in s.graded:
                total = points if points is not None else best.get(g.submission.kind, 0)
                own = g.report.max_score if g.report is not None else 0
                answers = g.submission.kind == "answers" and g.report is not None
                s.totals.append(own if answers else max(own, total))
        overall = points if points is not None else max(
            (s.max_score for s in self.students if s.graded), default=0)
        for s in self.students:
            if not s.graded:
                s.totals = [overall]


def grade_class(submissions: Sequence[Submission], roster: dict[str, RosterEntry] | None,
                opts: Options, skipped: Sequence[tuple[str, str]] = (),
                progress: Callable[[Graded], None] | None = None) -> ClassResult:
    """Grade every submission (``opts.jobs`` children at a time) and return one row per
    student: every roster student and everyone who submitted."""
    start = time.monotonic()
    rostered, roster = roster is not None, roster or {}
    rows: dict[str, StudentResult] = {
        s: StudentResult(s, e) for s, e in roster.items()}
    for student in [sub.student for sub in submissions] + [s for s, _ in skipped]:
        rows.setdefault(student, StudentResult(student, roster.get(student),
                                               rostered=rostered))
    for student, source in skipped:
        rows[student].skipped.append(PurePosixPath(source).name)
    sessions = Sessions()
    pool = ThreadPoolExecutor(max_workers=opts.jobs)
    try:
        futures = [pool.submit(grade_submission, sub, rows[sub.student].seed, opts,
                               sessions) for sub in submissions]
        for future in as_completed(futures):
            if progress is not None:
                progress(future.result())
    except BaseException:  # Ctrl-C: stop at once, not after every timeout has run out
        pool.shutdown(wait=False, cancel_futures=True)
        sessions.kill_all()
        raise
    pool.shutdown()
    order = {id(sub): n for n, sub in enumerate(submissions)}
    for graded in sorted((f.result() for f in futures),
                         key=lambda g: order[id(g.submission)]):
        rows[graded.submission.student].graded.append(graded)
    result = ClassResult([rows[k] for k in sorted(rows)], time.monotonic() - start)
    result.finish(opts.points)
    return result


# --- outputs ------------------------------------------------------------------------


def safe_names(students: Iterable[str]) -> dict[str, str]:
    """A file name per student id (unsafe characters as ``_``; clashes numbered)."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for student in students:
        base = re.sub(r"[^A-Za-z0-9._-]+", "_", student).strip("._") or "student"
        name, n = base, 1
        while name.lower() in used:
            n += 1
            name = f"{base}-{n}"
        used.add(name.lower())
        out[student] = name
    return out


def gradescope_json(row: StudentResult) -> dict[str, Any]:
    """The student's Gradescope ``results.json``: score, max_score, one test per item."""
    report = row.report()
    doc = report.to_json()
    doc["score"], doc["max_score"] = row.score, row.max_score
    doc["execution_time"] = round(sum(g.seconds for g in row.graded), 3)
    return doc


def roster_rows(result: ClassResult) -> tuple[list[str], list[list[str]]]:
    """The roster CSV: a header and one row per student."""
    extra: list[str] = []
    for row in result.students:
        if row.entry is not None:
            extra += [k for k in row.entry.extra if k not in extra]
    header = ["student", *extra, "seed", "score", "max_score", "status", "files", "reason"]
    rows = []
    for row in result.students:
        cells = row.entry.extra if row.entry is not None else {}
        rows.append([row.student, *(cells.get(k, "") for k in extra),
                     "" if row.seed is None else str(row.seed), str(row.score),
                     str(row.max_score), row.status,
                     " ".join(g.submission.filename for g in row.graded), row.reason])
    return header, rows


def write_outputs(result: ClassResult, out: str | Path) -> Path:
    """Write ``OUT/roster.csv``, ``OUT/reports/STUDENT.txt`` and
    ``OUT/gradescope/STUDENT/results.json`` (each file atomically); returns the roster's
    path."""
    out = Path(out)
    names = safe_names(r.student for r in result.students)
    for row in result.students:
        name = names[row.student]
        (out / "reports").mkdir(parents=True, exist_ok=True)
        write_text(out / "reports" / f"{name}.txt", row.report().text())
        (out / "gradescope" / name).mkdir(parents=True, exist_ok=True)
        write_text(out / "gradescope" / name / "results.json",
                   json.dumps(gradescope_json(row), indent=2) + "\n")
    header, rows = roster_rows(result)
    roster = out / "roster.csv"
    with atomic_open(roster, newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return roster


def progress_line(graded: Graded) -> str:
    """One line per graded file, as ``make grade`` prints a test."""
    sub, report = graded.submission, graded.report
    score = f"{report.score}/{report.max_score}" if report is not None else "-"
    why = f": {graded.reason}" if graded.reason else ""
    label = f"{sub.student} {sub.filename} "
    return f"{label:.<48} {graded.status} {score} ({graded.seconds:.1f} s){why}"
