"""A seeded fuzzer of trace input: mutated JSONL traces, strace logs and perf script output
fed to ``mmsim trace import``, ``info`` and ``replay`` in-process.

The rule it checks (issue 14, items 9 and 10): every input either works or fails with one
error line and exit status 1 (2 for a bad command line); no exception escapes
:func:`mmcore.cli.main`. :func:`mutants` turns one well-formed sample into ``n``
deterministic malformed variants (truncation, deleted and duplicated lines, numbers
replaced by extreme or mistyped values, fields removed, bytes that are not UTF-8, deep
nesting, gzip damage); :func:`run_case` runs one through the CLI and classifies the
outcome. ``tools/fuzz_traces.py`` is the command-line driver; the regression tests in
``tests/test_trace_fuzz.py`` run a fixed count of them in CI.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import random
import re
import signal
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

__all__ = ["Mutant", "Outcome", "mutants", "run_case", "EXTREMES", "KINDS", "kind_of"]

#: Values a mutation puts where a number was: bounds, overflows, wrong types.
EXTREMES: tuple[str, ...] = (
    "-1", "0", "4095", "18446744073709551615", "18446744073709551616",
    "99999999999999999999", "-9223372036854775809", "1<<2**63", "1<<9223372036854775808",
    "1<<64", "0x", "x",
    "1.5", "1e308", "NaN", "null", "true", '"x"', "[]", "{}", "0xffffffffffffffffff",
)

#: The input formats, by how ``mmsim trace`` takes them.
KINDS = ("jsonl", "strace", "perf")

_NUMBER = re.compile(r"(?<![\w.])(?:0x[0-9a-fA-F]+|-?\d+)(?![\w.])")


def kind_of(path: Path) -> str:
    """``jsonl``, ``strace`` or ``perf`` from a sample's name."""
    if path.name.endswith((".jsonl", ".jsonl.gz")):
        return "jsonl"
    return "perf" if path.name.startswith("perf") else "strace"


@dataclass(frozen=True)
class Mutant:
    """One malformed input: its bytes, the file name suffix it needs, what was done."""

    data: bytes
    suffix: str
    how: str


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def _swap_number(rng: random.Random, line: str) -> tuple[str, str]:
    spots = list(_NUMBER.finditer(line))
    if not spots:
        return line, "no number"
    m = rng.choice(spots)
    value = rng.choice(EXTREMES)
    return line[:m.start()] + value + line[m.end():], f"number {m[0]} -> {value}"


def _json_field(rng: random.Random, line: str) -> tuple[str, str]:
    """A JSON line with one field deleted, retyped or set to an extreme value."""
    try:
        obj = json.loads(line)
    except ValueError:
        return line, "not JSON"
    if not isinstance(obj, dict) or not obj:
        return line, "not an object"
    key = rng.choice(sorted(obj))
    action = rng.randrange(4)
    if action == 0:
        del obj[key]
        how = f"field {key} deleted"
    elif action == 1:
        obj[key] = json.loads(rng.choice([e for e in EXTREMES if _is_json(e)]))
        how = f"field {key} -> {obj[key]!r}"
    elif action == 2 and isinstance(obj.get("extra"), dict):
        sub = rng.choice(["offset", "file", "fd", "file_flags", "stand_in", "brk_start",
                          "errno", "exec"])
        obj["extra"][sub] = json.loads(rng.choice([e for e in EXTREMES if _is_json(e)]))
        how = f"extra.{sub} -> {obj['extra'][sub]!r}"
    else:
        obj[key] = rng.choice([-(1 << 63), (1 << 64) + 1, 2 ** 80, -1, 1 << 47])
        how = f"field {key} -> {obj[key]}"
    return json.dumps(obj) + "\n", how


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _mutate_text(rng: random.Random, text: str, kind: str) -> tuple[bytes, str]:
    lines = _lines(text) or ["\n"]
    i = rng.randrange(len(lines))
    choice = rng.randrange(9)
    if choice == 0:
        cut = rng.randrange(len(text.encode()) or 1)
        return text.encode()[:cut], f"truncated at byte {cut}"
    if choice == 1:
        del lines[i]
        return "".join(lines).encode(), f"line {i + 1} deleted"
    if choice == 2:
        j = rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
        return "".join(lines).encode(), f"lines {i + 1} and {j + 1} swapped"
    if choice == 3:
        raw = bytearray(text.encode()) or bytearray(b"\n")
        for _ in range(rng.randint(1, 4)):
            raw[rng.randrange(len(raw))] = rng.choice([0xFF, 0xC3, 0x80, 0x00, 0xFE])
        return bytes(raw), "bytes replaced (not UTF-8)"
    if choice == 4:
        depth = rng.choice([1000, 100_000])
        lines.insert(i, "[" * depth + "\n")
        return "".join(lines).encode(), f"{depth}-deep nesting at line {i + 1}"
    if choice == 5 and kind == "jsonl":
        lines[i], how = _json_field(rng, lines[i])
        return "".join(lines).encode(), f"line {i + 1}: {how}"
    if choice == 6 and kind != "jsonl":
        # Drop one "key=value" or one argument: the shape tools never print.
        line = lines[i]
        spots = list(re.finditer(r"\s\w+=\S+|\s\w+: \S+|,[^,()]*", line))
        if spots:
            m = rng.choice(spots)
            lines[i] = line[:m.start()] + line[m.end():]
        return "".join(lines).encode(), f"line {i + 1}: a field removed"
    if choice == 7:
        lines.insert(i, rng.choice(["garbage\n", "{\n", "}\n", "\x00\n", "-\n",
                                    "mmap(\n", "x 1/1 [0] 1.0: a:b:\n"]))
        return "".join(lines).encode(), f"garbage line inserted at {i + 1}"
    for _ in range(rng.randint(1, 3)):
        j = rng.randrange(len(lines))
        lines[j], how = _swap_number(rng, lines[j])
    return "".join(lines).encode(), f"numbers replaced ({how}, ...)"


def mutants(sample: Path, n: int, seed: int = 0) -> Iterator[Mutant]:
    """``n`` malformed variants of ``sample``, the same for the same seed. JSONL samples
    also get gzip variants: a valid gzip of a mutant, truncated gzip, garbage ``.gz``."""
    kind = kind_of(sample)
    text = sample.read_text(encoding="utf-8")
    rng = random.Random(f"{sample.name}:{seed}")
    suffix = ".jsonl" if kind == "jsonl" else ".txt"
    for _ in range(n):
        data, how = _mutate_text(rng, text, kind)
        if kind == "jsonl" and rng.random() < 0.15:
            packed = gzip.compress(data, mtime=0)
            gz = rng.randrange(3)
            if gz == 0:
                yield Mutant(packed, ".jsonl.gz", f"gzip of: {how}")
            elif gz == 1:
                cut = rng.randrange(1, len(packed))
                yield Mutant(packed[:cut], ".jsonl.gz", f"gzip truncated at byte {cut}")
            else:
                yield Mutant(data, ".jsonl.gz", f"not gzip: {how}")
            continue
        yield Mutant(data, suffix, how)


@dataclass
class Outcome:
    """How the CLI took one input: ``ok``, ``clean`` (one error line, exit 1 or 2),
    ``messy`` (an error that is not one line, or a wrong status), ``traceback`` (an
    exception escaped) or ``timeout``."""

    verdict: str
    status: int | None
    stderr: str
    command: list[str]
    detail: str = ""


class _Timeout(BaseException):
    """Raised by the alarm when one input runs past its budget."""


def _alarm(_signum: int, _frame: FrameType | None) -> None:
    raise _Timeout


def _run(argv: list[str], timeout: float) -> Outcome:
    from mmcore.cli import main

    out, err = io.StringIO(), io.StringIO()
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(argv)
    except _Timeout:
        return Outcome("timeout", None, err.getvalue(), argv, f"over {timeout:g} s")
    except Exception:  # exactly what the fuzzer hunts: report it, do not stop
        return Outcome("traceback", None, err.getvalue(), argv,
                       traceback.format_exc(limit=-3))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    text = err.getvalue()
    if status == 0:
        return Outcome("ok", 0, text, argv)
    lines = [ln for ln in text.splitlines() if ln.strip()]
    one_line = len(lines) == 1 and lines[0].startswith("mmsim: error: ")
    if status in (1, 2) and one_line and "Traceback" not in text:
        return Outcome("clean", status, text, argv)
    return Outcome("messy", status, text, argv, text[-300:])


def run_case(path: Path, kind: str, workdir: Path, timeout: float = 10.0,
             on_step: Callable[[Outcome], None] | None = None) -> Outcome:
    """Run one input through the CLI: ``trace import`` for strace and perf text, then
    ``trace info`` and ``trace replay --check-walks 2`` of the trace. The first step that
    is not ``ok`` decides the outcome (``on_step`` sees every step)."""
    steps: list[list[str]] = []
    trace = path
    if kind != "jsonl":
        trace = workdir / (path.name + ".out.jsonl")
        steps.append(["trace", "import", str(path), "--from", kind, "-o", str(trace)])
    steps.append(["trace", "info", str(trace), "--json"])
    steps.append(["trace", "replay", str(trace), "--check-walks", "2"])
    outcome = Outcome("ok", 0, "", [])
    for argv in steps:
        outcome = _run(argv, timeout)
        if on_step is not None:
            on_step(outcome)
        if outcome.verdict != "ok":
            return outcome
    return outcome
