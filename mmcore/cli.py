"""mmsim: run, compare and sweep workloads over the installed rmap schemes.

    mmsim plugins [--json]                 installed plugins and what satisfies their needs
    mmsim workloads [--json]               built-in workloads and their parameters
    mmsim run WORKLOAD --rmap X [--mremap-policy P] [--param k=v ...] [--seed N] [--json]
    mmsim compare WORKLOAD [--param k=v ...] [--plot out.png] [--json]
    mmsim compare WORKLOAD --axis file_rmap|reclaim|mapcount [--rmap X] [--mremap-policy P] ...
    mmsim compare WORKLOAD [--only NAME,...] [--exclude NAME,...] [--timeout SECONDS]
    mmsim sweep WORKLOAD --param k=v1,v2,... [--jobs N] [--store DIR] [--seeds N] ...
    mmsim results list|export|report|merge STORE ...   a result store
    mmsim rerun RESULT.json [--json]       run a recorded result again and diff it
    mmsim trace import|info|record|replay  traces (mmcore.experiments.trace_cli)
    mmsim reproduce [--out DIR] [--claims KEY,...] [--json]
                                           measure the 2004 thread's claims, and the traces
    mmsim bench [--pages N] [--output F]   per-page costs beside the real kernel's
    mmsim lab list|show|template|grade     the lab kit (mmcore_contrib.labs.cli)

``run``, ``rerun``, ``compare``, ``sweep``, ``reproduce`` and ``trace replay`` run their
configurations as cells (:mod:`mmcore.experiments.cells_cli`) and share ``--timeout``,
``--jobs``, ``--executor``, ``--scheduler`` and (but ``rerun``) ``--store``; the
commands that run several share ``--only`` and ``--exclude``. A broken or timed-out
plugin costs only its own rows, which name the plugin and the hook.

Every option has one spelling wherever it appears (``--rmap``, ``--mremap-policy``,
``--file-rmap``, ``--reclaim``, ``--observe``, ``--json``), the same as the pytest
plugin's (``--mmcore-rmap``, ``--mmcore-mremap-policy``, ...) and the Python keywords
(``rmap=``, ``mremap_policy=``, ...). ``--observe NAME`` (repeatable) adds an observer
plugin such as ``event_log`` (its events go to stderr at ``--log-level debug``, the
default when observing).

Exit status: 0 success; 1 the command ran and failed (a file that cannot be read,
parsed or written, a broken plugin, a rerun that differs, a replay mismatch; the
commands that run configurations report every healthy one first); 2 the command
line is wrong (an unknown option, workload or plugin, a bad value); 130 interrupted
(Ctrl-C). Every error is one line on stderr, never a traceback. Nothing is written
unless an output path is given, or the default path is printed (on stderr) before
anything is written. structlog is configured here and only here.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn, cast

import structlog
from rich.console import Console
from rich.table import Table

from . import __version__
from .errors import ConfigError, MachineBroken, PluginError

EXIT_FAILURE = 1
EXIT_USAGE = 2
#: 128 + SIGINT, what a shell reports for a command killed by Ctrl-C.
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """Bad command-line input: reported as one line on stderr, exit status 2."""


class Failure(Exception):
    """The command ran and failed (an input it cannot use, an output it cannot write):
    reported as one line on stderr, exit status 1."""


class DefaultsFormatter(argparse.HelpFormatter):
    """Help that shows each option's default, where it has a meaningful one (not for
    flags, lists or "not set")."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if "%(default)" in text or not action.option_strings or default is None \
                or isinstance(default, bool) or default == [] \
                or default is argparse.SUPPRESS:
            return text
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage dump) and exit 2, and whose
    help shows the defaults."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", DefaultsFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        """Report ``message`` as a usage error."""
        raise UsageError(message)


def count(text: str) -> int:
    """An argparse type: a whole number >= 0."""
    return _bounded(text, 0)


def positive(text: str) -> int:
    """An argparse type: a whole number >= 1."""
    return _bounded(text, 1)


def _bounded(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"{text} is less than {low}")
    if value >= 1 << 63:
        raise argparse.ArgumentTypeError(f"{text} is too large")
    return value


def seconds(text: str) -> float:
    """An argparse type: a number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value < 1 << 31:  # NaN fails too
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of seconds")
    return value


#: The largest magnitude of an integer ``--param`` value (a signed 64-bit number).
PARAM_INT_LIMIT = 1 << 63


def parse_params(items: Sequence[str], allow_lists: bool = False) -> dict[str, Any]:
    """``["pages=64", "children=8"]`` -> ``{"pages": "64", "children": "8"}``; with
    ``allow_lists`` each value is split on commas into a list. An integer beyond 64 bits
    is a usage error here (the workload's own checks see the rest)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key or not key.isidentifier() or value == "":
            raise UsageError(f"malformed --param {item!r}: expected NAME=VALUE")
        if key in out:
            raise UsageError(f"--param {key} given twice")
        values = [v.strip() for v in value.split(",")] if allow_lists else [value]
        if any(v == "" for v in values):
            raise UsageError(f"malformed --param {item!r}: empty value in the list")
        for v in values:
            if v.lstrip("+-").isdigit() and abs(int(v)) >= PARAM_INT_LIMIT:
                raise UsageError(f"--param {key}={v}: out of range (a 64-bit integer)")
        out[key] = values if allow_lists else value
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


def add_json_option(sp: argparse.ArgumentParser) -> None:
    """``--json``: the same report as JSON on stdout."""
    sp.add_argument("--json", action="store_true", help="print JSON, not a table")


def add_plugin_options(sp: argparse.ArgumentParser) -> None:
    """``--file-rmap`` and ``--reclaim``: the Machine's file rmap and reclaim plugins."""
    sp.add_argument("--file-rmap", default=None, metavar="NAME",
                    help="file rmap plugin: i_mmap_tree (the default) or i_mmap_list")
    sp.add_argument("--reclaim", default=None, metavar="NAME",
                    help="reclaim policy plugin: lru2 (the default) or clock")


def add_machine_options(sp: argparse.ArgumentParser, rmap: str | None = None,
                        rmap_help: str = "rmap scheme (see mmsim plugins)",
                        rmap_required: bool = False) -> None:
    """The options that choose a Machine's plugins, spelt the same on every command:
    ``--rmap``, ``--mremap-policy``, ``--file-rmap``, ``--reclaim``, ``--observe``."""
    sp.add_argument("--rmap", default=rmap, required=rmap_required, metavar="NAME",
                    help=rmap_help)
    sp.add_argument("--mremap-policy", default=None, metavar="NAME",
                    help="mremap policy plugin, e.g. unshare (default: none)")
    add_plugin_options(sp)
    sp.add_argument("--observe", action="append", default=[], metavar="NAME",
                    help="also register observer plugin NAME, e.g. event_log "
                         "(repeatable)")


def build_parser() -> Parser:
    """The argument parser of ``mmsim``."""
    p = Parser(prog="mmsim", description="Compare Linux reverse-mapping schemes on "
               "simulated workloads.")
    p.add_argument("--version", action="version", version=f"mmsim (mmcore) {__version__}")
    p.add_argument("--log-level", default=None,
                   choices=["debug", "info", "warning", "error"],
                   help="structlog events at or above this level go to stderr (default: "
                        "debug with --observe, else warning)")
    p.add_argument("--log-format", default="console", choices=["console", "json"],
                   help="how structlog events are printed")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True

    pl = sub.add_parser("plugins", help="list installed plugins")
    add_json_option(pl)
    w = sub.add_parser("workloads", help="list built-in workloads and their parameters")
    add_json_option(w)

    def common(sp: argparse.ArgumentParser, lists: bool = False) -> None:
        sp.add_argument("workload", help="a built-in workload (see mmsim workloads)")
        sp.add_argument("--param", action="append", default=[], metavar="K=V1,V2" if lists
                        else "K=V", help="a workload parameter (repeatable)")
        sp.add_argument("--seed", type=int, default=0, help="seed of the workload")
        sp.add_argument("--arch", default="x86_64", choices=["x86_64", "i386"],
                        help="struct-size profile")
        add_json_option(sp)

    def plot_options(sp: argparse.ArgumentParser, default: str) -> None:
        sp.add_argument("--plot", default=None, metavar="FILE",
                        help=f"plot file (.png or .svg; its directory is created if "
                             f"missing); default {default}, announced before it is "
                             f"written")
        sp.add_argument("--no-plot", action="store_true", help="write no plot")

    from .experiments.cells_cli import add_executor_options, add_selection_options

    r = sub.add_parser("run", help="run a workload on one configuration")
    common(r)
    add_machine_options(r, rmap_required=True)
    add_executor_options(r, "run")

    c = sub.add_parser("compare", help="run a workload on every valid configuration")
    common(c)
    c.add_argument("--axis", default="rmap",
                   choices=["rmap", "file_rmap", "reclaim", "mapcount"],
                   help="what to compare: the rmap configurations, the file rmap plugins, "
                        "the reclaim policies, or the mapcount designs (each against the "
                        "brute-force truth)")
    add_machine_options(c, rmap_help="with --axis file_rmap or reclaim: the rmap scheme "
                                     "(default anon_vma_chain)")
    add_selection_options(c, "a scheme, a scheme+policy, or on another --axis a plugin")
    add_executor_options(c, "configuration")
    plot_options(c, "results/WORKLOAD.png")

    from .experiments.sweep_cli import add_sweep_options

    s = sub.add_parser("sweep", help="a grid of parameter values x every configuration")
    common(s, lists=True)
    add_sweep_options(s)
    plot_options(s, "results/WORKLOAD-sweep-PARAM.png")

    rr = sub.add_parser("rerun", help="run a recorded result (mmsim run --json) again")
    rr.add_argument("result", help="JSON file of one result")
    add_executor_options(rr, "run", store=False)
    add_json_option(rr)

    from .experiments.reproduce import DEFAULT_OUT_DIR, claim_keys

    rp = sub.add_parser("reproduce", help="measure the 2004 claims into results.md")
    rp.add_argument("--out", default=str(DEFAULT_OUT_DIR), metavar="DIR",
                    help="directory for results.md and img/ (created if missing)")
    rp.add_argument("--claims", action="append", default=[], metavar="KEY[,KEY]",
                    help="measure only these claims (repeatable; default: every claim): "
                         + ", ".join(claim_keys()))
    add_selection_options(rp)
    add_executor_options(rp, "run")
    add_json_option(rp)

    try:  # mmsim trace ... (import, info, record, replay) lives with the traces
        from .experiments.trace_cli import add_trace_commands
    except ImportError:
        pass
    else:
        add_trace_commands(cast("argparse._SubParsersAction[argparse.ArgumentParser]", sub))
    from .bench_cli import add_bench_command  # mmsim bench: mmcore beside the real kernel
    add_bench_command(cast("argparse._SubParsersAction[argparse.ArgumentParser]", sub))
    from .experiments.results_cli import add_results_command  # the stores of sweeps
    add_results_command(cast("argparse._SubParsersAction[argparse.ArgumentParser]", sub))
    try:  # mmsim lab ... lives with the lab kit, a package mypy sees only by its path
        lab_cli = importlib.import_module("mmcore_contrib.labs.cli")
    except ImportError:
        pass
    else:
        lab_cli.add_lab_command(sub)
    return p


def announce(path: Path | str, what: str, how: str) -> None:
    """Say on stderr where a default output goes, before anything is written."""
    print(f"mmsim: writing {what} to {path} ({how})", file=sys.stderr)


def print_json(doc: Any) -> None:
    """One JSON document on stdout (sorted keys, so output diffs cleanly)."""
    import json

    print(json.dumps(doc, indent=1, sort_keys=True))


# --- commands ---------------------------------------------------------------------------


def _need_providers(installed: dict[str, type]) -> dict[str, list[str]]:
    """For each capability some plugin needs, the plugins that provide it."""
    from .plugins import plugin_info

    out: dict[str, list[str]] = {}
    for name, cls in installed.items():
        for cap in plugin_info(cls).provides:
            out.setdefault(cap, []).append(name)
    return out


def _needs_text(needs: frozenset[str], providers: dict[str, list[str]]) -> str:
    """What satisfies each need: ``unshare`` (the plugins that provide it), or the
    capability's name when nothing installed provides it."""
    parts = [" or ".join(providers[cap]) if cap in providers
             else f"{cap} (nothing installed provides it)" for cap in sorted(needs)]
    return ", ".join(parts) or "-"


def cmd_plugins(args: argparse.Namespace, out: Console) -> int:
    """Table (or JSON) of installed plugins with their distribution and version; a need
    is shown as the plugins that satisfy it (``anonmm`` needs ``unshare``), not as the
    capability's name. Broken and clashing plugins are listed with their status."""
    from .plugins import discover, installed_plugins, plugin_info, valid_configurations

    providers = _need_providers(installed_plugins())
    configs = [r if p is None else f"{r}+{p}" for r, p in valid_configurations()]
    rows: list[dict[str, Any]] = []
    for e in discover():
        info = plugin_info(e.cls) if e.cls is not None else None
        rows.append({"name": e.name, "kind": e.kind, "status": e.status,
                     # what Machine(rmap=...) and --rmap take: distribution:name on a clash
                     "use_as": e.qualified if e.status == "clash" else e.name,
                     "distribution": e.distribution, "version": e.version,
                     "problem": e.problem,
                     "needs": {} if info is None else
                     {cap: providers.get(cap, []) for cap in sorted(info.needs)},
                     "needs_text": "-" if info is None else
                     _needs_text(info.needs, providers),
                     "provides": [] if info is None else sorted(info.provides),
                     "summary": e.problem or (info.summary if info else "")})
    if args.json:
        print_json({"plugins": [{k: v for k, v in r.items() if k != "needs_text"}
                                for r in rows], "valid_configurations": configs})
        return 0
    table = Table(title="installed mmcore plugins", title_justify="left",
                  header_style="bold")
    for col in ("name", "kind", "status", "distribution", "needs", "summary"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["use_as"], r["kind"], r["status"],
                      f"{r['distribution']} {r['version']}", r["needs_text"], r["summary"])
    out.print(table)
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
    try:
        make_params(name, params)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def check_observers(observers: Sequence[str]) -> None:
    """UsageError unless every ``--observe`` name is an installed observer plugin."""
    from .plugins import resolve

    try:
        for name in observers:
            resolve(name, "observer")
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def check_scheme(rmap: str, mremap_policy: str | None, observers: Sequence[str] = ()
                 ) -> None:
    """UsageError unless the named rmap scheme, mremap policy and observers exist and
    the scheme's needs are met (``anonmm`` without ``unshare``)."""
    from .plugins import missing_needs, resolve

    check_observers(observers)
    try:
        classes = [resolve(rmap, "rmap")]
        if mremap_policy is not None:
            classes.append(resolve(mremap_policy, "mremap_policy"))
        problems = missing_needs(classes)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    if problems:
        from .plugins import installed_plugins, plugin_info

        infos = [plugin_info(c) for c in classes]
        missing = set().union(*(i.needs for i in infos)) - \
            set().union(*(i.provides for i in infos))
        providers = _need_providers(installed_plugins())
        hint = [f"{cap} is provided by {' or '.join(providers[cap])}"
                for cap in sorted(missing) if cap in providers]
        raise UsageError("; ".join(problems + hint))


def machine_plugins(args: argparse.Namespace) -> dict[str, str]:
    """``{"file_rmap": ..., "reclaim": ...}`` from the options (the defaults where not
    given); UsageError names the choices for an unknown plugin."""
    from .experiments.results import DEFAULT_FILE_RMAP, DEFAULT_RECLAIM
    from .plugins import resolve

    chosen = {"file_rmap": args.file_rmap or DEFAULT_FILE_RMAP,
              "reclaim": args.reclaim or DEFAULT_RECLAIM}
    try:
        for kind, name in chosen.items():
            resolve(name, kind)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    return chosen


def _machine_note(plugins: dict[str, str]) -> str:
    """``; file rmap X; reclaim Y; mapcount Z`` for titles, only for what is not the
    default (a ``plugins`` without ``mapcount`` names the default design)."""
    from .experiments.results import DEFAULT_FILE_RMAP, DEFAULT_MAPCOUNT, DEFAULT_RECLAIM

    note = ""
    if plugins["file_rmap"] != DEFAULT_FILE_RMAP:
        note += f"; file rmap {plugins['file_rmap']}"
    if plugins["reclaim"] != DEFAULT_RECLAIM:
        note += f"; reclaim {plugins['reclaim']}"
    if plugins.get("mapcount", DEFAULT_MAPCOUNT) != DEFAULT_MAPCOUNT:
        note += f"; mapcount {plugins['mapcount']}"
    return note


def _short_labels(results: Sequence[Any]) -> None:
    """Name rows by rmap[+policy] only: the file rmap and reclaim plugins fixed for the
    whole table are in its title (the JSON keeps the full labels)."""
    for r in results:
        c = r.config
        r.display_label = c.rmap if c.policy is None else f"{c.rmap}+{c.policy}"


def _run_cell(args: argparse.Namespace, cell: Any, description: str) -> Any:
    """The :class:`~mmcore.experiments.cells.Outcome` of one cell, run as every command
    runs its cells (:func:`~mmcore.experiments.cells_cli.run_cells`: the executor, store
    and ``--timeout`` the options choose)."""
    from .experiments.cells_cli import run_cells

    return run_cells(args, [cell], description).outcomes[0]


def _failed_run(out: Console, failure: Any, json_doc: dict[str, Any] | None) -> int:
    """Report the RunFailure ``failure`` of the one run of ``run`` or ``rerun``: the
    failed-configurations table (``json_doc`` with it as ``failures``, when given, as
    JSON), then one error line; exit status 1."""
    from .experiments.report import failure_table

    if json_doc is not None:
        print_json({**json_doc, "failures": [failure.to_dict()]})
    else:
        out.print(failure_table([failure]))
    named = failure.plugin is not None or failure.hook is not None
    what = (f"{failure.status} in {failure.where()}" if named else
            "" if failure.status == "broken" else failure.status)  # no plugin to blame
    return _error(f"the run failed: {failure.label}{f' {what}' if what else ''}: "
                  f"{failure.reason}", EXIT_FAILURE)


def cmd_run(args: argparse.Namespace, out: Console) -> int:
    """Run one workload on one configuration, as a cell (the cell ``compare`` and
    ``sweep`` build for it: one ``--store`` serves them all). A run whose plugin fails
    (raises, or runs past ``--timeout``) is a failed row naming the plugin and hook, and
    the exit status is 1."""
    from .experiments.cells import make_cell
    from .experiments.report import compare_table, describe_params

    params = parse_params(args.param)
    _check_workload(args.workload, params)
    check_scheme(args.rmap, args.mremap_policy, args.observe)
    plugins = machine_plugins(args)
    cell = make_cell(args.workload, params, rmap=args.rmap, mremap_policy=args.mremap_policy,
                     seed=args.seed, arch=args.arch, observers=args.observe, **plugins)
    outcome = _run_cell(args, cell, f"run {args.workload}")
    if outcome.failure is not None:
        return _failed_run(out, outcome.failure.run_failure(cell.label),
                           {} if args.json else None)
    result = outcome.result
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
    """The plot file of ``--plot``, or ``results/DEFAULT`` (announced on stderr now,
    before any run), or None with ``--no-plot``."""
    if args.no_plot:
        return None
    path = Path(args.plot) if args.plot else Path("results") / default
    if path.suffix.lower() not in (".png", ".svg"):
        raise UsageError(f"--plot {str(path)!r} must end in .png or .svg")
    if not args.plot:
        announce(path, "the plot", "the default; --plot FILE or --no-plot to change")
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


def _compare_cells(args: argparse.Namespace, params: dict[str, Any],
                   plugins: dict[str, str]) -> dict[str, tuple[tuple[str, ...], Any]]:
    """Every configuration of a comparison, by label: the names that choose it with
    ``--only``/``--exclude``, and its cell (:mod:`mmcore.experiments.cells`)."""
    from .experiments.cells import make_cell
    from .experiments.cells_cli import scheme_names
    from .experiments.runner import axis_plugins, configurations

    base = {"seed": args.seed, "arch": args.arch, "observers": args.observe, **plugins}
    cells: dict[str, tuple[tuple[str, ...], Any]] = {}
    if args.axis == "rmap":
        for rmap, policy in configurations():
            names = scheme_names(rmap, policy)
            cells[names[1]] = (names, make_cell(args.workload, params, rmap=rmap,
                                                mremap_policy=policy, **base))
    else:
        for name in axis_plugins(args.axis):
            cells[name] = ((name,), make_cell(
                args.workload, params, rmap=args.rmap or "anon_vma_chain",
                mremap_policy=args.mremap_policy, **{**base, args.axis: name}))
    return cells


def cmd_compare(args: argparse.Namespace, out: Console) -> int:
    """Run one workload on every valid configuration (or every plugin along ``--axis``):
    table, JSON and plot. Each configuration is a cell run by the executor the options
    choose, into ``--store`` if given (a rerun reuses it). A configuration whose plugin
    fails (raises, or runs past ``--timeout``) is a failed row naming the plugin and
    hook; the others still run, and the exit status is then 1."""
    import json

    from .experiments.cells_cli import choose, run_cells
    from .experiments.isolation import RunFailure
    from .experiments.plots import COMPARE_PANELS, bars, compare_plot
    from .experiments.report import (
        compare_document,
        compare_table,
        describe_params,
        failure_table,
    )
    from .experiments.results import Result
    from .experiments.workloads import make_params

    params = parse_params(args.param)
    _check_workload(args.workload, params)
    plugins = machine_plugins(args)
    axis = args.axis
    if axis == "mapcount":
        return _compare_mapcount(args, out, params, plugins)
    if axis == "rmap":
        if args.rmap is not None or args.mremap_policy is not None:
            raise UsageError("--rmap and --mremap-policy choose the scheme of a --axis "
                             "file_rmap or reclaim comparison; --axis rmap runs every "
                             "configuration")
        check_observers(args.observe)
        suffix = ""
    else:
        if getattr(args, axis) is not None:
            raise UsageError(f"--{axis.replace('_', '-')} fixes the plugin that --axis "
                             f"{axis} compares: give one or the other")
        check_scheme(args.rmap or "anon_vma_chain", args.mremap_policy, args.observe)
        suffix = f"-{axis}"
    cells = _compare_cells(args, params, plugins)
    chosen = choose(args, {k: v[0] for k, v in cells.items()})
    plot = _plot_path(args, f"{args.workload}{suffix}.png")
    sweep = run_cells(args, [cells[label][1] for label in chosen],
                      f"compare {args.workload}")
    results: list[Result] = []
    failures: list[RunFailure] = []
    for label, outcome in zip(chosen, sweep.outcomes, strict=True):
        if outcome.failure is not None:
            failures.append(outcome.failure.run_failure(label))
        elif outcome.result is not None:
            if axis != "rmap":
                outcome.result.display_label = label
            results.append(outcome.result)
    shown = describe_params(make_params(args.workload, params).to_dict())
    if axis == "rmap":
        what = f"{_machine_note(plugins)}): x = ratio to the best configuration"
    else:
        policy = args.mremap_policy
        rmap = args.rmap or "anon_vma_chain"
        scheme = rmap if policy is None else f"{rmap}+{policy}"
        other = "reclaim" if axis == "file_rmap" else "file_rmap"
        what = (f"): {axis.replace('_', ' ')} plugins with {scheme} and "
                f"{other.replace('_', ' ')} {plugins[other]}; x = ratio to the best")
    title = f"{args.workload} ({shown}; seed {args.seed}; {args.arch}{what}"
    if args.json:
        doc = compare_document(results)
        doc["axis"] = axis
        doc["plot"] = str(plot) if plot is not None and results else None
        doc["failures"] = [f.to_dict() for f in failures]
    if axis == "rmap":
        _short_labels(results)
    if plot is not None and results:
        ptitle = f"{args.workload} ({shown})"
        if axis == "rmap":
            compare_plot(results, plot, title=ptitle + _machine_note(plugins))
        else:  # rows are plugins of one kind: never merged, named by the plugin
            bars([r.label for r in results],
                 [(t, [float(get(r)) for r in results]) for t, get in COMPARE_PANELS],
                 ptitle, plot)
    if args.json:
        print(json.dumps(doc, indent=1, sort_keys=True))
    else:
        out.print(compare_table(results, title=title, metrics=_axis_metrics(axis),
                                merge=axis == "rmap", failures=failures))
        if failures:
            out.print(failure_table(failures))
        if plot is not None and results:
            out.print(f"plot: {plot}")
    if failures:
        return _error(f"{len(failures)} of {len(chosen)} configurations failed: "
                      + ", ".join(f"{f.label} ({f.status})" for f in failures),
                      EXIT_FAILURE)
    return 0


def _compare_mapcount(args: argparse.Namespace, out: Console, params: dict[str, Any],
                      plugins: dict[str, str]) -> int:
    """``compare --axis mapcount``: every mapcount design on the workload, its /proc
    errors, differing decisions and costs against the brute-force truth
    (:mod:`mmcore.experiments.mapcount_study`): table, JSON and plot. Each design is a
    study cell run by the executor the options choose, into ``--store`` if given; a
    design whose plugin fails is a failed row naming the plugin and hook, and the exit
    status is then 1."""
    import json

    from .experiments.cells import MAPCOUNT_STUDY, make_cell
    from .experiments.cells_cli import choose, run_cells
    from .experiments.mapcount_study import (
        MapcountStudy,
        default_designs,
        study_plot,
        study_tables,
    )
    from .experiments.report import describe_params, failure_table
    from .experiments.workloads import make_params

    if args.observe:
        raise UsageError("--observe: not supported with --axis mapcount (the study "
                         "installs its own decision audit)")
    rmap = args.rmap or "anon_vma_chain"
    check_scheme(rmap, args.mremap_policy)
    chosen = choose(args, {n: (n,) for n in default_designs()})
    plot = _plot_path(args, f"{args.workload}-mapcount.png")
    todo = [make_cell(args.workload, params, rmap=rmap, mremap_policy=args.mremap_policy,
                      seed=args.seed, arch=args.arch, mapcount=design,
                      study=MAPCOUNT_STUDY, **plugins) for design in chosen]
    sweep = run_cells(args, todo, f"compare {args.workload} --axis mapcount")
    failures = [o.failure.run_failure(design)
                for design, o in zip(chosen, sweep.outcomes, strict=True)
                if o.failure is not None]
    p = make_params(args.workload, params)
    s = MapcountStudy(args.workload, p.to_dict(), args.seed,
                      [o.study for o in sweep.outcomes if o.study is not None])
    shown = describe_params(p.to_dict())
    if plot is not None and s.runs:
        study_plot(s, plot, f"{args.workload} ({shown}): mapcount designs")
    if args.json:
        doc = s.to_dict()
        doc["plot"] = str(plot) if plot is not None and s.runs else None
        if failures:
            doc["failures"] = [f.to_dict() for f in failures]
        print(json.dumps(doc, indent=1, sort_keys=True))
    else:
        for table in study_tables(s, title=f"{args.workload} ({shown}; seed {args.seed}; "
                                           f"rmap {rmap}): mapcount designs"):
            out.print(table)
        if failures:
            out.print(failure_table(failures))
        if plot is not None and s.runs:
            out.print(f"plot: {plot}")
    if failures:
        return _error(f"{len(failures)} of {len(chosen)} designs failed: "
                      + ", ".join(f"{f.label} ({f.status})" for f in failures),
                      EXIT_FAILURE)
    return 0


def read_input(path: str) -> str:
    """The UTF-8 text of an input file; :class:`Failure` (one line naming the file and,
    for bad UTF-8, the line) if it cannot be read."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise Failure(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise Failure(f"{path}:{line}: not UTF-8 text ({exc.reason})") from None


def cmd_rerun(args: argparse.Namespace, out: Console) -> int:
    """Run a recorded result again, as the cell of its configuration
    (:func:`~mmcore.experiments.cells.result_cell`) on the executor and under the
    ``--timeout`` the options choose (a result made from an op list, which no cell
    names, reruns here); exit 1 if any reproducible number differs, or if the rerun
    fails (a row naming the plugin and hook)."""
    import difflib

    from .experiments.cells import result_cell
    from .experiments.results import OPS_WORKLOAD, ResultError, load
    from .experiments.runner import rerun

    text = read_input(args.result)
    try:
        old = load(text)
    except ResultError as exc:
        raise Failure(f"{args.result} is not an mmsim result: {exc}") from None
    doc = {"result": args.result, "workload": old.config.workload,
           "configuration": old.label}
    if old.config.workload == OPS_WORKLOAD:
        if args.timeout is not None or args.jobs > 1 or args.executor != "local" \
                or args.scheduler is not None:
            raise UsageError(f"{args.result} was made from an op list, which reruns in "
                             f"this process: no --timeout, --jobs or --executor")
        new = rerun(text)
    else:
        cell = result_cell(old)
        outcome = _run_cell(args, cell, f"rerun {old.config.workload}")
        if outcome.failure is not None:
            return _failed_run(out, outcome.failure.run_failure(old.label),
                               {**doc, "identical": False, "diff": []} if args.json
                               else None)
        new = outcome.result
    diff = list(difflib.unified_diff(old.reproducible_json().splitlines(),
                                     new.reproducible_json().splitlines(), "recorded",
                                     "rerun", lineterm=""))
    if args.json:
        print_json({**doc, "identical": not diff, "diff": diff})
    elif not diff:
        out.print(f"reproduced: {old.config.workload} on {old.label}, identical")
    else:
        print("\n".join(diff))
    return 0 if not diff else EXIT_FAILURE


def cmd_reproduce(args: argparse.Namespace, out: Console) -> int:
    """Measure the 2004 claims; write results.md and its plots (the default directory is
    announced before anything is written). The runs are cells, on the executor and into
    the store the options choose; a configuration whose run fails is a row marked
    ``broken`` or ``timed out`` in each claim it has no figures for, naming the plugin
    and hook, and the exit status is then 1."""
    from .experiments.cells_cli import (
        ProgressBar,
        choose,
        executor_of,
        open_store,
        scheme_names,
        split_names,
    )
    from .experiments.reproduce import DEFAULT_OUT_DIR, chosen_claims, reproduce
    from .experiments.runner import configurations

    matrix = configurations()
    chosen = set(choose(args, {scheme_names(*c)[1]: scheme_names(*c) for c in matrix}))
    configs = [c for c in matrix if scheme_names(*c)[1] in chosen]
    try:
        keys = chosen_claims(split_names(args.claims) or None)
    except ConfigError as exc:
        raise UsageError(f"--claims: {exc}") from None
    if Path(args.out) == DEFAULT_OUT_DIR:
        announce(f"{args.out}/results.md and {args.out}/img/", "the report",
                 "the default; --out DIR to change")
    executor = executor_of(args)
    with open_store(args) as store, ProgressBar("reproduce") as bar:
        path, claims = reproduce(args.out, configs,
                                 progress=lambda name: bar.say(f"measuring {name}"),
                                 executor=executor, store=store, timeout=args.timeout,
                                 claims=keys, cell_progress=bar.update)
    failures = {f.label: f for c in claims for f in c.failures}
    if args.json:
        print_json({"report": str(path), "claims": [
            {"key": c.key, "title": c.title, "verdict": c.verdict,
             "image": None if c.image is None else str(path.parent / "img" / c.image),
             "wall_time_s": round(c.wall_time_s, 3)}
            for c in claims], "failures": [f.to_dict() for f in failures.values()]})
    else:
        for c in claims:
            out.print(f"{c.verdict:>20}  {c.title}")
        out.print(f"wrote {path}")
    if failures:
        return _error(f"{len(failures)} configurations have no figures: "
                      + ", ".join(f"{f.label} ({f.status} in {f.where()})"
                                  for f in failures.values()), EXIT_FAILURE)
    return 0


def cmd_sweep(args: argparse.Namespace, out: Console) -> int:
    """``mmsim sweep`` (:mod:`mmcore.experiments.sweep_cli`)."""
    from .experiments.sweep_cli import cmd_sweep as sweep

    return sweep(args, out)


COMMANDS = {
    "plugins": cmd_plugins, "workloads": cmd_workloads, "run": cmd_run,
    "compare": cmd_compare, "sweep": cmd_sweep, "rerun": cmd_rerun,
    "reproduce": cmd_reproduce,
}


def _oserror_text(exc: OSError) -> str:
    """``PATH: reason`` for a file error (``/missing/x: No such file or directory``);
    an error without a file is a syscall a strict run could not make."""
    reason = exc.strerror or str(exc)
    if exc.filename is not None:
        return f"{exc.filename}: {reason}"
    return f"the run failed: {reason}"


def _error(message: str, status: int) -> int:
    print(f"mmsim: error: {' '.join(message.split())}", file=sys.stderr)
    return status


def _show_warning(message: Warning | str, category: type[Warning], filename: str,
                  lineno: int, file: Any = None, line: str | None = None) -> None:
    """``warnings.showwarning`` for mmsim: a plugin that cannot be used is one line,
    ``mmsim: warning: ...``; any other warning is shown as Python shows it."""
    from .plugins import PluginLoadWarning

    if issubclass(category, PluginLoadWarning):
        print(f"mmsim: warning: {message}", file=sys.stderr)
    else:
        warnings._showwarnmsg_impl(  # type: ignore[attr-defined]
            warnings.WarningMessage(message, category, filename, lineno, file, line))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mmsim``; returns the exit status (see the module docstring)."""
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    from .experiments.record import RecordError
    from .experiments.store import StoreError

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        observing = bool(getattr(args, "observe", None))
        configure_logging(args.log_level or ("debug" if observing else "warning"),
                          args.log_format)
        out = Console()
        if not out.is_terminal and "COLUMNS" not in os.environ:
            out = Console(width=120)  # a pipe or file: do not squeeze tables to 80
        if args.command not in COMMANDS:  # a command added by another module (trace)
            status: int = args.func(args)
            return status
        return COMMANDS[args.command](args, out)
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else 0
    except UsageError as exc:
        return _error(str(exc), EXIT_USAGE)
    except (Failure, ConfigError, PluginError, MachineBroken, RecordError,
            StoreError) as exc:
        return _error(str(exc), EXIT_FAILURE)
    except OSError as exc:  # an output that cannot be written, an input gone
        return _error(_oserror_text(exc), EXIT_FAILURE)
    except KeyboardInterrupt:
        print("mmsim: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    # python -m mmcore.cli: run the mmcore.cli that the command modules import (their
    # UsageError and Failure), not this __main__ copy of it.
    from mmcore.cli import main as _entry

    sys.exit(_entry())
