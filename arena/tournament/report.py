"""A tournament's output: the files, the stored ratings, the rich tables and the live view.

    <run>/tournaments/<name>/ratings.csv     one row per entrant (RATING_COLUMNS)
                             crossplay.csv   one row per cross-play cell
                             tournament.json the whole result
                             crossplay.png   the cross-play heatmap (when there is a matrix)

Tables are pure functions of a `TournamentResult`; `TournamentView` is the thin
live loop over them (plain lines when the console is not a terminal).
"""
from __future__ import annotations

import csv
import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table

from arena.store import TournamentTables
from arena.tournament.analysis import (RATING_COLUMNS, CrossPlay, TournamentResult, finite_or_none,
                                       rating_records, rating_rows)


def save_ratings(tables: TournamentTables, result: TournamentResult) -> None:
    """Replace the tournament's rows in the run's `ratings` table."""
    tables.save_ratings(result.name, rating_records(result))


def write_outputs(result: TournamentResult, out_dir: Path) -> dict[str, Path]:
    """ratings.csv, crossplay.csv, tournament.json and crossplay.png (when there is a matrix)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"ratings": out_dir / "ratings.csv", "crossplay": out_dir / "crossplay.csv",
             "json": out_dir / "tournament.json", "png": out_dir / "crossplay.png"}
    with open(paths["ratings"], "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(RATING_COLUMNS)
        w.writerows([["" if v is None else v for v in row] for row in rating_rows(result)])
    with open(paths["crossplay"], "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["paid_seat", "row_seat", "row", "col_seat", "col", "mean", "lower", "upper", "episodes"])
        for c in result.crossplay:
            for i, j in itertools.product(range(len(c.row_labels)), range(len(c.col_labels))):
                w.writerow([c.paid_seat, c.row_seat, c.row_labels[i], c.col_seat, c.col_labels[j],
                            *["" if finite_or_none(float(x[i, j])) is None else float(x[i, j])
                              for x in (c.cells.mean, c.cells.lower, c.cells.upper)],
                            int(c.cells.count[i, j])])
    tmp = paths["json"].with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result.to_json(), indent=2))
    tmp.replace(paths["json"])
    if result.crossplay:
        heatmap(result, paths["png"])
    else:
        paths.pop("png")
    return paths


def heatmap(result: TournamentResult, path: Path) -> None:
    """One annotated heatmap panel per cross-play matrix (matplotlib's Agg canvas, no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = result.crossplay
    cell = 0.9
    widest = max(max(len(c.col_labels) for c in panels), 2)
    tallest = max(max(len(c.row_labels) for c in panels), 2)
    fig = Figure(figsize=(len(panels) * (cell * widest + 3.0), cell * tallest + 2.5), layout="constrained")
    FigureCanvasAgg(fig)
    for k, c in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), k + 1)
        m = np.asarray(c.cells.mean, dtype=float)
        finite = m[np.isfinite(m)]
        lim = float(np.max(np.abs(finite))) if finite.size else 1.0
        im = ax.imshow(np.ma.masked_invalid(m), cmap="RdYlGn", vmin=-lim or -1, vmax=lim or 1)
        for i, j in itertools.product(range(m.shape[0]), range(m.shape[1])):
            if np.isfinite(m[i, j]):
                half = (c.cells.upper[i, j] - c.cells.lower[i, j]) / 2
                txt = f"{m[i, j]:.2f}" + (f"\n±{half:.2f}" if np.isfinite(half) else "")
                ax.text(j, i, txt, ha="center", va="center", fontsize=7)
        ax.set_xticks(range(len(c.col_labels)), c.col_labels, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(len(c.row_labels)), c.row_labels, fontsize=7)
        ax.set_xlabel(c.col_seat)
        ax.set_ylabel(c.row_seat)
        ax.set_title(f"{c.paid_seat} reward", fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle(f"{result.game_id}: cross-play ({result.name}, {result.episodes} episodes/pairing, 95% CI)",
                 fontsize=10)
    fig.savefig(path, dpi=120)


def _fmt(x: Any, spec: str = ".0f") -> str:
    """A rating-table figure in `spec` (ratings whole, rewards signed to 2 decimals); `-` when
    missing. Not `arena.dashboard.fmt_value`: its 3 significant digits print 1022 as 1.02e+03."""
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)


def ratings_table(result: TournamentResult) -> Table:
    """Ratings with CIs, best first within each seat group (a pure function of the result).

    Rows show labels; the full keys (`<game id>/<label>`) are in the CSV/JSON.
    """
    t = Table("#", Column("agent", overflow="fold"), Column("BT rating (95% CI)", no_wrap=True),
              Column("Elo", no_wrap=True), Column("mean reward (95% CI)", no_wrap=True), "n",
              title=f"ratings: {result.game_id} · {result.name} · "
                    f"{result.pairings_done}/{result.pairings_total} pairings",
              header_style="bold")
    last = None
    for row in rating_rows(result):
        r = dict(zip(RATING_COLUMNS, row))
        if last is not None and r["group"] != last:
            t.add_section()
        last = r["group"]
        bt = _fmt(r["bt_rating"]) + (f" [{_fmt(r['bt_lower'])}, {_fmt(r['bt_upper'])}]"
                                     if r["bt_lower"] is not None else "")
        reward = _fmt(r["mean_reward"], "+.2f") + (f" [{_fmt(r['reward_lower'], '+.2f')}, "
                                                   f"{_fmt(r['reward_upper'], '+.2f')}]"
                                                   if r["reward_lower"] is not None else "")
        t.add_row(str(r["rank"]), r["label"], bt, _fmt(r["elo"]), reward, str(r["episodes"]))
    return t


def crossplay_table(c: CrossPlay) -> Table:
    """The cross-play matrix: `mean ±half-width` per cell."""
    corner = f"{c.row_seat} \\ {c.col_seat}" if c.row_seat != c.col_seat else "row \\ column"
    t = Table(Column(corner, overflow="fold"), *(Column(x, overflow="fold") for x in c.col_labels),
              title=c.title, header_style="bold")
    for i, label in enumerate(c.row_labels):
        cells = []
        for j in range(len(c.col_labels)):
            m, lo, hi = (float(x[i, j]) for x in (c.cells.mean, c.cells.lower, c.cells.upper))
            cells.append("-" if not math.isfinite(m) else
                         f"{m:+.2f}" + (f" ±{(hi - lo) / 2:.2f}" if math.isfinite(hi - lo) else ""))
        t.add_row(label, *cells)
    return t


class TournamentView:
    """Progress and live standings while a tournament plays; plain lines off a terminal."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console()
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=self.console)
        self.pairings = self.progress.add_task("pairings", total=None)
        self.episodes = self.progress.add_task("episodes", total=None)
        self.standings: TournamentResult | None = None
        self.live = Live(self.render(), console=self.console, refresh_per_second=4) \
            if self.console.is_terminal else None

    def render(self) -> Group:
        parts: list[Any] = [self.progress]
        if self.standings is not None and self.standings.n_episodes:
            parts.append(ratings_table(self.standings))
        return Group(*parts)

    def __enter__(self) -> "TournamentView":
        if self.live:
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live:
            self.live.update(self.render())
            self.live.__exit__(*exc)

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "tournament_start":
            self.progress.update(self.pairings, total=event["pairings"], completed=event["done"])
            self.standings = event["standings"]
            if not self.live:
                self.console.print(f"tournament {event['name']} ({event['game']}): {event['pairings']} pairings, "
                                   f"{event['done']} already played, {event['episodes']} episodes each",
                                   highlight=False, markup=False)
        elif kind == "pairing_start":
            self.progress.update(self.episodes, description=event["pairing"], completed=0, total=None)
        elif kind == "episode":
            self.progress.update(self.episodes, completed=event["done"], total=event["total"])
        elif kind == "pairing_end":
            self.progress.advance(self.pairings)
            self.standings = event["standings"]
            if not self.live:
                rewards = ", ".join(f"{s}={r:+.3f}" for s, r in event["rewards"].items())
                self.console.print(f"[{self.standings.pairings_done}/{self.standings.pairings_total}] "
                                   f"{event['pairing']}: {rewards}", highlight=False, markup=False)
        if self.live:
            self.live.update(self.render())
