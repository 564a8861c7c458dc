"""An in-memory filesystem: inodes with a page cache, open file descriptions, fd tables.

``Inode`` is struct inode together with its struct address_space (the page cache and the
i_mmap of the vmas mapping it). ``OpenFile`` is struct file, the open file description: a
vma's ``vm_file`` points at one, which is why two separate open() calls of one file give
mappings that never merge while a dup()'ed descriptor's do (is_mergeable_vma compares
vm_file pointers).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .constants import MAX_LFS_FILESIZE, PAGE_SHIFT, PAGE_SIZE
from .errors import EINVAL, syscall_error

if TYPE_CHECKING:
    from .page import Page

#: The device number /proc/PID/maps shows for this filesystem and for shmem.
FS_DEV = "00:1f"
SHMEM_DEV = "00:01"


def rw_verify_area(pos: int, count: int, call: str) -> None:
    """rw_verify_area(): a file position is a loff_t, so one at or past 2**63 is negative
    and EINVAL, and so is a range whose end overflows it (check_add_overflow()). The
    modelled file system's s_maxbytes is MAX_LFS_FILESIZE (tmpfs's), so past that the
    kernel's EFBIG of generic_write_check_limits() cannot be reached."""
    if not 0 <= pos <= MAX_LFS_FILESIZE or pos + count > MAX_LFS_FILESIZE:
        raise syscall_error(EINVAL, call)


class Inode:
    """A file: its size, its backing store (``disk``, per page index, over a repeating
    ``fill`` pattern), its page cache (``pages``), the file rmap plugin's i_mmap
    structure, and shmem swap slots.

    The backing store is sparse, as a filesystem's is: only pages written back are held
    in ``disk``; the bytes below ``fill_end`` that no page overrides are ``fill``
    repeated from offset 0 (a created file's content), computed per page when read, so
    a file of any length costs only the pages ever written."""

    __slots__ = (
        "dev",
        "disk",
        "fill",
        "fill_end",
        "i_mmap",
        "ino",
        "nr_mmaps",
        "pages",
        "path",
        "shmem",
        "size",
        "swapped",
    )

    def __init__(self, ino: int, path: str, dev: str, shmem: bool = False) -> None:
        self.ino = ino
        self.path = path
        self.dev = dev
        self.size = 0
        self.shmem = shmem
        #: Pages written to the device, per page index (absent: the fill, then zeros).
        self.disk: dict[int, bytes] = {}
        #: The repeating content of [0, fill_end) where ``disk`` has no page.
        self.fill = b""
        self.fill_end = 0
        #: The page cache (address_space i_pages), by page index.
        self.pages: dict[int, Page] = {}
        #: The file rmap plugin's structure of mapping vmas (address_space i_mmap).
        self.i_mmap: object | None = None
        #: shmem pages written to swap (index -> swap slot), as shmem_writepage() does.
        self.swapped: dict[int, int] = {}
        #: Number of vmas mapping the inode (i_mmap_writable-like bookkeeping).
        self.nr_mmaps = 0

    @property
    def nr_pages(self) -> int:
        """Pages needed to hold ``size`` bytes (the first index past EOF)."""
        return (self.size + PAGE_SIZE - 1) >> PAGE_SHIFT

    def disk_page(self, index: int) -> bytes:
        """What reading page ``index`` from the device returns, trailing zeros dropped
        (the page cache's reads and the invariants' recount go through here)."""
        data = self.disk.get(index)
        if data is not None:
            return data
        start = index * PAGE_SIZE
        if start >= self.fill_end or not self.fill:
            return b""
        fill, need = self.fill, min(PAGE_SIZE, self.fill_end - start)
        pos = start % len(fill)
        chunks = []
        while need:
            chunk = fill[pos:pos + need]
            chunks.append(chunk)
            need -= len(chunk)
            pos = 0
        return b"".join(chunks).rstrip(b"\0")

    def __repr__(self) -> str:
        return f"Inode({self.path!r}, size={self.size}, cached={len(self.pages)})"


class OpenFile:
    """An open file description (struct file): the inode and the access mode."""

    __slots__ = ("flags", "inode", "refs")

    def __init__(self, inode: Inode, flags: int) -> None:
        self.inode = inode
        self.flags = flags
        #: References from fd table slots and vmas (get_file/fput).
        self.refs = 0

    @property
    def readable(self) -> bool:
        """FMODE_READ."""
        return (self.flags & os.O_ACCMODE) in (os.O_RDONLY, os.O_RDWR)

    @property
    def writable(self) -> bool:
        """FMODE_WRITE."""
        return (self.flags & os.O_ACCMODE) in (os.O_WRONLY, os.O_RDWR)

    @property
    def path(self) -> str:
        """The name /proc/PID/maps shows."""
        return self.inode.path

    @property
    def dev(self) -> str:
        """The device column of /proc/PID/maps."""
        return self.inode.dev

    @property
    def ino(self) -> int:
        """The inode column of /proc/PID/maps."""
        return self.inode.ino

    def __repr__(self) -> str:
        return f"OpenFile({self.inode.path!r}, flags={self.flags:#o})"


class FileTable:
    """A process's descriptor table (struct files_struct)."""

    def __init__(self) -> None:
        self.fds: dict[int, OpenFile] = {}

    def install(self, file: OpenFile) -> int:
        """fd_install() at the lowest free descriptor."""
        fd = 0
        while fd in self.fds:
            fd += 1
        self.fds[fd] = file
        file.refs += 1
        return fd

    def get(self, fd: int) -> OpenFile | None:
        """fget()."""
        return self.fds.get(fd)
