"""Replaying traces: every example on every valid configuration, the kernel's addresses
honoured, stand-in files for file mappings, format-2 file ops, skip reasons, errors by
errno, and the rmap walk checked against the page tables."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mmcore import Machine
from mmcore.cli import main
from mmcore.constants import (
    MAP_ANONYMOUS,
    MAP_DENYWRITE,
    MAP_FIXED,
    MAP_PRIVATE,
    MAP_SHARED,
    MREMAP_MAYMOVE,
    PROT_READ,
    PROT_WRITE,
    VM_SHARED,
    VM_WRITE,
)
from mmcore.errors import ConfigError
from mmcore.experiments.ops import Op
from mmcore.experiments.replay import StandInFile, replay, replay_trace, stand_in_data
from mmcore.experiments.trace import dumps_trace, new_header, parse_trace, read_trace

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
    # Every file the trace mapped became a stand-in file, mapped for real.
    assert report.stand_in_files and report.file_ops_synthesised >= len(
        report.stand_in_files)
    assert report.sigbus == 0
    if header.source == "perf":  # ld.so and libc fault in file pages
        counters = report.costs.counters
        assert counters.fault_file_major + counters.fault_file_minor > 0


def test_example_stand_ins_are_file_vmas_with_the_kernels_offsets() -> None:
    path = next(p for p in EXAMPLES if "mmtoy" in p.name)
    _, ops = read_trace(path)
    ops = [o for o in ops if o.op != "exit"]  # keep the processes to look at them
    m = Machine("anon_vma_chain")
    report = replay(ops, machine=m)
    assert report.errors == {} and report.file_mappings == "file"
    libc = next(f for f in report.stand_in_files if f.path.endswith("/libc.so.6"))
    inode = m.files[libc.path]
    assert inode.size == libc.size and libc.mode == "r"
    # The text segment: mapped from the file at the kernel's address and offset.
    text = next(o for o in ops if o.op == "mmap" and o.extra.get("file") == libc.path
                and o.prot == PROT_READ | 4)
    proc = m.live_processes()[0]
    vma = proc.mm.vmas.lookup(text.ret or 0)
    assert vma is not None and vma.file is not None and vma.file.inode is inode
    assert vma.pgoff == text.extra["offset"] // PAGE
    # Its pages hold the stand-in pattern: the path, at the start of every page.
    assert proc.read(text.ret or 0, len(libc.path)) == libc.path.encode()


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


LIB = {"file": "/lib/x.so", "stand_in": True, "offset": 0x2000, "fd": 3,
       "file_flags": MAP_PRIVATE | MAP_FIXED | MAP_DENYWRITE}


def lib_ops() -> list[Op]:
    """A library mapped twice through fd 3 (the kernel's flags in extra), then written."""
    return [Op("spawn", pid=1),
            Op("mmap", pid=1, addr=A, length=3 * PAGE, prot=RW,
               flags=MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS, ret=A, extra=LIB),
            Op("mmap", pid=1, length=PAGE, prot=PROT_READ, flags=ANON, ret=B,
               extra={**LIB, "offset": 0, "file_flags": MAP_PRIVATE}),
            Op("write", pid=1, addr=A + PAGE, data="mine")]


def test_stand_in_is_a_file_mapping_at_the_kernels_address_and_listed() -> None:
    m = Machine("anon_vma_chain")
    report = replay(lib_ops(), machine=m)
    assert report.errors == {} and report.sigbus == 0
    assert report.stand_in_mappings == 2
    assert report.stand_in_files == [StandInFile("/lib/x.so", size=0x2000 + 3 * PAGE,
                                                 mappings=2, mode="r")]
    # One create, one open: both mappings go through the same descriptor.
    assert report.file_ops_synthesised == 2
    assert report.ops_applied == report.ops_total == 4
    (proc,) = m.live_processes()
    a, b = proc.mm.vmas.lookup(A), proc.mm.vmas.lookup(B)
    assert a is not None and b is not None and a.file is b.file is not None
    assert a.pgoff == 2 and b.pgoff == 0 and a.flags & VM_WRITE
    assert a.file.inode.size == 0x2000 + 3 * PAGE
    # An untouched page reads the stand-in pattern from the page cache...
    assert proc.read(A, 9) == b"/lib/x.so" and proc.pagemap(A).file_or_shared
    # ...and the write copied its page-cache page into a private anonymous page.
    assert proc.read(A + PAGE, 4) == b"mine" and not proc.pagemap(A + PAGE).file_or_shared
    assert m.counters.fault_cow_copy == 1
    assert m.files["/lib/x.so"].pages[3].read(0, 9) == b"/lib/x.so"  # file unchanged


def test_stand_ins_can_still_be_replayed_as_anonymous_memory() -> None:
    m = Machine("anon_vma_chain")
    report = replay(lib_ops(), machine=m, file_mappings="anonymous")
    assert report.file_ops_synthesised == 0 and not m.files
    (proc,) = m.live_processes()
    vma = proc.mm.vmas.lookup(A)
    assert vma is not None and vma.file is None
    assert proc.read(A, 1) == b"\0"
    with pytest.raises(ConfigError, match="choose one of: file, anonymous"):
        replay(lib_ops(), file_mappings="files")


def test_shared_writable_stand_in_is_opened_read_write_and_written_through() -> None:
    m = Machine("anon_vma_chain")
    db = {"file": "/db", "stand_in": True, "offset": 0, "fd": 5, "file_flags": MAP_SHARED}
    ops = [Op("spawn", pid=1),
           Op("mmap", pid=1, length=2 * PAGE, prot=RW, flags=MAP_SHARED | MAP_ANONYMOUS,
              ret=A, extra=db),
           Op("fork", pid=1, child=2),
           Op("write", pid=2, addr=A, data="shared!")]
    report = replay(ops, machine=m)
    assert report.errors == {}
    assert report.stand_in_files == [StandInFile("/db", size=2 * PAGE, mappings=1,
                                                 mode="rw")]
    parent = m.processes[1]
    vma = parent.mm.vmas.lookup(A)
    assert vma is not None and vma.file is not None and vma.flags & VM_SHARED
    assert vma.file.flags & os.O_ACCMODE == os.O_RDWR
    assert parent.read(A, 7) == b"shared!"  # the child wrote into the page cache
    assert m.files["/db"].pages[0].read(0, 7) == b"shared!"


def test_a_descriptor_reused_for_another_file_is_closed_and_reopened() -> None:
    m = Machine("anon_vma_chain")
    one = {"file": "/one", "stand_in": True, "offset": 0, "fd": 3, "file_flags": MAP_PRIVATE}
    ops = [Op("spawn", pid=1),
           Op("mmap", pid=1, length=PAGE, prot=PROT_READ, flags=ANON, ret=A, extra=one),
           Op("mmap", pid=1, length=PAGE, prot=PROT_READ, flags=ANON, ret=B,
              extra={**one, "file": "/two"}),
           Op("fork", pid=1, child=2),
           # The child inherited fd 3 (now /two): mapping /two again needs no open.
           Op("mmap", pid=2, length=PAGE, prot=PROT_READ, flags=ANON, ret=A + 8 * PAGE,
              extra={**one, "file": "/two"})]
    report = replay(ops, machine=m)
    assert report.errors == {}
    # create x2, open /one, close + open /two; nothing for the child.
    assert report.file_ops_synthesised == 5
    child = m.processes[2]
    assert [v.file.path if v.file else None for v in child.vmas()] == [
        "/one", "/two", "/two"]
    assert child.read(A + 8 * PAGE, 4) == b"/two"
    assert sorted(child.files.fds) == [0]


def test_dev_zero_stays_anonymous() -> None:
    m = Machine("anon_vma_chain")
    zero = {"file": "/dev/zero", "stand_in": True, "offset": 0, "fd": 4,
            "file_flags": MAP_PRIVATE}
    ops = [Op("spawn", pid=1),
           Op("mmap", pid=1, length=PAGE, prot=RW, flags=ANON, ret=A, extra=zero)]
    report = replay(ops, machine=m)
    assert report.stand_in_files == [StandInFile("/dev/zero", size=PAGE, mappings=1,
                                                 anonymous=True)]
    assert report.file_ops_synthesised == 0 and not m.files
    vma = m.processes[1].mm.vmas.lookup(A)
    assert vma is not None and vma.file is None


def test_stand_in_data_starts_every_page_with_the_path() -> None:
    data = stand_in_data("/lib/é.so")
    assert len(data.encode()) == PAGE and data.startswith("/lib/é.so\n")
    assert set(data[len("/lib/é.so\n"):]) == {"\0"}
    assert len(stand_in_data("/" + "x" * 5000).encode()) == PAGE


def test_format_2_trace_with_its_own_file_ops_replays_as_written() -> None:
    ops = [Op("create", path="/data", length=2 * PAGE, data="abc"),
           Op("spawn", pid=1),
           Op("open", pid=1, path="/data", flags=os.O_RDWR, fd=7),
           Op("mmap", pid=1, length=2 * PAGE, prot=RW, flags=MAP_SHARED, fd=7, ret=A),
           Op("write", pid=1, addr=A + PAGE, data="xyz"),
           Op("read", pid=1, addr=A, data="abca"),
           Op("close", pid=1, fd=7),
           Op("reclaim", path="/data")]
    text = dumps_trace(new_header("hand"), ops)
    header, back = parse_trace(text.splitlines())
    assert header.version == 2 and back == ops
    m = Machine("anon_vma_chain")
    report = replay(back, header, machine=m)
    assert report.errors == {} and report.skipped == {}
    assert report.stand_in_files == [] and report.file_ops_synthesised == 0
    assert report.ops_applied == len(ops)
    assert m.files["/data"].pages[1].read(0, 3) == b"xyz"
    assert m.processes[1].pagemap(A).present is False  # the reclaim unmapped the file


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
    assert report.walk_mismatches
    assert f"page tables say [pid 1 at {A:#x}" in report.walk_mismatches[0]  # hex addresses


def test_walk_checks_do_not_change_the_reported_walk_costs() -> None:
    path = next(p for p in EXAMPLES if "mmtoy" in p.name)
    plain = replay_trace(path, rmap="anon_vma_chain")
    checked = replay_trace(path, rmap="anon_vma_chain", check_walks=8)
    assert checked.walks_checked > 0
    assert plain.costs is not None and checked.costs is not None
    assert checked.costs.walk == plain.costs.walk


def test_cli_replay_prints_a_report(capsys: pytest.CaptureFixture[str]) -> None:
    path = next(p for p in EXAMPLES if "mmtoy" in p.name)
    assert main(["trace", "replay", str(path), "--rmap", "pte_chains",
                 "--check-walks", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["rmap"] == "pte_chains" and report["walk_mismatches"] == []


def test_cli_replay_of_an_unknown_scheme_is_a_usage_error_exit_2(
        capsys: pytest.CaptureFixture[str]) -> None:
    """A scheme name the command line got wrong is exit 2, as for mmsim run."""
    path = next(p for p in EXAMPLES if "mmtoy" in p.name)
    assert main(["trace", "replay", str(path), "--rmap", "no_such_scheme"]) == 2
    assert "unknown rmap plugin 'no_such_scheme'" in capsys.readouterr().err


def test_cli_replay_of_several_traces_and_configurations(
        capsys: pytest.CaptureFixture[str]) -> None:
    """Several traces times ``--rmap A,B``: a table of one row per replay, or JSON of
    every report; ``--rmap all`` with a policy is a usage error (all has every policy)."""
    paths = [str(p) for p in EXAMPLES if p.name in ("mmtoy.jsonl", "ls.jsonl")]
    assert main(["trace", "replay", *paths, "--rmap", "anon_vma,pte_chains", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [(r["trace"], r["rmap"]) for r in doc["replays"]] == [
        (Path(p).name, s) for p in paths for s in ("anon_vma", "pte_chains")]
    assert doc["failures"] == []
    assert main(["trace", "replay", *paths, "--rmap", "anon_vma,pte_chains"]) == 0
    rows = [ln.split()[:2] for ln in capsys.readouterr().out.splitlines()
            if ln.strip().endswith(".jsonl") or ".jsonl " in ln]
    assert rows == [[Path(p).name, s] for p in paths for s in ("anon_vma", "pte_chains")]
    assert main(["trace", "replay", paths[0], "--rmap", "all", "--mremap-policy",
                 "unshare"]) == 2
    assert "leave out --mremap-policy" in capsys.readouterr().err
