"""RLIMIT_MEMLOCK, CAP_IPC_LOCK and mlockall(2), as probed on 6.18 (docs/kernel-facts.md,
"Memory locking limits and overcommit"): each test replays one line of the probe with an
unprivileged process whose limit is 4 pages unless it says otherwise."""

from __future__ import annotations

import errno

import pytest

from mmcore import (
    MAP_ANONYMOUS,
    MAP_LOCKED,
    MAP_PRIVATE,
    MCL_CURRENT,
    MCL_FUTURE,
    MCL_ONFAULT,
    MLOCK_LIMIT,
    MLOCK_ONFAULT,
    MREMAP_MAYMOVE,
    PROT_READ,
    PROT_WRITE,
    RLIMIT_MEMLOCK,
    Machine,
    Process,
)
from mmcore.constants import VM_LOCKED, VM_LOCKONFAULT
from mmcore.mlock import CAP_IPC_LOCK

PAGE = 4096
RW = PROT_READ | PROT_WRITE
PA = MAP_PRIVATE | MAP_ANONYMOUS


def proc(limit_pages: int = 4, cap: bool = False) -> Process:
    """A process with RLIMIT_MEMLOCK of ``limit_pages`` (and CAP_IPC_LOCK if ``cap``)."""
    p = Machine().spawn()
    p.setrlimit(RLIMIT_MEMLOCK, limit_pages * PAGE, limit_pages * PAGE)
    if cap:
        p.capabilities.add(CAP_IPC_LOCK)
    return p


def errno_of(fn: object, *args: int) -> int:
    """The errno ``fn(*args)`` raises."""
    with pytest.raises(OSError) as e:
        fn(*args)  # type: ignore[operator]
    assert e.value.errno is not None
    return e.value.errno


def test_default_memlock_limit_is_8_mib() -> None:
    """MLOCK_LIMIT: RLIMIT_MEMLOCK starts at 8 MiB (ulimit -l 8192 on the probed box)."""
    assert Machine().spawn().getrlimit(RLIMIT_MEMLOCK) == (MLOCK_LIMIT, MLOCK_LIMIT)


def test_mlock_up_to_the_limit_and_again_over_the_same_pages() -> None:
    """Locking exactly the limit succeeds, and locking the same pages again is not
    counted twice (count_mm_mlocked_page_nr())."""
    p = proc()
    a = p.mmap(0, 16 * PAGE, RW, PA)
    p.mlock(a, 4 * PAGE)
    p.mlock(a, 4 * PAGE)
    assert p.status()["VmLck"] == 16


def test_mlock_past_the_limit_is_enomem_and_changes_nothing() -> None:
    """do_mlock(): newly locked pages + locked_vm > limit is ENOMEM (also for
    MLOCK_ONFAULT), and VmLck stays."""
    p = proc()
    a = p.mmap(0, 16 * PAGE, RW, PA)
    p.mlock(a, 4 * PAGE)
    assert errno_of(p.mlock, a + 2 * PAGE, 4 * PAGE) == errno.ENOMEM
    assert errno_of(p.mlock, a + 4 * PAGE, PAGE, MLOCK_ONFAULT) == errno.ENOMEM
    assert p.status()["VmLck"] == 16
    p.munlock(a, 16 * PAGE)
    assert p.status()["VmLck"] == 0


def test_map_locked_past_the_limit_is_eagain() -> None:
    """mlock_future_ok(): MAP_LOCKED beyond the limit is EAGAIN; within it, the mapping is
    populated and counted in VmLck."""
    p = proc()
    assert errno_of(p.mmap, 0, 5 * PAGE, PROT_READ, PA | MAP_LOCKED) == errno.EAGAIN
    p.mmap(0, 4 * PAGE, PROT_READ, PA | MAP_LOCKED)
    assert p.status()["VmLck"] == 16
    assert p.vmas() and len(p.vmas()) == 1


def test_zero_limit_without_cap_is_eperm_but_unlocking_works() -> None:
    """can_do_mlock(): with RLIMIT_MEMLOCK 0 and no CAP_IPC_LOCK, mlock, mlockall and
    MAP_LOCKED are EPERM; munlock and munlockall succeed."""
    p = proc(0)
    a = p.mmap(0, 4 * PAGE, RW, PA)
    assert errno_of(p.mlock, a, PAGE) == errno.EPERM
    assert errno_of(p.mlockall, MCL_FUTURE) == errno.EPERM
    assert errno_of(p.mmap, 0, PAGE, PROT_READ, PA | MAP_LOCKED) == errno.EPERM
    p.munlock(a, PAGE)
    p.munlockall()


def test_cap_ipc_lock_ignores_the_limit() -> None:
    """capable(CAP_IPC_LOCK) lifts the limit, even a zero one."""
    p = proc(0, cap=True)
    a = p.mmap(0, 8 * PAGE, RW, PA)
    p.mlock(a, 8 * PAGE)
    p.mmap(0, PAGE, PROT_READ, PA | MAP_LOCKED)
    p.mlockall(MCL_CURRENT | MCL_FUTURE)
    assert p.status()["VmLck"] == 36


@pytest.mark.parametrize("flags", [0, MCL_ONFAULT, 8])
def test_mlockall_invalid_flags_are_einval(flags: int) -> None:
    """sys_mlockall(): no flag, MCL_ONFAULT alone or an unknown bit is EINVAL."""
    assert errno_of(proc().mlockall, flags) == errno.EINVAL


def test_mlockall_current_past_the_limit_is_enomem() -> None:
    """MCL_CURRENT with total_vm above the limit is ENOMEM, and nothing is locked."""
    p = proc()
    p.mmap(0, 8 * PAGE, RW, PA)
    assert errno_of(p.mlockall, MCL_CURRENT) == errno.ENOMEM
    assert p.status()["VmLck"] == 0


def test_mlockall_current_locks_and_populates_every_vma() -> None:
    """MCL_CURRENT sets VM_LOCKED on every vma and faults it in; MCL_ONFAULT leaves the
    pages to their first touch (VM_LOCKONFAULT)."""
    p = proc(64)
    a = p.mmap(0, 2 * PAGE, RW, PA)
    p.mlockall(MCL_CURRENT)
    assert p.status()["VmRSS"] == 8 and p.vmas()[0].flags & VM_LOCKED
    p.munlockall()
    b = p.mmap(0, 2 * PAGE, RW, PA)
    p.mlockall(MCL_CURRENT | MCL_ONFAULT)
    assert all(v.flags & VM_LOCKONFAULT for v in p.vmas())
    assert p.pagemap(b).present is False and p.pagemap(a).present


def test_mcl_future_locks_new_mappings_and_refuses_past_the_limit() -> None:
    """mlockall(MCL_FUTURE): later mmaps are born locked (mm->def_flags), an mmap or brk
    past the limit fails (EAGAIN; brk keeps the old break); munlockall lifts it."""
    p = proc()
    p.mmap(0, 4 * PAGE, PROT_READ, PA | MAP_LOCKED)
    p.mlockall(MCL_FUTURE)
    assert errno_of(p.mmap, 0, PAGE, PROT_READ, PA) == errno.EAGAIN
    old = p.brk(0)
    assert p.brk(old + 64 * PAGE) == old
    p.munlockall()
    p.mmap(0, PAGE, PROT_READ, PA)
    assert p.status()["VmLck"] == 0


def test_mcl_future_mapping_is_locked_and_mremap_growth_past_limit_is_eagain() -> None:
    """A mapping made under MCL_FUTURE is VM_LOCKED and populated; growing it past the
    limit with mremap is EAGAIN (resize_is_valid())."""
    p = proc(4)
    p.mlockall(MCL_FUTURE)
    a = p.mmap(0, 2 * PAGE, RW, PA)
    assert p.status()["VmLck"] == 8 and p.status()["VmRSS"] == 8
    assert errno_of(p.mremap, a, 2 * PAGE, 8 * PAGE, MREMAP_MAYMOVE) == errno.EAGAIN


def test_mcl_future_is_not_inherited_by_fork() -> None:
    """mm_init() keeps only VM_NOHUGEPAGE of def_flags: a forked child's new mappings are
    not locked, and its copies of locked vmas are not either; limits are inherited."""
    p = proc(64)
    p.mlockall(MCL_FUTURE | MCL_ONFAULT)
    p.mmap(0, 2 * PAGE, PROT_READ, PA)
    assert p.status()["VmLck"] == 8
    c = p.fork()
    c.mmap(0, 2 * PAGE, PROT_READ, PA)
    assert c.status()["VmLck"] == 0
    assert c.getrlimit(RLIMIT_MEMLOCK) == (64 * PAGE, 64 * PAGE)


def test_setrlimit_checks() -> None:
    """do_prlimit(): soft above hard is EINVAL; raising the hard limit without
    CAP_SYS_RESOURCE is EPERM; lowering it is allowed."""
    p = proc()
    assert errno_of(p.setrlimit, RLIMIT_MEMLOCK, 8 * PAGE, 4 * PAGE) == errno.EINVAL
    assert errno_of(p.setrlimit, RLIMIT_MEMLOCK, PAGE, 8 * PAGE) == errno.EPERM
    p.setrlimit(RLIMIT_MEMLOCK, PAGE, 2 * PAGE)
    assert p.getrlimit(RLIMIT_MEMLOCK) == (PAGE, 2 * PAGE)


def test_wrong_argument_types_raise_typeerror_naming_the_argument() -> None:
    """mlockall and setrlimit with a non-int argument raise TypeError naming it, before
    any change."""
    p = proc()
    with pytest.raises(TypeError, match="mlockall: flags must be an int"):
        p.mlockall("1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="setrlimit: soft must be an int"):
        p.setrlimit(RLIMIT_MEMLOCK, 1.5, PAGE)  # type: ignore[arg-type]
    assert p.getrlimit(RLIMIT_MEMLOCK) == (4 * PAGE, 4 * PAGE) and p.mm.def_flags == 0
