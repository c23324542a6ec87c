"""Prover-verifier payoffs mean the same whoever scores: hand-computed payoffs, a verifier's scale and
sign do not change them, and a tournament between checkpoints separates strong from weak players."""
from __future__ import annotations

import numpy as np
import pytest

from arena import tournament as T
from arena.runner import play
from games.prover_verifier import rules
from games.prover_verifier.bots import RolePlayProver, SpotCheckVerifier
from games.prover_verifier.env import ProverVerifierEnv

GAME = "prover-verifier-v1"


@pytest.mark.parametrize("mode, correct, helpful, won_over, want", [
    ("src", True, True, True, 1.0), ("src", False, False, True, 1.0),  # the role's aim, and convincing
    ("src", False, True, True, -1.0), ("src", True, False, True, -1.0),  # convincing against the role
    ("src", True, True, False, -1.0), ("src", False, False, False, -1.0),  # not convincing
    ("cgc", True, True, True, 1.0), ("cgc", True, True, False, -1.0), ("cgc", True, False, True, -2.0),
    ("goodhart", False, True, True, 1.0), ("goodhart", True, True, False, -1.0),
])
def test_prover_payoff_by_hand(mode, correct, helpful, won_over, want):
    assert rules.prover_payoff(mode, correct, helpful, won_over) == want


def test_convinced_compares_with_the_reference_whatever_the_scale():
    assert rules.convinced(-10.0, -10.5) and not rules.convinced(-11.0, -10.5)
    assert rules.convinced(-10.5 + 1e-7, -10.5) and rules.convinced(-10.5 - 1e-6, -10.5)  # float rounding: a tie
    assert rules.convinced(1.0, 1.0) and not rules.convinced(-1.0, 1.0)
    assert not rules.convinced(None, 0.0) and not rules.convinced(0.0, None)
    assert rules.verifier_payoff(True, True, True) == 1.0 and rules.verifier_payoff(False, False, True) == 1.0
    assert rules.verifier_payoff(False, True, True) == -1.0 and rules.verifier_payoff(True, True, False) == -1.0


class Affine:
    """A verifier whose every score is a*s+b of another's: the same judgements on another scale."""

    kind, produces = "scripted", "score"

    def __init__(self, inner, a: float, b: float):
        self.inner, self.a, self.b = inner, a, b

    def act(self, observations):
        return [self.a * x + self.b for x in self.inner.act(observations)]


def test_payoffs_do_not_depend_on_the_verifiers_scale_or_sign():
    prover = RolePlayProver("prover")
    checker = SpotCheckVerifier("verifier", "check_rate=0.5")
    runs = {}
    for name, verifier in {"+-1": checker, "negative": Affine(checker, 7.0, -30.0),
                           "tiny": Affine(checker, 1e-3, 0.0)}.items():
        episodes, _ = play(lambda: ProverVerifierEnv(), {"prover": prover, "verifier": verifier}, 64, seed=5)
        runs[name] = episodes
    first = runs["+-1"]
    for episodes in runs.values():
        assert [ep.rewards for ep in episodes] == [ep.rewards for ep in first]
        assert [ep.info["prover"]["convinced"] for ep in episodes] == [ep.info["prover"]["convinced"] for ep in first]
    # the verifier scored both texts: the prover's solution and the reference, in a per-episode order
    judged = [[s.observation["solution"] for s in ep.moves("verifier")] for ep in first]
    assert all(len(j) == 2 for j in judged)
    solutions = [ep.moves("prover")[0].action for ep in first]
    assert {j.index(s) for j, s in zip(judged, solutions)} == {0, 1}
    for name in ("prover", "verifier"):  # a payoff that never varies would mean nothing
        assert len({ep.rewards[name] for ep in first}) > 1, name
    sneaky = [ep for ep in first if ep.info["prover"]["role"] == "sneaky"]
    assert any(ep.info["prover"]["convinced"] for ep in sneaky) and not all(
        ep.info["prover"]["convinced"] for ep in sneaky)


def test_tournament_separates_strong_from_weak_verifiers_and_provers(tmp_path):
    strong, weak = "scripted:spot-check?check_rate=1", "scripted:constant?value=1"
    good, bad = "scripted:role-play", "scripted:sneaky"
    cfg = T.TournamentConfig(game=GAME, seats={"prover": [good, bad], "verifier": [strong, weak]}, episodes=48,
                             concurrency=48, bootstrap=200, seed=1)
    result = T.run_tournament(cfg, tmp_path)
    groups = {g.name: g for g in result.groups}

    def interval(group, spec):
        i = group.specs.index(spec)
        return group.bt.lower[i], group.bt.rating[i], group.bt.upper[i]

    for group, (hi, lo) in ((groups["verifier"], (strong, weak)), (groups["prover"], (good, bad))):
        h, lo_ = interval(group, hi), interval(group, lo)
        assert h[1] > lo_[1] and h[0] > lo_[2], (group.name, h, lo_)  # apart, with non-overlapping 95% intervals
    cells = {c.paid_seat: np.asarray(c.cells.mean) for c in result.crossplay}
    assert np.ptp(cells["verifier"]) > 0.3 and np.ptp(cells["prover"]) > 0.3  # no payoff is constant
