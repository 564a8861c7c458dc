"""The four mapcount designs under PMD-mapped THP driven through the real syscall paths
(do_huge_pmd_anonymous_page(), copy_huge_pmd(), do_huge_pmd_wp_page(),
__split_huge_pmd_locked(), zap_huge_pmd(), madvise_free_huge_pmd()): after every step
each design's counters agree with the brute-force truth (mmcore.folio_truth) wherever
the design claims exactness (mmcore.testing.folio_hand.claim_violations), and the core's
own counts agree with the page tables. Hypothesis draws the sequences; the examples pin
the three states named in issue 11: PMD-mapped, PMD-split, fork-shared."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mmcore import Machine
from mmcore.constants import (
    MADV_DONTNEED,
    MADV_FREE,
    MADV_HUGEPAGE,
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    PAGE_SIZE,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
)
from mmcore.errors import SegmentationFault
from mmcore.folio import Folio
from mmcore.folio_truth import check_core, folio_truth
from mmcore.huge_memory import HPAGE_PMD_NR, HPAGE_PMD_SIZE
from mmcore.process import Process
from mmcore.testing.folio_hand import claim_violations

DESIGNS = ["per_page", "no_page_mapcount", "per_folio_tuple", "total_mapped_pages"]
H = HPAGE_PMD_SIZE
P = PAGE_SIZE
RW = PROT_READ | PROT_WRITE
OPS = ("write", "fork", "exit", "munmap", "dontneed", "mprotect", "free")
#: At most this many processes: a third mm is what makes the mm-id slots inexact.
MAX_PROCS = 4

Op = tuple[str, int, int, int]
STEPS = st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, MAX_PROCS - 1),
                           st.integers(0, HPAGE_PMD_NR - 1), st.integers(1, HPAGE_PMD_NR)),
                 max_size=10)
PMD_MAPPED: list[Op] = [("write", 0, 0, 1), ("free", 0, 0, HPAGE_PMD_NR)]
PMD_SPLIT: list[Op] = [("write", 0, 0, 1), ("mprotect", 0, 100, 8), ("dontneed", 0, 0, 4)]
FORK_SHARED: list[Op] = [("write", 0, 3, 1), ("fork", 0, 0, 1), ("fork", 0, 0, 1),
                         ("write", 1, 7, 1), ("exit", 1, 0, 1), ("munmap", 0, 0, 512),
                         ("write", 1, 9, 1)]


def _thp_area(p: Process) -> int:
    """A 2 MiB-aligned MADV_HUGEPAGE private anonymous vma between PROT_NONE guards."""
    base = p.mmap(0, 3 * H, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS)
    addr = (base + H) & ~(H - 1)
    p.mmap(addr, H, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
    p.madvise(addr, H, MADV_HUGEPAGE)
    return addr


def _apply(procs: list[Process], a: int, op: str, who: int, index: int, n: int) -> None:
    """One step by process number ``who`` (modulo the live ones) on pages
    [index, index + n) of the region (clipped to it)."""
    p = procs[who % len(procs)]
    start, length = a + index * P, min(n, HPAGE_PMD_NR - index) * P
    try:
        if op == "write":
            p.write(start, b"w")
        elif op == "fork" and len(procs) < MAX_PROCS:
            procs.append(p.fork())
        elif op == "exit" and len(procs) > 1 and p is not procs[0]:
            p.exit(0)
            procs[0].waitpid(p.pid)
            procs.remove(p)
        elif op == "munmap":
            p.munmap(start, length)
        elif op == "dontneed":
            p.madvise(start, length, MADV_DONTNEED)
        elif op == "mprotect":
            p.mprotect(start, length, PROT_READ)
        elif op == "free":
            p.madvise(start, length, MADV_FREE)
    except (SegmentationFault, OSError):
        pass  # a write to an unmapped or read-only page, advice on a hole: no change


def _check(m: Machine, peak_mms: dict[Folio, int]) -> list[str]:
    truth = folio_truth(m)
    for folio, t in truth.items():
        peak_mms[folio] = max(peak_mms.get(folio, 0), len(t.by_mm))
    return check_core(m, truth) + claim_violations(m, truth, peak_mms)


@pytest.mark.parametrize("design", DESIGNS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=STEPS)
@example(ops=PMD_MAPPED)
@example(ops=PMD_SPLIT)
@example(ops=FORK_SHARED)
def test_every_design_is_exact_where_it_claims_to_be_under_pmd_thp(
        design: str, ops: list[Op]) -> None:
    m = Machine(mapcount=design, ram_pages=1 << 13)
    p = m.spawn()
    a = _thp_area(p)
    procs = [p]
    peak_mms: dict[Folio, int] = {}
    for op in ops:
        _apply(procs, a, *op)
        assert _check(m, peak_mms) == [], op


@pytest.mark.parametrize("design", DESIGNS)
@pytest.mark.parametrize("ops, pmds, shared", [(PMD_MAPPED, 1, False),
                                                (PMD_SPLIT, 0, False),
                                                (FORK_SHARED[:4], 2, True)])
def test_the_examples_reach_the_states_they_name(design: str, ops: list[Op], pmds: int,
                                                 shared: bool) -> None:
    """The examples above are what they say: a THP mapped by one PMD, one whose PMD was
    split, one a fork child still maps by its PMD (so that the property test cannot
    pass by never building a THP)."""
    m = Machine(mapcount=design, ram_pages=1 << 13)
    p = m.spawn()
    a = _thp_area(p)
    procs = [p]
    for op in ops:
        _apply(procs, a, *op)
    truth = folio_truth(m)
    folio = next(f for f in truth if f.nr_pages == HPAGE_PMD_NR)
    assert folio.entire_mapcount == pmds and truth[folio].shared == shared
