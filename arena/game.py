"""Small helpers for writing a game's `AECEnv` (the bookkeeping every text game repeats)."""
from __future__ import annotations

from typing import Any


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
