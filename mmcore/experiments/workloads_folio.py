"""Large-folio workloads (issue 11): the cases the mapcount designs disagree on.

Each parameter class has a ``thp()`` method giving the THP knobs the workload runs with
(:class:`~mmcore.thp.ThpSettings`; the runner and the mapcount study build the Machine
with them). Heaps are 2 MiB aligned (``BASE``) so that every folio can be naturally
aligned; ``huge`` regions get MADV_HUGEPAGE, as a database or a JVM asks for it.
"""


import random
from collections.abc import Iterator
from dataclasses import dataclass

from dataclasses_json import DataClassJsonMixin

from ..constants import (
    MADV_DONTNEED,
    MADV_HUGEPAGE,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PAGE_SIZE,
)
from ..errors import ConfigError
from ..folio import HPAGE_PMD_ORDER
from ..thp import ANON_ORDERS, ThpSettings
from .ops import Op
from .workloads import BASE, REGION_STRIDE, _mmap, _positive, _write, workload

#: Pages of one PMD-sized THP.
HPAGE_PMD_NR = 1 << HPAGE_PMD_ORDER
#: MADV_COLLAPSE (include/uapi/asm-generic/mman-common.h).
MADV_COLLAPSE = 25


def _madvise(pid: int, addr: int, pages: int, advice: int) -> Op:
    return Op("madvise", pid=pid, addr=addr, length=pages * PAGE_SIZE, advice=advice)


def _check_order(order: int) -> None:
    if order not in ANON_ORDERS:
        raise ConfigError(f"order must be one of {ANON_ORDERS}, not {order}")


def thp_for(order: int) -> ThpSettings:
    """The knobs that give anonymous folios of ``order``: the reference machine's for a
    PMD THP (with MADV_HUGEPAGE), else that mTHP size's knob set to ``always``."""
    if order == HPAGE_PMD_ORDER:
        return ThpSettings()
    return ThpSettings(per_order={order: "always"})


def _ask_huge(pid: int, addr: int, pages: int, order: int) -> Iterator[Op]:
    """MADV_HUGEPAGE over the region when the folios are PMD THPs."""
    if order == HPAGE_PMD_ORDER:
        yield _madvise(pid, addr, pages, MADV_HUGEPAGE)


# --- forking snapshot ------------------------------------------------------------------------


@dataclass
class ForkSnapshotParams(DataClassJsonMixin):
    """A ``hugepages``-THP heap (MADV_HUGEPAGE); ``snapshots`` times a child is forked to
    write the heap out while the parent dirties ``dirty_pct`` % of its pages."""

    hugepages: int = 2
    snapshots: int = 2
    dirty_pct: int = 10
    #: The heap's folio order: 9 (PMD THPs, MADV_HUGEPAGE) or an mTHP size (``always``).
    order: int = HPAGE_PMD_ORDER

    def __post_init__(self) -> None:
        _positive(self, "hugepages", "snapshots")
        _check_order(self.order)
        if not 0 <= self.dirty_pct <= 100:
            raise ConfigError(f"dirty_pct must be 0..100, not {self.dirty_pct}")

    def thp(self) -> ThpSettings:
        """The knobs for ``order`` (:func:`thp_for`)."""
        return thp_for(self.order)


@workload("thp-fork-snapshot", ForkSnapshotParams,
          hurts="mapcount designs without per-page counts: COW reuse after the snapshot "
                "child exits, and the parent's pages shared at folio level")
def thp_fork_snapshot(p: ForkSnapshotParams, rng: random.Random) -> Iterator[Op]:
    """A database-style forking snapshot on a THP heap (Redis BGSAVE).

    The parent faults a MADV_HUGEPAGE heap of ``hugepages`` 2 MiB THPs; each round it
    forks a child that reads the whole heap (the snapshot), dirties a random
    ``dirty_pct`` % of the heap's pages (COW faults on shared THPs), lets the child exit,
    and dirties as many pages again (now exclusive: reuse, if the design can tell).
    Expected: every design copies while the child lives; after it exits the mm-id
    designs reuse (two mms at most), kpagecount and Pss of the average designs err on
    the pages the parent copied.
    """
    pages = p.hugepages * HPAGE_PMD_NR
    yield Op("spawn", pid=1)
    yield _mmap(1, BASE, pages)
    yield from _ask_huge(1, BASE, pages, p.order)
    yield _write(1, BASE, pages, "row")
    dirty = max(1, pages * p.dirty_pct // 100)
    for r in range(p.snapshots):
        child = 2 + r
        yield Op("fork", pid=1, child=child)
        yield Op("read", pid=child, addr=BASE, length=pages * PAGE_SIZE)
        for i in sorted(rng.sample(range(pages), dirty)):
            yield _write(1, BASE + i * PAGE_SIZE, 1, f"v{r}")
        yield Op("exit", pid=child)
        for i in sorted(rng.sample(range(pages), dirty)):
            yield _write(1, BASE + i * PAGE_SIZE, 1, f"w{r}")


# --- mTHP allocator --------------------------------------------------------------------------


@dataclass
class MthpAllocatorParams(DataClassJsonMixin):
    """An arena of ``chunks`` folios of ``order`` (4 = 64 kB mTHP, knob ``always``);
    ``rounds`` of MADV_DONTNEED of ``free_pages`` pages inside random chunks, then a
    refault of half of them; a worker child forked after the fill, freeing the same
    ranges, when ``worker``; a final reclaim of the arena when ``reclaim``."""

    chunks: int = 32
    order: int = 4
    rounds: int = 4
    free_pages: int = 4
    worker: bool = True
    #: Reclaim the arena at the end (large folios are split before swap-out).
    reclaim: bool = True

    def __post_init__(self) -> None:
        _positive(self, "chunks", "rounds", "free_pages")
        _check_order(self.order)
        if self.free_pages >= 1 << self.order:
            raise ConfigError(f"free_pages must be below the folio's {1 << self.order} "
                              f"pages, not {self.free_pages}")

    def thp(self) -> ThpSettings:
        """hugepages-<size>kB/enabled = always for the arena's folio size (with
        MADV_HUGEPAGE never asked, order 9 gives no THP: the arena is for mTHP)."""
        return ThpSettings(per_order={self.order: "always"})


@workload("mthp-allocator", MthpAllocatorParams,
          hurts="designs that cannot tell a partly mapped folio: missed deferred splits, "
                "whole-folio AnonPages")
def mthp_allocator(p: MthpAllocatorParams, rng: random.Random) -> Iterator[Op]:
    """A malloc arena on 64 kB mTHPs returning ranges with MADV_DONTNEED.

    The process faults ``chunks`` naturally aligned mTHP folios (one write each maps the
    whole folio), optionally forks a worker that shares them, then each round frees
    ``free_pages`` pages in the middle of random chunks, in the worker too (partly mapped
    folios: the deferred-split decision), and writes half of them again (order-0
    refaults: the folio's range is no longer empty); at the end the arena is reclaimed
    (each large folio split, then swapped out page by page).
    Expected: with the worker sharing the arena the average designs miss the partial
    maps (28+ mappings of 16 pages average above one) and count whole folios in
    AnonPages; without it they see them.
    """
    nr = 1 << p.order
    pages = p.chunks * nr
    yield Op("spawn", pid=1)
    yield _mmap(1, BASE, pages)
    for c in range(p.chunks):
        yield _write(1, BASE + c * nr * PAGE_SIZE, 1, "arena")
    if p.worker:
        yield Op("fork", pid=1, child=2)
    start = (nr - p.free_pages) // 2
    for _ in range(p.rounds):
        for c in sorted(rng.sample(range(p.chunks), max(1, p.chunks // 4))):
            addr = BASE + (c * nr + start) * PAGE_SIZE
            yield _madvise(1, addr, p.free_pages, MADV_DONTNEED)
            if p.worker:  # the worker runs the same allocator: it frees the range too
                yield _madvise(2, addr, p.free_pages, MADV_DONTNEED)
            yield _write(1, addr, max(1, p.free_pages // 2), "again")
    if p.reclaim:
        yield Op("reclaim", pid=1, addr=BASE, length=pages * PAGE_SIZE)


# --- mremap-heavy growing buffer -------------------------------------------------------------


@dataclass
class MremapBufferParams(DataClassJsonMixin):
    """A MADV_HUGEPAGE buffer of ``hugepages`` THPs grown ``grows`` times by one THP with
    mremap to a new place ``offset_pages`` past a 2 MiB boundary (folios then straddle
    page tables); a child shares it from ``fork_at`` grows on (0: never)."""

    hugepages: int = 1
    grows: int = 3
    offset_pages: int = 16
    fork_at: int = 1
    #: The buffer's folio order: 9 (PMD THPs) or an mTHP size.
    order: int = HPAGE_PMD_ORDER

    def __post_init__(self) -> None:
        _positive(self, "hugepages", "grows")
        _check_order(self.order)
        if not 0 <= self.offset_pages < HPAGE_PMD_NR:
            raise ConfigError(f"offset_pages must be 0..{HPAGE_PMD_NR - 1}, "
                              f"not {self.offset_pages}")

    def thp(self) -> ThpSettings:
        """The knobs for ``order`` (:func:`thp_for`)."""
        return thp_for(self.order)


@workload("thp-mremap-buffer", MremapBufferParams,
          hurts="per_folio_tuple: a folio moved across a page-table boundary counts two "
                "page tables in one mm")
def thp_mremap_buffer(p: MremapBufferParams, rng: random.Random) -> Iterator[Op]:
    """A growing buffer on THP, moved by mremap at every growth (a vector's realloc).

    Each growth mremaps the buffer (MREMAP_MAYMOVE|MREMAP_FIXED) one THP larger to a new
    region, ``offset_pages`` past a 2 MiB boundary, so PMD mappings are split and the
    folios' ptes straddle two page tables; the new tail is written; a child forked at
    growth ``fork_at`` keeps the old buffer and writes a page of it.
    Expected: per_folio_tuple counts two page tables for one mm's folio (false
    "shared"); the other designs are unaffected by where the folio sits.
    """
    pages = p.hugepages * HPAGE_PMD_NR
    yield Op("spawn", pid=1)
    yield _mmap(1, BASE, pages)
    yield from _ask_huge(1, BASE, pages, p.order)
    yield _write(1, BASE, pages, "buf")
    addr = BASE
    for g in range(1, p.grows + 1):
        if g == p.fork_at:
            yield Op("fork", pid=1, child=2)
            yield _write(2, addr + rng.randrange(pages) * PAGE_SIZE, 1, "kid")
        new = BASE + g * REGION_STRIDE + p.offset_pages * PAGE_SIZE
        yield Op("mremap", pid=1, addr=addr, length=pages * PAGE_SIZE,
                 new_len=(pages + HPAGE_PMD_NR) * PAGE_SIZE,
                 flags=MREMAP_MAYMOVE | MREMAP_FIXED, new_addr=new)
        addr = new
        yield _write(1, addr + pages * PAGE_SIZE, HPAGE_PMD_NR, f"grow{g}")
        pages += HPAGE_PMD_NR


# --- khugepaged collapse after fragmentation -------------------------------------------------


@dataclass
class CollapseParams(DataClassJsonMixin):
    """``hugepages`` 2 MiB ranges faulted as small pages, fragmented by ``holes``
    MADV_DONTNEED holes of ``hole_pages`` each (half refaulted), shared with a child,
    then collapsed with MADV_COLLAPSE and partly unmapped in the child."""

    hugepages: int = 2
    holes: int = 8
    hole_pages: int = 8

    def __post_init__(self) -> None:
        _positive(self, "hugepages", "holes", "hole_pages")

    def thp(self) -> ThpSettings:
        """The reference machine's knobs (MADV_COLLAPSE ignores ``enabled``)."""
        return ThpSettings()


@workload("khugepaged-collapse", CollapseParams,
          hurts="every design: a collapsed THP shared after fork, then partly unmapped")
def khugepaged_collapse(p: CollapseParams, rng: random.Random) -> Iterator[Op]:
    """khugepaged's job after a fragmenting phase (MADV_COLLAPSE does it synchronously).

    The region is faulted before MADV_HUGEPAGE (order-0 pages), fragmented by
    MADV_DONTNEED holes and partial refaults, marked MADV_HUGEPAGE and collapsed into
    THPs (madvise_collapse()); a child forked afterwards shares them and unmaps a hole
    of its own.
    Expected: the collapsed THP is exclusive and exact in every design until the fork;
    the child's hole is a partial map none of the designs without per-page counts sees.
    """
    pages = p.hugepages * HPAGE_PMD_NR
    yield Op("spawn", pid=1)
    yield _mmap(1, BASE, pages)
    yield _write(1, BASE, pages, "small")
    for i in sorted(rng.sample(range(pages // p.hole_pages), min(p.holes,
                                                                pages // p.hole_pages))):
        addr = BASE + i * p.hole_pages * PAGE_SIZE
        yield _madvise(1, addr, p.hole_pages, MADV_DONTNEED)
        yield _write(1, addr, p.hole_pages // 2 or 1, "refault")
    yield _madvise(1, BASE, pages, MADV_HUGEPAGE)
    yield _madvise(1, BASE, pages, MADV_COLLAPSE)
    yield Op("fork", pid=1, child=2)
    yield _madvise(2, BASE + (HPAGE_PMD_NR // 2) * PAGE_SIZE, p.hole_pages, MADV_DONTNEED)
    yield _write(1, BASE, 1, "after")


# --- one folio shared by 64 children ---------------------------------------------------------


@dataclass
class SharedFolioParams(DataClassJsonMixin):
    """One folio of ``order`` (9: a PMD THP via MADV_HUGEPAGE; smaller: that mTHP size
    set to ``always``) shared by ``children`` forked children; every second child then
    unmaps ``unmap_pct`` % of it; all children exit at the end."""

    order: int = HPAGE_PMD_ORDER
    children: int = 64
    unmap_pct: int = 50

    def __post_init__(self) -> None:
        _positive(self, "children")
        _check_order(self.order)
        if not 0 < self.unmap_pct < 100:
            raise ConfigError(f"unmap_pct must be 1..99, not {self.unmap_pct}")

    def thp(self) -> ThpSettings:
        """The knobs for ``order`` (:func:`thp_for`)."""
        return thp_for(self.order)


@workload("folio-shared-64", SharedFolioParams,
          hurts="mm-id slots: more than two mms make 'maybe shared' stick; the average "
                "mapcount hides the partial unmaps")
def folio_shared_64(p: SharedFolioParams, rng: random.Random) -> Iterator[Op]:
    """A large folio shared by 64 forked children, then partly unmapped in half of them.

    The parent faults one folio, forks ``children`` children; every second child
    MADV_DONTNEEDs the first ``unmap_pct`` % of the folio; then the parent does the same
    (so those pages are mapped only by the other children: the folio is still fully
    mapped), the children that kept the range exit one by one (now those pages are
    unmapped everywhere: partly mapped), and the parent writes a page (COW reuse once it
    is the last mm, if the design can tell).
    Expected: the mm-id slots fill at the second mm, so "maybe shared" stays set until
    the folio is exclusive again (or sticks); the average designs miss the partial map
    and report the folio average to kpagecount.
    """
    nr = 1 << p.order
    yield Op("spawn", pid=1)
    yield _mmap(1, BASE, nr)
    yield from _ask_huge(1, BASE, nr, p.order)
    yield _write(1, BASE, 1, "folio")
    kids = list(range(2, 2 + p.children))
    for k in kids:
        yield Op("fork", pid=1, child=k)
    cut = max(1, nr * p.unmap_pct // 100)
    for k in kids[::2]:
        yield _madvise(k, BASE, cut, MADV_DONTNEED)
    yield _madvise(1, BASE, cut, MADV_DONTNEED)
    for k in kids[1::2]:
        yield Op("exit", pid=k)
    yield _write(1, BASE + (nr - 1) * PAGE_SIZE, 1, "last")
    for k in kids[::2]:
        yield Op("exit", pid=k)
    yield _write(1, BASE + (nr - 2) * PAGE_SIZE, 1, "alone")
