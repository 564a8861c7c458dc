"""Shared fixtures: the scheme matrix comes from the installed plugins. And the order the
tests run in under ``-n auto``: the slow ones first, on work-stealing workers."""

from __future__ import annotations

import pytest

from mmcore.plugins import valid_configurations

CONFIGS = valid_configurations()


def config_id(config: tuple[str, str | None]) -> str:
    """A readable test id such as ``anonmm+unshare``."""
    rmap, policy = config
    return rmap if policy is None else f"{rmap}+{policy}"


@pytest.fixture(params=CONFIGS, ids=[config_id(c) for c in CONFIGS])
def config(request: pytest.FixtureRequest) -> tuple[str, str | None]:
    """Every valid (rmap, mremap_policy) configuration installed."""
    value: tuple[str, str | None] = request.param
    return value


@pytest.fixture(autouse=True)
def _no_inherited_terminal_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """pytest-xdist workers run with COLUMNS=80 in the environment, which mmsim's console
    honours; drop it so tables are as wide under ``-n auto`` as in a serial run."""
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("LINES", raising=False)


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """``-n N`` without ``--dist`` distributes by work stealing, not pytest-xdist's
    ``load``: a worker that runs out takes half of another's queue, so one long test
    does not leave the other cores idle at the end. (This runs before pytest-xdist turns
    a missing ``--dist`` into ``load``; an explicit ``--dist`` is kept.)"""
    option = config.option
    if getattr(option, "numprocesses", None) and getattr(option, "dist", None) == "no":
        option.dist = "worksteal"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow tests first, each group in its own order: the long ones start at once
    and the short ones fill the gaps, instead of a long one starting last."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
