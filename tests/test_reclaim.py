"""Reclaim under memory pressure: every scheme, both reclaim policies, all page kinds."""

from __future__ import annotations

import os
from typing import Any, ClassVar

import pytest

from mmcore import (
    MAP_ANONYMOUS,
    MAP_NORESERVE,
    MAP_PRIVATE,
    MAP_SHARED,
    PROT_READ,
    PROT_WRITE,
    Event,
    Machine,
    PluginInfo,
    hookimpl,
)
from mmcore.errors import ProcessKilled

RW = PROT_READ | PROT_WRITE
PAGE = 4096
POLICIES = ["lru2", "clock"]


class UnmapAudit:
    """An observer that checks, at the moment reclaim unmaps a page, that the page is no
    longer mapped by any process (the rmap walk found every pte)."""

    info: ClassVar[PluginInfo] = PluginInfo(name="unmap_audit", kind="observer",
                                            summary="checks reclaim unmaps everywhere")

    def __init__(self, machine: Machine) -> None:
        self.machine = machine
        self.unmaps = 0
        self.reclaim_events = 0

    @hookimpl
    def mmcore_event(self, event: Event) -> None:
        """Check every unmap against the brute-force truth."""
        if event.kind == "unmap" and event.data["ptes"]:
            self.unmaps += 1
            pfn = event.data["pfn"]
            page = self.machine.physmem.page(pfn)
            if page is not None and page.mapcount == 0:
                assert self.machine.rmap_truth(pfn) == [], f"pfn {pfn} still mapped"
        elif event.kind == "reclaim":
            self.reclaim_events += 1


def pressure_run(rmap: str, policy: str | None, reclaim: str) -> tuple[Machine, Any, Any]:
    """A working set four times RAM: anonymous memory shared by fork and COWed, a private
    and a shared file mapping and shared anonymous memory, all written and read back."""
    m = Machine(rmap=rmap, mremap_policy=policy, reclaim=reclaim, ram_pages=48,
                swap_pages=1024, observers=[UnmapAudit])
    m.create_file("/big", bytes(range(256)) * 16 * 40)  # 40 pages
    p = m.spawn()
    fd = p.open("/big", os.O_RDWR)
    anon = p.mmap(0, 96 * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    shanon = p.mmap(0, 16 * PAGE, RW, MAP_SHARED | MAP_ANONYMOUS)
    fshared = p.mmap(0, 40 * PAGE, RW, MAP_SHARED, fd, 0)
    fpriv = p.mmap(0, 40 * PAGE, RW, MAP_PRIVATE, fd, 0)
    expect: dict[tuple[int, int], bytes] = {}

    def put(proc: Any, addr: int, data: bytes) -> None:
        proc.write(addr, data)
        expect[(proc.pid, addr)] = data

    for i in range(96):
        put(p, anon + i * PAGE, b"anon%d" % i)
    for i in range(16):
        put(p, shanon + i * PAGE, b"shm%d" % i)
    for i in range(0, 40, 2):
        put(p, fshared + i * PAGE, b"fs%d" % i)
        put(p, fpriv + i * PAGE + 100, b"fp%d" % i)
    c = p.fork()
    for i in range(0, 96, 3):
        put(c, anon + i * PAGE, b"child%d" % i)
    for (pid, addr), data in list(expect.items()):
        if pid == p.pid:  # the child sees all the parent wrote, unless it wrote itself
            expect.setdefault((c.pid, addr), data)
    procs = {p.pid: p, c.pid: c}
    for (pid, addr), data in sorted(expect.items()):
        assert procs[pid].read(addr, len(data)) == data, (pid, hex(addr))
    # Untouched file bytes are still the file's.
    assert p.read(fpriv + PAGE, 4) == bytes(range(4))
    return m, p, c


@pytest.mark.parametrize("reclaim", POLICIES)
def test_working_set_four_times_ram_keeps_every_byte(config: tuple[str, str | None],
                                                     reclaim: str) -> None:
    """Under pressure every process reads back what it last wrote (anonymous, private
    file, shared file, shmem), reclaim swapped and wrote back, every unmap removed all
    ptes of the page, and after exit nothing but clean page cache is left."""
    rmap, policy = config
    m, p, c = pressure_run(rmap, policy, reclaim)
    costs = m.costs()
    assert costs.counters.pswpout > 0 and costs.counters.fault_swapin_major > 0
    assert costs.reclaim_walk.walks > 0 and costs.reclaim_walk.hits > 0
    assert costs.reclaim_decisions
    audit = m.pm.get_plugin("unmap_audit")
    assert isinstance(audit, UnmapAudit)
    assert audit.unmaps > 0 and audit.reclaim_events > 0
    assert m.counters.oom_kills == 0
    c.exit(0)
    p.waitpid(c.pid)
    p.exit(0)
    m.drop_caches()
    assert m.physmem.nr_used == 0
    assert m.swap.nr_used == 0
    assert not any(m.meta.live.values())
    # Shared-file writes reached the file: written back by reclaim or by drop_caches.
    assert m.files["/big"].disk[0][:3] == b"fs0"


def test_reclaim_writes_back_dirty_file_pages_before_freeing() -> None:
    """shrink_folio_list(): a dirty page-cache page is written to the file, then freed."""
    m = Machine(rmap="anon_vma_chain", ram_pages=32, swap_pages=256)
    m.create_file("/f", b"\0" * 64 * PAGE)
    p = m.spawn()
    fd = p.open("/f", os.O_RDWR)
    s = p.mmap(0, 64 * PAGE, RW, MAP_SHARED, fd, 0)
    for i in range(64):
        p.write(s + i * PAGE, b"page%d" % i)
    assert m.counters.pages_written_back > 0
    inode = m.files["/f"]
    written = [i for i in range(64) if inode.disk.get(i, b"").startswith(b"page")]
    assert written and all(inode.disk[i].startswith(b"page%d" % i) for i in written)
    assert all(p.read(s + i * PAGE, 6).startswith(b"page") for i in range(64))


def test_mlocked_pages_are_not_reclaimed() -> None:
    """try_to_unmap_one() refuses pages mapped in a VM_LOCKED vma."""
    m = Machine(rmap="anon_vma_chain", ram_pages=40, swap_pages=256)
    p = m.spawn()
    locked = p.mmap(0, 8 * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    p.mlock(locked, 8 * PAGE)
    pfns = [p.pagemap(locked + i * PAGE).pfn for i in range(8)]
    other = p.mmap(0, 100 * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    for i in range(100):
        p.write(other + i * PAGE, b"x")
    assert m.counters.pswpout > 0
    assert [p.pagemap(locked + i * PAGE).pfn for i in range(8)] == pfns


def test_oom_killer_ends_the_largest_process_with_an_event() -> None:
    """out_of_memory(): with RAM and swap full, the process with the most resident and
    swapped pages is killed; its own faulting access raises ProcessKilled, the machine
    stays usable and the other processes are untouched."""
    seen: list[Event] = []

    class Watch:
        info: ClassVar[PluginInfo] = PluginInfo(name="watch", kind="observer", summary="x")

        def __init__(self, machine: Machine) -> None:
            pass

        @hookimpl
        def mmcore_event(self, event: Event) -> None:
            """Keep OOM events."""
            if event.kind == "oom_kill":
                seen.append(event)

    m = Machine(rmap="pte_chains", ram_pages=32, swap_pages=16, observers=[Watch])
    small = m.spawn()
    s = small.mmap(0, 4 * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    small.write(s, b"survivor")
    hog = m.spawn()
    # MAP_NORESERVE: more than RAM + swap, which overcommit mode 0 would refuse up front.
    h = hog.mmap(0, 200 * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE)
    with pytest.raises(ProcessKilled):
        for i in range(200):
            hog.write(h + i * PAGE, b"hog")
    assert hog.killed and not hog.alive
    assert [e.pid for e in seen] == [hog.pid]
    assert m.broken is None
    assert small.read(s, 8) == b"survivor"
