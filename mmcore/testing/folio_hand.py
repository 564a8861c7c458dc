"""Large folios mapped by hand: a small driver of a Machine's mapcount hooks, and the
exactness claims of each mapcount design checked against the brute-force truth.

:class:`HandFolios` allocates folios with ``m.physmem.alloc_folio`` and maps, forks, COWs
and unmaps them by editing page tables and the core's exact counters itself, calling the
mapcount design where the core does (``mapcount_add`` after mapping, ``mapcount_remove``
after unmapping, ``mapcount_exclusive_to`` at a COW fault, ``mapcount_partially_mapped``
after an unmap). It does what the kernel paths do to the counters (do_anonymous_page()
with a large folio, a PMD fault, copy_pte_range()/copy_huge_pmd(), zap_pte_range(),
__split_huge_pmd_locked(), wp_page_copy()) and nothing else: no rmap scheme hook runs
(``page.mapping`` stays None), so it tests the mapcount designs alone, whatever the core
models of large folios. The property tests and the conformance kit use it; the mapcount
study uses the real core's workloads.

:func:`claim_violations` lists where a design's answers break what it claims to know
exactly (docs/schemes.md, "The mapcount designs").
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from ..constants import MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PAGE_SIZE, PROT_READ, PROT_WRITE
from ..folio import HPAGE_PMD_ORDER, Folio
from ..folio_truth import PAGE_PSE, FolioTruth, check_core, folio_truth
from ..machine import Machine
from ..mm import Mm
from ..page import PG_ANON, Page
from ..pagetable import mk_pte, pte_pfn, pte_present, pte_write, pte_wrprotect
from ..process import Process
from ..vma import Vma

#: Where the driver's one anonymous region starts (2 MiB aligned) and how big it is.
REGION = 0x4000_0000
REGION_PAGES = 4 << HPAGE_PMD_ORDER
_PTRS_PER_PTE = 1 << HPAGE_PMD_ORDER


@dataclass
class HandFolios:
    """Processes sharing one anonymous region ([REGION, REGION + REGION_PAGES pages)),
    whose large folios are mapped by hand. ``cow_copies`` and ``cow_reuses`` count what
    COW faults did; ``deferred`` the folios an unmap queued for deferred split."""

    m: Machine
    procs: list[Process] = field(default_factory=list)
    cow_copies: int = 0
    cow_reuses: int = 0
    deferred: int = 0
    #: Folio -> most mms that mapped it at once (seen after each op).
    peak_mms: dict[Folio, int] = field(default_factory=dict)

    def spawn(self) -> Process:
        """A process with the driver's region mapped (nothing populated)."""
        p = self.m.spawn()
        p.mmap(REGION, REGION_PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
        self.procs.append(p)
        return p

    def _vma(self, p: Process) -> Vma:
        vma = p.mm.vmas.find(REGION)
        assert vma is not None
        return vma

    def fault(self, p: Process, index: int, order: int, pmd: bool = False) -> Folio | None:
        """A first-touch fault at page ``index`` of the region mapping a new folio of
        ``order`` over the naturally aligned range around it (by one PMD when ``pmd``,
        order 9 only); None when that range is not empty or no block is free."""
        nr = 1 << order
        start = index & ~(nr - 1)
        table = p.mm.pgtable
        base = REGION + start * PAGE_SIZE
        if any(table.lookup(base + i * PAGE_SIZE) for i in range(nr)):
            return None
        folio = self.m.physmem.alloc_folio(order)
        if folio is None:
            return None
        self.m.lru_add(folio.head)
        bit = PAGE_PSE if pmd else 0
        for i, page in enumerate(folio.pages):
            page.flags |= PG_ANON
            table.set(base + i * PAGE_SIZE, mk_pte(page.pfn, True, dirty=True) | bit)
            page.refcount += 1
            p.mm.add_rss(page, 1)
            if not pmd:
                page.mapcount += 1
        if pmd:
            folio.entire_mapcount += 1
        self.m.mapcount_add(folio, 0, nr, self._vma(p), base, pmd)
        return folio

    def _runs(self, mm: Mm, start: int, end: int) -> Iterator[tuple[Folio, int, int, int, bool]]:
        """(folio, first page, n, address, pmd) for the runs of consecutive ptes mapping
        consecutive pages of one large folio in [start, end) of ``mm``'s region, cut at
        page-table boundaries (copy and zap work one PTE page at a time); a PMD mapping is
        one run of the whole folio."""
        table = mm.pgtable
        run: list[tuple[int, Page, bool]] = []
        for addr in range(start, end, PAGE_SIZE):
            pte = table.entry(addr >> 12)
            page = self.m.physmem.page(pte_pfn(pte)) if pte_present(pte) else None
            if page is None or page.folio is None:
                yield from self._flush(run)
                run = []
                continue
            huge = bool(pte & PAGE_PSE)
            if run:
                _, last, last_huge = run[-1]
                if (last.folio is not page.folio or page.pfn != last.pfn + 1
                        or huge != last_huge or (addr >> 12) % _PTRS_PER_PTE == 0):
                    yield from self._flush(run)
                    run = []
            run.append((addr, page, huge))
        yield from self._flush(run)

    @staticmethod
    def _flush(run: list[tuple[int, Page, bool]]) -> Iterator[tuple[Folio, int, int, int, bool]]:
        if run:
            addr, page, huge = run[0]
            folio = page.folio
            assert folio is not None
            yield folio, folio.page_index(page), len(run), addr, huge

    def fork(self, parent: Process) -> Process:
        """copy_pte_range() / copy_huge_pmd() of the region's large folios into a new
        process: both sides write-protected, one mapcount_add per run."""
        child = self.spawn()
        src, dst = parent.mm.pgtable, child.mm.pgtable
        vma = self._vma(child)
        end = REGION + REGION_PAGES * PAGE_SIZE
        for folio, first, nr, addr, huge in list(self._runs(parent.mm, REGION, end)):
            for i in range(nr):
                a = addr + i * PAGE_SIZE
                pte = pte_wrprotect(src.entry(a >> 12))
                src.set(a, pte)
                dst.set(a, pte)
                page = folio.pages[first + i]
                page.refcount += 1
                child.mm.add_rss(page, 1)
                if not huge:
                    page.mapcount += 1
            if huge:
                folio.entire_mapcount += 1
            self.m.mapcount_add(folio, first, nr, vma, addr, huge)
        return child

    def split_pmd(self, p: Process, index: int) -> bool:
        """__split_huge_pmd_locked(): the PMD mapping the region's page ``index`` becomes
        512 ptes (pte rmap added, then the PMD's removed); False if none maps it."""
        base = REGION + (index & ~(_PTRS_PER_PTE - 1)) * PAGE_SIZE
        table = p.mm.pgtable
        pte = table.entry(base >> 12)
        if not pte & PAGE_PSE:
            return False
        page = self.m.physmem.page(pte_pfn(pte))
        assert page is not None and page.folio is not None
        folio = page.folio
        for i, pg in enumerate(folio.pages):
            a = base + i * PAGE_SIZE
            table.set(a, table.entry(a >> 12) & ~PAGE_PSE)
            pg.mapcount += 1
        vma = self._vma(p)
        self.m.mapcount_add(folio, 0, folio.nr_pages, vma, base, False)
        folio.entire_mapcount -= 1
        self.m.mapcount_remove(folio, 0, folio.nr_pages, vma, base, True)
        return True

    def unmap(self, p: Process, index: int, n: int) -> None:
        """zap_pte_range() over pages [index, index + n) of the region (PMDs the range
        cuts are split first): mapcount_remove per run, the deferred-split question for a
        large folio, then the references dropped."""
        for block in range(index & ~(_PTRS_PER_PTE - 1), index + n, _PTRS_PER_PTE):
            if block < index or block + _PTRS_PER_PTE > index + n:
                self.split_pmd(p, block)
        start, end = REGION + index * PAGE_SIZE, REGION + (index + n) * PAGE_SIZE
        vma = self._vma(p)
        table = p.mm.pgtable
        for folio, first, nr, addr, huge in list(self._runs(p.mm, start, end)):
            pages = folio.pages[first:first + nr]
            for i in range(nr):
                table.clear(addr + i * PAGE_SIZE)
                if not huge:
                    pages[i].mapcount -= 1
                p.mm.add_rss(pages[i], -1)
            if huge:
                folio.entire_mapcount -= 1
            self.m.mapcount_remove(folio, first, nr, vma, addr, huge)
            if not folio.deferred and self.m.mapcount_partially_mapped(folio):
                folio.deferred = True
                self.deferred += 1
            for page in pages:
                self.m.put_page(page)

    def write(self, p: Process, index: int) -> str:
        """A write fault on a write-protected pte of a large folio (PMDs split first, as
        do_huge_pmd_wp_page() does when it does not reuse): reuse in place if the design
        says ``p`` maps the folio exclusively and every reference is a mapping
        (wp_can_reuse_anon_folio()), else an order-0 copy (wp_page_copy()). Returns
        ``reused``, ``copied`` or ``none`` (no large-folio page there)."""
        addr = REGION + index * PAGE_SIZE
        table = p.mm.pgtable
        pte = table.entry(addr >> 12)
        page = self.m.physmem.page(pte_pfn(pte)) if pte_present(pte) else None
        if page is None or page.folio is None or pte_write(pte):
            return "none"
        folio = page.folio
        entries = sum(pg.mapcount for pg in folio.pages) + folio.entire_mapcount * folio.nr_pages
        if self.m.mapcount_exclusive_to(folio, p.mm) and \
                sum(pg.refcount for pg in folio.pages) == entries:
            self.cow_reuses += 1
            return "reused"
        self.split_pmd(p, index)
        self.unmap(p, index, 1)
        copy = self.m.alloc_page()
        copy.flags |= PG_ANON
        copy.refcount, copy.mapcount = 1, 1
        table.set(addr, mk_pte(copy.pfn, True, dirty=True))
        p.mm.add_rss(copy, 1)
        self.cow_copies += 1
        return "copied"

    def exit(self, p: Process) -> None:
        """The process unmaps its region by hand (its order-0 COW copies included), then
        exits."""
        self.unmap(p, 0, REGION_PAGES)
        for addr, pte in list(p.mm.pgtable.range(REGION, REGION + REGION_PAGES * PAGE_SIZE)):
            page = self.m.physmem.page(pte_pfn(pte))
            p.mm.pgtable.clear(addr)
            if page is not None:
                page.mapcount -= 1
                p.mm.add_rss(page, -1)
                self.m.put_page(page)
        self.procs.remove(p)
        p.exit(0)

    def observe(self) -> dict[Folio, FolioTruth]:
        """The truth now; also records each folio's peak number of mms."""
        truth = folio_truth(self.m)
        for folio, t in truth.items():
            self.peak_mms[folio] = max(self.peak_mms.get(folio, 0), len(t.by_mm))
        return truth


def claim_violations(m: Machine, truth: dict[Folio, FolioTruth],
                     peak_mms: dict[Folio, int]) -> list[str]:
    """Every answer of ``m``'s design that breaks what the design claims to know:

    - every design: no false "exclusive" (maybe_shared False or exclusive_to True while
      another mm maps the folio);
    - ``per_page``: everything exact (kpagecount, page exclusivity, mapped pages,
      partial mapping);
    - ``per_page``, ``no_page_mapcount``, ``total_mapped_pages`` (the mm-id slots):
      maybe_shared and the folio-level exclusivity are exact for a folio that never had
      more than two mms mapping it at once (a third one can leave the shared bit set);
    - ``no_page_mapcount`` and ``total_mapped_pages``: a folio one mm maps is exact in
      kpagecount and partial mapping; a partial mapping reported is real;
    - ``per_folio_tuple``: maybe_shared exact while each mm maps the folio from one page
      table (always so for the driver's aligned folios).
    """
    design = m.mapcount_name
    out: list[str] = []
    for folio, t in truth.items():
        if not t.by_mm:
            continue
        where = f"{design} {folio!r}"
        shared = m.mapcount_maybe_shared(folio)
        if not shared and t.shared:
            out.append(f"{where}: maybe_shared False with {len(t.by_mm)} mms")
        for mm in t.by_mm:
            if m.mapcount_exclusive_to(folio, mm) and not t.exclusive_to(mm):
                out.append(f"{where}: exclusive_to a mm while {len(t.by_mm)} map it")
        single = len(t.by_mm) == 1
        slots_exact = peak_mms.get(folio, 0) <= 2
        exact_shared = design == "per_folio_tuple" or slots_exact
        if exact_shared and shared != t.shared:
            out.append(f"{where}: maybe_shared {shared}, exact {t.shared}")
        averaged = design in ("no_page_mapcount", "total_mapped_pages")
        partial = m.mapcount_partially_mapped(folio)
        if averaged and partial and not t.partially_mapped:
            out.append(f"{where}: reported partially mapped, it is not")
        exact_counts = design == "per_page" or (single and averaged)
        exact_exclusive = design == "per_page" or (single and exact_shared)
        if exact_counts and partial != t.partially_mapped:
            out.append(f"{where}: partially mapped {partial}, exact {t.partially_mapped}")
        for page in folio.pages:
            exact = t.page_mapcount[page.pfn]
            if not exact:
                continue
            got = m.mapcount_page(folio, page)
            if exact_counts and got != exact:
                out.append(f"{where}: kpagecount of {page.pfn:#x} {got}, exact {exact}")
            if exact_exclusive and m.mapcount_page_exclusive(folio, page) != (exact == 1):
                out.append(f"{where}: page {page.pfn:#x} exclusive wrong")
        if design == "per_page" and m.mapcount_mapped_pages(folio) != t.mapped_pages:
            out.append(f"{where}: mapped pages {m.mapcount_mapped_pages(folio)}, "
                       f"exact {t.mapped_pages}")
    return out


#: The driver's operations, as :func:`step` names them.
FOLIO_OPS = ("fault", "pmd", "fork", "unmap", "write", "exit", "split")
#: At most this many processes (fork does nothing beyond).
MAX_PROCS = 5


def step(h: HandFolios, op: str, who: int, index: int, n: int) -> None:
    """One driver operation by process number ``who`` (modulo the live ones) at page
    ``index`` of the region; ``n`` sizes it (pages to unmap, or picks the order)."""
    p = h.procs[who % len(h.procs)] if h.procs else h.spawn()
    index %= REGION_PAGES
    if op == "fault":
        h.fault(p, index, (2, 4, HPAGE_PMD_ORDER)[n % 3])
    elif op == "pmd":
        h.fault(p, index, HPAGE_PMD_ORDER, pmd=True)
    elif op == "fork":
        if len(h.procs) < MAX_PROCS:
            h.fork(p)
    elif op == "unmap":
        h.unmap(p, index, max(1, min(n, REGION_PAGES - index)))
    elif op == "write":
        h.write(p, index)
    elif op == "exit":
        if len(h.procs) > 1:
            h.exit(p)
    elif op == "split":
        h.split_pmd(p, index)
    else:
        raise ValueError(f"unknown folio op {op!r}: choose one of: {', '.join(FOLIO_OPS)}")


def violations(h: HandFolios) -> list[str]:
    """The core's counters against the page tables, then the design's claims."""
    truth = h.observe()
    return check_core(h.m, truth) + claim_violations(h.m, truth, h.peak_mms)


def random_folio_walk(m: Machine, seed: int, steps: int) -> HandFolios:
    """A seeded random sequence of driver operations on ``m``, checking
    :func:`violations` after each; AssertionError naming the step on the first."""
    import random

    rng = random.Random(seed)
    h = HandFolios(m)
    h.spawn()
    for i in range(steps):
        op = (rng.choice(FOLIO_OPS), rng.randrange(8), rng.randrange(REGION_PAGES),
              rng.randrange(1, 65))
        step(h, *op)
        problems = violations(h)
        if problems:
            raise AssertionError(f"{m.mapcount_name}, seed {seed}, step {i} {op}: "
                                 + "; ".join(problems[:5]))
    return h
