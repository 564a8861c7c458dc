"""Ports of tools/testing/selftests/mm/merge.c (VMA merge behaviour seen from userspace).

Each kernel test maps over a 30-page PROT_NONE carveout with MAP_FIXED, changes it with
mprotect/mremap/fork, and checks the resulting vma with PROCMAP_QUERY; here the check is a
ruler over the carveout (see :mod:`vma_layout`). Offsets "+1000 pages" and "+2000 pages"
park a vma far outside the carveout, as the kernel's tests do.

These are anon_vma merge rules of today's Linux (6.16+ is_mergeable_anon_vma(), with the
6.18.y fixes for mremap() of a faulted vma next to an unfaulted one), so they run under the
anon_vma_chain scheme. The mremap_faulted_to_unfaulted_* tests come in the forked and
unforked variants of the merge_with_fork fixture (fb39444732f0): in a fork child a vma
copied from a forked vma must not merge with an unfaulted neighbour.

Not ported: handle_uprobe_upon_merged_vma (file mappings and uprobes), ksm_merge
(PR_SET_MEMORY_MERGE), and the MREMAP_MUST_RELOCATE_ANON tests of an unmerged series.
"""

from __future__ import annotations

import pytest
from vma_layout import PA, PAGE, RW, WINDOW, addr, carveout, ruler

from mmcore import (
    MAP_FIXED,
    MAP_NORESERVE,
    MREMAP_DONTUNMAP,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
    VM_READ,
    VM_WRITE,
    Machine,
    Process,
)

MOVE = MREMAP_MAYMOVE | MREMAP_FIXED
FAR = 1000 * PAGE
FARTHER = 2000 * PAGE


@pytest.fixture
def p() -> Process:
    """A process with the merge fixture's PROT_NONE carveout at the test window."""
    proc = Machine(rmap="anon_vma_chain").spawn()
    carveout(proc)
    return proc


def vma_range(p: Process, ptr: int) -> tuple[int, int]:
    """find_vma_procmap(): (vma_start, vma_end) of the vma containing ``ptr``."""
    vma = p.mm.vmas.lookup(ptr)
    assert vma is not None, f"nothing mapped at {ptr:#x}"
    return vma.start, vma.end


def mapped(p: Process) -> str:
    """The carveout as a ruler, with the PROT_NONE remains of the carveout drawn as '.'.

    Letters name the RW/RO vmas in address order, so ``"AAAAAAAAAA"`` after mapping 10
    pages at page 1 means a single merged vma.
    """
    out = []
    letters = iter("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    current = ""
    last = None
    for page in range(30):
        vma = p.mm.vmas.lookup(addr(page))
        if vma is None:
            out.append(" ")
            continue
        if not vma.flags & (VM_READ | VM_WRITE):
            out.append(".")
            last = vma
            continue
        if vma is not last:
            current = next(letters)
            last = vma
        out.append(current)
    return "".join(out).rstrip(". ")


# --- mprotect ---------------------------------------------------------------------------


def test_mprotect_unfaulted_left(p: Process) -> None:
    """mprotect_unfaulted_left: making the faulted RW half read-only merges it with the
    unfaulted RO half on its left ("though for ~15 years we did not").

         RO          RW                    RO
    |-----------|-----------|    |-----------------------|
    | unfaulted |  faulted  | -> |        faulted        |
    |-----------|-----------|    |-----------------------|
    """
    ptr = p.mmap(addr(1), 10 * PAGE, RW, PA | MAP_FIXED | MAP_NORESERVE)
    p.mprotect(ptr, 5 * PAGE, PROT_READ)
    p.write(ptr + 5 * PAGE, b"x")
    assert mapped(p) == ".AAAAABBBBB"
    p.mprotect(ptr + 5 * PAGE, 5 * PAGE, PROT_READ)
    assert vma_range(p, ptr) == (ptr, ptr + 10 * PAGE)


def test_mprotect_unfaulted_right(p: Process) -> None:
    """mprotect_unfaulted_right: the faulted RW half becomes read-only and merges with the
    unfaulted RO half on its right.

         RW          RO                    RO
    |-----------|-----------|    |-----------------------|
    |  faulted  | unfaulted | -> |        faulted        |
    |-----------|-----------|    |-----------------------|
    """
    ptr = p.mmap(addr(1), 10 * PAGE, RW, PA | MAP_FIXED | MAP_NORESERVE)
    p.mprotect(ptr + 5 * PAGE, 5 * PAGE, PROT_READ)
    p.write(ptr, b"x")
    p.mprotect(ptr, 5 * PAGE, PROT_READ)
    assert vma_range(p, ptr) == (ptr, ptr + 10 * PAGE)


def test_mprotect_unfaulted_both(p: Process) -> None:
    """mprotect_unfaulted_both: a faulted middle made read-only merges with unfaulted RO
    vmas on both sides.

         RO          RW          RO                      RO
    |-----------|-----------|-----------|    |-----------------------------------|
    | unfaulted |  faulted  | unfaulted | -> |              faulted              |
    |-----------|-----------|-----------|    |-----------------------------------|
    """
    ptr = p.mmap(addr(2), 9 * PAGE, RW, PA | MAP_FIXED | MAP_NORESERVE)
    p.mprotect(ptr, 3 * PAGE, PROT_READ)
    p.mprotect(ptr + 6 * PAGE, 3 * PAGE, PROT_READ)
    p.write(ptr + 3 * PAGE, b"x")
    assert mapped(p) == "..AAABBBCCC"
    p.mprotect(ptr + 3 * PAGE, 3 * PAGE, PROT_READ)
    assert vma_range(p, ptr) == (ptr, ptr + 9 * PAGE)


def test_mprotect_faulted_left_unfaulted_right(p: Process) -> None:
    """mprotect_faulted_left_unfaulted_right: left and middle share one anon_vma (split
    from one faulted vma), the right one has none; the middle made RO merges all three.

         RO          RW          RO                      RO
    |-----------|-----------|-----------|    |-----------------------------------|
    |  faulted  |  faulted  | unfaulted | -> |              faulted              |
    |-----------|-----------|-----------|    |-----------------------------------|
    """
    ptr = p.mmap(addr(2), 9 * PAGE, RW, PA | MAP_FIXED | MAP_NORESERVE)
    p.mprotect(ptr + 6 * PAGE, 3 * PAGE, PROT_READ)
    p.write(ptr, b"x")
    p.mprotect(ptr, 3 * PAGE, PROT_READ)
    assert mapped(p) == "..AAABBBCCC"
    p.mprotect(ptr + 3 * PAGE, 3 * PAGE, PROT_READ)
    assert vma_range(p, ptr) == (ptr, ptr + 9 * PAGE)


def test_mprotect_unfaulted_left_faulted_right(p: Process) -> None:
    """mprotect_unfaulted_left_faulted_right: the mirror image.

         RO          RW          RO                      RO
    |-----------|-----------|-----------|    |-----------------------------------|
    | unfaulted |  faulted  |  faulted  | -> |              faulted              |
    |-----------|-----------|-----------|    |-----------------------------------|
    """
    ptr = p.mmap(addr(2), 9 * PAGE, RW, PA | MAP_FIXED | MAP_NORESERVE)
    p.mprotect(ptr, 3 * PAGE, PROT_READ)
    p.write(ptr + 3 * PAGE, b"x")
    p.mprotect(ptr + 6 * PAGE, 3 * PAGE, PROT_READ)
    p.mprotect(ptr + 3 * PAGE, 3 * PAGE, PROT_READ)
    assert vma_range(p, ptr) == (ptr, ptr + 9 * PAGE)


# --- fork ---------------------------------------------------------------------------------


def test_forked_target_vma(p: Process) -> None:
    """forked_target_vma: in the child, a new mapping next to a vma it inherited faulted
    (a fork child, its anon_vma_chain not singular) does not merge into it, even after
    the child un-COWed every page.

        forked
    |-----------|-----------|
    |  faulted  | unfaulted |
    |-----------|-----------|
         ptr         ptr2
    """
    ptr = p.mmap(addr(1), 5 * PAGE, RW, PA | MAP_FIXED)
    p.write(ptr, b"x")
    child = p.fork()
    for i in range(5):
        child.write(ptr + i * PAGE, b"x")
    child.mmap(ptr + 5 * PAGE, 5 * PAGE, RW, PA | MAP_FIXED)
    assert vma_range(child, ptr) == (ptr, ptr + 5 * PAGE)
    assert mapped(child) == ".AAAAABBBBB"


def test_forked_source_vma(p: Process) -> None:
    """forked_source_vma: in the child, an inherited faulted vma changed by mprotect to
    match an unfaulted neighbour does not merge into it either (the fork child would be
    the source of the anon_vma the neighbour takes over).

      forked RWX      RWX
    |-----------|-----------|
    |  faulted  | unfaulted |
    |-----------|-----------|
         ptr         ptr2
    """
    ptr = p.mmap(addr(1), 5 * PAGE, RW, PA | MAP_FIXED | MAP_NORESERVE)
    p.write(ptr, b"x")
    child = p.fork()
    for i in range(5):
        child.write(ptr + i * PAGE, b"x")
    rwx = PROT_READ | PROT_WRITE | PROT_EXEC
    ptr2 = child.mmap(addr(6), 5 * PAGE, rwx, PA | MAP_FIXED | MAP_NORESERVE)
    assert vma_range(child, ptr2) == (ptr2, ptr2 + 5 * PAGE)
    child.mprotect(ptr, 5 * PAGE, rwx)
    assert vma_range(child, ptr2) == (ptr2, ptr2 + 5 * PAGE)


# --- mremap of unfaulted vmas ---------------------------------------------------------------


def test_mremap_unfaulted_to_faulted(p: Process) -> None:
    """mremap_unfaulted_to_faulted: an unfaulted vma moved right after a faulted one takes
    ``pgoff = new_addr >> PAGE_SHIFT`` (copy_vma) and merges into it.

    |-----------|-----------|        |----------------------|
    |  faulted  | unfaulted |   ->   |       faulted        |
    |-----------|-----------|        |----------------------|
         ptr         ptr2                       ptr
    """
    ptr = p.mmap(addr(1), 5 * PAGE, RW, PA | MAP_FIXED)
    ptr2 = p.mmap(addr(7), 5 * PAGE, RW, PA | MAP_FIXED)
    ptr2 = p.mremap(ptr2, 5 * PAGE, 5 * PAGE, MOVE, ptr2 + FAR)
    p.write(ptr, b"x")
    p.mremap(ptr2, 5 * PAGE, 5 * PAGE, MOVE, ptr + 5 * PAGE)
    assert vma_range(p, ptr) == (ptr, ptr + 10 * PAGE)


def test_mremap_unfaulted_behind_faulted(p: Process) -> None:
    """mremap_unfaulted_behind_faulted: the same with the unfaulted vma moved in front of
    the faulted one: the faulted one (next) extends down over it.

    |-----------|-----------|        |----------------------|
    | unfaulted |  faulted  |   ->   |       faulted        |
    |-----------|-----------|        |----------------------|
         ptr2        ptr                        ptr2
    """
    ptr = p.mmap(addr(6), 5 * PAGE, RW, PA | MAP_FIXED)
    ptr2 = p.mmap(addr(14), 5 * PAGE, RW, PA | MAP_FIXED)
    ptr2 = p.mremap(ptr2, 5 * PAGE, 5 * PAGE, MOVE, ptr2 + FAR)
    p.write(ptr, b"x")
    ptr2 = p.mremap(ptr2, 5 * PAGE, 5 * PAGE, MOVE, addr(1))
    assert vma_range(p, ptr2) == (ptr2, ptr2 + 10 * PAGE)


def test_mremap_unfaulted_between_faulted(p: Process) -> None:
    """mremap_unfaulted_between_faulted: an unfaulted vma moved between two faulted vmas
    with different anon_vmas merges with the first only (prev and next are incompatible
    with each other; ptr3 also kept the pgoff of where it was faulted).

    |-----------|-----------|-----------|      |-----------------------|-----------|
    |  faulted  | unfaulted |  faulted  |  ->  |        faulted        |  faulted  |
    |-----------|-----------|-----------|      |-----------------------|-----------|
         ptr        ptr2         ptr3
    """
    ptr = p.mmap(addr(1), 5 * PAGE, RW, PA | MAP_FIXED)
    ptr2 = p.mmap(addr(7), 5 * PAGE, RW, PA | MAP_FIXED)
    ptr3 = p.mmap(addr(14), 5 * PAGE, RW, PA | MAP_FIXED)
    ptr3 = p.mremap(ptr3, 5 * PAGE, 5 * PAGE, MOVE, ptr3 + FARTHER)
    ptr2 = p.mremap(ptr2, 5 * PAGE, 5 * PAGE, MOVE, ptr2 + FAR)
    p.write(ptr, b"x")
    p.write(ptr3, b"x")
    ptr3 = p.mremap(ptr3, 5 * PAGE, 5 * PAGE, MOVE, ptr + 10 * PAGE)
    p.mremap(ptr2, 5 * PAGE, 5 * PAGE, MOVE, ptr + 5 * PAGE)
    assert vma_range(p, ptr) == (ptr, ptr + 10 * PAGE)
    assert vma_range(p, ptr3) == (ptr3, ptr3 + 5 * PAGE)


def test_mremap_unfaulted_between_faulted_unfaulted(p: Process) -> None:
    """mremap_unfaulted_between_faulted_unfaulted: with an unfaulted vma on the right all
    three merge.

    |-----------|-----------|-----------|      |-----------------------------------|
    |  faulted  | unfaulted | unfaulted |  ->  |              faulted              |
    |-----------|-----------|-----------|      |-----------------------------------|
         ptr        ptr2         ptr3
    """
    ptr = p.mmap(addr(1), 5 * PAGE, RW, PA | MAP_FIXED)
    ptr2 = p.mmap(addr(7), 5 * PAGE, RW, PA | MAP_FIXED)
    ptr3 = p.mmap(addr(14), 5 * PAGE, RW, PA | MAP_FIXED)
    ptr3 = p.mremap(ptr3, 5 * PAGE, 5 * PAGE, MOVE, ptr3 + FARTHER)
    ptr2 = p.mremap(ptr2, 5 * PAGE, 5 * PAGE, MOVE, ptr2 + FAR)
    p.write(ptr, b"x")
    p.mremap(ptr3, 5 * PAGE, 5 * PAGE, MOVE, ptr + 10 * PAGE)
    p.mremap(ptr2, 5 * PAGE, 5 * PAGE, MOVE, ptr + 5 * PAGE)
    assert vma_range(p, ptr) == (ptr, ptr + 15 * PAGE)


def test_mremap_unfaulted_between_correctly_placed_faulted(p: Process) -> None:
    """mremap_unfaulted_between_correctly_placed_faulted: the two halves of one faulted
    vma (same anon_vma, pgoff equal to their virtual page) with an unfaulted vma moved
    into the hole between them merge back into one.

    |-----------|-----------|-----------|      |-----------------------------------|
    |  faulted  | unfaulted |  faulted  |  ->  |              faulted              |
    |-----------|-----------|-----------|      |-----------------------------------|
    """
    ptr = p.mmap(addr(1), 15 * PAGE, RW, PA | MAP_FIXED)
    p.write(ptr, b"x")
    p.munmap(ptr + 5 * PAGE, 5 * PAGE)
    ptr2 = p.mmap(addr(20), 5 * PAGE, RW, PA | MAP_FIXED)
    p.mremap(ptr2, 5 * PAGE, 5 * PAGE, MOVE, ptr + 5 * PAGE)
    assert vma_range(p, ptr) == (ptr, ptr + 15 * PAGE)


def test_mremap_correct_placed_faulted(p: Process) -> None:
    """mremap_correct_placed_faulted: pieces of one faulted vma keep their linear pgoff
    when moved away, so they merge again exactly when moved back into their original
    relative places, in any order."""
    ptr = p.mmap(addr(1), 15 * PAGE, RW, PA | MAP_FIXED)
    p.write(ptr, b"x")
    # Offset the final and middle 5 pages further away:
    #     ptr  \ ptr2 \ ptr3
    ptr3 = p.mremap(ptr + 10 * PAGE, 5 * PAGE, 5 * PAGE, MOVE, ptr + 10 * PAGE + FARTHER)
    ptr2 = p.mremap(ptr + 5 * PAGE, 5 * PAGE, 5 * PAGE, MOVE, ptr + 5 * PAGE + FAR)
    # Move ptr2 into its correct place: ptr|ptr2 merge.
    ptr2 = p.mremap(ptr2, 5 * PAGE, 5 * PAGE, MOVE, ptr + 5 * PAGE)
    assert vma_range(p, ptr) == (ptr, ptr + 10 * PAGE)
    # Move ptr out of place and back: merges again.
    ptr = p.mremap(ptr, 5 * PAGE, 5 * PAGE, MOVE, ptr + FAR)
    ptr = p.mremap(ptr, 5 * PAGE, 5 * PAGE, MOVE, addr(1))
    assert vma_range(p, ptr) == (ptr, ptr + 10 * PAGE)
    # Move ptr out of place again, move ptr3 back next to ptr2: ptr2|ptr3 merge.
    ptr = p.mremap(ptr, 5 * PAGE, 5 * PAGE, MOVE, ptr + FAR)
    ptr3 = p.mremap(ptr3, 5 * PAGE, 5 * PAGE, MOVE, ptr2 + 5 * PAGE)
    assert vma_range(p, ptr2) == (ptr2, ptr2 + 10 * PAGE)
    # Move ptr back into place: all three merge.
    ptr = p.mremap(ptr, 5 * PAGE, 5 * PAGE, MOVE, addr(1))
    assert vma_range(p, ptr) == (ptr, ptr + 15 * PAGE)
    # Move ptr2 out of the way and back.
    ptr2 = p.mremap(ptr2, 5 * PAGE, 5 * PAGE, MOVE, ptr2 + FAR)
    assert mapped(p) == ".AAAAA     BBBBB"
    ptr2 = p.mremap(ptr2, 5 * PAGE, 5 * PAGE, MOVE, ptr + 5 * PAGE)
    assert vma_range(p, ptr) == (ptr, ptr + 15 * PAGE)
    # Move ptr3 out of place and back.
    ptr3 = p.mremap(ptr3, 5 * PAGE, 5 * PAGE, MOVE, ptr3 + FAR)
    ptr3 = p.mremap(ptr3, 5 * PAGE, 5 * PAGE, MOVE, ptr + 10 * PAGE)
    assert vma_range(p, ptr) == (ptr, ptr + 15 * PAGE)


# --- mremap of a faulted vma next to unfaulted ones (MREMAP_DONTUNMAP) -----------------


def maybe_fork(p: Process, forked: bool) -> Process:
    """merge_with_fork's do_fork(): continue the test in a child when ``forked``."""
    return p.fork() if forked else p


@pytest.mark.parametrize("forked", [False, True], ids=["unforked", "forked"])
def test_mremap_faulted_to_unfaulted_prev(p: Process, forked: bool) -> None:
    """mremap_faulted_to_unfaulted_prev: a faulted vma A moved back (with DONTUNMAP) right
    after an unfaulted vma B, with its pgoff lining up, merges into B (B takes A's
    anon_vma: vma_expand() duplicates the copied-from vma's anon_vma); in a fork child A
    is a fork child and must not merge.

                                 |------------|
                                 |    \\       |
               |-----------|     |    /  |---------|
               | unfaulted |     v    \\  | faulted |
               |-----------|          /  |---------|
                     B                \\       A
    """
    ptr_a = p.mmap(addr(4), 3 * PAGE, RW, PA | MAP_FIXED)
    p.write(ptr_a, b"x")
    q = maybe_fork(p, forked)
    ptr_a = q.mremap(ptr_a, 3 * PAGE, 3 * PAGE, MOVE, addr(20))
    ptr_b = q.mmap(addr(1), 3 * PAGE, RW, PA | MAP_FIXED)
    q.mremap(ptr_a, 3 * PAGE, 3 * PAGE, MOVE | MREMAP_DONTUNMAP, addr(4))
    assert vma_range(q, ptr_b) == (ptr_b, ptr_b + (3 if forked else 6) * PAGE)
    assert q.read(addr(4), 1) == b"x"


@pytest.mark.parametrize("forked", [False, True], ids=["unforked", "forked"])
def test_mremap_faulted_to_unfaulted_next(p: Process, forked: bool) -> None:
    """mremap_faulted_to_unfaulted_next: the same with A moved right in front of B: B is
    the target and takes A's anon_vma (unless A is a fork child).

          |---------------------------|
          |                   \\       |
          |    |-----------|  /  |---------|
          v    | unfaulted |  \\  | faulted |
               |-----------|  /  |---------|
                     B        \\       A
    """
    ptr_a = p.mmap(addr(1), 3 * PAGE, RW, PA | MAP_FIXED)
    p.write(ptr_a, b"x")
    q = maybe_fork(p, forked)
    ptr_a = q.mremap(ptr_a, 3 * PAGE, 3 * PAGE, MOVE, addr(20))
    q.mmap(addr(4), 3 * PAGE, RW, PA | MAP_FIXED)
    ptr_a = q.mremap(ptr_a, 3 * PAGE, 3 * PAGE, MOVE | MREMAP_DONTUNMAP, addr(1))
    assert vma_range(q, ptr_a) == (ptr_a, ptr_a + (3 if forked else 6) * PAGE)
    # Unmapping the parked source ("to trigger the bug") must leave the moved page intact.
    q.munmap(addr(20), 3 * PAGE)
    assert q.read(ptr_a, 1) == b"x"


@pytest.mark.parametrize("forked", [False, True], ids=["unforked", "forked"])
def test_mremap_faulted_to_unfaulted_prev_unfaulted_next(p: Process, forked: bool) -> None:
    """mremap_faulted_to_unfaulted_prev_unfaulted_next: faulted B moved between unfaulted
    A and C merges all three (the survivor A takes B's anon_vma); forked, nothing merges.

                      |---------------------------|
                      |                   \\       |
     |-----------|    |    |-----------|  /  |---------|
     | unfaulted |    v    | unfaulted |  \\  | faulted |
     |-----------|         |-----------|  /  |---------|
           A                     C        \\        B
    """
    ptr_b = p.mmap(addr(4), 3 * PAGE, RW, PA | MAP_FIXED)
    p.write(ptr_b, b"x")
    q = maybe_fork(p, forked)
    ptr_b = q.mremap(ptr_b, 3 * PAGE, 3 * PAGE, MOVE, addr(20))
    ptr_a = q.mmap(addr(1), 3 * PAGE, RW, PA | MAP_FIXED)
    q.mmap(addr(7), 3 * PAGE, RW, PA | MAP_FIXED)
    ptr_b = q.mremap(ptr_b, 3 * PAGE, 3 * PAGE, MOVE | MREMAP_DONTUNMAP, addr(4))
    assert vma_range(q, ptr_a) == (ptr_a, ptr_a + (3 if forked else 9) * PAGE)
    if forked:
        assert vma_range(q, ptr_b) == (ptr_b, ptr_b + 3 * PAGE)
    assert q.read(ptr_b, 1) == b"x"


@pytest.mark.parametrize("forked", [False, True], ids=["unforked", "forked"])
def test_mremap_faulted_to_unfaulted_prev_faulted_next(p: Process, forked: bool) -> None:
    """mremap_faulted_to_unfaulted_prev_faulted_next: B, split off a faulted BC, moved back
    between unfaulted A and its sibling C: unforked all three merge; forked, B still
    merges with C (same anon_vma, case 3 of is_mergeable_anon_vma) but not with A.

                      |---------------------------|
                      |                   \\       |
     |-----------|    |    |-----------|  /  |---------|
     | unfaulted |    v    |  faulted  |  \\  | faulted |
     |-----------|         |-----------|  /  |---------|
           A                     C        \\       B
    """
    ptr_bc = p.mmap(addr(4), 6 * PAGE, RW, PA | MAP_FIXED)
    p.write(ptr_bc, b"x")
    q = maybe_fork(p, forked)
    ptr_b = q.mremap(ptr_bc, 3 * PAGE, 3 * PAGE, MOVE, addr(20))
    ptr_a = q.mmap(addr(1), 3 * PAGE, RW, PA | MAP_FIXED)
    ptr_b = q.mremap(ptr_b, 3 * PAGE, 3 * PAGE, MOVE | MREMAP_DONTUNMAP, addr(4))
    if forked:
        assert vma_range(q, ptr_b) == (ptr_b, ptr_b + 6 * PAGE)
        assert vma_range(q, ptr_a) == (ptr_a, ptr_a + 3 * PAGE)
    else:
        assert vma_range(q, ptr_a) == (ptr_a, ptr_a + 9 * PAGE)
    assert q.read(ptr_b, 1) == b"x"


def test_mremap_dontunmap_merge_keeps_rmap_walk_exact(p: Process) -> None:
    """The point of the 6.18.y UAF fix (61f67c230a5e): after a DONTUNMAP move merged a
    faulted vma into an unfaulted neighbour, the moved page is still found by the rmap walk
    once the parked source is unmapped (its anon_vma was propagated, not freed)."""
    ptr_a = p.mmap(addr(4), 3 * PAGE, RW, PA | MAP_FIXED)
    p.write(ptr_a, b"x")
    ptr_a = p.mremap(ptr_a, 3 * PAGE, 3 * PAGE, MOVE, addr(20))
    p.mmap(addr(1), 3 * PAGE, RW, PA | MAP_FIXED)
    p.mremap(ptr_a, 3 * PAGE, 3 * PAGE, MOVE | MREMAP_DONTUNMAP, addr(4))
    p.munmap(addr(20), 3 * PAGE)
    m = p.machine
    pfn = p.pagemap(addr(4)).pfn
    assert m.rmap_walk(pfn).mappings == m.rmap_truth(pfn) == [(p.pid, addr(4))]
    assert ruler(p.vmas(), WINDOW, 30).startswith("ABBBBBBC")
