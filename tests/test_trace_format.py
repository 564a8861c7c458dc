"""The trace format: round trips, one-line errors naming the line, header provenance, the
shipped example traces, and the ``trace`` CLI commands that need no tools."""

from __future__ import annotations

import datetime
import json
import platform
from pathlib import Path

import pytest

import mmcore
from mmcore.cli import main
from mmcore.constants import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE
from mmcore.experiments import record as record_mod
from mmcore.experiments.ops import Op
from mmcore.experiments.record import RecordError, check_tool, record
from mmcore.experiments.trace import (
    OP_REQUIRED,
    TraceError,
    TraceHeader,
    new_header,
    op_from_dict,
    op_to_dict,
    read_trace,
    write_trace,
)

EXAMPLES = sorted((Path(__file__).parent.parent / "examples" / "traces").glob("*.jsonl"))
DATA = Path(__file__).parent / "data"

OPS = [
    Op("spawn", pid=10, extra={"exec": "/bin/x", "brk_start": 0x5555_5555_9000}),
    Op("mmap", pid=10, length=8192, prot=PROT_READ | PROT_WRITE,
       flags=MAP_PRIVATE | MAP_ANONYMOUS, ret=0x7F00_0000_0000),
    Op("write", pid=10, addr=0x7F00_0000_0000),
    Op("read", pid=10, addr=0x7F00_0000_1000),
    Op("fork", pid=10, child=11),
    Op("munmap", pid=11, addr=0, length=4096),  # addr 0 is meaningful: must survive
    Op("mprotect", pid=10, addr=0x7F00_0000_0000, length=4096, prot=0),
    Op("brk", pid=10, addr=0, ret=0x5555_5555_9000),
    Op("mmap", pid=10, length=4096, prot=PROT_READ, flags=MAP_PRIVATE, ret=None,
       extra={"errno": "ENOMEM"}),
    Op("exit", pid=11),
    Op("exit", pid=10),
]




# --- round trip ---------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
def test_round_trip_keeps_every_op_and_the_header(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"t{suffix}"
    header = new_header("hand", ["prog", "arg"], notes=["made in a test"],
                        import_skipped={"write fault: no mapping in trace": 3})
    write_trace(path, header, OPS)
    got_header, got_ops = read_trace(path)
    assert got_header == header
    assert got_ops == OPS


def test_written_lines_omit_defaults_but_keep_required_fields(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    write_trace(path, new_header("hand"), OPS)
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert lines[0]["format"] == "mmcore-trace" and lines[0]["version"] == 1
    assert lines[3] == {"op": "write", "pid": 10, "addr": 0x7F00_0000_0000}
    assert lines[6] == {"op": "munmap", "pid": 11, "addr": 0, "length": 4096}
    assert lines[7]["prot"] == 0  # PROT_NONE is written for mprotect
    for op in OPS:
        d = op_to_dict(op)
        assert set(OP_REQUIRED[op.op]) <= set(d)


@pytest.mark.parametrize("op", OPS, ids=[f"{i}-{o.op}" for i, o in enumerate(OPS)])
def test_op_lines_are_what_dataclasses_json_maps(op: Op) -> None:
    full = op.to_dict(encode_json=False)
    line = op_to_dict(op)
    assert all(full[k] == v for k, v in line.items())
    assert op_from_dict(line) == Op.from_dict(line) == op
    assert op_from_dict(full) == op


def test_a_trace_without_header_reads_with_a_default_header(tmp_path: Path) -> None:
    path = tmp_path / "hand.jsonl"
    path.write_text('{"op": "spawn", "pid": 1}\n\n{"op": "exit", "pid": 1}\n')
    header, ops = read_trace(path)
    assert header.source == "unknown" and header.notes == ["the trace has no header line"]
    assert [o.op for o in ops] == ["spawn", "exit"]


# --- malformed input: one line, naming file and line ---------------------------------------

HEADER = '{"format": "mmcore-trace", "version": 1, "source": "hand"}'
SPAWN = '{"op": "spawn", "pid": 1}'


@pytest.mark.parametrize(("bad", "message"), [
    ('{"op": "mmapp", "pid": 1}', "unknown op 'mmapp' (choose one of: spawn, fork"),
    ('{"op": "write", "pid": 1, "addr": "0x1000"}', "field 'addr' must be an integer"),
    ('{"op": "write", "pid": 1, "addr": true}', "field 'addr' must be an integer"),
    ('{"op": "write", "pid": 1, "addr": 4096.5}', "field 'addr' must be an integer"),
    ('{"op": "brk", "pid": 1, "addr": 0, "ret": "x"}',
     "field 'ret' must be an integer or null"),
    ('{"op": "write", "pid": 1, "addr": 0, "extra": [1]}', "field 'extra' must be an object"),
    ('{"op": "write", "pid": 1, "adr": 4096}', "unknown field 'adr'"),
    ('{"op": "munmap", "pid": 1, "addr": 4096}', "op 'munmap' needs field 'length'"),
    ('{"pid": 1}', "missing field 'op'"),
    ('{"op": 7}', "field 'op' must be a string"),
    ('[1, 2]', "an op line must be a JSON object"),
    ('{"op": "write", "pid": 1, "addr": 0', "not valid JSON: Expecting ',' delimiter"),
    (HEADER, "a header is only allowed on the first line"),
])
def test_malformed_line_is_one_error_naming_file_and_line(tmp_path: Path, bad: str,
                                                          message: str) -> None:
    path = tmp_path / "trace.jsonl"
    path.write_text("\n".join([HEADER, SPAWN, bad, SPAWN]) + "\n")
    with pytest.raises(TraceError) as info:
        read_trace(path)
    text = str(info.value)
    assert text.startswith(f"{path}:3: {message}")
    assert "\n" not in text


@pytest.mark.parametrize(("header", "message"), [
    ('{"format": "other"}', "not an mmcore trace header"),
    ('{"format": "mmcore-trace", "version": 99}', "trace format version 99 is newer"),
    ('{"format": "mmcore-trace", "notes": "x"}', "field 'notes' must be a list of strings"),
    ('{"format": "mmcore-trace", "import_skipped": {"a": "b"}}',
     "field 'import_skipped' must be an object of integers"),
])
def test_bad_header_names_line_one(tmp_path: Path, header: str, message: str) -> None:
    path = tmp_path / "trace.jsonl"
    path.write_text(header + "\n" + SPAWN + "\n")
    with pytest.raises(TraceError, match=f"^{path}:1: {message}"):
        read_trace(path)


def test_missing_file_and_binary_file_are_trace_errors(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match=r"nope\.jsonl"):
        read_trace(tmp_path / "nope.jsonl")
    bad = tmp_path / "bin.jsonl"
    bad.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(TraceError, match="not UTF-8"):
        read_trace(bad)


# --- provenance -----------------------------------------------------------------------------

def test_new_header_records_kernel_date_and_mmcore_version() -> None:
    h = new_header("strace", ["ls", "-l"], recorded_with=["strace -f ..."])
    assert h.source == "strace" and h.command == ["ls", "-l"]
    assert h.kernel == platform.release() and h.arch == platform.machine()
    assert h.mmcore_version == mmcore.__version__
    when = datetime.datetime.fromisoformat(h.date)
    assert abs((datetime.datetime.now(datetime.UTC) - when).total_seconds()) < 60


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_traces_say_where_they_came_from(path: Path) -> None:
    assert path.stat().st_size < 300_000
    header, ops = read_trace(path)
    assert header.source in ("perf", "strace")
    assert header.command and header.recorded_with and header.tool_version
    assert header.kernel and header.date and header.mmcore_version
    assert ops[0].op == "spawn" and ops[-1].op == "exit"
    readme = (path.parent / "README.md").read_text()
    assert path.name in readme, f"{path.name} is not described in README.md"


def test_there_are_example_traces_from_both_tools() -> None:
    sources = {read_trace(p)[0].source for p in EXAMPLES}
    assert sources == {"perf", "strace"}
    assert 2 <= len(EXAMPLES) <= 4


# --- CLI: import and info ---------------------------------------------------------------------

def test_cli_import_writes_a_trace_and_info_describes_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o.jsonl"
    assert main(["trace", "import", str(DATA / "strace_mmtoy.txt"),
                 "--from", "strace", "-o", str(out), "--note", "hello"]) == 0
    header, ops = read_trace(out)
    assert header.source == "strace" and "hello" in header.notes
    assert len(ops) == 27
    capsys.readouterr()
    assert main(["trace", "info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["ops"] == 27 and info["pids"] == [6697, 6698]
    assert info["ops_by_kind"]["fork"] == 1
    assert "/usr/lib/x86_64-linux-gnu/libc.so.6" in info["stand_in_files"]
    assert main(["trace", "info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "from strace" in text and "wait4: not in the op vocabulary" in text


def test_cli_import_of_the_wrong_kind_of_log_is_one_error_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", "import", str(DATA / "strace_mmtoy.txt"),
                 "--from", "perf", "-o", str(tmp_path / "o.jsonl")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("mmsim: error: ")
    assert "strace_mmtoy.txt:1: not perf script output" in err
    assert "\n" not in err


def test_cli_needs_a_subcommand_and_says_so_with_exit_2(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace"]) == 2
    assert capsys.readouterr().err.startswith("mmsim: error: ")


# --- recording: the error paths (no tool needed) ----------------------------------------------

def test_record_reports_a_missing_tool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(record_mod.shutil, "which", lambda name: None)
    with pytest.raises(RecordError, match=r"strace is not installed.*--tool perf"):
        check_tool("strace")
    with pytest.raises(RecordError, match=r"perf is not installed.*--tool strace"):
        check_tool("perf")


def test_record_reports_perf_event_paranoid_for_non_root(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(record_mod.shutil, "which", lambda name: "/usr/bin/" + name)
    monkeypatch.setattr(record_mod.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(record_mod, "_read_int", lambda path: 2)
    with pytest.raises(RecordError, match="perf_event_paranoid is 2 and you are not root"):
        check_tool("perf")


def test_record_reports_disabled_ptrace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(record_mod.shutil, "which", lambda name: "/usr/bin/" + name)
    monkeypatch.setattr(record_mod, "_read_int", lambda path: 3)
    with pytest.raises(RecordError, match="ptrace is disabled"):
        check_tool("strace")


def test_record_needs_a_command(tmp_path: Path) -> None:
    with pytest.raises(RecordError, match="give the command after --"):
        record(["--"], tmp_path / "o.jsonl")


def test_cli_record_passes_the_command_through(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    seen: dict[str, object] = {}

    def fake_record(cmd: list[str], out: str, **kw: object) -> tuple[TraceHeader, list[Op]]:
        seen.update(cmd=cmd, out=out, **kw)
        return TraceHeader(), []

    monkeypatch.setattr(record_mod, "record", fake_record)
    assert main(["trace", "record", "-o", str(tmp_path / "o.jsonl"),
                 "--tool", "strace", "--", "ls", "-l", "--color"]) == 0
    assert seen["cmd"] in (["ls", "-l", "--color"], ["--", "ls", "-l", "--color"])
    assert seen["tool"] == "strace"


def _usable(tool: str) -> bool:
    try:
        check_tool(tool)
    except RecordError:
        return False
    return True


@pytest.mark.parametrize("tool", ["strace", "perf"])
def test_record_a_real_program_when_the_tool_is_here(tmp_path: Path, tool: str) -> None:
    if not _usable(tool):
        pytest.skip(f"{tool} is not usable on this machine")
    out = tmp_path / "true.jsonl"
    try:
        header, ops = record(["/bin/true"], out, tool=tool)
    except RecordError as exc:  # e.g. ptrace or tracepoints blocked in a container
        pytest.skip(str(exc))
    assert read_trace(out) == (header, ops)
    assert header.source == tool and header.command == ["/bin/true"]
    assert ops[0].op == "spawn" and ops[-1].op == "exit"
