"""Fixed operation lists for the conformance kit.

:func:`fork_tree_ops` builds the setup of selftests/mm/rmap.c (a seeded random fork tree)
as ops, and ``SCENARIOS`` maps names to readable hand-written op lists (mremap after fork,
merges, mprotect splits, shared anonymous memory, exit orders, file mappings).
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable

from ..constants import (
    MADV_DONTNEED,
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    MAP_SHARED,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    MS_SYNC,
    PROT_EXEC,
    PROT_READ,
)
from ..experiments.ops import Op
from .model import FILES, RW, TOKEN_LEN, WINDOW, P

__all__ = ["SCENARIOS", "fork_tree_ops"]


def fork_tree_ops(seed: int, *, height: int = 5, max_children: int = 3, pages: int = 4,
                  max_procs: int = 40) -> list[Op]:
    """The setup of selftests/mm/rmap.c as ops: a root maps ``pages`` private pages at
    WINDOW and writes them all, then a random fork tree (``height`` levels, at most
    ``max_children`` per process, ``max_procs`` in all) grows, every process writing
    its own token to one random page right after it is forked."""
    rng = random.Random(seed)
    ops = [Op("spawn", pid=1),
           Op("mmap", pid=1, addr=WINDOW, length=pages * P, prot=RW,
              flags=MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)]
    ops += [Op("write", pid=1, addr=WINDOW + i * P, data=f"root{i:04d}") for i in range(pages)]
    next_pid, count = 2, 1
    level = [1]
    for _ in range(height):
        nxt = []
        for parent in level:
            for _ in range(rng.randint(0, max_children)):
                if count >= max_procs:
                    break
                child, next_pid, count = next_pid, next_pid + 1, count + 1
                ops.append(Op("fork", pid=parent, child=child))
                ops.append(Op("write", pid=child, addr=WINDOW + rng.randrange(pages) * P,
                              data=f"p{child:03d}{rng.randrange(10000):04d}"))
                nxt.append(child)
        level = nxt
    return ops


PRIV = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED
SHARED = MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED
W = WINDOW


def _writes(pid: int, base: int, pages: int, tag: str) -> list[Op]:
    return [Op("write", pid=pid, addr=base + i * P, data=f"{tag}{i:0{8 - len(tag)}d}")
            for i in range(pages)]


def _reads(pid: int, base: int, pages: int) -> list[Op]:
    return [Op("read", pid=pid, addr=base + i * P, length=TOKEN_LEN) for i in range(pages)]


def _unmaps(pid: int, base: int, pages: int) -> list[Op]:
    return [Op("reclaim", pid=pid, addr=base + i * P, length=P) for i in range(pages)]


def scenario_mremap_after_fork() -> list[Op]:
    """Moving pages a fork child still shares (the 2004 thread's hard case), and
    rmap.c's "second half over the first half"::

        0123456789abcdef   (pages from WINDOW)
        AAAAAAAA           parent maps and writes 8 pages, forks 2
                AAAAAAAA   parent moves them up by 8 pages (MREMAP_FIXED)
        CCCC               child moves its upper half over its lower half
    """
    ops = [Op("spawn", pid=1), Op("mmap", pid=1, addr=W, length=8 * P, prot=RW, flags=PRIV)]
    ops += _writes(1, W, 8, "a")
    ops += [Op("fork", pid=1, child=2),
            Op("mremap", pid=1, addr=W, length=8 * P, new_len=8 * P,
               flags=MREMAP_MAYMOVE | MREMAP_FIXED, new_addr=W + 8 * P)]
    ops += _reads(1, W + 8 * P, 8) + _reads(2, W, 8)
    ops += _unmaps(1, W + 8 * P, 8) + _reads(2, W, 8)
    ops += _writes(2, W, 2, "c") + _writes(1, W + 14 * P, 2, "p")
    ops += [Op("mremap", pid=2, addr=W + 4 * P, length=4 * P, new_len=4 * P,
               flags=MREMAP_MAYMOVE | MREMAP_FIXED, new_addr=W)]
    ops += _reads(2, W, 4) + _reads(1, W + 8 * P, 8)
    ops += [Op("fork", pid=2, child=3),
            Op("mremap", pid=3, addr=W, length=4 * P, new_len=6 * P, flags=MREMAP_MAYMOVE)]
    ops += _unmaps(2, W, 4) + _reads(2, W, 4)
    ops += [Op("exit", pid=1), Op("exit", pid=2), Op("exit", pid=3)]
    return ops


def scenario_mremap_swapped_pages() -> list[Op]:
    """Pages swapped out while a fork child shares them, then moved by mremap in the
    child: the swap ptes move, and each process must find (and the walk must find) the
    page again when it is swapped back in::

        0123456789abcdef
        AAAA               parent writes 4 pages, forks 2, all 4 are swapped out
                CCCC       the child moves its 4 swap ptes up by 8 pages
    """
    ops = [Op("spawn", pid=1), Op("mmap", pid=1, addr=W, length=4 * P, prot=RW, flags=PRIV)]
    ops += _writes(1, W, 4, "q")
    ops += [Op("fork", pid=1, child=2)]
    ops += _unmaps(1, W, 4)
    ops += [Op("mremap", pid=2, addr=W, length=4 * P, new_len=4 * P,
               flags=MREMAP_MAYMOVE | MREMAP_FIXED, new_addr=W + 8 * P)]
    ops += _reads(1, W, 2) + _reads(2, W + 8 * P, 4) + _reads(1, W + 2 * P, 2)
    ops += _unmaps(2, W + 8 * P, 4) + _reads(2, W + 8 * P, 4) + _reads(1, W, 4)
    ops += _writes(2, W + 8 * P, 4, "r") + _reads(1, W, 4)
    ops += [Op("exit", pid=1), Op("exit", pid=2)]
    return ops


def scenario_merge_after_fork() -> list[Op]:
    """Two adjacent vmas with different anon objects must not merge unless the scheme
    can still find both vmas' pages (is_mergeable_anon_vma())::

        0123456789
        AABB         child: A from the parent (fork), B its own mapping (rwx, so it
                     does not merge at mmap), written; B made rw (a merge attempt),
                     moved away and back (copy_vma's merge attempt)
                        CD   parent: D faults, moves away, C faults: different anon
                             objects; D comes back and is made rw
        every page must stay findable through the walk
    """
    rwx = RW | PROT_EXEC
    ops = [Op("spawn", pid=1), Op("mmap", pid=1, addr=W, length=2 * P, prot=RW, flags=PRIV)]
    ops += _writes(1, W, 2, "f")
    ops += [Op("fork", pid=1, child=2),
            Op("mmap", pid=2, addr=W + 2 * P, length=2 * P, prot=rwx, flags=PRIV)]
    ops += _writes(2, W + P, 3, "g")
    ops += [Op("mprotect", pid=2, addr=W + 2 * P, length=2 * P, prot=RW)]
    ops += _reads(2, W, 4) + _unmaps(2, W, 4) + _reads(2, W, 4)
    ops += [Op("mprotect", pid=2, addr=W + 2 * P, length=2 * P, prot=rwx),
            Op("mremap", pid=2, addr=W + 2 * P, length=2 * P, new_len=2 * P,
               flags=MREMAP_MAYMOVE | MREMAP_FIXED, new_addr=W + 8 * P),
            Op("mprotect", pid=2, addr=W + 8 * P, length=2 * P, prot=RW),
            Op("mremap", pid=2, addr=W + 8 * P, length=2 * P, new_len=2 * P,
               flags=MREMAP_MAYMOVE | MREMAP_FIXED, new_addr=W + 2 * P)]
    ops += _reads(2, W, 4) + _unmaps(2, W, 4) + _reads(2, W, 4)
    ops += [Op("fork", pid=2, child=3),
            Op("mmap", pid=3, addr=W + 4 * P, length=P, prot=rwx, flags=PRIV)]
    ops += _writes(3, W + 3 * P, 2, "h")
    ops += [Op("mprotect", pid=3, addr=W, length=5 * P, prot=RW)]
    ops += _unmaps(3, W, 5) + _reads(3, W, 5) + _reads(1, W, 2)
    # Without fork: D faults first, moves away, then C faults: two anon objects; D
    # comes back (its pgoff still fits) and is made rw.
    c, d = W + 16 * P, W + 17 * P
    ops += [Op("mmap", pid=1, addr=c, length=P, prot=RW, flags=PRIV),
            Op("mmap", pid=1, addr=d, length=P, prot=rwx, flags=PRIV)]
    ops += _writes(1, d, 1, "d")
    ops += [Op("mremap", pid=1, addr=d, length=P, new_len=P,
               flags=MREMAP_MAYMOVE | MREMAP_FIXED, new_addr=W + 24 * P)]
    ops += _writes(1, c, 1, "c")
    ops += [Op("mremap", pid=1, addr=W + 24 * P, length=P, new_len=P,
               flags=MREMAP_MAYMOVE | MREMAP_FIXED, new_addr=d),
            Op("mprotect", pid=1, addr=d, length=P, prot=RW)]
    ops += _unmaps(1, c, 2) + _reads(1, c, 2)
    ops += [Op("exit", pid=2), Op("exit", pid=1), Op("exit", pid=3)]
    return ops


def scenario_mprotect_split_storm() -> list[Op]:
    """Split a shared-after-fork vma into single pages in parent and child, unmap every
    page through rmap, then let mprotect merge everything back::

        0123456789abcdef
        RWRWRWRWRWRWRWRW   parent: every other page read-only
        WRWRWRWRWRWRWRWR   child: the opposite pages
    """
    ops = [Op("spawn", pid=1), Op("mmap", pid=1, addr=W, length=16 * P, prot=RW, flags=PRIV)]
    ops += _writes(1, W, 16, "s")
    ops += [Op("fork", pid=1, child=2)]
    ops += [Op("mprotect", pid=1, addr=W + i * P, length=P, prot=PROT_READ)
            for i in range(0, 16, 2)]
    ops += [Op("mprotect", pid=2, addr=W + i * P, length=P, prot=PROT_READ)
            for i in range(1, 16, 2)]
    ops += _writes(1, W + P, 1, "x") + _writes(2, W, 1, "y")
    ops += _unmaps(1, W, 16) + _reads(2, W, 16) + _reads(1, W, 16)
    ops += [Op("mprotect", pid=1, addr=W, length=16 * P, prot=RW),
            Op("mprotect", pid=2, addr=W, length=16 * P, prot=RW)]
    ops += _writes(1, W, 16, "t") + _unmaps(2, W, 16) + _reads(2, W, 16)
    ops += [Op("munmap", pid=1, addr=W + 4 * P, length=8 * P),
            Op("fork", pid=2, child=3),
            Op("madvise", pid=3, addr=W + 2 * P, length=4 * P, advice=MADV_DONTNEED)]
    ops += _reads(3, W, 16) + _unmaps(3, W, 16)
    ops += [Op("exit", pid=2), Op("exit", pid=3), Op("exit", pid=1)]
    return ops


def scenario_shared_anon_after_fork() -> list[Op]:
    """MAP_SHARED anonymous memory is one object for parent and child: writes are
    seen by both, through unmap (reclaim) and fork, and it dies with its last mapping."""
    ops = [Op("spawn", pid=1), Op("mmap", pid=1, addr=W, length=4 * P, prot=RW, flags=SHARED),
           Op("mmap", pid=1, addr=W + 4 * P, length=4 * P, prot=RW, flags=PRIV)]
    ops += _writes(1, W, 8, "m")
    ops += [Op("fork", pid=1, child=2)]
    ops += _writes(2, W, 2, "k") + _reads(1, W, 8)
    ops += _unmaps(1, W, 8) + _reads(2, W, 8) + _reads(1, W, 8)
    ops += [Op("munmap", pid=1, addr=W, length=4 * P), *_reads(2, W, 4)]
    ops += [Op("exit", pid=2), Op("exit", pid=1)]
    return ops


def scenario_exit_orders() -> list[Op]:
    """A three-generation chain with pages swapped out at every level; parents exit
    before their children (reparenting) and nothing may be left."""
    ops = [Op("spawn", pid=1), Op("mmap", pid=1, addr=W, length=4 * P, prot=RW, flags=PRIV)]
    ops += _writes(1, W, 4, "g")
    ops += [Op("fork", pid=1, child=2), *_writes(2, W, 1, "h")]
    ops += [Op("fork", pid=2, child=3), *_writes(3, W + P, 1, "i")]
    ops += _unmaps(3, W, 4) + _unmaps(1, W, 4)
    ops += [Op("exit", pid=1), *_reads(2, W, 4)]
    ops += [Op("exit", pid=2), *_reads(3, W, 4)]
    ops += [Op("exit", pid=3)]
    return ops


def scenario_file_mappings() -> list[Op]:
    """A file mapped MAP_SHARED and MAP_PRIVATE: shared writes and pwrite are seen by
    the shared mapping, pread and unwritten private pages; a private write is a copy;
    the rmap walk of the file finds every mapping (after fork too); ftruncate makes the
    pages past EOF SIGBUS in both mappings (the private copy included) and zeros once the
    file grows again::

        0123456789ab   (pages from WINDOW; file pages 0-3)
        SSSS           MAP_SHARED, offset 0
                PPPP   MAP_PRIVATE, offset 0
    """
    fd, path = 3, FILES[3]
    sh, pr = W, W + 8 * P
    ops = [Op("spawn", pid=1), Op("create", pid=1, path=path, length=4 * P, data="file0000"),
           Op("open", pid=1, path=path, flags=os.O_RDWR, fd=fd),
           Op("mmap", pid=1, addr=sh, length=4 * P, prot=RW, flags=MAP_SHARED | MAP_FIXED,
              fd=fd),
           Op("mmap", pid=1, addr=pr, length=4 * P, prot=RW, flags=MAP_PRIVATE | MAP_FIXED,
              fd=fd)]
    ops += _writes(1, sh, 1, "s") + _reads(1, pr, 4) + _writes(1, pr + P, 2, "p")
    ops += [Op("pwrite", pid=1, fd=fd, data="pw000001", offset=P),
            Op("pwrite", pid=1, fd=fd, data="pw000003", offset=3 * P)]
    ops += _reads(1, sh, 4) + _reads(1, pr, 4)
    ops += [Op("fork", pid=1, child=2), *_writes(2, sh + 3 * P, 1, "c"),
            Op("reclaim", pid=2, path=path), Op("pread", pid=2, fd=fd, length=8, offset=0)]
    ops += _reads(2, sh, 4) + _reads(1, pr, 4) + _unmaps(1, pr, 4) + _reads(1, pr, 4)
    ops += [Op("msync", pid=2, addr=sh, length=4 * P, flags=MS_SYNC),
            Op("ftruncate", pid=2, fd=fd, length=2 * P),
            Op("pread", pid=1, fd=fd, length=8, offset=3 * P)]
    ops += _reads(1, sh, 4) + _reads(1, pr, 4) + _reads(2, pr, 4)
    ops += [Op("ftruncate", pid=1, fd=fd, length=4 * P), Op("close", pid=1, fd=fd)]
    ops += _reads(1, sh, 4) + _reads(2, pr, 4)
    ops += [Op("exit", pid=1), Op("exit", pid=2)]
    return ops


SCENARIOS: dict[str, Callable[[], list[Op]]] = {
    "file_mappings": scenario_file_mappings,
    "mremap_after_fork": scenario_mremap_after_fork,
    "mremap_swapped_pages": scenario_mremap_swapped_pages,
    "merge_after_fork": scenario_merge_after_fork,
    "mprotect_split_storm": scenario_mprotect_split_storm,
    "shared_anon_after_fork": scenario_shared_anon_after_fork,
    "exit_orders": scenario_exit_orders,
}
