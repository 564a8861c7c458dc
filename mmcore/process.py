"""A simulated process: the syscall surface, memory access, fork/exec/exit/waitpid."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .constants import DEFAULT_BRK_START, PAGE_SIZE
from .errors import ECHILD, ESRCH, syscall_error
from .fault import access_page
from .madvise import do_madvise, do_mlock, do_mseal
from .mm import Mm
from .mmap import do_brk, do_mmap, do_munmap
from .mprotect import do_mprotect
from .mremap import do_mremap
from .proc import MapsEntry, PagemapEntry, maps_entry, pagemap_entry

if TYPE_CHECKING:
    from .machine import Machine
    from .vma import Vma


class Process:
    """A task with its own mm. Syscall methods take Linux's arguments and flag values and
    raise ``OSError(errno)`` where Linux returns that errno."""

    def __init__(self, machine: Machine, pid: int, parent: Process | None, mm: Mm) -> None:
        self.machine = machine
        self.pid = pid
        self.parent = parent
        self.children: dict[int, Process] = {}
        self.mm = mm
        mm.owner_pid = pid
        self.exit_status: int | None = None

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
        """mmap(2): returns the mapping's address."""
        self._check_alive("mmap")
        return self.machine.syscall(do_mmap, self.mm, addr, length, prot, flags, fd, offset)

    def munmap(self, addr: int, length: int) -> None:
        """munmap(2)."""
        self._check_alive("munmap")
        self.machine.syscall(do_munmap, self.mm, addr, length)

    def mprotect(self, addr: int, length: int, prot: int) -> None:
        """mprotect(2) (partially applied up to a hole, as in Linux)."""
        self._check_alive("mprotect")
        self.machine.syscall(do_mprotect, self.mm, addr, length, prot)

    def mremap(self, old_addr: int, old_len: int, new_len: int, flags: int = 0,
               new_addr: int = 0) -> int:
        """mremap(2): returns the (possibly new) address."""
        self._check_alive("mremap")
        return self.machine.syscall(do_mremap, self.mm, old_addr, old_len, new_len, flags,
                                    new_addr)

    def brk(self, addr: int) -> int:
        """brk(2): returns the new program break (the old one if the request failed)."""
        self._check_alive("brk")
        return self.machine.syscall(do_brk, self.mm, addr)

    def madvise(self, addr: int, length: int, advice: int) -> None:
        """madvise(2)."""
        self._check_alive("madvise")
        self.machine.syscall(do_madvise, self.mm, addr, length, advice)

    def mlock(self, addr: int, length: int, flags: int = 0) -> None:
        """mlock2(2) (``flags=0`` is mlock(2))."""
        self._check_alive("mlock")
        self.machine.syscall(do_mlock, self.mm, addr, length, flags, True)

    def munlock(self, addr: int, length: int) -> None:
        """munlock(2)."""
        self._check_alive("munlock")
        self.machine.syscall(do_mlock, self.mm, addr, length, 0, False)

    def mseal(self, addr: int, length: int, flags: int = 0) -> None:
        """mseal(2)."""
        self._check_alive("mseal")
        self.machine.syscall(do_mseal, self.mm, addr, length, flags)

    # --- memory access -----------------------------------------------------------------

    def write(self, addr: int, data: bytes) -> None:
        """Store ``data`` at ``addr`` as the CPU would, faulting page by page.

        Raises :class:`mmcore.SegmentationFault` where the access is not allowed.
        """
        self._check_alive("write")
        self.machine.syscall(self._write, addr, data)

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
        """Load ``n`` bytes from ``addr`` as the CPU would, faulting page by page."""
        self._check_alive("read")
        return self.machine.syscall(self._read, addr, n)

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
        return self.machine.syscall(self.machine._fork, self)

    def execve(self, brk_start: int = DEFAULT_BRK_START) -> None:
        """execve(2): replace the address space with a fresh, empty one."""
        self._check_alive("execve")
        self.machine.syscall(self.machine._exec, self, brk_start)

    def exit(self, status: int = 0) -> None:
        """exit(2): free the whole address space; the process stays a zombie until its
        parent calls :meth:`waitpid` (a parentless process is reaped at once)."""
        self._check_alive("exit")
        self.machine.syscall(self.machine._exit, self, status)

    def waitpid(self, pid: int) -> tuple[int, int]:
        """waitpid(2) with WNOHANG: ``(pid, status)`` for an exited child, which is reaped;
        ``(0, 0)`` while the child still runs (blocking is meaningless in a single-threaded
        simulation); ECHILD if ``pid`` is not a child of this process."""
        child = self.children.get(pid)
        if child is None:
            raise syscall_error(ECHILD, "waitpid")
        if child.alive:
            return 0, 0
        del self.children[pid]
        self.machine._reap(child)
        assert child.exit_status is not None
        return pid, child.exit_status

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

    def pagemap(self, addr: int) -> PagemapEntry:
        """/proc/PID/pagemap entry of the page containing ``addr``."""
        return pagemap_entry(self.mm, addr)

    def __repr__(self) -> str:
        state = "alive" if self.alive else f"exited({self.exit_status})"
        return f"Process(pid={self.pid}, {state}, vmas={self.mm.map_count})"
