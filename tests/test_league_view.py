"""The league in the live view, the plain log and report.html (`arena.league.view`, `arena.report.league`)."""
from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from arena.cli import main
from arena.dashboard import LiveView, Snapshot, plain_lines, render
from arena.league.view import league_text, read_league
from arena.report.html import build_report
from arena.report.league import league_section
from arena.store import RunStore

RPS = "examples.rps.env:RPSEnv"


def state(**kw):
    """Round 3 of a nash league: r3 has just joined, the round drew from init, r0, r1, r2."""
    base = {"rule": "nash", "learner": "player_0", "opponent": "player_1",
            "members": [{"label": "init", "spec": "scripted:tabular"}] + [
                {"label": f"r{k}", "checkpoint": f"checkpoints/player_0/round-{k}"} for k in range(4)],
            "payoff": [[0.0] * 5 for _ in range(5)], "win": [[0.5] * 5 for _ in range(5)],
            "weights": [0.1, 0.2, 0.3, 0.15, 0.25], "used_weights": [0.30, 0.20, 0.41, 0.09],
            "counts": [19, 12, 26, 7], "exploitability": 1.7234, "meta_exploitability": 0.20613,
            "exploiters": {"nash_conv": 0.35, "low": 0.2, "high": 0.5, "gains": [0.1, 0.3, 0.25],
                           "seeds": 3, "steps": 200}}
    return {**base, **kw}


LINE = ("league nash · pool 5 · this round: r1 41% (26) · init 30% (19) · r0 20% (12) · +1 more · "
        "exploitability 1.72 · meta_exploitability 0.206 · exploiter_nash_conv 0.35 [0.2, 0.5] (3 seeds)")


def test_the_league_line_names_the_heaviest_opponents_with_episodes_and_the_exploiters_interval():
    assert league_text(state()) == LINE
    assert league_text(state(), top=4).endswith("r0 20% (12) · r2 9% (7) · exploitability 1.72 · "
                                                "meta_exploitability 0.206 · exploiter_nash_conv 0.35 [0.2, 0.5] "
                                                "(3 seeds)")


def test_the_league_line_leaves_out_what_the_state_does_not_hold():
    bare = {"rule": "latest", "members": [{"label": "init", "spec": "x"}, {"label": "r0", "checkpoint": "c"}]}
    assert league_text(bare) == "league latest · pool 2"
    # latest: one member played every episode; the others are not listed (weight 0, no episodes)
    assert league_text({**bare, "used_weights": [0.0], "counts": [0]}) == "league latest · pool 2"
    assert league_text({**bare, "used_weights": [1.0], "counts": [24]}) == \
        "league latest · pool 2 · this round: init 100% (24)"
    # counts without weights, a tiny weight shown as <1% (not 0%), no interval without both bounds
    assert league_text({**bare, "counts": [5]}) == "league latest · pool 2 · this round: init (5)"
    three = {**bare, "members": bare["members"] + [{"label": "r1"}], "used_weights": [0.998, 0.002]}
    assert league_text(three) == "league latest · pool 3 · this round: init 100% · r0 <1%"
    assert league_text(state(exploiters={"nash_conv": 0.5}, exploitability=None, meta_exploitability=None)) \
        .endswith("+1 more · exploiter_nash_conv 0.5")


@pytest.mark.parametrize("bad", [None, "league", 3, [], {}, {"members": "init"}, {"members": []}])
def test_a_league_state_without_members_has_no_line(bad):
    assert read_league(bad) is None and league_text(bad) == ""


def test_bad_parts_of_a_league_state_are_missing_not_errors():
    s = read_league(state(members=[{"label": "init"}, 7, {"label": ["x"]}], used_weights=[1, "a"],
                          counts=[3], weights=[0.5, float("nan"), 0.5], payoff=[[0, 1], [1, 0]],
                          exploitability=True, meta_exploitability=float("inf"), exploiters=[1]))
    assert s is not None and s.labels == ("init", "#1", "#2")
    assert s.used_weights is None and s.counts == (3,) and s.weights is None and s.payoff is None
    assert s.exploitability is None and s.meta_exploitability is None and s.exploiters is None
    assert league_text(state(members=[{"label": "init"}, 7, {"label": ["x"]}], used_weights=[1, "a"], counts=[3])
                       ).startswith("league nash · pool 3 · this round: init (3) · exploitability 1.72")
    # counts that do not match the weights are dropped; a negative or fractional count is no count
    assert read_league(state(counts=[1, 2])).counts is None
    assert read_league(state(counts=[1, 2, -3, 4])).counts is None
    assert read_league(state(counts=[1, 2, 3.5, 4])).counts is None
    # a rule that does not play the meta-game has no payoff matrix to show (its zeros are placeholders)
    assert read_league(state(rule="uniform")).payoff is None and read_league(state()).payoff is not None


def summary(k, league=None):
    s = {"round": k, "episodes": 64, "mean_reward": {"player_0": 0.1, "player_1": -0.1},
         "metrics": {"exploitability": 1.7234}, "headline": ["exploitability"], "losses": {},
         "episodes_per_s": 10.0, "tokens_per_s": 0.0, "wall_s": 1.0, "elapsed_s": 4.0, "eta_s": 0.0}
    return {**s, "league": league} if league is not None else s


def capture(renderable):
    console = Console(record=True, width=240, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_the_live_view_shows_the_latest_rounds_league_and_the_plain_log_every_rounds():
    snap = Snapshot()
    for e in [{"type": "run_start", "run": "rps", "game": RPS, "rounds": 5, "episodes": 64,
               "seats": ["player_0", "player_1"], "history": [summary(2, state(used_weights=[0.5, 0.5, 0.0],
                                                                                   counts=[30, 34, 0]))]},
              {"type": "round_end", "round": 3, "summary": summary(3, state())}]:
        snap.apply(e)
    text = capture(render(snap))
    assert f"round 3: {LINE}" in text and "round 2: league" not in text
    assert plain_lines(summary(3, state()))[1] == f"  {LINE}"
    assert len(plain_lines(summary(3))) == 1 and len(plain_lines(summary(3, {"members": 5}))) == 1
    out = io.StringIO()
    view = LiveView(Console(file=out, force_terminal=False, width=80))
    view({"type": "round_end", "round": 3, "summary": summary(3, state())})
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith("round 3 episodes=64") and lines[1] == f"  {LINE}"


def section(page: str) -> str:
    start = page.index("<h2>League</h2>")
    return page[start:page.index("<h2>", start + 1)]


def row(html: str, first: str) -> str:
    """The cells of the table row whose first cell is `first`, tags removed, joined by |."""
    for tr in re.findall(r"<tr>(.*?)</tr>", html):
        cells = [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", tr)]
        if cells and cells[0] == first:
            return "|".join(cells)
    raise AssertionError(f"no row {first!r}")


@pytest.mark.slow
def test_a_league_runs_report_shows_its_weights_meta_game_and_exploitability(tmp_path, capsys):
    code = main(["train", RPS, "--opponents", "nash", "--rounds", "2", "--episodes", "16", "--league-episodes", "4",
                 "--seed", "3", "--set", "lr=6", "--plain", "--no-tensorboard", "--runs-dir", str(tmp_path),
                 "--run", "nash"])
    out = capsys.readouterr().out
    assert code == 0
    store = RunStore(tmp_path / "nash")
    try:
        summaries = store.round_summaries()
    finally:
        store.close()
    first, second = (s["league"] for s in summaries)
    assert [m["label"] for m in second["members"]] == ["init", "r0", "r1"]
    assert first["used_weights"] == [1.0] and first["counts"] == [16]
    assert second["used_weights"] == first["weights"] and len(second["counts"]) == 2
    for s in summaries:  # the plain log: each round's league line under its figures
        assert f"  {league_text(s['league'])}\n" in out
    assert "  league nash · pool 2 · this round: init 100% (16) · exploitability" in out

    html = section((tmp_path / "nash" / "report.html").read_text(encoding="utf-8"))
    assert row(html, "round") == "round|init|r0|r1|episodes"
    assert row(html, "0") == "0|100% (16)|||16"
    (w0, w1), (c0, c1) = second["used_weights"], second["counts"]
    assert row(html, "1") == f"1|{w0:.0%} ({c0})|{w1:.0%} ({c1})||16"
    assert row(html, "next") == "next|" + "|".join(f"{w:.0%}" for w in second["weights"]) + "|"
    assert row(html, "player_0 \\ player_1") == "player_0 \\ player_1|init|r0|r1"
    for label, payoff in zip(["init", "r0", "r1"], second["payoff"]):
        assert row(html, label) == label + "|" + "|".join(format(v, "+.3g") for v in payoff)
    for k, s in enumerate(summaries):
        lg = s["league"]
        assert row(html.split("Exploitability per round")[1], str(k)) == \
            f"{k}|{lg['exploitability']:.3g}|{lg['meta_exploitability']:.3g}"
    assert html.count("<img") == 2  # the meta-game's heatmap and the exploitability figure
    assert build_report(tmp_path / "nash").count("<h2>League</h2>") == 1


@pytest.mark.slow
def test_a_run_without_opponents_has_no_league_section(tmp_path, capsys):
    code = main(["train", RPS, "--rounds", "1", "--episodes", "8", "--plain", "--no-tensorboard",
                 "--runs-dir", str(tmp_path), "--run", "plain"])
    out = capsys.readouterr().out
    assert code == 0 and "league" not in out
    page = (tmp_path / "plain" / "report.html").read_text(encoding="utf-8")
    assert "<h2>Rounds</h2>" in page and "<h2>League" not in page and "meta-strategy" not in page


def test_the_report_skips_bad_league_states_and_shows_the_exploiters_interval():
    good = state(members=[{"label": "init"}, {"label": "<b>r0</b>"}], used_weights=[1.0], counts=[64],
                 weights=[0.25, 0.75], payoff=[[0.0, -0.5], [0.5, 0.0]], win=[[0.5, 0.25], [0.75, 0.5]])
    bad_parts = {**good, "used_weights": [0.5, "x"], "counts": [1, 2, 3], "weights": [1.0], "payoff": [[0.0]],
                 "exploitability": "high", "exploiters": {"nash_conv": 0.4, "low": 0.5, "high": 0.3, "seeds": "3"}}
    summaries = [summary(0, "garbage"), summary(1, bad_parts), ["not", "a", "summary"], summary(2, good)]
    html = "".join(league_section(summaries))
    assert html.startswith("<h2>League</h2>") and "No readable league state in round 0" in html
    assert "&lt;b&gt;r0&lt;/b&gt;" in html and "<b>r0</b>" not in html  # labels are text, never markup
    assert row(html, "round") == "round|init|&lt;b&gt;r0&lt;/b&gt;|episodes"
    assert row(html, "1") == "1|||–"  # its weights and counts unreadable: blank, not a crash
    assert row(html, "2") == "2|100% (64)||64"
    assert row(html, "next") == "next|25%|75%|"
    assert row(html, "init") == "init|+0|-0.5" and "meta-game after round 2" in html
    expl = html.split("Exploitability per round")[1]
    assert row(expl, "round") == "round|exploitability|meta_exploitability|exploiter_nash_conv (95% CI)|exploiters"
    assert row(expl, "1") == "1|–|0.206|0.4 [0.5, 0.3]|– seeds × – steps"
    assert row(expl, "2") == "2|1.72|0.206|0.35 [0.2, 0.5]|3 seeds × 200 steps"
    assert league_section([summary(0), summary(1)]) == []
    assert league_section([summary(0, "garbage")]) == ["<h2>League</h2>", '<p class="note">No readable league '
                                                                          'state in round 0 (left out).</p>']
