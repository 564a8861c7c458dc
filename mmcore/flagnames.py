"""Linux flag values as the symbolic expressions people write: ``PROT_READ | PROT_WRITE``.

One formatter for everything that shows syscall arguments to people as Python (the
conformance kit's reproducers, the labs' scenario code): each function returns an
expression over the names of :mod:`mmcore.constants`, so pasted output runs after
``from mmcore.constants import ...`` (:func:`names_in` lists what to import). Bits with no
name are kept as a hexadecimal term, so the expression always has the value given.
The displays (:mod:`mmcore.display`) name a vma's vm_flags and a page's ``PG_*`` flags
(:mod:`mmcore.page`) the same way.

    >>> prot_expr(3), mmap_flags_expr(0x22), mremap_flags_expr(0), advice_expr(4)
    ('PROT_READ | PROT_WRITE', 'MAP_PRIVATE | MAP_ANONYMOUS', '0', 'MADV_DONTNEED')
"""

from __future__ import annotations

import re

from . import constants as C
from . import page as _page

__all__ = ["prot_expr", "mmap_flags_expr", "mremap_flags_expr", "mlock_flags_expr",
           "advice_expr", "vm_flags_expr", "page_flags_expr", "names_in"]

_PROT_BITS = ("PROT_READ", "PROT_WRITE", "PROT_EXEC", "PROT_SEM", "PROT_GROWSDOWN",
              "PROT_GROWSUP")
#: mmap's sharing types (the MAP_TYPE field), then its single-bit flags in bit order.
_MAP_TYPES = {C.MAP_SHARED: "MAP_SHARED", C.MAP_PRIVATE: "MAP_PRIVATE",
              C.MAP_SHARED_VALIDATE: "MAP_SHARED_VALIDATE"}
_MAP_BITS = ("MAP_FIXED", "MAP_ANONYMOUS", "MAP_GROWSDOWN", "MAP_DENYWRITE",
             "MAP_EXECUTABLE", "MAP_LOCKED", "MAP_NORESERVE", "MAP_POPULATE",
             "MAP_NONBLOCK", "MAP_STACK", "MAP_HUGETLB", "MAP_SYNC", "MAP_FIXED_NOREPLACE",
             "MAP_UNINITIALIZED")
_MREMAP_BITS = ("MREMAP_MAYMOVE", "MREMAP_FIXED", "MREMAP_DONTUNMAP")
_MLOCK_BITS = ("MLOCK_ONFAULT",)
#: The single-bit vm_flags in bit order (VM_NONE and the masks are not bits).
_VM_BITS = tuple(sorted((n for n in C.__all__ if n.startswith("VM_")
                         and isinstance(getattr(C, n), int) and getattr(C, n) > 0
                         and getattr(C, n) & (getattr(C, n) - 1) == 0),
                        key=lambda n: int(getattr(C, n))))
#: mmcore's page flags (the PG_* of :mod:`mmcore.page`) in bit order.
_PG_BITS = tuple(sorted((n for n in vars(_page) if n.startswith("PG_")),
                        key=lambda n: int(getattr(_page, n))))
_ADVICE = {getattr(C, n): n for n in C.__all__ if n.startswith("MADV_")}
_NAME = re.compile(r"\b(?:PROT|MAP|MREMAP|MLOCK|MADV)_[A-Z0-9_]+\b")


def _bits(value: int, names: tuple[str, ...], terms: list[str], zero: str,
          where: object = C) -> str:
    """``terms`` then the named bits set in ``value`` (constants of module ``where``),
    then any bits left as hex."""
    rest = value
    for name in names:
        bit = getattr(where, name)
        if rest & bit == bit:
            terms.append(name)
            rest &= ~bit
    if rest:
        terms.append(f"{rest:#x}")
    return " | ".join(terms) if terms else zero


def prot_expr(prot: int) -> str:
    """``PROT_READ | PROT_WRITE`` for 3, ``PROT_NONE`` for 0."""
    return _bits(prot, _PROT_BITS, [], "PROT_NONE")


def mmap_flags_expr(flags: int) -> str:
    """``MAP_PRIVATE | MAP_ANONYMOUS`` for 0x22: the sharing type, then the flags."""
    kind = flags & C.MAP_TYPE
    terms = [_MAP_TYPES[kind]] if kind in _MAP_TYPES else []
    rest = flags & ~C.MAP_TYPE if kind in _MAP_TYPES else flags
    return _bits(rest, _MAP_BITS, terms, "0")


def mremap_flags_expr(flags: int) -> str:
    """``MREMAP_MAYMOVE | MREMAP_FIXED`` for 3, ``0`` for none."""
    return _bits(flags, _MREMAP_BITS, [], "0")


def mlock_flags_expr(flags: int) -> str:
    """``MLOCK_ONFAULT`` for 1 (mlock2's flags), ``0`` for none."""
    return _bits(flags, _MLOCK_BITS, [], "0")


def advice_expr(advice: int) -> str:
    """``MADV_DONTNEED`` for 4; a value with no name as a plain number."""
    return _ADVICE.get(advice, str(advice))


def vm_flags_expr(flags: int) -> str:
    """``VM_READ | VM_WRITE | VM_MAYREAD`` for 0x13: a vma's vm_flags by name."""
    return _bits(flags, _VM_BITS, [], "VM_NONE")


def page_flags_expr(flags: int) -> str:
    """``PG_ANON | PG_DIRTY`` for 9: a :class:`~mmcore.page.Page`'s flags by name, ``0``
    for none."""
    return _bits(flags, _PG_BITS, [], "0", _page)


def names_in(text: str) -> list[str]:
    """The constant names an expression (or a whole script) uses, sorted: what to import
    from :mod:`mmcore.constants`."""
    return sorted({n for n in _NAME.findall(text) if hasattr(C, n)})
