"""What the benchmarks time: simulated operations per page, and the dict-insert unit.

``benchmarks/bench.py`` and ``mmsim bench`` (:mod:`mmcore.bench_cli`) both measure with
these functions. Each returns seconds per page (or per insert) of one timed run on a fresh
machine; :func:`best_of` takes the smallest of several runs, the figure least disturbed by
other work on the machine. Nothing here asserts a speed: speed targets live in the
benchmark reports, never in tests.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable

from .constants import (
    MAP_ANONYMOUS,
    MAP_PRIVATE,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PAGE_SIZE,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
)
from .fault import handle_mm_fault
from .machine import Machine
from .process import Process

__all__ = ["best_of", "dict_insert", "inlined_floor", "process_with_region", "write_pages",
           "touched_region", "demand_zero_fault", "first_write", "cow_write", "fork_cost",
           "munmap_cost", "mremap_cost", "heap_per_page", "OPERATIONS"]


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
    from .page import Page
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
    return p, p.mmap(0, n * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)


def write_pages(p: Process, addr: int, n: int) -> None:
    """Write one byte to each of ``n`` pages from ``addr`` (each takes its first fault)."""
    write = p.write
    for i in range(n):
        write(addr + i * PAGE_SIZE, b"x")


def touched_region(rmap: str, policy: str | None, n: int) -> tuple[Process, int]:
    """:func:`process_with_region` with every page of the region written once."""
    p, a = process_with_region(rmap, policy, n)
    write_pages(p, a, n)
    return p, a


def demand_zero_fault(rmap: str, policy: str | None, n: int) -> float:
    """Seconds per demand-zero write fault: handle_mm_fault() on an untouched page."""
    p, a = process_with_region(rmap, policy, n)
    mm = p.mm
    t = time.perf_counter()
    for i in range(n):
        handle_mm_fault(mm, a + i * PAGE_SIZE, True)
    return (time.perf_counter() - t) / n


def first_write(rmap: str, policy: str | None, n: int) -> float:
    """Seconds per ``Process.write`` of one byte to an untouched page (fault included)."""
    p, a = process_with_region(rmap, policy, n)
    t = time.perf_counter()
    write_pages(p, a, n)
    return (time.perf_counter() - t) / n


def cow_write(rmap: str, policy: str | None, n: int) -> float:
    """Seconds per ``Process.write`` of one byte, in a forked child, to a page the parent
    wrote before the fork (a copy-on-write fault: wp_page_copy)."""
    p, a = touched_region(rmap, policy, n)
    write = p.fork().write
    t = time.perf_counter()
    for i in range(n):
        write(a + i * PAGE_SIZE, b"y")
    return (time.perf_counter() - t) / n


def fork_cost(rmap: str, policy: str | None, pages: int) -> float:
    """Seconds per fork of a process with ``pages`` faulted anonymous pages, per page."""
    p, _ = touched_region(rmap, policy, pages)
    t = time.perf_counter()
    c = p.fork()
    elapsed = time.perf_counter() - t
    c.exit(0)
    return elapsed / pages


def munmap_cost(rmap: str, policy: str | None, n: int) -> float:
    """Seconds per page of ``munmap`` of ``n`` written anonymous pages."""
    p, a = touched_region(rmap, policy, n)
    t = time.perf_counter()
    p.munmap(a, n * PAGE_SIZE)
    return (time.perf_counter() - t) / n


def mremap_cost(rmap: str, policy: str | None, n: int) -> float:
    """Seconds per page of ``mremap(MREMAP_MAYMOVE | MREMAP_FIXED)`` of ``n`` written
    anonymous pages onto a reserved (PROT_NONE) range of the same size."""
    p, a = touched_region(rmap, policy, n)
    length = n * PAGE_SIZE
    dst = p.mmap(0, length, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS)
    t = time.perf_counter()
    p.mremap(a, length, length, MREMAP_MAYMOVE | MREMAP_FIXED, dst)
    return (time.perf_counter() - t) / n


def heap_per_page(rmap: str, policy: str | None, n: int) -> tuple[float, float]:
    """Python heap bytes (tracemalloc) per written page of a fresh process's region, and
    the extra bytes per page that one fork of it adds (the machine itself, built before
    the count starts, is not included)."""
    tracemalloc.start()
    try:
        p, a = process_with_region(rmap, policy, n)
        base = tracemalloc.get_traced_memory()[0]
        write_pages(p, a, n)
        touched = tracemalloc.get_traced_memory()[0]
        child = p.fork()
        forked = tracemalloc.get_traced_memory()[0]
        del child
    finally:
        tracemalloc.stop()
    return (touched - base) / n, (forked - touched) / n


#: The per-page operations the kernel probe also times, by the name both sides use.
OPERATIONS: dict[str, Callable[[str, str | None, int], float]] = {
    "first_write": first_write,
    "cow_write": cow_write,
    "fork": fork_cost,
    "munmap": munmap_cost,
    "mremap": mremap_cost,
}
