"""mmsim: run, compare and sweep workloads over the installed rmap schemes.

    mmsim plugins                          installed plugins
    mmsim workloads                        built-in workloads and their parameters
    mmsim run WORKLOAD --rmap X [--policy P] [--param k=v ...] [--seed N] [--json]
    mmsim compare WORKLOAD [--param k=v ...] [--plot out.png] [--json]
    mmsim compare WORKLOAD --axis file_rmap|reclaim [--rmap X] [--policy P] ...
    mmsim sweep WORKLOAD --param k=v1,v2,... [--jobs N] [--plot out.png] [--json]

run, compare and sweep take ``--file-rmap`` (i_mmap_tree, i_mmap_list) and ``--reclaim``
(lru2, clock) to choose those plugins (default: the Machine's, today's Linux);
``compare --axis file_rmap`` (or ``reclaim``) compares the plugins of that kind side by
side, with one rmap configuration (``--rmap``, default anon_vma_chain).
    mmsim rerun RESULT.json                run a recorded result again and diff it
    mmsim trace import|info|record|replay  traces (mmcore.experiments.trace_cli)
    mmsim reproduce [--out docs]           measure the 2004 thread's claims

Bad input (an unknown workload or scheme, a malformed --param) prints one line on stderr
and exits with status 2. structlog is configured here and only here.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, cast

import structlog
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import __version__
from .errors import ConfigError

EXIT_USAGE = 2


class UsageError(Exception):
    """Bad command-line input: reported as one line on stderr, exit status 2."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage dump) and exit 2."""

    def error(self, message: str) -> NoReturn:
        """Report ``message`` as a usage error."""
        raise UsageError(message)


def parse_params(items: Sequence[str], allow_lists: bool = False) -> dict[str, Any]:
    """``["pages=64", "children=8"]`` -> ``{"pages": "64", "children": "8"}``; with
    ``allow_lists`` each value is split on commas into a list."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key or not key.isidentifier() or value == "":
            raise UsageError(f"malformed --param {item!r}: expected NAME=VALUE")
        if key in out:
            raise UsageError(f"--param {key} given twice")
        if allow_lists:
            values = [v.strip() for v in value.split(",")]
            if any(v == "" for v in values):
                raise UsageError(f"malformed --param {item!r}: empty value in the list")
            out[key] = values
        else:
            out[key] = value
    return out


def configure_logging(level: str, fmt: str) -> None:
    """Configure structlog for the command line: events to stderr, console or JSON."""
    renderer: Any = (structlog.processors.JSONRenderer() if fmt == "json"
                     else structlog.dev.ConsoleRenderer(colors=False))
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars,
                    structlog.processors.add_log_level,
                    structlog.processors.TimeStamper(fmt="iso"),
                    renderer],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )


def build_parser() -> Parser:
    """The argument parser of ``mmsim``."""
    p = Parser(prog="mmsim", description="Compare Linux reverse-mapping schemes on "
               "simulated workloads.")
    p.add_argument("--version", action="version", version=f"mmsim (mmcore) {__version__}")
    p.add_argument("--log-level", default="warning",
                   choices=["debug", "info", "warning", "error"],
                   help="structlog events at or above this level go to stderr")
    p.add_argument("--log-format", default="console", choices=["console", "json"])
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True

    sub.add_parser("plugins", help="list installed plugins")
    w = sub.add_parser("workloads", help="list built-in workloads and their parameters")
    w.add_argument("--json", action="store_true")

    def common(sp: argparse.ArgumentParser, lists: bool = False) -> None:
        sp.add_argument("workload")
        sp.add_argument("--param", action="append", default=[], metavar="K=V1,V2" if lists
                        else "K=V", help="a workload parameter (repeatable)")
        sp.add_argument("--seed", type=int, default=0)
        sp.add_argument("--arch", default="x86_64", choices=["x86_64", "i386"])
        sp.add_argument("--file-rmap", default=None, metavar="NAME",
                        help="file rmap plugin: i_mmap_tree (default) or i_mmap_list")
        sp.add_argument("--reclaim", default=None, metavar="NAME",
                        help="reclaim policy plugin: lru2 (default) or clock")
        sp.add_argument("--json", action="store_true", help="print JSON, not a table")

    r = sub.add_parser("run", help="run a workload on one configuration")
    common(r)
    r.add_argument("--rmap", required=True, help="rmap scheme (see mmsim plugins)")
    r.add_argument("--policy", default=None, help="mremap policy plugin, e.g. unshare")

    c = sub.add_parser("compare", help="run a workload on every valid configuration")
    common(c)
    c.add_argument("--axis", default="rmap", choices=["rmap", "file_rmap", "reclaim"],
                   help="what to compare: the rmap configurations (default), the file "
                        "rmap plugins or the reclaim policies")
    c.add_argument("--rmap", default=None,
                   help="with --axis file_rmap or reclaim: the rmap scheme (default "
                        "anon_vma_chain)")
    c.add_argument("--policy", default=None,
                   help="with --axis file_rmap or reclaim: an mremap policy")
    c.add_argument("--plot", default=None, metavar="FILE",
                   help="plot file (.png or .svg); default results/WORKLOAD.png")
    c.add_argument("--no-plot", action="store_true", help="write no plot")

    s = sub.add_parser("sweep", help="a grid of parameter values x every configuration")
    common(s, lists=True)
    s.add_argument("--jobs", type=int, default=1, help="worker processes")
    s.add_argument("--plot", default=None, metavar="FILE",
                   help="plot file; default results/WORKLOAD-sweep-PARAM.png")
    s.add_argument("--no-plot", action="store_true", help="write no plot")

    rr = sub.add_parser("rerun", help="run a recorded result (mmsim run --json) again")
    rr.add_argument("result", help="JSON file of one result")

    rp = sub.add_parser("reproduce", help="measure the 2004 claims into results.md")
    rp.add_argument("--out", default="docs", help="directory for results.md and img/")

    try:  # mmsim trace ... (import, info, record, replay) lives with the traces
        from .experiments.trace_cli import add_trace_commands
    except ImportError:
        pass
    else:
        add_trace_commands(cast("argparse._SubParsersAction[argparse.ArgumentParser]", sub))
    return p


# --- commands ---------------------------------------------------------------------------


def cmd_plugins(args: argparse.Namespace, out: Console) -> int:
    """Table of installed plugins."""
    from .plugins import installed_plugins, plugin_info, valid_configurations

    table = Table(title="installed mmcore plugins", title_justify="left",
                  header_style="bold")
    for col in ("name", "kind", "version", "needs", "summary"):
        table.add_column(col, overflow="fold")
    for name, cls in installed_plugins().items():
        info = plugin_info(cls)
        table.add_row(name, info.kind, info.version, ", ".join(sorted(info.needs)) or "-",
                      info.summary)
    out.print(table)
    configs = [r if p is None else f"{r}+{p}" for r, p in valid_configurations()]
    out.print(f"valid configurations ({len(configs)}): " + ", ".join(configs))
    return 0


def cmd_workloads(args: argparse.Namespace, out: Console) -> int:
    """Table (or JSON) of the built-in workloads."""
    import json

    from .experiments.workloads import REGISTRY, UNAVAILABLE

    if args.json:
        doc = {n: {"summary": w.summary, "hurts": w.hurts, "params": w.defaults(),
                   "doc": w.doc} for n, w in REGISTRY.items()}
        doc.update({n: {"unavailable": why} for n, why in UNAVAILABLE.items()})
        out.print_json(json.dumps(doc))
        return 0
    table = Table(title="built-in workloads", title_justify="left", header_style="bold",
                  show_lines=True)
    for col in ("workload", "models", "expected to hurt", "parameters (defaults)"):
        table.add_column(col, overflow="fold")
    for name, w in REGISTRY.items():
        table.add_row(name, w.summary, w.hurts,
                      "\n".join(f"{k}={v}" for k, v in w.defaults().items()))
    for name, why in UNAVAILABLE.items():
        table.add_row(name, "[dim]" + why + "[/]", "", "")
    out.print(table)
    return 0


def _check_workload(name: str, params: dict[str, Any]) -> None:
    from .experiments.workloads import make_params
    make_params(name, params)


def _check_scheme(rmap: str, policy: str | None) -> None:
    from .plugins import missing_needs, resolve

    classes = [resolve(rmap, "rmap")]
    if policy is not None:
        classes.append(resolve(policy, "mremap_policy"))
    problems = missing_needs(classes)
    if problems:
        raise ConfigError("; ".join(problems))


def _machine_plugins(args: argparse.Namespace) -> dict[str, str]:
    """``{"file_rmap": ..., "reclaim": ...}`` from the options (the defaults where not
    given); ConfigError names the choices for an unknown plugin."""
    from .experiments.results import DEFAULT_FILE_RMAP, DEFAULT_RECLAIM
    from .plugins import resolve

    chosen = {"file_rmap": args.file_rmap or DEFAULT_FILE_RMAP,
              "reclaim": args.reclaim or DEFAULT_RECLAIM}
    for kind, name in chosen.items():
        resolve(name, kind)
    return chosen


def _machine_note(plugins: dict[str, str]) -> str:
    """``; file rmap X; reclaim Y`` for titles, only for what is not the default."""
    from .experiments.results import DEFAULT_FILE_RMAP, DEFAULT_RECLAIM

    note = ""
    if plugins["file_rmap"] != DEFAULT_FILE_RMAP:
        note += f"; file rmap {plugins['file_rmap']}"
    if plugins["reclaim"] != DEFAULT_RECLAIM:
        note += f"; reclaim {plugins['reclaim']}"
    return note


def _short_labels(results: Sequence[Any]) -> None:
    """Name rows by rmap[+policy] only: the file rmap and reclaim plugins fixed for the
    whole table are in its title (the JSON keeps the full labels)."""
    for r in results:
        c = r.config
        r.display_label = c.rmap if c.policy is None else f"{c.rmap}+{c.policy}"


def cmd_run(args: argparse.Namespace, out: Console) -> int:
    """Run one workload on one configuration."""
    from .experiments.report import compare_table, describe_params
    from .experiments.runner import run

    params = parse_params(args.param)
    _check_workload(args.workload, params)
    _check_scheme(args.rmap, args.policy)
    plugins = _machine_plugins(args)
    result = run(args.workload, params, rmap=args.rmap, policy=args.policy, seed=args.seed,
                 arch=args.arch, file_rmap=plugins["file_rmap"], reclaim=plugins["reclaim"])
    if args.json:
        print(result.to_json(indent=1, sort_keys=True))
        return 0
    out.print(compare_table([result], title=f"{args.workload} "
                            f"({describe_params(result.config.params)}; seed "
                            f"{args.seed}; {args.arch}{_machine_note(plugins)})"))
    d = result.derived
    out.print(f"faults: {', '.join(f'{k} {v}' for k, v in d.faults.items() if v) or 'none'}"
              f"; metadata objects: "
              f"{', '.join(f'{k} {v}' for k, v in d.metadata_objects.items()) or 'none'}")
    if d.file_walks:
        out.print(f"file rmap walks: {d.file_walks}, {d.file_visits_per_page:g} vmas "
                  f"visited and {d.file_wasted_per_page:g} probes wasted per page, "
                  f"{d.file_tree_steps} tree steps")
    if result.checks:
        out.print(f"data checked: {result.checks} pages, {result.check_failures} wrong")
    if result.errors or result.segfaults or result.sigbus:
        out.print(f"failed ops: {result.errors}; segfaults: {result.segfaults}; "
                  f"SIGBUS: {result.sigbus}")
    return 0


def _plot_path(args: argparse.Namespace, default: str) -> Path | None:
    if args.no_plot:
        return None
    path = Path(args.plot) if args.plot else Path("results") / default
    if path.suffix.lower() not in (".png", ".svg"):
        raise UsageError(f"--plot {str(path)!r} must end in .png or .svg")
    return path


def _axis_metrics(axis: str) -> list[Any]:
    """The table columns of a comparison along ``axis`` (the JSON has every figure)."""
    from .experiments.report import TABLE_METRICS, Metric

    if axis == "file_rmap":
        return [*TABLE_METRICS, Metric("tree_steps", "tree\nsteps",
                                       lambda r: r.derived.tree_steps)]
    if axis == "reclaim":
        from .costs import Counters
        from .experiments.results import Result

        def c(r: Result) -> Counters:
            return r.costs.counters

        return [Metric("walks", "rmap\nwalks", lambda r: r.derived.walks),
                Metric("visits_per_page", "visits\n/page",
                       lambda r: r.derived.visits_per_page, digits=2),
                Metric("pswpout", "swapped\nout", lambda r: c(r).pswpout),
                Metric("swapins", "swapped\nin", lambda r: c(r).fault_swapin_major),
                Metric("written_back", "written\nback", lambda r: c(r).pages_written_back),
                Metric("kswapd_runs", "kswapd\nruns", lambda r: c(r).kswapd_runs,
                       ratio=False),
                Metric("reclaim_missed", "not\nfound",
                       lambda r: r.derived.reclaim_missed, ratio=False)]
    return list(TABLE_METRICS)


def cmd_compare(args: argparse.Namespace, out: Console) -> int:
    """Run one workload on every valid configuration (or every plugin along ``--axis``):
    table, JSON and plot."""
    import json

    from .experiments.plots import COMPARE_PANELS, bars, compare_plot
    from .experiments.report import compare_document, compare_table, describe_params
    from .experiments.runner import configurations, run, run_axis

    params = parse_params(args.param)
    _check_workload(args.workload, params)
    plugins = _machine_plugins(args)
    axis = args.axis
    if axis == "rmap":
        if args.rmap is not None or args.policy is not None:
            raise UsageError("--rmap and --policy choose the scheme of a --axis file_rmap "
                             "or reclaim comparison; --axis rmap runs every configuration")
        suffix = ""
    else:
        if getattr(args, axis) is not None:
            raise UsageError(f"--{axis.replace('_', '-')} fixes the plugin that --axis "
                             f"{axis} compares: give one or the other")
        _check_scheme(args.rmap or "anon_vma_chain", args.policy)
        suffix = f"-{axis}"
    plot = _plot_path(args, f"{args.workload}{suffix}.png")
    if axis == "rmap":
        results = [run(args.workload, params, rmap=rmap, policy=policy, seed=args.seed,
                       arch=args.arch, file_rmap=plugins["file_rmap"],
                       reclaim=plugins["reclaim"]) for rmap, policy in configurations()]
        what = f"{_machine_note(plugins)}): x = ratio to the best configuration"
    else:
        rmap = args.rmap or "anon_vma_chain"
        results = run_axis(args.workload, axis, params, rmap=rmap, policy=args.policy,
                           seed=args.seed, arch=args.arch, file_rmap=plugins["file_rmap"],
                           reclaim=plugins["reclaim"])
        scheme = rmap if args.policy is None else f"{rmap}+{args.policy}"
        other = "reclaim" if axis == "file_rmap" else "file_rmap"
        what = (f"): {axis.replace('_', ' ')} plugins with {scheme} and "
                f"{other.replace('_', ' ')} {plugins[other]}; x = ratio to the best")
    title = (f"{args.workload} ({describe_params(results[0].config.params)}; seed "
             f"{args.seed}; {args.arch}{what}")
    if args.json:
        doc = compare_document(results)
        doc["axis"] = axis
        doc["plot"] = str(plot) if plot is not None else None
    if axis == "rmap":
        _short_labels(results)
    if plot is not None:
        ptitle = f"{args.workload} ({describe_params(results[0].config.params)})"
        if axis == "rmap":
            compare_plot(results, plot, title=ptitle + _machine_note(plugins))
        else:  # rows are plugins of one kind: never merged, named by the plugin
            bars([r.label for r in results],
                 [(t, [float(get(r)) for r in results]) for t, get in COMPARE_PANELS],
                 ptitle, plot)
    if args.json:
        print(json.dumps(doc, indent=1, sort_keys=True))
        return 0
    out.print(compare_table(results, title=title, metrics=_axis_metrics(axis),
                            merge=axis == "rmap"))
    if plot is not None:
        out.print(f"plot: {plot}")
    return 0


def cmd_sweep(args: argparse.Namespace, out: Console) -> int:
    """A grid of parameter values times every configuration, on a process pool."""

    from .experiments.plots import sweep_plot
    from .experiments.report import compare_table, describe_params
    from .experiments.results import dumps
    from .experiments.sweep import grid, jobs, run_jobs

    values = parse_params(args.param, allow_lists=True)
    swept = [k for k, v in values.items() if len(v) > 1]
    if not swept:
        raise UsageError("sweep needs at least one --param with several values, "
                         "e.g. --param children=4,8,16")
    for combo in grid(values):
        _check_workload(args.workload, combo)
    if args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    plugins = _machine_plugins(args)
    plot = _plot_path(args, f"{args.workload}-sweep-{swept[0]}.png")
    todo = jobs(args.workload, values, seed=args.seed, arch=args.arch)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True,
                  disable=args.json and not sys.stderr.isatty()) as bar:
        task = bar.add_task(f"sweep {args.workload}", total=len(todo))
        if _machine_note(plugins):
            results = _run_with_plugins(todo, plugins, args.jobs,
                                        progress=lambda: bar.advance(task))
        else:
            results = run_jobs(todo, args.jobs, progress=lambda job: bar.advance(task))
    if args.json:
        print(dumps(results))
    note = _machine_note(plugins)
    _short_labels(results)
    if plot is not None:
        sweep_plot(results, swept[0], plot,
                   title=f"{args.workload}: sweep of {swept[0]}{note}")
    if args.json:
        return 0
    width = len(todo) // len(grid(values))  # jobs are the grid times the matrix
    for i in range(0, len(results), width):
        rows = results[i:i + width]
        out.print(compare_table(rows, title=f"{args.workload} "
                                f"({describe_params(rows[0].config.params)}{note})"))
    if plot is not None:
        out.print(f"plot: {plot}")
    return 0


def _run_with_plugins(todo: Sequence[Any], plugins: dict[str, str], processes: int,
                      progress: Callable[[], None]) -> list[Any]:
    """Run sweep jobs with chosen file rmap and reclaim plugins (``sweep.Job`` does not
    carry them): inline, or on a process pool; results in job order."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from .experiments.results import Result
    from .experiments.runner import run_spec

    specs = [{"workload": j.workload, "params": j.params, "rmap": j.rmap,
              "policy": j.policy, "seed": j.seed, "arch": j.arch, **plugins} for j in todo]
    if processes <= 1:
        out = []
        for spec in specs:
            out.append(Result.from_json(run_spec(spec)))
            progress()
        return out
    with ProcessPoolExecutor(max_workers=processes, mp_context=get_context("spawn")) as pool:
        texts = []
        for text in pool.map(run_spec, specs):
            texts.append(text)
            progress()
    return [Result.from_json(t) for t in texts]


def cmd_rerun(args: argparse.Namespace, out: Console) -> int:
    """Run a recorded result again; exit 1 if any reproducible number differs."""
    from .experiments.runner import rerun

    try:
        text = Path(args.result).read_text()
    except OSError as exc:
        raise UsageError(f"cannot read {args.result}: {exc.strerror}") from None
    from .experiments.results import load

    try:
        old = load(text)
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{args.result} is not an mmsim result: {exc}") from None
    new = rerun(text)
    if new.reproducible_json() == old.reproducible_json():
        out.print(f"reproduced: {old.config.workload} on {old.label}, identical")
        return 0
    import difflib

    diff = difflib.unified_diff(old.reproducible_json().splitlines(),
                                new.reproducible_json().splitlines(), "recorded", "rerun",
                                lineterm="")
    print("\n".join(diff))
    return 1


def cmd_reproduce(args: argparse.Namespace, out: Console) -> int:
    """Measure the 2004 claims; write results.md and its plots."""
    from .experiments.reproduce import reproduce

    err = Console(stderr=True)
    path, claims = reproduce(args.out, progress=lambda name: err.print(
        f"[dim]measuring {name}[/]") if err.is_terminal else None)
    for c in claims:
        out.print(f"{c.verdict:>20}  {c.title}")
    out.print(f"wrote {path}")
    return 0


COMMANDS = {
    "plugins": cmd_plugins, "workloads": cmd_workloads, "run": cmd_run,
    "compare": cmd_compare, "sweep": cmd_sweep, "rerun": cmd_rerun,
    "reproduce": cmd_reproduce,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mmsim``; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        configure_logging(args.log_level, args.log_format)
        out = Console()
        if not out.is_terminal and "COLUMNS" not in os.environ:
            out = Console(width=120)  # a pipe or file: do not squeeze tables to 80
        if args.command not in COMMANDS:  # a command added by another module (trace)
            status: int = args.func(args)
            return status
        return COMMANDS[args.command](args, out)
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else 0
    except (UsageError, ConfigError) as exc:
        print(f"mmsim: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
