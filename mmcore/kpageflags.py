"""/proc/kpageflags (fs/proc/page.c stable_page_flags, include/uapi/linux/kernel-page-flags.h).

One little-endian u64 per pfn. What a frame shows, as probed on 6.18: a mapped anonymous
page UPTODATE, MMAP, ANON, SWAPBACKED and, while exclusive, bit 34 (PG_anon_exclusive
shares PG_mappedtodisk's bit); the zero page ZERO_PAGE and RESERVED; a free frame BUDDY.
Every user page is on an LRU list here (the kernel's per-cpu batches that delay PG_lru
are not modelled); ACTIVE is PG_active, set by the lru2 policy for its active list; a
page mapped in a VM_LOCKED vma is UNEVICTABLE and MLOCKED. A page of a large folio
shows the folio's flags (its head's), COMPOUND_HEAD or COMPOUND_TAIL, THP, and MMAP while
any page of the folio is mapped. LOCKED (the page lock) is
never held between operations of a single-threaded simulation. NOPAGE marks a pfn with no
struct page: every frame of a Machine has one, so reads stop at the last frame as the
real file stops at max_pfn.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from .page import (
    PG_ACTIVE,
    PG_ANON,
    PG_ANON_EXCLUSIVE,
    PG_DIRTY,
    PG_REFERENCED,
    PG_SWAPCACHE,
    PG_ZERO,
)
from .smaps import is_swapbacked

if TYPE_CHECKING:
    from .machine import Machine

#: Bit numbers of kernel-page-flags.h (0-26) and of fs/proc/page.c's "kernel hacking
#: assistances" (32-34) that mmcore can show.
KPF_BITS = {
    "LOCKED": 0, "REFERENCED": 2, "UPTODATE": 3, "DIRTY": 4, "LRU": 5, "ACTIVE": 6,
    "BUDDY": 10, "MMAP": 11, "ANON": 12, "SWAPCACHE": 13, "SWAPBACKED": 14,
    "COMPOUND_HEAD": 15, "COMPOUND_TAIL": 16, "UNEVICTABLE": 18, "NOPAGE": 20, "THP": 22,
    "ZERO_PAGE": 24, "RESERVED": 32, "MLOCKED": 33,
    "MAPPEDTODISK": 34,
}
_BIT = {name: 1 << bit for name, bit in KPF_BITS.items()}


def kpageflags(m: Machine, pfn: int, mlocked: set[int] | None = None) -> int:
    """stable_page_flags() of frame ``pfn``; ``mlocked`` is
    :func:`mmcore.meminfo.mlocked_pfns` when the caller already has it."""
    if not 0 <= pfn < m.physmem.nr_frames:
        raise ValueError(f"pfn {pfn} is past the last frame ({m.physmem.nr_frames - 1})")
    page = m.physmem.page(pfn)
    if page is None:
        return _BIT["BUDDY"]
    if page.flags & PG_ZERO:
        folio = page.folio
        if folio is None:
            return _BIT["ZERO_PAGE"] | _BIT["RESERVED"]
        # The huge zero folio: compound, THP and zero, not reserved (probed, section 22).
        return _BIT["ZERO_PAGE"] | _BIT["THP"] | _BIT[
            "COMPOUND_HEAD" if page is folio.head else "COMPOUND_TAIL"]
    if mlocked is None:
        from .meminfo import mlocked_pfns
        mlocked = mlocked_pfns(m)
    folio = page.folio
    # A page of a large folio shows the folio's flags: its head's (stable_page_flags()
    # reads folio->flags; probed in kernel-facts section 20).
    flagged = page if folio is None else folio.head
    f = flagged.flags
    v = _BIT["UPTODATE"] | _BIT["LRU"]
    for flag, name in ((PG_REFERENCED, "REFERENCED"), (PG_DIRTY, "DIRTY"),
                       (PG_ACTIVE, "ACTIVE"), (PG_ANON, "ANON"), (PG_SWAPCACHE, "SWAPCACHE"),
                       (PG_ANON_EXCLUSIVE, "MAPPEDTODISK")):
        if f & flag:
            v |= _BIT[name]
    if folio is None:
        if page.mapcount:
            v |= _BIT["MMAP"]
    else:
        v |= _BIT["COMPOUND_HEAD" if page is folio.head else "COMPOUND_TAIL"] | _BIT["THP"]
        if m.mapcount_folio(folio) > 0:  # folio_mapped()
            v |= _BIT["MMAP"]
    if is_swapbacked(flagged):
        v |= _BIT["SWAPBACKED"]
    if pfn in mlocked:
        v |= _BIT["UNEVICTABLE"] | _BIT["MLOCKED"]
    return v


def kpageflags_bytes(m: Machine, pfn: int, count: int) -> bytes:
    """What a read of ``count`` entries at offset ``pfn * 8`` returns (short at the
    last frame)."""
    from .meminfo import mlocked_pfns
    locked = mlocked_pfns(m)
    end = min(pfn + count, m.physmem.nr_frames)
    return b"".join(struct.pack("<Q", kpageflags(m, p, locked)) for p in range(pfn, end))


def parse_kpageflags(data: bytes, source: str = "kpageflags") -> list[int]:
    """The u64 entries of bytes read from /proc/kpageflags."""
    if len(data) % 8:
        raise ValueError(f"{source}: {len(data)} bytes is not a whole number of entries")
    return [v for (v,) in struct.iter_unpack("<Q", data)]


def flag_names(value: int) -> list[str]:
    """The names of the KPF_* bits set in ``value`` (unknown bits as ``bitN``)."""
    names = [name for name, bit in sorted(KPF_BITS.items(), key=lambda kv: kv[1])
             if value >> bit & 1]
    known = set(KPF_BITS.values())
    return names + [f"bit{b}" for b in range(64) if value >> b & 1 and b not in known]
