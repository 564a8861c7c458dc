"""Issue 14.10: the scripted audit of generated bad calls finds nothing.

``tools/audit_bad_calls.py`` calls every Process syscall with each argument replaced
by every hostile value of its C type and every wrong-typed value, on an exited process,
and with random pairs of bad arguments; every call must end without an internal
traceback, a poisoned machine, a change before an argument error, or a broken invariant.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

TOOL = Path(__file__).resolve().parents[1] / "tools" / "audit_bad_calls.py"


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("audit_bad_calls", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_14_10_audit_generates_over_500_bad_calls_and_finds_nothing(
        capsys: pytest.CaptureFixture[str]) -> None:
    tool = _tool()
    assert len(tool.generate(seed=0, pairs=50)) > 500
    assert tool.main(["--pairs", "50"]) == 0
    out = capsys.readouterr().out
    assert "internal tracebacks 0, poisoned machines 0, changed before an argument " \
        "error 0, invariant violations 0" in out


def test_14_10_audit_reports_a_finding() -> None:
    # The verdict the audit counts: an exception from inside the core is a finding.
    from mmcore import Machine
    from mmcore.testing.hostile import judge

    m = Machine()
    verdict = judge(m, lambda: m.syscall(lambda: 1 // 0))
    assert verdict.finding and verdict.outcome == "broken"
    assert judge(Machine(), lambda: None).outcome == "ok"
