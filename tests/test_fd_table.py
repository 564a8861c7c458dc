"""The descriptor table hands out the lowest free descriptor (alloc_fd(), POSIX open(2)),
however descriptors were freed: close, exit, or never used in a forked child."""

from __future__ import annotations

import errno
import os

import pytest

from mmcore import Machine
from mmcore.fs import FileTable, Inode, OpenFile


@pytest.fixture
def m() -> Machine:
    """A machine with one file, /f."""
    machine = Machine(ram_pages=64, swap_pages=0)
    machine.create_file("/f", b"x")
    return machine


def test_open_takes_the_lowest_descriptor_a_close_freed(m: Machine) -> None:
    p = m.spawn()
    assert [p.open("/f") for _ in range(6)] == [0, 1, 2, 3, 4, 5]
    p.close(4)
    p.close(1)
    p.close(3)
    assert [p.open("/f") for _ in range(4)] == [1, 3, 4, 6]


def test_dup_takes_the_lowest_free_descriptor_and_the_same_open_file(m: Machine) -> None:
    p = m.spawn()
    fds = [p.open("/f") for _ in range(3)]
    p.close(0)
    assert p.dup(fds[2]) == 0
    assert p.files.get(0) is p.files.get(2)
    assert p.dup(0) == 3


def test_a_closed_descriptor_is_ebadf_until_it_is_reused(m: Machine) -> None:
    p = m.spawn()
    fd = p.open("/f")
    p.close(fd)
    with pytest.raises(OSError) as exc:
        p.close(fd)
    assert exc.value.errno == errno.EBADF
    assert p.open("/f") == fd


def test_a_fork_child_has_the_parents_holes_and_its_own_table(m: Machine) -> None:
    p = m.spawn()
    for _ in range(4):
        p.open("/f")
    p.close(1)
    child = p.fork()
    assert sorted(child.files.fds) == [0, 2, 3]
    assert child.open("/f") == 1 and child.open("/f") == 4
    assert p.open("/f") == 1  # the child's opens did not touch the parent's table
    child.close(0)
    assert p.files.get(0) is not None


def test_exit_drops_every_descriptor_reference(m: Machine) -> None:
    p = m.spawn()
    fd = p.open("/f", os.O_RDWR)
    file = p.files.get(fd)
    assert file is not None
    p.dup(fd)
    child = p.fork()
    assert file.refs == 4
    child.exit(0)
    p.exit(0)
    assert file.refs == 0 and not p.files.fds


def test_the_table_keeps_one_free_entry_per_hole_below_the_highest_descriptor() -> None:
    """Structural: the free descriptors are the holes below the highest one ever used,
    each once, so finding the lowest never scans the open ones (alloc_fd() starts at
    files->next_fd for the same reason)."""
    table = FileTable()
    file = OpenFile(Inode(1, "/f", "00:1f"), os.O_RDONLY)
    for _ in range(1000):
        table.install(file)
    for fd in (500, 7, 999):
        table.remove(fd)
    assert sorted(table._free) == [7, 500, 999]
    assert table.install(file) == 7
    assert sorted(table._free) == [500, 999] and table._end == 1000
