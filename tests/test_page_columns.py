"""The Page fields kept in the allocator's pfn-indexed columns (mmcore.page.FrameColumns)."""

from __future__ import annotations

from mmcore.page import FrameColumns, Page, PhysMem


def test_a_reused_frame_starts_with_the_default_fields() -> None:
    """A page allocated on a freed frame starts clean, as prep_new_page() leaves a
    reused struct page: index 0, no rmap, no folio, no swap slot."""
    mem = PhysMem(8)
    page = mem.alloc()
    page.index, page.rmap, page.swap_slot = 1 << 40, "chain", 7
    mem.free(page)
    again = mem.alloc()
    assert again.pfn == page.pfn
    assert (again.index, again.rmap, again.folio, again.swap_slot) == (0, None, None, -1)


def test_pages_of_one_machine_keep_their_own_fields() -> None:
    mem = PhysMem(8)
    a, b = mem.alloc(), mem.alloc()
    a.index, b.index = 3, 2**62
    a.rmap = "a's chain"
    b.swap_slot = 5
    assert (a.index, a.rmap, a.swap_slot) == (3, "a's chain", -1)
    assert (b.index, b.rmap, b.swap_slot) == (2**62, None, 5)
    b.swap_slot = -1
    assert b.swap_slot == -1 and not mem.cols.swap_slot


def test_an_unused_column_costs_nothing() -> None:
    """Setting a field to its default allocates no column entry: order-0 pages of a
    scheme that keeps no per-page rmap state leave the rmap and folio columns empty."""
    mem = PhysMem(8)
    page = mem.alloc()
    page.rmap = None
    page.folio = None
    assert mem.cols.rmap == [] and mem.cols.folio == []


def test_a_page_made_alone_has_private_columns() -> None:
    one, two = Page(3), Page(3)
    one.index = 9
    assert two.index == 0 and isinstance(one._cols, FrameColumns)
