"""Overcommit accounting (mm/util.c __vm_enough_memory, vm_commit_limit; mm/mmap.c).

``vm.overcommit_memory`` is a Machine setting (``overcommit_memory``, ``overcommit_ratio``,
``overcommit_kbytes``):

* 0 (OVERCOMMIT_GUESS, the default): one request larger than RAM + swap is refused;
* 1 (OVERCOMMIT_ALWAYS): nothing is refused;
* 2 (OVERCOMMIT_NEVER): a charge is refused unless Committed_AS after it stays below
  CommitLimit (RAM * ratio / 100, or overcommit_kbytes, plus swap) less the admin reserve
  (without CAP_SYS_ADMIN) and min(total_vm / 32, user reserve); MAP_NORESERVE is ignored.

What is charged (probed on 6.18, docs/kernel-facts.md): private writable mappings
(VM_ACCOUNT) at mmap, brk, mremap growth, mprotect to writable and fork; shared anonymous
memory (shmem) for its whole size unless VM_NORESERVE. Committed_AS is the sum of those
charges still held: the pages of every VM_ACCOUNT vma of every live mm plus the size of
every accounted shmem object, which is what the kernel's vm_committed_as counter adds up
to (each charge is undone by the unmap of the same pages), so it is computed from them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .constants import PAGE_SHIFT, VM_ACCOUNT, VM_DONTCOPY, VM_NORESERVE
from .errors import ENOMEM, syscall_error
from .mlock import CAP_SYS_ADMIN, capable

if TYPE_CHECKING:
    from .machine import Machine
    from .mm import Mm

OVERCOMMIT_GUESS = 0
OVERCOMMIT_ALWAYS = 1
OVERCOMMIT_NEVER = 2


def totalram_pages(m: Machine) -> int:
    """totalram_pages(): every frame but the reserved zero page."""
    return m.physmem.nr_frames - 1


def vm_commit_limit(m: Machine) -> int:
    """vm_commit_limit(): CommitLimit in pages."""
    if m.overcommit_kbytes:
        allowed = m.overcommit_kbytes >> (PAGE_SHIFT - 10)
    else:
        allowed = totalram_pages(m) * m.overcommit_ratio // 100
    return allowed + m.swap.nr_slots


def reserve_kbytes(m: Machine) -> tuple[int, int]:
    """init_admin_reserve()/init_user_reserve(): (admin, user) reserves in kB, 1/32 of
    the memory free at boot capped at 8 MiB and 128 MiB."""
    free_kb = totalram_pages(m) << (PAGE_SHIFT - 10)
    return min(free_kb // 32, 8 << 10), min(free_kb // 32, 128 << 10)


def committed_pages(m: Machine) -> int:
    """vm_committed_as: accounted vma pages of live mms plus accounted shmem objects."""
    total = 0
    shmem: dict[int, int] = {}
    for proc in m.live_processes():
        for vma in proc.mm.vmas:
            if vma.flags & VM_ACCOUNT:
                total += vma.pages
            elif vma.file is not None and vma.file.inode.shmem \
                    and not vma.flags & VM_NORESERVE:
                inode = vma.file.inode
                shmem[inode.ino] = inode.nr_pages
    return total + sum(shmem.values())


def vm_enough_memory(mm: Mm, pages: int, call: str, pending: int = 0) -> None:
    """__vm_enough_memory(): raise ENOMEM (from syscall ``call``) if charging ``pages``
    more (after ``pending`` pages charged by the same operation but not yet visible in the
    vmas) is refused."""
    m = mm.machine
    mode = m.overcommit_memory
    if mode == OVERCOMMIT_ALWAYS:
        return
    if mode == OVERCOMMIT_GUESS:
        if pages > totalram_pages(m) + m.swap.nr_slots:
            raise syscall_error(ENOMEM, call)
        return
    allowed = vm_commit_limit(m)
    admin, user = reserve_kbytes(m)
    if not capable(mm, CAP_SYS_ADMIN):
        allowed -= admin >> (PAGE_SHIFT - 10)
    allowed -= min(mm.vmas.total_pages // 32, user >> (PAGE_SHIFT - 10))
    if committed_pages(m) + pending + pages >= allowed:
        raise syscall_error(ENOMEM, call)


def fork_charge(parent: Mm) -> None:
    """dup_mmap()'s charge: each VM_ACCOUNT vma the child will copy is charged against
    the parent's mm in turn; the first refusal fails the fork with ENOMEM (checked before
    the child exists, so a refused fork leaves nothing behind)."""
    pending = 0
    for vma in parent.vmas:
        if vma.flags & VM_ACCOUNT and not vma.flags & VM_DONTCOPY:
            vm_enough_memory(parent, vma.pages, "fork", pending)
            pending += vma.pages


def accounted_in_range(mm: Mm, start: int, end: int) -> int:
    """Pages of VM_ACCOUNT vmas inside [start, end): what a MAP_FIXED mapping over them
    gives back (vms_gather_munmap_vmas() nr_accounted)."""
    return sum((min(end, v.end) - max(start, v.start)) >> PAGE_SHIFT
               for v in mm.vmas.intersecting(start, end) if v.flags & VM_ACCOUNT)
