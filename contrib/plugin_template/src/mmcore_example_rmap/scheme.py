"""example_anon_vma: the smallest correct anonymous rmap scheme, as a starting point.

It is the 2.6.7 anon_vma (mm/rmap.c) without its refinements: every vma that may map a
page sits on one list (``ExampleAnonVma.vmas_of``), and a page records the list and its
linear index (vm_pgoff based), so the walk visits every vma on the list and mremap needs
nothing. Left out, on purpose: reuse of a neighbour's anon_vma (find_mergeable_anon_vma),
so two vmas faulted separately never merge again.

What a scheme must do, hook by hook (mmcore/hookspecs.py has the contract of each):

* give a vma its anon object on the first fault (``rmap_anon_prepare``) and at fork
  (``rmap_vma_fork``), and follow splits, mremap copies and merges;
* set ``page.mapping``/``page.index`` for a new page and yield every (vma, address) that
  may map a page from ``rmap_walk``;
* free what it allocated (``meta.free``) so that nothing is left when processes exit.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar

from mmcore import PluginInfo, hookimpl

if TYPE_CHECKING:
    from mmcore import Machine, Page, Vma, WalkCost


class AnonList:
    """struct anon_vma, reduced to its list of vmas."""

    __slots__ = ("vmas",)

    def __init__(self) -> None:
        self.vmas: list[Vma] = []


class ExampleAnonVma:
    """A simplified anon_vma rmap scheme."""

    info: ClassVar[PluginInfo] = PluginInfo(
        name="example_anon_vma",
        kind="rmap",
        summary="example: a simplified 2.6.7 anon_vma (copy me)",
        structs=("example_anon_list",),
        # Sizes of structs the arch profiles do not know, per arch.
        struct_sizes={"i386": {"example_anon_list": 12}, "x86_64": {"example_anon_list": 24}},
        description="A list of every related vma per fork family; linear page index.",
    )

    def __init__(self, machine: Machine) -> None:
        self.meta = machine.meta

    @staticmethod
    def vmas_of(vma: Vma) -> list[Vma]:
        """The list ``vma`` is on."""
        anon = vma.anon_vma
        assert isinstance(anon, AnonList)
        return anon.vmas

    # --- per vma -----------------------------------------------------------------------

    @hookimpl
    def rmap_anon_prepare(self, vma: Vma) -> object:
        """anon_vma_prepare(): a new list holding this vma."""
        anon = AnonList()
        anon.vmas.append(vma)
        self.meta.alloc("example_anon_list")
        return anon

    @hookimpl
    def rmap_vma_fork(self, src: Vma, dst: Vma) -> None:
        """anon_vma_link() at fork: the child's vma joins the parent's list."""
        dst.anon_vma = src.anon_vma
        self.vmas_of(src).append(dst)

    @hookimpl
    def rmap_vma_split(self, vma: Vma, new: Vma) -> None:
        """__split_vma(): the new piece joins the list."""
        self.vmas_of(vma).append(new)

    @hookimpl
    def rmap_vma_copy(self, src: Vma, new: Vma) -> None:
        """copy_vma() for mremap: the copy joins the list."""
        self.vmas_of(src).append(new)

    @hookimpl
    def rmap_vma_merge(self, target: Vma) -> None:
        """A vma without anon state grows over one with it (the core set target.anon_vma)."""
        self.vmas_of(target).append(target)

    @hookimpl
    def rmap_vma_can_merge(self, target: Vma, anon: object | None) -> bool:
        """Never merge two different lists."""
        return target.anon_vma is None or anon is None or target.anon_vma is anon

    @hookimpl
    def rmap_vma_unlink(self, vma: Vma) -> None:
        """anon_vma_unlink(): leave the list; free it when it is empty."""
        vmas = self.vmas_of(vma)
        vmas.remove(vma)
        if not vmas:
            self.meta.free("example_anon_list")

    # --- per page (called directly on every fault: keep them cheap) ------------------------

    @hookimpl
    def rmap_page_new_anon(self, page: Page, vma: Vma, address: int) -> None:
        """page_add_anon_rmap() of a new page: the list and the linear index."""
        page.mapping = vma.anon_vma
        page.index = vma.linear_page_index(address)

    @hookimpl
    def rmap_page_dup(self, page: Page, vma: Vma, address: int) -> None:
        """A swap-cache page nobody mapped any more is set up again like a new page."""
        if page.mapcount == 1:
            self.rmap_page_new_anon(page, vma, address)

    @hookimpl
    def rmap_page_remove(self) -> None:
        """Nothing is kept per pte."""

    @hookimpl
    def rmap_page_move(self) -> None:
        """mremap keeps vm_pgoff, so the linear index still finds the page."""

    @hookimpl
    def rmap_walk(self, page: Page, cost: WalkCost) -> Iterator[tuple[Vma, int]]:
        """Every vma on the page's list; yield those whose range holds the index."""
        anon = page.mapping
        assert isinstance(anon, AnonList)
        for vma in list(anon.vmas):
            cost.vmas_visited += 1
            addr = vma.address_of(page.index)
            if addr >= 0:
                yield vma, addr
