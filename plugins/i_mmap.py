"""File rmap through the address_space's i_mmap: the 2.6.6 list and the 3.7+ interval tree.

Both keep the vmas that map an inode; a page-cache page is found at
``vm_start + ((index - vm_pgoff) << PAGE_SHIFT)`` in each vma that covers its index.
The list (objrmap, 2003) visits every vma of the file; the interval tree (Michel
Lespinasse, 6b2dbba8b6ac) visits only the vmas whose [pgoff, pgoff + pages) holds the
index, after an O(log n) descent. The tree is built
(:class:`mmcore.interval_tree.IntervalTree`, re-keyed when a vma's range changes), so a
walk's real time grows as the kernel's; its modelled cost is still counted as
ceil(log2(n+1)) tree steps plus one visit per overlapping vma.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar

from mmcore import PluginInfo, hookimpl
from mmcore.interval_tree import IntervalTree
from mmcore.vma import vma_pgoff_range

if TYPE_CHECKING:
    from mmcore import Machine, Page, Vma, WalkCost
    from mmcore.fs import Inode


def _vmas(inode: Inode) -> list[Vma]:
    lst: list[Vma] = inode.i_mmap or []  # type: ignore[assignment]
    return lst


def _i_mmap(vma: Vma) -> list[Vma]:
    assert vma.file is not None
    inode = vma.file.inode
    if inode.i_mmap is None:
        inode.i_mmap = []
    lst: list[Vma] = inode.i_mmap  # type: ignore[assignment]
    return lst


def _tree(vma: Vma) -> IntervalTree[Vma]:
    """The i_mmap interval tree of the vma's inode (made on the inode's first mapping)."""
    assert vma.file is not None
    inode = vma.file.inode
    if inode.i_mmap is None:
        inode.i_mmap = IntervalTree()
    tree: IntervalTree[Vma] = inode.i_mmap  # type: ignore[assignment]
    return tree


class IMmapList:
    """i_mmap as a plain list (2.6.6 objrmap): every vma of the file is visited."""

    info: ClassVar[PluginInfo] = PluginInfo(
        name="i_mmap_list", kind="file_rmap",
        summary="2.6.6 objrmap: i_mmap as a list of every mapping vma",
        structs=("vma_i_mmap_list",),
        description=("Dave McCracken's object-based rmap for file pages: no per-page cost, "
                     "but a walk visits every vma of the file, wherever it maps."),
    )

    def __init__(self, machine: Machine) -> None:
        self.meta = machine.meta
        self.struct = self.info.structs[0]

    @hookimpl
    def file_rmap_insert(self, vma: Vma, after: Vma | None) -> None:
        """vma_link() / __vma_link_file(); after the parent's vma at fork."""
        lst = _i_mmap(vma)
        if after is not None and after in lst:
            lst.insert(lst.index(after) + 1, vma)
        else:
            lst.append(vma)
        self.meta.alloc(self.struct)

    @hookimpl
    def file_rmap_remove(self, vma: Vma) -> None:
        """__remove_shared_vm_struct()."""
        _i_mmap(vma).remove(vma)
        self.meta.free(self.struct)

    @hookimpl
    def file_rmap_walk(self, page: Page, cost: WalkCost) -> Iterator[tuple[Vma, int]]:
        """rmap_walk_file() over the list."""
        inode: Inode = page.mapping  # type: ignore[assignment]
        for vma in list(_vmas(inode)):
            cost.vmas_visited += 1
            addr = vma.address_of(page.index)
            if addr >= 0:
                yield vma, addr


class IMmapTree(IMmapList):
    """i_mmap as an interval tree keyed by [vm_pgoff, vm_pgoff + pages) (3.7+)."""

    info: ClassVar[PluginInfo] = PluginInfo(
        name="i_mmap_tree", kind="file_rmap",
        summary="3.7+ i_mmap interval tree: visit only vmas covering the page",
        structs=("vma_i_mmap_rb",),
        description=("Today's Linux: vma_interval_tree_foreach visits only the vmas whose "
                     "file range covers the page, after an O(log n) descent."),
    )

    @hookimpl
    def file_rmap_insert(self, vma: Vma, after: Vma | None) -> None:
        """vma_interval_tree_insert(); at fork vma_interval_tree_insert_after() the
        parent's vma."""
        _tree(vma).insert(vma, *vma_pgoff_range(vma), after=after)
        self.meta.alloc(self.struct)

    @hookimpl
    def file_rmap_remove(self, vma: Vma) -> None:
        """vma_interval_tree_remove()."""
        _tree(vma).remove(vma)
        self.meta.free(self.struct)

    @hookimpl
    def vma_range_update(self, vma: Vma) -> None:
        """vma_complete(): a file vma whose range changed is re-inserted in i_mmap."""
        if vma.file is not None:
            _tree(vma).update(vma, *vma_pgoff_range(vma))

    @hookimpl
    def file_rmap_walk(self, page: Page, cost: WalkCost) -> Iterator[tuple[Vma, int]]:
        """vma_interval_tree_foreach(vma, &mapping->i_mmap, pgoff, pgoff)."""
        inode: Inode = page.mapping  # type: ignore[assignment]
        tree = inode.i_mmap
        assert isinstance(tree, IntervalTree)
        cost.tree_steps += math.ceil(math.log2(len(tree) + 1))
        index = page.index
        for vma in tree.query(index):
            cost.vmas_visited += 1
            yield vma, vma.address_of(index)
