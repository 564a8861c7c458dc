"""The plugin manager and hook surface: selection, validation, direct binding, order."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, ClassVar

import pytest
from mmcore_plugins.anon_vma_chain import AnonVmaChainScheme
from mmcore_plugins.pte_chains import PteChains

from mmcore import (
    MAP_ANONYMOUS,
    MAP_PRIVATE,
    PROT_READ,
    PROT_WRITE,
    ConfigError,
    Machine,
    MachineBroken,
    PluginError,
    PluginInfo,
    hookimpl,
)

RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS
PAGE = 4096


def test_unknown_scheme_lists_the_choices() -> None:
    """Machine(rmap=unknown) fails with "choose one of: ..." naming installed schemes."""
    with pytest.raises(ConfigError, match=r"choose one of: .*anon_vma_chain.*pte_chains"):
        Machine(rmap="no_such_scheme")


def test_misspelt_hookimpl_fails_when_the_machine_is_built() -> None:
    """check_pending(): a hookimpl that matches no spec is an error at once."""

    class Misspelt(PteChains):
        info: ClassVar[PluginInfo] = PluginInfo(name="misspelt", kind="rmap", summary="x")

        @hookimpl
        def rmap_page_new_anonn(self, page: Any) -> None:
            """A typo: no such hook."""

    with pytest.raises(PluginError, match="rmap_page_new_anonn"):
        Machine(rmap=Misspelt)


def test_per_page_hooks_are_bound_to_the_scheme_without_pluggy() -> None:
    """The fault path calls the scheme's method itself, not pluggy's hook caller."""
    for name in ("pte_chains", "anon_vma_chain"):
        m = Machine(rmap=name)
        scheme = m.plugins[0]
        for hook, bound in (("rmap_page_new_anon", m.rmap_page_new_anon),
                            ("rmap_page_remove", m.rmap_page_remove),
                            ("rmap_walk", m.rmap_walk_impl)):
            # A method taking a subset of the spec's arguments gets a thin adapter.
            assert getattr(bound, "__wrapped__", bound) == getattr(scheme, hook)


def test_a_hook_redefined_on_a_used_class_is_the_one_the_next_machine_binds() -> None:
    """The plugin manager remembers pluggy's parse of each plugin class (every Machine
    builds one) only while the class attribute is the same object: a hook redefined on
    the class after a Machine used it (a notebook cell run again) is bound by the next
    Machine, and an attribute that is no longer a hookimpl is no longer registered."""

    class Edited(PteChains):
        info: ClassVar[PluginInfo] = PluginInfo(name="edited", kind="rmap", summary="x")

    first = Machine(rmap=Edited)
    assert getattr(first.rmap_page_remove, "__wrapped__", first.rmap_page_remove) == \
        first.plugins[0].rmap_page_remove

    @hookimpl
    def rmap_page_remove(self: Any, page: Any, vma: Any, address: Any) -> None:
        """The redefinition."""

    Edited.rmap_page_remove = rmap_page_remove  # type: ignore[method-assign]
    second = Machine(rmap=Edited)
    assert getattr(second.rmap_page_remove, "__wrapped__", second.rmap_page_remove) \
        .__func__ is rmap_page_remove

    @hookimpl
    def rmap_page_new_anonn(self: Any, page: Any) -> None:
        """A misspelt hook added later is found too (check_pending fails on it)."""

    Edited.rmap_page_new_anonn = rmap_page_new_anonn  # type: ignore[attr-defined]
    with pytest.raises(PluginError, match="rmap_page_new_anonn"):
        Machine(rmap=Edited)
    Edited.rmap_page_new_anonn = lambda self, page: None  # type: ignore[attr-defined]
    Machine(rmap=Edited)  # no longer a hookimpl: not registered, nothing pending


def test_two_machines_with_different_schemes_coexist() -> None:
    """One PluginManager per Machine: no global state leaks between machines."""
    a, b = Machine(rmap="pte_chains"), Machine(rmap="anon_vma_chain")
    for m in (a, b):
        p = m.spawn()
        addr = p.mmap(0, PAGE, RW, ANON)
        p.write(addr, b"z")
    assert a.costs().metadata_objects == {}
    assert b.costs().metadata_objects["anon_vma"] == 1
    assert a.pm is not b.pm


class Recorder:
    """An observer that records every rmap hook call through new-style wrappers."""

    info: ClassVar[PluginInfo] = PluginInfo(name="recorder", kind="observer",
                                            summary="records hook order")
    calls: list[str]

    def __init__(self, machine: Machine) -> None:
        self.calls = []

    def _record(self, name: str) -> Generator[None, Any, Any]:
        self.calls.append(name)
        return (yield)

    @hookimpl(wrapper=True)
    def rmap_mm_init(self) -> Generator[None, Any, Any]:
        """Record."""
        return (yield from self._record("mm_init"))

    @hookimpl(wrapper=True)
    def rmap_mm_exit(self) -> Generator[None, Any, Any]:
        """Record."""
        return (yield from self._record("mm_exit"))

    @hookimpl(wrapper=True)
    def rmap_anon_prepare(self) -> Generator[None, Any, Any]:
        """Record."""
        return (yield from self._record("anon_prepare"))

    @hookimpl(wrapper=True)
    def rmap_vma_fork(self) -> Generator[None, Any, Any]:
        """Record."""
        return (yield from self._record("vma_fork"))

    @hookimpl(wrapper=True)
    def rmap_vma_split(self) -> Generator[None, Any, Any]:
        """Record."""
        return (yield from self._record("vma_split"))

    @hookimpl(wrapper=True)
    def rmap_vma_unlink(self) -> Generator[None, Any, Any]:
        """Record."""
        return (yield from self._record("vma_unlink"))

    @hookimpl(wrapper=True)
    def rmap_page_new_anon(self) -> Generator[None, Any, Any]:
        """Record."""
        return (yield from self._record("page_new_anon"))

    @hookimpl(wrapper=True)
    def rmap_page_dup(self) -> Generator[None, Any, Any]:
        """Record."""
        return (yield from self._record("page_dup"))

    @hookimpl(wrapper=True)
    def rmap_page_remove(self) -> Generator[None, Any, Any]:
        """Record."""
        return (yield from self._record("page_remove"))


def test_hooks_fire_in_the_documented_order() -> None:
    """The lifecycle of docs/hooks.md: prepare before the first anon page, fork links the
    vma before its ptes are copied, COW adds the new page before removing the old one,
    munmap removes ptes before unlinking, exit unlinks before mm_exit. A wrapper on a
    per-page hook also proves the Machine falls back to the hook caller when needed."""
    m = Machine(rmap="anon_vma_chain", observers=[Recorder])
    rec = m.pm.get_plugin("recorder")
    p = m.spawn()
    a = p.mmap(0, 2 * PAGE, RW, ANON)
    p.write(a, b"1")
    c = p.fork()
    c.write(a, b"2")
    p.mprotect(a + PAGE, PAGE, PROT_READ)
    c.exit(0)
    assert rec.calls == [
        "mm_init",                                   # spawn
        "anon_prepare", "page_new_anon",             # first write
        "mm_init", "vma_fork", "page_dup",           # fork
        "page_new_anon", "page_remove",              # child COW
        "vma_split",                                 # mprotect of the second page
        "page_remove", "vma_unlink", "mm_exit",      # child exit
    ]


def test_a_plugin_that_raises_marks_the_machine_broken() -> None:
    """A bug inside a hook leaves the machine clearly unusable, never silently wrong."""

    class Faulty(AnonVmaChainScheme):
        info: ClassVar[PluginInfo] = PluginInfo(name="faulty", kind="rmap", summary="x",
                                                structs=AnonVmaChainScheme.info.structs)

        @hookimpl
        def rmap_vma_fork(self, src: Any, dst: Any) -> None:
            """Fail in the middle of fork."""
            raise RuntimeError("boom")

    m = Machine(rmap=Faulty)
    p = m.spawn()
    a = p.mmap(0, PAGE, RW, ANON)
    p.write(a, b"x")
    with pytest.raises(MachineBroken, match="boom"):
        p.fork()
    with pytest.raises(MachineBroken):
        p.read(a, 1)
    assert m.broken is not None


def test_a_scheme_must_not_leave_per_page_state_on_a_freed_page() -> None:
    """put_page() refuses to free a page whose rmap slot the scheme forgot to clear."""

    class Leaky(PteChains):
        info: ClassVar[PluginInfo] = PluginInfo(name="leaky", kind="rmap", summary="x",
                                                structs=("pte_chain",))

        @hookimpl
        def rmap_page_remove(self, page: Any, vma: Any, address: int) -> None:
            """Forget to drop the entry."""

    m = Machine(rmap=Leaky)
    p = m.spawn()
    a = p.mmap(0, PAGE, RW, ANON)
    p.write(a, b"x")
    with pytest.raises(MachineBroken, match="per-page state"):
        p.munmap(a, PAGE)
