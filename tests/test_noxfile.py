"""The noxfile works from a nox installed on its own: it lists the whole plugin matrix
without importing mmcore, and the matrix file it reads is the registry's answer."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType, SimpleNamespace

import nox.registry
import pytest

from mmcore.plugins import plugins_of_kind, valid_configurations

ROOT = Path(__file__).resolve().parent.parent

# Run nox -l in a child whose imports of mmcore, its plugins and its dependencies all
# fail, as they do in a pipx or `uv tool` nox.
LIST_WITHOUT_MMCORE = """
import sys
for name in ("mmcore", "mmcore_plugins", "mmcore_contrib", "pluggy", "structlog"):
    sys.modules[name] = None
sys.argv = ["nox", "-l", "--json", "-f", *sys.argv[1:]]
from nox.__main__ import main
main()
"""


def sessions_listed_without_mmcore(*select: str) -> dict[str, dict[str, object]]:
    """``nox -l --json SELECT`` with mmcore unimportable, by session name (the JSON list
    holds only the selected sessions: the default ones without ``select``)."""
    out = subprocess.run([sys.executable, "-c", LIST_WITHOUT_MMCORE, str(ROOT / "noxfile.py"),
                          *select], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    return {s["session"]: s for s in json.loads(out)}


def test_plugin_matrix_file_is_the_registrys_answer() -> None:
    """tools/plugin_matrix.json equals what the plugin registry computes now (a plugin
    added without rerunning tools/plugin_matrix.py fails here)."""
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "plugin_matrix.py"), "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_nox_lists_every_valid_configuration_without_importing_mmcore() -> None:
    """Every valid rmap x policy pair, and every file_rmap and reclaim plugin, is a
    conformance session when nox cannot import mmcore."""
    sessions = sessions_listed_without_mmcore("-t", "conformance")
    expected = [f"conformance-{r}" + (f"-{p}" if p else "") for r, p in valid_configurations()]
    expected += [f"conformance-{kind}-{name}" for kind in ("file_rmap", "reclaim")
                 for name in plugins_of_kind(kind)]
    missing = [name for name in expected if name not in sessions]
    assert not missing, f"sessions missing from nox -l: {missing}"


def test_nox_never_offers_an_invalid_configuration() -> None:
    """anonmm without an mremap policy (its need unmet) is not a session."""
    sessions = sessions_listed_without_mmcore("-t", "rmap:anonmm")
    assert "conformance-anonmm-unshare" in sessions
    assert "conformance-anonmm" not in sessions


def test_nox_tests_session_has_a_python_matrix() -> None:
    """The tests session is parametrized over the Pythons requires-python admits, with the
    running one among them (absent ones are skipped when run, not listed away)."""
    sessions = sessions_listed_without_mmcore()
    pythons = {s["python"] for s in sessions.values() if s["name"] == "tests"}
    assert f"{sys.version_info.major}.{sys.version_info.minor}" in pythons
    assert len(pythons) > 1


def load_noxfile(path: Path) -> ModuleType:
    """A noxfile as a module (it imports only nox and the standard library), registered
    in an empty session registry, as nox loads one noxfile per run."""
    nox.registry.reset()
    spec = importlib.util.spec_from_file_location(f"noxfile_{abs(hash(path))}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lint_session_installs_ruff_at_the_projects_pin() -> None:
    """A one-tool session takes the tool's requirement from the pyproject.toml extra."""
    noxfile = load_noxfile(ROOT / "noxfile.py")
    with open(ROOT / "pyproject.toml", "rb") as fh:
        pinned = tomllib.load(fh)["project"]["optional-dependencies"]["test"]
    assert noxfile.requirement("test", "ruff") in pinned
    assert noxfile.requirement("test", "ruff").startswith("ruff")


def test_template_noxfile_installs_the_enclosing_mmcore_checkout(monkeypatch) -> None:
    """Inside the mmcore tree the template's sessions install that checkout's mmcore."""
    monkeypatch.delenv("MMCORE_SOURCE", raising=False)
    template = load_noxfile(ROOT / "contrib" / "plugin_template" / "noxfile.py")
    assert template.mmcore_source() == [str(ROOT)]


def test_template_noxfile_takes_mmcore_source_from_the_environment(monkeypatch) -> None:
    """``$MMCORE_SOURCE`` (a checkout, a wheel or a requirement) wins over the checkout."""
    monkeypatch.setenv("MMCORE_SOURCE", "/wheels/mmcore-0.1.0-py3-none-any.whl")
    template = load_noxfile(ROOT / "contrib" / "plugin_template" / "noxfile.py")
    assert template.mmcore_source() == ["/wheels/mmcore-0.1.0-py3-none-any.whl"]


def test_copied_template_noxfile_leaves_mmcore_to_the_dependency(tmp_path: Path,
                                                                  monkeypatch) -> None:
    """Copied out of the tree, the template installs nothing extra: its own dependency
    brings mmcore from the package index."""
    monkeypatch.delenv("MMCORE_SOURCE", raising=False)
    copy = tmp_path / "my-scheme" / "noxfile.py"
    copy.parent.mkdir()
    shutil.copy(ROOT / "contrib" / "plugin_template" / "noxfile.py", copy)
    assert load_noxfile(copy).mmcore_source() == []


class SessionDouble:
    """The part of ``nox.Session`` a session function calls, recording each call; skip()
    raises, as nox's does, so nothing after it runs."""

    class Skipped(Exception):
        """Raised by :meth:`skip`."""

    def __init__(self, tmp: Path) -> None:
        self.tmp, self.calls, self.cwd = tmp, [], None
        self.posargs: list[str] = []

    def skip(self, reason: str) -> None:
        raise self.Skipped(reason)

    def create_tmp(self) -> str:
        return str(self.tmp)

    def chdir(self, path: Path) -> None:
        self.cwd = Path(path)

    def install(self, *args: str, **kwargs: object) -> None:
        self.calls.append(("install", args, kwargs.get("env")))

    def run(self, *args: str, **kwargs: object) -> None:
        self.calls.append(("run", args, kwargs.get("env")))


def test_nox_lists_the_compiled_builds_test_session() -> None:
    """``nox -l`` offers tests-mypyc on the same Pythons as the pure build's tests."""
    sessions = sessions_listed_without_mmcore("-s", "tests-mypyc", "tests")
    by_name: dict[str, set[object]] = {}
    for s in sessions.values():
        by_name.setdefault(str(s["name"]), set()).add(s["python"])
    assert by_name["tests-mypyc"] == by_name["tests"]


def test_compiled_test_session_is_skipped_without_a_c_compiler(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no compiler on PATH and no $CC, tests-mypyc skips, saying why, before it
    copies or installs anything."""
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    noxfile = load_noxfile(ROOT / "noxfile.py")
    session = SessionDouble(tmp_path)
    with pytest.raises(SessionDouble.Skipped, match="no C compiler"):
        noxfile.tests_mypyc(session)
    assert session.calls == [] and list(tmp_path.iterdir()) == []


def test_compiled_test_session_builds_a_copy_of_the_checkout_and_runs_the_suite(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a compiler, tests-mypyc copies the checkout without venvs, caches or built
    modules, installs its dependencies and mypy (the test extra) and the build backend,
    then mmcore editable there with MMCORE_MYPYC=1 and no build isolation, and runs the
    whole suite there in parallel."""
    cc = tmp_path / "bin" / "cc"
    cc.parent.mkdir()
    cc.write_text("#!/bin/sh\n")
    cc.chmod(0o755)
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setenv("PATH", str(cc.parent))
    noxfile = load_noxfile(ROOT / "noxfile.py")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    removed = []
    monkeypatch.setattr(noxfile.tempfile, "mkdtemp", lambda **kw: str(scratch))
    monkeypatch.setattr(noxfile, "shutil", SimpleNamespace(
        copytree=shutil.copytree, which=shutil.which,
        rmtree=lambda path, **kw: removed.append(Path(path))))
    session = SessionDouble(tmp_path / "tmp")
    noxfile.tests_mypyc(session)
    # the copy and the suite's temporary files are outside the checkout (pytester's
    # inner runs must not find its pyproject.toml above them), and removed at the end
    copy = scratch / "checkout"
    assert session.cwd == copy and removed == [scratch]
    assert (copy / "mmcore" / "fault.py").is_file() and (copy / "pyproject.toml").is_file()
    assert not any(copy.glob(".venv*")) and not (copy / ".git").exists()
    assert not list(copy.rglob("__pycache__")) and not list(copy.rglob("*.so"))
    (_, backend, _), (_, deps, deps_env), (_, build, env), *runs = session.calls
    assert any(d.startswith("setuptools") for d in backend)
    assert deps == ("-e", ".[test]") and deps_env is None
    assert build == ("--no-build-isolation", "--no-deps", "-e", ".")
    assert env == {"MMCORE_MYPYC": "1"}
    assert runs[-1][1][:3] == ("pytest", "-n", "auto")
    assert runs[-1][2] == {"TMPDIR": str(scratch)}
