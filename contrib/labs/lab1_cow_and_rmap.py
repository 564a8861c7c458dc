"""Lab 1: copy-on-write and reverse mapping, step by step (no notebook needed).

Run it and read along; every number printed comes from the simulator::

    python -m mmcore_contrib.labs.lab1_cow_and_rmap            # the whole walk-through
    python -m mmcore_contrib.labs.lab1_cow_and_rmap --pause    # wait for Enter per step
    python -m mmcore_contrib.labs.lab1_cow_and_rmap --dot out/ # also write the DOT graphs
                                                               # (and PNGs if Graphviz is there)

Each step prints a "Think" question before the output that answers it: stop there and
predict, then compare. The lab ends with seeded exercises to try on your own.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from mmcore import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    PROT_READ,
    PROT_WRITE,
    Machine,
    WalkCost,
)
from mmcore.viz import GraphvizNotFound, anon_vma_tree_dot, layout, render_png, rmap_dot, vmprint

from .scenario import needed_policy

BASE, PAGE = 0x10000000, 4096
SCHEMES = ("pte_chains", "anonmm", "anon_vma", "anon_vma_chain")


class Lab:
    """Prints numbered steps; optionally pauses and writes DOT files."""

    def __init__(self, pause: bool, dot_dir: Path | None,
                 out: Callable[[str], None] = print) -> None:
        self.pause = pause
        self.dot_dir = dot_dir
        self.out = out
        self.n = 0

    def step(self, title: str, think: str) -> None:
        """Start a step: its title and the question to answer before reading on."""
        self.n += 1
        self.out(f"\n=== Step {self.n}: {title} ===")
        self.out(f"Think: {think}")
        if self.pause:
            input("(Enter to see the answer) ")

    def dot(self, name: str, text: str) -> None:
        """Save a DOT graph (and its PNG when Graphviz is installed)."""
        if self.dot_dir is None:
            self.out(f"(run with --dot DIR to save the {name} graph)")
            return
        self.dot_dir.mkdir(parents=True, exist_ok=True)
        path = self.dot_dir / f"{name}.dot"
        path.write_text(text)
        try:
            png = render_png(text, path.with_suffix(".png"))
            self.out(f"wrote {path} and {png}")
        except GraphvizNotFound:
            self.out(f"wrote {path} (install Graphviz to get a PNG)")


def run(lab: Lab, scheme: str = "anon_vma_chain") -> None:
    """The walk-through: COW after fork, then what each rmap scheme walks."""
    out = lab.out
    m = Machine(rmap=scheme, mremap_policy=needed_policy(scheme))
    p = m.spawn()
    a = p.mmap(BASE, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)

    lab.step("demand paging", "p mapped 4 pages and has not touched them. How many ptes "
             "does its page table hold? What happens when it writes pages 0 and 1 and reads "
             "page 2?")
    out(f"right after mmap: {len(p.mm.pgtable)} ptes")
    p.write(a, b"zero")
    p.write(a + PAGE, b"one")
    p.read(a + 2 * PAGE, 1)
    out(vmprint(p))
    out("Two writes allocated frames 1 and 2 (writable, dirty, mapcount 1); the read of an\n"
        "untouched page maps the shared zero page (pfn 0, read-only, mapcount 0).")

    lab.step("fork", "p forks c. Which frames does c map? Which pte bits change in p's "
             "page table, and what is the mapcount of frames 1 and 2 now?")
    c = p.fork()
    out(vmprint(p))
    out(vmprint(c))
    out("fork copied the ptes, not the pages: both map frames 1 and 2 with mapcount 2, and\n"
        "both ptes lost their w bit, so the next write by either process faults (COW).")

    lab.step("copy on write", "c writes page 0. Which process gets a new frame, and which "
             "mapcount drops?")
    before = m.counters.fault_cow_copy
    c.write(a, b"ZERO")
    out(vmprint(c))
    out(f"COW copies so far: {m.counters.fault_cow_copy - before}; kpagecount(1) = "
        f"{m.kpagecount(1)}; p still reads {p.read(a, 4)!r}, c reads {c.read(a, 4)!r}")

    lab.step("reuse", "p now writes page 0. Frame 1 is mapped only by p (mapcount 1) but "
             "its pte is read-only. Does the kernel copy it again?")
    reuse, copies = m.counters.fault_cow_reuse, m.counters.fault_cow_copy
    p.write(a, b"Zero")
    out(f"copies: +{m.counters.fault_cow_copy - copies}, reuses: "
        f"+{m.counters.fault_cow_reuse - reuse}")
    out(vmprint(p))
    out("The last mapper of a COW page just makes its pte writable again: no copy "
        "(do_wp_page's reuse path).")

    pfn = p.pagemap(a + PAGE).pfn
    lab.step("who maps this page?", f"Frame {pfn} (page 1) is still shared. Which "
             "(pid, address) pairs map it? How does the rmap scheme find them without "
             "scanning every page table?")
    out(f"truth (scan of every page table): {_pairs(m.rmap_truth(pfn))}")
    walk = m.rmap_walk(pfn)
    out(f"{scheme} walk: {_pairs(walk.mappings)}")
    out(f"cost: {walk.cost}")
    out(layout(p, c))
    lab.dot(f"rmap_pfn{pfn}_{scheme}", rmap_dot(m, pfn))
    lab.dot(f"anon_objects_{scheme}", anon_vma_tree_dot(m))

    lab.step("compare the schemes", "A parent writes 8 pages and forks 8 children; each "
             "child then writes (COW-copies) page 0. Which scheme visits the fewest vmas "
             "or mms to find (a) a page all 9 still share, (b) one child's private copy?")
    out(f"{'scheme':16} {'shared: vmas':>12} {'mms':>4} {'probes':>6}   "
        f"{'private: vmas':>13} {'mms':>4} {'probes':>6}")
    for name in SCHEMES:
        shared, private = _compare(name)
        out(f"{name:16} {shared.vmas_visited:12} {shared.mms_visited:4} "
            f"{shared.ptes_probed:6}   {private.vmas_visited:13} {private.mms_visited:4} "
            f"{private.ptes_probed:6}")
    out("anon_vma_chain finds a child's private page in its own anon_vma; anon_vma (2004)\n"
        "walks the vmas of the whole family until it finds it; pte_chains goes straight to\n"
        "each pte; anonmm starts at the mm that faulted the page.")

    lab.step("your turn", "Try the seeded exercises; check yourself with --answers.")
    out("python -m mmcore_contrib.labs.exercises cow --seed 1\n"
        "python -m mmcore_contrib.labs.exercises rmap --seed 1 --answers")


def _pairs(pairs: list[tuple[int, int]]) -> str:
    return ", ".join(f"pid {pid} @ {addr:#x}" for pid, addr in pairs)


def _compare(scheme: str) -> tuple[WalkCost, WalkCost]:
    """Walk costs for a page shared by 9 processes and a child's private COW copy."""
    m = Machine(rmap=scheme, mremap_policy=needed_policy(scheme))
    p = m.spawn()
    a = p.mmap(BASE, 8 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
    for i in range(8):
        p.write(a + i * PAGE, b"p")
    children = [p.fork() for _ in range(8)]
    for child in children:
        child.write(a, b"c")
    shared: WalkCost = m.rmap_walk(p.pagemap(a + PAGE).pfn).cost
    # The oldest child: anon_vma (2004) puts each new vma at the head of its list.
    private: WalkCost = m.rmap_walk(children[0].pagemap(a).pfn).cost
    return shared, private


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``--scheme``, ``--pause``, ``--dot DIR``."""
    parser = argparse.ArgumentParser(prog="python -m mmcore_contrib.labs.lab1_cow_and_rmap",
                                     description="Lab 1: copy-on-write and rmap.")
    parser.add_argument("--scheme", default="anon_vma_chain", choices=SCHEMES)
    parser.add_argument("--pause", action="store_true", help="wait for Enter at each step")
    parser.add_argument("--dot", type=Path, help="directory for the DOT graphs")
    args = parser.parse_args(argv)
    run(Lab(args.pause, args.dot), args.scheme)
    return 0


if __name__ == "__main__":
    sys.exit(main())
