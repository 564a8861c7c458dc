"""The brute-force truth about large folios' mappings, and a design's answers next to it.

:func:`folio_truth` walks every live mm's page table once and counts, for each page of a
large folio, the ptes that map it (a PMD mapping is 512 ptes carrying ``_PAGE_PSE`` in the
flat table, so it counts once for each of its pages), and, for each folio, which mms map
it and how often. From that it derives what an exact kernel would report: each page's
mapcount (/proc/kpagecount), PM_MMAP_EXCLUSIVE (the page is mapped exactly once), each
mm's Pss and Uss over its large-folio pages, and AnonPages/Mapped (pages mapped at least
once). :func:`accuracy` asks the machine's mapcount design the same questions the kernel
asks its counters and compares the answers with those. Order-0 pages are left out on
both sides: every design counts them exactly.

None of this runs in a simulation's normal path; the mapcount study
(:mod:`mmcore.experiments.mapcount_study`) calls it between ops.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields
from itertools import groupby
from operator import itemgetter
from typing import TYPE_CHECKING

from .constants import PAGE_SIZE
from .page import PG_ZERO
from .pagetable import pte_pfn, pte_present

if TYPE_CHECKING:
    from .folio import Folio
    from .machine import Machine
    from .mm import Mm

#: _PAGE_PSE: the bit that marks the 512 flat ptes of a PMD mapping (docs/folios.md).
PAGE_PSE = 1 << 7
#: PSS_SHIFT of fs/proc/task_mmu.c: Pss is summed in fixed point, as the kernel does.
PSS_SHIFT = 12


#: One present pte of a large folio's page: (mm, virtual page number, pfn, part of a PMD
#: mapping).
Mapping = tuple["Mm", int, int, bool]


@dataclass
class FolioTruth:
    """What a brute-force count over every page table says about one large folio."""

    folio: Folio
    #: pfn -> exact number of mappings of that page (ptes plus PMDs).
    page_mapcount: dict[int, int] = field(default_factory=dict)
    #: mm -> mappings of the folio's pages in that mm (pte or PMD-covered entries).
    by_mm: Counter[Mm] = field(default_factory=Counter)
    mappings: list[Mapping] = field(default_factory=list)

    @property
    def mapped_pages(self) -> int:
        """Pages mapped at least once (what exact AnonPages/Mapped count)."""
        return sum(1 for n in self.page_mapcount.values() if n)

    @property
    def shared(self) -> bool:
        """More than one mm maps the folio."""
        return len(self.by_mm) > 1

    def exclusive_to(self, mm: Mm) -> bool:
        """Every mapping of the folio is in ``mm``."""
        return bool(self.by_mm) and set(self.by_mm) == {mm}

    @property
    def partially_mapped(self) -> bool:
        """Some pages are mapped and some are not."""
        return 0 < self.mapped_pages < self.folio.nr_pages


def large_folios(m: Machine) -> list[Folio]:
    """Every allocated large folio of the machine except a huge zero page, in pfn order."""
    out: list[Folio] = []
    seen: set[int] = set()
    for page in m.pages_in_use():
        folio = page.folio
        if folio is not None and id(folio) not in seen and not folio.head.flags & PG_ZERO:
            seen.add(id(folio))
            out.append(folio)
    return out


def folio_truth(m: Machine) -> dict[Folio, FolioTruth]:
    """Brute force over every live mm's page table: each large folio's exact mappings."""
    truth = {f: FolioTruth(f) for f in large_folios(m)}
    # pfn -> its folio's mappings (the hot loop below touches every pte of every mm)
    by_pfn = {p.pfn: t.mappings for f, t in truth.items() for p in f.pages}
    for proc in m.live_processes():
        mm = proc.mm
        for vpn, pte in mm.pgtable.items():
            pfn = pte_pfn(pte)
            found = by_pfn.get(pfn)
            if found is not None and pte_present(pte):
                found.append((mm, vpn, pfn, bool(pte & PAGE_PSE)))
    for f, t in truth.items():
        counts = Counter(x[2] for x in t.mappings)
        t.page_mapcount = {p.pfn: counts[p.pfn] for p in f.pages}
        t.by_mm = Counter(x[0] for x in t.mappings)
    return truth


def check_core(m: Machine, truth: dict[Folio, FolioTruth]) -> list[str]:
    """Where the core's own counts (``page.mapcount`` per pte, ``folio.entire_mapcount``
    per PMD) disagree with the page tables: an empty list when the core is right."""
    problems = []
    for folio, t in truth.items():
        pmd_entries = sum(1 for x in t.mappings if x[3])
        if pmd_entries != folio.entire_mapcount * folio.nr_pages:
            problems.append(f"{folio!r}: {pmd_entries} PMD-mapped entries for "
                            f"entire_mapcount {folio.entire_mapcount}")
        for page in folio.pages:
            exact = t.page_mapcount[page.pfn] - folio.entire_mapcount
            if exact != page.mapcount:
                problems.append(f"{page!r}: mapcount {page.mapcount}, page tables {exact}")
    return problems


@dataclass
class Accuracy:
    """Reported values against the truth, added up over every sample of a run.

    Counts are of large-folio pages (``pages``: mapped pages examined, ``ptes``: mappings
    examined for PM_MMAP_EXCLUSIVE); Pss and Uss are in bytes summed over mms; AnonPages
    and Mapped in pages. ``*_err`` is the sum of absolute differences.
    """

    samples: int = 0
    pages: int = 0
    kpagecount_wrong: int = 0
    kpagecount_err: int = 0
    ptes: int = 0
    exclusive_false_shared: int = 0
    exclusive_false_exclusive: int = 0
    pss: int = 0
    pss_err: int = 0
    uss: int = 0
    uss_err: int = 0
    anon_pages: int = 0
    anon_pages_err: int = 0
    mapped: int = 0
    mapped_err: int = 0

    def add(self, other: Accuracy) -> None:
        """Add another sample's (or run's) figures to these."""
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def errors(self) -> dict[str, float]:
        """Relative errors: wrong kpagecounts per mapped page, wrong PM_MMAP_EXCLUSIVE
        bits per mapping (false shared, false exclusive), and |reported - exact| / exact
        for Pss, Uss, AnonPages and Mapped (0 where the exact figure is 0)."""
        def ratio(a: int, b: int) -> float:
            return round(a / b, 4) if b else 0.0
        return {
            "kpagecount": ratio(self.kpagecount_wrong, self.pages),
            "kpagecount_mean_abs": ratio(self.kpagecount_err, self.pages),
            "pm_exclusive_false_shared": ratio(self.exclusive_false_shared, self.ptes),
            "pm_exclusive_false_exclusive": ratio(self.exclusive_false_exclusive, self.ptes),
            "pss": ratio(self.pss_err, self.pss),
            "uss": ratio(self.uss_err, self.uss),
            "anon_pages": ratio(self.anon_pages_err, self.anon_pages),
            "mapped": ratio(self.mapped_err, self.mapped),
        }


def _pss(mapcount: int) -> int:
    """One page's share of Pss in PSS_SHIFT fixed point (smaps_page_accumulate())."""
    return (PAGE_SIZE << PSS_SHIFT) // max(mapcount, 1)


def accuracy(m: Machine, truth: dict[Folio, FolioTruth]) -> Accuracy:
    """One sample: every /proc value the design computes for large folios, against the
    exact one. The design's side follows the kernel's readers: kpagecount and Pss use
    mapcount_page (folio_precise_page_mapcount() or folio_average_page_mapcount()),
    PM_MMAP_EXCLUSIVE is the folio's ``not maybe_shared`` for a PMD-mapped page and
    mapcount_page_exclusive for a pte-mapped one (pte_to_pagemap_entry(),
    pagemap_pmd_range_thp()), Uss counts pages mapcount_page_exclusive calls private
    (smaps_account()), AnonPages/Mapped add mapcount_mapped_pages (__folio_mod_stat())."""
    a = Accuracy(samples=1)
    pss_true: Counter[Mm] = Counter()
    pss_rep: Counter[Mm] = Counter()
    uss_true: Counter[Mm] = Counter()
    uss_rep: Counter[Mm] = Counter()
    for folio, t in truth.items():
        anon = folio.head.is_anon
        exact_mapped = t.mapped_pages
        reported_mapped = m.mapcount_mapped_pages(folio) if t.by_mm else 0
        if anon:
            a.anon_pages += exact_mapped
            a.anon_pages_err += abs(reported_mapped - exact_mapped)
        else:
            a.mapped += exact_mapped
            a.mapped_err += abs(reported_mapped - exact_mapped)
        if not t.by_mm:
            continue
        maybe_shared = m.mapcount_maybe_shared(folio)
        # Per mapped page, what each of its mappings adds: Pss shares (exact, reported),
        # Uss bytes (exact, reported), and whether PM_MMAP_EXCLUSIVE is wrong, shown
        # as a pte (the design's page answer) or as part of a PMD (its folio answer).
        pss_t: dict[int, int] = {}
        pss_r: dict[int, int] = {}
        uss_t: dict[int, int] = {}
        uss_r: dict[int, int] = {}
        wrong_pte: dict[int, tuple[bool, bool]] = {}
        wrong_pmd: dict[int, tuple[bool, bool]] = {}
        for page in folio.pages:
            pfn = page.pfn
            exact = t.page_mapcount[pfn]
            if not exact:
                continue
            got = m.mapcount_page(folio, page)
            excl = m.mapcount_page_exclusive(folio, page)
            a.pages += 1
            a.kpagecount_wrong += got != exact
            a.kpagecount_err += abs(got - exact)
            pss_t[pfn], pss_r[pfn] = _pss(exact), _pss(got)
            uss_t[pfn] = PAGE_SIZE if exact == 1 else 0
            uss_r[pfn] = PAGE_SIZE if excl else 0
            # (false shared, false exclusive)
            wrong_pte[pfn] = (exact == 1 and not excl, exact > 1 and excl)
            wrong_pmd[pfn] = (exact == 1 and maybe_shared, exact > 1 and not maybe_shared)
        # the mappings come mm by mm (folio_truth() walks one page table at a time)
        for mm, group in groupby(t.mappings, key=itemgetter(0)):
            rows = list(group)
            pfns = [x[2] for x in rows]
            a.ptes += len(pfns)
            pss_true[mm] += sum(map(pss_t.__getitem__, pfns))
            pss_rep[mm] += sum(map(pss_r.__getitem__, pfns))
            uss_true[mm] += sum(map(uss_t.__getitem__, pfns))
            uss_rep[mm] += sum(map(uss_r.__getitem__, pfns))
            for x in rows:
                fs, fe = (wrong_pmd if x[3] else wrong_pte)[x[2]]
                a.exclusive_false_shared += fs
                a.exclusive_false_exclusive += fe
    for mm in pss_true:
        a.pss += pss_true[mm] >> PSS_SHIFT
        a.pss_err += abs(pss_rep[mm] - pss_true[mm]) >> PSS_SHIFT
        a.uss += uss_true[mm]
        a.uss_err += abs(uss_rep[mm] - uss_true[mm])
    return a

