"""The pytest plugin of mmcore (entry point ``pytest11: mmcore``).

Options:

``--mmcore-rmap NAME``
    Run the rmap conformance suite (:class:`~mmcore.testing.RmapConformance`) against the
    installed scheme NAME (repeatable). With no test paths on the command line only the
    suite runs; with paths, the suite runs after the tests collected there.
``--mmcore-mremap-policy NAME``
    The mremap policy plugin to combine with (e.g. ``unshare``; anonmm needs one).
``--mmcore-file-rmap NAME``
    The file rmap plugin (``i_mmap_tree``, ``i_mmap_list``, ...) the suite runs with (its
    file mappings go through it). Without ``--mmcore-rmap`` the suite runs with
    ``anon_vma_chain``.
``--mmcore-reclaim NAME``
    The reclaim plugin (``lru2``, ``clock``, ...) the suite runs with: its memory-pressure
    tests reclaim through it. Without ``--mmcore-rmap`` the suite runs with
    ``anon_vma_chain``.
``--mmcore-mapcount NAME``
    The mapcount design (``per_page``, ``no_page_mapcount``, ...) the suite's machines
    use; the suite's folio test checks that design's exactness claims on hand-mapped
    large folios. Without ``--mmcore-rmap`` the suite runs with ``anon_vma_chain``.
``--mmcore-max-examples N``
    The hypothesis budget of the random-operations test (default: the suite's).
``--mmcore-timeout SECONDS``
    The time budget of each operation of the suite, with the checks after it (default
    10; 0 turns it off). An operation past it fails the test, naming the plugin and the
    hook that were running, the op and (for seeded tests) the seed, instead of hanging.

Fixture ``mmcore_machine_factory``: ``factory(rmap=None, mremap_policy=None, **kwargs)``
builds a :class:`~mmcore.Machine`, by default with the scheme of ``--mmcore-rmap`` (or
``anon_vma_chain``), the file rmap of ``--mmcore-file-rmap``, the reclaim plugin of
``--mmcore-reclaim`` and the mapcount design of ``--mmcore-mapcount``. Nothing here imports
mmcore until it is needed.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from mmcore.machine import Machine

    from .stateful import RmapConformance

SUITE_PREFIX = "mmcore-conformance"
_SAVED = pytest.StashKey[dict[str, int]]()
_SAVED_TIMEOUT = pytest.StashKey[float]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mmcore", "mmcore rmap conformance kit")
    group.addoption("--mmcore-rmap", action="append", default=[], metavar="NAME",
                    help="run the mmcore rmap conformance suite against scheme NAME "
                         "(repeatable; alone, without test paths, only the suite runs)")
    group.addoption("--mmcore-mremap-policy", default=None, metavar="NAME",
                    help="mremap policy plugin to use with --mmcore-rmap (e.g. unshare)")
    group.addoption("--mmcore-file-rmap", default=None, metavar="NAME",
                    help="file rmap plugin for the suite (e.g. i_mmap_list); alone, the "
                         "suite runs with rmap anon_vma_chain")
    group.addoption("--mmcore-reclaim", default=None, metavar="NAME",
                    help="reclaim plugin for the suite (e.g. clock); alone, the suite runs "
                         "with rmap anon_vma_chain")
    group.addoption("--mmcore-mapcount", default=None, metavar="NAME",
                    help="mapcount design for the suite (e.g. no_page_mapcount); alone, "
                         "the suite runs with rmap anon_vma_chain")
    group.addoption("--mmcore-max-examples", type=int, default=None, metavar="N",
                    help="hypothesis examples for the suite's random-operations test")
    group.addoption("--mmcore-timeout", type=float, default=None, metavar="SECONDS",
                    help="time budget of each operation of the suite and its checks; a "
                         "hook that hangs fails the test naming it (default 10; 0: none)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "mmcore_conformance: a test of the mmcore rmap "
                                       "conformance suite")
    examples = config.getoption("mmcore_max_examples")
    if examples is not None:
        from . import stateful
        config.stash[_SAVED] = dict(stateful.OVERRIDES)
        stateful.OVERRIDES["max_examples"] = examples
    timeout = config.getoption("mmcore_timeout")
    if timeout is not None:
        if timeout < 0:
            raise pytest.UsageError("--mmcore-timeout must be 0 (no budget) or positive")
        from . import driver
        config.stash[_SAVED_TIMEOUT] = driver.OP_TIMEOUT_S
        driver.OP_TIMEOUT_S = timeout


def pytest_unconfigure(config: pytest.Config) -> None:
    saved = config.stash.get(_SAVED, None)
    if saved is not None:  # a pytester run inside another session must not leak its budget
        from . import stateful
        stateful.OVERRIDES.clear()
        stateful.OVERRIDES.update(saved)
    timeout = config.stash.get(_SAVED_TIMEOUT, None)
    if timeout is not None:
        from . import driver
        driver.OP_TIMEOUT_S = timeout


def _schemes(config: pytest.Config) -> list[str]:
    names: list[str] = config.getoption("mmcore_rmap") or []
    if not names and (config.getoption("mmcore_file_rmap")
                      or config.getoption("mmcore_reclaim")
                      or config.getoption("mmcore_mapcount")):
        return ["anon_vma_chain"]
    return names


def _suite_only(config: pytest.Config) -> bool:
    """True when --mmcore-rmap was given without explicit test paths."""
    if not _schemes(config):
        return False
    source = getattr(config, "args_source", None)
    return source is not None and source != pytest.Config.ArgsSource.ARGS


@pytest.hookimpl(tryfirst=True)
def pytest_collection(session: pytest.Session) -> bool | None:
    """With ``--mmcore-rmap`` and no paths, collect nothing from disk (the suite's items
    are added in :func:`pytest_collection_modifyitems`)."""
    if not _suite_only(session.config):
        return None
    session.perform_collect([])
    return True


class ConformanceItem(pytest.Item):
    """One test method of the suite, run for one scheme."""

    def __init__(self, *, suite: type[RmapConformance], method: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.suite = suite
        self.method = method
        self.add_marker("mmcore_conformance")

    def runtest(self) -> None:
        getattr(self.suite(), self.method)()

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str | Any:
        from .repro import ConformanceFailure
        if isinstance(excinfo.value, ConformanceFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        fn = getattr(self.suite, self.method)
        try:
            line: int | None = inspect.getsourcelines(fn)[1]
        except (OSError, TypeError):
            line = None
        return Path(inspect.getfile(fn)), line, self.name


def _suite_items(session: pytest.Session) -> list[pytest.Item]:
    from .stateful import RmapConformance

    config = session.config
    policy = config.getoption("mmcore_mremap_policy")
    file_rmap = config.getoption("mmcore_file_rmap")
    reclaim = config.getoption("mmcore_reclaim")
    mapcount = config.getoption("mmcore_mapcount")
    attrs: dict[str, Any] = {"mremap_policy": policy}
    if file_rmap is not None:
        attrs["file_rmap"] = file_rmap
    kwargs = {k: v for k, v in (("reclaim", reclaim), ("mapcount", mapcount))
              if v is not None}
    if kwargs:
        attrs["machine_kwargs"] = {**RmapConformance.machine_kwargs, **kwargs}
    items: list[pytest.Item] = []
    methods = sorted(n for n in dir(RmapConformance) if n.startswith("test_"))
    for name in _schemes(config):
        label = name if policy is None else f"{name}+{policy}"
        if file_rmap is not None:
            label += f",file={file_rmap}"
        if reclaim is not None:
            label += f",reclaim={reclaim}"
        if mapcount is not None:
            label += f",mapcount={mapcount}"
        suite = type(f"TestRmapConformance[{label}]", (RmapConformance,),
                     {"rmap": name, **attrs})
        for method in methods:
            items.append(ConformanceItem.from_parent(
                session, name=f"{method}[{label}]", suite=suite, method=method,
                nodeid=f"{SUITE_PREFIX}[{label}]::{method}"))
    return items


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    """Append the conformance suite of every ``--mmcore-rmap`` scheme."""
    if not _schemes(config):
        return
    extra = _suite_items(session)
    report = pytest.CollectReport(f"{SUITE_PREFIX}", "passed", None, list(extra))
    config.hook.pytest_collectreport(report=report)
    items.extend(extra)


@pytest.fixture
def mmcore_machine_factory(request: pytest.FixtureRequest) -> Iterator[Callable[..., Machine]]:
    """Build Machines: ``factory(rmap=None, mremap_policy=None, **kwargs)``.

    Defaults come from ``--mmcore-rmap`` (the first one) and ``--mmcore-mremap-policy``, else
    ``anon_vma_chain`` with no policy. Every machine built is listed in
    ``factory.machines``.
    """
    from mmcore.machine import Machine

    config = request.config
    schemes = _schemes(config)
    default_rmap = schemes[0] if schemes else "anon_vma_chain"
    default_policy = config.getoption("mmcore_mremap_policy")
    default_file_rmap = config.getoption("mmcore_file_rmap")
    default_reclaim = config.getoption("mmcore_reclaim")
    default_mapcount = config.getoption("mmcore_mapcount")
    machines: list[Machine] = []

    def factory(rmap: str | type | None = None, mremap_policy: str | type | None = None,
                **kwargs: Any) -> Machine:
        if default_file_rmap is not None:
            kwargs.setdefault("file_rmap", default_file_rmap)
        if default_reclaim is not None:
            kwargs.setdefault("reclaim", default_reclaim)
        if default_mapcount is not None:
            kwargs.setdefault("mapcount", default_mapcount)
        m = Machine(rmap=rmap if rmap is not None else default_rmap,
                    mremap_policy=mremap_policy if mremap_policy is not None
                    else (default_policy if rmap is None else None), **kwargs)
        machines.append(m)
        return m

    factory.machines = machines  # type: ignore[attr-defined]
    yield factory
