"""Tables of results for people (rich, Markdown) and comparison summaries for machines.

Where configurations are compared, each metric is also given as a ratio to the best
(smallest) value among them, so "x12.0" reads "twelve times the best scheme's cost".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich import box
from rich.table import Table

from .results import Result

if TYPE_CHECKING:
    from .isolation import RunFailure


@dataclass(frozen=True)
class Metric:
    """One column of a comparison: a name, a header and how to read it from a result."""

    key: str
    header: str
    get: Callable[[Result], float]
    #: Show the ratio to the smallest value among the compared configurations.
    ratio: bool = True
    #: Digits after the point (0 for counts).
    digits: int = 0


METRICS: list[Metric] = [
    Metric("rmap_peak_bytes", "rmap B\npeak", lambda r: r.derived.rmap_peak_bytes),
    Metric("rmap_bytes", "rmap B\nat end", lambda r: r.derived.rmap_bytes),
    Metric("visits_per_page", "visits\n/page", lambda r: r.derived.visits_per_page,
           digits=2),
    Metric("wasted_per_page", "wasted\n/page", lambda r: r.derived.wasted_per_page,
           digits=2),
    Metric("page_copies", "page\ncopies", lambda r: r.derived.page_copies),
    Metric("fork_ptes_copied", "fork ptes\ncopied", lambda r: r.derived.fork_ptes_copied),
    Metric("final_vmas", "vmas\nat end", lambda r: r.derived.final_vmas, ratio=False),
    Metric("reclaim_missed", "not\nfound", lambda r: r.derived.reclaim_missed,
           ratio=False),
]

#: The columns of the table people read (the JSON carries every metric).
TABLE_METRICS = [m for m in METRICS if m.key != "fork_ptes_copied"]


def fmt(value: float, digits: int = 0) -> str:
    """A number with thousands separators and ``digits`` decimals."""
    return f"{value:,.{digits}f}"


def ratios(results: Sequence[Result], metrics: Sequence[Metric] = METRICS
           ) -> dict[str, dict[str, float | None]]:
    """Per configuration, each ratio metric divided by the smallest value among
    ``results`` (None when that smallest value is 0, where no ratio exists)."""
    out: dict[str, dict[str, float | None]] = {r.label: {} for r in results}
    for m in metrics:
        if not m.ratio:
            continue
        values = [float(m.get(r)) for r in results]
        best = min(values) if values else 0.0
        for r, v in zip(results, values, strict=True):
            out[r.label][m.key] = round(v / best, 4) if best > 0 else None
    return out


def cell(value: float, ratio: float | None, digits: int, show_ratio: bool) -> str:
    """``value`` and, if there is one, its ratio to the best: ``"81,920 x100"``; the best
    value is green."""
    text = fmt(value, digits)
    if not show_ratio:
        return text
    if ratio is None:  # the best is 0: no ratio exists
        return text
    if ratio < 1.005:
        return f"[green]{text}[/] [dim]x1[/]"
    return f"{text} [dim]x{ratio:.3g}[/]"


def group_identical(results: Sequence[Result]) -> list[tuple[str, Result]]:
    """Merge configurations of one scheme whose reproducible figures are identical (e.g.
    a scheme with and without an mremap policy that the workload never exercises): one
    row labelled ``scheme ±policy``. Different schemes are never merged."""
    rows: list[tuple[str, Result]] = []
    seen: dict[tuple[str, str], int] = {}
    for r in results:
        figures = r.derived.to_json(sort_keys=True)
        key = (r.config.rmap, figures)
        if key in seen:
            i = seen[key]
            first = rows[i][1]
            policy = r.config.policy or first.config.policy
            rows[i] = (f"{first.config.rmap} ±{policy}", first)
        else:
            seen[key] = len(rows)
            rows.append((r.label, r))
    return rows


def compare_table(results: Sequence[Result], title: str = "",
                  metrics: Sequence[Metric] = TABLE_METRICS, merge: bool = True,
                  failures: Sequence[RunFailure] = ()) -> Table:
    """A rich table: one row per configuration (identical ones of a scheme merged), one
    column per metric; metrics that differ between rows show their ratio to the best.
    Each of ``failures`` is a red row with its status (``broken``, ``timed out``) and
    no figures (:func:`failure_table` says why)."""
    table = Table(title=title or None, title_justify="left", header_style="bold",
                  box=box.SIMPLE_HEAD, pad_edge=False)
    rows = group_identical(results) if merge else [(r.label, r) for r in results]
    shown = [r for _, r in rows]
    rel = ratios(shown, metrics)
    table.add_column("configuration", style="bold cyan", no_wrap=True)
    differs = {}
    for m in metrics:
        table.add_column(m.header, justify="right", no_wrap=True)
        values = {float(m.get(r)) for r in shown}
        differs[m.key] = m.ratio and len(values) > 1
    table.add_column("ms", justify="right", style="dim", no_wrap=True)
    for label, r in rows:
        cells = [label]
        for m in metrics:
            cells.append(cell(float(m.get(r)), rel[r.label].get(m.key), m.digits,
                              differs[m.key]))
        cells.append(fmt(r.wall_time_s * 1000))
        table.add_row(*cells)
    for f in failures:
        table.add_row(f"[red]{f.label}[/]", f"[red]{f.status}[/]",
                      *["-"] * len(metrics))
    return table


def failure_table(failures: Sequence[RunFailure]) -> Table:
    """Why each failed configuration has no figures: status, plugin (and distribution),
    hook and the one-line reason."""
    table = Table(title="failed configurations", title_justify="left",
                  header_style="bold red", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("configuration", "status", "plugin", "hook", "reason"):
        table.add_column(col, overflow="fold", no_wrap=col == "configuration")
    for f in failures:
        plugin = "-" if f.plugin is None else (
            f.plugin if f.distribution is None else f"{f.plugin} ({f.distribution})")
        table.add_row(f.label, f.status, plugin, f.hook or "-", f.reason)
    return table


def describe_params(params: dict[str, Any]) -> str:
    """``k=v, k=v`` in the dataclass's order."""
    return ", ".join(f"{k}={v}" for k, v in params.items())


def compare_document(results: Sequence[Result]) -> dict[str, Any]:
    """The machine form of a comparison: config, every result and the ratios."""
    first = results[0].config if results else None
    return {
        "workload": first.workload if first else None,
        "params": first.params if first else {},
        "seed": first.seed if first else 0,
        "arch": first.arch if first else None,
        "configurations": [r.label for r in results],
        "ratios_to_best": ratios(results),
        "results": [r.to_dict(encode_json=True) for r in results],
    }


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table."""
    out = ["| " + " | ".join(headers) + " |",
           "|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(out)
