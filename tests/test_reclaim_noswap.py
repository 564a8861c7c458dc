"""Reclaim and MADV_PAGEOUT without swap space (issue 10 item 2): anonymous pages that
cannot get a swap slot stay mapped with their content (shrink_folio_list() keeps a folio
add_to_swap() could not place); failing to reclaim is never an error. ``swap_pages=0``
is a machine with no swap device at all. MADV_PAGEOUT of file and shmem pages follows
what a 6.18 kernel without swap did (docs/kernel-facts.md section 12)."""

from __future__ import annotations

import errno
import os

import pytest

from mmcore import (
    MAP_ANONYMOUS,
    MAP_PRIVATE,
    MAP_SHARED,
    PROT_READ,
    PROT_WRITE,
    Machine,
    Process,
)
from mmcore.constants import MADV_COLD, MADV_PAGEOUT
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
    machine (overcommitting, as mode 0 refuses the 64-page mapping) is not marked
    broken."""
    m = Machine(ram_pages=32, swap_pages=0, overcommit_memory=1)
    p = m.spawn()
    a = p.mmap(0, 64 * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    with pytest.raises(ProcessKilled):
        for i in range(64):
            p.write(a + i * PAGE, b"x")
    assert m.counters.oom_kills == 1 and m.broken is None


def file_machine(swap_pages: int) -> tuple[Machine, Process, int]:
    """A machine, a process and an O_RDWR descriptor of a two-page file "/f"."""
    m = Machine(ram_pages=64, swap_pages=swap_pages)
    m.create_file("/f", b"f" * 2 * PAGE)
    p = m.spawn()
    return m, p, p.open("/f", os.O_RDWR)


def test_madv_pageout_drops_a_clean_file_page_mapped_once() -> None:
    """MADV_PAGEOUT of a clean private file page only this mapping maps unmaps it and
    drops it from the page cache, with or without swap; the next read refaults it."""
    m, p, fd = file_machine(0)
    a = p.mmap(0, 2 * PAGE, PROT_READ, MAP_PRIVATE, fd, 0)
    p.read(a, 1)
    p.madvise(a, 2 * PAGE, MADV_PAGEOUT)
    assert not p.pagemap(a).present and not m.files["/f"].pages
    assert p.read(a, 2) == b"ff"


def test_madv_pageout_leaves_a_dirty_file_page_and_a_shared_one_mapped() -> None:
    """A dirty shared file page stays mapped (only kswapd writes file pages back), and
    so does a clean file page another process maps too (folio_mapcount() != 1)."""
    _, p, fd = file_machine(0)
    d = p.mmap(0, PAGE, RW, MAP_SHARED, fd, 0)
    p.write(d, b"D")
    c = p.mmap(0, PAGE, PROT_READ, MAP_SHARED, fd, PAGE)
    p.read(c, 1)
    p.fork().read(c, 1)  # fork copies no shared-file pte: the child faults its own
    p.madvise(d, PAGE, MADV_PAGEOUT)
    p.madvise(c, PAGE, MADV_PAGEOUT)
    assert p.pagemap(d).present and p.pagemap(c).present
    assert p.read(d, 1) == b"D"


@pytest.mark.parametrize("swap_pages", [0, 8])
def test_madv_pageout_of_shmem_unmaps_it_and_swaps_it_only_with_a_free_slot(
        swap_pages: int) -> None:
    """A MAP_SHARED anonymous (shmem) page is unmapped by MADV_PAGEOUT; with a free swap
    slot it moves to swap, without one it stays in the page cache. Its content is kept."""
    m = Machine(ram_pages=64, swap_pages=swap_pages)
    p = m.spawn()
    s = p.mmap(0, PAGE, RW, MAP_SHARED | MAP_ANONYMOUS)
    p.write(s, b"shm")
    inode = m.physmem.page(p.pagemap(s).pfn).mapping  # type: ignore[union-attr]
    p.madvise(s, PAGE, MADV_PAGEOUT)
    assert not p.pagemap(s).present
    assert (len(inode.pages), m.swap.nr_used) == ((0, 1) if swap_pages else (1, 0))  # type: ignore[union-attr]
    assert p.read(s, 3) == b"shm" and m.broken is None


@pytest.mark.parametrize("advice", [MADV_PAGEOUT, MADV_COLD])
def test_madv_cold_and_pageout_on_an_mlocked_vma_are_einval(advice: int) -> None:
    """can_madv_lru_vma(): MADV_COLD and MADV_PAGEOUT refuse a VM_LOCKED vma with
    EINVAL (probed on 6.18), leaving the page mapped."""
    m = Machine(ram_pages=64)
    p = m.spawn()
    a = p.mmap(0, PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    p.write(a, b"x")
    p.mlock(a, PAGE)
    with pytest.raises(OSError) as info:
        p.madvise(a, PAGE, advice)
    assert info.value.errno == errno.EINVAL and p.pagemap(a).present
