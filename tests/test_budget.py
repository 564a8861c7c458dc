"""mmcore.budget.time_budget nested in an enclosing alarm (the lab grader's per-test
limit around the conformance kit's per-op budget): the enclosing alarm is never
postponed, goes off once, with its own error."""

from __future__ import annotations

import signal
import time
from types import FrameType

import pytest

from mmcore.budget import time_budget
from mmcore.errors import RunTimeout


class Outer(BaseException):
    """The enclosing alarm's error."""


def spin(seconds: float) -> None:
    """Busy Python code for ``seconds`` (a looping hook)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_a_shorter_enclosing_alarm_goes_off_at_its_time_with_its_error() -> None:
    """Outer 0.3 s around an inner 5 s budget: the outer's error at about 0.3 s (the
    inner budget used to re-arm the timer for its 5 s, postponing it)."""
    start = time.monotonic()
    with pytest.raises(Outer), time_budget(0.3, Outer), time_budget(5):
        spin(10)
    assert time.monotonic() - start < 2


def test_after_the_inner_budget_the_enclosing_alarm_bounds_the_rest_of_the_block() -> None:
    """The inner budget goes off and its error is handled inside the block (as the kit
    shrinks a failure there): the enclosing alarm still goes off in time."""
    start = time.monotonic()
    with pytest.raises(Outer), time_budget(0.6, Outer), time_budget(0.1):
        try:
            spin(10)
        except RunTimeout:
            spin(10)
    assert time.monotonic() - start < 2


def test_the_enclosing_handler_runs_once() -> None:
    """A plain SIGALRM handler around a budget: called once, at its time, and not again
    after the budget ends."""
    calls: list[float] = []
    start = time.monotonic()

    def handler(_signum: int, _frame: FrameType | None) -> None:
        calls.append(time.monotonic() - start)
        raise Outer

    previous = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        with pytest.raises(Outer), time_budget(5):
            spin(10)
        spin(0.4)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert len(calls) == 1 and calls[0] < 1.5


def test_an_inner_budget_shorter_than_the_enclosing_one_still_goes_off_first() -> None:
    """The usual case is unchanged: the inner RunTimeout, and the enclosing alarm resumes
    afterwards with what it has left."""
    with time_budget(1.0, Outer):
        with pytest.raises(RunTimeout), time_budget(0.1):
            spin(10)
        left, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 0.5 < left < 1.0
