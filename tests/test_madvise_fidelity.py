"""PROT_NONE ptes, guard regions, MADV_REMOVE, lazy MADV_FREE, MADV_COLD, the populate
family and MAP_POPULATE/MAP_LOCKED, each as probed on Linux 6.18 (docs/kernel-facts.md,
section "12. madvise and protection fidelity")."""

from __future__ import annotations

import errno
import os

import pytest

from mmcore import Machine, fork, machine
from mmcore.constants import (
    MADV_COLD,
    MADV_DONTNEED,
    MADV_FREE,
    MADV_GUARD_INSTALL,
    MADV_GUARD_REMOVE,
    MADV_KEEPONFORK,
    MADV_PAGEOUT,
    MADV_POPULATE_READ,
    MADV_POPULATE_WRITE,
    MADV_REMOVE,
    MADV_WIPEONFORK,
    MAP_ANONYMOUS,
    MAP_LOCKED,
    MAP_POPULATE,
    MAP_PRIVATE,
    MAP_SHARED,
    MREMAP_MAYMOVE,
    PROT_EXEC,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
)
from mmcore.errors import SegmentationFault
from mmcore.kpageflags import flag_names
from mmcore.mm import Mm
from mmcore.page import PG_LAZYFREE, PG_REFERENCED
from mmcore.pagetable import GUARD_PTE, pte_young
from mmcore.proc import PM_GUARD_REGION
from mmcore.process import Process
from mmcore.testing import ConformanceFailure, run_random_sequence
from mmcore.testing.generator import OpGenerator
from mmcore.testing.invariants import find_violations

PG = 4096
RW = PROT_READ | PROT_WRITE
PA = MAP_PRIVATE | MAP_ANONYMOUS
SA = MAP_SHARED | MAP_ANONYMOUS


@pytest.fixture
def m() -> Machine:
    return Machine(rmap="anon_vma_chain")


def _segv(proc: Process, addr: int, write: bool = False) -> str:
    with pytest.raises(SegmentationFault) as info:
        if write:
            proc.write(addr, b"w")
        else:
            proc.read(addr, 1)
    return info.value.code


def _errno(call: object, *args: int) -> int:
    with pytest.raises(OSError) as info:
        call(*args)  # type: ignore[operator]
    return info.value.errno


# --- #10.1 PROT_NONE and protection -------------------------------------------------------

def test_read_of_present_page_through_prot_none_is_segv_accerr(m: Machine) -> None:
    """A page faulted before mprotect(PROT_NONE) faults on the next read (SEGV_ACCERR);
    its pte keeps the page, so pagemap still shows it present and exclusive."""
    p = m.spawn()
    a = p.mmap(0, PG, RW, PA)
    p.write(a, b"x")
    pfn = p.pagemap(a).pfn
    p.mprotect(a, PG, PROT_NONE)
    assert _segv(p, a) == "SEGV_ACCERR"
    assert _segv(p, a, write=True) == "SEGV_ACCERR"
    entry = p.pagemap(a)
    assert entry.present and entry.exclusive and entry.pfn == pfn
    assert find_violations(m) == []


def test_mprotect_back_from_prot_none_makes_exclusive_anon_writable_without_fault(
        m: Machine) -> None:
    """change_pte_range() + can_change_pte_writable(): NONE -> RW restores the content
    and maps an exclusive anonymous page writable at once (0 faults on the write)."""
    p = m.spawn()
    a = p.mmap(0, PG, RW, PA)
    p.write(a, b"x")
    p.mprotect(a, PG, PROT_NONE)
    p.mprotect(a, PG, RW)
    before = m.counters.fault_cow_reuse + m.counters.fault_cow_copy
    p.write(a, b"y")
    assert m.counters.fault_cow_reuse + m.counters.fault_cow_copy == before
    assert p.read(a, 1) == b"y"


def test_mprotect_keeps_cow_sharing_read_only_after_fork(m: Machine) -> None:
    """A page shared copy-on-write with a child is not exclusive: R -> RW leaves it
    read-only, and the write copies it (probed: 1 fault in the child)."""
    p = m.spawn()
    a = p.mmap(0, PG, RW, PA)
    p.write(a, b"x")
    c = p.fork()
    c.mprotect(a, PG, PROT_READ)
    c.mprotect(a, PG, RW)
    before = m.counters.fault_cow_copy
    c.write(a, b"c")
    assert m.counters.fault_cow_copy == before + 1
    assert p.read(a, 1) == b"x"


def test_exec_only_and_write_only_mappings_are_readable_on_x86(m: Machine) -> None:
    """Without protection keys (the probed CPU has no pku), PROT_EXEC alone and
    PROT_WRITE alone both imply read; exec-only refuses writes."""
    p = m.spawn()
    x = p.mmap(0, PG, PROT_EXEC, PA)
    assert p.read(x, 1) == b"\0"
    assert _segv(p, x, write=True) == "SEGV_ACCERR"
    w = p.mmap(0, PG, PROT_WRITE, PA)
    p.write(w, b"w")
    assert p.read(w, 1) == b"w"


def test_prot_none_page_survives_mremap_and_fork_still_inaccessible(m: Machine) -> None:
    """PROT_NONE ptes move with mremap and are copied by fork: neither makes them
    accessible, and the invariant (PROT_NONE vma <=> PROT_NONE pte) holds."""
    p = m.spawn()
    a = p.mmap(0, PG, RW, PA)
    p.write(a, b"z")
    p.mprotect(a, PG, PROT_NONE)
    b = p.mremap(a, PG, 2 * PG, MREMAP_MAYMOVE)
    c = p.fork()
    assert _segv(p, b) == "SEGV_ACCERR" and _segv(c, b) == "SEGV_ACCERR"
    assert find_violations(m) == []
    c.mprotect(b, PG, PROT_READ)
    assert c.read(b, 1) == b"z"


# --- #10.3 guard regions -------------------------------------------------------------------

def test_guard_region_faults_segv_maperr_and_shows_pagemap_bit_58(m: Machine) -> None:
    """MADV_GUARD_INSTALL: any access is SIGSEGV (SEGV_MAPERR); pagemap reads the
    probed raw 0x440000000000009f (PM_SWAP | PM_GUARD_REGION, not present)."""
    p = m.spawn()
    a = p.mmap(0, 4 * PG, RW, PA)
    p.write(a + PG, b"g")
    p.madvise(a + PG, PG, MADV_GUARD_INSTALL)
    assert _segv(p, a + PG) == "SEGV_MAPERR"
    assert _segv(p, a + PG, write=True) == "SEGV_MAPERR"
    entry = p.pagemap(a + PG)
    assert entry.guard and not entry.present
    assert entry.value == 0x440000000000009F and entry.value & PM_GUARD_REGION
    assert len(p.maps()) == 1  # the vma is not split
    assert find_violations(m) == []


def test_guard_remove_leaves_zeros_the_old_content_is_gone(m: Machine) -> None:
    """Installing zaps the page first; MADV_GUARD_REMOVE clears only the marker, so the
    page reads zeros; neighbours keep their content."""
    p = m.spawn()
    a = p.mmap(0, 2 * PG, RW, PA)
    p.write(a, b"keep")
    p.write(a + PG, b"lost")
    p.madvise(a + PG, PG, MADV_GUARD_INSTALL)
    p.madvise(a, 2 * PG, MADV_GUARD_REMOVE)
    assert p.pagemap(a + PG).value == 0
    assert p.read(a, 4) == b"keep"
    assert p.read(a + PG, 4) == bytes(4)


def test_guard_survives_dontneed_free_pageout_cold_and_mprotect(m: Machine) -> None:
    """zap_nonpresent_ptes() keeps markers: MADV_DONTNEED, FREE, PAGEOUT, COLD and
    mprotect leave the guard in place."""
    p = m.spawn()
    a = p.mmap(0, 2 * PG, RW, PA)
    p.madvise(a, PG, MADV_GUARD_INSTALL)
    for advice in (MADV_DONTNEED, MADV_FREE, MADV_PAGEOUT, MADV_COLD):
        p.madvise(a, 2 * PG, advice)
    p.mprotect(a, PG, PROT_READ)
    assert _segv(p, a) == "SEGV_MAPERR"


def test_guard_is_inherited_by_fork_unless_wipeonfork(m: Machine) -> None:
    """Guard markers are copied at fork (private and shared vmas alike); a
    WIPEONFORK vma's child starts empty, without them."""
    p = m.spawn()
    a = p.mmap(0, PG, RW, PA)
    s = p.mmap(0, PG, RW, SA)
    w = p.mmap(0, PG, RW, PA)
    for addr in (a, s, w):
        p.madvise(addr, PG, MADV_GUARD_INSTALL)
    p.madvise(w, PG, MADV_WIPEONFORK)
    c = p.fork()
    assert _segv(c, a) == "SEGV_MAPERR" and _segv(c, s) == "SEGV_MAPERR"
    assert c.read(w, 1) == b"\0"
    assert find_violations(m) == []


def test_guard_moves_with_mremap_and_munmap_drops_it(m: Machine) -> None:
    """move_ptes() carries the marker to the new address; munmap frees the page tables,
    so a new mapping at the same place is accessible."""
    p = m.spawn()
    a = p.mmap(0, 2 * PG, RW, PA)
    p.madvise(a + PG, PG, MADV_GUARD_INSTALL)
    p.mmap(a + 2 * PG, PG, PROT_READ, PA | 0x10)  # a neighbour forces the move
    b = p.mremap(a, 2 * PG, 8 * PG, MREMAP_MAYMOVE)
    assert b != a and _segv(p, b + PG) == "SEGV_MAPERR"
    p.munmap(b, 8 * PG)
    c = p.mmap(b, 8 * PG, RW, PA | 0x10)  # MAP_FIXED
    assert p.read(c + PG, 1) == b"\0"
    assert find_violations(m) == []


def test_guard_install_refused_on_mlocked_vma_and_mlock_over_guard_is_enomem(
        m: Machine) -> None:
    """is_valid_guard_vma(): EINVAL on VM_LOCKED. mlock over a guard locks the vma but
    its populate faults (EFAULT), reported as ENOMEM."""
    p = m.spawn()
    a = p.mmap(0, 2 * PG, RW, PA)
    p.mlock(a, 2 * PG)
    assert _errno(p.madvise, a, PG, MADV_GUARD_INSTALL) == errno.EINVAL
    b = p.mmap(0, 2 * PG, RW, PA)
    p.madvise(b, PG, MADV_GUARD_INSTALL)
    assert _errno(p.mlock, b, 2 * PG) == errno.ENOMEM
    assert "lo" in p.maps()[0].vm_flags.split() or any(
        "lo" in e.vm_flags.split() for e in p.maps() if e.start <= b < e.end)


# --- #10.4 MADV_REMOVE ---------------------------------------------------------------------

def test_madv_remove_on_shared_anon_frees_the_page_and_reads_zero(m: Machine) -> None:
    """shmem punch hole: the page is freed, and a later read (in any process sharing
    it) sees zeros."""
    p = m.spawn()
    s = p.mmap(0, 2 * PG, RW, SA)
    p.write(s, b"shm")
    c = p.fork()
    used = m.physmem.nr_used
    c.madvise(s, PG, MADV_REMOVE)
    assert m.physmem.nr_used == used - 1
    assert p.read(s, 3) == bytes(3)
    assert find_violations(m) == []


def test_madv_remove_punches_file_hole_keeps_size_and_private_cow_copies(
        m: Machine) -> None:
    """On a shared file mapping: pread sees zeros, the size is unchanged, a private
    mapping's COW copy keeps its data while its un-copied page sees the hole."""
    p = m.spawn()
    fd = p.open("/f", os.O_RDWR | os.O_CREAT)
    p.pwrite(fd, b"A" * 2 * PG, 0)
    sh = p.mmap(0, 2 * PG, RW, MAP_SHARED, fd)
    pv = p.mmap(0, 2 * PG, RW, MAP_PRIVATE, fd)
    assert p.read(pv, 1) == b"A"
    p.write(pv + PG, b"P")
    p.madvise(sh, 2 * PG, MADV_REMOVE)
    assert p.pread(fd, 2, 0) == bytes(2)
    assert m.files["/f"].size == 2 * PG
    assert p.read(pv, 1) == b"\0" and p.read(pv + PG, 1) == b"P"
    assert find_violations(m) == []


def test_madv_remove_errnos_einval_private_anon_eacces_private_file_or_readonly(
        m: Machine) -> None:
    """madvise_remove(): EINVAL without a file or on a locked vma; EACCES unless the vma
    is shared and may be written (a private file mapping, a read-only open)."""
    p = m.spawn()
    a = p.mmap(0, PG, RW, PA)
    assert _errno(p.madvise, a, PG, MADV_REMOVE) == errno.EINVAL
    locked = p.mmap(0, PG, RW, SA)
    p.mlock(locked, PG)
    assert _errno(p.madvise, locked, PG, MADV_REMOVE) == errno.EINVAL
    fd = p.open("/g", os.O_RDWR | os.O_CREAT)
    p.pwrite(fd, b"x" * PG, 0)
    pv = p.mmap(0, PG, RW, MAP_PRIVATE, fd)
    assert _errno(p.madvise, pv, PG, MADV_REMOVE) == errno.EACCES
    ro = p.open("/g", os.O_RDONLY)
    sr = p.mmap(0, PG, PROT_READ, MAP_SHARED, ro)
    assert _errno(p.madvise, sr, PG, MADV_REMOVE) == errno.EACCES
    sr2 = p.mmap(0, PG, PROT_READ, MAP_SHARED, fd)  # read-only mapping, writable file
    p.madvise(sr2, PG, MADV_REMOVE)


# --- #10.5 MADV_FREE, COLD, POPULATE, WIPEONFORK, MAP_POPULATE / MAP_LOCKED --------------

def test_madv_free_clean_pages_are_discarded_by_pageout_written_ones_stay(
        m: Machine) -> None:
    """Lazy free: until reclaim the content stays; reclaim (here MADV_PAGEOUT, which
    needs no swap for them) discards clean lazyfree pages (reads then give zeros) but
    keeps one written after MADV_FREE."""
    p = m.spawn()
    a = p.mmap(0, 3 * PG, RW, PA)
    for i, ch in enumerate(b"abc"):
        p.write(a + i * PG, bytes([ch]))
    p.madvise(a, 3 * PG, MADV_FREE)
    assert p.read(a, 1) == b"a" and p.pagemap(a).present
    p.write(a + PG, b"B")
    p.madvise(a, 3 * PG, MADV_PAGEOUT)
    assert not p.pagemap(a).present and not p.pagemap(a).swapped
    assert p.read(a, 1) == b"\0" and p.read(a + 2 * PG, 1) == b"\0"
    assert p.read(a + PG, 1) == b"B" and p.pagemap(a + PG).present
    assert find_violations(m) == []


def test_smaps_lazyfree_counts_clean_madv_free_pages_until_written_again(
        m: Machine) -> None:
    """smaps_account(): LazyFree counts anonymous pages that are not swap-backed
    (MADV_FREE cleared PG_swapbacked) and whose pte is clean; a write dirties the pte
    and the page no longer counts."""
    p = m.spawn()
    a = p.mmap(0, 3 * PG, RW, PA)
    for i in range(3):
        p.write(a + i * PG, b"x")
    assert p.smaps()[0]["LazyFree"] == 0
    p.madvise(a, 3 * PG, MADV_FREE)
    assert p.smaps()[0]["LazyFree"] == 12
    p.write(a, b"y")
    assert p.smaps()[0]["LazyFree"] == 8
    assert "SWAPBACKED" not in flag_names(m.kpageflags(p.pagemap(a + PG).pfn))


def test_madv_free_lazyfree_pages_are_discarded_by_memory_pressure(m: Machine) -> None:
    """Under memory pressure kswapd frees clean lazyfree pages without swapping them:
    the swap device stays unused for them."""
    small = Machine(rmap="anon_vma_chain", ram_pages=256, swap_pages=1024)
    p = small.spawn()
    a = p.mmap(0, 128 * PG, RW, PA)
    for i in range(128):
        p.write(a + i * PG, b"f")
    p.madvise(a, 128 * PG, MADV_FREE)
    b = p.mmap(0, 200 * PG, RW, PA)
    for i in range(200):
        p.write(b + i * PG, b"n")
    freed = [i for i in range(128) if not p.pagemap(a + i * PG).present]
    assert freed and all(not p.pagemap(a + i * PG).swapped for i in freed)
    assert find_violations(small) == []


def test_madv_free_skips_pages_shared_with_a_child(m: Machine) -> None:
    """madvise_free_pte_range() only marks pages mapped once: after fork the page stays
    an ordinary anonymous page and survives MADV_PAGEOUT in the child."""
    p = m.spawn()
    a = p.mmap(0, PG, RW, PA)
    p.write(a, b"a")
    c = p.fork()
    c.madvise(a, PG, MADV_FREE)
    page = m.physmem.pages[p.pagemap(a).pfn]
    assert page is not None and not page.flags & PG_LAZYFREE
    assert c.read(a, 1) == b"a"


def test_madv_free_einval_on_shared_file_and_locked(m: Machine) -> None:
    """MADV_FREE is for private anonymous memory only: EINVAL on a shared anonymous,
    a file-backed or an mlocked vma."""
    p = m.spawn()
    s = p.mmap(0, PG, RW, SA)
    assert _errno(p.madvise, s, PG, MADV_FREE) == errno.EINVAL
    fd = p.open("/h", os.O_RDWR | os.O_CREAT)
    p.pwrite(fd, b"x", 0)
    f = p.mmap(0, PG, RW, MAP_PRIVATE, fd)
    assert _errno(p.madvise, f, PG, MADV_FREE) == errno.EINVAL
    lk = p.mmap(0, PG, RW, PA | MAP_LOCKED)
    assert _errno(p.madvise, lk, PG, MADV_FREE) == errno.EINVAL


def test_madv_cold_ages_the_pte_and_clears_referenced_keeps_content(m: Machine) -> None:
    """madvise_cold(): the pte becomes old and PG_referenced is cleared (the page is
    deactivated); it stays mapped. COLD and PAGEOUT are EINVAL on a locked vma
    (can_madv_lru_vma())."""
    p = m.spawn()
    a = p.mmap(0, PG, RW, PA)
    p.write(a, b"c")
    page = m.physmem.pages[p.pagemap(a).pfn]
    assert page is not None
    page.flags |= PG_REFERENCED
    p.madvise(a, PG, MADV_COLD)
    assert not pte_young(p.mm.pgtable.entry(a >> 12)) and not page.flags & PG_REFERENCED
    assert p.read(a, 1) == b"c" and p.pagemap(a).present
    lk = p.mmap(0, PG, RW, PA | MAP_LOCKED)
    assert _errno(p.madvise, lk, PG, MADV_COLD) == errno.EINVAL
    assert _errno(p.madvise, lk, PG, MADV_PAGEOUT) == errno.EINVAL


def test_populate_read_needs_vm_read_write_needs_vm_write(m: Machine) -> None:
    """check_vma_flags(): POPULATE_READ on write-only or exec-only memory is EINVAL,
    POPULATE_WRITE on write-only succeeds; POPULATE_READ of anonymous memory maps
    the zero page."""
    p = m.spawn()
    w = p.mmap(0, PG, PROT_WRITE, PA)
    assert _errno(p.madvise, w, PG, MADV_POPULATE_READ) == errno.EINVAL
    p.madvise(w, PG, MADV_POPULATE_WRITE)
    assert p.pagemap(w).exclusive
    x = p.mmap(0, PG, PROT_EXEC, PA)
    assert _errno(p.madvise, x, PG, MADV_POPULATE_READ) == errno.EINVAL
    r = p.mmap(0, PG, RW, PA)
    p.madvise(r, PG, MADV_POPULATE_READ)
    assert p.pagemap(r).pfn == m.physmem.ZERO_PFN


def test_populate_stops_at_a_hole_with_enomem_and_efault_past_eof_or_guard(
        m: Machine) -> None:
    """madvise_populate(): pages before a hole are populated, then ENOMEM (the vma
    after the hole is not); a SIGBUS (past EOF) or SIGSEGV (guard) access is EFAULT."""
    p = m.spawn()
    a = p.mmap(0, 3 * PG, RW, PA)
    p.munmap(a + PG, PG)
    assert _errno(p.madvise, a, 3 * PG, MADV_POPULATE_WRITE) == errno.ENOMEM
    assert p.pagemap(a).present and not p.pagemap(a + 2 * PG).present
    fd = p.open("/e", os.O_RDWR | os.O_CREAT)
    p.pwrite(fd, b"e" * PG, 0)
    f = p.mmap(0, 4 * PG, PROT_READ, MAP_SHARED, fd)
    assert _errno(p.madvise, f, 4 * PG, MADV_POPULATE_READ) == errno.EFAULT
    assert p.pagemap(f).present
    g = p.mmap(0, 2 * PG, RW, PA)
    p.madvise(g + PG, PG, MADV_GUARD_INSTALL)
    assert _errno(p.madvise, g, 2 * PG, MADV_POPULATE_READ) == errno.EFAULT


def test_map_populate_ignores_faults_past_eof_and_skips_prot_none(m: Machine) -> None:
    """mm_populate() ignores errors: MAP_POPULATE of a file mapping longer than the
    file succeeds with the pages inside EOF present; PROT_NONE is not populated, even
    with MAP_LOCKED; a private writable MAP_POPULATE breaks COW (write populate)."""
    p = m.spawn()
    fd = p.open("/p", os.O_RDWR | os.O_CREAT)
    p.pwrite(fd, b"p" * PG, 0)
    f = p.mmap(0, 8 * PG, RW, MAP_PRIVATE | MAP_POPULATE, fd)
    assert p.pagemap(f).exclusive and not p.pagemap(f).file_or_shared
    assert not p.pagemap(f + 6 * PG).present
    n = p.mmap(0, PG, PROT_NONE, PA | MAP_POPULATE | MAP_LOCKED)
    assert not p.pagemap(n).present
    r = p.mmap(0, PG, PROT_READ, PA | MAP_LOCKED)
    assert p.pagemap(r).pfn == m.physmem.ZERO_PFN


def test_wipeonfork_child_reads_zero_keeponfork_restores_copy(m: Machine) -> None:
    """MADV_WIPEONFORK: the child's copy of the vma is empty; MADV_KEEPONFORK undoes
    it; on a private file mapping WIPEONFORK is EINVAL but KEEPONFORK succeeds."""
    p = m.spawn()
    a = p.mmap(0, PG, RW, PA)
    p.write(a, b"w")
    p.madvise(a, PG, MADV_WIPEONFORK)
    assert p.fork().read(a, 1) == b"\0"
    p.madvise(a, PG, MADV_KEEPONFORK)
    assert p.fork().read(a, 1) == b"w"
    fd = p.open("/w", os.O_RDWR | os.O_CREAT)
    p.pwrite(fd, b"x", 0)
    f = p.mmap(0, PG, RW, MAP_PRIVATE, fd)
    assert _errno(p.madvise, f, PG, MADV_WIPEONFORK) == errno.EINVAL
    p.madvise(f, PG, MADV_KEEPONFORK)


# --- the differential checks exercise the new ops ------------------------------------------

def _first_failing_seed(seeds: int = 30) -> str | None:
    for seed in range(seeds):
        try:
            run_random_sequence("anon_vma_chain", None, seed=seed, steps=300)
        except ConformanceFailure as exc:
            return str(exc)
    return None


def test_random_sequences_run_the_new_madvise_ops_and_map_populate() -> None:
    """The op mix issues every new advice and MAP_POPULATE, and some of each succeed."""
    done: set[int] = set()
    populated = 0
    for seed in range(10):
        driver = run_random_sequence("anon_vma_chain", None, seed=seed, steps=300)
        for op, outcome in zip(driver.ops, driver.outcomes, strict=True):
            if op.op == "madvise" and not outcome:
                done.add(op.advice)
            populated += op.op == "mmap" and bool(op.flags & MAP_POPULATE)
    assert set(OpGenerator.RANGE_ADVICE + OpGenerator.VMA_ADVICE) <= done
    assert populated


def test_conformance_kit_catches_fork_losing_guard_markers(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A fork that does not copy the guard markers of vmas it does not copy page
    tables for is caught: the child's access does not raise SIGSEGV. The bug goes in
    where the interpreted Machine calls dup_mmap: patching fork's own call of
    copy_guard_markers would miss the compiled build, whose fork calls it directly."""
    real_dup_mmap = fork.dup_mmap

    def dup_mmap_losing_markers(parent: Mm, child: Mm) -> None:
        real_dup_mmap(parent, child)
        pgtable = child.pgtable
        for vma in child.vmas:
            if vma.anon_vma is None:  # page tables not copied: the markers were
                for addr, pte in list(pgtable.range(vma.start, vma.end)):
                    if pte == GUARD_PTE:
                        pgtable.clear(addr)

    monkeypatch.setattr(machine, "dup_mmap", dup_mmap_losing_markers)
    failure = _first_failing_seed()
    assert failure is not None and "guard region" in failure


def test_conformance_kit_catches_madv_remove_that_punches_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """MADV_REMOVE that leaves the shared content in place is caught by the content
    model (the hole must read zeros)."""
    monkeypatch.setattr("mmcore.madvise.punch_hole", lambda *args: None)
    failure = _first_failing_seed()
    assert failure is not None and "MADV_REMOVE" in failure


def test_vmprint_shows_prot_none_ptes_unreadable_and_guard_markers(m: Machine) -> None:
    """vmprint: a PROT_NONE pte shows no read or user bit but keeps its pfn; a guard
    marker has its own line."""
    from mmcore.viz import vmprint
    p = m.spawn()
    a = p.mmap(0, 2 * PG, RW, PA)
    p.write(a, b"x")
    p.mprotect(a, PG, PROT_NONE)
    p.madvise(a + PG, PG, MADV_GUARD_INSTALL)
    text = vmprint(p)
    assert f"pfn {p.pagemap(a).pfn} ---ad" in text
    assert "guard marker" in text
