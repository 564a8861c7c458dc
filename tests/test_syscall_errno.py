"""Error returns (and partial effects) of every memory syscall.

Expectations come from docs/kernel-facts.md (raw syscalls probed on this machine's 6.18
kernel, as an unprivileged process where privilege matters) and, where the probe did not
go, from the kernel sources named in each docstring. Layouts are rulers over the test
window (page ``n`` is ``addr(n)``); VmFlags are the smaps mnemonics.

These rules do not depend on the rmap scheme, so every test runs under each of the two
schemes the VMA layer is checked against.
"""

from __future__ import annotations

import errno
from collections.abc import Callable

import pytest
from vma_layout import PA, PAGE, RW, WINDOW, addr, ruler

from mmcore import (
    MADV_DODUMP,
    MADV_DOFORK,
    MADV_DONTDUMP,
    MADV_DONTFORK,
    MADV_DONTNEED,
    MADV_FREE,
    MADV_HUGEPAGE,
    MADV_NOHUGEPAGE,
    MADV_NORMAL,
    MADV_POPULATE_READ,
    MADV_POPULATE_WRITE,
    MADV_RANDOM,
    MADV_SEQUENTIAL,
    MADV_WILLNEED,
    MADV_WIPEONFORK,
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_GROWSDOWN,
    MAP_LOCKED,
    MAP_PRIVATE,
    MAP_SHARED,
    MAP_SHARED_VALIDATE,
    MLOCK_ONFAULT,
    MREMAP_DONTUNMAP,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PROT_GROWSDOWN,
    PROT_NONE,
    PROT_READ,
    Machine,
    Process,
)

SCHEMES = ["anon_vma_chain", "pte_chains"]
SA = MAP_SHARED | MAP_ANONYMOUS
MOVE = MREMAP_MAYMOVE | MREMAP_FIXED
#: MADV_DONTNEED_LOCKED (include/uapi/asm-generic/mman-common.h).
MADV_DONTNEED_LOCKED = 24
#: The value a C caller's negative length (-4096) has as a size_t.
MINUS_PAGE = (1 << 64) - PAGE
#: The first address above the user address space (x86-64, 4-level paging).
TASK_END = 0x800000000000


@pytest.fixture(params=SCHEMES)
def p(request: pytest.FixtureRequest) -> Process:
    """A fresh process under each scheme."""
    return Machine(rmap=request.param).spawn()


def fails(code: int, call: Callable[[], object]) -> None:
    """``call()`` raises OSError with ``code``."""
    with pytest.raises(OSError) as e:
        call()
    assert e.value.errno == code, f"{errno.errorcode[e.value.errno]} != {errno.errorcode[code]}"


def layout(p: Process, npages: int = 40) -> str:
    """The test window as a ruler."""
    return ruler(p.vmas(), WINDOW, npages)


def vmflags(p: Process) -> list[str]:
    """The VmFlags of the window's vmas, in address order."""
    return [e.vm_flags for e in p.maps() if WINDOW <= e.start < WINDOW + 64 * PAGE]


def perms(p: Process) -> list[str]:
    """The permission column of the window's vmas."""
    return [e.perms for e in p.maps() if WINDOW <= e.start < WINDOW + 64 * PAGE]


def rss_pages(p: Process, start: int, npages: int) -> int:
    """How many of the pages are present (Rss of the range, in pages)."""
    return sum(p.pagemap(start + i * PAGE).present for i in range(npages))


# --- mmap -------------------------------------------------------------------------------


def test_mmap_length_errors(p: Process) -> None:
    """kernel-facts §1: length 0 is EINVAL; a length that does not fit (-4096) ENOMEM."""
    fails(errno.EINVAL, lambda: p.mmap(0, 0, RW, PA))
    fails(errno.ENOMEM, lambda: p.mmap(0, MINUS_PAGE, RW, PA))


def test_mmap_address_alignment(p: Process) -> None:
    """kernel-facts §1: an unaligned MAP_FIXED address is EINVAL; an unaligned hint is
    rounded down and honoured; an unaligned MAP_FIXED_NOREPLACE address is EINVAL."""
    fails(errno.EINVAL, lambda: p.mmap(addr(0) + 1, PAGE, RW, PA | MAP_FIXED))
    assert p.mmap(addr(0) + 1, PAGE, RW, PA) == addr(0)
    fails(errno.EINVAL, lambda: p.mmap(addr(5) + 1, PAGE, RW, PA | MAP_FIXED_NOREPLACE))
    assert layout(p) == "A"


def test_mmap_low_addresses_unprivileged(p: Process) -> None:
    """kernel-facts §1, uid 65534: MAP_FIXED at 0 is EPERM (below vm.mmap_min_addr =
    4096, cap_mmap_addr()); MAP_FIXED at 0x1000 is allowed; a hint below 64 KiB is
    raised to 0x10000 (round_hint_to_min() with the LSM minimum)."""
    fails(errno.EPERM, lambda: p.mmap(0, PAGE, RW, PA | MAP_FIXED))
    assert p.mmap(0x1000, PAGE, RW, PA | MAP_FIXED) == 0x1000
    assert p.mmap(0x2000, PAGE, RW, PA) == 0x10000
    assert p.mmap(0x20000, PAGE, RW, PA) == 0x20000


def test_mmap_fixed_noreplace_over_existing(p: Process) -> None:
    """kernel-facts §1: MAP_FIXED_NOREPLACE over an existing mapping, fully or in part,
    is EEXIST and changes nothing."""
    p.mmap(addr(0), 2 * PAGE, RW, PA | MAP_FIXED)
    fails(errno.EEXIST, lambda: p.mmap(addr(1), PAGE, RW, PA | MAP_FIXED_NOREPLACE))
    fails(errno.EEXIST, lambda: p.mmap(addr(1), 3 * PAGE, RW, PA | MAP_FIXED_NOREPLACE))
    assert layout(p) == "AA"


@pytest.mark.parametrize("flags", [
    MAP_ANONYMOUS,
    MAP_SHARED_VALIDATE | MAP_ANONYMOUS,
    MAP_SHARED_VALIDATE | MAP_ANONYMOUS | 0x400,
], ids=["no-type", "shared-validate", "shared-validate-unknown"])
def test_mmap_anonymous_map_type_einval(p: Process, flags: int) -> None:
    """kernel-facts §1: anonymous memory takes only MAP_SHARED or MAP_PRIVATE; neither,
    or MAP_SHARED_VALIDATE (with or without unknown bits), is EINVAL."""
    fails(errno.EINVAL, lambda: p.mmap(0, PAGE, RW, flags))


@pytest.mark.parametrize("flags", [SA | 0x400, PA | 0x400], ids=["shared", "private"])
def test_mmap_unknown_flags_ignored(p: Process, flags: int) -> None:
    """kernel-facts §1: without MAP_SHARED_VALIDATE unknown flag bits are ignored."""
    assert p.mmap(0, PAGE, RW, flags) > 0


def test_mmap_unknown_prot_bit_ignored(p: Process) -> None:
    """kernel-facts §1: mmap ignores an unknown prot bit (mprotect does not)."""
    a = p.mmap(0, PAGE, 0x10 | PROT_READ, PA)
    assert p.maps()[0].perms == "r--p" and a > 0


def test_mmap_offset(p: Process) -> None:
    """kernel-facts §1: an anonymous mapping with offset 1 is EINVAL, with offset 4096
    fine; without MAP_ANONYMOUS fd -1 is EBADF."""
    fails(errno.EINVAL, lambda: p.mmap(0, PAGE, RW, PA, -1, 1))
    assert p.mmap(0, PAGE, RW, PA, -1, 4096) > 0
    fails(errno.EBADF, lambda: p.mmap(0, PAGE, RW, MAP_PRIVATE, -1, 0))


def test_mmap_hints(p: Process) -> None:
    """kernel-facts §1: a free hint is honoured exactly; an occupied or partly occupied
    hint falls back to normal top-down placement (where a hint-less mmap would go), not
    to a place near the hint."""
    assert p.mmap(addr(20), PAGE, RW, PA) == addr(20)
    q = Machine().spawn()
    q.mmap(addr(20), PAGE, RW, PA)
    hintless = q.mmap(0, PAGE, RW, PA)
    q.munmap(hintless, PAGE)
    assert q.mmap(addr(20), PAGE, RW, PA) == hintless
    q.munmap(hintless, PAGE)
    assert q.mmap(addr(19), 2 * PAGE, RW, PA) == hintless - PAGE


def test_mmap_fixed_over_middle_splits(p: Process) -> None:
    """kernel-facts §1: MAP_FIXED PROT_READ over the middle page of an RW [150,153)
    splits it into rw / r-- / rw."""
    p.mmap(addr(0), 3 * PAGE, RW, PA | MAP_FIXED)
    assert p.mmap(addr(1), PAGE, PROT_READ, PA | MAP_FIXED) == addr(1)
    assert layout(p) == "ABC"
    assert perms(p) == ["rw-p", "r--p", "rw-p"]
    assert vmflags(p)[1] == "rd mr mw me"


def test_mmap_max_map_count() -> None:
    """do_mmap(): "Too many mappings?" fails with ENOMEM once map_count exceeds
    vm.max_map_count (``map_count > sysctl_max_map_count``, so the mapping that makes
    the count one over the limit is still allowed)."""
    p = Machine(max_map_count=4).spawn()
    for i in range(5):
        p.mmap(addr(2 * i), PAGE, RW, PA | MAP_FIXED)
    assert p.mm.map_count == 5
    fails(errno.ENOMEM, lambda: p.mmap(addr(20), PAGE, RW, PA | MAP_FIXED))
    # A mapping that merges into a neighbour is refused all the same (checked first).
    fails(errno.ENOMEM, lambda: p.mmap(addr(1), PAGE, RW, PA | MAP_FIXED))


# --- munmap -----------------------------------------------------------------------------


def test_munmap_errors(p: Process) -> None:
    """kernel-facts §2: unaligned address, length 0, an address at or past TASK_SIZE and a
    length that wraps are EINVAL."""
    p.mmap(addr(0), 4 * PAGE, RW, PA | MAP_FIXED)
    fails(errno.EINVAL, lambda: p.munmap(addr(0) + 1, PAGE))
    fails(errno.EINVAL, lambda: p.munmap(addr(0), 0))
    fails(errno.EINVAL, lambda: p.munmap(TASK_END, PAGE))
    fails(errno.EINVAL, lambda: p.munmap(addr(0), MINUS_PAGE))
    assert layout(p) == "AAAA"


def test_munmap_lenient_cases(p: Process) -> None:
    """kernel-facts §2: an unaligned length is rounded up; an unmapped or partly unmapped
    range succeeds; punching a hole leaves two vmas with their flags."""
    p.mmap(addr(0), 4 * PAGE, RW, PA | MAP_FIXED)
    p.munmap(addr(3), 1)
    assert layout(p) == "AAA"
    p.munmap(addr(100), PAGE)
    p.munmap(addr(2), 5 * PAGE)
    assert layout(p) == "AA"
    p.mmap(addr(10), 5 * PAGE, RW, PA | MAP_FIXED)
    p.write(addr(10), b"x" * 5 * PAGE)
    p.munmap(addr(12), PAGE)
    assert ruler(p.vmas(), addr(10), 5) == "AA BB"
    assert vmflags(p)[1:] == ["rd wr mr mw me ac"] * 2


def test_munmap_max_map_count() -> None:
    """vms_gather_munmap_vmas(): punching a hole inside one vma needs one more vma and
    fails with ENOMEM once map_count has reached vm.max_map_count; unmapping a whole vma
    or trimming one end does not."""
    p = Machine(max_map_count=3).spawn()
    for i in range(3):
        p.mmap(addr(4 * i), 3 * PAGE, RW, PA | MAP_FIXED)
    fails(errno.ENOMEM, lambda: p.munmap(addr(1), PAGE))
    assert layout(p) == "AAA BBB CCC"
    p.munmap(addr(2), PAGE)
    p.munmap(addr(4), 3 * PAGE)
    assert layout(p) == "AA      BBB"


def test_munmap_sealed(p: Process) -> None:
    """kernel-facts §7: munmap of a sealed page, or of a range containing one, is EPERM
    and unmaps nothing (the check comes before any change)."""
    p.mmap(addr(10), 4 * PAGE, RW, PA | MAP_FIXED)
    p.write(addr(10), b"x" * 4 * PAGE)
    p.mseal(addr(11), 2 * PAGE)
    fails(errno.EPERM, lambda: p.munmap(addr(11), PAGE))
    fails(errno.EPERM, lambda: p.munmap(addr(10), 4 * PAGE))
    assert layout(p)[10:] == "ABBC"


# --- mprotect -----------------------------------------------------------------------------


def test_mprotect_argument_errors(p: Process) -> None:
    """kernel-facts §3: an unaligned start is EINVAL; length 0 succeeds; an unknown prot
    bit (alone or with PROT_READ) is EINVAL."""
    p.mmap(addr(0), 4 * PAGE, RW, PA | MAP_FIXED)
    fails(errno.EINVAL, lambda: p.mprotect(addr(0) + 1, PAGE, PROT_READ))
    p.mprotect(addr(0), 0, PROT_READ)
    fails(errno.EINVAL, lambda: p.mprotect(addr(0), PAGE, 0x10))
    fails(errno.EINVAL, lambda: p.mprotect(addr(0), PAGE, 0x10 | PROT_READ))
    assert perms(p) == ["rw-p"]


def test_mprotect_zero_length_before_prot_check(p: Process) -> None:
    """do_mprotect_pkey(): ``if (!len) return 0`` comes before arch_validate_prot(), so a
    zero-length call succeeds even with an unknown prot bit; an unaligned start is
    checked before either."""
    p.mprotect(addr(0), 0, 0x10)
    fails(errno.EINVAL, lambda: p.mprotect(addr(0) + 1, 0, PROT_READ))


def test_mprotect_growsdown_on_plain_vma(p: Process) -> None:
    """kernel-facts §3: PROT_GROWSDOWN on a vma without VM_GROWSDOWN is EINVAL
    (do_mprotect_pkey())."""
    p.mmap(addr(0), 4 * PAGE, RW, PA | MAP_FIXED)
    fails(errno.EINVAL, lambda: p.mprotect(addr(1), PAGE, PROT_READ | PROT_GROWSDOWN))
    assert perms(p) == ["rw-p"]


def test_mprotect_growsdown_extends_to_vma_start(p: Process) -> None:
    """do_mprotect_pkey(): with PROT_GROWSDOWN on a VM_GROWSDOWN vma the range is extended
    down to the vma's start ("start = vma->vm_start")."""
    p.mmap(addr(0), 4 * PAGE, RW, PA | MAP_FIXED | MAP_GROWSDOWN)
    p.mprotect(addr(2), PAGE, PROT_READ | PROT_GROWSDOWN)
    assert layout(p) == "AAAB"
    assert perms(p) == ["r--p", "rw-p"]


def test_mprotect_unaligned_length_rounds_up(p: Process) -> None:
    """kernel-facts §3: length 1 covers one page: [0,1) r--, [1,4) rw-."""
    p.mmap(addr(0), 4 * PAGE, RW, PA | MAP_FIXED)
    p.mprotect(addr(0), 1, PROT_READ)
    assert layout(p) == "ABBB" and perms(p) == ["r--p", "rw-p"]


def test_mprotect_holes(p: Process) -> None:
    """kernel-facts §3: an unmapped range, or one starting in a hole, is ENOMEM with
    nothing changed; a hole in the middle is ENOMEM after the vmas before it were
    changed (split first where the range starts inside a vma)."""
    p.mmap(addr(0), 4 * PAGE, RW, PA | MAP_FIXED)
    fails(errno.ENOMEM, lambda: p.mprotect(addr(100), PAGE, PROT_READ))
    p.mmap(addr(10), 2 * PAGE, RW, PA | MAP_FIXED)
    fails(errno.ENOMEM, lambda: p.mprotect(addr(9), 2 * PAGE, PROT_READ))
    assert perms(p) == ["rw-p", "rw-p"]
    p.mmap(addr(13), 2 * PAGE, RW, PA | MAP_FIXED)
    fails(errno.ENOMEM, lambda: p.mprotect(addr(10), 5 * PAGE, PROT_READ))
    assert ruler(p.vmas(), addr(10), 5) == "AA BB"
    assert perms(p)[1:] == ["r--p", "rw-p"]
    assert vmflags(p)[1] == "rd mr mw me"

    q = Machine().spawn()
    q.mmap(addr(20), 2 * PAGE, RW, PA | MAP_FIXED)
    q.mmap(addr(23), 2 * PAGE, RW, PA | MAP_FIXED)
    fails(errno.ENOMEM, lambda: q.mprotect(addr(21), 3 * PAGE, PROT_READ))
    assert layout(q)[20:] == "AB CC"
    assert perms(q) == ["rw-p", "r--p", "rw-p"]


def test_mprotect_sealed(p: Process) -> None:
    """kernel-facts §7: mprotect of a sealed vma is EPERM, even to its current protection;
    vmas before the sealed one in the range were already changed, vmas after it are not
    (the seal is checked per vma in mprotect_fixup())."""
    p.mmap(addr(10), 4 * PAGE, RW, PA | MAP_FIXED)
    p.write(addr(10), b"x" * 4 * PAGE)
    p.mseal(addr(11), 2 * PAGE)
    fails(errno.EPERM, lambda: p.mprotect(addr(11), PAGE, PROT_READ))
    fails(errno.EPERM, lambda: p.mprotect(addr(11), PAGE, RW))
    fails(errno.EPERM, lambda: p.mprotect(addr(12), 2 * PAGE, PROT_READ))
    assert perms(p) == ["rw-p", "rw-p", "rw-p"]
    fails(errno.EPERM, lambda: p.mprotect(addr(10), 4 * PAGE, PROT_READ))
    assert perms(p) == ["r--p", "rw-p", "rw-p"]


def test_mprotect_max_map_count() -> None:
    """vma_modify() -> split_vma(): changing the middle of a vma needs two more vmas;
    at the limit the first split already fails (ENOMEM, nothing changed); one below it
    the first split succeeds, the second fails, and the split is not undone."""
    p = Machine(max_map_count=2).spawn()
    p.mmap(addr(0), 3 * PAGE, RW, PA | MAP_FIXED)
    p.mmap(addr(4), 3 * PAGE, RW, PA | MAP_FIXED)
    fails(errno.ENOMEM, lambda: p.mprotect(addr(1), PAGE, PROT_READ))
    assert layout(p) == "AAA BBB"
    p.munmap(addr(4), 3 * PAGE)
    fails(errno.ENOMEM, lambda: p.mprotect(addr(1), PAGE, PROT_READ))
    assert layout(p) == "ABB"
    assert perms(p) == ["rw-p", "rw-p"]
    # Changing a whole vma, or its end, needs no new vma beyond what the limit allows.
    p.mprotect(addr(1), 2 * PAGE, PROT_READ)
    assert perms(p) == ["rw-p", "r--p"]


# --- mremap -----------------------------------------------------------------------------


def test_mremap_argument_errors(p: Process) -> None:
    """kernel-facts §4 (check_mremap_params()): an unknown flag, FIXED or DONTUNMAP
    without MAYMOVE, DONTUNMAP with a length change, an unaligned old or new address,
    new_len 0, and a FIXED destination overlapping the source are EINVAL."""
    a = p.mmap(addr(0), 2 * PAGE, RW, PA | MAP_FIXED)
    cases = [
        (a, 2 * PAGE, 2 * PAGE, 0x8, 0),
        (a, 2 * PAGE, 2 * PAGE, MREMAP_FIXED, addr(10)),
        (a, 2 * PAGE, 3 * PAGE, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, 0),
        (a, 2 * PAGE, 2 * PAGE, MREMAP_DONTUNMAP, addr(10)),
        (a + 1, 2 * PAGE, 2 * PAGE, 0, 0),
        (a, 2 * PAGE, 0, 0, 0),
        (a, 2 * PAGE, 2 * PAGE, MOVE, addr(10) + 1),
        (a, 2 * PAGE, 2 * PAGE, MOVE, a + PAGE),
        (a, 2 * PAGE, 2 * PAGE, MOVE, a),
        (a, 2 * PAGE, 2 * PAGE, MOVE, a - PAGE),
    ]
    for old, old_len, new_len, flags, new in cases:
        fails(errno.EINVAL, lambda: p.mremap(old, old_len, new_len, flags, new))  # noqa: B023
    assert layout(p) == "AA"


def test_mremap_old_len_zero_on_private(p: Process) -> None:
    """kernel-facts §4 (check_prep_vma()): old_len 0 "duplicates" only shared mappings;
    on a private one it is EINVAL."""
    a = p.mmap(addr(0), 2 * PAGE, RW, PA | MAP_FIXED)
    fails(errno.EINVAL, lambda: p.mremap(a, 0, PAGE, MREMAP_MAYMOVE))


@pytest.mark.parametrize(("old_len", "new_len", "flags"), [
    (PAGE, 2 * PAGE, 0),
    (PAGE, 2 * PAGE, MREMAP_MAYMOVE),
    (PAGE, PAGE, MOVE),
    (PAGE, PAGE, 0),
    (2 * PAGE, PAGE, 0),
], ids=["grow", "grow-maymove", "move", "same", "shrink"])
def test_mremap_unmapped_old_addr_efault(p: Process, old_len: int, new_len: int,
                                         flags: int) -> None:
    """kernel-facts §4: an old_addr that is not mapped is EFAULT whatever the request."""
    fails(errno.EFAULT, lambda: p.mremap(addr(100), old_len, new_len, flags, addr(200)))


def test_mremap_grow_past_vma_end_efault(p: Process) -> None:
    """kernel-facts §4: growing an old range that runs past the end of its vma is
    EFAULT."""
    a = p.mmap(addr(0), 2 * PAGE, RW, PA | MAP_FIXED)
    fails(errno.EFAULT, lambda: p.mremap(a, 3 * PAGE, 4 * PAGE, 0))


def test_mremap_grow_without_room_enomem(p: Process) -> None:
    """kernel-facts §4: growing in place without MAYMOVE is ENOMEM when the next page is
    mapped, when the range does not end at the vma's end, or when the gap is too small."""
    p.mmap(addr(0), 2 * PAGE, RW, PA | MAP_FIXED)
    p.mmap(addr(2), PAGE, PROT_READ, PA | MAP_FIXED)
    fails(errno.ENOMEM, lambda: p.mremap(addr(0), 2 * PAGE, 3 * PAGE, 0))
    p.mmap(addr(5), 3 * PAGE, RW, PA | MAP_FIXED)
    fails(errno.ENOMEM, lambda: p.mremap(addr(5), 2 * PAGE, 3 * PAGE, 0))
    p.mmap(addr(10), 2 * PAGE, RW, PA | MAP_FIXED)
    p.mmap(addr(14), 2 * PAGE, RW, PA | MAP_FIXED)
    fails(errno.ENOMEM, lambda: p.mremap(addr(10), 2 * PAGE, 5 * PAGE, 0))
    assert layout(p) == "AAB  CCC  DD  EE"


def test_mremap_multi_vma_errors(p: Process) -> None:
    """kernel-facts §4: a range over two vmas may only be moved at the same length with
    MREMAP_FIXED; growing or shrinking it is EFAULT; a multi-vma range starting in a hole
    is EFAULT and nothing changes."""
    p.mmap(addr(0), 2 * PAGE, RW, PA | MAP_FIXED)
    p.mmap(addr(2), 2 * PAGE, PROT_READ, PA | MAP_FIXED)
    fails(errno.EFAULT, lambda: p.mremap(addr(0), 4 * PAGE, 6 * PAGE, MOVE, addr(20)))
    fails(errno.EFAULT, lambda: p.mremap(addr(0), 4 * PAGE, 3 * PAGE, MOVE, addr(20)))
    p.mmap(addr(10), 2 * PAGE, RW, PA | MAP_FIXED)
    p.mmap(addr(13), 2 * PAGE, RW, PA | MAP_FIXED)
    fails(errno.EFAULT, lambda: p.mremap(addr(12), 3 * PAGE, 3 * PAGE, MOVE, addr(30)))
    assert layout(p) == "AABB      CC DD"


def test_mremap_sealed(p: Process) -> None:
    """kernel-facts §7: a sealed vma cannot be shrunk, grown or moved (EPERM), and an
    unsealed one cannot be moved onto a sealed destination (EPERM from the munmap of the
    destination)."""
    a = p.mmap(addr(0), 4 * PAGE, RW, PA | MAP_FIXED)
    p.mseal(a, 4 * PAGE)
    fails(errno.EPERM, lambda: p.mremap(a, 4 * PAGE, 2 * PAGE, 0))
    fails(errno.EPERM, lambda: p.mremap(a, 4 * PAGE, 6 * PAGE, MREMAP_MAYMOVE))
    fails(errno.EPERM, lambda: p.mremap(a, 4 * PAGE, 4 * PAGE, MOVE, addr(10)))
    b = p.mmap(addr(20), 2 * PAGE, RW, PA | MAP_FIXED)
    fails(errno.EPERM, lambda: p.mremap(b, 2 * PAGE, 2 * PAGE, MOVE, addr(1)))
    assert layout(p, 30) == "AAAA" + " " * 16 + "BB"


def test_mremap_max_map_count() -> None:
    """move_vma() needs headroom for the copy and for splitting the source: with
    map_count three below vm.max_map_count a move is ENOMEM; four below it succeeds.
    (Linux 6.16 and mainline agree on these two points.)"""
    limit = 8
    p = Machine(max_map_count=limit).spawn()
    for i in range(limit - 4):
        p.mmap(addr(4 * i), 2 * PAGE, RW, PA | MAP_FIXED)
    p.mmap(addr(4 * (limit - 4)) + PAGE, PAGE, PROT_READ, PA | MAP_FIXED)
    assert p.mm.map_count == limit - 3
    fails(errno.ENOMEM, lambda: p.mremap(addr(0), 2 * PAGE, 8 * PAGE, MREMAP_MAYMOVE))
    p.munmap(addr(4 * (limit - 4)) + PAGE, PAGE)
    new = p.mremap(addr(0), 2 * PAGE, 8 * PAGE, MREMAP_MAYMOVE)
    assert new != addr(0)


# --- brk ----------------------------------------------------------------------------------


def test_brk(p: Process) -> None:
    """kernel-facts §8: brk(0) reports start_brk and maps nothing; an unaligned request
    returns exactly that value with the heap vma rounded up ([heap], rd wr mr mw me ac);
    a request below start_brk fails by returning the current break; shrinking unmaps,
    down to no heap vma at all."""
    start = p.brk(0)
    assert start == p.mm.start_brk and p.maps() == []
    want = start + 4 * PAGE + 100
    assert p.brk(want) == want
    heap = p.maps()
    assert [(e.start, e.end, e.path, e.vm_flags, e.offset) for e in heap] == [
        (start, start + 5 * PAGE, "[heap]", "rd wr mr mw me ac", 0)]
    assert p.brk(start - PAGE) == want
    assert p.brk(start + PAGE) == start + PAGE
    assert [(e.start, e.end) for e in p.maps()] == [(start, start + PAGE)]
    assert p.brk(start) == start
    assert p.maps() == []


def test_brk_stops_a_page_before_the_next_mapping(p: Process) -> None:
    """brk(): "Check against existing mmap mappings": the new break plus one guard page
    must not reach the next vma (``newbrk + PAGE_SIZE > vm_start_gap(next)`` fails, by
    returning the current break). (kernel-facts §8's 0x7fff00000000 request fails on the
    real machine for the same reason: the libraries and stack are in the way.)"""
    start = p.brk(0)
    p.mmap(start + 10 * PAGE, PAGE, PROT_READ, PA | MAP_FIXED)
    assert p.brk(start + 9 * PAGE + 1) == start
    assert p.brk(start + 9 * PAGE) == start + 9 * PAGE
    assert p.brk(0x7FFF00000000) == start + 9 * PAGE
    assert [(e.end, e.path) for e in p.maps()] == [
        (start + 9 * PAGE, "[heap]"), (start + 11 * PAGE, "")]


def test_heap_name_needs_overlap(p: Process) -> None:
    """vma_is_initial_heap(): ``vm_start < brk && vm_end > start_brk``: mappings that only
    touch the heap, right below start_brk or right at the (page-aligned) break, are not
    called [heap]."""
    start = p.brk(0)
    p.brk(start + 2 * PAGE)
    p.mmap(start - PAGE, PAGE, PROT_READ, PA | MAP_FIXED)
    p.mmap(start + 2 * PAGE, PAGE, PROT_READ, PA | MAP_FIXED)
    assert [(e.start - start, e.path) for e in p.maps()] == [
        (-PAGE, ""), (0, "[heap]"), (2 * PAGE, "")]


def test_brk_and_adjacent_mmap(p: Process) -> None:
    """kernel-facts §8: an anonymous mapping placed exactly at the end of the heap merges
    into the [heap] vma, and brk can no longer grow into it."""
    start = p.brk(0)
    p.brk(start + 2 * PAGE)
    p.mmap(start + 2 * PAGE, PAGE, RW, PA | MAP_FIXED_NOREPLACE)
    assert [(e.start, e.end, e.path) for e in p.maps()] == [
        (start, start + 3 * PAGE, "[heap]")]
    assert p.brk(start + 4 * PAGE) == start + 2 * PAGE


# --- madvise ------------------------------------------------------------------------------


def test_madvise_argument_errors(p: Process) -> None:
    """kernel-facts §5: unknown advice is EINVAL even on an unmapped range (checked
    first); an unaligned start is EINVAL; length 0 succeeds; an unmapped range is
    ENOMEM."""
    fails(errno.EINVAL, lambda: p.madvise(addr(100), PAGE, 999))
    p.mmap(addr(0), 2 * PAGE, RW, PA | MAP_FIXED)
    fails(errno.EINVAL, lambda: p.madvise(addr(0) + 1, PAGE, MADV_DONTNEED))
    p.madvise(addr(0), 0, MADV_DONTNEED)
    fails(errno.ENOMEM, lambda: p.madvise(addr(100), PAGE, MADV_DONTNEED))
    fails(errno.ENOMEM, lambda: p.madvise(addr(100), PAGE, MADV_NORMAL))


def test_madvise_hole_applies_everywhere_then_enomem(p: Process) -> None:
    """kernel-facts §5: MADV_DONTFORK over a range with a hole is ENOMEM but applied on
    both sides of the hole (madvise_walk_vmas() carries on); starting inside a vma splits
    it there."""
    p.mmap(addr(10), 2 * PAGE, RW, PA | MAP_FIXED)
    p.mmap(addr(13), 2 * PAGE, RW, PA | MAP_FIXED)
    fails(errno.ENOMEM, lambda: p.madvise(addr(10), 5 * PAGE, MADV_DONTFORK))
    assert vmflags(p) == ["rd wr mr mw me dc ac"] * 2
    q = Machine().spawn()
    q.mmap(addr(16), 2 * PAGE, RW, PA | MAP_FIXED)
    q.mmap(addr(19), 2 * PAGE, RW, PA | MAP_FIXED)
    fails(errno.ENOMEM, lambda: q.madvise(addr(17), 4 * PAGE, MADV_DONTFORK))
    assert layout(q)[16:] == "AB CC"
    assert vmflags(q) == ["rd wr mr mw me ac", "rd wr mr mw me dc ac",
                          "rd wr mr mw me dc ac"]


def test_madvise_dontfork_dofork_remerge(p: Process) -> None:
    """kernel-facts §5: DONTFORK on the middle of [60,64) splits it in three with ``dc``
    in the middle; DOFORK re-merges it into one vma."""
    p.mmap(addr(0), 4 * PAGE, RW, PA | MAP_FIXED)
    p.madvise(addr(1), 2 * PAGE, MADV_DONTFORK)
    assert layout(p) == "ABBC" and vmflags(p)[1] == "rd wr mr mw me dc ac"
    p.madvise(addr(1), 2 * PAGE, MADV_DOFORK)
    assert layout(p) == "AAAA" and vmflags(p) == ["rd wr mr mw me ac"]


def test_madvise_dontneed_on_locked(p: Process) -> None:
    """kernel-facts §5: DONTNEED and FREE on an mlocked range are EINVAL and discard
    nothing; DONTNEED_LOCKED discards (Rss 0) and the vma stays locked."""
    a = p.mmap(addr(0), 2 * PAGE, RW, PA | MAP_FIXED)
    p.mlock(a, 2 * PAGE)
    assert rss_pages(p, a, 2) == 2
    fails(errno.EINVAL, lambda: p.madvise(a, 2 * PAGE, MADV_DONTNEED))
    fails(errno.EINVAL, lambda: p.madvise(a, 2 * PAGE, MADV_FREE))
    assert rss_pages(p, a, 2) == 2
    p.madvise(a, 2 * PAGE, MADV_DONTNEED_LOCKED)
    assert rss_pages(p, a, 2) == 0
    assert vmflags(p) == ["rd wr mr mw me lo ac"]


def test_madvise_shared_anonymous(p: Process) -> None:
    """kernel-facts §5: on MAP_SHARED anonymous memory WIPEONFORK and FREE are EINVAL,
    DONTNEED succeeds; WIPEONFORK on private memory sets ``wf``."""
    s = p.mmap(addr(0), 2 * PAGE, RW, SA | MAP_FIXED)
    fails(errno.EINVAL, lambda: p.madvise(s, 2 * PAGE, MADV_WIPEONFORK))
    fails(errno.EINVAL, lambda: p.madvise(s, 2 * PAGE, MADV_FREE))
    p.madvise(s, 2 * PAGE, MADV_DONTNEED)
    a = p.mmap(addr(4), 2 * PAGE, RW, PA | MAP_FIXED)
    p.madvise(a, 2 * PAGE, MADV_WIPEONFORK)
    assert vmflags(p)[1] == "rd wr mr mw me ac wf"


def test_madvise_populate(p: Process) -> None:
    """kernel-facts §5: POPULATE_WRITE needs write permission and POPULATE_READ some
    access (EINVAL otherwise); both are ENOMEM on an unmapped range; POPULATE_WRITE on
    RW memory populates every page."""
    r = p.mmap(addr(0), 2 * PAGE, PROT_READ, PA | MAP_FIXED)
    n = p.mmap(addr(4), 2 * PAGE, PROT_NONE, PA | MAP_FIXED)
    w = p.mmap(addr(8), 2 * PAGE, RW, PA | MAP_FIXED)
    fails(errno.EINVAL, lambda: p.madvise(r, 2 * PAGE, MADV_POPULATE_WRITE))
    p.madvise(r, 2 * PAGE, MADV_POPULATE_READ)
    fails(errno.EINVAL, lambda: p.madvise(n, 2 * PAGE, MADV_POPULATE_READ))
    fails(errno.EINVAL, lambda: p.madvise(n, 2 * PAGE, MADV_POPULATE_WRITE))
    fails(errno.ENOMEM, lambda: p.madvise(addr(20), PAGE, MADV_POPULATE_WRITE))
    p.madvise(w, 2 * PAGE, MADV_POPULATE_WRITE)
    assert rss_pages(p, w, 2) == 2


@pytest.mark.parametrize(("advice", "flags"), [
    (MADV_DONTDUMP, "rd wr mr mw me ac dd"),
    (MADV_DODUMP, "rd wr mr mw me ac"),
    (MADV_RANDOM, "rd wr mr mw me rr ac"),
    (MADV_SEQUENTIAL, "rd wr mr mw me sr ac"),
    (MADV_HUGEPAGE, "rd wr mr mw me ac hg"),
    (MADV_NOHUGEPAGE, "rd wr mr mw me ac nh"),
], ids=["dontdump", "dodump", "random", "sequential", "hugepage", "nohugepage"])
def test_madvise_flag_advice(p: Process, advice: int, flags: str) -> None:
    """kernel-facts §5: advice that only sets a vm_flag shows in VmFlags."""
    a = p.mmap(addr(0), 2 * PAGE, RW, PA | MAP_FIXED)
    p.madvise(a, 2 * PAGE, advice)
    assert vmflags(p) == [flags]


def test_madvise_dontneed_discards(p: Process) -> None:
    """kernel-facts §5: after DONTNEED a faulted private page reads 0; DONTNEED over a
    range with an unmapped tail is ENOMEM (after discarding the mapped part)."""
    a = p.mmap(addr(0), 2 * PAGE, RW, PA | MAP_FIXED)
    p.write(a, b"gone")
    p.madvise(a, 2 * PAGE, MADV_DONTNEED)
    assert p.read(a, 4) == b"\0\0\0\0"
    p.write(a, b"gone")
    fails(errno.ENOMEM, lambda: p.madvise(a, 4 * PAGE, MADV_DONTNEED))
    assert p.read(a, 4) == b"\0\0\0\0"


def test_madvise_sealed(p: Process) -> None:
    """kernel-facts §7: on sealed memory, destructive advice is refused (EPERM) only for
    read-only private anonymous vmas; on writable ones DONTNEED, FREE and DONTFORK work
    (DONTFORK splitting the sealed vma); WILLNEED and mlock work on read-only ones too;
    DONTNEED on sealed shared anonymous memory works."""
    a = p.mmap(addr(10), 4 * PAGE, RW, PA | MAP_FIXED)
    p.write(a, b"x" * 4 * PAGE)
    p.mseal(a, 4 * PAGE)
    p.madvise(a, PAGE, MADV_DONTNEED)
    p.madvise(a + PAGE, PAGE, MADV_FREE)
    assert rss_pages(p, a, 1) == 0
    p.madvise(a + 2 * PAGE, PAGE, MADV_DONTFORK)
    assert "rd wr mr mw me dc ac sl" in vmflags(p)

    r = p.mmap(addr(20), 2 * PAGE, PROT_READ, PA | MAP_FIXED | MAP_LOCKED)
    p.munlock(r, 2 * PAGE)
    p.mseal(r, 2 * PAGE)
    fails(errno.EPERM, lambda: p.madvise(r, 2 * PAGE, MADV_DONTNEED))
    fails(errno.EPERM, lambda: p.madvise(r, 2 * PAGE, MADV_FREE))
    p.madvise(r, 2 * PAGE, MADV_WILLNEED)
    p.mlock(r, 2 * PAGE)
    assert vmflags(p)[-1] == "rd mr mw me lo sl"

    s = p.mmap(addr(30), 2 * PAGE, PROT_READ, SA | MAP_FIXED)
    p.mseal(s, 2 * PAGE)
    p.madvise(s, 2 * PAGE, MADV_DONTNEED)


def test_madvise_sealed_checked_per_vma(p: Process) -> None:
    """can_madvise_modify() runs per vma (madvise_vma_behavior()): DONTNEED over an
    unsealed writable vma followed by a sealed read-only one discards the first vma's
    pages, then fails with EPERM."""
    a = p.mmap(addr(0), 2 * PAGE, RW, PA | MAP_FIXED)
    p.write(a, b"first")
    r = p.mmap(addr(2), 2 * PAGE, PROT_READ, PA | MAP_FIXED)
    p.mseal(r, 2 * PAGE)
    fails(errno.EPERM, lambda: p.madvise(a, 4 * PAGE, MADV_DONTNEED))
    assert p.read(a, 5) == b"\0" * 5


def test_madvise_max_map_count_is_eagain() -> None:
    """madvise_vma_behavior(): a split refused at vm.max_map_count (ENOMEM from
    split_vma()) is reported as EAGAIN ("kernel resources ... temporarily
    unavailable")."""
    p = Machine(max_map_count=1).spawn()
    p.mmap(addr(0), 3 * PAGE, RW, PA | MAP_FIXED)
    fails(errno.EAGAIN, lambda: p.madvise(addr(1), PAGE, MADV_DONTFORK))
    assert layout(p) == "AAA"


# --- mlock / munlock ----------------------------------------------------------------------


def test_mlock(p: Process) -> None:
    """kernel-facts §6: an unaligned start is rounded down and the end up (two pages
    locked and populated); length 0 succeeds; an unmapped range is ENOMEM; mlock2 with
    an unknown flag is EINVAL; MLOCK_ONFAULT sets ``lo lf`` without populating."""
    a = p.mmap(addr(0), 4 * PAGE, RW, PA | MAP_FIXED)
    p.mlock(a + 1, PAGE)
    assert layout(p) == "AABB"
    assert vmflags(p) == ["rd wr mr mw me lo ac", "rd wr mr mw me ac"]
    assert rss_pages(p, a, 4) == 2
    p.mlock(a, 0)
    fails(errno.ENOMEM, lambda: p.mlock(addr(100), PAGE))
    fails(errno.EINVAL, lambda: p.mlock(a, PAGE, 2))
    b = p.mmap(addr(10), 2 * PAGE, RW, PA | MAP_FIXED)
    p.mlock(b, 2 * PAGE, MLOCK_ONFAULT)
    assert vmflags(p)[-1] == "rd wr mr mw me lo lf ac"
    assert rss_pages(p, b, 2) == 0


def test_mlock_hole(p: Process) -> None:
    """kernel-facts §6: mlock over a hole is ENOMEM and only the part before the hole is
    locked."""
    p.mmap(addr(10), 2 * PAGE, RW, PA | MAP_FIXED)
    p.mmap(addr(13), 2 * PAGE, RW, PA | MAP_FIXED)
    fails(errno.ENOMEM, lambda: p.mlock(addr(10), 5 * PAGE))
    assert vmflags(p) == ["rd wr mr mw me lo ac", "rd wr mr mw me ac"]


def test_munlock(p: Process) -> None:
    """kernel-facts §6: munlock with an unaligned start re-merges the vma into one without
    ``lo``; munlock of an unmapped range is ENOMEM."""
    a = p.mmap(addr(0), 4 * PAGE, RW, PA | MAP_FIXED)
    p.mlock(a + 1, PAGE)
    p.munlock(a + 1, PAGE)
    assert layout(p) == "AAAA" and vmflags(p) == ["rd wr mr mw me ac"]
    fails(errno.ENOMEM, lambda: p.munlock(addr(100), PAGE))


def test_map_locked_populates(p: Process) -> None:
    """kernel-facts §1: MAP_LOCKED sets ``lo`` and populates the mapping."""
    a = p.mmap(addr(0), 2 * PAGE, RW, PA | MAP_FIXED | MAP_LOCKED)
    assert vmflags(p) == ["rd wr mr mw me lo ac"]
    assert rss_pages(p, a, 2) == 2


def test_mlock_max_map_count() -> None:
    """mlock_fixup() -> vma_modify_flags(): locking the middle of a vma at the limit is
    ENOMEM (no conversion to EAGAIN, unlike madvise)."""
    p = Machine(max_map_count=1).spawn()
    p.mmap(addr(0), 3 * PAGE, RW, PA | MAP_FIXED)
    fails(errno.ENOMEM, lambda: p.mlock(addr(1), PAGE))
    assert vmflags(p) == ["rd wr mr mw me ac"]


# --- mseal --------------------------------------------------------------------------------


def test_mseal_errors(p: Process) -> None:
    """kernel-facts §7: flags other than 0 and an unaligned start are EINVAL; length 0
    succeeds; an unmapped range, or one with a hole, is ENOMEM and seals nothing."""
    p.mmap(addr(0), 4 * PAGE, RW, PA | MAP_FIXED)
    fails(errno.EINVAL, lambda: p.mseal(addr(0), PAGE, 1))
    fails(errno.EINVAL, lambda: p.mseal(addr(0) + 1, PAGE))
    p.mseal(addr(0), 0)
    fails(errno.ENOMEM, lambda: p.mseal(addr(100), PAGE))
    p.mmap(addr(5), 2 * PAGE, RW, PA | MAP_FIXED)
    p.mmap(addr(8), 2 * PAGE, RW, PA | MAP_FIXED)
    fails(errno.ENOMEM, lambda: p.mseal(addr(5), 5 * PAGE))
    assert all("sl" not in f.split() for f in vmflags(p))


def test_mseal_splits_and_is_idempotent(p: Process) -> None:
    """kernel-facts §7: an unaligned length is rounded up ([1,2) sealed, split out);
    sealing the middle of a faulted [10,14) splits it in three; sealing again succeeds."""
    p.mmap(addr(0), 4 * PAGE, RW, PA | MAP_FIXED)
    p.mseal(addr(1), 1)
    assert layout(p) == "ABCC"
    assert vmflags(p)[1] == "rd wr mr mw me ac sl"
    p.mmap(addr(10), 4 * PAGE, RW, PA | MAP_FIXED)
    p.write(addr(10), b"x" * 4 * PAGE)
    p.mseal(addr(11), 2 * PAGE)
    p.mseal(addr(11), 2 * PAGE)
    assert layout(p)[10:] == "DEEF"
    assert vmflags(p)[3:] == ["rd wr mr mw me ac", "rd wr mr mw me ac sl",
                              "rd wr mr mw me ac"]


def test_mmap_fixed_over_sealed(p: Process) -> None:
    """kernel-facts §7: MAP_FIXED over a sealed range is EPERM."""
    a = p.mmap(addr(0), 2 * PAGE, RW, PA | MAP_FIXED)
    p.mseal(a, 2 * PAGE)
    fails(errno.EPERM, lambda: p.mmap(a, PAGE, PROT_READ, PA | MAP_FIXED))
    assert vmflags(p) == ["rd wr mr mw me ac sl"]
