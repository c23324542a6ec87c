"""Recipes for prover-verifier-v0 (where the game meets concrete agents and learners)."""
from __future__ import annotations

from arena.selfplay import RecipeContext, SeatSetup, Setup
from games.prover_verifier.bots import SpotCheckLearner, SpotCheckVerifier


def scripted(ctx: RecipeContext) -> Setup:
    """Rule-based prover and a spot-checking verifier that learns to check more often."""
    prover, prover_spec = ctx.agent("prover", "scripted:role-play")
    verifier, verifier_spec = ctx.agent("verifier", "scripted:spot-check")
    learner = SpotCheckLearner() if isinstance(verifier, SpotCheckVerifier) else None
    return Setup({"prover": SeatSetup(prover, None, prover_spec),
                  "verifier": SeatSetup(verifier, learner, verifier_spec)})
