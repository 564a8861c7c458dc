"""A step-through of a scenario, op by op, exported as one self-contained HTML file.

Like the OSTEP simulators' step mode, but for a whole memory manager: a scenario is a list
of Python statements run one at a time against a :class:`~mmcore.Machine` (``m``) and the
processes they name. After each statement the page shows

* the statement, and the vmas of every process as a ruler (:func:`mmcore.viz.layout`);
* which frame each process maps at each address, with the frame's mapcount;
* per process, its vmas and its page table (pfn, ``rwuad`` bits and mapcount of each pte:
  the tables of :mod:`mmcore.display`), with the rows the step changed highlighted;
* for each page shown (the watched ones, a process and an address each, then every
  other frame a process maps, up to :data:`MAX_PAGES`, the rest counted), the ptes that
  map its frame, the rmap walk of that frame run live after the step
  (:meth:`mmcore.Machine.trace_walk`: every candidate vma and address the scheme
  proposed, in order, and what the probed pte held: the page, another frame, nothing, or
  a repeat), and the scheme's structure with that walk highlighted on it
  (:func:`mmcore.viz.rmap_dot`: probed vmas filled green where the page was found and
  orange where the probe was wasted; an SVG when Graphviz is installed, its text outline
  otherwise). A page is chosen from a list in the page and in the widget; the list holds
  every page shown at any step (a step where the chosen page is not mapped says so).

With several schemes the same scenario runs under each, side by side. The file has its
styles and its few lines of script inline and refers to nothing outside itself: it
opens offline, from a course page or an e-mail, without a Python kernel. Every step is in
the page; the script only shows one at a time (Prev, Next, Play, Reset, a slider, and
the arrow keys, the chosen page), so without a script all steps and pages show in
order. The frames table, like every table of :mod:`mmcore.display`, stops at
:data:`mmcore.display.MAX_ROWS` rows and counts the rest. The walk is a real one (it
counts into the machine's walk cost, and an anonmm walk migrates a page whose mm exited,
as page_referenced_anon() does); it runs after each step, never inside one.

In a notebook, :func:`show` gives the same steps as an ipywidgets :func:`widget` (Play, a
slider, Prev, Next, Reset) or, without ipywidgets, as the page in an iframe.

    python -m mmcore_contrib.labs.stepthrough fork_cow.html
    python -m mmcore_contrib.labs.stepthrough cmp.html --rmap anon_vma_chain --rmap anon_vma
    python -m mmcore_contrib.labs.stepthrough walk.html --rmap anon_vma --watch p@0x10000000
"""

from __future__ import annotations

import argparse
import html
import importlib
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmcore import Machine, MachineBroken, PluginError, Process
from mmcore import display as mdisplay
from mmcore.atomicfile import write_text
from mmcore.pagetable import is_swap_pte, pte_pfn, pte_present
from mmcore.rmap import MAPS_IT
from mmcore.viz import layout, rmap_dot

__all__ = ["EXTERNAL", "FORK_AND_COW", "FRAMES", "MAX_PAGES", "WATCH", "Frame", "Page", "Watch",
           "export_html", "main", "page_labels", "parse_watch", "record", "render_html",
           "render_sections", "show", "watch_label", "widget"]

#: The fork-and-COW scenario: demand paging, the zero page, fork, a COW copy, the reuse
#: of the last mapper, a second copy, and an exit.
FORK_AND_COW: tuple[str, ...] = (
    "p = m.spawn()",
    "p.mmap(BASE, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)",
    "p.write(BASE, b'zero')",
    "p.write(BASE + PAGE, b'one')",
    "p.read(BASE + 2 * PAGE, 1)",
    "c = p.fork()",
    "c.write(BASE, b'ZERO')",
    "p.write(BASE, b'Zero')",
    "c.write(BASE + PAGE, b'ONE')",
    "c.exit()",
)
BASE, PAGE = 0x10000000, 4096

#: A watched page: the scenario's name for a process, and an address in it.
Watch = tuple[str, int]
#: The pages the fork-and-COW step-through watches: the parent's page 0 (copied by the
#: child, then reused by the parent), its page 1 (shared until the child copies it), and
#: the child's page 0.
WATCH: tuple[Watch, ...] = (("p", BASE), ("p", BASE + PAGE), ("c", BASE))
#: At most this many pages a step does not watch get a walk and a picture (each is a real
#: walk after the step, and a picture to draw); the rest of the step's frames are counted.
MAX_PAGES = 24


@dataclass(frozen=True)
class Frame:
    """The state after one step, under one scheme, as HTML fragments."""

    code: str
    ruler: str
    #: Which frame each process maps at each address (:data:`FRAMES`), then each
    #: process's own view, by the name the scenario gave it.
    processes: list[tuple[str, mdisplay.View]]
    #: Per page shown, by :func:`watch_label`: who maps it, its walk and its picture;
    #: the watched pages first, then every other frame mapped, by its first mapper.
    watched: dict[str, str]
    #: The frames mapped after the step that :data:`MAX_PAGES` left out.
    more_pages: int = 0


#: The name of the frames table among a :class:`Frame`'s views (no scenario variable
#: can be called that).
FRAMES = "frames by address"


def _frames_view(m: Machine, named: list[tuple[str, Process]]) -> mdisplay.View:
    """One row per address any process maps: the pfn each process maps there and that
    frame's mapcount (``2 x2``), ``swap`` for a swap entry, ``-`` for nothing."""
    cells: dict[int, dict[str, str]] = {}
    for name, proc in named:
        for vpn, pte in proc.mm.pgtable.items():
            if pte_present(pte):
                pfn = pte_pfn(pte)
                cell = f"{pfn} x{m.kpagecount(pfn)}"
            else:
                cell = "swap" if is_swap_pte(pte) else "marker"
            cells.setdefault(vpn, {})[name] = cell
    rows = [(f"{vpn * PAGE:#x}", *(cells[vpn].get(name, "-") for name, _ in named))
            for vpn in sorted(cells)]
    table = mdisplay.cut_table("pfn and mapcount", ("address", *(n for n, _ in named)), rows)
    return mdisplay.View("Frames", tables=[table])


def _pages(m: Machine, named: list[tuple[str, Process]],
           watch: Sequence[Watch]) -> tuple[list[Watch], int]:
    """The pages a step shows: ``watch``, then one (name, address) per other frame the
    named processes map (the first mapper in name then address order; not the zero
    page, which no rmap reaches), at most :data:`MAX_PAGES` of those; and how many
    frames were left out."""
    procs = dict(named)
    seen = set()
    for name, addr in watch:
        entry = procs[name].pagemap(addr) if name in procs else None
        if entry is not None and entry.present:
            seen.add(entry.pfn)
    extra: list[Watch] = []
    for name, proc in named:
        for vpn, pte in proc.mm.pgtable.items():
            pfn = pte_pfn(pte)
            if pte_present(pte) and pfn != m.physmem.ZERO_PFN and pfn not in seen:
                seen.add(pfn)
                extra.append((name, vpn * PAGE))
    return [*watch, *extra[:MAX_PAGES]], max(0, len(extra) - MAX_PAGES)


def _namespace(m: Machine) -> dict[str, object]:
    import mmcore
    ns: dict[str, object] = {n: getattr(mmcore, n) for n in mmcore.__all__}
    ns.update(m=m, BASE=BASE, PAGE=PAGE)
    return ns


def watch_label(watch: Watch) -> str:
    """How a watched page is named in the page and the widget: ``p @ 0x10001000``."""
    return f"{watch[0]} @ {watch[1]:#x}"


def parse_watch(text: str) -> Watch:
    """``NAME@ADDR`` (``p@0x10001000``; the address in any base Python reads) as a
    :data:`Watch`, for the command lines."""
    name, sep, addr = text.partition("@")
    try:
        if not sep or not name.isidentifier():
            raise ValueError
        return name, int(addr, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME@ADDRESS, as in "
                                         "p@0x10001000") from None


def _watched(m: Machine, ns: dict[str, object], watch: Watch) -> str:
    """A watched page: who maps its frame, the walk of it, and the scheme's picture of
    the structure with the walk on it."""
    name, addr = watch
    proc = ns.get(name)
    if not isinstance(proc, Process) or not proc.alive:
        return f"<p>{html.escape(name)} does not exist (yet).</p>"
    entry = proc.pagemap(addr)
    if not entry.present:
        return f"<p>{html.escape(name)} has no page at {addr:#x} yet.</p>"
    pfn = entry.pfn
    maps = ", ".join(f"pid {pid} @ {a:#x}" for pid, a in m.rmap_truth(pfn)) or "none"
    head = (f"<p>{html.escape(name)}'s page at {addr:#x} is pfn {pfn}, mapcount "
            f"{m.kpagecount(pfn)}; mapped by {html.escape(maps)}.</p>")
    if pfn == m.physmem.ZERO_PFN:
        return head + "<p>The shared zero page is in no rmap structure.</p>"
    try:
        walk = m.trace_walk(pfn)
    except (MachineBroken, PluginError) as exc:  # a student's scheme: part of the lesson
        return head + f"<p>The rmap walk raised: {html.escape(str(exc))}</p>"
    picture = rmap_dot(m, pfn, walk).inline_html()
    return head + mdisplay.view_html(mdisplay.view(walk), _is_hit, "hit") + picture


def _is_hit(table: mdisplay.Table, row: tuple[str, ...]) -> bool:
    """Marks the probes of a walk that found the page."""
    return table.header[-1:] == ("pte",) and row[-1] == MAPS_IT


def record(steps: Sequence[str] = FORK_AND_COW, rmap: str = "anon_vma_chain",
           watch: Sequence[Watch] = WATCH) -> list[Frame]:
    """Run ``steps`` one by one on a new machine with scheme ``rmap``; the state after
    each, with the walk of each watched page ((name, address) pairs) and of every other
    frame mapped (:data:`MAX_PAGES` at most). A step that raises (a segfault, an errno)
    is shown with its error, and the scenario goes on."""
    m = Machine(rmap=rmap, mremap_policy="unshare" if rmap == "anonmm" else None)
    ns = _namespace(m)
    frames = []
    for code in steps:
        try:
            exec(code, ns)  # the scenario's own statements, from the caller
            shown = code
        except Exception as exc:
            shown = f"{code}  # raised {type(exc).__name__}: {exc}"
        named = [(n, p) for n, p in ns.items() if isinstance(p, Process) and p.alive]
        procs = [(FRAMES, _frames_view(m, named)), *((n, mdisplay.view(p)) for n, p in named)]
        ruler = layout(*(p for _, p in named)) if named else "no process yet\n"
        pages, more = _pages(m, named, watch)
        frames.append(Frame(shown, str(ruler), procs,
                            {watch_label(w): _watched(m, ns, w) for w in pages}, more))
    return frames


_CSS = """
body{font-family:Helvetica,Arial,sans-serif;margin:1em}
.controls{position:sticky;top:0;background:#fff;padding:4px 0;border-bottom:1px solid #ccc}
.step{margin:1em 0}.js .step{display:none}.js .step.shown{display:block}
.cols{display:flex;gap:2em;align-items:flex-start}.col{flex:1;min-width:0;overflow-x:auto}
code.op{font-size:1.1em;background:#f4f4f4;padding:2px 6px}
tr.changed td{background:#fff3b0}tr.hit td{background:#c8f0c8}
pre{background:#f8f8f8;padding:4px}.js .watch{display:none}.js .watch.shown{display:block}
"""

_JS = """
document.body.classList.add('js');
var steps=document.querySelectorAll('.step'),i=0,timer=null;
var slider=document.getElementById('slider'),label=document.getElementById('label');
slider.max=steps.length-1;
function show(n){i=Math.max(0,Math.min(steps.length-1,n));
 steps.forEach(function(s,k){s.classList.toggle('shown',k===i);});
 slider.value=i;label.textContent='step '+(i+1)+' of '+steps.length;}
function play(){if(timer){clearInterval(timer);timer=null;return;}
 timer=setInterval(function(){if(i>=steps.length-1){clearInterval(timer);timer=null;}
 else show(i+1);},1200);}
document.getElementById('prev').onclick=function(){show(i-1);};
document.getElementById('next').onclick=function(){show(i+1);};
document.getElementById('reset').onclick=function(){show(0);};
document.getElementById('play').onclick=play;
var watch=document.getElementById('watch');
function pick(){document.querySelectorAll('.watch').forEach(function(w){
 w.classList.toggle('shown',w.getAttribute('data-watch')===watch.value);});}
watch.onchange=pick;pick();
slider.oninput=function(){show(parseInt(slider.value,10));};
document.addEventListener('keydown',function(e){if(e.key==='ArrowRight')show(i+1);
 if(e.key==='ArrowLeft')show(i-1);});
show(0);
"""


def _changed(before: dict[str, set[tuple[str, ...]]],
             name: str) -> Callable[[mdisplay.Table, tuple[str, ...]], bool]:
    """A ``marked`` predicate for :func:`mmcore.display.view_html`: a row the process's
    previous frame did not have (a new process has no rows marked)."""
    old = before.get(name)
    return lambda table, row: old is not None and (table.title, *row) not in old


def _rows(v: mdisplay.View) -> set[tuple[str, ...]]:
    return {(t.title, *row) for t in v.tables for row in t.rows}


def page_labels(runs: dict[str, list[Frame]]) -> list[str]:
    """Every page any step of any run shows, by :func:`watch_label`, in the order they
    first appear: the page list of the page and the widget."""
    return list(dict.fromkeys(label for frames in runs.values() for f in frames
                              for label in f.watched))


def _watch_html(frame: Frame, labels: list[str], only: str | None) -> str:
    """The pages of one frame (only the one labelled ``only``, if given), each in a
    ``div`` numbered as in ``labels`` that the page's page list shows or hides; a page
    this step does not show says why (a frame is shown once, under its first mapper)."""
    more = (f"<p><small>... {frame.more_pages} more mapped frames have no walk here "
            f"(at most {MAX_PAGES} besides the watched pages)</small></p>"
            if frame.more_pages else "")
    return "".join(f'<div class="watch" data-watch="{k}"><h4>page {html.escape(label)}</h4>'
                   + frame.watched.get(label, f"<p>No walk of {html.escape(label)} after "
                                              "this step: no frame there, or its frame is "
                                              "listed under an earlier mapper.</p>")
                   + "</div>"
                   for k, label in enumerate(labels) if only is None or label == only) + more


def render_sections(runs: dict[str, list[Frame]], only: str | None = None) -> list[str]:
    """One HTML ``<section>`` per step of the recorded ``runs`` (one run per scheme, the
    same steps), with one column per scheme; every page of :func:`page_labels`, or only
    the one whose :func:`watch_label` is ``only``."""
    schemes = list(runs)
    labels = page_labels(runs)
    nsteps = len(runs[schemes[0]])
    before: dict[str, dict[str, set[tuple[str, ...]]]] = {s: {} for s in schemes}
    sections = []
    for k in range(nsteps):
        cols = []
        for scheme in schemes:
            f = runs[scheme][k]
            procs = "".join(("" if name == FRAMES else f"<h4>{html.escape(name)}</h4>")
                            + mdisplay.view_html(v, _changed(before[scheme], name))
                            for name, v in f.processes)
            before[scheme] = {name: _rows(v) for name, v in f.processes}
            cols.append(f'<div class="col"><h3>{html.escape(scheme)}</h3>'
                        f"<pre>{html.escape(f.ruler)}</pre>{procs}"
                        f"{_watch_html(f, labels, only)}</div>")
        code = runs[schemes[0]][k].code
        sections.append(f'<section class="step" id="step-{k + 1}"><h2>Step {k + 1}: '
                        f'<code class="op">{html.escape(code)}</code></h2>'
                        f'<div class="cols">{"".join(cols)}</div></section>')
    return sections


def render_html(runs: dict[str, list[Frame]], title: str = "mmcore step-through") -> str:
    """The whole page for the recorded ``runs``: every step, the controls and their
    script, inline."""
    sections = render_sections(runs)
    labels = page_labels(runs)
    options = "".join(f'<option value="{k}">{html.escape(label)}</option>'
                      for k, label in enumerate(labels))
    controls = ('<div class="controls"><button id="reset">Reset</button> '
                '<button id="prev">Prev</button> <button id="play">Play</button> '
                '<button id="next">Next</button> <input id="slider" type="range" min="0" '
                'value="0"> <span id="label"></span> <label>walk of <select id="watch">'
                f"{options}</select></label> <small>(arrow keys step; rows a step "
                "changed are yellow, probes that found the page green)</small></div>")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>"
            f"{html.escape(title)}</title><style>{_CSS}</style></head><body>"
            f"<h1>{html.escape(title)}</h1>{controls}{''.join(sections)}"
            f"<script>{_JS}</script></body></html>\n")


def export_html(path: str | Path, steps: Sequence[str] = FORK_AND_COW,
                rmaps: Sequence[str] = ("anon_vma_chain",),
                watch: Sequence[Watch] = WATCH,
                title: str = "fork and copy-on-write, step by step") -> Path:
    """Record ``steps`` under each scheme of ``rmaps`` and write the page to ``path``
    (atomically); returns the path."""
    runs = {rmap: record(steps, rmap, watch) for rmap in rmaps}
    return write_text(path, render_html(runs, title))


class Page:
    """A step-through page in a notebook without ipywidgets: shown in an iframe (its
    script runs there), and :meth:`save`-able as the offline file."""

    def __init__(self, text: str) -> None:
        #: The HTML document.
        self.text = text

    def save(self, path: str | Path) -> Path:
        """Write the page to ``path`` (atomically)."""
        return write_text(path, self.text)

    def _repr_html_(self) -> str:  # Jupyter
        return (f'<iframe srcdoc="{html.escape(self.text, quote=True)}" '
                'style="width:100%;height:640px;border:1px solid #ccc"></iframe>')


def show(steps: Sequence[str] = FORK_AND_COW, rmaps: Sequence[str] = ("anon_vma_chain",),
         watch: Sequence[Watch] = WATCH) -> Any:
    """The step-through in a notebook: the :func:`widget` when ipywidgets is installed,
    else the offline :class:`Page` in an iframe."""
    try:
        return widget(steps, rmaps, watch)
    except ImportError:
        runs = {rmap: record(steps, rmap, watch) for rmap in rmaps}
        return Page(render_html(runs, "step-through"))


def widget(steps: Sequence[str] = FORK_AND_COW, rmaps: Sequence[str] = ("anon_vma_chain",),
           watch: Sequence[Watch] = WATCH) -> Any:
    """An ipywidgets step-through (``pip install 'mmcore-sim[notebooks]'``): Reset, Prev,
    Play, Next and a step slider over the recorded steps; returns the widget box."""
    try:
        w: Any = importlib.import_module("ipywidgets")
    except ImportError:
        raise ImportError("the step-through widget needs ipywidgets: pip install "
                          "'mmcore-sim[notebooks]'") from None
    runs = {rmap: record(steps, rmap, watch) for rmap in rmaps}
    labels = page_labels(runs)
    pages = {label: [f"<style>{_CSS}</style>{section}"
                     for section in render_sections(runs, label)] for label in labels}
    last = len(steps) - 1
    pick = w.Dropdown(options=labels, value=labels[0], description="walk of")
    view = w.HTML(pages[pick.value][0])
    slider = w.IntSlider(value=0, min=0, max=last, description="step")
    play = w.Play(value=0, min=0, max=last, interval=1200)
    w.jslink((play, "value"), (slider, "value"))
    buttons = {name: w.Button(description=name) for name in ("Reset", "Prev", "Next")}

    def move(to: int) -> None:
        slider.value = max(0, min(last, to))

    buttons["Reset"].on_click(lambda _b: move(0))
    buttons["Prev"].on_click(lambda _b: move(slider.value - 1))
    buttons["Next"].on_click(lambda _b: move(slider.value + 1))
    def redraw(_change: object) -> None:
        view.value = pages[pick.value][slider.value]

    slider.observe(redraw, names="value")
    pick.observe(redraw, names="value")
    return w.VBox([w.HBox([buttons["Reset"], buttons["Prev"], play, buttons["Next"], slider,
                           pick]), view])


#: What a self-contained page must not have: a reference to anything outside it.
EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?(?!#)|@import|url\(|<link\b|<!DOCTYPE svg""",
                      re.I)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``OUT.html [--rmap SCHEME]...``."""
    parser = argparse.ArgumentParser(prog="python -m mmcore_contrib.labs.stepthrough",
                                     description="Export the fork-and-COW step-through.")
    parser.add_argument("out", type=Path)
    parser.add_argument("--rmap", action="append", help="scheme (repeat to compare)")
    parser.add_argument("--watch", action="append", type=parse_watch, metavar="NAME@ADDR",
                        help="a page whose walk to show, e.g. p@0x10001000 (repeat; "
                             "default: p@0x10000000, p@0x10001000, c@0x10000000)")
    args = parser.parse_args(argv)
    try:
        print(export_html(args.out, rmaps=args.rmap or ["anon_vma_chain"],
                          watch=args.watch or WATCH))
    except (OSError, ValueError, PluginError) as exc:  # ConfigError is a ValueError
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
