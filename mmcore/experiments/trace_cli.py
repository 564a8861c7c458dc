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
from pathlib import Path

from rich import box
from rich.table import Table

from ..atomicfile import check_writable
from ..cli import (
    UsageError,
    add_json_option,
    add_machine_options,
    check_observers,
    check_scheme,
    count,
    machine_plugins,
    print_json,
)
from .cells_cli import add_executor_options, add_selection_options
from .isolation import RunFailure
from .replay import ReplayReport
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


def _replay_configs(args: argparse.Namespace) -> list[tuple[str, str | None]]:
    """The (rmap, mremap policy) pairs ``--rmap`` names: one scheme, a comma list (each
    with ``--mremap-policy``), or ``all`` (every valid configuration); UsageError for an
    unknown or incomplete one."""
    from .runner import configurations

    if args.rmap == "all":
        if args.mremap_policy is not None:
            raise UsageError("--rmap all replays every valid configuration, with and "
                             "without each mremap policy: leave out --mremap-policy")
        check_observers(args.observe)
        return configurations()
    names = [n.strip() for n in args.rmap.split(",") if n.strip()]
    if not names or len(set(names)) != len(names):
        raise UsageError(f"--rmap {args.rmap}: expected NAME, NAME,NAME... or all")
    for name in names:
        check_scheme(name, args.mremap_policy, args.observe)
    return [(name, args.mremap_policy) for name in names]


def _replay_table(done: list[tuple[str, str, ReplayReport]],
                  failures: list[RunFailure]) -> Table:
    """One row per replay (trace, configuration), a red row per failed one."""
    table = Table(title="trace replays", title_justify="left", header_style="bold",
                  box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("trace", "configuration", "ops applied", "skipped", "syscall errors",
                "segfaults", "processes", "rmap B peak", "COW copies", "walk mismatches"):
        table.add_column(col, justify="left" if col in ("trace", "configuration")
                         else "right", no_wrap=True)
    for trace, label, r in done:
        c = r.costs
        table.add_row(trace, label, f"{r.ops_applied}/{r.ops_total}", str(r.skipped_total),
                      str(sum(r.errors.values())), str(r.segfaults), str(r.processes),
                      "-" if c is None else str(c.rmap_peak_bytes),
                      "-" if c is None else str(c.counters.fault_cow_copy),
                      f"{len(r.walk_mismatches)} of {r.walks_checked}" if r.walks_checked
                      else "-")
    for f in failures:
        trace, _, label = f.label.partition(" on ")
        table.add_row(f"[red]{trace}[/]", f"[red]{label}[/]", f"[red]{f.status}[/]",
                      *["-"] * 7)
    return table


def _cmd_replay(args: argparse.Namespace) -> int:
    """mmsim trace replay TRACE... --rmap X[,Y...]|all: each trace on each configuration,
    as cells (a store keeps them); a replay whose plugin fails is a failed row naming the
    plugin and hook, the others still run, and the exit status is then 1."""
    from rich.console import Console

    from .cells import trace_cell
    from .cells_cli import choose, run_cells, scheme_names
    from .report import failure_table

    configs = _replay_configs(args)
    chosen = set(choose(args, {scheme_names(*c)[1]: scheme_names(*c) for c in configs}))
    for path in args.trace:  # a malformed trace is one line naming it, before any run
        read_trace(path)
    plugins = machine_plugins(args)
    todo = [trace_cell(path, rmap=r, mremap_policy=p, observers=args.observe,
                       check_walks=args.check_walks, file_rmap=plugins["file_rmap"],
                       reclaim=plugins["reclaim"])
            for path in args.trace for r, p in configs if scheme_names(r, p)[1] in chosen]
    sweep = run_cells(args, todo, "replay")
    done: list[tuple[str, str, ReplayReport]] = []
    failures: list[RunFailure] = []
    for o in sweep.outcomes:
        name = Path(o.cell.trace or "").name
        if o.replay is not None:
            done.append((name, o.cell.label, o.replay))
        elif o.failure is not None:
            failures.append(o.failure.run_failure(f"{name} on {o.cell.label}"))
    mismatched = any(r.walk_mismatches for _, _, r in done)
    if len(todo) == 1 and done:  # one replay: its report, as it always was
        report = done[0][2]
        print(report.to_json(indent=2) if args.json else report.summary())
    elif args.json:
        print_json({"replays": [r.to_dict(encode_json=True) for _, _, r in done],
                    "failures": [f.to_dict() for f in failures]})
    else:
        out = Console(width=160) if not sys.stdout.isatty() else Console()
        if len(todo) > 1:
            out.print(_replay_table(done, failures))
        if failures:
            out.print(failure_table(failures))
    if failures:
        print(f"mmsim: error: {len(failures)} of {len(todo)} replays failed: "
              + ", ".join(f"{f.label} ({f.status})" for f in failures), file=sys.stderr)
    return 1 if failures or mismatched else 0


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

    p = sub.add_parser("replay", help="replay traces on rmap configurations")
    p.add_argument("trace", nargs="+", help="trace files (.jsonl or .jsonl.gz)")
    add_machine_options(p, rmap="anon_vma_chain",
                        rmap_help="rmap scheme, a comma list of them, or all: every "
                                  "valid configuration (see mmsim plugins)")
    p.add_argument("--check-walks", type=count, default=0, metavar="N",
                   help="compare the rmap walk with the page tables for N sampled pages "
                        "before each exit (exit status 1 on a mismatch)")
    add_selection_options(p)
    add_executor_options(p, "replay")
    add_json_option(p)
    p.set_defaults(func=_cmd_replay)
    return trace


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mmcore.experiments.trace_cli COMMAND ...``: ``mmsim trace COMMAND ...``."""
    from ..cli import main as mmsim

    return mmsim(["trace", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
