"""Two rounds of checkability training on the shipped tiny models (small budgets, CPU)."""
from __future__ import annotations

import json
import math

import pytest

from arena.runs.config import TrainConfig
from arena.selfplay import load_run, new_run
from games.prover_verifier import rules
from games.prover_verifier.pretraining import ASSETS
from games.prover_verifier.training import BUFFER_FILE, METRICS_FILE

SMALL = {"verifier_samples": "4", "verifier_problems": "8", "verifier_batch": "4", "verifier_epochs": "1",
         "prover_steps": "1",
         "prover_problems": "2", "bon_problems": "4", "bon_samples": "8", "pool_size": "200"}

UNIT = (0.0, 1.0)
RANGES = {  # round metric -> (low, high)
    "helpful_accuracy": UNIT, "sneaky_incorrect": UNIT, "sneaky_success": UNIT, "verifier_auc": UNIT,
    "verifier_accuracy": UNIT, "verifier_accuracy_helpful": UNIT, "invalid_solution_rate": UNIT,
    "invalid_score_rate": UNIT, "mean_length": (0.0, 4096.0),
}
LEARNER_RANGES = {
    "verifier": {"loss": (0.0, math.inf), "pair_accuracy": UNIT, "heldout_auc": UNIT, "best_of_n": UNIT},
    # the prover's loss and KL have no fixed range: test_the_prover_starts_at_its_reference_and_learns checks them
    "prover": {"reward_mean": (-2.0, math.inf), "rl_steps": (1.0, 1.0)},  # prover_steps=1 (SMALL)
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    base = tmp_path_factory.mktemp("runs")
    cfg = TrainConfig(game="prover-verifier-v1", rounds=2, episodes=16, concurrency=16, seed=3, run="pv",
                      params=dict(SMALL))
    trainer = new_run(cfg, base)
    summaries = trainer.run(trainer.restore())
    trainer.close()
    return trainer.run_dir, summaries, base


@pytest.mark.slow
def test_every_metric_is_present_finite_and_in_range(run):
    _, summaries, _ = run
    assert [s["round"] for s in summaries] == [0, 1]
    for s in summaries:
        for name, (lo, hi) in RANGES.items():
            v = s["metrics"][name]
            assert math.isfinite(v) and lo <= v <= hi, (s["round"], name, v)
        for seat, ranges in LEARNER_RANGES.items():
            for name, (lo, hi) in ranges.items():
                v = s["losses"][seat][name]
                assert math.isfinite(v) and lo <= v <= hi, (s["round"], seat, name, v)


def test_the_prover_starts_at_its_reference_and_learns(run):
    _, summaries, _ = run
    first, second = (s["losses"]["prover"] for s in summaries)
    # round 0 samples the reference itself: log π - log π_ref is 0 on every token (the KL before the update)
    assert abs(first["kl"]) < 1e-6, first
    # round 1 samples the prover that round 0 trained: the KL estimate is off zero, and small after one step
    assert 1e-6 < abs(second["kl"]) < 0.5, second
    # -mean(A * log p): non-zero unless every advantage was 0 (nothing to learn from)
    assert all(math.isfinite(m["loss"]) and m["loss"] != 0.0 for m in (first, second)), (first, second)


def test_training_moved_both_seats_weights_every_round(run):
    import torch
    from safetensors.torch import load_file

    run_dir, _, _ = run
    for seat in ("prover", "verifier"):
        states = [load_file(ASSETS / seat / "model.safetensors")]  # the shipped base
        states += [load_file(run_dir / "checkpoints" / seat / f"round-{k}" / "model.safetensors") for k in (0, 1)]
        for k, (before, after) in enumerate(zip(states, states[1:])):
            assert before.keys() == after.keys(), (seat, k)
            moved = [name for name in before if not torch.equal(before[name], after[name])]
            assert moved, f"{seat}: round {k} changed no weight"


def test_verifier_trains_only_on_verifier_half_problems(run):
    run_dir, _, _ = run
    for k in (0, 1):
        learner = run_dir / "checkpoints" / "verifier" / f"round-{k}" / "learner"
        rows = [json.loads(line) for line in (learner / BUFFER_FILE).read_text().splitlines()]
        assert rows and {r["round"] for r in rows} == set(range(k + 1))  # every round so far, none later
        assert all(rules.problem_half(rules.Problem(r["question"], 0)) == "verifier" for r in rows)
        metrics = json.loads((learner / METRICS_FILE).read_text())
        assert metrics["data_prover_half"] == 0 and metrics["data_solutions"] > 0
        assert metrics["data_rounds"] == k + 1


def test_checkpoints_of_both_seats_for_every_round(run):
    run_dir, _, _ = run
    for seat in ("prover", "verifier"):
        for k in (0, 1):
            ckpt = run_dir / "checkpoints" / seat / f"round-{k}"
            assert (ckpt / "arena_checkpoint.json").is_file()
            assert (ckpt / "model.safetensors").is_file() and (ckpt / "config.json").is_file()


def test_the_initial_arms_round_0_verifier_is_the_game_arms(run, tmp_path):
    """The experiment attacks the `initial` control's round-0 verifier once, as the game arm's: with the
    same seed and data it is trained before any prover update, so it must be the same weights."""
    import torch
    from safetensors.torch import load_file

    run_dir, _, _ = run
    cfg = TrainConfig(game="prover-verifier-v1", rounds=1, episodes=16, concurrency=16, seed=3, run="initial",
                      params={**SMALL, "prover_steps": "0", "prover_min_steps": "0"})
    trainer = new_run(cfg, tmp_path)
    trainer.run(trainer.restore())
    trainer.close()
    game = load_file(run_dir / "checkpoints" / "verifier" / "round-0" / "model.safetensors")
    control = load_file(tmp_path / "initial" / "checkpoints" / "verifier" / "round-0" / "model.safetensors")
    assert game.keys() == control.keys() and all(torch.equal(game[k], control[k]) for k in game)


def test_each_round_records_where_its_time_went(run):
    from arena.selfplay import phase_totals

    _, summaries, _ = run
    for s in summaries:
        phases = s["phases"]
        assert {"play: prover acts", "play: verifier acts", "learn: verifier", "learn: prover"} <= set(phases)
        assert all(t >= 0 for t in phases.values()) and sum(phases.values()) <= s["wall_s"] + 1e-6
    totals = phase_totals(summaries)
    assert totals["learn: prover"] == sum(s["phases"]["learn: prover"] for s in summaries)


def test_the_verifier_takes_the_same_steps_every_round(run):
    """The paper's constant verifier compute: one mixture size, so the same steps in every round
    (read from the run's events; the growing mixture would take 2 steps, then 4)."""
    from arena.store import read_events

    run_dir, _, _ = run
    events, _ = read_events(run_dir)
    steps = [e["summary"]["losses"]["verifier"]["steps"] for e in events if e.get("type") == "round_end"]
    assert steps == [2.0, 2.0]  # 8 problems x 1 epoch / 4 problems per step
    for k in (0, 1):
        metrics = json.loads((run_dir / "checkpoints" / "verifier" / f"round-{k}" / "learner" / METRICS_FILE)
                             .read_text())
        assert metrics["data_solutions"] == 8 * 2 * 2  # 8 problems x (2 correct + 2 incorrect), both rounds


def test_no_payoff_is_constant_over_the_run(run):
    from arena.store import RunStore

    run_dir, _, _ = run
    store = RunStore(run_dir)
    try:
        episodes = store.episodes()
    finally:
        store.close()
    assert len(episodes) == 32
    for seat in ("prover", "verifier"):
        assert len({ep.rewards[seat] for ep in episodes}) > 1, seat
    assert {ep.info["prover"]["convinced"] for ep in episodes} == {True, False}


def test_resume_restores_the_verifier_buffer(run):
    run_dir, _, base = run
    trainer = load_run(run_dir, base)
    assert trainer.restore() == 2
    learner = trainer.setup.seats["verifier"].learner
    assert len(learner.rounds) == 2 and learner.pool is not None


@pytest.mark.slow
def test_a_gsm8k_style_file_drives_the_recipe(tmp_path):
    from pathlib import Path

    fixture = Path(__file__).parent / "data" / "gsm8k_tiny.jsonl"
    params = {**SMALL, "data": str(fixture), "verifier_samples": "2"}
    trainer = new_run(TrainConfig(game="prover-verifier-v1", rounds=1, episodes=8, concurrency=8, seed=0,
                                  run="gsm", params=params), tmp_path)
    [summary] = trainer.run(trainer.restore())
    assert all(math.isfinite(v) for v in summary["metrics"].values())
    questions = {json.loads(line)["question"] for line in open(fixture) if line.startswith("{")}
    rows = (trainer.run_dir / "checkpoints" / "verifier" / "round-0" / "learner" / BUFFER_FILE).read_text()
    for row in map(json.loads, rows.splitlines()):
        assert row["question"] in questions and row["half"] == "verifier"


def test_the_correctness_only_baseline_pushes_up_correct_solutions(tmp_path):
    """The paper's correctness-only RL (reward = correct, helpful role only, the game's KL and step budget):
    its learner never asks the verifier, and one update on a batch raises the log-likelihood of that
    batch's correct solutions relative to its incorrect ones (REINFORCE's first-order effect). Whether a
    whole run raises accuracy is measured, not asserted: on this task it did not (docs/results/checkability.md)."""
    import numpy as np
    import torch

    from agents.batch import batch_from_token_ids, completion_logprobs
    from agents.losses import masked_sum
    from games.prover_verifier import data
    from games.prover_verifier.sampling import prover_rewards, rollout

    torch.set_num_threads(1)
    trainer = new_run(TrainConfig(game="prover-verifier-v1", recipe="correctness", rounds=1, episodes=4,
                                  concurrency=4, seed=0, run="c", params={"prover_steps": "0"}), tmp_path)
    learner = trainer.setup.seats["prover"].learner
    prover = trainer.setup.seats["prover"].agent
    assert learner.roles == ("helpful",) and learner.reward == "correct" and not learner.early_stop
    assert trainer.setup.seats["verifier"].learner is None and trainer.setup.env_kwargs["role"] == "helpful"
    prover.reset(0)
    batch = rollout(prover, data.synthetic_pool(24, 11, 2, 4, 9), ["helpful"], 8)
    correct = np.array([ep.info["prover"]["correct"] for ep in batch])
    assert 0 < correct.mean() < 1

    def logps():
        steps = [ep.moves("prover")[0] for ep in batch]
        b = batch_from_token_ids([s.extras["prompt_ids"] for s in steps], [s.extras["completion_ids"] for s in steps],
                                 prover.tokenizer.pad_token_id or 0, None)
        with torch.no_grad():
            lp, mask = completion_logprobs(prover.model, b)
        return masked_sum(lp, mask).numpy()

    before = logps()
    learner.inner.reset(0)
    learner.inner.fit_rewards(prover, batch, prover_rewards("correct", [ep.info["prover"] for ep in batch]).tolist())
    delta = logps() - before
    trainer.close()
    assert delta[correct].mean() > delta[~correct].mean()


@pytest.mark.slow
def test_crossplay_and_evaluation_beside_the_attack_write_what_they_write_one_after_the_other(tmp_path, capsys,
                                                                                             monkeypatch):
    # `arena experiment checkability` runs the cross-play tournament and the provers' evaluation in the
    # attack's worker processes when it has two (two torch threads, as
    # test_worker_count_follows_the_threads_and_the_units checks); with one, one after the other. Both
    # runs here train on one thread, so their checkpoints are the same whatever the BLAS; the first is
    # given two one-thread workers, as on a 2-core machine.
    import torch

    import arena.attack.run as attack_run
    from games.prover_verifier.experiment import main

    flags = ["--rounds", "1", "--episodes", "8", "--attack-seeds", "1", "--attack-budget", "2",
             "--crossplay-episodes", "4", "--plain", *(x for k, v in SMALL.items() for x in ("--set", f"{k}={v}"))]
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        with monkeypatch.context() as m:
            m.setattr(attack_run, "worker_count", lambda cfg, missing: (min(2, missing), 1))
            assert main(["--runs-dir", str(tmp_path / "beside"), *flags]) == 0
        beside = capsys.readouterr().out
        assert main(["--runs-dir", str(tmp_path / "after"), *flags]) == 0
        after = capsys.readouterr().out
    finally:
        torch.set_num_threads(before)
    assert "s, beside the attack" not in after
    assert "sneaky cross-play tournament: " in beside and "s, beside the attack" in beside
    assert "evaluating prover prover/round-0" in beside  # the job's output came back
    run = "checkability-game-s0"
    events = [json.loads(line) for line in (tmp_path / "beside" / run / "events.jsonl").read_text().splitlines()]
    phases = [e["phases"] for e in events if e.get("type") == "measure"]
    assert list(phases[-1]) == ["attack, sneaky cross-play tournament, provers' evaluation"]
    for name in ("legibility.json", "attacks/sneaky/units/round-0-seed-0.json",
                 "tournaments/sneaky/sneaky_success.csv"):
        one, two = (tmp_path / d / run / name for d in ("beside", "after"))
        if name.endswith(".json"):
            a, b = json.loads(one.read_text()), json.loads(two.read_text())
            for doc in (a, b):
                doc.pop("seconds", None)
                doc.pop("target", None)  # the run's path
            assert a == b, name
        else:
            assert one.read_text() == two.read_text(), name
