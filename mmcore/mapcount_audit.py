"""Each decision a mapcount design takes for the core, next to what exact knowledge says.

:class:`DecisionAudit` replaces three of a Machine's bound mapcount callables by wrappers
that call the design, work out the exact answer to the same question, and count the
cases where they differ. Only a machine the audit is installed on pays for it: the
default path calls the design's function directly, as before.

The questions, and how a different answer shows up in the simulation:

- ``mapcount_exclusive_to(folio, mm)``, asked by a COW fault on a large folio
  (__wp_can_reuse_large_anon_folio()). Exact: every mapping of the folio is in ``mm``. A
  design saying no where the answer is yes and every reference is a mapping (the
  refcount test would pass) is a **denied reuse**; saying yes where the answer is no
  would be an **unsafe reuse** (a bug: no design may do it).
- Every COW copy of a large folio's page the core makes (its ``cow_copy`` event, seen by
  :class:`CowCopyObserver` when the machine has it): an **extra copy** when exact
  knowledge would have reused the page: the folio still had another mapping, all of its
  mappings were in the faulting mm, and every reference was a mapping. This counts what
  the core did, whatever it asked the design (the reuse rule reads the design's
  folio_mapcount() too).
- ``mapcount_partially_mapped(folio)``, asked after an unmap (__folio_remove_rmap()).
  Exact: some but not all pages are mapped. No where the answer is yes is a **missed
  deferred split**; yes where it is no a **spurious** one.
- ``mapcount_maybe_shared(folio)``, asked by madvise, NUMA and /proc. Yes where one mm
  maps the folio is a **false shared**; no where several do a **false exclusive** (a bug).

The exact answers use the core's exact counters (``page.mapcount``,
``folio.entire_mapcount``, which :func:`mmcore.folio_truth.check_core` verifies against
the page tables) and a scan of the page tables where the question is about mms.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from .events import Event
from .hookspecs import hookimpl
from .pagetable import pte_pfn, pte_present
from .plugins import PluginInfo

if TYPE_CHECKING:
    from .folio import Folio
    from .machine import Machine
    from .mm import Mm

#: Every count the audit keeps, in report order.
DECISIONS = ("cow_asked", "cow_denied", "cow_unsafe_reuse", "cow_copies", "cow_extra_copy",
             "split_asked", "split_missed", "split_spurious",
             "shared_asked", "shared_false", "exclusive_false")


def entries(folio: Folio) -> int:
    """The folio's page-table entries (one per pte; a PMD mapping covers every page)."""
    return sum(p.mapcount for p in folio.pages) + folio.entire_mapcount * folio.nr_pages


def entries_in(mm: Mm, folio: Folio) -> int:
    """How many of ``mm``'s present ptes map a page of ``folio`` (a page-table scan)."""
    lo, hi = folio.pfn, folio.pfn + folio.nr_pages
    n = 0
    for pte in mm.pgtable.values():
        if pte_present(pte) and lo <= pte_pfn(pte) < hi:
            n += 1
    return n


def exactly_partial(folio: Folio) -> bool:
    """Some but not all of the folio's pages are mapped (by ptes; a PMD maps them all)."""
    return not folio.entire_mapcount and 0 < folio.nr_pages_mapped < folio.nr_pages


class DecisionAudit:
    """Count a machine's mapcount decisions that differ from exact knowledge.

    ``paused`` makes the wrappers pass straight through (the study's own /proc sampling
    asks the same questions and is not a decision)."""

    def __init__(self, m: Machine) -> None:
        self.machine = m
        self.counts: dict[str, int] = dict.fromkeys(DECISIONS, 0)
        self.paused = False
        for plugin in m.plugins:
            if isinstance(plugin, CowCopyObserver):
                plugin.audit = self
        self._exclusive_to: Callable[..., bool] = m.mapcount_exclusive_to
        self._partially: Callable[..., bool] = m.mapcount_partially_mapped
        self._shared: Callable[..., bool] = m.mapcount_maybe_shared
        m.mapcount_exclusive_to = self.exclusive_to
        m.mapcount_partially_mapped = self.partially_mapped
        m.mapcount_maybe_shared = self.maybe_shared

    def uninstall(self) -> None:
        """Give the machine its design's own callables back."""
        m = self.machine
        m.mapcount_exclusive_to = self._exclusive_to
        m.mapcount_partially_mapped = self._partially
        m.mapcount_maybe_shared = self._shared

    def exclusive_to(self, folio: Folio, mm: Mm) -> bool:
        """The design's COW-reuse answer, audited."""
        said = self._exclusive_to(folio, mm)
        if self.paused:
            return said
        c = self.counts
        c["cow_asked"] += 1
        total = entries(folio)
        exact = total > 0 and entries_in(mm, folio) == total
        if said and not exact:
            c["cow_unsafe_reuse"] += 1
        elif exact and not said and sum(p.refcount for p in folio.pages) == total:
            c["cow_denied"] += 1
        return said

    def cow_copied(self, old_pfn: int, mm: Mm) -> None:
        """The core copied page ``old_pfn`` for ``mm`` (its pte and reference to the old
        page are gone): an extra copy if exact knowledge would have reused it."""
        page = self.machine.physmem.page(old_pfn)
        folio = None if page is None else page.folio
        if folio is None:
            return  # an order-0 page, or a large folio freed with its last mapping
        self.counts["cow_copies"] += 1
        left = entries(folio)
        if left and entries_in(mm, folio) == left \
                and sum(p.refcount for p in folio.pages) == left:
            self.counts["cow_extra_copy"] += 1

    def partially_mapped(self, folio: Folio) -> bool:
        """The design's deferred-split answer, audited."""
        said = self._partially(folio)
        if self.paused:
            return said
        exact = exactly_partial(folio)
        c = self.counts
        c["split_asked"] += 1
        c["split_missed"] += exact and not said
        c["split_spurious"] += said and not exact
        return said

    def maybe_shared(self, folio: Folio) -> bool:
        """The design's maybe-shared answer, audited."""
        said = self._shared(folio)
        if self.paused:
            return said
        total = entries(folio)
        owners = 0
        for proc in self.machine.live_processes():
            if entries_in(proc.mm, folio):
                owners += 1
                if owners > 1:
                    break
        c = self.counts
        c["shared_asked"] += 1
        c["shared_false"] += said and owners <= 1 and total > 0
        c["exclusive_false"] += not said and owners > 1
        return said



class CowCopyObserver:
    """An observer plugin (``Machine(observers=[CowCopyObserver])``) handing the core's
    COW copies to the machine's :class:`DecisionAudit`."""

    info: ClassVar[PluginInfo] = PluginInfo(
        name="mapcount_cow_audit", kind="observer",
        summary="COW copies of large-folio pages, for the mapcount decision audit")

    def __init__(self, machine: Machine) -> None:
        self.machine = machine
        self.audit: DecisionAudit | None = None

    @hookimpl
    def mmcore_event(self, event: Event) -> None:
        """A ``cow_copy`` fault goes to the audit (unless it is paused)."""
        audit = self.audit
        if audit is None or audit.paused or event.kind != "fault" \
                or event.data.get("type") != "cow_copy":
            return
        proc = self.machine.processes.get(event.pid)
        if proc is not None:
            audit.cow_copied(int(event.data["old_pfn"]), proc.mm)
