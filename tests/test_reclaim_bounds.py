"""Reclaim that cannot succeed is bounded (issue 14 item 5): with swap full, swap-backed
pages are not scanned (get_scan_count()'s SCAN_FILE), kswapd gives up after
MAX_RECLAIM_RETRIES runs that freed nothing (pgdat->kswapd_failures), and the first
direct reclaim that frees nothing goes to the OOM killer. The machines overcommit
(vm.overcommit_memory=1): mode 0 refuses one mapping larger than RAM + swap. Timings are in
``benchmarks/bench_reclaim.py``, not here."""

from __future__ import annotations

import pytest

from mmcore import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, Machine, Process
from mmcore.errors import ProcessKilled
from mmcore.reclaim import MAX_RECLAIM_RETRIES

RW = PROT_READ | PROT_WRITE
PAGE = 4096
RAM = 2048  # watermarks (16, 21, 26): more allocations below low than MAX_RECLAIM_RETRIES


def fill(p: Process, pages: int) -> dict[str, int]:
    """Write ``pages`` fresh anonymous pages in ``p`` until the OOM killer ends it;
    return the counters seen when the swap device became full."""
    m = p.machine
    a = p.mmap(0, pages * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    at_full: dict[str, int] = {}
    with pytest.raises(ProcessKilled):
        for i in range(pages):
            p.write(a + i * PAGE, b"x")
            if not at_full and not m.swap.nr_free:
                at_full = {"kswapd_runs": m.counters.kswapd_runs,
                           "walks": m.counters.reclaim_referenced_walks,
                           "direct": m.counters.direct_reclaims}
    return at_full


@pytest.mark.parametrize("reclaim", ["lru2", "clock"])
def test_overcommit_with_full_swap_ends_in_an_oom_kill_after_max_reclaim_retries(
        reclaim: str) -> None:
    """A process writing 4x RAM with swap the size of RAM: once swap is full, kswapd
    runs exactly MAX_RECLAIM_RETRIES more times, each freeing nothing, and is then left
    asleep; one direct reclaim fails and the OOM killer ends the process. No anonymous
    page is walked for references once it can no longer be swapped."""
    m = Machine(ram_pages=RAM, swap_pages=RAM, reclaim=reclaim, overcommit_memory=1)
    at_full = fill(m.spawn(), 4 * RAM)
    c = m.counters
    assert c.kswapd_runs - at_full["kswapd_runs"] == MAX_RECLAIM_RETRIES
    assert m.kswapd_failures == MAX_RECLAIM_RETRIES
    assert c.direct_reclaims - at_full["direct"] == 1
    assert c.oom_kills == 1 and m.broken is None
    assert c.reclaim_referenced_walks == at_full["walks"]


def test_reclaim_progress_revives_a_hopeless_kswapd() -> None:
    """A hopeless kswapd is not woken below the low watermark; the next direct reclaim
    that frees pages resets kswapd_failures, and kswapd runs again."""
    m = Machine(ram_pages=RAM, swap_pages=RAM, overcommit_memory=1)
    fill(m.spawn(), 4 * RAM)
    assert m.kswapd_failures == MAX_RECLAIM_RETRIES
    p = m.spawn()
    a = p.mmap(0, 2 * RAM * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    runs = m.counters.kswapd_runs
    direct = m.counters.direct_reclaims
    i = 0
    while m.counters.direct_reclaims == direct:
        p.write(a + i * PAGE, b"y")
        i += 1
        if m.counters.direct_reclaims == direct:
            assert m.counters.kswapd_runs == runs  # asleep while hopeless
    assert m.kswapd_failures == 0
    for j in range(i, i + 64):
        p.write(a + j * PAGE, b"y")
    assert m.counters.kswapd_runs > runs


@pytest.mark.parametrize("reclaim", ["lru2", "clock"])
def test_mlocked_memory_is_walked_at_most_twice_per_shrink_and_not_oom_killed(
        reclaim: str) -> None:
    """With most of RAM mlocked, another process writing RAM's worth of pages swaps
    instead of OOM-killing anyone, and each shrink walks a locked page at most twice:
    lru2 sets locked pages aside for the rest of the shrink (they were re-aged once per
    32-page batch, up to 64 walks each)."""
    ram = 512
    m = Machine(ram_pages=ram, swap_pages=ram, reclaim=reclaim, overcommit_memory=1)
    locker = m.spawn()
    n = ram - ram // 16
    a = locker.mmap(0, n * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    locker.mlock(a, n * PAGE)
    q = m.spawn()
    b = q.mmap(0, ram * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    for i in range(ram):
        q.write(b + i * PAGE, b"q")
    c = m.counters
    assert c.oom_kills == 0 and locker.alive and c.pswpout > 0
    shrinks = c.kswapd_runs + c.direct_reclaims
    assert c.reclaim_referenced_walks <= shrinks * 2 * ram
