"""Reclaim without swap space (issue 10 item 2): anonymous pages that cannot get a swap
slot stay mapped with their content (shrink_folio_list() keeps a folio add_to_swap()
could not place); failing to reclaim is never an error. ``swap_pages=0`` is a machine
with no swap device at all."""

from __future__ import annotations

import os

import pytest

from mmcore import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, Machine
from mmcore.constants import MADV_PAGEOUT
from mmcore.errors import ProcessKilled

RW = PROT_READ | PROT_WRITE
PAGE = 4096


@pytest.mark.parametrize("swap_pages", [0, 1])
def test_madv_pageout_without_a_free_swap_slot_keeps_anon_pages(swap_pages: int) -> None:
    """MADV_PAGEOUT with no swap (swap_pages=0) or full swap leaves every anonymous page
    mapped with its data, returns 0, and the machine stays usable."""
    m = Machine(ram_pages=64, swap_pages=swap_pages)
    p = m.spawn()
    a = p.mmap(0, 4 * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    for i in range(4):
        p.write(a + i * PAGE, b"page%d" % i)
    p.madvise(a, 4 * PAGE, MADV_PAGEOUT)
    assert m.broken is None
    assert m.swap.nr_used == swap_pages  # the one slot, if any, was used by page 0
    kept = [i for i in range(4) if p.pagemap(a + i * PAGE).present]
    assert kept == list(range(swap_pages, 4))
    assert [p.read(a + i * PAGE, 5) for i in range(4)] == [b"page%d" % i for i in range(4)]


def test_try_to_unmap_without_swap_fails_with_nothing_changed() -> None:
    """try_to_unmap() of an anonymous page with no swap slot reports failure ("no swap
    space"), unmaps nothing and leaves the mapcount and pte as they were."""
    m = Machine(ram_pages=64, swap_pages=0)
    p = m.spawn()
    a = p.mmap(0, PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    p.write(a, b"x")
    c = p.fork()
    pfn = p.pagemap(a).pfn
    result = m.try_to_unmap(pfn)
    assert (result.success, result.unmapped, result.reason) == (False, [], "no swap space")
    assert m.kpagecount(pfn) == 2
    assert m.rmap_truth(pfn) == sorted([(p.pid, a), (c.pid, a)])


def test_no_swap_reclaim_still_drops_clean_file_pages() -> None:
    """With no swap, reclaim still frees clean page-cache pages: reading a file four
    times the size of RAM through a mapping succeeds with no OOM kill."""
    m = Machine(ram_pages=32, swap_pages=0)
    m.create_file("/big", b"f" * (128 * PAGE))
    p = m.spawn()
    fd = p.open("/big", os.O_RDONLY)
    a = p.mmap(0, 128 * PAGE, PROT_READ, MAP_PRIVATE, fd, 0)
    assert all(p.read(a + i * PAGE, 1) == b"f" for i in range(128))
    assert m.counters.oom_kills == 0


def test_no_swap_anon_overcommit_ends_in_an_oom_kill_not_a_broken_machine() -> None:
    """Anonymous memory beyond RAM on a machine without swap reaches the OOM killer; the
    machine is not marked broken."""
    m = Machine(ram_pages=32, swap_pages=0)
    p = m.spawn()
    a = p.mmap(0, 64 * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    with pytest.raises(ProcessKilled):
        for i in range(64):
            p.write(a + i * PAGE, b"x")
    assert m.counters.oom_kills == 1 and m.broken is None
