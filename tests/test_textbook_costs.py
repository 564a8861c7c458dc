"""The textbook results of the 2004 anon_vma RFC2 debate, measured on every scheme.

Workloads from docs (rmap-reference §7): the forking server (a parent faults N pages and
forks K children; children copy-on-write), children mallocing after fork, mremap after
fork, and the metadata each scheme allocates, in both arch profiles. Expected figures are
formulas of N, K and the child's fork order j (1 = first forked), derived from each
scheme's kernel algorithm:

* pte_chains: exact, one probe per pte;
* anonmm: the page's own mm first, then every other mm of the group in fork order;
* anon_vma (2.6.7): every vma on the one list, youngest child first, parent last;
* anon_vma_chain: the page's own anon_vma (a child's COW copy: the child alone);
* anon_vma_global: anonmm's order, one pgoff tree query per mm.

The last part checks every configuration against the brute-force truth through seeded
random fork/COW/mremap/mprotect/munmap/exit/exec/swap histories, and that every metadata
object and frame is gone once all processes exited.
"""

from __future__ import annotations

import math
import random

import pytest

from mmcore import (
    MADV_DONTNEED,
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
    Machine,
    Process,
    SegmentationFault,
    WalkCost,
)
from mmcore.costs import ARCH_PROFILES, PTE_CHAIN_NRPTE

RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS
PAGE = 4096
FAR = 0x30000000
MOVE = MREMAP_MAYMOVE | MREMAP_FIXED

#: One correct configuration of every scheme of the debate (anonmm needs its policy).
SCHEMES = {
    "pte_chains": ("pte_chains", None),
    "anonmm": ("anonmm", "unshare"),
    "anonmm_fullscan": ("anonmm_fullscan", None),
    "anon_vma": ("anon_vma", None),
    "anon_vma_chain": ("anon_vma_chain", None),
    "anon_vma_global": ("anon_vma_global", None),
}


def machine(scheme: str, arch: str = "x86_64") -> Machine:
    """A Machine running ``scheme`` in its correct configuration."""
    rmap, policy = SCHEMES[scheme]
    return Machine(rmap=rmap, mremap_policy=policy, arch=arch)


def forking_server(m: Machine, pages: int, children: int) -> tuple[Process, list[Process], int]:
    """The parent writes ``pages`` pages of one private region, then forks."""
    p = m.spawn()
    a = p.mmap(0, pages * PAGE, RW, ANON)
    for i in range(pages):
        p.write(a + i * PAGE, b"parent %d" % i)
    return p, [p.fork() for _ in range(children)], a


def walk(m: Machine, pfn: int) -> WalkCost:
    """The scheme's walk of ``pfn``, checked against the brute-force truth."""
    r = m.rmap_walk(pfn)
    assert r.mappings == m.rmap_truth(pfn)
    return r.cost


# --- forking server: one child copies one page ---------------------------------------

@pytest.mark.parametrize("children", [1, 3, 8])
@pytest.mark.parametrize("first", [True, False], ids=["first-child", "last-child"])
@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_walks_of_the_original_page_and_of_a_childs_cow_copy(
        scheme: str, children: int, first: bool) -> None:
    """After a parent faults N pages and forks K children and child j copies page x: the
    mms, vmas and ptes each scheme visits for the original page (mapped K times) and for
    the child's copy (mapped once)."""
    k = children
    j = 1 if first else k
    m = machine(scheme)
    p, kids, a = forking_server(m, 4, k)
    x = a + 2 * PAGE
    kids[j - 1].write(x, b"child")
    orig = walk(m, p.pagemap(x).pfn)
    copy = walk(m, kids[j - 1].pagemap(x).pfn)
    assert orig.hits == k and copy.hits == 1
    group = k + 1 if j < k else k  # the walk stops once the K mappings are found
    if scheme == "pte_chains":
        assert (orig.mms_visited, orig.ptes_probed, orig.wasted) == (k, k, 0)
        assert (copy.mms_visited, copy.ptes_probed) == (1, 1)
    elif scheme in ("anonmm", "anonmm_fullscan"):
        # Parent first, then every child in fork order: the whole group.
        assert (orig.mms_visited, orig.find_vma, orig.ptes_probed) == (group, group, group)
        assert orig.wasted == (1 if j < k else 0)
        assert (copy.mms_visited, copy.find_vma, copy.ptes_probed) == (1, 1, 1)
    elif scheme == "anon_vma":
        # Every vma on the list (youngest child first, parent last) holds the index.
        assert (orig.vmas_visited, orig.ptes_probed, orig.wasted) == (k + 1, k + 1, 1)
        # The copy sits on the same list: the children forked after j come first.
        assert (copy.vmas_visited, copy.ptes_probed) == (k - j + 1, k - j + 1)
        assert copy.wasted == k - j
    elif scheme == "anon_vma_chain":
        assert orig.vmas_visited <= k + 1
        # Only the child's own anon_vma: its subtree holds the child's vma alone.
        assert (copy.vmas_visited, copy.ptes_probed, copy.wasted) == (1, 1, 0)
    else:  # anon_vma_global: anonmm's order, one tree query per mm
        assert (orig.mms_visited, orig.vmas_visited, orig.tree_steps) == (group,) * 3
        assert (copy.mms_visited, copy.vmas_visited, copy.ptes_probed) == (1, 1, 1)


# --- Rik's forking server: every child copies every page, then reclaim ---------------

@pytest.mark.parametrize("children", [2, 5])
@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_forking_server_total_walk_work_when_every_child_copies_every_page(
        scheme: str, children: int) -> None:
    """Rik van Riel's case (anon_vma_chain's motivation): each child COWs all N pages, so
    every page is mapped once; try_to_unmap every page. anon_vma pays O(N K^2) vma
    visits in total (the page of child j scans the K - j + 1 list entries ahead of it;
    the parent's, last on the list, all K + 1). pte_chains, anon_vma_chain and (because
    the indicated mm is tried first) anonmm find each page at once: N (K + 1)."""
    n, k = 3, children
    m = machine(scheme)
    p, kids, a = forking_server(m, n, k)
    for child in kids:
        for i in range(n):
            child.write(a + i * PAGE, b"copy")
    total = WalkCost()
    for proc in [p, *kids]:
        for i in range(n):
            result = m.try_to_unmap(proc.pagemap(a + i * PAGE).pfn)
            assert result.success and result.unmapped == [(proc.pid, a + i * PAGE)]
            total.add(result.cost)
    pages = n * (k + 1)
    assert total.hits == pages
    if scheme == "anon_vma":
        assert total.vmas_visited == n * (k + 1) * (k + 2) // 2
        assert total.wasted == n * k * (k + 1) // 2
    elif scheme in ("anon_vma_chain",):
        assert (total.vmas_visited, total.wasted) == (pages, 0)
    else:
        assert (total.mms_visited, total.wasted) == (pages, 0)


# --- children malloc after fork (Andrea's objection to anonmm) ------------------------

@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_a_childs_fresh_mapping_is_found_in_one_visit(scheme: str) -> None:
    """K children each map and fault a new region of their own (away from the inherited
    one): every scheme finds such a page in one mm or vma visit. anonmm does too, because
    page->mapping names the child's own anonmm, which the walk tries first."""
    k = 4
    m = machine(scheme)
    _, kids, _ = forking_server(m, 2, k)
    for j, child in enumerate(kids):
        b = child.mmap(FAR + j * 16 * PAGE, PAGE, RW, ANON | MAP_FIXED)
        child.write(b, b"malloc")
        cost = walk(m, child.pagemap(b).pfn)
        assert cost.ptes_probed == 1 and cost.wasted == 0
        assert max(cost.mms_visited, cost.vmas_visited) == 1


def test_under_anon_vma_a_fresh_mapping_next_to_an_inherited_one_joins_the_family() -> None:
    """anon_vma's merge rule lets a new unfaulted range merge into the inherited vma (its
    anon_vma is NULL), so the child's "private" malloc page lands on the family's list
    and its walk scans the younger siblings' vmas first: K - j + 1 visits for child j."""
    k = 4
    m = machine("anon_vma")
    _, kids, a = forking_server(m, 2, k)
    for j, child in enumerate(kids, start=1):
        b = child.mmap(0, PAGE, RW, ANON)  # top-down: right below the inherited region
        assert b == a - PAGE and len(child.vmas()) == 1
        child.write(b, b"malloc")
        cost = walk(m, child.pagemap(b).pfn)
        assert cost.vmas_visited == k - j + 1


# --- mremap after fork -----------------------------------------------------------------

@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_mremap_after_fork(scheme: str) -> None:
    """A child moves the inherited region (MREMAP_MAYMOVE|FIXED). anonmm+unshare copies
    every shared page (counters.mremap_page_copies); anonmm_fullscan copies nothing and
    finds the moved mapping by scanning (K quick probes, the parent's N - 1 other pages,
    then the child's moved vma up to page i: K + N + i probes); anon_vma, anon_vma_chain,
    anon_vma_global and pte_chains need nothing and waste nothing."""
    n, k = 4, 2
    m = machine(scheme)
    p, kids, a = forking_server(m, n, k)
    mover = kids[0]
    b = mover.mremap(a, n * PAGE, n * PAGE, MOVE, FAR)
    copies = m.counters.mremap_page_copies
    for i in range(n):
        orig = walk(m, p.pagemap(a + i * PAGE).pfn)
        moved = walk(m, mover.pagemap(b + i * PAGE).pfn)
        if scheme == "anonmm":
            assert orig.hits == k and moved.hits == 1
        elif scheme == "anonmm_fullscan":
            assert orig.hits == k + 1
            assert orig.ptes_probed == k + n + i
            assert orig.vmas_visited > 0
        else:
            assert (orig.hits, orig.wasted) == (k + 1, 0)
    assert copies == (n if scheme == "anonmm" else 0)


# --- metadata bytes -----------------------------------------------------------------------

def expected_metadata(scheme: str, arch: str, pages: int, k: int) -> dict[str, int]:
    """Modelled bytes after the forking server's forks (one region, K + 1 processes)."""
    s = ARCH_PROFILES[arch]
    procs = k + 1
    if scheme == "pte_chains":  # every page has K + 1 ptes: ceil((K+1)/NRPTE) blocks
        return {"pte_chain": pages * math.ceil(procs / PTE_CHAIN_NRPTE[arch]) * s["pte_chain"]}
    if scheme in ("anonmm", "anonmm_fullscan"):
        return {"anonmm": procs * s["anonmm"]}
    if scheme == "anon_vma":
        return {"anon_vma_2004": s["anon_vma_2004"], "vma_anon_link": procs * s["vma_anon_link"]}
    if scheme == "anon_vma_chain":  # a root + one per child; 1 + 2 per child chains
        return {"anon_vma": procs * s["anon_vma"],
                "anon_vma_chain": (2 * k + 1) * s["anon_vma_chain"],
                "vma_avc_fields": procs * s["vma_avc_fields"]}
    return {"anonmm": procs * s["anonmm"], "prio_tree_node": procs * s["prio_tree_node"],
            "prio_tree_root": procs * s["prio_tree_root"]}


@pytest.mark.parametrize("children", [1, 7])
@pytest.mark.parametrize("arch", sorted(ARCH_PROFILES))
@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_metadata_bytes_after_forks(scheme: str, arch: str, children: int) -> None:
    """(M) of §7: pte_chains pays per pte, anonmm per mm, anon_vma one object plus one
    link per vma, anon_vma_chain an anon_vma and two chains per child, anon_vma_global
    an anonmm, a tree root and a tree node per process."""
    pages = 5
    m = machine(scheme, arch)
    forking_server(m, pages, children)
    assert m.costs().metadata_bytes == expected_metadata(scheme, arch, pages, children)


def test_the_2004_figures_on_i386() -> None:
    """Andrea: anon_vma costs "24byte overhead per anonymous vma" (12 + 12 on i386) while
    pte_chains "throw 8 bytes per-pte"; Hugh's anonmm is about 24 bytes per mm."""
    i386 = ARCH_PROFILES["i386"]
    assert (i386["anon_vma_2004"], i386["vma_anon_link"], i386["anonmm"]) == (12, 12, 24)
    m = machine("anon_vma", "i386")
    forking_server(m, 3, 3)
    assert m.costs().rmap_bytes == 12 + 12 * 4


# --- correctness through mixed histories, every configuration --------------------------

ARENA = 0x20000000
ARENA_PAGES = 48


def check_walks(m: Machine) -> None:
    """Every mapped anonymous page: the walk finds exactly the ptes that map it."""
    for page in m.pages_in_use():
        if page.is_anon and page.mapcount:
            truth = m.rmap_truth(page.pfn)
            assert len(truth) == page.mapcount
            assert m.rmap_walk(page.pfn).mappings == truth, page


def random_step(m: Machine, rng: random.Random, procs: list[Process]) -> None:
    """One random operation on a random live process (failing syscalls are fine)."""
    live = [p for p in procs if p.alive]
    p = rng.choice(live)
    vmas = p.vmas()
    op = rng.choice(["mmap", "mmap", "write", "write", "write", "read", "fork", "exit",
                     "exec", "mprotect", "munmap", "mremap", "mremap", "dontneed",
                     "swap", "swap"])
    v = rng.choice(vmas) if vmas else None
    try:
        if op == "mmap" or v is None:
            n = rng.randint(1, 6)
            if rng.random() < 0.6:
                p.mmap(ARENA + rng.randrange(ARENA_PAGES - n) * PAGE, n * PAGE, RW,
                       ANON | MAP_FIXED)
            else:
                p.mmap(0, n * PAGE, RW, ANON)
            return
        addr = v.start + rng.randrange(v.pages) * PAGE
        n = rng.randint(1, (v.end - addr) // PAGE)
        if op == "write":
            p.write(addr, bytes([rng.randrange(256)]))
        elif op == "read":
            p.read(addr, 1)
        elif op == "fork" and len(live) < 8:
            procs.append(p.fork())
        elif op == "exit" and len(live) > 1:
            p.exit()
        elif op == "exec" and rng.random() < 0.3:
            p.execve()
        elif op == "mprotect":
            p.mprotect(addr, n * PAGE, rng.choice([RW, PROT_READ, RW, PROT_NONE]))
        elif op == "munmap":
            p.munmap(addr, n * PAGE)
        elif op == "dontneed":
            p.madvise(addr, n * PAGE, MADV_DONTNEED)
        elif op == "mremap":
            kind = rng.random()
            if kind < 0.6:
                dst = ARENA + rng.randrange(ARENA_PAGES - n) * PAGE
                if dst + n * PAGE <= addr or dst >= addr + n * PAGE:
                    p.mremap(addr, n * PAGE, n * PAGE, MOVE, dst)
            elif kind < 0.8:
                p.mremap(addr, n * PAGE, (n + rng.randint(1, 3)) * PAGE, MREMAP_MAYMOVE)
            else:
                p.mremap(addr, n * PAGE, max(1, n - 1) * PAGE, 0)
        elif op == "swap":
            entry = p.pagemap(addr)
            page = m.physmem.page(entry.pfn) if entry.present else None
            if page is not None and page.is_anon:
                assert m.try_to_unmap(page.pfn).success
    except (OSError, SegmentationFault):
        pass


@pytest.mark.parametrize("seed", range(12))
def test_walk_equals_truth_through_random_histories_and_everything_is_freed(
        config: tuple[str, str | None], seed: int) -> None:
    """Conformance of every configuration: after each step of a seeded history of fork,
    COW, mremap, mprotect, munmap, MADV_DONTNEED, swap-out/in, exec and exit, the walk
    of every mapped anonymous page returns exactly the truth; after all processes exit
    every metadata object is freed (m.meta.live all zero) and no frame is left."""
    rmap, policy = config
    m = Machine(rmap=rmap, mremap_policy=policy, ram_pages=4096, swap_pages=4096)
    rng = random.Random(seed)
    procs = [m.spawn()]
    for _ in range(120):
        random_step(m, rng, procs)
        check_walks(m)
    for p in procs:
        if p.alive:
            p.exit()
    assert {k: v for k, v in m.meta.live.items() if v} == {}
    assert m.physmem.nr_used == 0
