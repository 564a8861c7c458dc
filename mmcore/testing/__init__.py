"""mmcore's conformance kit for rmap schemes (and a pytest plugin, :mod:`.plugin`).

One line runs the whole suite against a scheme::

    from mmcore.testing import RmapConformance

    class TestMyScheme(RmapConformance):
        rmap = "my_scheme"

or, without writing a file: ``pytest --mmcore-rmap my_scheme [--mmcore-mremap-policy unshare]``.

The suite drives seeded random operation sequences (hypothesis stateful testing) and
fixed scenarios, and checks after every step that the scheme's rmap walk equals the
brute-force truth for every frame, that mapcounts equal pte counts, that every process
reads what it last wrote, and that nothing is left after every process exits. A failure
raises :class:`ConformanceFailure` whose message ends with a minimal reproducer: a
runnable call of :func:`replay` on the failing :class:`~mmcore.experiments.ops.Op` list.

:func:`check_invariants` is usable on its own in any test.

Names are imported on first use, so that loading the pytest plugin (which every pytest
run in an environment with mmcore does) costs nothing until the kit is used.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .driver import Driver, replay
    from .generator import OpGenerator
    from .invariants import (
        InvariantViolation,
        check_invariants,
        check_no_leaks,
        find_violations,
        peek,
    )
    from .model import ContentModel
    from .repro import ConformanceFailure, format_op, format_reproducer, minimize
    from .scenarios import fork_tree_ops
    from .stateful import (
        RmapConformance,
        conformance_state_machine,
        run_conformance,
        run_fork_tree,
        run_random_sequence,
    )

_WHERE = {
    "InvariantViolation": "invariants",
    "check_invariants": "invariants",
    "check_no_leaks": "invariants",
    "find_violations": "invariants",
    "peek": "invariants",
    "ConformanceFailure": "repro",
    "format_op": "repro",
    "format_reproducer": "repro",
    "minimize": "repro",
    "ContentModel": "model",
    "Driver": "driver",
    "OpGenerator": "generator",
    "RmapConformance": "stateful",
    "conformance_state_machine": "stateful",
    "fork_tree_ops": "scenarios",
    "replay": "driver",
    "run_conformance": "stateful",
    "run_fork_tree": "stateful",
    "run_random_sequence": "stateful",
}

__all__ = [
    "ConformanceFailure",
    "ContentModel",
    "Driver",
    "InvariantViolation",
    "OpGenerator",
    "RmapConformance",
    "check_invariants",
    "check_no_leaks",
    "conformance_state_machine",
    "find_violations",
    "fork_tree_ops",
    "format_op",
    "format_reproducer",
    "minimize",
    "peek",
    "replay",
    "run_conformance",
    "run_fork_tree",
    "run_random_sequence",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
