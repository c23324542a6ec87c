"""A run's `report.html`: one self-contained page to read, share or attach to a paper.

    <run>/report.html
        the run: game, recipe, rounds, seed
        its experiment, when one ran it: the claims beside the paper's figures (`experiment`)
        one small figure per headline metric over rounds, and each seat's mean reward
        the rounds table (rewards, metrics, learner metrics, time)
        the league, when the run played a pool: its meta-strategy per round, meta-game and
        exploitability (`league`)
        every tournament: ratings with CIs, cross-play tables, the heatmap
        every attack: steps-to-exploit per round, censored values marked and counted (`attacks`)
        every legibility study: accuracy and seconds per checkpoint, its plot (`arena.report.study`)
        the resolved config

Every command that adds to a run (`train`, `resume`, `tournament`, `attack`, an experiment)
ends with `refresh_report`: the page is rebuilt from everything the run holds and replaces the
old one atomically, under the run's lock, so the report is never out of date or half written.
`arena report <run>` rebuilds it by hand.

Everything comes from the run directory as data (`config.json`, the round summaries in
`arena.db`, `tournaments/<name>/tournament.json` and `crossplay.png`, `attacks/<name>/attack.json`
and `attack.png`, `experiment.json`): no game code is imported, so a run of any game reports
without `--game`. Figures are embedded as base64 PNG and the page loads nothing else. Every
string from the run (labels, model specs, config values) is HTML-escaped: text reaches the
reader exactly as written, never as markup.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Sequence

from arena.report import figures
from arena.report.attacks import attack_dirs, attack_section
from arena.report.experiment import experiment_section
from arena.report.league import league_section
from arena.report.page import ci, document, e, fmt, json_section, num, png_img, table, text, write_page
from arena.runs.lock import RunLock
from arena.store import RunStore, read_run_config
from arena.types import ArenaError

REPORT_FILE = "report.html"
LOCK_WAIT_S = 10.0
"""How long `refresh_report` waits for another process that holds the run's lock (another
command rewriting the report holds it for a second or two)."""


def refresh_report(run_dir: Path, *, lock: RunLock | None = None, wait_s: float | None = None) -> Path:
    """Rebuild `<run>/report.html` from everything the run holds, atomically, under the run's lock.

    `lock`: the run's lock when the caller holds it (a trainer between rounds); else it is taken
    here for as long as the page takes, waiting up to `wait_s` (default `LOCK_WAIT_S`) for its
    holder. A run that another process keeps locked (a training, which rewrites the report when
    it ends) is a one-line `ArenaError` naming that process."""
    run_dir = Path(run_dir)
    if lock is not None and lock.held:
        return write_report(run_dir)
    mine = RunLock(run_dir).acquire(wait_s=LOCK_WAIT_S if wait_s is None else wait_s)
    try:
        return write_report(run_dir)
    finally:
        mine.release()


def refresh_line(run_dir: Path, **kw: Any) -> str:
    """`refresh_report` for a command whose own work is done: the line it prints, either where
    the report is or why it could not be rewritten (the command still succeeded)."""
    try:
        return f"report: {refresh_report(run_dir, **kw)}"
    except ArenaError as err:
        return (f"{Path(run_dir) / REPORT_FILE} not rewritten: {err} (a training rewrites it when it ends; "
                f"or: arena report {Path(run_dir).name})")


def write_report(run_dir: Path, out: Path | None = None) -> Path:
    """Write the run's report (default `<run>/report.html`, atomically) and return its path."""
    run_dir = Path(run_dir)
    path = Path(out) if out else run_dir / REPORT_FILE
    page = build_report(run_dir)
    return write_page(path, page)


def build_report(run_dir: Path) -> str:
    """The report page of a run directory, as one HTML string."""
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    store = RunStore(run_dir)
    try:
        summaries = store.round_summaries()
    finally:
        store.close()
    game = text(config.get("game_id") or config.get("game") or "?")
    name = run_dir.name
    parts = [f"<h1>{e(name)}</h1>",
             f'<p class="meta">{e(game)} · recipe {e(text(config.get("recipe", "?")))} · '
             f'{len(summaries)}/{e(text(config.get("rounds", "?")))} rounds · '
             f'{e(text(config.get("episodes", "?")))} episodes per round · seed {e(text(config.get("seed", "?")))}'
             f' · report written {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}</p>']
    parts.append(experiment_section(run_dir))
    parts += ["<h2>Over rounds</h2>", round_figures(summaries)]
    parts += ["<h2>Rounds</h2>", rounds_table(summaries)]
    parts += league_section(summaries)  # [] unless the run played a pool (arena train --opponents)
    tournaments = sorted(d for d in (run_dir / "tournaments").glob("*") if d.is_dir()) \
        if (run_dir / "tournaments").is_dir() else []
    parts.append("<h2>Tournaments</h2>")
    parts += [tournament_section(d) for d in tournaments] or ['<p class="note">No tournament yet: '
                                                              f'<code>arena tournament {e(name)}</code>.</p>']
    parts.append("<h2>Attacks</h2>")
    parts += [attack_section(d, name) for d in attack_dirs(run_dir)] or [
        f'<p class="note">No attack yet: <code>arena attack {e(name)} --seat SEAT</code> (steps a fresh attacker '
        'needs to exploit each round\'s checkpoint, for games that say how to attack them).</p>']
    from arena.report.study import study_sections  # the legibility studies' own module (arena study)
    parts += study_sections(run_dir)
    parts += ["<h2>Config</h2>", f"<pre>{e(json.dumps(config, indent=2, sort_keys=True, default=str))}</pre>"]
    return document(f"{name} · {game}", [p for p in parts if p])


# -- pieces ----------------------------------------------------------------------------------

def _metric_names(summaries: Sequence[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """(headline metrics, other metrics) in the order the rounds report them."""
    seen: dict[str, None] = {}
    for s in summaries:
        for k in (s.get("metrics") or {}):
            seen.setdefault(str(k))
    headline = [str(h) for h in (summaries[-1].get("headline") or []) if str(h) in seen] if summaries else []
    return headline, [k for k in seen if k not in headline]


def round_figures(summaries: Sequence[dict[str, Any]]) -> str:
    """One small figure per headline metric over rounds (all metrics if the game names none, up
    to 8), and one of every seat's mean reward."""
    if not summaries:
        return '<p class="note">No completed rounds yet.</p>'
    headline, others = _metric_names(summaries)
    names = headline or others[:8]
    rounds = [int(s.get("round", i)) for i, s in enumerate(summaries)]
    imgs = []
    for name in names:
        values = [num((s.get("metrics") or {}).get(name)) for s in summaries]
        fig = figures.metric_figure(name, rounds, [math.nan if v is None else v for v in values])
        imgs.append(png_img(figures.png_bytes(fig), f"{name} over rounds"))
    seats = sorted({str(k) for s in summaries for k in (s.get("mean_reward") or {})})
    if seats:
        series = {seat: [num((s.get("mean_reward") or {}).get(seat)) for s in summaries] for seat in seats}
        fig = figures.metric_figure("mean reward", rounds, [], ylabel="mean reward per episode",
                                    series={k: [math.nan if v is None else v for v in vs] for k, vs in series.items()})
        imgs.append(png_img(figures.png_bytes(fig), "mean reward per seat over rounds"))
    note = "" if headline else '<p class="note">The game names no headline metrics: its first metrics are shown.</p>'
    return note + '<div class="figs">' + "".join(imgs) + "</div>"


def rounds_table(summaries: Sequence[dict[str, Any]]) -> str:
    if not summaries:
        return '<p class="note">No completed rounds yet.</p>'
    headline, others = _metric_names(summaries)
    seats = sorted({str(k) for s in summaries for k in (s.get("mean_reward") or {})})
    losses = sorted({(str(seat), str(k)) for s in summaries for seat, m in (s.get("losses") or {}).items()
                     if isinstance(m, dict) for k in m})
    header = (["round", "episodes"] + [f"R:{e(s)}" for s in seats]
              + [f'<span class="hl">{e(m)}</span>' for m in headline] + [e(m) for m in others]
              + [f"{e(s)}.{e(k)}" for s, k in losses] + ["wall s"])
    rows = []
    for s in summaries:
        metrics, rewards, ls = s.get("metrics") or {}, s.get("mean_reward") or {}, s.get("losses") or {}
        rows.append([e(fmt(s.get("round"), "g")), e(fmt(s.get("episodes"), "g"))]
                    + [e(fmt(rewards.get(x))) for x in seats] + [e(fmt(metrics.get(m))) for m in headline + others]
                    + [e(fmt((ls.get(seat) or {}).get(k))) for seat, k in losses] + [e(fmt(s.get("wall_s"), ".1f"))])
    return table(header, rows, left=0) + '<p class="note">R: mean reward per episode; underlined: the game\'s ' \
                                          'headline metrics; seat.name: what the seat\'s learner reported.</p>'


INTERVALS = {"wilson": "Wilson score interval", "bootstrap": "bootstrap percentile interval",
             "normal": "normal approximation"}


def tournament_section(out_dir: Path) -> str:
    """A tournament's ratings, cross-play tables and heatmap, from its `tournament.json`."""
    return json_section(f"<h3>Tournament {e(out_dir.name)}</h3>", out_dir, "tournament.json", _tournament_body,
                        "crossplay.png", f"cross-play heatmap of tournament {out_dir.name}")


def _tournament_body(doc: Any) -> str:
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    short = {str(k): str(v) for k, v in (doc.get("short_labels") or {}).items()}
    ratings = [r for r in doc.get("ratings") or [] if isinstance(r, dict)]
    parts = [f'<p class="meta">{e(text(doc.get("game", "?")))} · {e(fmt(doc.get("episodes_per_pairing"), "g"))} '
             f'episodes per pairing · {e(fmt(doc.get("pairings_done"), "g"))}/{e(fmt(doc.get("pairings"), "g"))} '
             f'pairings · {e(fmt(doc.get("episodes"), "g"))} episodes</p>']
    rows = [[e(text(r.get("group"))), e(fmt(r.get("rank"), "g")), e(short.get(str(r.get("label")), "")),
             e(text(r.get("label"))), ci(r.get("bt_rating"), r.get("bt_lower"), r.get("bt_upper"), ".0f"),
             e(fmt(r.get("elo"), ".0f")),
             ci(r.get("mean_reward"), r.get("reward_lower"), r.get("reward_upper"), "+.2f"),
             e(fmt(r.get("episodes"), "g")), e(text(r.get("method")))] for r in ratings]
    parts.append(table(["seat", "#", "short", "agent", "BT rating (95% CI)", "Elo", "mean reward (95% CI)", "n",
                        "comparison"], rows, left=4))
    methods = sorted({INTERVALS.get(str(m), str(m)) for m in (doc.get("reward_interval") or {}).values()})
    parts.append('<p class="note">BT: Bradley–Terry on an Elo-like scale (mean 1000), 95% bootstrap '
                 'interval over episode seeds; paired: checkpoints of one seat compared on the same '
                 'opponents and episode seeds; direct: entrants meet. Mean reward intervals: '
                 f'{e(", ".join(methods) or "95%")}. n: episodes.</p>')
    for c in doc.get("crossplay") or []:
        parts.append(_crossplay(c, short))
    return "".join(parts)


def _crossplay(c: dict[str, Any], short: dict[str, str]) -> str:
    rows, cols = [str(x) for x in c.get("rows") or []], [str(x) for x in c.get("cols") or []]
    mean, lower, upper = (c.get(k) or [] for k in ("mean", "lower", "upper"))

    def cell(i: int, j: int) -> str:
        def at(m: list) -> Any:
            return m[i][j] if i < len(m) and isinstance(m[i], list) and j < len(m[i]) else None
        return ci(at(mean), at(lower), at(upper), "+.2f") if num(at(mean)) is not None else "–"

    def name(x: str) -> str:
        return e(f"{short[x]} ({x})" if x in short else x)

    grid = table([e("row \\ column")] + [name(x) for x in cols],
                 ([name(r)] + [cell(i, j) for j in range(len(cols))] for i, r in enumerate(rows)))
    method = INTERVALS.get(str(c.get("interval")), "95% interval")
    return (f"<p><b>{e(text(c.get('title', 'cross-play')))}</b></p>" + grid
            + f'<p class="note">Cells: mean reward of the {e(text(c.get("paid_seat", "row")))} seat, '
              f'95% CI by {e(method)}.</p>')
