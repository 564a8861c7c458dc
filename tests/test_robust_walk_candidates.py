"""Issue 14.1: the core verifies every rmap walk candidate before acting on it.

The plugin guide allows a scheme to propose extra candidates. A scheme that yields the
same (mm, address) twice used to make try_to_unmap() clear one pte twice: rss went to -1
and a page the child still mapped was freed. find_mappings() now drops repeated and
non-mapping candidates (rmap_walk_anon() verifies each through page_vma_mapped_walk()),
and the invariant checker reports the corruption the bug produced.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from mmcore_plugins.anon_vma_chain import AnonVmaChainScheme
from mmcore_plugins.i_mmap import IMmapTree

from mmcore import (
    MAP_ANONYMOUS,
    MAP_PRIVATE,
    MAP_SHARED,
    PROT_READ,
    PROT_WRITE,
    Machine,
    Page,
    PluginInfo,
    Process,
    Vma,
    WalkCost,
    hookimpl,
)
from mmcore.constants import PAGE_SIZE
from mmcore.page import PG_CACHE
from mmcore.testing import find_violations, run_random_sequence

RW = PROT_READ | PROT_WRITE


class DuplicateCandidates(AnonVmaChainScheme):
    """anon_vma_chain whose walk yields every candidate twice, then a bogus one."""

    info: ClassVar[PluginInfo] = PluginInfo(
        name="duplicate_candidates", kind="rmap", summary="yields each candidate twice",
        structs=AnonVmaChainScheme.info.structs)

    @hookimpl
    def rmap_walk(self, page: Page, cost: WalkCost) -> Iterator[tuple[Vma, int]]:
        found = list(super().rmap_walk(page, cost))
        for vma, addr in found:
            yield vma, addr
            yield vma, addr
        for vma, _addr in found:  # an address outside the vma is never a mapping
            yield vma, vma.end


class DuplicateFileCandidates(IMmapTree):
    """i_mmap_tree whose file walk yields every candidate twice."""

    info: ClassVar[PluginInfo] = PluginInfo(
        name="duplicate_file_candidates", kind="file_rmap",
        summary="yields each file candidate twice", structs=IMmapTree.info.structs)

    @hookimpl
    def file_rmap_walk(self, page: Page, cost: WalkCost) -> Iterator[tuple[Vma, int]]:
        for vma, addr in super().file_rmap_walk(page, cost):
            yield vma, addr
            yield vma, addr


def _forked(m: Machine) -> tuple[int, int, int, int]:
    p = m.spawn()
    a = p.mmap(0, PAGE_SIZE, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    p.write(a, b"x")
    child = p.fork()
    return p.pid, child.pid, a, p.pagemap(a).pfn


def test_14_1_duplicate_candidates_walk_reports_each_mapping_once() -> None:
    m = Machine(rmap=DuplicateCandidates)
    parent, child, a, pfn = _forked(m)
    walk = m.rmap_walk(pfn)
    assert walk.mappings == [(parent, a), (child, a)]
    assert walk.cost.hits == 2 and walk.cost.wasted == walk.cost.ptes_probed - 2 > 0


def test_14_1_duplicate_candidates_try_to_unmap_frees_nothing_still_mapped() -> None:
    m = Machine(rmap=DuplicateCandidates)
    parent, child, a, pfn = _forked(m)
    result = m.try_to_unmap(pfn)
    assert result.success and result.unmapped == [(parent, a), (child, a)]
    assert [m.processes[pid].mm.rss for pid in (parent, child)] == [0, 0]
    assert find_violations(m) == []
    assert m.processes[child].read(a, 1) == b"x"  # swapped in again, not a freed frame
    assert m.broken is None


def test_14_1_duplicate_file_candidates_unmap_each_pte_once() -> None:
    m = Machine(file_rmap=DuplicateFileCandidates)
    m.create_file("/f", b"data")
    p = m.spawn()
    fd = p.open("/f")
    a = p.mmap(0, PAGE_SIZE, PROT_READ, MAP_SHARED, fd)
    assert p.read(a, 4) == b"data"
    child = p.fork()  # fork copies no pte of a shared file mapping: the child faults
    assert child.read(a, 4) == b"data"
    page = m.physmem.page(p.pagemap(a).pfn)
    assert page is not None and page.flags & PG_CACHE
    result = m.try_to_unmap(page.pfn)
    assert result.unmapped == [(p.pid, a), (child.pid, a)]
    assert find_violations(m) == []
    assert child.read(a, 4) == b"data"


def test_14_1_duplicate_candidates_pass_the_conformance_sequences() -> None:
    # Reclaim (page_referenced, try_to_unmap) runs under memory pressure in these.
    run_random_sequence(DuplicateCandidates, seed=3, steps=300,
                        machine_kwargs={"ram_pages": 48, "swap_pages": 256})


def test_14_1_invariants_catch_negative_rss() -> None:
    m = Machine()
    p = m.spawn()
    p.mm.add_rss(_anon_page(m, p), -2)  # what unmapping one pte twice did
    problems = find_violations(m)
    assert any("negative rss" in line for line in problems), problems


def test_14_1_invariants_catch_a_freed_page_still_mapped() -> None:
    m = Machine()
    p = m.spawn()
    page = _anon_page(m, p)
    page.refcount = page.mapcount = 0  # what a second put_page() of one pte did
    m.physmem.free(page)
    problems = find_violations(m)
    assert any("use after free" in line for line in problems), problems


def test_14_1_invariants_catch_a_reversed_vma() -> None:
    m = Machine()
    p = m.spawn()
    a = p.mmap(0, PAGE_SIZE, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    vma = p.mm.vmas.lookup(a)
    assert vma is not None
    vma.end = vma.start - PAGE_SIZE  # what mmap(0, -4096, ...) used to create
    problems = find_violations(m)
    assert any("reversed" in line for line in problems), problems


def _anon_page(m: Machine, p: Process) -> Page:
    a = p.mmap(0, PAGE_SIZE, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    p.write(a, b"y")
    page = m.physmem.page(p.pagemap(a).pfn)
    assert page is not None
    return page
