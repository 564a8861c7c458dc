"""Issue 12 item 2, the type hole a mypyc compile found in fork.py: dup_mmap() sets the
child vma's anon_vma to None and then reads what rmap_vma_fork set. The read must see the
hook's value (a compiled build checked it against the narrowed None and raised
TypeError), and a scheme that leaves it unset is named as the culprit."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from mmcore_plugins.anon_vma_chain import AnonVma, AnonVmaChainScheme

from mmcore import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, Machine, PluginInfo, hookimpl
from mmcore.errors import MachineBroken

PAGE = 4096


def faulted_process(m: Machine) -> tuple[Any, int]:
    """A process with one written private anonymous page."""
    p = m.spawn()
    a = p.mmap(0, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    p.write(a, b"x")
    return p, a


def test_fork_keeps_the_anon_vma_the_fork_hook_set() -> None:
    """The child's vma has the anon_vma anon_vma_fork made: a new one whose parent is the
    parent vma's."""
    p, a = faulted_process(Machine(rmap="anon_vma_chain"))
    c = p.fork()
    child_av, parent_av = c.mm.vmas.lookup(a).anon_vma, p.mm.vmas.lookup(a).anon_vma
    assert isinstance(child_av, AnonVma) and child_av is not parent_av
    assert child_av.parent is parent_av


def test_a_fork_hook_that_leaves_anon_vma_unset_is_reported_as_a_plugin_error() -> None:
    """A scheme whose rmap_vma_fork gives the child's vma no anon_vma breaks the machine
    with a message that says so."""

    class Forgetful(AnonVmaChainScheme):
        info: ClassVar[PluginInfo] = PluginInfo(name="forgetful", kind="rmap", summary="x",
                                                structs=AnonVmaChainScheme.info.structs)

        @hookimpl
        def rmap_vma_fork(self, src: Any, dst: Any) -> None:
            """Link nothing."""

    p, _ = faulted_process(Machine(rmap=Forgetful))
    with pytest.raises(MachineBroken, match="left the child's anon_vma unset"):
        p.fork()


@pytest.mark.parametrize("depth", [1, 7, 40])
def test_an_all_alive_fork_chain_holds_one_chain_per_ancestor(depth: int) -> None:
    """anon_vma_clone() copies the parent's whole chain and, with every ancestor alive,
    reuses no anon_vma: the vma at depth k has k + 1 anon_vma_chains, (d+1)(d+2)/2 in
    all, as the kernel's slab counts show (docs/kernel-facts.md section 21); they all go
    when the chain exits."""
    m = Machine(rmap="anon_vma_chain")
    p, a = faulted_process(m)
    chain = [p]
    for _ in range(depth):
        p = p.fork()
        p.write(a, b"y")
        chain.append(p)
    assert [len(q.mm.vmas.lookup(a).rmap) for q in chain] == list(range(1, depth + 2))
    assert m.meta.live["anon_vma_chain"] == (depth + 1) * (depth + 2) // 2
    assert m.meta.live["anon_vma"] == depth + 1
    for q in chain:
        q.exit(0)
    assert not m.meta.live.get("anon_vma_chain") and not m.meta.live.get("anon_vma")
