"""kpageflags.py: /proc/kpageflags and kpagecount of a written and a read-faulted anonymous
page of this process (docs/kernel-facts.md, "The counters /proc shows"). Run as root:
``python3 tools/kernel_probe/kpageflags.py``."""

from __future__ import annotations

import ctypes
import mmap
import struct

NAMES = [
    "LOCKED", "ERROR", "REFERENCED", "UPTODATE", "DIRTY", "LRU", "ACTIVE", "SLAB", "WRITEBACK",
    "RECLAIM", "BUDDY", "MMAP", "ANON", "SWAPCACHE", "SWAPBACKED", "COMPOUND_HEAD",
    "COMPOUND_TAIL", "HUGE", "UNEVICTABLE", "HWPOISON", "NOPAGE", "KSM", "THP", "OFFLINE",
    "ZERO_PAGE", "IDLE", "PGTABLE",
]
PAGE = 4096


def names(value: int) -> list[str]:
    """KPF_* names of the bits set in ``value``; bits past 26 as ``bitN``."""
    return [n for i, n in enumerate(NAMES) if value >> i & 1] + \
        [f"bit{i}" for i in range(len(NAMES), 64) if value >> i & 1]


def u64(path: str, index: int) -> int:
    """The index-th little-endian u64 of ``path``."""
    with open(path, "rb") as f:
        f.seek(index * 8)
        value: int = struct.unpack("<Q", f.read(8))[0]
        return value


def main() -> None:
    """Write page 0, read page 1, leave page 2 alone, and print what the kernel shows."""
    buf = mmap.mmap(-1, 3 * PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    buf[0:1] = b"x"
    _ = buf[PAGE]
    base = ctypes.addressof(ctypes.c_char.from_buffer(buf)) // PAGE
    for i, what in enumerate(("written", "read-faulted (zero page)", "untouched")):
        entry = u64("/proc/self/pagemap", base + i)
        if not entry >> 63:
            print(what, "not present")
            continue
        pfn = entry & ((1 << 55) - 1)
        print(what, hex(entry), names(u64("/proc/kpageflags", pfn)),
              "kpagecount", u64("/proc/kpagecount", pfn))


if __name__ == "__main__":
    main()
