"""nox sessions for an mmcore plugin package (copy this file with the template).

    nox -l                  list the sessions
    nox                     the package's tests (the conformance subclass in tests/)
    nox -s conformance      the kit against the scheme by name, alone and with each policy

Each session installs this package and mmcore into a fresh virtualenv (uv when nox can
find it, virtualenv otherwise). mmcore comes from ``$MMCORE_SOURCE`` when it is set (a
path to a checkout, a wheel, or a requirement), else from the mmcore checkout this
directory sits in (``contrib/plugin_template``), else from the package index through
this package's own dependency.
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

HERE = Path(__file__).resolve().parent
SCHEME = "example_anon_vma"  # the entry-point name in pyproject.toml
POLICIES = [None, "unshare"]  # the mremap policies mmcore ships, and none

nox.options.sessions = ["tests"]
nox.options.default_venv_backend = "uv|virtualenv"


def mmcore_source() -> list[str]:
    """What to install mmcore from, as ``pip install`` arguments (see the module doc)."""
    if os.environ.get("MMCORE_SOURCE"):
        return [os.environ["MMCORE_SOURCE"]]
    checkout = HERE.parent.parent
    if (checkout / "mmcore" / "__init__.py").is_file() and (checkout / "pyproject.toml").is_file():
        return [str(checkout)]
    return []


@nox.session
def tests(session: nox.Session) -> None:
    """The package's tests: tests/ holds the one-line RmapConformance subclass."""
    session.install(*mmcore_source(), ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
@nox.parametrize("policy", POLICIES, ids=["no-policy", "unshare"])
def conformance(session: nox.Session, policy: str | None) -> None:
    """mmcore's conformance kit against the installed scheme, found by its entry point."""
    session.install(*mmcore_source(), ".[test]")
    args = ["--mmcore-rmap", SCHEME] + (["--mmcore-mremap-policy", policy] if policy else [])
    session.run("pytest", *args, *session.posargs)
