from pathlib import Path

import pytest

from arena import registry
from arena.runner import play
from arena.specs import AgentContext, build_agent
from arena.types import ArenaError


def pv_agents(prover="scripted:role-play", verifier="scripted:spot-check", seed=7):
    g = registry.spec("prover-verifier-v1")
    agents = {s: build_agent(spec, AgentContext.for_seat(g, s, Path("runs")))
              for s, spec in [("prover", prover), ("verifier", verifier)]}
    for a in agents.values():
        a.reset(seed)
    return g, agents


class Counting:
    """Wraps an agent and records the batch size of every act call."""

    def __init__(self, inner):
        self.inner, self.batches = inner, []

    def reset(self, seed):
        self.inner.reset(seed)

    def act(self, observations):
        self.batches.append(len(observations))
        return self.inner.act(observations)


def transcripts(episodes):
    return [ep.to_json() for ep in episodes]


def test_same_seed_same_transcripts_and_independent_of_concurrency():
    g, agents = pv_agents()
    runs = [play(g.make, agents, 24, concurrency=k, seed=5)[0] for k in (1, 4, 24, 4)]
    assert [e.index for e in runs[0]] == list(range(24))
    assert transcripts(runs[1]) == transcripts(runs[3])  # same K, same seed
    assert transcripts(runs[0]) == transcripts(runs[1]) == transcripts(runs[2])  # scripted: K-independent
    other = play(g.make, agents, 24, concurrency=4, seed=6)[0]
    assert transcripts(other) != transcripts(runs[1])


def test_one_act_call_per_seat_per_tick_with_all_waiting_observations():
    g, agents = pv_agents()
    counted = {s: Counting(a) for s, a in agents.items()}
    episodes, stats = play(g.make, counted, 32, concurrency=8, seed=0)
    assert len(episodes) == 32
    # Every episode is one prover move then two verifier moves (its solution, the reference): 4 waves of 8.
    assert counted["prover"].batches == [8, 8, 8, 8]
    assert counted["verifier"].batches == [8] * 8
    assert stats.mean_batch == 8
    assert 0.0 <= stats.overhead_fraction <= 1.0


def test_episode_records_rewards_infos_and_transcript():
    g, agents = pv_agents()
    (ep,) = play(g.make, agents, 1, seed=3)[0]
    assert [s.seat for s in ep.transcript] == ["prover", "verifier", "verifier"]
    info = ep.info["prover"]
    assert set(info) >= {"correct", "role", "score", "reference_score", "convinced", "half"}
    expected_verifier = 1.0 if (info["score"] >= info["reference_score"]) == info["correct"] else -1.0
    assert ep.rewards["verifier"] == expected_verifier


def test_missing_seat_is_an_error():
    g, agents = pv_agents()
    with pytest.raises(ArenaError, match="no agent for seat"):
        play(g.make, {"prover": agents["prover"]}, 2)


def test_wrong_number_of_actions_is_an_error():
    g, agents = pv_agents()

    class Short:
        def reset(self, seed):
            pass

        def act(self, observations):
            return observations[:-1]

    with pytest.raises(ArenaError, match="returned 1 actions for 2"):
        play(g.make, {"prover": Short(), "verifier": agents["verifier"]}, 2, concurrency=2)


def test_dead_steps_are_handled_for_games_with_early_termination():
    # In duel-v0 with a gold judge the episode ends after the second policy's move.
    g = registry.spec("duel-v0")
    agents = {s: build_agent("scripted:random", AgentContext.for_seat(g, s, Path("runs"), judge="gold"))
              for s in ("policy_a", "policy_b")}
    for a in agents.values():
        a.reset(0)
    episodes, _ = play(lambda: g.make(judge="gold"), agents, 6, concurrency=3, seed=1)
    assert len(episodes) == 6
    for ep in episodes:
        assert ep.rewards["policy_a"] == -ep.rewards["policy_b"]


def test_duel_bots_follow_their_strength_and_the_checker_agrees_with_gold():
    g = registry.spec("duel-v0")
    specs = {"policy_a": "scripted:adder?noise=0", "policy_b": "scripted:adder?noise=6", "judge": "scripted:checker"}
    agents = {s: build_agent(spec, AgentContext.for_seat(g, s, Path("runs"))) for s, spec in specs.items()}
    for a in agents.values():
        a.reset(0)
    episodes, _ = play(g.make, agents, 40, concurrency=8, seed=2)
    metrics = g.load().round_metrics(episodes)
    assert metrics["judge_agreement"] == 1.0
    assert metrics["gold_a"] == 1.0 and metrics["gold_b"] < 1.0
    assert all(ep.rewards["policy_a"] >= 0 for ep in episodes)
    assert metrics["win_rate_a"] > 0.5
