"""mmap, munmap and brk (mm/mmap.c, mm/vma.c), with get_unmapped_area and populate."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .constants import (
    LEGACY_MAP_MASK,
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_GROWSDOWN,
    MAP_LOCKED,
    MAP_NONBLOCK,
    MAP_NORESERVE,
    MAP_POPULATE,
    MAP_PRIVATE,
    MAP_SHARED,
    MAP_SHARED_VALIDATE,
    MAP_STACK,
    MAP_TYPE,
    MAX_LFS_FILESIZE,
    MMAP_BASE,
    MMAP_MIN_ADDR,
    MS_ASYNC,
    MS_INVALIDATE,
    MS_SYNC,
    PAGE_SHIFT,
    PAGE_SIZE,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
    TASK_SIZE,
    VM_ACCOUNT,
    VM_DATA_DEFAULT_FLAGS,
    VM_EXEC,
    VM_GROWSDOWN,
    VM_LOCKED,
    VM_LOCKONFAULT,
    VM_MAYEXEC,
    VM_MAYREAD,
    VM_MAYSHARE,
    VM_MAYWRITE,
    VM_NOHUGEPAGE,
    VM_NORESERVE,
    VM_READ,
    VM_SEALED,
    VM_SHARED,
    VM_WRITE,
    offset_in_page,
    page_align,
    ulong_add,
)
from .errors import (
    EACCES,
    EAGAIN,
    EBUSY,
    EEXIST,
    EINVAL,
    ENOMEM,
    EOPNOTSUPP,
    EOVERFLOW,
    EPERM,
    BusError,
    SegmentationFault,
    syscall_error,
)
from .fault import create_huge_pmd, handle_pte_fault
from .memory import zap_pte_range
from .mlock import can_do_mlock, mlock_future_ok
from .overcommit import OVERCOMMIT_NEVER, accounted_in_range, vm_enough_memory
from .pagetable import _PAGE_RW, PTE_PRESENT_BITS, PTRS_PER_TABLE
from .vma import Vma
from .vma_ops import (
    MergeRange,
    remove_vma,
    split_vma,
    vma_link,
    vma_merge_new_range,
)

if TYPE_CHECKING:
    from .fs import OpenFile
    from .mm import Mm

#: dac_mmap_min_addr, the vm.mmap_min_addr sysctl (4096 on the probed kernel): the lowest
#: address an unprivileged MAP_FIXED may use (cap_mmap_addr()). The 64 KiB MMAP_MIN_ADDR
#: is CONFIG_LSM_MMAP_MIN_ADDR, which only raises hints (round_hint_to_min()).
DAC_MMAP_MIN_ADDR = 4096


def calc_vm_prot_bits(prot: int) -> int:
    """calc_vm_prot_bits(): PROT_* to VM_READ/VM_WRITE/VM_EXEC."""
    return ((VM_READ if prot & PROT_READ else 0) | (VM_WRITE if prot & PROT_WRITE else 0)
            | (VM_EXEC if prot & PROT_EXEC else 0))


def accountable_mapping(vm_flags: int) -> bool:
    """accountable_mapping(): private writable memory is charged (gets VM_ACCOUNT)."""
    return (vm_flags & (VM_NORESERVE | VM_SHARED | VM_WRITE)) == VM_WRITE


def get_unmapped_area(mm: Mm, addr: int, length: int, flags: int) -> int:
    """arch_get_unmapped_area_topdown(): honour a free hint, else take the highest gap
    below mmap_base that fits; MAP_FIXED returns ``addr`` as is."""
    if length > TASK_SIZE - MMAP_MIN_ADDR:
        raise syscall_error(ENOMEM, "mmap")
    if flags & MAP_FIXED:
        return addr
    if addr:
        addr = page_align(addr)
        if TASK_SIZE - length >= addr and addr >= MMAP_MIN_ADDR \
                and not mm.vmas.intersecting(addr, addr + length):
            return addr
    for low, high in mm.vmas.gaps_top_down(max(PAGE_SIZE, MMAP_MIN_ADDR), MMAP_BASE):
        if high - low >= length:
            return high - length
    # Fallback bottom-up search above mmap_base (arch_get_unmapped_area).
    for vma_end, nxt in _gaps_bottom_up(mm, MMAP_BASE, TASK_SIZE):
        if nxt - vma_end >= length:
            return vma_end
    raise syscall_error(ENOMEM, "mmap")


def _gaps_bottom_up(mm: Mm, low: int, high: int) -> list[tuple[int, int]]:
    gaps = []
    cur = low
    for vma in mm.vmas.intersecting(low, high):
        if vma.start > cur:
            gaps.append((cur, vma.start))
        cur = max(cur, vma.end)
    if cur < high:
        gaps.append((cur, high))
    return gaps


def file_mmap_ok(pgoff: int, length: int) -> bool:
    """file_mmap_ok(): the mapped file range must end within the largest file size
    (file_mmap_size_max(): MAX_LFS_FILESIZE for a regular file), else EOVERFLOW."""
    maxsize = MAX_LFS_FILESIZE
    if length > maxsize:
        return False
    return pgoff <= (maxsize - length) >> PAGE_SHIFT


def do_mmap(mm: Mm, addr: int, length: int, prot: int, flags: int,
            file: OpenFile | None = None, offset: int = 0) -> int:
    """do_mmap(): create a mapping; returns its address or raises OSError.

    Anonymous private mappings get ``vm_pgoff = addr >> PAGE_SHIFT`` ("Set pgoff according
    to addr for anon_vma"); shared anonymous ones are backed by a new shmem file; file
    mappings get ``vm_pgoff = offset >> PAGE_SHIFT``. ``file`` is the open file
    description of the fd (the caller resolved the fd: EBADF is its to raise). Processes
    are modelled unprivileged, so MAP_FIXED below vm.mmap_min_addr (4096) is EPERM
    (cap_mmap_addr()), while a hint below 64 KiB is raised to 64 KiB.
    """
    if offset_in_page(offset):
        raise syscall_error(EINVAL, "mmap")
    if flags & MAP_ANONYMOUS:
        file = None
    map_type = flags & MAP_TYPE
    if not length:
        raise syscall_error(EINVAL, "mmap")
    if flags & MAP_FIXED_NOREPLACE:
        flags |= MAP_FIXED
    if not flags & MAP_FIXED:
        addr &= ~(PAGE_SIZE - 1)
        if addr and addr < MMAP_MIN_ADDR:
            addr = page_align(MMAP_MIN_ADDR)
    length = page_align(length)
    if length == 0 or length > TASK_SIZE:
        raise syscall_error(ENOMEM, "mmap")
    if mm.map_count > mm.machine.max_map_count:
        raise syscall_error(ENOMEM, "mmap")

    vm_flags = calc_vm_prot_bits(prot) | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC
    if flags & MAP_GROWSDOWN:
        vm_flags |= VM_GROWSDOWN
    if flags & MAP_STACK:
        # calc_vm_flag_bits(): _calc_vm_trans(flags, MAP_STACK, VM_NOHUGEPAGE) (6.7+).
        vm_flags |= VM_NOHUGEPAGE
    if flags & MAP_LOCKED:
        vm_flags |= VM_LOCKED
    vm_flags |= mm.def_flags
    if file is not None:
        # do_mmap() for a file: MAP_SHARED_VALIDATE is valid and rejects unknown flags.
        if map_type == MAP_SHARED:
            flags &= LEGACY_MAP_MASK
        if map_type in (MAP_SHARED, MAP_SHARED_VALIDATE):
            if flags & ~(LEGACY_MAP_MASK | MAP_SHARED_VALIDATE | MAP_FIXED_NOREPLACE):
                raise syscall_error(EOPNOTSUPP, "mmap")
            if prot & PROT_WRITE and not file.writable:
                raise syscall_error(EACCES, "mmap")
            vm_flags |= VM_SHARED | VM_MAYSHARE
            if not file.writable:
                vm_flags &= ~(VM_MAYWRITE | VM_SHARED)
        elif map_type != MAP_PRIVATE:
            raise syscall_error(EINVAL, "mmap")
        if not file.readable:
            raise syscall_error(EACCES, "mmap")
        pgoff = offset >> PAGE_SHIFT  # an unsigned long already (Process.mmap, sysargs)
        if not file_mmap_ok(pgoff, length):
            raise syscall_error(EOVERFLOW, "mmap")
    elif map_type == MAP_SHARED:
        # Only MAP_SHARED and MAP_PRIVATE are valid for anonymous memory (even
        # MAP_SHARED_VALIDATE is EINVAL; EOPNOTSUPP is for files).
        if vm_flags & VM_GROWSDOWN:
            raise syscall_error(EINVAL, "mmap")
        vm_flags |= VM_SHARED | VM_MAYSHARE
        pgoff = 0
    elif map_type == MAP_PRIVATE:
        pgoff = -1  # addr >> PAGE_SHIFT once the address is known
    else:
        raise syscall_error(EINVAL, "mmap")

    addr = get_unmapped_area(mm, addr, length, flags)
    if addr > TASK_SIZE - length:
        raise syscall_error(ENOMEM, "mmap")
    if offset_in_page(addr):
        raise syscall_error(EINVAL, "mmap")
    if addr < DAC_MMAP_MIN_ADDR:
        raise syscall_error(EPERM, "mmap")
    if flags & MAP_FIXED_NOREPLACE and mm.vmas.intersecting(addr, addr + length):
        raise syscall_error(EEXIST, "mmap")
    if flags & MAP_LOCKED and not can_do_mlock(mm):
        raise syscall_error(EPERM, "mmap")
    if not mlock_future_ok(mm, vm_flags, length):
        raise syscall_error(EAGAIN, "mmap")
    if pgoff < 0:
        pgoff = addr >> PAGE_SHIFT
    if flags & MAP_NORESERVE and mm.machine.overcommit_memory != OVERCOMMIT_NEVER:
        vm_flags |= VM_NORESERVE  # ignored under vm.overcommit_memory = 2
    if file is None and map_type == MAP_SHARED:
        if not vm_flags & VM_NORESERVE:  # shmem_acct_size(): the whole object
            vm_enough_memory(mm, length >> PAGE_SHIFT, "mmap")
        file = mm.machine.new_shmem(length)
    mmap_region(mm, addr, length, vm_flags, pgoff, file)
    # __mm_populate() skips VM_LOCKONFAULT vmas (populate_vma_page_range()) and
    # ignores errors.
    if (vm_flags & VM_LOCKED or (flags & (MAP_POPULATE | MAP_NONBLOCK)) == MAP_POPULATE) \
            and not vm_flags & VM_LOCKONFAULT:
        populate_range(mm, addr, addr + length, ignore_errors=True)
    return addr


def mmap_region(mm: Mm, addr: int, length: int, vm_flags: int, pgoff: int,
                file: OpenFile | None) -> Vma:
    """__mmap_region(): unmap what the range overlaps (MAP_FIXED), then merge the new range
    with its neighbours or create a vma."""
    end = addr + length
    account = (file is None or not file.inode.shmem) and accountable_mapping(vm_flags)
    if account:  # charged before the old mappings go, so a refusal changes nothing
        charged = (length >> PAGE_SHIFT) - accounted_in_range(mm, addr, end)
        if charged:
            vm_enough_memory(mm, charged, "mmap")
    if mm.vmas.intersecting(addr, end):
        do_munmap(mm, addr, length)
    if file is None or not file.inode.shmem:
        if account:
            vm_flags |= VM_ACCOUNT
        r = MergeRange(mm, addr, end, vm_flags, pgoff, file,
                       prev=mm.vmas.prev_of(addr), next=mm.vmas.next_from(end))
        merged = vma_merge_new_range(r)
        if merged is not None:
            return merged
    vma = Vma(mm, addr, end, vm_flags, pgoff, file)
    vma_link(mm, vma)
    return vma


def populate_range(mm: Mm, start: int, end: int, write: bool | None = None,
                   ignore_errors: bool = False) -> None:
    """populate_vma_page_range(): fault in every page, as a write for private writable
    vmas (FOLL_WRITE breaks COW) and as a read otherwise; ``write`` forces the kind
    (MADV_POPULATE_READ/WRITE). A page whose fault would be SIGSEGV (a guard region) or
    SIGBUS (past EOF) raises that fault, unless ``ignore_errors`` (mm_populate() for
    MAP_POPULATE and MAP_LOCKED), which goes on with the next vma.

    As __get_user_pages() does, a page whose pte follow_page_pte() accepts (present and,
    for FOLL_WRITE, writable) is skipped, and every other page (none, swap, or read-only
    under a write) takes its own faultin_page() -> handle_mm_fault(), one at a time in
    address order. A none pte of an anonymous vma goes through create_huge_pmd() first,
    as in __handle_mm_fault(), so a THP-enabled range populates as PMD folios (the huge
    zero page on a read). The ptes are read one PTE page at a time, each after the
    faults before it, since a fault may fill ptes ahead (a huge PMD, fault-around) or
    empty them (the reclaim it runs)."""
    tables = mm.pgtable.tables
    events = mm.machine.vm_events
    for vma in mm.vmas.intersecting(start, end):
        if not vma.flags & (VM_READ | VM_WRITE | VM_EXEC):
            continue
        w = (vma.flags & (VM_WRITE | VM_SHARED)) == VM_WRITE if write is None else write
        first = max(start, vma.start) >> PAGE_SHIFT
        last = min(end, vma.end) >> PAGE_SHIFT
        try:
            for key in range(first >> 9, ((last - 1) >> 9) + 1):
                base = key << 9
                table = tables.get(key)
                for vpn in range(max(first, base), min(last, base + PTRS_PER_TABLE)):
                    pte = table[vpn - base] if table is not None else 0
                    if pte & PTE_PRESENT_BITS and (not w or pte & _PAGE_RW):
                        continue
                    events.pgfault += 1  # faultin_page() -> handle_mm_fault()
                    addr = vpn << PAGE_SHIFT
                    if pte or vma.file is not None or not create_huge_pmd(vma, addr, w):
                        handle_pte_fault(vma, addr, w, pte)
                    # the fault may have allocated this PTE page or replaced it
                    table = tables.get(key)
        except (SegmentationFault, BusError):
            if not ignore_errors:
                raise


def do_munmap(mm: Mm, start: int, length: int) -> None:
    """do_vmi_munmap(): unmap [start, start + length); raises OSError as Linux does.

    Sealed vmas make the whole call fail with EPERM before anything changes; splitting a
    vma in two fails with ENOMEM when map_count has reached vm.max_map_count.
    """
    if offset_in_page(start) or start > TASK_SIZE or length > TASK_SIZE - start:
        raise syscall_error(EINVAL, "munmap")
    length = page_align(length)
    if length == 0:
        raise syscall_error(EINVAL, "munmap")
    end = start + length
    vmas = mm.vmas.intersecting(start, end)
    if not vmas:
        return
    if any(v.flags & VM_SEALED for v in vmas):
        raise syscall_error(EPERM, "munmap")
    mm.update_hiwater_vm()
    first, last = vmas[0], vmas[-1]
    if first.start < start:
        if first.end > end and mm.map_count >= mm.machine.max_map_count:
            raise syscall_error(ENOMEM, "munmap")
        split_vma(first, start, new_below=True, check_limit=False)
    if last.end > end:
        split_vma(last, end, new_below=False, check_limit=False)
    for vma in mm.vmas.intersecting(start, end):
        unmap_vma(vma)


def unmap_vma(vma: Vma) -> None:
    """unmap_vmas() + free_pgtables() + remove_vma() for one whole vma (freeing the
    page tables drops guard markers too)."""
    zap_pte_range(vma, vma.start, vma.end, drop_markers=True)
    remove_vma(vma)


def do_brk(mm: Mm, brk: int) -> int:
    """brk(): move the program break; returns the new break, or the old one on failure.

    Shrinking unmaps; growing expands the heap vma when it can (do_brk_flags) or maps a
    new VM_DATA_DEFAULT_FLAGS | VM_ACCOUNT vma with the anonymous linear pgoff.
    """
    if brk < mm.start_brk:
        return mm.brk
    newbrk, oldbrk = page_align(brk), page_align(mm.brk)
    if oldbrk == newbrk:
        mm.brk = brk
        return brk
    if brk <= mm.brk:
        try:
            do_munmap(mm, newbrk, oldbrk - newbrk)
        except OSError:
            return mm.brk
        mm.brk = brk
        return brk
    if newbrk < oldbrk or newbrk > TASK_SIZE \
            or mm.vmas.intersecting(oldbrk, newbrk + PAGE_SIZE):
        # check_brk_limits(): beyond TASK_SIZE, or a break within a page of 2**64 whose
        # PAGE_ALIGN wrapped to 0; or the next vma plus a guard gap is in the way
        return mm.brk
    if not mlock_future_ok(mm, mm.def_flags, newbrk - oldbrk):
        return mm.brk  # check_brk_limits(): EAGAIN, and brk() keeps the old break
    try:
        vm_enough_memory(mm, (newbrk - oldbrk) >> PAGE_SHIFT, "brk")
    except OSError:
        return mm.brk
    flags = VM_DATA_DEFAULT_FLAGS | VM_ACCOUNT | mm.def_flags
    prev = mm.vmas.prev_of(oldbrk)
    if prev is not None and prev.end == oldbrk and prev.flags == flags \
            and prev.file is None and prev.anon_name is None:
        mm.vmas.set_range(prev, prev.start, newbrk, prev.pgoff)
    else:
        if mm.map_count > mm.machine.max_map_count:
            return mm.brk
        vma_link(mm, Vma(mm, oldbrk, newbrk, flags, oldbrk >> PAGE_SHIFT))
    mm.brk = brk
    if mm.def_flags & VM_LOCKED:  # sys_brk(): mm_populate() the new part when locked
        populate_range(mm, oldbrk, newbrk)
    return brk


def do_msync(mm: Mm, start: int, length: int, flags: int) -> None:
    """sys_msync(): MS_SYNC writes back, through vfs_fsync_range(), the file range that
    each shared file vma in [start, start + len) maps. Any unmapped page in the range
    gives ENOMEM: MS_ASYNC alone, or a range with no vma in it, fails at the first hole;
    otherwise the mapped parts are synced first (unmapped_error)."""
    from .pagecache import write_inode
    if flags & ~(MS_ASYNC | MS_INVALIDATE | MS_SYNC) or offset_in_page(start) \
            or (flags & MS_ASYNC and flags & MS_SYNC):
        raise syscall_error(EINVAL, "msync")
    end = ulong_add(start, page_align(length))
    if end < start:
        raise syscall_error(ENOMEM, "msync")
    unmapped = False
    while start < end:
        vma = mm.vmas.find(start)
        if vma is None:
            raise syscall_error(ENOMEM, "msync")
        if start < vma.start:
            if flags == MS_ASYNC or vma.start >= end:
                raise syscall_error(ENOMEM, "msync")
            start = vma.start
            unmapped = True
        if flags & MS_INVALIDATE and vma.flags & VM_LOCKED:
            raise syscall_error(EBUSY, "msync")
        if flags & MS_SYNC and vma.file is not None and vma.flags & VM_SHARED:
            first = vma.linear_page_index(start)
            last = vma.linear_page_index(min(end, vma.end) - 1)
            write_inode(mm.machine, vma.file.inode, first, last)
        start = vma.end
    if unmapped:
        raise syscall_error(ENOMEM, "msync")
