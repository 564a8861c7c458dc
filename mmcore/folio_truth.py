"""The brute-force truth about large folios' mappings, and a design's answers next to it.

:func:`folio_truth` walks every live mm's page table once and counts, for each page of a
large folio, the ptes that map it (a PMD mapping is 512 ptes carrying ``_PAGE_PSE`` in the
flat table, so it counts once for each of its pages), and, for each folio, which mms map
it and how often. From that it derives what an exact kernel would report: each page's
mapcount (/proc/kpagecount), PM_MMAP_EXCLUSIVE (the page is mapped exactly once), each
mm's Pss and Uss over its large-folio pages, and AnonPages/Mapped (pages mapped at least
once). :func:`accuracy` asks the machine's mapcount design the same questions the kernel
asks its counters and compares the answers with those (:func:`accuracies` does so over
every folio and over the exclusive ones at once). Order-0 pages are left out on
both sides: every design counts them exactly.

None of this runs in a simulation's normal path; the mapcount study
(:mod:`mmcore.experiments.mapcount_study`) calls it between ops.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields
from itertools import chain, compress, groupby
from operator import attrgetter, countOf
from typing import TYPE_CHECKING

from .constants import PAGE_SIZE
from .page import PG_ZERO
from .pagetable import PFN_SHIFT, PTE_PRESENT_BITS

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .folio import Folio
    from .machine import Machine
    from .mm import Mm

#: _PAGE_PSE: the bit that marks the 512 flat ptes of a PMD mapping (docs/folios.md).
PAGE_PSE = 1 << 7
#: PSS_SHIFT of fs/proc/task_mmu.c: Pss is summed in fixed point, as the kernel does.
PSS_SHIFT = 12

#: pte_pfn() as a C-level callable (``PFN_SHIFT.__rrshift__(pte)`` is ``pte >> PFN_SHIFT``),
#: for map() over every pte without a Python call per pte.
_pfn_of = PFN_SHIFT.__rrshift__


def _pfns(ptes: Iterable[int]) -> map[int]:
    """pte_pfn() of each pte."""
    return map(_pfn_of, ptes)


@dataclass
class FolioTruth:
    """What a brute-force count over every page table says about one large folio."""

    folio: Folio
    #: pfn -> exact number of mappings of that page (ptes plus PMDs).
    page_mapcount: dict[int, int] = field(default_factory=dict)
    #: mm -> mappings of the folio's pages in that mm (pte or PMD-covered entries).
    by_mm: Counter[Mm] = field(default_factory=Counter)
    #: mm -> the present ptes of that mm that map the folio's pages, in address order (a
    #: PMD mapping as its 512 flat ptes, each carrying ``_PAGE_PSE``); mms in pid order.
    ptes: dict[Mm, list[int]] = field(default_factory=dict)

    @property
    def mapped_pages(self) -> int:
        """Pages mapped at least once (what exact AnonPages/Mapped count)."""
        return len(self.page_mapcount) - countOf(self.page_mapcount.values(), 0)

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

    def all_ptes(self) -> Iterable[int]:
        """Every present pte that maps one of the folio's pages, mm by mm."""
        return chain.from_iterable(self.ptes.values())


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
    """Brute force over every live mm's page table: each large folio's exact mappings.

    Every pte of every PTE page is looked at, in C-level iteration (this runs after each
    op of the mapcount study): the present ones (pte_present(); a swap pte's slot can
    equal a large folio's pfn) are split into runs of ptes whose pfns belong to the same
    large folio, or to none, and each run is added to its folio's ptes for that mm.
    """
    truth = {f: FolioTruth(f) for f in large_folios(m)}
    found = list(truth.values())
    # pfn -> the index in ``found`` of its folio (an int: groupby() compares the keys)
    owner = {pfn: i for i, t in enumerate(found) for pfn in map(attrgetter("pfn"), t.folio.pages)}
    for proc in m.live_processes():
        mm = proc.mm
        tables = mm.pgtable.tables
        for key in sorted(tables):
            table = tables[key]
            present = list(compress(table, map(PTE_PRESENT_BITS.__and__, table)))
            start = 0  # where the run starts in ``present``
            for i, run in groupby(map(owner.get, _pfns(present))):
                end = start + len(list(run))
                if i is not None:
                    found[i].ptes.setdefault(mm, []).extend(present[start:end])
                start = end
    for f, t in truth.items():
        t.page_mapcount = dict.fromkeys(map(attrgetter("pfn"), f.pages), 0)
        t.page_mapcount.update(Counter(_pfns(t.all_ptes())))  # only the folio's pfns
        t.by_mm = Counter({mm: len(ptes) for mm, ptes in t.ptes.items()})
    return truth


def check_core(m: Machine, truth: dict[Folio, FolioTruth]) -> list[str]:
    """Where the core's own counts (``page.mapcount`` per pte, ``folio.entire_mapcount``
    per PMD) disagree with the page tables: an empty list when the core is right."""
    problems = []
    for folio, t in truth.items():
        pmd_entries = countOf(map(PAGE_PSE.__and__, t.all_ptes()), PAGE_PSE)
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
        for name in _ACCURACY_FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

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


#: Accuracy's field names (add() runs for every folio of every sample; fields() is slow).
_ACCURACY_FIELDS = tuple(f.name for f in fields(Accuracy))


def _pss(mapcount: int) -> int:
    """One page's share of Pss in PSS_SHIFT fixed point (smaps_page_accumulate())."""
    return (PAGE_SIZE << PSS_SHIFT) // max(mapcount, 1)


@dataclass
class _FolioSample:
    """One large folio's part of a sample: the figures it adds, and what it adds to each
    mm's Pss and Uss (exact, reported), kept apart because a mm's Pss is rounded and its
    errors taken over all its folios."""

    figures: Accuracy
    #: (mm, Pss exact, Pss reported, Uss exact, Uss reported); Pss in PSS_SHIFT fixed point.
    by_mm: list[tuple[Mm, int, int, int, int]]


def _folio_sample(m: Machine, t: FolioTruth) -> _FolioSample:
    """What one large folio adds to a sample (see :func:`accuracy`)."""
    folio = t.folio
    a = Accuracy()
    exact_mapped = t.mapped_pages
    reported_mapped = m.mapcount_mapped_pages(folio) if t.by_mm else 0
    if folio.head.is_anon:
        a.anon_pages += exact_mapped
        a.anon_pages_err += abs(reported_mapped - exact_mapped)
    else:
        a.mapped += exact_mapped
        a.mapped_err += abs(reported_mapped - exact_mapped)
    if not t.by_mm:
        return _FolioSample(a, [])
    maybe_shared = m.mapcount_maybe_shared(folio)
    # pfn -> mappings of the page that are part of a PMD (its other mappings are ptes)
    on_pmd = Counter(_pfns(filter(PAGE_PSE.__and__, t.all_ptes())))
    # Per mapped page, what each of its mappings adds: Pss shares and Uss bytes, exact
    # and reported.
    pss_t: dict[int, int] = {}
    pss_r: dict[int, int] = {}
    uss_t: dict[int, int] = {}
    uss_r: dict[int, int] = {}
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
        a.ptes += exact
        pss_t[pfn], pss_r[pfn] = _pss(exact), _pss(got)
        uss_t[pfn] = PAGE_SIZE if exact == 1 else 0
        uss_r[pfn] = PAGE_SIZE if excl else 0
        # PM_MMAP_EXCLUSIVE of each mapping: shown as a pte it is the design's page
        # answer, as part of a PMD its folio answer
        pmds = on_pmd[pfn]
        if exact == 1:
            a.exclusive_false_shared += (exact - pmds) * (not excl) + pmds * maybe_shared
        else:
            a.exclusive_false_exclusive += (exact - pmds) * excl + pmds * (not maybe_shared)
    by_mm = []
    for mm, ptes in t.ptes.items():
        pfns = list(_pfns(ptes))
        by_mm.append((mm, sum(map(pss_t.__getitem__, pfns)), sum(map(pss_r.__getitem__, pfns)),
                      sum(map(uss_t.__getitem__, pfns)), sum(map(uss_r.__getitem__, pfns))))
    return _FolioSample(a, by_mm)


class _Sample:
    """The folio samples of one sample, added up into an :class:`Accuracy`."""

    def __init__(self) -> None:
        self.figures = Accuracy(samples=1)
        self.pss_true: Counter[Mm] = Counter()
        self.pss_rep: Counter[Mm] = Counter()
        self.uss_true: Counter[Mm] = Counter()
        self.uss_rep: Counter[Mm] = Counter()

    def add(self, s: _FolioSample) -> None:
        """Add one folio's part."""
        self.figures.add(s.figures)
        for mm, pss_t, pss_r, uss_t, uss_r in s.by_mm:
            self.pss_true[mm] += pss_t
            self.pss_rep[mm] += pss_r
            self.uss_true[mm] += uss_t
            self.uss_rep[mm] += uss_r

    def accuracy(self) -> Accuracy:
        """The sample's figures, each mm's Pss and Uss (and their errors) added in."""
        a = self.figures
        for mm in self.pss_true:
            a.pss += self.pss_true[mm] >> PSS_SHIFT
            a.pss_err += abs(self.pss_rep[mm] - self.pss_true[mm]) >> PSS_SHIFT
            a.uss += self.uss_true[mm]
            a.uss_err += abs(self.uss_rep[mm] - self.uss_true[mm])
        return a


def accuracy(m: Machine, truth: dict[Folio, FolioTruth]) -> Accuracy:
    """One sample: every /proc value the design computes for large folios, against the
    exact one. The design's side follows the kernel's readers: kpagecount and Pss use
    mapcount_page (folio_precise_page_mapcount() or folio_average_page_mapcount()),
    PM_MMAP_EXCLUSIVE is the folio's ``not maybe_shared`` for a PMD-mapped page and
    mapcount_page_exclusive for a pte-mapped one (pte_to_pagemap_entry(),
    pagemap_pmd_range_thp()), Uss counts pages mapcount_page_exclusive calls private
    (smaps_account()), AnonPages/Mapped add mapcount_mapped_pages (__folio_mod_stat())."""
    total = _Sample()
    for t in truth.values():
        total.add(_folio_sample(m, t))
    return total.accuracy()


def accuracies(m: Machine, truth: dict[Folio, FolioTruth]) -> tuple[Accuracy, Accuracy]:
    """:func:`accuracy` over every large folio of ``truth`` and over those exactly one mm
    maps (the study's exclusive folios), each folio's figures worked out once."""
    every, exclusive = _Sample(), _Sample()
    for t in truth.values():
        s = _folio_sample(m, t)
        every.add(s)
        if len(t.by_mm) == 1:
            exclusive.add(s)
    return every.accuracy(), exclusive.accuracy()
