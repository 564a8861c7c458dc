"""``mmsim trace ...``: import, inspect, record and replay traces.

:func:`add_trace_commands` adds the ``trace`` command to mmsim's subparsers; each leaf
parser sets ``func`` (``func(args) -> int``, the exit status) and ``mmcore.cli.main``
runs it, with the errors and exit statuses of every mmsim command (one line on stderr;
1 for a file that cannot be read, parsed or written, 2 for a bad command line).
``python -m mmcore.experiments.trace_cli import ...`` is ``mmsim trace import ...``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections import Counter
from collections.abc import Callable, Sequence

from ..atomicfile import check_writable
from ..cli import (
    add_json_option,
    add_machine_options,
    check_scheme,
    count,
    machine_plugins,
    print_json,
)
from .trace import read_trace, write_trace

__all__ = ["add_trace_commands", "main"]

Handler = Callable[[argparse.Namespace], int]


def _cmd_import(args: argparse.Namespace) -> int:
    """mmsim trace import FILE --from strace|perf -o OUT"""
    from .perf_import import import_perf
    from .strace_import import import_strace
    importer = import_strace if args.source == "strace" else import_perf
    check_writable(args.output)
    header, ops = importer(args.file, command=shlex.split(args.command) if args.command else None,
                           notes=args.note, max_faults=args.max_faults)
    write_trace(args.output, header, ops)
    skipped = sum(header.import_skipped.values())
    if args.json:
        print_json({"trace": args.output, "source": args.file, "ops": len(ops),
                    "skipped": header.import_skipped})
    else:
        print(f"{args.output}: {len(ops)} ops from {args.file} ({skipped} events "
              "skipped)")
    return 0


def _info(path: str) -> dict[str, object]:
    header, ops = read_trace(path)
    pids = sorted({op.pid for op in ops} | {op.child for op in ops if op.op == "fork"})
    stand_ins = sorted({str(op.extra.get("file")) for op in ops if op.extra.get("stand_in")})
    return {"header": header.to_dict(encode_json=False), "ops": len(ops),
            "ops_by_kind": dict(Counter(op.op for op in ops).most_common()),
            "pids": pids, "stand_in_files": stand_ins}


def _cmd_info(args: argparse.Namespace) -> int:
    """mmsim trace info TRACE"""
    info = _info(args.trace)
    if args.json:
        print(json.dumps(info, indent=2))  # indent 2, as before: scripts parse it
        return 0
    h = info["header"]
    assert isinstance(h, dict)
    print(f"{args.trace}: {h['format']} v{h['version']} from {h['source']}")
    for key in ("command", "tool_version", "kernel", "arch", "date", "mmcore_version"):
        value = h[key]
        if value:
            print(f"  {key}: {shlex.join(value) if key == 'command' else value}")
    for line in h["recorded_with"]:
        print(f"  recorded with: {line}")
    for note in h["notes"]:
        print(f"  note: {note}")
    print(f"  ops: {info['ops']}  " + ", ".join(
        f"{k} {v}" for k, v in dict(info["ops_by_kind"]).items()))  # type: ignore[call-overload]
    print(f"  processes: {len(info['pids'])}")  # type: ignore[arg-type]
    if h["import_skipped"]:
        print("  skipped at import:")
        for reason, n in sorted(h["import_skipped"].items(), key=lambda kv: -kv[1]):
            print(f"    {n:6d}  {reason}")
    if info["stand_in_files"]:
        print("  stand-in files: " + ", ".join(info["stand_in_files"]))  # type: ignore[arg-type]
    return 0


def _cmd_record(args: argparse.Namespace) -> int:
    """mmsim trace record -o OUT -- COMMAND..."""
    from .record import record
    header, ops = record(args.cmd, args.output, tool=args.tool, keep_raw=args.keep_raw,
                         max_faults=args.max_faults, notes=args.note)
    skipped = sum(header.import_skipped.values())
    if args.json:
        print_json({"trace": args.output, "tool": args.tool, "ops": len(ops),
                    "skipped": header.import_skipped})
    else:
        print(f"{args.output}: {len(ops)} ops recorded with {args.tool} "
              f"({skipped} events skipped)", file=sys.stderr)
    return 0


def _cmd_replay(args: argparse.Namespace) -> int:
    """mmsim trace replay TRACE --rmap X"""
    from .replay import replay_trace
    check_scheme(args.rmap, args.mremap_policy, args.observe)
    report = replay_trace(args.trace, rmap=args.rmap, mremap_policy=args.mremap_policy,
                          check_walks=args.check_walks, observers=args.observe,
                          **machine_plugins(args))
    print(report.to_json(indent=2) if args.json else report.summary())
    return 0 if report.broken is None and not report.walk_mismatches else 1


def add_trace_commands(
        subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add ``trace import|info|record|replay`` to ``subparsers``; returns the ``trace``
    parser. Every leaf sets ``func`` (call ``args.func(args)`` for the exit status)."""
    trace = subparsers.add_parser(
        "trace", help="import, inspect, record and replay traces of real programs",
        description="Traces are JSON Lines of mmcore operations with a provenance header "
                    "(docs/traces.md).")
    sub = trace.add_subparsers(dest="trace_command", required=True, metavar="COMMAND")

    p = sub.add_parser("import", help="convert strace or perf script output to a trace")
    p.add_argument("file", help="strace -f -y log, or perf script output")
    p.add_argument("--from", dest="source", required=True, choices=("strace", "perf"))
    p.add_argument("-o", "--output", required=True,
                   help="the trace to write (.jsonl, or .jsonl.gz; its directory must "
                        "exist)")
    p.add_argument("--command", help="the traced command line, for the header")
    p.add_argument("--note", action="append", default=[], help="a note for the header")
    p.add_argument("--max-faults", type=count, default=None, metavar="N",
                   help="keep at most this many page faults (to trim a trace)")
    add_json_option(p)
    p.set_defaults(func=_cmd_import)

    p = sub.add_parser("info", help="show a trace's header and what it contains")
    p.add_argument("trace", help="a trace file (.jsonl or .jsonl.gz)")
    add_json_option(p)
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("record", help="run a command under perf or strace into a trace",
                       usage="%(prog)s -o OUT [--tool perf|strace] -- COMMAND...")
    p.add_argument("-o", "--output", required=True,
                   help="the trace to write (.jsonl, or .jsonl.gz; its directory must "
                        "exist)")
    p.add_argument("--tool", choices=("perf", "strace"), default="perf",
                   help="perf: faults and syscalls (needs root or perf_event_paranoid -1); "
                        "strace: syscalls only")
    p.add_argument("--keep-raw", metavar="FILE", help="also save the tool's text output here")
    p.add_argument("--max-faults", type=count, default=None, metavar="N",
                   help="keep at most this many page faults (to trim a trace)")
    p.add_argument("--note", action="append", default=[], help="a note for the header")
    add_json_option(p)
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="COMMAND",
                   help="the program and its arguments, after --")
    p.set_defaults(func=_cmd_record)

    p = sub.add_parser("replay", help="replay a trace on one rmap configuration")
    p.add_argument("trace", help="a trace file (.jsonl or .jsonl.gz)")
    add_machine_options(p, rmap="anon_vma_chain")
    p.add_argument("--check-walks", type=count, default=0, metavar="N",
                   help="compare the rmap walk with the page tables for N sampled pages "
                        "before each exit (exit status 1 on a mismatch)")
    add_json_option(p)
    p.set_defaults(func=_cmd_replay)
    return trace


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mmcore.experiments.trace_cli COMMAND ...``: ``mmsim trace COMMAND ...``."""
    from ..cli import main as mmsim

    return mmsim(["trace", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
