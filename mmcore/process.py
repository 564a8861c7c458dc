"""A simulated process: the syscall surface, memory access, fork/exec/exit/waitpid."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from . import _reprs
from .constants import (
    DEFAULT_BRK_START,
    MAP_ANONYMOUS,
    MAX_LFS_FILESIZE,
    MLOCK_LIMIT,
    PAGE_SIZE,
    RLIM_INFINITY,
    RLIMIT_MEMLOCK,
)
from .errors import EBADF, ECHILD, EINVAL, ENOENT, ESRCH, syscall_error
from .fault import access_page
from .fs import FileTable, OpenFile, rw_verify_area
from .madvise import do_madvise, do_mlock, do_mseal
from .mlock import check_rlimit, do_mlockall, do_munlockall
from .mm import Mm
from .mmap import do_brk, do_mmap, do_msync, do_munmap
from .mprotect import do_mprotect
from .mremap import do_mremap
from .numa_maps import NumaMapsEntry, numa_maps
from .pagecache import file_read, file_write, truncate_pages, write_inode
from .proc import MapsEntry, PagemapEntry, maps_entry, pagemap_entry
from .proc_status import ProcStatus, task_mem
from .smaps import SmapsEntry, SmapsRollup, smaps, smaps_rollup
from .sysargs import brk_start as _brk_start
from .sysargs import buffer, cint, integer, loff, ulong
from .sysargs import path as _path

if TYPE_CHECKING:
    from .machine import Machine
    from .vma import Vma


class Process(_reprs.Pictured):
    """A task with its own mm. Syscall methods take Linux's arguments and flag values and
    raise ``OSError(errno)`` where Linux returns that errno.

    Arguments are checked first, by :mod:`mmcore.sysargs`: a wrong type is a TypeError
    naming the argument, addresses and lengths are unsigned longs (``-4096`` is
    ``2**64 - 4096``, as in C), and nothing has changed when any of these is raised."""

    def __init__(self, machine: Machine, pid: int, parent: Process | None, mm: Mm) -> None:
        self.machine = machine
        self.pid = pid
        self.parent = parent
        self.children: dict[int, Process] = {}
        self.mm = mm
        mm.owner_pid = pid
        self.exit_status: int | None = None
        #: True once the OOM killer ended this process.
        self.killed = False
        self.files = FileTable()
        #: getrlimit(2) values, (soft, hard) by resource; inherited across fork.
        self.rlimits: dict[int, tuple[int, int]] = {RLIMIT_MEMLOCK: (MLOCK_LIMIT, MLOCK_LIMIT)}
        #: Effective capabilities by name (``"CAP_IPC_LOCK"``...): none, as for an
        #: unprivileged user; inherited across fork.
        self.capabilities: set[str] = set()
        #: Process group id: a spawned process leads its own group (as a shell's job
        #: does); a forked child joins its parent's (copy_process()).
        self.pgid: int = parent.pgid if parent is not None else pid

    @property
    def alive(self) -> bool:
        """False once the process has exited."""
        return self.exit_status is None

    def _check_alive(self, call: str) -> None:
        if not self.alive:
            raise syscall_error(ESRCH, call)

    # --- memory syscalls ---------------------------------------------------------------

    def mmap(self, addr: int, length: int, prot: int, flags: int, fd: int = -1,
             offset: int = 0) -> int:
        """mmap(2): returns the mapping's address. ``fd`` is ignored with MAP_ANONYMOUS.
        ``offset`` is taken as sys_mmap's unsigned long: a negative one is EOVERFLOW for
        a file (file_mmap_ok())."""
        addr, length = ulong("mmap", "addr", addr), ulong("mmap", "length", length)
        prot, flags = cint("mmap", "prot", prot), cint("mmap", "flags", flags)
        fd, offset = cint("mmap", "fd", fd), ulong("mmap", "offset", offset)
        self._check_alive("mmap")
        file = None
        if not flags & MAP_ANONYMOUS and not offset & (PAGE_SIZE - 1):
            file = self._file(fd, "mmap")
        return self.machine.run(self, do_mmap, self.mm, addr, length, prot, flags, file,
                                offset)

    # --- files -------------------------------------------------------------------------

    def _file(self, fd: int, call: str) -> OpenFile:
        file = self.files.get(fd)
        if file is None:
            raise syscall_error(EBADF, call)
        return file

    def open(self, path: str, flags: int = os.O_RDONLY) -> int:
        """open(2) with ``os`` flag values: O_CREAT creates, O_TRUNC truncates (when
        writable); ENOENT for a missing file without O_CREAT."""
        path, flags = _path("open", "path", path), cint("open", "flags", flags)
        self._check_alive("open")
        inode = self.machine.files.get(path)
        if inode is None:
            if not flags & os.O_CREAT:
                raise syscall_error(ENOENT, "open")
            inode = self.machine.create_file(path)
        file = OpenFile(inode, flags)
        if flags & os.O_TRUNC and file.writable:
            self.machine.run(self, truncate_pages, self.machine, inode, 0)
        return self.files.install(file)

    def close(self, fd: int) -> None:
        """close(2): mappings keep their own reference to the open file."""
        fd = cint("close", "fd", fd)
        self._check_alive("close")
        file = self._file(fd, "close")
        self.files.remove(fd)
        self.machine.fput(file)

    def dup(self, fd: int) -> int:
        """dup(2): a new descriptor for the same open file description."""
        fd = cint("dup", "fd", fd)
        self._check_alive("dup")
        return self.files.install(self._file(fd, "dup"))

    def pread(self, fd: int, n: int, offset: int) -> bytes:
        """pread(2) through the page cache (sees shared-mapping writes). A negative ``n``
        is EINVAL, as rw_verify_area() makes a count past SSIZE_MAX (with no user
        buffer here, the kernel's EFAULT for it cannot arise)."""
        fd, n, offset = cint("pread", "fd", fd), loff("pread", "n", n), \
            loff("pread", "offset", offset)
        self._check_alive("pread")
        file = self._file(fd, "pread")
        if not file.readable:
            raise syscall_error(EBADF, "pread")
        if n < 0:
            raise syscall_error(EINVAL, "pread")
        rw_verify_area(offset, n, "pread")
        return self.machine.run(self, file_read, self.machine, file.inode, n, offset)

    def pwrite(self, fd: int, data: bytes, offset: int) -> int:
        """pwrite(2) into the page cache; the pages become dirty."""
        fd, data = cint("pwrite", "fd", fd), buffer("pwrite", "data", data)
        offset = loff("pwrite", "offset", offset)
        self._check_alive("pwrite")
        file = self._file(fd, "pwrite")
        if not file.writable:
            raise syscall_error(EBADF, "pwrite")
        rw_verify_area(offset, len(data), "pwrite")
        return self.machine.run(self, file_write, self.machine, file.inode, data, offset)

    def ftruncate(self, fd: int, length: int) -> None:
        """ftruncate(2): EINVAL unless open for writing; shrinking unmaps what lies past
        the new EOF from every mapping (a later access there is SIGBUS)."""
        fd, length = cint("ftruncate", "fd", fd), loff("ftruncate", "length", length)
        self._check_alive("ftruncate")
        file = self._file(fd, "ftruncate")
        if not file.writable or not 0 <= length <= MAX_LFS_FILESIZE:
            # do_ftruncate(): a negative loff_t is EINVAL; a length past s_maxbytes
            # (MAX_LFS_FILESIZE, so only a negative one here) would be EFBIG.
            raise syscall_error(EINVAL, "ftruncate")
        self.machine.run(self, truncate_pages, self.machine, file.inode, length)

    def fsync(self, fd: int) -> None:
        """fsync(2): write back every dirty page of the file."""
        fd = cint("fsync", "fd", fd)
        self._check_alive("fsync")
        file = self._file(fd, "fsync")
        self.machine.run(self, write_inode, self.machine, file.inode)

    def msync(self, addr: int, length: int, flags: int) -> None:
        """msync(2): MS_SYNC writes back the dirty pages of shared file mappings in the
        range; MS_ASYNC does nothing (as since 2.6.19); a hole gives ENOMEM."""
        addr, length = ulong("msync", "addr", addr), ulong("msync", "length", length)
        flags = cint("msync", "flags", flags)
        self._check_alive("msync")
        self.machine.run(self, do_msync, self.mm, addr, length, flags)

    def munmap(self, addr: int, length: int) -> None:
        """munmap(2)."""
        addr, length = ulong("munmap", "addr", addr), ulong("munmap", "length", length)
        self._check_alive("munmap")
        self.machine.run(self, do_munmap, self.mm, addr, length)

    def mprotect(self, addr: int, length: int, prot: int) -> None:
        """mprotect(2) (partially applied up to a hole, as in Linux)."""
        addr, length = ulong("mprotect", "addr", addr), ulong("mprotect", "length", length)
        prot = cint("mprotect", "prot", prot)
        self._check_alive("mprotect")
        self.machine.run(self, do_mprotect, self.mm, addr, length, prot)

    def mremap(self, old_addr: int, old_len: int, new_len: int, flags: int = 0,
               new_addr: int = 0) -> int:
        """mremap(2): returns the (possibly new) address."""
        old_addr = ulong("mremap", "old_addr", old_addr)
        old_len, new_len = ulong("mremap", "old_len", old_len), \
            ulong("mremap", "new_len", new_len)
        flags, new_addr = cint("mremap", "flags", flags), ulong("mremap", "new_addr", new_addr)
        self._check_alive("mremap")
        return self.machine.run(self, do_mremap, self.mm, old_addr, old_len, new_len, flags,
                                    new_addr)

    def brk(self, addr: int) -> int:
        """brk(2): returns the new program break (the old one if the request failed)."""
        addr = ulong("brk", "addr", addr)
        self._check_alive("brk")
        return self.machine.run(self, do_brk, self.mm, addr)

    def madvise(self, addr: int, length: int, advice: int) -> None:
        """madvise(2)."""
        addr, length = ulong("madvise", "addr", addr), ulong("madvise", "length", length)
        advice = cint("madvise", "advice", advice)
        self._check_alive("madvise")
        self.machine.run(self, do_madvise, self.mm, addr, length, advice)

    def mlock(self, addr: int, length: int, flags: int = 0) -> None:
        """mlock2(2) (``flags=0`` is mlock(2))."""
        addr, length = ulong("mlock", "addr", addr), ulong("mlock", "length", length)
        flags = cint("mlock", "flags", flags)
        self._check_alive("mlock")
        self.machine.run(self, do_mlock, self.mm, addr, length, flags, True)

    def munlock(self, addr: int, length: int) -> None:
        """munlock(2)."""
        addr, length = ulong("munlock", "addr", addr), ulong("munlock", "length", length)
        self._check_alive("munlock")
        self.machine.run(self, do_mlock, self.mm, addr, length, 0, False)

    def mlockall(self, flags: int) -> None:
        """mlockall(2) with MCL_CURRENT, MCL_FUTURE and MCL_ONFAULT."""
        flags = cint("mlockall", "flags", flags)
        self._check_alive("mlockall")
        self.machine.run(self, do_mlockall, self.mm, flags)

    def munlockall(self) -> None:
        """munlockall(2)."""
        self._check_alive("munlockall")
        self.machine.run(self, do_munlockall, self.mm)

    def getrlimit(self, resource: int) -> tuple[int, int]:
        """getrlimit(2): (soft, hard); RLIM_INFINITY for a resource never set."""
        resource = cint("getrlimit", "resource", resource)
        self._check_alive("getrlimit")
        return self.rlimits.get(resource, (RLIM_INFINITY, RLIM_INFINITY))

    def setrlimit(self, resource: int, soft: int, hard: int) -> None:
        """setrlimit(2): EINVAL if soft > hard, EPERM for raising the hard limit without
        CAP_SYS_RESOURCE (a negative limit is EINVAL). Only RLIMIT_MEMLOCK changes what
        mmcore does."""
        resource = cint("setrlimit", "resource", resource)
        soft, hard = integer("setrlimit", "soft", soft), integer("setrlimit", "hard", hard)
        self._check_alive("setrlimit")
        check_rlimit(self, resource, soft, hard)
        self.rlimits[resource] = (soft, hard)

    def mseal(self, addr: int, length: int, flags: int = 0) -> None:
        """mseal(2)."""
        addr, length = ulong("mseal", "addr", addr), ulong("mseal", "length", length)
        flags = ulong("mseal", "flags", flags)
        self._check_alive("mseal")
        self.machine.run(self, do_mseal, self.mm, addr, length, flags)

    # --- memory access -----------------------------------------------------------------

    def write(self, addr: int, data: bytes) -> None:
        """Store ``data`` at ``addr`` as the CPU would, faulting page by page.

        Raises :class:`mmcore.SegmentationFault` where the access is not allowed.
        """
        addr, data = ulong("write", "addr", addr), buffer("write", "data", data)
        self._check_alive("write")
        self.machine.run(self, self._write, addr, data)

    def _write(self, addr: int, data: bytes) -> None:
        mm = self.mm
        pos = 0
        while pos < len(data):
            a = addr + pos
            off = a & (PAGE_SIZE - 1)
            n = min(PAGE_SIZE - off, len(data) - pos)
            access_page(mm, a, True).write(off, data[pos:pos + n])
            pos += n

    def read(self, addr: int, n: int) -> bytes:
        """Load ``n`` bytes from ``addr`` as the CPU would, faulting page by page
        (ValueError for a negative ``n``)."""
        addr, n = ulong("read", "addr", addr), integer("read", "n", n)
        if n < 0:
            raise ValueError(f"read: n must not be negative, not {n}")
        self._check_alive("read")
        return self.machine.run(self, self._read, addr, n)

    def _read(self, addr: int, n: int) -> bytes:
        mm = self.mm
        out = []
        pos = 0
        while pos < n:
            a = addr + pos
            off = a & (PAGE_SIZE - 1)
            k = min(PAGE_SIZE - off, n - pos)
            out.append(access_page(mm, a, False).read(off, k))
            pos += k
        return b"".join(out)

    def touch_range(self, addr: int, length: int, data: bytes | None = None) -> None:
        """Touch every page of [addr, addr + length), as a program's loop over a buffer
        does: store ``data`` at each page's start address (``addr``, ``addr`` + 4096,
        ...), or without ``data`` load one byte there.

        The same faults, in the same order, as a :meth:`write` (or :meth:`read`) per
        page, with the arguments checked once for the range: a fault raises at the page
        where it happens, the pages before it touched. The workloads' write ops use it.
        """
        addr, length = ulong("touch_range", "addr", addr), ulong("touch_range", "length",
                                                                 length)
        if data is not None:
            data = buffer("touch_range", "data", data)
        self._check_alive("touch_range")
        self.machine.run(self, self._touch_range, addr, length, data)

    def _touch_range(self, addr: int, length: int, data: bytes | None) -> None:
        if data is None:
            mm = self.mm
            for a in range(addr, addr + length, PAGE_SIZE):
                access_page(mm, a, False)
            return
        write = self._write
        for a in range(addr, addr + length, PAGE_SIZE):
            write(a, data)

    def touch(self, addr: int, write: bool = False) -> None:
        """Access one byte at ``addr`` (a read, or a write of the byte already there)."""
        if write:
            self.write(addr, self.read(addr, 1))
        else:
            self.read(addr, 1)

    # --- process lifecycle -------------------------------------------------------------

    def fork(self) -> Process:
        """fork(2): a child with a copy-on-write copy of this address space."""
        self._check_alive("fork")
        return self.machine.run(self, self.machine._fork, self)

    def execve(self, brk_start: int = DEFAULT_BRK_START) -> None:
        """execve(2): replace the address space with a fresh, empty one whose heap starts
        at ``brk_start`` (a page-aligned user address, as load_elf_binary() sets it)."""
        brk_start = _brk_start("execve", brk_start)
        self._check_alive("execve")
        self.machine.run(self, self.machine._exec, self, brk_start)

    def exit(self, status: int = 0) -> None:
        """exit(2): free the whole address space; the process stays a zombie until its
        parent calls :meth:`waitpid` (a parentless process is reaped at once). As for
        exit_group(2), only the low 8 bits of ``status`` are kept."""
        status = cint("exit", "status", status)
        self._check_alive("exit")
        self.machine.run(self, self.machine._exit, self, status & 0xFF)

    def waitpid(self, pid: int) -> tuple[int, int]:
        """waitpid(2) with WNOHANG: ``(pid, status)`` for an exited child, which is reaped;
        ``(0, 0)`` while the chosen children all still run (blocking is meaningless in a
        single-threaded simulation); ECHILD if no child matches. As kernel_waitid() reads
        ``pid``: > 0 that child, -1 any child, 0 any child in the caller's process group,
        < -1 any child in group ``-pid``; of several exited children, do_wait() reaps the
        oldest first (the children list is in fork order)."""
        pid = cint("waitpid", "pid", pid)
        if pid > 0:
            matching = [self.children[pid]] if pid in self.children else []
        else:
            group = None if pid == -1 else (self.pgid if pid == 0 else -pid)
            matching = [c for c in self.children.values()
                        if group is None or c.pgid == group]
        if not matching:
            raise syscall_error(ECHILD, "waitpid")
        child = next((c for c in matching if not c.alive), None)
        if child is None:
            return 0, 0
        del self.children[child.pid]
        self.machine._reap(child)
        assert child.exit_status is not None
        return child.pid, child.exit_status

    # --- introspection -----------------------------------------------------------------

    def vmas(self) -> list[Vma]:
        """The vma objects in address order (for tests and teaching; do not modify)."""
        return list(self.mm.vmas)

    def maps(self) -> list[MapsEntry]:
        """/proc/PID/maps, one entry per vma, with the smaps VmFlags of each."""
        return [maps_entry(self.mm, v) for v in self.mm.vmas]

    def maps_text(self) -> str:
        """/proc/PID/maps as text."""
        return "".join(f"{e}\n" for e in self.maps())

    def smaps(self) -> list[SmapsEntry]:
        """/proc/PID/smaps, one entry per vma."""
        return smaps(self.mm)

    def smaps_text(self) -> str:
        """/proc/PID/smaps as text."""
        return "".join(e.text() for e in self.smaps())

    def smaps_rollup(self) -> SmapsRollup:
        """/proc/PID/smaps_rollup."""
        return smaps_rollup(self.mm)

    def smaps_rollup_text(self) -> str:
        """/proc/PID/smaps_rollup as text."""
        return self.smaps_rollup().text()

    def numa_maps(self) -> list[NumaMapsEntry]:
        """/proc/PID/numa_maps, one entry per vma (mapmax as the mapcount design has
        kpagecount read it)."""
        return numa_maps(self.mm)

    def numa_maps_text(self) -> str:
        """/proc/PID/numa_maps as text."""
        return "".join(e.text() for e in self.numa_maps())

    def status(self) -> ProcStatus:
        """The memory lines of /proc/PID/status (VmRSS, RssAnon, VmSwap...)."""
        return task_mem(self.mm)

    def status_text(self) -> str:
        """Those lines as text."""
        return self.status().text()

    def pagemap(self, addr: int) -> PagemapEntry:
        """/proc/PID/pagemap entry of the page containing ``addr``."""
        addr = ulong("pagemap", "addr", addr)
        return pagemap_entry(self.mm, addr)

    def __repr__(self) -> str:
        state = "alive" if self.alive else f"exited({self.exit_status})"
        return f"Process(pid={self.pid}, {state}, vmas={self.mm.map_count})"
