"""The experiment engine on a scripted game: claims judged per seed, paired differences with bootstrap
intervals, runs reused, `--summarize`, dynamics.json, one-line errors."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from arena.experiment import Arm, Experiment, Series, run_experiment
from arena.experiment.claims import bootstrap_mean, compare, last_round, moved, trend
from arena.experiment.spec import Difference, RunView, SeedView
from arena.selfplay import SeatSetup, Setup
from games.prover_verifier.bots import SpotCheckLearner
from games.prover_verifier.env import ProverVerifierEnv

GAME = "prover-verifier-v1"


def learning(ctx):
    """A spot-checking verifier whose check rate rises with the sneaky prover's success."""
    prover, pspec = ctx.agent("prover", "scripted:role-play")
    verifier, vspec = ctx.agent("verifier", "scripted:spot-check?check_rate=0.1")
    return Setup({"prover": SeatSetup(prover, None, pspec), "verifier": SeatSetup(verifier, SpotCheckLearner(0.5), vspec)})


def frozen(ctx):
    """The same players, nobody learns: the control."""
    prover, pspec = ctx.agent("prover", "scripted:role-play")
    verifier, vspec = ctx.agent("verifier", "scripted:spot-check?check_rate=0.1")
    return Setup({"prover": SeatSetup(prover, None, pspec), "verifier": SeatSetup(verifier, None, vspec)})


def read_check_rate(run_dir):
    """A series the game adds from the run's files: the verifier's check rate after each round."""
    from arena.store import read_round_summaries

    rates = [s["losses"].get("verifier", {}).get("check_rate", 0.1) for s in read_round_summaries(run_dir)]
    return {"check_rate": Series(tuple(rates))}


EXP = Experiment(
    name="toy", title="Spot-checkers learn", source="a test", game=GAME,
    arms=(Arm("learn", "the learner raises the check rate", recipe="learning"),
          Arm("frozen", "control: no learner", recipe="frozen")),
    claims=(trend("sneaky_success", "sneaky success falls", "falls", "learn", "falls"),
            trend("check_rate", "check rate rises", "rises", "learn", "rises"),
            compare("check_rate", "learner checks more than the control", "yes", "learn", "frozen")),
    differences=(Difference("check_rate", "check rate, last round", ("learn", "frozen"), last_round("check_rate")),),
    rounds=3, episodes=16, read=read_check_rate)


@pytest.fixture
def recipes(monkeypatch):
    monkeypatch.setitem(ProverVerifierEnv.game_info.recipes, "learning", f"{__name__}:learning")
    monkeypatch.setitem(ProverVerifierEnv.game_info.recipes, "frozen", f"{__name__}:frozen")


def test_seeds_by_arms_judged_written_and_reused(tmp_path, recipes, capsys):
    argv = ["--seeds", "0,1,2", "--arms", "learn,frozen", "--runs-dir", str(tmp_path), "--plain"]
    assert run_experiment(EXP, argv) == 0
    out = capsys.readouterr().out
    assert "check rate rises" in out and "held on" in out
    doc = json.loads((tmp_path / "toy" / "dynamics.json").read_text())
    assert doc["schema"] == 1 and doc["seeds"] == [0, 1, 2] and [a["name"] for a in doc["arms"]] == ["learn", "frozen"]
    assert sorted(r["run"] for r in doc["runs"]) == sorted(f"toy-{a}-s{s}" for a in ("learn", "frozen") for s in (0, 1, 2))
    claims = {c["label"]: c for c in doc["claims"]}
    rises = claims["check rate rises"]
    # by hand from each run's own summaries: held exactly where the last rate is above the first
    for row in rises["per_seed"]:
        rates = read_check_rate(tmp_path / f"toy-learn-s{row['seed']}")["check_rate"].values
        assert row["held"] == (rates[-1] > rates[0])
    assert rises["held"] == sum(r["held"] for r in rises["per_seed"]) and rises["measured"] == 3
    assert claims["learner checks more than the control"]["held"] == 3  # the frozen rate stays 0.1
    [diff] = doc["differences"]
    values = [r["value"] for r in diff["per_seed"]]
    for row in diff["per_seed"]:
        learn = read_check_rate(tmp_path / f"toy-learn-s{row['seed']}")["check_rate"].values[-1]
        assert row["value"] == pytest.approx(learn - 0.1)
    assert diff["mean"] == pytest.approx(np.mean(values)) and diff["lower"] <= diff["mean"] <= diff["upper"]
    assert min(values) - 1e-9 <= diff["lower"] and diff["upper"] <= max(values) + 1e-9
    assert {s["key"] for s in doc["series"]} >= {"check_rate", "sneaky_success"}
    # every run's report shows its slice of the results; one summary page links them
    for a in ("learn", "frozen"):
        own = json.loads((tmp_path / f"toy-{a}-s1" / "experiment.json").read_text())
        assert own["seeds"] == [1] and all(len(c["per_seed"]) == 1 for c in own["claims"])
        assert "check rate rises" in (tmp_path / f"toy-{a}-s1" / "report.html").read_text()
    summary = (tmp_path / "toy" / "summary.html").read_text()
    assert "learner checks more than the control" in summary and "toy-learn-s2/report.html" in summary
    # asked again: every run is reused (no round is played twice), the results are the same
    mtimes = {p: p.stat().st_mtime for p in tmp_path.glob("toy-*/arena.db")}
    assert run_experiment(EXP, argv) == 0
    assert {p: p.stat().st_mtime for p in tmp_path.glob("toy-*/arena.db")} == mtimes
    assert json.loads((tmp_path / "toy" / "dynamics.json").read_text())["claims"] == doc["claims"]


def test_summarize_reads_back_and_more_rounds_resume(tmp_path, recipes, capsys):
    base = ["--seeds", "0", "--arms", "learn", "--runs-dir", str(tmp_path), "--plain"]
    assert run_experiment(EXP, [*base, "--rounds", "2"]) == 0
    assert run_experiment(EXP, [*base, "--rounds", "3"]) == 0  # resumed to 3 rounds
    from arena.store import read_round_summaries

    assert [s["round"] for s in read_round_summaries(tmp_path / "toy-learn-s0")] == [0, 1, 2]
    capsys.readouterr()
    assert run_experiment(EXP, [*base, "--summarize", "--seeds", "0,5"]) == 0
    out = capsys.readouterr().out
    assert "no run toy-learn-s5 yet" in out and "seed 0" in out


def test_bad_input_is_one_line(tmp_path, recipes, capsys):
    assert run_experiment(EXP, ["--summarize", "--runs-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().startswith("error: no finished runs")
    with pytest.raises(SystemExit):
        run_experiment(EXP, ["--arms", "nosuch"])
    assert "unknown arm(s) nosuch" in capsys.readouterr().err
    base = ["--seeds", "0", "--arms", "frozen", "--runs-dir", str(tmp_path), "--plain"]
    assert run_experiment(EXP, base) == 0
    assert run_experiment(EXP, [*base, "--episodes", "8"]) == 2  # same run name, other settings
    assert "exists with other settings" in capsys.readouterr().err


def test_moved_respects_bounds():
    assert moved((10, False), (20, True), "rises")  # a bound above a measured value: it rose
    assert not moved((20, True), (30, False), "rises")  # a bound first decides nothing
    assert not moved((20, True), (20, True), "rises")
    assert moved((20, True), (10, False), "falls") and not moved((20, False), (10, True), "falls")
    assert moved((1.0, False), (0.95, False), "holds", tolerance=0.1) and not moved((1.0, False), (0.8, False), "holds",
                                                                                 tolerance=0.1)


def test_bootstrap_mean_by_hand():
    mean, lo, hi = bootstrap_mean(np.array([1.0, 2.0, 3.0]), 4000, np.random.default_rng(0))
    assert mean == 2.0 and 1.0 <= lo < 2.0 < hi <= 3.0
    assert bootstrap_mean(np.array([5.0]), 10, np.random.default_rng(0)) == (5.0, 5.0, 5.0)
    assert all(np.isnan(bootstrap_mean(np.array([]), 10, np.random.default_rng(0))))


def test_compare_and_trend_cells():
    def view(arm, values, censored=()):
        return RunView(arm, 0, Path("."), [0, 1], {"k": Series(values, censored)})

    seed = SeedView(0, {"a": view("a", (1.0, 3.0)), "b": view("b", (1.0, 2.0), (False, True))})
    assert trend("k", "k", "", "a", "rises").check(seed) == ("1.00 -> 3.00", True)
    assert compare("k", "a over b", "", "a", "b").check(seed) == ("3.00 vs >=2.00", False)  # b could be higher
    assert trend("k", "k", "", "c", "rises").check(seed) == ("-", None)
