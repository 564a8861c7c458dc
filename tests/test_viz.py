"""mmcore.viz: the pictures show the right vmas and pfns, and the DOT is well formed."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from mmcore_plugins.anon_vma_chain import AnonVmaChainScheme

from mmcore import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    MAP_SHARED,
    PROT_READ,
    PROT_WRITE,
    Machine,
    Page,
    PluginInfo,
    Process,
    Vma,
    WalkCost,
    hookimpl,
    viz,
)
from mmcore.viz import anon_vma_tree_dot, layout, render_png, rmap_dot, vmprint

BASE, PAGE = 0x10000000, 4096
RW = PROT_READ | PROT_WRITE
PA = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED
SCHEMES = ["anon_vma_chain", "anon_vma", "anonmm", "pte_chains", "anon_vma_global"]


def machine(rmap: str | type = "anon_vma_chain") -> Machine:
    return Machine(rmap=rmap, mremap_policy="unshare" if rmap == "anonmm" else None)


def forked(rmap: str | type = "anon_vma_chain") -> tuple[Machine, Process, Process]:
    """p writes pages 0-2 of 4, reads page 3, forks c; c writes page 0 (COW)."""
    m = machine(rmap)
    p = m.spawn()
    p.mmap(BASE, 4 * PAGE, RW, PA)
    for i in range(3):
        p.write(BASE + i * PAGE, b"p%d" % i)
    p.read(BASE + 3 * PAGE, 1)
    c = p.fork()
    c.write(BASE, b"c0")
    return m, p, c


# --- DOT checking ---------------------------------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_NODE = re.compile(r"^\s*(n\d+)\s*\[", re.M)
_EDGE = re.compile(r"^\s*(n\d+)\s*->\s*(n\d+)", re.M)


def check_dot(text: str) -> tuple[set[str], list[tuple[str, str]]]:
    """Syntactic plausibility: a digraph, balanced braces and brackets outside strings,
    every edge endpoint defined as a node, one statement per line ending in ';' or a
    brace. Returns (defined nodes, edges)."""
    assert text.startswith("digraph ") and text.rstrip().endswith("}")
    bare = _STRING.sub('""', text)
    assert bare.count("{") == bare.count("}")
    assert bare.count("[") == bare.count("]")
    assert '"' not in _STRING.sub("", text), "unterminated string"
    for line in bare.splitlines():
        assert line.rstrip().endswith((";", "{", "}")), line
    nodes = set(_NODE.findall(text))
    edges = _EDGE.findall(text)
    assert len(nodes) == len(_NODE.findall(text)), "a node is defined twice"
    for a, b in edges:
        assert a in nodes and b in nodes, f"edge {a} -> {b} uses an undefined node"
    if shutil.which("dot"):  # the real parser, where Graphviz is installed
        subprocess.run(["dot", "-Tsvg", "-o", os.devnull], input=text.encode(), check=True)
    return nodes, edges


def labels(text: str) -> list[str]:
    return [m.replace("\\n", "\n") for m in re.findall(r'label="((?:[^"\\]|\\.)*)"', text)]


# --- vmprint ----------------------------------------------------------------------------


def test_vmprint_lists_every_pte_with_pfn_flags_and_mapcount() -> None:
    m, p, c = forked()
    text = vmprint(p)
    lines = text.splitlines()
    assert lines[0] == "page table of pid 1: 1 vma, 4 ptes"
    assert lines[1] == "vma 10000000-10004000 rw-p anon"
    ptes = lines[2:]
    assert len(ptes) == 4
    for i, line in enumerate(ptes):
        pfn = p.pagemap(BASE + i * PAGE).pfn
        assert line.startswith(f" .. {BASE + i * PAGE:08x} 0/0/128/{i}: pte ")
        assert f" pfn {pfn} " in line
        assert line.split("mapcount ")[1].split()[0] == str(m.kpagecount(pfn))
    # After the child's COW write the parent's page 0 is exclusive but still read-only;
    # pages 1-2 are shared (mapcount 2, read-only); page 3 is the zero page.
    assert "r-uad mapcount 1" in ptes[0]
    assert "r-uad mapcount 2" in ptes[1]
    assert ptes[3].endswith("mapcount 0 (zero page)") and " pfn 0 " in ptes[3]
    child = vmprint(c).splitlines()
    assert f"pfn {c.pagemap(BASE).pfn} rwuad mapcount 1" in child[2]


def test_vmprint_groups_by_vma_and_shows_swap_entries() -> None:
    m = machine()
    p = m.spawn()
    p.mmap(BASE, 4 * PAGE, RW, PA)
    p.write(BASE, b"a")
    p.write(BASE + 3 * PAGE, b"d")
    p.mprotect(BASE + 2 * PAGE, 2 * PAGE, PROT_READ)
    result = m.try_to_unmap(p.pagemap(BASE).pfn)
    assert result.success
    lines = vmprint(p).splitlines()
    assert lines[1] == "vma 10000000-10002000 rw-p anon"
    assert lines[2] == f" .. 10000000 0/0/128/0: swap slot {result.swap_slot} (exclusive)"
    assert lines[3] == "vma 10002000-10004000 r--p anon"
    assert lines[4].startswith(" .. 10003000 0/0/128/3: pte ")
    assert "r-uad" in lines[4]


# --- layout -----------------------------------------------------------------------------


def test_layout_ruler_matches_the_mmap_calls() -> None:
    r"""
        0123456789
        AABBBB  CC     mmap 10 pages, mprotect 2-5 read-only, munmap 6-7
    """
    m = machine()
    p = m.spawn()
    p.mmap(BASE, 10 * PAGE, RW, PA)
    p.write(BASE, b"x")
    p.mprotect(BASE + 2 * PAGE, 4 * PAGE, PROT_READ)
    p.munmap(BASE + 6 * PAGE, 2 * PAGE)
    assert layout(p).splitlines() == [
        "pid 1 at 0x10000000:",
        "0123456789",
        "AABBBB  CC",
        "A 10000000-10002000 rw-p pgoff 0x10000 anon_vma#1",
        "B 10002000-10006000 r--p pgoff 0x10002 anon_vma#1",
        "C 10008000-1000a000 rw-p pgoff 0x10008 anon_vma#1",
    ]


def test_layout_merge_shows_one_letter_and_wide_rulers_get_a_sixteens_line() -> None:
    m = machine()
    p = m.spawn()
    p.mmap(BASE, 20 * PAGE, RW, PA)
    p.mprotect(BASE + 18 * PAGE, 2 * PAGE, PROT_READ)
    p.mprotect(BASE + 18 * PAGE, 2 * PAGE, RW)  # merges back
    lines = layout(p).splitlines()
    assert lines[1] == " " * 16 + "1111"
    assert lines[2] == "0123456789abcdef0123"
    assert lines[3] == "A" * 20
    assert len(lines) == 5


def test_layout_separates_distant_vmas_and_cuts_wide_ones() -> None:
    m = machine()
    p = m.spawn()
    p.mmap(BASE, 2 * PAGE, RW, PA)
    p.mmap(BASE + 100 * PAGE, 3 * PAGE, PROT_READ, PA)
    text = layout(p)
    assert "pid 1 at 0x10000000:\n01\nAA\n" in text
    assert f"pid 1 at {BASE + 100 * PAGE:#x}:\n012\nBBB\n" in text
    p.mmap(BASE + 200 * PAGE, 80 * PAGE, RW, PA)
    assert "C" * 64 + " ... (16 more pages)" in layout(p, width=64)


def test_layout_names_anon_objects_consistently_across_processes() -> None:
    _, p, c = forked("anon_vma")  # one anon_vma for the whole fork family
    assert layout(p, c).count("anon_vma#1") == 2
    _, p, c = forked("anon_vma_chain")  # the child gets its own anon_vma
    text = layout(p, c)
    assert "pgoff 0x10000 anon_vma#1" in text and "pgoff 0x10000 anon_vma#2" in text


# --- rmap_dot ---------------------------------------------------------------------------


@pytest.mark.parametrize("rmap", SCHEMES)
def test_rmap_dot_reaches_every_mapping(rmap: str) -> None:
    m, p, c = forked(rmap)
    shared = p.pagemap(BASE + PAGE).pfn
    text = rmap_dot(m, shared)
    check_dot(text)
    names = labels(text)
    assert f"rmap of pfn {shared} ({rmap})" in names
    assert any(n.startswith(f"page pfn {shared}\nmapcount 2") for n in names)
    for pid, addr in m.rmap_truth(shared):
        assert f"mm of pid {pid}" in names
        assert f"pte @ {addr:#x}" in names
    assert "NOT REACHED" not in text
    assert text.count('color="darkgreen"') == 2
    # The private copy the child made is reached from the page through the structure.
    private = rmap_dot(m, c.pagemap(BASE).pfn)
    check_dot(private)
    assert "pte @ 0x10000000" in labels(private) and "NOT REACHED" not in private


def test_rmap_dot_anon_vma_chain_structure() -> None:
    m, p, c = forked("anon_vma_chain")
    text = rmap_dot(m, p.pagemap(BASE + PAGE).pfn)
    check_dot(text)
    # The parent's anon_vma (root) holds two chains: the parent's vma and the child's.
    assert labels(text).count("avc") == 2
    assert 'peripheries="2"' in text
    # The page the child copied lives in the child's anon_vma, whose root is drawn too.
    private = rmap_dot(m, c.pagemap(BASE).pfn)
    assert "root" in labels(private) and labels(private).count("avc") == 1


def test_rmap_dot_pte_chains_draws_each_pte_entry() -> None:
    m, p, c = forked("pte_chains")
    text = rmap_dot(m, p.pagemap(BASE + PAGE).pfn)
    check_dot(text)
    assert any(n.startswith("pte_chain block 0\n2 ptes") for n in labels(text))
    assert "pte of pid 1\n@ 0x10001000" in labels(text)
    assert "pte of pid 2\n@ 0x10001000" in labels(text)
    direct = rmap_dot(m, c.pagemap(BASE).pfn)
    assert "pte.direct" in labels(direct)


def test_rmap_dot_anonmm_draws_the_group() -> None:
    m, p, _ = forked("anonmm")
    text = rmap_dot(m, p.pagemap(BASE + PAGE).pfn)
    check_dot(text)
    assert "subgraph cluster_0" in text
    assert "anonmm#1\nhead" in labels(text) and "anonmm#2" in labels(text)
    assert "find_vma(0x10001000)" in labels(text)


def test_rmap_dot_file_page() -> None:
    m = machine()
    m.create_file("/data", b"x" * (2 * PAGE))
    p = m.spawn()
    fd = p.open("/data", os.O_RDWR)
    a = p.mmap(0, 2 * PAGE, RW, MAP_SHARED, fd)
    p.read(a + PAGE, 1)
    c = p.fork()
    c.read(a + PAGE, 1)
    text = rmap_dot(m, p.pagemap(a + PAGE).pfn)
    check_dot(text)
    assert "file /data\ni_mmap" in labels(text)
    assert text.count('color="darkgreen"') == 2


def test_rmap_dot_marks_mappings_a_broken_scheme_cannot_reach() -> None:
    m, p, _ = forked(ForgetsChildren)
    text = rmap_dot(m, p.pagemap(BASE + PAGE).pfn)
    check_dot(text)
    assert f"pte @ {BASE + PAGE:#x}\nNOT REACHED" in labels(text)
    assert text.count("NOT REACHED") == 1 and text.count("darkgreen") == 1


def test_rmap_dot_unknown_scheme_draws_vmas_pages_and_truth() -> None:
    m, p, _ = forked(BruteForce)
    text = rmap_dot(m, p.pagemap(BASE + PAGE).pfn)
    check_dot(text)
    assert any("shape not known to viz" in n for n in labels(text))
    assert "mm of pid 1" in labels(text) and "mm of pid 2" in labels(text)
    tree = anon_vma_tree_dot(m)
    check_dot(tree)
    assert "token#1" in labels(tree)


def test_rmap_dot_zero_page_has_no_rmap_and_no_false_alarm() -> None:
    m, _, _ = forked()
    text = rmap_dot(m, 0)
    check_dot(text)
    assert any("the shared zero page: no rmap" in n for n in labels(text))
    assert text.count(f"pte @ {BASE + 3 * PAGE:#x}") == 2  # p and c both map it
    assert "NOT REACHED" not in text


def test_rmap_dot_rejects_a_free_frame() -> None:
    m = machine()
    with pytest.raises(ValueError, match="not an allocated page"):
        rmap_dot(m, 5)


# --- anon_vma_tree_dot -------------------------------------------------------------------


def test_anon_vma_tree_shows_the_fork_hierarchy() -> None:
    m, p, c = forked("anon_vma_chain")
    g = c.fork()
    g.write(BASE + PAGE, b"g")
    text = anon_vma_tree_dot(m)
    check_dot(text)
    names = labels(text)
    anon_vmas = [n for n in names if n.startswith("anon_vma#")]
    assert len(anon_vmas) == 3
    assert sum("root" in n for n in anon_vmas) == 1
    assert names.count("parent of") == 2
    # The labels carry the kernel's counters, read from the objects themselves.
    av = p.vmas()[0].anon_vma
    assert f"children {av.num_children}, active vmas {av.num_active_vmas}" in anon_vmas[0]  # type: ignore[attr-defined]
    # Each process is a cluster with its vma; the grandchild's vma links to 3 anon_vmas.
    assert text.count("subgraph cluster_") == 3
    assert names.count("anon_vma") == 3 and names.count("avc") == 3


@pytest.mark.parametrize("rmap", SCHEMES)
def test_anon_vma_tree_dot_for_every_scheme(rmap: str) -> None:
    m, _, _ = forked(rmap)
    check_dot(anon_vma_tree_dot(m))


# --- rendering ---------------------------------------------------------------------------


def test_render_png_without_graphviz_says_what_to_install(monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    monkeypatch.setattr(shutil, "which", lambda _: None)
    with pytest.raises(viz.GraphvizNotFound, match="Graphviz"):
        render_png("digraph { a; }", tmp_path / "x.png")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_render_png_writes_a_png(tmp_path: Path) -> None:
    m, p, _ = forked()
    out = render_png(rmap_dot(m, p.pagemap(BASE + PAGE).pfn), tmp_path / "rmap.png")
    assert out.read_bytes().startswith(b"\x89PNG")


# --- schemes used above ------------------------------------------------------------------


class ForgetsChildren(AnonVmaChainScheme):
    """anon_vma_chain that gives a fork child its parent's anon_vma without linking it."""

    info: ClassVar[PluginInfo] = PluginInfo(
        name="forgets_children", kind="rmap", summary="broken on purpose",
        structs=AnonVmaChainScheme.info.structs)

    @hookimpl
    def rmap_vma_fork(self, src: Vma, dst: Vma) -> None:
        dst.anon_vma = src.anon_vma


class Token:
    """An anon object of a shape viz does not know."""


class BruteForce:
    """A correct but naive scheme: every walk proposes every page of every vma."""

    info: ClassVar[PluginInfo] = PluginInfo(name="bruteforce", kind="rmap",
                                            summary="scans every vma of every process")

    def __init__(self, machine: Machine) -> None:
        self.machine = machine
        self.token = Token()

    @hookimpl
    def rmap_anon_prepare(self) -> object:
        return self.token

    @hookimpl
    def rmap_vma_fork(self, dst: Vma) -> None:
        dst.anon_vma = self.token

    @hookimpl
    def rmap_vma_can_merge(self) -> bool:
        return True

    @hookimpl
    def rmap_page_new_anon(self, page: Page, address: int) -> None:
        page.mapping = self.token
        page.index = address

    @hookimpl
    def rmap_page_dup(self) -> None:
        pass

    @hookimpl
    def rmap_page_remove(self) -> None:
        pass

    @hookimpl
    def rmap_page_move(self) -> None:
        pass

    @hookimpl
    def rmap_walk(self, cost: WalkCost) -> Iterator[tuple[Vma, int]]:
        for proc in self.machine.live_processes():
            cost.mms_visited += 1
            for vma in proc.mm.vmas:
                cost.vmas_visited += 1
                yield from ((vma, a) for a in range(vma.start, vma.end, PAGE))



# --- notebook displays -------------------------------------------------------------------


class FakePrinter:
    """What IPython.lib.pretty hands to _repr_pretty_: something with text()."""

    def __init__(self) -> None:
        self.out: list[str] = []

    def text(self, s: str) -> None:
        self.out.append(s)


def test_text_pictures_are_strings_that_display_as_preformatted_text() -> None:
    """vmprint and layout return the same text as before, shown unquoted by IPython and
    as <pre> (escaped) by Jupyter."""
    _m, p, _c = forked()
    picture = vmprint(p)
    assert isinstance(picture, viz.TextPicture) and isinstance(picture, str)
    assert str(picture).startswith("page table of pid 1: 1 vma, 4 ptes\n")
    printer = FakePrinter()
    picture._repr_pretty_(printer, False)
    assert printer.out == [str(picture)]
    ruler = layout(p)
    assert ruler._repr_html_() == f"<pre>{ruler}</pre>"  # nothing in it to escape


def test_dot_graph_keeps_its_source_and_has_a_text_outline() -> None:
    """rmap_dot's value is the DOT text (also .source); its outline lists every edge, the
    mapping edge from the page to its anon_vma first."""
    m, p, _c = forked()
    pfn = p.pagemap(BASE + PAGE).pfn
    graph = rmap_dot(m, pfn)
    assert isinstance(graph, viz.DotGraph) and graph.source == str(graph)
    assert graph.startswith("digraph mmcore {")
    lines = graph.outline.splitlines()
    assert lines[0] == f"rmap of pfn {pfn} (anon_vma_chain)"
    assert lines[1].startswith(f"  page pfn {pfn} | mapcount 2") and "--mapping--> anon_vma#1" \
        in lines[1]
    assert sum("pte @ 0x10001000" in line for line in lines) == 2
    assert len(lines) == 1 + graph.count(" -> ")
    tree = anon_vma_tree_dot(m)
    assert "--parent of--> anon_vma#2" in tree.outline


def test_dot_graph_without_dot_shows_the_outline_and_says_what_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """No dot program: no SVG, the HTML is the outline with what to install."""
    m, _p, _c = forked()
    graph = anon_vma_tree_dot(m)
    monkeypatch.setattr(shutil, "which", lambda _: None)
    assert graph._repr_svg_() is None
    out = graph._repr_html_()
    # What to install: Graphviz itself, or first the graphviz package (the viz extra).
    hint = "apt-get install" if importlib.util.find_spec("graphviz") else "mmcore-sim[viz]"
    assert out.startswith("<pre>anon objects (anon_vma_chain)\n") and hint in out
    printer = FakePrinter()
    graph._repr_pretty_(printer, False)
    assert printer.out == [graph.outline]


def test_dot_graph_without_the_graphviz_package_names_the_extra(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """No graphviz Python package: svg() names the mmcore-sim[viz] extra."""
    import sys
    monkeypatch.setitem(sys.modules, "graphviz", None)
    m, _p, _c = forked()
    with pytest.raises(viz.GraphvizNotFound, match=r"mmcore-sim\[viz\]"):
        anon_vma_tree_dot(m).svg()


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_dot_graph_draws_svg_with_graphviz() -> None:
    """With the package and dot, Jupyter gets an SVG naming the page."""
    pytest.importorskip("graphviz", reason="the viz extra is not installed")
    m, p, _c = forked()
    graph = rmap_dot(m, p.pagemap(BASE + PAGE).pfn)
    svg = graph._repr_svg_()
    assert svg is not None and "<svg" in svg and "anon_vma#1" in svg
    assert graph._repr_html_() == svg
