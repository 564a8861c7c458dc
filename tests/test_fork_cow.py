"""Who gets the copy after fork, and when a page becomes exclusive again.

Pinned to the real kernel's behaviour (docs/kernel-facts.md, section 10, measured with
/proc/self/pagemap and /proc/kpagecount): after fork parent and child map the same frame,
neither exclusively (bit 56 clear), kpagecount 2; the first writer (here the parent) gets
a new frame; the other process's pte now maps the old frame alone (count 1, exclusive) and
its own write reuses that frame without copying. Checked for every configuration.
"""

from __future__ import annotations

import pytest

from mmcore import (
    MAP_ANONYMOUS,
    MAP_PRIVATE,
    MAP_SHARED,
    PROT_READ,
    PROT_WRITE,
    Machine,
    valid_configurations,
)
from mmcore.testing import check_invariants

CONFIGS = valid_configurations()
IDS = [r + (f"+{p}" if p else "") for r, p in CONFIGS]
RW = PROT_READ | PROT_WRITE
PAGE = 4096


@pytest.fixture(params=CONFIGS, ids=IDS)
def machine(request: pytest.FixtureRequest) -> Machine:
    rmap, policy = request.param
    return Machine(rmap=rmap, mremap_policy=policy, ram_pages=1024, swap_pages=1024)


def test_written_private_page_is_exclusive(machine: Machine) -> None:
    p = machine.spawn()
    a = p.mmap(0, PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    p.write(a, b"x")
    e = p.pagemap(a)
    assert e.present and e.exclusive and not e.file_or_shared
    assert machine.kpagecount(e.pfn) == 1


def test_fork_shares_the_frame_and_clears_exclusive(machine: Machine) -> None:
    p = machine.spawn()
    a = p.mmap(0, PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    p.write(a, b"x")
    c = p.fork()
    pe, ce = p.pagemap(a), c.pagemap(a)
    assert pe.pfn == ce.pfn
    assert not pe.exclusive and not ce.exclusive
    assert machine.kpagecount(pe.pfn) == 2
    assert machine.rmap_walk(pe.pfn).mappings == sorted([(p.pid, a), (c.pid, a)])


def test_zero_page_after_fork_is_not_counted(machine: Machine) -> None:
    p = machine.spawn()
    a = p.mmap(0, PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    assert p.read(a, 1) == b"\0"
    c = p.fork()
    pe, ce = p.pagemap(a), c.pagemap(a)
    assert pe.pfn == ce.pfn == machine.physmem.ZERO_PFN
    assert not pe.exclusive and not ce.exclusive
    assert machine.kpagecount(pe.pfn) == 0


def test_first_writer_copies_the_other_reuses(machine: Machine) -> None:
    p = machine.spawn()
    a = p.mmap(0, PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    p.write(a, b"parent")
    c = p.fork()
    old = p.pagemap(a).pfn
    before = machine.costs().counters

    # The parent writes first: it gets a new frame, exclusive.
    p.write(a, b"P")
    pe = p.pagemap(a)
    assert pe.pfn != old and pe.exclusive
    assert machine.kpagecount(pe.pfn) == 1
    # The child's pte still maps the old frame, now alone: count 1, exclusive.
    ce = c.pagemap(a)
    assert ce.pfn == old and ce.exclusive
    assert machine.kpagecount(old) == 1
    mid = machine.costs().counters
    assert mid.fault_cow_copy == before.fault_cow_copy + 1
    assert mid.fault_cow_reuse == before.fault_cow_reuse

    # The child writes: the same frame is reused, no copy.
    c.write(a, b"C")
    ce = c.pagemap(a)
    assert ce.pfn == old and ce.exclusive
    after = machine.costs().counters
    assert after.fault_cow_copy == mid.fault_cow_copy
    assert after.fault_cow_reuse == mid.fault_cow_reuse + 1
    assert p.read(a, 6) == b"Parent"
    assert c.read(a, 6) == b"Carent"
    check_invariants(machine, {(p.pid, a): b"Parent", (c.pid, a): b"Carent"})

    # The old frame goes with the child.
    c.exit()
    p.waitpid(c.pid)
    assert machine.kpagecount(old) == 0
    check_invariants(machine, {(p.pid, a): b"Parent"})


def test_child_writes_first(machine: Machine) -> None:
    """The mirror case: whoever writes first copies, the other reuses."""
    p = machine.spawn()
    a = p.mmap(0, PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    p.write(a, b"orig")
    c = p.fork()
    old = p.pagemap(a).pfn
    c.write(a, b"kid!")
    assert c.pagemap(a).pfn != old and c.pagemap(a).exclusive
    assert p.pagemap(a).pfn == old and p.pagemap(a).exclusive
    reuse = machine.costs().counters.fault_cow_reuse
    p.write(a, b"mom!")
    assert p.pagemap(a).pfn == old
    assert machine.costs().counters.fault_cow_reuse == reuse + 1
    check_invariants(machine, {(p.pid, a): b"mom!", (c.pid, a): b"kid!"})


def test_two_children_share_until_each_writes(machine: Machine) -> None:
    """Three mappers: the count drops one per copy; the last one left reuses."""
    p = machine.spawn()
    a = p.mmap(0, PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    p.write(a, b"0")
    c1, c2 = p.fork(), p.fork()
    old = p.pagemap(a).pfn
    assert machine.kpagecount(old) == 3
    c1.write(a, b"1")
    assert machine.kpagecount(old) == 2 and not p.pagemap(a).exclusive
    p.write(a, b"P")
    assert p.pagemap(a).pfn != old
    assert machine.kpagecount(old) == 1 and c2.pagemap(a).exclusive
    c2.write(a, b"2")
    assert c2.pagemap(a).pfn == old
    check_invariants(machine, {(p.pid, a): b"P", (c1.pid, a): b"1", (c2.pid, a): b"2"})


def test_shared_anon_is_one_page_cache_page(machine: Machine) -> None:
    """MAP_SHARED anonymous: a real shmem page (not the zero page) even when only read,
    shown as file/shared (bit 61) and exclusive (bit 56); fork does not copy its ptes."""
    p = machine.spawn()
    a = p.mmap(0, 2 * PAGE, RW, MAP_SHARED | MAP_ANONYMOUS)
    p.write(a, b"s")
    assert p.read(a + PAGE, 1) == b"\0"
    written, read_only = p.pagemap(a), p.pagemap(a + PAGE)
    for e in (written, read_only):
        assert e.present and e.file_or_shared and e.exclusive
        assert e.pfn != machine.physmem.ZERO_PFN
        assert machine.kpagecount(e.pfn) == 1
    c = p.fork()
    assert p.pagemap(a).exclusive and machine.kpagecount(written.pfn) == 1
    assert not c.pagemap(a).present  # the child faults it in lazily
    assert c.read(a, 1) == b"s"
    assert c.pagemap(a).pfn == written.pfn and machine.kpagecount(written.pfn) == 2
    check_invariants(machine, {(p.pid, a): b"s", (c.pid, a): b"s"})
