"""mremap(2) as in Linux 6.17+ (mm/mremap.c do_mremap, remap_move, move_vma, copy_vma).

A move copies the vma to the destination (merging there when it can), moves the page
tables, then unmaps the source. Each present anonymous pte being moved is offered to the
mremap policy (``mremap_move_pte``): the kernel moves it; Linus's 2004 proposal copies a
page still shared with another process so that anonmm's ``index == address`` stays true.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from .constants import (
    MAP_SHARED,
    MREMAP_DONTUNMAP,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PAGE_SHIFT,
    TASK_SIZE,
    VM_ACCESS_FLAGS,
    VM_ACCOUNT,
    VM_DONTEXPAND,
    VM_LOCKED,
    VM_LOCKED_MASK,
    VM_MAYSHARE,
    VM_PFNMAP,
    VM_SEALED,
    VM_SHARED,
    VM_WRITE,
    offset_in_page,
    page_align,
)
from .errors import EAGAIN, EFAULT, EINVAL, ENOMEM, EPERM, syscall_error
from .fault import alloc_copy, anon_vma_prepare, map_new_anon_page
from .huge_memory import move_huge_pmds
from .mlock import mlock_future_ok
from .mmap import DAC_MMAP_MIN_ADDR, do_munmap, get_unmapped_area, populate_range
from .overcommit import vm_enough_memory
from .page import PG_ANON, PG_ZERO, Page
from .pagetable import pte_modify, pte_present
from .vma import Vma
from .vma_ops import MergeRange, unlink_anon, vma_link, vma_merge_new_range

if TYPE_CHECKING:
    from .mm import Mm


def do_mremap(mm: Mm, addr: int, old_len: int, new_len: int, flags: int,
              new_addr: int = 0) -> int:
    """do_mremap(): resize and/or move a mapping; returns the (new) address."""
    old_len, new_len = page_align(old_len), page_align(new_len)
    implies_new = bool(flags & (MREMAP_FIXED | MREMAP_DONTUNMAP))
    # check_mremap_params()
    if flags & ~(MREMAP_FIXED | MREMAP_MAYMOVE | MREMAP_DONTUNMAP):
        raise syscall_error(EINVAL, "mremap")
    if offset_in_page(addr) or not new_len or new_len > TASK_SIZE:
        raise syscall_error(EINVAL, "mremap")
    if implies_new:
        if new_addr > TASK_SIZE - new_len or offset_in_page(new_addr):
            raise syscall_error(EINVAL, "mremap")
        if not flags & MREMAP_MAYMOVE:
            raise syscall_error(EINVAL, "mremap")
        if flags & MREMAP_DONTUNMAP and old_len != new_len:
            raise syscall_error(EINVAL, "mremap")
        if addr < new_addr + new_len and new_addr < addr + old_len:
            raise syscall_error(EINVAL, "mremap")
    if flags & MREMAP_FIXED and old_len == new_len:
        return remap_move(mm, addr, old_len, new_addr, flags)
    vma = mm.vmas.lookup(addr)
    _check_prep_vma(vma, addr, old_len, new_len, flags)
    assert vma is not None
    # check_prep_vma(): "We are expanding and the VMA is mlock()'d so we need to
    # populate"; do_mremap() then faults in [new_addr + old_len, new_addr + new_len).
    # Growing locked memory past RLIMIT_MEMLOCK is EAGAIN (resize_is_valid()).
    populate_expand = new_len > old_len and bool(vma.flags & VM_LOCKED)
    if populate_expand and not mlock_future_ok(mm, vma.flags, new_len - old_len):
        raise syscall_error(EAGAIN, "mremap")
    if implies_new:
        res = mremap_to(mm, vma, addr, old_len, new_len, flags, new_addr)
    else:
        res = mremap_at(mm, vma, addr, old_len, new_len, flags)
    if populate_expand:
        populate_range(mm, res + old_len, res + new_len)
    return res


def _check_prep_vma(vma: Vma | None, addr: int, old_len: int, new_len: int,
                    flags: int) -> None:
    """check_prep_vma(): the per-vma checks (EFAULT, EPERM, EINVAL)."""
    if vma is None:
        raise syscall_error(EFAULT, "mremap")
    if vma.flags & VM_SEALED:
        raise syscall_error(EPERM, "mremap")
    if new_len <= old_len and not flags & (MREMAP_FIXED | MREMAP_DONTUNMAP):
        return  # shrink or no-op in place
    if not old_len and not vma.flags & (VM_SHARED | VM_MAYSHARE):
        raise syscall_error(EINVAL, "mremap")
    if flags & MREMAP_DONTUNMAP and vma.flags & (VM_DONTEXPAND | VM_PFNMAP):
        raise syscall_error(EINVAL, "mremap")
    span = min(old_len, new_len)
    if span > vma.end - addr:
        raise syscall_error(EFAULT, "mremap")
    if new_len > old_len and vma.flags & (VM_DONTEXPAND | VM_PFNMAP):
        raise syscall_error(EFAULT, "mremap")


def remap_move(mm: Mm, addr: int, length: int, new_addr: int, flags: int) -> int:
    """remap_move(): a pure MREMAP_FIXED move may span several vmas (Linux 6.17+); each is
    moved in turn, keeping the gaps between them. A gap at the start is EFAULT."""
    end = addr + length
    cursor, target, result = addr, new_addr, -1
    last_end = addr
    while cursor < end:
        vma = mm.vmas.find(cursor)
        if vma is None or vma.start >= end:
            break
        if result < 0 and vma.start > addr:
            raise syscall_error(EFAULT, "mremap")
        offset = vma.start - last_end if result >= 0 else 0
        last_end = vma.end
        sub = max(vma.start, cursor)
        sub_len = min(end, vma.end) - sub
        _check_prep_vma(vma, sub, sub_len, sub_len, flags)
        res = mremap_to(mm, vma, sub, sub_len, sub_len, flags, target + offset)
        if result < 0:
            result = res
        target = res + sub_len
        cursor = sub + sub_len
    if result < 0:
        raise syscall_error(EFAULT, "mremap")
    return result


def mremap_to(mm: Mm, vma: Vma, addr: int, old_len: int, new_len: int, flags: int,
              new_addr: int) -> int:
    """mremap_to(): move to a given (MREMAP_FIXED) or chosen address."""
    if flags & MREMAP_FIXED:
        do_munmap(mm, new_addr, new_len)
        found = mm.vmas.lookup(addr)
        if found is None:
            raise syscall_error(EFAULT, "mremap")
        vma = found
    if new_len < old_len:
        do_munmap(mm, addr + new_len, old_len - new_len)
        found = mm.vmas.lookup(addr)
        if found is None:
            raise syscall_error(EFAULT, "mremap")
        vma, old_len = found, new_len
    if not flags & MREMAP_FIXED:
        map_flags = MAP_SHARED if vma.flags & VM_MAYSHARE else 0
        new_addr = get_unmapped_area(mm, new_addr, new_len, map_flags)
    elif new_addr < DAC_MMAP_MIN_ADDR:
        # vrm_set_new_addr(): get_unmapped_area(MAP_FIXED) ends in security_mmap_addr(),
        # EPERM below vm.mmap_min_addr for an unprivileged task -- after the target and
        # the shrunk tail were already unmapped, as in the kernel.
        raise syscall_error(EPERM, "mremap")
    return move_vma(mm, vma, addr, old_len, new_len, new_addr, flags)


def mremap_at(mm: Mm, vma: Vma, addr: int, old_len: int, new_len: int, flags: int) -> int:
    """mremap_at(): resize without a requested address (no-op, shrink, expand)."""
    if new_len == old_len:
        return addr
    if new_len < old_len:
        do_munmap(mm, addr + new_len, old_len - new_len)
        return addr
    delta = new_len - old_len
    if vma.end - addr == old_len and _vma_expandable(mm, vma, delta):
        if vma.flags & VM_ACCOUNT:  # vrm_calc_charge(): the growth is charged
            vm_enough_memory(mm, delta >> PAGE_SHIFT, "mremap")
        _vma_merge_extend(mm, vma, delta)
        return addr
    if not flags & MREMAP_MAYMOVE:
        raise syscall_error(ENOMEM, "mremap")
    map_flags = MAP_SHARED if vma.flags & VM_MAYSHARE else 0
    new_addr = get_unmapped_area(mm, addr, new_len, map_flags)
    return move_vma(mm, vma, addr, old_len, new_len, new_addr, flags)


def _vma_expandable(mm: Mm, vma: Vma, delta: int) -> bool:
    """vma_expandable(): nothing mapped in [vm_end, vm_end + delta) and below TASK_SIZE."""
    end = vma.end + delta
    return end <= TASK_SIZE and not mm.vmas.intersecting(vma.end, end)


def _vma_merge_extend(mm: Mm, vma: Vma, delta: int) -> Vma:
    """vma_merge_extend(): the extension is a new range merged into ``vma`` (and into the
    next vma when the extension closes the gap and the two are compatible)."""
    r = MergeRange(mm, vma.end, vma.end + delta, vma.flags, vma.pgoff + vma.pages,
                   vma.file, anon=vma.anon_vma, anon_name=vma.anon_name, prev=vma,
                   next=mm.vmas.next_from(vma.end + delta))
    merged = vma_merge_new_range(r)
    if merged is None:
        raise syscall_error(ENOMEM, "mremap")
    return merged


def move_vma(mm: Mm, vma: Vma, addr: int, old_len: int, new_len: int, new_addr: int,
             flags: int) -> int:
    """move_vma(): copy_vma, move_page_tables, then unmap the source (or, with
    MREMAP_DONTUNMAP, keep it empty: VM_LOCKED cleared, anon links dropped if whole)."""
    if mm.map_count >= mm.machine.max_map_count - 3:
        raise syscall_error(ENOMEM, "mremap")
    # vrm_calc_charge(): the old reservation moves with the pages, so only the growth is
    # charged, unless MREMAP_DONTUNMAP keeps the source (then the whole new length).
    charged = new_len if flags & MREMAP_DONTUNMAP else new_len - old_len
    if vma.flags & VM_ACCOUNT and charged > 0:
        vm_enough_memory(mm, charged >> PAGE_SHIFT, "mremap")
    new_pgoff = vma.pgoff + ((addr - vma.start) >> PAGE_SHIFT)
    new_vma = copy_vma(mm, vma, new_addr, new_len, new_pgoff)
    source = mm.vmas.lookup(addr)
    assert source is not None
    move_page_tables(source, addr, new_vma, new_addr, old_len)
    if flags & MREMAP_DONTUNMAP:
        source.flags &= ~VM_LOCKED_MASK
        if new_vma is not source and source.start == addr and source.end == addr + old_len:
            unlink_anon(source)
        return new_addr
    # unmap_source_vma(): best effort, an error is not reported. old_len == 0 (the
    # duplicate-a-shared-mapping case) makes do_vmi_munmap() fail with EINVAL and leaves
    # the source in place, so mremap() still succeeds with two mappings of the object.
    with contextlib.suppress(OSError):
        do_munmap(mm, addr, old_len)
    return new_addr


def copy_vma(mm: Mm, vma: Vma, addr: int, length: int, pgoff: int) -> Vma:
    """copy_vma(): make the destination vma, merging with its neighbours when allowed.

    An unfaulted anonymous vma takes ``pgoff = addr >> PAGE_SHIFT`` "to increase its chance
    of merging"; a faulted one keeps its linear pgoff so its pages stay findable.
    """
    if vma.is_anonymous and vma.anon_vma is None:
        pgoff = addr >> PAGE_SHIFT
    r = MergeRange(mm, addr, addr + length, vma.flags, pgoff, vma.file,
                   anon=vma.anon_vma, anon_name=vma.anon_name,
                   prev=mm.vmas.prev_of(addr), next=mm.vmas.next_from(addr + length),
                   copied_from=vma)
    merged = vma_merge_new_range(r)
    if merged is not None:
        return merged
    new = vma.copy()
    new.start, new.end, new.pgoff = addr, addr + length, pgoff
    if new.anon_vma is not None:
        mm.machine.hook.rmap_vma_copy(src=vma, new=new)
    vma_link(mm, new)
    return new


def move_page_tables(vma: Vma, old_addr: int, new_vma: Vma, new_addr: int,
                     length: int) -> None:
    """move_page_tables()/move_ptes(): move every pte of [old_addr, old_addr + len).

    Each present anonymous page is first offered to the mremap policy; "copy" gives the
    destination a private copy (an early COW) and drops the source mapping. Huge PMDs
    move whole or are split first (:func:`~mmcore.huge_memory.move_huge_pmds`).
    """
    mm = vma.mm
    m = mm.machine
    pt = mm.pgtable
    policy = m.mremap_policy
    delta = new_addr - old_addr
    if pt.huge_pmds:
        move_huge_pmds(vma, old_addr, new_vma, new_addr, length)
    for addr, _ in list(pt.range(old_addr, old_addr + length)):
        pte = pt.entry(addr >> PAGE_SHIFT)  # reclaim may have changed it meanwhile
        if not pte:
            continue
        dst = addr + delta
        page = m.physmem.pages[pte >> 12] if pte_present(pte) else None
        if page is not None and page.flags & PG_ANON and not page.flags & PG_ZERO \
                and policy is not None and policy(page, vma, addr, new_vma, dst) == "copy":
            _unshare_pte(vma, addr, new_vma, dst, page)
            continue
        pt.clear(addr)
        pt.set(dst, pte)
        if page is not None and page.flags & PG_ANON:
            m.rmap_page_move(page, vma, addr, new_vma, dst)
        m.counters.mremap_ptes_moved += 1
    if length:
        m.counters.tlb_flushes += 1


def _unshare_pte(vma: Vma, addr: int, new_vma: Vma, dst: int, page: Page) -> None:
    """Linus's copy_one_pte() policy: the moved mapping gets its own copy of the page."""
    mm = vma.mm
    m = mm.machine
    anon_vma_prepare(new_vma)
    copy = alloc_copy(m, page)
    mm.pgtable.clear(addr)
    mm.add_rss(page, -1)
    m.unmap_page_pte(page, vma, addr)
    pte = map_new_anon_page(new_vma, dst, copy, writable=bool(new_vma.flags & VM_WRITE))
    if not new_vma.flags & VM_ACCESS_FLAGS:  # the copy keeps PROT_NONE (vm_page_prot)
        mm.pgtable.set(dst, pte_modify(pte, accessible=False, writable=False))
    m.counters.mremap_page_copies += 1
    m.emit("mremap_copy", mm.owner_pid, address=dst, old_pfn=page.pfn, pfn=copy.pfn)

