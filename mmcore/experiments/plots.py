"""Plots of results (matplotlib, Agg backend: files only, never a display).

Every function takes plain results and a path, writes one PNG or SVG (chosen by the
suffix) and returns the path. matplotlib is imported lazily so the library and the CLI's
other commands do not pay for it.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomicfile import atomic_path
from .results import Result

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: (title, value of a result) of the three panels of a comparison plot.
COMPARE_PANELS: list[tuple[str, Callable[[Result], float]]] = [
    ("rmap metadata, peak (bytes)", lambda r: r.derived.rmap_peak_bytes),
    ("walk visits per reclaimed page", lambda r: r.derived.visits_per_page),
    ("page copies (COW + mremap)", lambda r: r.derived.page_copies),
]


def _figure(ncols: int, width: float = 4.2, height: float = 3.6) -> tuple[Figure, Any]:
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, axes


def _save(fig: Figure, path: str | Path) -> Path:
    out = Path(path)
    if out.suffix.lower() not in (".png", ".svg"):
        raise ValueError(f"plot file {str(out)!r} must end in .png or .svg")
    out.parent.mkdir(parents=True, exist_ok=True)  # the CLI's --plot help says so
    fmt = out.suffix.lower()[1:]
    # Fixed metadata keeps the file identical from run to run (no date, no version).
    metadata: dict[str, Any] = ({"Software": None} if fmt == "png"
                                else {"Date": None, "Creator": None})
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=100, metadata=metadata, format=fmt)
    return out


def number(v: float) -> str:
    """A short label: ``81,920`` for whole numbers, three significant digits otherwise."""
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:.3g}"


def bars(labels: Sequence[str], panels: Sequence[tuple[str, Sequence[float]]], title: str,
         path: str | Path) -> Path:
    """One bar chart per panel (title, one value per label), side by side."""
    fig, axes = _figure(len(panels))
    colours = [f"C{i % 10}" for i in range(len(labels))]
    for ax, (panel_title, values) in zip(axes, panels, strict=True):
        xs = range(len(labels))
        ax.bar(xs, values, color=colours)
        ax.set_xticks(list(xs), labels, rotation=30, ha="right", fontsize=8)
        ax.set_title(panel_title, fontsize=9)
        for x, v in zip(xs, values, strict=True):
            ax.annotate(number(v), (x, v), ha="center", va="bottom", fontsize=7)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def compare_plot(results: Sequence[Result], path: str | Path, title: str = "") -> Path:
    """Metadata bytes, walk visits and page copies per configuration (configurations of
    one scheme with identical figures share a bar, as in the table)."""
    from .report import group_identical

    rows = group_identical(results)
    labels = [label for label, _ in rows]
    panels = [(t, [float(get(r)) for _, r in rows]) for t, get in COMPARE_PANELS]
    return bars(labels, panels, title or results[0].config.workload, path)


def lines(x_name: str, series: dict[str, list[tuple[float, float]]],
          panel_title: str, ax: Any,
          bands: dict[str, list[tuple[float, float, float]]] | None = None) -> None:
    """Draw one panel: a line per series of (x, y) points. A scheme keeps one colour;
    its configurations with an mremap policy (``rmap+policy``) are dashed. ``bands``
    gives a series (x, low, high) points, shaded in its colour (the seeds' spread)."""
    schemes: dict[str, int] = {}
    for name, points in series.items():
        scheme = name.split(" ")[0].split("+")[0]
        colour = f"C{schemes.setdefault(scheme, len(schemes)) % 10}"
        pts = sorted(points)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", color=colour,
                linestyle="--" if "+" in name.split(" ")[0] else "-", label=name)
        if bands is not None and name in bands:
            band = sorted(bands[name])
            ax.fill_between([b[0] for b in band], [b[1] for b in band],
                            [b[2] for b in band], color=colour, alpha=0.15, linewidth=0)
    ax.set_xlabel(x_name, fontsize=8)
    ax.set_title(panel_title, fontsize=9)


def sweep_plot(results: Sequence[Result], x_param: str, path: str | Path,
               title: str = "") -> Path:
    """How each comparison metric grows with parameter ``x_param``: one line per
    configuration (and per value of the other swept parameters); where several seeds
    ran, each point is their median and a shaded band their spread (smallest to
    largest), as the tables give them."""
    others = sorted({k for r in results for k in r.config.params if k != x_param
                     and len({str(q.config.params.get(k)) for q in results}) > 1})
    seeds = len({r.config.seed for r in results}) > 1
    fig, axes = _figure(len(COMPARE_PANELS))
    for ax, (panel_title, get) in zip(axes, COMPARE_PANELS, strict=True):
        points: dict[str, dict[float, list[float]]] = {}
        for r in results:
            key = r.label + "".join(f" {k}={r.config.params[k]}" for k in others)
            points.setdefault(key, {}).setdefault(float(r.config.params[x_param]),
                                                  []).append(float(get(r)))
        series = {key: [(x, statistics.median(ys)) for x, ys in by_x.items()]
                  for key, by_x in points.items()}
        bands = {key: [(x, min(ys), max(ys)) for x, ys in by_x.items()]
                 for key, by_x in points.items()} if seeds else None
        lines(x_param, series, panel_title, ax, bands)
    axes[0].legend(fontsize=7)
    what = " (median over the seeds; band: smallest to largest)" if seeds else ""
    fig.suptitle((title or f"{results[0].config.workload}: sweep of {x_param}") + what,
                 fontsize=10)
    return _save(fig, path)


def xy_plot(x_name: str, panels: Sequence[tuple[str, dict[str, list[tuple[float, float]]]]],
            title: str, path: str | Path) -> Path:
    """Several line panels sharing an x axis name (the reproduce report's plots)."""
    fig, axes = _figure(len(panels))
    for ax, (panel_title, series) in zip(axes, panels, strict=True):
        lines(x_name, series, panel_title, ax)
    if any(series for _, series in panels):  # every configuration failed: no legend
        axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)
