"""Issue 14 items 8 and 9: every malformed input or impossible output is one error line
(exit 1 for a failure, 2 for a bad command line, 130 for Ctrl-C), never a traceback, and
nothing mmsim writes is ever left half-written."""

from __future__ import annotations

import gzip
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from mmcore.cli import main
from mmcore.experiments import trace as trace_mod
from mmcore.experiments.trace import read_trace

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
TRACE = ROOT / "examples" / "traces" / "mmtoy.jsonl"
STRACE = DATA / "strace_mmtoy.txt"
SMALL = ["--param", "pages=8", "--param", "children=2"]


def one_error(capsys: pytest.CaptureFixture[str]) -> str:
    """The stderr of the last command, which must be exactly one ``mmsim: error:`` line."""
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mmsim: error: "), err
    assert "Traceback" not in err
    return err


def leftovers(directory: Path) -> list[str]:
    """Temporary files of an atomic write that were not cleaned up."""
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


# --- item 8: atomic writes ------------------------------------------------------------------

def test_a_failed_write_leaves_no_file_and_no_temporary(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """An import that fails part-way through writing leaves nothing behind (it used to
    leave a header-only trace)."""
    def failing(header: object, ops: object) -> object:
        yield '{"format":"mmcore-trace","version":1}\n'
        raise OSError(28, "No space left on device", str(out))

    out = tmp_path / "o.jsonl"
    monkeypatch.setattr(trace_mod, "iter_trace_lines", failing)
    assert main(["trace", "import", str(STRACE), "--from", "strace", "-o", str(out)]) == 1
    assert "No space left on device" in one_error(capsys)
    assert not out.exists() and leftovers(tmp_path) == []


def test_ctrl_c_while_writing_keeps_the_old_file_and_exits_130(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Ctrl-C is one line and status 130; the trace being replaced is untouched."""
    out = tmp_path / "o.jsonl"
    out.write_text("the good trace\n")

    def interrupted(header: object, ops: object) -> object:
        yield "{}\n"
        raise KeyboardInterrupt

    monkeypatch.setattr(trace_mod, "iter_trace_lines", interrupted)
    assert main(["trace", "import", str(STRACE), "--from", "strace", "-o", str(out)]) == 130
    assert capsys.readouterr().err == "mmsim: interrupted\n"
    assert out.read_text() == "the good trace\n" and leftovers(tmp_path) == []


def test_ulimit_f_cannot_truncate_an_existing_trace(tmp_path: Path) -> None:
    """With ``ulimit -f`` too small for the new trace, the write fails with one line
    and the old trace stays whole (it used to be truncated in place)."""
    out = tmp_path / "o.jsonl"
    assert main(["trace", "import", str(STRACE), "--from", "strace", "-o", str(out)]) == 0
    good = out.read_bytes()

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))

    proc = subprocess.run(  # preexec_fn only sets the limit, before exec
        [sys.executable, "-m", "mmcore.cli", "trace", "import", str(STRACE), "--from",
         "strace", "-o", str(out), "--note", "x" * 4096],
        capture_output=True, text=True, preexec_fn=small_files, check=False)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("\n") == 1 and "File too large" in proc.stderr
    assert out.read_bytes() == good and leftovers(tmp_path) == []


def test_an_atomic_write_keeps_the_permissions_of_the_file_it_replaces(
        tmp_path: Path) -> None:
    """Replacing a file keeps its mode; a new file gets the umask's mode, not 0600."""
    from mmcore.atomicfile import write_text

    old = tmp_path / "old.txt"
    old.write_text("x")
    old.chmod(0o640)
    write_text(old, "y")
    assert old.read_text() == "y" and (old.stat().st_mode & 0o777) == 0o640
    mask = os.umask(0o022)
    try:
        new = write_text(tmp_path / "new.txt", "z")
    finally:
        os.umask(mask)
    assert new.stat().st_mode & 0o777 == 0o644


# --- item 9: output paths -------------------------------------------------------------------

@pytest.mark.parametrize("where", ["/missing/x.jsonl", "/etc/passwd/x.jsonl",
                                   "/proc/x.jsonl"])
def test_an_output_that_cannot_be_created_is_one_line_and_exit_1(
        where: str, capsys: pytest.CaptureFixture[str]) -> None:
    """``-o`` into a missing directory, through a file, or into a directory nobody may
    create files in fails before the import with one line naming the path."""
    assert main(["trace", "import", str(STRACE), "--from", "strace", "-o", where]) == 1
    err = one_error(capsys)
    assert where.rsplit("/", 1)[0] in err


def test_plot_into_a_missing_directory_creates_it_as_the_help_says(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--plot new/dir/x.svg`` makes the directory (the --plot help says it does)."""
    plot = tmp_path / "new" / "dir" / "fs.svg"
    assert main(["compare", "forking-server", *SMALL, "--plot", str(plot), "--json"]) == 0
    assert plot.stat().st_size > 0 and leftovers(plot.parent) == []
    capsys.readouterr()
    main(["compare", "--help"])
    assert "created if missing" in " ".join(capsys.readouterr().out.split())


# --- item 9: malformed input ----------------------------------------------------------------

@pytest.mark.parametrize("name,data,fragment", [
    ("garbage.jsonl.gz", b"not gzip at all", "Not a gzipped file"),
    ("cut.jsonl.gz", gzip.compress(TRACE.read_bytes())[:300], "truncated or corrupt gzip"),
    ("deep.jsonl", b"[" * 100_000 + b"\n", "deep.jsonl:1: JSON nested too deeply"),
    ("deep1000.jsonl", b'{"op":"spawn","pid":1}\n' + b"[" * 1000 + b"\n",
     "deep1000.jsonl:2: JSON nested too deeply"),
    ("latin1.jsonl", b'{"op":"spawn","pid":1}\n{"op":"exit","pid":1,"extra":{"x":"\xe9"}}\n',
     "latin1.jsonl:2: not UTF-8"),
])
def test_a_malformed_trace_is_one_line_naming_the_file(
        tmp_path: Path, name: str, data: bytes, fragment: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    """gzip garbage, truncated gzip, 100k- and 1000-deep JSON (a RecursionError before)
    and bytes that are not UTF-8: one line, exit 1, the line number where there is one."""
    path = tmp_path / name
    path.write_bytes(data)
    for command in ("info", "replay"):
        assert main(["trace", command, str(path)]) == 1
        assert fragment in one_error(capsys)


def test_perf_exec_without_filename_names_the_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A ``sched_process_exec`` line without ``filename=`` (an IndexError before)."""
    path = tmp_path / "p.txt"
    path.write_text("ls 10/10 [0] 1.000: sched:sched_process_exec: pid=10 old_pid=10\n")
    assert main(["trace", "import", str(path), "--from", "perf", "-o",
                 str(tmp_path / "o.jsonl")]) == 1
    assert "p.txt:1: cannot import sched:sched_process_exec: no filename= field" in \
        one_error(capsys)
    assert not (tmp_path / "o.jsonl").exists()


@pytest.mark.parametrize("line,fragment", [
    ("mmap(NULL, 4096, PROT_READ, 1<<9223372036854775808, -1, 0) = 0x7f0000000000",
     "is not a 64-bit flag"),
    ("mmap(NULL, 4096, PROT_READ, 1<<64, -1, 0) = 0x7f0000000000", "is not a 64-bit flag"),
    ("mmap(NULL, 99999999999999999999, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x1000",
     "does not fit in a 64-bit register"),
    ("brk(NULL) = 0xfffffffffffffffffffff", "does not fit in a 64-bit register"),
    ("munmap(0x1000) = 0", "munmap has 1 arguments"),
])
def test_strace_numbers_beyond_a_register_name_the_line(
        tmp_path: Path, line: str, fragment: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Flags like ``1<<2**63`` (which used to hang computing the shift) and numbers
    wider than 64 bits are not strace output: one line naming the line."""
    path = tmp_path / "s.txt"
    path.write_text("execve(\"/bin/x\", [\"x\"], 0x0 /* 0 vars */) = 0\n" + line + "\n")
    assert main(["trace", "import", str(path), "--from", "strace", "-o",
                 str(tmp_path / "o.jsonl")]) == 1
    err = one_error(capsys)
    assert "s.txt:2: " in err and fragment in err


@pytest.mark.parametrize("offset", ["x", -1, 2 ** 70, None, [1]])
def test_a_stand_in_offset_of_the_wrong_type_or_range_is_clean(
        tmp_path: Path, offset: object, capsys: pytest.CaptureFixture[str]) -> None:
    """A stand-in mmap whose ``extra.offset`` is ``"x"`` (or out of range) replays or
    fails with one line; it never raises out of the replay."""
    path = tmp_path / "t.jsonl"
    ops = [{"op": "spawn", "pid": 1},
           {"op": "mmap", "pid": 1, "length": 8192, "prot": 1, "flags": 0x22,
            "ret": 0x10000000, "extra": {"file": "/lib/x.so", "stand_in": True,
                                         "offset": offset, "fd": 3, "file_flags": 2}},
           {"op": "read", "pid": 1, "addr": 0x10000000},
           {"op": "exit", "pid": 1}]
    path.write_text("".join(json.dumps(op) + "\n" for op in ops))
    status = main(["trace", "replay", str(path)])
    if status != 0:
        one_error(capsys)
    assert status in (0, 1)


# --- item 9: rerun of a malformed result ----------------------------------------------------

@pytest.fixture(scope="module")
def result_doc() -> dict[str, object]:
    """One real result (``mmsim run --json``) to damage."""
    from mmcore.experiments.runner import run

    doc: dict[str, object] = json.loads(run("forking-server", {"pages": 8, "children": 2},
                                           rmap="anon_vma").to_json())
    return doc


@pytest.mark.parametrize("damage,fragment", [
    (lambda d: d.update(config=[1, 2]), "field 'config' must be an object"),
    (lambda d: d.update(costs="lots"), "field 'costs' must be an object"),
    (lambda d: d["costs"].update(counters=5), "in 'costs': field 'counters'"),
    (lambda d: d["config"].update(seed="0"), "in 'config': field 'seed' must be an integer"),
    (lambda d: d["config"].update(ram_pages=-5), "ram_pages -5 is impossible"),
    (lambda d: d["config"].update(ram_pages=2 ** 70), "is impossible"),
    (lambda d: d["config"].pop("rmap"), "missing field 'rmap'"),
    (lambda d: d.update(ops=[{"op": "mmapp", "pid": 1}]), "ops[0]: unknown op 'mmapp'"),
])
def test_rerun_of_a_result_of_the_wrong_shape_is_one_line_exit_1(
        tmp_path: Path, result_doc: dict[str, object], damage: object, fragment: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A result whose config or costs have the wrong shape, or an impossible ram_pages,
    is reported by field instead of raising from the decoder or the Machine."""
    doc = json.loads(json.dumps(result_doc))
    damage(doc)  # type: ignore[operator]
    path = tmp_path / "r.json"
    path.write_text(json.dumps(doc))
    assert main(["rerun", str(path)]) == 1
    assert fragment in one_error(capsys)


@pytest.mark.parametrize("data,fragment", [
    (b'{"config": \xff}', "r.json:1: not UTF-8"),
    (b"[" * 100_000, "nested too deeply"),
    (b"{", "not valid JSON"),
])
def test_rerun_of_a_file_that_is_not_json_text_is_one_line_exit_1(
        tmp_path: Path, data: bytes, fragment: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Non-UTF-8 bytes, deep nesting and broken JSON in a result file: one line."""
    path = tmp_path / "r.json"
    path.write_bytes(data)
    assert main(["rerun", str(path)]) == 1
    assert fragment in one_error(capsys)


# --- item 9: bad values on the command line are usage errors (exit 2) ------------------------

@pytest.mark.parametrize("argv,fragment", [
    (["run", "forking-server", "--rmap", "anon_vma", "--param",
      "pages=99999999999999999999"], "out of range"),
    (["sweep", "forking-server", "--param", "pages=4,99999999999999999999"], "out of range"),
    (["trace", "replay", str(TRACE), "--check-walks", "-5"], "-5 is less than 0"),
    (["trace", "import", str(STRACE), "--from", "strace", "-o", "x.jsonl",
      "--max-faults", "-1"], "-1 is less than 0"),
    (["trace", "record", "-o", "x.jsonl", "--max-faults", "lots", "--", "true"],
     "is not a whole number"),
    (["sweep", "forking-server", "--param", "pages=4,8", "--jobs", "0"], "less than 1"),
    (["trace", "replay", str(TRACE), "--rmap", "anonmm"], "needs"),
    (["trace", "replay", str(TRACE), "--observe", "nope"], "unknown observer plugin"),
    (["trace", "replay", str(TRACE), "--file-rmap", "nope"], "unknown file_rmap plugin"),
])
def test_a_bad_value_on_the_command_line_is_exit_2_everywhere(
        argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Negative counts (accepted before), integers beyond 64 bits, and a scheme missing
    its needs: exit 2, as ``mmsim run --rmap anonmm`` always was."""
    assert main(argv) == 2
    assert fragment in one_error(capsys)


def test_a_syscall_a_strict_run_cannot_make_is_one_line_exit_1(
        capsys: pytest.CaptureFixture[str]) -> None:
    """A workload too big for the machine fails with the syscall's error, not a
    traceback."""
    assert main(["run", "forking-server", "--rmap", "anon_vma", "--param",
                 "pages=999999999999", "--param", "children=1"]) == 1
    assert "the run failed: anon_vma: OSError: [Errno 12] mmap: Cannot allocate memory" \
        in one_error(capsys)


def test_a_good_trace_still_reads_after_the_checks(tmp_path: Path) -> None:
    """The readers' new checks accept every shipped example (byte-compatible format)."""
    for path in sorted((ROOT / "examples" / "traces").glob("*.jsonl")):
        header, ops = read_trace(path)
        assert ops and header.format == "mmcore-trace"
