"""Seeded random sequences with mTHP on (16 kB, 64 kB and 128 kB folios), under every
configuration and under memory pressure: after every operation every mmcore invariant
holds (page.mapcount == the ptes mapping the page, refcounts, rmap walk == truth, the
folio and deferred-split state, the /proc recount) and each process reads what it last
wrote; after every process exits no frame, swap slot or rmap object is left."""

from __future__ import annotations

import random

import pytest

from mmcore import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, Machine
from mmcore.constants import (
    MADV_DONTNEED,
    MADV_FREE,
    MADV_PAGEOUT,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
)
from mmcore.errors import SegmentationFault
from mmcore.process import Process
from mmcore.testing import check_invariants, check_no_leaks
from mmcore.thp import ThpSettings

P = 4096
K64 = 16 * P
RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS


#: How often each operation is drawn.
_WEIGHTS = {"mmap": 2, "write": 12, "read": 3, "fork": 1, "exit": 1, "munmap": 2,
            "dontneed": 2, "free": 1, "pageout": 1, "mprotect": 1, "mremap": 1,
            "drop_caches": 1}


class Sequence:
    """One random run: live processes, their regions, and what each page must read."""

    def __init__(self, config: tuple[str, str | None], seed: int, ram_pages: int) -> None:
        rmap, policy = config
        thp = ThpSettings(per_order={2: "always", 4: "always", 5: "always"})
        self.m = Machine(rmap, mremap_policy=policy, thp=thp, ram_pages=ram_pages,
                         swap_pages=4096)
        self.rng = random.Random(seed)
        self.procs: list[Process] = [self.m.spawn()]
        self.regions: dict[int, list[tuple[int, int]]] = {self.procs[0].pid: []}
        #: (pid, page address) -> the byte at the page's start; None: unknown (MADV_FREE).
        self.expected: dict[tuple[int, int], bytes | None] = {}
        self.ops: list[str] = []

    def _pick(self) -> tuple[Process, int, int] | None:
        p = self.rng.choice(self.procs)
        if not self.regions[p.pid]:
            return None
        start, length = self.rng.choice(self.regions[p.pid])
        first = self.rng.randrange(length // P)
        n = self.rng.randint(1, min(20, length // P - first))
        return p, start + first * P, n

    def _forget(self, pid: int, addr: int, n: int, value: bytes | None = b"\0") -> None:
        for i in range(n):
            self.expected[(pid, addr + i * P)] = value

    def step(self) -> None:
        rng = self.rng
        op = rng.choices(list(_WEIGHTS), weights=list(_WEIGHTS.values()))[0]
        self.ops.append(op)
        if op == "mmap":
            p = rng.choice(self.procs)
            length = rng.choice([16, 24, 32, 48]) * P
            raw = p.mmap(0, length + K64, RW, ANON)
            start = -(-raw // K64) * K64 if rng.random() < 0.8 else raw + P
            if start > raw:
                p.munmap(raw, start - raw)
            p.munmap(start + length, raw + length + K64 - start - length)
            self.regions[p.pid].append((start, length))
            self._forget(p.pid, start, length // P)
            return
        if op == "fork" and len(self.procs) < 4:
            parent = rng.choice(self.procs)
            child = parent.fork()
            self.procs.append(child)
            self.regions[child.pid] = list(self.regions[parent.pid])
            for (pid, addr), value in list(self.expected.items()):
                if pid == parent.pid:
                    self.expected[(child.pid, addr)] = value
            return
        if op == "exit" and len(self.procs) > 1:
            p = self.procs.pop(rng.randrange(len(self.procs)))
            p.exit(0)
            del self.regions[p.pid]
            for key in [k for k in self.expected if k[0] == p.pid]:
                del self.expected[key]
            return
        if op == "drop_caches":
            self.m.drop_caches()
            return
        picked = self._pick()
        if picked is None:
            return
        p, addr, n = picked
        if op == "write":
            value = bytes([rng.randrange(1, 256)])
            try:
                p.write(addr, value)
                self.expected[(p.pid, addr)] = value
            except SegmentationFault:  # a read-only part (mprotect)
                pass
        elif op == "read":
            got = p.read(addr, 1)
            want = self.expected.get((p.pid, addr), b"\0")
            assert want is None or got == want, (self.ops, hex(addr))
        elif op == "munmap":
            p.munmap(addr, n * P)
            self._carve(p.pid, addr, n)
        elif op == "dontneed":
            p.madvise(addr, n * P, MADV_DONTNEED)
            self._forget(p.pid, addr, n)
        elif op == "free":
            p.madvise(addr, n * P, MADV_FREE)
            self._forget(p.pid, addr, n, None)
        elif op == "pageout":
            p.madvise(addr, n * P, MADV_PAGEOUT)
        elif op == "mprotect":
            p.mprotect(addr, n * P, rng.choice([PROT_READ, RW]))
        elif op == "mremap":
            dst = p.mmap(0, n * P, RW, ANON)
            p.mremap(addr, n * P, n * P, MREMAP_MAYMOVE | MREMAP_FIXED, dst)
            for i in range(n):
                value = self.expected.pop((p.pid, addr + i * P), b"\0")
                self.expected[(p.pid, dst + i * P)] = value
            self._carve(p.pid, addr, n, forget=False)
            self.regions[p.pid].append((dst, n * P))

    def _carve(self, pid: int, addr: int, n: int, forget: bool = True) -> None:
        """The region list after [addr, addr + n pages) went away."""
        end = addr + n * P
        left: list[tuple[int, int]] = []
        for start, length in self.regions[pid]:
            if start < addr < start + length:
                left.append((start, addr - start))
            if start < end < start + length:
                left.append((end, start + length - end))
            if not (start < end and addr < start + length):
                left.append((start, length))
        self.regions[pid] = left
        if forget:
            for i in range(n):
                self.expected.pop((pid, addr + i * P), None)

    def check(self) -> None:
        known = {k: v for k, v in self.expected.items() if v is not None}
        check_invariants(self.m, known)

    def finish(self) -> None:
        for p in self.procs:
            p.exit(0)
        check_no_leaks(self.m)


@pytest.mark.parametrize(("ram_pages", "steps"), [(4096, 300), (56, 300)],
                         ids=["roomy", "pressure"])
def test_random_mthp_sequence_keeps_every_invariant(config: tuple[str, str | None],
                                                    ram_pages: int, steps: int) -> None:
    seq = Sequence(config, seed=2026, ram_pages=ram_pages)
    for _ in range(steps):
        seq.step()
        seq.check()
    stats = seq.m.mthp_stats.stats
    assert sum(s["anon_fault_alloc"] for s in stats.values()) > 5
    assert sum(s["split"] for s in stats.values()) > 0
    if ram_pages < 1000:  # reclaim ran and met large folios
        assert seq.m.costs().counters.pswpout > 0
        assert sum(s["swpout"] + s["swpout_fallback"] for s in stats.values()) > 0
    seq.finish()
