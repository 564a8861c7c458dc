"""Process.touch_range (issue 12 item 3): one call touches every page of a range with the
same faults, in the same order, as a write or read per page."""

from __future__ import annotations

import errno

import pytest
import structlog
from structlog.testing import capture_logs

from mmcore import (
    MAP_ANONYMOUS,
    MAP_PRIVATE,
    PROT_READ,
    PROT_WRITE,
    Machine,
    Process,
    SegmentationFault,
    valid_configurations,
)
from mmcore.constants import PAGE_SIZE

PAGES = 12
RW = PROT_READ | PROT_WRITE


def _forked(rmap: str, policy: str | None) -> tuple[Machine, Process, Process, int]:
    """A parent with PAGES written pages and a forked child: the child's writes COW."""
    m = Machine(rmap=rmap, mremap_policy=policy, observers=["event_log"])
    p = m.spawn()
    a = p.mmap(0, PAGES * PAGE_SIZE, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    p.touch_range(a, PAGES * PAGE_SIZE // 2, b"p")
    return m, p, p.fork(), a


def _state(m: Machine, procs: list[Process], a: int) -> tuple[object, ...]:
    """What a run leaves behind that a user can see: contents, ptes, costs."""
    return (tuple(q.read(a + i * PAGE_SIZE, 2) for q in procs for i in range(PAGES)),
            tuple(q.pagemap(a + i * PAGE_SIZE) for q in procs for i in range(PAGES)),
            m.costs().to_json())


@pytest.mark.parametrize(("rmap", "policy"), valid_configurations())
def test_touch_range_faults_as_a_write_per_page_does(rmap: str, policy: str | None) -> None:
    """Demand-zero faults on the parent's untouched half and COW faults in the child:
    the same events in the same order, and the same pages, ptes and costs, as a loop
    of Process.write over the pages."""
    structlog.reset_defaults()
    m1, p1, c1, a = _forked(rmap, policy)
    m2, p2, c2, _ = _forked(rmap, policy)
    with capture_logs() as by_range:
        c1.touch_range(a, PAGES * PAGE_SIZE, b"cc")
        p1.touch_range(a, PAGES * PAGE_SIZE, b"pp")
    with capture_logs() as by_page:
        for proc in (c2, p2):
            for i in range(PAGES):
                proc.write(a + i * PAGE_SIZE, b"cc" if proc is c2 else b"pp")
    assert by_range == by_page
    assert any(e.get("type") == "cow_copy" for e in by_range)
    assert _state(m1, [p1, c1], a) == _state(m2, [p2, c2], a)


def test_touch_range_without_data_reads_each_page() -> None:
    """A read touch maps the zero page on untouched pages and leaves contents alone."""
    m = Machine(rmap="anon_vma_chain")
    p = m.spawn()
    a = p.mmap(0, 4 * PAGE_SIZE, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    p.write(a, b"x")
    p.touch_range(a, 4 * PAGE_SIZE)
    assert [p.pagemap(a + i * PAGE_SIZE).present for i in range(4)] == [True] * 4
    zero = m.physmem.ZERO_PFN
    assert [p.pagemap(a + i * PAGE_SIZE).pfn == zero for i in range(4)] == [False] + [True] * 3
    assert p.read(a, 1) == b"x"


def test_touch_range_stops_at_the_first_fault_with_the_pages_before_it_touched() -> None:
    """Past the vma's end the touch raises SIGSEGV at that address; the pages before it
    were written, as a loop of writes leaves them."""
    m = Machine(rmap="anon_vma")
    p = m.spawn()
    a = p.mmap(0, 2 * PAGE_SIZE, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    p.munmap(a + 2 * PAGE_SIZE, PAGE_SIZE)  # nothing there: the fault address is a + 2P
    with pytest.raises(SegmentationFault) as info:
        p.touch_range(a, 3 * PAGE_SIZE, b"z")
    assert info.value.address == a + 2 * PAGE_SIZE
    assert p.read(a, 1) == p.read(a + PAGE_SIZE, 1) == b"z"


def test_touch_range_checks_its_arguments_before_touching_anything() -> None:
    """A wrong type is a TypeError naming the argument, an exited process ESRCH, and
    nothing is mapped by a refused call."""
    m = Machine(rmap="anon_vma_chain")
    p = m.spawn()
    a = p.mmap(0, PAGE_SIZE, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    with pytest.raises(TypeError, match="length"):
        p.touch_range(a, 1.5, b"x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="data"):
        p.touch_range(a, PAGE_SIZE, "x")  # type: ignore[arg-type]
    assert not p.pagemap(a).present and m.broken is None
    p.exit(0)
    with pytest.raises(OSError) as info:
        p.touch_range(a, PAGE_SIZE, b"x")
    assert info.value.errno == errno.ESRCH
