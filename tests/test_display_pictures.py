"""Issue 9 item 1: ``_repr_svg_`` where a picture says more. Machine and Process show the
graph of their anon objects (mmcore.viz.anon_vma_tree_dot) as SVG when Graphviz is
installed, in their HTML under the tables too; without Graphviz (no ``dot``, or no
``graphviz`` package) ``_repr_svg_`` is None and the HTML is the tables and one hint."""

from __future__ import annotations

import html
import shutil
import sys
import types

import pytest

from mmcore import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    PROT_READ,
    PROT_WRITE,
    Machine,
    Process,
    display,
)
from mmcore.viz import DotGraph, anon_vma_tree_dot

BASE, PAGE = 0x10000000, 4096
RW = PROT_READ | PROT_WRITE
FAKE_SVG = '<?xml version="1.0"?>\n<!DOCTYPE svg PUBLIC "x" "y">\n<svg>fake</svg>\n'


def forked() -> tuple[Machine, Process, Process]:
    """p writes page 0 of four and forks c; c writes page 0 (anon_vma_chain: c gets an
    anon_vma of its own, child of p's)."""
    m = Machine(rmap="anon_vma_chain")
    p = m.spawn()
    p.mmap(BASE, 4 * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
    p.write(BASE, b"zero")
    c = p.fork()
    c.write(BASE, b"ZERO")
    return m, p, c


@pytest.fixture
def no_dot(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine with the graphviz Python package (a stand-in, where the viz extra is not
    installed) but without Graphviz's dot on PATH."""
    monkeypatch.setitem(sys.modules, "graphviz", sys.modules.get("graphviz")
                        or types.ModuleType("graphviz"))
    monkeypatch.setattr(shutil, "which", lambda _name: None)


@pytest.fixture
def fake_dot(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """dot replaced by a recorder (so these run where Graphviz is absent): the DOT
    sources drawn, in order."""
    drawn: list[str] = []

    def svg(graph: DotGraph) -> str:
        drawn.append(graph.source)
        return FAKE_SVG
    monkeypatch.setattr(DotGraph, "svg", svg)
    return drawn


def test_machine_svg_is_its_anon_object_graph(fake_dot: list[str]) -> None:
    """The Machine's picture is anon_vma_tree_dot of the machine; its HTML has the
    tables, then the picture inline (without the XML prolog and DOCTYPE)."""
    m, _p, _c = forked()
    assert m._repr_svg_() == FAKE_SVG
    assert fake_dot == [anon_vma_tree_dot(m).source]
    out = m._repr_html_()
    assert out.index("<caption>processes</caption>") < out.index(
        '<div class="mmcore-picture"><svg>fake</svg>')
    assert "DOCTYPE" not in out


def test_process_svg_shows_only_its_own_vmas(fake_dot: list[str]) -> None:
    """A process's picture: its vmas and the anon objects they reach (c's own anon_vma
    and, through the chain, its parent's), not the other process's vmas."""
    _m, p, c = forked()
    assert c._repr_svg_() == FAKE_SVG
    source = fake_dot[-1]
    assert 'label="pid 2"' in source and 'label="pid 1"' not in source
    assert "anon_vma#1" in source and "anon_vma#2" in source
    assert "of pid 2" in source.splitlines()[1]
    assert p._repr_svg_() == FAKE_SVG and 'label="pid 1"' in fake_dot[-1]


def test_no_picture_without_anonymous_memory(fake_dot: list[str]) -> None:
    """Nothing to draw (no process, or vmas never faulted): no SVG, no hint, dot not
    run."""
    m = Machine()
    p = m.spawn()
    assert m._repr_svg_() is None and p._repr_svg_() is None
    p.mmap(BASE, PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
    assert p._repr_svg_() is None and "mmcore-picture" not in p._repr_html_()
    assert "no picture" not in m._repr_html_() and fake_dot == []


def test_no_picture_past_the_vma_limit(fake_dot: list[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """More vmas than MAX_PICTURE_VMAS: the tables only."""
    m, _p, _c = forked()
    monkeypatch.setattr(display, "MAX_PICTURE_VMAS", 1)
    assert m._repr_svg_() is None and "mmcore-picture" not in m._repr_html_()
    assert fake_dot == []


def test_an_exited_process_has_no_picture(fake_dot: list[str]) -> None:
    """An exited process has no vmas to draw."""
    _m, _p, c = forked()
    c.exit()
    assert c._repr_svg_() is None


@pytest.mark.usefixtures("no_dot")
def test_without_dot_svg_is_none_and_html_gives_the_text_outline() -> None:
    """No dot on PATH: _repr_svg_ is None (Jupyter then shows the HTML), and the HTML is
    the tables, the picture's text outline (as a DotGraph shows it) and one line saying
    what to install."""
    m, _p, c = forked()
    assert m._repr_svg_() is None and c._repr_svg_() is None
    out = m._repr_html_()
    assert "<caption>processes</caption>" in out and "<svg" not in out
    outline = display.picture(m).outline  # type: ignore[union-attr]
    assert f"<pre>{html.escape(outline)}</pre>" in out
    assert "<small>text outline: the Graphviz &#x27;dot&#x27; program" in out


def test_without_the_graphviz_package_svg_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    """No graphviz Python package: the same clean fallback, naming the viz extra."""
    monkeypatch.setitem(sys.modules, "graphviz", None)
    m, _p, _c = forked()
    assert m._repr_svg_() is None
    assert "mmcore-sim[viz]" in m._repr_html_()


def test_with_dot_the_svg_is_drawn() -> None:
    """Real Graphviz: an SVG document naming both anon_vmas and the two processes."""
    if shutil.which("dot") is None:
        pytest.skip("Graphviz dot is not installed")
    pytest.importorskip("graphviz", reason="the graphviz package is not installed")
    m, _p, c = forked()
    svg = m._repr_svg_()
    assert svg is not None and svg.startswith("<?xml") and "<svg" in svg
    assert "anon_vma#1" in svg and "anon_vma#2" in svg and "pid 1" in svg
    mine = c._repr_svg_()
    assert mine is not None and "pid 2" in mine and "pid 1" not in mine
    assert '<div class="mmcore-picture"><svg' in m._repr_html_()
