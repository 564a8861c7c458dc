"""vm.overcommit_memory 0/1/2 and Committed_AS (mm/util.c __vm_enough_memory), as probed
on 6.18 (docs/kernel-facts.md, "Memory locking limits and overcommit"). The machine has
1024 pages of RAM and no swap unless a test says otherwise, so CommitLimit at ratio 50 is
511 pages (the zero page is reserved)."""

from __future__ import annotations

import errno

import pytest

from mmcore import (
    MAP_ANONYMOUS,
    MAP_NORESERVE,
    MAP_POPULATE,
    MAP_PRIVATE,
    MAP_SHARED,
    MREMAP_DONTUNMAP,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PROT_READ,
    PROT_WRITE,
    Machine,
    Process,
)
from mmcore.errors import ConfigError
from mmcore.mlock import CAP_SYS_ADMIN

PAGE = 4096
RW = PROT_READ | PROT_WRITE
PA = MAP_PRIVATE | MAP_ANONYMOUS
SA = MAP_SHARED | MAP_ANONYMOUS
RAM = 1024


def spawn(mode: int, swap: int = 0, **kw: int) -> Process:
    """An unprivileged process on a machine in overcommit ``mode``."""
    return Machine(ram_pages=RAM, swap_pages=swap, overcommit_memory=mode, **kw).spawn()


def errno_of(fn: object, *args: int) -> int:
    """The errno ``fn(*args)`` raises."""
    with pytest.raises(OSError) as e:
        fn(*args)  # type: ignore[operator]
    assert e.value.errno is not None
    return e.value.errno


def committed(p: Process) -> int:
    """Committed_AS in pages."""
    return p.machine.meminfo()["Committed_AS"] // 4


def test_mode0_refuses_one_request_larger_than_ram_plus_swap() -> None:
    """OVERCOMMIT_GUESS: a private writable or shared mapping larger than RAM + swap is
    ENOMEM; just below is fine, and MAP_NORESERVE or read-only memory is never charged."""
    p = spawn(0, swap=16)
    big = (RAM - 1 + 16 + 1) * PAGE
    assert errno_of(p.mmap, 0, big, RW, PA) == errno.ENOMEM
    assert errno_of(p.mmap, 0, big, PROT_READ, SA) == errno.ENOMEM
    p.mmap(0, big - PAGE, RW, PA)
    p.mmap(0, 2 * big, RW, PA | MAP_NORESERVE)
    p.mmap(0, 2 * big, PROT_READ, PA)


def test_mode1_never_refuses() -> None:
    """OVERCOMMIT_ALWAYS: even four times RAM is granted."""
    spawn(1).mmap(0, 4 * RAM * PAGE, RW, PA)


def test_committed_as_follows_accounted_mappings() -> None:
    """Committed_AS grows by a private writable mapping and shared memory (even
    read-only), not by read-only private memory; mprotect to read-only of an unfaulted
    mapping gives the charge back, and to writable takes it; munmap returns it."""
    p = spawn(0)
    base = committed(p)
    a = p.mmap(0, 16 * PAGE, RW, PA)
    assert committed(p) == base + 16
    p.mprotect(a, 16 * PAGE, PROT_READ)
    assert committed(p) == base
    p.mprotect(a, 16 * PAGE, RW)
    assert committed(p) == base + 16
    p.munmap(a, 16 * PAGE)
    s = p.mmap(0, 8 * PAGE, PROT_READ, SA)
    assert committed(p) == base + 8
    p.munmap(s, 8 * PAGE)
    p.mmap(0, 8 * PAGE, PROT_READ, PA)
    assert committed(p) == base


def test_commit_limit_is_ratio_of_ram_plus_swap_or_kbytes() -> None:
    """vm_commit_limit(): RAM * overcommit_ratio / 100 + swap, or overcommit_kbytes +
    swap when set."""
    m = spawn(2, swap=100).machine
    assert m.meminfo()["CommitLimit"] == ((RAM - 1) * 50 // 100 + 100) * 4
    m2 = spawn(2, swap=100, overcommit_kbytes=400).machine
    assert m2.meminfo()["CommitLimit"] == (100 + 100) * 4


def test_mode2_refuses_past_the_commit_limit_and_ignores_noreserve() -> None:
    """OVERCOMMIT_NEVER: private writable memory past CommitLimit (less the reserves) is
    ENOMEM, with or without MAP_NORESERVE (do_mmap() does not set VM_NORESERVE in mode 2);
    shared memory too; read-only private memory is free."""
    p = spawn(2)
    limit = RAM // 2 * PAGE
    assert errno_of(p.mmap, 0, limit, RW, PA) == errno.ENOMEM
    assert errno_of(p.mmap, 0, limit, RW, PA | MAP_NORESERVE) == errno.ENOMEM
    assert errno_of(p.mmap, 0, limit, PROT_READ, SA) == errno.ENOMEM
    p.mmap(0, 4 * limit, PROT_READ, PA)
    small = p.mmap(0, PAGE, RW, PA | MAP_NORESERVE)
    (entry,) = [e for e in p.maps() if e.start == small]
    assert "ac" in entry.vm_flags.split() and "nr" not in entry.vm_flags.split()


def test_mode2_refuses_a_huge_map_populate_up_front() -> None:
    """A MAP_POPULATE mapping past the limit is refused before a single page is faulted
    (no OOM, no reclaim): the issue's motivating case."""
    p = spawn(2)
    assert errno_of(p.mmap, 0, 2 * RAM * PAGE, RW, PA | MAP_POPULATE) == errno.ENOMEM
    assert p.machine.vmstat()["pgfault"] == 0 and p.status()["VmRSS"] == 0


def test_mode2_mprotect_brk_mremap_and_fork_are_charged() -> None:
    """Each charge point of mode 2: mprotect to writable, brk growth, mremap growth and
    fork (dup_mmap() charges the child's copy) fail with ENOMEM (brk keeps the break)."""
    p = spawn(2)
    ro = p.mmap(0, 600 * PAGE, PROT_READ, PA)
    assert errno_of(p.mprotect, ro, 600 * PAGE, RW) == errno.ENOMEM
    p.munmap(ro, 600 * PAGE)
    old = p.brk(0)
    assert p.brk(old + 600 * PAGE) == old
    a = p.mmap(0, 300 * PAGE, RW, PA)
    assert errno_of(p.fork) == errno.ENOMEM
    assert len(p.machine.live_processes()) == 1
    assert errno_of(p.mremap, a, 300 * PAGE, 600 * PAGE, MREMAP_MAYMOVE) == errno.ENOMEM
    assert [(v.start, v.end) for v in p.vmas()] == [(a, a + 300 * PAGE)]


def test_mode2_admin_reserve_applies_without_cap_sys_admin() -> None:
    """__vm_enough_memory() keeps admin_reserve_kbytes back from an unprivileged task
    (1/32 of RAM here): a request that fits only into the reserve needs CAP_SYS_ADMIN."""
    p = spawn(2)
    admin_reserve = (RAM - 1) * 4 // 32 // 4
    fits_only_with_reserve = (RAM - 1) // 2 - admin_reserve + 1
    assert errno_of(p.mmap, 0, fits_only_with_reserve * PAGE, RW, PA) == errno.ENOMEM
    p.capabilities.add(CAP_SYS_ADMIN)
    p.mmap(0, fits_only_with_reserve * PAGE, RW, PA)


def test_overcommit_settings_are_validated() -> None:
    """Machine() refuses an overcommit mode other than 0, 1, 2."""
    with pytest.raises(ConfigError, match="overcommit_memory must be 0, 1 or 2"):
        Machine(overcommit_memory=3)


def test_mode2_mremap_move_charges_only_growth_or_the_dontunmap_copy() -> None:
    """vrm_calc_charge(): a move keeps its old reservation, so moving 300 accounted pages
    is not charged again; MREMAP_DONTUNMAP keeps the source and charges the copy whole."""
    p = spawn(2)
    a = p.mmap(0, 300 * PAGE, RW, PA)
    base = committed(p)
    b = p.mremap(a, 300 * PAGE, 300 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, a + 1024 * PAGE)
    assert committed(p) == base
    assert errno_of(p.mremap, b, 300 * PAGE, 300 * PAGE,
                    MREMAP_MAYMOVE | MREMAP_DONTUNMAP) == errno.ENOMEM
