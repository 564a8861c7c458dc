"""madvise(2), mlock(2)/munlock(2) and mseal(2) (mm/madvise.c, mm/mlock.c, mm/mseal.c)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .constants import (
    MADV_COLD,
    MADV_COLLAPSE,
    MADV_DODUMP,
    MADV_DOFORK,
    MADV_DONTDUMP,
    MADV_DONTFORK,
    MADV_DONTNEED,
    MADV_FREE,
    MADV_GUARD_INSTALL,
    MADV_GUARD_REMOVE,
    MADV_HUGEPAGE,
    MADV_KEEPONFORK,
    MADV_MERGEABLE,
    MADV_NOHUGEPAGE,
    MADV_NORMAL,
    MADV_PAGEOUT,
    MADV_POPULATE_READ,
    MADV_POPULATE_WRITE,
    MADV_RANDOM,
    MADV_REMOVE,
    MADV_SEQUENTIAL,
    MADV_UNMERGEABLE,
    MADV_WILLNEED,
    MADV_WIPEONFORK,
    MLOCK_ONFAULT,
    PAGE_MASK,
    PAGE_SIZE,
    VM_DONTCOPY,
    VM_DONTDUMP,
    VM_HUGEPAGE,
    VM_HUGETLB,
    VM_IO,
    VM_LOCKED,
    VM_LOCKED_MASK,
    VM_LOCKONFAULT,
    VM_MAYWRITE,
    VM_MERGEABLE,
    VM_MIXEDMAP,
    VM_NOHUGEPAGE,
    VM_PFNMAP,
    VM_RAND_READ,
    VM_READ,
    VM_SEALED,
    VM_SEQ_READ,
    VM_SHARED,
    VM_SPECIAL,
    VM_WIPEONFORK,
    VM_WRITE,
    offset_in_page,
    page_align,
    ulong_add,
)
from .errors import (
    EACCES,
    EAGAIN,
    EFAULT,
    EINVAL,
    ENOMEM,
    EPERM,
    BusError,
    SegmentationFault,
    syscall_error,
)
from .fault import anon_vma_prepare
from .khugepaged import madvise_collapse
from .madvise_folio import advise_folio, split_folios_in_range
from .memory import zap_pte_range
from .mlock import can_do_mlock, check_mlock_limit
from .mm import MM_SWAPENTS
from .mmap import populate_range
from .page import PG_CACHE, PG_DIRTY, PG_LAZYFREE, PG_REFERENCED, PG_SWAPCACHE, PG_ZERO
from .pagecache import punch_hole
from .pagetable import (
    GUARD_PTE,
    is_swap_pte,
    pte_dirty,
    pte_mkold,
    pte_pfn,
    pte_present,
    swp_slot,
)
from .reclaim import discard_lazyfree, pageout_cache_page
from .vma_ops import vma_modify

if TYPE_CHECKING:
    from .mm import Mm
    from .vma import Vma

#: Advice that only changes vm_flags: (bits to set, bits to clear).
_FLAG_ADVICE: dict[int, tuple[int, int]] = {
    MADV_NORMAL: (0, VM_RAND_READ | VM_SEQ_READ),
    MADV_RANDOM: (VM_RAND_READ, VM_SEQ_READ),
    MADV_SEQUENTIAL: (VM_SEQ_READ, VM_RAND_READ),
    MADV_DONTFORK: (VM_DONTCOPY, 0),
    MADV_DOFORK: (0, VM_DONTCOPY),
    MADV_WIPEONFORK: (VM_WIPEONFORK, 0),
    MADV_KEEPONFORK: (0, VM_WIPEONFORK),
    MADV_DONTDUMP: (VM_DONTDUMP, 0),
    MADV_DODUMP: (0, VM_DONTDUMP),
    MADV_MERGEABLE: (VM_MERGEABLE, 0),
    MADV_UNMERGEABLE: (0, VM_MERGEABLE),
    MADV_HUGEPAGE: (VM_HUGEPAGE, VM_NOHUGEPAGE),
    MADV_NOHUGEPAGE: (VM_NOHUGEPAGE, VM_HUGEPAGE),
}
#: MADV_DONTNEED_LOCKED (include/uapi/asm-generic/mman-common.h): DONTNEED that is also
#: allowed on VM_LOCKED vmas (madvise_dontneed_free_valid_vma()).
MADV_DONTNEED_LOCKED = 24
_OTHER_ADVICE = (MADV_WILLNEED, MADV_DONTNEED, MADV_DONTNEED_LOCKED, MADV_FREE, MADV_COLD,
                 MADV_PAGEOUT, MADV_POPULATE_READ, MADV_POPULATE_WRITE, MADV_REMOVE,
                 MADV_GUARD_INSTALL, MADV_GUARD_REMOVE, MADV_COLLAPSE)
#: is_discard() (mm/madvise.c; is_madv_discard() in mm/mseal.c before 6.17): refused on
#: sealed read-only anonymous memory.
_DISCARD = (MADV_DONTNEED, MADV_DONTNEED_LOCKED, MADV_FREE, MADV_DONTFORK, MADV_WIPEONFORK)


def do_madvise(mm: Mm, start: int, len_in: int, advice: int) -> None:
    """do_madvise(): apply ``advice`` to every vma in the range; a hole in the range does
    not stop the walk but makes the call fail with ENOMEM at the end."""
    if advice not in _FLAG_ADVICE and advice not in _OTHER_ADVICE:
        raise syscall_error(EINVAL, "madvise")
    if offset_in_page(start):
        raise syscall_error(EINVAL, "madvise")
    length = page_align(len_in)
    if len_in and not length:
        raise syscall_error(EINVAL, "madvise")
    end = ulong_add(start, length)
    if end < start:  # is_valid_madvise(): the range wraps past 2**64
        raise syscall_error(EINVAL, "madvise")
    if end == start:
        return
    if advice in (MADV_POPULATE_READ, MADV_POPULATE_WRITE):
        madvise_populate(mm, start, end, advice == MADV_POPULATE_WRITE)
        return
    unmapped = _walk_range(mm, start, end, lambda vma, s, e: _madvise_vma(vma, s, e, advice),
                           stop_at_hole=False)
    if unmapped:
        raise syscall_error(ENOMEM, "madvise")


def _is_ro_anon(vma: Vma) -> bool:
    """is_ro_anon() (mm/mseal.c): private anonymous memory that cannot be written."""
    return vma.file is None and not vma.flags & VM_SHARED and not vma.flags & VM_WRITE


def _walk_range(mm: Mm, start: int, end: int, fn: Callable[[Vma, int, int], Vma],
                stop_at_hole: bool) -> bool:
    """Call ``fn(vma, s, e)`` for each mapped piece of [start, end) in address order.

    ``fn`` returns the vma now covering the piece (it may have merged); returns True if a
    hole was seen. With ``stop_at_hole`` a hole raises ENOMEM when it is reached, the
    vmas before it keeping what ``fn`` did, as apply_vma_lock_flags() returns -ENOMEM at
    a gap or when the last vma ends before ``end`` (mlock, munlock, mseal).
    """
    addr = start
    hole = False
    while addr < end:
        vma = mm.vmas.find(addr)
        if vma is None or vma.start >= end:
            if stop_at_hole:
                raise syscall_error(ENOMEM, "mlock")
            return True
        if vma.start > addr:
            if stop_at_hole:
                raise syscall_error(ENOMEM, "mlock")
            hole = True
            addr = vma.start
        vma = fn(vma, addr, min(vma.end, end))
        addr = max(vma.end, addr + PAGE_SIZE) if vma.end <= addr else vma.end
    return hole


def _madvise_vma(vma: Vma, start: int, end: int, advice: int) -> Vma:
    """madvise_vma_behavior(): one vma's share of the advice.

    The mseal check is made here, per vma (can_madvise_modify(), 6.17+): vmas earlier in
    the range have already been advised when a sealed one refuses. A vma split refused
    for lack of resources (ENOMEM, e.g. at vm.max_map_count) is reported as EAGAIN.
    """
    if advice in _DISCARD and vma.flags & VM_SEALED and _is_ro_anon(vma):
        raise syscall_error(EPERM, "madvise")
    if advice in _FLAG_ADVICE:
        if advice in (MADV_DONTFORK, MADV_DOFORK) and vma.flags & VM_IO:
            raise syscall_error(EINVAL, "madvise")
        if advice == MADV_WIPEONFORK and (vma.file is not None or vma.flags & VM_SHARED):
            raise syscall_error(EINVAL, "madvise")
        if advice == MADV_DODUMP and vma.flags & VM_SPECIAL and not vma.flags & VM_HUGETLB:
            raise syscall_error(EINVAL, "madvise")
        setbits, clearbits = _FLAG_ADVICE[advice]
        flags = (vma.flags | setbits) & ~clearbits
        if flags == vma.flags:
            return vma
        try:
            return vma_modify(vma, start, end, flags)
        except OSError as e:
            if e.errno == ENOMEM:  # "madvise() returns EAGAIN if kernel resources ..."
                raise syscall_error(EAGAIN, "madvise") from None
            raise
    if advice in (MADV_DONTNEED, MADV_DONTNEED_LOCKED):
        forbidden = VM_PFNMAP | VM_HUGETLB
        if advice == MADV_DONTNEED:
            forbidden |= VM_LOCKED
        if vma.flags & forbidden:
            raise syscall_error(EINVAL, "madvise")
        zap_pte_range(vma, start, end)
    elif advice == MADV_FREE:
        if vma.file is not None or vma.flags & (VM_SHARED | VM_LOCKED | VM_PFNMAP):
            raise syscall_error(EINVAL, "madvise")
        _madvise_free(vma, start, end)
    elif advice in (MADV_COLD, MADV_PAGEOUT):
        if vma.flags & (VM_LOCKED | VM_PFNMAP | VM_HUGETLB):  # can_madv_lru_vma()
            raise syscall_error(EINVAL, "madvise")
        if advice == MADV_COLD:
            _madvise_cold(vma, start, end)
        else:
            _madvise_pageout(vma, start, end)
    elif advice == MADV_REMOVE:
        _madvise_remove(vma, start, end)
    elif advice == MADV_GUARD_INSTALL:
        _guard_install(vma, start, end)
    elif advice == MADV_GUARD_REMOVE:
        _guard_remove(vma, start, end)
    elif advice == MADV_COLLAPSE:
        madvise_collapse(vma, start, end)
    # MADV_WILLNEED only starts readahead: nothing to model.
    return vma


def madvise_populate(mm: Mm, start: int, end: int, write: bool) -> None:
    """madvise_populate(): fault in [start, end) vma by vma, stopping at the first
    failure with the pages before it populated. A hole is ENOMEM; a vma that does not
    allow the access (check_vma_flags(): POPULATE_READ needs VM_READ, POPULATE_WRITE
    VM_WRITE; VM_IO/VM_PFNMAP never) is EINVAL; an access that would raise SIGSEGV (a
    guard region) or SIGBUS (past EOF) is EFAULT."""
    addr = start
    while addr < end:
        vma = mm.vmas.lookup(addr)
        if vma is None:
            raise syscall_error(ENOMEM, "madvise")
        if vma.flags & (VM_IO | VM_PFNMAP) or not vma.flags & (VM_WRITE if write else VM_READ):
            raise syscall_error(EINVAL, "madvise")
        try:
            populate_range(mm, addr, min(end, vma.end), write=write)
        except (SegmentationFault, BusError):
            raise syscall_error(EFAULT, "madvise") from None
        addr = vma.end


def _madvise_cold(vma: Vma, start: int, end: int) -> None:
    """madvise_cold_or_pageout_pte_range() without pageout: each page mapped only here
    gets an old pte, loses PG_referenced and is deactivated (folio_deactivate(): moved
    to the inactive end of the reclaim policy's lists); content and mapping stay."""
    m = vma.mm.machine
    pt = vma.mm.pgtable
    split_folios_in_range(vma, start, end, whole=False)
    skip = 0
    for addr, pte in list(pt.range(start, end)):
        if skip:
            skip -= 1
            continue
        if not pte_present(pte):
            continue
        page = m.physmem.pages[pte_pfn(pte)]
        if page is not None and page.folio is not None:
            skip = advise_folio(vma, addr, pte, page.folio, end, lazyfree=False) - 1
            continue
        if page is None or page.flags & PG_ZERO or page.mapcount != 1:
            continue
        pt.set(addr, pte_mkold(pte))
        page.flags &= ~PG_REFERENCED
        m.lru_del(page)
        m.lru_add(page)


def _madvise_remove(vma: Vma, start: int, end: int) -> None:
    """madvise_remove(): punch a hole in the file behind a shared writable mapping
    (vfs_fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)). EINVAL for a locked
    vma or one without a file (private anonymous); EACCES unless the vma is shared and
    may be written (vma_is_shared_maywrite(): a private file mapping, or one of a file
    opened read-only)."""
    if vma.flags & VM_LOCKED or vma.file is None:
        raise syscall_error(EINVAL, "madvise")
    if not (vma.flags & VM_SHARED and vma.flags & VM_MAYWRITE):
        raise syscall_error(EACCES, "madvise")
    first = vma.linear_page_index(start)
    punch_hole(vma.mm.machine, vma.file.inode, first, first + ((end - start) >> 12))


def _guard_install(vma: Vma, start: int, end: int) -> None:
    """madvise_guard_install(): replace every pte of [start, end) by a guard marker;
    pages already there are zapped first (their content is gone). EINVAL on a locked,
    special or hugetlb vma (is_valid_guard_vma()). anon_vma_prepare() runs first, so
    that fork copies the page tables of a private vma; the vma is not split."""
    if vma.flags & (VM_LOCKED | VM_SPECIAL | VM_MIXEDMAP | VM_HUGETLB):
        raise syscall_error(EINVAL, "madvise")
    if not vma.is_shared:
        anon_vma_prepare(vma)
    zap_pte_range(vma, start, end)
    pt = vma.mm.pgtable
    for addr in range(start, end, PAGE_SIZE):
        pt.set(addr, GUARD_PTE)


def _guard_remove(vma: Vma, start: int, end: int) -> None:
    """madvise_guard_remove(): clear the guard markers of [start, end) (to pte_none),
    leaving every other pte alone; EINVAL on a special or hugetlb vma."""
    if vma.flags & (VM_SPECIAL | VM_MIXEDMAP | VM_HUGETLB):
        raise syscall_error(EINVAL, "madvise")
    pt = vma.mm.pgtable
    for addr, pte in list(pt.range(start, end)):
        if pte == GUARD_PTE:
            pt.clear(addr)


def _madvise_free(vma: Vma, start: int, end: int) -> None:
    """madvise_free_pte_range(): swap entries are dropped at once; each anonymous page
    mapped only here gets a clean, old pte, loses PG_dirty and becomes lazily freeable
    (folio_mark_lazyfree(): PG_LAZYFREE, deactivated). Reclaim then discards it instead
    of swapping it, unless it was written again (reclaim.discard_lazyfree). A page still
    in the swap cache leaves it when no swap pte names its slot, else it is skipped."""
    m = vma.mm.machine
    pt = vma.mm.pgtable
    split_folios_in_range(vma, start, end, whole=False)
    skip = 0
    for addr, pte in list(pt.range(start, end)):
        if skip:
            skip -= 1
        elif is_swap_pte(pte):
            pt.clear(addr)
            m.swap.free_entry(swp_slot(pte))
            vma.mm.rss_stat[MM_SWAPENTS] -= 1
        elif pte_present(pte):
            page = m.physmem.pages[pte_pfn(pte)]
            if page is not None and page.folio is not None:
                skip = advise_folio(vma, addr, pte, page.folio, end, lazyfree=True) - 1
                continue
            if page is None or not page.is_anon or page.mapcount != 1:
                continue
            if page.flags & PG_SWAPCACHE:
                if m.swap.count.get(page.swap_slot, 0):
                    continue  # folio_free_swap() fails: other swap ptes name the slot
                m.swap.delete_from_cache(page)
            pt.set(addr, pte_mkold(pte) & ~0x40)  # pte_mkold(pte_mkclean())
            page.flags = (page.flags & ~PG_DIRTY) | PG_LAZYFREE
            m.lru_del(page)
            m.lru_add(page)


def _madvise_pageout(vma: Vma, start: int, end: int) -> None:
    """madvise_pageout(): reclaim now the pages of the range no other mapping maps
    (folio_mapcount() == 1; shared ones are left alone). Anonymous pages go to swap, or
    stay mapped when no slot is free (add_to_swap() fails); a lazily freed one is
    discarded instead, if it was not written again; page-cache pages as
    :func:`~mmcore.reclaim.pageout_cache_page` says (clean file pages are dropped)."""
    m = vma.mm.machine
    split_folios_in_range(vma, start, end, whole=True)
    for _addr, pte in list(vma.mm.pgtable.range(start, end)):
        if pte_present(pte):
            page = m.physmem.pages[pte_pfn(pte)]
            if page is None or page.mapcount != 1 or page.folio is not None:
                continue  # a large folio still here may be mapped by another mm
            if page.is_anon:
                if page.flags & PG_LAZYFREE:
                    discard_lazyfree(m, page)
                else:
                    m.try_to_unmap(page.pfn)
            elif page.flags & PG_CACHE:
                pageout_cache_page(m, page, pte_dirty(pte))


def do_mlock(mm: Mm, start: int, length: int, flags: int, lock: bool) -> None:
    """do_mlock()/sys_munlock(): set or clear VM_LOCKED on [start, start + len) and
    populate the range (unless MLOCK_ONFAULT). A hole stops with ENOMEM; vmas before it
    keep their new flags (apply_vma_lock_flags). Locking is refused with EPERM or ENOMEM
    by RLIMIT_MEMLOCK (:mod:`mmcore.mlock`)."""
    if flags & ~MLOCK_ONFAULT:
        raise syscall_error(EINVAL, "mlock2")
    if lock and not can_do_mlock(mm):
        raise syscall_error(EPERM, "mlock")
    length = page_align(length + offset_in_page(start))
    start &= PAGE_MASK
    if lock:
        check_mlock_limit(mm, start, length)
    end = ulong_add(start, length)
    if end < start:
        raise syscall_error(EINVAL, "mlock")
    if end == start:
        return
    newbits = 0
    if lock:
        newbits = VM_LOCKED | (VM_LOCKONFAULT if flags & MLOCK_ONFAULT else 0)
    if mm.vmas.lookup(start) is None:
        raise syscall_error(ENOMEM, "mlock")

    def fixup(vma: Vma, s: int, e: int) -> Vma:
        flags_new = (vma.flags & ~VM_LOCKED_MASK) | newbits
        if flags_new == vma.flags or vma.flags & VM_SPECIAL:
            return vma
        return vma_modify(vma, s, e, flags_new)

    _walk_range(mm, start, end, fixup, stop_at_hole=True)
    if lock and not flags & MLOCK_ONFAULT:
        try:
            populate_range(mm, start, end)
        except (SegmentationFault, BusError):
            # __mlock_posix_error_return(): the populate's EFAULT is ENOMEM; the vmas
            # stay locked.
            raise syscall_error(ENOMEM, "mlock") from None


def do_mseal(mm: Mm, start: int, length: int, flags: int) -> None:
    """do_mseal(): seal [start, start + len) against munmap, mremap, mprotect and
    destructive madvise. The whole range must be mapped (ENOMEM otherwise, no change)."""
    if flags:
        raise syscall_error(EINVAL, "mseal")
    if offset_in_page(start):
        raise syscall_error(EINVAL, "mseal")
    len_in, length = length, page_align(length)
    if len_in and not length:  # "len was rounded up from small -ve to zero"
        raise syscall_error(EINVAL, "mseal")
    end = ulong_add(start, length)
    if end < start:
        raise syscall_error(EINVAL, "mseal")
    if end == start:
        return
    addr = start
    for vma in mm.vmas.intersecting(start, end):
        if vma.start > addr:
            raise syscall_error(ENOMEM, "mseal")
        addr = vma.end
    if addr < end:
        raise syscall_error(ENOMEM, "mseal")
    _walk_range(mm, start, end,
                lambda vma, s, e: vma if vma.flags & VM_SEALED
                else vma_modify(vma, s, e, vma.flags | VM_SEALED),
                stop_at_hole=True)
