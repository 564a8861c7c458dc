"""Machine.trace_walk: every candidate an rmap walk proposed, in order, and what the core
found at its pte (page_vma_mapped_walk() in rmap_walk_anon()); and the walk drawn on
mmcore.viz.rmap_dot (issue 9: the walk of a chosen page highlighted)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

import pytest
from mmcore_plugins.anon_vma_chain import AnonVmaChainScheme

from mmcore import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    PROT_READ,
    PROT_WRITE,
    Machine,
    Page,
    PluginInfo,
    Process,
    Vma,
    WalkCost,
    WalkTrace,
    display,
    hookimpl,
)
from mmcore.constants import PAGE_SIZE
from mmcore.rmap import MAPS_IT
from mmcore.viz import rmap_dot

BASE = 0x10000000


class OddCandidates(AnonVmaChainScheme):
    """anon_vma_chain whose walk first proposes an address past each vma's end, then
    every real candidate twice."""

    info: ClassVar[PluginInfo] = PluginInfo(
        name="odd_candidates", kind="rmap", summary="bogus and repeated candidates",
        structs=AnonVmaChainScheme.info.structs)

    @hookimpl
    def rmap_walk(self, page: Page, cost: WalkCost) -> Iterator[tuple[Vma, int]]:
        found = list(super().rmap_walk(page, cost))
        for vma, _addr in found:
            yield vma, vma.end
        for vma, addr in found:
            yield vma, addr
            yield vma, addr


class StrayCandidate(AnonVmaChainScheme):
    """anon_vma_chain whose walk first proposes the page's address in every vma of every
    other process, whether or not its structure links them."""

    info: ClassVar[PluginInfo] = PluginInfo(
        name="stray_candidate", kind="rmap", summary="candidates from outside the tree",
        structs=AnonVmaChainScheme.info.structs)

    @hookimpl
    def rmap_walk(self, page: Page, cost: WalkCost) -> Iterator[tuple[Vma, int]]:
        found = list(super().rmap_walk(page, cost))
        linked = {id(vma) for vma, _ in found}
        machine = found[0][0].mm.machine
        for proc in machine.live_processes():
            for vma in proc.mm.vmas:
                if id(vma) not in linked:
                    yield vma, vma.start
        yield from found


def _fork_and_copy(m: Machine) -> tuple[Process, Process]:
    """p writes pages 0 and 1 and forks c; c copies page 0 (COW), page 1 stays shared."""
    p = m.spawn()
    p.mmap(BASE, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE,
           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
    p.write(BASE, b"zero")
    p.write(BASE + PAGE_SIZE, b"one")
    c = p.fork()
    c.write(BASE, b"ZERO")
    return p, c


def test_trace_walk_under_anon_vma_2004_wastes_a_probe_on_the_childs_copy() -> None:
    """anon_vma (2004): one anon_vma for the family, walked newest vma first
    (list_add); c copied page 0 but its vma stays on the list, so the walk of p's frame
    probes c's vma first (its pte maps c's copy: wasted) and then p's (the page)."""
    m = Machine(rmap="anon_vma")
    p, c = _fork_and_copy(m)
    pfn = p.pagemap(BASE).pfn
    walk = m.trace_walk(pfn)
    assert isinstance(walk, WalkTrace) and walk.mapcount == 1
    assert [(pr.pid, pr.address, pr.verdict) for pr in walk.probes] == [
        (c.pid, BASE, f"maps pfn {c.pagemap(BASE).pfn}"), (p.pid, BASE, MAPS_IT)]
    assert walk.mappings == [(p.pid, BASE)] == m.rmap_walk(pfn).mappings
    assert (walk.cost.ptes_probed, walk.cost.hits, walk.cost.wasted) == (2, 1, 1)


def test_trace_walk_of_a_copied_page_under_anon_vma_chain_probes_only_the_child() -> None:
    """anon_vma_chain: the copy is in c's own anon_vma, whose tree holds only c's vma."""
    m = Machine(rmap="anon_vma_chain")
    _p, c = _fork_and_copy(m)
    walk = m.trace_walk(c.pagemap(BASE).pfn)
    assert [(pr.pid, pr.verdict) for pr in walk.probes] == [(c.pid, MAPS_IT)]


def test_trace_walk_stops_once_every_mapping_is_found() -> None:
    """The core's done() check: c's copy (mapcount 1) is found in c's vma, the first on
    the 2004 list, and p's vma, next on the list, is never probed."""
    m = Machine(rmap="anon_vma")
    _p, c = _fork_and_copy(m)
    walk = m.trace_walk(c.pagemap(BASE).pfn)
    assert [(pr.pid, pr.verdict) for pr in walk.probes] == [(c.pid, MAPS_IT)]
    assert walk.cost.vmas_visited == 1


def test_trace_walk_names_each_wasted_probe() -> None:
    """Verdicts of a scheme proposing junk: an address past the vma's end, then each real
    candidate twice (the repeat is wasted, as rmap_walk dedups candidates)."""
    m = Machine(rmap=OddCandidates)
    p, c = _fork_and_copy(m)
    walk = m.trace_walk(p.pagemap(BASE + PAGE_SIZE).pfn)  # shared: mapcount 2
    verdicts = [pr.verdict for pr in walk.probes]
    assert verdicts[:2] == ["outside the vma"] * 2
    assert verdicts[2:] == [MAPS_IT, "repeat", MAPS_IT]
    assert sorted(walk.mappings) == sorted([(p.pid, BASE + PAGE_SIZE),
                                            (c.pid, BASE + PAGE_SIZE)])


def test_trace_walk_names_a_pte_that_is_gone_or_swapped() -> None:
    """A candidate whose pte is empty, or a swap entry, is a wasted probe named so."""
    m = Machine(rmap="anon_vma")
    p, c = _fork_and_copy(m)
    c.munmap(BASE + PAGE_SIZE, PAGE_SIZE)
    c.mmap(BASE + PAGE_SIZE, PAGE_SIZE, PROT_READ | PROT_WRITE,
           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
    m.try_to_unmap(c.pagemap(BASE).pfn)  # c's page 0 goes to swap
    p.write(BASE + 2 * PAGE_SIZE, b"two")
    pfn = p.pagemap(BASE + 2 * PAGE_SIZE).pfn
    verdicts = {(pr.pid, pr.address): pr.verdict for pr in m.trace_walk(pfn).probes}
    assert verdicts[(p.pid, BASE + 2 * PAGE_SIZE)] == MAPS_IT
    assert all(v in ("no pte", "swap entry", MAPS_IT) for v in verdicts.values())


def test_trace_walk_counts_as_a_walk() -> None:
    """It is a real walk: the machine's walk cost grows by its cost."""
    m = Machine(rmap="anon_vma")
    _p, c = _fork_and_copy(m)
    before = m.walk_cost.walks
    m.trace_walk(c.pagemap(BASE).pfn)
    assert m.walk_cost.walks == before + 1


def test_trace_walk_display_lists_the_probes_in_order() -> None:
    """The display (what a notebook shows): one row per probe, with its verdict."""
    m = Machine(rmap="anon_vma")
    p, c = _fork_and_copy(m)
    text = display.text(m.trace_walk(p.pagemap(BASE).pfn))
    assert "mappings found     1 of 1" in text
    lines = [ln.split() for ln in text.splitlines() if ln.startswith("  1 ") or
             ln.startswith("  2 ")]
    assert lines == [["1", str(c.pid), "0x10000000-0x10004000", "0x10000000", "maps",
                      "pfn", str(c.pagemap(BASE).pfn)],
                     ["2", str(p.pid), "0x10000000-0x10004000", "0x10000000", "maps",
                      "it"]]


def test_rmap_dot_highlights_the_probed_vmas() -> None:
    """With the walk, the picture labels each probed vma with its probe and fills it
    green (found) or orange (wasted), and the title counts the probes. Without a walk the
    picture is the one it always was."""
    m = Machine(rmap="anon_vma")
    p, c = _fork_and_copy(m)
    pfn = p.pagemap(BASE).pfn
    plain = rmap_dot(m, pfn)
    drawn = rmap_dot(m, pfn, m.trace_walk(pfn))
    assert "probe" not in plain and "probe" not in plain.outline
    assert "walk: 2 probes, found 1 of 1" in drawn.splitlines()[1]
    wasted = f"probe 1: maps pfn {c.pagemap(BASE).pfn}"
    lines = drawn.splitlines()
    assert any(wasted in ln and 'fillcolor="moccasin"' in ln for ln in lines)
    assert any("probe 2: maps it" in ln and 'fillcolor="palegreen"' in ln for ln in lines)
    assert f"{wasted} --vm_mm--> mm of pid {c.pid}" in drawn.outline
    assert f"probe 2: maps it --vm_mm--> mm of pid {p.pid}" in drawn.outline


def test_rmap_dot_leaves_a_vma_the_walk_never_probed_plain() -> None:
    """The walk of c's copy stops at c's vma: p's vma, later on the list, is drawn as
    without a walk."""
    m = Machine(rmap="anon_vma")
    p, c = _fork_and_copy(m)
    pfn = c.pagemap(BASE).pfn
    drawn = rmap_dot(m, pfn, m.trace_walk(pfn))
    assert f"pgoff 0x10000 --vm_mm--> mm of pid {p.pid}" in drawn.outline
    assert f"probe 1: maps it --vm_mm--> mm of pid {c.pid}" in drawn.outline
    assert sum("fillcolor=\"palegreen\"" in ln for ln in drawn.splitlines()) == 1


def test_rmap_dot_rejects_the_walk_of_another_page() -> None:
    m = Machine(rmap="anon_vma")
    p, c = _fork_and_copy(m)
    with pytest.raises(ValueError, match="traced pfn"):
        rmap_dot(m, p.pagemap(BASE).pfn, m.trace_walk(c.pagemap(BASE).pfn))


def test_rmap_dot_draws_a_candidate_from_outside_the_structure() -> None:
    """A probed vma the scheme's structure does not link to the page hangs off the page
    by a dashed orange ``candidate`` edge, with its probe's verdict."""
    m = Machine(rmap=StrayCandidate)
    p, _c = _fork_and_copy(m)
    stranger = m.spawn()
    stranger.mmap(BASE, PAGE_SIZE, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
    pfn = p.pagemap(BASE).pfn
    walk = m.trace_walk(pfn)
    assert (walk.probes[0].pid, walk.probes[0].verdict) == (stranger.pid, "no pte")
    drawn = rmap_dot(m, pfn, walk)
    assert "--candidate--> vma 10000000-10001000 rw-p | pgoff 0x10000 | probe 1: no pte" \
        in drawn.outline
    assert any('label="candidate"' in ln and 'color="darkorange"' in ln
               for ln in drawn.splitlines())
