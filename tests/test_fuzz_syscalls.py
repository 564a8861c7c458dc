"""Issue 14.10: a stateful syscall fuzzer over the whole Process API.

Hypothesis drives sequences of mmap, munmap, mprotect, mremap, madvise, mlock, munlock,
mseal, msync, brk, write, read, pread, pwrite, ftruncate, open, close, fork, exit,
execve, waitpid and try_to_unmap on a small machine (so reclaim, swap and the OOM
killer take part). Each argument is usually valid (an address the process mapped, a
page count, a known flag) and sometimes hostile: a value of
:data:`mmcore.testing.hostile.BAD_VALUES` for its C type, or one of the wrong type.
Every call must end as :func:`mmcore.testing.hostile.judge` allows (a value, an errno,
a signal, an argument error that changed nothing, an OOM kill), and after every step the
invariants hold (vma bounds, mapcount = ptes, rss = mapped pages, no freed page mapped,
swap counts, file sizes: :func:`mmcore.testing.find_violations`).

The CI run is bounded (``max_examples`` sequences of ``STEPS`` steps, well under 20 s);
``pytest -m slow`` runs a longer one (1000 sequences, in ten chunks). Both print the
number of sequences run and of distinct calls tried.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from hypothesis.strategies import DataObject

from mmcore import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_POPULATE,
    MAP_PRIVATE,
    MAP_SHARED,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
    Machine,
    Process,
)
from mmcore import constants as C
from mmcore.constants import PAGE_SIZE as P
from mmcore.testing import find_violations
from mmcore.testing.hostile import BAD_VALUES, WRONG_TYPES, arg_kind, judge

STEPS = 25
MAX_LIVE = 4
ADVICE = [getattr(C, n) for n in dir(C) if n.startswith("MADV_")]
MMAP_FLAGS = [MAP_PRIVATE | MAP_ANONYMOUS, MAP_SHARED | MAP_ANONYMOUS, MAP_PRIVATE,
              MAP_SHARED, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
              MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE]
PROTS = [0, PROT_READ, PROT_READ | PROT_WRITE, PROT_READ | PROT_EXEC]

#: Sequences run and distinct calls tried by the fuzzer in this session.
STATS: dict[str, Any] = {"sequences": 0, "steps": 0, "calls": set()}


class SyscallFuzzer(RuleBasedStateMachine):
    """Valid and hostile Process API calls mixed; invariants after every step."""

    def __init__(self) -> None:
        super().__init__()
        self.m = Machine(ram_pages=64, swap_pages=128)
        self.m.create_file("/f", b"file" * (2 * P // 4))
        self.procs: list[Process] = [self.m.spawn()]
        self.addrs: list[int] = []
        STATS["sequences"] += 1

    # --- drawing arguments ----------------------------------------------------------

    def live(self) -> list[Process]:
        return [p for p in self.procs if p.alive]

    def proc(self, data: DataObject) -> Process:
        return data.draw(st.sampled_from(self.live()), label="proc")

    def arg(self, data: DataObject, name: str, valid: st.SearchStrategy[Any]) -> Any:
        """Usually a valid value; one time in five a hostile one of the argument's type."""
        kind = arg_kind(name)
        assert kind is not None
        if data.draw(st.integers(0, 4), label=f"{name} hostile?"):
            return data.draw(valid, label=name)
        return data.draw(st.sampled_from(BAD_VALUES[kind] + WRONG_TYPES), label=name)

    def addr(self, data: DataObject, name: str = "addr") -> Any:
        known = st.sampled_from(self.addrs or [0])
        pages = st.integers(0, 16).map(lambda n: n * P)
        return self.arg(data, name, st.builds(lambda a, d: a + d, known, pages))

    def length(self, data: DataObject, name: str = "length") -> Any:
        return self.arg(data, name, st.one_of(st.integers(1, 16).map(lambda n: n * P),
                                              st.integers(0, 3 * P)))

    def fd(self, data: DataObject, p: Process) -> Any:
        return self.arg(data, "fd", st.sampled_from(sorted(p.files.fds) or [-1]))

    # --- running one call -----------------------------------------------------------

    def call(self, p: Process, name: str, *args: Any) -> Any:
        """Run ``p.<name>(*args)``; fail on anything :func:`judge` calls a finding."""
        STATS["steps"] += 1
        STATS["calls"].add(f"{name}{args!r}")
        out: list[Any] = []
        verdict = judge(self.m, lambda: out.append(getattr(p, name)(*args)), check=False)
        assert not verdict.finding, f"{name}{args!r}: {verdict.outcome}: {verdict.detail}"
        return out[0] if out else None

    def remember(self, addr: object) -> None:
        if isinstance(addr, int) and len(self.addrs) < 32:
            self.addrs.append(addr)

    # --- rules ----------------------------------------------------------------------

    @precondition(lambda self: self.live())
    @rule(data=st.data())
    def mmap(self, data: DataObject) -> None:
        p = self.proc(data)
        self.remember(self.call(
            p, "mmap", self.addr(data), self.length(data),
            self.arg(data, "prot", st.sampled_from(PROTS)),
            self.arg(data, "flags", st.sampled_from(MMAP_FLAGS)), self.fd(data, p),
            self.arg(data, "offset", st.sampled_from([0, P]))))

    @precondition(lambda self: self.live())
    @rule(data=st.data())
    def munmap(self, data: DataObject) -> None:
        self.call(self.proc(data), "munmap", self.addr(data), self.length(data))

    @precondition(lambda self: self.live())
    @rule(data=st.data())
    def mprotect(self, data: DataObject) -> None:
        self.call(self.proc(data), "mprotect", self.addr(data), self.length(data),
                  self.arg(data, "prot", st.sampled_from(PROTS)))

    @precondition(lambda self: self.live())
    @rule(data=st.data())
    def mremap(self, data: DataObject) -> None:
        flags = st.sampled_from([0, MREMAP_MAYMOVE, MREMAP_MAYMOVE | MREMAP_FIXED])
        self.remember(self.call(
            self.proc(data), "mremap", self.addr(data, "old_addr"),
            self.length(data, "old_len"), self.length(data, "new_len"),
            self.arg(data, "flags", flags), self.addr(data, "new_addr")))

    @precondition(lambda self: self.live())
    @rule(data=st.data())
    def madvise(self, data: DataObject) -> None:
        self.call(self.proc(data), "madvise", self.addr(data), self.length(data),
                  self.arg(data, "advice", st.sampled_from(ADVICE)))

    @precondition(lambda self: self.live())
    @rule(data=st.data(), lock=st.booleans())
    def mlock(self, data: DataObject, lock: bool) -> None:
        p = self.proc(data)
        if lock:
            self.call(p, "mlock", self.addr(data), self.length(data),
                      self.arg(data, "flags", st.sampled_from([0, 1])))
        else:
            self.call(p, "munlock", self.addr(data), self.length(data))

    @precondition(lambda self: self.live())
    @rule(data=st.data())
    def mseal(self, data: DataObject) -> None:
        self.call(self.proc(data), "mseal", self.addr(data), self.length(data),
                  self.arg(data, "flags", st.just(0)))

    @precondition(lambda self: self.live())
    @rule(data=st.data())
    def msync(self, data: DataObject) -> None:
        self.call(self.proc(data), "msync", self.addr(data), self.length(data),
                  self.arg(data, "flags", st.sampled_from([1, 2, 4, 6])))

    @precondition(lambda self: self.live())
    @rule(data=st.data())
    def brk(self, data: DataObject) -> None:
        p = self.proc(data)
        self.call(p, "brk", self.arg(data, "addr", st.integers(-4, 8).map(
            lambda n: p.mm.brk + n * P)))

    @precondition(lambda self: self.live())
    @rule(data=st.data())
    def write(self, data: DataObject) -> None:
        self.call(self.proc(data), "write", self.addr(data),
                  self.arg(data, "data", st.binary(min_size=1, max_size=2 * P)))

    @precondition(lambda self: self.live())
    @rule(data=st.data())
    def read(self, data: DataObject) -> None:
        self.call(self.proc(data), "read", self.addr(data),
                  self.arg(data, "n", st.integers(0, 2 * P)))

    @precondition(lambda self: self.live())
    @rule(data=st.data())
    def file_io(self, data: DataObject) -> None:
        p = self.proc(data)
        op = data.draw(st.sampled_from(["open", "close", "pread", "pwrite", "ftruncate"]))
        offset = self.arg(data, "offset", st.integers(0, 3 * P))
        if op == "open":
            self.call(p, "open", self.arg(data, "path", st.just("/f")),
                      self.arg(data, "flags", st.sampled_from([os.O_RDONLY, os.O_RDWR])))
        elif op == "close":
            self.call(p, "close", self.fd(data, p))
        elif op == "pread":
            self.call(p, "pread", self.fd(data, p),
                      self.arg(data, "n", st.integers(0, 2 * P)), offset)
        elif op == "pwrite":
            self.call(p, "pwrite", self.fd(data, p),
                      self.arg(data, "data", st.binary(max_size=P)), offset)
        else:
            self.call(p, "ftruncate", self.fd(data, p),
                      self.arg(data, "length", st.integers(0, 3 * P)))

    @precondition(lambda self: 0 < len(self.live()) < MAX_LIVE)
    @rule(data=st.data())
    def fork(self, data: DataObject) -> None:
        child = self.call(self.proc(data), "fork")
        if child is not None:
            self.procs.append(child)

    @precondition(lambda self: self.live())
    @rule(data=st.data())
    def exit(self, data: DataObject) -> None:
        self.call(self.proc(data), "exit", self.arg(data, "status", st.integers(0, 255)))

    @precondition(lambda self: self.live())
    @rule(data=st.data())
    def execve(self, data: DataObject) -> None:
        self.call(self.proc(data), "execve",
                  self.arg(data, "brk_start", st.just(C.DEFAULT_BRK_START)))

    @precondition(lambda self: self.live())
    @rule(data=st.data())
    def waitpid(self, data: DataObject) -> None:
        pids = st.sampled_from([p.pid for p in self.procs] + [-1, 0])
        self.call(self.proc(data), "waitpid", self.arg(data, "pid", pids))

    @precondition(lambda self: not self.live())
    @rule()
    def respawn(self) -> None:
        self.procs.append(self.m.spawn())

    @rule(data=st.data())
    def try_to_unmap(self, data: DataObject) -> None:
        pages = [pg.pfn for pg in self.m.pages_in_use() if pg.mapcount]
        if pages:
            pfn = data.draw(st.sampled_from(pages))
            verdict = judge(self.m, lambda: self.m.try_to_unmap(pfn), check=False)
            assert not verdict.finding, f"try_to_unmap({pfn}): {verdict.detail}"

    @invariant()
    def invariants_hold(self) -> None:
        problems = find_violations(self.m)
        assert not problems, "\n".join(problems)


def _run(max_examples: int, capsys: pytest.CaptureFixture[str]) -> None:
    STATS.update(sequences=0, steps=0, calls=set())
    start = time.perf_counter()
    test = SyscallFuzzer.TestCase
    test.settings = settings(max_examples=max_examples, stateful_step_count=STEPS,
                             deadline=None, database=None,
                             suppress_health_check=[HealthCheck.too_slow,
                                                    HealthCheck.filter_too_much])
    test().runTest()
    with capsys.disabled():
        print(f"\nsyscall fuzzer: {STATS['sequences']} sequences, {STATS['steps']} calls, "
              f"{len(STATS['calls'])} distinct, {time.perf_counter() - start:.1f} s")


def test_14_10_fuzz_syscalls_ci(capsys: pytest.CaptureFixture[str]) -> None:
    _run(60, capsys)


#: The long run's 1000 sequences, in chunks xdist can spread over the workers. Each
#: chunk draws from its own random seed (the fuzzer is not derandomized), so the chunks
#: are different sequences, not ten copies of one hundred.
LONG_CHUNKS = 10


@pytest.mark.slow
@pytest.mark.parametrize("chunk", range(LONG_CHUNKS))
def test_14_10_fuzz_syscalls_long(chunk: int, capsys: pytest.CaptureFixture[str]) -> None:
    _run(1000 // LONG_CHUNKS, capsys)
