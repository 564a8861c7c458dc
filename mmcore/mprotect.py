"""mprotect(2) (mm/mprotect.c do_mprotect_pkey, mprotect_fixup, change_protection)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .constants import (
    PAGE_SHIFT,
    PROT_EXEC,
    PROT_GROWSDOWN,
    PROT_GROWSUP,
    PROT_READ,
    PROT_SEM,
    PROT_WRITE,
    VM_ACCESS_FLAGS,
    VM_ACCOUNT,
    VM_GROWSDOWN,
    VM_HUGETLB,
    VM_NORESERVE,
    VM_SEALED,
    VM_SHARED,
    VM_WRITE,
    page_align,
    ulong_add,
)
from .errors import EACCES, EINVAL, ENOMEM, EPERM, syscall_error
from .mmap import calc_vm_prot_bits
from .overcommit import vm_enough_memory
from .page import PG_ANON, PG_ANON_EXCLUSIVE
from .pagetable import pte_dirty, pte_modify, pte_pfn, pte_present
from .vma_ops import vma_modify

if TYPE_CHECKING:
    from .mm import Mm
    from .vma import Vma


def do_mprotect(mm: Mm, start: int, length: int, prot: int) -> None:
    """do_mprotect_pkey(): change protection of [start, start + len).

    vmas are changed one after another; a hole (ENOMEM), a permission the vma may not have
    (EACCES) or a sealed vma (EPERM) stops the walk, and the vmas already changed stay
    changed, exactly as in Linux.
    """
    grows = prot & (PROT_GROWSDOWN | PROT_GROWSUP)
    if grows == (PROT_GROWSDOWN | PROT_GROWSUP):
        raise syscall_error(EINVAL, "mprotect")
    if start & 0xFFF:
        raise syscall_error(EINVAL, "mprotect")
    if not length:
        return
    length = page_align(length)
    end = ulong_add(start, length)
    if end <= start:
        raise syscall_error(ENOMEM, "mprotect")
    # arch_validate_prot() comes after the length checks: length 0 succeeds whatever prot.
    if prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC | PROT_SEM | PROT_GROWSDOWN
                | PROT_GROWSUP):
        raise syscall_error(EINVAL, "mprotect")
    # vma_find(&vmi, end) and the PROT_GROWSDOWN/PROT_GROWSUP checks of
    # do_mprotect_pkey(): GROWSDOWN extends the range down to the start of the first vma,
    # which must be VM_GROWSDOWN; x86-64 has no VM_GROWSUP, so GROWSUP is always EINVAL.
    first = mm.vmas.find(start)
    if first is None or first.start >= end:
        raise syscall_error(ENOMEM, "mprotect")
    if grows & PROT_GROWSDOWN:
        start = first.start
        if not first.flags & VM_GROWSDOWN:
            raise syscall_error(EINVAL, "mprotect")
    else:
        if first.start > start:
            raise syscall_error(ENOMEM, "mprotect")
        if grows & PROT_GROWSUP:
            raise syscall_error(EINVAL, "mprotect")
    newprot = calc_vm_prot_bits(prot)
    addr = start
    while addr < end:
        vma = mm.vmas.lookup(addr)
        if vma is None:  # a hole: the vmas before it keep their new protection
            raise syscall_error(ENOMEM, "mprotect")
        newflags = newprot | (vma.flags & ~VM_ACCESS_FLAGS)
        # newflags >> 4 shifts VM_MAY* into the place of VM_*.
        if (newflags & ~(newflags >> 4)) & VM_ACCESS_FLAGS:
            raise syscall_error(EACCES, "mprotect")
        vma = mprotect_fixup(vma, addr, min(vma.end, end), newflags)
        addr = vma.end  # vma_iter_end(): a merge may have covered more of the range


def mprotect_fixup(vma: Vma, start: int, end: int, newflags: int) -> Vma:
    """mprotect_fixup(): account, merge or split, then change the ptes.

    Making private memory writable charges it (VM_ACCOUNT); making an unfaulted private
    anonymous vma read-only drops VM_ACCOUNT again (since 6.6, so it can merge with
    read-only neighbours).
    """
    if vma.flags & VM_SEALED:
        raise syscall_error(EPERM, "mprotect")
    oldflags = vma.flags
    if newflags == oldflags:
        return vma
    if newflags & VM_WRITE:
        if not oldflags & (VM_ACCOUNT | VM_WRITE | VM_HUGETLB | VM_SHARED | VM_NORESERVE):
            vm_enough_memory(vma.mm, (end - start) >> PAGE_SHIFT, "mprotect")
            newflags |= VM_ACCOUNT
    elif oldflags & VM_ACCOUNT and vma.is_anonymous and vma.anon_vma is None:
        newflags &= ~VM_ACCOUNT
    vma = vma_modify(vma, start, end, newflags)
    change_protection(vma, start, end)
    return vma


def change_protection(vma: Vma, start: int, end: int) -> None:
    """change_pte_range(): give every mapped pte in [start, end) the vma's new protection.

    Each pte is pte_modify()'d: a vma without access (PROT_NONE) gets PROT_NONE ptes that
    keep their page but fault on any access; otherwise the pte is present, and writable
    only if the vma is and can_change_pte_writable() allows it: an exclusive anonymous
    page in a private mapping, a dirty pte in a shared one (writenotify). Every other
    pte is left for the write fault to decide between reuse and copy.
    """
    pt = vma.mm.pgtable
    accessible = bool(vma.flags & VM_ACCESS_FLAGS)
    writable = bool(vma.flags & VM_WRITE)
    changed = False
    for addr, pte in list(pt.range(start, end)):
        if not pte_present(pte):
            continue
        new = pte_modify(pte, accessible,
                         writable and accessible and _can_change_pte_writable(vma, pte))
        if new != pte:
            pt.set(addr, new)
            changed = True
    if changed:
        vma.mm.machine.counters.tlb_flushes += 1


def _can_change_pte_writable(vma: Vma, pte: int) -> bool:
    """can_change_pte_writable(): may mprotect map this pte writable without a fault?"""
    if vma.is_shared:
        return pte_dirty(pte)
    page = vma.mm.machine.physmem.pages[pte_pfn(pte)]
    return page is not None and page.flags & (PG_ANON | PG_ANON_EXCLUSIVE) == (
        PG_ANON | PG_ANON_EXCLUSIVE)
