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

from rich import box
from rich.console import Console, Group
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table
from rich.text import Text

from arena.dashboard import LiveRegion
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


INTERVAL_NAMES = {"wilson": "Wilson", "bootstrap": "bootstrap percentile", "normal": "normal approximation"}


def heatmap(result: TournamentResult, path: Path) -> None:
    """The cross-play matrices as annotated heatmaps: one colour scale and one labelled colour bar
    for the figure, checkpoint rounds on integer ticks, each cell's mean over its 95% interval."""
    from arena.report.figures import Panel, heatmap_figure

    panels = [Panel(f"{c.paid_seat} reward", c.row_labels, c.col_labels, c.row_seat, c.col_seat,
                    c.cells.mean, c.cells.lower, c.cells.upper) for c in result.crossplay]
    methods = sorted({INTERVAL_NAMES.get(c.cells.method, c.cells.method) for c in result.crossplay})
    fig = heatmap_figure(panels, f"{result.game_id}: cross-play, tournament {result.name!r}, "
                                 f"{result.episodes} episodes per pairing, 95% CI ({', '.join(methods)})",
                         colour_label="mean reward of the panel's seat (row vs column)")
    fig.savefig(path, dpi=120)


def _fmt(x: Any, spec: str = ".0f") -> str:
    """A rating-table figure in `spec` (ratings whole, rewards signed to 2 decimals); `-` when
    missing. Not `arena.dashboard.fmt_value`: its 3 significant digits print 1022 as 1.02e+03."""
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)


def _ci(mean: Any, lower: Any, upper: Any, spec: str, sep: str = ", ") -> str:
    """`mean [lower, upper]`, or the mean alone where there is no interval."""
    has = lower is not None and upper is not None and math.isfinite(lower) and math.isfinite(upper)
    return _fmt(mean, spec) + (f" [{_fmt(lower, spec)}{sep}{_fmt(upper, spec)}]" if has else "")


def legend(short: dict[str, str], labels: list[str] | None = None) -> str:
    """`p0=prover/round-0  p1=prover/round-1 ...`: entries never contain spaces, so a wrapped
    legend breaks between entries, never inside a name."""
    return "  ".join(f"{short[x]}={x}" for x in (labels if labels is not None else short) if x in short)


def ratings_table(result: TournamentResult) -> Table:
    """Ratings with CIs, best first within each seat group (a pure function of the result).

    Agents appear by short label (`p3`), the caption maps each to its full label (the keys
    `<game id>/<label>` are in the CSV/JSON), so the table fits 80 columns. A header promises an
    interval only where the table has one (live standings are rated without a bootstrap).
    """
    rows = [dict(zip(RATING_COLUMNS, row)) for row in rating_rows(result)]
    bt_ci = any(r["bt_lower"] is not None for r in rows)
    reward_ci = any(r["reward_lower"] is not None for r in rows)
    by_method: dict[str, list[str]] = {}  # interval method -> the seat groups rated with it
    for g in result.groups:
        by_method.setdefault(INTERVAL_NAMES.get(g.reward.method, g.reward.method), []).append(g.name)
    methods = [m if len(by_method) == 1 else f"{m} ({', '.join(names)})" for m, names in by_method.items()]
    notes = [legend(result.short, [label for g in result.groups for label in g.labels])]
    if bt_ci or reward_ci:
        notes.append("95% CIs: " + ", ".join(
            (["BT by bootstrap over episode seeds"] if bt_ci else [])
            + ([f"mean reward by {', '.join(methods)}"] if reward_ci else [])) + ". n: episodes.")
    t = Table("#", Column("agent", no_wrap=True), Column("BT rating (95% CI)" if bt_ci else "BT rating", no_wrap=True),
              Column("Elo", no_wrap=True), Column("mean reward (95% CI)" if reward_ci else "mean reward", no_wrap=True),
              Column("n", justify="right", no_wrap=True),
              title=Text(f"ratings: {result.game_id} · {result.name} · "
                         f"{result.pairings_done}/{result.pairings_total} pairings"),
              caption=Text("\n".join(notes)), caption_justify="left", header_style="bold")
    last = None
    for r in rows:
        if last is not None and r["group"] != last:
            t.add_section()
        last = r["group"]
        t.add_row(str(r["rank"]), Text(result.short.get(r["label"], r["label"])),  # labels hold specs: user text
                  _ci(r["bt_rating"], r["bt_lower"], r["bt_upper"], ".0f"), _fmt(r["elo"]),
                  _ci(r["mean_reward"], r["reward_lower"], r["reward_upper"], "+.2f"), str(r["episodes"]))
    return t


def crossplay_table(c: CrossPlay) -> "CrossPlayTable":
    """The cross-play matrix as a renderable: each cell its mean over its `[lower,upper]`."""
    return CrossPlayTable(c)


class CrossPlayTable:
    """The cross-play matrix, fitted to the console: entrants by short label with a legend
    below, light rules, and the columns split into even blocks when the matrix is wider than
    the console (an interval is never cut or wrapped)."""

    def __init__(self, c: CrossPlay):
        self.c = c
        self.short = {x: c.short.get(x, x) for x in [*c.row_labels, *c.col_labels]}
        prefix = {seat: _prefix(self.short, labels) for seat, labels in
                  ((c.row_seat, c.row_labels), (c.col_seat, c.col_labels))}
        self.corner = "row \\ column" if c.row_seat == c.col_seat else \
            f"{prefix[c.row_seat] or c.row_seat} \\ {prefix[c.col_seat] or c.col_seat}"

    def cell(self, i: int, j: int) -> str:
        m, lo, hi = (float(x[i, j]) for x in (self.c.cells.mean, self.c.cells.lower, self.c.cells.upper))
        if not math.isfinite(m):
            return "-"
        return f"{m:+.2f}" + (f"\n[{lo:+.2f},{hi:+.2f}]" if math.isfinite(lo) and math.isfinite(hi) else "")

    def blocks(self, width: int) -> list[list[int]]:
        """Column indices per block, as even as can be, each block's table at most `width` wide."""
        c = self.c
        col_w = max([len(self.short[x]) for x in c.col_labels]
                    + [len(line) for i in range(len(c.row_labels)) for j in range(len(c.col_labels))
                       for line in self.cell(i, j).split("\n")])
        first_w = max([len(self.corner), *(len(self.short[x]) for x in c.row_labels)])
        fit = max(1, (width - first_w - 1) // (col_w + 2))  # each column: its text, a pad, a gap
        n = len(c.col_labels)
        size = -(-n // -(-n // fit))  # ceil(n / number of blocks)
        return [list(range(j, min(j + size, n))) for j in range(0, n, size)]

    def table(self, columns: list[int], title: str) -> Table:
        c = self.c
        t = Table(Column(Text(self.corner), no_wrap=True),
                  *(Column(Text(self.short[c.col_labels[j]]), no_wrap=True) for j in columns),
                  title=Text(title), header_style="bold", box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1, 0, 0))
        for i, label in enumerate(c.row_labels):
            t.add_row(Text(self.short[label]), *(Text(self.cell(i, j)) for j in columns))
        return t

    def __rich_console__(self, console: Console, options: Any):
        c = self.c
        blocks = self.blocks(options.max_width)
        for k, columns in enumerate(blocks):
            first, last = (self.short[c.col_labels[j]] for j in (columns[0], columns[-1]))
            yield self.table(columns, c.title if k == 0 else f"(continued: {first}..{last})")
        labels = list(dict.fromkeys([*c.row_labels, *c.col_labels]))
        method = INTERVAL_NAMES.get(c.cells.method, c.cells.method)
        yield Text(legend(self.short, labels), style="dim")
        yield Text(f"cells: mean reward over its 95% CI [lower,upper] ({method})", style="dim")


def _prefix(short: dict[str, str], labels: list[str]) -> str:
    """The letters the short labels of one seat share (`p` for p0, p1, pa), '' if none."""
    names = [short[x] for x in labels]
    common = names[0] if names else ""
    for name in names[1:]:
        while not name.startswith(common):
            common = common[:-1]
    return common.rstrip("0123456789")


class TournamentView(LiveRegion):
    """Progress and live standings while a tournament plays; plain lines off a terminal. The final
    ratings (with their bootstrap intervals) are printed once, when the tournament has ended."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console()
        self.progress = Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=self.console)
        self.pairings = self.progress.add_task("pairings", total=None)
        self.episodes = self.progress.add_task("episodes", total=None)
        self.standings: TournamentResult | None = None
        self.final: TournamentResult | None = None
        self.start_live()

    def frame(self) -> Group:
        parts: list[Any] = [self.progress]
        if self.standings is not None and self.standings.n_episodes:
            parts.append(ratings_table(self.standings))
        return Group(*parts)

    def last_frame(self) -> Group:
        return Group(self.progress)  # the standings give way to the final table below

    def __exit__(self, *exc: Any) -> None:
        super().__exit__(*exc)
        if self.final is not None and exc[0] is None:
            # printed, not left in the live region: a live region taller than the terminal is cut
            self.console.print(ratings_table(self.final))

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "tournament_start":
            self.progress.update(self.pairings, total=event["pairings"], completed=event["done"])
            self.standings = event["standings"]
            if not self.live:
                self.console.print(f"tournament {event['name']} ({event['game']}): {event['pairings']} pairings, "
                                   f"{event['done']} already played, {event['episodes']} episodes each",
                                   highlight=False, markup=False, soft_wrap=True)
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
                                   f"{event['pairing']}: {rewards}", highlight=False, markup=False, soft_wrap=True)
        elif kind == "tournament_end":
            self.final = event["result"]
        self.refresh()
