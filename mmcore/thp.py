"""The THP and mTHP policy knobs of /sys/kernel/mm/transparent_hugepage and which folio
orders a fault may allocate (mm/huge_memory.c __thp_vma_allowable_orders()).

The defaults are this project's reference machine (6.18, probed in docs/kernel-facts.md
section 18): top-level ``enabled`` is ``madvise``; ``hugepages-2048kB`` is ``inherit`` and
every smaller mTHP size is ``never``; the huge zero page is used. With them a vma without
MADV_HUGEPAGE only ever gets order-0 pages, which is why every workload that never asks for
huge pages runs exactly as it did before large folios existed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .constants import PAGE_SHIFT
from .folio import HPAGE_PMD_ORDER

#: The modes of ``transparent_hugepage/enabled``.
THP_MODES = ("always", "madvise", "never")
#: The modes of ``hugepages-<size>kB/enabled``.
MTHP_MODES = ("always", "inherit", "madvise", "never")
#: The anonymous folio orders x86-64 offers knobs for: 16 kB (order 2) to 2 MB (order 9);
#: order 1 is not allowed for anonymous memory (THP_ORDERS_ALL_ANON).
ANON_ORDERS = tuple(range(2, HPAGE_PMD_ORDER + 1))


def size_kb(order: int) -> int:
    """The ``<size>`` of the ``hugepages-<size>kB`` directory of ``order``."""
    return (1 << (order + PAGE_SHIFT)) // 1024


def _default_per_order() -> dict[int, str]:
    return {order: "inherit" if order == HPAGE_PMD_ORDER else "never"
            for order in ANON_ORDERS}


class _Knobs(dict[int, str]):
    """``per_order``: a dict that tells its :class:`ThpSettings` when a knob changes, so
    that the fault path can keep the allowed orders cached."""

    __slots__ = ("owner",)

    def __init__(self, knobs: Any = (), owner: ThpSettings | None = None) -> None:
        super().__init__(knobs)
        self.owner = owner

    def __setitem__(self, order: int, mode: str) -> None:
        super().__setitem__(order, mode)
        if self.owner is not None:
            self.owner.knobs_changed()

    def update(self, *args: Any, **kwargs: Any) -> None:
        """dict.update(), then the owner recomputes its allowed orders."""
        super().update(*args, **kwargs)
        if self.owner is not None:
            self.owner.knobs_changed()


@dataclass
class ThpSettings:
    """One machine's THP knobs. ``per_order`` maps each order in :data:`ANON_ORDERS` to
    its ``hugepages-<size>kB/enabled`` mode."""

    enabled: str = "madvise"
    per_order: dict[int, str] = field(default_factory=_default_per_order)
    use_zero_page: bool = True

    def __post_init__(self) -> None:
        #: :meth:`pte_orders` for a vma without and with VM_HUGEPAGE, kept current by
        #: every knob write (the anonymous write fault reads it on every fault); not a
        #: dataclass field, so repr, ==, asdict and the constructor ignore it.
        self.fault_orders: dict[bool, tuple[int, ...]] = {}
        #: Whether any vma may get an mTHP folio (the fault's first, cheapest test).
        self.any_pte_order = False
        if self.enabled not in THP_MODES:
            raise ValueError(f"transparent_hugepage/enabled must be one of "
                             f"{', '.join(THP_MODES)}, not {self.enabled!r}")
        for order, mode in self.per_order.items():
            if order not in ANON_ORDERS:
                raise ValueError(f"no hugepages-*kB knob for order {order}")
            if mode not in MTHP_MODES:
                raise ValueError(f"hugepages-{size_kb(order)}kB/enabled must be one of "
                                 f"{', '.join(MTHP_MODES)}, not {mode!r}")
        self.per_order = _Knobs({**_default_per_order(), **self.per_order}, self)

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name in ("enabled", "per_order"):
            self.knobs_changed()

    def knobs_changed(self) -> None:
        """Recompute :attr:`fault_orders` (a knob was written)."""
        knobs = self.__dict__.get("per_order")
        orders: dict[bool, tuple[int, ...]] = {}
        if isinstance(knobs, _Knobs):  # not while __init__ is still setting fields
            for hugepage in (False, True):
                orders[hugepage] = tuple(o for o in self.allowed_orders(hugepage)
                                         if o < HPAGE_PMD_ORDER)
        super().__setattr__("fault_orders", orders)
        super().__setattr__("any_pte_order", bool(orders.get(True)))

    def __reduce__(self) -> tuple[type[ThpSettings], tuple[str, dict[int, str], bool]]:
        """Pickle and copy as the constructor call (the knob dict points back here)."""
        return (ThpSettings, (self.enabled, dict(self.per_order), self.use_zero_page))

    def pte_orders(self, hugepage: bool) -> tuple[int, ...]:
        """:meth:`allowed_orders` below the PMD order, largest first: the mTHP sizes
        alloc_anon_folio() may try (thp_vma_allowable_orders(..., BIT(PMD_ORDER) - 1))."""
        orders: tuple[int, ...] = self.fault_orders[hugepage]
        return orders

    def mode(self, order: int) -> str:
        """The effective mode of ``order``: its own knob, or the top-level one for
        ``inherit``."""
        mode = self.per_order[order]
        return self.enabled if mode == "inherit" else mode

    def allowed_orders(self, hugepage: bool) -> list[int]:
        """The large orders a fault in a vma may try, largest first (thp_vma_allowable_orders()
        for an anonymous vma: ``always`` orders, plus ``madvise`` ones when the vma has
        VM_HUGEPAGE). The caller checks VM_NOHUGEPAGE and the vma's bounds."""
        wanted = ("always", "madvise") if hugepage else ("always",)
        return [o for o in reversed(ANON_ORDERS) if self.mode(o) in wanted]


#: The files of ``hugepages-<size>kB/stats`` on 6.18, in directory order.
MTHP_STAT_NAMES = (
    "anon_fault_alloc", "anon_fault_fallback", "anon_fault_fallback_charge", "swpout",
    "swpout_fallback", "swpin", "swpin_fallback", "swpin_fallback_charge", "shmem_alloc",
    "shmem_fallback", "shmem_fallback_charge", "split", "split_failed", "split_deferred",
    "nr_anon", "nr_anon_partially_mapped", "zswpout", "anon_fault_declined",
)


class MthpStats:
    """The per-size counters under ``hugepages-<size>kB/stats`` (count_mthp_stat() and
    mod_mthp_stat() in mm/huge_memory.c): ``stats[order][name]``, every name of
    :data:`MTHP_STAT_NAMES` for every order of :data:`ANON_ORDERS`."""

    __slots__ = ("stats",)

    def __init__(self) -> None:
        self.stats = {order: dict.fromkeys(MTHP_STAT_NAMES, 0) for order in ANON_ORDERS}

    def count(self, order: int, name: str, delta: int = 1) -> None:
        """count_mthp_stat() / mod_mthp_stat() for one size."""
        self.stats[order][name] += delta
