"""Replaying traces: every example on every valid configuration, the kernel's addresses
honoured, stand-ins, skip reasons, errors by errno, and the rmap walk checked against the
page tables."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from mmcore import Machine
from mmcore.constants import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    MREMAP_MAYMOVE,
    PROT_READ,
    PROT_WRITE,
    VM_WRITE,
)
from mmcore.experiments.ops import Op
from mmcore.experiments.replay import StandInFile, replay, replay_trace
from mmcore.experiments.trace import read_trace
from mmcore.experiments.trace_cli import add_trace_commands

EXAMPLES = sorted((Path(__file__).parent.parent / "examples" / "traces").glob("*.jsonl"))
RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS
A = 0x7F00_0000_0000
B = 0x7F10_0000_0000
PAGE = 4096

#: The reasons a replay may skip an op (see mmcore/experiments/replay.py).
KNOWN_REASONS = ("no mapping in trace", "pid not running", "failed in the real run",
                 "already running")


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_replays_on_every_configuration(path: Path,
                                                config: tuple[str, str | None]) -> None:
    rmap, policy = config
    header, ops = read_trace(path)
    report = replay_trace(path, rmap=rmap, mremap_policy=policy, check_walks=6)
    assert report.broken is None
    assert report.ops_total == len(ops)
    assert report.ops_applied + report.skipped_total == report.ops_total
    assert report.ops_applied > 0.9 * report.ops_total
    assert all(r.endswith(KNOWN_REASONS) for r in report.skipped), report.skipped
    # ld.so mprotects the binary's and its own RELRO pages, which the kernel mapped before
    # the trace began: the one thing these traces do outside their own mappings.
    programs = sum(1 for o in ops if o.op in ("spawn", "exec"))
    assert report.skipped == {"mprotect: no mapping in trace": 2 * programs}
    assert report.import_skipped == header.import_skipped
    assert report.errors == {} and report.segfaults == 0
    assert report.walk_mismatches == []
    if header.source == "perf":  # traces with faults have pages to check
        assert report.walks_checked > 0
        assert report.costs is not None and report.costs.counters.fault_anon > 0
    assert report.processes == sum(1 for o in ops if o.op in ("spawn", "fork"))
    assert report.stand_in_mappings == header.stats.get("stand_in_mappings", 0)


def test_mmap_and_moved_mremap_land_where_the_kernel_put_them() -> None:
    m = Machine("anon_vma_chain")
    ops = [Op("spawn", pid=1),
           Op("mmap", pid=1, length=4 * PAGE, prot=RW, flags=ANON, ret=A),
           Op("write", pid=1, addr=A),
           Op("mremap", pid=1, addr=A, length=4 * PAGE, new_len=8 * PAGE,
              flags=MREMAP_MAYMOVE, ret=B)]
    report = replay(ops, machine=m)
    assert report.ops_applied == 4 and report.errors == {}
    (proc,) = m.live_processes()
    assert [(v.start, v.end) for v in proc.vmas()] == [(B, B + 8 * PAGE)]
    assert proc.read(B, 1) == b"\x01"  # the written page moved with the mapping


def test_heap_starts_where_the_kernel_put_it_and_a_refused_brk_stays_refused() -> None:
    m = Machine("anon_vma_chain")
    heap = 0x5601_F53A_F000
    ops = [Op("spawn", pid=1, extra={"brk_start": heap}),
           Op("brk", pid=1, addr=0, ret=heap),
           Op("brk", pid=1, addr=heap + 2 * PAGE, ret=heap + 2 * PAGE),
           # The kernel refused this one (returned the old break): so must the replay.
           Op("brk", pid=1, addr=heap + 1000 * PAGE, ret=heap + 2 * PAGE),
           Op("write", pid=1, addr=heap + PAGE)]
    report = replay(ops, machine=m)
    assert report.skipped == {} and report.segfaults == 0
    (proc,) = m.live_processes()
    assert [(v.start, v.end) for v in proc.vmas()] == [(heap, heap + 2 * PAGE)]


def test_stand_in_is_anonymous_at_the_kernels_address_and_listed() -> None:
    m = Machine("anon_vma_chain")
    lib = {"file": "/lib/x.so", "stand_in": True, "offset": 0x2000, "fd": 3,
           "file_flags": MAP_PRIVATE | MAP_FIXED}
    ops = [Op("spawn", pid=1),
           Op("mmap", pid=1, addr=A, length=3 * PAGE, prot=RW,
              flags=MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS, ret=A, extra=lib),
           Op("mmap", pid=1, length=PAGE, prot=PROT_READ, flags=ANON, ret=B,
              extra={**lib, "offset": 0}),
           Op("write", pid=1, addr=A + PAGE)]
    report = replay(ops, machine=m)
    assert report.stand_in_mappings == 2
    assert report.stand_in_files == [StandInFile("/lib/x.so", size=0x2000 + 3 * PAGE,
                                                 mappings=2)]
    (proc,) = m.live_processes()
    vma = proc.mm.vmas.lookup(A)
    assert vma is not None and vma.file is None and vma.flags & VM_WRITE
    assert report.errors == {}


def test_skips_are_counted_by_reason() -> None:
    ops = [Op("spawn", pid=1),
           Op("write", pid=1, addr=A),  # nothing mapped there in the trace
           Op("mprotect", pid=1, addr=A, length=PAGE, prot=PROT_READ),
           Op("read", pid=2, addr=A),  # pid 2 never started
           Op("mmap", pid=1, length=PAGE, prot=RW, flags=ANON, extra={"errno": "ENOMEM"}),
           Op("spawn", pid=1),
           Op("exit", pid=1),
           Op("exit", pid=1)]
    report = replay(ops)
    assert report.skipped == {"write: no mapping in trace": 1,
                              "mprotect: no mapping in trace": 1,
                              "read: pid not running": 1,
                              "mmap: failed in the real run": 1,
                              "spawn: pid already running": 1,
                              "exit: pid not running": 1}
    assert report.ops_applied == 2 and report.ops_total == 8


def test_simulator_errors_are_counted_by_syscall_and_errno_name() -> None:
    ops = [Op("spawn", pid=1),
           Op("mmap", pid=1, length=2 * PAGE, prot=RW, flags=ANON, ret=A),
           Op("mprotect", pid=1, addr=A, length=4 * PAGE, prot=PROT_READ),  # a hole
           Op("mremap", pid=1, addr=A, length=PAGE, new_len=PAGE, flags=0xFF)]
    report = replay(ops)
    assert report.errors == {"mprotect:ENOMEM": 1, "mremap:EINVAL": 1}


def test_walk_check_reports_a_scheme_that_misses_a_mapping(
        monkeypatch: pytest.MonkeyPatch) -> None:
    m = Machine("anon_vma_chain")
    real = m.rmap_walk

    def forgetful(pfn: int):  # type: ignore[no-untyped-def]
        result = real(pfn)
        result.mappings = result.mappings[1:]
        return result

    monkeypatch.setattr(m, "rmap_walk", forgetful)
    ops = [Op("spawn", pid=1),
           Op("mmap", pid=1, length=PAGE, prot=RW, flags=ANON, ret=A),
           Op("write", pid=1, addr=A),
           Op("fork", pid=1, child=2),
           Op("exit", pid=2)]
    report = replay(ops, machine=m, check_walks=4)
    assert report.walks_checked >= 1
    assert report.walk_mismatches and "page tables say [(1, " in report.walk_mismatches[0]


def test_walk_checks_do_not_change_the_reported_walk_costs() -> None:
    path = next(p for p in EXAMPLES if "mmtoy" in p.name)
    plain = replay_trace(path, rmap="anon_vma_chain")
    checked = replay_trace(path, rmap="anon_vma_chain", check_walks=8)
    assert checked.walks_checked > 0
    assert plain.costs is not None and checked.costs is not None
    assert checked.costs.walk == plain.costs.walk


def test_cli_replay_prints_a_report(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="mmsim")
    add_trace_commands(parser.add_subparsers(dest="command", required=True))
    path = next(p for p in EXAMPLES if "mmtoy" in p.name)
    args = parser.parse_args(["trace", "replay", str(path), "--rmap", "pte_chains",
                              "--check-walks", "2", "--json"])
    assert args.func(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["rmap"] == "pte_chains" and report["walk_mismatches"] == []
    args = parser.parse_args(["trace", "replay", str(path), "--rmap", "no_such_scheme"])
    assert args.func(args) == 1
    assert "unknown rmap plugin 'no_such_scheme'" in capsys.readouterr().err
