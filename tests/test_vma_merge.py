"""Ports of the kernel's userland VMA tests (tools/testing/vma/tests/{merge,vma,mmap}.c).

The kernel compiles mm/vma.c in userspace and calls vma_merge_new_range(),
vma_merge_existing_range(), copy_vma() and friends on hand-made vmas; :class:`VmaHarness`
does the same with :mod:`mmcore.vma_ops`. Page ``n`` of each ruler is page ``n`` of the test
window and a vma's pgoff is written as a page number of the same window, exactly as the
kernel's tests use 0x0-0xc000 with ``vm_pgoff`` equal to the page number.

Tests about flags and pgoff only run under every scheme; tests about anon_vma identity and
the fork-child rule of is_mergeable_anon_vma() hold for today's Linux, the anon_vma_chain
scheme, and run only there.

Not ported (not modelled by the simulator): vm_ops->close (test_vma_merge_with_close,
test_vma_merge_new_with_close and the "should have no impact" close hooks of merge_new and
merge_existing), allocation failure injection (test_vmi_prealloc_fail), the internal
just_expand mode (test_expand_only_mode) and the vma_flags_t bitmap helpers.
"""

from __future__ import annotations

import itertools

import pytest
from vma_layout import PA, PAGE, RW, VMA_FLAGS, VmaHarness, ruler

from mmcore import (
    MAP_FIXED,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    VM_DONTEXPAND,
    VM_IGNORE_MERGE,
    VM_IO,
    VM_MIXEDMAP,
    VM_PFNMAP,
    VM_SPECIAL,
)
from mmcore.mremap import copy_vma
from mmcore.vma_ops import vma_modify

BOTH_SCHEMES = ["anon_vma_chain", "pte_chains"]
#: The flags the kernel calls sticky (VM_STICKY / VMA_STICKY_FLAGS, mainline since the
#: VM_MAYBE_GUARD series): they never prevent a merge, and a merged vma carries them if
#: any of the merged pieces had them. In the simulator that set is VM_IGNORE_MERGE
#: (VM_SOFTDIRTY). The 6.18.y stable sources have no sticky flags (soft-dirty is only
#: ignored), but the probed 6.18 kernel reports the sticky VM_MAYBE_GUARD (``gu``), so the
#: mainline rule is the one followed here.
STICKY = VM_IGNORE_MERGE


def sticky(flag: bool) -> int:
    """The sticky bits to add to a vma's flags when ``flag`` is set."""
    return STICKY if flag else 0


# --- test_simple_* ------------------------------------------------------------------------


@pytest.mark.parametrize("rmap", BOTH_SCHEMES)
def test_simple_merge(rmap: str) -> None:
    """test_simple_merge: a new range exactly filling the gap between two compatible vmas
    merges all three into the left one, which keeps its pgoff.

        0123      0123
        A B   ->  AAA
    """
    h = VmaHarness(rmap)
    left = h.alloc_and_link(0, 1, 0)
    h.alloc_and_link(2, 3, 2)
    vma = h.merge_new(1, 2, 1)
    assert vma is left
    assert h.pages(vma) == (0, 3, 0)
    assert vma.flags == VMA_FLAGS
    assert h.map_count == 1


@pytest.mark.parametrize("rmap", BOTH_SCHEMES)
def test_simple_modify(rmap: str) -> None:
    """test_simple_modify: vma_modify_flags() on the middle page with unchanged flags splits
    the vma into three; the vma object passed in now covers the middle, and the outer
    pieces have the pgoff of their first page.

        0123      0123
        AAA   ->  ABC
    """
    h = VmaHarness(rmap)
    init = h.alloc_and_link(0, 3, 0)
    vma = vma_modify(init, h.addr(1), h.addr(2), init.flags)
    assert vma is init
    assert h.pages(vma) == (1, 2, 1)
    assert [h.pages(v) for v in h.mm.vmas] == [(0, 1, 0), (1, 2, 1), (2, 3, 2)]
    assert h.ruler() == "ABC"


@pytest.mark.parametrize("rmap", BOTH_SCHEMES)
def test_simple_expand(rmap: str) -> None:
    """test_simple_expand: expanding a vma over the free pages after it (the vma_expand()
    under every new-range merge) keeps the vma and its pgoff.

        0123      0123
        A     ->  AAA
    """
    h = VmaHarness(rmap)
    vma = h.alloc_and_link(0, 1, 0)
    assert h.merge_new(1, 3, 1) is vma
    assert h.pages(vma) == (0, 3, 0)
    assert h.map_count == 1


@pytest.mark.parametrize("rmap", BOTH_SCHEMES)
def test_simple_shrink(rmap: str) -> None:
    """test_simple_shrink: shrinking a vma from the right (vma_shrink(), here through
    munmap of its tail) keeps its start and pgoff.

        0123      0123
        AAA   ->  A
    """
    h = VmaHarness(rmap)
    h.alloc_and_link(0, 3, 0)
    h.process.munmap(h.addr(1), 2 * PAGE)
    assert [h.pages(v) for v in h.mm.vmas] == [(0, 1, 0)]


# --- test_merge_new -------------------------------------------------------------------------


@pytest.mark.parametrize("rmap", BOTH_SCHEMES)
@pytest.mark.parametrize(("is_sticky", "a_sticky", "b_sticky", "c_sticky"),
                         list(itertools.product([False, True], repeat=4)))
def test_merge_new(rmap: str, is_sticky: bool, a_sticky: bool, b_sticky: bool,
                   c_sticky: bool) -> None:
    """__test_merge_new, for every combination of sticky flags: new ranges fill the gaps
    between A, B, C and D one after another, merging with prev, next or both; the survivor
    keeps the lowest vma's pgoff, takes over the anon_vma, and carries the sticky flags of
    every piece it absorbed (a sticky difference never prevents the merge)."""
    h = VmaHarness(rmap)
    flags = VMA_FLAGS | sticky(is_sticky)

    #   0123456789abc
    #   AA B       CC
    vma_a = h.alloc_and_link(0, 2, 0, flags | sticky(a_sticky))
    vma_b = h.alloc_and_link(3, 4, 3, flags | sticky(b_sticky))
    vma_c = h.alloc_and_link(0xB, 0xC, 0xB, flags | sticky(c_sticky))

    # NO merge.
    #   0123456789abc
    #   AA B   **  CC
    vma_d, merged = h.try_merge_new(7, 9, 7, flags)
    assert not merged
    assert h.map_count == 4

    # Merge BOTH sides: A extends over the new range and B, B is deleted and its
    # anon_vma is duplicated into A.
    #   0123456789abc
    #   AA*B   DD  CC
    anon = h.fault_anon(vma_b)
    vma, merged = h.try_merge_new(2, 3, 2, flags)
    assert merged and vma is vma_a
    assert h.pages(vma) == (0, 4, 0)
    assert vma.anon_vma is anon
    assert h.map_count == 3
    if is_sticky or a_sticky or b_sticky:
        assert vma.flags & STICKY

    # Merge to PREVIOUS vma.
    #   0123456789abc
    #   AAAA*  DD  CC
    vma, merged = h.try_merge_new(4, 5, 4, flags)
    assert merged and vma is vma_a
    assert h.pages(vma) == (0, 5, 0)
    assert vma.anon_vma is anon
    assert h.map_count == 3
    if is_sticky or a_sticky:
        assert vma.flags & STICKY

    # Merge to NEXT vma: D moves down over the new range and takes its pgoff.
    #   0123456789abc
    #   AAAAA *DD  CC
    h.share_anon(vma_d, vma_a)
    vma, merged = h.try_merge_new(6, 7, 6, flags)
    assert merged and vma is vma_d
    assert h.pages(vma) == (6, 9, 6)
    assert vma.anon_vma is anon
    assert h.map_count == 3
    if is_sticky:
        assert vma.flags & STICKY

    # Merge BOTH sides.
    #   0123456789abc
    #   AAAAA*DDD  CC
    vma, merged = h.try_merge_new(5, 6, 5, flags)
    assert merged and vma is vma_a
    assert h.pages(vma) == (0, 9, 0)
    assert vma.anon_vma is anon
    assert h.map_count == 2
    if is_sticky or a_sticky:
        assert vma.flags & STICKY

    # Merge to NEXT vma.
    #   0123456789abc
    #   AAAAAAAAA *CC
    h.share_anon(vma_c, vma_a)
    vma, merged = h.try_merge_new(0xA, 0xB, 0xA, flags)
    assert merged and vma is vma_c
    assert h.pages(vma) == (0xA, 0xC, 0xA)
    assert vma.anon_vma is anon
    assert h.map_count == 2
    if is_sticky or c_sticky:
        assert vma.flags & STICKY

    # Merge BOTH sides.
    #   0123456789abc
    #   AAAAAAAAA*CCC
    vma, merged = h.try_merge_new(9, 0xA, 9, flags)
    assert merged and vma is vma_a
    assert h.pages(vma) == (0, 0xC, 0)
    assert vma.anon_vma is anon
    assert h.map_count == 1
    if is_sticky or a_sticky or c_sticky:
        assert vma.flags & STICKY

    # Final state.
    #   0123456789abc
    #   AAAAAAAAAAAAA
    assert h.ruler() == "AAAAAAAAAAAA"
    assert [h.pages(v) for v in h.mm.vmas] == [(0, 0xC, 0)]


# --- test_vma_merge_special_flags ---------------------------------------------------------


def test_special_flags_are_vm_special() -> None:
    """test_vma_merge_special_flags, first check: VM_SPECIAL is exactly IO, DONTEXPAND,
    PFNMAP and MIXEDMAP (a new special flag would need its own merge test)."""
    assert VM_IO | VM_DONTEXPAND | VM_PFNMAP | VM_MIXEDMAP == VM_SPECIAL


@pytest.mark.parametrize("rmap", BOTH_SCHEMES)
@pytest.mark.parametrize("special", [VM_IO, VM_DONTEXPAND, VM_PFNMAP, VM_MIXEDMAP],
                         ids=["io", "dontexpand", "pfnmap", "mixedmap"])
def test_vma_merge_special_flags(rmap: str, special: int) -> None:
    """test_vma_merge_special_flags: with a VM_SPECIAL flag on both sides, neither a new
    range nor a modified vma merges, although everything else would allow it.

        01234           01234
        AAA*    and     AAAB
    """
    h = VmaHarness(rmap)
    left = h.alloc_and_link(0, 3, 0, VMA_FLAGS | special)
    # A plain vma merges here (the control case that makes the special one meaningful).
    assert h.merge_new(3, 4, 3, VMA_FLAGS | special) is None
    left.flags = VMA_FLAGS
    assert h.merge_new(3, 4, 3, VMA_FLAGS) is left
    h.process.munmap(h.addr(3), PAGE)

    left.flags = VMA_FLAGS | special
    vma = h.alloc_and_link(3, 4, 3, VMA_FLAGS | special)
    assert h.merge_existing(vma, 3, 4) is None
    assert h.ruler() == "AAAB"


# --- test_merge_existing ------------------------------------------------------------------


@pytest.mark.parametrize("rmap", BOTH_SCHEMES)
@pytest.mark.parametrize(("prev_sticky", "middle_sticky", "next_sticky"),
                         list(itertools.product([False, True], repeat=3)))
def test_merge_existing(rmap: str, prev_sticky: bool, middle_sticky: bool,
                        next_sticky: bool) -> None:
    """__test_merge_existing, for every combination of sticky flags: a range of an
    existing (faulted) vma V that becomes compatible with its neighbour merges into it,
    partially or fully, on the left, the right or both; the survivor takes V's anon_vma
    (dup_anon_vma) and the sticky flags of the pieces. Ranges that touch neither edge of
    V never merge."""
    flags = VMA_FLAGS | sticky(middle_sticky)
    prev_flags = VMA_FLAGS | sticky(prev_sticky)
    next_flags = VMA_FLAGS | sticky(next_sticky)

    # Merge right case - partial span.
    #      <->
    #   0123456789
    #     VVVVNNN
    #              ->
    #   0123456789
    #     VNNNNNN
    h = VmaHarness(rmap)
    vma = h.alloc_and_link(2, 6, 2, flags)
    vma_next = h.alloc_and_link(6, 9, 6, next_flags)
    anon = h.fault_anon(vma)
    assert h.merge_existing(vma, 3, 6, flags) is vma_next
    assert h.pages(vma_next) == (3, 9, 3)
    assert vma_next.anon_vma is anon
    assert h.pages(vma) == (2, 3, 2)
    assert h.map_count == 2
    if middle_sticky or next_sticky:
        assert vma_next.flags & STICKY

    # Merge right case - full span.
    #     <-->
    #   0123456789
    #     VVVVNNN
    #              ->
    #   0123456789
    #     NNNNNNN
    h = VmaHarness(rmap)
    vma = h.alloc_and_link(2, 6, 2, flags)
    vma_next = h.alloc_and_link(6, 9, 6, next_flags)
    anon = h.fault_anon(vma)
    assert h.merge_existing(vma, 2, 6, flags) is vma_next
    assert h.pages(vma_next) == (2, 9, 2)
    assert vma_next.anon_vma is anon
    assert h.map_count == 1
    if middle_sticky or next_sticky:
        assert vma_next.flags & STICKY

    # Merge left case - partial span.
    #      <->
    #   0123456789
    #   PPPVVVV
    #              ->
    #   0123456789
    #   PPPPPPV
    h = VmaHarness(rmap)
    vma_prev = h.alloc_and_link(0, 3, 0, prev_flags)
    vma = h.alloc_and_link(3, 7, 3, flags)
    anon = h.fault_anon(vma)
    assert h.merge_existing(vma, 3, 6, flags) is vma_prev
    assert h.pages(vma_prev) == (0, 6, 0)
    assert vma_prev.anon_vma is anon
    assert h.pages(vma) == (6, 7, 6)
    assert h.map_count == 2
    if prev_sticky or middle_sticky:
        assert vma_prev.flags & STICKY

    # Merge left case - full span.
    #      <-->
    #   0123456789
    #   PPPVVVV
    #              ->
    #   0123456789
    #   PPPPPPP
    h = VmaHarness(rmap)
    vma_prev = h.alloc_and_link(0, 3, 0, prev_flags)
    vma = h.alloc_and_link(3, 7, 3, flags)
    anon = h.fault_anon(vma)
    assert h.merge_existing(vma, 3, 7, flags) is vma_prev
    assert h.pages(vma_prev) == (0, 7, 0)
    assert vma_prev.anon_vma is anon
    assert h.map_count == 1
    if prev_sticky or middle_sticky:
        assert vma_prev.flags & STICKY

    # Merge both case.
    #      <-->
    #   0123456789
    #   PPPVVVVNNN
    #               ->
    #   0123456789
    #   PPPPPPPPPP
    h = VmaHarness(rmap)
    vma_prev = h.alloc_and_link(0, 3, 0, prev_flags)
    vma = h.alloc_and_link(3, 7, 3, flags)
    h.alloc_and_link(7, 9, 7, next_flags)
    anon = h.fault_anon(vma)
    assert h.merge_existing(vma, 3, 7, flags) is vma_prev
    assert h.pages(vma_prev) == (0, 9, 0)
    assert vma_prev.anon_vma is anon
    assert h.map_count == 1
    if prev_sticky or middle_sticky or next_sticky:
        assert vma_prev.flags & STICKY

    # Non-merge ranges: a modified range that touches neither edge of V.
    #       -
    #        -
    #         -
    #       <->
    #       <>
    #        <>
    #   0123456789a
    #   PPPVVVVVNNN
    h = VmaHarness(rmap)
    h.alloc_and_link(0, 3, 0, prev_flags)
    vma = h.alloc_and_link(3, 8, 3, flags)
    h.alloc_and_link(8, 0xA, 8, next_flags)
    for start, end in [(4, 5), (5, 6), (6, 7), (4, 7), (4, 6), (5, 6)]:
        assert h.merge_existing(vma, start, end, flags) is None
    assert h.map_count == 3
    assert h.ruler() == "AAABBBBBCC"


# --- test_anon_vma_non_mergeable (anon_vma_chain) ------------------------------------------


def test_anon_vma_non_mergeable_existing() -> None:
    """test_anon_vma_non_mergeable, modified range: prev and next each merge with the
    anon-less middle, but have different anon_vmas, so they are incompatible with each
    other and only prev extends over the middle.

         <-->
      0123456789
      PPPVVVVNNN
                 ->
      0123456789
      PPPPPPPNNN
    """
    h = VmaHarness("anon_vma_chain")
    vma_prev = h.alloc_and_link(0, 3, 0)
    vma = h.alloc_and_link(3, 7, 3)
    vma_next = h.alloc_and_link(7, 9, 7)
    anon_1 = h.fault_anon(vma_prev)
    anon_2 = h.fault_anon(vma_next)
    assert anon_1 is not anon_2
    assert h.merge_existing(vma, 3, 7) is vma_prev
    assert h.pages(vma_prev) == (0, 7, 0)
    assert h.pages(vma_next) == (7, 9, 7)
    assert vma_next.anon_vma is anon_2
    assert h.map_count == 2


def test_anon_vma_non_mergeable_new() -> None:
    """test_anon_vma_non_mergeable, new range: the same between a prev and a next with
    different anon_vmas; the new range only extends prev.

         <-->
      0123456789
      PPP****NNN
                 ->
      0123456789
      PPPPPPPNNN
    """
    h = VmaHarness("anon_vma_chain")
    vma_prev = h.alloc_and_link(0, 3, 0)
    vma_next = h.alloc_and_link(7, 9, 7)
    h.fault_anon(vma_prev)
    h.fault_anon(vma_next)
    assert vma_prev.anon_vma is not vma_next.anon_vma
    assert h.merge_new(3, 7, 3) is vma_prev
    assert h.pages(vma_prev) == (0, 7, 0)
    assert h.pages(vma_next) == (7, 9, 7)
    assert h.map_count == 2


# --- test_dup_anon_vma (anon_vma_chain) ----------------------------------------------------


def _assert_walk_finds(h: VmaHarness, pfn: int) -> None:
    """The anon_vma the survivor took over was really cloned into it (the kernel's
    ``was_cloned``): the rmap walk still finds every mapping of a page faulted before."""
    walk = h.machine.rmap_walk(pfn)
    assert walk.mappings == h.machine.rmap_truth(pfn) != []


def _fault_page(h: VmaHarness, page: int) -> int:
    """Write one page of the window and return its pfn."""
    h.process.write(h.addr(page), b"x")
    return h.process.pagemap(h.addr(page)).pfn


def test_dup_anon_vma_expand_over_next() -> None:
    """test_dup_anon_vma, expand case: an unfaulted vma that expands over a faulted next
    (here through a new range filling the gap, which "amounts to a VMA expand") deletes
    next and takes over next's anon_vma.

      0123456      0123456
      PPP*NN   ->  PPPPPP
    """
    h = VmaHarness("anon_vma_chain")
    vma_prev = h.alloc_and_link(0, 3, 0)
    vma_next = h.alloc_and_link(4, 6, 4)
    pfn = _fault_page(h, 5)
    anon = vma_next.anon_vma
    assert h.merge_new(3, 4, 3) is vma_prev
    assert h.pages(vma_prev) == (0, 6, 0)
    assert vma_prev.anon_vma is anon
    _assert_walk_finds(h, pfn)


def test_dup_anon_vma_next_has_anon_vma() -> None:
    """test_dup_anon_vma: next has the anon_vma, prev takes it over.

              |<----->|
      |-------*********-------|
        prev     vma     next
       extend   delete  delete
    """
    h = VmaHarness("anon_vma_chain")
    vma_prev = h.alloc_and_link(0, 3, 0)
    vma = h.alloc_and_link(3, 5, 3)
    vma_next = h.alloc_and_link(5, 8, 5)
    pfn = _fault_page(h, 6)
    anon = vma_next.anon_vma
    assert h.merge_existing(vma, 3, 5) is vma_prev
    assert h.pages(vma_prev) == (0, 8, 0)
    assert vma_prev.anon_vma is anon
    _assert_walk_finds(h, pfn)


def test_dup_anon_vma_middle_has_anon_vma() -> None:
    """test_dup_anon_vma: the modified vma has the anon_vma, prev takes it over.

              |<----->|
      |-------*********-------|
        prev     vma     next
       extend   delete  delete
    """
    h = VmaHarness("anon_vma_chain")
    vma_prev = h.alloc_and_link(0, 3, 0)
    vma = h.alloc_and_link(3, 5, 3)
    h.alloc_and_link(5, 8, 5)
    pfn = _fault_page(h, 3)
    anon = vma.anon_vma
    assert h.merge_existing(vma, 3, 5) is vma_prev
    assert h.pages(vma_prev) == (0, 8, 0)
    assert vma_prev.anon_vma is anon
    _assert_walk_finds(h, pfn)


def test_dup_anon_vma_prev_extends_over_part() -> None:
    """test_dup_anon_vma: prev extends over the first part of a faulted vma and takes its
    anon_vma (the pages it now covers belong to it).

              |<----->|
      |-------*************
        prev       vma
       extend shrink/delete
    """
    h = VmaHarness("anon_vma_chain")
    vma_prev = h.alloc_and_link(0, 3, 0)
    vma = h.alloc_and_link(3, 8, 3)
    pfn = _fault_page(h, 4)
    anon = vma.anon_vma
    assert h.merge_existing(vma, 3, 5) is vma_prev
    assert h.pages(vma_prev) == (0, 5, 0)
    assert h.pages(vma) == (5, 8, 5)
    assert vma_prev.anon_vma is anon
    _assert_walk_finds(h, pfn)


def test_dup_anon_vma_next_extends_over_part() -> None:
    """test_dup_anon_vma: next extends down over the last part of a faulted vma and takes
    its anon_vma.

          |<----->|
      *************-------|
           vma       next
      shrink/delete extend
    """
    h = VmaHarness("anon_vma_chain")
    vma = h.alloc_and_link(0, 5, 0)
    vma_next = h.alloc_and_link(5, 8, 5)
    pfn = _fault_page(h, 4)
    anon = vma.anon_vma
    assert h.merge_existing(vma, 3, 5) is vma_next
    assert h.pages(vma_next) == (3, 8, 3)
    assert h.pages(vma) == (0, 3, 0)
    assert vma_next.anon_vma is anon
    _assert_walk_finds(h, pfn)


# --- test_merge_extend, test_copy_vma, test_mmap_region_basic -----------------------------


@pytest.mark.parametrize("rmap", BOTH_SCHEMES)
def test_merge_extend(rmap: str) -> None:
    """test_merge_extend: vma_merge_extend() (mremap growing in place) into the gap up to
    the next compatible vma merges the two.

      <->
      *  *    ->   ****
    """
    h = VmaHarness(rmap)
    vma = h.alloc_and_link(0, 1, 0)
    h.alloc_and_link(3, 4, 3)
    assert h.process.mremap(h.addr(0), PAGE, 3 * PAGE, 0) == h.addr(0)
    assert h.mm.vmas.lookup(h.addr(0)) is vma
    assert h.pages(vma) == (0, 4, 0)
    assert h.map_count == 1


@pytest.mark.parametrize("rmap", BOTH_SCHEMES)
def test_copy_vma(rmap: str) -> None:
    """test_copy_vma: copying a vma backwards where nothing can merge makes a new vma with
    the destination's pgoff; copying it next to a compatible vma merges into that one.

      012345678       012345678
         VV      ->   NN VV

      012345678       012345678
      VV    NN   ->   VV  NNNN
    """
    h = VmaHarness(rmap)
    vma = h.alloc_and_link(3, 5, 3)
    new = copy_vma(h.mm, vma, h.addr(0), 2 * PAGE, h.base_pgoff + 0)
    assert new is not vma
    assert h.pages(new) == (0, 2, 0)

    h = VmaHarness(rmap)
    vma = h.alloc_and_link(0, 2, 0)
    vma_next = h.alloc_and_link(6, 8, 6)
    new = copy_vma(h.mm, vma, h.addr(4), 2 * PAGE, h.base_pgoff + 4)
    assert new is vma_next
    assert h.pages(vma_next) == (4, 8, 4)


@pytest.mark.parametrize("rmap", BOTH_SCHEMES)
def test_mmap_region_basic(rmap: str) -> None:
    """test_mmap_region_basic: mappings placed right after and right before existing ones
    merge with them, leaving two vmas with the anonymous linear pgoff of their start."""
    h = VmaHarness(rmap)
    p = h.process
    assert p.mmap(0x300000, 0x3000, RW, PA | MAP_FIXED) == 0x300000
    assert p.mmap(0x250000, 0x3000, RW, PA | MAP_FIXED) == 0x250000
    assert p.mmap(0x303000, 0x3000, RW, PA | MAP_FIXED) == 0x303000
    assert p.mmap(0x24D000, 0x3000, RW, PA | MAP_FIXED) == 0x24D000
    assert [(v.start, v.end, v.pgoff) for v in p.vmas()] == [
        (0x24D000, 0x253000, 0x24D), (0x300000, 0x306000, 0x300)]


@pytest.mark.parametrize("rmap", BOTH_SCHEMES)
@pytest.mark.parametrize("faulted", [False, True], ids=["unfaulted", "faulted"])
def test_mmap_fixed_over_middle_remerges(rmap: str, faulted: bool) -> None:
    """__mmap_region(): MAP_FIXED with the same protection over the middle of a vma first
    splits and unmaps the middle, then the new range (pgoff = its linear index) merges
    with both pieces again: one vma, the old pgoff. A faulted vma too: the new range has
    no anon_vma and both pieces share one (is_mergeable_anon_vma() case 2); the replaced
    page reads zero, the others keep their data.

      012      012      012
      AAA  ->  A C  ->  AAA
    """
    h = VmaHarness(rmap)
    p = h.process
    p.mmap(h.addr(0), 3 * PAGE, RW, PA | MAP_FIXED)
    if faulted:
        p.write(h.addr(0), b"x" * 3 * PAGE)
    p.mmap(h.addr(1), PAGE, RW, PA | MAP_FIXED)
    assert [h.pages(v) for v in h.mm.vmas] == [(0, 3, 0)]
    assert p.read(h.addr(1), 1) == b"\0"
    assert p.read(h.addr(2), 1) == (b"x" if faulted else b"\0")


@pytest.mark.parametrize("rmap", BOTH_SCHEMES)
def test_mremap_moves_back_next_to_itself(rmap: str) -> None:
    """copy_vma through mremap: an unfaulted vma moved away and back lands next to its old
    neighbour with ``pgoff = new_addr >> PAGE_SHIFT`` and merges again (copy_vma resets the
    pgoff of an unfaulted anonymous vma "to increase its chance of merging")."""
    h = VmaHarness(rmap)
    p = h.process
    p.mmap(h.addr(0), 4 * PAGE, RW, PA | MAP_FIXED)
    p.mremap(h.addr(2), 2 * PAGE, 2 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, h.addr(10))
    assert ruler(p.vmas(), h.base, 16) == "AA        BB"
    p.mremap(h.addr(10), 2 * PAGE, 2 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, h.addr(2))
    assert ruler(p.vmas(), h.base, 16) == "AAAA"
