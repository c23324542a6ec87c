"""A run's `report.html`: one self-contained page to read, share or attach to a paper.

    <run>/report.html
        the run: game, recipe, rounds, seed
        one small figure per headline metric over rounds, and each seat's mean reward
        the rounds table (rewards, metrics, learner metrics, time)
        every tournament: ratings with CIs, cross-play tables, the heatmap
        every legibility study: accuracy and seconds per checkpoint, its plot (`arena.report.study`)
        the resolved config

Everything comes from the run directory as data (`config.json`, the round summaries in
`arena.db`, `tournaments/<name>/tournament.json` and `crossplay.png`): no game code is
imported, so a run of any game reports without `--game`. Figures are embedded as base64
PNG and the page loads nothing else. Every string from the run (labels, model specs,
config values) is HTML-escaped: text reaches the reader exactly as written, never as markup.
"""
from __future__ import annotations

import base64
import html
import json
import math
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

from arena.report import figures
from arena.store import RunStore, read_run_config
from arena.types import ArenaError

MAX_PNG_BYTES = 20 * 2**20
CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1100px;
       padding: 0 1em; color: #1d1d1f; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
h3 { margin-top: 1.4em; }
.meta { color: #555; } .note { color: #666; font-size: 0.9em; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #d0d0d0; padding: 0.25em 0.6em; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; } td.l, th.l { text-align: left; }
td .ci { color: #666; font-size: 0.85em; }
th .hl { border-bottom: 2px solid #3b6fd8; }
.figs { display: flex; flex-wrap: wrap; gap: 0.8em; }
.figs img { width: 340px; border: 1px solid #eee; }
img.wide { max-width: 100%; border: 1px solid #eee; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
"""


def write_report(run_dir: Path, out: Path | None = None) -> Path:
    """Write the run's report (default `<run>/report.html`, atomically) and return its path."""
    run_dir = Path(run_dir)
    path = Path(out) if out else run_dir / "report.html"
    page = build_report(run_dir)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(page, encoding="utf-8")
        tmp.replace(path)
    except OSError as e:
        raise ArenaError(f"cannot write {path}: {e.strerror}") from None
    return path


def build_report(run_dir: Path) -> str:
    """The report page of a run directory, as one HTML string."""
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    store = RunStore(run_dir)
    try:
        summaries = store.round_summaries()
    finally:
        store.close()
    game = _text(config.get("game_id") or config.get("game") or "?")
    name = run_dir.name
    parts = [f"<h1>{e(name)}</h1>",
             f'<p class="meta">{e(game)} · recipe {e(_text(config.get("recipe", "?")))} · '
             f'{len(summaries)}/{e(_text(config.get("rounds", "?")))} rounds · '
             f'{e(_text(config.get("episodes", "?")))} episodes per round · seed {e(_text(config.get("seed", "?")))}'
             f' · report written {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}</p>']
    parts += ["<h2>Over rounds</h2>", round_figures(summaries)]
    parts += ["<h2>Rounds</h2>", rounds_table(summaries)]
    tournaments = sorted(d for d in (run_dir / "tournaments").glob("*") if d.is_dir()) \
        if (run_dir / "tournaments").is_dir() else []
    parts.append("<h2>Tournaments</h2>")
    parts += [tournament_section(d) for d in tournaments] or ['<p class="note">No tournament yet: '
                                                              f'<code>arena tournament {e(name)}</code>.</p>']
    from arena.report.study import study_sections  # the legibility studies' own module (arena study)
    parts += study_sections(run_dir)
    parts += ["<h2>Config</h2>", f"<pre>{e(json.dumps(config, indent=2, sort_keys=True, default=str))}</pre>"]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{e(name)} · {e(game)}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(parts) + "\n</body></html>\n")


# -- pieces ----------------------------------------------------------------------------------

def e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _text(x: Any) -> str:
    return x if isinstance(x, str) else json.dumps(x, default=str)


def num(x: Any) -> float | None:
    """A finite number from the run's data, else None (strings, NaN, missing)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x) if math.isfinite(x) else None


def fmt(x: Any, spec: str = ".4g") -> str:
    v = num(x)
    return "–" if v is None else format(v, spec)


def png_img(data: bytes, alt: str, cls: str = "") -> str:
    """An `<img>` with the PNG embedded (the page needs no other file)."""
    klass = f' class="{cls}"' if cls else ""
    return f'<img{klass} alt="{e(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode("ascii")}">'


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], left: int = 1) -> str:
    """An HTML table from already-escaped cells; the first `left` columns left-aligned."""
    head = "".join(f'<th{" class=l" if i < left else ""}>{h}</th>' for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f'<td{" class=l" if i < left else ""}>{c}</td>' for i, c in enumerate(row))
                   + "</tr>" for row in rows)
    return f'<div class="scroll"><table><tr>{head}</tr>{body}</table></div>'


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
    header = (["round", "episodes"] + [f"R:{e(s)}" for s in seats] + [f'<span class="hl">{e(m)}</span>' for m in headline]
              + [e(m) for m in others] + [f"{e(s)}.{e(k)}" for s, k in losses] + ["wall s"])
    rows = []
    for s in summaries:
        metrics, rewards, ls = s.get("metrics") or {}, s.get("mean_reward") or {}, s.get("losses") or {}
        rows.append([e(fmt(s.get("round"), "g")), e(fmt(s.get("episodes"), "g"))]
                    + [e(fmt(rewards.get(x))) for x in seats] + [e(fmt(metrics.get(m))) for m in headline + others]
                    + [e(fmt((ls.get(seat) or {}).get(k))) for seat, k in losses] + [e(fmt(s.get("wall_s"), ".1f"))])
    return _table(header, rows, left=0) + '<p class="note">R: mean reward per episode; underlined: the game\'s ' \
                                           'headline metrics; seat.name: what the seat\'s learner reported.</p>'


def _ci(mean: Any, lower: Any, upper: Any, spec: str) -> str:
    lo, hi = num(lower), num(upper)
    ci = f' <span class="ci">[{format(lo, spec)}, {format(hi, spec)}]</span>' if lo is not None and hi is not None \
        else ""
    return e(fmt(mean, spec)) + ci


INTERVALS = {"wilson": "Wilson score interval", "bootstrap": "bootstrap percentile interval",
             "normal": "normal approximation"}


def tournament_section(out_dir: Path) -> str:
    """A tournament's ratings, cross-play tables and heatmap, from its `tournament.json`."""
    head = f"<h3>Tournament {e(out_dir.name)}</h3>"
    try:
        doc = json.loads((out_dir / "tournament.json").read_text(encoding="utf-8"))
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        body = _tournament_body(doc)
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as err:
        return head + f'<p class="note">Cannot read {e(out_dir.name)}/tournament.json: {e(err)}</p>'
    png = out_dir / "crossplay.png"
    if png.is_file() and png.stat().st_size <= MAX_PNG_BYTES:
        data = png.read_bytes()
        if data[:8] == b"\x89PNG\r\n\x1a\n":
            body += png_img(data, f"cross-play heatmap of tournament {out_dir.name}", "wide")
    return head + body


def _tournament_body(doc: dict[str, Any]) -> str:
    short = {str(k): str(v) for k, v in (doc.get("short_labels") or {}).items()}
    ratings = [r for r in doc.get("ratings") or [] if isinstance(r, dict)]
    parts = [f'<p class="meta">{e(_text(doc.get("game", "?")))} · {e(fmt(doc.get("episodes_per_pairing"), "g"))} '
             f'episodes per pairing · {e(fmt(doc.get("pairings_done"), "g"))}/{e(fmt(doc.get("pairings"), "g"))} '
             f'pairings · {e(fmt(doc.get("episodes"), "g"))} episodes</p>']
    rows = [[e(_text(r.get("group"))), e(fmt(r.get("rank"), "g")), e(short.get(str(r.get("label")), "")),
             e(_text(r.get("label"))), _ci(r.get("bt_rating"), r.get("bt_lower"), r.get("bt_upper"), ".0f"),
             e(fmt(r.get("elo"), ".0f")), _ci(r.get("mean_reward"), r.get("reward_lower"), r.get("reward_upper"), "+.2f"),
             e(fmt(r.get("episodes"), "g")), e(_text(r.get("method")))] for r in ratings]
    parts.append(_table(["seat", "#", "short", "agent", "BT rating (95% CI)", "Elo", "mean reward (95% CI)", "n",
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
        return _ci(at(mean), at(lower), at(upper), "+.2f") if num(at(mean)) is not None else "–"

    def name(x: str) -> str:
        return e(f"{short[x]} ({x})" if x in short else x)

    table = _table([e("row \\ column")] + [name(x) for x in cols],
                   ([name(r)] + [cell(i, j) for j in range(len(cols))] for i, r in enumerate(rows)))
    method = INTERVALS.get(str(c.get("interval")), "95% interval")
    return (f"<p><b>{e(_text(c.get('title', 'cross-play')))}</b></p>" + table
            + f'<p class="note">Cells: mean reward of the {e(_text(c.get("paid_seat", "row")))} seat, '
              f'95% CI by {e(method)}.</p>')
