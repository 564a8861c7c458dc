"""Reclaim policies: the default two-list LRU and CLOCK.

``lru2`` is the 2.6 active/inactive design (mm/vmscan.c before the 2.6.28 split LRU):
new pages enter the inactive list; a page found referenced on the inactive list is
activated, an unreferenced one is reclaimed; when the active list outgrows the inactive
one, its oldest pages are aged (their accessed bits cleared through the rmap walk) and
moved back. ``clock`` is the textbook second-chance algorithm over one circular list; it
exists to prove the hook surface, and as a baseline for teaching.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from mmcore import PluginInfo, hookimpl
from mmcore.lru import LruList
from mmcore.page import PG_ACTIVE, PG_REFERENCED

if TYPE_CHECKING:
    from mmcore import Machine, Page
    from mmcore.reclaim import ReclaimContext

_RETRY = ("busy",)


class TwoListLRU:
    """Active and inactive lists, oldest first. A page on the active list carries
    PG_active, as in the kernel (meminfo and kpageflags read it).

    The lists are :class:`~mmcore.lru.LruList` s threaded through the machine's
    pfn-indexed links (struct page's lru list_head): taking the oldest page and
    unlinking any page are O(1), and a listed page costs 9 bytes, not an OrderedDict
    entry's 75."""

    info: ClassVar[PluginInfo] = PluginInfo(
        name="lru2", kind="reclaim",
        summary="2.6 active/inactive LRU with rmap-driven referenced checks",
        description=("The default: pages age from the inactive list's tail; referenced "
                     "pages are promoted, the rest unmapped through the rmap walk."),
    )

    def __init__(self, machine: Machine) -> None:
        self.machine = machine
        links, pages = machine.physmem.lru, machine.physmem.pages
        self.inactive = LruList(links, pages)
        self.active = LruList(links, pages)
        #: Pages found mlocked while aging, set aside until the shrink ends (as the
        #: unevictable list keeps them out of the scan); then back at the active tail.
        self.unevictable = LruList(links, pages)

    @hookimpl
    def reclaim_lru_add(self, page: Page) -> None:
        """lru_cache_add(): new pages start inactive."""
        self.inactive.add(page)

    @hookimpl
    def reclaim_lru_del(self, page: Page) -> None:
        """The page is freed."""
        for lru in (self.inactive, self.active, self.unevictable):
            if lru.pop(page.pfn) is not None:
                return

    @hookimpl
    def reclaim_mark_accessed(self, page: Page) -> None:
        """mark_page_accessed(): the second touch of an inactive page activates it
        (folio_activate(), counted as pgactivate)."""
        if page.flags & PG_REFERENCED and page.pfn in self.inactive:
            self.machine.vm_events.pgactivate += 1
            self.inactive.pop(page.pfn)
            self.active.add(page)
            page.flags |= PG_ACTIVE
            page.flags &= ~PG_REFERENCED
        else:
            page.flags |= PG_REFERENCED

    def _age_active(self, ctx: ReclaimContext, batch: int) -> None:
        """refill_inactive_zone(): move the oldest active pages to the inactive list,
        clearing their accessed bits; a page still referenced stays active once."""
        for page in self.active.oldest(batch):
            self.active.pop(page.pfn)
            if ctx.no_swap_for(page):  # not aged while it cannot be swapped
                self.active.add(page)
                continue
            refs = ctx.page_referenced(page)
            if refs != 0:
                # An mlocked page (-1) is not aged again in this shrink: nothing can
                # unlock it meanwhile, and each aging would be one more rmap walk.
                (self.unevictable if refs < 0 else self.active).add(page)
                ctx.decide(page, "keep_active")
            else:
                self.inactive.add(page)
                page.flags &= ~PG_ACTIVE
                ctx.decide(page, "deactivate")

    @hookimpl
    def reclaim_shrink(self, nr_to_reclaim: int, ctx: ReclaimContext) -> int:
        """shrink_zone(): scan the inactive tail until enough pages are freed."""
        try:
            return self._shrink(nr_to_reclaim, ctx)
        finally:
            self.unevictable.move_all(self.active)

    def _shrink(self, nr_to_reclaim: int, ctx: ReclaimContext) -> int:
        budget = 2 * (len(self.inactive) + len(self.active)) + 8
        while ctx.freed < nr_to_reclaim and budget > 0:
            if len(self.active) > len(self.inactive) or not self.inactive:
                if not self.active:
                    break
                self._age_active(ctx, 32)
                budget -= 1
                continue
            page = self.inactive.popleft()
            budget -= 1
            if ctx.no_swap_for(page):  # passed by, as get_scan_count()'s SCAN_FILE does
                self.inactive.add(page)
                continue
            refs = ctx.page_referenced(page)
            if refs != 0:
                self.active.add(page)
                page.flags |= PG_ACTIVE
                ctx.decide(page, "activate")
                continue
            result = ctx.reclaim(page)
            ctx.decide(page, "reclaim" if result == "freed" else result)
            if result in _RETRY:
                self.inactive.add(page)
                page.flags &= ~PG_ACTIVE
            elif result != "freed":
                self.active.add(page)
                page.flags |= PG_ACTIVE
        return ctx.freed


class Clock:
    """CLOCK (second chance): one circular list (an :class:`~mmcore.lru.LruList`, so the
    hand's next page is found in O(1)); the hand skips referenced pages once."""

    info: ClassVar[PluginInfo] = PluginInfo(
        name="clock", kind="reclaim",
        summary="CLOCK / second chance over one list",
        description="A textbook baseline: referenced pages get one more turn of the hand.",
    )

    def __init__(self, machine: Machine) -> None:
        self.ring = LruList(machine.physmem.lru, machine.physmem.pages)

    @hookimpl
    def reclaim_lru_add(self, page: Page) -> None:
        """New pages go behind the hand."""
        self.ring.add(page)

    @hookimpl
    def reclaim_lru_del(self, page: Page) -> None:
        """The page is freed."""
        self.ring.pop(page.pfn)

    @hookimpl
    def reclaim_mark_accessed(self, page: Page) -> None:
        """read()/write() set the reference bit."""
        page.flags |= PG_REFERENCED

    @hookimpl
    def reclaim_shrink(self, nr_to_reclaim: int, ctx: ReclaimContext) -> int:
        """Advance the hand: clear and skip referenced pages, reclaim the others."""
        budget = 2 * len(self.ring) + 8
        while ctx.freed < nr_to_reclaim and self.ring and budget > 0:
            budget -= 1
            page = self.ring.popleft()
            if ctx.no_swap_for(page):  # the hand passes it by while swap is full
                self.ring.add(page)
                continue
            if ctx.page_referenced(page) != 0:
                self.ring.add(page)
                ctx.decide(page, "second_chance")
                continue
            result = ctx.reclaim(page)
            ctx.decide(page, "reclaim" if result == "freed" else result)
            if result != "freed":
                self.ring.add(page)
        return ctx.freed
