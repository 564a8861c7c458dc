"""Issue 14.2-14.4: bad syscall arguments fail as Linux fails them, before any change.

Addresses and lengths are unsigned longs (mmcore.sysargs wraps a negative value as C
does), so the kernel's own checks give its errno; each errno here was probed on the
machine's 6.18 kernel (docs/kernel-facts.md, section "Syscall arguments as unsigned
longs"). A wrong type is a TypeError naming the argument and never marks the machine
broken; a fault inside a plugin still does.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest
from mmcore_plugins.anon_vma_chain import AnonVmaChainScheme

from mmcore import (
    MADV_DONTNEED,
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    MAP_SHARED,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PROT_READ,
    PROT_WRITE,
    Machine,
    MachineBroken,
    Page,
    PluginInfo,
    Process,
    Vma,
    WalkCost,
    hookimpl,
)
from mmcore.constants import PAGE_SIZE as P
from mmcore.constants import TASK_SIZE
from mmcore.testing import find_violations

RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS
MS_SYNC = 4


class World:
    """A process holding a 4-page mapping below a 16-page one (both written), and a
    two-page file open read-write."""

    def __init__(self) -> None:
        self.m = Machine(ram_pages=256, swap_pages=256)
        self.p = self.m.spawn()
        self.below = self.p.mmap(0, 4 * P, RW, ANON)
        self.a = self.p.mmap(0, 16 * P, RW, ANON)
        assert self.a + 16 * P == self.below  # top-down: the 16-page one lies below
        for addr in (self.a, self.below):
            self.p.write(addr, b"data")
        self.m.create_file("/f", b"file" * (P // 2))
        self.fd = self.p.open("/f", 2)

    def state(self) -> tuple[Any, ...]:
        """Everything a failed call must leave as it was."""
        p = self.p
        return (p.maps_text(), p.mm.brk, p.mm.rss, p.alive, self.m.physmem.nr_used,
                self.m.swap.nr_used, self.m.files["/f"].size,
                p.read(self.a, 4), p.read(self.below, 4))


@pytest.fixture
def w() -> Iterator[World]:
    world = World()
    yield world
    assert world.m.broken is None
    assert find_violations(world.m) == []


def _expect_errno(w: World, call: Callable[[], object], code: int) -> None:
    before = w.state()
    with pytest.raises(OSError) as exc:
        call()
    assert exc.value.errno == code, f"{errno.errorcode[exc.value.errno]}, not " \
        f"{errno.errorcode[code]}"
    assert w.state() == before


def test_14_2_mmap_negative_length_enomem(w: World) -> None:
    # do_mmap(): PAGE_ALIGN((size_t)-4096) > TASK_SIZE; the probed kernel says ENOMEM.
    _expect_errno(w, lambda: w.p.mmap(0, -4096, RW, ANON), errno.ENOMEM)


def test_14_2_mremap_negative_new_len_einval_unmaps_nothing(w: World) -> None:
    # It used to "shrink" to -4096 bytes: the whole mapping and the vma below it went.
    _expect_errno(w, lambda: w.p.mremap(w.a, 4 * P, -4096, 0), errno.EINVAL)


def test_14_2_mremap_fixed_negative_new_addr_einval_before_moving(w: World) -> None:
    # It used to move the data to a vma at -0x10000, then raise EFAULT.
    _expect_errno(w, lambda: w.p.mremap(w.a, 16 * P, 16 * P, MREMAP_MAYMOVE | MREMAP_FIXED,
                                        -65536), errno.EINVAL)


# (label, call on a World, errno) as the 6.18 kernel answered each one.
PROBED: list[tuple[str, Callable[[World], object], int]] = [
    ("mmap len=-1", lambda w: w.p.mmap(0, -1, RW, ANON), errno.ENOMEM),
    ("mmap len=1<<63", lambda w: w.p.mmap(0, 1 << 63, RW, ANON), errno.ENOMEM),
    ("mmap MAP_FIXED addr=-4096", lambda w: w.p.mmap(-4096, P, RW, ANON | MAP_FIXED),
     errno.ENOMEM),
    ("mmap MAP_FIXED addr=1<<47", lambda w: w.p.mmap(1 << 47, P, RW, ANON | MAP_FIXED),
     errno.ENOMEM),
    ("mmap file offset=-4096", lambda w: w.p.mmap(0, P, PROT_READ, MAP_SHARED, w.fd, -4096),
     errno.EOVERFLOW),
    ("mmap file offset=LLONG_MAX&PAGE_MASK",
     lambda w: w.p.mmap(0, P, PROT_READ, MAP_SHARED, w.fd, (1 << 63) - P), errno.EOVERFLOW),
    ("munmap len=-4096", lambda w: w.p.munmap(w.a, -4096), errno.EINVAL),
    ("munmap len=-1", lambda w: w.p.munmap(w.a, -1), errno.EINVAL),
    ("munmap addr=-4096", lambda w: w.p.munmap(-4096, P), errno.EINVAL),
    ("munmap len=1<<47", lambda w: w.p.munmap(w.a, 1 << 47), errno.EINVAL),
    ("mprotect len=-4096", lambda w: w.p.mprotect(w.a, -4096, PROT_READ), errno.ENOMEM),
    ("mprotect len=-1", lambda w: w.p.mprotect(w.a, -1, PROT_READ), errno.ENOMEM),
    ("mprotect addr=-4096", lambda w: w.p.mprotect(-4096, P, PROT_READ), errno.ENOMEM),
    ("mprotect prot=-1", lambda w: w.p.mprotect(w.a, P, -1), errno.EINVAL),
    ("madvise len=-4096", lambda w: w.p.madvise(w.a, -4096, MADV_DONTNEED), errno.EINVAL),
    ("madvise len=-1", lambda w: w.p.madvise(w.a, -1, MADV_DONTNEED), errno.EINVAL),
    ("madvise addr=-4096", lambda w: w.p.madvise(-4096, P, MADV_DONTNEED), errno.EINVAL),
    ("madvise addr=1<<47", lambda w: w.p.madvise(1 << 47, P, MADV_DONTNEED), errno.ENOMEM),
    ("madvise advice=-1", lambda w: w.p.madvise(w.a, P, -1), errno.EINVAL),
    # unprivileged: the RLIMIT_MEMLOCK check comes before the range check
    ("mlock len=-4096", lambda w: w.p.mlock(w.a, -4096), errno.ENOMEM),
    ("mlock addr=-4096", lambda w: w.p.mlock(-4096, P), errno.EINVAL),
    ("mlock2 flags=-1", lambda w: w.p.mlock(w.a, P, -1), errno.EINVAL),
    ("munlock len=-4096", lambda w: w.p.munlock(w.a, -4096), errno.EINVAL),
    ("munlock addr=-4096", lambda w: w.p.munlock(-4096, P), errno.EINVAL),
    ("msync len=-4096", lambda w: w.p.msync(w.a, -4096, MS_SYNC), errno.ENOMEM),
    ("msync addr=-4096", lambda w: w.p.msync(-4096, P, MS_SYNC), errno.ENOMEM),
    ("mseal len=-4096", lambda w: w.p.mseal(w.a, -4096), errno.EINVAL),
    ("mseal len=-1", lambda w: w.p.mseal(w.a, -1), errno.EINVAL),
    ("mseal addr=-4096", lambda w: w.p.mseal(-4096, P), errno.EINVAL),
    ("mseal addr=1<<47", lambda w: w.p.mseal(1 << 47, P), errno.ENOMEM),
    ("mremap old_len=-4096", lambda w: w.p.mremap(w.a, -4096, 4 * P, 0), errno.EINVAL),
    ("mremap old_len=-4096 MAYMOVE",
     lambda w: w.p.mremap(w.a, -4096, 4 * P, MREMAP_MAYMOVE), errno.EINVAL),
    ("mremap new_len=-1", lambda w: w.p.mremap(w.a, 4 * P, -1, MREMAP_MAYMOVE), errno.EINVAL),
    ("mremap old_len=1<<46", lambda w: w.p.mremap(w.a, 1 << 46, 4 * P, 0), errno.EINVAL),
    ("mremap addr=-4096", lambda w: w.p.mremap(-4096, P, P, 0), errno.EFAULT),
    ("mremap new_len=TASK_SIZE+P",
     lambda w: w.p.mremap(w.a, 4 * P, TASK_SIZE + P, MREMAP_MAYMOVE), errno.EINVAL),
    ("mremap FIXED new_addr=1<<47",
     lambda w: w.p.mremap(w.a, 16 * P, 16 * P, MREMAP_MAYMOVE | MREMAP_FIXED, 1 << 47),
     errno.EINVAL),
    ("mremap flags=-1", lambda w: w.p.mremap(w.a, 4 * P, 4 * P, -1), errno.EINVAL),
    ("pread offset=-1", lambda w: w.p.pread(w.fd, 1, -1), errno.EINVAL),
    ("pread offset=LLONG_MAX", lambda w: w.p.pread(w.fd, 1, (1 << 63) - 1), errno.EINVAL),
    ("pwrite offset=-1", lambda w: w.p.pwrite(w.fd, b"x", -1), errno.EINVAL),
    ("pwrite offset=LLONG_MAX", lambda w: w.p.pwrite(w.fd, b"x", (1 << 63) - 1),
     errno.EINVAL),
    ("ftruncate length=-1", lambda w: w.p.ftruncate(w.fd, -1), errno.EINVAL),
    ("close fd=-1", lambda w: w.p.close(-1), errno.EBADF),
    ("dup fd=-1", lambda w: w.p.dup(-1), errno.EBADF),
    ("fsync fd=-1", lambda w: w.p.fsync(-1), errno.EBADF),
    ("mlockall flags=0", lambda w: w.p.mlockall(0), errno.EINVAL),
    ("mlockall flags=-1", lambda w: w.p.mlockall(-1), errno.EINVAL),
]


@pytest.mark.parametrize(("label", "call", "code"), PROBED, ids=[c[0] for c in PROBED])
def test_14_2_probed_errno_before_any_change(w: World, label: str,
                                             call: Callable[[World], object],
                                             code: int) -> None:
    _expect_errno(w, lambda: call(w), code)


@pytest.mark.parametrize("call", [
    lambda w: w.p.mlock(w.a, -1),  # PAGE_ALIGN wraps to 0: nothing to do
    lambda w: w.p.mlock(w.a + 1, -4096),  # len + offset_in_page wraps to 0
    lambda w: w.p.munlock(w.a, -1),
    lambda w: w.p.msync(w.a, -1, MS_SYNC),
    lambda w: w.p.madvise(-4096, 0, MADV_DONTNEED),
    lambda w: w.p.mprotect(-4096, 0, PROT_READ),
], ids=["mlock len=-1", "mlock a+1 len=-4096", "munlock len=-1", "msync len=-1",
        "madvise len=0", "mprotect len=0"])
def test_14_2_lengths_that_wrap_to_zero_succeed_as_no_ops(
        w: World, call: Callable[[World], object]) -> None:
    before = w.state()
    call(w)
    assert w.state() == before


@pytest.mark.parametrize("addr", [-4096, -1, 1 << 47, (1 << 64) - 1])
def test_14_2_brk_out_of_range_keeps_the_old_break(w: World, addr: int) -> None:
    before = w.state()
    assert w.p.brk(addr) == w.p.mm.brk
    assert w.state() == before


@pytest.mark.parametrize(("call", "name"), [
    (lambda p: p.mmap(0, 1 << 64, RW, ANON), "length"),
    (lambda p: p.munmap(-(1 << 63) - 1, P), "addr"),
    (lambda p: p.mmap(0, P, 1 << 31, ANON), "prot"),
    (lambda p: p.pread(3, 1, 1 << 64), "offset"),
    (lambda p: p.exit(1 << 40), "status"),
])
def test_14_2_values_too_wide_for_the_c_type_overflowerror(
        call: Callable[[Process], object], name: str) -> None:
    m = Machine()
    p = m.spawn()
    with pytest.raises(OverflowError, match=f": {name} does not fit in a C"):
        call(p)
    assert p.alive and m.broken is None and not p.vmas()


def test_14_3_exit_with_none_is_typeerror_and_the_process_lives(w: World) -> None:
    before = w.state()
    with pytest.raises(TypeError, match="exit: status must be an int, not NoneType"):
        w.p.exit(None)  # type: ignore[arg-type]
    assert w.p.alive and w.state() == before


def test_14_3_exit_status_keeps_the_low_8_bits() -> None:
    # exit_group(): (error_code & 0xff) << 8; WEXITSTATUS() then gives the low byte.
    m = Machine()
    parent = m.spawn()
    child = parent.fork()
    child.exit(256 + 7)
    assert parent.waitpid(child.pid) == (child.pid, 7)


def test_14_3_execve_with_a_str_is_typeerror_and_brk_works_after(w: World) -> None:
    before = w.state()
    with pytest.raises(TypeError, match="execve: brk_start must be an int, not str"):
        w.p.execve("x")  # type: ignore[arg-type]
    assert w.state() == before
    assert w.p.brk(w.p.mm.brk + P) == w.p.mm.brk  # the next brk no longer poisons


@pytest.mark.parametrize("bad", [1, P + 1, 0, -P, TASK_SIZE, 1 << 64])
def test_14_3_execve_and_spawn_refuse_a_bad_brk_start(w: World, bad: int) -> None:
    before = w.state()
    with pytest.raises(ValueError, match="execve: brk_start must be a page-aligned"):
        w.p.execve(bad)
    assert w.state() == before
    with pytest.raises(ValueError, match="spawn: brk_start must be a page-aligned"):
        w.m.spawn(bad)
    assert len(w.m.processes) == 1


# (call on a World, the argument named in the TypeError)
WRONG_TYPES: list[tuple[Callable[[World], object], str]] = [
    (lambda w: w.p.mmap(0, 4096.0, RW, ANON), "length"),
    (lambda w: w.p.mmap("0", P, RW, ANON), "addr"),
    (lambda w: w.p.mmap(0, P, None, ANON), "prot"),
    (lambda w: w.p.mmap(0, P, RW, 2.0), "flags"),
    (lambda w: w.p.mmap(0, P, PROT_READ, MAP_SHARED, "3"), "fd"),
    (lambda w: w.p.mmap(0, P, PROT_READ, MAP_SHARED, w.fd, 0.0), "offset"),
    (lambda w: w.p.mmap(0, True, RW, ANON), "length"),  # bool is not an int here
    (lambda w: w.p.munmap(w.a, None), "length"),
    (lambda w: w.p.mprotect(w.a, P, "r"), "prot"),
    (lambda w: w.p.mremap(w.a, P, 2 * P, MREMAP_MAYMOVE, 1.5), "new_addr"),
    (lambda w: w.p.mremap(w.a, b"", P), "old_len"),
    (lambda w: w.p.madvise(w.a, P, None), "advice"),
    (lambda w: w.p.mlock(w.a, [P]), "length"),
    (lambda w: w.p.munlock(float(w.a), P), "addr"),
    (lambda w: w.p.mseal(w.a, P, None), "flags"),
    (lambda w: w.p.msync(w.a, P, "sync"), "flags"),
    (lambda w: w.p.brk(None), "addr"),
    (lambda w: w.p.brk(1e6), "addr"),
    (lambda w: w.p.write(w.a, "x"), "data"),
    (lambda w: w.p.write(w.a, 7), "data"),
    (lambda w: w.p.write(None, b"x"), "addr"),
    (lambda w: w.p.read(w.a, 4.0), "n"),
    (lambda w: w.p.read(w.a, False), "n"),
    (lambda w: w.p.touch("a"), "addr"),
    (lambda w: w.p.open(b"/f"), "path"),
    (lambda w: w.p.open(None), "path"),
    (lambda w: w.p.open("/f", "r"), "flags"),
    (lambda w: w.p.close("3"), "fd"),
    (lambda w: w.p.dup(3.0), "fd"),
    (lambda w: w.p.pread(w.fd, "1", 0), "n"),
    (lambda w: w.p.pwrite(w.fd, "text", 0), "data"),
    (lambda w: w.p.pwrite(w.fd, b"x", None), "offset"),
    (lambda w: w.p.ftruncate(w.fd, 1.0), "length"),
    (lambda w: w.p.fsync(None), "fd"),
    (lambda w: w.p.mlockall(None), "flags"),
    (lambda w: w.p.getrlimit("memlock"), "resource"),
    (lambda w: w.p.setrlimit(8, 1.5, 2), "soft"),
    (lambda w: w.p.waitpid("2"), "pid"),
    (lambda w: w.p.pagemap(None), "addr"),
    (lambda w: w.p.exit(1.0), "status"),
    (lambda w: w.p.execve(None), "brk_start"),
    (lambda w: w.m.spawn(brk_start="0x1000"), "brk_start"),
]


@pytest.mark.parametrize(("call", "name"), WRONG_TYPES)
def test_14_4_wrong_type_is_typeerror_naming_the_argument(
        w: World, call: Callable[[World], object], name: str) -> None:
    before = w.state()
    with pytest.raises(TypeError, match=f": {name} must be "):
        call(w)
    assert w.m.broken is None and w.state() == before


def test_14_4_buffers_and_int_subclasses_are_accepted(w: World) -> None:
    w.p.write(w.a, bytearray(b"ab"))
    w.p.write(w.a + 2, memoryview(b"cd"))
    assert w.p.read(w.a, 4) == b"abcd"
    assert w.p.pwrite(w.fd, bytearray(b"FI"), 0) == 2
    w.p.mprotect(w.a, P, PROT_READ | PROT_WRITE)  # IntFlag-like constants are ints


class TypeErrorInWalk(AnonVmaChainScheme):
    """A scheme whose walk raises TypeError: a real plugin fault."""

    info: ClassVar[PluginInfo] = PluginInfo(
        name="type_error_in_walk", kind="rmap", summary="walk raises TypeError",
        structs=AnonVmaChainScheme.info.structs)

    @hookimpl
    def rmap_walk(self, page: Page, cost: WalkCost) -> Iterator[tuple[Vma, int]]:
        raise TypeError("unsupported operand type(s) for &: 'float' and 'int'")


def test_14_4_a_type_error_inside_a_plugin_still_marks_the_machine_broken() -> None:
    m = Machine(rmap=TypeErrorInWalk)
    p = m.spawn()
    a = p.mmap(0, P, RW, ANON)
    p.write(a, b"x")
    with pytest.raises(MachineBroken, match="TypeError"):
        m.try_to_unmap(p.pagemap(a).pfn)
    assert m.broken is not None


def test_14_2_the_three_negative_values_from_a_trace_change_nothing() -> None:
    """Issue 14.2's three calls, reached through a trace file: each fails with Linux's
    errno, counted in the replay report, and the mappings stay as they were."""
    from mmcore.experiments.ops import Op
    from mmcore.experiments.replay import replay
    from mmcore.experiments.trace import dumps_trace, new_header, parse_trace

    m = Machine()
    ops = [Op("spawn", pid=1),
           Op("mmap", pid=1, length=4 * P, prot=RW, flags=ANON),
           Op("mmap", pid=1, length=16 * P, prot=RW, flags=ANON),  # merges below it
           Op("mmap", pid=1, length=-4096, prot=RW, flags=ANON),
           Op("write", pid=1, addr=0x7FFFF7FEB000),
           Op("mremap", pid=1, addr=0x7FFFF7FEB000, length=4 * P, new_len=-4096),
           Op("mremap", pid=1, addr=0x7FFFF7FEB000, length=16 * P, new_len=16 * P,
              flags=MREMAP_MAYMOVE | MREMAP_FIXED, new_addr=-65536)]
    _, parsed = parse_trace(dumps_trace(new_header("test"), ops).splitlines())
    report = replay(parsed, machine=m)
    assert report.broken is None
    assert report.errors == {"mmap:ENOMEM": 1, "mremap:EINVAL": 2}
    (p,) = m.live_processes()
    assert [(v.start, v.end) for v in p.vmas()] == [(0x7FFFF7FEB000, 0x7FFFF7FFF000)]
    assert p.read(0x7FFFF7FEB000, 1) == b"\x01" and find_violations(m) == []
