"""The counters /proc shows: smaps, smaps_rollup, status, meminfo, vmstat, kpageflags.

Each view is an object and a text in Linux's exact format; the parsers that read the
simulator's text read this machine's real /proc files too, and give back the same text.
Scenario values follow fs/proc/task_mmu.c (smaps_account(), task_mem()) and the 6.18 probes
of docs/kernel-facts.md ("The counters /proc shows"); every scenario also passes the
brute-force recount of mmcore.testing.recount.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import struct

import pytest

from mmcore import (
    MAP_ANONYMOUS,
    MAP_PRIVATE,
    MAP_SHARED,
    PROT_READ,
    PROT_WRITE,
    Machine,
    Process,
)
from mmcore.kpageflags import KPF_BITS, flag_names, parse_kpageflags
from mmcore.meminfo import parse_meminfo
from mmcore.mm import MM_ANONPAGES
from mmcore.proc_status import STATUS_FIELDS, parse_status
from mmcore.smaps import parse_smaps, parse_smaps_rollup
from mmcore.testing import find_violations
from mmcore.testing.recount import recount_problems
from mmcore.vmstat import VMSTAT_NAMES, parse_vmstat

PAGE = 4096
RW = PROT_READ | PROT_WRITE
PA = MAP_PRIVATE | MAP_ANONYMOUS


def _views_parse_back(m: Machine, p: Process) -> None:
    """Every text view parses (with the parser of the real files) into the object that
    rendered it, and the counters equal the brute-force recount."""
    assert parse_smaps(p.smaps_text()) == p.smaps()
    assert parse_smaps_rollup(p.smaps_rollup_text()) == p.smaps_rollup()
    assert parse_status(p.status_text()) == p.status()
    assert parse_meminfo(m.meminfo_text()) == m.meminfo()
    assert parse_vmstat(m.vmstat_text()) == m.vmstat()
    assert recount_problems(m) == []


# --- the real files ------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/proc/self/smaps", "/proc/self/smaps_rollup",
                                  "/proc/meminfo", "/proc/vmstat"])
def test_real_proc_files_parse_and_render_back_byte_for_byte(path: str) -> None:
    """The parsers read this machine's real files; rendering the objects gives the very
    same text (field order, padding and units are Linux's)."""
    parse = {"/proc/self/smaps": lambda t: "".join(e.text() for e in parse_smaps(t)),
             "/proc/self/smaps_rollup": lambda t: parse_smaps_rollup(t).text(),
             "/proc/meminfo": lambda t: parse_meminfo(t).text(),
             "/proc/vmstat": lambda t: parse_vmstat(t).text()}[path]
    with open(path) as f:
        text = f.read()
    assert parse(text) == text


def test_smaps_protection_key_line_of_a_pku_machine_round_trips() -> None:
    """__show_smap() prints "ProtectionKey:" after THPeligible where arch_pkeys_enabled()
    (x86 with PKU), and not elsewhere: both forms parse and render back unchanged, the
    simulator's own smaps (no pkeys modelled) has no such line."""
    m = Machine()
    p = m.spawn()
    p.mmap(0, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    plain = p.smaps_text()
    assert "ProtectionKey" not in plain
    keyed = plain.replace("THPeligible:           0\n",
                          "THPeligible:           0\nProtectionKey:         0\n")
    assert keyed != plain
    for text in (plain, keyed):
        assert "".join(e.text() for e in parse_smaps(text)) == text
    assert parse_smaps(keyed)[0]["ProtectionKey"] == 0


def test_real_status_memory_lines_parse_and_render_back() -> None:
    """The task_mem() lines of the real /proc/self/status come back unchanged (the other
    status lines are not memory counters and are skipped)."""
    with open("/proc/self/status") as f:
        text = f.read()
    labels = {fl.label for fl in STATUS_FIELDS}
    block = "".join(f"{line}\n" for line in text.splitlines() if line.split(":")[0] in labels)
    assert parse_status(text).text() == block


def test_vmstat_names_are_those_of_the_real_kernel() -> None:
    """The simulator's /proc/vmstat has the real file's lines in the real order."""
    with open("/proc/vmstat") as f:
        assert tuple(parse_vmstat(f.read()).values) == VMSTAT_NAMES


def test_real_kpageflags_of_a_written_anonymous_page() -> None:
    """kpageflags of a page this process wrote: UPTODATE, MMAP, ANON, SWAPBACKED, as the
    simulator shows for a mapped anonymous page."""
    if not os.access("/proc/kpageflags", os.R_OK):
        pytest.skip("reading /proc/kpageflags needs root")
    buf = mmap.mmap(-1, PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    buf[0:1] = b"x"
    vaddr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    with open("/proc/self/pagemap", "rb") as pm:
        pm.seek(vaddr // PAGE * 8)
        (entry,) = struct.unpack("<Q", pm.read(8))
    pfn = entry & ((1 << 55) - 1)
    assert entry >> 63 and pfn
    with open("/proc/kpageflags", "rb") as kf:
        kf.seek(pfn * 8)
        (flags,) = parse_kpageflags(kf.read(8))
    assert {"UPTODATE", "MMAP", "ANON", "SWAPBACKED"} <= set(flag_names(flags))


def test_malformed_proc_text_names_file_and_line() -> None:
    """A malformed line is one ValueError naming the file and line."""
    with pytest.raises(ValueError, match=r"^meminfo:2: expected"):
        parse_meminfo("MemTotal:  10 kB\nMemFree: lots kB\n")
    with pytest.raises(ValueError, match=r"^vmstat:1: expected"):
        parse_vmstat("pgfault\n")
    with pytest.raises(ValueError, match=r"^smaps:1: counter before any maps line"):
        parse_smaps("Rss: 4 kB\n")


# --- scenarios -------------------------------------------------------------------------

def test_fork_and_cow_smaps_split_shared_and_private() -> None:
    """After fork, the three pages still shared count half to each process's Pss and as
    Shared_Dirty; the page the child copied is Private_Dirty in both (smaps_account())."""
    m = Machine()
    p = m.spawn()
    a = p.mmap(0, 4 * PAGE, RW, PA)
    for i in range(4):
        p.write(a + i * PAGE, b"x")
    c = p.fork()
    c.write(a, b"y")
    for proc in (p, c):
        (e,) = proc.smaps()
        assert (e["Rss"], e["Pss"], e["Pss_Dirty"]) == (16, 10, 10)
        assert (e["Shared_Dirty"], e["Private_Dirty"], e["Anonymous"]) == (12, 4, 16)
        assert proc.status()["RssAnon"] == 16 and proc.status()["VmRSS"] == 16
    assert p.smaps()[0]["Referenced"] == 16  # the parent's ptes are young
    assert c.smaps()[0]["Referenced"] == 4  # fork copies ptes old (pte_mkold)
    assert m.meminfo()["AnonPages"] == 5 * 4
    _views_parse_back(m, c)


def test_file_mapping_rss_moves_from_file_to_anon_on_private_write() -> None:
    """A private file mapping read whole is RssFile; a write copies one page into
    RssAnon, the cached original stays Cached but is no longer Mapped."""
    m = Machine()
    m.create_file("/f", b"F" * 4 * PAGE)
    p = m.spawn()
    fd = p.open("/f")
    a = p.mmap(0, 4 * PAGE, RW, MAP_PRIVATE, fd, 0)
    for i in range(4):
        p.read(a + i * PAGE, 1)
    assert (p.status()["RssFile"], p.status()["RssAnon"]) == (16, 0)
    assert p.smaps()[0]["Private_Clean"] == 16
    p.write(a, b"w")
    st = p.status()
    assert (st["RssFile"], st["RssAnon"], st["VmRSS"]) == (12, 4, 16)
    info = m.meminfo()
    assert (info["Mapped"], info["Cached"], info["AnonPages"]) == (12, 16, 4)
    _views_parse_back(m, p)


def test_swap_shows_in_vmswap_smaps_and_vmstat() -> None:
    """A swapped-out page is VmSwap and smaps Swap/SwapPss, leaves Rss, and counts one
    pswpout; reading it back is a major fault and one pswpin."""
    m = Machine()
    p = m.spawn()
    a = p.mmap(0, 4 * PAGE, RW, PA)
    for i in range(4):
        p.write(a + i * PAGE, b"s")
    m.try_to_unmap(p.pagemap(a + PAGE).pfn)
    (e,) = p.smaps()
    assert (e["Rss"], e["Swap"], e["SwapPss"]) == (12, 4, 4)
    assert p.status()["VmSwap"] == 4
    assert m.meminfo()["SwapFree"] == m.meminfo()["SwapTotal"] - 4
    _views_parse_back(m, p)
    before = m.vmstat()
    assert p.read(a + PAGE, 1) == b"s"
    after = m.vmstat()
    assert after["pswpout"] == 1 and after["pswpin"] == 1
    assert after["pgmajfault"] - before["pgmajfault"] == 1
    assert after["pgfault"] - before["pgfault"] == 1
    assert p.status()["VmSwap"] == 0
    _views_parse_back(m, p)


def test_shared_anonymous_memory_is_rss_shmem_and_meminfo_shmem() -> None:
    """MAP_SHARED|MAP_ANONYMOUS pages are shmem: RssShmem, Pss_Shmem, meminfo Shmem."""
    m = Machine()
    p = m.spawn()
    a = p.mmap(0, 2 * PAGE, RW, MAP_SHARED | MAP_ANONYMOUS)
    p.write(a, b"s")
    c = p.fork()
    c.read(a, 1)
    assert p.status()["RssShmem"] == 4 and p.status()["RssAnon"] == 0
    assert p.smaps_rollup()["Pss_Shmem"] == 2
    assert m.meminfo()["Shmem"] == 4 and m.meminfo()["Mapped"] == 4
    _views_parse_back(m, c)


def test_zero_page_is_not_counted_in_rss() -> None:
    """A read of untouched anonymous memory maps the zero page, which smaps and status
    do not count (vm_normal_page() returns NULL for it)."""
    m = Machine()
    p = m.spawn()
    a = p.mmap(0, PAGE, RW, PA)
    p.read(a, 1)
    assert p.smaps()[0]["Rss"] == 0 and p.status()["VmRSS"] == 0
    assert m.kpageflags(p.pagemap(a).pfn) == (1 << KPF_BITS["ZERO_PAGE"]
                                              | 1 << KPF_BITS["RESERVED"])


def test_kpageflags_of_anonymous_free_and_locked_frames() -> None:
    """A written anonymous page: UPTODATE LRU MMAP ANON SWAPBACKED and bit 34
    (PG_anon_exclusive); mlocked it adds UNEVICTABLE and MLOCKED; a free frame is BUDDY."""
    m = Machine()
    p = m.spawn()
    a = p.mmap(0, PAGE, RW, PA)
    p.write(a, b"x")
    pfn = p.pagemap(a).pfn
    assert flag_names(m.kpageflags(pfn)) == ["UPTODATE", "LRU", "MMAP", "ANON", "SWAPBACKED",
                                             "MAPPEDTODISK"]
    p.mlock(a, PAGE)
    assert {"UNEVICTABLE", "MLOCKED"} <= set(flag_names(m.kpageflags(pfn)))
    assert m.meminfo()["Mlocked"] == 4 and m.meminfo()["Unevictable"] == 4
    assert p.status()["VmLck"] == 4 and p.smaps()[0]["Locked"] == 4
    assert "lo" in p.smaps()[0].maps.vm_flags.split()
    free = m.physmem.nr_frames - 1  # never allocated: a fresh machine hands out low pfns first
    assert flag_names(m.kpageflags(free)) == ["BUDDY"]
    assert parse_kpageflags(m.kpageflags_bytes(pfn, 1)) == [m.kpageflags(pfn)]


def test_vmhwm_and_vmpeak_keep_the_peak_after_munmap() -> None:
    """update_hiwater_rss()/update_hiwater_vm(): VmHWM and VmPeak remember the largest
    RSS and size once munmap has lowered them."""
    m = Machine()
    p = m.spawn()
    a = p.mmap(0, 8 * PAGE, RW, PA)
    for i in range(8):
        p.write(a + i * PAGE, b"h")
    p.munmap(a, 6 * PAGE)
    st = p.status()
    assert (st["VmRSS"], st["VmHWM"], st["VmSize"], st["VmPeak"]) == (8, 32, 8, 32)
    assert st["VmData"] == 8


def test_pgfault_counts_handled_faults_not_sigsegv() -> None:
    """count_vm_event(PGFAULT) is in handle_mm_fault(): an access that is a SIGSEGV never
    gets there, a fault that the pte already allows never happens."""
    m = Machine()
    p = m.spawn()
    a = p.mmap(0, PAGE, PROT_READ, PA)
    p.read(a, 1)
    p.read(a, 1)
    with pytest.raises(Exception, match="SEGV_ACCERR"):
        p.write(a, b"x")
    assert m.vmstat()["pgfault"] == 1


def test_recount_catches_a_wrong_rss_counter() -> None:
    """The invariants compare the incremental counters with the recount: an RssAnon that
    drifted from the page tables is reported."""
    m = Machine()
    p = m.spawn()
    a = p.mmap(0, PAGE, RW, PA)
    p.write(a, b"x")
    assert find_violations(m) == []
    p.mm.rss_stat[MM_ANONPAGES] += 1
    assert any("RssAnon counter is 2 pages but the page table holds 1" in v
               for v in find_violations(m))


@pytest.mark.parametrize("seed", range(3))
def test_random_sequences_render_views_that_parse_back_and_match_the_recount(seed: int) -> None:
    """Seeded random operation mixes (fork, COW, mremap, files, swap-out...): at every
    tenth step every process's smaps, smaps_rollup and status, and the machine's meminfo
    and vmstat, parse back into their objects and agree with the recount."""
    import random

    from mmcore.testing.driver import Driver
    from mmcore.testing.generator import OpGenerator, RandomChooser

    driver = Driver("anon_vma_chain")
    gen = OpGenerator(driver, RandomChooser(random.Random(seed)))
    gen.spawn()
    m = driver.machine
    for step in range(300):
        gen.random_step()
        if step % 10 == 0:
            for proc in m.live_processes():
                _views_parse_back(m, proc)
    driver.finish()


def test_real_smaps_of_another_running_process_parses() -> None:
    """The parser reads the smaps and status of a separate running process (a sleeping
    child), not only this one's, and its Rss sums to the rollup's Rss."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "print(flush=True); import time; "
                              "time.sleep(30)"], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None
        child.stdout.readline()  # the child is up and idle
        with open(f"/proc/{child.pid}/smaps") as f:
            text = f.read()
        with open(f"/proc/{child.pid}/smaps_rollup") as f:
            rollup = parse_smaps_rollup(f.read(), f"/proc/{child.pid}/smaps_rollup")
        with open(f"/proc/{child.pid}/status") as f:
            status = parse_status(f.read())
    finally:
        child.kill()
        child.wait()
    entries = parse_smaps(text, f"/proc/{child.pid}/smaps")
    assert "".join(e.text() for e in entries) == text
    assert sum(e["Rss"] for e in entries) == rollup["Rss"]
    assert status["VmRSS"] == status["RssAnon"] + status["RssFile"] + status["RssShmem"]


def test_second_read_of_a_file_page_activates_it() -> None:
    """mark_page_accessed() under lru2: the second read() of a cached page moves it to the
    active list: PG_active (kpageflags ACTIVE, meminfo Active(file)) and one pgactivate."""
    m = Machine()
    m.create_file("/f", b"F" * PAGE)
    p = m.spawn()
    fd = p.open("/f")
    p.pread(fd, 1, 0)
    assert m.meminfo()["Inactive(file)"] == 4 and m.vmstat()["pgactivate"] == 0
    p.pread(fd, 1, 0)
    assert m.meminfo()["Active(file)"] == 4 and m.vmstat()["pgactivate"] == 1
    pfn = m.files["/f"].pages[0].pfn
    assert "ACTIVE" in flag_names(m.kpageflags(pfn))


def test_swapped_shmem_counts_in_smaps_swap_but_not_vmswap() -> None:
    """Under memory pressure shmem pages go to swap from the page cache: the shmem vma's
    smaps Swap shows them (shmem_swap_usage()), VmSwap counts only swap ptes."""
    m = Machine(ram_pages=64, swap_pages=128)
    p = m.spawn()
    s = p.mmap(0, 8 * PAGE, RW, MAP_SHARED | MAP_ANONYMOUS)
    for i in range(8):
        p.write(s + i * PAGE, b"s")
    a = p.mmap(0, 80 * PAGE, RW, PA)
    for i in range(80):
        p.write(a + i * PAGE, b"a")
    (shm,) = [v for v in p.vmas() if v.start == s]
    assert shm.file is not None
    swapped_shmem = len(shm.file.inode.swapped)
    assert swapped_shmem
    by_start = {e.maps.start: e for e in p.smaps()}
    swap_ptes = sum(1 for pte in p.mm.pgtable.values() if pte and not pte & 1)
    assert by_start[s]["Swap"] == swapped_shmem * 4
    assert p.status()["VmSwap"] == swap_ptes * 4 == by_start[a]["Swap"]
    _views_parse_back(m, p)
