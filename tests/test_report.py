"""Results for a paper: intervals inside the metric's range, tables that fit 80 columns and show
what their headers promise, figures with one labelled colour scale, and `arena report`'s HTML."""
from __future__ import annotations

import io
import math
import re
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from arena import ratings as R
from arena.cli import main
from arena.report import figures
from arena.tournament.analysis import CrossPlay, GroupResult, TournamentResult, short_labels
from arena.tournament.report import TournamentView, crossplay_table, ratings_table

Z = 1.959963984540054


# -- intervals: pure functions on hand-made cases --------------------------------------------

def test_wilson_interval_by_hand():
    lo, hi = R.wilson_interval([0, 10, 5, 0], [10, 10, 10, 0])
    np.testing.assert_allclose(lo[:3], [0.0, 10 / (10 + Z * Z), 0.236593], atol=1e-6)
    np.testing.assert_allclose(hi[:3], [Z * Z / (10 + Z * Z), 1.0, 0.763407], atol=1e-6)
    assert math.isnan(lo[3]) and math.isnan(hi[3])  # no trials: no interval


def test_a_bounded_interval_stays_inside_the_reward_range_where_the_normal_one_does_not():
    # 15 losses (-1) and 1 win (+1): mean -0.875, sample sd 0.5, normal half-width 1.96 * 0.5 / 4
    values, groups = [-1.0] * 15 + [1.0], [0] * 16
    normal = R.mean_ci(values, groups, 1)
    assert normal.lower[0] == pytest.approx(-0.875 - Z * 0.5 / 4) and normal.lower[0] < -1  # -1.12: impossible
    bounded = R.bounded_mean_ci(values, groups, 1, rng=np.random.default_rng(0))
    p_lo, p_hi = R.wilson_interval(1, 16)
    assert bounded.method == "wilson" and bounded.mean[0] == pytest.approx(-0.875)
    np.testing.assert_allclose([bounded.lower[0], bounded.upper[0]], [-1 + 2 * p_lo, -1 + 2 * p_hi])
    assert -1 <= bounded.lower[0] < bounded.mean[0] < bounded.upper[0] <= 1


def test_bootstrap_mean_interval_by_hand():
    rng = np.random.default_rng(0)
    # two values 0 and 1: resampled means are 0, 1/2, 1 with probabilities 1/4, 1/2, 1/4,
    # so the 2.5% and 97.5% quantiles are 0 and 1
    ci = R.bootstrap_mean_ci([0.0, 1.0, 5.0, 5.0, 7.0], [0, 0, 1, 1, 2], 3, rng=rng, rounds=4000)
    assert ci.method == "bootstrap"
    assert (ci.lower[0], ci.upper[0], ci.mean[0]) == (0.0, 1.0, 0.5)
    assert (ci.lower[1], ci.upper[1]) == (5.0, 5.0)  # no spread: zero width
    assert math.isnan(ci.lower[2]) and ci.mean[2] == 7.0  # one value: no interval
    none = R.bootstrap_mean_ci([0.0, 1.0], [0, 0], 1, rng=rng, rounds=0)
    assert math.isnan(none.lower[0]) and none.mean[0] == 0.5


def test_bounded_intervals_of_many_valued_data_are_bootstrap_inside_min_and_max():
    rng = np.random.default_rng(1)
    values = rng.choice([-1.0, 0.0, 0.5, 1.0], size=60, p=[0.7, 0.1, 0.1, 0.1])
    groups = np.arange(60) % 3
    ci = R.bounded_mean_ci(values, groups, 3, rng=np.random.default_rng(2), rounds=500)
    assert ci.method == "bootstrap"
    for k in range(3):
        x = values[groups == k]
        assert x.min() <= ci.lower[k] <= x.mean() <= ci.upper[k] <= x.max()
    same = R.bounded_mean_ci([2.0, 2.0, 2.0], [0, 0, 1], 2, rng=rng)  # one distinct value: it is the interval
    assert same.lower.tolist() == same.upper.tolist() == same.mean.tolist() == [2.0, 2.0]


def test_payoff_matrix_with_bounded_intervals():
    rows, cols, pay = [0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1, 1], [-1.0, -1.0, -1.0, 1.0, -1.0, 1.0]
    m = R.payoff_matrix(rows, cols, pay, 2, 2, interval="bounded", rng=np.random.default_rng(0))
    assert m.method == "wilson" and m.mean[0, 0] == -1.0 and m.lower[0, 0] == -1.0 < m.upper[0, 0]
    assert math.isnan(m.mean[0, 1]) and math.isnan(m.lower[0, 1])  # an empty cell
    assert np.nanmin(m.lower) >= -1 and np.nanmax(m.upper) <= 1
    with pytest.raises(ValueError, match="explicit rng"):
        R.payoff_matrix(rows, cols, pay, 2, 2, interval="bounded")


# -- tables: 80 columns, names never split, headers that keep their promise -----------------

def short(groups):
    return short_labels([(g.seats, g.labels) for g in groups])


def hand_result(n_rounds: int = 6, rounds: int = 200) -> TournamentResult:
    """A prover x verifier tournament over `n_rounds` checkpoints each, rated from made-up matches."""
    rng = np.random.default_rng(0)
    provers = [f"prover/round-{k}" for k in range(n_rounds)]
    verifiers = [f"verifier/round-{k}" for k in range(n_rounds - 1)] + ["verifier/scripted:constant?value=1"]
    n = len(provers)
    a, b = np.triu_indices(n, 1)
    s = (rng.random(a.size) < 0.7).astype(float)
    bt = R.bootstrap_bradley_terry(a, b, s, n, rng=rng, rounds=rounds)
    paid = rng.choice([-1.0, 1.0], size=8 * n)
    who = np.arange(8 * n) % n
    groups = [GroupResult(("prover",), provers, [f"g/{x}" for x in provers], [""] * n,
                          R.bounded_mean_ci(paid, who, n, rng=rng, rounds=rounds), bt, R.elo(a, b, s, n),
                          a.size, "paired"),
              GroupResult(("verifier",), verifiers, [f"g/{x}" for x in verifiers], [""] * n,
                          R.bounded_mean_ci(-paid, who, n, rng=rng, rounds=rounds), bt, R.elo(b, a, s, n),
                          a.size, "paired")]
    labels = short(groups)
    rows, cols = np.arange(8 * n * n) // (8 * n), np.arange(8 * n * n) % n
    cells = R.payoff_matrix(rows, cols, rng.choice([-1.0, 1.0], size=rows.size), n, n,
                            interval="bounded", rng=rng, rounds=rounds)
    cross = [CrossPlay("mean prover reward (prover rows × verifier columns)", "prover", "verifier", "prover",
                       provers, verifiers, cells, labels)]
    return TournamentResult("t", "prover-verifier-v1", Path("."), Path("."), 8, n * n, n * n, 8 * n * n,
                            groups, cross, labels)


def render(renderable, width: int = 80) -> str:
    console = Console(file=io.StringIO(), width=width, force_terminal=False)
    console.print(renderable)
    return console.file.getvalue()


def test_short_labels_name_rounds_by_seat_letter_and_others_by_letter():
    labels = short_labels([(("prover",), ["prover/round-0", "prover/round-12", "other/prover/round-1"]),
                           (("policy_a", "policy_b"), ["policy_a/round-2", "policy_b/round-2", "scripted:random"])])
    assert labels == {"prover/round-0": "pr0", "prover/round-12": "pr12", "other/prover/round-1": "pra",
                      "policy_a/round-2": "po2", "policy_b/round-2": "poa", "scripted:random": "pob"}


@pytest.mark.parametrize("n_rounds", [3, 6, 12])
def test_tables_fit_80_columns_with_intervals_and_whole_names(n_rounds):
    result = hand_result(n_rounds)
    text = render(ratings_table(result)) + "".join(render(crossplay_table(c)) for c in result.crossplay)
    assert max(map(len, text.splitlines())) <= 80, text
    assert "BT rating (95% CI)" in text and "mean reward (95% CI)" in text
    bt_rows = re.findall(r"│ \d+\s+│ (\w+)\s+│ (-?\d+) \[(-?\d+), (-?\d+)\]", text)
    assert len(bt_rows) == 2 * n_rounds  # every row shows its interval
    assert all(int(lo) <= int(r) <= int(hi) for _, r, lo, hi in bt_rows)
    intervals = [(float(lo), float(hi)) for lo, hi in re.findall(r"\[([+-]\d\.\d\d),\s?([+-]\d\.\d\d)\]", text)]
    assert len(intervals) >= 2 * n_rounds + n_rounds * n_rounds and all(-1 <= lo <= hi <= 1 for lo, hi in intervals)
    words = set(text.split())
    for label in [*result.groups[0].labels, *result.groups[1].labels]:
        assert f"{result.short[label]}={label}" in words, label  # the legend names it, unsplit
    assert "(Wilson)" in text


def test_headers_promise_intervals_only_where_there_are_some():
    result = hand_result(3, rounds=0)  # live standings: no bootstrap
    for g in result.groups:
        g.bt = R.RatingsCI(g.bt.rating, np.full(3, np.nan), np.full(3, np.nan), g.bt.samples)
        g.reward = R.mean_ci([0.0, 0.5, 1.0], [0, 1, 2], 3)  # one value each: no interval either
    text = render(ratings_table(result), width=120)
    assert "95% CI" not in text and "[" not in text.split("p0=")[0]


# -- figures -------------------------------------------------------------------------------

def test_text_colour_follows_cell_luminance():
    assert figures.text_colour((0.05, 0.05, 0.3, 1)) == "white"
    assert figures.text_colour((0.95, 0.95, 0.6, 1)) == "black"
    assert figures.luminance((1, 1, 1)) == pytest.approx(1) and figures.luminance((0, 0, 0)) == 0


def test_heatmap_has_one_labelled_colour_scale_integer_round_ticks_and_readable_text():
    result = hand_result(4)
    c = result.crossplay[0]
    panels = [figures.Panel(f"{s} reward", c.row_labels, c.col_labels, c.row_seat, c.col_seat,
                            sign * c.cells.mean, sign * c.cells.upper, sign * c.cells.lower)
              for s, sign in (("prover", 1), ("verifier", -1))]
    fig = figures.heatmap_figure(panels, "title", colour_label="mean reward")
    heat = [ax for ax in fig.axes if ax.images]
    bars = [ax for ax in fig.axes if not ax.images]
    assert len(heat) == 2 and len(bars) == 1 and bars[0].get_ylabel() == "mean reward"
    assert {im.get_clim() for ax in heat for im in ax.images} == {heat[0].images[0].get_clim()}  # one scale
    assert [t.get_text() for t in heat[0].get_yticklabels()] == ["0", "1", "2", "3"]
    assert heat[0].get_ylabel() == "prover checkpoint (round)" and heat[0].get_xlabel() == "verifier"
    image = heat[0].images[0]
    for t in heat[0].texts:
        i, j = (round(v) for v in t.get_position()[::-1])
        assert t.get_color() == figures.text_colour(image.cmap(image.norm(panels[0].mean[i, j])))
    assert figures.png_bytes(fig)[:8] == b"\x89PNG\r\n\x1a\n"


def test_metric_figure_ticks_rounds_as_integers():
    fig = figures.metric_figure("accuracy", [0, 1, 2], [0.1, 0.5, 0.7])
    ax = fig.axes[0]
    fig.canvas.draw()
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)
    assert ax.get_xlabel() == "round" and ax.get_ylabel() == "accuracy"


# -- arena tournament prints its table once --------------------------------------------------

DUEL = ["tournament", "--game", "duel-v0", "--env", "judge=gold", "--seat",
        "policy_a=scripted:adder,scripted:adder?noise=3,scripted:random", "-n", "4", "--bootstrap", "50"]


def test_arena_tournament_prints_the_ratings_table_once(tmp_path, capsys):
    assert main(["--runs-dir", str(tmp_path), *DUEL, "--plain"]) == 0
    out = capsys.readouterr().out
    assert out.count("ratings: duel-v0") == 1 and "BT rating (95% CI)" in out
    tables = [line for line in out.splitlines()[7:] if not line.startswith("report: ")]  # a path is never folded
    assert max(map(len, tables)) <= 80  # the tables (plain pairing lines are never wrapped)
    assert f"report: {tmp_path / 'duel-v0-tournament' / 'report.html'}" in out

    live = Console(file=io.StringIO(), force_terminal=True, width=80)
    from arena.tournament import TournamentConfig, run_tournament

    with TournamentView(live) as view:
        run_tournament(TournamentConfig(game="duel-v0", env={"judge": "gold"}, name="live", episodes=4,
                                        seats={"policy_a": ["scripted:adder", "scripted:random"]},
                                        bootstrap=50), tmp_path, on_event=view)
    shown = live.file.getvalue()
    # live frames rate without a bootstrap; the final table, printed once, has the BT intervals
    assert shown.count("BT rating (95% CI)") == 1
    assert "ratings: duel-v0 · live · 2/2 pairings" in shown[shown.index("BT rating (95% CI)") - 400:]


# -- arena report: one self-contained page -------------------------------------------------

@pytest.mark.slow
def test_report_html_is_self_contained_complete_and_escaped(runs, capsys):
    import base64

    text = "<b>bold?</b>"  # a prover that says this: it must reach the reader as text, never as markup
    assert main(["train", "prover-verifier-v1", "--recipe", "scripted", "--rounds", "3", "--episodes", "8",
                 "--run", "r", "--plain", "--seat", f"prover=scripted:constant?value={text}"]) == 0
    assert main(["tournament", "r", "-n", "4", "--bootstrap", "50", "--plain"]) == 0
    capsys.readouterr()
    assert main(["report", "r"]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {runs / 'r' / 'report.html'}"
    page = (runs / "r" / "report.html").read_text()

    assert "<script" not in page and not re.search(r'(?:src|href)="(?!data:)', page)  # loads nothing else
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    headline = ["helpful_accuracy", "sneaky_incorrect", "sneaky_success", "verifier_auc"]
    assert len(images) == len(headline) + 2  # a figure per headline metric, the rewards, the heatmap
    assert all(base64.b64decode(x)[:8] == b"\x89PNG\r\n\x1a\n" for x in images)
    for name in headline:
        assert f'alt="{name} over rounds"' in page
    rounds = page[page.index("<h2>Rounds</h2>"):page.index("<h2>Tournaments</h2>")]
    assert rounds.count("<tr>") == 1 + 3  # the header and one row per round
    tournament = page[page.index("<h2>Tournaments</h2>"):page.index("<h2>Config</h2>")]
    assert "Tournament default" in tournament and "BT rating (95% CI)" in tournament
    assert tournament.count('class="ci"') >= 4 + 2 * 9  # every rating and every cross-play cell has its interval
    assert text not in page and html_escape(text) in page  # the config, escaped


def html_escape(s: str) -> str:
    import html

    return html.escape(s, quote=True)


def test_report_of_a_run_without_rounds_or_tournaments(runs, capsys):
    from arena.runs.config import TrainConfig
    from arena.selfplay import new_run

    trainer = new_run(TrainConfig(game="duel-v0", rounds=1, episodes=2, run="empty"), runs)
    trainer.close()
    assert main(["report", "empty"]) == 0
    page = (runs / "empty" / "report.html").read_text()
    assert page.count("No completed rounds yet.") == 2 and "No tournament yet" in page
    assert_error = main(["report", "nope"])
    assert assert_error == 2 and "no run named 'nope'" in capsys.readouterr().err
