"""Shared anonymous memory: a shmem object per MAP_SHARED|MAP_ANONYMOUS mapping.

shmem_zero_setup() backs such a mapping with an unlinked tmpfs file ("/dev/zero
(deleted)" in /proc/PID/maps); its pages live in that object's page cache and are found
by the file rmap walk over the object's i_mmap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .page import Page
    from .vma import Vma


class ShmemObject:
    """An address_space: the page cache (``pages``, by page index) and ``i_mmap``."""

    __slots__ = ("dev", "i_mmap", "inode", "pages", "path", "size")

    def __init__(self, inode: int, size: int) -> None:
        self.path = "/dev/zero (deleted)"
        self.inode = inode
        self.dev = "00:01"
        self.size = size
        self.pages: dict[int, Page] = {}
        #: Every vma mapping this object, in insertion order (i_mmap, a plain list as in
        #: 2.6.6 objrmap; the interval tree comes with the file-rmap plugins).
        self.i_mmap: list[Vma] = []

    def __repr__(self) -> str:
        return f"ShmemObject(inode={self.inode}, pages={len(self.pages)})"
