"""The mmcore-sim distribution as a third party sees it: metadata, markers, the template."""

from __future__ import annotations

import os
import subprocess
import venv
from importlib import metadata
from pathlib import Path

import pytest

import mmcore
from mmcore.plugins import installed_plugins, plugin_version

ROOT = Path(__file__).resolve().parent.parent


def test_version_comes_from_the_installed_distribution_metadata() -> None:
    """``mmcore.__version__`` is the installed mmcore-sim's version, not a literal."""
    assert mmcore.DISTRIBUTION == "mmcore-sim"
    assert mmcore.__version__ == metadata.version("mmcore-sim")


def test_shipped_plugin_version_is_its_distribution_version() -> None:
    """A plugin's version is its entry point's distribution version (not PluginInfo's)."""
    cls = installed_plugins()["anon_vma_chain"]
    assert plugin_version(cls) == metadata.version("mmcore-sim")


def test_packages_ship_py_typed_markers() -> None:
    """PEP 561: mmcore, the shipped plugins and contrib carry py.typed (so a plugin
    author's mypy --strict reads their types; the slow test below checks the wheel)."""
    for package in ("mmcore", "plugins", "contrib"):
        assert (ROOT / package / "py.typed").is_file()


@pytest.mark.slow
def test_template_installs_in_a_fresh_venv_and_passes_mypy_strict(tmp_path: Path) -> None:
    """The plugin template installs with a plain pip install next to mmcore-sim, and
    ``mypy --strict`` on it passes against the installed mmcore (py.typed, typed
    hookimpl); ``mmsim plugins`` then shows it with its real version."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    # --no-compile: byte-compiling matplotlib, numpy and mypy was a fifth of this test's CPU
    # time, and nothing here depends on it (Python compiles what it imports)
    pip = [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check",
           "--no-compile"]
    quiet = {**os.environ, "PIP_NO_INPUT": "1"}
    subprocess.run([*pip, str(ROOT), str(ROOT / "contrib" / "plugin_template"), "mypy"],
                   check=True, env=quiet, capture_output=True)
    src = ROOT / "contrib" / "plugin_template" / "src"
    typed = subprocess.run([str(py), "-m", "mypy", "--strict", "--no-incremental",
                            "--cache-dir", str(tmp_path / "mypy"), str(src)],
                           capture_output=True, text=True, cwd=tmp_path)
    assert typed.returncode == 0, typed.stdout + typed.stderr
    shown = subprocess.run([str(env_dir / "bin" / "mmsim"), "plugins", "--json"],
                           capture_output=True, text=True, check=True, cwd=tmp_path)
    assert '"distribution": "mmcore-example-rmap"' in shown.stdout
    assert '"version": "0.1.0"' in shown.stdout
