"""rps-v0: rock-paper-scissors with text moves.

| | |
|---|---|
| Agents | `player_0`, `player_1` (Text actions; symmetric seats) |
| Turn order | player_0, then player_1, who does not see player_0's move |
| Observation | Dict of Text: `prompt` (the rules, and a table number drawn from the episode's seed) |
| Action | text naming rock, paper or scissors (the first one named counts); anything else is invalid |
| Rewards | +1 win, -1 loss, 0 draw; an invalid move loses to a valid one |
| Info | move (the move's name, None if invalid), won, draw |

Version history: v0 -- first version.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from arena.game import TextGame, end_episode, final_infos, start_episode
from arena.gameinfo import GameInfo
from arena.spaces import as_text, text_space
from examples.rps import rules


class RPSEnv(TextGame):
    """Rock-paper-scissors: both players move blind; rock > scissors > paper > rock."""

    metadata = {"name": "rps-v0", "is_parallelizable": False, "render_modes": []}
    game_info = GameInfo(
        description="Rock-paper-scissors with text moves: non-transitive, Nash = uniform, value 0.",
        recipes={"default": "examples.rps.recipe:build"},
        recipe_params={"default": "examples.rps.recipe:Params"},
        headline=("win_rate_0", "p_rock_0"),
        symmetric_seats=("player_0", "player_1"),
        bots={"move": "examples.rps.bots:FixedMove", "tabular": "examples.rps.bots:TabularPolicy"},
        exploitability="examples.rps.bots:exploitability",
    )

    def __init__(self, render_mode: str | None = None):
        super().__init__()
        self.render_mode = render_mode
        self.possible_agents = ["player_0", "player_1"]
        self.set_spaces(("prompt",), {"player_0": text_space, "player_1": text_space})

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> None:
        self.table = int(np.random.default_rng(seed).integers(10_000, 100_000))
        self.first: int | None = None
        start_episode(self, "player_0")

    def observe(self, agent: str) -> dict[str, str]:
        return {"prompt": rules.prompt(self.table)}

    def move(self, agent: str, action: Any) -> None:
        m = rules.parse_move(as_text(action) or "")
        if agent == "player_0":
            self.first = m
            self.agent_selection = "player_1"
        else:
            r0, r1 = rules.payoffs(self.first, m)
            self.rewards["player_0"], self.rewards["player_1"] = r0, r1
            end_episode(self, {})
            self.infos = {"player_0": {"move": rules.move_name(self.first), "won": r0 > r1, "draw": r0 == r1},
                          "player_1": {"move": rules.move_name(m), "won": r1 > r0, "draw": r0 == r1}}
        self._accumulate_rewards()

    @staticmethod
    def round_metrics(episodes) -> dict[str, float]:
        infos = final_infos(episodes, "player_0", "move")
        n = max(1, len(infos))
        return {"win_rate_0": sum(i["won"] for i in infos) / n, "draw_rate": sum(i["draw"] for i in infos) / n,
                "p_rock_0": sum(i["move"] == "rock" for i in infos) / n}
