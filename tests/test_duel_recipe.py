"""duel-v0's NLHF recipe (`games.duel.recipe`): its seats and learners, one league round with
`--opponents nash`, the learner's first-order effect on a hand-made batch, the game's NashConv
(`games.duel.nash`) against play, and bad settings."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from agents.batch import batch_from_token_ids, completion_logprobs, pad_id_of
from agents.hf import encode_prompt
from agents.learners import PolicyGradientLearner
from arena import registry
from arena.cli import main
from arena.league.meta import solve_zero_sum
from arena.recipes import build_setup
from arena.runner import play
from arena.runs.config import TrainConfig
from arena.specs import AgentContext, build_agent
from arena.store import read_round_summaries
from arena.types import ArenaError, Episode, Step
from games.duel import nash
from games.duel.recipe import Params

SMALL = {"tiny_shape": "hidden_size=32,intermediate_size=64,num_hidden_layers=1,num_attention_heads=2,"
                       "num_key_value_heads=2", "sft_steps": "20"}
"""A small start, SFT'd in well under a second: the tests check wiring and signs, not skill."""
GOLD = ["--env", "judge=gold"]
SET = [x for k, v in SMALL.items() for x in ("--set", f"{k}={v}")]


def setup_of(tmp_path, params=SMALL, env=None, seats=None):
    cfg = TrainConfig(game="duel-v0", env=env if env is not None else {"judge": "gold"}, params=dict(params),
                      seats=dict(seats or {}), run="r")
    return build_setup(cfg, registry.spec("duel-v0"), tmp_path / "r", tmp_path)


def test_the_recipe_builds_two_policy_learners_under_a_gold_judge(tmp_path):
    setup = setup_of(tmp_path, {**SMALL, "beta": "0.1"})
    assert list(setup.seats) == ["policy_a", "policy_b"] and setup.env_kwargs["judge"] == "gold"
    assert registry.spec("duel-v0").make(**setup.env_kwargs).possible_agents == ["policy_a", "policy_b"]
    for seat, s in setup.seats.items():
        assert isinstance(s.learner, PolicyGradientLearner)
        assert s.learner.seat == seat and s.learner.beta == 0.1 and s.learner.kl_estimator == "k1"
        assert s.learner.reference is not s.agent.model and s.learner.opt.lr == Params.lr
        assert s.spec.startswith("hf:") and "_cache/duel/sft-" in s.spec and "temperature=1.0" in s.spec
    assert setup.seats["policy_a"].spec == setup.seats["policy_b"].spec  # one start, built once
    assert len(list((tmp_path / "_cache" / "duel").glob("sft-*/config.json"))) == 1
    # a seat given another agent plays untrained; the start is not built for a seat that does not need it
    given = setup_of(tmp_path, SMALL, seats={"policy_b": "scripted:adder?noise=2"})
    assert given.seats["policy_b"].learner is None and given.seats["policy_a"].learner is not None


def test_the_judge_seat_game_is_played_as_before_untrained(tmp_path):
    setup = setup_of(tmp_path, {}, env={})
    assert list(setup.seats) == ["policy_a", "policy_b", "judge"]
    assert all(s.learner is None and s.spec == "scripted:random" for s in setup.seats.values())
    assert not (tmp_path / "_cache").exists()  # no model built


def logp(agent, prompt: str, answer: str) -> float:
    """log pi(answer + EOS | prompt) under the agent's model, summed over tokens."""
    ids = encode_prompt(agent.tokenizer, prompt, agent.sampling)
    completion = agent.tokenizer(answer, add_special_tokens=False)["input_ids"] + [agent.tokenizer.eos_token_id]
    with torch.no_grad():
        token_logps, mask = completion_logprobs(agent.model, batch_from_token_ids([ids], [completion],
                                                                                  pad_id_of(agent.tokenizer)))
    return float((token_logps * mask).sum())


def test_the_learner_raises_a_winning_answer_over_a_losing_one(tmp_path):
    setup = setup_of(tmp_path)
    agent, learner = setup.seats["policy_a"].agent, setup.seats["policy_a"].learner
    prompt = "Add: 20+22="
    ids = encode_prompt(agent.tokenizer, prompt, agent.sampling)
    eos = agent.tokenizer.eos_token_id

    def episode(i: int, answer: str, reward: float) -> Episode:
        completion = agent.tokenizer(answer, add_special_tokens=False)["input_ids"] + [eos]
        moves = [Step("policy_a", {"prompt": prompt}, answer, {"prompt_ids": ids, "completion_ids": completion}),
                 Step("policy_b", {"prompt": prompt}, "7", {"prompt_ids": ids, "completion_ids": [eos]})]
        return Episode(i, i, {"policy_a": reward, "policy_b": -reward}, {}, moves)

    batch = [episode(i, "42", 1.0) for i in range(8)] + [episode(8 + i, "47", -1.0) for i in range(8)]
    learner.reset(0)
    before = logp(agent, prompt, "42") - logp(agent, prompt, "47")
    metrics = learner.update(agent, batch)
    after = logp(agent, prompt, "42") - logp(agent, prompt, "47")
    assert metrics["samples"] == 16 and metrics["steps"] == 1 and metrics["reward_mean"] == 0.0
    assert metrics["kl"] == pytest.approx(0.0, abs=1e-6)  # the policy is its reference before the step
    assert after > before + 0.05, (before, after)


def adder(spec: str, tmp_path):
    return build_agent(spec, AgentContext.for_seat(registry.spec("duel-v0"), "policy_a", tmp_path, None, judge="gold"))


def test_nash_conv_is_twice_the_exact_answers_gain_in_play(tmp_path):
    exact, noisy = adder("scripted:adder?noise=0", tmp_path), adder("scripted:adder?noise=2", tmp_path)
    assert nash.exploitability([exact], [1.0]) == 0.0
    inexact = nash.inexact_rate(noisy)
    assert 0.7 < inexact < 0.9  # 4 of the 5 errors in [-2, 2] are not 0
    assert nash.exploitability([exact, noisy], [3.0, 1.0]) == pytest.approx(2 * inexact / 4)
    # the derivation: "always exact" against p gains P(p inexact) per episode in the game itself
    gspec = registry.spec("duel-v0")
    eps, _ = play(lambda: gspec.make(judge="gold"), {"policy_a": exact, "policy_b": noisy},
                  2000, concurrency=64, seed=3)
    gain = sum((e.rewards["policy_a"] - e.rewards["policy_b"]) / 2 for e in eps) / len(eps)
    assert 2 * gain == pytest.approx(2 * inexact, abs=0.08)


@pytest.mark.slow
def test_one_round_with_nash_opponents_writes_the_league(tmp_path, capsys):
    runs = str(tmp_path)
    code = main(["train", "duel-v0", *GOLD, "--opponents", "nash", "--rounds", "1", "--episodes", "16",
                 "--league-episodes", "4", "--exploiters", "2", "--exploiter-steps", "1", "--exploiter-episodes", "8",
                 *SET, "--run", "n", "--runs-dir", runs, "--plain", "--no-tensorboard"])
    assert code == 0, capsys.readouterr().err
    (row,) = read_round_summaries(tmp_path / "n")
    league = row["league"]
    assert league["rule"] == "nash" and (league["learner"], league["opponent"]) == ("policy_a", "policy_b")
    assert [m["label"] for m in league["members"]] == ["init", "r0"]
    assert league["members"][1]["checkpoint"] == "checkpoints/policy_a/round-0"
    assert league["used_weights"] == [1.0] and league["counts"] == [16]
    payoff, win = np.array(league["payoff"]), np.array(league["win"])
    assert payoff.shape == win.shape == (2, 2)
    assert payoff == pytest.approx(2 * win - 1)  # +1/-1/0 rewards: payoff = P(win) - P(loss)
    assert league["weights"] == pytest.approx(solve_zero_sum(payoff)[1])  # the column player's Nash strategy
    assert league["exploiters"]["seeds"] == 2 and len(league["exploiters"]["gains"]) == 2
    assert 0.0 <= row["metrics"]["exploitability"] <= 2.0 and "exploiter_nash_conv" in row["metrics"]
    assert set(row["losses"]) == {"policy_a"}  # the opponent's seat is the pool's, never trained


@pytest.mark.parametrize("argv, words", [
    (["--set", "lr=0.01"], "--set lr: duel-v0's recipe trains the policies with a gold preference: "
                           "add --env judge=gold"),
    ([*GOLD, "--set", "steps=0"], "steps, batch_size, max_new_tokens and sft_steps must be at least 1"),
    ([*GOLD, "--set", "tiny_shape=width=3"], "bad tiny_shape item 'width=3'"),
    (["--opponents", "nash"], "--opponents needs a two-seat game whose seats are symmetric"),
    ([*GOLD, "--env", "task=nope"], "task must be one of sum"),
])
def test_bad_settings_are_one_line(argv, words, tmp_path, capsys):
    code = main(["train", "duel-v0", *argv, "--rounds", "1", "--episodes", "2", "--runs-dir", str(tmp_path),
                 "--run", "bad", "--plain", "--no-tensorboard"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and words in err[0], err


def test_params_refuse_what_cannot_train():
    with pytest.raises(ArenaError, match="beta must be >= 0"):
        Params(beta=-1)
