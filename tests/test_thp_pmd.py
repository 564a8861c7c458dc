"""PMD-mapped anonymous THP (mmcore.huge_memory, mmcore.khugepaged) against the rules
probed on Linux 6.18 (docs/kernel-facts.md sections 18 and 22), under every rmap scheme."""

from __future__ import annotations

import errno
import random

import pytest

from mmcore import Machine
from mmcore.constants import (
    MADV_COLD,
    MADV_COLLAPSE,
    MADV_DONTNEED,
    MADV_FREE,
    MADV_HUGEPAGE,
    MADV_NOHUGEPAGE,
    MADV_PAGEOUT,
    MADV_POPULATE_READ,
    MADV_POPULATE_WRITE,
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PAGE_SIZE,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
)
from mmcore.errors import SegmentationFault
from mmcore.folio import Folio
from mmcore.huge_memory import HPAGE_PMD_NR, HPAGE_PMD_SIZE
from mmcore.plugins import valid_configurations
from mmcore.process import Process
from mmcore.testing.invariants import check_invariants
from mmcore.thp import ThpSettings

H = HPAGE_PMD_SIZE
P = PAGE_SIZE
RW = PROT_READ | PROT_WRITE

#: One configuration per rmap scheme (anonmm runs only with its mremap policy).
SCHEMES: dict[str, tuple[str, str | None]] = {}
for _rmap, _policy in valid_configurations():
    SCHEMES.setdefault(_rmap, (_rmap, _policy))


@pytest.fixture(params=sorted(SCHEMES))
def m(request: pytest.FixtureRequest) -> Machine:
    """A machine of each rmap scheme, with the reference machine's THP knobs."""
    rmap, policy = SCHEMES[request.param]
    return Machine(rmap=rmap, mremap_policy=policy, ram_pages=1 << 14)


def thp_area(p: Process, huge: bool = True, size: int = H) -> int:
    """A 2 MiB-aligned private anonymous range of ``size`` bytes between PROT_NONE guard
    pages (so it merges with nothing), MADV_HUGEPAGE unless ``huge`` is false."""
    base = p.mmap(0, size + 2 * H, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS)
    addr = (base + H) & ~(H - 1)
    p.mmap(addr, size, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
    if huge:
        p.madvise(addr, size, MADV_HUGEPAGE)
    return addr


def smaps_of(p: Process, addr: int) -> dict[str, int]:
    """The smaps values of the vma containing ``addr``."""
    for entry in p.smaps():
        if entry.maps.start <= addr < entry.maps.end:
            return entry.values
    raise LookupError(hex(addr))


def folio_at(p: Process, addr: int) -> Folio | None:
    """The large folio the pte at ``addr`` maps (None for an order-0 page)."""
    page = p.machine.physmem.pages[p.pagemap(addr).pfn]
    assert page is not None
    return page.folio


def pmd_mapped(p: Process, addr: int) -> bool:
    """Whether a huge PMD maps ``addr``."""
    return (addr >> 21) in p.mm.pgtable.huge_pmds


def test_populate_faults_in_pmd_thps_as_accesses_do(m: Machine) -> None:
    """Probed (tools/kernel_probe/populate_thp.c, kernel-facts 22 N): MADV_POPULATE_WRITE
    of a 2 MiB-aligned MADV_HUGEPAGE range maps one PMD THP (AnonHugePages 2048 kB) with
    one fault, as faultin_page() -> handle_mm_fault() -> create_huge_pmd() does;
    MADV_POPULATE_READ maps the huge zero page (AnonHugePages 0)."""
    p = m.spawn()
    a = thp_area(p, size=2 * H)
    faults = m.vm_events.pgfault
    p.madvise(a, H, MADV_POPULATE_WRITE)
    assert pmd_mapped(p, a) and m.vm_events.pgfault == faults + 1
    assert smaps_of(p, a)["AnonHugePages"] == 2048 and p.mm.rss == HPAGE_PMD_NR
    p.madvise(a + H, H, MADV_POPULATE_READ)
    assert pmd_mapped(p, a + H) and m.vm_events.thp_zero_page_alloc == 1
    assert m.kpagecount(p.pagemap(a + H).pfn) == 0
    assert smaps_of(p, a)["AnonHugePages"] == 2048 and p.mm.rss == HPAGE_PMD_NR
    assert m.vm_events.pgfault == faults + 2
    check_invariants(m)


def test_write_fault_maps_a_whole_pmd_thp(m: Machine) -> None:
    p = m.spawn()
    a = thp_area(p)
    p.write(a + 5 * P, b"x")
    folio = folio_at(p, a)
    assert folio is not None and folio.order == 9 and folio.pfn % HPAGE_PMD_NR == 0
    assert [p.pagemap(a + i * P).pfn for i in (0, 1, 511)] == [folio.pfn, folio.pfn + 1,
                                                              folio.pfn + 511]
    assert (folio.entire_mapcount, folio.pages[5].mapcount) == (1, 0)
    s = smaps_of(p, a)
    assert (s["AnonHugePages"], s["Rss"], s["THPeligible"]) == (2048, 2048, 1)
    assert m.meminfo()["AnonHugePages"] == 2048
    assert p.mm.rss == HPAGE_PMD_NR
    assert m.vm_events.thp_fault_alloc == 1
    assert m.mthp_stats.stats[9]["anon_fault_alloc"] == 1
    assert m.kpagecount(folio.pfn + 3) == 1
    assert p.pagemap(a + 3 * P).exclusive
    check_invariants(m, {(p.pid, a + 5 * P): b"x"})


def test_no_thp_without_madvise_nohugepage_or_a_whole_aligned_range(m: Machine) -> None:
    p = m.spawn()
    plain = thp_area(p, huge=False)
    p.write(plain, b"x")
    nohuge = thp_area(p)
    p.madvise(nohuge, H, MADV_NOHUGEPAGE)
    p.write(nohuge, b"x")
    short = thp_area(p, size=H - P)
    p.write(short, b"x")
    assert not p.mm.pgtable.huge_pmds and m.vm_events.thp_fault_alloc == 0
    assert folio_at(p, plain) is None and p.mm.rss == 3
    assert smaps_of(p, short)["THPeligible"] == 0 and smaps_of(p, plain)["THPeligible"] == 0


def test_always_mode_gives_thp_without_madvise() -> None:
    m = Machine(thp=ThpSettings(enabled="always"), ram_pages=1 << 14)
    p = m.spawn()
    a = thp_area(p, huge=False)
    p.write(a, b"x")
    assert pmd_mapped(p, a)


def test_read_maps_the_huge_zero_page_and_a_write_then_maps_a_new_thp(m: Machine) -> None:
    """Probe A: the read maps the huge zero page (Rss 0, kpagecount 0,
    thp_zero_page_alloc once); the write replaces it by a new THP, without a split."""
    p = m.spawn()
    a = thp_area(p)
    assert p.read(a + 7 * P, 1) == b"\0"
    assert pmd_mapped(p, a) and p.mm.rss == 0
    s = smaps_of(p, a)
    assert (s["AnonHugePages"], s["Rss"]) == (0, 0)
    assert m.kpagecount(p.pagemap(a).pfn) == 0 and m.vm_events.thp_zero_page_alloc == 1
    head, tail = m.kpageflags(p.pagemap(a).pfn), m.kpageflags(p.pagemap(a + P).pfn)
    assert [b for b in range(64) if head >> b & 1] == [15, 22, 24]  # head, THP, zero
    assert [b for b in range(64) if tail >> b & 1] == [16, 22, 24]
    b = thp_area(p)
    p.read(b, 1)
    assert m.vm_events.thp_zero_page_alloc == 1  # one shared huge zero folio
    assert p.pagemap(b).pfn == p.pagemap(a).pfn
    p.write(a + P, b"w")
    assert pmd_mapped(p, a) and smaps_of(p, a)["AnonHugePages"] == 2048
    assert (m.vm_events.thp_fault_alloc, m.vm_events.thp_split_pmd) == (1, 0)
    assert p.read(a + 7 * P, 1) == b"\0" and p.read(a + P, 1) == b"w"
    check_invariants(m)


def test_fork_shares_the_pmd_and_the_child_write_splits_only_the_childs(m: Machine) -> None:
    """kernel-facts 18: the child's PMD is split, page 1 is an order-0 copy, the parent
    keeps its PMD."""
    p = m.spawn()
    a = thp_area(p)
    p.write(a, b"p")
    c = p.fork()
    folio = folio_at(p, a)
    assert folio is not None and folio.entire_mapcount == 2 and pmd_mapped(c, a)
    assert not p.pagemap(a).exclusive and m.kpagecount(folio.pfn) == 2
    c.write(a + P, b"c")
    assert not pmd_mapped(c, a) and pmd_mapped(p, a)
    assert folio_at(c, a + P) is None and folio_at(c, a + 2 * P) is folio
    assert smaps_of(c, a)["AnonHugePages"] == 0 and smaps_of(p, a)["AnonHugePages"] == 2048
    assert m.vm_events.thp_split_pmd == 1
    assert p.read(a + P, 1) == b"\0" and c.read(a + P, 1) == b"c" and c.read(a, 1) == b"p"
    # the parent's page 1: count 1 but not exclusive (reported at folio level)
    assert m.kpagecount(folio.pfn + 1) == 1 and not p.pagemap(a + P).exclusive
    check_invariants(m)
    c.exit()
    p.write(a + 2 * P, b"q")  # kernel-facts 18: reused in place, still PMD-mapped
    assert pmd_mapped(p, a) and p.pagemap(a + 2 * P).pfn == folio.pfn + 2
    assert smaps_of(p, a)["AnonHugePages"] == 2048 and m.vm_events.thp_split_pmd == 1
    check_invariants(m)


def test_after_the_child_exits_the_parents_write_reuses_the_pmd(m: Machine) -> None:
    """Probe F: fork, the child exits untouched, the parent's write reuses in place."""
    p = m.spawn()
    a = thp_area(p)
    p.write(a, b"p")
    pfn = p.pagemap(a).pfn
    c = p.fork()
    c.exit()
    p.write(a + P, b"q")
    assert pmd_mapped(p, a) and p.pagemap(a + P).pfn == pfn + 1
    assert m.vm_events.thp_split_pmd == 0 and m.counters.fault_cow_reuse == 1
    check_invariants(m)


def test_parent_write_while_the_child_lives_splits_the_parents_pmd(m: Machine) -> None:
    """Probe G: the writer's PMD is split and its page copied; when the child exits,
    the folio is left partly mapped (deferred split) and the next write reuses."""
    p = m.spawn()
    a = thp_area(p)
    p.write(a, b"p")
    c = p.fork()
    p.write(a + 2 * P, b"q")
    assert not pmd_mapped(p, a) and pmd_mapped(c, a)
    assert folio_at(p, a + 2 * P) is None and m.vm_events.thp_split_pmd == 1
    c.exit()
    assert m.vm_events.thp_deferred_split_page == 1
    pfn = p.pagemap(a + 3 * P).pfn
    p.write(a + 3 * P, b"r")
    assert p.pagemap(a + 3 * P).pfn == pfn
    check_invariants(m)


def test_mprotect_of_half_splits_and_merging_back_does_not_collapse(m: Machine) -> None:
    """Probe B."""
    p = m.spawn()
    a = thp_area(p)
    p.write(a, b"x")
    folio = folio_at(p, a)
    p.mprotect(a, H // 2, PROT_READ)
    assert not p.mm.pgtable.huge_pmds and m.vm_events.thp_split_pmd == 1
    assert smaps_of(p, a)["THPeligible"] == 0 and smaps_of(p, a)["Rss"] == 1024
    assert folio_at(p, a + H // 2) is folio and m.vm_events.thp_deferred_split_page == 0
    with pytest.raises(Exception, match="SEGV"):
        p.write(a, b"y")
    p.mprotect(a, H // 2, RW)
    s = smaps_of(p, a)
    assert (s["AnonHugePages"], s["Rss"], s["THPeligible"]) == (0, 2048, 1)
    check_invariants(m)


def test_mprotect_of_the_whole_thp_keeps_the_pmd(m: Machine) -> None:
    p = m.spawn()
    a = thp_area(p)
    p.write(a, b"x")
    p.mprotect(a, H, PROT_READ)
    assert pmd_mapped(p, a) and m.vm_events.thp_split_pmd == 0
    p.mprotect(a, H, RW)
    p.write(a + P, b"y")  # exclusive: mprotect made it writable again
    assert pmd_mapped(p, a) and m.counters.fault_cow_reuse == 0
    check_invariants(m)


def test_mremap_by_an_aligned_distance_moves_the_pmd_unaligned_splits(m: Machine) -> None:
    """Probe C."""
    p = m.spawn()
    a = thp_area(p)
    p.write(a, b"c")
    pfn = p.pagemap(a).pfn
    dst = thp_area(p, huge=False, size=2 * H)
    p.munmap(dst, 2 * H)
    b = p.mremap(a, H, H, MREMAP_MAYMOVE | MREMAP_FIXED, dst)
    assert pmd_mapped(p, b) and p.pagemap(b).pfn == pfn and m.vm_events.thp_split_pmd == 0
    assert smaps_of(p, b)["AnonHugePages"] == 2048
    check_invariants(m)
    dst2 = thp_area(p, huge=False, size=3 * H)
    p.munmap(dst2, 3 * H)
    c = p.mremap(b, H, H, MREMAP_MAYMOVE | MREMAP_FIXED, dst2 + P)
    assert not p.mm.pgtable.huge_pmds and m.vm_events.thp_split_pmd == 1
    s = smaps_of(p, c)
    assert (s["AnonHugePages"], s["Rss"], s["THPeligible"]) == (0, 2048, 0)
    assert p.read(c, 1) == b"c" and p.pagemap(c).pfn == pfn
    check_invariants(m)


def test_dontneed_of_part_splits_and_defers_the_split(m: Machine) -> None:
    """Probe D."""
    p = m.spawn()
    a = thp_area(p)
    p.write(a + 255 * P, b"d")
    p.madvise(a, 4 * P, MADV_DONTNEED)
    assert not p.mm.pgtable.huge_pmds and p.mm.rss == HPAGE_PMD_NR - 4
    assert (m.vm_events.thp_split_pmd, m.vm_events.thp_deferred_split_page) == (1, 1)
    folio = folio_at(p, a + 255 * P)
    assert folio is not None and folio in m.deferred_split
    assert p.read(a + 255 * P, 1) == b"d" and p.read(a, 1) == b"\0"
    check_invariants(m)


def test_dontneed_or_munmap_of_the_whole_thp_frees_it_without_a_split(m: Machine) -> None:
    """Probe H2; and a refault after the whole PMD is gone maps a THP again."""
    p = m.spawn()
    a = thp_area(p)
    free = m.physmem.nr_free
    p.write(a, b"x")
    p.madvise(a, H, MADV_DONTNEED)
    assert m.physmem.nr_free == free and not p.mm.pgtable.huge_pmds
    p.write(a, b"y")
    assert pmd_mapped(p, a)
    assert m.mthp_stats.stats[9]["nr_anon"] == 1
    p.munmap(a, H)
    assert m.physmem.nr_free == free and m.mthp_stats.stats[9]["nr_anon"] == 0
    assert (m.vm_events.thp_split_pmd, m.vm_events.thp_deferred_split_page) == (0, 0)
    check_invariants(m)


def test_mlock_of_one_page_splits_the_pmd(m: Machine) -> None:
    """Probe H: mlock splits the vma and with it the PMD."""
    p = m.spawn()
    a = thp_area(p)
    p.write(a, b"x")
    p.mlock(a + 10 * P, P)
    assert not p.mm.pgtable.huge_pmds and m.vm_events.thp_split_pmd == 1
    assert smaps_of(p, a)["Rss"] == 40
    check_invariants(m)


def test_huge_zero_pmd_is_copied_by_fork_and_split_into_small_zero_ptes(m: Machine) -> None:
    p = m.spawn()
    a = thp_area(p)
    p.read(a, 1)
    c = p.fork()
    assert pmd_mapped(c, a) and c.mm.rss == 0
    p.mprotect(a, P, PROT_READ)
    assert not pmd_mapped(p, a) and p.pagemap(a + P).pfn == m.physmem.ZERO_PFN
    c.write(a, b"c")  # the child's huge zero PMD becomes a THP
    assert pmd_mapped(c, a) and c.mm.rss == HPAGE_PMD_NR
    check_invariants(m)


def test_page_tables_count_the_deposited_pte_page_of_each_pmd(m: Machine) -> None:
    """Probed: VmPTE grows by 4 kB per THP and per huge zero PMD (the page table
    deposited with it), and a split does not change it."""
    p = m.spawn()
    a = thp_area(p, size=2 * H)
    before = p.mm.pgtable.nr_table_pages
    p.write(a, b"x")
    assert p.mm.pgtable.nr_table_pages == before + 3  # a PUD, a PMD and a PTE page
    p.read(a + H, 1)
    assert p.mm.pgtable.nr_table_pages == before + 4
    p.madvise(a, P, MADV_DONTNEED)
    assert p.mm.pgtable.nr_table_pages == before + 4
    assert p.status()["VmPTE"] == 4 * 4


def test_madvise_collapse_copies_512_small_pages_into_a_thp(m: Machine) -> None:
    """Probe E: MADV_COLLAPSE ignores the madvise mode (THPeligible stays 0)."""
    p = m.spawn()
    a = thp_area(p, huge=False)
    for i in range(HPAGE_PMD_NR):
        p.write(a + i * P, bytes([i & 0xFF]))
    free = m.physmem.nr_free
    p.madvise(a, H, MADV_COLLAPSE)
    assert pmd_mapped(p, a) and m.vm_events.thp_collapse_alloc == 1
    s = smaps_of(p, a)
    assert (s["AnonHugePages"], s["Rss"], s["THPeligible"]) == (2048, 2048, 0)
    assert p.read(a + 511 * P, 1) == b"\xff" and p.read(a + P, 1) == b"\x01"
    assert m.physmem.nr_free == free  # 512 small pages freed for the 512 of the THP
    assert m.khugepaged.pages_collapsed == 0
    check_invariants(m)


def test_madvise_collapse_of_a_few_pages_or_zero_ptes_needs_only_an_anon_vma(
        m: Machine) -> None:
    """Probes E2, E3 and thp_collapse: 10 written pages collapse (the rest zero-filled,
    Rss 2048 kB); zero-page ptes collapse once the vma has an anon_vma; an untouched
    range, zero-page ptes without anon_vma and VM_NOHUGEPAGE are EINVAL; a read-only
    vma collapses."""
    p = m.spawn()
    few = thp_area(p, huge=False)
    for i in range(10):
        p.write(few + i * P, b"f")
    p.madvise(few, H, MADV_COLLAPSE)
    assert pmd_mapped(p, few) and p.mm.rss == HPAGE_PMD_NR
    untouched = thp_area(p, huge=False)
    zeros = thp_area(p, huge=False)
    for i in range(HPAGE_PMD_NR):
        p.read(zeros + i * P, 1)
    nohuge = thp_area(p)
    p.write(nohuge, b"n")
    p.madvise(nohuge, H, MADV_NOHUGEPAGE)
    for addr, length in ((untouched, H), (zeros, H), (nohuge, H), (few + P, H - 2 * P)):
        with pytest.raises(OSError) as e:
            p.madvise(addr, length, MADV_COLLAPSE)
        assert e.value.errno == errno.EINVAL
    p.write(zeros + H - P, b"z")  # now the vma has an anon_vma
    p.madvise(zeros, H, MADV_COLLAPSE)
    ro = thp_area(p, huge=False)
    p.write(ro, b"r")
    p.mprotect(ro, H, PROT_READ)
    p.madvise(ro, H, MADV_COLLAPSE)
    assert pmd_mapped(p, zeros) and pmd_mapped(p, ro)
    assert p.read(ro, 1) == b"r" and p.read(zeros + H - P, 1) == b"z"
    assert m.vm_events.thp_collapse_alloc == 3
    check_invariants(m)


def test_madvise_collapse_of_pages_shared_with_a_child_leaves_the_child_its_own(
        m: Machine) -> None:
    p = m.spawn()
    a = thp_area(p, huge=False)
    for i in range(0, HPAGE_PMD_NR, 8):
        p.write(a + i * P, b"s")
    c = p.fork()
    p.madvise(a, H, MADV_COLLAPSE)
    p.write(a, b"p")  # exclusive THP: reused
    assert pmd_mapped(p, a) and not c.mm.pgtable.huge_pmds
    assert c.read(a, 1) == b"s" and p.read(a, 1) == b"p" and p.read(a + 8 * P, 1) == b"s"
    check_invariants(m)


def test_khugepaged_collapses_within_its_limits_and_counts_what_exceeds_them(
        m: Machine) -> None:
    """hpage_collapse_scan_pmd() with the sysfs defaults (511 none, 64 swap, 256
    shared, as found on the reference machine); lowered, each limit stops a scan and
    counts its thp_scan_exceed_* event."""
    k = m.khugepaged
    assert (k.max_ptes_none, k.max_ptes_swap, k.max_ptes_shared) == (511, 64, 256)
    p = m.spawn()
    a = thp_area(p)
    p.madvise(a, H, MADV_NOHUGEPAGE)  # small pages first
    for i in range(4):
        p.write(a + i * P, b"k")
    p.madvise(a, H, MADV_HUGEPAGE)
    k.max_ptes_none = 500
    assert m.khugepaged_scan() == 0 and m.vm_events.thp_scan_exceed_none_pte == 1
    k.max_ptes_none = 511
    c = p.fork()
    k.max_ptes_shared = 3
    assert m.khugepaged_scan() == 0 and m.vm_events.thp_scan_exceed_share_pte >= 1
    c.exit()
    k.max_ptes_shared = 256
    assert m.khugepaged_scan() == 1
    assert pmd_mapped(p, a) and k.pages_collapsed == 1 and k.full_scans >= 1
    assert p.read(a + 3 * P, 1) == b"k" and m.vm_events.thp_collapse_alloc == 1
    check_invariants(m)


def test_khugepaged_skips_ranges_without_a_referenced_page(m: Machine) -> None:
    p = m.spawn()
    a = thp_area(p, huge=False)
    for i in range(4):
        p.write(a + i * P, b"k")
    p.madvise(a, H, MADV_HUGEPAGE)
    for _addr, pte in list(p.mm.pgtable.range(a, a + H)):
        p.mm.pgtable.update(_addr >> 12, pte & ~0x20)  # as if reclaim aged them
    assert m.khugepaged_scan() == 0 and not p.mm.pgtable.huge_pmds


def test_reclaim_of_a_pmd_thp_splits_the_pmd_before_the_folio(m: Machine) -> None:
    """Swapping out a page of a PMD-mapped THP splits the folio (mmcore swaps large
    folios as order-0 pages), whose unmap_folio() splits the PMD first
    (TTU_SPLIT_HUGE_PMD); the all-zero pages then map the zero page."""
    p = m.spawn()
    a = thp_area(p)
    p.write(a, b"r")
    p.write(a + P, b"s")
    result = m.try_to_unmap(p.pagemap(a).pfn)
    assert result.success and not p.mm.pgtable.huge_pmds
    assert (m.vm_events.thp_split_pmd, m.vm_events.thp_split_page) == (1, 1)
    assert p.mm.rss == 1 and folio_at(p, a + P) is None
    check_invariants(m)
    assert p.read(a, 1) == b"r" and p.read(a + P, 1) == b"s"
    check_invariants(m)


def test_rmap_walk_finds_every_pmd_mapping(m: Machine) -> None:
    p = m.spawn()
    a = thp_area(p)
    p.write(a, b"x")
    c = p.fork()
    pfn = p.pagemap(a + 9 * P).pfn
    assert m.rmap_walk(pfn).mappings == sorted([(p.pid, a + 9 * P), (c.pid, a + 9 * P)])


def test_memory_pressure_reclaims_around_a_pmd_thp_and_keeps_every_byte(
        m: Machine) -> None:
    """Reclaim reaching the THP's head page splits the PMD first; contents survive."""
    small = Machine(rmap=m.rmap_name, mremap_policy=m.mremap_policy_name, ram_pages=1400,
                    swap_pages=4096)
    p = small.spawn()
    a = thp_area(p)
    p.write(a, b"head")
    p.write(a + 77 * P, b"tail")
    b = p.mmap(0, 1200 * P, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    for i in range(1200):
        p.write(b + i * P, i.to_bytes(2, "little"))
    assert small.vm_events.thp_split_pmd == 1 and not p.mm.pgtable.huge_pmds
    check_invariants(small, {(p.pid, a): b"head", (p.pid, a + 77 * P): b"tail",
                             (p.pid, b + 1199 * P): (1199).to_bytes(2, "little")})


def test_khugepaged_limits_swap_ptes_and_swaps_in_what_it_collapses(m: Machine) -> None:
    """Swap ptes count against max_ptes_swap, and with any of them khugepaged also wants
    half the range referenced; what it collapses is swapped back in and copied."""
    p = m.spawn()
    a = thp_area(p, huge=False)
    for i in range(8):
        p.write(a + i * P, bytes([65 + i]))
    for i in range(8, 255):
        p.write(a + i * P, b"r")
    for i in range(2):
        assert m.try_to_unmap(p.pagemap(a + i * P).pfn).success
    p.madvise(a, H, MADV_HUGEPAGE)
    m.khugepaged.max_ptes_swap = 1
    assert m.khugepaged_scan() == 0 and m.vm_events.thp_scan_exceed_swap_pte == 1
    m.khugepaged.max_ptes_swap = 64
    assert m.khugepaged_scan() == 0 and not pmd_mapped(p, a)  # 253 referenced < 256
    p.madvise(a, H, MADV_NOHUGEPAGE)
    for i in range(255, 260):
        p.write(a + i * P, b"r")
    p.madvise(a, H, MADV_HUGEPAGE)
    assert m.khugepaged_scan() == 1 and pmd_mapped(p, a)
    assert p.read(a, 1) == b"A" and p.read(a + 7 * P, 1) == b"H"
    check_invariants(m)


def test_fault_falls_back_to_small_pages_when_no_aligned_block_is_free() -> None:
    m = Machine(ram_pages=1000)  # frames 1..999: no free naturally aligned 512 block
    p = m.spawn()
    a = thp_area(p)
    p.write(a, b"x")
    assert not p.mm.pgtable.huge_pmds and folio_at(p, a) is None
    assert m.vm_events.thp_fault_fallback == 1
    assert m.mthp_stats.stats[9]["anon_fault_fallback"] == 1
    check_invariants(m)


def test_without_use_zero_page_a_read_fault_allocates_the_thp() -> None:
    m = Machine(thp=ThpSettings(use_zero_page=False), ram_pages=1 << 14)
    p = m.spawn()
    a = thp_area(p)
    assert p.read(a, 1) == b"\0"
    assert pmd_mapped(p, a) and p.mm.rss == HPAGE_PMD_NR
    assert (m.vm_events.thp_fault_alloc, m.vm_events.thp_zero_page_alloc) == (1, 0)


def _random_step(rng: random.Random, m: Machine, procs: list[Process], base: int,
                 expected: dict[tuple[int, int], bytes]) -> None:
    """One random operation on a 4 MiB THP area of a random live process; ``expected``
    keeps what each process must read back."""
    p = rng.choice([q for q in procs if q.alive])
    op = rng.choice(["write", "write", "read", "fork", "exit", "munmap", "mprotect",
                     "dontneed", "collapse", "khugepaged", "unmap", "hugepage", "mremap"])
    off = rng.randrange(0, 4 * H, P)
    length = min(rng.choice([P, 4 * P, H // 2, H, 2 * H]), 4 * H - off)
    start, end = base + off, base + off + length
    if op in ("munmap", "dontneed"):
        for key in [k for k in expected if k[0] == p.pid and start <= k[1] < end]:
            del expected[key]
    try:
        if op == "write":
            data = bytes([rng.randrange(1, 256)])
            p.write(start, data)
            expected[(p.pid, start)] = data
        elif op == "read":
            p.read(start, 1)
        elif op == "fork" and len(procs) < 4:
            child = p.fork()
            procs.append(child)
            expected.update({(child.pid, a): d for (pid, a), d in list(expected.items())
                             if pid == p.pid})
        elif op == "exit" and sum(q.alive for q in procs) > 1:
            p.exit()
            for key in [k for k in expected if k[0] == p.pid]:
                del expected[key]
        elif op == "munmap":
            p.munmap(start, length)
        elif op == "mprotect":
            p.mprotect(start, length, rng.choice([PROT_READ, RW, PROT_NONE]))
        elif op == "dontneed":
            p.madvise(start, length, MADV_DONTNEED)
        elif op == "collapse":
            p.madvise(start & ~(H - 1), H, MADV_COLLAPSE)
        elif op == "khugepaged":
            m.khugepaged_scan()
        elif op == "hugepage":
            p.madvise(start, length, rng.choice([MADV_HUGEPAGE, MADV_NOHUGEPAGE]))
        elif op == "unmap":
            pfn = p.pagemap(start).pfn
            if pfn:
                m.try_to_unmap(pfn)
        elif op == "mremap":  # away by a random alignment, and back
            dst = thp_area(p, huge=False, size=length + H)
            p.munmap(dst, length + H)
            moved = p.mremap(start, length, length, MREMAP_MAYMOVE | MREMAP_FIXED,
                             dst + rng.choice([0, P]))
            p.mremap(moved, length, length, MREMAP_MAYMOVE | MREMAP_FIXED, start)
    except (OSError, SegmentationFault):
        pass  # a hole or a PROT_NONE range: Linux refuses too


@pytest.mark.parametrize("seed", [1, 2])
def test_random_operations_on_thp_keep_every_invariant(m: Machine, seed: int) -> None:
    """Faults, fork, exit, munmap, mprotect, MADV_DONTNEED, MADV_COLLAPSE, khugepaged,
    swap-out and mremap in random order over PMD THPs: after each step the page tables,
    mapcounts, references, rmap walks, /proc counters and contents are consistent."""
    rng = random.Random(seed)
    procs = [m.spawn()]
    base = thp_area(procs[0], size=4 * H)
    expected: dict[tuple[int, int], bytes] = {}
    for _ in range(40):
        _random_step(rng, m, procs, base, expected)
        check_invariants(m, {k: v for k, v in expected.items() if m.processes[k[0]].alive})


def test_madv_cold_and_free_of_a_whole_thp_keep_the_pmd(m: Machine) -> None:
    """Probe J: the THP stays PMD-mapped; MADV_FREE makes all of it LazyFree."""
    p = m.spawn()
    a = thp_area(p)
    p.write(a, b"x")
    p.madvise(a, H, MADV_COLD)
    assert pmd_mapped(p, a) and m.vm_events.thp_split_pmd == 0
    p.madvise(a, H, MADV_FREE)
    s = smaps_of(p, a)
    assert pmd_mapped(p, a) and (s["AnonHugePages"], s["LazyFree"]) == (2048, 2048)
    check_invariants(m)


@pytest.mark.parametrize("advice", [MADV_COLD, MADV_FREE])
def test_madv_cold_or_free_of_part_of_a_thp_splits_the_folio(m: Machine,
                                                             advice: int) -> None:
    """Probe L: the PMD and then the folio are split; the all-zero pages map the shared
    zero page (Rss 32 kB of 2048)."""
    p = m.spawn()
    a = thp_area(p)
    for i in range(0, HPAGE_PMD_NR, 64):
        p.write(a + i * P, b"v")
    p.madvise(a, 4 * P, advice)
    assert not pmd_mapped(p, a) and folio_at(p, a) is None
    assert (m.vm_events.thp_split_pmd, m.vm_events.thp_split_page) == (1, 1)
    assert smaps_of(p, a)["Rss"] == 32 and p.pagemap(a + P).pfn == m.physmem.ZERO_PFN
    check_invariants(m, {(p.pid, a + i * P): b"v" for i in range(0, HPAGE_PMD_NR, 64)})


def test_munmap_of_one_page_splits_the_pmd_and_defers_the_folio_split(m: Machine) -> None:
    """kernel-facts 18: AnonHugePages 0 kB, the other pages stay in the (now pte-mapped)
    folio, thp_deferred_split_page +1."""
    p = m.spawn()
    a = thp_area(p)
    p.write(a, b"x")
    folio = folio_at(p, a)
    p.munmap(a + 100 * P, P)
    assert not p.mm.pgtable.huge_pmds and smaps_of(p, a)["AnonHugePages"] == 0
    assert folio_at(p, a) is folio and folio_at(p, a + 101 * P) is folio
    assert (m.vm_events.thp_split_pmd, m.vm_events.thp_deferred_split_page) == (1, 1)
    assert p.mm.rss == HPAGE_PMD_NR - 1
    check_invariants(m)


# --- MADV_FREE of a PMD-mapped THP (madvise_free_huge_pmd(); kernel-facts 22, probe M) --


@pytest.mark.parametrize("advice", [MADV_FREE, MADV_COLD, MADV_PAGEOUT])
@pytest.mark.parametrize("pages", [4, HPAGE_PMD_NR])
def test_madvise_of_a_huge_zero_pmd_splits_nothing(m: Machine, advice: int,
                                                   pages: int) -> None:
    """is_huge_zero_pmd() in madvise_free_huge_pmd() and madvise_cold_or_pageout_pte_range():
    the huge zero PMD stays, no PMD split, no failed folio split, nothing lazily free."""
    p = m.spawn()
    a = thp_area(p)
    p.read(a, 1)
    zero = p.pagemap(a).pfn
    p.madvise(a, pages * P, advice)
    assert pmd_mapped(p, a) and p.pagemap(a + 5 * P).pfn == zero + 5
    assert (m.vm_events.thp_split_pmd, m.vm_events.thp_split_page_failed) == (0, 0)
    assert smaps_of(p, a)["LazyFree"] == 0
    check_invariants(m)


@pytest.mark.parametrize("pages", [4, HPAGE_PMD_NR])
def test_madv_free_skips_a_thp_a_live_child_maps(m: Machine, pages: int) -> None:
    """folio_maybe_mapped_shared() in madvise_free_huge_pmd(): while the fork child lives
    neither the whole THP nor part of it is freed or split; after its exit the whole
    THP becomes LazyFree and stays PMD-mapped."""
    p = m.spawn()
    a = thp_area(p)
    p.write(a, b"\1" * H)
    c = p.fork()
    p.madvise(a, pages * P, MADV_FREE)
    assert pmd_mapped(p, a) and m.vm_events.thp_split_pmd == 0
    assert smaps_of(p, a)["LazyFree"] == 0
    c.exit(0)
    p.waitpid(c.pid)
    p.madvise(a, H, MADV_FREE)
    assert pmd_mapped(p, a) and smaps_of(p, a)["LazyFree"] == 2048
    check_invariants(m)


def test_madv_free_of_a_thp_one_pmd_maps_despite_the_stuck_shared_bit(m: Machine) -> None:
    """folio_maybe_mapped_shared(): a folio with one mapping is exclusive whatever the
    mm-id shared bit says. A forks B and C (C gets no slot), B exits, A unmaps the THP:
    C's MADV_FREE of the whole THP makes it LazyFree (probed)."""
    a_ = m.spawn()
    a = thp_area(a_)
    a_.write(a, b"\1" * H)
    b = a_.fork()
    c = a_.fork()
    b.exit(0)
    a_.waitpid(b.pid)
    a_.munmap(a, H)
    c.madvise(a, H, MADV_FREE)
    assert pmd_mapped(c, a) and smaps_of(c, a)["LazyFree"] == 2048
    check_invariants(m)


def test_madv_free_of_part_of_a_lazyfree_thp_keeps_its_pages_lazyfree(m: Machine) -> None:
    """madvise_free_huge_pmd() of a partial range splits the folio (split_folio()); the
    pages of a THP already lazily freed stay so: LazyFree 2048 kB, Rss 2048 kB, one
    PMD split (probed, every page written)."""
    p = m.spawn()
    a = thp_area(p)
    p.write(a, b"\1" * H)
    p.madvise(a, H, MADV_FREE)
    p.madvise(a, 4 * P, MADV_FREE)
    s = smaps_of(p, a)
    assert not pmd_mapped(p, a) and (s["LazyFree"], s["Rss"]) == (2048, 2048)
    assert (m.vm_events.thp_split_pmd, m.vm_events.thp_split_page) == (1, 1)
    check_invariants(m)
