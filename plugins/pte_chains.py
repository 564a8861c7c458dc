"""pte_chains: the 2.5-era per-page reverse map (mm/rmap.c up to 2.6.6).

Every pte that maps an anonymous page is recorded on the page itself: a page mapped once
keeps the pte's location in ``page->pte.direct`` (PG_direct, no allocation); a shared page
points to a chain of cache-line blocks ``struct pte_chain { next_and_idx; ptes[NRPTE] }``.
The walk is exact (one probe per pte, nothing wasted) whatever mremap, mprotect or fork
did; the price is an entry per pte, an allocation on the way from direct to shared, and
work on every fork, fault and unmap.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar

from mmcore import PluginInfo, hookimpl

if TYPE_CHECKING:
    from mmcore import Machine, Page, Vma, WalkCost
    from mmcore.mm import Mm

Entry = tuple["Mm", int]


class PteChain:
    """The chain hanging off a shared page: blocks of at most NRPTE pte locations."""

    __slots__ = ("blocks",)

    def __init__(self) -> None:
        self.blocks: list[list[Entry]] = []

    def entries(self) -> Iterator[Entry]:
        """Every recorded (mm, address), newest block first."""
        for block in self.blocks:
            yield from block


class PteChains:
    """The pte_chains scheme: exact per-pte reverse mapping."""

    info: ClassVar[PluginInfo] = PluginInfo(
        name="pte_chains",
        kind="rmap",
        summary="2.5/2.6.6 per-page pte chains with the direct-pointer optimisation",
        structs=("pte_chain",),
        description=(
            "Rik van Riel's 2002 design: each anonymous page lists its ptes. Exact walks "
            "(one probe per mapping, no wasted work, unaffected by mremap or splits), paid "
            "for with one chain slot per pte of every shared page and chain work on every "
            "fork, fault and unmap."),
    )

    def __init__(self, machine: Machine) -> None:
        self.machine = machine
        self.meta = machine.meta
        from mmcore.costs import PTE_CHAIN_NRPTE
        self.nrpte = PTE_CHAIN_NRPTE[machine.arch]
        # Every anonymous vma carries this marker: there is no per-vma rmap object, so
        # pte_chains never refuses a merge.
        self.marker = object()

    # --- per page --------------------------------------------------------------------

    @hookimpl
    def rmap_page_new_anon(self, page: Page, vma: Vma, address: int) -> None:
        """page_add_rmap() of a new page: the pte goes into page->pte.direct."""
        page.mapping = self.marker
        page.index = vma.linear_page_index(address)
        page.rmap = (vma.mm, address)

    @hookimpl
    def rmap_page_dup(self, page: Page, vma: Vma, address: int) -> None:
        """page_add_rmap() of one more pte: a direct page becomes a chain."""
        self._add(page, (vma.mm, address))

    @hookimpl
    def rmap_page_remove(self, page: Page, vma: Vma, address: int) -> None:
        """page_remove_rmap(): drop the entry; a chain left with one pte goes direct."""
        self._remove(page, (vma.mm, address))

    @hookimpl
    def rmap_page_move(self, page: Page, old_vma: Vma, old_address: int, new_vma: Vma,
                       new_address: int) -> None:
        """move_one_page() in 2.6.6: page_remove_rmap(src) then page_add_rmap(dst)."""
        self._remove(page, (old_vma.mm, old_address))
        self._add(page, (new_vma.mm, new_address))

    @hookimpl
    def rmap_walk(self, page: Page, cost: WalkCost) -> Iterator[tuple[Vma, int]]:
        """try_to_unmap_one() per chain entry: each needs a find_vma for its vma."""
        state = page.rmap
        entries: list[Entry]
        if isinstance(state, PteChain):
            entries = list(state.entries())
        elif state is None:
            entries = []
        else:
            entries = [state]  # type: ignore[list-item]
        for mm, address in entries:
            cost.mms_visited += 1
            cost.find_vma += 1
            vma = mm.vmas.lookup(address)
            if vma is not None:
                yield vma, address

    def _add(self, page: Page, entry: Entry) -> None:
        state = page.rmap
        if state is None:
            page.rmap = entry
            return
        if not isinstance(state, PteChain):
            chain = PteChain()
            chain.blocks.append([state])  # type: ignore[list-item]
            self.meta.alloc("pte_chain")
            page.rmap = chain
            state = chain
        head = state.blocks[0]
        if len(head) < self.nrpte:
            head.append(entry)
        else:
            state.blocks.insert(0, [entry])
            self.meta.alloc("pte_chain")

    def _remove(self, page: Page, entry: Entry) -> None:
        state = page.rmap
        if not isinstance(state, PteChain):
            if state != entry:
                raise AssertionError(f"pte_chains: {entry} not recorded on {page!r}")
            page.rmap = None
            return
        for block in state.blocks:
            if entry in block:
                block.remove(entry)
                break
        else:
            raise AssertionError(f"pte_chains: {entry} not on the chain of {page!r}")
        # Refill the hole from the head block, free an empty head (pte_chain_free).
        head = state.blocks[0]
        if not head:
            state.blocks.pop(0)
            self.meta.free("pte_chain")
        elif block is not head and len(block) < self.nrpte:
            block.append(head.pop())
            if not head:
                state.blocks.pop(0)
                self.meta.free("pte_chain")
        remaining = sum(len(b) for b in state.blocks)
        if remaining == 1:
            page.rmap = state.blocks[0][0]
            self.meta.free("pte_chain", len(state.blocks))
        elif remaining == 0:
            page.rmap = None
            self.meta.free("pte_chain", len(state.blocks))

    # --- per vma ---------------------------------------------------------------------

    @hookimpl
    def rmap_anon_prepare(self, vma: Vma) -> object:
        """No per-vma object: the vma is marked as having anonymous pages."""
        return self.marker

    @hookimpl
    def rmap_vma_fork(self, src: Vma, dst: Vma) -> None:
        """fork needs nothing per vma; the pte copies add chain entries."""
        dst.anon_vma = self.marker

    @hookimpl
    def rmap_vma_can_merge(self) -> bool:
        """pte_chains never restricts merging."""
        return True
