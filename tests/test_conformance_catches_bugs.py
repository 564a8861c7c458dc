"""The conformance kit must catch real bugs: deliberately broken schemes, each one bug away
from a shipped scheme, must make it fail, and the failure must carry a reproducer that,
when run, fails the same way.

Each broken scheme subclasses a real plugin class with a different PluginInfo name and is
passed to the kit as a class (Machine accepts plugin classes).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from mmcore_plugins.anon_vma import AnonVmaScheme
from mmcore_plugins.anon_vma_chain import AnonVma, AnonVmaChainScheme
from mmcore_plugins.pte_chains import PteChain, PteChains

from mmcore import Page, PluginInfo, Vma, WalkCost, hookimpl
from mmcore.testing import (
    ConformanceFailure,
    RmapConformance,
    check_invariants,
    run_random_sequence,
)


def _info(base: type, name: str, summary: str) -> PluginInfo:
    info: PluginInfo = base.info  # type: ignore[attr-defined]
    return PluginInfo(name=name, kind="rmap", summary=summary, structs=info.structs)


class WalkSkipsVma(AnonVmaChainScheme):
    """rmap_walk_anon() that stops one vma short when several vmas hold the page."""

    info: ClassVar[PluginInfo] = _info(AnonVmaChainScheme, "broken_walk_skips_vma",
                                       "walk skips the last vma of the interval tree")

    @hookimpl
    def rmap_walk(self, page: Page, cost: WalkCost) -> Iterator[tuple[Vma, int]]:
        found = list(super().rmap_walk(page, cost))
        yield from found[:-1] if len(found) > 1 else found


class SplitForgetsLink(AnonVmaChainScheme):
    """__split_vma() that forgets anon_vma_clone(): the new piece is in no anon_vma."""

    info: ClassVar[PluginInfo] = _info(AnonVmaChainScheme, "broken_split_forgets_link",
                                       "split does not link the new vma")

    @hookimpl
    def rmap_vma_split(self, vma: Vma, new: Vma) -> None:
        pass


class RemoveForgetsEntry(PteChains):
    """page_remove_rmap() that forgets to drop the entry of a page on a chain."""

    info: ClassVar[PluginInfo] = _info(PteChains, "broken_remove_forgets_entry",
                                       "remove leaves chain entries behind")

    @hookimpl
    def rmap_page_remove(self, page: Page, vma: Vma, address: int) -> None:
        if isinstance(page.rmap, PteChain):
            return
        super().rmap_page_remove(page, vma, address)


class ForkForgetsDup(PteChains):
    """fork that does not record the child's pte: page_add_rmap() missing in copy_pte."""

    info: ClassVar[PluginInfo] = _info(PteChains, "broken_fork_forgets_dup",
                                       "fork does not add the child's pte")

    @hookimpl
    def rmap_page_dup(self, page: Page, vma: Vma, address: int) -> None:
        pass


class UnlinkLeaksAnonVma(AnonVmaChainScheme):
    """unlink_anon_vmas() that never frees a non-root anon_vma (a metadata leak)."""

    info: ClassVar[PluginInfo] = _info(AnonVmaChainScheme, "broken_unlink_leaks",
                                       "non-root anon_vmas are never freed")

    def _put(self, anon_vma: AnonVma) -> None:
        if anon_vma.root is anon_vma:
            super()._put(anon_vma)
        else:
            anon_vma.refcount -= 1


class MergesAnything(AnonVmaChainScheme):
    """is_mergeable_anon_vma() that always says yes: vmas with different anon_vmas merge
    and the absorbed vma's pages are lost to the walk."""

    info: ClassVar[PluginInfo] = _info(AnonVmaChainScheme, "broken_merges_anything",
                                       "merges vmas with different anon_vmas")

    @hookimpl
    def rmap_vma_can_merge(self) -> bool:
        return True


class MergesAnything2004(AnonVmaScheme):
    """The same bug in the 2.6.7 anon_vma scheme (vma_merge's anon_vma check dropped)."""

    info: ClassVar[PluginInfo] = _info(AnonVmaScheme, "broken_merges_anything_2004",
                                       "merges vmas with different anon_vmas")

    @hookimpl
    def rmap_vma_can_merge(self) -> bool:
        return True


BROKEN: list[tuple[type, str]] = [
    (WalkSkipsVma, "rmap walk != truth"),
    (SplitForgetsLink, "rmap walk != truth"),
    (RemoveForgetsEntry, ""),
    (ForkForgetsDup, "rmap walk != truth"),
    (UnlinkLeaksAnonVma, "after every process exited"),
]


def _assert_reproducer(failure: ConformanceFailure, scheme: type) -> None:
    text = str(failure)
    assert "Minimal reproducer" in text
    assert "replay(" in text and "Op('spawn', pid=1)" in text
    assert f"import {scheme.__name__}" in failure.reproducer
    assert 2 <= len(failure.ops) <= 40, len(failure.ops)
    # The reproducer is runnable and fails the same way.
    with pytest.raises(ConformanceFailure) as again:
        exec(compile(failure.reproducer, "<reproducer>", "exec"), {})
    assert again.value.reason.splitlines()[0].split("(")[0] == \
        failure.reason.splitlines()[0].split("(")[0]


@pytest.mark.slow  # hypothesis searches and shrinks: up to 27 s for one broken scheme
@pytest.mark.parametrize(("scheme", "expected"), BROKEN, ids=[b.__name__ for b, _ in BROKEN])
def test_hypothesis_suite_fails_with_a_reproducer(scheme: type, expected: str) -> None:
    suite = type("TestBroken", (RmapConformance,), {"rmap": scheme, "max_examples": 60})
    with pytest.raises(ConformanceFailure) as info:
        suite().test_random_operations()
    failure = info.value
    assert expected in failure.reason
    _assert_reproducer(failure, scheme)


@pytest.mark.slow  # a seeded walk and its shrinking: up to 2 s a scheme
@pytest.mark.parametrize(("scheme", "expected"), BROKEN, ids=[b.__name__ for b, _ in BROKEN])
def test_random_sequence_fails_with_a_reproducer(scheme: type, expected: str) -> None:
    with pytest.raises(ConformanceFailure) as info:
        run_random_sequence(scheme, seed=0, steps=2000, minimize_budget=10)
    assert expected in info.value.reason
    _assert_reproducer(info.value, scheme)


@pytest.mark.parametrize("scheme", [WalkSkipsVma, ForkForgetsDup])
def test_fork_tree_scenario_fails(scheme: type) -> None:
    suite = type("TestBroken", (RmapConformance,), {"rmap": scheme})
    with pytest.raises(ConformanceFailure, match="rmap walk != truth"):
        suite().test_fork_tree()


@pytest.mark.parametrize("scheme", [MergesAnything, MergesAnything2004])
def test_merge_scenario_fails(scheme: type) -> None:
    suite = type("TestBroken", (RmapConformance,), {"rmap": scheme})
    with pytest.raises(ConformanceFailure) as info:
        suite().test_merge_after_fork()
    assert "missing from the walk" in info.value.reason
    _assert_reproducer(info.value, scheme)


def test_split_storm_scenario_fails() -> None:
    suite = type("TestBroken", (RmapConformance,), {"rmap": SplitForgetsLink})
    with pytest.raises(ConformanceFailure, match="missing from the walk"):
        suite().test_mprotect_split_storm()


def test_check_invariants_names_the_missing_mapping() -> None:
    """The message says which pfn and which (pid, address) the walk missed."""
    from mmcore import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, Machine

    m = Machine(rmap=ForkForgetsDup)
    p = m.spawn()
    a = p.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    p.write(a, b"x")
    c = p.fork()
    pfn = p.pagemap(a).pfn
    with pytest.raises(AssertionError) as info:
        check_invariants(m)
    text = str(info.value)
    assert f"pfn {pfn}" in text
    assert f"missing from the walk: pid {c.pid} @ {a:#x}" in text


def test_content_mismatch_is_reported() -> None:
    from mmcore import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, Machine

    m = Machine(rmap="pte_chains")
    p = m.spawn()
    a = p.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    p.write(a, b"abc")
    with pytest.raises(AssertionError, match=r"holds b'abc', expected b'xyz'"):
        check_invariants(m, {(p.pid, a): b"xyz"})


def test_broken_machine_is_reported() -> None:
    """A plugin that raises marks the machine broken; the kit says so plainly."""

    class Explodes(PteChains):
        info: ClassVar[PluginInfo] = _info(PteChains, "broken_explodes", "raises on fork")

        @hookimpl
        def rmap_page_dup(self, page: Page, vma: Vma, address: int) -> Any:
            raise RuntimeError("boom")

    with pytest.raises(ConformanceFailure) as info:
        run_random_sequence(Explodes, seed=0, steps=500, minimize_budget=5)
    text = str(info.value)
    assert ("marked the machine broken: plugin 'broken_explodes' raised in hook "
            "'rmap_page_dup': RuntimeError: boom") in text
    assert "underlying exception" in text and "rmap_page_dup" in text
