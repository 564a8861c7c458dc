"""RLIMIT_MEMLOCK and mlockall(2)/munlockall(2) (mm/mlock.c, mm/mmap.c mlock_future_ok).

Rules, as probed on 6.18 (docs/kernel-facts.md, "Memory locking limits and overcommit"):

* without CAP_IPC_LOCK and with RLIMIT_MEMLOCK 0, mlock, mlock2, mlockall and
  mmap(MAP_LOCKED) fail with EPERM (can_do_mlock()); munlock and munlockall succeed;
* mlock fails with ENOMEM when the pages it would newly lock, plus mm->locked_vm, pass
  the limit (pages already locked in the range are not counted twice);
* a mapping that would be born locked (MAP_LOCKED, or any mapping, brk or mremap growth
  after mlockall(MCL_FUTURE)) fails with EAGAIN past the limit (mlock_future_ok());
* mlockall(MCL_CURRENT) fails with ENOMEM when total_vm passes the limit;
* CAP_IPC_LOCK lifts every limit; MCL_FUTURE is not inherited by a forked child.

``mm->locked_vm`` is the number of pages in VM_LOCKED vmas: every path that sets or
clears VM_LOCKED (mlock_fixup, mmap, munmap, mremap, fork) changes the kernel's counter by
exactly those pages, so it is computed from the vmas here.
"""

from __future__ import annotations

from contextlib import suppress
from typing import TYPE_CHECKING

from .constants import (
    MCL_CURRENT,
    MCL_FUTURE,
    MCL_ONFAULT,
    MLOCK_LIMIT,
    PAGE_SHIFT,
    RLIM_INFINITY,
    RLIMIT_MEMLOCK,
    VM_LOCKED,
    VM_LOCKED_MASK,
    VM_LOCKONFAULT,
    VM_SPECIAL,
)
from .errors import EINVAL, ENOMEM, EPERM, BusError, syscall_error
from .vma_ops import vma_modify

if TYPE_CHECKING:
    from .mm import Mm
    from .process import Process

CAP_IPC_LOCK = "CAP_IPC_LOCK"
CAP_SYS_ADMIN = "CAP_SYS_ADMIN"
CAP_SYS_RESOURCE = "CAP_SYS_RESOURCE"


def owner(mm: Mm) -> Process | None:
    """The task whose limits and capabilities apply to ``mm`` (current, in the kernel)."""
    return mm.machine.processes.get(mm.owner_pid)


def capable(mm: Mm, cap: str) -> bool:
    """capable(): does the owner of ``mm`` hold ``cap``?"""
    proc = owner(mm)
    return proc is not None and cap in proc.capabilities


def lock_limit_pages(mm: Mm) -> int:
    """rlimit(RLIMIT_MEMLOCK) >> PAGE_SHIFT."""
    proc = owner(mm)
    soft = MLOCK_LIMIT if proc is None else proc.rlimits[RLIMIT_MEMLOCK][0]
    return soft >> PAGE_SHIFT


def can_do_mlock(mm: Mm) -> bool:
    """can_do_mlock(): a non-zero RLIMIT_MEMLOCK, or CAP_IPC_LOCK."""
    return lock_limit_pages(mm) != 0 or capable(mm, CAP_IPC_LOCK)


def locked_vm(mm: Mm) -> int:
    """mm->locked_vm: pages in VM_LOCKED vmas (VmLck)."""
    return sum(v.pages for v in mm.vmas if v.flags & VM_LOCKED)


def mlock_future_ok(mm: Mm, vm_flags: int, nbytes: int) -> bool:
    """mlock_future_ok(): may ``nbytes`` more be born locked (when ``vm_flags`` has
    VM_LOCKED)?"""
    if not vm_flags & VM_LOCKED or capable(mm, CAP_IPC_LOCK):
        return True
    return (nbytes >> PAGE_SHIFT) + locked_vm(mm) <= lock_limit_pages(mm)


def count_mm_mlocked_page_nr(mm: Mm, start: int, length: int) -> int:
    """count_mm_mlocked_page_nr(): pages of [start, start + len) already VM_LOCKED."""
    end = start + length
    return sum((min(end, v.end) - max(start, v.start)) >> PAGE_SHIFT
               for v in mm.vmas.intersecting(start, end) if v.flags & VM_LOCKED)


def check_mlock_limit(mm: Mm, start: int, length: int) -> None:
    """do_mlock()'s limit check on the page-aligned range: ENOMEM when the newly locked
    pages plus locked_vm pass RLIMIT_MEMLOCK without CAP_IPC_LOCK."""
    if capable(mm, CAP_IPC_LOCK):
        return
    limit = lock_limit_pages(mm)
    locked = (length >> PAGE_SHIFT) + locked_vm(mm)
    if locked > limit:
        locked -= count_mm_mlocked_page_nr(mm, start, length)
    if locked > limit:
        raise syscall_error(ENOMEM, "mlock")


def _apply_mlockall_flags(mm: Mm, flags: int) -> None:
    """apply_mlockall_flags(): set mm->def_flags for MCL_FUTURE and, for MCL_CURRENT,
    the lock bits of every vma (mlock_fixup; VM_SPECIAL vmas are left alone and errors
    such as a refused split are ignored, as the kernel ignores them)."""
    mm.def_flags &= ~VM_LOCKED_MASK
    onfault = VM_LOCKONFAULT if flags & MCL_ONFAULT else 0
    if flags & MCL_FUTURE:
        mm.def_flags |= VM_LOCKED | onfault
        if not flags & MCL_CURRENT:
            return
    to_add = VM_LOCKED | onfault if flags & MCL_CURRENT else 0
    for vma in mm.vmas:
        newflags = (vma.flags & ~VM_LOCKED_MASK) | to_add
        if newflags != vma.flags and not vma.flags & VM_SPECIAL:
            with suppress(OSError):
                vma_modify(vma, vma.start, vma.end, newflags)


def do_mlockall(mm: Mm, flags: int) -> None:
    """sys_mlockall(): EINVAL for no flag, an unknown one or MCL_ONFAULT alone; EPERM
    without the right to lock; ENOMEM for MCL_CURRENT when total_vm passes the limit.
    MCL_CURRENT without MCL_ONFAULT then faults everything in (mm_populate(), errors
    ignored)."""
    from .mmap import populate_range
    if not flags or flags & ~(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) or flags == MCL_ONFAULT:
        raise syscall_error(EINVAL, "mlockall")
    if not can_do_mlock(mm):
        raise syscall_error(EPERM, "mlockall")
    if flags & MCL_CURRENT and mm.vmas.total_pages > lock_limit_pages(mm) \
            and not capable(mm, CAP_IPC_LOCK):
        raise syscall_error(ENOMEM, "mlockall")
    _apply_mlockall_flags(mm, flags)
    if flags & MCL_CURRENT:
        for vma in mm.vmas:
            if (vma.flags & VM_LOCKED_MASK) == VM_LOCKED:
                with suppress(BusError):
                    populate_range(mm, vma.start, vma.end)


def do_munlockall(mm: Mm) -> None:
    """sys_munlockall(): clear mm->def_flags and unlock every vma."""
    _apply_mlockall_flags(mm, 0)


def check_rlimit(proc: Process, resource: int, soft: int, hard: int) -> None:
    """do_prlimit()'s checks: EINVAL for a soft limit above the hard one or a negative
    value, EPERM for raising the hard limit without CAP_SYS_RESOURCE."""
    if not 0 <= soft <= hard <= RLIM_INFINITY:
        raise syscall_error(EINVAL, "setrlimit")
    old_hard = proc.rlimits.get(resource, (RLIM_INFINITY, RLIM_INFINITY))[1]
    if hard > old_hard and CAP_SYS_RESOURCE not in proc.capabilities:
        raise syscall_error(EPERM, "setrlimit")
