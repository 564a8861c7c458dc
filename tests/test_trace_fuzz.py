"""Issue 14 item 10 (second half): mutated traces, strace logs and perf output through
``mmsim trace import``, ``info`` and ``replay``: every input works or fails with one error
line. A fixed, seeded count per sample keeps this to a few seconds in CI; the findings it
made are the named regressions in tests/test_cli_errors.py (deep JSON, truncated gzip)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from mmcore.testing.tracefuzz import Outcome, kind_of, mutants, run_case

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted((ROOT / "examples" / "traces").glob("*.jsonl")) + \
    sorted((ROOT / "tests" / "data").glob("*.txt"))
#: Mutants per sample per CI run (150 inputs, about 5 s together).
PER_SAMPLE = 15


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_mutated_input_works_or_fails_with_one_line(sample: Path, tmp_path: Path) -> None:
    """No mutant makes an exception escape mmsim, or an error of more than one line."""
    bad: list[tuple[str, Outcome]] = []
    seen: Counter[str] = Counter()
    for i, m in enumerate(mutants(sample, PER_SAMPLE, seed=1)):
        path = tmp_path / f"m{i}{m.suffix}"
        path.write_bytes(m.data)
        outcome = run_case(path, kind_of(sample), tmp_path, timeout=20)
        seen[outcome.verdict] += 1
        if outcome.verdict not in ("ok", "clean"):
            bad.append((m.how, outcome))
    assert not bad, "\n".join(f"{how}: {o.verdict}: {o.detail or o.stderr}" for how, o in bad)
    assert sum(seen.values()) >= PER_SAMPLE


def test_mutants_are_deterministic_and_malformed() -> None:
    """The same seed gives the same inputs (a finding can be replayed); the mutants
    differ from the sample."""
    sample = ROOT / "examples" / "traces" / "mmtoy.jsonl"
    first = list(mutants(sample, 20, seed=3))
    assert first == list(mutants(sample, 20, seed=3))
    original = sample.read_bytes()
    assert sum(m.data != original for m in first) >= 18
    assert {m.suffix for m in list(mutants(sample, 60, seed=3))} >= {".jsonl", ".jsonl.gz"}


def test_the_fuzzer_reports_an_escaped_exception_as_a_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The classification can fail: an exception out of mmsim is a ``traceback``."""
    from mmcore.experiments import trace as trace_mod

    def boom(path: object) -> object:
        raise ZeroDivisionError("found one")

    monkeypatch.setattr(trace_mod, "read_trace", boom)
    monkeypatch.setattr("mmcore.experiments.trace_cli.read_trace", boom)
    outcome = run_case(ROOT / "examples" / "traces" / "mmtoy.jsonl", "jsonl", tmp_path)
    assert outcome.verdict == "traceback" and "ZeroDivisionError" in outcome.detail
