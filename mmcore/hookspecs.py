"""The hook specifications every mmcore plugin implements a subset of.

Hooks are grouped by lifecycle stage. Names follow the kernel functions they stand for, so
a reader of mm/rmap.c finds the matching hook at once. A plugin implements hooks as methods
decorated with :data:`mmcore.hookimpl`; it may accept any subset of a spec's arguments.

Per-page hooks (``rmap_page_*`` and ``rmap_walk``) run on every fault, fork copy and unmap.
The Machine binds their single implementation once when it is built and calls it directly,
so they must have exactly one implementation (the rmap scheme's) and no wrappers.

Order of hooks over a process's life (see docs/hooks.md for the diagram)::

    spawn/exec   rmap_mm_init(mm, parent=None)
    first write  rmap_anon_prepare(vma)          -> rmap_page_new_anon(page, vma, addr, True)
    fork         rmap_mm_init(child_mm, parent)  -> per vma: rmap_vma_fork(src, dst)
                                                 -> per pte: rmap_page_dup(page, dst, addr)
    COW          rmap_page_new_anon(new, ...)    -> rmap_page_remove(old, vma, addr)
    mprotect     rmap_vma_split(vma, new) / rmap_vma_can_merge(...) -> rmap_vma_merge(...)
    mremap       rmap_vma_copy(src, new) -> per pte: mremap_move_pte(...) -> rmap_page_move
    munmap/exit  rmap_page_remove(...) per pte   -> rmap_vma_unlink(vma) -> rmap_mm_exit(mm)
    reclaim      rmap_walk(page, cost)           -> rmap_page_remove(...) per pte
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Final

import pluggy

if TYPE_CHECKING:
    from .costs import WalkCost
    from .events import Event
    from .folio import Folio
    from .mm import Mm
    from .page import Page
    from .reclaim import ReclaimContext
    from .vma import Vma

PROJECT = "mmcore"
hookspec: Final[pluggy.HookspecMarker] = pluggy.HookspecMarker(PROJECT)
#: The marker of a plugin's hook methods. Annotated so that ``@hookimpl`` (and
#: ``@hookimpl(tryfirst=True)``) keep the decorated method's type under a plugin author's
#: ``mypy --strict`` (pluggy's overloads return the function unchanged).
hookimpl: Final[pluggy.HookimplMarker] = pluggy.HookimplMarker(PROJECT)

#: Hooks the Machine binds directly (one implementation, no pluggy dispatch per call).
PER_PAGE_HOOKS = (
    "rmap_page_new_anon",
    "rmap_page_dup",
    "rmap_page_remove",
    "rmap_page_move",
    "rmap_walk",
    "rmap_swapin_copy",
    "file_rmap_walk",
    "reclaim_lru_add",
    "reclaim_lru_del",
    "reclaim_mark_accessed",
    "rmap_folio_add_new_anon",
    "rmap_folio_dup_ptes",
    "rmap_folio_remove_ptes",
    "mapcount_add",
    "mapcount_remove",
    "mapcount_split",
    "mapcount_page",
    "mapcount_folio",
    "mapcount_maybe_shared",
    "mapcount_page_exclusive",
    "mapcount_exclusive_to",
    "mapcount_mapped_pages",
    "mapcount_partially_mapped",
    "mapcount_metadata_bytes",
)


# --------------------------------------------------------------------------------------
# rmap, per page (hot path)
# --------------------------------------------------------------------------------------

@hookspec(firstresult=True)
def rmap_page_new_anon(page: Page, vma: Vma, address: int, exclusive: bool) -> None:
    """folio_add_new_anon_rmap(): a freshly allocated anonymous page was mapped.

    Runs after a demand-zero write fault, a COW copy, or the swap-in of a page that is no
    longer in the swap cache. ``vma.anon_vma`` is already prepared. The scheme sets
    ``page.mapping`` and ``page.index`` and any per-page state; the core has already set
    the page's mapcount to 1. ``exclusive`` is False only for a swap-in of a page that
    several processes still share (the kernel then uses the root anon_vma).

    Example::

        @hookimpl
        def rmap_page_new_anon(self, page, vma, address):
            page.mapping = vma.anon_vma
            page.index = vma.linear_page_index(address)
    """


@hookspec(firstresult=True)
def rmap_page_dup(page: Page, vma: Vma, address: int) -> None:
    """folio_try_dup_anon_rmap_pte()/folio_add_anon_rmap_pte(): one more pte maps an
    existing anonymous page, in ``vma`` at ``address``.

    Runs when fork copies a present pte into the child and when a process swaps in a page
    another process already brought back into the swap cache. The core has already raised
    the mapcount.

    Example (pte_chains)::

        @hookimpl
        def rmap_page_dup(self, page, vma, address):
            self.chain_add(page, vma.mm, address)
    """


@hookspec(firstresult=True)
def rmap_page_remove(page: Page, vma: Vma, address: int) -> None:
    """folio_remove_rmap_pte(): the pte in ``vma`` at ``address`` no longer maps ``page``.

    Runs on munmap/exit (zap), on COW replacement, MADV_DONTNEED and try_to_unmap. The core
    has already lowered the mapcount.

    Example::

        @hookimpl
        def rmap_page_remove(self, page, vma, address):
            self.chain_del(page, vma.mm, address)
    """


@hookspec(firstresult=True)
def rmap_page_move(page: Page, old_vma: Vma, old_address: int, new_vma: Vma,
                   new_address: int) -> None:
    """move_ptes(): mremap moved the pte mapping ``page`` to ``new_vma``/``new_address``.

    Schemes keyed by linear index (anon_vma, anon_vma_chain) need nothing; pte_chains
    rewrites the chain entry; anonmm rewrites page.index for an exclusive page.

    Example::

        @hookimpl
        def rmap_page_move(self, page, old_vma, old_address, new_vma, new_address):
            self.chain_del(page, old_vma.mm, old_address)
            self.chain_add(page, new_vma.mm, new_address)
    """


@hookspec(firstresult=True)
def rmap_walk(page: Page, cost: WalkCost) -> Iterator[tuple[Vma, int]]:
    """rmap_walk_anon(): yield every (vma, address) at which ``page`` may be mapped.

    Runs for try_to_unmap, page_referenced and :meth:`Machine.rmap_walk`. Candidates may be
    wrong (the core probes the page table for each and counts a wasted probe); a mapping
    that is never yielded is a bug the conformance kit reports. The core stops consuming
    the iterator once it has found ``page.mapcount`` mappings. The scheme counts its own
    effort on ``cost``: ``mms_visited``, ``vmas_visited``, ``find_vma``, ``tree_steps``.

    Example::

        @hookimpl
        def rmap_walk(self, page, cost):
            for vma in page.mapping.vmas:
                cost.vmas_visited += 1
                addr = vma.address_of(page.index)
                if addr >= 0:
                    yield vma, addr
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def rmap_swapin_copy(page: Page, vma: Vma, address: int) -> bool:
    """do_swap_page(): ``page`` is a swap-cache page another process brought back; may
    this pte map it at ``address``? Return True to give this pte a private copy instead.

    Hugh Dickins's rmap 11 did this early COW for anonmm, whose ``page->index`` is a
    virtual address: a page mremap moved while it was on swap comes back at an address
    that no longer equals its index. Schemes keyed by linear index need no such hook.
    Optional: when no plugin implements it, swap-in never asks.

    Example (anonmm)::

        @hookimpl
        def rmap_swapin_copy(self, page, address):
            return page.index != address
    """
    raise NotImplementedError


# --------------------------------------------------------------------------------------
# rmap, per vma and mm (pluggy dispatch: rare compared with faults)
# --------------------------------------------------------------------------------------

@hookspec
def rmap_mm_init(mm: Mm, parent: Mm | None) -> None:
    """A new address space: at spawn and execve (``parent`` None) or at fork (dup_mmap,
    before any vma is copied). anonmm creates or joins its group here (exec_rmap/dup_rmap).

    Example::

        @hookimpl
        def rmap_mm_init(self, mm, parent):
            mm.rmap = AnonMM(group=parent.rmap.group if parent else None)
    """


@hookspec
def rmap_mm_exit(mm: Mm) -> None:
    """exit_rmap(): the address space is gone; every vma was unlinked before this runs.

    Example::

        @hookimpl
        def rmap_mm_exit(self, mm):
            mm.rmap.leave_group()
    """


@hookspec(firstresult=True)
def rmap_anon_prepare(vma: Vma) -> object:
    """anon_vma_prepare(): the first anonymous page is about to enter ``vma``.

    Called only while ``vma.anon_vma`` is None. Return the object to store in
    ``vma.anon_vma`` (it must not be None); link the vma to it as the scheme requires.
    A read fault that maps the zero page does not call this.

    Example::

        @hookimpl
        def rmap_anon_prepare(self, vma):
            return find_mergeable_anon_vma(vma) or AnonVma()
    """
    raise NotImplementedError


@hookspec
def rmap_vma_fork(src: Vma, dst: Vma) -> None:
    """anon_vma_fork(): fork copied ``src`` (parent) into ``dst`` (child).

    Runs only when ``src.anon_vma`` is set and the vma is not VM_WIPEONFORK. ``dst.anon_vma``
    is None on entry; the scheme must set it (to src's object or a new one).

    Example::

        @hookimpl
        def rmap_vma_fork(self, src, dst):
            dst.anon_vma = src.anon_vma
            src.anon_vma.vmas.append(dst)
    """


@hookspec
def rmap_vma_split(vma: Vma, new: Vma) -> None:
    """__split_vma(): ``new`` was cut off ``vma`` and shares its anon_vma (anon_vma_clone).

    ``new.anon_vma`` equals ``vma.anon_vma`` on entry; link ``new`` where ``vma`` is linked.

    Example::

        @hookimpl
        def rmap_vma_split(self, vma, new):
            if vma.anon_vma is not None:
                vma.anon_vma.vmas.append(new)
    """


@hookspec
def rmap_vma_copy(src: Vma, new: Vma) -> None:
    """copy_vma(): mremap made ``new`` (a copy of ``src`` at the destination) because no
    merge at the destination was possible; link it like ``src`` (anon_vma_clone).

    Example::

        @hookimpl
        def rmap_vma_copy(self, src, new):
            if src.anon_vma is not None:
                src.anon_vma.vmas.append(new)
    """


@hookspec(firstresult=True)
def rmap_vma_can_merge(target: Vma, src: Vma | None, anon: object | None,
                       copied_from: Vma | None) -> bool:
    """is_mergeable_anon_vma(): may a range whose anon object is ``anon`` merge into
    ``target``? ``src`` is the existing vma being changed (None for a new range) and
    ``copied_from`` the vma mremap is copying (else None).

    Flags, file and pgoff continuity were already checked by the core. Return False to
    refuse (anon_vma: the two anon_vmas differ; anon_vma_chain: a fork child is involved).

    Example::

        @hookimpl
        def rmap_vma_can_merge(self, target, anon):
            return target.anon_vma is None or anon is None or target.anon_vma is anon
    """
    raise NotImplementedError


@hookspec
def rmap_vma_merge(target: Vma, src: Vma) -> None:
    """dup_anon_vma(): ``target`` grows over (part of) ``src`` in a merge and has no anon
    object while ``src`` has one; make ``target`` share it. The core sets
    ``target.anon_vma`` to ``src.anon_vma`` before calling.

    Example::

        @hookimpl
        def rmap_vma_merge(self, target, src):
            src.anon_vma.vmas.append(target)
    """


@hookspec
def rmap_vma_unlink(vma: Vma) -> None:
    """unlink_anon_vmas(): ``vma`` is going away (munmap, exit, removal by a merge, or the
    source of an MREMAP_DONTUNMAP move). Its ptes are already gone. The core clears
    ``vma.anon_vma`` afterwards.

    Example::

        @hookimpl
        def rmap_vma_unlink(self, vma):
            if vma.anon_vma is not None:
                vma.anon_vma.vmas.remove(vma)
    """


@hookspec
def vma_range_update(vma: Vma) -> None:
    """vma_complete() after vma_set_range(): a linked ``vma``'s start, end or pgoff has
    just changed in place (a split, a merge, an expansion, brk). A scheme that keeps the
    vma in a tree keyed by its pgoff range re-keys it here, as the kernel re-inserts it
    in the anon_vma interval trees (anon_vma_interval_tree_post_update_vma()) and in
    i_mmap (vma_interval_tree_insert()). Both rmap and file rmap plugins may implement
    it; with no implementation the core does not call it. A vma is never re-keyed
    between its creation and its first link hook (rmap_vma_split, rmap_vma_copy, ...):
    it gets its final range before.

    Example::

        @hookimpl
        def vma_range_update(self, vma):
            tree = vma.file.inode.i_mmap
            tree.update(vma, vma.pgoff, vma.pgoff + vma.pages - 1)
    """


# --------------------------------------------------------------------------------------
# mremap policy
# --------------------------------------------------------------------------------------

@hookspec(firstresult=True)
def mremap_move_pte(page: Page, vma: Vma, old_address: int, new_vma: Vma,
                    new_address: int) -> str | None:
    """move_ptes(): decide what to do with one present pte that mremap is moving.

    Return ``"move"`` to move the pte (the kernel's behaviour) or ``"copy"`` to unshare the
    page: the core gives the destination a private copy mapped as a new anonymous page,
    and the source pte is dropped (Linus's 2004 proposal). None means "move".

    Example (Linus's policy)::

        @hookimpl
        def mremap_move_pte(self, page):
            return "copy" if page.is_anon and page.refcount > 1 else "move"
    """
    raise NotImplementedError


# --------------------------------------------------------------------------------------
# observers
# --------------------------------------------------------------------------------------

@hookspec
def mmcore_event(event: Event) -> None:
    """An observable step: a fault, a COW, a split or merge, an rmap walk, an unmap.

    Called only when at least one observer plugin is registered, so it costs nothing
    otherwise. Must not change machine state.

    Example::

        @hookimpl
        def mmcore_event(self, event):
            if event.kind == "cow":
                self.cows += 1
    """


# --------------------------------------------------------------------------------------
# file rmap: the i_mmap of an address_space (file pages and shmem)
# --------------------------------------------------------------------------------------

@hookspec(firstresult=True)
def file_rmap_insert(vma: Vma, after: Vma | None) -> None:
    """vma_interval_tree_insert(): ``vma`` now maps ``vma.file.inode``; with ``after`` (fork,
    vma_interval_tree_insert_after) place it right after the parent's vma.

    Example (2.6.6 objrmap list)::

        @hookimpl
        def file_rmap_insert(self, vma, after):
            vma.file.inode.i_mmap.append(vma)
    """


@hookspec(firstresult=True)
def file_rmap_remove(vma: Vma) -> None:
    """vma_interval_tree_remove(): ``vma`` no longer maps its file (munmap, exit, merge).

    Example::

        @hookimpl
        def file_rmap_remove(self, vma):
            vma.file.inode.i_mmap.remove(vma)
    """


@hookspec(firstresult=True)
def file_rmap_walk(page: Page, cost: WalkCost) -> Iterator[tuple[Vma, int]]:
    """rmap_walk_file(): yield the (vma, address) pairs at which page-cache ``page`` may be
    mapped; same contract as :func:`rmap_walk`. ``page.mapping`` is the Inode.

    Example::

        @hookimpl
        def file_rmap_walk(self, page, cost):
            for vma in page.mapping.i_mmap:
                cost.vmas_visited += 1
                addr = vma.address_of(page.index)
                if addr >= 0:
                    yield vma, addr
    """
    raise NotImplementedError


# --------------------------------------------------------------------------------------
# rmap, per folio range (batched where the kernel batches)
# --------------------------------------------------------------------------------------
# The core calls these for a run of ``nr`` consecutive pages of one large folio, starting
# at ``folio.pages[first]`` and mapped at ``address``, ``address + PAGE_SIZE``, ... in
# ``vma``. A scheme that does not implement one gets the per-page hook called for each
# page instead (the core loops), so a 2004-style scheme needs no change. Order-0 pages
# always go through the per-page hooks. These are the batch hooks of fork and zap, which
# work one PTE page at a time (mmcore.memory: copy_pte_range(), zap_pte_range()).

@hookspec(firstresult=True)
def rmap_folio_add_new_anon(folio: Folio, first: int, nr: int, vma: Vma, address: int,
                            exclusive: bool) -> None:
    """folio_add_new_anon_rmap(): a new large anonymous folio is mapped, ``nr`` pages of it
    from page ``first`` (all of it, for a fresh fault). The core has set the per-page
    mapcounts. Per page this is ``rmap_page_new_anon``.

    Example (anon_vma: one index per page, as __folio_set_anon() does for the folio)::

        @hookimpl
        def rmap_folio_add_new_anon(self, folio, first, nr, vma, address):
            for i, page in enumerate(folio.pages[first:first + nr]):
                page.mapping = vma.anon_vma
                page.index = vma.linear_page_index(address + i * PAGE_SIZE)
    """


@hookspec(firstresult=True)
def rmap_folio_dup_ptes(folio: Folio, first: int, nr: int, vma: Vma, address: int) -> None:
    """folio_try_dup_anon_rmap_ptes(): fork (or a swap-in) made ``nr`` more ptes map pages
    of an existing anonymous large folio, in the child's ``vma`` at ``address``. The core
    has raised the mapcounts. Per page this is ``rmap_page_dup``.

    Example (pte_chains keeps per-page chains, which is what it costs)::

        @hookimpl
        def rmap_folio_dup_ptes(self, folio, first, nr, vma, address):
            for i, page in enumerate(folio.pages[first:first + nr]):
                self.chain_add(page, vma.mm, address + i * PAGE_SIZE)
    """


@hookspec(firstresult=True)
def rmap_folio_remove_ptes(folio: Folio, first: int, nr: int, vma: Vma,
                           address: int) -> None:
    """folio_remove_rmap_ptes(): ``nr`` ptes in ``vma`` from ``address`` no longer map pages
    of the large folio (zap, COW, MADV_DONTNEED, try_to_unmap). The core has lowered the
    mapcounts. Per page this is ``rmap_page_remove``.

    Example::

        @hookimpl
        def rmap_folio_remove_ptes(self, folio, first, nr, vma, address):
            for i, page in enumerate(folio.pages[first:first + nr]):
                self.chain_del(page, vma.mm, address + i * PAGE_SIZE)
    """


# --------------------------------------------------------------------------------------
# mapcount design: what the kernel keeps and reports about a large folio's mappings
# --------------------------------------------------------------------------------------
# One ``mapcount`` plugin per Machine (default ``per_page``, CONFIG_PAGE_MAPCOUNT as 6.18
# runs here). The core keeps the exact per-page truth (``page.mapcount``,
# ``folio.entire_mapcount``) and tells the design every mapping change of a large folio
# *after* making it; the design keeps its own state in ``folio.mc`` and answers the
# questions the kernel asks its counters. Order-0 pages never reach these hooks: every
# design counts a small folio exactly. Decisions (COW reuse, deferred split) and /proc
# values come from the answers, so a design that is not exact changes what mmcore does and
# shows, and that difference is what is measured.

@hookspec(firstresult=True)
def mapcount_add(folio: Folio, first: int, nr: int, vma: Vma, address: int,
                 pmd: bool) -> None:
    """folio_add_{new_anon,anon,file}_rmap_{ptes,pmd}() and folio_try_dup_anon_rmap_*():
    ``nr`` pages from ``first`` became mapped once more in ``vma`` from ``address``, by
    ptes, or by one PMD over the whole folio when ``pmd``. The design updates its counters
    and counts the atomic updates it would do (``self.updates``)."""


@hookspec(firstresult=True)
def mapcount_remove(folio: Folio, first: int, nr: int, vma: Vma, address: int,
                    pmd: bool) -> None:
    """folio_remove_rmap_{ptes,pmd}(): the reverse of :func:`mapcount_add`, after the core
    has cleared the ptes (or the PMD)."""


@hookspec(firstresult=True)
def mapcount_split(folio: Folio) -> None:
    """__folio_split(): the folio is about to become order-0 pages (each keeps its exact
    ``page.mapcount``); the design drops its per-folio state. Also called before a whole
    folio is freed."""


@hookspec(firstresult=True)
def mapcount_page(folio: Folio, page: Page) -> int:
    """What /proc/kpagecount (and Pss) uses as the mapcount of ``page``: exact with
    per-page mapcounts, the folio's average page mapcount without them."""
    raise NotImplementedError


@hookspec(firstresult=True)
def mapcount_folio(folio: Folio) -> int:
    """folio_mapcount(): the mappings of the folio as the design counts them."""
    raise NotImplementedError


@hookspec(firstresult=True)
def mapcount_maybe_shared(folio: Folio) -> bool:
    """folio_maybe_mapped_shared(): False only if the design can tell that a single mm
    maps the folio (PM_MMAP_EXCLUSIVE, Uss, and the sharing checks of madvise and NUMA)."""
    raise NotImplementedError


@hookspec(firstresult=True)
def mapcount_page_exclusive(folio: Folio, page: Page) -> bool:
    """__folio_page_mapped_exclusively(): whether /proc/PID/pagemap sets PM_MMAP_EXCLUSIVE
    (and smaps counts as private) ``page`` of the folio: its precise mapcount (its ptes
    plus the folio's PMDs) is 1 with per-page mapcounts, ``not folio_maybe_mapped_shared()``
    without. For every page of a PMD mapping pagemap asks about the head page
    (pagemap_pmd_range() passes pmd_page(): probed, kernel-facts "What /proc and /sys
    show"), while smaps asks page by page."""
    raise NotImplementedError


@hookspec(firstresult=True)
def mapcount_exclusive_to(folio: Folio, mm: Mm) -> bool:
    """Whether ``mm`` certainly maps the folio exclusively (the mm-id test of
    __wp_can_reuse_large_anon_folio()); the core adds the refcount check."""
    raise NotImplementedError


@hookspec(firstresult=True)
def mapcount_mapped_pages(folio: Folio) -> int:
    """How many of the folio's pages AnonPages/Mapped account while it is mapped
    (_nr_pages_mapped with per-page mapcounts, the whole folio without)."""
    raise NotImplementedError


@hookspec(firstresult=True)
def mapcount_partially_mapped(folio: Folio) -> bool:
    """Whether the design sees the folio as partly mapped after a removal, so that
    __folio_remove_rmap() queues it for deferred split."""
    raise NotImplementedError


@hookspec(firstresult=True)
def mapcount_metadata_bytes(folio: Folio) -> int:
    """Bytes of mapcount state the design keeps for this folio (in struct folio and in
    its pages' struct page)."""
    raise NotImplementedError


# --------------------------------------------------------------------------------------
# reclaim policy: the LRU lists and the choice of victims
# --------------------------------------------------------------------------------------

@hookspec(firstresult=True)
def reclaim_lru_add(page: Page) -> None:
    """folio_add_lru(): a new user page (anonymous or page cache) enters the LRU.

    A policy with an active list sets PG_active on the pages it keeps there and clears it
    when they leave (/proc/meminfo Active/Inactive and kpageflags ACTIVE read that flag).

    Example::

        @hookimpl
        def reclaim_lru_add(self, page):
            self.inactive[page.pfn] = page
    """


@hookspec(firstresult=True)
def reclaim_lru_del(page: Page) -> None:
    """The page is being freed: forget it.

    Example::

        @hookimpl
        def reclaim_lru_del(self, page):
            self.inactive.pop(page.pfn, None) or self.active.pop(page.pfn, None)
    """


@hookspec(firstresult=True)
def reclaim_mark_accessed(page: Page) -> None:
    """mark_page_accessed(): read()/write() touched a page-cache page (no pte to age).

    Example::

        @hookimpl
        def reclaim_mark_accessed(self, page):
            self.referenced.add(page.pfn)
    """


@hookspec(firstresult=True)
def reclaim_shrink(nr_to_reclaim: int, ctx: ReclaimContext) -> int:
    """shrink_node(): free about ``nr_to_reclaim`` pages; return how many were freed.

    The policy picks candidates from its lists and asks the core, through ``ctx``, to test
    references (``ctx.page_referenced(page)``: an rmap walk that test-and-clears accessed
    bits) and to reclaim (``ctx.reclaim(page)``: unmap through the rmap walk, write back
    or swap out, free). Every decision should be reported with ``ctx.decide(...)``.
    A page for which ``ctx.no_swap_for(page)`` is true (swap-backed, no swap slot free)
    should be passed by without a referenced check: reclaiming it can only fail, and
    scanning it anyway makes every allocation near OOM cost a scan of all memory.

    Example (CLOCK)::

        @hookimpl
        def reclaim_shrink(self, nr_to_reclaim, ctx):
            freed = 0
            for page in self.sweep():
                if ctx.page_referenced(page):
                    continue
                freed += ctx.reclaim(page) == "freed"
                if freed >= nr_to_reclaim:
                    break
            return freed
    """
    raise NotImplementedError
