"""populate_vma_page_range() read one PTE page at a time (__get_user_pages() in Linux
6.18): a page follow_page_pte() accepts is skipped, every other page takes its own
faultin_page() in address order, and a fault that maps ptes ahead spares them theirs."""

from __future__ import annotations

from typing import Any

import pytest

from mmcore import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, Machine
from mmcore import mmap as mmap_module
from mmcore.constants import MADV_PAGEOUT, MADV_POPULATE_READ, MADV_POPULATE_WRITE
from mmcore.fault import handle_pte_fault
from mmcore.testing import check_invariants
from mmcore.thp import ThpSettings

P = 4096
RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS


def record_faults(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, bool]]:
    """Every ``(addr, write)`` populate hands to handle_pte_fault(), in call order."""
    calls: list[tuple[int, bool]] = []

    def record(vma: Any, addr: int, write: bool, pte: int | None = None) -> int:
        calls.append((addr, write))
        return handle_pte_fault(vma, addr, write, pte)
    monkeypatch.setattr(mmap_module, "handle_pte_fault", record)
    return calls


def test_populate_faults_exactly_the_pages_that_need_it_in_address_order(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Over a range that starts inside one PTE page and ends inside a third: written
    pages (present, writable) are skipped by both kinds; read pages (the zero page,
    read-only) fault only under MADV_POPULATE_WRITE; swapped-out and untouched pages fault
    under both. One pgfault event per fault, and the faulted pages end up present."""
    m = Machine("anon_vma_chain")
    p = m.spawn()
    n = 1100
    a = p.mmap(0, n * P, RW, ANON)
    written = set(range(0, n, 3))
    read = set(range(1, n, 7)) - written
    for i in sorted(written):
        p.write(a + i * P, b"w")
    for i in sorted(read):
        p.read(a + i * P, 1)
    swapped = {i for i in range(5, n, 11) if i in written}
    for i in sorted(swapped):
        p.madvise(a + i * P, P, MADV_PAGEOUT)
    assert not p.pagemap(a + 5 * P).present
    start, end = a + 200 * P, a + 1050 * P
    first, last = 200, 1050
    calls = record_faults(monkeypatch)

    before = m.vm_events.pgfault
    p.madvise(start, end - start, MADV_POPULATE_READ)
    expected = [i for i in range(first, last)
                if i not in written - swapped and i not in read]
    assert calls == [(a + i * P, False) for i in expected]
    assert m.vm_events.pgfault - before == len(expected)

    calls.clear()
    p.madvise(start, end - start, MADV_POPULATE_WRITE)
    # the read populate mapped the zero page where nothing was: now all read-only
    expected = [i for i in range(first, last) if i not in written - swapped]
    assert calls == [(a + i * P, True) for i in expected]
    assert all(p.pagemap(a + i * P).present for i in range(first, last))
    check_invariants(m)


def test_a_fault_that_maps_a_large_folio_spares_the_rest_of_it_a_fault(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Each pte is read after the faults before it: a write fault that maps a 64 kB
    folio fills the ptes ahead of it, so populate takes one fault per folio mapped
    (an order-0 fallback is a folio of one), each at the folio's first page."""
    m = Machine("anon_vma_chain", thp=ThpSettings(per_order={4: "always"}))
    p = m.spawn()
    n = 512
    a = p.mmap(0, n * P, RW, ANON)
    calls = record_faults(monkeypatch)
    p.madvise(a, n * P, MADV_POPULATE_WRITE)
    pages = [m.physmem.pages[p.pagemap(a + i * P).pfn] for i in range(n)]
    firsts = [a + i * P for i, page in enumerate(pages)
              if page is not None and (page.folio is None or page.folio.page_index(page) == 0)]
    assert len(calls) < n // 2
    assert calls == [(addr, True) for addr in firsts]
