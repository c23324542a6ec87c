"""Small helpers for writing a game's `AECEnv` (the bookkeeping every text game repeats)."""
from __future__ import annotations

from typing import Any

from gymnasium import spaces
from pettingzoo import AECEnv

from arena.spaces import text_dict_space


class TextGame(AECEnv):
    """An `AECEnv` whose seats all observe the same named Text fields.

    Call `self.set_spaces(fields, actions)` in `__init__` after `possible_agents`;
    the space accessors then return the same objects every call (as api_test wants).
    """

    def set_spaces(self, fields: tuple[str, ...], actions: dict[str, spaces.Space]) -> None:
        self._obs_spaces = {a: text_dict_space(*fields) for a in self.possible_agents}
        self._act_spaces = {a: actions[a] for a in self.possible_agents}

    def observation_space(self, agent: str) -> spaces.Space:
        return self._obs_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return self._act_spaces[agent]


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


def parse_options(options: str) -> dict[str, str]:
    """Agent-spec options `a=1&b=x` -> {"a": "1", "b": "x"}."""
    return dict(kv.split("=", 1) for kv in options.split("&") if "=" in kv)
