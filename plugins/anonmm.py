"""anonmm: Hugh Dickins's anonymous rmap by address space ("rmap 10 add anonmm rmap",
2.6.6-mm, April-May 2004), Linus's "anon memory group" of the anon_vma RFC2 thread.

Every mm has one ``struct anonmm { count; lock; mm; head; list; }``; all the mms forked
from one exec are on the list of the group's head (exec_rmap starts a group, dup_rmap joins
the parent's, exit_rmap leaves it). A page records the anonmm of the mm that faulted it
(``page->mapping``) and its **virtual address** (``page->index``): fork keeps addresses,
so every mm of the group that maps the page maps it at that address. The walk
(try_to_unmap_anon/page_referenced_anon) tries the indicated mm first, "it's the most
likely", then every other mm of the group, each at ``page->index``, and stops as soon as
the mapcount is exhausted. Nothing is kept per page, per pte or per vma. A page of a
large folio counts its folio's PMD mappings too (``page_mapcount()``), so a PMD-mapped
THP keeps its anonmm until its last mapping of either kind goes.

The weak spot is mremap: moving a page that another mm still maps breaks ``index ==
address``. Hugh's rmap 11 took Linus's suggestion and copies such a page at mremap (the
``unshare`` mremap policy, which this scheme therefore needs); :class:`AnonMMFullScan`
models the alternative Andrea named, falling back to a scan of every anonymous vma of every
mm in the group when the quick walk did not find every mapping.

Lifetime choice (the kernel's): an exited mm's anonmm lingers, with ``mm`` NULL, while pages
it faulted are still mapped by other mms (its count holds one reference per such page). The
walk of such a page starts at the lingering anonmm's place in the list and probes every live
mm; the first mm found to map the page becomes its new anonmm (the "migrate" step of
page_referenced_anon), so dead anonmms are freed in due course. The head outlives its own
mm until the last member of the group is gone.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar

from mmcore import PluginInfo, hookimpl
from mmcore.constants import PAGE_SIZE
from mmcore.huge_memory import page_mapcount
from mmcore.pagetable import pte_pfn, pte_present

if TYPE_CHECKING:
    from mmcore import Machine, Page, Vma, WalkCost
    from mmcore.costs import Metadata
    from mmcore.mm import Mm

PAGE_MASK = ~(PAGE_SIZE - 1)


class AnonMM:
    """struct anonmm. The head's ``members`` is its list: the head first, then the mms
    that joined by fork, in order (list_add_tail)."""

    __slots__ = ("count", "head", "members", "mm")

    def __init__(self, mm: Mm, head: AnonMM | None) -> None:
        #: atomic_t count: one for the mm, one per page whose mapping points here, and on
        #: the head one for itself plus one per other member.
        self.count = 1
        self.mm: Mm | None = mm
        self.head: AnonMM = self if head is None else head
        self.members: list[AnonMM] = [self] if head is None else []

    def __repr__(self) -> str:
        owner = self.mm.owner_pid if self.mm is not None else None
        return f"AnonMM(pid={owner}, count={self.count})"


def _mm_maps(mm: Mm, address: int, page: Page) -> bool:
    """Does ``mm``'s pte at ``address`` map ``page``? (page_referenced_one's check)."""
    pte = mm.pgtable.lookup(address)
    return pte_present(pte) and pte_pfn(pte) == page.pfn


class AnonMMGroups:
    """Creation, membership, per-page references and freeing of anonmms (exec_rmap,
    dup_rmap, exit_rmap, clear_page_anon, free_anonmm). Shared by anonmm, its full-scan
    variant and contrib's anon_vma_global."""

    def __init__(self, meta: Metadata, factory: type[AnonMM] = AnonMM) -> None:
        self.meta = meta
        #: The class of the anonmm objects (a variant may extend struct anonmm).
        self.factory = factory

    def exec_rmap(self, mm: Mm) -> AnonMM:
        """exec_rmap(): a new group whose head is this mm's anonmm (count 2: mm + head)."""
        anonmm = self.factory(mm, None)
        anonmm.count = 2
        self.meta.alloc("anonmm")
        mm.rmap = anonmm
        return anonmm

    def dup_rmap(self, mm: Mm, parent: Mm) -> AnonMM:
        """dup_rmap(): the child's anonmm joins the tail of the parent's group."""
        parent_anonmm: AnonMM = parent.rmap  # type: ignore[assignment]
        head = parent_anonmm.head
        anonmm = self.factory(mm, head)
        head.count += 1
        head.members.append(anonmm)
        self.meta.alloc("anonmm")
        mm.rmap = anonmm
        return anonmm

    def exit_rmap(self, mm: Mm) -> None:
        """exit_rmap(): drop the mm's reference; a member is freed at once unless pages
        still point to it; the head goes when it is the last one left."""
        anonmm: AnonMM = mm.rmap  # type: ignore[assignment]
        head = anonmm.head
        mm.rmap = None
        anonmm.mm = None
        anonmm.count -= 1
        if anonmm.count == 0:
            if anonmm is head:
                raise AssertionError("anonmm: head count dropped to 0")
            self._unlist(anonmm)
        if head.count == 1:
            if head.mm is not None or len(head.members) != 1:
                raise AssertionError("anonmm: head freed while its group lives")
            head.count = 0
            head.members.clear()
            self.meta.free("anonmm")

    def _unlist(self, anonmm: AnonMM) -> None:
        """free_anonmm(): list_del from the head's list, drop the head's reference."""
        head = anonmm.head
        head.members.remove(anonmm)
        head.count -= 1
        if head.count == 0:
            raise AssertionError("anonmm: head count dropped to 0")
        self.meta.free("anonmm")

    def get(self, anonmm: AnonMM) -> None:
        """atomic_inc(&anonmm->count) for a page now pointing at ``anonmm``."""
        anonmm.count += 1

    def put(self, anonmm: AnonMM) -> None:
        """clear_page_anon(): a page stops pointing at ``anonmm``; free a dead member
        with its last reference."""
        anonmm.count -= 1
        if anonmm.count == 0:
            if anonmm.mm is not None or anonmm is anonmm.head:
                raise AssertionError("anonmm: freeing a live anonmm")
            # The head is never freed here: exit_mmap unmaps every page before
            # exit_rmap, so the group's last exit_rmap finds the head's count at 1.
            self._unlist(anonmm)

    @staticmethod
    def others(anonmm: AnonMM) -> list[AnonMM]:
        """list_for_each_entry(anonmm, &anonmm->list, list): every other anonmm of the
        group, starting after ``anonmm`` and wrapping round through the head."""
        members = anonmm.head.members
        i = members.index(anonmm)
        return members[i + 1:] + members[:i]


class AnonMMScheme:
    """The anonmm rmap scheme (needs the mremap unshare policy)."""

    info: ClassVar[PluginInfo] = PluginInfo(
        name="anonmm",
        kind="rmap",
        summary="Hugh Dickins's 2004 anonmm: one object per mm, pages indexed by address",
        needs=frozenset({"mremap_unshare"}),
        needs_help=("anonmm cannot find a shared page that mremap moved; use "
                    "mremap_policy='unshare' or rmap='anonmm_fullscan'"),
        structs=("anonmm",),
        description=(
            "Hugh Dickins's rmap 10 (April 2004), Linus's 'anon memory group': a struct "
            "anonmm per mm, every mm of a fork group on one list, page->index the virtual "
            "address. About 24 bytes per mm on i386 and nothing per page or vma, but a walk "
            "probes every mm of the group for a shared page, and mremap of a page shared "
            "with another mm must copy it (Linus's copy_one_pte rule, rmap 11)."),
    )

    def __init__(self, machine: Machine) -> None:
        self.machine = machine
        self.meta = machine.meta
        self.groups = AnonMMGroups(machine.meta)

    # --- per mm ----------------------------------------------------------------------

    @hookimpl
    def rmap_mm_init(self, mm: Mm, parent: Mm | None) -> None:
        """exec_rmap() for a spawned or exec'd mm, dup_rmap() at fork."""
        if parent is None:
            self.groups.exec_rmap(mm)
        else:
            self.groups.dup_rmap(mm, parent)

    @hookimpl
    def rmap_mm_exit(self, mm: Mm) -> None:
        """exit_rmap()."""
        self.groups.exit_rmap(mm)

    # --- per vma: the anon object of every vma is its mm's anonmm ---------------------

    @hookimpl
    def rmap_anon_prepare(self, vma: Vma) -> object:
        """No per-vma state: vma->anon_vma stands for the mm's anonmm."""
        anonmm: AnonMM = vma.mm.rmap  # type: ignore[assignment]
        return anonmm

    @hookimpl
    def rmap_vma_fork(self, src: Vma, dst: Vma) -> None:
        """dup_mmap(): the child's vma belongs to the child's anonmm (made by dup_rmap)."""
        dst.anon_vma = dst.mm.rmap

    @hookimpl
    def rmap_vma_can_merge(self) -> bool:
        """anonmm never restricts merging: every vma of an mm has the same anonmm."""
        return True

    # --- per page --------------------------------------------------------------------

    def _set_anon(self, page: Page, vma: Vma, address: int) -> None:
        """page_add_anon_rmap() of a first mapping: the faulting mm's anonmm (which takes
        a reference) and the virtual address."""
        anonmm: AnonMM = vma.mm.rmap  # type: ignore[assignment]
        self.groups.get(anonmm)
        page.mapping = anonmm
        page.index = address & PAGE_MASK

    @hookimpl
    def rmap_page_new_anon(self, page: Page, vma: Vma, address: int) -> None:
        """page_add_anon_rmap() of a new page."""
        self._set_anon(page, vma, address)

    @hookimpl
    def rmap_page_dup(self, page: Page, vma: Vma, address: int) -> None:
        """page_dup_rmap() at fork needs nothing; do_swap_page()'s page_add_anon_rmap()
        of a swap-cache page nobody maps any more (mapcount was 0) sets it up anew."""
        if page_mapcount(page) == 1:
            self._set_anon(page, vma, address)

    @hookimpl
    def rmap_page_remove(self, page: Page) -> None:
        """page_remove_rmap() -> clear_page_anon() when the last pte is gone."""
        if page_mapcount(page) == 0:
            anonmm = page.mapping
            assert isinstance(anonmm, AnonMM)
            page.mapping = None
            self.groups.put(anonmm)

    @hookimpl
    def rmap_page_move(self, page: Page, new_address: int) -> None:
        """mremap_move_anon_rmap(): an exclusive page just takes its new address. A page
        still shared is left alone: the unshare policy never lets one through, and the
        full-scan variant finds it by scanning."""
        if page_mapcount(page) == 1:
            page.index = new_address & PAGE_MASK

    #: Copy a swap-cache page at swap-in when its address is not page->index (rmap 11);
    #: the full-scan variant finds such pages by scanning instead.
    unshare_at_swapin: ClassVar[bool] = True

    @hookimpl
    def rmap_swapin_copy(self, page: Page, address: int) -> bool:
        """do_swap_page()'s early COW (rmap 11): a page mremap moved while on swap comes
        back at an address that is not its index, so this pte gets its own copy."""
        return self.unshare_at_swapin and page.index != address & PAGE_MASK

    @hookimpl
    def rmap_walk(self, page: Page, cost: WalkCost) -> Iterator[tuple[Vma, int]]:
        """try_to_unmap_anon()/page_referenced_anon(): the quick walk."""
        return self.quick_walk(page, cost, None)

    def candidates_in(self, mm: Mm, page: Page, cost: WalkCost) -> Iterator[tuple[Vma, int]]:
        """try_to_unmap_one(mm, page->index): one find_vma at the page's address."""
        cost.find_vma += 1
        vma = mm.vmas.lookup(page.index)
        if vma is not None:
            yield vma, page.index

    def quick_walk(self, page: Page, cost: WalkCost,
                   seen: set[tuple[int, int]] | None) -> Iterator[tuple[Vma, int]]:
        """The indicated mm first, then every other live mm of the group with rss.

        If the page's own mm has exited, the first mm found to map it becomes its anonmm
        (page_referenced_anon's "migrate"). ``seen`` collects the yielded (mm id,
        address) pairs for a caller that continues with a scan.
        """
        anonmm = page.mapping
        assert isinstance(anonmm, AnonMM)
        migrate = anonmm.mm is None
        for member in [anonmm, *self.groups.others(anonmm)]:
            mm = member.mm
            if mm is None or not mm.rss:
                continue
            cost.mms_visited += 1
            for vma, addr in self.candidates_in(mm, page, cost):
                if migrate and _mm_maps(mm, addr, page):
                    migrate = False
                    self.groups.get(member)
                    page.mapping = member
                    self.groups.put(anonmm)
                if seen is not None:
                    seen.add((id(vma.mm), addr))
                yield vma, addr


class AnonMMFullScan(AnonMMScheme):
    """anonmm without the unshare policy: mremap moves shared pages as the kernel does,
    and a walk that did not find every mapping falls back to scanning every anonymous vma
    of every mm in the group, probing every page address (Andrea's "walk every vma of
    every mm" alternative)."""

    info: ClassVar[PluginInfo] = PluginInfo(
        name="anonmm_fullscan",
        kind="rmap",
        summary="anonmm whose walk falls back to scanning every anon vma of the group",
        structs=("anonmm",),
        description=(
            "anonmm with no mremap policy: a shared page moved by mremap keeps its old "
            "address in page->index, so when the quick walk (indicated mm, then every mm "
            "of the group) leaves mappings unfound, every anonymous vma of every mm in the "
            "group is scanned page by page. Correct without copies, at the price of "
            "O(all anon pages of the group) probes for such pages."),
    )
    unshare_at_swapin: ClassVar[bool] = False

    @hookimpl
    def rmap_walk(self, page: Page, cost: WalkCost) -> Iterator[tuple[Vma, int]]:
        """The quick walk, then (only if the core still wants more) the full scan."""
        seen: set[tuple[int, int]] = set()
        yield from self.quick_walk(page, cost, seen)
        # The core stops consuming once page.mapcount mappings were found, so reaching
        # this point means the quick walk missed some.
        anonmm = page.mapping
        assert isinstance(anonmm, AnonMM)
        for member in list(anonmm.head.members):
            mm = member.mm
            if mm is None or not mm.rss:
                continue
            cost.mms_visited += 1
            for vma in mm.vmas:
                if vma.anon_vma is None:
                    continue
                cost.vmas_visited += 1
                key = id(mm)
                for addr in range(vma.start, vma.end, PAGE_SIZE):
                    if (key, addr) not in seen:
                        yield vma, addr
