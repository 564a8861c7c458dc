"""Rich displays: what a notebook or a terminal shows for the simulator's objects.

``Machine``, ``Process``, ``Vma``, ``Page``, ``WalkResult`` (and ``WalkTrace``),
``UnmapResult``, ``Costs`` and the counters (``Counters``, ``WalkCost``, ``VmEvents``,
``Vmstat``, ``Meminfo`` and the other /proc tables) each have three one-line display
methods that delegate here:

* ``_repr_html_`` (Jupyter): an HTML table;
* ``_repr_pretty_`` (IPython in a terminal, ``IPython.lib.pretty``): the same table as
  text;
* ``__rich__`` (``rich.print(obj)``): the same table as rich renderables.

Each object is first turned into one :class:`View` (a title, key/value facts, tables), and
the three renderings are drawn from it, so they always say the same thing. Addresses are
in hex, vm_flags and page flags by name (:mod:`mmcore.flagnames`), rmap objects by the short
names the pictures of :mod:`mmcore.viz` use (``anon_vma#1``). ``repr()`` is untouched.

Where a picture says more, an object also has ``_repr_svg_`` (:func:`picture`): Machine
and Process the graph of their anon objects and the vmas using them
(:func:`mmcore.viz.anon_vma_tree_dot`), a Vma what it maps, its large folios PMD- or
PTE-mapped (:func:`mmcore.viz.vma_folios_dot`), a Page how its machine's scheme reaches
it (:func:`mmcore.viz.rmap_dot`), a WalkResult its mappings or probes
(:func:`mmcore.viz.walk_dot`). It is drawn when Graphviz is installed; their HTML carries
the same picture under the tables (a notebook shows the HTML rather than the SVG when an
object has both). Without Graphviz, ``_repr_svg_`` is None and the HTML has the tables,
the picture's text outline and a line saying what to install.

A page of a large folio shows where it sits in the folio (head pfn, order, its index) and
its mapcounts as the machine's mapcount design reports them beside the exact counts.

Displaying reads the objects and changes nothing: no walk is run, no counter moves.

    >>> m = Machine()
    >>> "anon_vma_chain" in m._repr_html_()
    True
"""

from __future__ import annotations

import html as _html
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from functools import singledispatch
from typing import Any

from rich.console import Group
from rich.table import Table as RichTable

from .costs import Costs, Counters, WalkCost
from .flagnames import page_flags_expr, vm_flags_expr
from .folio import Folio
from .fs import Inode
from .machine import Machine, machine_of
from .page import Page
from .pagetable import GUARD_PTE, is_swap_pte, pte_pfn, pte_present, swp_slot
from .proc import vma_name
from .process import Process
from .proctext import ProcTable
from .rmap import UnmapResult, WalkResult, WalkTrace
from .viz import (
    DotGraph,
    GraphvizNotFound,
    _kind,
    _ObjectNames,
    _perms,
    _pte_flags,
    anon_vma_tree_dot,
    folio_mapped_by,
    folio_note,
    folio_size,
    rmap_dot,
    vma_folios_dot,
    vma_runs,
    walk_dot,
)
from .vma import Vma
from .vmstat import VmEvents, Vmstat

__all__ = ["MAX_PICTURE_VMAS", "Table", "View", "cut_table", "html", "picture", "pretty",
           "rich_renderable", "svg", "text", "view", "view_html"]

#: At most this many rows of a table are shown (a big process has many ptes); the rest
#: are counted in a last row.
MAX_ROWS = 64
#: A counter set with more fields than this shows only the non-zero ones (/proc/vmstat).
MAX_ZERO_FIELDS = 30
#: A picture is drawn for at most this many vmas (dot takes seconds on thousands of
#: nodes, and a cell of megabytes of SVG shows nothing a student can read).
MAX_PICTURE_VMAS = 200


@dataclass
class Table:
    """One table of a view: a title, column names and rows of text cells."""

    title: str
    header: tuple[str, ...]
    rows: list[tuple[str, ...]] = field(default_factory=list)
    #: How many rows were not kept (:data:`MAX_ROWS`).
    more: int = 0


@dataclass
class View:
    """What is shown for one object: a title, key/value facts and tables."""

    title: str
    facts: list[tuple[str, str]] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    note: str = ""


def cut_table(title: str, header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> Table:
    """A :class:`Table` of ``rows`` cut at :data:`MAX_ROWS`, the rest counted in ``more``."""
    return Table(title, header, list(rows[:MAX_ROWS]), max(0, len(rows) - MAX_ROWS))


# --- views -------------------------------------------------------------------------------


@singledispatch
def view(obj: object) -> View:
    """The :class:`View` of ``obj`` (one registered per displayed type)."""
    raise TypeError(f"mmcore.display has no view of {type(obj).__name__}")


def _machine_names(m: Machine) -> _ObjectNames:
    """Names for the anon objects of ``m`` in pid then address order, so that every view
    of one machine state calls the same object by the same name."""
    names = _ObjectNames()
    for proc in m.processes.values():
        for vma in proc.mm.vmas:
            if vma.anon_vma is not None:
                names.name(vma.anon_vma)
    return names


def _anon_name(names: _ObjectNames, vma: Vma) -> str:
    return "-" if vma.anon_vma is None else names.name(vma.anon_vma)


def _vma_rows(proc: Process, names: _ObjectNames) -> list[tuple[str, ...]]:
    mm = proc.mm
    return [(f"{v.start:#x}", f"{v.end:#x}", str(v.pages), _perms(mm, v),
             vm_flags_expr(v.flags), f"{v.pgoff:#x}", _anon_name(names, v),
             vma_name(mm, v) or "anon") for v in mm.vmas]


_VMA_HEADER = ("start", "end", "pages", "perms", "vm_flags", "pgoff", "anon object", "name")


def _pte_row(machine: Machine, vpn: int, pte: int) -> tuple[str, ...]:
    addr = f"{vpn << 12:#x}"
    if pte_present(pte):
        pfn = pte_pfn(pte)
        page = machine.physmem.page(pfn)
        kind = ("zero page" if pfn == machine.physmem.ZERO_PFN
                else "-" if page is None else page_flags_expr(page.flags))
        return (addr, str(pfn), _pte_flags(pte), str(machine.kpagecount(pfn)), kind)
    if is_swap_pte(pte):
        return (addr, "-", "swap", "-", f"swap slot {swp_slot(pte)}")
    return (addr, "-", "guard" if pte == GUARD_PTE else f"{pte:#x}", "-", "-")


@view.register
def _(proc: Process) -> View:
    machine = proc.machine
    state = "alive" if proc.alive else f"exited ({proc.exit_status})"
    parent = "-" if proc.parent is None else str(proc.parent.pid)
    facts = [("pid", str(proc.pid)), ("parent", parent), ("state", state),
             ("vmas", str(proc.mm.map_count)), ("rss pages", str(proc.mm.rss)),
             ("children", ", ".join(map(str, proc.children)) or "-")]
    names = _machine_names(machine)
    ptes = list(proc.mm.pgtable.items())
    return View(f"Process {proc.pid}", facts, [
        cut_table("vmas", _VMA_HEADER, _vma_rows(proc, names)),
        cut_table("page table", ("address", "pfn", "rwuad", "mapcount", "page"),
               [_pte_row(machine, vpn, pte) for vpn, pte in ptes]),
    ], "rwuad: present/readable, writable, user, accessed, dirty (- when clear)")


@view.register
def _(vma: Vma) -> View:
    mm = vma.mm
    names = _machine_names(mm.machine)
    facts = [("range", f"{vma.start:#x}-{vma.end:#x}"), ("pages", str(vma.pages)),
             ("pid", str(mm.owner_pid)), ("perms", _perms(mm, vma)),
             ("vm_flags", vm_flags_expr(vma.flags)), ("pgoff", f"{vma.pgoff:#x}"),
             ("anon object", _anon_name(names, vma)), ("name", vma_name(mm, vma) or "anon")]
    machine = mm.machine
    rows = [(f"{r.start:#x}", f"{r.end:#x}", str(r.folio.pfn), folio_size(r.folio),
             ("PMD" if r.pmd else "ptes") + f", pages {r.pfn - r.folio.pfn}-"
             f"{r.pfn - r.folio.pfn + r.nr - 1}", str(machine.mapcount_folio(r.folio)))
            for r in vma_runs(vma) if r.folio is not None]
    if not rows:
        return View("Vma", facts)
    return View("Vma", facts, [cut_table(
        "large folios", ("start", "end", "folio pfn", "size", "mapped by",
                         f"folio_mapcount ({machine.mapcount_name})"), rows)])


def _mapping_name(page: Page) -> str:
    """page->mapping: the kind of anon object (a page knows no machine to number it by)
    or the file's path."""
    mapping = page.mapping
    if mapping is None:
        return "-"
    if isinstance(mapping, Inode):
        return f"page cache of {mapping.path}"
    if type(mapping) is object:  # pte_chains: PageAnon's marker, the ptes are in rmap
        return "marker (no anon object)"
    return _kind(mapping)


def _rmap_slot(page: Page) -> str:
    """The scheme's per-page slot (pte_chains: the direct pte, or the chain)."""
    state = page.rmap
    if isinstance(state, tuple) and len(state) == 2 and isinstance(state[1], int):
        return f"direct pte: pid {getattr(state[0], 'owner_pid', '?')} @ {state[1]:#x}"
    return type(state).__name__


def _folio_facts(page: Page, folio: Folio) -> list[tuple[str, str]]:
    """A page of a large folio: where it sits in the folio, and its mapcounts as the
    machine's mapcount design reports them (page_mapcount() for /proc/kpagecount,
    folio_mapcount()) beside the exact counts (ptes of this page plus the folio's PMDs;
    every mapping of the folio), which a design that is not exact gets wrong."""
    exact = page.mapcount + folio.entire_mapcount
    facts = [("folio", folio_note(folio, page)),
             ("folio mapped by", folio_mapped_by(folio))]
    machine = machine_of(page)
    if machine is None:  # a page made alone: only the exact counts are known
        return [("mapcount", f"{exact} (exact)"), *facts]
    design = machine.mapcount_name
    return [("mapcount", f"{machine.mapcount_page(folio, page)} ({design} design; "
                         f"exact {exact})"), *facts,
            ("folio_mapcount", f"{machine.mapcount_folio(folio)} ({design} design; exact "
                               f"{folio.total_mapcount})")]


@view.register
def _(page: Page) -> View:
    folio = page.folio
    facts = [("pfn", str(page.pfn)), ("flags", page_flags_expr(page.flags)),
             ("refcount", str(page.refcount)),
             *([("mapcount", str(page.mapcount))] if folio is None
               else _folio_facts(page, folio)),
             ("mapping", _mapping_name(page)), ("index", f"{page.index:#x}")]
    if page.rmap is not None:
        facts.append(("rmap slot", _rmap_slot(page)))
    if page.swap_slot >= 0:
        facts.append(("swap slot", str(page.swap_slot)))
    return View(f"Page {page.pfn}", facts)


def _pairs_table(title: str, pairs: list[tuple[int, int]]) -> Table:
    return cut_table(title, ("pid", "address"), [(str(pid), f"{a:#x}") for pid, a in pairs])


def _counter_table(title: str, counters: object) -> Table:
    assert is_dataclass(counters)
    values = [(f.name, getattr(counters, f.name)) for f in fields(counters)]
    return _values_table(title, values)


def _values_table(title: str, values: list[tuple[str, Any]]) -> Table:
    shown = values if len(values) <= MAX_ZERO_FIELDS else [kv for kv in values if kv[1]]
    table = cut_table(title, ("counter", "value"), [(k, str(v)) for k, v in shown])
    if len(shown) < len(values):
        table.title += f" ({len(values) - len(shown)} at 0 not shown)"
    return table


@view.register
def _(walk: WalkResult) -> View:
    return View(f"WalkResult of pfn {walk.pfn}", [("mappings found", str(len(walk.mappings)))],
                [_pairs_table("mappings", walk.mappings), _counter_table("cost", walk.cost)])


@view.register
def _(walk: WalkTrace) -> View:
    probes = [(str(i), str(p.pid), f"{p.vma_start:#x}-{p.vma_end:#x}", f"{p.address:#x}",
               p.verdict) for i, p in enumerate(walk.probes, 1)]
    found = f"{len(walk.mappings)} of {walk.mapcount}"
    return View(f"walk of pfn {walk.pfn}", [("mappings found", found),
                                             ("candidates probed", str(len(walk.probes)))],
                [cut_table("probes, in walk order", ("#", "pid", "vma", "address", "pte"), probes),
                 _counter_table("cost", walk.cost)])


@view.register
def _(res: UnmapResult) -> View:
    facts = [("success", str(res.success)), ("swap slot", str(res.swap_slot))]
    if res.reason:
        facts.append(("reason", res.reason))
    return View(f"UnmapResult of pfn {res.pfn}", facts,
                [_pairs_table("unmapped", res.unmapped), _counter_table("cost", res.cost)])


@view.register
def _(costs: Costs) -> View:
    structs = sorted(set(costs.metadata_bytes) | set(costs.metadata_peak_bytes))
    meta = cut_table("rmap metadata", ("struct", "objects", "bytes", "peak bytes"),
                  [(s, str(costs.metadata_objects.get(s, 0)),
                    str(costs.metadata_bytes.get(s, 0)),
                    str(costs.metadata_peak_bytes.get(s, 0))) for s in structs])
    facts = [("rmap", costs.rmap), ("arch", costs.arch),
             ("rmap bytes", str(costs.rmap_bytes)),
             ("rmap peak bytes", str(costs.rmap_peak_bytes)),
             ("page-table bytes", str(costs.page_table_bytes))]
    tables = [meta, _counter_table("walk", costs.walk),
              _counter_table("reclaim walk", costs.reclaim_walk)]
    if costs.reclaim_decisions:
        tables.append(_values_table("reclaim decisions", list(costs.reclaim_decisions.items())))
    tables.append(_counter_table("counters", costs.counters))
    return View("Costs", facts, tables)


@view.register(Counters)
@view.register(WalkCost)
@view.register(VmEvents)
def _(counters: Counters | WalkCost | VmEvents) -> View:
    return View(type(counters).__name__, [], [_counter_table("counters", counters)])


@view.register
def _(stat: Vmstat) -> View:
    return View("/proc/vmstat", [], [_values_table("counters", list(stat.values.items()))])


@view.register
def _(table: ProcTable) -> View:
    unit = {f.label: f.unit for f in table.TABLE}
    rows = [(label, f"{value}{unit.get(label, '')}")
            for label, value in table.values.items()]
    return View(type(table).__name__, [], [cut_table("values", ("field", "value"), rows)])


@view.register
def _(m: Machine) -> View:
    pm = m.physmem
    scheme = m.rmap_name + (f" + {m.mremap_policy_name}" if m.mremap_policy_name else "")
    facts = [("rmap", scheme), ("file rmap", m.file_rmap_name), ("reclaim", m.reclaim_name),
             ("arch", m.arch), ("frames used", f"{pm.nr_used} of {pm.nr_frames - 1}"),
             ("swap slots used", f"{m.swap.nr_used} of {m.swap.nr_slots}"),
             ("state", "usable" if m.broken is None else f"broken: {m.broken}")]
    procs = [(str(p.pid), "-" if p.parent is None else str(p.parent.pid),
              "alive" if p.alive else f"exited ({p.exit_status})", str(p.mm.map_count),
              str(p.mm.rss)) for p in m.processes.values()]
    nonzero = [(f.name, getattr(m.counters, f.name)) for f in fields(m.counters)
               if getattr(m.counters, f.name)]
    return View("Machine", facts, [
        cut_table("processes", ("pid", "parent", "state", "vmas", "rss pages"), procs),
        cut_table("counters (non-zero)", ("counter", "value"), [(k, str(v)) for k, v in nonzero]),
    ])


# --- pictures ------------------------------------------------------------------------


@singledispatch
def picture(obj: object) -> DotGraph | None:
    """The graph that says more than the tables for ``obj``, or None. Machine and Process
    have one (:func:`mmcore.viz.anon_vma_tree_dot`: their anon objects and the vmas that
    use them) when they have an anonymous vma and at most :data:`MAX_PICTURE_VMAS` vmas;
    a Vma with present ptes, what it maps (:func:`mmcore.viz.vma_folios_dot`: its large
    folios, PMD- or PTE-mapped, and runs of small pages); a Page in an rmap structure or
    a page cache, how its machine's scheme reaches it (:func:`mmcore.viz.rmap_dot`); a
    WalkResult or WalkTrace, its mappings or probes (:func:`mmcore.viz.walk_dot`).
    Other objects have none."""
    return None


@picture.register
def _(vma: Vma) -> DotGraph | None:
    machine = vma.mm.machine
    if not any(True for _ in vma.mm.pgtable.range(vma.start, vma.end)):
        return None
    return vma_folios_dot(vma, machine.mapcount_folio)


@picture.register
def _(page: Page) -> DotGraph | None:
    machine = machine_of(page)
    if machine is None or (page.mapping is None and page.rmap is None):
        return None  # unknown machine, or a page no rmap reaches (free, or the zero page)
    return rmap_dot(machine, page.pfn)


@picture.register
def _(walk: WalkResult) -> DotGraph | None:
    return walk_dot(walk) if walk.mappings or getattr(walk, "probes", None) else None


def _anon_picture(procs: list[Process], draw: Callable[[], DotGraph]) -> DotGraph | None:
    vmas = [v for p in procs for v in p.mm.vmas]
    if len(vmas) > MAX_PICTURE_VMAS:
        return None
    if all(v.anon_vma is None and not isinstance(v.rmap, list) for v in vmas):
        return None
    return draw()


@picture.register
def _(m: Machine) -> DotGraph | None:
    return _anon_picture(list(m.live_processes()), lambda: anon_vma_tree_dot(m))


@picture.register
def _(proc: Process) -> DotGraph | None:
    procs = [proc] if proc.alive else []
    return _anon_picture(procs, lambda: anon_vma_tree_dot(proc.mm.machine, only=proc))


def svg(obj: object) -> str | None:
    """``obj``'s :func:`picture` as an SVG document (``_repr_svg_``); None when it has
    none, or when Graphviz (the ``graphviz`` package or ``dot``) is not installed."""
    graph = picture(obj)
    try:
        return None if graph is None else graph.svg()
    except GraphvizNotFound:
        return None


def _picture_html(obj: object) -> str:
    """The picture to put under ``obj``'s tables: inline SVG, or without Graphviz its
    text outline and what to install (:meth:`DotGraph.inline_html`), or nothing for an
    object with no picture."""
    graph = picture(obj)
    return "" if graph is None else f'<div class="mmcore-picture">{graph.inline_html()}</div>'



# --- renderings --------------------------------------------------------------------------

_STYLE = ("<style>.mmcore-view table{border-collapse:collapse;margin:2px 0 8px 0}"
          ".mmcore-view th,.mmcore-view td{border:1px solid #ccc;padding:1px 6px;"
          "text-align:left;font-family:monospace}.mmcore-view caption{text-align:left;"
          "font-weight:bold}</style>")


def _e(s: str) -> str:
    return _html.escape(s, quote=True)


def html(obj: object) -> str:
    """``obj`` as an HTML fragment (what Jupyter shows for ``_repr_html_``): its tables,
    and its :func:`picture` under them when it has one."""
    return view_html(view(obj)) + _picture_html(obj)


def view_html(v: View, marked: Callable[[Table, tuple[str, ...]], bool] | None = None,
              mark: str = "changed") -> str:
    """A :class:`View` as an HTML fragment; rows for which ``marked(table, row)`` is true
    get the class ``mark`` (the step-through marks what a step changed, and the probes of
    a walk that found the page)."""
    out = [_STYLE, '<div class="mmcore-view">', f"<strong>{_e(v.title)}</strong>"]
    if v.facts:
        out.append("<table>" + "".join(f"<tr><th>{_e(k)}</th><td>{_e(val)}</td></tr>"
                                       for k, val in v.facts) + "</table>")
    for t in v.tables:
        head = "".join(f"<th>{_e(h)}</th>" for h in t.header)
        body = "".join((f'<tr class="{_e(mark)}">' if marked and marked(t, row) else "<tr>")
                       + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>"
                       for row in t.rows)
        if t.more:
            body += f'<tr><td colspan="{len(t.header)}">... {t.more} more</td></tr>'
        if not t.rows:
            body += f'<tr><td colspan="{len(t.header)}">(none)</td></tr>'
        out.append(f"<table><caption>{_e(t.title)}</caption><tr>{head}</tr>{body}</table>")
    if v.note:
        out.append(f"<small>{_e(v.note)}</small>")
    out.append("</div>")
    return "".join(out)


def text(obj: object) -> str:
    """``obj`` as aligned plain text (what IPython's terminal shows)."""
    v = view(obj)
    out = [v.title]
    width = max((len(k) for k, _ in v.facts), default=0)
    out += [f"  {k:<{width}}  {val}" for k, val in v.facts]
    for t in v.tables:
        out.append(f"{t.title}:")
        rows = [t.header, *t.rows]
        widths = [max(len(r[i]) for r in rows) for i in range(len(t.header))]
        out += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                for r in rows]
        if t.more:
            out.append(f"  ... {t.more} more")
        if not t.rows:
            out.append("  (none)")
    if v.note:
        out.append(v.note)
    return "\n".join(out)


def pretty(obj: object, printer: Any, cycle: bool) -> None:
    """IPython's ``_repr_pretty_``: ``printer`` (an ``IPython.lib.pretty`` printer) prints
    :func:`text`; the objects shown hold no cycles."""
    printer.text(text(obj))


def rich_renderable(obj: object) -> Group:
    """``obj`` as rich renderables (what ``rich.print(obj)`` shows through ``__rich__``)."""
    v = view(obj)
    parts: list[RichTable] = []
    if v.facts:
        facts = RichTable(title=v.title, show_header=False)
        facts.add_column(style="bold")
        facts.add_column()
        for k, val in v.facts:
            facts.add_row(k, val)
        parts.append(facts)
    for t in v.tables:
        table = RichTable(*t.header, title=t.title if v.facts else f"{v.title}: {t.title}")
        for row in t.rows:
            table.add_row(*row)
        if t.more:
            table.add_row(f"... {t.more} more", *[""] * (len(t.header) - 1))
        parts.append(table)
    return Group(*parts)
