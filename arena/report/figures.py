"""Figures for papers: cross-play heatmaps, each headline metric over rounds, attacks, an experiment's series.

Pure functions from arrays to matplotlib `Figure`s on the Agg canvas (no pyplot,
no global state), and `png_bytes` to encode one. Conventions every figure keeps:

- one colour scale per figure, with one labelled colour bar: panels are comparable;
- labelled axes; rounds on integer ticks;
- cell text black or white by the luminance of the cell's colour, so it stays readable;
- interval bounds printed under each mean, never a ± that would imply symmetry;
- a censored value (a measurement a budget stopped: the truth is at least the value drawn) is an
  open upward triangle, a measured one a filled circle, and the legend says how many are censored.
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


def plot_censored(ax: Any, x: Sequence[float], y: Sequence[float], censored: Sequence[bool], *, colour: Any,
                  label: str | None = None, linewidth: float = 1.5, markersize: float = 4.5,
                  alpha: float = 1.0) -> None:
    """One line through (x, y): measured points as filled circles, censored ones as open upward
    triangles (the true value is at least the one drawn)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    cens = np.zeros(len(x), bool) if not len(censored) else np.asarray(censored, dtype=bool)
    ax.plot(x, y, color=colour, linewidth=linewidth, alpha=alpha, label=label)
    ax.plot(x[~cens], y[~cens], ls="none", marker="o", markersize=markersize, color=colour, alpha=alpha)
    ax.plot(x[cens], y[cens], ls="none", marker="^", markersize=markersize + 2.5, markerfacecolor="white",
            markeredgecolor=colour, markeredgewidth=1.4, alpha=alpha)


def censored_handle(n: int, total: int, what: str = "values") -> Any:
    """The legend entry of the censored marker, with how many there are."""
    from matplotlib.lines import Line2D

    return Line2D([], [], ls="none", marker="^", markersize=7, markerfacecolor="white", markeredgecolor="0.3",
                  markeredgewidth=1.4, label=f"censored (≥): {n} of {total} {what}")


def attack_figure(title: str, rounds: Sequence[int], steps: Sequence[Sequence[float]],
                  steps_lower: Sequence[float], steps_upper: Sequence[float],
                  seeds: Sequence[Sequence[tuple[float, bool]]], success: Sequence[Sequence[float]],
                  budget: float, metric: str):
    """Steps-to-exploit and the success at the end of the attack, per attacked round.

    `steps`: per round (mean, censored: some seed ran out of budget); `seeds`: per round each
    seed's (steps, censored) point, drawn small beside the mean; `success`: per round (mean, lower,
    upper). A censored mean (a lower bound) and every censored seed are open triangles."""
    from matplotlib.ticker import MaxNLocator

    fig = new_figure(8.0, 3.4)
    left, right = fig.subplots(1, 2)
    xs = np.asarray(rounds, dtype=float)
    mean = np.array([m for m, _ in steps], dtype=float)
    lo, hi = np.asarray(steps_lower, dtype=float), np.asarray(steps_upper, dtype=float)
    ok = np.isfinite(lo) & np.isfinite(hi)
    if ok.any():
        left.fill_between(xs[ok], lo[ok], hi[ok], color="C0", alpha=0.18, lw=0, label="95% interval")
    for x, points in zip(xs, seeds):
        for j, (y, cens) in enumerate(points):
            dx = (j - (len(points) - 1) / 2) * 0.06
            plot_censored(left, [x + dx], [y], [cens], colour="0.45", markersize=3, alpha=0.8)
    plot_censored(left, xs, mean, [c for _, c in steps], colour="C0", label="mean over attack seeds", markersize=6)
    left.axhline(budget, ls="--", c="grey", lw=1, label=f"budget ({budget:g} steps)")
    left.set_ylim(0, budget * 1.12)
    left.set_ylabel("steps to exploit")
    n_cens = sum(c for points in seeds for _, c in points)
    handles, _ = left.get_legend_handles_labels()
    left.legend(handles=handles + [censored_handle(n_cens, sum(len(p) for p in seeds), "attacks")],
                loc="best", fontsize=7)
    sm = np.array([m for m, _, _ in success], dtype=float)
    slo, shi = (np.array([s[i] for s in success], dtype=float) for i in (1, 2))
    ok = np.isfinite(slo) & np.isfinite(shi)
    if ok.any():
        right.fill_between(xs[ok], slo[ok], shi[ok], color="C1", alpha=0.2, lw=0)
    right.plot(xs, sm, color="C1", marker="o", markersize=5)
    right.set_ylim(0, 1)
    right.set_ylabel(f"{metric} at end of attack")
    for ax in (left, right):
        ax.set_xlabel("round of the attacked checkpoint")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    fig.suptitle(textwrap.fill(title, width=100), fontsize=9)
    return fig


def series_figure(title: str, lines: Sequence[tuple[str, str, Sequence[float], Sequence[float], Sequence[bool]]],
                  xlabel: str = "round", ylabel: str | None = None):
    """An experiment's series: one line per (arm, seed), one colour per arm, censored points open."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    fig = new_figure(4.2, 2.9)
    ax = fig.add_subplot(1, 1, 1)
    arms = list(dict.fromkeys(arm for arm, *_ in lines))
    colour = {arm: f"C{i % 10}" for i, arm in enumerate(arms)}
    for arm, _seed, x, y, cens in lines:
        plot_censored(ax, x, y, cens, colour=colour[arm], linewidth=1.2, alpha=0.85)
    handles = [Line2D([], [], color=colour[a], marker="o", markersize=4, label=a) for a in arms]
    n_cens, total = sum(sum(bool(c) for c in cens) for *_, cens in lines), sum(len(y) for *_, y, _ in lines)
    if n_cens:
        handles.append(censored_handle(n_cens, total, "points"))
    ax.legend(handles=handles, fontsize=7, loc="best")
    if all(float(v).is_integer() for *_, x, _, _ in lines for v in x):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel or title)
    ax.set_title(textwrap.fill(title, width=60), fontsize=9)
    ax.grid(alpha=0.3)
    return fig


def nash_conv_figure(rounds: Sequence[float], series: dict[str, Sequence[float]],
                     bounds: dict[str, tuple[Sequence[float], Sequence[float]]] | None = None,
                     title: str = "exploitability (NashConv) per round"):
    """NashConv-like series over rounds on one axis (0 is a Nash equilibrium, drawn dashed); a series
    named in `bounds` gets error bars from its (lower, upper) bounds where both are finite."""
    from matplotlib.ticker import MaxNLocator

    fig = new_figure(4.6, 3.0)
    ax = fig.add_subplot(1, 1, 1)
    xs = np.asarray(rounds, dtype=float)
    for i, (label, ys) in enumerate(series.items()):
        y = np.asarray(ys, dtype=float)
        ax.plot(xs, y, marker="o", markersize=4, linewidth=1.5, color=f"C{i % 10}", label=label)
        if bounds and label in bounds:
            lo, hi = (np.asarray(b, dtype=float) for b in bounds[label])
            ok = np.isfinite(lo) & np.isfinite(hi) & np.isfinite(y)
            if ok.any():  # clipped: bounds read from disk may not hold their mean
                err = np.clip([y[ok] - lo[ok], hi[ok] - y[ok]], 0, None)
                ax.errorbar(xs[ok], y[ok], yerr=err, ls="none", capsize=3, color=f"C{i % 10}",
                            label=f"{label}: 95% interval")
    ax.axhline(0.0, ls="--", c="grey", lw=1)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("round")
    ax.set_ylabel("NashConv")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig
