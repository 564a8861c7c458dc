"""nox sessions for mmcore; they work from a nox installed on its own.

    nox -l                          list the sessions
    nox -s tests                    the whole test suite, in parallel, on every Python found
    nox -s tests-mypyc              the same on the compiled build (needs a C compiler)
    nox -s quick                    the quick subset (-m "not slow")
    nox -s conformance-anon_vma     the conformance kit against one configuration
    nox -t conformance              every configuration
    nox -s typecheck lint bench docs reproduce

nox is usually installed on its own (``pipx install nox``, ``uv tool install nox``), where
mmcore cannot be imported, so this file never imports it. The conformance matrix is read
from ``tools/plugin_matrix.json``, which ``tools/plugin_matrix.py`` writes from the
plugin registry (:func:`mmcore.plugins.valid_configurations`, the one ``mmsim compare``
uses) and a test keeps current; a combination whose needs are unmet (anonmm without an
mremap policy) never becomes a session. Every session installs this repository into its
own virtualenv with only the extra it needs; uv makes them when nox can find it
(``uv tool install nox --with uv``, ``pipx install 'nox[uv]'``), virtualenv otherwise.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import tempfile
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nox
from packaging.requirements import Requirement  # a dependency of nox itself

ROOT = Path(__file__).resolve().parent
MATRIX = json.loads((ROOT / "tools" / "plugin_matrix.json").read_text())

# The Pythons requires-python admits; a session for one that is not installed is skipped
# (never an error, never a download), so the same noxfile runs on any machine.
PYTHONS = ["3.11", "3.12", "3.13", "3.14"]

nox.options.sessions = ["tests", "typecheck", "lint"]
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.error_on_missing_interpreters = False
nox.options.download_python = "never"


def pyproject() -> dict[str, Any]:
    """This checkout's pyproject.toml."""
    with open(ROOT / "pyproject.toml", "rb") as fh:
        return tomllib.load(fh)


def requirement(extra: str, name: str) -> str:
    """The requirement for ``name`` as the pyproject.toml extra ``extra`` pins it, so a
    session that needs one tool installs that tool alone at the project's pin."""
    extras = pyproject()["project"]["optional-dependencies"]
    for req in extras[extra]:
        if Requirement(req).name == name:
            return str(req)
    raise LookupError(f"pyproject.toml extra {extra!r} does not list {name!r}")


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The whole test suite in parallel (pytest -n auto; extra arguments go to pytest)."""
    session.install("-e", ".[test]")
    session.run("pytest", "-n", "auto", *session.posargs)


def c_compiler() -> str | None:
    """The C compiler a mypyc build would find: ``$CC`` when set, else cc, gcc or clang on
    ``PATH`` (None when there is none, and the compiled build cannot be made)."""
    if os.environ.get("CC"):
        return shutil.which(shlex.split(os.environ["CC"])[0])
    return next(filter(None, map(shutil.which, ("cc", "gcc", "clang"))), None)


def not_source(directory: str, names: list[str]) -> set[str]:
    """What a copy of the checkout leaves out (a ``shutil.copytree`` ignore function):
    venvs, caches, byte code, built extension modules and, at the top, version control
    and the build, output and nox directories."""
    top = {".git", ".nox", "build", "dist", "results", "site"} if Path(directory) == ROOT \
        else set()
    return {name for name in names if name in top or name.startswith(".venv")
            or name == "__pycache__" or name.endswith((".so", ".egg-info", "_cache"))}


@nox.session(name="tests-mypyc", python=PYTHONS, venv_backend="venv")
def tests_mypyc(session: nox.Session) -> None:
    """The whole test suite on the compiled build (setup.py, ``MMCORE_MYPYC=1``); skipped
    when no C compiler is found.

    The build is an editable install of a fresh copy of the checkout, and the suite runs
    in that copy: an editable mypyc build puts its extension modules next to the sources,
    where every pure-Python venv of the checkout would import them, while a non-editable
    install leaves out files the suite reads from the tree (benchmarks/, examples/)."""
    if c_compiler() is None:
        session.skip("no C compiler ($CC, cc, gcc or clang): the compiled build cannot be "
                     "built, so it is not tested")
    # The copy, and the suite's temporary files, live outside this checkout: pytester's
    # inner runs inside it (nox's session tmp is .nox/...) found this checkout's
    # pyproject.toml above them and took its pytest options (4 tests failed in CI).
    scratch = Path(tempfile.mkdtemp(prefix="mmcore-mypyc-"))
    checkout = scratch / "checkout"
    shutil.copytree(ROOT, checkout, ignore=not_source)
    session.chdir(checkout)
    # mypyc type-checks the modules against the dependencies, so they come first (with
    # mypy, from the test extra); the compiled build then reinstalls mmcore alone, with
    # no build isolation: it builds with the venv's mypyc and build backend.
    session.install(*pyproject()["build-system"]["requires"])
    session.install("-e", ".[test]")
    session.install("--no-build-isolation", "--no-deps", "-e", ".",
                    env={"MMCORE_MYPYC": "1"})
    session.run("python", "-c", "from mmcore.bench_cli import build_kind; "
                "raise SystemExit(None if build_kind() == 'mypyc' else 'not compiled')")
    try:
        session.run("pytest", "-n", "auto", *session.posargs, env={"TMPDIR": str(scratch)})
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@nox.session
def quick(session: nox.Session) -> None:
    """The quick subset for inner-loop work: every test not marked slow."""
    session.install("-e", ".[test]")
    session.run("pytest", "-n", "auto", "-m", "not slow", *session.posargs)


def make_conformance(options: list[str], what: str) -> Callable[[nox.Session], None]:
    """A session that installs mmcore with the slim ``conformance`` extra and runs the
    kit (loaded by mmcore's pytest11 entry point) with the given pytest options."""
    def conformance(session: nox.Session) -> None:
        session.install(".[conformance]")
        session.run("pytest", *options, *session.posargs)

    conformance.__doc__ = f"Conformance kit (walk == truth, invariants) against {what}."
    return conformance


for _rmap, _policy in MATRIX["rmap"]:
    nox.session(
        name=f"conformance-{_rmap}" + (f"-{_policy}" if _policy else ""),
        tags=["conformance", f"rmap:{_rmap}"] + ([f"policy:{_policy}"] if _policy else []),
    )(make_conformance(
        ["--mmcore-rmap", _rmap] + (["--mmcore-mremap-policy", _policy] if _policy else []),
        _rmap if _policy is None else f"{_rmap} with the {_policy} mremap policy"))

for _kind, _option in (("file_rmap", "--mmcore-file-rmap"), ("reclaim", "--mmcore-reclaim")):
    for _name in MATRIX[_kind]:
        nox.session(name=f"conformance-{_kind}-{_name}",
                    tags=["conformance", f"{_kind}:{_name}"])(
            make_conformance([_option, _name], f"anon_vma_chain with the {_kind} plugin "
                                               f"{_name}"))


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the library, the shipped plugins and contrib."""
    session.install("-e", ".[test]")  # mypy reads the types of every dependency
    session.run("mypy", "--strict", "mmcore", "plugins", "contrib")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check over the whole tree (installs ruff alone)."""
    session.install(requirement("test", "ruff"))
    session.run("ruff", "check", ".")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks (benchmarks/bench.py): simulated costs as ratios to a dict insert;
    benchmarks/bench_reclaim.py: reclaim with full swap, time against RAM size;
    benchmarks/bench_scaling.py: time per doubling of fork chains, opens, populate;
    benchmarks/bench_scale.py: time and peak RSS per page from 10k to 1M pages;
    benchmarks/bench_mthp.py: fork and zap of a 64 kB mTHP heap against order 0."""
    session.install(".")
    session.run("python", "benchmarks/bench.py", *session.posargs)
    session.run("python", "benchmarks/bench_reclaim.py")
    session.run("python", "benchmarks/bench_scaling.py")
    session.run("python", "benchmarks/bench_scale.py")
    session.run("python", "benchmarks/bench_mthp.py")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site (mkdocs.yml) with mkdocs build --strict: a broken
    link, a missing page or an unresolved API reference fails."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", *session.posargs,
                env={"NO_MKDOCS_2_WARNING": "1"})  # mkdocs-material's banner, not a finding


@nox.session
def reproduce(session: nox.Session) -> None:
    """Regenerate docs/results.md and docs/img/ with mmsim reproduce."""
    session.install(".")
    session.run("mmsim", "reproduce", "--out", "docs")
