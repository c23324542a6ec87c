"""textarena-v0: a two-player TextArena game (`ta.make(env_id)`) as a PettingZoo `AECEnv`.

| | |
|---|---|
| Agents | `player_0`, `player_1` (Text actions); symmetric: tournaments play them round robin |
| Turn order | TextArena's (`get_observation()` says whose turn it is; an invalid move may be retried once) |
| Observation | Dict of Text: `prompt` = everything TextArena has shown this player so far (its default wrappers: the rules, then the game log), the last 8,192 characters |
| Action | text; TextArena's `ActionFormattingWrapper` adds the brackets (`4` -> `[4]`) |
| Rewards | TextArena's: +1 win, -1 loss, 0 draw; a second invalid move in a row loses, and so does a move TextArena raises on |
| Info | rewards, invalid_move (per player), reason, turns, truncated |

Settings: `env_id` (any two-player TextArena id, default `TicTacToe-v0`), `max_turns` (a
game still running after that many moves is a draw, truncated).

Seeds. TextArena seeds Python's global `random` in every reset (`ta.State.__init__`) and
its games draw from it. Episodes here run interleaved in one process, so each env keeps its
own copy of that generator's state and swaps it in around every call into TextArena: one
episode's draws never depend on another's, and the same seed gives the same transcript.

Version history: v0 -- first version.
"""  # noqa: E501 (a table row is one line)
from __future__ import annotations

import random
from typing import Any, Callable

from arena.game import TextGame, end_episode, final_infos, start_episode
from arena.gameinfo import GameInfo
from arena.spaces import MAX_TEXT, as_text, sanitize, text_space

SEATS = ["player_0", "player_1"]


class TextArenaEnv(TextGame):
    """A two-player TextArena game (default TicTacToe-v0)."""

    metadata = {"name": "textarena-v0", "is_parallelizable": False, "render_modes": []}
    game_info = GameInfo(
        description="A two-player TextArena game (TicTacToe-v0 unless --env env_id=...).",
        headline=("win_rate_0", "draw_rate", "invalid_rate"),
        symmetric_seats=("player_0", "player_1"),
        bots={"listed-move": "examples.textarena_wrapper.bots:ListedMove"},
    )

    def __init__(self, env_id: str = "TicTacToe-v0", max_turns: int = 100, render_mode: str | None = None):
        super().__init__()
        try:
            import textarena
        except ImportError:
            raise ValueError("TextArena is not installed: pip install -e '.[textarena]'") from None
        if env_id not in textarena.envs.registration.ENV_REGISTRY:
            raise ValueError(f"TextArena has no game {env_id!r}")
        self.env_id, self.max_turns, self.render_mode = env_id, max_turns, render_mode
        self.possible_agents = list(SEATS)
        self.set_spaces(("prompt",), {seat: text_space for seat in SEATS})
        self._rng_state = random.Random(0).getstate()

    def _call(self, fn: Callable[..., Any], **kwargs: Any) -> Any:
        """Call into TextArena with this episode's own `random` state (see the module doc)."""
        outer = random.getstate()
        random.setstate(self._rng_state)
        try:
            return fn(**kwargs)
        finally:
            self._rng_state = random.getstate()
            random.setstate(outer)

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> None:
        import textarena as ta

        self._rng_state = random.Random(seed).getstate()
        self._ta = self._call(ta.make, env_id=self.env_id)
        self._call(self._ta.reset, num_players=2, seed=seed)
        self.prompts = {seat: "" for seat in SEATS}
        self.turns = 0
        start_episode(self, SEATS[0])
        self._next_player()

    def _next_player(self) -> None:
        pid, text = self._call(self._ta.get_observation)
        seat = SEATS[pid]
        self.prompts[seat] = sanitize(text[-MAX_TEXT:] if isinstance(text, str) else str(text)[-MAX_TEXT:])
        self.agent_selection = seat

    def observe(self, agent: str) -> dict[str, str]:
        return {"prompt": self.prompts[agent]}

    def move(self, agent: str, action: Any) -> None:
        self.turns += 1
        try:
            done, _ = self._call(self._ta.step, action=as_text(action) or "")
        except Exception as e:  # noqa: BLE001 -- garbage must be a lost move, never a crash (the contract)
            self._forfeit(agent, f"TextArena could not take the move ({type(e).__name__})")
        else:
            if done or self.turns >= self.max_turns:
                self._finish(truncated=not done)
            else:
                self._next_player()
        self._accumulate_rewards()

    def _forfeit(self, seat: str, reason: str) -> None:
        """`seat` loses on a move TextArena raised on (e.g. a 5,000-digit cell number)."""
        loser = SEATS.index(seat)
        rewards = {loser: -1.0, 1 - loser: 1.0}
        for pid, s in enumerate(SEATS):
            self.rewards[s] = rewards[pid]
        end_episode(self, {"rewards": [rewards[0], rewards[1]], "invalid_move": [pid == loser for pid in range(2)],
                           "reason": reason, "turns": self.turns, "truncated": False})

    def _finish(self, truncated: bool) -> None:
        rewards, game_info = self._call(self._ta.close) if not truncated else ({0: 0, 1: 0}, {})
        rewards = rewards or {0: 0, 1: 0}
        for pid, seat in enumerate(SEATS):
            self.rewards[seat] = float(rewards.get(pid, 0))
        info = {"rewards": [self.rewards[s] for s in SEATS],
                "invalid_move": [bool(game_info.get(pid, {}).get("invalid_move")) for pid in range(2)],
                "reason": str(game_info.get(0, {}).get("reason", "turn limit" if truncated else "")),
                "turns": self.turns, "truncated": truncated}
        end_episode(self, info)
        if truncated:
            self.truncations = {a: True for a in self.agents}
            self.terminations = {a: False for a in self.agents}

    @staticmethod
    def round_metrics(episodes) -> dict[str, float]:
        infos = final_infos(episodes, "player_0", "rewards")
        n = max(1, len(infos))
        return {"win_rate_0": sum(i["rewards"][0] > i["rewards"][1] for i in infos) / n,
                "draw_rate": sum(i["rewards"][0] == i["rewards"][1] for i in infos) / n,
                "invalid_rate": sum(any(i["invalid_move"]) for i in infos) / n,
                "turns": sum(i["turns"] for i in infos) / n}
