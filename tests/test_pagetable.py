"""PageTable: 512-entry PTE pages kept per ``vpn >> 9``, as the kernel's PTE level."""

from __future__ import annotations

from mmcore.pagetable import PTRS_PER_TABLE, PageTable, mk_pte

PAGE = 4096
PMD = PAGE * PTRS_PER_TABLE


def test_a_pte_page_is_allocated_on_first_set_and_freed_when_empty() -> None:
    """__pte_alloc() on the first pte of a 2 MiB range; free_pte_range() once the last
    pte is cleared: VmPTE follows the populated PTE pages."""
    pt = PageTable()
    assert pt.nr_table_pages == 1  # the pgd alone
    pt.set(5 * PAGE, mk_pte(7, True))
    pt.set(6 * PAGE, mk_pte(8, True))
    assert pt.nr_table_pages == 4 and len(pt.tables) == 1 and len(pt) == 2
    assert not pt.pmd_none(0) and pt.pmd_none(PMD)
    assert pt.clear(5 * PAGE) == mk_pte(7, True)
    assert pt.nr_table_pages == 4
    assert pt.clear(6 * PAGE) == mk_pte(8, True)
    assert pt.nr_table_pages == 1 and pt.pmd_none(0) and len(pt) == 0
    assert pt.clear(6 * PAGE) == 0


def test_entry_reads_without_a_walk_and_lookup_counts_one() -> None:
    pt = PageTable()
    pt.set(3 * PAGE, mk_pte(9, False))
    assert pt.entry(3) == mk_pte(9, False) and pt.entry(4) == 0 and pt.entry(1 << 30) == 0
    assert pt.walks == 0
    assert pt.lookup(3 * PAGE) == mk_pte(9, False) and pt.walks == 1


def test_update_rewrites_in_place_without_counting_a_new_entry() -> None:
    pt = PageTable()
    pt.set(PAGE, mk_pte(2, True, accessed=False))
    pt.update(1, mk_pte(2, True))
    assert pt.entry(1) == mk_pte(2, True) and len(pt) == 1


def test_items_are_in_address_order_whatever_the_insertion_order() -> None:
    """The old flat dict iterated in insertion order; every reader sorted or was
    order-free, and items() gives address order directly."""
    pt = PageTable()
    vpns = [3 * PTRS_PER_TABLE + 1, 7, 2 * PTRS_PER_TABLE, 6, 511, 512]
    for i, vpn in enumerate(vpns):
        pt.set(vpn * PAGE, mk_pte(100 + i, True))
    assert [v for v, _ in pt.items()] == sorted(vpns)
    assert list(pt.values()) == [pte for _, pte in sorted(
        (v, mk_pte(100 + i, True)) for i, v in enumerate(vpns))]
    assert [(a >> 12) for a, _ in pt.range(6 * PAGE, 513 * PAGE)] == [6, 7, 511, 512]
    assert list(pt.range(8 * PAGE, 8 * PAGE)) == []


def test_items_finds_every_pte_whatever_its_bytes() -> None:
    """items() reads only the span from a PTE page's first non-zero byte to its last:
    ptes at either end of a page, ptes with zero bytes inside (a pfn-less swap entry, a
    pte with only its top bit set) and a page whose ptes are all cleared in place."""
    pt = PageTable()
    ptes = {0: 1, 5: 1 << 63, 511: mk_pte(3, True), 512 + 1: 0x100, 512 + 511: 1 << 40,
            3 * PTRS_PER_TABLE + 200: mk_pte(9, False)}
    for vpn, pte in ptes.items():
        pt.set(vpn * PAGE, pte)
    assert list(pt.items()) == sorted(ptes.items())
    pt.tables[3][200] = 0  # a PTE page left all none (not through clear())
    assert list(pt.items()) == sorted(ptes.items())[:-1]


def test_range_over_a_wide_sparse_span_visits_only_populated_tables() -> None:
    pt = PageTable()
    pt.set(1 << 40, mk_pte(1, True))
    pt.set(1 << 20, mk_pte(2, True))
    assert [a for a, _ in pt.range(0, 1 << 41)] == [1 << 20, 1 << 40]


def test_set_run_and_clear_run_count_new_entries_only() -> None:
    """set_ptes() over partly populated entries, get_and_clear_full_ptes() back."""
    pt = PageTable()
    pt.set(17 * PAGE, mk_pte(1, True))
    pt.set_run(16 * PAGE, [mk_pte(10 + i, True) for i in range(16)])
    assert len(pt) == 16 and pt.entry(17) == mk_pte(11, True)
    assert pt.any_populated(16, 16) and not pt.any_populated(32, 16)
    pt.clear_run(16 * PAGE, 16)
    assert len(pt) == 0 and not pt.tables and pt.entry(17) == 0


def test_huge_pmd_keeps_its_512_ptes_with_pse() -> None:
    pt = PageTable()
    pt.set_huge_pmd(PMD, [mk_pte(1024 + i, True) for i in range(PTRS_PER_TABLE)])
    assert pt.huge_pmds_in(0, 4 * PMD) == [PMD] and len(pt) == PTRS_PER_TABLE
    ptes = pt.clear_huge_pmd(PMD)
    assert ptes[5] == mk_pte(1029, True) | 1 << 7
    assert not pt.tables and not pt.huge_pmds
