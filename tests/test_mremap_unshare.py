"""The ``unshare`` mremap policy (plugins/mremap_unshare.py): Linus's copy_one_pte rule.

"If the page is anonymous and page_count > 1, copy it" (anon_vma RFC2 thread, March 2004;
implemented by Hugh Dickins as rmap 11's early COW).
"""

from __future__ import annotations

import pytest

from mmcore import (
    MAP_ANONYMOUS,
    MAP_PRIVATE,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PROT_READ,
    PROT_WRITE,
    Machine,
    Process,
)
from mmcore.plugins import plugin_info, plugins_of_kind, valid_configurations

RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS
PAGE = 4096
FAR = 0x30000000
MOVE = MREMAP_MAYMOVE | MREMAP_FIXED


def region(p: Process, pages: int) -> int:
    """A private anonymous region with every page written (page i holds b"<i>")."""
    a = p.mmap(0, pages * PAGE, RW, ANON)
    for i in range(pages):
        p.write(a + i * PAGE, b"%d" % i)
    return a


def test_the_policy_provides_what_anonmm_needs() -> None:
    """PluginInfo: kind mremap_policy, name unshare, provides mremap_unshare; it can be
    combined with every rmap scheme."""
    cls = plugins_of_kind("mremap_policy")["unshare"]
    info = plugin_info(cls)
    assert (info.name, info.kind) == ("unshare", "mremap_policy")
    assert info.provides == frozenset({"mremap_unshare"})
    schemes = {name for name, scheme in plugins_of_kind("rmap").items()
               if plugin_info(scheme).needs <= info.provides}
    assert "anonmm" in schemes
    assert {r for r, pol in valid_configurations() if pol == "unshare"} == schemes


@pytest.mark.parametrize("rmap", ["anonmm", "anon_vma", "pte_chains", "anon_vma_chain"])
def test_an_exclusive_page_is_moved_not_copied(rmap: str) -> None:
    """page_count == 1: the pte moves and the frame stays the same."""
    m = Machine(rmap=rmap, mremap_policy="unshare")
    p = m.spawn()
    a = region(p, 3)
    pfns = [p.pagemap(a + i * PAGE).pfn for i in range(3)]
    b = p.mremap(a, 3 * PAGE, 3 * PAGE, MOVE, FAR)
    assert [p.pagemap(b + i * PAGE).pfn for i in range(3)] == pfns
    assert (m.counters.mremap_page_copies, m.counters.mremap_ptes_moved) == (0, 3)


@pytest.mark.parametrize("rmap", ["anonmm", "anon_vma", "pte_chains", "anon_vma_chain"])
def test_a_page_shared_after_fork_is_copied_for_the_mover(rmap: str) -> None:
    """page_count > 1: the moving process gets a private copy with the same content; the
    other process keeps the original, now mapped once. Harmless for schemes that do not
    need it, but every shared page moved costs a copy."""
    m = Machine(rmap=rmap, mremap_policy="unshare")
    p = m.spawn()
    pages = 3
    a = region(p, pages)
    c = p.fork()
    b = c.mremap(a, pages * PAGE, pages * PAGE, MOVE, FAR)
    assert (m.counters.mremap_page_copies, m.counters.mremap_ptes_moved) == (pages, 0)
    for i in range(pages):
        orig, copy = p.pagemap(a + i * PAGE).pfn, c.pagemap(b + i * PAGE).pfn
        assert orig != copy
        assert m.kpagecount(orig) == m.kpagecount(copy) == 1
        assert c.read(b + i * PAGE, 1) == p.read(a + i * PAGE, 1) == b"%d" % i
        for pfn in (orig, copy):
            assert m.rmap_walk(pfn).mappings == m.rmap_truth(pfn)


@pytest.mark.parametrize("rmap", ["anon_vma", "pte_chains", "anon_vma_chain"])
def test_without_the_policy_the_same_move_copies_nothing(rmap: str) -> None:
    """The kernel's own behaviour (no policy): the shared pages move and stay shared."""
    m = Machine(rmap=rmap)
    p = m.spawn()
    a = region(p, 3)
    c = p.fork()
    b = c.mremap(a, 3 * PAGE, 3 * PAGE, MOVE, FAR)
    assert (m.counters.mremap_page_copies, m.counters.mremap_ptes_moved) == (0, 3)
    for i in range(3):
        assert p.pagemap(a + i * PAGE).pfn == c.pagemap(b + i * PAGE).pfn


def test_the_rule_counts_references_not_mappings() -> None:
    """Linus's test is page_count, not page_mapcount: a page mapped once but also held
    by the swap cache (another process still has its swap pte) is copied too."""
    m = Machine(rmap="anonmm", mremap_policy="unshare")
    p = m.spawn()
    a = region(p, 1)
    c = p.fork()
    assert m.try_to_unmap(p.pagemap(a).pfn).success
    p.read(a, 1)  # swapped back in by p only: mapcount 1, swap cache + pte = 2 refs
    pfn = p.pagemap(a).pfn
    assert m.kpagecount(pfn) == 1
    b = p.mremap(a, PAGE, PAGE, MOVE, FAR)
    assert m.counters.mremap_page_copies == 1
    assert p.pagemap(b).pfn != pfn
    assert c.read(a, 1) == p.read(b, 1) == b"0"
