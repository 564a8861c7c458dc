"""mmsim: run, compare and sweep workloads over the installed rmap schemes.

    mmsim plugins                          installed plugins
    mmsim workloads                        built-in workloads and their parameters
    mmsim run WORKLOAD --rmap X [--policy P] [--param k=v ...] [--seed N] [--json]
    mmsim compare WORKLOAD [--param k=v ...] [--plot out.png] [--json]
    mmsim sweep WORKLOAD --param k=v1,v2,... [--jobs N] [--plot out.png] [--json]
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
from collections.abc import Sequence
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
        sp.add_argument("--json", action="store_true", help="print JSON, not a table")

    r = sub.add_parser("run", help="run a workload on one configuration")
    common(r)
    r.add_argument("--rmap", required=True, help="rmap scheme (see mmsim plugins)")
    r.add_argument("--policy", default=None, help="mremap policy plugin, e.g. unshare")

    c = sub.add_parser("compare", help="run a workload on every valid configuration")
    common(c)
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


def cmd_run(args: argparse.Namespace, out: Console) -> int:
    """Run one workload on one configuration."""
    from .experiments.report import compare_table, describe_params
    from .experiments.runner import run

    params = parse_params(args.param)
    _check_workload(args.workload, params)
    _check_scheme(args.rmap, args.policy)
    result = run(args.workload, params, rmap=args.rmap, policy=args.policy, seed=args.seed,
                 arch=args.arch)
    if args.json:
        print(result.to_json(indent=1, sort_keys=True))
        return 0
    out.print(compare_table([result], title=f"{args.workload} "
                            f"({describe_params(result.config.params)}; seed "
                            f"{args.seed}; {args.arch})"))
    d = result.derived
    out.print(f"faults: {', '.join(f'{k} {v}' for k, v in d.faults.items() if v) or 'none'}"
              f"; metadata objects: "
              f"{', '.join(f'{k} {v}' for k, v in d.metadata_objects.items()) or 'none'}")
    if result.errors or result.segfaults:
        out.print(f"failed ops: {result.errors}; segfaults: {result.segfaults}")
    return 0


def _plot_path(args: argparse.Namespace, default: str) -> Path | None:
    if args.no_plot:
        return None
    path = Path(args.plot) if args.plot else Path("results") / default
    if path.suffix.lower() not in (".png", ".svg"):
        raise UsageError(f"--plot {str(path)!r} must end in .png or .svg")
    return path


def cmd_compare(args: argparse.Namespace, out: Console) -> int:
    """Run one workload on every valid configuration: table, JSON and plot."""
    import json

    from .experiments.plots import compare_plot
    from .experiments.report import compare_document, compare_table, describe_params
    from .experiments.runner import configurations, run

    params = parse_params(args.param)
    _check_workload(args.workload, params)
    plot = _plot_path(args, f"{args.workload}.png")
    configs = configurations()
    results = []
    for rmap, policy in configs:
        results.append(run(args.workload, params, rmap=rmap, policy=policy,
                           seed=args.seed, arch=args.arch))
    if plot is not None:
        compare_plot(results, plot, title=f"{args.workload} "
                     f"({describe_params(results[0].config.params)})")
    if args.json:
        doc = compare_document(results)
        doc["plot"] = str(plot) if plot is not None else None
        print(json.dumps(doc, indent=1, sort_keys=True))
        return 0
    out.print(compare_table(results, title=f"{args.workload} "
                            f"({describe_params(results[0].config.params)}; seed "
                            f"{args.seed}; {args.arch}): x = ratio to the best "
                            "configuration"))
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
    plot = _plot_path(args, f"{args.workload}-sweep-{swept[0]}.png")
    todo = jobs(args.workload, values, seed=args.seed, arch=args.arch)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True,
                  disable=args.json and not sys.stderr.isatty()) as bar:
        task = bar.add_task(f"sweep {args.workload}", total=len(todo))
        results = run_jobs(todo, args.jobs, progress=lambda job: bar.advance(task))
    if plot is not None:
        sweep_plot(results, swept[0], plot)
    if args.json:
        print(dumps(results))
        return 0
    width = len(todo) // len(grid(values))  # jobs are the grid times the matrix
    for i in range(0, len(results), width):
        rows = results[i:i + width]
        out.print(compare_table(rows, title=f"{args.workload} "
                                f"({describe_params(rows[0].config.params)})"))
    if plot is not None:
        out.print(f"plot: {plot}")
    return 0


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
