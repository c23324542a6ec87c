"""report.html's League section: a run trained with `arena train --opponents` (`arena.league`).

From the round summaries' `league` states (checked by `arena.league.view.read_league`: the
store is data, so a state of the wrong shape is skipped and a bad part of one is left blank):

- the meta-strategy per round: one column per pool member, the weight the round drew it with
  and, in brackets, the episodes it played (blank before it joined); a last row `next`, the
  weights after the last round;
- the last round's meta-game: the payoff matrix as a table and, for a pool of at most
  `HEATMAP_MAX` members, a heatmap (rules that play it: `pfsp`, `nash`);
- exploitability per round, when the game defines it (`GameInfo.exploitability`) or exploiters
  estimated it (`league.exploiters`, with its 95% interval over exploiter seeds): a table and a
  figure.

`league_section(summaries)` returns the section's pieces, or [] when no round played a pool.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from arena.league.view import LeagueState, percent, read_league
from arena.report import figures
from arena.report.page import ci, e, fmt, num, png_img, table

HEATMAP_MAX = 12
"""The largest pool whose meta-game is also drawn as a heatmap (the table shows any size)."""


def league_section(summaries: Sequence[Any]) -> list[str]:
    """`["<h2>League</h2>", ...]`, or [] when no round summary holds a league."""
    held = [s for s in summaries if isinstance(s, dict) and "league" in s]
    if not held:
        return []
    rounds = [(s, read_league(s["league"])) for s in held]
    good = [(s, st) for s, st in rounds if st is not None]
    bad = [fmt(s.get("round"), "g") for s, st in rounds if st is None]
    parts = ["<h2>League</h2>"]
    if good:
        last = good[-1][1]
        parts.append(f'<p class="meta">rule {e(last.rule)} · learner {e(last.learner)} · opponents in seat '
                     f'{e(last.opponent)} drawn from a pool of {len(last.labels)} after round '
                     f'{e(fmt(good[-1][0].get("round"), "g"))}</p>')
        parts += [weights_table(good), payoff_part(good), exploitability_part(good)]
    if bad:
        parts.append(f'<p class="note">No readable league state in round {e(", ".join(bad))} (left out).</p>')
    return [p for p in parts if p]


def weights_table(good: Sequence[tuple[dict[str, Any], LeagueState]]) -> str:
    """Rounds down, members across: `41% (26)`, this round's weight and episodes against the member."""
    labels = list(dict.fromkeys(label for _, st in good for label in st.labels))
    rows = []
    for s, st in good:
        cells = {label: _cell(w, c) for label, w, c in st.played()}
        rows.append([e(fmt(s.get("round"), "g"))] + [cells.get(label, "") for label in labels]
                    + [e(fmt(sum(st.counts), "g")) if st.counts is not None else "–"])
    last = good[-1][1]
    if last.weights is not None:
        nxt = dict(zip(last.labels, last.weights))
        rows.append(["next"] + [e(percent(nxt[label])) if label in nxt else "" for label in labels] + [""])
    return ("<h3>The meta-strategy per round</h3>" + table(["round"] + [e(x) for x in labels] + ["episodes"], rows,
                                                           left=0)
            + '<p class="note">Each round\'s row: the probability that the round drew each pool member as the '
              'opponent and, in brackets, the episodes played against it; blank: not in the pool yet (a round\'s '
              'checkpoint joins after it). <b>next</b>: the weights after the last round, which the next round '
              'draws from (the meta-strategy whose exploitability is <code>meta_exploitability</code>).</p>')


def _cell(w: float | None, c: int | None) -> str:
    count = f' <span class="ci">({c})</span>' if c is not None else ""
    return e(percent(w)) + count


def payoff_part(good: Sequence[tuple[dict[str, Any], LeagueState]]) -> str:
    """The last meta-game the run played: its payoff table, and its heatmap for a small pool."""
    found = next(((s, st, st.payoff) for s, st in reversed(good) if st.payoff is not None), None)
    if found is None:
        return ""
    s, st, payoff = found
    rows = [[e(label)] + [e(fmt(v, "+.3g")) for v in row] for label, row in zip(st.labels, payoff)]
    head = f"<h3>The meta-game after round {e(fmt(s.get('round'), 'g'))}</h3>"
    grid = table([e(f"{st.learner} \\ {st.opponent}")] + [e(x) for x in st.labels], rows)
    n = len(st.labels)
    if n <= HEATMAP_MAX:
        nan = np.full((n, n), np.nan)
        panel = figures.Panel("payoff", st.labels, st.labels, st.learner, st.opponent, np.array(payoff), nan, nan)
        fig = figures.heatmap_figure([panel], f"meta-game after round {fmt(s.get('round'), 'g')} ({st.rule})",
                                     colour_label="payoff of the row member")
        grid += f'<div class="figs">{png_img(figures.png_bytes(fig), "the meta-game payoff matrix", "mid")}</div>'
    return (head + grid
            + f'<p class="note">Row member in the learner\'s seat ({e(st.learner)}), column member in the '
              f'opponent\'s ({e(st.opponent)}): the mean of (r_learner − r_opponent) / 2 over the league\'s '
              'meta-game episodes.</p>')


def exploitability_part(good: Sequence[tuple[dict[str, Any], LeagueState]]) -> str:
    """Exploitability, meta_exploitability and the exploiters' NashConv (95% interval) per round."""
    rounds = [num(s.get("round")) for s, _ in good]
    xs = [float(i) if r is None else r for i, r in enumerate(rounds)]
    exp = [st.exploitability for _, st in good]
    meta = [st.meta_exploitability for _, st in good]
    xpl = [st.exploiters for _, st in good]
    xnc = [x.nash_conv if x is not None and x.nash_conv is not None
           else num((s.get("metrics") or {}).get("exploiter_nash_conv")) for (s, _), x in zip(good, xpl)]
    columns = {"exploitability": exp, "meta_exploitability": meta, "exploiter_nash_conv": xnc}
    shown = {k: v for k, v in columns.items() if any(x is not None for x in v)}
    if not shown:
        return ""
    header = ["round"] + [e(k) + (" (95% CI)" if k == "exploiter_nash_conv" else "") for k in shown]
    with_exploiters = "exploiter_nash_conv" in shown
    if with_exploiters:
        header.append("exploiters")
    rows = []
    for i, (s, _) in enumerate(good):
        row = [e(fmt(s.get("round"), "g"))]
        for k, vs in shown.items():
            x = xpl[i] if k == "exploiter_nash_conv" else None
            row.append(ci(vs[i], x.low, x.high, ".3g") if x is not None else e(fmt(vs[i], ".3g")))
        if with_exploiters:
            x = xpl[i]
            row.append(e(f"{fmt(x.seeds, 'g')} seeds × {fmt(x.steps, 'g')} steps") if x is not None else "–")
        rows.append(row)

    def nan(vs: Sequence[float | None]) -> list[float]:
        return [math.nan if v is None else v for v in vs]

    bounds = {"exploiter_nash_conv": (nan([x.low if x else None for x in xpl]),
                                      nan([x.high if x else None for x in xpl]))}
    fig = figures.nash_conv_figure(xs, {k: nan(v) for k, v in shown.items()}, bounds)
    return ("<h3>Exploitability per round</h3>" + table(header, rows, left=0)
            + f'<div class="figs">{png_img(figures.png_bytes(fig), "exploitability per round", "mid")}</div>'
            + '<p class="note">NashConv: the sum of both players\' best-response gains, 0 exactly at a Nash '
              'equilibrium. exploitability: the learner\'s policy after the round; meta_exploitability: the '
              'mixture the next round draws its opponents from (both computed by the game, '
              '<code>GameInfo.exploitability</code>); exploiter_nash_conv: estimated by exploiter agents trained '
              'against the round\'s policies, 95% interval over exploiter seeds.</p>')
