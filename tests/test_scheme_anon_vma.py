"""The 2.6.7 anon_vma scheme (plugins/anon_vma.py): one list of every related vma.

Each test names the kernel behaviour it pins (mm/rmap.c and mm/mmap.c of 2.6.7, Hugh
Dickins's rmap 39 "add anon_vma rmap" and rmap 40 "better anon_vma sharing").
"""

from __future__ import annotations

import pytest
from mmcore_plugins.anon_vma import AnonVma

from mmcore import (
    MADV_DOFORK,
    MADV_DONTFORK,
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
    Machine,
    Process,
)
from mmcore.costs import ARCH_PROFILES

RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS
PAGE = 4096
#: Page n of a picture is WINDOW + n * PAGE (far from the top-down allocator's choices).
WINDOW = 0x10000000


def at(n: int) -> int:
    """The address of page ``n`` of the window."""
    return WINDOW + n * PAGE


def fixed(p: Process, first: int, pages: int, prot: int = RW) -> int:
    """mmap(MAP_FIXED) pages [first, first + pages) of the window."""
    return p.mmap(at(first), pages * PAGE, prot, ANON | MAP_FIXED)


def anon_of(p: Process, addr: int) -> AnonVma:
    """The anon_vma of the vma that contains ``addr``."""
    vma = p.mm.vmas.lookup(addr)
    assert vma is not None
    assert isinstance(vma.anon_vma, AnonVma)
    return vma.anon_vma


def test_first_write_fault_allocates_an_anon_vma_and_sets_a_linear_index() -> None:
    """anon_vma_prepare() + page_add_anon_rmap(): page->mapping is the anon_vma, and
    page->index the linear index vm_pgoff + page offset (do_mmap: pgoff = addr >> 12)."""
    m = Machine(rmap="anon_vma")
    p = m.spawn()
    a = fixed(p, 0, 4)
    p.write(a + 2 * PAGE, b"x")
    vma = p.vmas()[0]
    anon = anon_of(p, a)
    page = m.physmem.page(p.pagemap(a + 2 * PAGE).pfn)
    assert page is not None
    assert page.mapping is anon
    assert page.index == vma.pgoff + 2 == (a >> 12) + 2
    assert anon.vmas == [vma]
    assert m.meta.live == {"anon_vma_2004": 1, "vma_anon_link": 1}


def test_fork_links_every_child_vma_on_the_same_list_newest_first() -> None:
    """dup_mmap() -> anon_vma_link(): the child's vma joins the parent's anon_vma with
    list_add (at the head), so the list reads youngest child ... oldest child, parent."""
    m = Machine(rmap="anon_vma")
    p = m.spawn()
    a = fixed(p, 0, 2)
    p.write(a, b"x")
    kids = [p.fork() for _ in range(3)]
    anon = anon_of(p, a)
    expect = [k.vmas()[0] for k in reversed(kids)] + [p.vmas()[0]]
    assert anon.vmas == expect
    assert all(anon_of(k, a) is anon for k in kids)
    assert m.meta.live == {"anon_vma_2004": 1, "vma_anon_link": 4}


def test_prepare_shares_a_compatible_neighbours_anon_vma_so_mprotect_can_remerge() -> None:
    """rmap 40 find_mergeable_anon_vma(): a vma differing only in access bits, adjacent,
    pgoff contiguous, takes its neighbour's anon_vma, and restoring the protection merges
    the two vmas back into one."""
    m = Machine(rmap="anon_vma")
    p = m.spawn()
    fixed(p, 0, 2)
    fixed(p, 2, 2, RW | PROT_EXEC)  # VM_EXEC keeps the two vmas apart
    assert len(p.vmas()) == 2
    p.write(at(0), b"a")
    p.write(at(2), b"b")
    assert anon_of(p, at(2)) is anon_of(p, at(0))
    assert m.meta.live["anon_vma_2004"] == 1
    p.mprotect(at(2), 2 * PAGE, RW)
    assert [(v.start, v.end) for v in p.vmas()] == [(at(0), at(4))]
    assert m.meta.live == {"anon_vma_2004": 1, "vma_anon_link": 1}


def test_prepare_tries_the_next_vma_before_the_previous_one() -> None:
    """find_mergeable_anon_vma() looks at vma->vm_next first, then the previous vma."""
    m = Machine(rmap="anon_vma")
    p = m.spawn()
    fixed(p, 0, 1)
    fixed(p, 1, 1, RW | PROT_EXEC)
    fixed(p, 2, 1)
    p.write(at(0), b"L")
    p.write(at(2), b"R")  # its only neighbour (the middle) has no anon_vma yet: a new one
    left, right = anon_of(p, at(0)), anon_of(p, at(2))
    assert left is not right
    p.write(at(1), b"M")
    assert anon_of(p, at(1)) is right


def test_different_anon_vmas_never_merge_but_a_null_one_does() -> None:
    """vma_merge() in 2.6.7 refuses two different non-NULL anon_vmas; a vma without one
    merges (and is linked onto its neighbour's list)."""
    m = Machine(rmap="anon_vma")
    p = m.spawn()
    fixed(p, 0, 4)
    p.madvise(at(2), 2 * PAGE, MADV_DONTFORK)  # VM_DONTCOPY: not anon_vma_compatible
    p.write(at(0), b"a")
    p.write(at(2), b"b")
    assert anon_of(p, at(0)) is not anon_of(p, at(2))
    p.madvise(at(2), 2 * PAGE, MADV_DOFORK)
    assert len(p.vmas()) == 2  # flags equal again, anon_vmas differ: no merge

    q = m.spawn()
    q.mmap(at(0), 4 * PAGE, RW, ANON | MAP_FIXED)
    q.madvise(at(2), 2 * PAGE, MADV_DONTFORK)
    q.write(at(0), b"a")  # the upper part stays unfaulted: anon_vma NULL
    q.madvise(at(2), 2 * PAGE, MADV_DOFORK)
    assert len(q.vmas()) == 1
    assert anon_of(q, at(0)).vmas == q.vmas()


def test_unlink_frees_the_anon_vma_with_its_last_vma() -> None:
    """anon_vma_unlink(): no refcount before KSM; the anon_vma is freed when its list of
    vmas is empty, whichever process goes last."""
    m = Machine(rmap="anon_vma")
    p = m.spawn()
    a = fixed(p, 0, 2)
    p.write(a, b"x")
    c = p.fork()
    p.munmap(a, 2 * PAGE)
    assert m.meta.live == {"anon_vma_2004": 1, "vma_anon_link": 1}
    assert anon_of(c, a).vmas == c.vmas()
    c.exit()
    assert m.meta.live == {"anon_vma_2004": 0, "vma_anon_link": 0}


def test_mremap_after_fork_needs_nothing_because_vm_pgoff_moves_with_the_vma() -> None:
    """copy_vma() keeps vm_pgoff, so page->index still finds a page moved by one of the
    processes sharing it: no copies, no index update ("Magic", rmap 39)."""
    m = Machine(rmap="anon_vma")
    p = m.spawn()
    a = fixed(p, 0, 3)
    for i in range(3):
        p.write(a + i * PAGE, b"%d" % i)
    c = p.fork()
    b = c.mremap(a, 3 * PAGE, 3 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, at(20))
    moved = c.vmas()[0]
    assert (moved.start, moved.pgoff) == (b, a >> 12)
    assert m.counters.mremap_page_copies == 0
    assert moved in anon_of(p, a).vmas
    for i in range(3):
        pfn = p.pagemap(a + i * PAGE).pfn
        page = m.physmem.page(pfn)
        assert page is not None and page.index == (a >> 12) + i
        assert m.rmap_walk(pfn).mappings == [(p.pid, a + i * PAGE), (c.pid, b + i * PAGE)]


def test_a_split_flood_makes_every_walk_scan_the_pieces_ahead_of_its_own() -> None:
    """Andrea's "flood of vma_splits" weak spot: mprotect of alternate pages splits one
    vma into M pieces, all on one list. The walk of a page stops at its own piece, so the
    piece at list position i (0 = head) costs i + 1 vma visits: M(M+1)/2 in all."""
    m = Machine(rmap="anon_vma")
    p = m.spawn()
    pages = 9
    a = fixed(p, 0, pages)
    for i in range(pages):
        p.write(a + i * PAGE, b"%d" % i)
    for i in range(1, pages, 2):
        p.mprotect(a + i * PAGE, PAGE, PROT_READ)
    anon = anon_of(p, a)
    assert len(anon.vmas) == len(p.vmas()) == pages
    visits = {}
    for i in range(pages):
        r = m.rmap_walk(p.pagemap(a + i * PAGE).pfn)
        assert r.mappings == [(p.pid, a + i * PAGE)]
        assert r.cost.wasted == 0  # pieces that miss the index are skipped unprobed
        visits[p.mm.vmas.lookup(a + i * PAGE)] = r.cost.vmas_visited
    assert [visits[v] for v in anon.vmas] == list(range(1, pages + 1))
    assert sum(visits.values()) == pages * (pages + 1) // 2


@pytest.mark.parametrize("arch", sorted(ARCH_PROFILES))
def test_metadata_is_one_anon_vma_plus_one_link_per_vma(arch: str) -> None:
    """12 bytes per anon_vma and 12 per linked vma on i386 (24 and 24 on x86_64): the
    anon_vma of a fork family of K+1 processes costs size + (K+1) x link, and nothing is
    kept per page."""
    m = Machine(rmap="anon_vma", arch=arch)
    sizes = ARCH_PROFILES[arch]
    p = m.spawn()
    a = fixed(p, 0, 8)
    for i in range(8):
        p.write(a + i * PAGE, b"x")
    kids = [p.fork() for _ in range(5)]
    assert m.costs().metadata_bytes == {
        "anon_vma_2004": sizes["anon_vma_2004"],
        "vma_anon_link": (len(kids) + 1) * sizes["vma_anon_link"],
    }
    if arch == "i386":  # Andrea: "worst case 24byte overhead per anonymous vma"
        assert sizes["anon_vma_2004"] + sizes["vma_anon_link"] == 24


def test_an_exit_unlinks_its_vma_from_anywhere_in_the_list_keeping_the_order() -> None:
    """anon_vma_unlink(): list_del of a vma in the middle of the list (a middle child
    exits, then the parent) leaves the others in list order, and the anon_vma goes with
    its last vma."""
    m = Machine(rmap="anon_vma")
    p = m.spawn()
    a = fixed(p, 0, 2)
    p.write(a, b"x")
    kids = [p.fork() for _ in range(3)]
    anon = anon_of(p, a)
    kids[1].exit(0)
    assert anon.vmas == [kids[2].vmas()[0], kids[0].vmas()[0], p.vmas()[0]]
    p.exit(0)
    assert anon.vmas == [kids[2].vmas()[0], kids[0].vmas()[0]]
    kids[2].exit(0)
    kids[0].exit(0)
    assert anon.vmas == [] and m.meta.live == {"anon_vma_2004": 0, "vma_anon_link": 0}
