"""Figures for papers: cross-play heatmaps and each headline metric over rounds.

Pure functions from arrays to matplotlib `Figure`s on the Agg canvas (no pyplot,
no global state), and `png_bytes` to encode one. Conventions every figure keeps:

- one colour scale per figure, with one labelled colour bar: panels are comparable;
- labelled axes; rounds on integer ticks;
- cell text black or white by the luminance of the cell's colour, so it stays readable;
- interval bounds printed under each mean, never a ± that would imply symmetry.
"""
from __future__ import annotations

import io
import itertools
import re
import textwrap
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np


@dataclass(frozen=True)
class Panel:
    """One heatmap: `mean`, `lower`, `upper` are (rows, cols) arrays (NaN: no data/no interval)."""

    title: str
    row_labels: Sequence[str]
    col_labels: Sequence[str]
    row_seat: str
    col_seat: str
    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray


def new_figure(width: float, height: float):
    """A constrained-layout `Figure` on its own Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_panels(fig: Any, path: Any, dpi: int = 100) -> None:
    """Write a figure of line-plot panels as PNG: a light grid and a legend on every panel."""
    for ax in fig.axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.savefig(path, dpi=dpi)


def png_bytes(fig: Any, dpi: int = 120) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def luminance(rgba: Sequence[float]) -> float:
    """Relative luminance (WCAG 2) of an sRGB colour with channels in [0, 1]."""
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgba[:3]]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def text_colour(rgba: Sequence[float]) -> str:
    """Black on light cells, white on dark ones (the one with the higher WCAG contrast)."""
    return "black" if luminance(rgba) > 0.179 else "white"


def colour_scale(values: np.ndarray) -> tuple[str, float, float]:
    """(colormap, vmin, vmax) shared by every panel of a figure: a diverging map centred on 0
    when the values straddle 0, else a sequential one over their range."""
    finite = values[np.isfinite(values)]
    if not finite.size:
        return "viridis", 0.0, 1.0
    lo, hi = float(finite.min()), float(finite.max())
    if lo < 0 < hi:
        lim = max(-lo, hi)
        return "RdBu", -lim, lim
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    return "viridis", lo, hi


ROUND_RE = re.compile(r"^(?P<seat>[^/]+)/round-(?P<k>\d+)$")


def round_ticks(labels: Sequence[str], seats: str) -> list[int] | None:
    """The rounds of labels that are all this run's checkpoints of `seats` (`a/b` for a shared pool)."""
    ks = []
    for label in labels:
        m = ROUND_RE.match(label)
        if not m or m.group("seat") not in seats.split("/"):
            return None
        ks.append(int(m.group("k")))
    return ks if len(set(ks)) == len(ks) else None


def _axis(ax: Any, which: str, labels: Sequence[str], seats: str) -> None:
    ks = round_ticks(labels, seats)
    set_ticks, set_label = (ax.set_xticks, ax.set_xlabel) if which == "x" else (ax.set_yticks, ax.set_ylabel)
    if ks is not None:
        set_ticks(range(len(labels)), [str(k) for k in ks])
        set_label(f"{seats} checkpoint (round)")
    else:
        kw = {"rotation": 30, "ha": "right"} if which == "x" else {}
        set_ticks(range(len(labels)), list(labels), fontsize=7, **kw)
        set_label(seats)


def heatmap_figure(panels: Sequence[Panel], title: str, colour_label: str = "mean reward"):
    """Annotated heatmaps side by side, one colour scale and one colour bar for all of them."""
    widest = max(max(len(p.col_labels) for p in panels), 2)
    tallest = max(max(len(p.row_labels) for p in panels), 2)
    cell = 0.95
    fig = new_figure(len(panels) * (cell * widest + 1.6) + 1.4, cell * tallest + 2.2)
    cmap, vmin, vmax = colour_scale(np.concatenate([np.ravel(p.mean) for p in panels]))
    axes, image = [], None
    for k, p in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), k + 1)
        axes.append(ax)
        m = np.asarray(p.mean, dtype=float)
        ax.set_facecolor("0.88")  # cells without data: grey, apart from any colour of the scale
        image = ax.imshow(np.ma.masked_invalid(m), cmap=cmap, vmin=vmin, vmax=vmax, aspect="equal")
        for i, j in itertools.product(range(m.shape[0]), range(m.shape[1])):
            if not np.isfinite(m[i, j]):
                ax.text(j, i, "no data", ha="center", va="center", fontsize=6, color="0.4")
                continue
            lo, hi = float(p.lower[i, j]), float(p.upper[i, j])
            text = f"{m[i, j]:+.2f}" + (f"\n[{lo:+.2f}, {hi:+.2f}]" if np.isfinite(lo) and np.isfinite(hi) else "")
            ax.text(j, i, text, ha="center", va="center", fontsize=8, linespacing=1.3,
                    color=text_colour(image.cmap(image.norm(m[i, j]))))
        _axis(ax, "x", p.col_labels, p.col_seat)
        _axis(ax, "y", p.row_labels, p.row_seat)
        ax.set_title(p.title, fontsize=9)
    bar = fig.colorbar(image, ax=axes, shrink=0.8)
    bar.set_label(colour_label)
    fig.suptitle(textwrap.fill(title, width=max(40, int(fig.get_figwidth() * 12))), fontsize=10)  # ~12 chars/inch
    return fig


def metric_figure(name: str, rounds: Sequence[int], values: Sequence[float], *,
                  series: dict[str, Sequence[float]] | None = None, ylabel: str | None = None):
    """One small figure of a metric over rounds (integer round ticks); `series` draws one line
    per name instead (e.g. each seat's mean reward) with a legend."""
    from matplotlib.ticker import MaxNLocator

    fig = new_figure(3.4, 2.4)
    ax = fig.add_subplot(1, 1, 1)
    lines = series if series is not None else {name: values}
    for label, ys in lines.items():
        ys = np.asarray(ys, dtype=float)
        ax.plot(list(rounds), ys, marker="o", markersize=4, linewidth=1.5, label=label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("round")
    ax.set_ylabel(ylabel or name)
    ax.set_title(name, fontsize=9)
    ax.grid(alpha=0.3)
    if series is not None and len(series) > 1:
        ax.legend(fontsize=7)
    return fig
