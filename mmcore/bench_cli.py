"""``mmsim bench``: mmcore's per-page costs beside the real kernel's, measured in one run.

For every valid scheme configuration it times the operations of :mod:`mmcore.benchmark`
(first write, COW write in a forked child, fork, munmap, mremap of N pages) and the
kernel probe (:mod:`mmcore.kernel_probe`) times the same operations on this machine's
kernel, before and after the simulated ones (the faster of the two runs counts, which
keeps a burst of other load on the machine out of the kernel column). Every figure is
printed as a ratio to the kernel's and, in the JSON, also to a dict insert timed in the
same run. The JSON (``--output``, written atomically) records the machine, the kernel,
the load average and whether mmcore ran pure Python or compiled, since the figures
mean nothing without them.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from . import __version__
from .atomicfile import atomic_open, check_writable
from .benchmark import OPERATIONS, best_of, dict_insert, heap_per_page
from .cli import UsageError, add_json_option, announce, positive, print_json
from .kernel_probe import ProbeUnavailable, run_probe
from .plugins import valid_configurations

__all__ = ["add_bench_command", "cmd_bench", "machine_info", "measure", "LABELS"]

DEFAULT_OUTPUT = Path("results") / "bench.json"
#: Column headings of the operations, in the table's order.
LABELS = {
    "first_write": "first write",
    "cow_write": "COW write (child)",
    "fork": "fork, per page",
    "munmap": "munmap, per page",
    "mremap": "mremap, per page",
}
#: Bytes per touched page the kernel spends: a 64-byte struct page and an 8-byte pte;
#: a fork adds the child's 8-byte pte (page-table pages themselves are not counted).
KERNEL_BYTES_PER_PAGE = 64 + 8
KERNEL_BYTES_PER_FORK_PAGE = 8


def add_bench_command(
        subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``bench`` to ``mmsim``'s subcommands (it sets ``func``, as trace does)."""
    b = subparsers.add_parser("bench", help="time mmcore against the real kernel "
                              "(a C probe built with gcc) on every configuration")
    b.add_argument("--pages", type=positive, default=10000,
                   help="pages per timed operation, on both sides")
    b.add_argument("--repeat", type=positive, default=3,
                   help="runs per figure; the fastest counts")
    b.add_argument("--heap-pages", type=positive, default=2000,
                   help="pages of the (slower, tracemalloc) heap measurement")
    b.add_argument("--rmap", default=None, metavar="NAME",
                   help="only the configurations of this rmap scheme (default: all)")
    b.add_argument("-o", "--output", default=None, metavar="FILE",
                   help=f"the JSON report; default {DEFAULT_OUTPUT}, announced before it "
                        f"is written")
    add_json_option(b)
    b.set_defaults(func=cmd_bench)


def _cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (platform.processor() is often empty)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _read_first_line(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.readline().strip()
    except OSError:
        return None


def build_kind() -> str:
    """``"mypyc"`` when the core was imported from compiled extension modules, else
    ``"pure"``."""
    from . import fault
    return "mypyc" if not (fault.__file__ or "").endswith(".py") else "pure"


def machine_info() -> dict[str, Any]:
    """The machine, kernel and Python the figures were taken on."""
    uname = platform.uname()
    return {
        "machine": {"arch": uname.machine, "cpu": _cpu_model(), "cpus": os.cpu_count(),
                    "hostname": uname.node,
                    "load_average": list(os.getloadavg())},
        "kernel": {"release": uname.release, "version": uname.version,
                   "transparent_hugepage":
                       _read_first_line("/sys/kernel/mm/transparent_hugepage/enabled")},
        "python": {"version": platform.python_version(),
                   "implementation": platform.python_implementation()},
        "mmcore": {"version": __version__, "build": build_kind()},
    }


def _kernel(pages: int, repeat: int) -> dict[str, float] | str:
    """The probe's ns per page by operation, or why the probe is unavailable."""
    try:
        report = run_probe(pages, repeat)
    except ProbeUnavailable as exc:
        return str(exc)
    figures: dict[str, float] = report["ns_per_page"]
    return figures


def measure(configs: list[tuple[str, str | None]], pages: int, repeat: int,
            heap_pages: int, progress: Any = None) -> dict[str, Any]:
    """Time the kernel probe, the dict insert and every operation of every configuration;
    return the report (the JSON document ``mmsim bench`` writes)."""
    before = _kernel(pages, repeat)
    unit = best_of(repeat, dict_insert, 200_000)
    rows: list[dict[str, Any]] = []
    for rmap, policy in configs:
        if progress is not None:
            progress(rmap if policy is None else f"{rmap}+{policy}")
        us = {op: best_of(repeat, fn, rmap, policy, pages) * 1e6
              for op, fn in OPERATIONS.items()}
        heap, fork_heap = heap_per_page(rmap, policy, heap_pages)
        rows.append({"rmap": rmap, "policy": policy, "us_per_page": us,
                     "ratio_to_dict_insert": {op: t * 1e3 / (unit * 1e9)
                                              for op, t in us.items()},
                     "heap_bytes_per_page": heap, "heap_bytes_per_fork_page": fork_heap})
    after = _kernel(pages, repeat)
    kernel: dict[str, Any] = {"available": False, "reason": before}
    if isinstance(before, dict) and isinstance(after, dict):
        best = {op: min(before[op], after[op]) / 1e3 for op in before}
        kernel = {"available": True, "us_per_page": best,
                  "ratio_to_dict_insert": {op: t * 1e3 / (unit * 1e9)
                                           for op, t in best.items()},
                  "bytes_per_page": KERNEL_BYTES_PER_PAGE,
                  "bytes_per_fork_page": KERNEL_BYTES_PER_FORK_PAGE}
        for row in rows:
            row["ratio_to_kernel"] = {op: row["us_per_page"][op] / best[op]
                                      for op in best}
    elif isinstance(after, str):
        kernel["reason"] = after
    return {**machine_info(), "pages": pages, "repeat": repeat, "heap_pages": heap_pages,
            "dict_insert_ns": unit * 1e9, "kernel_probe": kernel, "rows": rows}


def _us(value: float) -> str:
    return f"{value:.3f} µs" if value < 1 else f"{value:.2f} µs"


def table(report: dict[str, Any]) -> Table:
    """The issue 12 table turned on its side (one row per configuration, so every
    configuration fits): µs per page and, after it, the ratio to the real kernel."""
    kernel = report["kernel_probe"]
    m = report["machine"]
    t = Table(title=f"mmcore ({report['mmcore']['build']}) vs Linux "
                    f"{report['kernel']['release']}: {report['pages']} pages, best of "
                    f"{report['repeat']}; {m['cpus']} cpus, load "
                    f"{m['load_average'][0]:.1f} (compare ratios, not times)")
    t.add_column("configuration")
    for label in LABELS.values():
        t.add_column(label, justify="right")
    t.add_column("heap B/page", justify="right")
    t.add_column("+B/page/fork", justify="right")
    if kernel["available"]:
        t.add_row("real kernel", *(_us(kernel["us_per_page"][op]) for op in LABELS),
                  str(kernel["bytes_per_page"]), str(kernel["bytes_per_fork_page"]),
                  style="bold")
    for row in report["rows"]:
        name = row["rmap"] + (f"+{row['policy']}" if row["policy"] else "")
        cells = []
        for op in LABELS:
            cell = _us(row["us_per_page"][op])
            if "ratio_to_kernel" in row:
                cell += f" {row['ratio_to_kernel'][op]:5.1f}x"
            cells.append(cell)
        t.add_row(name, *cells, f"{row['heap_bytes_per_page']:.0f}",
                  f"{row['heap_bytes_per_fork_page']:.0f}")
    return t


def cmd_bench(args: argparse.Namespace) -> int:
    """``mmsim bench``: measure, print the table (or the JSON with ``--json``) and write
    the JSON report."""
    configs = valid_configurations()
    if args.rmap is not None:
        configs = [c for c in configs if c[0] == args.rmap]
        if not configs:
            names = sorted({r for r, _ in valid_configurations()})
            raise UsageError(f"--rmap {args.rmap!r}: choose one of: {', '.join(names)}")
    output = Path(args.output) if args.output else DEFAULT_OUTPUT
    if not args.output:
        announce(output, "the report", "the default; --output FILE to change")
        output.parent.mkdir(parents=True, exist_ok=True)
    check_writable(output)
    err = Console(stderr=True)
    report = measure(configs, args.pages, args.repeat, args.heap_pages,
                     progress=(lambda name: err.print(f"[dim]measuring {name}[/]"))
                     if err.is_terminal else None)
    with atomic_open(output) as fh:
        import json
        json.dump(report, fh, indent=1, sort_keys=True)
        fh.write("\n")
    if args.json:
        print_json(report)
        return 0
    out = Console(width=200) if not sys.stdout.isatty() else Console()
    out.print(table(report))
    kernel = report["kernel_probe"]
    out.print(f"dict insert: {report['dict_insert_ns']:.1f} ns (the unit of the JSON's "
              f"ratio_to_dict_insert)")
    if not kernel["available"]:
        out.print(f"no kernel column: {kernel['reason']}")
    out.print(f"report: {output}")
    return 0
