"""Importing ``strace -f -y -e trace=memory,process`` output (real logs in tests/data,
captured on Linux 6.18 with strace 6.1; no strace needed to run these tests).

Each was made with ``strace -f -y -e trace=memory,process -o FILE -- COMMAND``, untrimmed:
strace_mmtoy.txt (``./mmtoy``, the C program in examples/traces/README.md),
strace_sh_pipe.txt (``sh -c 'ls / | wc -l'``), strace_python_thread_vfork.txt
(``/usr/bin/python3 th.py``: a threading.Thread that allocates 1 MiB, then
``subprocess.run(["/bin/true"])``, which vforks).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mmcore.constants import (
    MAP_ANONYMOUS,
    MAP_DENYWRITE,
    MAP_FIXED,
    MAP_PRIVATE,
    MAP_SHARED,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PROT_EXEC,
    PROT_READ,
)
from mmcore.experiments.ops import Op
from mmcore.experiments.strace_import import _split_args, _split_call, import_strace
from mmcore.experiments.trace import TraceError

DATA = Path(__file__).parent / "data"
LIBC = "/usr/lib/x86_64-linux-gnu/libc.so.6"


def kinds(ops: list[Op]) -> list[str]:
    return [o.op for o in ops]


def test_mmtoy_log_becomes_the_expected_ops() -> None:
    header, ops = import_strace(DATA / "strace_mmtoy.txt")
    assert header.source == "strace" and header.command == ["./mmtoy"]
    assert header.import_skipped == {"wait4: not in the op vocabulary": 1}
    assert header.stats["processes"] == 2 and header.stats["stand_in_mappings"] == 5
    # The first execve folds into the spawn; brk(NULL) gives the heap start.
    assert ops[0] == Op("spawn", pid=6697,
                        extra={"exec": "./mmtoy", "brk_start": 0x556BA365A000})
    assert ops[1] == Op("brk", pid=6697, addr=0, ret=0x556BA365A000)
    assert ops[2] == Op("mmap", pid=6697, addr=0, length=8192, prot=3,
                        flags=MAP_PRIVATE | MAP_ANONYMOUS, ret=0x7F727B1E2000)
    fork = ops.index(Op("fork", pid=6697, child=6698))
    assert ops[fork + 1] == Op("mremap", pid=6698, addr=0x7F727AFE4000, length=65536,
                               new_len=262144, flags=MREMAP_MAYMOVE, ret=0x7F727AFA4000)
    assert kinds(ops).count("exit") == 2 and ops[-1] == Op("exit", pid=6697)


def test_file_mapping_becomes_a_stand_in_at_the_kernels_address() -> None:
    """The trace keeps the anonymous stand-in of format 1 (an older replay maps that) and
    the kernel's flags, offset and descriptor in extra (the replay maps a stand-in file)."""
    _, ops = import_strace(DATA / "strace_mmtoy.txt")
    text = next(o for o in ops if o.op == "mmap" and o.prot == PROT_READ | PROT_EXEC)
    # mmap(0x7f727b01d000, 1400832, PROT_READ|PROT_EXEC,
    #      MAP_PRIVATE|MAP_FIXED|MAP_DENYWRITE, 3</usr/lib/.../libc.so.6>, 0x26000)
    assert text.addr == text.ret == 0x7F727B01D000 and text.length == 1400832
    assert text.flags == MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS
    assert text.extra == {"file": LIBC, "stand_in": True, "offset": 0x26000, "fd": 3,
                          "file_flags": MAP_PRIVATE | MAP_FIXED | MAP_DENYWRITE}


def test_imported_file_mappings_replay_as_mappings_of_stand_in_files() -> None:
    from mmcore import Machine
    from mmcore.experiments.replay import replay

    _, ops = import_strace(DATA / "strace_mmtoy.txt")
    m = Machine("anon_vma_chain")
    report = replay([o for o in ops if o.op != "exit"], machine=m)
    assert report.errors == {} and report.segfaults == report.sigbus == 0
    assert {f.path for f in report.stand_in_files} == {"/etc/ld.so.cache", LIBC}
    text = next(o for o in ops if o.op == "mmap" and o.prot == PROT_READ | PROT_EXEC)
    vma = m.processes[1].mm.vmas.lookup(0x7F727B01D000)
    assert vma is not None and vma.file is not None and vma.file.path == LIBC
    assert vma.pgoff == text.extra["offset"] >> 12
    assert m.files[LIBC].size >= text.extra["offset"] + text.length


def test_interleaved_unfinished_calls_are_placed_where_they_started() -> None:
    # sh -c 'ls / | wc -l': the second clone is <unfinished ...> while the first child
    # execs, and the children's lines come before the parent's "resumed" lines.
    header, ops = import_strace(DATA / "strace_sh_pipe.txt")
    assert header.command == ["sh", "-c", "ls / | wc -l"]
    life = [o for o in ops if o.op in ("spawn", "fork", "exec", "exit")]
    assert [(o.op, o.pid, o.child) for o in life] == [
        ("spawn", 13352, 0), ("fork", 13352, 13353), ("exec", 13353, 0),
        ("fork", 13352, 13354), ("exec", 13354, 0),
        ("exit", 13353, 0), ("exit", 13354, 0), ("exit", 13352, 0)]
    assert life[2].extra["exec"] == "/usr/bin/ls" and life[4].extra["exec"] == "/usr/bin/wc"
    # Every child op comes after its fork, and its heap start is recorded at its exec.
    assert life[2].extra["brk_start"] == 0x5559AA71D000
    # 13354's brk(NULL) is <unfinished ...> (line 26) and resumed 49 lines later.
    assert life[4].extra["brk_start"] == 0x565190184000
    first_child_op = min(i for i, o in enumerate(ops) if o.pid == 13354)
    assert first_child_op > ops.index(life[3])


def test_threads_share_the_mm_and_a_vfork_child_becomes_a_process_at_exec() -> None:
    header, ops = import_strace(DATA / "strace_python_thread_vfork.txt")
    assert header.stats["threads"] == 1 and header.stats["clone_vm_children"] == 1
    assert "fork" not in kinds(ops)  # neither the thread nor the vfork child is a fork
    # The thread (tid 7306) frees its stack with madvise: an op of process 7305.
    madv = next(o for o in ops if o.op == "madvise")
    assert madv.pid == 7305 and madv.addr == 0x7F5A04175000 and madv.advice == 4
    spawn = [o for o in ops if o.op == "spawn"]
    assert [s.pid for s in spawn] == [7305, 7307]
    assert spawn[1].extra["exec"] == "/bin/true" and spawn[1].extra["vfork_of"] == 7305
    assert {o.pid for o in ops} == {7305, 7307}


T = "100   12:00:00.0000"
SYNTHETIC = "".join(f"{T}{i:02d} {line}\n" for i, line in enumerate([
    'execve("/bin/prog", ["prog", "a b"], 0x7ffd /* 3 vars */) = 0',
    "brk(NULL) = 0x5000000",
    "mmap(NULL, 4096, PROT_READ, MAP_SHARED, 5</tmp/a,b (x).dat>, 0) = 0x7f0000000000",
    "mmap(NULL, 1099511627776, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)"
    " = -1 ENOMEM (Cannot allocate memory)",
    "mremap(0x7f0000000000, 4096, 8192, MREMAP_MAYMOVE|MREMAP_FIXED, 0x7f1000000000)"
    " = 0x7f1000000000 <0.000010>",
    "madvise(0x7f1000000000, 8192, MADV_HUGEPAGE|MADV_FUTURE_THING) = 0",
    "mincore(0x7f1000000000, 8192, [0, 0]) = 0",
    "mmap(NULL, 2097152, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS|MAP_HUGETLB|21<<MAP_HUGE_SHIFT,"
    " -1, 0) = 0x7f2000000000",
    "--- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_MAPERR, si_addr=NULL} ---",
    "+++ killed by SIGSEGV (core dumped) +++",
]))


def test_timestamps_errors_paths_unknown_flags_and_signals(tmp_path: Path) -> None:
    log = tmp_path / "s.txt"
    log.write_text(SYNTHETIC)
    header, ops = import_strace(log)
    assert header.command == ["prog", "a b"]
    assert kinds(ops) == ["spawn", "brk", "mmap", "mmap", "mremap", "madvise", "mmap",
                          "exit"]
    shared = ops[2]
    assert shared.flags == MAP_SHARED | MAP_ANONYMOUS
    assert shared.extra["file"] == "/tmp/a,b (x).dat" and shared.extra["fd"] == 5
    failed = ops[3]
    assert failed.ret is None and failed.extra == {"errno": "ENOMEM"}
    assert ops[4] == Op("mremap", pid=100, addr=0x7F0000000000, length=4096, new_len=8192,
                        flags=MREMAP_MAYMOVE | MREMAP_FIXED, new_addr=0x7F1000000000,
                        ret=0x7F1000000000)
    assert ops[5].advice == 14  # MADV_HUGEPAGE; the unknown name reads as 0
    assert ops[6].flags == MAP_PRIVATE | MAP_ANONYMOUS | 0x40000 | (21 << 26)
    assert header.import_skipped == {
        "mincore: not in the op vocabulary": 1,
        "unknown flag name MADV_FUTURE_THING (read as 0)": 1,
    }


def test_lines_without_pid_prefix_and_bracketed_pids(tmp_path: Path) -> None:
    log = tmp_path / "s.txt"
    log.write_text('execve("/bin/a", ["a"], 0x1 /* 1 var */) = 0\n'
                   "mmap(NULL, 8192, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x10000\n"
                   "[pid  7] munmap(0x10000, 4096) = 0\n")
    _, ops = import_strace(log)
    # No prefix (strace without -f) is task 0; "[pid N]" (strace -f to stderr) is task N.
    assert [(o.op, o.pid) for o in ops] == [("spawn", 0), ("mmap", 0), ("spawn", 7),
                                            ("munmap", 7)]


def test_not_strace_output_is_an_error_naming_the_line(tmp_path: Path) -> None:
    log = tmp_path / "s.txt"
    log.write_text('1 brk(NULL) = 0x1000\n1 this is not strace\n')
    with pytest.raises(TraceError, match=rf"^{log}:2: not strace output: 'this is not"):
        import_strace(log)
    log.write_text("1 mmap(NULL, 4096) = 0x1000\n")
    with pytest.raises(TraceError, match=rf"^{log}:1: mmap has 2 arguments, expected 6"):
        import_strace(log)


def test_call_splitting_skips_strings_paths_and_comments() -> None:
    assert _split_call('"a)b", 3</x)y>, {f=1} /* ) */) = 0') == \
        ('"a)b", 3</x)y>, {f=1} /* ) */', "= 0")
    assert _split_args('NULL, "a,b", [1, 2], 4</p,q>, x=1 /* c, d */') == \
        ["NULL", '"a,b"', "[1, 2]", "4</p,q>", "x=1"]


def test_a_child_that_runs_before_its_clone_returns_still_follows_the_fork(
        tmp_path: Path) -> None:
    # strace -f prints the child's first calls before the parent's "clone resumed" line
    # when the child is scheduled first: the fork must still come first.
    log = tmp_path / "s.txt"
    log.write_text(
        '1 execve("/bin/a", ["a"], 0x1 /* 1 var */) = 0\n'
        "1 clone(child_stack=NULL, flags=CLONE_CHILD_SETTID|SIGCHLD <unfinished ...>\n"
        "2 mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x10000\n"
        "1 <... clone resumed>, child_tidptr=0x7f00) = 2\n"
        "2 exit_group(0) = ?\n"
        "2 +++ exited with 0 +++\n")
    header, ops = import_strace(log)
    assert [(o.op, o.pid) for o in ops] == [("spawn", 1), ("fork", 1), ("mmap", 2),
                                            ("exit", 2)]
    assert ops[1].child == 2 and header.import_skipped == {}
