"""Importing ``perf script`` output of page-fault, syscall and sched tracepoints (real
output in tests/data, captured on Linux 6.18 with perf 6.1; no perf needed to run these).

Captures (``perf record -d`` with mmcore.experiments.perf_import.PERF_EVENTS, then
``perf script --show-mmap-events -F comm,pid,tid,cpu,time,event,trace``):
perf_mmtoy.txt, whole; perf_mmtoy_default_fields.txt, the first 60 lines of another mmtoy
run printed without ``-F`` (tid only); perf_python_thread_vfork.txt, the python program of
tests/data/strace_python_thread_vfork.txt with all page faults dropped except the first 40
and the thread's first 30 (the other lines are whole).

tests/data/perf_mmtoy.txt is the C program in examples/traces/README.md: it maps 16 pages
and writes each, forks; the child writes 8 of them (COW), mremaps the area to 64 pages
(the kernel moves it) and writes every 4th new page; the parent later madvises 4 pages
away and writes page 0 again.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mmcore.constants import MAP_ANONYMOUS, MAP_PRIVATE, MREMAP_MAYMOVE
from mmcore.experiments.ops import Op
from mmcore.experiments.perf_import import import_perf, parse_perf_line
from mmcore.experiments.trace import TraceError

DATA = Path(__file__).parent / "data"
PAGE = 4096
AREA = 0x7FC03D400000  # the 16-page mmap's address, from sys_exit_mmap
MOVED = 0x7FC03D3C0000  # where the kernel moved it (sys_exit_mremap)


def test_mmtoy_faults_become_page_accesses_of_the_faulting_process() -> None:
    header, ops = import_perf(DATA / "perf_mmtoy.txt")
    assert header.source == "perf" and header.command == ["./mmtoy"]
    assert ops[0].op == "spawn" and ops[0].pid == 13333
    assert ops[0].extra == {"exec": "./mmtoy", "brk_start": 0x5601F53AF000}
    mmap = ops.index(Op("mmap", pid=13333, length=65536, prot=3,
                        flags=MAP_PRIVATE | MAP_ANONYMOUS, ret=AREA))
    # error_code 0x6 (write, user, not present) on each of the 16 pages, in order.
    assert ops[mmap + 1: mmap + 17] == [Op("write", pid=13333, addr=AREA + i * PAGE)
                                        for i in range(16)]
    fork = ops.index(Op("fork", pid=13333, child=13335))
    child = [o for o in ops[fork:] if o.pid == 13335]
    in_area = [o for o in child if o.op == "write" and AREA <= o.addr < AREA + 16 * PAGE]
    assert in_area == [Op("write", pid=13335, addr=AREA + i * PAGE) for i in range(8)]
    remap = next(o for o in child if o.op == "mremap")
    assert remap == Op("mremap", pid=13335, addr=AREA, length=16 * PAGE, new_len=64 * PAGE,
                       flags=MREMAP_MAYMOVE, ret=MOVED)
    moved = [o.addr for o in child if o.op == "write" and o.addr >= MOVED + 16 * PAGE
             and o.addr < MOVED + 64 * PAGE]
    assert moved == [MOVED + i * PAGE for i in range(16, 64, 4)]
    assert child[-1] == Op("exit", pid=13335) and ops[-1] == Op("exit", pid=13333)
    madv = ops.index(next(o for o in ops if o.op == "madvise"))
    assert Op("write", pid=13333, addr=AREA) in ops[madv:]


def test_faults_outside_traced_mappings_are_counted_not_kept() -> None:
    header, ops = import_perf(DATA / "perf_mmtoy.txt")
    faults = sum(1 for line in (DATA / "perf_mmtoy.txt").read_text().splitlines()
                 if "page_fault_user" in line)
    kept = sum(1 for o in ops if o.op in ("read", "write"))
    skipped = {k: v for k, v in header.import_skipped.items() if "fault" in k}
    assert set(skipped) == {"read fault: no mapping in trace",
                            "write fault: no mapping in trace"}
    assert kept + sum(skipped.values()) == faults
    assert header.stats["faults_kept"] == kept


def test_mmap2_records_name_the_file_behind_a_file_mapping() -> None:
    _, ops = import_perf(DATA / "perf_mmtoy.txt")
    stand_ins = [o for o in ops if o.extra.get("stand_in")]
    assert {o.extra["file"] for o in stand_ins} == {
        "/etc/ld.so.cache", "/usr/lib/x86_64-linux-gnu/libc.so.6"}
    text = next(o for o in stand_ins if o.prot == 5)
    assert text.ret == 0x7FC03D439000 and text.extra["offset"] == 0x26000
    assert text.flags & MAP_ANONYMOUS and text.extra["fd"] == 3


def test_perf_faults_on_file_mappings_replay_as_file_faults() -> None:
    from mmcore import Machine
    from mmcore.experiments.replay import replay

    _, ops = import_perf(DATA / "perf_mmtoy.txt")
    m = Machine("anon_vma_chain")
    report = replay(ops, machine=m, check_walks=8)
    assert report.errors == {} and report.segfaults == report.sigbus == 0
    assert report.walk_mismatches == [] and report.walks_checked > 0
    c = m.counters
    # ld.so's faults on libc are page-cache faults now, and its writes to libc's data
    # copy page-cache pages (do_cow_fault), as in Linux.
    assert c.fault_file_major + c.fault_file_minor > 0
    assert "/usr/lib/x86_64-linux-gnu/libc.so.6" in m.files


def test_default_perf_script_fields_tid_only_are_read() -> None:
    header, ops = import_perf(DATA / "perf_mmtoy_default_fields.txt")
    assert ops[0].op == "spawn" and ops[0].pid == 7120
    assert any(o.op == "write" for o in ops)
    assert any("without -F pid,tid" in n for n in header.notes)


def test_clone3_thread_shares_the_mm_and_vfork_child_execs_into_a_new_process() -> None:
    header, ops = import_perf(DATA / "perf_python_thread_vfork.txt")
    # 8090 was made by clone3 (flags invisible to perf) but its samples carry
    # pid/tid 8088/8090: a thread of 8088. 8091 was made by vfork and execs /bin/true.
    assert header.stats["threads"] == 1 and header.stats["clone_vm_children"] == 1
    assert "fork" not in [o.op for o in ops]
    assert {o.pid for o in ops} == {8088, 8091}
    thread_mmap = next(o for o in ops if o.op == "mmap" and o.length == 0x08000000)
    assert thread_mmap.pid == 8088 and thread_mmap.flags == 0x4022
    spawn = next(o for o in ops if o.op == "spawn" and o.pid == 8091)
    assert spawn.extra["exec"] == "/bin/true" and spawn.extra["vfork_of"] == 8088


def _line(tid: str, event: str, rest: str, t: str = "1.000001") -> str:
    return f"            prog {tid} [000] {t}: {event}: {rest}\n"


def test_errors_fd_sign_and_unfinished_calls(tmp_path: Path) -> None:
    raw = tmp_path / "p.txt"
    raw.write_text(
        "# a perf script comment\n"
        + _line("5/5", "sched:sched_process_exec", "filename=/bin/p q pid=5 old_pid=5")
        + _line("5/5", "syscalls:sys_enter_mmap", "addr: 0x00000000, len: 0x10000000000, "
                "prot: 0x00000001, flags: 0x00000022, fd: 0xffffffff, off: 0x00000000")
        + _line("5/5", "syscalls:sys_exit_mmap", "0xfffffffffffffff4")
        + _line("5/5", "syscalls:sys_enter_mmap", "addr: 0x00000000, len: 0x00001000, "
                "prot: 0x00000001, flags: 0x00000002, fd: 0x00000007, off: 0x00000000")
        + _line("5/5", "syscalls:sys_exit_mmap", "0x7f0000000000")
        + _line("5/5", "exceptions:page_fault_user",
                "address=0x7f0000000123 ip=0x401000 error_code=0x4")
        + _line("5/5", "exceptions:page_fault_user",
                "address=0x7f0000001000 ip=0x401000 error_code=0x6")
        + _line("5/5", "syscalls:sys_enter_munmap", "addr: 0x7f0000000000, len: 0x00001000")
    )
    header, ops = import_perf(raw)
    assert header.command == ["/bin/p q"]
    assert ops[0] == Op("spawn", pid=5, extra={"exec": "/bin/p q"})
    failed = ops[1]
    assert failed.ret is None and failed.extra == {"errno": "ENOMEM"}
    assert failed.flags == 0x22  # fd 0xffffffff is -1: anonymous, no stand-in
    stand_in = ops[2]
    assert stand_in.extra["fd"] == 7 and stand_in.extra["file"] == "fd:7"
    assert ops[3] == Op("read", pid=5, addr=0x7F0000000000)
    assert len(ops) == 4  # the write fault is one page past the mapping
    assert header.import_skipped == {
        "munmap: no return value (unfinished at the end of the log)": 1,
        "write fault: no mapping in trace": 1}


def test_not_perf_output_is_an_error_naming_the_line(tmp_path: Path) -> None:
    raw = tmp_path / "p.txt"
    raw.write_text(_line("5/5", "sched:sched_process_exec", "filename=/bin/p pid=5 old_pid=5")
                   + '5 mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, 3, 0) = 0x1000\n')
    with pytest.raises(TraceError, match=rf"^{raw}:2: not perf script output"):
        import_perf(raw)


def test_line_parser_handles_comm_with_spaces_and_both_pid_forms() -> None:
    a = parse_perf_line("  Web Content  42/43  [003]  12.5: exceptions:page_fault_user: x=1")
    assert a is not None and (a.comm, a.pid, a.tid, a.event) == (
        "Web Content", 42, 43, "exceptions:page_fault_user")
    b = parse_perf_line("ls 7 [000] 1.0: syscalls:sys_enter_vfork: ")
    assert b is not None and (b.pid, b.tid, b.rest) == (None, 7, "")
    assert parse_perf_line("# header") is None and parse_perf_line("\n") is None


def test_a_threads_events_after_exit_group_do_not_spawn_a_ghost(tmp_path: Path) -> None:
    # perf orders events by time across CPUs: thread 6's last fault can come after
    # thread 5's exit_group. It belongs to the dead process, not to a new one.
    raw = tmp_path / "p.txt"
    raw.write_text(
        _line("5/5", "sched:sched_process_exec", "filename=/bin/p pid=5 old_pid=5")
        + _line("5/5", "syscalls:sys_enter_clone", "clone_flags: 0x003d0f00, newsp: 0x1")
        + _line("5/5", "sched:sched_process_fork",
                "comm=p pid=5 child_comm=p child_pid=6")
        + _line("5/5", "syscalls:sys_exit_clone", "0x6")
        + _line("5/5", "syscalls:sys_enter_exit_group", "error_code: 0x00000000")
        + _line("5/6", "exceptions:page_fault_user",
                "address=0x7f0000000000 ip=0x1 error_code=0x6")
        + _line("5/6", "sched:sched_process_exit", "comm=p pid=6 prio=120 group_dead=false"))
    header, ops = import_perf(raw)
    assert [(o.op, o.pid) for o in ops] == [("spawn", 5), ("exit", 5)]
    assert header.import_skipped == {"write fault: after its process exited": 1}
    assert header.stats["threads"] == 1
