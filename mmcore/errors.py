"""Exceptions raised by the simulator.

Syscalls raise the built-in :class:`OSError` with the errno Linux returns; the classes here
model signals and framework failures that are not errno returns.
"""

from __future__ import annotations

import errno as _errno
import os


def syscall_error(code: int, call: str) -> OSError:
    """Build the ``OSError`` a failing syscall raises (``OSError(errno, "mmap: ...")``)."""
    return OSError(code, f"{call}: {os.strerror(code)}")


class SegmentationFault(Exception):
    """SIGSEGV delivered to a process: ``code`` is ``"SEGV_MAPERR"`` or ``"SEGV_ACCERR"``."""

    def __init__(self, pid: int, address: int, code: str, write: bool) -> None:
        kind = "write" if write else "read"
        super().__init__(f"pid {pid}: {code} on {kind} at {address:#x}")
        self.pid = pid
        self.address = address
        self.code = code
        self.write = write


class BusError(Exception):
    """SIGBUS delivered to a process (for example an access past the end of a file)."""

    def __init__(self, pid: int, address: int) -> None:
        super().__init__(f"pid {pid}: SIGBUS at {address:#x}")
        self.pid = pid
        self.address = address


class ProcessKilled(Exception):
    """The calling process was killed (by the OOM killer) during its operation; the
    machine stays consistent and the process is gone."""

    def __init__(self, pid: int) -> None:
        super().__init__(f"pid {pid} was killed by the OOM killer")
        self.pid = pid


class OutOfMemory(MemoryError):
    """No physical frame or swap slot could be found for an allocation."""


class ConfigError(ValueError):
    """A Machine, workload or trace configuration that cannot be used, with the reason."""


class PluginError(RuntimeError):
    """A plugin is missing, misdeclared or raised inside a hook.

    ``plugin`` names the plugin at fault and ``hook`` where it failed (``"__init__"``
    for a constructor), when known; both are None otherwise.
    """

    def __init__(self, message: str, *, plugin: str | None = None,
                 hook: str | None = None) -> None:
        super().__init__(message)
        self.plugin = plugin
        self.hook = hook


class MachineBroken(RuntimeError):
    """The machine was marked broken after a plugin raised mid-operation; state is unsafe.

    ``plugin`` and ``hook`` name the plugin whose hook raised (the innermost hook
    implementation on the traceback), or are None when the failure is not inside a
    plugin (mmcore itself, or a check on what a plugin left behind).
    """

    def __init__(self, message: str, *, plugin: str | None = None,
                 hook: str | None = None) -> None:
        super().__init__(message)
        self.plugin = plugin
        self.hook = hook


class RunTimeout(Exception):
    """An operation ran past its time budget (:func:`mmcore.budget.time_budget`).

    Not an :class:`OSError` (so not Linux's ``ETIMEDOUT``): inside an operation it marks
    the machine broken, naming the plugin and hook that were running.
    """


ENOMEM = _errno.ENOMEM
EINVAL = _errno.EINVAL
EFAULT = _errno.EFAULT
EPERM = _errno.EPERM
EEXIST = _errno.EEXIST
EACCES = _errno.EACCES
EAGAIN = _errno.EAGAIN
ECHILD = _errno.ECHILD
EOPNOTSUPP = _errno.EOPNOTSUPP
EBADF = _errno.EBADF
ENOENT = _errno.ENOENT
ESRCH = _errno.ESRCH
EBUSY = _errno.EBUSY
EOVERFLOW = _errno.EOVERFLOW
