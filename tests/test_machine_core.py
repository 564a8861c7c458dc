"""Core machine behaviour that every scheme must share: faults, swap, process lifecycle."""

from __future__ import annotations

import errno

import pytest

from mmcore import (
    MAP_ANONYMOUS,
    MAP_PRIVATE,
    MAP_SHARED,
    PROT_READ,
    PROT_WRITE,
    Machine,
    SegmentationFault,
)

RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS
PAGE = 4096


def machine(config: tuple[str, str | None]) -> Machine:
    """A small machine for one configuration."""
    rmap, policy = config
    return Machine(rmap=rmap, mremap_policy=policy, ram_pages=512, swap_pages=512)


def test_read_fault_maps_the_zero_page_without_anon_rmap(config: tuple[str, str | None]) -> None:
    """do_anonymous_page(): a read of untouched private memory maps the shared zero page
    (mapcount stays 0) and does not prepare the vma's anon rmap; the first write then
    replaces it with a private page."""
    m = machine(config)
    p = m.spawn()
    a = p.mmap(0, 2 * PAGE, RW, ANON)
    assert p.read(a, 4) == b"\0\0\0\0"
    entry = p.pagemap(a)
    assert entry.present and entry.pfn == m.physmem.ZERO_PFN and not entry.exclusive
    assert m.kpagecount(entry.pfn) == 0
    assert p.vmas()[0].anon_vma is None
    assert m.physmem.nr_used == 0
    p.write(a, b"w")
    entry = p.pagemap(a)
    assert entry.pfn != m.physmem.ZERO_PFN and entry.exclusive
    assert m.kpagecount(entry.pfn) == 1
    assert p.vmas()[0].anon_vma is not None


def test_fork_does_not_copy_page_tables_of_a_vma_without_anon_state(
        config: tuple[str, str | None]) -> None:
    """vma_needs_copy(): a vma that only ever mapped the zero page has no anon_vma, so
    dup_mmap() copies no ptes; the child faults its own zero page."""
    m = machine(config)
    p = m.spawn()
    a = p.mmap(0, PAGE, RW, ANON)
    p.read(a, 1)
    c = p.fork()
    assert not c.pagemap(a).present
    assert m.counters.fork_ptes_copied == 0


def test_exit_returns_every_frame_swap_slot_and_rmap_object(
        config: tuple[str, str | None]) -> None:
    """exit_mmap(): after every process exits nothing is left allocated."""
    m = machine(config)
    p = m.spawn()
    a = p.mmap(0, 8 * PAGE, RW, ANON)
    s = p.mmap(0, 2 * PAGE, RW, MAP_SHARED | MAP_ANONYMOUS)
    for i in range(8):
        p.write(a + i * PAGE, bytes([i]))
    p.write(s, b"shared")
    c = p.fork()
    c.write(a, b"child")
    m.try_to_unmap(p.pagemap(a + PAGE).pfn)
    c.mremap(a, 8 * PAGE, 16 * PAGE, 1)
    c.exit(0)
    assert p.waitpid(c.pid) == (c.pid, 0)
    p.exit(0)
    assert m.physmem.nr_used == 0
    assert m.swap.nr_used == 0
    assert not any(m.meta.live.values())
    assert m.processes == {}


def test_try_to_unmap_swaps_out_and_the_next_access_swaps_in(
        config: tuple[str, str | None]) -> None:
    """try_to_unmap(): every pte becomes a swap entry; a later access brings the content
    back (a major fault), shared by parent and child again."""
    m = machine(config)
    p = m.spawn()
    a = p.mmap(0, PAGE, RW, ANON)
    p.write(a, b"payload")
    c = p.fork()
    pfn = p.pagemap(a).pfn
    result = m.try_to_unmap(pfn)
    assert result.success and sorted(result.unmapped) == [(p.pid, a), (c.pid, a)]
    assert p.pagemap(a).swapped and c.pagemap(a).swapped
    assert m.physmem.page(pfn) is None
    assert c.read(a, 7) == b"payload"
    assert m.counters.fault_swapin_major == 1
    assert p.read(a, 7) == b"payload"
    assert m.counters.fault_swapin_minor == 1
    assert p.pagemap(a).pfn == c.pagemap(a).pfn
    assert m.swap.nr_used == 0


def test_shared_anonymous_memory_is_shared_across_fork(config: tuple[str, str | None]) -> None:
    """MAP_SHARED|MAP_ANONYMOUS is a shmem object: writes are seen by parent and child."""
    m = machine(config)
    p = m.spawn()
    s = p.mmap(0, PAGE, RW, MAP_SHARED | MAP_ANONYMOUS)
    c = p.fork()
    c.write(s, b"from child")
    assert p.read(s, 10) == b"from child"
    line = p.maps()[0]
    assert line.perms == "rw-s" and line.path == "/dev/zero (deleted)"
    assert p.pagemap(s).file_or_shared


def test_segfaults_carry_the_address() -> None:
    """No vma: SEGV_MAPERR; a vma forbidding the access: SEGV_ACCERR."""
    m = Machine(rmap="pte_chains")
    p = m.spawn()
    a = p.mmap(0, PAGE, PROT_READ, ANON)
    with pytest.raises(SegmentationFault) as info:
        p.write(a + 12, b"x")
    assert info.value.address == a + 12 and info.value.code == "SEGV_ACCERR"
    with pytest.raises(SegmentationFault) as info:
        p.read(a + PAGE, 1)
    assert info.value.code == "SEGV_MAPERR"


def test_waitpid_and_execve() -> None:
    """waitpid reaps an exited child (WNOHANG semantics for a live one, ECHILD for a
    stranger); execve gives a fresh, empty address space and frees the old one."""
    m = Machine(rmap="anon_vma_chain")
    p = m.spawn()
    a = p.mmap(0, PAGE, RW, ANON)
    p.write(a, b"x")
    c = p.fork()
    assert p.waitpid(c.pid) == (0, 0)
    with pytest.raises(OSError) as info:
        p.waitpid(999)
    assert info.value.errno == errno.ECHILD
    c.execve()
    assert c.maps() == [] and m.kpagecount(p.pagemap(a).pfn) == 1
    c.exit(3)
    assert p.waitpid(c.pid) == (c.pid, 3)
    with pytest.raises(OSError) as info:
        c.mmap(0, PAGE, RW, ANON)
    assert info.value.errno == errno.ESRCH
