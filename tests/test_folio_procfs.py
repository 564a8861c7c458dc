"""What /proc and /sys show of large folios (issue 11, "What /proc shows"): smaps and
smaps_rollup, pagemap PM_MMAP_EXCLUSIVE, meminfo AnonPages/AnonHugePages, vmstat
nr_anon_transparent_hugepages, THPeligible and the transparent_hugepage sysfs files, each
as 6.18 computes them through the machine's mapcount design. The rules are the probed ones
of docs/kernel-facts.md, "What /proc and /sys show of large folios"
(tools/kernel_probe/folio_procfs.c).

Every folio is faulted, forked, copied and unmapped through the real syscalls (the mTHP
and PMD-THP paths of mmcore.anon_folio and mmcore.huge_memory).
"""

from __future__ import annotations

import errno
import os

import pytest

from mmcore import MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PROT_READ, PROT_WRITE, Machine, thp_sysfs
from mmcore.constants import MADV_DONTNEED, MADV_HUGEPAGE, MADV_NOHUGEPAGE, VM_HUGEPAGE
from mmcore.folio import Folio
from mmcore.process import Process
from mmcore.smaps import parse_smaps, parse_smaps_rollup
from mmcore.thp import MTHP_MODES, MTHP_STAT_NAMES, THP_MODES, ThpSettings

PAGE = 4096
RW = PROT_READ | PROT_WRITE
PA = MAP_PRIVATE | MAP_ANONYMOUS
BASE = 0x7F0000000000  # 2 MiB aligned


def _mthp(mapcount: str = "per_page") -> tuple[Machine, Process, Folio]:
    """A 64 kB mTHP (hugepages-64kB ``always``) faulted by the first write to a 16-page
    aligned vma (do_anonymous_page() with alloc_anon_folio())."""
    m = Machine(thp=ThpSettings(per_order={4: "always"}), mapcount=mapcount)
    p = m.spawn()
    p.mmap(BASE, 16 * PAGE, RW, PA | MAP_FIXED)
    p.write(BASE, b"x")
    folio = m.physmem.pages[p.pagemap(BASE).pfn].folio  # type: ignore[union-attr]
    assert folio is not None and folio.order == 4
    return m, p, folio


def _pmd(child_writes: int | None = None,
         thp: ThpSettings | None = None) -> tuple[Machine, Process, Process | None, Folio]:
    """A PMD THP faulted by the first write to a 2 MB aligned MADV_HUGEPAGE vma
    (do_huge_pmd_anonymous_page()); with ``child_writes``, a forked child then writes
    that page, which splits the child's PMD and copies the page (do_huge_pmd_wp_page()
    falling back to the pte path): probed cases A (page 1) and B (page 0, the head)."""
    m = Machine(thp=thp)
    p = m.spawn()
    p.mmap(BASE, 512 * PAGE, RW, PA | MAP_FIXED)
    p.madvise(BASE, 512 * PAGE, MADV_HUGEPAGE)
    p.write(BASE, b"x")
    folio = m.physmem.pages[p.pagemap(BASE).pfn].folio  # type: ignore[union-attr]
    assert folio is not None and folio.entire_mapcount == 1
    child = None
    if child_writes is not None:
        child = p.fork()
        child.write(BASE + child_writes * PAGE, b"c")
    return m, p, child, folio


def _vma(p: Process, addr: int) -> dict[str, int]:
    return next(e.values for e in p.smaps() if e.maps.start <= addr < e.maps.end)


def _fields(p: Process, *labels: str) -> tuple[int, ...]:
    v = _vma(p, BASE)
    return tuple(v[label] for label in labels)


def _exclusive(p: Process, n: int) -> str:
    return "".join("x" if p.pagemap(BASE + i * PAGE).exclusive else "s" for i in range(n))


COUNTERS = ("Rss", "Pss", "Shared_Dirty", "Private_Dirty", "Referenced", "Anonymous",
            "AnonHugePages", "THPeligible")


# --- smaps_account() and pte_to_pagemap_entry() for a pte-mapped 64 kB folio ---------

def test_mthp_after_the_first_write_is_wholly_private_and_exclusive() -> None:
    """smaps_account(): the folio's pages each mapped once; PM_MMAP_EXCLUSIVE on all."""
    _m, p, _folio = _mthp()
    assert _fields(p, *COUNTERS) == (64, 64, 0, 64, 64, 64, 0, 1)
    assert _exclusive(p, 16) == "x" * 16


def test_mthp_after_fork_is_shared_by_page_mapcount_and_old_in_the_child() -> None:
    """smaps_account() with folio_precise_page_mapcount() 2 on every page: Pss halves,
    all Shared_Dirty; the child's ptes are old (copy_present_ptes()), so not Referenced."""
    _m, p, _folio = _mthp()
    c = p.fork()
    assert _fields(c, *COUNTERS) == (64, 32, 64, 0, 0, 64, 0, 1)
    assert _fields(p, "Pss", "Shared_Dirty", "Referenced") == (32, 64, 64)
    assert _exclusive(c, 16) == _exclusive(p, 16) == "s" * 16


def test_mthp_child_cow_of_one_page_makes_the_parents_page_private_per_page() -> None:
    """Per-page mapcounts: after the child copies page 3, the parent's page 3 has
    mapcount 1 and is private and PM_MMAP_EXCLUSIVE although the folio stays shared
    (probed: parent Pss 34, Shared_Dirty 60, Private_Dirty 4; pagemap x on page 3)."""
    _m, p, folio = _mthp()
    c = p.fork()
    c.write(BASE + 3 * PAGE, b"c")
    assert _fields(c, "Rss", "Pss", "Shared_Dirty", "Private_Dirty", "Referenced") \
        == (64, 34, 60, 4, 4)
    assert _fields(p, "Rss", "Pss", "Shared_Dirty", "Private_Dirty") == (64, 34, 60, 4)
    assert _exclusive(p, 16) == "sss" + "x" + "s" * 12
    assert c.pagemap(BASE + 3 * PAGE).pfn not in {pg.pfn for pg in folio.pages}


@pytest.mark.parametrize(("design", "parent", "pagemap", "anon_kb"), [
    ("per_page", (34, 60, 4), "sssx" + "s" * 12, 44),
    ("no_page_mapcount", (32, 64, 0), "s" * 16, 64),
])
def test_mthp_proc_values_are_the_mapcount_designs(design: str, parent: tuple[int, ...],
                                                   pagemap: str, anon_kb: int) -> None:
    """CONFIG_NO_PAGE_MAPCOUNT (6.15+): smaps_account() takes
    folio_average_page_mapcount() (31 mappings over 16 pages round to 2) and
    ``!folio_maybe_mapped_shared()``, so after the child's COW of page 3 the parent shows
    no private page and pagemap no exclusive one, where per-page mapcounts show page 3;
    once the child is gone and the folio partly unmapped, AnonPages counts the whole
    folio (mapcount_mapped_pages) instead of its 11 mapped pages."""
    m, p, _folio = _mthp(design)
    c = p.fork()
    c.write(BASE + 3 * PAGE, b"c")
    assert _fields(p, "Pss", "Shared_Dirty", "Private_Dirty") == parent
    assert _exclusive(p, 16) == pagemap
    c.exit()
    p.munmap(BASE + 8 * PAGE, PAGE)
    p.madvise(BASE + 12 * PAGE, 4 * PAGE, MADV_DONTNEED)
    assert m.meminfo()["AnonPages"] == anon_kb


def test_mthp_after_the_childs_exit_is_private_again() -> None:
    """The child's zap drops the per-page mapcounts back to 1: Pss 64, all exclusive."""
    _m, p, _folio = _mthp()
    c = p.fork()
    c.exit()
    assert _fields(p, "Pss", "Shared_Dirty", "Private_Dirty") == (64, 0, 64)
    assert _exclusive(p, 16) == "x" * 16


def test_mthp_smaps_and_rollup_parse_back_and_sum_before_rounding() -> None:
    """show_smaps_rollup(): the vmas' proportional sizes are summed in bytes << 12 and
    rounded once; the texts parse back with the parsers of the real files."""
    m, p, _folio = _mthp()
    p.mmap(BASE + 64 * PAGE, 16 * PAGE, RW, PA | MAP_FIXED)
    p.write(BASE + 64 * PAGE, b"x")
    children = [p.fork(), p.fork()]
    children[0].write(BASE, b"c")
    rollup = p.smaps_rollup()
    assert parse_smaps(p.smaps_text()) == p.smaps()
    assert parse_smaps_rollup(p.smaps_rollup_text()) == rollup
    # 16 pages mapped three times, and 15 + 1 (mapped twice): 21.33 + 21.99 kB
    assert (rollup["Rss"], rollup["Pss"], rollup["Pss_Anon"]) == (128, 43, 43)
    assert [e["Pss"] for e in p.smaps()] == [21, 21]  # each vma rounded down alone
    assert rollup["AnonHugePages"] == 0 and len(m.live_processes()) == 3


def test_munmap_of_one_page_leaves_the_rest_accounted_and_not_eligible() -> None:
    """The vma splits into 8 and 7 pages, neither fits a 64 kB block: THPeligible 0
    (probed); the 15 pages still mapped stay in the folio, private."""
    _m, p, folio = _mthp()
    p.munmap(BASE + 8 * PAGE, PAGE)
    assert [(e["Rss"], e["Private_Dirty"], e["THPeligible"]) for e in p.smaps()] \
        == [(32, 32, 0), (28, 28, 0)]
    assert folio.nr_pages_mapped == 15


# --- smaps_pmd_entry() and pagemap_pmd_range() for a PMD-mapped THP -------------------

def test_pmd_thp_alone_is_private_anonhugepages_and_exclusive() -> None:
    """smaps_pmd_entry(): one PMD accounts 2 MB at once, AnonHugePages 2048."""
    _m, p, _c, _folio = _pmd()
    assert _fields(p, *COUNTERS) == (2048, 2048, 0, 2048, 2048, 2048, 2048, 1)
    assert _exclusive(p, 512) == "x" * 512


def test_pmd_thp_after_fork_is_shared_and_old_in_the_child() -> None:
    """copy_huge_pmd(): both map the PMD; Pss halves, AnonHugePages stays 2048 in each,
    the child's PMD is old (probed: Referenced 0)."""
    m, p, _c, _folio = _pmd()
    c = p.fork()
    assert _fields(c, "Rss", "Pss", "Shared_Dirty", "Referenced", "AnonHugePages") \
        == (2048, 1024, 2048, 0, 2048)
    assert _exclusive(c, 512) == _exclusive(p, 512) == "s" * 512
    assert m.kpagecount(p.pagemap(BASE + 5 * PAGE).pfn) == 2


def test_pmd_thp_is_accounted_page_by_page_under_the_pmd() -> None:
    """smaps_account() loops over the PMD's 512 pages with folio_precise_page_mapcount():
    the page the child copied away is private to the parent (probed A: Pss 1026,
    Shared_Dirty 2044, Private_Dirty 4, AnonHugePages 2048); the child, its PMD split,
    shows the same but no AnonHugePages; meminfo still counts the THP."""
    m, p, c, _folio = _pmd(child_writes=1)
    assert c is not None
    labels = ("Rss", "Pss", "Shared_Dirty", "Private_Dirty", "AnonHugePages")
    assert _fields(p, *labels) == (2048, 1026, 2044, 4, 2048)
    assert _fields(c, *labels) == (2048, 1026, 2044, 4, 0)
    assert m.meminfo()["AnonHugePages"] == 2048


@pytest.mark.parametrize(("written", "expected"), [(1, "s" * 512), (0, "x" * 512)])
def test_pmd_pagemap_exclusive_follows_the_head_page(written: int, expected: str) -> None:
    """pagemap_pmd_range(): every page of a PMD mapping takes PM_MMAP_EXCLUSIVE from
    __folio_page_mapped_exclusively(folio, pmd_page()), the head: shared while the child
    maps the head even for a page of kpagecount 1 (probed A), exclusive once it does
    not, even for pages of kpagecount 2 (probed B)."""
    m, p, _c, _folio = _pmd(child_writes=written)
    assert _exclusive(p, 512) == expected
    counts = [m.kpagecount(p.pagemap(BASE + i * PAGE).pfn) for i in range(3)]
    assert counts == ([2, 1, 2] if written == 1 else [1, 2, 2])


def test_pmd_split_by_munmap_or_dontneed_loses_anonhugepages() -> None:
    """split_huge_pmd() of a partly unmapped THP: the pages stay in the now pte-mapped
    folio, AnonHugePages 0 in smaps and meminfo, AnonPages the pages still mapped;
    thp_split_pmd, thp_deferred_split_page and the 2048 kB split_deferred count once
    (probed; the vmas left keep THPeligible 1 while a 64 kB size fits)."""
    m, p, _c, _folio = _pmd(thp=ThpSettings(per_order={4: "always"}))
    p.munmap(BASE + 100 * PAGE, PAGE)
    assert [(e["Rss"], e["AnonHugePages"], e["THPeligible"]) for e in p.smaps()] \
        == [(400, 0, 1), (1644, 0, 1)]
    m2, q, _c2, _f2 = _pmd()
    q.madvise(BASE + 256 * PAGE, 256 * PAGE, MADV_DONTNEED)
    assert _fields(q, "Rss", "AnonHugePages") == (1024, 0)
    info = m2.meminfo()
    assert (info["AnonPages"], info["AnonHugePages"]) == (1024, 0)
    for machine in (m, m2):
        vm = machine.vmstat()
        assert (vm["thp_split_pmd"], vm["thp_deferred_split_page"]) == (1, 1)
        assert thp_sysfs.read(machine, "hugepages-2048kB/stats/split_deferred") == "1\n"


def test_huge_zero_pmd_is_not_accounted_and_reads_as_pm_file() -> None:
    """A read fault maps the huge zero folio: smaps_pmd_entry() skips it (Rss 0), and
    pagemap_pmd_range() reports pmd_page(), not anonymous, as PM_FILE, never exclusive
    (probed)."""
    m = Machine()
    p = m.spawn()
    p.mmap(BASE, 512 * PAGE, RW, PA | MAP_FIXED)
    p.madvise(BASE, 512 * PAGE, MADV_HUGEPAGE)
    p.read(BASE, 1)
    entry = p.pagemap(BASE + PAGE)
    assert (entry.present, entry.file_or_shared, entry.exclusive) == (True, True, False)
    assert _fields(p, "Rss", "Pss", "AnonHugePages", "THPeligible") == (0, 0, 0, 1)
    assert m.meminfo()["AnonHugePages"] == 0


# --- meminfo and vmstat ---------------------------------------------------------------

def test_meminfo_anonpages_counts_the_mapped_pages_of_a_partly_mapped_folio() -> None:
    """NR_ANON_MAPPED through the design's mapcount_mapped_pages (_nr_pages_mapped with
    per-page mapcounts): 16 pages, 12 after MADV_DONTNEED of 4; no AnonHugePages for an
    mTHP (NR_ANON_THPS counts PMD mappings only)."""
    m, p, _folio = _mthp()
    before = m.meminfo()["AnonPages"]
    assert before == 64 and m.meminfo()["AnonHugePages"] == 0
    p.madvise(BASE + 12 * PAGE, 4 * PAGE, MADV_DONTNEED)
    assert m.meminfo()["AnonPages"] == 48


def test_meminfo_anonhugepages_and_vmstat_count_pmd_mapped_folios() -> None:
    """NR_ANON_THPS: the pages of folios with a PMD mapping (meminfo in kB), shown by
    /proc/vmstat in PMD units (vmstat_start()); AnonPages counts the folio whole."""
    m, _p, _c, _folio = _pmd()
    info = m.meminfo()
    assert (info["AnonHugePages"], info["AnonPages"]) == (2048, 2048)
    assert m.vmstat()["nr_anon_transparent_hugepages"] == 1


def test_order0_counters_are_unchanged_by_large_folio_support() -> None:
    """Folios off: AnonPages and AnonHugePages as before (one page per mapped frame)."""
    m = Machine()
    p = m.spawn()
    a = p.mmap(0, 4 * PAGE, RW, PA)
    p.write(a, b"x" * (3 * PAGE))
    assert (m.meminfo()["AnonPages"], m.meminfo()["AnonHugePages"]) == (12, 0)
    assert m.vmstat()["nr_anon_transparent_hugepages"] == 0
    assert [e["THPeligible"] for e in p.smaps()] == [0]


# --- THPeligible: thp_vma_allowable_orders(TVA_SMAPS) ----------------------------------

@pytest.mark.parametrize(("pages", "skew", "advice", "eligible"), [
    (4, 0, None, 0),                # no 64 kB block fits
    (16, 1, None, 0),               # unaligned: the block ending at vm_end sticks out
    (32, 1, None, 1),               # one aligned block inside
    (16, 0, None, 1),
    (16, 1, MADV_HUGEPAGE, 0),      # VM_HUGEPAGE, but 2 MB does not fit either
    (16, 0, MADV_NOHUGEPAGE, 0),
])
def test_thp_eligible_needs_an_enabled_order_that_fits(pages: int, skew: int,
                                                       advice: int | None,
                                                       eligible: int) -> None:
    """Probed with hugepages-64kB ``always`` and the PMD size ``inherit`` (madvise)."""
    m = Machine(thp=ThpSettings(per_order={4: "always"}))
    p = m.spawn()
    a = p.mmap(BASE + 16 * PAGE + skew * PAGE, pages * PAGE, RW, PA | MAP_FIXED)
    if advice is not None:
        p.madvise(a, pages * PAGE, advice)
    assert _vma(p, a)["THPeligible"] == eligible


def test_thp_eligible_with_the_reference_knobs_needs_madv_hugepage_and_2mb() -> None:
    """Default knobs (``madvise``, 2048 kB ``inherit``, the rest ``never``): only a
    VM_HUGEPAGE vma holding an aligned 2 MB block; file vmas never (no
    CONFIG_READ_ONLY_THP_FOR_FS, shmem THP ``never``)."""
    m = Machine()
    p = m.spawn()
    a = p.mmap(BASE, 1024 * PAGE, RW, PA | MAP_FIXED)
    assert _vma(p, a)["THPeligible"] == 0
    p.madvise(a, 1024 * PAGE, MADV_HUGEPAGE)
    assert p.vmas()[0].flags & VM_HUGEPAGE and _vma(p, a)["THPeligible"] == 1
    b = p.mmap(BASE + (6 << 20), 511 * PAGE, RW, PA | MAP_FIXED)
    p.madvise(b, 511 * PAGE, MADV_HUGEPAGE)
    assert _vma(p, b)["THPeligible"] == 0
    m.create_file("/f", b"x" * (1024 * PAGE))
    fd = p.open("/f")
    c = p.mmap(BASE + (8 << 20), 1024 * PAGE, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd)
    p.madvise(c, 1024 * PAGE, MADV_HUGEPAGE)
    assert _vma(p, c)["THPeligible"] == 0


# --- /sys/kernel/mm/transparent_hugepage -----------------------------------------------

def test_thp_sysfs_renders_the_knobs_and_stats_as_the_kernel_prints_them() -> None:
    """enabled_show() / anon_enabled_show(): every mode, the current one bracketed; each
    stat one decimal line."""
    m = Machine()
    m.mthp_stats.count(4, "anon_fault_alloc", 3)
    assert thp_sysfs.read(m, "enabled") == "always [madvise] never\n"
    assert thp_sysfs.read(m, f"{thp_sysfs.THP_SYSFS}/hugepages-2048kB/enabled") \
        == "always [inherit] madvise never\n"
    assert thp_sysfs.read(m, "hugepages-64kB/enabled") == "always inherit madvise [never]\n"
    assert thp_sysfs.read(m, "hugepages-64kB/stats/anon_fault_alloc") == "3\n"
    assert thp_sysfs.read(m, "hpage_pmd_size") == "2097152\n"
    assert thp_sysfs.read(m, "use_zero_page") == "1\n"
    with pytest.raises(FileNotFoundError):
        thp_sysfs.read(m, "hugepages-8kB/enabled")  # order 1: no anonymous knob


def test_thp_sysfs_stats_follow_an_mthp_through_fault_partial_unmap_and_free() -> None:
    """The probed deltas, read through the sysfs files: a 64 kB fault counts
    anon_fault_alloc and nr_anon; munmap of one page queues it for deferred split
    (split_deferred, nr_anon_partially_mapped; thp_deferred_split_page only for PMD
    sizes: deferred_split_folio()); freeing it drops both gauges."""
    m, p, _folio = _mthp()

    def stats() -> tuple[int, ...]:
        return tuple(int(thp_sysfs.read(m, f"hugepages-64kB/stats/{name}"))
                     for name in ("anon_fault_alloc", "nr_anon", "split_deferred",
                                  "nr_anon_partially_mapped"))
    assert stats() == (1, 1, 0, 0)
    p.munmap(BASE + 8 * PAGE, PAGE)
    assert stats() == (1, 1, 1, 1)
    assert m.vmstat()["thp_deferred_split_page"] == 0
    p.munmap(BASE, 16 * PAGE)
    assert stats() == (1, 0, 1, 0)


def test_thp_sysfs_write_sets_knobs_and_refuses_what_the_kernel_refuses() -> None:
    """enabled_store(): a trailing newline is fine; ``inherit`` only per size; bad values
    EINVAL with nothing changed; read-only files EACCES (probed)."""
    m = Machine()
    thp_sysfs.write(m, "hugepages-64kB/enabled", "always\n")
    assert m.thp.allowed_orders(hugepage=False) == [4]
    thp_sysfs.write(m, "enabled", "never")
    assert m.thp.mode(9) == "never"
    for path, value in [("enabled", "inherit"), ("hugepages-64kB/enabled", "sometimes"),
                        ("use_zero_page", "2")]:
        with pytest.raises(OSError) as e:
            thp_sysfs.write(m, path, value)
        assert e.value.errno == errno.EINVAL
    assert thp_sysfs.read(m, "enabled") == "always madvise [never]\n"
    with pytest.raises(PermissionError):
        thp_sysfs.write(m, "hugepages-64kB/stats/nr_anon", "1")
    with pytest.raises(TypeError, match="path"):
        thp_sysfs.read(m, 4)  # type: ignore[arg-type]


REAL = thp_sysfs.THP_SYSFS


@pytest.mark.skipif(not os.path.exists(f"{REAL}/hugepages-64kB/stats"),
                    reason="no mTHP sysfs on this machine")
def test_thp_sysfs_matches_this_machines_real_files() -> None:
    """With the knobs set to the values the real files show, the rendered text is the
    real text byte for byte; the stats directory lists the same names."""
    def real(rel: str) -> str:
        with open(f"{REAL}/{rel}") as f:
            return f.read()

    def current(rel: str) -> str:
        return real(rel).split("[")[1].split("]")[0]

    m = Machine(thp=ThpSettings(enabled=current("enabled"),
                                per_order={o: current(f"hugepages-{4 << o}kB/enabled")
                                           for o in (4, 9)}))
    for rel in ("enabled", "hugepages-64kB/enabled", "hugepages-2048kB/enabled",
                "hpage_pmd_size"):
        assert thp_sysfs.read(m, rel) == real(rel)
    assert real("enabled").replace("[", "").replace("]", "").split() == list(THP_MODES)
    assert real("hugepages-64kB/enabled").replace("[", "").replace("]", "").split() \
        == list(MTHP_MODES)
    assert sorted(os.listdir(f"{REAL}/hugepages-64kB/stats")) == sorted(MTHP_STAT_NAMES)
    assert sorted(os.listdir(f"{REAL}/khugepaged")) == sorted(
        f.split("/")[1] for f in thp_sysfs.files() if f.startswith("khugepaged/"))


# --- khugepaged/ (mm/khugepaged.c khugepaged_attr; kernel-facts 22, branch thp-gaps) ----

HPAGE = 2 << 20
KHUGEPAGED_DEFAULTS = {"alloc_sleep_millisecs": 60000, "defrag": 1, "full_scans": 0,
                       "max_ptes_none": 511, "max_ptes_shared": 256, "max_ptes_swap": 64,
                       "pages_collapsed": 0, "pages_to_scan": 4096,
                       "scan_sleep_millisecs": 10000}


def test_khugepaged_sysfs_lists_the_kernels_files_with_the_probed_defaults() -> None:
    """The directory has the nine files of 6.18, each a decimal number and a newline."""
    m = Machine()
    names = [f.split("/")[1] for f in thp_sysfs.files() if f.startswith("khugepaged/")]
    assert names == sorted(KHUGEPAGED_DEFAULTS)
    for name, value in KHUGEPAGED_DEFAULTS.items():
        assert thp_sysfs.read(m, f"khugepaged/{name}") == f"{value}\n"


def test_khugepaged_sysfs_stores_take_what_kstrtoul_takes_within_range() -> None:
    """max_ptes_*_store(): at most HPAGE_PMD_NR - 1; pages_to_scan_store(): not 0;
    defrag a 0/1 flag; '+N' and a trailing newline are taken; '512', '-1', ' N', '0x1'
    are EINVAL and change nothing; full_scans and pages_collapsed are read-only (EACCES)
    (probed by tools/kernel_probe/khugepaged_sysfs.sh)."""
    m = Machine()
    thp_sysfs.write(m, "khugepaged/max_ptes_none", "+0\n")
    thp_sysfs.write(m, f"{thp_sysfs.THP_SYSFS}/khugepaged/pages_to_scan", "512")
    assert (m.khugepaged.max_ptes_none, m.khugepaged.pages_to_scan) == (0, 512)
    for name, value in [("max_ptes_none", "512"), ("max_ptes_swap", "-1"),
                        ("max_ptes_shared", " 1"), ("max_ptes_none", "0x1"),
                        ("pages_to_scan", "0"), ("scan_sleep_millisecs", "4294967296"),
                        ("alloc_sleep_millisecs", "abc"), ("defrag", "2"),
                        ("max_ptes_none", "1\n\n")]:
        with pytest.raises(OSError) as e:
            thp_sysfs.write(m, f"khugepaged/{name}", value)
        assert e.value.errno == errno.EINVAL, (name, value)
    assert thp_sysfs.read(m, "khugepaged/max_ptes_none") == "0\n"
    for name in ("full_scans", "pages_collapsed"):
        with pytest.raises(PermissionError):
            thp_sysfs.write(m, f"khugepaged/{name}", "0")
    with pytest.raises(FileNotFoundError):
        thp_sysfs.read(m, "khugepaged/cursor")


def test_khugepaged_knob_written_through_sysfs_bounds_the_scan() -> None:
    """hpage_collapse_scan_pmd() honours max_ptes_none as stored through sysfs: 10
    written pages of a 2 MiB range exceed a limit of 0 (thp_scan_exceed_none_pte), then
    collapse with 511; pages_collapsed and full_scans show the scans."""
    m = Machine(ram_pages=1 << 12)
    p = m.spawn()
    base = p.mmap(0, 3 * HPAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    a = (base + HPAGE - 1) & ~(HPAGE - 1)
    for i in range(10):
        p.write(a + i * 4096, b"k")
    p.madvise(a, HPAGE, MADV_HUGEPAGE)
    thp_sysfs.write(m, "khugepaged/max_ptes_none", "0")
    assert m.khugepaged_scan() == 0 and m.vm_events.thp_scan_exceed_none_pte == 1
    thp_sysfs.write(m, "khugepaged/max_ptes_none", "511")
    assert m.khugepaged_scan() == 1
    assert thp_sysfs.read(m, "khugepaged/pages_collapsed") == "1\n"
    assert thp_sysfs.read(m, "khugepaged/full_scans") == "2\n"
    assert p.read(a + 9 * 4096, 1) == b"k"
