"""Time budgets: stop a run or an operation whose plugin loops, inside the process.

:func:`time_budget` arms ``SIGALRM``; when the budget runs out the handler raises
:class:`~mmcore.errors.RunTimeout` in whatever Python code is running, which is usually the
looping hook: inside an operation, :meth:`mmcore.Machine.syscall` then marks the machine
broken naming that plugin and hook. A hook stuck in C code, or one that swallows every
exception, is out of its reach: ``mmsim compare --timeout`` therefore also runs each
configuration in a child process that it kills (:mod:`mmcore.experiments.isolation`).

>>> from mmcore.budget import time_budget
>>> with time_budget(5):
...     pass
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from types import FrameType

from .errors import RunTimeout


@contextlib.contextmanager
def time_budget(seconds: float | None,
                error: type[BaseException] = RunTimeout) -> Iterator[None]:
    """Raise ``error`` (:class:`RunTimeout`) in the body if it runs longer than ``seconds``.

    None (or a budget that is not positive) means no budget. Only the main thread can
    take signals, so elsewhere (and where there is no ``SIGALRM``) the body runs
    unbounded. An alarm already armed around this one (by an enclosing budget, or any
    Python ``SIGALRM`` handler) is never postponed: when it is due first, it goes off at
    its time through its own handler (an enclosing budget's error, not this one's);
    otherwise it is restored afterwards, less the time this one took (so budgets
    entered again and again never postpone it either).
    """
    usable = (seconds is not None and seconds > 0 and hasattr(signal, "SIGALRM")
              and threading.current_thread() is threading.main_thread())
    if not usable:
        yield
        return
    assert seconds is not None

    outer_due = mine_went_off = outer_went_off = False

    def elapsed() -> float:
        return time.monotonic() - began

    def expire(signum: int, frame: FrameType | None) -> None:
        nonlocal outer_due, mine_went_off, outer_went_off
        if outer_due:  # the enclosing alarm's time: its handler (which usually raises)
            outer_due, outer_went_off = False, True
            assert callable(previous)
            previous(signum, frame)
            if not mine_went_off:  # it returned: this budget's own end is next
                signal.setitimer(signal.ITIMER_REAL, max(seconds - elapsed(), 1e-6))
            return
        mine_went_off = True
        if outer and callable(previous) and not outer_went_off:
            # What runs after this error inside the block (a kit shrinking the failure)
            # stays under the enclosing alarm.
            outer_due = True
            signal.setitimer(signal.ITIMER_REAL, max(outer - elapsed(), 1e-6))
        raise error(f"no result within the {seconds:g} s time budget")

    previous = signal.signal(signal.SIGALRM, expire)
    outer, _ = signal.getitimer(signal.ITIMER_REAL)
    # Only a Python handler can be called in its turn; a default or ignored SIGALRM
    # keeps the old behaviour (re-armed after this budget).
    outer_due = bool(outer) and outer < seconds and callable(previous)
    signal.setitimer(signal.ITIMER_REAL, outer if outer_due else seconds)
    began = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer and not outer_went_off:  # it resumes with what it has left (at once if none)
            left = outer - (time.monotonic() - began)
            signal.setitimer(signal.ITIMER_REAL, max(left, 1e-6))
