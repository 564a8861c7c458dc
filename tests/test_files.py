"""File mappings and the page cache, as Linux behaves (docs/kernel-facts.md for probes)."""

from __future__ import annotations

import errno
import os

import pytest

from mmcore import (
    MADV_DONTNEED,
    MAP_ANONYMOUS,
    MAP_PRIVATE,
    MAP_SHARED,
    MS_SYNC,
    PROT_READ,
    PROT_WRITE,
    BusError,
    Machine,
)

RW = PROT_READ | PROT_WRITE
PAGE = 4096


@pytest.fixture
def m(config: tuple[str, str | None]) -> Machine:
    """A machine per configuration with a three-page file /data ("A"*4096, "B"*4096, "C")."""
    rmap, policy = config
    machine = Machine(rmap=rmap, mremap_policy=policy, ram_pages=256, swap_pages=256)
    machine.create_file("/data", b"A" * PAGE + b"B" * PAGE + b"C")
    return machine


def test_shared_and_private_mappings_share_the_page_cache_page(m: Machine) -> None:
    """filemap_fault(): both mappings of one file map the same cached page until the
    private one is written; its copy is then an anonymous page (do_cow_fault/wp_page_copy)
    and the shared one still sees the file."""
    p = m.spawn()
    fd = p.open("/data", os.O_RDWR)
    s = p.mmap(0, 3 * PAGE, RW, MAP_SHARED, fd, 0)
    q = p.mmap(0, 3 * PAGE, RW, MAP_PRIVATE, fd, 0)
    assert p.read(s, 1) == b"A" and p.read(q, 1) == b"A"
    pfn = p.pagemap(s).pfn
    assert p.pagemap(q).pfn == pfn and m.kpagecount(pfn) == 2
    assert p.pagemap(s).file_or_shared
    p.write(q, b"private")
    assert p.pagemap(q).pfn != pfn and not p.pagemap(q).file_or_shared
    assert p.read(s, 7) == b"AAAAAAA" and p.pread(fd, 1, 0) == b"A"
    assert m.counters.fault_cow_copy == 1


def test_shared_writes_are_seen_by_pread_and_other_mappings(m: Machine) -> None:
    """A shared mapping writes into the page-cache page itself: pread, another process's
    shared mapping and an unwritten private mapping all see it; pwrite is seen back."""
    p = m.spawn()
    fd = p.open("/data", os.O_RDWR)
    s = p.mmap(0, 3 * PAGE, RW, MAP_SHARED, fd, 0)
    q = p.mmap(0, 3 * PAGE, PROT_READ, MAP_PRIVATE, fd, 0)
    c = p.fork()
    p.write(s + PAGE, b"shared!")
    assert p.pread(fd, 7, PAGE) == b"shared!"
    assert c.read(s + PAGE, 7) == b"shared!"
    assert p.read(q + PAGE, 7) == b"shared!"
    p.pwrite(fd, b"via pwrite", 10)
    assert c.read(s + 10, 10) == b"via pwrite"


def test_access_past_eof_is_sigbus(m: Machine) -> None:
    """filemap_fault() returns VM_FAULT_SIGBUS for a page wholly past EOF; the partial
    last page reads zeros after the data."""
    p = m.spawn()
    fd = p.open("/data", os.O_RDONLY)
    a = p.mmap(0, 4 * PAGE, PROT_READ, MAP_PRIVATE, fd, 0)
    assert p.read(a + 2 * PAGE, 2) == b"C\0"
    with pytest.raises(BusError) as info:
        p.read(a + 3 * PAGE, 1)
    assert info.value.address == a + 3 * PAGE


def test_ftruncate_unmaps_past_eof_and_later_access_is_sigbus(m: Machine) -> None:
    """truncate_pagecache(): pages past the new EOF leave every mapping, including a
    private COW copy (unmap_mapping_range with even_cows)."""
    p = m.spawn()
    fd = p.open("/data", os.O_RDWR)
    s = p.mmap(0, 3 * PAGE, RW, MAP_SHARED, fd, 0)
    q = p.mmap(0, 3 * PAGE, RW, MAP_PRIVATE, fd, 0)
    p.read(s + 2 * PAGE, 1)
    p.write(q + 2 * PAGE, b"cow")
    p.ftruncate(fd, PAGE)
    assert not p.pagemap(s + 2 * PAGE).present and not p.pagemap(q + 2 * PAGE).present
    for addr in (s + 2 * PAGE, q + 2 * PAGE):
        with pytest.raises(BusError):
            p.read(addr, 1)
    assert p.read(s, 1) == b"A"


def test_write_mapping_of_read_only_fd_is_eacces(m: Machine) -> None:
    """do_mmap(): MAP_SHARED with PROT_WRITE needs FMODE_WRITE (EACCES); MAP_PRIVATE with
    PROT_WRITE is fine; any mapping needs FMODE_READ; a bad fd is EBADF."""
    p = m.spawn()
    ro = p.open("/data", os.O_RDONLY)
    wo = p.open("/data", os.O_WRONLY)
    with pytest.raises(OSError) as info:
        p.mmap(0, PAGE, RW, MAP_SHARED, ro, 0)
    assert info.value.errno == errno.EACCES
    assert p.mmap(0, PAGE, RW, MAP_PRIVATE, ro, 0)
    shared_ro = p.mmap(0, PAGE, PROT_READ, MAP_SHARED, ro, 0)
    entry = next(e for e in p.maps() if e.start == shared_ro)
    # Without FMODE_WRITE, VM_SHARED and VM_MAYWRITE are dropped; VM_MAYSHARE stays.
    assert entry.perms == "r--s" and entry.vm_flags == "rd mr me ms"
    with pytest.raises(OSError) as info:
        p.mmap(0, PAGE, PROT_READ, MAP_PRIVATE, wo, 0)
    assert info.value.errno == errno.EACCES
    with pytest.raises(OSError) as info:
        p.mmap(0, PAGE, PROT_READ, MAP_PRIVATE, 99, 0)
    assert info.value.errno == errno.EBADF


def test_two_opens_do_not_merge_but_a_dup_does(m: Machine) -> None:
    """is_mergeable_vma() compares vm_file (struct file): adjacent mappings of one file at
    contiguous offsets merge only when they come through the same open file description."""
    p = m.spawn()
    fd1 = p.open("/data", os.O_RDONLY)
    fd2 = p.open("/data", os.O_RDONLY)
    a = p.mmap(0, 2 * PAGE, PROT_READ, MAP_PRIVATE, fd1, 0)
    p.mmap(a + 2 * PAGE, PAGE, PROT_READ, MAP_PRIVATE | 0x10, fd2, 2 * PAGE)
    assert len(p.maps()) == 2
    p.munmap(a, 3 * PAGE)
    fd3 = p.dup(fd1)
    b = p.mmap(0, 2 * PAGE, PROT_READ, MAP_PRIVATE, fd1, 0)
    p.mmap(b + 2 * PAGE, PAGE, PROT_READ, MAP_PRIVATE | 0x10, fd3, 2 * PAGE)
    maps = p.maps()
    assert len(maps) == 1 and maps[0].offset == 0 and maps[0].path == "/data"


def test_madvise_dontneed_on_each_kind_of_mapping(m: Machine) -> None:
    """MADV_DONTNEED zaps the ptes: private anonymous memory reads zeros again, a private
    file mapping loses its COW copy and shows the file again, a shared file mapping and
    shared anonymous memory keep their data (it lives in the page cache)."""
    p = m.spawn()
    fd = p.open("/data", os.O_RDWR)
    anon = p.mmap(0, PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    shanon = p.mmap(0, PAGE, RW, MAP_SHARED | MAP_ANONYMOUS)
    priv = p.mmap(0, PAGE, RW, MAP_PRIVATE, fd, 0)
    shared = p.mmap(0, PAGE, RW, MAP_SHARED, fd, PAGE)
    for addr in (anon, shanon, priv, shared):
        p.write(addr, b"zz")
        p.madvise(addr, PAGE, MADV_DONTNEED)
        assert not p.pagemap(addr).present
    assert p.read(anon, 2) == b"\0\0"
    assert p.read(shanon, 2) == b"zz"
    assert p.read(priv, 2) == b"AA"
    assert p.read(shared, 2) == b"zz"


def test_msync_writes_dirty_shared_pages_back(m: Machine) -> None:
    """msync(MS_SYNC) writes back the dirty pages of a shared file mapping and cleans the
    ptes (page_mkclean), so the next write faults and dirties the page again."""
    p = m.spawn()
    fd = p.open("/data", os.O_RDWR)
    s = p.mmap(0, 3 * PAGE, RW, MAP_SHARED, fd, 0)
    p.write(s, b"persist")
    inode = m.files["/data"]
    assert inode.disk[0][:7] == b"AAAAAAA"
    p.msync(s, 3 * PAGE, MS_SYNC)
    assert inode.disk[0][:7] == b"persist"
    assert m.counters.pages_written_back == 1
    p.write(s, b"again")
    p.fsync(fd)
    assert inode.disk[0][:5] == b"again"
    with pytest.raises(OSError) as info:
        p.msync(s, PAGE, MS_SYNC | 1)
    assert info.value.errno == errno.EINVAL


def test_fault_around_maps_cached_neighbours(m: Machine) -> None:
    """do_fault_around(): a read fault maps the neighbours already in the page cache."""
    p = m.spawn()
    fd = p.open("/data", os.O_RDONLY)
    p.pread(fd, 3 * PAGE, 0)  # bring all three pages into the cache
    a = p.mmap(0, 3 * PAGE, PROT_READ, MAP_PRIVATE, fd, 0)
    p.read(a, 1)
    assert p.pagemap(a + PAGE).present and p.pagemap(a + 2 * PAGE).present
    assert m.counters.fault_around_mapped == 2


def test_file_pages_are_found_through_i_mmap(m: Machine) -> None:
    """rmap_walk_file(): the file rmap plugin finds every mapping of a page-cache page,
    across processes and after fork, and try_to_unmap unmaps all of them."""
    p = m.spawn()
    fd = p.open("/data", os.O_RDWR)
    s = p.mmap(0, 3 * PAGE, RW, MAP_SHARED, fd, 0)
    q = p.mmap(0, 3 * PAGE, PROT_READ, MAP_PRIVATE, fd, 0)
    p.read(s + PAGE, 1)
    p.read(q + PAGE, 1)
    c = p.fork()
    c.read(s + PAGE, 1)
    pfn = p.pagemap(s + PAGE).pfn
    assert m.rmap_walk(pfn).mappings == m.rmap_truth(pfn)
    assert len(m.rmap_truth(pfn)) == 3
    result = m.try_to_unmap(pfn)
    assert result.success and m.rmap_truth(pfn) == []
    assert c.read(s + PAGE, 1) == b"B"


def test_files_survive_exit_and_drop_caches_frees_their_pages(m: Machine) -> None:
    """Page-cache pages outlive their mappings (they are cache, not leaks); drop_caches
    writes them back and frees them, leaving no frame in use."""
    p = m.spawn()
    fd = p.open("/data", os.O_RDWR)
    s = p.mmap(0, 3 * PAGE, RW, MAP_SHARED, fd, 0)
    p.write(s + 2 * PAGE, b"last")
    p.exit(0)
    assert m.physmem.nr_used == m.cached_pages() > 0
    m.drop_caches()
    assert m.physmem.nr_used == 0
    assert m.files["/data"].disk[2][:4] == b"last"
