"""Small helpers for writing a game's `AECEnv` (the bookkeeping every text game repeats)."""
from __future__ import annotations

from typing import Any, Callable, Iterable

from gymnasium import spaces
from pettingzoo import AECEnv

from arena.spaces import text_dict_space


class TextGame(AECEnv):
    """An `AECEnv` whose seats all observe the same named Text fields.

    A game implements `move(agent, action)` (what `step` does for a live agent) and calls
    `self.set_spaces(fields, actions)` in `__init__` after `possible_agents`,
    with `actions` mapping each seat to a function that builds its action space.
    Spaces are built on first use and then cached, so the accessors return the same
    object every call (as api_test wants) and an env that only plays builds none:
    a gymnasium `Text` space indexes its charset when built, which for the many
    short-lived envs of a batched round was most of the engine's own time.
    """

    def set_spaces(self, fields: tuple[str, ...], actions: dict[str, Callable[[], spaces.Space]]) -> None:
        self._fields, self._action_fns = tuple(fields), dict(actions)
        self._obs_spaces: dict[str, spaces.Space] = {}
        self._act_spaces: dict[str, spaces.Space] = {}

    def observation_space(self, agent: str) -> spaces.Space:
        if agent not in self._obs_spaces:
            self._check_seat(agent)
            self._obs_spaces[agent] = text_dict_space(*self._fields)
        return self._obs_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        if agent not in self._act_spaces:
            self._check_seat(agent)
            self._act_spaces[agent] = self._action_fns[agent]()
        return self._act_spaces[agent]

    def step(self, action: Any) -> None:
        """PettingZoo's `step`: the dead step of a finished agent is bookkept here, once for every
        game; a live move clears the step's rewards and goes to the game's `move(agent, action)`."""
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            self._was_dead_step(action)
            return
        self._clear_rewards()
        self.move(agent, action)

    def move(self, agent: str, action: Any) -> None:
        """Apply the live `agent`'s `action` (any value: garbage is scored as an invalid move)."""
        raise NotImplementedError(f"{type(self).__name__} must implement move(agent, action)")

    def _check_seat(self, agent: str) -> None:
        if agent not in self.possible_agents:
            raise KeyError(agent)


def start_episode(env: Any, first: str, info: dict[str, dict[str, Any]] | None = None) -> None:
    """Reset PettingZoo's per-agent dicts for a new episode; `first` moves first."""
    env.agents = list(env.possible_agents)
    env.rewards = {a: 0.0 for a in env.agents}
    env._cumulative_rewards = {a: 0.0 for a in env.agents}
    env.terminations = {a: False for a in env.agents}
    env.truncations = {a: False for a in env.agents}
    env.infos = {a: dict((info or {}).get(a, {})) for a in env.agents}
    env.agent_selection = first


def end_episode(env: Any, info: dict[str, Any]) -> None:
    """Terminate every agent, each with a copy of the episode's final info."""
    env.infos = {a: dict(info) for a in env.agents}
    env.terminations = {a: True for a in env.agents}


def final_infos(episodes: Iterable[Any], seat: str, key: str) -> list[dict[str, Any]]:
    """`seat`'s final info in each of `episodes` that has `key` (the one `end_episode` gave it; an
    episode that ended otherwise has none): what a game's `round_metrics` summarises."""
    return [ep.info[seat] for ep in episodes if key in ep.info.get(seat, {})]
