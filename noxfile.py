"""nox sessions for mmcore, with the plugin matrix taken from the library's own registry.

    nox -l                          list the sessions
    nox -s tests                    the whole test suite
    nox -s conformance-anon_vma     the conformance kit against one configuration
    nox -t conformance              every configuration
    nox -s typecheck lint bench docs

The conformance sessions come from :func:`mmcore.plugins.valid_configurations`, the same
registry ``mmsim compare`` uses, so a combination whose needs are unmet (anonmm without an
mremap policy) never becomes a session. Run nox from an environment where mmcore (the
``mmcore-sim`` distribution) is installed (``pip install -e '.[test]'``) so that the
registry can be read.
"""

from __future__ import annotations

from collections.abc import Callable

import nox

nox.options.sessions = ["tests", "typecheck", "lint"]
nox.options.error_on_missing_interpreters = True

INSTALL = ("-e", ".[test]")

try:
    from mmcore.plugins import valid_configurations

    CONFIGURATIONS: list[tuple[str, str | None]] = valid_configurations()
    REGISTRY_ERROR = ""
except ImportError as exc:  # nox itself runs outside the project's environment
    CONFIGURATIONS = []
    REGISTRY_ERROR = f"mmcore is not importable by nox ({exc})"


@nox.session
def tests(session: nox.Session) -> None:
    """Run the whole test suite (pytest; extra arguments go to pytest)."""
    session.install(*INSTALL)
    session.run("pytest", *session.posargs)


def session_name(rmap: str, policy: str | None) -> str:
    """``conformance-RMAP`` or ``conformance-RMAP-POLICY``."""
    return f"conformance-{rmap}" if policy is None else f"conformance-{rmap}-{policy}"


def make_conformance(rmap: str, policy: str | None) -> Callable[[nox.Session], None]:
    """A session running the conformance kit against one valid configuration."""
    def conformance(session: nox.Session) -> None:
        session.install(*INSTALL)
        args = ["pytest", "--mmcore-rmap", rmap]  # the pytest11 entry point loads the kit
        if policy is not None:
            args += ["--mmcore-mremap-policy", policy]
        session.run(*args, *session.posargs)

    what = rmap if policy is None else f"{rmap} with the {policy} mremap policy"
    conformance.__doc__ = f"Conformance kit (walk == truth, invariants) against {what}."
    return conformance


for _rmap, _policy in CONFIGURATIONS:
    nox.session(name=session_name(_rmap, _policy),
                tags=["conformance", f"rmap:{_rmap}"]
                + ([f"policy:{_policy}"] if _policy else []))(
        make_conformance(_rmap, _policy))


if REGISTRY_ERROR:
    @nox.session(name="conformance", tags=["conformance"])
    def conformance_unavailable(session: nox.Session) -> None:
        """Conformance sessions need the plugin registry: install mmcore where nox runs."""
        session.error(REGISTRY_ERROR)


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the library, the shipped plugins and contrib."""
    session.install(*INSTALL)
    session.run("mypy", "--strict", "mmcore", "plugins", "contrib")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check over the whole tree."""
    session.install(*INSTALL)
    session.run("ruff", "check", ".")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks (benchmarks/bench.py): simulated costs as ratios to a dict insert;
    benchmarks/bench_reclaim.py: reclaim with full swap, time against RAM size."""
    session.install(*INSTALL)
    session.run("python", "benchmarks/bench.py", *session.posargs)
    session.run("python", "benchmarks/bench_reclaim.py")


@nox.session
def docs(session: nox.Session) -> None:
    """Regenerate docs/results.md and docs/img/ with mmsim reproduce."""
    session.install(*INSTALL)
    session.run("mmsim", "reproduce", "--out", "docs")
