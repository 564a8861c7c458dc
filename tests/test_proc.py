"""What /proc shows: /proc/PID/maps lines, smaps VmFlags, /proc/PID/pagemap, kpagecount.

Expectations are the lines and bits docs/kernel-facts.md recorded on this machine's 6.18
kernel (§1, §3, §8, §10) and the formats of fs/proc/task_mmu.c (show_vma_header_prefix(),
show_smap_vma_flags(), pte_to_pagemap_entry()). None of this depends on the rmap scheme, so
every test runs under each scheme the VMA layer is checked against.
"""

from __future__ import annotations

import pytest
from vma_layout import PA, PAGE, RW, WINDOW, addr, ruler

from mmcore import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_GROWSDOWN,
    MAP_LOCKED,
    MAP_NORESERVE,
    MAP_SHARED,
    MAP_STACK,
    MLOCK_ONFAULT,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PROT_EXEC,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
    Machine,
    Process,
)

SCHEMES = ["anon_vma_chain", "pte_chains"]
SA = MAP_SHARED | MAP_ANONYMOUS
#: pagemap bits (Documentation/admin-guide/mm/pagemap.rst).
PM_PRESENT = 1 << 63
PM_FILE = 1 << 61
PM_EXCLUSIVE = 1 << 56


@pytest.fixture(params=SCHEMES)
def m(request: pytest.FixtureRequest) -> Machine:
    """A machine under each scheme."""
    return Machine(rmap=request.param)


@pytest.fixture
def p(m: Machine) -> Process:
    """A fresh process."""
    return m.spawn()


def vmflags(p: Process) -> list[str]:
    """The VmFlags of every vma, in address order."""
    return [e.vm_flags for e in p.maps()]


# --- /proc/PID/maps ------------------------------------------------------------------------


def test_maps_line_of_private_anonymous_memory(p: Process) -> None:
    """show_vma_header_prefix(): ``start-end perms offset dev inode `` (with the trailing
    blank and no name): ``-w-p 00000000 00:00 0`` as in LTP vma01's sample line."""
    a = p.mmap(addr(0), 3 * PAGE, RW, PA | MAP_FIXED)
    assert p.maps_text() == f"{a:08x}-{a + 3 * PAGE:08x} rw-p 00000000 00:00 0 \n"
    p.mmap(addr(5), PAGE, PROT_WRITE, PA | MAP_FIXED)
    assert p.maps_text().splitlines()[1] == (
        f"{addr(5):08x}-{addr(6):08x} -w-p 00000000 00:00 0 ")


def test_maps_offset_is_zero_for_anonymous_vmas(p: Process) -> None:
    """The offset column is vm_pgoff << PAGE_SHIFT only for file vmas; an anonymous vma
    shows 0 whatever its vm_pgoff (here a faulted vma moved away, which keeps the pgoff
    of its old address)."""
    a = p.mmap(addr(0), 2 * PAGE, RW, PA | MAP_FIXED)
    p.write(a, b"x")
    p.mremap(a, 2 * PAGE, 2 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, addr(100))
    vma = p.vmas()[0]
    assert vma.pgoff == addr(0) >> 12 != vma.start >> 12
    entry = p.maps()[0]
    assert (entry.offset, entry.dev, entry.inode, entry.path) == (0, "00:00", 0, "")


def test_maps_of_shared_anonymous_memory(p: Process) -> None:
    """kernel-facts §1: MAP_SHARED|MAP_ANONYMOUS shows ``rw-s 00000000 00:01 <inode>
    /dev/zero (deleted)`` with VmFlags ``rd wr sh mr mw me ms``; each mmap gets its own
    inode, so two adjacent ones never merge; PROT_READ gives ``r--s`` / ``rd sh mr mw me
    ms``."""
    p.mmap(addr(0), 2 * PAGE, RW, SA | MAP_FIXED)
    p.mmap(addr(2), 2 * PAGE, RW, SA | MAP_FIXED)
    p.mmap(addr(6), PAGE, PROT_READ, SA | MAP_FIXED)
    assert ruler(p.vmas()) == "AABB  C"
    first, second, ro = p.maps()
    assert (first.perms, first.offset, first.dev, first.path) == (
        "rw-s", 0, "00:01", "/dev/zero (deleted)")
    assert first.inode != second.inode
    assert first.vm_flags == "rd wr sh mr mw me ms"
    assert (ro.perms, ro.vm_flags) == ("r--s", "rd sh mr mw me ms")
    line = str(first)
    assert line.startswith(f"{addr(0):08x}-{addr(2):08x} rw-s 00000000 00:01 {first.inode} ")
    assert line.endswith(" /dev/zero (deleted)")


def test_maps_name_column_is_padded(p: Process) -> None:
    """show_map_vma(): before a name, seq_pad() fills the header to 72 columns and adds a
    blank, so names start at column 73 (here the [heap] line)."""
    start = p.brk(0)
    p.brk(start + PAGE)
    line = p.maps_text().splitlines()[0]
    assert line.index("[heap]") == 73
    assert line[:73].rstrip() == f"{start:08x}-{start + PAGE:08x} rw-p 00000000 00:00 0"


def test_heap_name(p: Process) -> None:
    """kernel-facts §8: the brk area is ``[heap]`` with ``rd wr mr mw me ac`` and offset 0
    (its vm_pgoff is the linear index of its start)."""
    start = p.brk(0)
    p.brk(start + 3 * PAGE)
    (entry,) = p.maps()
    assert (entry.path, entry.vm_flags, entry.offset, entry.perms) == (
        "[heap]", "rd wr mr mw me ac", 0, "rw-p")
    assert p.vmas()[0].pgoff == start >> 12


# --- smaps VmFlags ---------------------------------------------------------------------------


@pytest.mark.parametrize(("prot", "flags", "perms", "vm_flags"), [
    (RW, PA, "rw-p", "rd wr mr mw me ac"),
    (PROT_READ, PA, "r--p", "rd mr mw me"),
    (PROT_NONE, PA, "---p", "mr mw me"),
    (RW | PROT_EXEC, PA, "rwxp", "rd wr ex mr mw me ac"),
    (RW, PA | MAP_GROWSDOWN, "rw-p", "rd wr mr mw me gd ac"),
    (RW, PA | MAP_STACK, "rw-p", "rd wr mr mw me ac nh"),
    (RW, PA | MAP_LOCKED, "rw-p", "rd wr mr mw me lo ac"),
    (RW, PA | MAP_NORESERVE, "rw-p", "rd wr mr mw me nr"),
], ids=["rw", "r", "none", "rwx", "growsdown", "stack", "locked", "noreserve"])
def test_vmflags_of_new_mappings(p: Process, prot: int, flags: int, perms: str,
                                 vm_flags: str) -> None:
    """kernel-facts §1: the VmFlags of fresh anonymous mappings. Every anonymous mapping
    has ``mr mw me`` (even PROT_NONE); ``ac`` only private writable memory without
    MAP_NORESERVE; MAP_STACK sets ``nh``; mnemonics appear in bit order."""
    p.mmap(addr(0), 2 * PAGE, prot, flags | MAP_FIXED)
    (entry,) = p.maps()
    assert (entry.perms, entry.vm_flags) == (perms, vm_flags)


def test_vmflags_lock_onfault_and_seal(p: Process) -> None:
    """kernel-facts §6, §7: mlock2(MLOCK_ONFAULT) gives ``lo lf ac``; mseal gives ``ac sl``
    (bit order: lo before lf before ac; sl last)."""
    a = p.mmap(addr(0), 2 * PAGE, RW, PA | MAP_FIXED)
    p.mlock(a, 2 * PAGE, MLOCK_ONFAULT)
    b = p.mmap(addr(4), 2 * PAGE, RW, PA | MAP_FIXED)
    p.mseal(b, 2 * PAGE)
    assert vmflags(p) == ["rd wr mr mw me lo lf ac", "rd wr mr mw me ac sl"]


def test_adjacent_private_mappings_merge_but_not_noreserve(p: Process) -> None:
    """kernel-facts §1: two adjacent private RW mappings merge, also when each was faulted
    right after its mmap; a MAP_NORESERVE neighbour (``nr``, no ``ac``) does not."""
    p.mmap(addr(0), 2 * PAGE, RW, PA | MAP_FIXED)
    p.mmap(addr(2), 2 * PAGE, RW, PA | MAP_FIXED)
    p.mmap(addr(10), 2 * PAGE, RW, PA | MAP_FIXED)
    p.write(addr(10), b"x" * 2 * PAGE)
    p.mmap(addr(12), 2 * PAGE, RW, PA | MAP_FIXED)
    p.write(addr(12), b"y" * 2 * PAGE)
    p.mmap(addr(20), 2 * PAGE, RW, PA | MAP_FIXED)
    p.mmap(addr(22), 2 * PAGE, RW, PA | MAP_FIXED | MAP_NORESERVE)
    assert ruler(p.vmas(), WINDOW, 24) == "AAAA      BBBB      CCDD"
    assert vmflags(p)[2:] == ["rd wr mr mw me ac", "rd wr mr mw me nr"]


def test_mprotect_account_flag(p: Process) -> None:
    """kernel-facts §3 (mprotect_fixup()): making the middle of a faulted vma read-only
    keeps ``ac`` and RW again re-merges; an unfaulted private vma made read-only drops
    ``ac`` (so it merges with read-only neighbours) and RW adds it back and re-merges."""
    p.mmap(addr(20), 6 * PAGE, RW, PA | MAP_FIXED)
    p.write(addr(20), b"f" * 6 * PAGE)
    p.mprotect(addr(22), 2 * PAGE, PROT_READ)
    assert vmflags(p) == ["rd wr mr mw me ac", "rd mr mw me ac", "rd wr mr mw me ac"]
    p.mprotect(addr(22), 2 * PAGE, RW)
    assert ruler(p.vmas(), addr(20), 6) == "AAAAAA"

    q = Machine().spawn()
    q.mmap(addr(30), 6 * PAGE, RW, PA | MAP_FIXED)
    q.mprotect(addr(32), 2 * PAGE, PROT_READ)
    assert vmflags(q)[1] == "rd mr mw me"
    q.mprotect(addr(32), 2 * PAGE, RW)
    assert vmflags(q) == ["rd wr mr mw me ac"]


def test_mprotect_account_flag_per_kind(p: Process) -> None:
    """kernel-facts §3: RW->R keeps ``ac`` only on faulted private memory; R->RW adds it;
    MAP_NORESERVE memory never gets it, nor does shared memory; a read-only vma made RW
    next to an RW one merges with it."""
    u = p.mmap(addr(0), PAGE, RW, PA | MAP_FIXED)
    p.mprotect(u, PAGE, PROT_READ)
    f = p.mmap(addr(2), PAGE, RW, PA | MAP_FIXED)
    p.write(f, b"f")
    p.mprotect(f, PAGE, PROT_READ)
    r = p.mmap(addr(4), PAGE, PROT_READ, PA | MAP_FIXED)
    p.mprotect(r, PAGE, RW)
    n = p.mmap(addr(6), PAGE, RW, PA | MAP_FIXED | MAP_NORESERVE)
    p.mprotect(n, PAGE, PROT_READ)
    p.mprotect(n, PAGE, RW)
    s = p.mmap(addr(8), PAGE, RW, SA | MAP_FIXED)
    p.mprotect(s, PAGE, PROT_READ)
    assert vmflags(p) == ["rd mr mw me", "rd mr mw me ac", "rd wr mr mw me ac",
                          "rd wr mr mw me nr", "rd sh mr mw me ms"]
    p.mprotect(s, PAGE, RW)
    assert vmflags(p)[-1] == "rd wr sh mr mw me ms"
    p.mmap(addr(70), 2 * PAGE, RW, PA | MAP_FIXED)
    p.mmap(addr(72), 2 * PAGE, PROT_READ, PA | MAP_FIXED)
    p.mprotect(addr(72), 2 * PAGE, RW)
    assert ruler(p.vmas(), addr(70), 4) == "AAAA"


# --- /proc/PID/pagemap and /proc/kpagecount --------------------------------------------------


def test_pagemap_unfaulted_and_unmapped(p: Process) -> None:
    """kernel-facts §10: an unfaulted private page and an unmapped page read 0."""
    a = p.mmap(addr(0), PAGE, RW, PA | MAP_FIXED)
    assert p.pagemap(a).value == 0
    assert p.pagemap(addr(50)).value == 0


def test_pagemap_zero_page(m: Machine, p: Process) -> None:
    """kernel-facts §10: a read fault maps the shared zero page: present, neither
    exclusive nor file (vm_normal_page() is NULL for it); kpagecount 0. After fork both
    see the same zero pfn, still count 0."""
    a = p.mmap(addr(0), PAGE, RW, PA | MAP_FIXED)
    p.read(a, 1)
    e = p.pagemap(a)
    assert e.present and e.pfn == m.physmem.ZERO_PFN
    assert e.value & (PM_PRESENT | PM_FILE | PM_EXCLUSIVE) == PM_PRESENT
    assert m.kpagecount(e.pfn) == 0
    # The vma has no anon_vma yet (no page was written); the child reads the zero page too.
    child = p.fork()
    child.read(a, 1)
    assert child.pagemap(a).pfn == e.pfn and not child.pagemap(a).exclusive
    assert m.kpagecount(e.pfn) == 0


def test_pagemap_cow_lifecycle(m: Machine, p: Process) -> None:
    """kernel-facts §10: a written page is exclusive (bit 56) with count 1; after fork
    both map the same pfn, not exclusive, count 2; the parent's write gives it a new
    exclusive page and leaves the child the old one, exclusive again with count 1; the
    child's write then reuses that page in place; once the child exits the old pfn's
    count is 0."""
    a = p.mmap(addr(0), PAGE, RW, PA | MAP_FIXED)
    p.write(a, b"w")
    e = p.pagemap(a)
    assert e.present and e.exclusive and not e.file_or_shared
    assert e.value & PM_EXCLUSIVE and not e.value & PM_FILE
    assert m.kpagecount(e.pfn) == 1
    old = e.pfn

    child = p.fork()
    pe, ce = p.pagemap(a), child.pagemap(a)
    assert pe.pfn == ce.pfn == old
    assert not pe.exclusive and not ce.exclusive
    assert m.kpagecount(old) == 2

    p.write(a, b"P")
    pe, ce = p.pagemap(a), child.pagemap(a)
    assert pe.pfn != old and pe.exclusive and m.kpagecount(pe.pfn) == 1
    assert ce.pfn == old and ce.exclusive and m.kpagecount(old) == 1

    child.write(a, b"C")
    assert child.pagemap(a).pfn == old and child.pagemap(a).exclusive
    assert m.kpagecount(old) == 1
    assert child.read(a, 1) == b"C" and p.read(a, 1) == b"P"
    child.exit(0)
    assert m.kpagecount(old) == 0


def test_pagemap_shared_anonymous(m: Machine, p: Process) -> None:
    """kernel-facts §10: a MAP_SHARED anonymous page is a real shmem page even when only
    read: present, "file/shared-anon" (bit 61) and exclusive, count 1; fork does not copy
    the shared vma's ptes, so the parent's page stays exclusive with count 1."""
    s = p.mmap(addr(0), 2 * PAGE, RW, SA | MAP_FIXED)
    p.write(s, b"S")
    p.read(s + PAGE, 1)
    for page in (s, s + PAGE):
        e = p.pagemap(page)
        assert e.present and e.file_or_shared and e.exclusive
        assert e.pfn != m.physmem.ZERO_PFN
        assert e.value & (PM_PRESENT | PM_FILE | PM_EXCLUSIVE) == (
            PM_PRESENT | PM_FILE | PM_EXCLUSIVE)
        assert m.kpagecount(e.pfn) == 1
    child = p.fork()
    assert not child.pagemap(s).present
    assert p.pagemap(s).exclusive and m.kpagecount(p.pagemap(s).pfn) == 1
    assert child.read(s, 1) == b"S"
    assert m.kpagecount(p.pagemap(s).pfn) == 2
