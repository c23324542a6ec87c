"""The live terminal view: a snapshot dataclass, a pure `render`, and thin loops.

`Snapshot.apply(event)` folds the run's events (the same ones in events.jsonl)
into the snapshot; `render(snapshot)` turns it into a rich renderable and is
tested with a capture console. `LiveView` drives a `rich.live.Live` while
training (or prints one plain line per round when stdout is not a terminal);
`watch` tails another process's events.jsonl into the same view. `LiveRegion` is what
it shares with the tournament's view: the `Live` region on a terminal, none off one.
A round that played a pool (`arena train --opponents`) adds one league line, the same text
in both (`arena.league.view.league_text`): under the table for the latest round, under the
round's plain line.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence, TypeVar

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from arena.league.view import league_text
from arena.runs.lock import run_holder
from arena.store import read_events, read_round_summaries
from arena.types import ArenaError

V = TypeVar("V", bound="LiveRegion")


@dataclass
class Snapshot:
    """Everything the view shows; built only from events."""

    run: str = ""
    game: str = ""
    rounds_total: int = 0
    episodes_per_round: int = 0
    seats: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    current_round: int | None = None
    episodes_done: int = 0
    phase: str = "starting"
    finished: bool = False
    round_started: float | None = None
    """When the current round started, and the time of the latest event (event times, so
    `arena watch` shows the same figures as the live view)."""
    now: float = 0.0
    live_losses: list[str] = field(default_factory=list)
    """Learner metrics to show as columns (a game's `GameInfo.live_losses`); a seat whose learner
    reports none of them (e.g. another recipe's learner) shows all of its own."""

    def apply(self, event: dict[str, Any]) -> "Snapshot":
        kind = event.get("type")
        self.now = float(event.get("time") or time.time())
        if kind == "run_start":
            self.run, self.game = event["run"], event["game"]
            self.rounds_total, self.episodes_per_round = event["rounds"], event["episodes"]
            self.seats = list(event.get("seats", []))
            self.live_losses = list(event.get("live_losses", []))
            self.rows = list(event.get("history", []))
            self.finished = False
        elif kind == "round_start":
            self.current_round, self.episodes_done, self.phase = event["round"], 0, "playing"
            self.round_started = self.now
        elif kind == "episode":
            self.episodes_done = event["done"]
        elif kind == "learner_start":
            self.phase = f"training {event['seat']}"
        elif kind == "learner_progress":
            self.phase = f"training {event['seat']}: {event['message']}"
        elif kind == "round_end":
            self.rows = [r for r in self.rows if r["round"] != event["round"]] + [event["summary"]]
            self.current_round, self.phase = None, "between rounds"
        elif kind == "run_end":
            self.finished, self.phase = True, "finished"
        return self


def fmt_value(x: Any) -> str:
    """A metric for a table cell: 3 significant digits (floats), as is otherwise."""
    if isinstance(x, float):
        return f"{x:.3g}" if abs(x) < 1e4 else f"{x:.3e}"
    return str(x)


def _duration(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def round_cells(snap: Snapshot) -> tuple[list[str], list[list[str]]]:
    """(column headers, one row of cell texts per finished round)."""
    headline = snap.rows[-1].get("headline", []) if snap.rows else []
    seats = snap.seats or sorted({s for r in snap.rows for s in r.get("mean_reward", {})})
    seat_keys: dict[str, set[str]] = {}
    for r in snap.rows:
        for seat, m in r.get("losses", {}).items():
            seat_keys.setdefault(seat, set()).update(m)
    # a seat's metrics named in live_losses; all of them where its learner reports none of those
    loss_keys = sorted(f"{seat}.{k}" for seat, keys in seat_keys.items()
                       for k in ([k for k in keys if k in snap.live_losses] or keys))
    headers = ["round", "eps", *[f"R:{s}" for s in seats], *headline, *loss_keys, "eps/s", "tok/s", "elapsed", "ETA"]
    rows = []
    for r in snap.rows:
        losses = {f"{seat}.{k}": v for seat, m in r.get("losses", {}).items() for k, v in m.items()}
        rows.append([
            str(r["round"]), str(r["episodes"]),
            *[fmt_value(r.get("mean_reward", {}).get(s, float("nan"))) for s in seats],
            *[fmt_value(r.get("metrics", {}).get(h, float("nan"))) for h in headline],
            *[fmt_value(losses.get(k, float("nan"))) for k in loss_keys],
            f"{r['episodes_per_s']:.1f}", f"{r['tokens_per_s']:.0f}",
            _duration(r["elapsed_s"]), _duration(r["eta_s"]),
        ])
    return headers, rows


def _width(cells: Sequence[str]) -> int:
    """Rendered width of a box-table column holding `cells` (text + 2 padding + 1 border)."""
    return max(len(c) for c in cells) + 3


def round_table(snap: Snapshot, width: int | None = None) -> Table:
    """One row per finished round; where that is wider than `width`, one row per figure
    and one column per round (the latest rounds that fit), so no figure is cut short."""
    headers, rows = round_cells(snap)
    title = f"{snap.run} · {snap.game}"
    wide = sum(_width([h, *(row[i] for row in rows)]) for i, h in enumerate(headers)) + 1
    if width is None or wide <= width:
        table = Table(title=Text(title), expand=False, header_style="bold")
        for h in headers:
            table.add_column(Text(h), justify="right", no_wrap=True)
        for row in rows:
            table.add_row(*map(Text, row))
        return table
    label_w, round_ws = _width(headers), [_width(row) for row in rows]
    shown = len(rows)
    while shown > 1 and label_w + sum(round_ws[len(rows) - shown:]) + 1 > width:
        shown -= 1
    kept = rows[len(rows) - shown:]
    if shown < len(rows):
        title += f" · last {shown} of {len(rows)} rounds"
    table = Table(title=Text(title), expand=False, header_style="bold")
    table.add_column("round", justify="left", no_wrap=True)
    for row in kept:
        table.add_column(Text(row[0]), justify="right", no_wrap=True)
    for i, h in enumerate(headers[1:], start=1):
        table.add_row(Text(h), *[Text(row[i]) for row in kept])
    return table


def render(snap: Snapshot, width: int | None = None) -> Group:
    """The whole view: the rounds table (laid out to fit `width`, if given) and, while a
    round runs, its progress."""
    if not snap.run:  # no run_start event yet
        return Group(Text("waiting for the run to start ...", style="dim"))
    parts: list[Any] = [round_table(snap, width)]
    league = league_text(snap.rows[-1].get("league")) if snap.rows else ""
    if league:  # the latest finished round's opponents (arena.league.view)
        parts.append(Text(f"round {snap.rows[-1].get('round')}: {league}"))
    if snap.current_round is not None:
        total = max(1, snap.episodes_per_round)
        line = Table.grid(padding=(0, 1))
        line.add_row(Text(f"round {snap.current_round} of 0-{snap.rounds_total - 1}", style="bold"),
                     ProgressBar(total=total, completed=min(snap.episodes_done, total), width=30),
                     Text(f"{snap.episodes_done}/{total} episodes"), Text(round_clock(snap), style="dim"))
        parts += [line, Text(snap.phase, style="dim")]  # own line: learners' progress lines are long
    elif snap.finished:
        parts.append(Text(f"finished {len(snap.rows)} rounds", style="green"))
    return Group(*parts)


def round_clock(snap: Snapshot) -> str:
    """The current round's elapsed time, and the run's ETA once a round has finished (the mean
    finished round's wall time for each round left, less what this one has used)."""
    if snap.round_started is None:
        return ""
    elapsed = max(0.0, snap.now - snap.round_started)
    walls = [r["wall_s"] for r in snap.rows if isinstance(r.get("wall_s"), (int, float))]
    if not walls or snap.current_round is None:
        return f"{_duration(elapsed)} in this round · ETA after the first round"
    left = sum(walls) / len(walls) * (snap.rounds_total - snap.current_round) - elapsed
    return f"{_duration(elapsed)} in this round · ETA {_duration(max(0.0, left))}"


def phase_table(phases: dict[str, float], title: str = "where the time went") -> Table:
    """Seconds per phase, largest first, with each one's share of their sum."""
    total = sum(phases.values()) or 1.0
    t = Table("phase", "seconds", "share", title=title, header_style="bold")
    for name, sec in sorted(phases.items(), key=lambda kv: -kv[1]):
        t.add_row(name, f"{sec:.1f}", f"{sec / total:.0%}")
    t.add_row("total", f"{sum(phases.values()):.1f}", "", style="bold")
    return t


def plain_line(summary: dict[str, Any]) -> str:
    """The non-terminal log: one line per finished round."""
    rewards = " ".join(f"R:{s}={fmt_value(v)}" for s, v in summary.get("mean_reward", {}).items())
    metrics = " ".join(f"{h}={fmt_value(summary['metrics'][h])}" for h in summary.get("headline", [])
                       if h in summary.get("metrics", {}))
    losses = " ".join(f"{s}.{k}={fmt_value(v)}" for s, m in summary.get("losses", {}).items() for k, v in m.items())
    return (f"round {summary['round']} episodes={summary['episodes']} {rewards} {metrics} {losses} "
            f"eps/s={summary['episodes_per_s']:.1f} tok/s={summary['tokens_per_s']:.0f} "
            f"elapsed={_duration(summary['elapsed_s'])} eta={_duration(summary['eta_s'])}").replace("  ", " ")


def plain_lines(summary: dict[str, Any]) -> list[str]:
    """What the non-terminal log prints for a finished round: `plain_line`, and the league's line
    (`arena.league.view.league_text`) under it when the round played a pool."""
    league = league_text(summary.get("league"))
    return [plain_line(summary)] + ([f"  {league}"] if league else [])


class LiveRegion:
    """A view shown in a `rich.live.Live` region on a terminal; off one `live` is None and the view
    prints plain lines instead. As a context manager it opens the region and closes it showing
    `last_frame()`. A subclass sets `console` and what `frame()` (the region's content) reads,
    then calls `start_live`."""

    console: Console
    live: Live | None = None

    def frame(self) -> Any:
        raise NotImplementedError

    def last_frame(self) -> Any:
        """What the region is left showing when it closes (default: the last frame)."""
        return self.frame()

    def start_live(self, refresh_per_second: float = 4) -> None:
        if self.console.is_terminal:
            self.live = Live(self.frame(), console=self.console, refresh_per_second=refresh_per_second,
                             transient=False)

    def refresh(self) -> None:
        if self.live:
            self.live.update(self.frame())

    def __enter__(self: V) -> V:
        if self.live:
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live:
            self.live.update(self.last_frame())
            self.live.__exit__(*exc)


class LiveView(LiveRegion):
    """Feeds events to a snapshot and shows it: live on a terminal, plain lines otherwise."""

    def __init__(self, console: Console | None = None, refresh_per_second: float = 4):
        self.console = console or Console()
        self.snapshot = Snapshot()
        self.start_live(refresh_per_second)

    def frame(self) -> Group:
        return render(self.snapshot, self.console.width)  # the width now: a resized terminal re-lays out

    def __call__(self, event: dict[str, Any]) -> None:
        self.snapshot.apply(event)
        if self.live:
            self.refresh()
        elif event.get("type") == "round_end":
            for line in plain_lines(event["summary"]):
                self.console.print(line, soft_wrap=True, highlight=False, markup=False)


def watch(run_dir: Path, console: Console | None = None, poll_s: float = 0.5,
          follow: bool = True, timeout_s: float | None = None) -> Snapshot:
    """Show a run's view from its events.jsonl until it finishes (or once, if not following).

    A run that no process is writing (its lock is free: the trainer was killed, or it was
    never resumed) will never finish: once its events are read, the rounds its store has
    committed are shown (a kill can come between a round's commit and its event) and
    watching stops with a line that says so."""
    offset, t0 = 0, time.monotonic()
    with LiveView(console) as view:
        while True:
            events, offset = read_events(run_dir, offset)
            for e in events:
                view(e)
            if view.snapshot.finished or not follow:
                return view.snapshot
            if timeout_s is not None and time.monotonic() - t0 > timeout_s:
                return view.snapshot
            if not events and run_holder(run_dir) is None:
                events, offset = read_events(run_dir, offset)  # what the writer wrote before it let go
                for e in events:
                    view(e)
                if not view.snapshot.finished:
                    return stopped(run_dir, view)
                return view.snapshot
            time.sleep(poll_s)


def stopped(run_dir: Path, view: "LiveView") -> Snapshot:
    """A run nobody writes: its committed rounds from the store, and a line saying it stopped."""
    snap = view.snapshot
    shown = {r.get("round") for r in snap.rows}
    try:
        committed = read_round_summaries(run_dir)
    except ArenaError:
        committed = []
    for summary in committed:
        if summary.get("round") not in shown:
            view({"type": "round_end", "round": summary.get("round"), "summary": summary})
    snap.phase = "not running"
    total = f" of {snap.rounds_total}" if snap.rounds_total else ""
    view.console.print(Text(f"run {Path(run_dir).name} is not running ({len(snap.rows)}{total} rounds done); "
                            f"`arena resume {Path(run_dir).name}` continues it"), highlight=False)
    return snap
