"""mremap(2): ports of tools/testing/selftests/mm/mremap_test.c and the mremap table of
docs/kernel-facts.md (probed on this machine's 6.18 kernel).

Layouts are drawn as rulers over the test window (page ``n`` is ``addr(n)``). Whether a
vma merges after growing in place or moving depends on pgoff and flags for every scheme;
where it also depends on anon_vmas (two faulted vmas never merge) the test runs under
anon_vma_chain only. Error returns are in test_syscall_errno.py.

mremap_test.c's alignment matrix (PTE/1MB/PMD/PUD-aligned moves of 8KB-2GB) is kept with
the same alignments but only the first and last page and one page per megabyte carry a
pattern, which keeps the 2GB cases fast; the timing part of that test is not ported.
Not ported: mremap_move_multi_invalid_vmas (userfaultfd).
"""

from __future__ import annotations

import errno

import pytest
from vma_layout import PA, PAGE, RW, WINDOW, addr, ruler

from mmcore import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_LOCKED,
    MAP_NORESERVE,
    MAP_SHARED,
    MREMAP_DONTUNMAP,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PROT_NONE,
    PROT_READ,
    Machine,
    Process,
)

BOTH_SCHEMES = ["anon_vma_chain", "pte_chains"]
MOVE = MREMAP_MAYMOVE | MREMAP_FIXED
SA = MAP_SHARED | MAP_ANONYMOUS
KB = 1024
MB = 1024 * KB
GB = 1024 * MB


def spawn(rmap: str = "anon_vma_chain") -> Process:
    """A fresh process."""
    return Machine(rmap=rmap).spawn()


def layout(p: Process, npages: int = 40, base: int = WINDOW) -> str:
    """The test window as a ruler (see vma_layout.ruler)."""
    return ruler(p.vmas(), base, npages)


def fill(p: Process, start: int, npages: int, tag: bytes) -> None:
    """Write a distinct marker into every page of [start, start + npages pages)."""
    for i in range(npages):
        p.write(start + i * PAGE, tag + i.to_bytes(4, "little"))


def check(p: Process, start: int, npages: int, tag: bytes, first: int = 0) -> None:
    """Every page holds the marker :func:`fill` wrote into page ``first + i``."""
    for i in range(npages):
        want = tag + (first + i).to_bytes(4, "little")
        assert p.read(start + i * PAGE, len(want)) == want, f"page {i} lost its data"


# --- mremap_test.c: expected failures and the alignment matrix ----------------------------


def test_expected_failure_overlapping_regions() -> None:
    """"mremap - Source and Destination Regions Overlapping": a FIXED move onto its own
    source is EINVAL, and nothing changes."""
    p = spawn()
    src = p.mmap(addr(0), PAGE, RW, SA | MAP_FIXED_NOREPLACE)
    with pytest.raises(OSError) as e:
        p.mremap(src, PAGE, PAGE, MOVE, src)
    assert e.value.errno == errno.EINVAL
    assert layout(p) == "A"


@pytest.mark.parametrize(("src_off", "dst_off"), [(0, KB), (KB, 0)],
                         ids=["destination-misaligned", "source-misaligned"])
def test_expected_failure_misaligned(src_off: int, dst_off: int) -> None:
    """"Destination Address Misaligned (1KB-aligned)" and "Source Address Misaligned": a
    move from or to an address that is not page aligned is EINVAL."""
    p = spawn()
    src = p.mmap(addr(0), PAGE, RW, SA | MAP_FIXED_NOREPLACE)
    with pytest.raises(OSError) as e:
        p.mremap(src + src_off, PAGE, PAGE, MOVE, addr(8) + dst_off)
    assert e.value.errno == errno.EINVAL
    assert layout(p) == "A"


def _aligned(alignment: int, floor: int) -> int:
    """get_source_mapping(): the first address above ``floor`` aligned to ``alignment``
    but not to twice that (so a 1MB-aligned address is not also 2MB-aligned)."""
    a = (floor + alignment - 1) // alignment * alignment
    if not a & alignment:
        a += alignment
    return a


@pytest.mark.parametrize(("src_align", "dst_align", "size"), [
    (PAGE, PAGE, 2 * PAGE),
    (MB, PAGE, 2 * MB),
    (MB, MB, 2 * MB),
    (2 * MB, PAGE, 4 * MB),
    (2 * MB, MB, 4 * MB),
    (2 * MB, 2 * MB, 4 * MB),
    (GB, PAGE, 2 * GB),
    (GB, MB, 2 * GB),
    (GB, 2 * MB, 2 * GB),
    (GB, GB, 2 * GB),
    (MB, MB, 5 * MB),
], ids=lambda v: f"{v // MB}M" if v >= MB else f"{v // KB}K")
def test_remap_region(src_align: int, dst_align: int, size: int) -> None:
    """remap_region(): a shared anonymous region at a given source alignment moved (same
    length, MREMAP_FIXED) to a destination of a given alignment keeps its contents and
    leaves nothing behind. MAP_NORESERVE: 2 GiB of shmem is more than the simulated
    RAM + swap, which vm.overcommit_memory = 0 refuses to charge (__vm_enough_memory)."""
    p = spawn()
    src = p.mmap(_aligned(src_align, 0x4000_0000), size, RW,
                 SA | MAP_FIXED_NOREPLACE | MAP_NORESERVE)
    dst = _aligned(dst_align, src + size + dst_align)
    pages = [0, size // PAGE - 1, *range(MB // PAGE, size // PAGE, MB // PAGE)][:64]
    for i in pages:
        p.write(src + i * PAGE, b"pattern" + i.to_bytes(4, "little"))
    assert p.mremap(src, size, size, MOVE, dst) == dst
    for i in pages:
        assert p.read(dst + i * PAGE, 11) == b"pattern" + i.to_bytes(4, "little")
    assert [(v.start, v.end) for v in p.vmas()] == [(dst, dst + size)]


def test_remap_region_with_destination_preamble() -> None:
    """"5MB mremap - Source 1MB-aligned, Dest 1MB-aligned with 40MB Preamble": moving next
    to an existing mapping that ends at the destination leaves that mapping's data
    intact."""
    p = spawn()
    size, preamble = 5 * MB, 40 * MB
    src = p.mmap(_aligned(MB, 0x4000_0000), size, RW, SA | MAP_FIXED_NOREPLACE)
    dst = _aligned(MB, src + size + MB + preamble)
    pre = p.mmap(dst - preamble, preamble, RW, SA | MAP_FIXED_NOREPLACE)
    p.write(pre, b"preamble-first")
    p.write(dst - PAGE, b"preamble-last")
    p.write(src, b"source")
    assert p.mremap(src, size, size, MOVE, dst) == dst
    assert p.read(dst, 6) == b"source"
    assert p.read(pre, 14) == b"preamble-first"
    assert p.read(dst - PAGE, 13) == b"preamble-last"


# --- mremap_test.c: expand merge -----------------------------------------------------------


@pytest.mark.parametrize("rmap", BOTH_SCHEMES)
def test_mremap_expand_merge(rmap: str) -> None:
    """mremap_expand_merge: three pages, the middle one unmapped, then the first grown in
    place to two pages: it fills the hole and merges with the third (vma_merge_extend).

      012      012      012
      AAA  ->  A B  ->  AAA
    """
    p = spawn(rmap)
    start = p.mmap(0, 3 * PAGE, RW, PA)
    p.munmap(start + PAGE, PAGE)
    assert p.mremap(start, PAGE, 2 * PAGE, 0) == start
    assert ruler(p.vmas(), start, 3) == "AAA"


@pytest.mark.parametrize("rmap", BOTH_SCHEMES)
def test_mremap_expand_merge_offset(rmap: str) -> None:
    """mremap_expand_merge_offset: the last page unmapped, then the second page (which ends
    the vma) grown back to two pages: the mapping is restored to its former single vma.

      012      012      012
      AAA  ->  AA   ->  AAA
    """
    p = spawn(rmap)
    start = p.mmap(0, 3 * PAGE, RW, PA)
    p.munmap(start + 2 * PAGE, PAGE)
    assert p.mremap(start + PAGE, PAGE, 2 * PAGE, 0) == start + PAGE
    assert ruler(p.vmas(), start, 3) == "AAA"


# --- mremap_test.c: moves inside and across vmas ---------------------------------------------


def test_mremap_move_within_range() -> None:
    """mremap_move_within_range: moving the second half of a block to just before it, in
    the same vma, does not corrupt the half that stays.

      |DDDDddddSSSSssss|  (s moves to d; S must survive)
    """
    p = spawn()
    ptr = p.mmap(0, 20 * MB, RW, PA)
    src = (ptr + 6 * MB) & ~(2 * MB - 1)
    dest = src - 2 * MB
    pages = 2 * MB // PAGE
    fill(p, src, pages, b"S")
    assert p.mremap(src + MB, MB, MB, MOVE, dest + MB) == dest + MB
    check(p, src, pages // 2, b"S")
    check(p, dest + MB, pages // 2, b"S", first=pages // 2)


def test_mremap_move_1mb_from_start() -> None:
    """mremap_move_1mb_from_start: a move whose destination's aligned-down start falls on
    an unmapped range does not destroy the beginning of the source mapping."""
    p = spawn()
    size = 6 * MB
    src = p.mmap(_aligned(MB + 256 * KB, 0x4000_0000), size, RW, SA | MAP_FIXED_NOREPLACE)
    dest = p.mmap(_aligned(MB + 256 * KB, src + size), size, RW, SA | MAP_FIXED_NOREPLACE)
    fill(p, src, 2 * MB // PAGE, b"s")
    p.munmap(dest, MB)
    assert p.mremap(src + MB, MB, MB, MOVE, dest + MB) == dest + MB
    check(p, src, MB // PAGE, b"s")
    check(p, dest + MB, MB // PAGE, b"s", first=MB // PAGE)


@pytest.mark.parametrize("dontunmap", [False, True], ids=["unmap", "dontunmap"])
def test_mremap_move_multiple_vmas(dontunmap: bool) -> None:
    """mremap_move_multiple_vmas: an 11-page range made of five vmas with gaps is moved in
    one MREMAP_FIXED call, then next to itself, then back over a PROT_NONE mapping; the
    gaps are kept and every page keeps its contents (6.17+ remap_move()).

       0   2   4 5 6   8   10 offset in buffer
      |*| |*| |*****| |*| |*|
    """
    flags = MOVE | (MREMAP_DONTUNMAP if dontunmap else 0)
    p = spawn()
    size = 11 * PAGE
    ptr = p.mmap(addr(0), size, RW, PA | MAP_FIXED)
    tgt = addr(40)
    for i in (1, 3, 7, 9):
        p.munmap(ptr + i * PAGE, PAGE)
    present = [0, 2, 4, 5, 6, 8, 10]
    for i in present:
        p.write(ptr + i * PAGE, b"multi" + i.to_bytes(4, "little"))

    def ok(base: int) -> None:
        for i in present:
            assert p.read(base + i * PAGE, 9) == b"multi" + i.to_bytes(4, "little")

    assert p.mremap(ptr, size, size, flags, tgt) == tgt
    assert ruler(p.vmas(), tgt, 11) == "A B CCC D E"
    ok(tgt)
    assert p.mremap(tgt, size, size, flags, tgt + size) == tgt + size
    assert ruler(p.vmas(), tgt + size, 11) == "A B CCC D E"
    ok(tgt + size)
    p.mmap(tgt, size, PROT_NONE, PA | MAP_FIXED)
    assert p.mremap(tgt + size, size, size, flags, tgt) == tgt
    ok(tgt)
    # Only the moved vmas replaced the PROT_NONE mapping: its pieces remain in the gaps.
    prot_none = [e.start for e in p.maps() if e.perms == "---p"]
    assert prot_none == [tgt + i * PAGE for i in (1, 3, 7, 9)]
    if dontunmap:
        # The sources stayed mapped, emptied: the original range still has its five vmas.
        assert ruler(p.vmas(), ptr, 11) == "A B CCC D E"
        assert p.read(ptr, 1) == b"\0"
    else:
        assert ruler(p.vmas(), ptr, 11) == ""


@pytest.mark.parametrize("inplace", [True, False], ids=["inplace", "moved"])
def test_mremap_shrink_multiple_vmas(inplace: bool) -> None:
    """mremap_shrink_multiple_vmas: shrinking a range that spans several vmas and gaps to
    its first page succeeds (the unmapped tail may cross vma boundaries), in place or
    combined with a FIXED move.

       0   2   4   6   8   10         0
      |*| |*| |*| |*| |*| |*|   ->   |*|
    """
    p = spawn()
    ptr = p.mmap(addr(0), 10 * PAGE, RW, PA | MAP_FIXED)
    for i in range(1, 10, 2):
        p.munmap(ptr + i * PAGE, PAGE)
    p.write(ptr, b"first")
    if inplace:
        assert p.mremap(ptr, 10 * PAGE, PAGE, 0) == ptr
        assert layout(p) == "A"
        assert p.read(ptr, 5) == b"first"
    else:
        assert p.mremap(ptr, 10 * PAGE, PAGE, MOVE, addr(20)) == addr(20)
        assert layout(p, 30) == " " * 20 + "A"
        assert p.read(addr(20), 5) == b"first"


@pytest.mark.parametrize("dontunmap", [False, True], ids=["unmap", "dontunmap"])
def test_mremap_move_multiple_vmas_split(dontunmap: bool) -> None:
    """mremap_move_multiple_vmas_split: a move that starts and ends inside vmas splits them
    and keeps the gap in between.

           <------------->
       0 1 2 3 4 5 6 7 8 9 10        0 1 2 3 4 5 6 7
      |**********| |*******|   ->   |*****| |*****|
       0 1 2 3 4   5 6 7 8 9         2 3 4   5 6 7   pattern offset
    """
    flags = MOVE | (MREMAP_DONTUNMAP if dontunmap else 0)
    p = spawn()
    ptr = p.mmap(addr(0), 10 * PAGE, RW, PA | MAP_FIXED)
    p.munmap(ptr + 5 * PAGE, PAGE)
    fill(p, ptr, 5, b"split")
    fill(p, ptr + 6 * PAGE, 4, b"tail")
    tgt = addr(20)
    assert p.mremap(ptr + 2 * PAGE, 7 * PAGE, 7 * PAGE, flags, tgt) == tgt
    assert ruler(p.vmas(), tgt, 10) == "AAA BBB"
    check(p, tgt, 3, b"split", first=2)
    check(p, tgt + 4 * PAGE, 3, b"tail", first=0)
    assert layout(p, 20) == ("AAAAA BBBB" if dontunmap else "AA       B")


# --- kernel-facts.md §4: resizing in place ---------------------------------------------------


@pytest.mark.parametrize("rmap", BOTH_SCHEMES)
def test_same_length_past_vma_end_without_flags_is_a_noop(rmap: str) -> None:
    """kernel-facts §4: with old == new length and no flags, mremap returns old_addr and
    checks nothing beyond "old_addr is mapped", even when the range runs past the vma;
    an unaligned old_len is rounded up, also giving a no-op."""
    p = spawn(rmap)
    a = p.mmap(addr(0), 2 * PAGE, RW, PA | MAP_FIXED)
    assert p.mremap(a, 3 * PAGE, 3 * PAGE, 0) == a
    assert p.mremap(a, PAGE + 1, 2 * PAGE, 0) == a
    assert layout(p) == "AA"


@pytest.mark.parametrize("rmap", BOTH_SCHEMES)
def test_grow_in_place_filling_gap_merges_unfaulted(rmap: str) -> None:
    """kernel-facts §4: growing [20,22) by exactly the gap up to an unfaulted [24,26)
    merges the two into [20,26)."""
    p = spawn(rmap)
    p.mmap(addr(20), 2 * PAGE, RW, PA | MAP_FIXED)
    p.mmap(addr(24), 2 * PAGE, RW, PA | MAP_FIXED)
    assert p.mremap(addr(20), 2 * PAGE, 4 * PAGE, 0) == addr(20)
    assert layout(p)[20:] == "AAAAAA"


@pytest.mark.parametrize(("old_faulted", "next_faulted", "expected"), [
    (True, False, "AAAAAA"),
    (False, True, "AAAAAA"),
    (True, True, "AAAABB"),
], ids=["old-faulted", "next-faulted", "both-faulted"])
def test_grow_in_place_filling_gap_anon_vmas(old_faulted: bool, next_faulted: bool,
                                             expected: str) -> None:
    """kernel-facts §4: growing into the gap up to the next vma merges when at most one of
    the two has an anon_vma; two faulted vmas (different anon_vmas) stay apart, the grown
    one ending where the other starts."""
    p = spawn()
    p.mmap(addr(0), 2 * PAGE, RW, PA | MAP_FIXED)
    p.mmap(addr(4), 2 * PAGE, RW, PA | MAP_FIXED)
    if old_faulted:
        p.write(addr(0), b"old")
    if next_faulted:
        p.write(addr(4), b"next")
    assert p.mremap(addr(0), 2 * PAGE, 4 * PAGE, 0) == addr(0)
    assert layout(p) == expected
    if old_faulted:
        assert p.read(addr(0), 3) == b"old"
    if next_faulted:
        assert p.read(addr(4), 4) == b"next"


@pytest.mark.parametrize("rmap", BOTH_SCHEMES)
def test_grow_partially_into_gap(rmap: str) -> None:
    """kernel-facts §4: [60,62) grown to 3 pages with [64,66) next: [60,63) + [64,66)."""
    p = spawn(rmap)
    p.mmap(addr(0), 2 * PAGE, RW, PA | MAP_FIXED)
    p.mmap(addr(4), 2 * PAGE, RW, PA | MAP_FIXED)
    assert p.mremap(addr(0), 2 * PAGE, 3 * PAGE, 0) == addr(0)
    assert layout(p) == "AAA BB"


@pytest.mark.parametrize("rmap", BOTH_SCHEMES)
def test_grow_with_maymove_moves_when_no_room(rmap: str) -> None:
    """kernel-facts §4: [270,272) with [274,276) next, grown to 5 pages with MAYMOVE: the
    mapping moves to a new (top-down) address with its data; the old range is unmapped."""
    p = spawn(rmap)
    p.mmap(addr(0), 2 * PAGE, RW, PA | MAP_FIXED)
    p.mmap(addr(4), 2 * PAGE, RW, PA | MAP_FIXED)
    p.write(addr(1), b"data")
    new = p.mremap(addr(0), 2 * PAGE, 5 * PAGE, MREMAP_MAYMOVE)
    assert new != addr(0)
    assert layout(p) == "    AA"
    assert p.read(new + PAGE, 4) == b"data"
    assert ruler(p.vmas(), new, 5) == "AAAAA"


@pytest.mark.parametrize("rmap", BOTH_SCHEMES)
def test_shrink(rmap: str) -> None:
    """kernel-facts §4: shrinking a faulted [80,84) to 2 pages unmaps the tail; shrinking
    while moving (MAYMOVE|FIXED) moves only what is kept and unmaps the whole source."""
    p = spawn(rmap)
    a = p.mmap(addr(0), 4 * PAGE, RW, PA | MAP_FIXED)
    fill(p, a, 4, b"k")
    assert p.mremap(a, 4 * PAGE, 2 * PAGE, 0) == a
    assert layout(p) == "AA"
    check(p, a, 2, b"k")

    b = p.mmap(addr(6), 4 * PAGE, RW, PA | MAP_FIXED)
    fill(p, b, 4, b"m")
    assert p.mremap(b, 4 * PAGE, 2 * PAGE, MOVE, addr(15)) == addr(15)
    assert layout(p) == "AA" + " " * 13 + "BB"
    check(p, addr(15), 2, b"m")


# --- kernel-facts.md §4: moves -------------------------------------------------------------


@pytest.mark.parametrize("rmap", BOTH_SCHEMES)
def test_fixed_move_onto_mapped_destination_replaces_it(rmap: str) -> None:
    """kernel-facts §4: a 2-page RW mapping moved onto the middle of a read-only [240,244)
    replaces what it covers: [240,241) r, [241,243) rw, [243,244) r."""
    p = spawn(rmap)
    p.mmap(addr(0), 4 * PAGE, PROT_READ, PA | MAP_FIXED)
    src = p.mmap(addr(10), 2 * PAGE, RW, PA | MAP_FIXED)
    assert p.mremap(src, 2 * PAGE, 2 * PAGE, MOVE, addr(1)) == addr(1)
    assert layout(p) == "ABBC"
    assert [e.perms for e in p.maps()] == ["r--p", "rw-p", "r--p"]


@pytest.mark.parametrize("rmap", BOTH_SCHEMES)
def test_move_spanning_two_adjacent_vmas(rmap: str) -> None:
    """kernel-facts §4: one MAYMOVE|FIXED call moves a range made of an RW and an R vma
    (allowed since 6.17): both arrive with their own flags, the data moves, the old range
    is unmapped."""
    p = spawn(rmap)
    p.mmap(addr(0), 2 * PAGE, RW, PA | MAP_FIXED)
    p.write(addr(0), b"rw")
    p.mmap(addr(2), 2 * PAGE, PROT_READ, PA | MAP_FIXED)
    assert p.mremap(addr(0), 4 * PAGE, 4 * PAGE, MOVE, addr(10)) == addr(10)
    assert layout(p) == " " * 10 + "AABB"
    assert [(e.perms, e.vm_flags) for e in p.maps()] == [
        ("rw-p", "rd wr mr mw me ac"), ("r--p", "rd mr mw me")]
    assert p.read(addr(10), 2) == b"rw"


@pytest.mark.parametrize("rmap", BOTH_SCHEMES)
def test_move_spanning_two_vmas_keeps_the_hole(rmap: str) -> None:
    """kernel-facts §4: [120,122) RW, hole, [123,125) R moved as 5 pages to P(130): the
    hole is kept: [130,132) rw, [133,135) r--."""
    p = spawn(rmap)
    p.mmap(addr(0), 2 * PAGE, RW, PA | MAP_FIXED)
    p.mmap(addr(3), 2 * PAGE, PROT_READ, PA | MAP_FIXED)
    assert p.mremap(addr(0), 5 * PAGE, 5 * PAGE, MOVE, addr(10)) == addr(10)
    assert layout(p) == " " * 10 + "AA BB"


@pytest.mark.parametrize("flags", [MREMAP_MAYMOVE, 0], ids=["maymove", "noflags"])
def test_same_length_over_two_vmas_without_fixed_is_a_noop(flags: int) -> None:
    """kernel-facts §4: the same two-vma range with the same length but without FIXED is
    a successful no-op (only a MREMAP_FIXED same-length move is a multi-vma move)."""
    p = spawn()
    p.mmap(addr(0), 2 * PAGE, RW, PA | MAP_FIXED)
    p.mmap(addr(2), 2 * PAGE, PROT_READ, PA | MAP_FIXED)
    assert p.mremap(addr(0), 4 * PAGE, 4 * PAGE, flags) == addr(0)
    assert layout(p) == "AABB"


def test_dontunmap_multi_vma_move_keeps_sources() -> None:
    """kernel-facts §4: a two-vma move with MAYMOVE|FIXED|DONTUNMAP is allowed; both old
    vmas stay mapped with their flags and both new ones appear."""
    p = spawn()
    p.mmap(addr(0), 2 * PAGE, RW, PA | MAP_FIXED)
    p.mmap(addr(2), 2 * PAGE, PROT_READ, PA | MAP_FIXED)
    assert p.mremap(addr(0), 4 * PAGE, 4 * PAGE, MOVE | MREMAP_DONTUNMAP,
                    addr(10)) == addr(10)
    assert layout(p) == "AABB      CCDD"
    assert [e.perms for e in p.maps()] == ["rw-p", "r--p", "rw-p", "r--p"]


@pytest.mark.parametrize("rmap", BOTH_SCHEMES)
def test_dontunmap_faulted_region(rmap: str) -> None:
    """kernel-facts §4: DONTUNMAP move of a faulted region filled with 'A': the old range
    stays mapped with the same flags (``ac`` kept) but empty (Rss 0, reads back zeroes,
    no anon_vma left), the new one has the data."""
    p = spawn(rmap)
    old = p.mmap(addr(0), 2 * PAGE, RW, PA | MAP_FIXED)
    p.write(old, b"A" * 2 * PAGE)
    assert p.mremap(old, 2 * PAGE, 2 * PAGE, MOVE | MREMAP_DONTUNMAP, addr(10)) == addr(10)
    assert layout(p) == "AA        BB"
    assert [e.vm_flags for e in p.maps()] == ["rd wr mr mw me ac"] * 2
    assert not p.pagemap(old).present and not p.pagemap(old + PAGE).present
    assert p.vmas()[0].anon_vma is None
    assert p.read(old, 2) == b"\0\0"
    assert p.read(addr(10), 2) == b"AA"
    assert p.read(addr(11) + PAGE - 1, 1) == b"A"


def test_dontunmap_without_fixed() -> None:
    """kernel-facts §4: DONTUNMAP without FIXED picks a new address; the old range stays
    mapped with the same flags."""
    p = spawn()
    old = p.mmap(addr(0), 2 * PAGE, RW, PA | MAP_FIXED)
    p.write(old, b"B")
    new = p.mremap(old, 2 * PAGE, 2 * PAGE, MREMAP_MAYMOVE | MREMAP_DONTUNMAP)
    assert new != old
    assert layout(p) == "AA"
    assert p.read(new, 1) == b"B"
    assert p.read(old, 1) == b"\0"


def test_dontunmap_shared_anon_old_range_still_reads_data() -> None:
    """kernel-facts §4: DONTUNMAP of MAP_SHARED anonymous memory: old and new map the same
    object, so the old range still reads the data ('S')."""
    p = spawn()
    old = p.mmap(addr(0), 2 * PAGE, RW, SA | MAP_FIXED)
    p.write(old, b"S")
    assert p.mremap(old, 2 * PAGE, 2 * PAGE, MOVE | MREMAP_DONTUNMAP, addr(10)) == addr(10)
    assert p.read(addr(10), 1) == b"S"
    assert p.read(old, 1) == b"S"
    maps = p.maps()
    assert maps[0].inode == maps[1].inode and maps[0].path == "/dev/zero (deleted)"


def test_old_len_zero_duplicates_shared_mapping() -> None:
    """kernel-facts §4: old_len 0 on MAP_SHARED anonymous memory makes a second mapping of
    the same object (the DOS-emu "duplicate shm area" case)."""
    p = spawn()
    a = p.mmap(addr(0), 2 * PAGE, RW, SA | MAP_FIXED)
    assert p.mremap(a, 0, 2 * PAGE, MOVE, addr(5)) == addr(5)
    assert layout(p) == "AA   BB"
    p.write(addr(6), b"dup")
    assert p.read(a + PAGE, 3) == b"dup"
    maps = p.maps()
    assert maps[0].inode == maps[1].inode


@pytest.mark.parametrize("rmap", BOTH_SCHEMES)
def test_faulted_vma_moved_next_to_unfaulted_does_not_merge(rmap: str) -> None:
    """kernel-facts §4: a faulted [250,252) moved right after a compatible unfaulted
    [260,262) keeps its old linear pgoff, so the two do not merge; an unfaulted one moved
    the same way takes the new pgoff and merges (copy_vma)."""
    p = spawn(rmap)
    p.mmap(addr(10), 2 * PAGE, RW, PA | MAP_FIXED)
    a = p.mmap(addr(0), 2 * PAGE, RW, PA | MAP_FIXED)
    p.write(a, b"f")
    p.mremap(a, 2 * PAGE, 2 * PAGE, MOVE, addr(12))
    assert layout(p) == " " * 10 + "AABB"
    moved = p.mm.vmas.lookup(addr(12))
    assert moved is not None and moved.pgoff == addr(0) >> 12

    q = spawn(rmap)
    q.mmap(addr(10), 2 * PAGE, RW, PA | MAP_FIXED)
    b = q.mmap(addr(0), 2 * PAGE, RW, PA | MAP_FIXED)
    q.mremap(b, 2 * PAGE, 2 * PAGE, MOVE, addr(12))
    assert layout(q) == " " * 10 + "AAAA"


@pytest.mark.parametrize("rmap", BOTH_SCHEMES)
def test_move_keeps_linear_pgoff_of_a_faulted_vma(rmap: str) -> None:
    """move_vma(): ``new_pgoff = vm_pgoff + ((old_addr - vm_start) >> PAGE_SHIFT)``: the
    moved middle of a faulted vma keeps the pgoff of where its pages were created, and its
    pages stay reachable by the rmap walk."""
    p = spawn(rmap)
    a = p.mmap(addr(0), 6 * PAGE, RW, PA | MAP_FIXED)
    fill(p, a, 6, b"p")
    p.mremap(addr(2), 2 * PAGE, 2 * PAGE, MOVE, addr(20))
    moved = p.mm.vmas.lookup(addr(20))
    assert moved is not None and moved.pgoff == (addr(0) >> 12) + 2
    check(p, addr(20), 2, b"p", first=2)
    m = p.machine
    pfn = p.pagemap(addr(21)).pfn
    assert m.rmap_walk(pfn).mappings == m.rmap_truth(pfn) == [(p.pid, addr(21))]


@pytest.mark.parametrize("rmap", BOTH_SCHEMES)
def test_grow_locked_mapping_populates_the_new_part(rmap: str) -> None:
    """check_prep_vma() / do_mremap(): growing an mlocked vma, in place or by moving it,
    faults in the added pages (mm_populate(new_addr + old_len, delta)), as mlock would."""
    p = spawn(rmap)
    a = p.mmap(addr(0), 2 * PAGE, RW, PA | MAP_FIXED | MAP_LOCKED)
    assert p.mremap(a, 2 * PAGE, 4 * PAGE, 0) == a
    assert [p.pagemap(a + i * PAGE).present for i in range(4)] == [True] * 4
    p.mmap(addr(4), PAGE, PROT_READ, PA | MAP_FIXED)
    new = p.mremap(a, 4 * PAGE, 6 * PAGE, MREMAP_MAYMOVE)
    assert new != a
    assert [p.pagemap(new + i * PAGE).present for i in range(6)] == [True] * 6


@pytest.mark.parametrize("rmap", BOTH_SCHEMES)
def test_dontunmap_clears_lock_on_the_source(rmap: str) -> None:
    """dontunmap_complete(): "We always clear VM_LOCKED[ONFAULT] on the old vma" (its
    pages are gone); the new vma keeps ``lo``. VM_ACCOUNT stays on both (kernel-facts §4
    shows ``ac`` on the emptied source)."""
    p = spawn(rmap)
    a = p.mmap(addr(0), 2 * PAGE, RW, PA | MAP_FIXED | MAP_LOCKED)
    p.mremap(a, 2 * PAGE, 2 * PAGE, MOVE | MREMAP_DONTUNMAP, addr(10))
    assert [e.vm_flags for e in p.maps()] == ["rd wr mr mw me ac", "rd wr mr mw me lo ac"]
