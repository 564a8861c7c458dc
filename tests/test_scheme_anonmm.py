"""Hugh Dickins's anonmm (plugins/anonmm.py) and its full-scan variant.

The kernel behaviour pinned by each test is that of "rmap 10 add anonmm rmap" and "rmap 11
mremap moves" (mm/rmap.c of 2.6.6-mm: exec_rmap, dup_rmap, exit_rmap, page_add_anon_rmap,
clear_page_anon, page_referenced_anon/try_to_unmap_anon, mremap_move_anon_rmap).
"""

from __future__ import annotations

import pytest
from mmcore_plugins.anonmm import AnonMM

from mmcore import (
    MADV_DOFORK,
    MADV_DONTFORK,
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PROT_READ,
    PROT_WRITE,
    ConfigError,
    Machine,
    Page,
    Process,
)
from mmcore.costs import ARCH_PROFILES
from mmcore.plugins import valid_configurations

RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS
PAGE = 4096
WINDOW = 0x10000000
FAR = 0x30000000
MOVE = MREMAP_MAYMOVE | MREMAP_FIXED
#: Every anonmm configuration that must be correct: the unshare policy or the full scan.
CONFIGS = [("anonmm", "unshare"), ("anonmm_fullscan", None)]
CONFIG_IDS = ["anonmm+unshare", "anonmm_fullscan"]


def anonmm_of(p: Process) -> AnonMM:
    """The process's struct anonmm."""
    anonmm = p.mm.rmap
    assert isinstance(anonmm, AnonMM)
    return anonmm


def faulted(p: Process, pages: int, first: int = 0) -> int:
    """A private anonymous region of ``pages`` written pages at window page ``first``."""
    a = p.mmap(WINDOW + first * PAGE, pages * PAGE, RW, ANON | MAP_FIXED)
    for i in range(pages):
        p.write(a + i * PAGE, b"%d" % i)
    return a


def page_at(m: Machine, p: Process, addr: int) -> Page:
    """The struct page mapped at ``addr`` in ``p``."""
    page = m.physmem.page(p.pagemap(addr).pfn)
    assert page is not None
    return page


def test_anonmm_without_a_policy_is_refused_naming_both_fixes() -> None:
    """anonmm cannot follow a shared page that mremap moved: the Machine refuses it
    unless the unshare policy is chosen, and the message names both ways out."""
    with pytest.raises(ConfigError) as err:
        Machine(rmap="anonmm")
    assert "mremap_policy='unshare'" in str(err.value)
    assert "rmap='anonmm_fullscan'" in str(err.value)
    configs = valid_configurations()
    assert ("anonmm", None) not in configs
    assert ("anonmm", "unshare") in configs
    assert ("anonmm_fullscan", None) in configs


@pytest.mark.parametrize(("rmap", "policy"), CONFIGS, ids=CONFIG_IDS)
def test_exec_starts_a_group_and_fork_joins_the_parents(rmap: str, policy: str | None) -> None:
    """exec_rmap() makes a head; dup_rmap() adds the child at the tail of the head's list,
    grandchildren included; execve leaves the group for a new one."""
    m = Machine(rmap=rmap, mremap_policy=policy)
    p = m.spawn()
    c1 = p.fork()
    c2 = p.fork()
    g = c1.fork()
    head = anonmm_of(p)
    assert head.head is head
    assert head.members == [anonmm_of(x) for x in (p, c1, c2, g)]
    assert all(anonmm_of(x).head is head for x in (c1, c2, g))
    assert m.meta.live["anonmm"] == 4
    c2.execve()
    assert anonmm_of(c2).head is anonmm_of(c2)
    assert head.members == [anonmm_of(x) for x in (p, c1, g)]
    assert m.meta.live["anonmm"] == 4  # c2's old one freed, its new one allocated


@pytest.mark.parametrize(("rmap", "policy"), CONFIGS, ids=CONFIG_IDS)
def test_a_page_records_the_faulting_mms_anonmm_and_its_virtual_address(
        rmap: str, policy: str | None) -> None:
    """page_add_anon_rmap(): page->mapping = the faulting mm's anonmm, page->index = the
    address; a child's COW copy points at the child's anonmm."""
    m = Machine(rmap=rmap, mremap_policy=policy)
    p = m.spawn()
    a = faulted(p, 2)
    c = p.fork()
    c.write(a + PAGE, b"c")
    orig, copy = page_at(m, p, a + PAGE), page_at(m, c, a + PAGE)
    assert (orig.mapping, orig.index) == (anonmm_of(p), a + PAGE)
    assert (copy.mapping, copy.index) == (anonmm_of(c), a + PAGE)
    # No per-vma object: every vma of an mm stands for the mm's anonmm.
    assert p.vmas()[0].anon_vma is anonmm_of(p)
    assert c.vmas()[0].anon_vma is anonmm_of(c)


@pytest.mark.parametrize(("rmap", "policy"), CONFIGS, ids=CONFIG_IDS)
def test_walk_tries_the_indicated_mm_first_then_every_other_mm(
        rmap: str, policy: str | None) -> None:
    """try_to_unmap_anon(): "First try the indicated mm, it's the most likely"; then the
    rest of the group, each with one lookup at page->index, until mapcount is reached."""
    m = Machine(rmap=rmap, mremap_policy=policy)
    p = m.spawn()
    a = faulted(p, 1)
    kids = [p.fork() for _ in range(4)]
    kids[2].write(a, b"own")
    copy = m.rmap_walk(kids[2].pagemap(a).pfn)
    assert copy.mappings == [(kids[2].pid, a)]
    assert (copy.cost.mms_visited, copy.cost.find_vma, copy.cost.ptes_probed) == (1, 1, 1)
    orig = m.rmap_walk(p.pagemap(a).pfn)
    assert len(orig.mappings) == 4
    # The whole group is visited: parent, then every child; the one that copied wastes
    # its probe.
    assert (orig.cost.mms_visited, orig.cost.find_vma) == (5, 5)
    assert (orig.cost.hits, orig.cost.wasted) == (4, 1)


@pytest.mark.parametrize(("rmap", "policy"), CONFIGS, ids=CONFIG_IDS)
def test_an_exited_mms_anonmm_lingers_until_its_pages_migrate(
        rmap: str, policy: str | None) -> None:
    """exit_rmap() frees a member's anonmm only once no page points to it; the walk
    of such a page migrates it to the first mm found mapping it (page_referenced_anon's
    "migrate"), which lets the dead anonmm go."""
    m = Machine(rmap=rmap, mremap_policy=policy)
    p = m.spawn()
    c1 = p.fork()
    a = faulted(c1, 2)  # faulted by c1: mapping = c1's anonmm
    g = c1.fork()
    dead = anonmm_of(c1)
    c1.exit()
    assert dead.mm is None and dead in anonmm_of(p).members
    assert m.meta.live["anonmm"] == 3
    first = m.rmap_walk(g.pagemap(a).pfn)
    assert first.mappings == [(g.pid, a)]
    assert page_at(m, g, a).mapping is anonmm_of(g)
    assert m.meta.live["anonmm"] == 3  # one page still points to the dead anonmm
    g.munmap(a + PAGE, PAGE)  # clear_page_anon() drops the last reference
    assert m.meta.live["anonmm"] == 2
    assert dead not in anonmm_of(p).members


@pytest.mark.parametrize(("rmap", "policy"), CONFIGS, ids=CONFIG_IDS)
def test_the_head_outlives_its_mm_until_the_group_is_gone(
        rmap: str, policy: str | None) -> None:
    """exit_rmap(): the head anonmm is freed only when its count is back to its own
    reference, i.e. after the last member left."""
    m = Machine(rmap=rmap, mremap_policy=policy)
    p = m.spawn()
    faulted(p, 2)
    c = p.fork()
    head = anonmm_of(p)
    p.exit()
    assert head.mm is None and m.meta.live["anonmm"] == 2
    c.exit()
    assert m.meta.live["anonmm"] == 0
    assert m.physmem.nr_used == 0


@pytest.mark.parametrize(("rmap", "policy"), CONFIGS, ids=CONFIG_IDS)
def test_mremap_of_an_exclusive_page_rewrites_its_index(rmap: str, policy: str | None) -> None:
    """mremap_move_anon_rmap(): a page mapped once takes its new address, no copy."""
    m = Machine(rmap=rmap, mremap_policy=policy)
    p = m.spawn()
    a = faulted(p, 3)
    pfns = [p.pagemap(a + i * PAGE).pfn for i in range(3)]
    b = p.mremap(a, 3 * PAGE, 3 * PAGE, MOVE, FAR)
    assert m.counters.mremap_page_copies == 0
    for i, pfn in enumerate(pfns):
        page = m.physmem.page(pfn)
        assert page is not None and page.index == b + i * PAGE
        r = m.rmap_walk(pfn)
        assert r.mappings == [(p.pid, b + i * PAGE)]
        assert r.cost.wasted == 0


def test_mremap_after_fork_copies_every_shared_page_under_unshare() -> None:
    """rmap 11 (Linus's suggestion): a page still shared with another mm is copied when
    mremap moves it, so page->index == address stays true in every mm."""
    m = Machine(rmap="anonmm", mremap_policy="unshare")
    p = m.spawn()
    a = faulted(p, 4)
    c = p.fork()
    b = c.mremap(a, 4 * PAGE, 4 * PAGE, MOVE, FAR)
    assert m.counters.mremap_page_copies == 4
    for i in range(4):
        assert p.pagemap(a + i * PAGE).pfn != c.pagemap(b + i * PAGE).pfn
        assert c.read(b + i * PAGE, 1) == b"%d" % i
        for proc, addr in ((p, a + i * PAGE), (c, b + i * PAGE)):
            pfn = proc.pagemap(addr).pfn
            assert m.rmap_walk(pfn).mappings == m.rmap_truth(pfn) == [(proc.pid, addr)]


def test_fullscan_finds_moved_shared_pages_by_scanning_every_anon_vma() -> None:
    """anonmm_fullscan: no copies; the quick walk misses the moved mapping (page->index
    is the old address), so every anonymous vma of the group is scanned page by page."""
    m = Machine(rmap="anonmm_fullscan")
    p = m.spawn()
    pages = 4
    a = faulted(p, pages)
    c = p.fork()
    b = c.mremap(a, pages * PAGE, pages * PAGE, MOVE, FAR)
    assert m.counters.mremap_page_copies == 0
    for i in range(pages):
        pfn = p.pagemap(a + i * PAGE).pfn
        assert c.pagemap(b + i * PAGE).pfn == pfn
        r = m.rmap_walk(pfn)
        assert r.mappings == m.rmap_truth(pfn) == sorted([(p.pid, a + i * PAGE),
                                                          (c.pid, b + i * PAGE)])
        # Quick walk: 1 hit in the parent. Scan: the parent's other pages, then the
        # child's moved vma up to the page.
        assert r.cost.ptes_probed == 1 + (pages - 1) + (i + 1)
        assert r.cost.vmas_visited == 2
    assert m.try_to_unmap(p.pagemap(a).pfn).success


def test_fullscan_is_not_needed_for_pages_the_quick_walk_finds() -> None:
    """The scan runs only when the quick walk left mappings unfound: an unmoved shared
    page costs exactly the group's lookups."""
    m = Machine(rmap="anonmm_fullscan")
    p = m.spawn()
    a = faulted(p, 2)
    p.fork()
    r = m.rmap_walk(p.pagemap(a).pfn)
    assert (r.cost.mms_visited, r.cost.vmas_visited, r.cost.ptes_probed) == (2, 0, 2)


@pytest.mark.parametrize(("rmap", "policy"), CONFIGS, ids=CONFIG_IDS)
def test_anonmm_never_refuses_a_merge(rmap: str, policy: str | None) -> None:
    """Every vma of an mm shares the mm's anonmm, so anon state never blocks vma_merge:
    two separately faulted pieces merge again once their flags agree."""
    m = Machine(rmap=rmap, mremap_policy=policy)
    p = m.spawn()
    a = p.mmap(WINDOW, 4 * PAGE, RW, ANON | MAP_FIXED)
    p.madvise(a + 2 * PAGE, 2 * PAGE, MADV_DONTFORK)
    p.write(a, b"a")
    p.write(a + 2 * PAGE, b"b")
    p.madvise(a + 2 * PAGE, 2 * PAGE, MADV_DOFORK)
    assert [(v.start, v.end) for v in p.vmas()] == [(a, a + 4 * PAGE)]


@pytest.mark.parametrize("arch", sorted(ARCH_PROFILES))
def test_metadata_is_one_anonmm_per_mm_and_nothing_per_page(arch: str) -> None:
    """About 24 bytes per mm on i386 (40 on x86_64); pages, ptes and vmas cost nothing."""
    m = Machine(rmap="anonmm", mremap_policy="unshare", arch=arch)
    p = m.spawn()
    faulted(p, 16)
    faulted(p, 4, first=32)
    kids = [p.fork() for _ in range(3)]
    expect = {"anonmm": (len(kids) + 1) * ARCH_PROFILES[arch]["anonmm"]}
    assert m.costs().metadata_bytes == expect
    for k in kids:
        k.write(WINDOW, b"cow")
    assert m.costs().metadata_bytes == expect


def swapped_then_moved(m: Machine) -> tuple[int, list[tuple[int, int]]]:
    """Fork a page, swap it out of both mms, move it in the child while it is on swap,
    swap it in at both addresses; return its pfn and the true mappings."""
    p = m.spawn()
    a = faulted(p, 1)
    c = p.fork()
    assert m.try_to_unmap(p.pagemap(a).pfn).success
    b = c.mremap(a, PAGE, PAGE, MOVE, FAR)  # a swap pte moves: no policy is asked
    p.read(a, 1)
    c.read(b, 1)
    pfn = p.pagemap(a).pfn
    assert c.pagemap(b).pfn == pfn  # one page at two addresses
    return pfn, m.rmap_truth(pfn)


def test_fullscan_finds_a_page_moved_while_on_swap() -> None:
    """The scan also covers the case the unshare policy cannot see (below)."""
    m = Machine(rmap="anonmm_fullscan")
    pfn, truth = swapped_then_moved(m)
    assert m.rmap_walk(pfn).mappings == truth


def test_unshare_covers_a_page_moved_while_on_swap() -> None:
    """anonmm+unshare after a move of swap ptes: rmap 11's early COW in do_swap_page()
    gives the moved pte its own copy at swap-in, so every page is findable again."""
    m = Machine(rmap="anonmm", mremap_policy="unshare")
    p = m.spawn()
    a = faulted(p, 1)
    c = p.fork()
    assert m.try_to_unmap(p.pagemap(a).pfn).success
    b = c.mremap(a, PAGE, PAGE, MOVE, FAR)
    p.read(a, 1)
    c.read(b, 1)
    assert m.counters.swapin_copies == 1
    assert p.pagemap(a).pfn != c.pagemap(b).pfn
    for pfn in (p.pagemap(a).pfn, c.pagemap(b).pfn):
        assert m.rmap_walk(pfn).mappings == m.rmap_truth(pfn)
