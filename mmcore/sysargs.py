"""Argument checks at the Process API boundary: the syscall ABI, in Python.

Every :class:`~mmcore.Process` syscall wrapper passes its arguments through these
helpers before anything runs, so a wrong argument never reaches the core (where a
``TypeError`` from deep code would mark the machine broken, as a plugin bug does).

The rules, one per C type of the Linux prototype:

* an **integer** argument must be an ``int`` (an ``IntFlag`` or ``IntEnum`` is one);
  ``bool`` is refused although Python makes it an ``int`` subclass: ``True`` as a length
  or a flag word is a bug in the caller, never what was meant. Anything else is a
  ``TypeError`` naming the call and the argument;
* ``unsigned long`` / ``size_t`` (:func:`ulong`: addresses, lengths, mmap's offset as
  sys_mmap takes it) accepts ``-2**63 .. 2**64 - 1`` and converts a negative value as C
  does (two's complement, ``-4096`` is ``0xfffffffffffff000``), so the kernel's own
  checks then give Linux's errno; e.g. ``mmap(0, -4096, ...)`` is ENOMEM because
  PAGE_ALIGN(len) exceeds TASK_SIZE;
* ``int`` (:func:`cint`: prot, flags, advice, fd, exit status) accepts its C range;
  ``loff_t`` (:func:`loff`: file offsets and sizes) accepts 64 bits either way and
  reads ``2**63`` and above as negative, as C does (rw_verify_area() then says EINVAL);
* a value too wide for the C type is an ``OverflowError`` naming the argument, as the
  ``os`` module raises for ``os.lseek(fd, 2**64, 0)``;
* a buffer (:func:`buffer`) is any bytes-like object (``bytes``, ``bytearray``,
  ``memoryview``); a ``str`` is a ``TypeError``, as for ``os.write``;
* a path (:func:`path`) is a ``str`` or an ``os.PathLike`` giving one.
"""

from __future__ import annotations

import os

from .constants import PAGE_SIZE, TASK_SIZE, ULONG_MAX

#: The range of a C long / loff_t.
LLONG_MIN, LLONG_MAX = -(1 << 63), (1 << 63) - 1
#: The range of a C int.
INT_MIN, INT_MAX = -(1 << 31), (1 << 31) - 1

__all__ = [
    "INT_MAX",
    "INT_MIN",
    "LLONG_MAX",
    "LLONG_MIN",
    "ULONG_MAX",
    "brk_start",
    "buffer",
    "cint",
    "integer",
    "loff",
    "path",
    "ulong",
]


def integer(call: str, name: str, value: object) -> int:
    """``value`` as an int, or a TypeError naming ``call``'s argument ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{call}: {name} must be an int, not {type(value).__name__}")
    return int(value)


def _ranged(call: str, name: str, value: object, low: int, high: int, ctype: str) -> int:
    v = integer(call, name, value)
    if not low <= v <= high:
        raise OverflowError(f"{call}: {name} does not fit in a C {ctype}: {v}")
    return v


def ulong(call: str, name: str, value: object) -> int:
    """An ``unsigned long`` argument: a negative value wraps modulo 2**64, as in C."""
    return _ranged(call, name, value, LLONG_MIN, ULONG_MAX, "unsigned long") & ULONG_MAX


def cint(call: str, name: str, value: object) -> int:
    """An ``int`` argument (32-bit, signed)."""
    return _ranged(call, name, value, INT_MIN, INT_MAX, "int")


def loff(call: str, name: str, value: object) -> int:
    """A ``loff_t`` argument (64-bit, signed): file offsets and sizes. A value in
    ``2**63 .. 2**64 - 1`` is read as C reads those bits, as a negative offset."""
    v = _ranged(call, name, value, LLONG_MIN, ULONG_MAX, "loff_t")
    return v - (1 << 64) if v > LLONG_MAX else v


def buffer(call: str, name: str, value: object) -> bytes:
    """A bytes-like argument, as bytes (a copy of a mutable buffer)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{call}: {name} must be a bytes-like object, not "
                    f"{type(value).__name__}")


def path(call: str, name: str, value: object) -> str:
    """A path argument: a str, or an os.PathLike that gives one."""
    p = os.fspath(value) if isinstance(value, os.PathLike) else value
    if not isinstance(p, str):
        raise TypeError(f"{call}: {name} must be str or os.PathLike, not "
                        f"{type(value).__name__}")
    return p


def brk_start(call: str, value: object) -> int:
    """The start of the heap of a new address space (what load_elf_binary() derives from
    the executable): a page-aligned user address; ValueError otherwise."""
    v = integer(call, "brk_start", value)
    if v & (PAGE_SIZE - 1) or not 0 < v < TASK_SIZE:
        raise ValueError(f"{call}: brk_start must be a page-aligned address in "
                         f"(0, TASK_SIZE), not {v:#x}")
    return v
