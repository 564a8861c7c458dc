"""``mmsim sweep``: a parameter grid times every configuration (times seeds), as cells
on an executor (``--executor local|dask``, ``--scheduler``), into a result store
(``--store DIR``) that a rerun resumes from.

:func:`add_sweep_options` adds the options to the ``sweep`` parser and :func:`cmd_sweep`
runs it, with the errors and exit statuses of every mmsim command; the exit status is 1
when any cell failed (each failure is one line on stderr, and the store keeps it).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console

from ..cli import (
    EXIT_FAILURE,
    UsageError,
    _check_workload,
    _machine_note,
    _plot_path,
    _short_labels,
    parse_params,
    positive,
)
from ..errors import ConfigError
from ..plugins import plugins_of_kind, resolve
from .cells import Outcome
from .cells_cli import (
    add_executor_options,
    add_selection_options,
    choose,
    failure_line,
    run_cells,
    scheme_names,
)
from .isolation import RunFailure
from .results import DEFAULT_FILE_RMAP, DEFAULT_MAPCOUNT, DEFAULT_RECLAIM, Result
from .runner import configurations
from .sweep import cells, grid

__all__ = ["add_sweep_options", "cmd_sweep", "show"]


#: The plugin axes a sweep can run several plugins of, with their defaults.
PLUGIN_AXES = {"file_rmap": DEFAULT_FILE_RMAP, "reclaim": DEFAULT_RECLAIM,
               "mapcount": DEFAULT_MAPCOUNT}


def plugin_axis(given: str | None, kind: str) -> list[str]:
    """The plugins of ``kind`` a sweep runs: ``--file-rmap``/``--reclaim``/``--mapcount``
    as one name,
    a comma list or ``all`` (every installed one), else the default; UsageError naming
    the choices for an unknown one."""
    if given == "all":
        return list(plugins_of_kind(kind))
    names = [n.strip() for n in (given or PLUGIN_AXES[kind]).split(",")]
    if len(set(names)) != len(names):
        raise UsageError(f"--{kind.replace('_', '-')} {given}: a name given twice")
    try:
        for name in names:
            resolve(name, kind)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    return names


def add_sweep_options(sp: argparse.ArgumentParser) -> None:
    """The plugin axes, selection, executor, store and seed options of ``mmsim sweep``."""
    sp.add_argument("--file-rmap", default=None, metavar="NAME[,NAME...]|all",
                    help="file rmap plugins to sweep (default: i_mmap_tree)")
    sp.add_argument("--reclaim", default=None, metavar="NAME[,NAME...]|all",
                    help="reclaim policies to sweep (default: lru2)")
    sp.add_argument("--mapcount", default=None, metavar="NAME[,NAME...]|all",
                    help="mapcount designs to sweep (default: per_page); each is a plain "
                         "run on that design (compare --axis mapcount measures the "
                         "designs' accuracy)")
    add_selection_options(sp)
    add_executor_options(sp)
    sp.add_argument("--seeds", type=positive, default=1, metavar="N",
                    help="run each cell with seeds SEED..SEED+N-1; tables and the plot "
                         "show the median and the spread")


def show(results: list[Result], workload: str, swept: str | None, plot: Path | None,
         out: Console, tables: bool = True, failed: Sequence[Outcome] = ()) -> None:
    """The plot (against parameter ``swept``) and the tables, one per grid point, of a
    sweep's results, each with a red row per ``failed`` cell of its grid point (and a
    table of why): what ``mmsim sweep`` prints, and ``mmsim results report`` reprints
    from a store. With one file rmap and reclaim policy, rows are named by the scheme
    and the title names the plugins; with several, rows keep their full labels. The
    mapcount design is such a plugin too."""
    from .plots import sweep_plot
    from .report import compare_table, describe_params, failure_table, seed_tables

    combos = {(r.config.file_rmap, r.config.reclaim, r.config.mapcount) for r in results}
    combos |= {(o.cell.file_rmap, o.cell.reclaim, o.cell.mapcount) for o in failed}
    fixed = len(combos) == 1
    note = _machine_note(dict(zip(("file_rmap", "reclaim", "mapcount"),
                                  next(iter(combos)), strict=True))) if fixed else ""
    if fixed:
        _short_labels(results)
    if plot is not None and results and swept is not None:
        sweep_plot(results, swept, plot, title=f"{workload}: sweep of {swept}{note}")
    if not tables:
        return
    seeds = len({r.config.seed for r in results} | {o.cell.seed for o in failed})
    # one table per grid point, in grid order: its parameters, results and failures
    groups: dict[str, tuple[dict[str, Any], list[Result], list[RunFailure]]] = {}

    def point(params: dict[str, Any]) -> tuple[dict[str, Any], list[Result],
                                               list[RunFailure]]:
        return groups.setdefault(json.dumps(params, sort_keys=True), (params, [], []))

    for r in results:
        point(r.config.params)[1].append(r)
    for o in failed:
        assert o.failure is not None
        c = o.cell
        label = (c.rmap if c.mremap_policy is None else f"{c.rmap}+{c.mremap_policy}"
                 ) if fixed else c.label
        if seeds > 1:
            label += f" (seed {c.seed})"
        point(dict(c.params))[2].append(o.failure.run_failure(label))
    for params, rows, failures in groups.values():
        title = f"{workload} ({describe_params(params)}{note}"
        if seeds == 1:
            # merging rows "scheme ±policy" would also merge file rmap/reclaim rows
            out.print(compare_table(rows, title=title + ")", merge=fixed,
                                    failures=failures))
        elif rows:
            for part in seed_tables(rows, title=f"{title}; {seeds} seeds)"):
                out.print(part)
        if failures:
            out.print(failure_table(failures))
    if plot is not None and results and swept is not None:
        out.print(f"plot: {plot}")


def cmd_sweep(args: argparse.Namespace, out: Console) -> int:
    """A grid of parameter values times every configuration (times seeds), on an
    executor, into the store if one is given. A failed cell (a plugin that raises,
    breaks its machine or runs past ``--timeout``) is a red row naming the plugin and
    hook, a ``failures`` entry of the JSON and one line on stderr; the others still
    run, and the exit status is then 1."""
    from .results import dumps

    values = parse_params(args.param, allow_lists=True)
    swept = [k for k, v in values.items() if len(v) > 1]
    if not swept:
        raise UsageError("sweep needs at least one --param with several values, "
                         "e.g. --param children=4,8,16")
    for combo in grid(values):
        _check_workload(args.workload, combo)
    axes = {kind: plugin_axis(getattr(args, kind), kind) for kind in PLUGIN_AXES}
    matrix = configurations()
    labels = {scheme_names(r, p)[1]: scheme_names(r, p) for r, p in matrix}
    chosen = set(choose(args, labels))
    plot = _plot_path(args, f"{args.workload}-sweep-{swept[0]}.png")
    todo = cells(args.workload, values, seeds=range(args.seed, args.seed + args.seeds),
                 arch=args.arch, file_rmaps=axes["file_rmap"], reclaims=axes["reclaim"],
                 mapcounts=axes["mapcount"],
                 configs=[c for c in matrix if scheme_names(*c)[1] in chosen])
    sweep = run_cells(args, todo, f"sweep {args.workload}")
    results = [o.result for o in sweep.outcomes if o.result is not None]
    if args.json:
        print(json.dumps({"results": json.loads(dumps(results)),
                          "failures": [_failure_doc(o) for o in sweep.failed]},
                         sort_keys=True, indent=1))
    show(results, args.workload, swept[0], plot, out, tables=not args.json,
         failed=sweep.failed)
    for o in sweep.failed:
        print(failure_line(o), file=sys.stderr)
    print(f"mmsim: sweep {args.workload}: {len(todo)} cells, {sweep.computed} run, "
          f"{sweep.reused} from the store, {len(sweep.failed)} failed", file=sys.stderr)
    return EXIT_FAILURE if sweep.failed else 0


def _failure_doc(o: Outcome) -> dict[str, Any]:
    """A failed cell in a command's JSON: its key, its cell and the failure."""
    assert o.failure is not None
    return {"key": o.key, "label": o.cell.label, "cell": o.cell.to_dict(),
            "failure": asdict(o.failure)}
