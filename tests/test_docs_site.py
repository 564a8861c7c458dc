"""The documentation site: the griffe extension that makes docstring roles checked links
(tools/griffe_sphinx_roles.py), and the strict build itself.

These need the ``docs`` extra (griffe, mkdocs); without it they are skipped, and .ci/run
runs them again once it has installed the extra."""

from __future__ import annotations

import importlib.util
import logging
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

griffe = pytest.importorskip("griffe")

ROOT = Path(__file__).resolve().parent.parent


def load_extension() -> ModuleType:
    """tools/griffe_sphinx_roles.py as a module (tools/ is not a package)."""
    spec = importlib.util.spec_from_file_location("griffe_sphinx_roles",
                                                  ROOT / "tools" / "griffe_sphinx_roles.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ROLES = load_extension()


@pytest.fixture(scope="module")
def collection() -> griffe.ModulesCollection:
    """mmcore loaded by griffe from the source tree, as mkdocstrings loads it."""
    loader = griffe.GriffeLoader(search_paths=[str(ROOT)])
    loader.load("mmcore")
    return loader.modules_collection


def rewrite(collection: griffe.ModulesCollection, where: str, text: str) -> str:
    """``text`` rewritten as a docstring of the object at ``where``."""
    return str(ROLES.markdown(collection[where], collection, text))


def test_role_naming_a_documented_object_becomes_an_autorefs_link(collection) -> None:
    """``:class:`~mmcore.Machine``` links to the defining module's object, shown short."""
    out = rewrite(collection, "mmcore.plugins", "Build a :class:`~mmcore.Machine`.")
    assert out == "Build a [`Machine`][mmcore.machine.Machine]."


def test_relative_role_is_found_from_the_enclosing_module(collection) -> None:
    """A bare or dotted-relative name resolves in the enclosing module, as Sphinx does."""
    out = rewrite(collection, "mmcore.plugins.missing_needs",
                  "See :func:`.valid_configurations` and :func:`plugin_info`.")
    assert out == ("See [`valid_configurations`][mmcore.plugins.valid_configurations] and "
                   "[`plugin_info`][mmcore.plugins.plugin_info].")


def test_role_outside_the_documented_packages_stays_a_code_span(collection, caplog) -> None:
    """``os.replace`` has no page here: a code span, and no warning."""
    with caplog.at_level(logging.WARNING):
        out = rewrite(collection, "mmcore.atomicfile", "Renamed with :func:`os.replace`.")
    assert out == "Renamed with `os.replace`."
    assert not caplog.records


def test_stale_role_in_a_documented_package_is_a_warning(collection, caplog) -> None:
    """A name under mmcore that does not exist is logged as a warning, which fails
    ``mkdocs build --strict``."""
    with caplog.at_level(logging.WARNING):
        out = rewrite(collection, "mmcore.vma", "Rules in :mod:`mmcore.vma_merge`.")
    assert out == "Rules in `mmcore.vma_merge`."
    assert "'mmcore.vma_merge'" in caplog.text and "mmcore.vma" in caplog.text


def test_doctest_becomes_a_fenced_pycon_block(collection) -> None:
    """``>>>`` lines and their output become one fenced block (``[:4]`` is no link)."""
    text = "Ops:\n\n>>> ops[:4]\n['mmap']\n\nAfter."
    out = rewrite(collection, "mmcore.plugins", text)
    assert out == "Ops:\n\n```pycon\n>>> ops[:4]\n['mmap']\n```\n\nAfter."


def test_indented_doctest_is_left_as_the_code_block_it_is(collection) -> None:
    """A doctest indented under a paragraph is already Markdown code: no fence inside."""
    text = "Use it so:\n\n    >>> open_it()\n\nAfter."
    assert rewrite(collection, "mmcore.plugins", text) == text


def test_rest_literal_marker_becomes_a_colon(collection) -> None:
    """A paragraph ending in ``::`` (reST literal block) ends in ``:`` on the site."""
    out = rewrite(collection, "mmcore.plugins", "One line runs it::\n\n    pytest")
    assert out == "One line runs it:\n\n    pytest"


@pytest.mark.slow
def test_site_builds_with_mkdocs_strict(tmp_path: Path) -> None:
    """``mkdocs build --strict`` passes: no broken link, anchor, cross-reference or
    unreadable docstring."""
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q",
                           "-d", str(tmp_path / "site")], cwd=ROOT, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "site" / "reference" / "machine" / "index.html").is_file()
