"""How the cost of three paths grows with their size (issue 14 item 7).

Each path runs at n, 2n, 4n, ... and the table shows the CPU time of each run and its
ratio to the run before: about 2 per doubling is linear, 4 quadratic, 8 cubic.

* ``fork-chain``: a process with one written anonymous page forks a child, which writes
  the page and forks the next, ``n`` deep, every process staying alive (as a chain of
  shells does); then every process exits, the oldest first. With the anon_vma_chain
  scheme each child's vma links one anon_vma_chain per ancestor, as anon_vma_clone()
  does in the kernel, so the chains themselves are n(n+1)/2 (quadratic in the kernel
  too); the other schemes keep one entry per vma.
* ``fork-relay``: the same chain where each parent exits once its child exists (a
  daemon's double fork, repeated): the kernel reuses the exited parent's anon_vma
  (anon_vma_clone()'s num_active_vmas rule), so the work per fork is constant.
* ``open``: ``n`` open() calls of one file in one process, each taking the lowest free
  descriptor.
* ``populate``: MADV_POPULATE_WRITE of 1.9 times RAM with swap the size of RAM, so swap
  fills and reclaim runs through the whole populate.

Run with ``python benchmarks/bench_scaling.py`` (``--only open`` for one path). The time
is process CPU time, which other load on the machine disturbs less than wall time. Not a
test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from mmcore import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, Machine
from mmcore.atomicfile import atomic_open
from mmcore.constants import MADV_POPULATE_WRITE

PAGE = 4096
RW = PROT_READ | PROT_WRITE


def fork_chain(rmap: str, depth: int, relay: bool) -> float:
    """CPU seconds to fork a chain ``depth`` deep and exit it (see the module doc)."""
    m = Machine(rmap=rmap)
    p = m.spawn()
    a = p.mmap(0, PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    p.write(a, b"x")
    chain = [p]
    t = time.process_time()
    for _ in range(depth):
        child = p.fork()
        child.write(a, b"y")
        if relay:
            p.exit(0)
        chain.append(child)
        p = child
    for q in chain:
        if q.alive:
            q.exit(0)
    return time.process_time() - t


def opens(n: int) -> float:
    """CPU seconds for ``n`` open() calls of one file in one process."""
    m = Machine()
    p = m.spawn()
    m.create_file("/f", b"x")
    t = time.process_time()
    for _ in range(n):
        p.open("/f")
    return time.process_time() - t


def populate(ram: int) -> float:
    """CPU seconds for MADV_POPULATE_WRITE of 1.9 x ``ram`` pages with ``ram`` pages of
    swap (the populate fills swap, so reclaim runs for most of it)."""
    m = Machine(ram_pages=ram, swap_pages=ram)
    p = m.spawn()
    length = (19 * ram // 10) * PAGE
    a = p.mmap(0, length, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    t = time.process_time()
    p.madvise(a, length, MADV_POPULATE_WRITE)
    return time.process_time() - t


#: Each path: what it runs at a size, and its default smallest size.
PATHS: dict[str, tuple[Callable[[int], float], int]] = {
    "fork-chain anon_vma_chain": (lambda n: fork_chain("anon_vma_chain", n, False), 500),
    "fork-chain anon_vma": (lambda n: fork_chain("anon_vma", n, False), 1000),
    "fork-relay anon_vma_chain": (lambda n: fork_chain("anon_vma_chain", n, True), 1000),
    "open": (opens, 100_000),
    "populate": (populate, 4096),
}


def main(argv: list[str] | None = None) -> int:
    """Run each path at its sizes and print time and ratio per doubling."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", choices=sorted(PATHS),
                    help="run only this path (repeatable)")
    ap.add_argument("--doublings", type=int, default=2,
                    help="sizes after the first, each twice the one before")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="multiply every path's first size by this")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args(argv)
    rows: list[dict[str, object]] = []
    for name in args.only or list(PATHS):
        fn, first = PATHS[name]
        before = None
        for k in range(args.doublings + 1):
            n = int(first * args.scale) << k
            secs = fn(n)
            ratio = secs / before if before else None
            before = secs
            rows.append({"path": name, "n": n, "cpu_seconds": round(secs, 3),
                         "ratio": None if ratio is None else round(ratio, 2)})
            shown = "" if ratio is None else f"  x{ratio:.2f}"
            print(f"{name:26} n={n:7} {secs:8.2f} s{shown}", flush=True)
    if args.json:
        with atomic_open(args.json) as fh:
            json.dump({"runs": rows}, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
