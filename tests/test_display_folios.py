"""Issue 9 item 1, continued: Page, Vma and WalkResult show a picture (``_repr_svg_``)
and a readable table, large folios included. A page of a large folio shows its folio
(order, head pfn, its index in it) and its mapcounts as the machine's mapcount design
reports them beside the exact counts; a vma shows its PMD- and PTE-mapped folios.
Page and Vma are compiled by mypyc in the compiled build, so they define ``_repr_svg_``
in their own class bodies."""

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
    _reprs,
    display,
    viz,
)
from mmcore.constants import MADV_HUGEPAGE
from mmcore.folio import Folio
from mmcore.page import Page
from mmcore.rmap import WalkResult, WalkTrace
from mmcore.thp import ThpSettings
from mmcore.viz import DotGraph, rmap_dot, vma_folios_dot, walk_dot
from mmcore.vma import Vma

PAGE = 4096
RW = PROT_READ | PROT_WRITE
PA = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED
BASE = 0x7F0000000000  # 2 MiB aligned
FAKE_SVG = "<svg>fake</svg>\n"


def mthp(mapcount: str = "per_page") -> tuple[Machine, Process, Folio]:
    """A 64 kB mTHP (hugepages-64kB ``always``) faulted by p's first write."""
    m = Machine(thp=ThpSettings(per_order={4: "always"}), mapcount=mapcount)
    p = m.spawn()
    p.mmap(BASE, 16 * PAGE, RW, PA)
    p.write(BASE, b"x")
    folio = m.physmem.pages[p.pagemap(BASE).pfn].folio  # type: ignore[union-attr]
    assert folio is not None and folio.order == 4
    return m, p, folio


def two_thps_forked() -> tuple[Machine, Process, Process]:
    """p faults two PMD THPs (MADV_HUGEPAGE) and forks c; c writes page 5 of the second,
    which splits c's PMD there and copies that one page (do_huge_pmd_wp_page())."""
    m = Machine()
    p = m.spawn()
    p.mmap(BASE, 1024 * PAGE, RW, PA)
    p.madvise(BASE, 1024 * PAGE, MADV_HUGEPAGE)
    p.write(BASE, b"x")
    p.write(BASE + 512 * PAGE, b"y")
    c = p.fork()
    c.write(BASE + 517 * PAGE, b"c")
    return m, p, c


def facts(obj: object) -> dict[str, str]:
    return dict(display.view(obj).facts)


@pytest.fixture
def fake_dot(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """dot replaced by a recorder: the DOT sources drawn, in order."""
    drawn: list[str] = []

    def svg(graph: DotGraph) -> str:
        drawn.append(graph.source)
        return FAKE_SVG
    monkeypatch.setattr(DotGraph, "svg", svg)
    return drawn


# --- pages of large folios -----------------------------------------------------------


def test_a_page_of_an_mthp_shows_its_folio_and_the_designs_mapcounts() -> None:
    """Page 3 of a 64 kB folio: where it sits (folio_page_idx(), folio_pfn(),
    folio_order()), how the folio is mapped, and page_mapcount()/folio_mapcount() as the
    per_page design reports them, each beside the exact count."""
    _m, _p, folio = mthp()
    page = folio.pages[3]
    f = facts(page)
    assert f["folio"] == f"page 3 of 16 of folio pfn {folio.pfn} (order 4, 64 kB)"
    assert f["folio mapped by"] == "0 PMD, ptes on 16 of 16 pages"
    assert f["mapcount"] == "1 (per_page design; exact 1)"
    assert f["folio_mapcount"] == "16 (per_page design; exact 16)"
    assert "page 3 of 16 of folio pfn" in page._repr_html_()


def test_a_design_that_is_not_exact_shows_its_answer_beside_the_truth() -> None:
    """no_page_mapcount keeps no per-page count: after c unmaps half of a shared 64 kB
    folio, page 15's mapcount is the folio's average (what /proc/kpagecount reports),
    while exactly one pte maps it; the display shows both."""
    m, p, folio = mthp("no_page_mapcount")
    c = p.fork()
    c.munmap(BASE + 8 * PAGE, 8 * PAGE)
    page = folio.pages[15]
    reported = m.kpagecount(page.pfn)
    assert reported != 1  # the design's average, not the truth
    assert facts(page)["mapcount"] == f"{reported} (no_page_mapcount design; exact 1)"
    assert facts(page)["folio_mapcount"].endswith("(no_page_mapcount design; exact 24)")


def test_a_page_outside_any_machine_shows_the_exact_counts() -> None:
    """A folio made alone has no machine to ask: the exact count, and no picture."""
    folio = Folio([Page(pfn) for pfn in range(64, 66)], 1)
    folio.pages[1].mapcount = 2
    f = facts(folio.pages[1])
    assert f["mapcount"] == "2 (exact)" and "folio_mapcount" not in f
    assert f["folio"] == "page 1 of 2 of folio pfn 64 (order 1, 8 kB)"
    assert display.picture(folio.pages[1]) is None


def test_an_order0_page_shows_the_same_facts_as_before() -> None:
    """A small page is its own folio: no folio facts, its mapcount as it is."""
    m = Machine()
    p = m.spawn()
    p.mmap(BASE, PAGE, RW, PA)
    p.write(BASE, b"x")
    page = m.physmem.page(p.pagemap(BASE).pfn)
    assert [k for k, _ in display.view(page).facts] == ["pfn", "flags", "refcount",
                                                         "mapcount", "mapping", "index"]


def test_rmap_picture_of_a_folio_page_says_where_it_sits() -> None:
    """rmap_dot's page node names the page's folio; an order-0 page's node is as it was."""
    m, _p, folio = mthp()
    assert "page 3 of 16 of folio pfn" in rmap_dot(m, folio.pages[3].pfn)


# --- vmas -------------------------------------------------------------------------------


def test_a_vma_lists_its_pmd_and_pte_mapped_folios() -> None:
    """c's vma: the first THP still PMD-mapped, the second mapped by ptes around the page
    c copied (pages 0-4 and 6-511), each with folio_mapcount as the design counts it."""
    m, _p, c = two_thps_forked()
    vma = c.mm.vmas.lookup(BASE)
    assert vma is not None
    [table] = display.view(vma).tables
    assert table.header[-1] == "folio_mapcount (per_page)"
    first = m.physmem.pages[c.pagemap(BASE).pfn].folio  # type: ignore[union-attr]
    second = m.physmem.pages[c.pagemap(BASE + 512 * PAGE).pfn].folio  # type: ignore[union-attr]
    assert first is not None and second is not None
    assert [row[2:5] for row in table.rows] == [
        (str(first.pfn), "order 9, 2048 kB", "PMD, pages 0-511"),
        (str(second.pfn), "order 9, 2048 kB", "ptes, pages 0-4"),
        (str(second.pfn), "order 9, 2048 kB", "ptes, pages 6-511")]
    assert table.rows[0][:2] == (f"{BASE:#x}", f"{BASE + 512 * PAGE:#x}")
    assert table.rows[0][5] == str(m.mapcount_folio(first))


def test_a_vma_picture_draws_each_folio_once_with_an_edge_per_run() -> None:
    """vma_folios_dot: one node per folio, an edge per run (PMD or ptes with the folio's
    page numbers), and the copied page as a run of one small page."""
    _m, _p, c = two_thps_forked()
    vma = c.mm.vmas.lookup(BASE)
    assert vma is not None
    graph = vma_folios_dot(vma)
    assert graph.outline.splitlines()[0].endswith("4 runs of present ptes, 2 large folios")
    assert graph.count("folio pfn") == 2 and graph.count("1 small page") == 1
    assert f"PMD {BASE:x}-{BASE + 512 * PAGE:x}\\npages 0-511" in graph
    assert "ptes 7f0000200000-7f0000205000\\npages 0-4" in graph
    assert "1 PMD, ptes on 511 of 512 pages" in graph  # p's PMD, c's ptes


def test_a_vma_picture_of_many_runs_counts_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    """At most MAX_PICTURE_NODES runs are drawn; one last node counts the others."""
    _m, _p, c = two_thps_forked()
    monkeypatch.setattr(viz, "MAX_PICTURE_NODES", 2)
    vma = c.mm.vmas.lookup(BASE)
    assert vma is not None
    graph = vma_folios_dot(vma)
    assert "... 2 more runs" in graph and graph.count("folio pfn") == 2


def test_a_vma_without_present_ptes_has_no_picture(fake_dot: list[str]) -> None:
    """Nothing mapped yet: no SVG, dot not run; the vma view has no folio table."""
    m = Machine()
    p = m.spawn()
    p.mmap(BASE, 4 * PAGE, RW, PA)
    vma = p.mm.vmas.lookup(BASE)
    assert vma is not None
    assert vma._repr_svg_() is None and fake_dot == [] and display.view(vma).tables == []


def test_vma_and_page_svg_are_their_pictures(fake_dot: list[str]) -> None:
    """Vma._repr_svg_ draws vma_folios_dot (with the design's folio_mapcount), and
    Page._repr_svg_ draws rmap_dot of the page's machine."""
    m, p, folio = mthp()
    vma = p.mm.vmas.lookup(BASE)
    assert vma is not None
    assert vma._repr_svg_() == FAKE_SVG
    assert fake_dot == [vma_folios_dot(vma, m.mapcount_folio).source]
    assert "folio_mapcount 16" in fake_dot[0]
    assert folio.pages[2]._repr_svg_() == FAKE_SVG
    assert fake_dot[-1] == rmap_dot(m, folio.pages[2].pfn).source
    assert m.physmem.zero_page._repr_svg_() is None  # in no rmap structure


# --- walks ------------------------------------------------------------------------------


def cow_under_anon_vma() -> tuple[Machine, int]:
    """anon_vma (2004): p writes page 0, forks, c copies it; p's frame is on the
    anon_vma's list with c's vma, so its walk wastes a probe on c."""
    m = Machine(rmap="anon_vma")
    p = m.spawn()
    p.mmap(0x10000000, 4 * PAGE, RW, PA)
    p.write(0x10000000, b"x")
    c = p.fork()
    c.write(0x10000000, b"c")
    return m, p.pagemap(0x10000000).pfn


def test_a_walk_result_picture_is_its_mappings() -> None:
    """walk_dot of a WalkResult: the page and one edge per mapping found, from the result
    alone."""
    m, pfn = cow_under_anon_vma()
    graph = walk_dot(m.rmap_walk(pfn))
    assert graph.outline.splitlines()[1] == (
        f"  pte of pid 1 | @ 0x10000000 --maps it--> page pfn {pfn}")
    assert "found 1 mapping, 2 ptes probed, 1 wasted" in graph.outline


def test_a_traced_walk_picture_is_its_probes_in_order() -> None:
    """walk_dot of a WalkTrace: each probe in walk order, wasted in orange with its
    verdict, the hit in green with an edge to the page."""
    m, pfn = cow_under_anon_vma()
    graph = walk_dot(m.trace_walk(pfn))
    assert "probe 1: pid 2\\nvma 10000000-10004000\\n@ 0x10000000: maps pfn" in graph
    assert 'fillcolor="moccasin"' in graph and 'fillcolor="palegreen"' in graph
    assert "--next--> probe 2: pid 1" in graph.outline
    assert f"probe 2: pid 1 | vma 10000000-10004000 | @ 0x10000000: maps it --maps it--> " \
           f"page pfn {pfn}" in graph.outline


def test_a_long_walk_picture_counts_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    """More probes than MAX_PICTURE_NODES: the rest in one node."""
    m, pfn = cow_under_anon_vma()
    monkeypatch.setattr(viz, "MAX_PICTURE_NODES", 1)
    assert "... 1 more probes" in walk_dot(m.trace_walk(pfn))


def test_walk_result_svg_and_an_empty_walk(fake_dot: list[str]) -> None:
    """WalkResult._repr_svg_ draws walk_dot; a walk that found nothing and traced no
    probe has no picture."""
    m, pfn = cow_under_anon_vma()
    walk = m.rmap_walk(pfn)
    assert walk._repr_svg_() == FAKE_SVG and fake_dot == [walk_dot(walk).source]
    assert WalkResult(pfn)._repr_svg_() is None and WalkTrace(pfn)._repr_svg_() is None
    assert len(fake_dot) == 1


# --- without Graphviz, and the compiled classes ------------------------------------------


def test_without_dot_the_html_carries_the_text_outline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No dot on PATH: _repr_svg_ is None for a Vma, a Page and a WalkResult (Jupyter
    falls back to _repr_html_), and their HTML has the tables, then the picture's text
    outline and what to install."""
    monkeypatch.setitem(sys.modules, "graphviz", sys.modules.get("graphviz")
                        or types.ModuleType("graphviz"))
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    m, p, folio = mthp()
    vma = p.mm.vmas.lookup(BASE)
    assert vma is not None
    walk = m.rmap_walk(folio.pfn)
    for obj in (vma, folio.pages[0], walk):
        assert obj._repr_svg_() is None
        out = obj._repr_html_()
        outline = display.picture(obj).outline  # type: ignore[union-attr]
        assert out.index("<table>") < out.index(f"<pre>{html.escape(outline)}</pre>")
        assert "text outline: the Graphviz" in out and "<svg" not in out


def test_page_and_vma_define_the_display_methods_in_their_own_bodies() -> None:
    """mypyc compiles Page and Vma; a compiled class cannot inherit an interpreted one,
    so they spell out all four display methods instead of inheriting _reprs.Pictured
    (WalkResult, interpreted, inherits it)."""
    for cls in (Page, Vma):
        assert not issubclass(cls, _reprs.Displayed)
        assert {"_repr_html_", "_repr_pretty_", "__rich__", "_repr_svg_"} <= set(vars(cls))
    assert issubclass(WalkResult, _reprs.Pictured)
