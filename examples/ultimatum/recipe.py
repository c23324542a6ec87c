"""ultimatum-v0's recipe: both seats play `scripted:tabular` policies trained by REINFORCE.

`arena train examples.ultimatum.env:UltimatumEnv` calls `build(ctx)`; `--seat` replaces a seat's
agent (a seat played by anything but a tabular policy gets no learner), `--set` the `Params`.
"""
from __future__ import annotations

from dataclasses import dataclass

from arena.selfplay import RecipeContext, SeatSetup, Setup, resolve_params
from examples.ultimatum.bots import TabularPolicy
from examples.ultimatum.learner import Reinforce


@dataclass
class Params:
    """`--set KEY=VALUE` keys of the default recipe."""

    pot: int = 10
    """Coins to split (the game's `pot` setting and the size of the policy tables)."""
    lr: float = 25.0
    """REINFORCE step size on the table logits."""
    temperature: float = 1.0
    """Sampling temperature of the tabular policies."""


def build(ctx: RecipeContext) -> Setup:
    p = resolve_params(Params, ctx.params)
    seats = {}
    for seat in ("proposer", "responder"):
        agent, spec = ctx.agent(seat, f"scripted:tabular?pot={p.pot}&temperature={p.temperature}")
        learner = Reinforce(seat, lr=p.lr) if isinstance(agent, TabularPolicy) else None
        seats[seat] = SeatSetup(agent, learner, spec)
    return Setup(seats, env_kwargs={"pot": p.pot}, params=p)
