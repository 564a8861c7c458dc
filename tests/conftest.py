"""Shared fixtures: the scheme matrix comes from the installed plugins."""

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
