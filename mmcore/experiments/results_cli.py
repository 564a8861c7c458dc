"""``mmsim results``: list, filter, merge and export the result stores of sweeps.

    mmsim results list STORE [--where AXIS=V1,V2 ...] [--status ok|failed] [--json]
    mmsim results export STORE -o FILE.csv|FILE.parquet [--where ...] [--status ...]
    mmsim results report STORE [--where ...] [--plot FILE]
    mmsim results merge DEST SRC [SRC ...]

``--where`` filters on any axis of a cell (``workload``, ``rmap``, ``mremap_policy``,
``file_rmap``, ``reclaim``, ``arch``, ``seed``, ``observers``, ``mmcore_version``,
``label``; ``trace`` and ``trace_sha256`` for the cells of ``mmsim trace replay``, whose
workload is ``<trace>``; ``mapcount``, ``per_page`` unless a cell names another design,
and ``study``, ``mapcount`` for the rows of ``compare --axis mapcount``) or on a
workload parameter (``pages`` or ``params.pages``);
values compare as text, and a comma list matches any of them. An export is one row per
cell: the axes, ``param.NAME`` per parameter, ``derived.*`` and ``counters.*`` figures
of a result (a replay's counters and totals), and ``failure.*`` of a failed cell;
Parquet needs pyarrow (``pip install 'mmcore-sim[parquet]'``). A report prints the
tables ``mmsim sweep`` printed (one per grid point, medians and spreads for several
seeds, failed cells as red rows), for one workload, from the stored results alone.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ..atomicfile import atomic_path, check_writable, write_text
from ..cli import Failure, UsageError, add_json_option, print_json
from .cells import Outcome
from .store import Entry, Store

__all__ = ["add_results_command", "rows", "select"]

#: The axes of a cell that ``--where`` knows besides the workload's parameters.
AXES = ("workload", "rmap", "mremap_policy", "file_rmap", "reclaim", "arch", "seed",
        "observers", "mmcore_version", "label", "status", "trace", "trace_sha256",
        "mapcount", "study")


def _axis_value(o: Entry | Outcome, axis: str) -> str | None:
    """The text of ``axis`` for cell ``o`` (None if the cell has no such axis)."""
    c = o.cell
    if axis == "status":
        return "ok" if o.ok else "failed"
    if axis == "label":
        return c.label
    if axis == "observers":
        return ",".join(c.observers)
    if axis in AXES:
        value = getattr(c, axis)
        return "" if value is None else str(value)
    name = axis.removeprefix("params.")
    if name in c.params:
        value = c.params[name]
        return json.dumps(value) if isinstance(value, bool) else str(value)
    return None


def parse_where(items: Sequence[str]) -> dict[str, set[str]]:
    """``["rmap=anonmm,pte_chains"]`` -> ``{"rmap": {"anonmm", "pte_chains"}}``."""
    out: dict[str, set[str]] = {}
    for item in items:
        axis, sep, values = item.partition("=")
        if not sep or not axis.strip():
            raise UsageError(f"malformed --where {item!r}: expected AXIS=VALUE[,VALUE...]")
        out.setdefault(axis.strip(), set()).update(v.strip() for v in values.split(","))
    return out


def select(entries: Iterable[Entry], where: dict[str, set[str]]) -> list[Entry]:
    """The index entries whose every ``where`` axis has one of its values. UsageError
    for an axis that no cell has (a typo would otherwise select nothing, silently)."""
    kept: list[Entry] = []
    seen: set[str] = set()
    total = 0
    for o in entries:
        total += 1
        values = {axis: _axis_value(o, axis) for axis in where}
        seen.update(axis for axis, v in values.items() if v is not None)
        if all(values[axis] in wanted for axis, wanted in where.items()):
            kept.append(o)
    unknown = sorted(set(where) - seen)
    if unknown and total:
        raise UsageError(f"no cell has axis {', '.join(unknown)}: axes are "
                         f"{', '.join(AXES)} and the workload parameters")
    return kept


def _flat(prefix: str, data: dict[str, Any], out: dict[str, Any]) -> None:
    """``{"faults": {"cow": 1}}`` -> ``out["derived.faults.cow"] = 1``."""
    for k, v in data.items():
        if isinstance(v, dict):
            _flat(f"{prefix}{k}.", v, out)
        else:
            out[f"{prefix}{k}"] = v


def row(o: Outcome) -> dict[str, Any]:
    """One export row: the cell's axes, its parameters, and its figures or failure."""
    c = o.cell
    out: dict[str, Any] = {"key": o.key, "status": "ok" if o.ok else "failed",
                           "workload": c.workload, "label": c.label, "rmap": c.rmap,
                           "mremap_policy": c.mremap_policy, "file_rmap": c.file_rmap,
                           "reclaim": c.reclaim, "arch": c.arch, "seed": c.seed,
                           "observers": ",".join(c.observers),
                           "mmcore_version": c.mmcore_version,
                           "plugin_versions": ",".join(f"{k}={v}" for k, v in
                                                       sorted(c.plugin_versions.items()))}
    if c.trace is not None:
        out.update({"trace": c.trace, "trace_sha256": c.trace_sha256})
    if any(kind == "mapcount" for kind, _ in c.plugins()):  # default cells' rows unchanged
        out.update({"mapcount": c.mapcount, "study": c.study})
    out.update({f"param.{k}": v for k, v in c.params.items()})
    if o.result is not None:
        r = o.result
        _flat("derived.", r.derived.to_dict(encode_json=True), out)
        _flat("counters.", r.costs.counters.to_dict(encode_json=True), out)
        out.update({"ops_applied": r.ops_applied, "errors": sum(r.errors.values()),
                    "segfaults": r.segfaults, "sigbus": r.sigbus,
                    "wall_time_s": r.wall_time_s})
    if o.study is not None:
        _flat("study.", o.study.to_dict(), out)
    if o.replay is not None:
        rp = o.replay
        out.update({"ops_applied": rp.ops_applied, "ops_total": rp.ops_total,
                    "skipped": rp.skipped_total, "errors": sum(rp.errors.values()),
                    "segfaults": rp.segfaults, "sigbus": rp.sigbus,
                    "walk_mismatches": len(rp.walk_mismatches)})
        if rp.costs is not None:
            out["rmap_peak_bytes"] = rp.costs.rmap_peak_bytes
            _flat("counters.", rp.costs.counters.to_dict(encode_json=True), out)
    if o.failure is not None:
        f = o.failure
        out.update({"failure.kind": f.kind, "failure.plugin": f.plugin,
                    "failure.distribution": f.distribution,
                    "failure.hook": f.hook, "failure.reason": f.reason})
    return out


def rows(outcomes: Iterable[Outcome]) -> tuple[list[str], list[dict[str, Any]]]:
    """The export table: its columns (first seen first) and one row per outcome."""
    table = [row(o) for o in outcomes]
    columns: dict[str, None] = {}
    for r in table:
        columns.update(dict.fromkeys(r))
    return list(columns), table


def write_csv(path: Path, columns: list[str], table: list[dict[str, Any]]) -> None:
    """The table as CSV (a missing value is an empty field), atomically."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    w.writerows(table)
    write_text(path, buf.getvalue())


def write_parquet(path: Path, columns: list[str], table: list[dict[str, Any]]) -> None:
    """The table as Parquet, atomically; a column whose values are of several types
    (a parameter that is a number in one workload and text in another) is text."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise Failure("writing Parquet needs pyarrow: pip install 'mmcore-sim[parquet]' "
                      "(or export to .csv)") from None
    data: dict[str, list[Any]] = {}
    for col in columns:
        values = [r.get(col) for r in table]
        kinds = {type(v) for v in values if v is not None}
        if len(kinds) > 1:
            values = [None if v is None else str(v) for v in values]
        data[col] = values
    with atomic_path(path) as tmp:
        pq.write_table(pa.table(data), tmp)


def _open(path: str) -> Store:
    return Store(path, create=False)


def _selected(args: argparse.Namespace) -> tuple[Store, list[Entry]]:
    """The store named on the command line and its cells that ``--where`` and
    ``--status`` select (from the index: no cell file is read)."""
    where = parse_where(args.where)
    if args.status:
        where["status"] = {args.status}
    store = _open(args.store)
    return store, select(store.entries(), where)


def _cmd_list(args: argparse.Namespace) -> int:
    store, entries = _selected(args)
    chosen = [store.get(e.key) if not e.ok else e for e in entries]  # failures' reasons
    if args.json:
        print_json([{"key": o.key, "status": "ok" if o.ok else "failed",
                     "cell": o.cell.to_dict(),
                     "failure": _failure(o)}
                    for o in chosen])
        return 0
    table = Table(title=f"{args.store}: {len(chosen)} cells", title_justify="left",
                  header_style="bold")
    for col in ("key", "status", "workload", "configuration", "params", "seed", "reason"):
        table.add_column(col, overflow="fold")
    for o in chosen:
        c, f = o.cell, _failure(o)
        table.add_row(o.key, "ok" if o.ok else "[red]failed[/]", c.workload, c.label,
                      " ".join(f"{k}={v}" for k, v in c.params.items()), str(c.seed),
                      "" if f is None else f"{f['kind']}: {f['reason']}")
    Console(width=160).print(table)
    return 0


def _failure(o: Entry | Outcome) -> dict[str, Any] | None:
    """The failure of an outcome as data (None for a result)."""
    return None if isinstance(o, Entry) or o.failure is None else vars(o.failure)


def _cmd_export(args: argparse.Namespace) -> int:
    out = Path(args.output)
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise UsageError(f"--output {args.output!r} must end in .csv or .parquet")
    check_writable(out)
    store, entries = _selected(args)
    columns, table = rows(store.get(e.key) for e in entries)
    (write_csv if suffix == ".csv" else write_parquet)(out, columns, table)
    print(f"{out}: {len(table)} cells, {len(columns)} columns")
    return 0


def _grid_order(o: Outcome) -> tuple[Any, ...]:
    """Sort key putting a store's cells in a sweep's order: parameters (by value), file
    rmap, reclaim, the plugin matrix, seed."""
    from ..plugins import valid_configurations

    matrix = valid_configurations()
    c = o.cell
    scheme = (c.rmap, c.mremap_policy)
    return (tuple((type(v).__name__, v) for v in c.params.values()), c.file_rmap,
            c.reclaim, matrix.index(scheme) if scheme in matrix else len(matrix),
            c.rmap, c.mremap_policy or "", c.seed)


def _cmd_report(args: argparse.Namespace) -> int:
    from .sweep_cli import show

    store, entries = _selected(args)
    # a trace replay has a report, not a sweep's figures: list or export those cells
    entries = [e for e in entries if e.cell.trace is None]
    outcomes = sorted((store.get(e.key) for e in entries if e.ok), key=_grid_order)
    workloads = sorted({o.cell.workload for o in outcomes})
    if len(workloads) != 1:
        raise UsageError(f"the selection holds {len(workloads)} workloads"
                         f"{': ' + ', '.join(workloads) if workloads else ''}; choose one "
                         f"with --where workload=NAME")
    values: dict[str, set[str]] = {}
    for o in outcomes:
        for k, v in o.cell.params.items():
            values.setdefault(k, set()).add(json.dumps(v))
    swept = next((k for k, v in values.items() if len(v) > 1), None)
    plot = None if args.plot is None else Path(args.plot)
    if plot is not None:
        if plot.suffix.lower() not in (".png", ".svg"):
            raise UsageError(f"--plot {args.plot!r} must end in .png or .svg")
        if swept is None:
            raise UsageError("--plot: no parameter takes several values in the selection")
        check_writable(plot)
    results = [o.result for o in outcomes if o.result is not None]
    failed = sorted((store.get(e.key) for e in entries
                     if not e.ok and e.cell.workload == workloads[0]), key=_grid_order)
    show(results, workloads[0], swept, plot, Console(width=120), failed=failed)
    if failed:
        print(f"mmsim: {len(failed)} failed cells are red rows of the tables: mmsim "
              f"results list {args.store} --status failed", file=sys.stderr)
    return 0


def _cmd_merge(args: argparse.Namespace) -> int:
    sources = [_open(s) for s in args.sources]
    added = replaced = 0
    with Store(args.dest) as dest:
        for src in sources:
            for key in sorted(src.index):
                mine = dest.status(key)
                if mine == "ok" or (mine == "failed" and src.status(key) == "failed"):
                    continue  # same key, same inputs: an ok result is never replaced
                text = src.path(key).read_text(encoding="utf-8")
                dest.put(src.get(key), text)
                added += mine is None
                replaced += mine is not None
    print(f"{args.dest}: {added} cells added, {replaced} failed cells replaced by "
          f"results, {len(dest)} in all")
    return 0


def add_results_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]
                        ) -> None:
    """Add ``mmsim results list|export|merge`` to mmsim's subparsers."""
    p = sub.add_parser("results", help="list, filter, merge and export result stores")
    rs = p.add_subparsers(dest="results_command", metavar="ACTION",
                          parser_class=type(p))
    rs.required = True

    def filters(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("store", help="a result store (mmsim sweep --store DIR)")
        sp.add_argument("--where", action="append", default=[], metavar="AXIS=V1,V2",
                        help="keep cells whose AXIS is one of the values (repeatable)")
        sp.add_argument("--status", default=None, choices=["ok", "failed"],
                        help="keep only results, or only failures")

    ls = rs.add_parser("list", help="the cells of a store")
    filters(ls)
    add_json_option(ls)
    ls.set_defaults(func=_cmd_list)
    ex = rs.add_parser("export", help="a table of the cells: CSV or Parquet")
    filters(ex)
    ex.add_argument("-o", "--output", required=True, metavar="FILE",
                    help="FILE.csv or FILE.parquet (written atomically)")
    ex.set_defaults(func=_cmd_export)
    rp = rs.add_parser("report", help="the tables (and plot) of a sweep, from its store")
    filters(rp)
    rp.add_argument("--plot", default=None, metavar="FILE",
                    help="also plot each metric against the swept parameter (.png/.svg)")
    rp.set_defaults(func=_cmd_report)
    mg = rs.add_parser("merge", help="copy the cells of stores into another")
    mg.add_argument("dest", help="the store to merge into (created if missing)")
    mg.add_argument("sources", nargs="+", metavar="SRC", help="stores to copy from")
    mg.set_defaults(func=_cmd_merge)
