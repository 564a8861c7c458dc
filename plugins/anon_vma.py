"""anon_vma: Andrea Arcangeli's anonymous rmap as merged in Linux 2.6.7 (mm/rmap.c, 2004).

One ``struct anon_vma { spinlock_t lock; struct list_head head; }`` collects every vma
that may map its pages: the vma that first faulted, every vma fork copied from it (in all
descendants), every piece a split cut off and every copy mremap made. A page records the
anon_vma (``page->mapping``) and its *linear* index ``vm_pgoff + (addr - vm_start) >>
PAGE_SHIFT``; since mremap carries vm_pgoff along, a moved page is still found ("Magic",
rmap 39). The walk visits every vma on the list and computes the address of the index in
each (vma_address); vmas whose range misses the index are skipped without a probe.

Kept faithfully: anon_vma_prepare() with rmap 40's find_mergeable_anon_vma() (next
neighbour first, then prev; any compatible neighbour's anon_vma is shared, there is no
"singular chain" rule yet); anon_vma_link() adding vmas at the head of the list
(list_add, so the newest vma is walked first); anon_vma_unlink() freeing the anon_vma
with its last vma (no refcount before KSM); the merge rule of 2.6.7 vma_merge()
(two vmas with different non-NULL anon_vmas never merge). Costs: one ``anon_vma_2004``
per anon_vma and one ``vma_anon_link`` (anon_vma_node + anon_vma pointer) per vma on a
list: Andrea's "worst case 24byte overhead per anonymous vma" on i386.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar

from mmcore import PluginInfo, hookimpl
from mmcore.huge_memory import page_mapcount
from mmcore.vma import anon_vma_compatible

if TYPE_CHECKING:
    from mmcore import Machine, Page, Vma, WalkCost
    from mmcore.folio import Folio


class AnonVma:
    """struct anon_vma (2.6.7): the lock is implicit, ``vmas`` is the list (head first)."""

    __slots__ = ("links",)

    def __init__(self) -> None:
        #: anon_vma->head, oldest first: list_add() puts each new vma at the head, which
        #: is the end here. A dict, so list_del() of any vma is O(1) as in the kernel,
        #: where list.remove() scanned (quadratic over the exits of a fork chain).
        self.links: dict[Vma, None] = {}

    @property
    def vmas(self) -> list[Vma]:
        """anon_vma->head in list order: the newest vma first."""
        return list(reversed(self.links))

    def __repr__(self) -> str:
        return f"AnonVma(vmas={len(self.links)})"


def find_mergeable_anon_vma(vma: Vma) -> AnonVma | None:
    """find_mergeable_anon_vma() (2.6.7, rmap 40 "better anon_vma sharing").

    Try the next vma, then the previous one: if it already has an anon_vma and is
    compatible (adjacent, same file, flags equal but for access bits, pgoff contiguous:
    :func:`mmcore.vma.anon_vma_compatible`), share it, so that a later mprotect can merge
    the two vmas again.
    """
    vmas = vma.mm.vmas
    near = vmas.next(vma)
    if near is not None and near.anon_vma is not None and anon_vma_compatible(vma, near):
        found: AnonVma = near.anon_vma  # type: ignore[assignment]
        return found
    near = vmas.prev(vma)
    if near is not None and near.anon_vma is not None and anon_vma_compatible(near, vma):
        found = near.anon_vma  # type: ignore[assignment]
        return found
    return None


class AnonVmaScheme:
    """The 2.6.7 anon_vma rmap scheme: one list of vmas per fork family."""

    info: ClassVar[PluginInfo] = PluginInfo(
        name="anon_vma",
        kind="rmap",
        summary="Linux 2.6.7-2.6.33 anon_vma: one list of every related vma",
        structs=("anon_vma_2004", "vma_anon_link"),
        description=(
            "Andrea Arcangeli's 2004 object-based anonymous rmap (Hugh Dickins's rmap 39/40, "
            "merged in 2.6.7): pages point at an anon_vma listing every vma of the fork "
            "family, with a vm_pgoff-based index so mremap needs nothing. 12 bytes per "
            "anon_vma and 12 per vma on i386; the walk visits every vma on the list, which "
            "grows with forks and splits (the AIM7 problem anon_vma_chain later fixed)."),
    )

    def __init__(self, machine: Machine) -> None:
        self.meta = machine.meta

    # --- helpers (mm/rmap.c 2.6.7) ----------------------------------------------------

    def _link(self, vma: Vma, anon_vma: AnonVma) -> None:
        """anon_vma_link()/__anon_vma_link(): list_add(&vma->anon_vma_node, &head)."""
        assert vma not in anon_vma.links, f"{vma!r} is already on the list"
        anon_vma.links[vma] = None
        self.meta.alloc("vma_anon_link")

    # --- per vma ---------------------------------------------------------------------

    @hookimpl
    def rmap_anon_prepare(self, vma: Vma) -> object:
        """anon_vma_prepare(): share a compatible neighbour's anon_vma or allocate one,
        then link the vma on it."""
        anon_vma = find_mergeable_anon_vma(vma)
        if anon_vma is None:
            anon_vma = AnonVma()
            self.meta.alloc("anon_vma_2004")
        self._link(vma, anon_vma)
        return anon_vma

    @hookimpl
    def rmap_vma_fork(self, src: Vma, dst: Vma) -> None:
        """dup_mmap() -> anon_vma_link(tmp): the child's vma joins the parent's list."""
        anon_vma: AnonVma = src.anon_vma  # type: ignore[assignment]
        dst.anon_vma = anon_vma
        self._link(dst, anon_vma)

    @hookimpl
    def rmap_vma_split(self, vma: Vma, new: Vma) -> None:
        """split_vma() -> vma_adjust(insert) -> __anon_vma_link(new)."""
        self._link(new, vma.anon_vma)  # type: ignore[arg-type]

    @hookimpl
    def rmap_vma_copy(self, src: Vma, new: Vma) -> None:
        """copy_vma() -> vma_link(new) -> __anon_vma_link(new): same anon_vma as src."""
        self._link(new, src.anon_vma)  # type: ignore[arg-type]

    @hookimpl
    def rmap_vma_merge(self, target: Vma, src: Vma) -> None:
        """vma_adjust(): a vma without an anon_vma grows over one with it and takes it
        ("importer->anon_vma = exporter->anon_vma; __anon_vma_link(importer)")."""
        self._link(target, src.anon_vma)  # type: ignore[arg-type]

    @hookimpl
    def rmap_vma_can_merge(self, target: Vma, anon: object | None) -> bool:
        """vma_merge() (2.6.7): refuse only two different non-NULL anon_vmas."""
        return target.anon_vma is None or anon is None or target.anon_vma is anon

    @hookimpl
    def rmap_vma_unlink(self, vma: Vma) -> None:
        """anon_vma_unlink(): list_del; the anon_vma is freed with its last vma."""
        anon_vma: AnonVma = vma.anon_vma  # type: ignore[assignment]
        del anon_vma.links[vma]
        self.meta.free("vma_anon_link")
        if not anon_vma.links:
            self.meta.free("anon_vma_2004")

    # --- per page --------------------------------------------------------------------

    @hookimpl
    def rmap_page_new_anon(self, page: Page, vma: Vma, address: int) -> None:
        """page_add_anon_rmap() of a first mapping: page->mapping = anon_vma (with
        PAGE_MAPPING_ANON), page->index = linear index."""
        page.mapping = vma.anon_vma
        page.index = vma.linear_page_index(address)

    @hookimpl
    def rmap_page_dup(self, page: Page, vma: Vma, address: int) -> None:
        """page_dup_rmap() at fork needs nothing. do_swap_page()'s page_add_anon_rmap()
        of a swap-cache page nobody maps any more (mapcount was 0) sets mapping and index
        again, as for a new page."""
        if page_mapcount(page) == 1:
            page.mapping = vma.anon_vma
            page.index = vma.linear_page_index(address)

    @hookimpl
    def rmap_page_remove(self) -> None:
        """page_remove_rmap(): nothing per pte (the mapcount is the core's)."""

    @hookimpl
    def rmap_page_move(self) -> None:
        """move_ptes(): nothing; the moved vma kept its vm_pgoff, so the index holds."""

    # --- per folio run (large folios) -----------------------------------------------------

    @hookimpl
    def rmap_folio_add_new_anon(self, folio: Folio, first: int, nr: int, vma: Vma,
                                address: int) -> None:
        """:meth:`rmap_page_new_anon` for each page of the run."""
        index = vma.linear_page_index(address)
        for i, page in enumerate(folio.pages[first:first + nr]):
            page.mapping = vma.anon_vma
            page.index = index + i

    @hookimpl
    def rmap_folio_dup_ptes(self, folio: Folio, first: int, nr: int, vma: Vma,
                            address: int) -> None:
        """:meth:`rmap_page_dup` for the run: fork needs nothing (every page is mapped
        at least twice then)."""
        index = vma.linear_page_index(address)
        for i, page in enumerate(folio.pages[first:first + nr]):
            if page.mapcount == 1:
                page.mapping = vma.anon_vma
                page.index = index + i

    @hookimpl
    def rmap_folio_remove_ptes(self) -> None:
        """Nothing per run, as per pte."""

    @hookimpl
    def rmap_walk(self, page: Page, cost: WalkCost) -> Iterator[tuple[Vma, int]]:
        """try_to_unmap_anon()/page_referenced_anon(): list_for_each_entry over the
        anon_vma; each vma costs a vma_address() and only those covering the index are
        probed (try_to_unmap_one)."""
        anon_vma = page.mapping
        assert isinstance(anon_vma, AnonVma)
        index = page.index
        for vma in anon_vma.vmas:
            cost.vmas_visited += 1
            addr = vma.address_of(index)
            if addr >= 0:
                yield vma, addr
