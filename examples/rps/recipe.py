"""rps-v0's recipe: both seats play `scripted:tabular` policies trained by REINFORCE.

A seat given another agent (`--seat player_1=scripted:move?move=rock`) gets no learner.
"""
from __future__ import annotations

from dataclasses import dataclass

from arena.selfplay import RecipeContext, SeatSetup, Setup, resolve_params
from examples.rps.bots import TabularPolicy
from examples.rps.learner import Reinforce


@dataclass
class Params:
    """`--set KEY=VALUE` keys of the default recipe."""

    lr: float = 2.0
    """REINFORCE step size on the logits."""
    rock: float = 1.0
    """Initial logit of rock in the tabular policies (0: start at the Nash equilibrium)."""


def build(ctx: RecipeContext) -> Setup:
    p = resolve_params(Params, ctx.params)
    seats = {}
    for seat in ("player_0", "player_1"):
        agent, spec = ctx.agent(seat, f"scripted:tabular?rock={p.rock}")
        learner = Reinforce(seat, lr=p.lr) if isinstance(agent, TabularPolicy) else None
        seats[seat] = SeatSetup(agent, learner, spec)
    return Setup(seats, params=p)
