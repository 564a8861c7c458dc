"""The offline step-through (mmcore_contrib.labs.stepthrough): one self-contained HTML
file that steps through fork and copy-on-write op by op."""

from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

import pytest
from mmcore_contrib.labs import stepthrough
from mmcore_contrib.labs.stepthrough import BASE, EXTERNAL, FORK_AND_COW, PAGE, export_html, record


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The fork-and-COW page under anon_vma_chain and anon_vma, side by side."""
    out = tmp_path_factory.mktemp("st") / "fork_cow.html"
    assert export_html(out, rmaps=("anon_vma_chain", "anon_vma")) == out
    return out.read_text()


def sections(text: str) -> list[str]:
    """The page's steps, in order."""
    return re.findall(r'<section class="step" id="step-\d+">.*?</section>', text, re.S)


def test_page_is_self_contained(page: str) -> None:
    """No src/href, stylesheet link, @import or url(): nothing is fetched; the only
    URLs left are the SVG namespace names, which are never fetched."""
    assert not EXTERNAL.search(page)
    urls = re.findall(r'(\S*)"?(https?://[^"\' >]+)', page)
    assert all(attr.startswith("xmlns") for attr, _ in urls)
    assert "<script>" in page and "<style>" in page


def test_page_has_every_step_in_order(page: str) -> None:
    """One section per statement of the scenario, each headed by the statement."""
    steps = sections(page)
    assert len(steps) == len(FORK_AND_COW)
    for k, (section, code) in enumerate(zip(steps, FORK_AND_COW, strict=True), 1):
        assert f"Step {k}: <code class=\"op\">{html.escape(code)}</code>" in section


def test_fork_step_shows_both_processes_sharing_the_frames(page: str) -> None:
    """After fork: c's page table maps frames 1 and 2 with mapcount 2 (new rows for a
    new process are not marked), and the watched page is mapped by both pids."""
    fork = sections(page)[5]
    assert "<h4>c</h4>" in fork
    assert "<td>0x10001000</td><td>2</td><td>r-u-d</td><td>2</td>" in fork
    assert "mapped by pid 1 @ 0x10001000, pid 2 @ 0x10001000" in fork


def test_frames_table_gives_each_process_pfn_and_mapcount(page: str) -> None:
    """The frames table: after fork both map frames 1 and 2 twice (every row changed);
    after c's write of page 0, c maps frame 3 once and p frame 1 once (that row alone
    changed)."""
    fork, cow = sections(page)[5], sections(page)[6]
    assert "<tr><th>address</th><th>p</th><th>c</th></tr>" in fork
    assert '<tr class="changed"><td>0x10000000</td><td>1 x2</td><td>1 x2</td></tr>' in fork
    assert '<tr class="changed"><td>0x10000000</td><td>1 x1</td><td>3 x1</td></tr>' in cow
    assert "<tr><td>0x10001000</td><td>2 x2</td><td>2 x2</td></tr>" in cow


def test_cow_step_highlights_the_new_frame(page: str) -> None:
    """c's write of page 0 gives it frame 3: that row, and p's frame 1 whose mapcount
    dropped to 1, are marked changed; p's untouched page 1 is not."""
    cow = sections(page)[6]
    assert '<tr class="changed"><td>0x10000000</td><td>3</td><td>rwuad</td><td>1</td>' in cow
    assert '<tr class="changed"><td>0x10000000</td><td>1</td><td>r-uad</td><td>1</td>' in cow
    assert '<tr><td>0x10001000</td><td>2</td><td>r-uad</td><td>2</td>' in cow


def test_comparison_runs_each_scheme_side_by_side(page: str) -> None:
    """Every step has one column per scheme, and the anon objects differ as they should:
    anon_vma_chain gives the child its own anon_vma, anon_vma (2004) shares one."""
    fork = sections(page)[5]
    cols = fork.split('<div class="col">')[1:]
    assert [c[:c.index("</h3>")] for c in cols] == ["<h3>anon_vma_chain", "<h3>anon_vma"]
    assert "anon_vma#2" in cols[0] and "anon_vma#2" not in cols[1]


def test_exit_step_drops_the_child(page: str) -> None:
    """After c.exit() only p is shown."""
    last = sections(page)[-1]
    assert "<h4>p</h4>" in last and "<h4>c</h4>" not in last


def test_a_failing_step_is_shown_and_the_scenario_goes_on() -> None:
    """A segfault is part of the lesson: the step says what it raised."""
    frames = record(("p = m.spawn()", "p.write(0x1000, b'x')", "q = m.spawn()"))
    assert "raised SegmentationFault" in frames[1].code
    assert [n for n, _ in frames[2].processes] == [stepthrough.FRAMES, "p", "q"]


def test_without_graphviz_the_rmap_picture_is_its_outline(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """No dot: the watched page's picture is the text outline."""
    monkeypatch.setattr(shutil, "which", lambda _: None)
    frames = record(FORK_AND_COW[:6])
    assert "<pre>rmap of pfn 2 (anon_vma_chain); walk: " in frames[-1].watched["p @ 0x10001000"]


def test_main_writes_the_file_and_rejects_an_unknown_scheme(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The command line: 0 and the path; 2 and one line for a scheme that is not there."""
    out = tmp_path / "x.html"
    assert stepthrough.main([str(out)]) == 0 and out.is_file()
    assert stepthrough.main([str(tmp_path / "y.html"), "--rmap", "nope"]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert not (tmp_path / "y.html").exists()


def test_page_shows_in_an_iframe_and_saves(tmp_path: Path) -> None:
    """Without ipywidgets a notebook gets the page in an iframe (its script runs there),
    and save() writes the same offline file."""
    runs = {"anon_vma_chain": record(FORK_AND_COW[:3])}
    view = stepthrough.Page(stepthrough.render_html(runs))
    shown = view._repr_html_()
    assert shown.startswith('<iframe srcdoc="&lt;!DOCTYPE html&gt;')
    assert view.save(tmp_path / "p.html").read_text() == view.text


def test_show_falls_back_to_the_page_without_ipywidgets(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ipywidgets: show() returns the offline page."""
    import sys
    monkeypatch.setitem(sys.modules, "ipywidgets", None)
    assert isinstance(stepthrough.show(FORK_AND_COW[:2]), stepthrough.Page)


def test_widget_steps_forward_back_and_resets() -> None:
    """The widget: Next, Prev and Reset move the slider, and the view shows that step."""
    widgets = pytest.importorskip("ipywidgets", reason="ipywidgets is not installed")
    box = stepthrough.widget(FORK_AND_COW)
    controls, view = box.children
    reset, prev, play, nxt, slider, _pick = controls.children
    assert isinstance(play, widgets.Play) and slider.max == len(FORK_AND_COW) - 1
    assert 'id="step-1"' in view.value
    for _ in range(6):
        nxt.click()
    assert slider.value == 6 and 'id="step-7"' in view.value
    assert '<tr class="changed"><td>0x10000000</td><td>3</td>' in view.value
    prev.click()
    assert 'id="step-6"' in view.value
    reset.click()
    prev.click()  # stays at the first step
    assert slider.value == 0 and 'id="step-1"' in view.value


def watch_div(column: str, k: int) -> str:
    """The ``k``-th watched page of one scheme's column of a step."""
    return re.findall(r'<div class="watch" data-watch="\d+">.*?(?=<div class="watch"|$)',
                      column, re.S)[k]


def test_page_lists_the_watched_pages_then_every_other_mapped_page(page: str) -> None:
    """A list of the watched pages, then every other frame a step maps by its first
    mapper (c's copy of page 1; never the zero page p reads at 0x10002000); the script
    shows the chosen one's walk. Every column of every step has one block per page of
    the list, in its order."""
    assert ('<select id="watch"><option value="0">p @ 0x10000000</option><option '
            'value="1">p @ 0x10001000</option><option value="2">c @ 0x10000000</option>'
            '<option value="3">c @ 0x10001000</option></select>') in page
    assert "watch.onchange=pick" in page
    for section in sections(page):
        for col in section.split('<div class="col">')[1:]:
            assert re.findall(r'data-watch="(\d+)"', col) == ["0", "1", "2", "3"]


def test_walk_after_the_cow_copy_shows_the_wasted_probe_under_anon_vma(page: str) -> None:
    """After c copies page 0: under anon_vma (2004) the walk of p's frame probes c's vma
    first (its pte maps c's copy, frame 3: wasted) and then p's (green row, green vma);
    under anon_vma_chain the interval tree gives p's vma first and the walk stops
    there."""
    cow = sections(page)[6]
    chain_col, list_col = cow.split('<div class="col">')[1:]
    walk = watch_div(list_col, 0)
    assert ("<tr><td>1</td><td>2</td><td>0x10000000-0x10004000</td><td>0x10000000</td>"
            "<td>maps pfn 3</td></tr>") in walk
    assert ('<tr class="hit"><td>2</td><td>1</td><td>0x10000000-0x10004000</td>'
            "<td>0x10000000</td><td>maps it</td></tr>") in walk
    assert "probe 1: maps pfn 3" in html.unescape(walk)
    chain = watch_div(chain_col, 0)
    assert "<td>maps pfn 3</td>" not in chain and chain.count('<tr class="hit">') == 1


@pytest.mark.parametrize("dot", [True, False], ids=["with dot", "without dot"])
def test_the_walk_is_drawn_on_the_picture(dot: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The picture carries the walk: an SVG whose probed vmas are labelled with the
    probe, or without Graphviz the text outline with the same labels."""
    if dot and shutil.which("dot") is None:
        pytest.skip("Graphviz dot is not installed")
    if dot:
        pytest.importorskip("graphviz", reason="the SVG needs the viz extra's graphviz")
    if not dot:
        monkeypatch.setattr(shutil, "which", lambda _: None)
    frames = record(FORK_AND_COW[:7], "anon_vma", [("p", BASE)])
    shown = frames[-1].watched["p @ 0x10000000"]
    assert ("<svg" in shown) is dot and ("<pre>rmap of pfn 1" in shown) is not dot
    assert "probe 1: maps pfn 3" in html.unescape(shown)
    assert "walk: 2 probes, found 1 of 1" in html.unescape(shown)


def test_a_watched_page_not_mapped_yet_says_so() -> None:
    """Before c exists, or before p touched the page, the block says so."""
    frames = record(FORK_AND_COW[:3], watch=[("c", BASE), ("p", BASE + 3 * PAGE)])
    assert frames[0].watched == {"c @ 0x10000000": "<p>c does not exist (yet).</p>",
                                 "p @ 0x10003000": "<p>p has no page at 0x10003000 yet.</p>"}


def test_main_takes_watched_pages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--watch NAME@ADDR picks the pages; a malformed one is a usage error."""
    out = tmp_path / "w.html"
    assert stepthrough.main([str(out), "--watch", "c@0x10001000"]) == 0
    assert '<select id="watch"><option value="0">c @ 0x10001000</option>' in out.read_text()
    with pytest.raises(SystemExit) as exc:
        stepthrough.main([str(tmp_path / "v.html"), "--watch", "0x1000"])
    assert exc.value.code == 2 and "is not NAME@ADDRESS" in capsys.readouterr().err


def test_widget_shows_the_walk_of_the_chosen_page() -> None:
    """The widget's page list: choosing another page redraws the current step with that
    page's walk, and stepping keeps the choice."""
    pytest.importorskip("ipywidgets", reason="ipywidgets is not installed")
    box = stepthrough.widget(FORK_AND_COW, rmaps=("anon_vma",))
    controls, view = box.children
    *_, nxt, _slider, pick = controls.children
    assert list(pick.options) == ["p @ 0x10000000", "p @ 0x10001000", "c @ 0x10000000",
                                  "c @ 0x10001000"]
    for _ in range(6):
        nxt.click()
    assert "page p @ 0x10000000" in view.value and "<td>maps pfn 3</td>" in view.value
    pick.value = "c @ 0x10000000"
    assert "page c @ 0x10000000" in view.value
    assert "page p @" not in view.value and 'id="step-7"' in view.value
    nxt.click()
    assert 'id="step-8"' in view.value and "page c @ 0x10000000" in view.value


#: A minimal DOM for the page's script (no browser here): the elements it looks up, and
#: the class lists and attributes it reads and toggles. Prints, after each action, which
#: step is shown and which watched pages' blocks are shown.
FAKE_DOM = """
function El(attrs){this.attrs=attrs||{};this.cls=new Set();var self=this;
 this.classList={add:function(c){self.cls.add(c);},
  toggle:function(c,on){if(on)self.cls.add(c);else self.cls.delete(c);}};}
El.prototype.getAttribute=function(n){return this.attrs[n];};
var steps=[],watches=[];
for(var s=0;s<3;s++){steps.push(new El());for(var w=0;w<2;w++)
 watches.push(new El({'data-watch':String(w),step:s}));}
var ids={slider:new El(),label:new El(),prev:new El(),next:new El(),reset:new El(),
 play:new El(),watch:new El()};ids.watch.value='0';
var keys=null;
var document={body:new El(),getElementById:function(i){return ids[i];},
 querySelectorAll:function(q){return q==='.step'?steps:watches;},
 addEventListener:function(e,f){keys=f;}};
function state(){var shown=[];watches.forEach(function(w){if(w.cls.has('shown'))
 shown.push(w.attrs.step+':'+w.attrs['data-watch']);});
 console.log(steps.map(function(s){return s.cls.has('shown')?1:0;}).join('')+' '+
 shown.join(','));}
"""
ACTIONS = """
state();
ids.watch.value='1';ids.watch.onchange();state();
ids.next.onclick();state();
keys({key:'ArrowRight'});state();
ids.next.onclick();state();
ids.reset.onclick();ids.watch.value='0';ids.watch.onchange();state();
"""


def test_the_page_script_steps_and_shows_the_chosen_pages_walk(tmp_path: Path) -> None:
    """The offline page's own script, run by node against a minimal DOM: one step shown
    at a time (Next, the arrow key, and no further than the last), and in every step
    only the block of the page chosen in the list."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    import subprocess
    script = tmp_path / "page.js"
    script.write_text(FAKE_DOM + stepthrough._JS + ACTIONS)
    out = subprocess.run([node, str(script)], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n") == [
        "100 0:0,1:0,2:0", "100 0:1,1:1,2:1", "010 0:1,1:1,2:1", "001 0:1,1:1,2:1",
        "001 0:1,1:1,2:1", "100 0:0,1:0,2:0", ""]


def test_frames_table_is_cut_and_counts_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    """The frames table stops at display.MAX_ROWS rows, like every display table, and
    says how many addresses it left out (it was unbounded)."""
    from mmcore import display
    monkeypatch.setattr(display, "MAX_ROWS", 2)
    frames = record(FORK_AND_COW[:6], watch=())
    [(name, view), *_] = frames[-1].processes
    [table] = view.tables
    assert name == stepthrough.FRAMES and len(table.rows) == 2 and table.more == 1
    sections = stepthrough.render_sections({"anon_vma_chain": frames})
    assert '<td colspan="3">... 1 more</td>' in sections[-1]


def test_every_mapped_frame_gets_a_walk_up_to_max_pages(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Without watched pages, each frame a step maps gets a walk, by its first mapper (the
    zero page p read is in no rmap and has none); past MAX_PAGES the rest are counted,
    in the frame and in the page."""
    frames = record(FORK_AND_COW[:5], watch=())
    assert list(frames[-1].watched) == ["p @ 0x10000000", "p @ 0x10001000"]
    assert "p's page at 0x10001000 is pfn 2" in frames[-1].watched["p @ 0x10001000"]
    monkeypatch.setattr(stepthrough, "MAX_PAGES", 1)
    frames = record(FORK_AND_COW[:5], watch=())
    assert list(frames[-1].watched) == ["p @ 0x10000000"] and frames[-1].more_pages == 1
    last = stepthrough.render_sections({"anon_vma_chain": frames})[-1]
    assert "... 1 more mapped frames have no walk here (at most 1 besides" in last


def test_a_page_a_step_does_not_show_says_so() -> None:
    """The page list holds every page shown at any step; at a step where it is not
    shown (after fork, c's page 1 is p's frame, shown as p @ 0x10001000), its block
    says why; once c copies the page, it has its own walk."""
    runs = {"anon_vma_chain": record(FORK_AND_COW, watch=())}
    assert stepthrough.page_labels(runs)[-1] == "c @ 0x10001000"
    fork = stepthrough.render_sections(runs, only="c @ 0x10001000")[5]
    assert ("No walk of c @ 0x10001000 after this step: no frame there, or its frame is "
            "listed under an earlier mapper.") in fork
    copy = stepthrough.render_sections(runs, only="c @ 0x10001000")[8]
    assert "c's page at 0x10001000 is pfn" in copy
