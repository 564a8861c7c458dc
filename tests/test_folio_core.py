"""The large-folio state of the core: aligned block allocation, freeing a folio whole,
and the per-page fallback of the folio-range rmap hooks."""

from __future__ import annotations

import pytest

from mmcore import Machine
from mmcore.freepool import FreePool
from mmcore.thp import ThpSettings


def test_block_is_naturally_aligned_and_skipped_frames_stay_free() -> None:
    pool = FreePool(1, 64)
    assert pool.pop() == 1
    assert pool.pop_block(16) == 16  # 2..15 skipped to reach the alignment
    assert pool.nr == 63 - 1 - 16
    assert [pool.pop() for _ in range(3)] == [2, 3, 4]  # lowest skipped frame first


def test_block_given_back_whole_is_reused_and_broken_when_only_blocks_remain() -> None:
    pool = FreePool(0, 32)
    a, b = pool.pop_block(16), pool.pop_block(16)
    assert (a, b, pool.pop_block(16), pool.nr) == (0, 16, None, 0)
    pool.append_block(16, 16)
    assert pool.pop_block(16) == 16
    pool.append_block(0, 16)
    assert [pool.pop() for _ in range(16)] == list(range(16))  # the block is broken up
    with pytest.raises(IndexError):
        pool.pop()


def test_folio_is_freed_when_its_last_page_loses_its_last_reference() -> None:
    m = Machine(ram_pages=256)
    folio = m.physmem.alloc_folio(4)
    assert folio is not None and folio.pfn % 16 == 0
    free_before = m.physmem.nr_free
    for page in folio.pages:
        page.refcount = 1
    for page in folio.pages[:-1]:
        m.put_page(page)
        assert m.physmem.page(page.pfn) is page  # still allocated inside the folio
    m.put_page(folio.pages[-1])
    assert m.physmem.nr_free == free_before + 16
    assert all(m.physmem.page(p.pfn) is None for p in folio.pages)


def test_a_scheme_without_folio_hooks_gets_the_per_page_hook_per_page() -> None:
    m = Machine(rmap="pte_chains")  # implements only the per-page rmap hooks
    calls: list[tuple[int, int]] = []
    loop = m._folio_rmap_hook("rmap_folio_dup_ptes",
                              lambda page, vma, addr: calls.append((page.pfn, addr)))
    folio = m.physmem.alloc_folio(2)
    assert folio is not None
    loop(folio, 1, 2, None, 0x10000)
    assert calls == [(folio.pfn + 1, 0x10000), (folio.pfn + 2, 0x11000)]


def test_a_scheme_with_folio_hooks_gets_them_bound_directly() -> None:
    m = Machine(rmap="anon_vma_chain")
    loop = m._folio_rmap_hook("rmap_folio_dup_ptes", lambda *a: None)
    assert getattr(loop, "__name__", "") != "per_page_loop"


def test_thp_defaults_are_the_reference_machine() -> None:
    thp = ThpSettings()
    assert thp.allowed_orders(hugepage=False) == []
    assert thp.allowed_orders(hugepage=True) == [9]
    assert ThpSettings(per_order={4: "always"}).allowed_orders(False) == [4]
    with pytest.raises(ValueError, match="hugepages-64kB"):
        ThpSettings(per_order={4: "sometimes"})
