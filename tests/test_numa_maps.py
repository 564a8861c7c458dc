"""/proc/PID/numa_maps (mmcore.numa_maps): the lines 6.18 prints for a private anonymous
mapping before and after fork and a COW in the child, and mapmax as each mapcount design
reads it (issue 11: total_mapped_pages "changes kpagecount, Pss and numa_maps mapmax").
The expected lines are the probed ones of docs/kernel-facts.md, "/proc/PID/numa_maps"
(tools/kernel_probe/numa_maps.c), the address column dropped.
"""

from __future__ import annotations

import pytest

from mmcore import MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PROT_READ, PROT_WRITE, Machine
from mmcore.constants import MADV_HUGEPAGE
from mmcore.process import Process
from mmcore.thp import ThpSettings

PAGE = 4096
RW = PROT_READ | PROT_WRITE
PA = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED
BASE = 0x7F0000000000  # 2 MiB aligned


def _line(p: Process) -> str:
    """The numa_maps line of the vma at BASE without its address."""
    text = next(e.text() for e in p.numa_maps() if e.start == BASE)
    return text.split(" ", 1)[1].rstrip("\n")


def _fork_and_cow(p: Process, first: int, n: int) -> list[str]:
    """The probe's steps: parent and child after fork, both after the child writes pages
    first..first+n-1, the parent after the child's exit."""
    child = p.fork()
    seen = [_line(child), _line(p)]
    for i in range(first, first + n):
        child.write(BASE + i * PAGE, b"c")
    seen += [_line(child), _line(p)]
    child.exit(0)
    p.waitpid(child.pid)
    return [*seen, _line(p)]


def _small(m: Machine) -> Process:
    """Case S: 16 small pages, 12 written, 4 read (zero page)."""
    p = m.spawn()
    p.mmap(BASE, 16 * PAGE, RW, PA)
    for i in range(12):
        p.write(BASE + i * PAGE, b"x")
    for i in range(12, 16):
        p.read(BASE + i * PAGE, 1)
    return p


def _thp(m: Machine) -> Process:
    """Cases T0/T1: a PMD THP faulted by a write to a MADV_HUGEPAGE vma."""
    p = m.spawn()
    p.mmap(BASE, 512 * PAGE, RW, PA)
    p.madvise(BASE, 512 * PAGE, MADV_HUGEPAGE)
    p.write(BASE, b"x")
    return p


def _mthp(mapcount: str) -> Process:
    """Case M: one 64 kB mTHP (hugepages-64kB always) faulted whole by one write."""
    p = Machine(thp=ThpSettings(per_order={4: "always"}), mapcount=mapcount).spawn()
    p.mmap(BASE, 16 * PAGE, RW, PA)
    p.write(BASE, b"x")
    return p


def _counts(pages: int) -> str:
    return f"anon={pages} dirty={pages}"


def _tail(pages: int) -> str:
    return f"active=0 N0={pages} kernelpagesize_kB=4"


def test_small_pages_count_the_normal_pages_and_mapmax_the_fork_sharing() -> None:
    """gather_stats() skips the zero page (can_gather_numa_stats()); mapmax= appears only
    above 1, while a page is mapped by both mms; active= while pages are inactive."""
    p = _small(Machine())
    alone = f"default {_counts(12)} {_tail(12)}"
    shared = f"default {_counts(12)} mapmax=2 {_tail(12)}"
    assert _line(p) == alone
    assert _fork_and_cow(p, 0, 1) == [shared, shared, shared, shared, alone]


@pytest.mark.parametrize(("cow", "parent_after"), [(0, ""), (1, " mapmax=2")])
def test_pmd_mapmax_is_the_head_pages_precise_mapcount(cow: int, parent_after: str) -> None:
    """For a PMD mapping gather_stats() runs once with pmd_page(): mapmax is the head
    page's folio_precise_page_mapcount(). After the child copies the head, the parent's
    PMD shows no mapmax although its other 511 pages are mapped twice (probed T0, T1)."""
    p = _thp(Machine())
    alone = f"default {_counts(512)} {_tail(512)}"
    shared = f"default {_counts(512)} mapmax=2 {_tail(512)}"
    parent = f"default {_counts(512)}{parent_after} {_tail(512)}"
    assert _line(p) == alone
    assert _fork_and_cow(p, cow, 1) == [shared, shared, shared, parent, alone]


def test_huge_zero_pmd_has_no_page_to_count() -> None:
    """vm_normal_page_pmd() is NULL for the huge zero folio: no counter at all (Z)."""
    m = Machine()
    p = m.spawn()
    p.mmap(BASE, 512 * PAGE, RW, PA)
    p.madvise(BASE, 512 * PAGE, MADV_HUGEPAGE)
    p.read(BASE, 1)
    assert _line(p) == "default"


def test_mthp_mapmax_is_per_page_with_per_page_mapcounts() -> None:
    """A pte-mapped 64 kB folio whose child copies 9 of 16 pages: the parent's 7 pages
    still shared keep mapmax=2 (probed M, CONFIG_PAGE_MAPCOUNT)."""
    shared = f"default {_counts(16)} mapmax=2 {_tail(16)}"
    assert _fork_and_cow(_mthp("per_page"), 0, 9)[3] == shared


@pytest.mark.parametrize(("design", "mapmax"), [
    ("per_page", " mapmax=2"), ("no_page_mapcount", ""), ("total_mapped_pages", ""),
    ("per_folio_tuple", " mapmax=2")])
def test_mapmax_is_what_the_design_reads_as_the_page_mapcount(design: str,
                                                              mapmax: str) -> None:
    """Without per-page mapcounts gather_stats() reads folio_average_page_mapcount():
    23 mappings over 16 pages round to 1, so mapmax= disappears although 7 pages are
    mapped twice; per_folio_tuple counts the child's page table as one more mapping of
    every page."""
    assert _fork_and_cow(_mthp(design), 0, 9)[3] == \
        f"default {_counts(16)}{mapmax} {_tail(16)}"


def test_the_average_sees_the_sharing_the_head_page_hides() -> None:
    """T0 under no_page_mapcount: the average of 512 + 511 mappings is 2, so the parent's
    PMD shows mapmax=2 where per-page mapcounts show none."""
    p = _thp(Machine(mapcount="no_page_mapcount"))
    assert _fork_and_cow(p, 0, 1)[3] == f"default {_counts(512)} mapmax=2 {_tail(512)}"


def test_file_heap_mapped_and_active_fields() -> None:
    """show_numa_map(): ``file=PATH`` or ``heap`` after the policy, ``mapped=`` when the
    pages differ from both anon and dirty, ``active=`` only while some page is not
    active or unevictable (mlocked); fault-around maps both file pages."""
    m = Machine()
    p = m.spawn()
    fd = p.open("/data", 0o102)  # O_RDWR | O_CREAT
    p.pwrite(fd, b"f" * 2 * PAGE, 0)
    p.fsync(fd)  # clean page cache: neither anon nor dirty, so mapped= shows
    addr = p.mmap(0, 2 * PAGE, PROT_READ, MAP_PRIVATE, fd)
    p.read(addr, 1)
    brk = p.brk(0)
    p.brk(brk + PAGE)
    p.write(brk, b"h")
    lines = {e.start: e.text() for e in p.numa_maps()}
    assert lines[addr] == f"{addr:08x} default file=/data mapped=2 {_tail(2)}\n"
    assert lines[brk] == f"{brk:08x} default heap {_counts(1)} {_tail(1)}\n"
    p.mlock(brk, PAGE)
    assert next(e for e in p.numa_maps() if e.start == brk).text() == \
        f"{brk:08x} default heap {_counts(1)} N0=1 kernelpagesize_kB=4\n"
