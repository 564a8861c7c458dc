"""Errno divergences of issue 10 item 8, each probed on this machine's 6.18 kernel
(docs/kernel-facts.md section 17) as an unprivileged process on tmpfs."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable

import pytest

from mmcore import (
    MAP_ANONYMOUS,
    MAP_PRIVATE,
    MAP_SHARED,
    MAX_LFS_FILESIZE,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    MS_ASYNC,
    MS_SYNC,
    PROT_READ,
    PROT_WRITE,
    Machine,
)
from mmcore.process import Process

P = 4096
RW = PROT_READ | PROT_WRITE


def fails(code: int, call: Callable[[], object]) -> None:
    """``call`` raises OSError with errno ``code``."""
    with pytest.raises(OSError) as info:
        call()
    assert info.value.errno == code, errno.errorcode.get(info.value.errno or 0)


@pytest.fixture
def p() -> Process:
    """A process of a small machine."""
    return Machine(ram_pages=256, swap_pages=64).spawn()


def four_pages_then_hole(p: Process) -> int:
    """Four mapped pages with at least 16 unmapped ones after them."""
    a = p.mmap(0, 20 * P, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    p.munmap(a + 4 * P, 16 * P)
    return a


def test_mlock_past_last_vma_is_enomem_and_keeps_the_lock(p: Process) -> None:
    """apply_vma_lock_flags(): a range running past the last vma is ENOMEM; the vma
    before the hole stays locked (VmLck 16 kB) and is not populated."""
    a = four_pages_then_hole(p)
    fails(errno.ENOMEM, lambda: p.mlock(a, 8 * P))
    assert p.status()["VmLck"] == 16
    assert not any(p.pagemap(a + i * P).present for i in range(4))
    fails(errno.ENOMEM, lambda: p.munlock(a, 8 * P))
    assert p.status()["VmLck"] == 0


@pytest.mark.parametrize("flags", [MS_SYNC, MS_ASYNC])
def test_msync_any_unmapped_page_is_enomem(p: Process, flags: int) -> None:
    """sys_msync(): a range after, into, before or around a hole is ENOMEM, for MS_SYNC
    and for MS_ASYNC alone."""
    a = four_pages_then_hole(p)
    fails(errno.ENOMEM, lambda: p.msync(a + 16 * P, P, flags))
    fails(errno.ENOMEM, lambda: p.msync(a, 8 * P, flags))
    b = p.mmap(0, 8 * P, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS)
    p.munmap(b, 4 * P)
    fails(errno.ENOMEM, lambda: p.msync(b, 2 * P, flags))
    fails(errno.ENOMEM, lambda: p.msync(b, 8 * P, flags))
    p.msync(b + 4 * P, 4 * P, flags)


def test_mremap_fixed_below_mmap_min_addr_is_eperm(p: Process) -> None:
    """vrm_set_new_addr() -> security_mmap_addr(): MREMAP_FIXED to page 0 is EPERM for an
    unprivileged task; the source stays mapped."""
    a = p.mmap(0, 4 * P, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    p.write(a, b"keep")
    fails(errno.EPERM, lambda: p.mremap(a, P, P, MREMAP_MAYMOVE | MREMAP_FIXED, 0))
    assert p.read(a, 4) == b"keep"


def test_file_offsets_are_loff_t(p: Process) -> None:
    """rw_verify_area(): a position at or past 2**63, or a range ending past it, is
    EINVAL for pread and pwrite; ftruncate of 2**63 is EINVAL while MAX_LFS_FILESIZE
    (tmpfs's s_maxbytes) is accepted."""
    p.machine.create_file("/f", b"abc")
    fd = p.open("/f", os.O_RDWR)
    fails(errno.EINVAL, lambda: p.pread(fd, 1, 2**63))
    fails(errno.EINVAL, lambda: p.pread(fd, 1, MAX_LFS_FILESIZE))
    fails(errno.EINVAL, lambda: p.pwrite(fd, b"x", MAX_LFS_FILESIZE))
    assert p.pwrite(fd, b"x", MAX_LFS_FILESIZE - 1) == 1
    fails(errno.EINVAL, lambda: p.ftruncate(fd, 2**63))
    p.ftruncate(fd, MAX_LFS_FILESIZE)
    assert p.pread(fd, 3, 0) == b"abc"


def test_mmap_file_offset_past_the_largest_file_is_eoverflow(p: Process) -> None:
    """file_mmap_ok(): the offset is an unsigned long, and a mapped range ending past
    MAX_LFS_FILESIZE is EOVERFLOW (-4096 included); an offset of 2**62 maps."""
    p.machine.create_file("/f", b"abc")
    fd = p.open("/f", os.O_RDWR)
    fails(errno.EOVERFLOW, lambda: p.mmap(0, P, PROT_READ, MAP_SHARED, fd, -P))
    fails(errno.EOVERFLOW, lambda: p.mmap(0, 2 * P, PROT_READ, MAP_SHARED, fd, 2**63 - P))
    fails(errno.EOVERFLOW, lambda: p.mmap(0, 4 * P, PROT_READ, MAP_PRIVATE, fd, 2**64 - P))
    m = p.mmap(0, P, PROT_READ, MAP_SHARED, fd, 2**62)
    assert [e.offset for e in p.maps() if e.start == m] == [2**62]


def test_waitpid_minus_one_and_zero_wait_for_any_child(p: Process) -> None:
    """kernel_waitid(): -1 is any child, 0 any child of the caller's group, -pgid any of
    that group; the oldest exited child is reaped first; ECHILD once none is left."""
    c1, c2 = p.fork(), p.fork()
    assert p.waitpid(-1) == (0, 0)  # both still run (WNOHANG)
    c2.exit(4)
    c1.exit(3)
    assert p.waitpid(-1) == (c1.pid, 3)
    assert p.waitpid(0) == (c2.pid, 4)
    fails(errno.ECHILD, lambda: p.waitpid(-1))
    c3 = p.fork()
    c3.exit(5)
    assert p.waitpid(-p.pgid) == (c3.pid, 5)
    other = p.machine.spawn()
    p.fork()
    fails(errno.ECHILD, lambda: p.waitpid(-other.pgid))
