"""LTP testcases/kernel/mem/vma/vma01.c and the fork + adjacent mmap table of
docs/kernel-facts.md §9 (probed on this machine's 6.18 kernel).

vma01 tests commit 965f55dea0e3: a vma the child inherited from its parent (its
anon_vma_chain is not singular) must not merge with a new mapping next to it, because the
merged vma would widen the range of pages under the parent's root anon_vma lock. On a
patched kernel the child sees two 3-page vmas where an unpatched one shows a single
6-page one. This is an anon_vma_chain rule; the tests run under that scheme.
"""

from __future__ import annotations

from vma_layout import PA, PAGE, RW, addr, ruler

from mmcore import MAP_FIXED, PROT_WRITE, Machine, Process


def spawn() -> Process:
    """A fresh process under today's rmap scheme."""
    return Machine(rmap="anon_vma_chain").spawn()


def get_end_addr(p: Process, start: int) -> int:
    """vma01's get_end_addr(): the end of the /proc/self/maps line starting at ``start``."""
    for entry in p.maps():
        if entry.start == start:
            return entry.end
    raise AssertionError(f"no vma starts at {start:#x}")


def test_vma01_cloned_vma_does_not_merge() -> None:
    """vma01: the parent maps 3 write-only pages at the start of a 9-page hole and writes
    the first; the child writes it too, maps 3 more pages right after it (a hint, not
    MAP_FIXED) and writes them: the child has two 3-page vmas, not one 6-page vma
    (``-w-p 00000000 00:00 0`` twice).

      |-3*ps-|
      |------|------|------| hole
      t      p
    """
    p = spawn()
    # create_bighole()
    t = p.mmap(0, 9 * PAGE, PROT_WRITE, PA)
    p.write(t, b"a" * PAGE)
    hole = t + 3 * PAGE
    p.munmap(t, 9 * PAGE)
    # check_vma()
    t = p.mmap(hole, 3 * PAGE, PROT_WRITE, PA)
    assert t == hole
    p.write(t, b"\1" * PAGE)
    child = p.fork()
    child.write(t, b"\2" * PAGE)
    u = child.mmap(t + 3 * PAGE, 3 * PAGE, PROT_WRITE, PA)
    assert u == t + 3 * PAGE  # the hint is free, so it is honoured (bottom-up case)
    child.write(u, b"\2" * PAGE)
    x = get_end_addr(child, t)
    assert x != t + 6 * PAGE, "A single 6*ps VMA found."
    assert x == u and get_end_addr(child, x) == t + 6 * PAGE
    lines = [line for line in child.maps_text().splitlines() if "-w-p" in line]
    assert len(lines) == 2
    assert all(line.split()[2:5] == ["00000000", "00:00", "0"] for line in lines)


def test_fork_faulted_parent_child_maps_next_to_it() -> None:
    """kernel-facts §9: parent faulted [0,3) before fork; the child maps [3,6) with
    MAP_FIXED: no merge, and still two vmas after the child faults [3,6)."""
    p = spawn()
    p.mmap(addr(0), 3 * PAGE, RW, PA | MAP_FIXED)
    p.write(addr(0), b"x")
    child = p.fork()
    child.mmap(addr(3), 3 * PAGE, RW, PA | MAP_FIXED)
    assert ruler(child.vmas()) == "AAABBB"
    child.write(addr(3), b"y" * 3 * PAGE)
    assert ruler(child.vmas()) == "AAABBB"
    assert [e.vm_flags for e in child.maps()] == ["rd wr mr mw me ac"] * 2


def test_fork_unfaulted_parent_child_merges() -> None:
    """kernel-facts §9: the parent never faulted [10,13), so the child's copy has no
    anon_vma and is no fork child: the child's [13,16) merges into [10,16)."""
    p = spawn()
    p.mmap(addr(10), 3 * PAGE, RW, PA | MAP_FIXED)
    child = p.fork()
    child.mmap(addr(13), 3 * PAGE, RW, PA | MAP_FIXED)
    assert ruler(child.vmas()) == " " * 10 + "AAAAAA"


def test_fork_child_cow_then_maps_next() -> None:
    """kernel-facts §9: parent faulted [20,23), the child wrote it (COW) and then maps
    [23,26): still no merge (un-COWing does not make the chain singular)."""
    p = spawn()
    p.mmap(addr(20), 3 * PAGE, RW, PA | MAP_FIXED)
    p.write(addr(20), b"x")
    child = p.fork()
    child.write(addr(20), b"c" * 3 * PAGE)
    child.mmap(addr(23), 3 * PAGE, RW, PA | MAP_FIXED)
    assert ruler(child.vmas())[20:] == "AAABBB"


def test_fork_parent_merges_after_child_exited() -> None:
    """kernel-facts §9: the parent's own faulted vma is no fork child: after the child
    exited, its [3,6) merges into [0,3)."""
    p = spawn()
    p.mmap(addr(0), 3 * PAGE, RW, PA | MAP_FIXED)
    p.write(addr(0), b"x")
    child = p.fork()
    child.exit(0)
    p.waitpid(child.pid)
    p.mmap(addr(3), 3 * PAGE, RW, PA | MAP_FIXED)
    assert ruler(p.vmas()) == "AAAAAA"


def test_fork_parent_merges_while_child_alive() -> None:
    """kernel-facts §9: even while the child is alive the parent's [33,36) merges into its
    faulted [30,33): only the child's copy cannot merge."""
    p = spawn()
    p.mmap(addr(30), 3 * PAGE, RW, PA | MAP_FIXED)
    p.write(addr(30), b"x")
    child = p.fork()
    p.mmap(addr(33), 3 * PAGE, RW, PA | MAP_FIXED)
    assert ruler(p.vmas())[30:] == "AAAAAA"
    assert ruler(child.vmas())[30:] == "AAA"
