"""Resource limits for grading untrusted submissions.

Two layers, both applied only in the grading child process
(:mod:`mmcore_contrib.labs.worker`), never in the grader that starts it:

* :func:`limit_resources` caps the child's address space (``RLIMIT_AS``: an allocation
  beyond it fails with ``MemoryError``), its CPU time (``RLIMIT_CPU``: ``SIGXCPU`` then
  ``SIGKILL``, a backstop should the grader itself die), the size of any file it writes
  (``RLIMIT_FSIZE``) and core dumps.
* :func:`time_limit` bounds one test of a submission with ``ITIMER_REAL``: a scheme whose
  walk loops loses that test's points and the other tests still run. :class:`TestTimeout`
  derives from ``BaseException`` so that neither a student's ``except Exception`` nor
  hypothesis (which retries and shrinks on ``Exception``) swallows it.

It is :func:`mmcore.budget.time_budget`, the conformance kit's budget per operation (which
nests inside it), raising :class:`TestTimeout` instead of ``RunTimeout``: the kit's
``Exception`` becomes a broken-plugin report, this one must get out of the student's code
whatever it catches.

The grader adds a third layer: a wall-clock timeout per submission after which it kills
the child's whole process group (:mod:`mmcore_contrib.labs.classroom`).
"""

from __future__ import annotations

import contextlib
import resource
import time

from mmcore.budget import time_budget

__all__ = ["TestTimeout", "TestClock", "limit_resources", "time_limit"]

MIB = 1 << 20


class TestTimeout(BaseException):
    """A test of a submission ran longer than its time limit."""

    __test__ = False  # not a pytest test class, despite the name


def limit_resources(memory_mib: int, cpu_seconds: int, file_mib: int = 16) -> None:
    """Cap this process: ``memory_mib`` of address space, ``cpu_seconds`` of CPU (the
    hard limit one second later), files of at most ``file_mib``, no core dumps. Lowering
    a limit is irreversible for an unprivileged process, which is why only the grading
    child calls this."""
    limits = {
        resource.RLIMIT_AS: memory_mib * MIB,
        resource.RLIMIT_FSIZE: file_mib * MIB,
        resource.RLIMIT_CORE: 0,
    }
    for which, value in limits.items():
        resource.setrlimit(which, (value, value))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))


def time_limit(seconds: float | None) -> contextlib.AbstractContextManager[None]:
    """Raise :class:`TestTimeout` in the block after ``seconds`` of wall time (``None``:
    no limit): :func:`mmcore.budget.time_budget` with the grader's exception."""
    return time_budget(seconds, TestTimeout)


class TestClock:
    """The time each test of a submission gets: ``test_timeout`` seconds, and no more
    than what is left of ``budget`` seconds from now (``None``: no bound). A submission
    whose tests all loop then still reports, with the points of the tests that passed,
    before the grader's wall-clock timeout kills it."""

    __test__ = False

    def __init__(self, test_timeout: float | None, budget: float | None = None) -> None:
        self.test_timeout = test_timeout
        self.end = None if budget is None else time.monotonic() + budget

    def next(self) -> float | None:
        """Seconds for the next test: ``None`` for no limit, ``0`` when none is left."""
        if self.end is None:
            return self.test_timeout
        left = max(0.0, self.end - time.monotonic())
        return left if self.test_timeout is None else min(self.test_timeout, left)
