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
    return Setup({"prover": SeatSetup(prover, None, pspec),
                  "verifier": SeatSetup(verifier, SpotCheckLearner(0.5), vspec)})


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


@pytest.mark.slow
def test_seeds_by_arms_judged_written_and_reused(tmp_path, recipes, capsys):
    argv = ["--seeds", "0,1,2", "--arms", "learn,frozen", "--runs-dir", str(tmp_path), "--plain"]
    assert run_experiment(EXP, argv) == 0
    out = capsys.readouterr().out
    assert "check rate rises" in out and "held on" in out
    assert "where the time went" in out and "train: play: prover acts" in out and "train: learn: verifier" in out
    doc = json.loads((tmp_path / "toy" / "dynamics.json").read_text())
    assert doc["schema"] == 1 and doc["seeds"] == [0, 1, 2] and [a["name"] for a in doc["arms"]] == ["learn", "frozen"]
    runs = sorted(f"toy-{a}-s{s}" for a in ("learn", "frozen") for s in (0, 1, 2))
    assert sorted(r["run"] for r in doc["runs"]) == runs
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_an_arm_keeps_its_own_rounds_and_settings_follow_the_flags(tmp_path, recipes, capsys):
    """`Arm.rounds` unless --rounds is given; `Experiment.settings` from the flags, which --set cannot change."""
    import argparse
    import dataclasses

    from arena.experiment.run import arm_params, arm_rounds, parse, parser
    from arena.store import read_round_summaries

    exp = dataclasses.replace(EXP, arms=(EXP.arms[0], dataclasses.replace(EXP.arms[1], rounds=1)))
    assert "arms with their own: frozen 1" in " ".join(parser(exp).format_help().split())
    args = parse(exp, ["--arms", "learn,frozen"])
    assert [arm_rounds(exp.arm(a), args) for a in args.arms] == [3, 1] and args.rounds == 3
    args = parse(exp, ["--arms", "learn,frozen", "--rounds", "2"])
    assert [arm_rounds(exp.arm(a), args) for a in args.arms] == [2, 2]
    assert run_experiment(exp, ["--arms", "learn,frozen", "--runs-dir", str(tmp_path), "--plain"]) == 0
    assert [len(read_round_summaries(tmp_path / f"toy-{a}-s0")) for a in ("learn", "frozen")] == [3, 1]

    def settings(args: argparse.Namespace) -> dict[str, str]:
        return {"updates": str(args.rounds - 1)}

    exp = dataclasses.replace(exp, settings=settings, arms=(Arm("a", "an arm", params={"lr": "1"}),))
    args = parse(exp, ["--rounds", "5", "--set", "lr=2", "--set", "beta=3"])
    assert arm_params(exp, exp.arm("a"), args, 0) == {"updates": "4", "lr": "1", "beta": "3"}  # the arm's win
    assert run_experiment(exp, ["--set", "updates=9", "--runs-dir", str(tmp_path), "--plain"]) == 2
    assert "--set updates: set by the experiment" in capsys.readouterr().err
    assert not (tmp_path / "toy-a-s0").exists()


def test_write_csv_rounds_floats_and_leaves_missing_values_empty(tmp_path):
    from arena.experiment.results import write_csv

    path = write_csv([{"a": 1, "b": 0.123456789, "c": "x"}, {"a": 2, "b": None}], tmp_path / "t.csv", ("a", "b"))
    assert path.read_text().splitlines() == ["a,b", "1,0.12346", "2,"]


def _fake_seeds(exp, seeds=(0, 1)):
    """Every arm of `exp` on each seed, with three rounds of every series its claims and differences name."""
    rng = np.random.default_rng(0)
    keys = {c.key for c in exp.claims} | {d.key for d in exp.differences}
    return [SeedView(s, {a.name: RunView(a.name, s, Path(f"{exp.name}-{a.name}-s{s}"), [0, 1, 2],
                                         {k: Series(tuple(rng.normal(size=3).tolist())) for k in keys}, data_seed=s)
                         for a in exp.arms}) for s in seeds]


def _experiments():
    from importlib import import_module
    from importlib.metadata import entry_points

    return {ep.name: import_module(ep.value.split(":")[0]).EXPERIMENT
            for ep in entry_points(group="arena.experiments")}


def test_every_experiment_writes_dynamics_json_in_one_schema(tmp_path):
    """The four experiments (checkability, overoptimization, rest, abstention) are declarations on this
    engine: each judges its claims and writes the same dynamics.json schema, strict JSON."""
    from arena.experiment.claims import paired, verdicts
    from arena.experiment.results import dynamics, write_dynamics

    experiments = _experiments()
    assert {"checkability", "overoptimization", "rest", "abstention"} <= set(experiments)
    for name, exp in experiments.items():
        assert exp.name == name
        seeds = _fake_seeds(exp)
        doc = dynamics(exp, seeds, verdicts(exp.claims, seeds), [paired(d, seeds) for d in exp.differences],
                       tmp_path / name)
        doc = json.loads(write_dynamics(doc, tmp_path / name).read_text())
        assert set(doc) == {"schema", "experiment", "title", "source", "arms", "seeds", "runs", "claims",
                            "differences", "series"}
        assert doc["schema"] == 1 and doc["experiment"] == name and doc["seeds"] == [0, 1]
        assert [a["name"] for a in doc["arms"]] == [a.name for a in exp.arms]
        assert len(doc["runs"]) == 2 * len(exp.arms) and all(set(r) == {"arm", "seed", "run", "path", "data_seed"}
                                                              for r in doc["runs"])
        assert len(doc["claims"]) == len(exp.claims)
        for c in doc["claims"]:
            assert set(c) == {"key", "label", "arm", "paper", "direction", "held", "measured", "per_seed"}
            assert c["paper"] and [p["seed"] for p in c["per_seed"]] == [0, 1]
            told = [p["held"] for p in c["per_seed"] if p["held"] is not None]
            assert c["held"] == sum(told) and c["measured"] == len(told)
        for d in doc["differences"]:
            assert len(d["arms"]) == 2 and len(d["per_seed"]) == 2 and d["lower"] <= d["mean"] <= d["upper"]
        assert all(len(s["x"]) == len(s["y"]) == len(s["censored"]) for s in doc["series"])


def test_one_data_seed_rule_for_recipes_and_experiments():
    """A recipe's unset data seed is offset + the run seed (`with_data_seed`); the engine sets it the same way."""
    import dataclasses

    from arena.experiment.run import arm_params, parse
    from arena.selfplay import with_data_seed

    @dataclasses.dataclass
    class Params:
        data_seed: int | None = None
        pool_seed: int | None = 7

    assert with_data_seed(Params(), 3).data_seed == 3 and with_data_seed(Params(data_seed=5), 3).data_seed == 5
    assert with_data_seed(Params(pool_seed=None), 3, "pool_seed", 1234).pool_seed == 1237
    assert with_data_seed(Params(), 3, "pool_seed").pool_seed == 7  # a seed that is set is kept
    exp = dataclasses.replace(EXP, data_param="data_seed", data_offset=1234)
    assert arm_params(exp, exp.arm("learn"), parse(exp, []), 3) == {"data_seed": "1237"}
    assert arm_params(exp, exp.arm("learn"), parse(exp, ["--data-seed", "9"]), 3) == {"data_seed": "9"}
