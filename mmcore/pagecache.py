"""The page cache (mm/filemap.c, mm/truncate.c, mm/page-writeback.c) and shmem's swap.

Page-cache pages carry PG_CACHE, ``mapping`` = the Inode and ``index`` = the page offset
in the file; the cache holds one reference. A shared mapping writes into these very pages
(so pread sees them); a private mapping maps them read-only and copies on the first write.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .constants import PAGE_SIZE, VM_SHARED
from .errors import BusError
from .page import PG_CACHE, PG_DIRTY, Page
from .pagetable import pte_dirty, pte_present, pte_wrprotect

if TYPE_CHECKING:
    from .fs import Inode
    from .machine import Machine


def find_get_page(m: Machine, inode: Inode, index: int) -> tuple[Page, bool]:
    """filemap_fault()'s lookup: the cached page at ``index``, read in if absent.

    Returns the page and whether it had to be read from the backing store (a major
    fault). A shmem page that was swapped out comes back from its swap slot.
    """
    page = inode.pages.get(index)
    if page is not None:
        return page, False
    page = m.alloc_page()
    major = False
    if inode.shmem:
        slot = inode.swapped.pop(index, None)
        if slot is not None:
            page.data = m.swap.take(slot)
            major = True
    else:
        page.data = inode.disk_page(index)
        major = True
    page.flags |= PG_CACHE
    page.mapping = inode
    page.index = index
    page.refcount = 1  # the page cache's reference
    inode.pages[index] = page
    return page, major


def check_eof(inode: Inode, index: int, pid: int, addr: int) -> None:
    """An access to a page wholly past EOF is SIGBUS (filemap_fault: VM_FAULT_SIGBUS)."""
    if index >= inode.nr_pages:
        raise BusError(pid, addr)


def delete_from_page_cache(m: Machine, page: Page) -> None:
    """filemap_remove_folio(): drop the cache's reference (the page must be unmapped)."""
    inode: Inode = page.mapping  # type: ignore[assignment]
    del inode.pages[page.index]
    page.flags &= ~(PG_CACHE | PG_DIRTY)
    m.put_page(page)


def page_mkclean(m: Machine, page: Page) -> None:
    """folio_mkclean(): through the file rmap walk, clean and write-protect every shared
    pte mapping ``page``, so the next write faults and dirties it again (writenotify);
    a dirty pte found on the way dirties the page first."""
    if not page.mapcount:
        return
    from .rmap import find_mappings
    hits, _ = find_mappings(m, page)
    for vma, addr in hits:
        pt = vma.mm.pgtable
        pte = pt.lookup(addr)
        if pte_present(pte) and vma.flags & VM_SHARED:
            if pte_dirty(pte):
                page.flags |= PG_DIRTY
            pt.set(addr, pte_wrprotect(pte) & ~0x40)


def writeback_page(m: Machine, page: Page) -> None:
    """folio_write_one(): write a dirty page to its backing store and mark it clean."""
    page_mkclean(m, page)
    if page.flags & PG_DIRTY:
        inode: Inode = page.mapping  # type: ignore[assignment]
        inode.disk[page.index] = page.data
        page.flags &= ~PG_DIRTY
        m.counters.pages_written_back += 1


def write_inode(m: Machine, inode: Inode, first: int = 0, last: int | None = None) -> None:
    """filemap_write_and_wait_range(): write back every dirty page of [first, last]."""
    if inode.shmem:
        return  # shmem has no backing store: its pages only ever go to swap
    for index in sorted(inode.pages):
        if index >= first and (last is None or index <= last):
            writeback_page(m, inode.pages[index])


def file_read(m: Machine, inode: Inode, n: int, offset: int) -> bytes:
    """filemap_read(): up to ``n`` bytes at ``offset`` (short at EOF) via the cache."""
    end = min(offset + n, inode.size)
    out = []
    pos = offset
    while pos < end:
        page, _ = find_get_page(m, inode, pos // PAGE_SIZE)
        m.mark_accessed(page)
        off = pos % PAGE_SIZE
        k = min(PAGE_SIZE - off, end - pos)
        out.append(page.read(off, k))
        pos += k
    return b"".join(out)


def file_write(m: Machine, inode: Inode, data: bytes, offset: int) -> int:
    """generic_perform_write(): copy into cached pages, mark them dirty, extend the size."""
    pos = 0
    while pos < len(data):
        at = offset + pos
        page, _ = find_get_page(m, inode, at // PAGE_SIZE)
        off = at % PAGE_SIZE
        k = min(PAGE_SIZE - off, len(data) - pos)
        page.write(off, data[pos:pos + k])
        page.flags |= PG_DIRTY
        m.mark_accessed(page)
        pos += k
    inode.size = max(inode.size, offset + len(data))
    return len(data)


def truncate_pages(m: Machine, inode: Inode, size: int) -> None:
    """truncate_pagecache(): set the size; unmap and drop every page wholly past EOF,
    including private COW copies in private mappings (unmap_mapping_range, even_cows),
    and zero the tail of a partial last page."""
    from .memory import zap_pte_range
    old_size, inode.size = inode.size, size
    if size >= old_size:
        return
    first = inode.nr_pages
    for proc in m.live_processes():
        for vma in proc.mm.vmas:
            if vma.file is None or vma.file.inode is not inode:
                continue
            start = vma.address_of(max(first, vma.pgoff))
            if start >= 0:
                zap_pte_range(vma, start, vma.end)
    for index in [i for i in inode.pages if i >= first]:
        delete_from_page_cache(m, inode.pages[index])
    for index in [i for i in inode.disk if i >= first]:
        del inode.disk[index]
    inode.fill_end = min(inode.fill_end, size)
    for index in [i for i in inode.swapped if i >= first]:
        m.swap.free_entry(inode.swapped.pop(index))
    tail = size % PAGE_SIZE
    if tail:
        last = size // PAGE_SIZE
        if last in inode.pages:
            inode.pages[last].data = inode.pages[last].data[:tail]
        if last in inode.disk:
            inode.disk[last] = inode.disk[last][:tail]


def punch_hole(m: Machine, inode: Inode, first: int, last: int) -> None:
    """shmem_fallocate()/ext4_punch_hole() with FALLOC_FL_PUNCH_HOLE | KEEP_SIZE over the
    page indices [first, last): unmap_mapping_range() without even_cows clears every pte
    that maps a page-cache page there (private COW copies stay), then the cached pages,
    the backing store and shmem swap slots of the range are dropped without writeback.
    The size does not change; a later access reads zeros."""
    from .memory import zap_pte_range
    for proc in m.live_processes():
        for vma in proc.mm.vmas:
            if vma.file is None or vma.file.inode is not inode:
                continue
            for index in range(max(first, vma.pgoff), min(last, vma.pgoff + vma.pages)):
                addr = vma.address_of(index)
                pte = proc.mm.pgtable.entry(addr >> 12)
                if pte_present(pte):
                    page = m.physmem.pages[pte >> 12]
                    if page is not None and page.flags & PG_CACHE:
                        zap_pte_range(vma, addr, addr + PAGE_SIZE)
    for index in range(first, last):
        page = inode.pages.get(index)
        if page is not None:
            delete_from_page_cache(m, page)
        if index * PAGE_SIZE < inode.fill_end:
            inode.disk[index] = b""  # a hole over the created content: zeros, not fill
        else:
            inode.disk.pop(index, None)
        slot = inode.swapped.pop(index, None)
        if slot is not None:
            m.swap.free_entry(slot)


def release_inode_pages(m: Machine, inode: Inode) -> None:
    """evict(): a shmem inode whose last user is gone frees its pages and swap slots."""
    for page in list(inode.pages.values()):
        delete_from_page_cache(m, page)
    for slot in inode.swapped.values():
        m.swap.free_entry(slot)
    inode.swapped.clear()
