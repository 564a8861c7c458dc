"""PTE-mapped large anonymous folios (mTHP): fault, fork, zap, COW, deferred split, split,
reclaim and the ranged syscalls over part of a folio, as Linux 6.18 does them
(docs/kernel-facts.md sections 18 and 20), under every rmap configuration."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from mmcore import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, Machine
from mmcore.constants import (
    MADV_DONTNEED,
    MADV_FREE,
    MADV_HUGEPAGE,
    MADV_NOHUGEPAGE,
    MADV_PAGEOUT,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
)
from mmcore.kpageflags import flag_names
from mmcore.pagetable import pte_pfn, pte_present, pte_write
from mmcore.process import Process
from mmcore.testing import check_invariants, check_no_leaks
from mmcore.thp import ThpSettings

P = 4096
K64 = 16 * P
RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS


def machine(config: tuple[str, str | None], orders: dict[int, str] | None = None,
            **kwargs: Any) -> Machine:
    """A machine with the 64 kB size (order 4) set to ``always`` unless told otherwise."""
    rmap, policy = config
    thp = ThpSettings(per_order=orders if orders is not None else {4: "always"})
    return Machine(rmap, mremap_policy=policy, thp=thp, **kwargs)


def aligned(p: Process, length: int, align: int = K64) -> int:
    """An anonymous mapping of ``length`` bytes starting at a multiple of ``align``."""
    raw = p.mmap(0, length + align, RW, ANON)
    start = -(-raw // align) * align
    if start > raw:
        p.munmap(raw, start - raw)
    if raw + align > start + length:
        p.munmap(start + length, raw + align - start - length)
    return start


def pfns(p: Process, a: int, n: int = 16) -> list[int | None]:
    """The frame each of ``n`` pages from ``a`` maps, None where no pte is present."""
    pt = p.mm.pgtable
    out: list[int | None] = []
    for i in range(n):
        pte = pt.entry((a >> 12) + i)
        out.append(pte_pfn(pte) if pte_present(pte) else None)
    return out


def stat(m: Machine, name: str, order: int = 4) -> int:
    return m.mthp_stats.stats[order][name]


def counting(m: Machine, name: str) -> list[tuple[int, ...]]:
    """Record (first, nr) of every call of the bound callable ``m.<name>``."""
    calls: list[tuple[int, ...]] = []
    inner: Callable[..., Any] = getattr(m, name)

    def spy(folio: Any, first: int, nr: int, *rest: Any) -> Any:
        calls.append((first, nr))
        return inner(folio, first, nr, *rest)
    setattr(m, name, spy)
    return calls


# --- fault: alloc_anon_folio() / do_anonymous_page() ------------------------------------

def test_first_write_maps_the_whole_64k_folio(config: tuple[str, str | None]) -> None:
    """do_anonymous_page() + alloc_anon_folio(): one write maps all 16 pages, contiguous,
    naturally aligned, writable, each mapped once (kernel-facts 18)."""
    m = machine(config)
    p = m.spawn()
    a = aligned(p, 2 * K64)
    p.write(a + 3 * P, b"x")
    got = pfns(p, a)
    first = got[0]
    assert first is not None and first % 16 == 0
    assert got == list(range(first, first + 16))
    assert all(pte_write(p.mm.pgtable.entry((a >> 12) + i)) for i in range(16))
    assert pfns(p, a + K64) == [None] * 16
    assert p.mm.rss == 16
    assert [m.kpagecount(first + i) for i in range(16)] == [1] * 16
    assert stat(m, "anon_fault_alloc") == 1 and stat(m, "nr_anon") == 1
    assert m.costs().counters.fault_anon == 1
    assert p.read(a + 3 * P, 1) == b"x" and p.read(a + 4 * P, 1) == b"\0"
    check_invariants(m)


def test_kpageflags_of_a_folio_are_the_folios(config: tuple[str, str | None]) -> None:
    """stable_page_flags(): head COMPOUND_HEAD, tails COMPOUND_TAIL, all THP; MMAP and
    PG_anon_exclusive (bit 34) come from the folio, so an unmapped page of a mapped folio
    still shows MMAP, with kpagecount 0 (kernel-facts 20)."""
    m = machine(config)
    p = m.spawn()
    a = aligned(p, K64)
    p.write(a, b"x")
    head = pfns(p, a)[0]
    assert head is not None
    assert {"COMPOUND_HEAD", "THP", "MMAP", "ANON", "MAPPEDTODISK"} <= set(
        flag_names(m.kpageflags(head)))
    tail = set(flag_names(m.kpageflags(head + 5)))
    assert {"COMPOUND_TAIL", "THP", "MMAP", "MAPPEDTODISK"} <= tail
    assert "COMPOUND_HEAD" not in tail
    p.munmap(a + 5 * P, P)
    assert "MMAP" in flag_names(m.kpageflags(head + 5)) and m.kpagecount(head + 5) == 0
    child = p.fork()
    child.exit(0)
    p.write(a + 2 * P, b"r")  # reused in place: only page 2 becomes exclusive again
    assert pfns(p, a)[2] == head + 2
    assert "MAPPEDTODISK" not in flag_names(m.kpageflags(head + 2))


def test_read_fault_maps_the_zero_page_and_a_later_write_is_order0() -> None:
    """do_anonymous_page(): a read maps the zero page even with mTHP on; the write after
    it copies an order-0 page (wp_page_copy()), and the next page's write is order-0 too
    because its 64 kB range is no longer pte_none (pte_range_none())."""
    m = machine(("anon_vma_chain", None))
    p = m.spawn()
    a = aligned(p, K64)
    p.read(a + 5 * P, 1)
    assert pfns(p, a)[5] == m.physmem.ZERO_PFN
    p.write(a + 5 * P, b"x")
    p.write(a + 6 * P, b"y")
    five, six = pfns(p, a)[5:7]
    assert five is not None and six is not None
    assert m.physmem.pages[five].folio is None and m.physmem.pages[six].folio is None  # type: ignore[union-attr]
    assert stat(m, "anon_fault_alloc") == 0 and stat(m, "anon_fault_fallback") == 0


def test_a_range_leaving_the_vma_or_a_nohugepage_vma_is_order0() -> None:
    """thp_vma_suitable_order(): the aligned range must lie inside the vma (an 8-page
    tail gets order 0, without a fallback count); thp_vma_allowable_orders(): never in a
    VM_NOHUGEPAGE vma."""
    m = machine(("anon_vma_chain", None))
    p = m.spawn()
    a = aligned(p, K64 + 8 * P)
    p.write(a + K64 + 2 * P, b"x")
    assert pfns(p, a + K64, 8).count(None) == 7
    b = aligned(p, K64)
    p.madvise(b, K64, MADV_NOHUGEPAGE)
    p.write(b, b"y")
    assert pfns(p, b).count(None) == 15
    assert stat(m, "anon_fault_alloc") == 0 and stat(m, "anon_fault_fallback") == 0


def test_the_largest_allowed_order_that_fits_is_taken() -> None:
    """alloc_anon_folio(): highest_order() first, then next_order(): with 64 kB and 16 kB
    enabled, a 12-page vma gets 16 kB folios; a ``madvise`` size only in a VM_HUGEPAGE
    vma."""
    m = machine(("anon_vma_chain", None), orders={4: "always", 2: "always", 3: "madvise"})
    p = m.spawn()
    a = aligned(p, 12 * P)
    p.write(a + 9 * P, b"x")
    got = pfns(p, a, 12)
    first = got[8]
    assert first is not None and first % 4 == 0
    assert got == [None] * 8 + [first + i for i in range(4)]
    assert stat(m, "anon_fault_alloc", 2) == 1
    b = aligned(p, 8 * P, align=8 * P)
    p.madvise(b, 8 * P, MADV_HUGEPAGE)
    p.write(b, b"y")
    assert pfns(p, b, 8).count(None) == 0 and stat(m, "anon_fault_alloc", 3) == 1


def test_no_free_block_above_the_min_watermark_falls_back_to_order0() -> None:
    """Machine.alloc_folio(): GFP_TRANSHUGE_LIGHT neither wakes kswapd nor reclaims, so a
    64 kB folio that would dip below the min watermark is not allocated:
    anon_fault_fallback +1 and the fault maps one order-0 page."""
    m = machine(("anon_vma_chain", None), ram_pages=512, swap_pages=0)
    p = m.spawn()
    filler = p.mmap(0, 500 * P, RW, ANON)
    p.madvise(filler, 500 * P, MADV_NOHUGEPAGE)
    wmin = m.watermarks[0]
    i = 0
    while m.physmem.nr_free > wmin + 15:
        p.write(filler + i * P, b"f")
        i += 1
    a = aligned(p, K64)
    p.write(a, b"x")
    assert stat(m, "anon_fault_fallback") == 1 and stat(m, "anon_fault_alloc") == 0
    assert pfns(p, a).count(None) == 15
    check_invariants(m)


# --- fork: folio_try_dup_anon_rmap_ptes() -------------------------------------------------

def test_fork_dups_a_folio_run_with_one_rmap_and_one_mapcount_call(
        config: tuple[str, str | None]) -> None:
    """copy_present_ptes() batches the ptes of one folio (folio_pte_batch()): one
    rmap_folio_dup_ptes and one mapcount_add for 16 pages; every page mapped twice, not
    exclusive, read-only on both sides (kernel-facts 18)."""
    m = machine(config)
    p = m.spawn()
    a = aligned(p, K64)
    p.write(a, b"x")
    dups, adds = counting(m, "rmap_folio_dup_ptes"), counting(m, "mapcount_add")
    child = p.fork()
    assert dups == [(0, 16)] and adds == [(0, 16)]
    head = pfns(p, a)[0]
    assert head is not None and pfns(child, a) == pfns(p, a)
    assert [m.kpagecount(head + i) for i in range(16)] == [2] * 16
    assert "MAPPEDTODISK" not in flag_names(m.kpageflags(head))
    assert not any(pte_write(pte) for pte in p.mm.pgtable.values())
    assert child.mm.rss == 16
    check_invariants(m)


# --- zap: folio_remove_rmap_ptes(), deferred_split_folio() ------------------------------

def test_munmap_of_the_whole_folio_is_one_removal_and_frees_it(
        config: tuple[str, str | None]) -> None:
    """zap_present_ptes(): one folio_remove_rmap_ptes for the run; the folio goes back
    whole; not partially mapped, so not queued."""
    m = machine(config)
    p = m.spawn()
    a = aligned(p, K64)
    p.write(a, b"x")
    free = m.physmem.nr_free
    removes = counting(m, "rmap_folio_remove_ptes")
    p.munmap(a, K64)
    assert removes == [(0, 16)]
    assert m.physmem.nr_free == free + 16
    assert stat(m, "split_deferred") == 0 and stat(m, "nr_anon") == 0


@pytest.mark.parametrize("how", ["munmap", "dontneed"])
def test_partial_unmap_queues_the_folio_for_deferred_split(
        config: tuple[str, str | None], how: str) -> None:
    """__folio_remove_rmap() -> deferred_split_folio(): munmap or MADV_DONTNEED of part of
    the folio leaves it whole and allocated, queued once: split_deferred and
    nr_anon_partially_mapped +1, thp_deferred_split_page untouched (PMD size only)."""
    m = machine(config)
    p = m.spawn()
    a = aligned(p, K64)
    p.write(a, b"x")
    head = pfns(p, a)[0]
    assert head is not None
    folio = m.physmem.pages[head].folio  # type: ignore[union-attr]
    if how == "munmap":
        p.munmap(a + 3 * P, P)
        p.munmap(a + 4 * P, P)
    else:
        p.madvise(a + 4 * P, 4 * P, MADV_DONTNEED)
    assert folio is not None and folio.deferred and list(m.deferred_split) == [folio]
    assert all(m.physmem.page(head + i) is folio.pages[i] for i in range(16))
    assert stat(m, "split_deferred") == 1 and stat(m, "nr_anon_partially_mapped") == 1
    assert m.vm_events.thp_deferred_split_page == 0
    check_invariants(m)
    p.exit(0)
    assert not m.deferred_split and stat(m, "nr_anon_partially_mapped") == 0
    check_no_leaks(m)


def test_a_child_unmapping_part_of_a_shared_folio_does_not_queue_it(
        config: tuple[str, str | None]) -> None:
    """Every page is still mapped by the parent: not partially mapped (kernel-facts 20)."""
    m = machine(config)
    p = m.spawn()
    a = aligned(p, K64)
    p.write(a, b"x")
    child = p.fork()
    child.munmap(a + 3 * P, P)
    child.exit(0)
    assert not m.deferred_split and stat(m, "split_deferred") == 0


# --- COW: do_wp_page() on a page of a large folio ------------------------------------------

def test_cow_in_the_child_copies_one_order0_page(config: tuple[str, str | None]) -> None:
    """wp_page_copy(): the child's write to page 3 gets an order-0 copy; the folio loses
    that one pte (a run of one); the parent's page 3 is then mapped once (kernel-facts 18)."""
    m = machine(config)
    p = m.spawn()
    a = aligned(p, K64)
    p.write(a, b"x")
    child = p.fork()
    removes = counting(m, "rmap_folio_remove_ptes")
    child.write(a + 3 * P, b"c")
    copy = pfns(child, a)[3]
    head = pfns(p, a)[0]
    assert head is not None and copy is not None and copy != head + 3
    assert m.physmem.pages[copy].folio is None  # type: ignore[union-attr]
    assert removes == [(3, 1)]
    assert m.kpagecount(head + 3) == 1 and m.kpagecount(head + 4) == 2
    assert p.read(a + 3 * P, 1) == b"\0" and child.read(a + 3 * P, 1) == b"c"
    check_invariants(m)


def test_cow_reuse_follows_the_large_folio_rule(config: tuple[str, str | None]) -> None:
    """__wp_can_reuse_large_anon_folio(): while the child maps the folio, the parent's
    write to its page 3 (mapped once since the child's COW) still copies, the folio being
    shared; after the child exits the folio is the parent's alone and a write reuses the
    page in place (kernel-facts 18)."""
    m = machine(config)
    p = m.spawn()
    a = aligned(p, K64)
    p.write(a, b"x")
    child = p.fork()
    child.write(a + 3 * P, b"c")
    head = pfns(p, a)[0]
    assert head is not None
    p.write(a + 3 * P, b"p")
    assert pfns(p, a)[3] != head + 3
    child.exit(0)
    p.write(a + 6 * P, b"r")
    assert pfns(p, a)[6] == head + 6
    assert m.costs().counters.fault_cow_reuse == 1
    check_invariants(m)


def test_a_folio_mapped_once_is_copied_not_reused(config: tuple[str, str | None]) -> None:
    """__wp_can_reuse_large_anon_folio(): folio_large_mapcount() <= 1 means copy, so that
    the folio can be freed: the last mapped page is copied and the folio goes."""
    m = machine(config)
    p = m.spawn()
    a = aligned(p, K64)
    p.write(a, b"x")
    head = pfns(p, a)[0]
    p.munmap(a + P, 15 * P)
    child = p.fork()
    child.exit(0)
    free = m.physmem.nr_free
    p.write(a, b"y")
    assert pfns(p, a, 1)[0] != head
    assert m.physmem.nr_free == free + 16 - 1
    assert p.read(a, 1) == b"y"
    check_invariants(m)


# --- split: __folio_split(), deferred_split_scan() ---------------------------------------

def test_the_shrinker_splits_queued_folios_and_maps_zero_pages(
        config: tuple[str, str | None]) -> None:
    """deferred_split_scan() (run by drop_caches): the partly mapped folio is split;
    mapped pages still all zeros map the shared zero page and are freed, written ones
    become order-0 pages; split +1, nr_anon_partially_mapped and nr_anon back to 0
    (kernel-facts 20)."""
    m = machine(config)
    p = m.spawn()
    a = aligned(p, K64)
    p.write(a + 3 * P, b"3")
    p.write(a + 15 * P, b"f")
    head = pfns(p, a)[0]
    assert head is not None
    p.munmap(a + 3 * P, 2 * P)
    used = m.physmem.nr_used
    m.drop_caches()
    got = pfns(p, a)
    zero = m.physmem.ZERO_PFN
    assert got == [zero] * 3 + [None, None] + [zero] * 10 + [head + 15]
    assert m.physmem.pages[head + 15].folio is None  # type: ignore[union-attr]
    assert m.physmem.nr_used == used - 15
    assert stat(m, "split") == 1 and stat(m, "nr_anon_partially_mapped") == 0
    assert stat(m, "nr_anon") == 0 and not m.deferred_split
    assert p.read(a + 15 * P, 1) == b"f" and p.mm.rss == 1
    check_invariants(m)


def test_madv_free_of_part_of_a_folio_splits_it_and_of_all_keeps_it(
        config: tuple[str, str | None]) -> None:
    """madvise_free_pte_range(): a folio only partly in the range is split at once
    (split +1 and split_deferred +1: unmap_folio() queues it on the way); one wholly
    in the range stays a folio, lazily freed (kernel-facts 20)."""
    m = machine(config)
    p = m.spawn()
    a = aligned(p, 2 * K64)
    p.write(a, b"x")
    p.write(a + K64, b"y")
    p.madvise(a + 4 * P, 4 * P, MADV_FREE)
    assert pfns(p, a)[4:8] == [m.physmem.ZERO_PFN] * 4
    assert stat(m, "split") == 1 and stat(m, "split_deferred") == 1
    assert stat(m, "nr_anon_partially_mapped") == 0
    p.madvise(a + K64, K64, MADV_FREE)
    second = pfns(p, a + K64)[0]
    assert second is not None and m.physmem.pages[second].folio is not None  # type: ignore[union-attr]
    assert stat(m, "split") == 1
    check_invariants(m)


def test_mprotect_mremap_and_mlock_of_part_leave_the_folio(
        config: tuple[str, str | None]) -> None:
    """change_pte_range(), move_ptes(), mlock_pte_range(): ptes change or move one by
    one, the folio stays whole and is not queued (kernel-facts 20)."""
    m = machine(config)
    p = m.spawn()
    a = aligned(p, K64)
    p.write(a, b"x")
    head = pfns(p, a)[0]
    assert head is not None
    p.mprotect(a + 4 * P, 4 * P, PROT_READ)
    p.mprotect(a + 4 * P, 4 * P, RW)
    p.write(a + 5 * P, b"5")
    p.mlock(a + 8 * P, 4 * P)
    p.munlock(a, K64)
    dst = aligned(p, K64)
    p.mremap(a + 12 * P, 4 * P, 4 * P, MREMAP_MAYMOVE | MREMAP_FIXED, dst + 12 * P)
    assert pfns(p, dst + 12 * P, 4) == [head + 12 + i for i in range(4)]
    assert pfns(p, a, 12) == [head + i for i in range(12)]
    assert m.physmem.pages[head].folio is not None  # type: ignore[union-attr]
    assert not m.deferred_split and stat(m, "split") == 0
    assert p.read(a + 5 * P, 1) == b"5"
    check_invariants(m)
    p.munmap(dst, K64)
    p.munmap(a, K64)
    assert m.physmem.page(head) is None


# --- reclaim: split before swap; folio_referenced() over the folio ------------------------

def test_pageout_swaps_a_folio_out_whole(config: tuple[str, str | None]) -> None:
    """shrink_folio_list() -> folio_alloc_swap() of the whole folio (``swpout``): 16
    aligned consecutive slots, every pte a swap entry naming its page's slot, the folio
    freed whole without a split; the pages come back order-0, content intact."""
    m = machine(config)
    p = m.spawn()
    a = aligned(p, K64)
    for i in range(16):
        p.write(a + i * P, bytes([65 + i]))
    free = m.physmem.nr_free
    p.madvise(a, K64, MADV_PAGEOUT)
    assert stat(m, "swpout") == 1 and stat(m, "split") == 0
    assert stat(m, "swpout_fallback") == 0 and stat(m, "split_deferred") == 0
    assert m.physmem.nr_free == free + 16 and m.swap.nr_used == 16
    slots = [p.mm.pgtable.entry((a >> 12) + i) >> 12 for i in range(16)]
    assert slots[0] % 16 == 0 and slots == list(range(slots[0], slots[0] + 16))
    check_invariants(m)
    assert [p.read(a + i * P, 1) for i in range(16)] == [bytes([65 + i]) for i in range(16)]
    check_invariants(m)


def test_swapin_is_order0_as_6_18_does_from_a_device_without_synchronous_io(
        config: tuple[str, str | None]) -> None:
    """alloc_swap_folio() (mm/memory.c) tries a large folio only for a SWP_SYNCHRONOUS_IO
    device (zram, pmem) whose entry has one reference; mmcore's swap device is not one,
    so do_swap_page() takes the swap-cache path: a read of page 5 of a folio swapped out
    whole, into 16 aligned consecutive slots with the 64 kB size ``always``, swaps in one
    order-0 page (no ``swpin`` or ``swpin_fallback`` for any size) and leaves the other
    15 ptes swap entries."""
    m = machine(config)
    p = m.spawn()
    a = aligned(p, K64)
    for i in range(16):
        p.write(a + i * P, bytes([65 + i]))
    p.madvise(a, K64, MADV_PAGEOUT)
    assert stat(m, "swpout") == 1
    assert p.read(a + 5 * P, 1) == b"F"
    page = m.physmem.pages[pfns(p, a)[5] or 0]
    assert page is not None and page.folio is None
    assert pfns(p, a).count(None) == 15 and m.swap.reads == 1
    assert all(m.mthp_stats.stats[o][name] == 0 for o in m.mthp_stats.stats
               for name in ("swpin", "swpin_fallback"))
    check_invariants(m)


def test_no_aligned_swap_run_splits_the_folio_first(config: tuple[str, str | None]) -> None:
    """folio_alloc_swap() fails (no aligned run of 16 free slots): split_folio_to_list()
    and the pages go one slot each (``swpout_fallback``)."""
    m = machine(config, swap_pages=8)
    p = m.spawn()
    a = aligned(p, K64)
    for i in range(16):
        p.write(a + i * P, bytes([65 + i]))
    p.madvise(a, K64, MADV_PAGEOUT)
    assert stat(m, "swpout_fallback") == 1 and stat(m, "split") == 1
    assert stat(m, "swpout") == 0 and m.swap.nr_used == 8
    check_invariants(m)
    assert [p.read(a + i * P, 1) for i in range(16)] == [bytes([65 + i]) for i in range(16)]


def test_folio_referenced_walks_once_not_once_per_page(
        config: tuple[str, str | None]) -> None:
    """folio_referenced() through page_vma_mapped_walk(): one scheme walk finds the
    16 young ptes of a contiguously mapped folio and clears them."""
    from mmcore.reclaim import ReclaimContext
    m = machine(config)
    p = m.spawn()
    a = aligned(p, K64)
    p.write(a, b"x")
    head = pfns(p, a)[0]
    assert head is not None
    walks = m.walk_cost.walks
    refs = ReclaimContext(m, "kswapd").page_referenced(m.physmem.pages[head])  # type: ignore[arg-type]
    assert refs == 16 and m.walk_cost.walks == walks + 1
    assert ReclaimContext(m, "kswapd").page_referenced(m.physmem.pages[head]) == 0  # type: ignore[arg-type]


def test_memory_pressure_reclaims_large_folios(config: tuple[str, str | None]) -> None:
    """The reclaim policy meets the folio through its head on the LRU: kswapd splits and
    swaps it; invariants hold and nothing leaks."""
    m = machine(config, ram_pages=160, swap_pages=512)
    p = m.spawn()
    a = aligned(p, 16 * K64)
    for i in range(16 * 16):
        p.write(a + i * P, bytes([i % 251 + 1]))
    assert m.costs().counters.pswpout > 0 and stat(m, "swpout") > 0
    check_invariants(m)
    assert all(p.read(a + i * P, 1) == bytes([i % 251 + 1]) for i in range(0, 256, 7))
    p.exit(0)
    check_no_leaks(m)


def test_a_folio_with_an_extra_reference_is_not_split() -> None:
    """can_split_folio(): a reference the mappings do not explain (here the pin that
    alloc_copy() holds on a COW source) makes the split fail: split_failed +1, the folio
    stays whole and queued."""
    from mmcore.folio_split import deferred_split_scan
    m = machine(("anon_vma_chain", None))
    p = m.spawn()
    a = aligned(p, K64)
    p.write(a, b"x")
    p.munmap(a + P, P)
    head = pfns(p, a)[0]
    assert head is not None
    page = m.physmem.pages[head]
    assert page is not None and page.folio is not None
    page.refcount += 1
    assert deferred_split_scan(m) == 0
    assert stat(m, "split_failed") == 1 and page.folio is not None and m.deferred_split
    m.put_page(page)
    assert deferred_split_scan(m) == 1 and page.folio is None


def test_try_to_unmap_of_a_folio_page_splits_first(config: tuple[str, str | None]) -> None:
    """Machine.try_to_unmap() of one page (a pfn) of a large folio: the folio is split
    (the kernel unmaps folios whole; mmcore's per-page call unmaps that page) and that
    page alone goes to swap; a zero page of the folio is left mapping the zero page."""
    m = machine(config)
    p = m.spawn()
    a = aligned(p, K64)
    p.write(a + 2 * P, b"2")
    head = pfns(p, a)[0]
    assert head is not None
    result = m.try_to_unmap(head + 2)
    assert result.success and result.swap_slot >= 0
    assert pfns(p, a)[2] is None and pfns(p, a)[3] == m.physmem.ZERO_PFN
    assert p.read(a + 2 * P, 1) == b"2"
    check_invariants(m)


def test_folio_referenced_of_a_locked_folio_is_minus_one() -> None:
    """folio_referenced() stops at a VM_LOCKED mapping (the caller mlocks the folio)."""
    from mmcore.reclaim import ReclaimContext
    m = machine(("anon_vma_chain", None))
    p = m.spawn()
    a = aligned(p, K64)
    p.write(a, b"x")
    p.mlock(a + 4 * P, P)
    head = m.physmem.pages[pfns(p, a)[0] or 0]
    assert head is not None
    assert ReclaimContext(m, "kswapd").page_referenced(head) == -1


def test_a_madvised_size_may_reclaim_and_a_knob_change_applies_at_once() -> None:
    """vma_thp_gfp_mask() under defrag=madvise: in a VM_HUGEPAGE vma the allocation may
    reclaim directly (here it frees the order-0 pages of a swapped-out filler), where an
    ``always`` size in a plain vma falls back; a knob written later applies to the next
    fault (the cached orders are dropped)."""
    m = machine(("anon_vma_chain", None), orders={4: "madvise"}, ram_pages=512,
                swap_pages=4096)
    p = m.spawn()
    filler = p.mmap(0, 500 * P, RW, ANON)
    p.madvise(filler, 500 * P, MADV_NOHUGEPAGE)
    i = 0
    while m.physmem.nr_free > m.watermarks[0] + 15:
        p.write(filler + i * P, b"f")
        i += 1
    a = aligned(p, K64)
    p.madvise(a, K64, MADV_HUGEPAGE)
    direct = m.costs().counters.direct_reclaims
    p.write(a, b"x")
    assert m.costs().counters.direct_reclaims == direct + 1
    assert stat(m, "anon_fault_alloc") == 1 and pfns(p, a).count(None) == 0
    m.thp.per_order[4] = "never"
    b = aligned(p, K64)
    p.madvise(b, K64, MADV_HUGEPAGE)
    p.write(b, b"y")
    assert stat(m, "anon_fault_alloc") == 1 and pfns(p, b).count(None) == 15


def test_the_fault_orders_follow_every_knob_write_and_survive_a_pickle() -> None:
    """ThpSettings.fault_orders (what every anonymous write fault reads) is recomputed on
    each write of a knob: a per-size mode, dict.update() of several, the top-level mode
    that ``inherit`` follows; a pickled or copied ThpSettings keeps doing so."""
    import copy
    import pickle
    thp = ThpSettings()
    assert thp.fault_orders == {False: (), True: ()}
    thp.per_order[4] = "always"
    thp.per_order.update({2: "inherit", 3: "madvise"})
    assert thp.pte_orders(False) == (4,) and thp.pte_orders(True) == (4, 3, 2)
    thp.enabled = "always"
    assert thp.pte_orders(False) == (4, 2)
    for clone in (pickle.loads(pickle.dumps(thp)), copy.deepcopy(thp)):
        assert clone == thp
        clone.per_order[5] = "always"
        assert clone.pte_orders(False) == (5, 4, 2) and thp.pte_orders(False) == (4, 2)


def test_a_folio_is_mlocked_only_as_a_whole(config: tuple[str, str | None]) -> None:
    """allow_mlock_munlock(): mlock of part of a large folio leaves it evictable (no
    MLOCKED on any page); mlock of all of it marks every page (kernel-facts 20)."""
    m = machine(config)
    p = m.spawn()
    a = aligned(p, 2 * K64)
    p.write(a, b"a")
    p.write(a + K64, b"b")
    p.mlock(a + 4 * P, 4 * P)
    p.mlock(a + K64, K64)
    first, second = pfns(p, a)[0], pfns(p, a + K64)[0]
    assert first is not None and second is not None
    assert not any("MLOCKED" in flag_names(m.kpageflags(first + i)) for i in range(16))
    assert all("MLOCKED" in flag_names(m.kpageflags(second + i)) for i in range(16))


def test_a_folio_across_two_vmas_is_batched_per_vma(config: tuple[str, str | None]) -> None:
    """copy_pte_range() and zap_pte_range() work vma by vma: a folio that an mprotect
    split across two vmas is duplicated and removed as two runs, and unmapping one vma
    leaves it partly mapped (queued)."""
    m = machine(config)
    p = m.spawn()
    a = aligned(p, K64)
    p.write(a, b"x")
    p.mprotect(a + 6 * P, 10 * P, PROT_READ)
    dups = counting(m, "rmap_folio_dup_ptes")
    child = p.fork()
    assert sorted(dups) == [(0, 6), (6, 10)]
    removes = counting(m, "rmap_folio_remove_ptes")
    child.munmap(a + 6 * P, 10 * P)
    p.munmap(a + 6 * P, 10 * P)
    assert removes == [(6, 10), (6, 10)] and len(m.deferred_split) == 1
    check_invariants(m)


def test_reclaim_runs_the_deferred_split_shrinker(config: tuple[str, str | None]) -> None:
    """shrink_node() -> shrink_slab(): a reclaim splits the queued folios, freeing their
    unmapped pages, before any process is killed."""
    m = machine(config, ram_pages=256, swap_pages=0)
    p = m.spawn()
    a = aligned(p, 12 * K64)
    for i in range(12):
        p.write(a + i * K64, b"x")
        p.munmap(a + i * K64 + P, 15 * P)
    assert len(m.deferred_split) == 12
    b = p.mmap(0, 120 * P, RW, ANON)
    p.madvise(b, 120 * P, MADV_NOHUGEPAGE)
    for i in range(120):
        p.write(b + i * P, b"y")
    assert stat(m, "split") > 0 and m.costs().counters.oom_kills == 0
    check_invariants(m)


def test_a_shared_folio_swapped_out_comes_back_for_both(config: tuple[str, str | None]) -> None:
    """Reclaim of a folio mapped by parent and child: swapped out whole, both swap ptes
    of a page naming its slot, not exclusive; both read their data back."""
    m = machine(config, ram_pages=4096, swap_pages=4096)
    p = m.spawn()
    a = aligned(p, K64)
    for i in range(16):
        p.write(a + i * P, bytes([i + 1]))
    child = p.fork()
    head = pfns(p, a)[0]
    assert head is not None
    m.hook.reclaim_lru_del(page=m.physmem.pages[head])
    from mmcore.reclaim import ReclaimContext
    assert ReclaimContext(m, "direct").reclaim(m.physmem.pages[head]) == "freed"  # type: ignore[arg-type]
    assert all(x is None for x in pfns(p, a) + pfns(child, a))
    assert stat(m, "swpout") == 1 and m.swap.nr_used == 16
    check_invariants(m)
    assert [child.read(a + i * P, 1) for i in range(16)] == [bytes([i + 1]) for i in range(16)]
    assert [p.read(a + i * P, 1) for i in range(16)] == [bytes([i + 1]) for i in range(16)]
    check_invariants(m)


def test_reclaim_keeps_a_folio_a_locked_vma_maps(config: tuple[str, str | None]) -> None:
    """try_to_unmap_one() stops at a VM_LOCKED mapping: the folio stays whole and mapped
    and the policy is told ``locked``."""
    from mmcore.reclaim import ReclaimContext
    m = machine(config, swap_pages=4096)
    p = m.spawn()
    a = aligned(p, K64)
    p.write(a, b"x")
    p.mlock(a + 8 * P, 8 * P)
    head = m.physmem.pages[pfns(p, a)[0] or 0]
    assert head is not None
    assert ReclaimContext(m, "kswapd").reclaim(head) == "locked"
    assert head.folio is not None and pfns(p, a).count(None) == 0 and m.swap.nr_used == 0


@pytest.mark.parametrize("rewrite", [False, True])
def test_a_lazily_freed_folio_is_discarded_whole_unless_written(
        config: tuple[str, str | None], rewrite: bool) -> None:
    """try_to_unmap_one() of a lazyfree large folio: not written since MADV_FREE, its
    ptes are cleared and the folio freed whole without swap (later reads see zeros);
    written again, it becomes an ordinary anonymous folio and stays."""
    from mmcore.reclaim import ReclaimContext
    m = machine(config, swap_pages=4096)
    p = m.spawn()
    a = aligned(p, K64)
    for i in range(16):
        p.write(a + i * P, b"d")
    p.madvise(a, K64, MADV_FREE)
    if rewrite:
        p.write(a + 7 * P, b"w")
    head = m.physmem.pages[pfns(p, a)[0] or 0]
    assert head is not None and head.folio is not None
    free = m.physmem.nr_free
    result = ReclaimContext(m, "kswapd").reclaim(head)
    assert m.swap.nr_used == 0
    if rewrite:
        assert result == "busy" and head.folio is not None
        assert p.read(a + 7 * P, 1) == b"w" and p.read(a, 1) == b"d"
    else:
        assert result == "freed" and m.physmem.nr_free == free + 16
        assert pfns(p, a) == [None] * 16 and p.read(a, 1) == b"\0"
    check_invariants(m)


def test_pageout_of_a_lazily_freed_folio_discards_it(config: tuple[str, str | None]) -> None:
    """MADV_PAGEOUT -> reclaim_pages() of a whole lazyfree folio: discarded, no swap."""
    m = machine(config, swap_pages=4096)
    p = m.spawn()
    a = aligned(p, K64)
    p.write(a, b"d")
    p.madvise(a, K64, MADV_FREE)
    p.madvise(a, K64, MADV_PAGEOUT)
    assert pfns(p, a) == [None] * 16 and m.swap.nr_used == 0 and p.read(a, 1) == b"\0"
    check_invariants(m)


def test_vmstat_counts_a_reclaimed_folio_in_pages() -> None:
    """shrink_folio_list() counts pgscan and pgsteal in pages (folio_nr_pages()): one
    reclaimed 64 kB folio is 16 of each."""
    from mmcore.reclaim import ReclaimContext
    m = machine(("anon_vma_chain", None), swap_pages=4096)
    p = m.spawn()
    a = aligned(p, K64)
    p.write(a, b"x")
    head = m.physmem.pages[pfns(p, a)[0] or 0]
    assert head is not None
    ctx = ReclaimContext(m, "kswapd")
    ctx.page_referenced(head)  # clears the young bits; the policy would then reclaim
    assert ctx.reclaim(head) == "freed"
    ctx.decide(head, "reclaim")
    v = m.vmstat()
    assert v.values["pgsteal_kswapd"] == 16 and v.values["pgscan_kswapd"] == 16
    assert v.values["pgsteal_anon"] == 16


def test_reclaim_of_a_pmd_mapped_thp_splits_the_pmd_and_swaps_it_whole() -> None:
    """try_to_unmap(TTU_SPLIT_HUGE_PMD) then the whole-folio swap-out: a PMD-mapped THP
    paged out goes to 512 aligned slots (thp_swpout, swpout of hugepages-2048kB) without
    a folio split, and reads back."""
    m = Machine("anon_vma_chain", ram_pages=4096, swap_pages=4096)
    p = m.spawn()
    a = aligned(p, 512 * P, align=512 * P)
    p.madvise(a, 512 * P, MADV_HUGEPAGE)
    p.write(a + 5 * P, b"h")
    assert p.mm.pgtable.huge_pmds
    p.madvise(a, 512 * P, MADV_PAGEOUT)
    assert m.vm_events.thp_swpout == 1 and stat(m, "swpout", 9) == 1
    assert stat(m, "split", 9) == 0 and not p.mm.pgtable.huge_pmds
    assert pfns(p, a, 512) == [None] * 512 and m.swap.nr_used == 512
    check_invariants(m)
    assert p.read(a + 5 * P, 1) == b"h"
    check_invariants(m)
