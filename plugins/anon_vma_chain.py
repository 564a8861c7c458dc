"""anon_vma_chain: today's Linux anonymous rmap (2.6.34+, mm/rmap.c).

Every vma that has anonymous pages links, through one ``anon_vma_chain`` per ancestor,
into the anon_vma of each generation of its fork tree; a page points at the anon_vma of
the vma that created it (or, for a shared swap-in, at the root). A walk visits only the
vmas linked into that one anon_vma, through an interval tree keyed by vm_pgoff: a child's
private COW copy is found in O(1), the parent's original pages in O(children).

Kept faithfully: ``__anon_vma_prepare`` with find_mergeable_anon_vma, ``anon_vma_clone``,
``anon_vma_fork`` with the num_children / num_active_vmas reuse rule (2555283eb40d),
``unlink_anon_vmas`` freeing empty anon_vmas (root last), the fork-child merge restriction
of is_mergeable_anon_vma (6.16+), and the root used for non-exclusive pages.
The interval tree is built (:class:`mmcore.interval_tree.IntervalTree`, keyed by each
vma's pgoff range and re-keyed when a vma's range changes), so a walk's real time grows
as the kernel's; its modelled cost is still counted as ceil(log2(n+1)) tree steps plus one
vma visit per chain entry whose range holds the page (the k of O(log n + k)).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar

from mmcore import PluginInfo, hookimpl
from mmcore.interval_tree import IntervalTree
from mmcore.vma import anon_vma_compatible, vma_pgoff_range

if TYPE_CHECKING:
    from mmcore import Machine, Page, Vma, WalkCost
    from mmcore.folio import Folio


class AnonVma:
    """struct anon_vma."""

    __slots__ = ("avcs", "num_active_vmas", "num_children", "parent", "refcount", "root")

    def __init__(self) -> None:
        self.root: AnonVma = self
        self.parent: AnonVma = self
        self.refcount = 1
        self.num_children = 0
        self.num_active_vmas = 0
        #: anon_vma->rb_root: the interval tree of chains, by their vma's pgoff range.
        self.avcs: IntervalTree[AnonVmaChain] = IntervalTree()


class AnonVmaChain:
    """struct anon_vma_chain: links one vma with one anon_vma."""

    __slots__ = ("anon_vma", "vma")

    def __init__(self, vma: Vma, anon_vma: AnonVma) -> None:
        self.vma = vma
        self.anon_vma = anon_vma


def _chain(vma: Vma | None) -> list[AnonVmaChain]:
    """vma->anon_vma_chain, empty when the vma has none. The kernel's list_add() puts
    each chain at the head (newest first); this list holds them oldest first, so that
    linking one appends instead of shifting the whole chain (a chain of forks d deep
    would pay O(d) per link, O(d^3) over the chain)."""
    if vma is None or vma.rmap is None:
        return []
    chain: list[AnonVmaChain] = vma.rmap  # type: ignore[assignment]
    return chain


def vma_is_fork_child(vma: Vma | None) -> bool:
    """vma_is_fork_child(): has an anon_vma and a chain that is not singular."""
    return vma is not None and vma.anon_vma is not None and len(_chain(vma)) != 1


class AnonVmaChainScheme:
    """The anon_vma_chain rmap scheme."""

    info: ClassVar[PluginInfo] = PluginInfo(
        name="anon_vma_chain",
        kind="rmap",
        summary="Linux 2.6.34+ anon_vma + anon_vma_chain with interval trees",
        structs=("anon_vma", "anon_vma_chain", "vma_avc_fields"),
        description=(
            "Rik van Riel's 2010 fix for the forking-server walk: one anon_vma per vma per "
            "fork generation, linked by anon_vma_chains; a COWed child page is found in its "
            "own anon_vma only. Costs an anon_vma and depth+1 chains per vma, and refuses "
            "to merge vmas cloned from a parent."),
    )

    def __init__(self, machine: Machine) -> None:
        self.meta = machine.meta

    # --- helpers (mm/rmap.c) ---------------------------------------------------------

    def _alloc(self) -> AnonVma:
        self.meta.alloc("anon_vma")
        return AnonVma()

    def _link(self, vma: Vma, anon_vma: AnonVma) -> None:
        """anon_vma_chain_link(): new chain at the head of the vma's list (the end of
        :func:`_chain`'s oldest-first list) and in the tree."""
        avc = AnonVmaChain(vma, anon_vma)
        self.meta.alloc("anon_vma_chain")
        if vma.rmap is None:
            vma.rmap = []
            self.meta.alloc("vma_avc_fields")
        _chain(vma).append(avc)
        anon_vma.avcs.insert(avc, *vma_pgoff_range(vma))

    def _put(self, anon_vma: AnonVma) -> None:
        """put_anon_vma(): free on the last reference; a non-root drops its root ref."""
        anon_vma.refcount -= 1
        if anon_vma.refcount == 0:
            self.meta.free("anon_vma")
            root = anon_vma.root
            if root is not anon_vma:
                self._put(root)

    def _clone(self, dst: Vma, src: Vma) -> None:
        """anon_vma_clone(): one chain per chain of ``src``, oldest first; in the fork
        path (dst.anon_vma None) an ancestor with no vma and <2 children is reused."""
        for pavc in _chain(src):
            anon_vma = pavc.anon_vma
            self._link(dst, anon_vma)
            if (dst.anon_vma is None and src.anon_vma is not None
                    and anon_vma.num_children < 2 and anon_vma.num_active_vmas == 0):
                dst.anon_vma = anon_vma
        if dst.anon_vma is not None:
            dst_av: AnonVma = dst.anon_vma  # type: ignore[assignment]
            dst_av.num_active_vmas += 1

    # --- per vma ---------------------------------------------------------------------

    @hookimpl
    def rmap_anon_prepare(self, vma: Vma) -> object:
        """__anon_vma_prepare(): reuse a compatible neighbour's anon_vma (next, then prev,
        only if its chain is singular) or allocate a new root; link one chain."""
        anon_vma = self._find_mergeable(vma)
        if anon_vma is None:
            anon_vma = self._alloc()
            anon_vma.num_children += 1  # self-parent link for a new root
        self._link(vma, anon_vma)
        anon_vma.num_active_vmas += 1
        return anon_vma

    @staticmethod
    def _find_mergeable(vma: Vma) -> AnonVma | None:
        """find_mergeable_anon_vma() + reusable_anon_vma()."""
        vmas = vma.mm.vmas
        nxt = vmas.next(vma)
        if nxt is not None and anon_vma_compatible(vma, nxt) and len(_chain(nxt)) == 1:
            found: AnonVma = nxt.anon_vma  # type: ignore[assignment]
            return found
        prev = vmas.prev(vma)
        if prev is not None and anon_vma_compatible(prev, vma) and len(_chain(prev)) == 1:
            found = prev.anon_vma  # type: ignore[assignment]
            return found
        return None

    @hookimpl
    def rmap_vma_fork(self, src: Vma, dst: Vma) -> None:
        """anon_vma_fork(): clone the parent's chain, then reuse or allocate the child's
        own anon_vma (root = parent's root, parent = the parent vma's anon_vma)."""
        self._clone(dst, src)
        if dst.anon_vma is not None:
            return
        pav: AnonVma = src.anon_vma  # type: ignore[assignment]
        anon_vma = self._alloc()
        anon_vma.num_active_vmas += 1
        anon_vma.root = pav.root
        anon_vma.parent = pav
        pav.root.refcount += 1
        dst.anon_vma = anon_vma
        self._link(dst, anon_vma)
        pav.num_children += 1

    @hookimpl
    def rmap_vma_split(self, vma: Vma, new: Vma) -> None:
        """__split_vma(): anon_vma_clone(new, vma)."""
        self._clone(new, vma)

    @hookimpl
    def rmap_vma_copy(self, src: Vma, new: Vma) -> None:
        """copy_vma(): anon_vma_clone(new, src)."""
        self._clone(new, src)

    @hookimpl
    def rmap_vma_merge(self, target: Vma, src: Vma) -> None:
        """dup_anon_vma(): anon_vma_clone(target, src)."""
        self._clone(target, src)

    @hookimpl
    def rmap_vma_can_merge(self, target: Vma, src: Vma | None, anon: object | None,
                           copied_from: Vma | None) -> bool:
        """is_mergeable_anon_vma() (6.16+): never grow a fork child over other anon state."""
        if target.anon_vma is None and anon is not None:
            return not vma_is_fork_child(src) and not vma_is_fork_child(copied_from)
        if target.anon_vma is not None and anon is None:
            return not vma_is_fork_child(target)
        return anon is target.anon_vma

    @hookimpl
    def vma_range_update(self, vma: Vma) -> None:
        """anon_vma_interval_tree_post_update_vma(): re-key each chain of the vma."""
        key = vma_pgoff_range(vma)
        for avc in _chain(vma):
            avc.anon_vma.avcs.update(avc, *key)

    @hookimpl
    def rmap_vma_unlink(self, vma: Vma) -> None:
        """unlink_anon_vmas(): drop every chain; anon_vmas whose tree empties lose their
        parent's child count and are put (their root last)."""
        emptied = []
        for avc in reversed(_chain(vma)):  # list_for_each_entry: newest first
            anon_vma = avc.anon_vma
            anon_vma.avcs.remove(avc)
            self.meta.free("anon_vma_chain")
            if not anon_vma.avcs:
                anon_vma.parent.num_children -= 1
                emptied.append(anon_vma)
        if vma.anon_vma is not None:
            own: AnonVma = vma.anon_vma  # type: ignore[assignment]
            own.num_active_vmas -= 1
        if vma.rmap is not None:
            self.meta.free("vma_avc_fields")
        vma.rmap = None
        for anon_vma in emptied:
            self._put(anon_vma)

    # --- per page --------------------------------------------------------------------

    @hookimpl
    def rmap_page_new_anon(self, page: Page, vma: Vma, address: int,
                           exclusive: bool) -> None:
        """__folio_set_anon(): the vma's anon_vma, or the root for a shared page."""
        anon_vma: AnonVma = vma.anon_vma  # type: ignore[assignment]
        page.mapping = anon_vma if exclusive else anon_vma.root
        page.index = ((address - vma.start) >> 12) + vma.pgoff  # linear_page_index()

    @hookimpl
    def rmap_page_dup(self) -> None:
        """Nothing per pte: the page's anon_vma already reaches the new mapping."""

    @hookimpl
    def rmap_page_remove(self) -> None:
        """Nothing per pte."""

    @hookimpl
    def rmap_page_move(self) -> None:
        """mremap carries vm_pgoff along, so the linear index still finds the page."""

    # --- per folio run (large folios) -----------------------------------------------------

    @hookimpl
    def rmap_folio_add_new_anon(self, folio: Folio, first: int, nr: int, vma: Vma,
                                address: int, exclusive: bool) -> None:
        """__folio_set_anon() of a large folio: every page of the run gets the anon_vma
        and its linear index."""
        anon_vma: AnonVma = vma.anon_vma  # type: ignore[assignment]
        mapping = anon_vma if exclusive else anon_vma.root
        index = ((address - vma.start) >> 12) + vma.pgoff
        for i, page in enumerate(folio.pages[first:first + nr]):
            page.mapping = mapping
            page.index = index + i

    @hookimpl
    def rmap_folio_dup_ptes(self) -> None:
        """Nothing per run, as per pte."""

    @hookimpl
    def rmap_folio_remove_ptes(self) -> None:
        """Nothing per run, as per pte."""

    @hookimpl
    def rmap_walk(self, page: Page, cost: WalkCost) -> Iterator[tuple[Vma, int]]:
        """rmap_walk_anon(): anon_vma_interval_tree_foreach over the page's anon_vma."""
        anon_vma = page.mapping
        assert isinstance(anon_vma, AnonVma)
        pgoff = page.index
        cost.tree_steps += math.ceil(math.log2(len(anon_vma.avcs) + 1))
        for avc in anon_vma.avcs.query(pgoff):
            vma = avc.vma
            cost.vmas_visited += 1
            yield vma, vma.address_of(pgoff)
