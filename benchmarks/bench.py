"""Benchmarks: simulated fault and fork cost as ratios to a plain dict insert.

Run with ``python benchmarks/bench.py`` (or ``nox -s bench``). Every figure is a ratio to
a dict insert timed in the same run, so results compare across machines; absolute times
are printed too but mean little on a noisy machine. Not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

from mmcore import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, Machine, Process
from mmcore.fault import handle_mm_fault
from mmcore.plugins import valid_configurations

PAGE = 4096


def best_of(repeat: int, fn: Callable[..., float], *args: object) -> float:
    """The smallest of ``repeat`` timings of ``fn(*args)`` (seconds per operation)."""
    return min(fn(*args) for _ in range(repeat))


def dict_insert(n: int) -> float:
    """Seconds per ``d[k] = v`` insert of a fresh int key (the unit of every ratio)."""
    d: dict[int, int] = {}
    t = time.perf_counter()
    for i in range(n):
        d[i] = i
    return (time.perf_counter() - t) / n


def inlined_floor(n: int) -> float:
    """Seconds per demand-zero fault done as one inlined loop with no calls but the Page
    constructor: the vma range and permission check, the pte lookup, a frame off the free
    list, the page fields, an LRU insert, the anon rmap fields and the pte store. This is
    the floor a pure-Python fault path can reach with a Page object per frame."""
    from mmcore.page import Page
    free = list(range(n + 1, 0, -1))
    pages: list[Page | None] = [None] * (n + 2)
    ptes: dict[int, int] = {}
    lru: dict[int, Page] = {}
    start, end, pgoff, flags, anon = 0, n << 12, 0, 3, object()
    t = time.perf_counter()
    for i in range(n):
        addr = i << 12
        if not (start <= addr < end and flags & 2) or ptes.get(addr >> 12):
            raise AssertionError("unreachable")
        pfn = free.pop()
        page = pages[pfn] = Page(pfn)
        page.flags, page.mapcount, page.refcount = 3, 1, 1
        lru[pfn] = page
        page.mapping, page.index = anon, ((addr - start) >> 12) + pgoff
        ptes[addr >> 12] = (pfn << 12) | 0x67
    return (time.perf_counter() - t) / n


def process_with_region(rmap: str, policy: str | None, n: int) -> tuple[Process, int]:
    """A process on a fresh machine (RAM for four times ``n`` pages, so reclaim stays out
    of the figures) with an untouched private anonymous region of ``n`` pages."""
    m = Machine(rmap=rmap, mremap_policy=policy, ram_pages=4 * n + 1024)
    p = m.spawn()
    return p, p.mmap(0, n * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)


def demand_zero_fault(rmap: str, policy: str | None, n: int) -> float:
    """Seconds per demand-zero write fault: handle_mm_fault() on an untouched page."""
    p, a = process_with_region(rmap, policy, n)
    mm = p.mm
    t = time.perf_counter()
    for i in range(n):
        handle_mm_fault(mm, a + i * PAGE, True)
    return (time.perf_counter() - t) / n


def first_write(rmap: str, policy: str | None, n: int) -> float:
    """Seconds per ``Process.write`` of one byte to an untouched page (fault included)."""
    p, a = process_with_region(rmap, policy, n)
    write = p.write
    t = time.perf_counter()
    for i in range(n):
        write(a + i * PAGE, b"x")
    return (time.perf_counter() - t) / n


def fork_cost(rmap: str, policy: str | None, pages: int) -> float:
    """Seconds per fork of a process with ``pages`` faulted anonymous pages, per page."""
    p, a = process_with_region(rmap, policy, pages)
    for i in range(pages):
        p.write(a + i * PAGE, b"x")
    t = time.perf_counter()
    c = p.fork()
    elapsed = time.perf_counter() - t
    c.exit(0)
    return elapsed / pages


def main(argv: list[str] | None = None) -> int:
    """Print (or write as JSON) the ratios for every valid configuration."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pages", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args(argv)
    unit = best_of(args.repeat, dict_insert, 200_000)
    floor = best_of(args.repeat, inlined_floor, args.pages)
    rows: list[dict[str, Any]] = []
    for rmap, policy in valid_configurations():
        fault = best_of(args.repeat, demand_zero_fault, rmap, policy, args.pages)
        write = best_of(args.repeat, first_write, rmap, policy, args.pages)
        fork = best_of(args.repeat, fork_cost, rmap, policy, args.pages // 4)
        rows.append({"rmap": rmap, "policy": policy, "fault_ratio": fault / unit,
                     "first_write_ratio": write / unit,
                     "fork_per_page_ratio": fork / unit, "fault_us": fault * 1e6,
                     "faults_per_second": 1 / fault, "fork_per_page_us": fork * 1e6})
    print(f"dict insert: {unit * 1e9:.1f} ns (the unit)")
    print(f"inlined pure-Python fault floor: {floor / unit:.1f}x")
    print(f"{'configuration':28} {'fault/dict':>10} {'faults/s':>10} {'write/dict':>10} "
          f"{'fork per page/dict':>19}")
    for r in rows:
        name = r["rmap"] + (f"+{r['policy']}" if r["policy"] else "")
        print(f"{name:28} {r['fault_ratio']:10.1f} {r['faults_per_second']:10.0f} "
              f"{r['first_write_ratio']:10.1f} {r['fork_per_page_ratio']:19.1f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"dict_insert_ns": unit * 1e9, "inlined_floor_ratio": floor / unit,
                       "rows": rows}, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
