"""Fork and zap one PTE page at a time (copy_pte_range(), zap_pte_range() in Linux 6.18):
the scheme sees one folio-range call per run of a large folio's ptes and one per-page call
per order-0 page, in address order, under every rmap configuration."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mmcore import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, Machine
from mmcore.constants import MADV_DONTNEED
from mmcore.pagetable import PageTable, mk_pte
from mmcore.testing import check_invariants, check_no_leaks
from mmcore.thp import ThpSettings

P = 4096
RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS


def spy(m: Machine, calls: list[tuple[Any, ...]], name: str, folio_range: bool) -> None:
    """Record every call of the bound rmap callable ``m.<name>``: ``(name, first, nr,
    address)`` for a folio-range hook, ``(name, address)`` for a per-page one."""
    inner: Callable[..., Any] = getattr(m, name)

    def record(*args: Any) -> Any:
        calls.append((name, args[1], args[2], args[4]) if folio_range else (name, args[2]))
        return inner(*args)
    setattr(m, name, record)


def test_fork_and_zap_call_the_scheme_per_folio_run_in_address_order(
        config: tuple[str, str | None]) -> None:
    """copy_pte_range() and zap_pte_range() over one PTE page holding a 64 kB folio with
    a hole refilled by an order-0 page, then a second 64 kB folio: the runs on each side
    of the hole are one folio_try_dup_anon_rmap_ptes() / folio_remove_rmap_ptes() each,
    the order-0 page its per-page hook, in address order; counters stay exact."""
    rmap, policy = config
    m = Machine(rmap, mremap_policy=policy, thp=ThpSettings(per_order={4: "always"}))
    p = m.spawn()
    raw = p.mmap(0, 48 * P, RW, ANON)
    a = -(-raw // (16 * P)) * (16 * P)
    p.write(a, b"x")                   # folio F1, pages 0..15
    p.write(a + 16 * P, b"y")          # folio F2, pages 16..31
    p.madvise(a + 5 * P, P, MADV_DONTNEED)
    p.write(a + 5 * P, b"z")           # order 0: its 64 kB range still holds ptes
    calls: list[tuple[Any, ...]] = []
    spy(m, calls, "rmap_folio_dup_ptes", True)
    spy(m, calls, "rmap_page_dup", False)
    c = p.fork()
    assert calls == [("rmap_folio_dup_ptes", 0, 5, a), ("rmap_page_dup", a + 5 * P),
                     ("rmap_folio_dup_ptes", 6, 10, a + 6 * P),
                     ("rmap_folio_dup_ptes", 0, 16, a + 16 * P)]
    check_invariants(m)
    calls.clear()
    spy(m, calls, "rmap_folio_remove_ptes", True)
    spy(m, calls, "rmap_page_remove", False)
    c.munmap(raw, 48 * P)
    assert calls == [("rmap_folio_remove_ptes", 0, 5, a), ("rmap_page_remove", a + 5 * P),
                     ("rmap_folio_remove_ptes", 6, 10, a + 6 * P),
                     ("rmap_folio_remove_ptes", 0, 16, a + 16 * P)]
    assert c.mm.rss == 0 and c.mm.hiwater_rss == 32
    check_invariants(m)
    c.exit(0)
    p.exit(0)
    check_no_leaks(m)


def test_spans_name_each_populated_pte_page_and_the_range_part_of_it() -> None:
    """The PTE pages the batched walks visit: only populated ones, in address order, each
    with the indexes of its entries inside [start, end); write_span fills an empty span
    and counts only its non-none entries."""
    pt = PageTable()
    pt.set(0x1FF000, mk_pte(7, True))             # last pte of PTE page 0
    pt.set(0x600000, mk_pte(8, True))             # first pte of PTE page 3
    assert pt.spans(0x1FE000, 0x602000) == [(0, 510, 512), (3, 0, 2)]
    assert pt.spans(0x200000, 0x600000) == []
    child = PageTable()
    child.write_span(3, 0, pt.tables[3][0:2])
    assert list(child.range(0x600000, 0x602000)) == [(0x600000, mk_pte(8, True))]
    child.clear(0x600000)
    assert child.tables == {}
