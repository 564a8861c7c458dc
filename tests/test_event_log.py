"""The event_log observer turns machine events into structlog events."""

from __future__ import annotations

import structlog
from structlog.testing import capture_logs

from mmcore import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, Machine


def test_events_reach_structlog_with_their_fields() -> None:
    """A fault, a COW, a split and a walk each produce one log event naming the pid."""
    structlog.reset_defaults()  # an earlier test may have configured a level filter
    m = Machine(rmap="anon_vma_chain", observers=["event_log"])
    p = m.spawn()
    with capture_logs() as logs:
        a = p.mmap(0, 2 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        p.write(a, b"x")
        c = p.fork()
        c.write(a, b"y")
        p.mprotect(a + 4096, 4096, PROT_READ)
        m.rmap_walk(p.pagemap(a).pfn)
    kinds = [(e["event"], e.get("type")) for e in logs]
    assert ("fault", "anon") in kinds and ("fault", "cow_copy") in kinds
    assert ("split", None) in kinds and ("walk", None) in kinds
    cow = next(e for e in logs if e.get("type") == "cow_copy")
    assert cow["pid"] == c.pid and cow["rmap"] == "anon_vma_chain"


def test_event_addresses_are_rendered_in_hex() -> None:
    """Addresses (fault address, split and merge bounds) are hex strings, as in
    /proc/PID/maps; pfns stay numbers."""
    structlog.reset_defaults()
    m = Machine(rmap="anon_vma_chain", observers=["event_log"])
    p = m.spawn()
    with capture_logs() as logs:
        a = p.mmap(0, 2 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        p.write(a, b"x")
        p.mprotect(a + 4096, 4096, PROT_READ)
    fault = next(e for e in logs if e.get("type") == "anon")
    assert fault["address"] == f"{a:#x}" and isinstance(fault["pfn"], int)
    split = next(e for e in logs if e["event"] == "split")
    assert split["start"] == f"{a:#x}"


def test_without_observers_no_event_is_built() -> None:
    """Machine.observed is False unless an observer is registered (the hot path skips)."""
    assert not Machine(rmap="pte_chains").observed
    assert Machine(rmap="pte_chains", observers=["event_log"]).observed
