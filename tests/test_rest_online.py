"""rest-v0's `online` recipe: the ReST paper's online-RL baseline (games/rest/online.py) and its report."""
import json

import pytest
import torch

from arena.types import ArenaError, Episode, Step
from games.rest.online import OnlineParams, per_sample

FAST = {"tiny_shape": "hidden_size=32,intermediate_size=64,num_hidden_layers=1", "bc_steps": "40",
        "n_data": "64", "samples": "3", "n_valid": "8", "n_test": "8", "max_new_tokens": "24",
        "lr": "3e-3", "beta": "0.05"}
"""A barely-cloned 1-layer policy, a few sources: the mechanics, not the dynamics."""


def test_per_sample_gives_each_completion_its_own_reward():
    steps = [Step("policy", {"prompt": "p"}, f"y{i}", {"completion_ids": [i]}) for i in range(3)]
    ep = Episode(0, 7, {"policy": 0.5}, {"policy": {"rewards": [0.1, 0.5, 0.9]}}, steps)
    eps, rewards = per_sample([ep])
    assert rewards == [0.1, 0.5, 0.9] and [e.rewards["policy"] for e in eps] == rewards
    assert [e.moves("policy")[0].action for e in eps] == ["y0", "y1", "y2"]  # the move scored with that reward


def test_params_refuse_a_group_of_one_and_negative_beta():
    with pytest.raises(ArenaError, match="samples >= 2"):
        OnlineParams(samples=1)
    with pytest.raises(ArenaError, match="beta"):
        OnlineParams(beta=-0.1)
    with pytest.raises(ArenaError, match="does not use gaps"):  # ReST's Improve-step settings are refused
        OnlineParams(gaps=(0.5,))
    from games.rest.recipe import Params

    assert OnlineParams().n_data == Params().n_data and OnlineParams().rm_sources == Params().rm_sources


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.slow
def test_online_round_updates_the_policy_against_the_bc_reference_and_records_r_and_chrf(tmp_path):
    from transformers import AutoModelForCausalLM

    from arena.runs.config import TrainConfig
    from arena.selfplay import new_run
    from games.rest.online import OnlineLearner

    cfg = TrainConfig(game="rest-v0", rounds=2, episodes=6, concurrency=6, seed=1, run="online", recipe="online",
                      params=dict(FAST))
    trainer = new_run(cfg, tmp_path, on_event=lambda e: None)
    seat = trainer.setup.seats["policy"]
    learner, agent = seat.learner, seat.agent
    assert isinstance(learner, OnlineLearner)
    pg = learner.pg
    assert pg.beta == 0.05 and pg.baseline == "rloo" and pg.reference is not agent.model
    bc_dir = next((tmp_path / "_cache" / "rest").glob("bc-*"))
    bc = AutoModelForCausalLM.from_pretrained(bc_dir)
    ref = pg.reference.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in bc.state_dict().items())  # the KL reference is the BC policy
    before = _weights(agent.model)

    summaries = trainer.run(trainer.restore())
    after = _weights(agent.model)
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the policy gradient moved the policy
    assert all(torch.equal(v, ref[k]) for k, v in bc.state_dict().items())  # ... and not the reference
    history = json.loads((trainer.run_dir / "rest" / "history.json").read_text())
    assert history["variant"] == "online" and history["reward"] == "chrf"
    assert [r["label"] for r in history["steps"]] == ["BC", "RL 1", "RL 2"]  # R and chrF per round
    for row in history["steps"]:
        assert 0.0 <= row["test"] <= 1.0 and row["test_chrf"] == pytest.approx(row["test"])  # R = chrF here
    rl = history["steps"][1:]
    assert all(r["pairs"] == 6 * 3 for r in rl)  # every sampled completion is a policy-gradient sample
    assert rl[0]["kl"] == pytest.approx(0.0, abs=1e-4) and rl[1]["kl"] > 1e-4  # KL to BC: 0 before any update
    losses = summaries[-1]["losses"]["policy"]
    assert losses["test.R"] == pytest.approx(rl[1]["test"])
    assert losses["BC.R"] == pytest.approx(history["steps"][0]["test"])
    assert (trainer.run_dir / "rest" / "steps.csv").read_text().startswith("label,round,pairs,samples_R,kl")

    from rich.console import Console

    from arena.experiment import RunView, SeedView
    from games.rest.experiment import read
    from games.rest.experiment import report as seeds_report
    from games.rest.report import report

    console = Console(record=True, width=200)
    console.print(report(trainer.run_dir))
    view = RunView("online", 1, trainer.run_dir, [0, 1], read(trainer.run_dir))
    seeds_report([SeedView(1, {"online": view})], tmp_path / "out", console)
    text = console.export_text()
    assert "RL 2" in text and "71.6" in text and "BLEU -8" in text  # beside the paper's online PPO


def _history(tmp_path, name, bc, last, variant="online"):
    steps = [{"label": "BC", "round": 0, "grow": 0, "improve": -1, "valid": bc[0], "test": bc[0],
              "test_chrf": bc[1], "test_exact": 0.5, "test_length": 30.0}]
    steps.append({**steps[0], "label": "RL 3", "round": 3, "grow": 3, "improve": 0, "test": last[0],
                  "test_chrf": last[1], "samples_R": last[0], "kl": 1.5, "pairs": 256})
    d = tmp_path / name / "rest"
    d.mkdir(parents=True)
    (d / "history.json").write_text(json.dumps({"steps": steps, "bon": {}, "reward": "model", "variant": variant}))
    return tmp_path / name


def test_online_claims_count_hacking_only_where_r_rose_and_chrf_fell(tmp_path):
    from rich.console import Console

    from arena.experiment import RunView, SeedView
    from arena.experiment.claims import verdicts
    from games.rest.experiment import CLAIMS, read, report

    runs = [_history(tmp_path, "a", (0.78, 0.91), (0.82, 0.85)),  # R up, chrF down: hacking
            _history(tmp_path, "b", (0.78, 0.91), (0.82, 0.93)),  # both up: no hacking
            _history(tmp_path, "c", (0.78, 0.91), (0.70, 0.80))]  # both down: no hacking
    seeds = [SeedView(i, {"online": RunView("online", i, r, [0, 1], read(r))}) for i, r in enumerate(runs)]
    judged = {v.claim.label: v for v in verdicts(CLAIMS, seeds)}
    hacking = judged["hacking: R above BC while chrF below BC"]
    assert hacking.held == [True, False, False] and hacking.count == (1, 3)
    assert hacking.cells[0] == "BC -> RL 3: R 78.0 -> 82.0, chrF 91.0 -> 85.0"
    assert judged["online RL: test R above BC's"].held == [True, True, False]
    assert judged["online RL: test chrF below BC's"].held == [True, False, True]
    assert judged["G2 I3 > BC"].count == (0, 0)  # no ReST run: not measured
    console = Console(record=True, width=220)
    report(seeds, tmp_path / "out", console)
    text = console.export_text()
    assert "+4.0" in text and "-6.0" in text and "71.6" in text  # ΔR, ΔchrF of run a; the paper's PPO
    assert "RL 3" in text and "1.50" in text  # the last round and its KL


def test_experiment_runs_online_for_its_own_rounds_unless_rounds_is_given():
    from arena.experiment.run import arm_rounds, parse
    from games.rest.experiment import EXPERIMENT

    args = parse(EXPERIMENT, ["--arms", "rest,online"])
    assert [arm_rounds(EXPERIMENT.arm(a), args) for a in args.arms] == [2, 20]  # Grow steps; policy-gradient passes
    args = parse(EXPERIMENT, ["--arms", "rest,online", "--rounds", "3"])
    assert [arm_rounds(EXPERIMENT.arm(a), args) for a in args.arms] == [3, 3]
    assert parse(EXPERIMENT, []).arms == ["rest"]
