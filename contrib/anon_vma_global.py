"""anon_vma_global: the anonmm variant Andrea Arcangeli sketched in the anon_vma RFC2
thread (13 March 2004) and that was never implemented.

It keeps anonmm's per-fork-group list of mms (exec_rmap, dup_rmap, exit_rmap, one
``struct anonmm`` per mm) but gives every mm a prio tree of its anonymous vmas keyed by
vm_pgoff, as files have for i_mmap. A page then records a *linear* index (vm_pgoff based,
as anon_vma does) instead of its virtual address, so mremap, which carries vm_pgoff along,
needs no unshare policy. The walk still visits every mm of the group (the indicated one
first) and in each asks the mm's tree for the vmas whose pgoff range holds the index:
vma_prio_tree_foreach(vma, &mm->anon_tree, index, index).

The prio tree is built as an augmented interval tree
(:class:`mmcore.interval_tree.IntervalTree`: the same stabbing query in O(log n + k)), so
a walk's real time grows as it would; the query's modelled cost is counted as
ceil(log2(n+1)) ``tree_steps`` for an mm with n vmas in its tree plus one ``vmas_visited``
per vma whose range holds the index (the k of O(log n + k)), as anon_vma_chain counts its
interval tree. Metadata: ``anonmm`` per mm, ``prio_tree_root`` per mm and
``prio_tree_node`` per anonymous vma. It lives in contrib to show a scheme outside plugins/.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar

from mmcore import PluginInfo, hookimpl
from mmcore.interval_tree import IntervalTree
from mmcore.vma import vma_pgoff_range

# anonmm's group machinery is reused. mmcore's plugins/ directory is installed as the
# package mmcore_plugins; mypy cannot follow that mapping and checks it as plugins.
if TYPE_CHECKING:
    from mmcore import Machine, Page, Vma, WalkCost
    from mmcore.mm import Mm
    from plugins.anonmm import AnonMM, AnonMMGroups, AnonMMScheme
else:
    from mmcore_plugins.anonmm import AnonMM, AnonMMGroups, AnonMMScheme


def anon_tree(mm: Mm) -> IntervalTree[Vma]:
    """The mm's prio tree of anonymous vmas (kept on its anonmm)."""
    anonmm = mm.rmap
    assert isinstance(anonmm, AnonMMGlobal)
    return anonmm.tree


class AnonMMGlobal(AnonMM):
    """struct anonmm plus the mm's ``struct prio_tree_root`` of anonymous vmas."""

    __slots__ = ("tree",)

    def __init__(self, mm: Mm, head: AnonMM | None) -> None:
        super().__init__(mm, head)
        self.tree: IntervalTree[Vma] = IntervalTree()


class AnonVmaGlobal(AnonMMScheme):
    """The anon_vma_global rmap scheme: anonmm groups + per-mm pgoff prio trees."""

    info: ClassVar[PluginInfo] = PluginInfo(
        name="anon_vma_global",
        kind="rmap",
        summary="Andrea's 2004 anon_vma_global: anonmm groups with a per-mm prio tree by pgoff",
        structs=("anonmm", "prio_tree_node", "prio_tree_root"),
        description=(
            "Andrea Arcangeli's alternative in the anon_vma RFC2 thread: keep anonmm's list "
            "of the mms of a fork group, add to each mm a prio tree of its anonymous vmas "
            "keyed by vm_pgoff, and index pages linearly so mremap needs no copies. Costs "
            "a tree node per anonymous vma and a root per mm; a walk still visits every mm "
            "of the group, with an O(log n) tree query in each."),
    )
    #: Pages are indexed by linear pgoff, so mremap and swap-in need no copies.
    unshare_at_swapin: ClassVar[bool] = False

    def __init__(self, machine: Machine) -> None:
        super().__init__(machine)
        self.groups = AnonMMGroups(machine.meta, AnonMMGlobal)

    # --- per mm: the anonmm carries the tree root --------------------------------------

    @hookimpl
    def rmap_mm_init(self, mm: Mm, parent: Mm | None) -> None:
        """exec_rmap()/dup_rmap() plus INIT_PRIO_TREE_ROOT of the mm's anon tree."""
        super().rmap_mm_init(mm, parent)
        self.meta.alloc("prio_tree_root")

    @hookimpl
    def rmap_mm_exit(self, mm: Mm) -> None:
        """exit_rmap(); the (empty) tree root goes with the mm."""
        if anon_tree(mm):
            raise AssertionError("anon_vma_global: mm exits with vmas in its tree")
        self.meta.free("prio_tree_root")
        self.groups.exit_rmap(mm)

    # --- per vma: keep the tree in step ------------------------------------------------

    def _insert(self, vma: Vma) -> None:
        """vma_prio_tree_insert() into the vma's mm tree."""
        anon_tree(vma.mm).insert(vma, *vma_pgoff_range(vma))
        self.meta.alloc("prio_tree_node")

    @hookimpl
    def rmap_anon_prepare(self, vma: Vma) -> object:
        """The vma's first anonymous page: it enters its mm's tree."""
        self._insert(vma)
        anonmm: AnonMM = vma.mm.rmap  # type: ignore[assignment]
        return anonmm

    @hookimpl
    def rmap_vma_fork(self, src: Vma, dst: Vma) -> None:
        """dup_mmap(): the child's vma enters the child's tree."""
        dst.anon_vma = dst.mm.rmap
        self._insert(dst)

    @hookimpl
    def rmap_vma_split(self, new: Vma) -> None:
        """split_vma(): the new piece enters the tree (vma_adjust re-keys the old one)."""
        self._insert(new)

    @hookimpl
    def rmap_vma_copy(self, new: Vma) -> None:
        """copy_vma(): the destination vma keeps the source's pgoff and enters the tree."""
        self._insert(new)

    @hookimpl
    def rmap_vma_merge(self, target: Vma) -> None:
        """vma_adjust(): a vma without anonymous pages grows over one with them."""
        self._insert(target)

    @hookimpl
    def vma_range_update(self, vma: Vma) -> None:
        """vma_adjust(): a vma of the tree whose range changed is re-keyed
        (vma_prio_tree_remove() and vma_prio_tree_insert() around the change)."""
        anonmm = vma.mm.rmap
        if isinstance(anonmm, AnonMMGlobal) and vma in anonmm.tree:
            anonmm.tree.update(vma, *vma_pgoff_range(vma))

    @hookimpl
    def rmap_vma_unlink(self, vma: Vma) -> None:
        """vma_prio_tree_remove() at unmap, exit or merge."""
        anon_tree(vma.mm).remove(vma)
        self.meta.free("prio_tree_node")

    # --- per page: linear index --------------------------------------------------------

    def _set_anon(self, page: Page, vma: Vma, address: int) -> None:
        """The faulting mm's anonmm (which takes a reference) and the linear index."""
        anonmm: AnonMM = vma.mm.rmap  # type: ignore[assignment]
        self.groups.get(anonmm)
        page.mapping = anonmm
        page.index = vma.linear_page_index(address)

    @hookimpl
    def rmap_page_move(self, page: Page, new_address: int) -> None:
        """move_ptes(): nothing, not even for a shared page; the moved vma kept its
        vm_pgoff, so the linear index holds in every mm."""

    def candidates_in(self, mm: Mm, page: Page, cost: WalkCost) -> Iterator[tuple[Vma, int]]:
        """vma_prio_tree_foreach(vma, &mm's anon tree, index, index)."""
        tree = anon_tree(mm)
        index = page.index
        cost.tree_steps += math.ceil(math.log2(len(tree) + 1))
        for vma in tree.query(index):
            cost.vmas_visited += 1
            yield vma, vma.address_of(index)
