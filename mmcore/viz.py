"""Pictures of the simulator's structures, for teaching: text and Graphviz DOT.

Everything here reads the machine and changes nothing (no walk is run, no counter moves:
a walk to highlight is traced beforehand by :meth:`Machine.trace_walk`), and returns a
string that also displays itself in a notebook: the text pictures are a
:class:`TextPicture`, the graphs a :class:`DotGraph` (the DOT source, drawn as SVG when
the ``graphviz`` Python package and the Graphviz ``dot`` program are installed, as a
text outline otherwise). Both are ``str`` subclasses, so printing, comparing and writing
them to a file work as on the DOT text itself; only :func:`render_png` needs ``dot``.

* :func:`vmprint`: the page table of one process, one line per present or swap pte,
  grouped by vma, in the spirit of xv6's ``vmprint()``.
* :func:`layout`: the vmas of one process as an ASCII ruler, the picture the kernel's
  ``tools/testing/vma`` tests draw in their comments.
* :func:`rmap_dot`: how the rmap scheme reaches one page (page -> anon_vma -> chains ->
  vmas -> mms, or page -> pte_chain entries, or page -> anonmm group), with the truth (the
  ptes that really map the page) drawn as green edges and any mapping the structure does
  not reach in red; and, given a traced walk, the vmas it probed and what each probe found.
* :func:`anon_vma_tree_dot`: the fork hierarchy of anon_vmas (anon_vma_chain), or the anon
  objects of another scheme and the vmas that use them.
* :func:`vma_folios_dot`: what one vma maps, run by run: PMD-mapped THPs, PTE-mapped
  large folios (which of their pages), and runs of small pages.
* :func:`walk_dot`: one walk's result as a graph: the mappings found or, for a traced
  walk, every probe in walk order with its verdict.

Schemes are recognised by the shape of their objects (an anon_vma with ``avcs`` and
``root``, a list of ``vmas``, an anonmm with ``head`` and ``members``, a pte chain with
``blocks``), so a student's re-implementation is drawn too; an object of unknown shape is
drawn as a labelled box, with the vmas, mms and truth edges around it.
"""

from __future__ import annotations

import html
import itertools
import shutil
import string
import subprocess
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .constants import PAGE_SHIFT, PAGE_SIZE
from .fs import Inode
from .interval_tree import IntervalTree
from .pagetable import (
    GUARD_PTE,
    is_swap_pte,
    pte_dirty,
    pte_huge,
    pte_pfn,
    pte_present,
    pte_protnone,
    pte_swp_exclusive,
    pte_write,
    pte_young,
    swp_slot,
)
from .proc import maps_entry, vma_name

if TYPE_CHECKING:
    from .folio import Folio
    from .machine import Machine
    from .mm import Mm
    from .page import Page
    from .process import Process
    from .rmap import Probe, WalkResult, WalkTrace
    from .vma import Vma

__all__ = [
    "MAX_PICTURE_NODES",
    "DotGraph",
    "GraphvizNotFound",
    "Run",
    "TextPicture",
    "anon_vma_tree_dot",
    "folio_mapped_by",
    "folio_note",
    "folio_size",
    "layout",
    "render_png",
    "rmap_dot",
    "vma_folios_dot",
    "vma_runs",
    "vmprint",
    "walk_dot",
]

#: At most this many nodes stand for runs (:func:`vma_folios_dot`) or probes
#: (:func:`walk_dot`); the rest are counted in one last node, so that a picture of a big
#: vma or a long walk stays readable and quick to draw.
MAX_PICTURE_NODES = 48

_LETTERS = string.ascii_uppercase + string.ascii_lowercase
_USER = 1 << 2  # _PAGE_USER


# --- text pictures ---------------------------------------------------------------------


def _perms(mm: Mm, vma: Vma) -> str:
    return maps_entry(mm, vma).perms


def _pt_index(addr: int) -> str:
    """The x86-64 4-level walk of ``addr``: pgd/pud/pmd/pte indices (9 bits each)."""
    vpn = addr >> PAGE_SHIFT
    return "/".join(str((vpn >> shift) & 511) for shift in (27, 18, 9, 0))


def _pte_flags(pte: int) -> str:
    """``rwuad`` with ``-`` for a clear bit: present(readable), RW, USER, ACCESSED, DIRTY.
    A PROT_NONE pte is not readable (and has no user bit)."""
    bits = (not pte_protnone(pte), pte_write(pte), bool(pte & _USER), pte_young(pte),
            pte_dirty(pte))
    return "".join(c if on else "-" for c, on in zip("rwuad", bits, strict=True))


class TextPicture(str):
    """A text picture (:func:`vmprint`, :func:`layout`): the ``str`` itself, shown as
    preformatted text by IPython and Jupyter rather than as a quoted string."""

    __slots__ = ()

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # IPython terminal
        printer.text(str(self))

    def _repr_html_(self) -> str:  # Jupyter
        return f"<pre>{html.escape(str(self))}</pre>"


def vmprint(process: Process) -> TextPicture:
    """The page table of ``process``: one line per present or swap pte, grouped by vma.

    Each line gives the virtual address, its pgd/pud/pmd/pte indices (what a 4-level
    x86-64 walk would follow), the raw pte, the pfn, the bits ``rwuad`` (present/readable,
    writable, user, accessed, dirty; ``-`` when clear) and the page's mapcount (what
    /proc/kpagecount reports). A swap pte shows its slot instead. Here pid 1 wrote pages 0
    and 1, read page 2, forked, its child wrote page 0 (so pid 1's frame 1 is exclusive
    again but still read-only) and pid 1 made page 3 read-only::

        page table of pid 1: 2 vmas, 3 ptes
        vma 10000000-10003000 rw-p anon
         .. 10000000 0/0/128/0: pte 0x0000000000001065 pfn 1 r-uad mapcount 1
         .. 10001000 0/0/128/1: pte 0x0000000000002065 pfn 2 r-uad mapcount 2
         .. 10002000 0/0/128/2: pte 0x0000000000000025 pfn 0 r-ua- mapcount 0 (zero page)
        vma 10003000-10004000 r--p anon
    """
    mm = process.mm
    machine = mm.machine
    ptes = list(mm.pgtable.items())
    vmas = list(mm.vmas)
    out = [f"page table of pid {process.pid}: {len(vmas)} vma{'s' * (len(vmas) != 1)}, "
           f"{len(ptes)} pte{'s' * (len(ptes) != 1)}"]
    shown: set[int] = set()
    for vma in vmas:
        out.append(f"vma {vma.start:08x}-{vma.end:08x} {_perms(mm, vma)} "
                   f"{vma_name(mm, vma) or 'anon'}")
        for addr, pte in mm.pgtable.range(vma.start, vma.end):
            shown.add(addr >> PAGE_SHIFT)
            out.append(_pte_line(machine, addr, pte))
    stray = [(vpn, pte) for vpn, pte in ptes if vpn not in shown]
    if stray:
        out.append("outside every vma (a bug: stale ptes)")
        out.extend(_pte_line(machine, vpn << PAGE_SHIFT, pte) for vpn, pte in stray)
    return TextPicture("\n".join(out) + "\n")


def _pte_line(machine: Machine, addr: int, pte: int) -> str:
    head = f" .. {addr:08x} {_pt_index(addr)}:"
    if pte_present(pte):
        pfn = pte_pfn(pte)
        zero = " (zero page)" if pfn == machine.physmem.ZERO_PFN else ""
        return (f"{head} pte {pte:#018x} pfn {pfn} {_pte_flags(pte)} "
                f"mapcount {machine.kpagecount(pfn)}{zero}")
    if is_swap_pte(pte):
        excl = " (exclusive)" if pte_swp_exclusive(pte) else ""
        return f"{head} swap slot {swp_slot(pte)}{excl}"
    if pte == GUARD_PTE:
        return f"{head} guard marker"
    return f"{head} pte {pte:#x} (unknown)"


def layout(process: Process, *more: Process, width: int = 64,
           gap: int = 16) -> TextPicture:
    """The vmas of one or more processes as ruler pictures, one letter per vma, one column
    per page.

    Pages are numbered from the lowest vma (in hex, as the kernel's VMA tests do; a second
    ruler line carries the sixteens when the picture is wider than 16 pages). Vmas more than
    ``gap`` pages apart are drawn as separate pictures, each numbered from its own first
    vma; a picture is cut at ``width`` pages. A legend gives each letter's range,
    permissions, pgoff (in pages) and anon object (``anon_vma#1``...: vmas showing the same
    name share one object, across every process drawn in the same call). Two adjacent vmas
    show as ``AAABB``, a merged one as ``AAAAA``. The same two processes as above
    (``layout(p, c)``): the parent's split vmas share its anon_vma, the child has its own::

        pid 1 at 0x10000000:
        0123
        AAAB
        A 10000000-10003000 rw-p pgoff 0x10000 anon_vma#1
        B 10003000-10004000 r--p pgoff 0x10003 anon_vma#1
        pid 2 at 0x10000000:
        0123
        AAAA
        A 10000000-10004000 rw-p pgoff 0x10000 anon_vma#2
    """
    names = _ObjectNames()
    out: list[str] = []
    for proc in (process, *more):
        out += _layout_lines(proc, names, width, gap)
    return TextPicture("\n".join(out) + "\n")


def _layout_lines(process: Process, names: _ObjectNames, width: int, gap: int) -> list[str]:
    mm = process.mm
    vmas = list(mm.vmas)
    if not vmas:
        return [f"pid {process.pid}: no vmas"]
    letter = {id(v): _LETTERS[i % len(_LETTERS)] for i, v in enumerate(vmas)}
    out: list[str] = []
    for group in _clusters(vmas, gap):
        base = group[0].start
        span = (group[-1].end - base) >> PAGE_SHIFT
        npages = min(span, width)
        cells = [" "] * npages
        for v in group:
            first = (v.start - base) >> PAGE_SHIFT
            last = min(npages, (v.end - base) >> PAGE_SHIFT)
            for page in range(first, last):
                cells[page] = letter[id(v)]
        out.append(f"pid {process.pid} at {base:#x}:")
        if npages > 16:
            out.append("".join(" " if i < 16 else f"{(i >> 4) & 15:x}" for i in range(npages)))
        out.append("".join(f"{i & 15:x}" for i in range(npages)))
        out.append("".join(cells).rstrip() + (f" ... ({span - npages} more pages)"
                                              if span > npages else ""))
        for v in group:
            anon = "-" if v.anon_vma is None else names.name(v.anon_vma)
            name = vma_name(mm, v)
            out.append(f"{letter[id(v)]} {v.start:08x}-{v.end:08x} {_perms(mm, v)} "
                       f"pgoff {v.pgoff:#x} {anon}" + (f" {name}" if name else ""))
    return out


def _clusters(vmas: list[Vma], gap: int) -> Iterator[list[Vma]]:
    """Runs of vmas whose holes are at most ``gap`` pages."""
    group = [vmas[0]]
    for v in vmas[1:]:
        if (v.start - group[-1].end) >> PAGE_SHIFT > gap:
            yield group
            group = []
        group.append(v)
    yield group


class _ObjectNames:
    """Short stable names for rmap objects: ``anon_vma#1``, ``anonmm#2``..."""

    def __init__(self) -> None:
        self._names: dict[int, str] = {}
        self._counts: dict[str, int] = {}
        self._keep: list[object] = []  # keep ids valid while the picture is drawn

    def name(self, obj: object) -> str:
        key = id(obj)
        if key not in self._names:
            kind = "marker" if type(obj) is object else _kind(obj)
            self._counts[kind] = self._counts.get(kind, 0) + 1
            self._names[key] = f"{kind}#{self._counts[kind]}"
            self._keep.append(obj)
        return self._names[key]


def _kind(obj: object) -> str:
    """A readable kind for an rmap object: ``anon_vma``, ``anonmm`` or the class name."""
    if _is_avc_anon_vma(obj) or _is_list_anon_vma(obj):
        return "anon_vma"
    if _is_anonmm(obj):
        return "anonmm"
    return type(obj).__name__.lower()


# --- shapes of rmap objects (duck typing, so student schemes are drawn too) -------------


def _is_avc_anon_vma(obj: object) -> bool:
    return all(hasattr(obj, a) for a in ("avcs", "root", "parent"))


def _is_list_anon_vma(obj: object) -> bool:
    return isinstance(getattr(obj, "vmas", None), list)


def _is_anonmm(obj: object) -> bool:
    return hasattr(obj, "head") and isinstance(getattr(obj, "members", None), list)


def _covers(vma: Vma, index: int) -> bool:
    """The vma's linear range holds page index ``index``."""
    return vma.pgoff <= index < vma.pgoff + vma.pages


# --- DOT -------------------------------------------------------------------------------


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _attrs(attrs: dict[str, str]) -> str:
    items = [f"{k}={_quote(v)}" for k, v in attrs.items() if v]
    return " [" + ", ".join(items) + "]" if items else ""


class _Dot:
    """A small DOT writer: nodes keyed by any hashable, ids ``n0, n1...`` in order."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.ids: dict[object, str] = {}
        self.lines: list[str] = []
        self.clusters: dict[str, list[str]] = {}
        self.cluster_labels: dict[str, str] = {}
        #: Node labels by id and (from, to, label) edges, for the text outline.
        self.labels: dict[str, str] = {}
        self.edges: list[tuple[str, str, str]] = []

    def has(self, key: object) -> bool:
        return key in self.ids

    def node(self, key: object, label: str, cluster: str | None = None,
             **attrs: str) -> str:
        """Define a node once; later calls return its id (and add nothing)."""
        if key in self.ids:
            return self.ids[key]
        nid = f"n{len(self.ids)}"
        self.ids[key] = nid
        self.labels[nid] = label
        line = f"  {nid}{_attrs({'label': label, **attrs})};"
        if cluster is None:
            self.lines.append(line)
        else:
            self.clusters.setdefault(cluster, []).append("  " + line)
        return nid

    def edge(self, a: str, b: str, **attrs: str) -> None:
        self.lines.append(f"  {a} -> {b}{_attrs(attrs)};")
        self.edges.append((a, b, attrs.get("label", "")))

    def cluster(self, name: str, label: str) -> str:
        self.cluster_labels.setdefault(name, label)
        return name

    def text(self) -> str:
        out = ["digraph mmcore {",
               f"  label={_quote(self.title)}; labelloc=t; fontname=Helvetica;",
               "  node [fontname=Helvetica, fontsize=10, shape=box];",
               "  edge [fontname=Helvetica, fontsize=9];"]
        for i, (name, body) in enumerate(self.clusters.items()):
            out.append(f"  subgraph cluster_{i} {{")
            out.append(f"    label={_quote(self.cluster_labels.get(name, name))};"
                       " style=rounded; color=gray;")
            out.extend(body)
            out.append("  }")
        out.extend(self.lines)
        out.append("}")
        return "\n".join(out) + "\n"

    def outline(self) -> str:
        """The graph as text: the title, then one line per edge, ``from --label--> to``
        (labels on one line), then any node no edge touches."""
        def name(nid: str) -> str:
            return self.labels[nid].replace("\n", " | ")
        out = [self.title]
        out += [f"  {name(a)} --{label.replace(chr(10), ' ')}--> {name(b)}" if label
                else f"  {name(a)} --> {name(b)}" for a, b, label in self.edges]
        touched = {n for a, b, _ in self.edges for n in (a, b)}
        out += [f"  {name(n)}" for n in self.labels if n not in touched]
        return "\n".join(out) + "\n"

    def graph(self) -> DotGraph:
        """The finished picture."""
        return DotGraph(self.text(), self.outline())


class _RmapPicture:
    """The pieces every rmap picture shares: vma and mm nodes, truth edges, and the
    probes of a traced walk on the vmas they probed."""

    def __init__(self, machine: Machine, dot: _Dot, walk: WalkTrace | None = None) -> None:
        self.machine = machine
        self.dot = dot
        self.names = _ObjectNames()
        #: Probe numbers (from 1) and probes, by the probed vma (pid, start, end).
        self.probes: dict[tuple[int, int, int], list[tuple[int, Probe]]] = {}
        for n, probe in enumerate(walk.probes if walk else [], 1):
            key = (probe.pid, probe.vma_start, probe.vma_end)
            self.probes.setdefault(key, []).append((n, probe))

    def mm(self, mm: Mm | None) -> str:
        if mm is None:
            return self.dot.node(("mm", None), "exited mm", style="dashed", color="gray")
        return self.dot.node(("mm", id(mm)), f"mm of pid {mm.owner_pid}", shape="folder",
                             style="filled", fillcolor="honeydew")

    def vma(self, vma: Vma, reached: bool = True) -> str:
        """A vma node with its vm_mm edge; ``reached=False`` draws it dashed (the walk
        looks at it and skips it, or it holds no pte for the page)."""
        key = ("vma", id(vma))
        if self.dot.has(key):
            return self.dot.ids[key]
        perms = _perms(vma.mm, vma)
        attrs = {} if reached else {"style": "dashed", "color": "gray"}
        label = f"vma {vma.start:x}-{vma.end:x} {perms}\npgoff {vma.pgoff:#x}"
        probes = self.probes.get((vma.mm.owner_pid, vma.start, vma.end))
        if probes:
            label += "\n" + _probe_note(probes)
            hit = any(p.hit for _, p in probes)
            attrs = {"style": "filled,bold", "penwidth": "2",
                     "color": "darkgreen" if hit else "darkorange",
                     "fillcolor": "palegreen" if hit else "moccasin"}
        nid = self.dot.node(key, label, **attrs)
        self.dot.edge(nid, self.mm(vma.mm), label="vm_mm", color="gray", style="dotted")
        return nid

    def obj(self, obj: object, label: str, **attrs: str) -> str:
        return self.dot.node(("obj", id(obj)), f"{self.names.name(obj)}\n{label}".rstrip(),
                             **attrs)

    def unreached_probes(self, pnode: str) -> None:
        """Probed vmas the structure's drawing did not reach (a scheme proposing a
        candidate from elsewhere): drawn, with a dashed edge from the page."""
        for pid, start, _end in self.probes:
            proc = self.machine.processes.get(pid)
            vma = proc.mm.vmas.lookup(start) if proc is not None else None
            if vma is not None and not self.dot.has(("vma", id(vma))):
                self.dot.edge(pnode, self.vma(vma), label="candidate", style="dashed",
                              color="darkorange")


def _probe_note(probes: list[tuple[int, Probe]]) -> str:
    """A vma node's line for the probes a walk made in it: ``probe 2: maps it``, or for
    several ``probes 3-9: 1 maps it, 6 wasted``."""
    if len(probes) == 1:
        n, probe = probes[0]
        return f"probe {n}: {probe.verdict}"
    hits = sum(p.hit for _, p in probes)
    return (f"probes {probes[0][0]}-{probes[-1][0]}: {hits} maps it, "
            f"{len(probes) - hits} wasted")


def rmap_dot(machine: Machine, pfn: int, walk: WalkTrace | None = None) -> DotGraph:
    """A Graphviz DOT graph of how the rmap scheme reaches the page at ``pfn``; with
    ``walk`` (:meth:`Machine.trace_walk` of that page), the walk highlighted on it.

    Black edges are the scheme's structure, in the order a walk follows it:

    * anon_vma_chain: page -> its anon_vma (root drawn with a double border) -> every
      anon_vma_chain in its tree -> the chain's vma -> the vma's mm; vmas whose pgoff
      range misses the page are dashed (the interval tree skips them);
    * anon_vma (2004): page -> anon_vma -> every vma on its list -> mm;
    * anonmm: page -> its anonmm, the group's list of anonmms (head first) -> each mm ->
      the vma at the page's address;
    * pte_chains: page -> the direct pte or each pte_chain block -> its entries (mm,
      address) -> the vma find_vma returns;
    * page-cache pages: page -> file -> the vmas of i_mmap -> mm.

    Green edges ``pte @ address`` go from each vma whose pte really maps the page
    (:meth:`Machine.rmap_truth`) to the page; a red one marks a mapping the structure does
    not reach (a scheme bug). With ``walk``, every vma the walk probed is filled (green
    when a probe there found the page, orange when its probes were wasted) and labelled
    with its probe numbers and verdicts (``probe 1: maps pfn 3``); a probed vma the
    structure's drawing does not reach hangs off the page by a dashed ``candidate`` edge;
    vmas left plain were never probed (skipped, or after the walk had found every
    mapping), and the title counts the probes. Example: page 1 of the processes above, under
    anon_vma_chain (shortened; the vma of pid 1 that misses the page is dashed)::

        digraph mmcore {
          label="rmap of pfn 2 (anon_vma_chain)"; labelloc=t; fontname=Helvetica;
          ...
          n0 [label="page pfn 2\\nmapcount 2, index 0x10001 (anon)", ...];
          n1 [label="anon_vma#1\\nroot, children 2, active vmas 2", ...];
          n0 -> n1 [label="mapping"];
          n2 [label="avc", style="rounded"];
          n1 -> n2;
          n3 [label="vma 10003000-10004000 r--p\\npgoff 0x10003", style="dashed", ...];
          n4 [label="mm of pid 1", shape="folder", ...];
          n3 -> n4 [label="vm_mm", color="gray", style="dotted"];
          n2 -> n3 [label="vma"];
          ...
          n9 -> n0 [label="pte @ 0x10001000", color="darkgreen", penwidth="2", ...];
          n6 -> n0 [label="pte @ 0x10001000", color="darkgreen", penwidth="2", ...];
        }
    """
    page = machine.physmem.page(pfn)
    if page is None:
        raise ValueError(f"pfn {pfn} is not an allocated page")
    title = f"rmap of pfn {pfn} ({machine.rmap_name})"
    if walk is not None:
        if walk.pfn != pfn:
            raise ValueError(f"the walk traced pfn {walk.pfn}, not pfn {pfn}")
        title += (f"; walk: {len(walk.probes)} probe{'s' * (len(walk.probes) != 1)}, "
                  f"found {len(walk.mappings)} of {walk.mapcount}")
    dot = _Dot(title)
    pic = _RmapPicture(machine, dot, walk)
    kind = "anon" if page.is_anon else "file" if isinstance(page.mapping, Inode) else \
        "the shared zero page: no rmap" if pfn == machine.physmem.ZERO_PFN else "none"
    label = f"page pfn {pfn}\nmapcount {page.mapcount}, index {page.index:#x} ({kind})"
    if page.folio is not None:
        label += f"\n{folio_note(page.folio, page)}"
    pnode = dot.node(("page", pfn), label, style="filled", fillcolor="lightyellow",
                     shape="box3d")
    reached: set[tuple[int, int]] = set()  # (id(vma) or id(mm), address) the structure finds
    mapping = page.mapping
    if page.is_anon and page.rmap is not None:
        _draw_pte_chain(pic, pnode, page.rmap, reached)
    elif isinstance(mapping, Inode):
        _draw_file(pic, pnode, page, mapping, reached)
    elif _is_avc_anon_vma(mapping):
        _draw_avc(pic, pnode, page, mapping, reached)
    elif _is_list_anon_vma(mapping):
        _draw_anon_vma_list(pic, pnode, page, mapping, reached)
    elif _is_anonmm(mapping):
        _draw_anonmm(pic, pnode, page, mapping, reached)
    elif mapping is not None:
        onode = pic.obj(mapping, f"({type(mapping).__name__}: shape not known to viz)",
                        style="dashed")
        dot.edge(pnode, onode, label="mapping")
    pic.unreached_probes(pnode)
    zero = pfn == machine.physmem.ZERO_PFN
    for pid, addr in machine.rmap_truth(pfn):
        mm = machine.processes[pid].mm
        vma = mm.vmas.lookup(addr)
        src = pic.vma(vma) if vma is not None else pic.mm(mm)
        found = (vma is not None and (id(vma), addr) in reached) or (id(mm), addr) in reached
        if zero:  # never in any rmap, and never unmapped by one (mapcount stays 0)
            dot.edge(src, pnode, label=f"pte @ {addr:#x}", color="gray", constraint="false")
        elif found:
            dot.edge(src, pnode, label=f"pte @ {addr:#x}", color="darkgreen", penwidth="2",
                     constraint="false")
        else:
            dot.edge(src, pnode, label=f"pte @ {addr:#x}\nNOT REACHED", color="red",
                     fontcolor="red", penwidth="2", constraint="false")
    return dot.graph()


def _maps(vma: Vma, addr: int, pfn: int) -> bool:
    pte = vma.mm.pgtable.entry(addr >> PAGE_SHIFT)
    return pte_present(pte) and pte_pfn(pte) == pfn


def _draw_vma_candidate(pic: _RmapPicture, src: str, vma: Vma, page: Page,
                        reached: set[tuple[int, int]], **edge: str) -> None:
    """An edge to a vma found through the page's linear index (anon_vma, AVC, files)."""
    covers = _covers(vma, page.index)
    node = pic.vma(vma, reached=covers and _maps(vma, vma.address_of(page.index), page.pfn))
    pic.dot.edge(src, node, **edge)
    if covers:
        reached.add((id(vma), vma.address_of(page.index)))


def _draw_avc(pic: _RmapPicture, pnode: str, page: Page, anon_vma: object,
              reached: set[tuple[int, int]]) -> None:
    dot = pic.dot
    root = getattr(anon_vma, "root", anon_vma)
    anode = _avc_anon_vma_node(pic, anon_vma)
    dot.edge(pnode, anode, label="mapping")
    if root is not anon_vma:
        dot.edge(anode, _avc_anon_vma_node(pic, root), label="root", style="dashed",
                 color="gray")
    avcs: list[object] = list(getattr(anon_vma, "avcs", []))
    for avc in avcs:
        cnode = dot.node(("avc", id(avc)), "avc", style="rounded")
        dot.edge(anode, cnode)
        vma: Vma | None = getattr(avc, "vma", None)
        if vma is not None:
            _draw_vma_candidate(pic, cnode, vma, page, reached, label="vma")


def _avc_anon_vma_node(pic: _RmapPicture, anon_vma: object) -> str:
    is_root = getattr(anon_vma, "root", None) is anon_vma
    label = (f"{'root, ' if is_root else ''}children {getattr(anon_vma, 'num_children', '?')},"
             f" active vmas {getattr(anon_vma, 'num_active_vmas', '?')}")
    attrs = {"shape": "ellipse", "style": "filled", "fillcolor": "lightblue"}
    if is_root:
        attrs["peripheries"] = "2"
    return pic.obj(anon_vma, label, **attrs)


def _draw_anon_vma_list(pic: _RmapPicture, pnode: str, page: Page, anon_vma: object,
                        reached: set[tuple[int, int]]) -> None:
    vmas: list[Vma] = getattr(anon_vma, "vmas", [])
    anode = pic.obj(anon_vma, f"list of {len(vmas)} vmas", shape="ellipse", style="filled",
                    fillcolor="lightblue")
    pic.dot.edge(pnode, anode, label="mapping")
    for i, vma in enumerate(vmas):
        _draw_vma_candidate(pic, anode, vma, page, reached, label=f"#{i + 1}")


def _draw_anonmm(pic: _RmapPicture, pnode: str, page: Page, anonmm: object,
                 reached: set[tuple[int, int]]) -> None:
    dot = pic.dot
    head = getattr(anonmm, "head", anonmm)
    members: list[object] = list(getattr(head, "members", [])) or [anonmm]
    if anonmm not in members:
        members.insert(0, anonmm)
    group = dot.cluster("group", f"anonmm group ({len(members)} mms forked from one exec)")
    nodes = {}
    for member in members:
        label = "head" if member is head else ""
        attrs = {"shape": "ellipse", "style": "filled", "fillcolor": "lightblue"}
        if member is anonmm:
            attrs["penwidth"] = "2"
        nodes[id(member)] = dot.node(("obj", id(member)),
                                     f"{pic.names.name(member)}\n{label}".rstrip(),
                                     cluster=group, **attrs)
    dot.edge(pnode, nodes[id(anonmm)], label="mapping")
    for a, b in itertools.pairwise(members):
        dot.edge(nodes[id(a)], nodes[id(b)], label="list", style="dashed")
    for member in members:
        mm: Mm | None = getattr(member, "mm", None)
        mnode = pic.mm(mm)
        dot.edge(nodes[id(member)], mnode, label="mm")
        if mm is None:
            continue
        tree = getattr(member, "tree", None)
        if isinstance(tree, IntervalTree):  # anon_vma_global: a per-mm tree keyed by pgoff
            for vma in tree:
                _draw_vma_candidate(pic, mnode, vma, page, reached, label="tree")
            continue
        vma = mm.vmas.lookup(page.index)  # anonmm: index is the virtual address
        if vma is not None:
            node = pic.vma(vma, reached=_maps(vma, page.index, page.pfn))
            dot.edge(mnode, node, label=f"find_vma({page.index:#x})")
            reached.add((id(vma), page.index))


def _draw_pte_chain(pic: _RmapPicture, pnode: str, state: object,
                    reached: set[tuple[int, int]]) -> None:
    dot = pic.dot
    blocks: list[list[object]]
    if isinstance(getattr(state, "blocks", None), list):
        blocks = [list(b) for b in getattr(state, "blocks", [])]
        label = "chain"
    else:
        blocks, label = [[state]], "pte.direct"
    prev = pnode
    for i, block in enumerate(blocks):
        if label == "chain":
            bnode = dot.node(("block", i), f"pte_chain block {i}\n{len(block)} ptes",
                             shape="box", style="filled", fillcolor="lightblue")
            dot.edge(prev, bnode, label="pte.chain" if i == 0 else "next")
            prev = bnode
        else:
            bnode = pnode
        for j, entry in enumerate(block):
            if not (isinstance(entry, tuple) and len(entry) == 2):
                continue
            mm, addr = entry
            enode = dot.node(("entry", i, j), f"pte of pid {mm.owner_pid}\n@ {addr:#x}",
                             shape="note")
            dot.edge(bnode, enode, label=label if label == "pte.direct" else "")
            vma = mm.vmas.lookup(addr)
            if vma is not None:
                dot.edge(enode, pic.vma(vma), label="find_vma")
                reached.add((id(vma), addr))
            else:
                dot.edge(enode, pic.mm(mm))
                reached.add((id(mm), addr))


def _draw_file(pic: _RmapPicture, pnode: str, page: Page, inode: Inode,
               reached: set[tuple[int, int]]) -> None:
    fnode = pic.dot.node(("inode", id(inode)), f"file {inode.path}\ni_mmap",
                         shape="ellipse", style="filled", fillcolor="lavender")
    pic.dot.edge(pnode, fnode, label="mapping")
    i_mmap = inode.i_mmap  # a list, or the i_mmap_tree plugin's interval tree
    vmas = list(i_mmap) if isinstance(i_mmap, list | IntervalTree) else []
    for vma in vmas:
        _draw_vma_candidate(pic, fnode, vma, page, reached)


def _anon_vmas_of(vma: Vma) -> Iterable[object]:
    """The anon_vmas a vma's chain links it to (oldest first), for AVC-shaped schemes."""
    chain = vma.rmap if isinstance(vma.rmap, list) else []  # oldest first
    return [getattr(avc, "anon_vma", None) for avc in chain]


def anon_vma_tree_dot(machine: Machine, only: Process | None = None) -> DotGraph:
    """A Graphviz DOT graph of every anon object and the vmas that use it (with ``only``,
    the vmas of that one process, and the anon objects they reach).

    For anon_vma_chain this is the fork hierarchy: each anon_vma with its
    ``num_children``, ``num_active_vmas`` and refcount, an edge from each parent to each
    child (roots drawn with a double border), and per process a box of its vmas, each with
    a bold edge to its own anon_vma and a dotted one per anon_vma_chain linking it to an
    ancestor's. For anon_vma (2004) the vmas of one fork family all point at one
    anon_vma; for anonmm each vma points at its mm's anonmm, linked on the group's list
    from the head; for any other scheme each vma points at whatever object it holds in
    ``vma.anon_vma``. Example, the processes above (shortened)::

        digraph mmcore {
          ...
          subgraph cluster_1 {
            label="pid 2"; style=rounded; color=gray;
            n2 [label="vma 10000000-10004000 rw-p"];
          }
          n3 [label="anon_vma#1\\nroot\\nchildren 2, active vmas 2\\nrefcount 2, 3 avcs", ...];
          n4 [label="anon_vma#2\\nchildren 0, active vmas 1\\nrefcount 1, 1 avcs", ...];
          n0 -> n3 [label="anon_vma", penwidth="2"];
          n1 -> n3 [label="anon_vma", penwidth="2"];
          n2 -> n4 [label="anon_vma", penwidth="2"];
          n2 -> n3 [label="avc", style="dotted", color="gray"];
          n3 -> n4 [label="parent of"];
        }
    """
    title = f"anon objects ({machine.rmap_name})"
    dot = _Dot(title if only is None else f"{title} of pid {only.pid}")
    names = _ObjectNames()
    objects: list[object] = []
    seen: set[int] = set()

    def collect(first: object | None) -> None:
        todo = [first]
        while todo:
            obj = todo.pop()
            if obj is None or id(obj) in seen:
                continue
            seen.add(id(obj))
            objects.append(obj)
            if _is_avc_anon_vma(obj):
                todo += [getattr(obj, "root", None), getattr(obj, "parent", None)]
            elif _is_anonmm(obj):
                todo.append(getattr(obj, "head", None))

    vma_nodes: list[tuple[Vma, str]] = []
    procs = machine.live_processes() if only is None else [only] if only.alive else []
    for proc in sorted(procs, key=lambda p: p.pid):
        group = dot.cluster(f"pid{proc.pid}", f"pid {proc.pid}")
        for vma in proc.mm.vmas:
            if vma.anon_vma is None and not isinstance(vma.rmap, list):
                continue
            vma_nodes.append((vma, dot.node(("vma", id(vma)), f"vma {vma.start:x}-{vma.end:x} "
                                            f"{_perms(proc.mm, vma)}", cluster=group)))
            for av in _anon_vmas_of(vma):
                collect(av)
            collect(vma.anon_vma)
    for obj in objects:
        dot.node(("obj", id(obj)), _anon_object_label(names, obj), **_anon_object_style(obj))
    for vma, vnode in vma_nodes:
        own = vma.anon_vma
        if own is not None:
            dot.edge(vnode, dot.ids[("obj", id(own))], label="anon_vma", penwidth="2")
        for av in _anon_vmas_of(vma):
            if av is not None and av is not own:
                dot.edge(vnode, dot.ids[("obj", id(av))], label="avc", style="dotted",
                         color="gray")
    for obj in objects:
        parent = getattr(obj, "parent", None)
        if _is_avc_anon_vma(obj) and parent is not None and parent is not obj:
            dot.edge(dot.ids[("obj", id(parent))], dot.ids[("obj", id(obj))],
                     label="parent of")
        if _is_anonmm(obj) and getattr(obj, "head", None) is obj:
            members: list[object] = getattr(obj, "members", [])
            for a, b in itertools.pairwise(members):
                if ("obj", id(a)) in dot.ids and ("obj", id(b)) in dot.ids:
                    dot.edge(dot.ids[("obj", id(a))], dot.ids[("obj", id(b))],
                             label="list", style="dashed")
    return dot.graph()


def _anon_object_label(names: _ObjectNames, obj: object) -> str:
    name = "marker (no per-vma object)" if type(obj) is object else names.name(obj)
    if _is_avc_anon_vma(obj):
        root = "root\n" if getattr(obj, "root", None) is obj else ""
        return (f"{name}\n{root}children {getattr(obj, 'num_children', '?')}, "
                f"active vmas {getattr(obj, 'num_active_vmas', '?')}\n"
                f"refcount {getattr(obj, 'refcount', '?')}, "
                f"{len(getattr(obj, 'avcs', []))} avcs")
    if _is_list_anon_vma(obj):
        return f"{name}\nlist of {len(getattr(obj, 'vmas', []))} vmas"
    if _is_anonmm(obj):
        head = "head, " if getattr(obj, "head", None) is obj else ""
        return f"{name}\n{head}count {getattr(obj, 'count', '?')}"
    return name


def _anon_object_style(obj: object) -> dict[str, str]:
    attrs = {"shape": "ellipse", "style": "filled", "fillcolor": "lightblue"}
    if getattr(obj, "root", None) is obj or getattr(obj, "head", None) is obj:
        attrs["peripheries"] = "2"
    return attrs


# --- large folios and walks --------------------------------------------------------------


def folio_size(folio: Folio) -> str:
    """folio_size() in words: ``order 4, 64 kB``."""
    return f"order {folio.order}, {(PAGE_SIZE << folio.order) >> 10} kB"


def folio_note(folio: Folio, page: Page) -> str:
    """Where ``page`` sits in its large folio (folio_page_idx(), folio_pfn(),
    folio_order()): ``page 3 of 16 of folio pfn 16 (order 4, 64 kB)``."""
    return (f"page {folio.page_index(page)} of {folio.nr_pages} of folio pfn {folio.pfn} "
            f"({folio_size(folio)})")


def folio_mapped_by(folio: Folio) -> str:
    """How every mm together maps a large folio: its PMD mappings (_entire_mapcount) and
    how many of its pages ptes map (_nr_pages_mapped): ``1 PMD, ptes on 5 of 512 pages``."""
    return (f"{folio.entire_mapcount} PMD, ptes on {folio.nr_pages_mapped} of "
            f"{folio.nr_pages} pages")


@dataclass(frozen=True)
class Run:
    """Consecutive present ptes of one vma that map the same thing: one large folio by
    one PMD (``pmd``), or one large folio by ptes, or small pages (``folio`` None)."""

    start: int
    nr: int
    #: The pfn the run's first pte maps.
    pfn: int
    folio: Folio | None
    pmd: bool

    @property
    def end(self) -> int:
        """The address after the run."""
        return self.start + (self.nr << PAGE_SHIFT)


def vma_runs(vma: Vma) -> list[Run]:
    """The present ptes of ``vma`` as :class:`Run` s, in address order. A run ends at a
    hole (a none, swap or guard pte), where the folio changes, and where a large folio's
    PMD mapping (pmd_trans_huge(), ``_PAGE_PSE`` on its ptes) gives way to ptes."""
    physmem = vma.mm.machine.physmem
    runs: list[Run] = []
    for addr, pte in vma.mm.pgtable.range(vma.start, vma.end):
        if not pte_present(pte):
            continue
        pfn = pte_pfn(pte)
        page = physmem.page(pfn)
        folio = None if page is None else page.folio
        huge = pte_huge(pte)
        last = runs[-1] if runs else None
        if last is not None and last.end == addr and last.folio is folio \
                and last.pmd == huge:
            runs[-1] = Run(last.start, last.nr + 1, last.pfn, folio, huge)
        else:
            runs.append(Run(addr, 1, pfn, folio, huge))
    return runs


def _run_edge(run: Run) -> str:
    """What a run's edge says: its addresses and, for a large folio, which of its pages."""
    where = f"{run.start:x}-{run.end:x}"
    if run.folio is None:
        return where
    first = run.pfn - run.folio.pfn
    pages = f"page {first}" if run.nr == 1 else f"pages {first}-{first + run.nr - 1}"
    return f"{'PMD' if run.pmd else 'ptes'} {where}\n{pages}"


def vma_folios_dot(vma: Vma, mapcount: Callable[[Folio], int] | None = None) -> DotGraph:
    """A Graphviz DOT graph of what ``vma`` maps (:func:`vma_runs`): one node per large
    folio, with an edge per run of it this vma maps (``PMD`` for a PMD-mapped THP, bold
    and salmon; ``ptes`` with the folio's page numbers for a PTE-mapped one, khaki), and
    one node per run of small pages. ``mapcount`` (the machine's mapcount design's
    folio_mapcount()) adds each folio's mapcount as the design counts it. At most
    :data:`MAX_PICTURE_NODES` runs are drawn; one last node counts the rest."""
    mm = vma.mm
    runs = vma_runs(vma)
    folios = {id(r.folio) for r in runs if r.folio is not None}
    dot = _Dot(f"pid {mm.owner_pid}: vma {vma.start:x}-{vma.end:x}, {len(runs)} run"
               f"{'s' * (len(runs) != 1)} of present ptes, {len(folios)} large folio"
               f"{'s' * (len(folios) != 1)}")
    vnode = dot.node(("vma", id(vma)), f"vma {vma.start:x}-{vma.end:x} {_perms(mm, vma)}\n"
                     f"{vma.pages} pages, pgoff {vma.pgoff:#x}")
    for run in runs[:MAX_PICTURE_NODES]:
        folio = run.folio
        if folio is None:
            node = dot.node(("run", run.start), f"{run.nr} small page{'s' * (run.nr != 1)}"
                            f"\nfirst pfn {run.pfn}", style="filled", fillcolor="lightyellow")
            dot.edge(vnode, node, label=_run_edge(run))
            continue
        label = f"folio pfn {folio.pfn}\n{folio_size(folio)}\n{folio_mapped_by(folio)}"
        if mapcount is not None:
            label += f"\nfolio_mapcount {mapcount(folio)}"
        node = dot.node(("folio", id(folio)), label, style="filled", shape="box3d",
                        fillcolor="lightsalmon" if run.pmd else "khaki")
        dot.edge(vnode, node, label=_run_edge(run), penwidth="2" if run.pmd else "")
    if len(runs) > MAX_PICTURE_NODES:
        dot.edge(vnode, dot.node("more", f"... {len(runs) - MAX_PICTURE_NODES} more runs",
                                 shape="plaintext"))
    return dot.graph()


def walk_dot(walk: WalkResult) -> DotGraph:
    """A Graphviz DOT graph of one walk's result, drawn from the result alone (the machine
    may have changed since): the page, and an edge to it from each mapping found (pid and
    address). For a traced walk (:class:`~mmcore.rmap.WalkTrace`), every probe in walk
    order instead, chained by ``next`` edges: green where the pte mapped the page (an
    edge to the page), orange where the probe was wasted, with its verdict. At most
    :data:`MAX_PICTURE_NODES` mappings or probes are drawn; one last node counts the
    rest."""
    probes: list[Probe] | None = getattr(walk, "probes", None)
    found = len(walk.mappings)
    dot = _Dot(f"walk of pfn {walk.pfn}: found {found} mapping{'s' * (found != 1)}, "
               f"{walk.cost.ptes_probed} ptes probed, {walk.cost.wasted} wasted")
    pnode = dot.node("page", f"page pfn {walk.pfn}", style="filled", fillcolor="lightyellow",
                     shape="box3d")
    shown = len(walk.mappings) if probes is None else len(probes)
    if probes is None:
        for n, (pid, addr) in enumerate(walk.mappings[:MAX_PICTURE_NODES], 1):
            node = dot.node(("mapping", n), f"pte of pid {pid}\n@ {addr:#x}", shape="note")
            dot.edge(node, pnode, label="maps it", color="darkgreen", penwidth="2")
    prev = None
    for n, probe in enumerate((probes or [])[:MAX_PICTURE_NODES], 1):
        hit = probe.hit
        node = dot.node(("probe", n), f"probe {n}: pid {probe.pid}\nvma {probe.vma_start:x}"
                        f"-{probe.vma_end:x}\n@ {probe.address:#x}: {probe.verdict}",
                        style="filled", fillcolor="palegreen" if hit else "moccasin",
                        color="darkgreen" if hit else "darkorange")
        if prev is not None:
            dot.edge(prev, node, label="next", style="dashed", color="gray")
        if hit:
            dot.edge(node, pnode, label="maps it", color="darkgreen", penwidth="2")
        prev = node
    if shown > MAX_PICTURE_NODES:
        what = "mappings" if probes is None else "probes"
        dot.node("more", f"... {shown - MAX_PICTURE_NODES} more {what}", shape="plaintext")
    return dot.graph()


# --- rendering -------------------------------------------------------------------------


class GraphvizNotFound(RuntimeError):
    """The Graphviz ``dot`` program is not installed (or not on PATH)."""


class DotGraph(str):
    """A graph picture: the ``str`` is its DOT source (also :attr:`source`), unchanged.

    In a notebook it draws itself as SVG (:meth:`svg`) when the ``graphviz`` Python
    package (``pip install 'mmcore-sim[viz]'``) and the Graphviz ``dot`` program are
    installed, and as its text :attr:`outline` (one line per edge) when they are not; an
    IPython terminal prints the outline.
    """

    outline: str

    def __new__(cls, source: str, outline: str) -> DotGraph:
        """``source`` is the DOT text, ``outline`` the text rendering."""
        graph = super().__new__(cls, source)
        graph.outline = outline
        return graph

    @property
    def source(self) -> str:
        """The DOT source as a plain ``str``."""
        return str(self)

    def svg(self) -> str:
        """The graph drawn by ``dot`` as SVG text; :class:`GraphvizNotFound` says what to
        install when the ``graphviz`` package or the ``dot`` program is missing."""
        try:
            import graphviz  # type: ignore[import-untyped,import-not-found,unused-ignore]
        except ImportError:
            raise GraphvizNotFound("drawing needs the graphviz Python package: pip install "
                                   "'mmcore-sim[viz]'") from None
        if shutil.which("dot") is None:
            raise GraphvizNotFound(_NO_DOT)
        svg: str = graphviz.Source(self.source).pipe(format="svg", encoding="utf-8")
        return svg

    def inline_svg(self) -> str:
        """:meth:`svg` as an element to put inside an HTML page: without the XML prolog
        and DOCTYPE (the DOCTYPE names a DTD on the web, which an offline page must not
        refer to)."""
        svg = self.svg()
        return svg[svg.index("<svg"):]

    def inline_html(self) -> str:
        """The picture as an element of an HTML page: :meth:`inline_svg`, or without
        Graphviz the text :attr:`outline` and a line saying what to install."""
        try:
            return self.inline_svg()
        except GraphvizNotFound as exc:
            return self._outline_html(exc)

    def _outline_html(self, exc: GraphvizNotFound) -> str:
        return (f"<pre>{html.escape(self.outline)}</pre>"
                f"<small>text outline: {html.escape(str(exc))}</small>")

    def _repr_svg_(self) -> str | None:  # Jupyter, when Graphviz is there
        try:
            return self.svg()
        except GraphvizNotFound:
            return None

    def _repr_html_(self) -> str:  # Jupyter: html outranks svg, so it carries the picture
        try:
            return self.svg()
        except GraphvizNotFound as exc:
            return self._outline_html(exc)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # IPython terminal
        printer.text(self.outline)


_NO_DOT = ("the Graphviz 'dot' program is not on PATH: install Graphviz (apt-get install "
           "graphviz, brew install graphviz, conda install graphviz), or paste the DOT "
           "text into any Graphviz viewer")


def render_png(dot: str, path: str | Path) -> Path:
    """Render DOT text to a PNG file with the Graphviz ``dot`` program; returns the path.

    Raises :class:`GraphvizNotFound` when ``dot`` is not on PATH (the DOT text itself can
    still be pasted into any Graphviz viewer), and ``subprocess.CalledProcessError`` with
    dot's message when the text does not parse.

    >>> render_png(rmap_dot(m, pfn), "rmap.png")  # doctest: +SKIP
    PosixPath('rmap.png')
    """
    exe = shutil.which("dot")
    if exe is None:
        raise GraphvizNotFound(f"render_png needs Graphviz: {_NO_DOT}")
    out = Path(path)
    subprocess.run([exe, "-Tpng", "-o", str(out)], input=dot.encode(), check=True,
                   capture_output=True)
    return out
