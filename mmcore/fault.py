"""Page faults (mm/memory.c handle_mm_fault and friends) and user memory access.

An access checks the pte first, exactly as the MMU would; only a missing or insufficient
pte enters the fault handler. The handler finds the vma, checks its permissions
(x86 access_error()), and then takes one of the kernel's paths:

* pte_none in a private vma: ``do_anonymous_page`` (zero page on read, new page on write);
* pte_none in a shared anonymous vma: ``do_shared_fault`` through the shmem object;
* a swap pte: ``do_swap_page``;
* a present read-only pte on write: ``do_wp_page`` (reuse if exclusive, else copy).

Before the pte path, a fault whose 2 MiB has no page table yet in a vma that allows PMD
THPs maps one (:func:`mmcore.huge_memory.do_huge_pmd_anonymous_page`), and a write to a
read-only huge PMD goes to :func:`mmcore.huge_memory.do_huge_pmd_wp_page`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .anon_folio import do_anonymous_folio, wp_can_reuse_large_anon_folio
from .constants import (
    PAGE_SHIFT,
    PAGE_SIZE,
    VM_EXEC,
    VM_HUGEPAGE,
    VM_NOHUGEPAGE,
    VM_READ,
    VM_WRITE,
)
from .errors import SegmentationFault
from .huge_memory import do_huge_pmd_anonymous_page, do_huge_pmd_wp_page, thp_pmd_allowed
from .mm import MM_ANONPAGES, MM_SWAPENTS
from .page import PG_ANON, PG_ANON_EXCLUSIVE, PG_DIRTY, PG_ZERO, Page
from .pagecache import check_eof, find_get_page
from .pagetable import (
    GUARD_PTE,
    is_swap_pte,
    mk_pte,
    pte_huge,
    pte_mkwrite,
    pte_mkyoung,
    pte_pfn,
    pte_swp_exclusive,
    pte_write,
    swp_slot,
)

if TYPE_CHECKING:
    from .machine import Machine
    from .mm import Mm
    from .vma import Vma


def access_page(mm: Mm, addr: int, write: bool) -> Page:
    """Translate ``addr`` for a read or write, faulting as needed; return the page.

    The fast path is a present pte that allows the access: it only sets the accessed and
    dirty bits, as the hardware does. A PROT_NONE pte or a guard marker lacks the
    hardware present bit, so any access to it faults.
    """
    vpn = addr >> PAGE_SHIFT
    try:  # PageTable.entry(), inlined: a subscript is the cheapest read of the hot path
        table = mm.pgtable.tables[vpn >> 9]
        pte = table[vpn & 511]
    except KeyError:  # no PTE page: pte_none
        pte = 0
    # The bits are tested inline (present 0x1, write 0x2, accessed 0x20, dirty 0x40; the
    # pfn from bit 12): a call per test would cost more than the whole table read.
    if not (pte & 1) or (write and not pte & 2):
        pte = handle_mm_fault(mm, addr, write)
    elif not pte & 0x20 or (write and not pte & 0x40):
        table[vpn & 511] = pte_mkyoung(pte, write)
    page = mm.machine.physmem.pages[pte >> 12]
    assert page is not None
    return page


def handle_mm_fault(mm: Mm, addr: int, write: bool) -> int:
    """Handle a fault at ``addr``: find the vma, check access, fix the pte; return it.

    Raises :class:`SegmentationFault` (SEGV_MAPERR with no vma, SEGV_ACCERR when the vma
    forbids the access), as lock_mm_and_find_vma() and access_error() decide.
    """
    vma = mm.vmas.lookup(addr)
    if vma is None:
        raise SegmentationFault(mm.owner_pid, addr, "SEGV_MAPERR", write)
    if write:
        if not vma.flags & VM_WRITE:
            raise SegmentationFault(mm.owner_pid, addr, "SEGV_ACCERR", write)
    elif not vma.flags & (VM_READ | VM_WRITE | VM_EXEC):
        raise SegmentationFault(mm.owner_pid, addr, "SEGV_ACCERR", write)
    mm.machine.vm_events.pgfault += 1  # count_vm_event(PGFAULT)
    addr &= ~0xFFF
    pte = mm.pgtable.lookup(addr)
    if pte == 0 and vma.file is None:
        huge = create_huge_pmd(vma, addr, write)
        if huge:
            return huge
        if write:
            return do_anonymous_write(vma, addr)
    return handle_pte_fault(vma, addr, write, pte)


def create_huge_pmd(vma: Vma, addr: int, write: bool) -> int:
    """__handle_mm_fault()'s create_huge_pmd() for an anonymous vma whose pte at ``addr``
    is none: when the PMD is none and THP allows a PMD folio here, map one
    (do_huge_pmd_anonymous_page(): a THP, or the huge zero page on a read) and return
    the pte at ``addr``; 0 when the fault goes on at the pte level."""
    if vma.mm.pgtable.pmd_none(addr) and thp_pmd_allowed(vma):
        return do_huge_pmd_anonymous_page(vma, addr, write)
    return 0


def handle_pte_fault(vma: Vma, addr: int, write: bool, pte: int | None = None) -> int:
    """handle_pte_fault(): dispatch on the pte's state. ``vma`` allows the access;
    ``pte`` is the entry the caller already read, if any."""
    if pte is None:
        pte = vma.mm.pgtable.lookup(addr)
    if pte == GUARD_PTE:  # handle_pte_marker(): VM_FAULT_SIGSEGV, reported as SEGV_MAPERR
        raise SegmentationFault(vma.mm.owner_pid, addr, "SEGV_MAPERR", write)
    if pte == 0:
        if vma.file is not None:
            return do_fault(vma, addr, write)
        return do_anonymous_page(vma, addr, write)
    if is_swap_pte(pte):
        return do_swap_page(vma, addr, pte, write)
    if write and not pte_write(pte):
        if pte_huge(pte):
            return do_huge_pmd_wp_page(vma, addr, pte)
        return do_wp_page(vma, addr, pte)
    return pte  # raced: already fixed (cannot happen single-threaded, kept for clarity)


def anon_vma_prepare(vma: Vma) -> None:
    """anon_vma_prepare(): give ``vma`` its anon rmap object before its first anon page."""
    if vma.anon_vma is None:
        anon = vma.mm.machine.hook.rmap_anon_prepare(vma=vma)
        if anon is None:
            from .errors import PluginError
            raise PluginError("rmap_anon_prepare returned None", hook="rmap_anon_prepare")
        vma.anon_vma = anon


def map_new_anon_page(vma: Vma, addr: int, page: Page, writable: bool,
                      exclusive: bool = True) -> int:
    """Install a freshly allocated anonymous ``page`` at ``addr`` and register its rmap.

    Mirrors the tail of do_anonymous_page()/wp_page_copy(): folio_add_new_anon_rmap()
    then set_pte_at(). Returns the new pte.
    """
    m = vma.mm.machine
    page.flags |= PG_ANON | (PG_ANON_EXCLUSIVE if exclusive else 0)
    page.mapcount = 1
    page.refcount += 1
    m.rmap_page_new_anon(page, vma, addr, exclusive)
    pte = mk_pte(page.pfn, writable, dirty=writable)
    vma.mm.pgtable.set(addr, pte)
    vma.mm.rss_stat[MM_ANONPAGES] += 1
    return pte


def do_anonymous_page(vma: Vma, addr: int, write: bool) -> int:
    """do_anonymous_page(): a read maps the shared zero page (no rmap, mapcount stays 0);
    a write prepares the anon_vma and maps a new zeroed page."""
    if write:
        return do_anonymous_write(vma, addr)
    m = vma.mm.machine
    pte = mk_pte(m.physmem.ZERO_PFN, writable=False)
    vma.mm.pgtable.set(addr, pte)
    m.counters.fault_zero_page += 1
    if m.observed:
        m.emit("fault", vma.mm.owner_pid, type="zero_page", address=addr)
    return pte


def do_anonymous_write(vma: Vma, addr: int) -> int:
    """do_anonymous_page() for a write: the demand-zero fault, the hottest path of all."""
    mm = vma.mm
    m = mm.machine
    if vma.anon_vma is None:
        anon_vma_prepare(vma)
    if m.thp.any_pte_order and not vma.flags & VM_NOHUGEPAGE:
        orders = m.thp.fault_orders[bool(vma.flags & VM_HUGEPAGE)]  # pte_orders()
        if orders:
            pte = do_anonymous_folio(vma, addr, orders)
            if pte:
                return pte
    page = m.alloc_page()
    page.flags = PG_ANON | PG_ANON_EXCLUSIVE
    page.mapcount = 1
    page.refcount = 1
    m.rmap_page_new_anon(page, vma, addr, True)
    pte = (page.pfn << 12) | 0x67  # present, rw, user, accessed, dirty (mk_pte)
    mm.pgtable.set(addr, pte)
    mm.rss_stat[MM_ANONPAGES] += 1
    m.counters.fault_anon += 1
    if m.observed:
        m.emit("fault", mm.owner_pid, type="anon", address=addr, pfn=page.pfn)
    return pte


def do_wp_page(vma: Vma, addr: int, pte: int) -> int:
    """do_wp_page(): a write hit a read-only pte in a writable vma.

    Shared mappings are simply made writable. A private anonymous page that only this pte
    maps (wp_can_reuse_anon_folio(): refcount 1, or 2 with the swap cache holding it and
    the swap slot freeable) is reused in place; otherwise the page is copied (wp_page_copy).
    A page of a large folio is reused if it is PageAnonExclusive or the whole folio
    passes :func:`~mmcore.anon_folio.wp_can_reuse_large_anon_folio`; otherwise this one
    page is copied to an order-0 page (kernel-facts section 18) and the folio loses
    that one pte mapping.
    """
    mm = vma.mm
    m = mm.machine
    page = m.physmem.pages[pte_pfn(pte)]
    assert page is not None
    if vma.is_shared:
        page.flags |= PG_DIRTY  # wp_page_shared(): the first write after a clean map
        new = pte_mkwrite(pte)
        mm.pgtable.set(addr, new)
        return new
    if page.folio is not None and page.flags & PG_ANON:
        if page.flags & PG_ANON_EXCLUSIVE or wp_can_reuse_large_anon_folio(page.folio, mm):
            return _wp_page_reuse(vma, addr, pte, page)
    elif page.flags & PG_ANON and _can_reuse_anon(page):
        return _wp_page_reuse(vma, addr, pte, page)
    # wp_page_copy(): a private copy for this pte.
    anon_vma_prepare(vma)
    new_page = alloc_copy(m, page)
    mm.pgtable.clear(addr)
    if not page.flags & PG_ZERO:
        mm.add_rss(page, -1)
    new_pte = map_new_anon_page(vma, addr, new_page, writable=True)
    if not page.flags & PG_ZERO:
        m.unmap_page_pte(page, vma, addr)
    m.counters.fault_cow_copy += 1
    m.counters.tlb_flushes += 1
    m.emit("fault", mm.owner_pid, type="cow_copy", address=addr, old_pfn=page.pfn,
           pfn=new_page.pfn)
    return new_pte


def _wp_page_reuse(vma: Vma, addr: int, pte: int, page: Page) -> int:
    """wp_page_reuse(): the page becomes exclusive and this pte (only this one, for a
    page of a large folio) writable."""
    m = vma.mm.machine
    page.flags |= PG_ANON_EXCLUSIVE
    new = pte_mkwrite(pte)
    vma.mm.pgtable.set(addr, new)
    m.counters.fault_cow_reuse += 1
    m.emit("fault", vma.mm.owner_pid, type="cow_reuse", address=addr, pfn=page.pfn)
    return new


def alloc_copy(m: Machine, src: Page) -> Page:
    """A new page holding a copy of ``src`` (copy_user_highpage). ``src`` is pinned
    (folio_get) meanwhile, so the reclaim the allocation may run cannot take it."""
    src.refcount += 1
    try:
        new = m.alloc_page()
        new.copy_from(src)
    finally:
        m.put_page(src)
    return new


def _can_reuse_anon(page: Page) -> bool:
    """wp_can_reuse_anon_folio(): no reference but this pte. A page still in the swap
    cache is referenced by other processes' swap ptes (the slot is freed, and the page
    leaves the cache, as soon as the last one is swapped in), so it is never reused."""
    return page.refcount == 1


def do_swap_page(vma: Vma, addr: int, pte: int, write: bool) -> int:
    """do_swap_page(): bring the page back from swap (or find it in the swap cache).

    A page still in the swap cache is mapped again (a minor fault, folio_add_anon_rmap),
    unless the scheme asks for a private copy (``rmap_swapin_copy``); otherwise a new page
    is read from the slot (a major fault) and set up with folio_add_new_anon_rmap(),
    exclusive only if the swap pte was exclusive.

    The page read is always order 0, whatever the mTHP knobs and however the slots lie:
    6.18 swaps in a large folio (alloc_swap_folio()) only from a SWP_SYNCHRONOUS_IO
    device (zram, pmem) that skips the swap cache, and mmcore's device, which keeps the
    swap cache, is not one (swapin_readahead() allocates order-0 folios).
    """
    mm = vma.mm
    m = mm.machine
    slot = swp_slot(pte)
    swap = m.swap
    page = swap.cache_lookup(slot)
    anon_vma_prepare(vma)
    exclusive = pte_swp_exclusive(pte)
    if page is None:
        page = m.alloc_page()
        page.data = swap.read(slot)
        swap.add_to_cache(slot, page)
        mm.pgtable.clear(addr)
        new = map_new_anon_page(vma, addr, page, writable=False, exclusive=exclusive)
        m.counters.fault_swapin_major += 1
        m.vm_events.pgmajfault += 1
        kind = "swapin_major"
    elif m.rmap_swapin_copy is not None and m.rmap_swapin_copy(page, vma, addr):
        # rmap 11's early COW at swap-in: this pte gets a private copy of the page.
        copy = alloc_copy(m, page)
        mm.pgtable.clear(addr)
        new = map_new_anon_page(vma, addr, copy, writable=False)
        m.counters.fault_swapin_minor += 1
        m.counters.swapin_copies += 1
        page = copy
        kind = "swapin_copy"
    else:
        mm.pgtable.clear(addr)
        page.mapcount += 1
        page.refcount += 1
        if exclusive:
            page.flags |= PG_ANON_EXCLUSIVE
        m.rmap_page_dup(page, vma, addr)
        new = mk_pte(page.pfn, writable=False)
        mm.pgtable.set(addr, new)
        mm.rss_stat[MM_ANONPAGES] += 1
        m.counters.fault_swapin_minor += 1
        kind = "swapin_minor"
    swap.free_entry(slot)  # this pte no longer references the slot
    mm.rss_stat[MM_SWAPENTS] -= 1
    m.emit("fault", mm.owner_pid, type=kind, address=addr, pfn=page.pfn)
    if write:
        return do_wp_page(vma, addr, new)
    return new


def do_fault(vma: Vma, addr: int, write: bool) -> int:
    """do_fault() for a file or shmem vma: an access past EOF is SIGBUS; a private write
    copies the cached page into a new anonymous page (do_cow_fault); otherwise the cached
    page is mapped (do_read_fault with fault-around, or do_shared_fault, which dirties it).
    Shared mappings are mapped read-only on a read so that the first write faults and
    dirties the page (writenotify)."""
    mm = vma.mm
    m = mm.machine
    assert vma.file is not None
    inode = vma.file.inode
    index = vma.linear_page_index(addr)
    check_eof(inode, index, mm.owner_pid, addr)
    if write and not vma.is_shared:
        anon_vma_prepare(vma)
        src, major = find_get_page(m, inode, index)
        new = alloc_copy(m, src)
        _count_file_fault(m, inode.shmem, major)
        m.counters.fault_cow_copy += 1
        if m.observed:
            m.emit("fault", mm.owner_pid, type="cow_file", address=addr, pfn=new.pfn)
        return map_new_anon_page(vma, addr, new, writable=True)
    page, major = find_get_page(m, inode, index)
    page.mapcount += 1
    page.refcount += 1
    if write:
        page.flags |= PG_DIRTY
    pte = mk_pte(page.pfn, writable=write, dirty=write)
    mm.pgtable.set(addr, pte)
    mm.add_rss(page, 1)
    _count_file_fault(m, inode.shmem, major)
    if m.observed:
        m.emit("fault", mm.owner_pid, type="shmem" if inode.shmem else "file",
               address=addr, pfn=page.pfn, major=major)
    if not write:
        do_fault_around(vma, addr)
    return pte


def _count_file_fault(m: Machine, shmem: bool, major: bool) -> None:
    if major:  # filemap_fault() read the page, or shmem brought it back from swap
        m.vm_events.pgmajfault += 1
    if shmem:
        m.counters.fault_shmem += 1
    elif major:
        m.counters.fault_file_major += 1
    else:
        m.counters.fault_file_minor += 1


#: fault_around_bytes default: 64 KiB.
FAULT_AROUND_PAGES = 16


def do_fault_around(vma: Vma, addr: int) -> None:
    """do_fault_around() / filemap_map_pages(): map the pages of the 64 KiB window around
    a read fault that are already in the page cache (read-only and old), so that
    neighbouring reads do not fault."""
    mm = vma.mm
    assert vma.file is not None
    inode = vma.file.inode
    span = FAULT_AROUND_PAGES * PAGE_SIZE
    start = max(vma.start, addr & ~(span - 1))
    end = min(vma.end, (addr & ~(span - 1)) + span)
    entry = mm.pgtable.entry
    mapped = 0
    for a in range(start, end, PAGE_SIZE):
        if a == addr or entry(a >> PAGE_SHIFT):
            continue
        index = vma.linear_page_index(a)
        page = inode.pages.get(index)
        if page is None or index >= inode.nr_pages:
            continue
        page.mapcount += 1
        page.refcount += 1
        mm.pgtable.set(a, mk_pte(page.pfn, writable=False, accessed=False))
        mm.add_rss(page, 1)
        mapped += 1
    mm.machine.counters.fault_around_mapped += mapped
