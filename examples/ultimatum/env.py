"""ultimatum-v0: the proposer offers a split of a pot, the responder accepts or rejects.

| | |
|---|---|
| Agents | `proposer`, `responder` (Text actions) |
| Turn order | proposer, then responder (who sees the offer) |
| Observation | Dict of Text: `prompt` (what an LLM reads), `offer` (the offer as digits, `""` before it) |
| Proposer action | text with a whole number 0..pot (`offer 4`); anything else is an invalid offer |
| Responder action | text saying `accept` or `reject`; anything else is an invalid reply (no deal) |
| Rewards | accepted: proposer (pot - offer) / pot, responder offer / pot; otherwise 0 for both |
| Info | offer, accepted, valid_offer, valid_reply |

Each episode's prompt carries a table number drawn from its seed, so two episodes differ in
text and a bot that hashes what it sees draws a fresh sample for each.

Version history: v0 -- first version.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from arena.game import TextGame, end_episode, final_infos, start_episode
from arena.gameinfo import GameInfo
from arena.spaces import as_text, text_space
from examples.ultimatum import rules

FIELDS = ("prompt", "offer")


class UltimatumEnv(TextGame):
    """Split a pot: the proposer offers, the responder accepts or rejects."""

    metadata = {"name": "ultimatum-v0", "is_parallelizable": False, "render_modes": []}
    game_info = GameInfo(
        description="Ultimatum bargaining: offer a split of a pot; a rejected offer pays nobody.",
        recipes={"default": "examples.ultimatum.recipe:build"},
        recipe_params={"default": "examples.ultimatum.recipe:Params"},
        headline=("mean_offer", "accept_rate"),
        bots={"fixed": "examples.ultimatum.bots:FixedOffer",
              "threshold": "examples.ultimatum.bots:Threshold",
              "tabular": "examples.ultimatum.bots:TabularPolicy"},
    )

    def __init__(self, pot: int = 10, render_mode: str | None = None):
        super().__init__()
        if pot < 1:
            raise ValueError(f"pot must be at least 1, not {pot}")
        self.pot, self.render_mode = pot, render_mode
        self.possible_agents = ["proposer", "responder"]
        self.set_spaces(FIELDS, {"proposer": text_space, "responder": text_space})

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> None:
        self.table = int(np.random.default_rng(seed).integers(10_000, 100_000))
        self.offer: int | None = None
        start_episode(self, "proposer")

    def observe(self, agent: str) -> dict[str, str]:
        if agent == "responder" and self.offer is not None:
            return {"prompt": rules.responder_prompt(self.pot, self.table, self.offer), "offer": str(self.offer)}
        return {"prompt": rules.proposer_prompt(self.pot, self.table), "offer": ""}

    def move(self, agent: str, action: Any) -> None:
        text = as_text(action) or ""
        if agent == "proposer":
            self.offer = rules.parse_offer(text, self.pot)
            if self.offer is None:  # an invalid offer ends the episode: no deal
                self._finish(None)
            else:
                self.agent_selection = "responder"
        else:
            self._finish(rules.parse_reply(text))
        self._accumulate_rewards()

    def _finish(self, accepted: bool | None) -> None:
        self.rewards["proposer"], self.rewards["responder"] = rules.payoffs(self.offer, accepted, self.pot)
        end_episode(self, {"offer": self.offer, "accepted": bool(accepted), "pot": self.pot,
                           "valid_offer": self.offer is not None,
                           "valid_reply": self.offer is None or accepted is not None})

    @staticmethod
    def round_metrics(episodes) -> dict[str, float]:
        infos = final_infos(episodes, "proposer", "offer")
        offers = [i["offer"] / i["pot"] for i in infos if i["valid_offer"]]
        n = max(1, len(infos))
        return {
            "mean_offer": float(np.mean(offers)) if offers else 0.0,
            "accept_rate": sum(i["accepted"] for i in infos) / n,
            "invalid_rate": sum(not (i["valid_offer"] and i["valid_reply"]) for i in infos) / n,
        }
