"""Contract checks any game or agent can be put through (library code, not tests).

    from arena.testing import check_game
    check_game(lambda: MyEnv())

runs PettingZoo's own `api_test` and `seed_test`, feeds garbage actions to every
seat (random strings, empty and very long strings, NaN/inf scores, wrong types)
and asserts the game takes them as (invalid) moves without raising, and checks
that the same seed gives the same transcript with the same actions.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from gymnasium import spaces

from arena.textobs import check_named, text_fields

GARBAGE_TEXT = ["", " ", "\x00\x01\x02", "a" * 100_000, "Answer: ", "ünïcødé ☃ 🙂", "NaN", "-1e999",
                # numbers longer than Python's int() takes (4,300 digits), bare and where answers go
                "9" * 5000, "Answer: -" + "1" * 5000, "0" * 6000 + "7", "1e" + "9" * 5000]
GARBAGE_SCORES = [np.array([np.nan], dtype=np.float32), np.array([np.inf], dtype=np.float32),
                  np.array([-np.inf], dtype=np.float32), float("nan"), "not a number", None,
                  np.zeros(3, dtype=np.float32), np.array([1e30], dtype=np.float32)]


def check_game(env_fn: Callable[[], Any], *, num_cycles: int = 30, seeds: Sequence[int] = (0, 1, 2)) -> None:
    """Raise AssertionError (or the env's exception) if the game breaks the contract."""
    from pettingzoo.test import api_test, seed_test

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        api_test(env_fn(), num_cycles=num_cycles)
        seed_test(env_fn, num_cycles=num_cycles)
    check_observations_are_text(env_fn)
    check_garbage_actions(env_fn, seeds)
    check_determinism(env_fn, seeds)


def contract_problems(env: Any, text_field: str | Mapping[str, str] | None = None) -> list[str]:
    """What keeps a built env from being played by the engine, from its spaces alone (cheap enough
    to run when a game is loaded): each problem as "needs X (seat has Y)"; [] when there is none.
    Every seat must observe text (`arena.textobs`) and act in a Text or Box space; `text_field`,
    the field an LLM reads where the game names one (a name, or seat -> name), must be a Text field."""
    problems: dict[str, str] = {}
    agents = list(getattr(env, "possible_agents", None) or [])
    if not agents:
        return ["needs seats (its possible_agents is empty)"]
    for agent in agents:
        obs, act = env.observation_space(agent), env.action_space(agent)
        if not text_fields(obs):
            problems.setdefault("text", f"needs a text observation, a Text space or a Dict with a Text field "
                                        f"({agent} observes {_space_name(obs)})")
        else:
            named = text_field.get(agent) if isinstance(text_field, Mapping) else text_field
            wrong = check_named(obs, named, agent)
            if wrong:
                problems.setdefault("named", wrong)
        if not isinstance(act, (spaces.Text, spaces.Box)):
            problems.setdefault("action", f"needs a Text (text seat) or Box (scoring seat) action space "
                                          f"({agent} acts in {_space_name(act)})")
    return list(problems.values())


def _space_name(space: Any) -> str:
    """A short name for a space: `Discrete(9)`, `a Dict of action_mask: Box, observation: Box`."""
    if isinstance(space, spaces.Dict):
        return "a Dict of " + ", ".join(f"{k}: {type(v).__name__}" for k, v in space.spaces.items())
    if isinstance(space, spaces.Discrete):
        return f"Discrete({int(space.n)})"
    return type(space).__name__


def check_observations_are_text(env_fn: Callable[[], Any]) -> None:
    """Every seat observes text (a Text space, or a Dict with a Text field) and acts in a Text or
    Box space: what `contract_problems` asks of a game the engine loads."""
    problems = contract_problems(env_fn())
    assert not problems, "; ".join(problems)


def _garbage_for(space: spaces.Space) -> list[Any]:
    return GARBAGE_TEXT + [None, 12345] if isinstance(space, spaces.Text) else GARBAGE_SCORES + ["", "x" * 1000]


def play_scripted(env: Any, seed: int, choose: Callable[[str, int], Any], max_steps: int = 10_000) -> list[tuple]:
    """Play one episode choosing actions with `choose(agent, step)`; return the transcript."""
    env.reset(seed=seed)
    transcript = []
    for step in range(max_steps):
        if not env.agents:
            return transcript
        agent = env.agent_selection
        if env.terminations[agent] or env.truncations[agent]:
            env.step(None)
            continue
        obs = env.observe(agent)
        assert env.observation_space(agent).contains(obs), f"{agent}: observation outside its space: {obs!r:.200}"
        action = choose(agent, step)
        env.step(action)
        transcript.append((agent, _freeze(obs), _freeze(action), _freeze(dict(env.rewards))))
    raise AssertionError(f"episode did not end within {max_steps} steps")


def check_garbage_actions(env_fn: Callable[[], Any], seeds: Sequence[int]) -> None:
    """Every seat playing garbage: no exception, episode ends, rewards finite."""
    env = env_fn()
    for seed in seeds:
        for k in range(max(len(_garbage_for(env.action_space(a))) for a in env.possible_agents)):
            def choose(agent: str, step: int, k: int = k) -> Any:
                options = _garbage_for(env.action_space(agent))
                return options[(k + step) % len(options)]

            transcript = play_scripted(env, seed, choose)
            for _, _, _, rewards in transcript:
                for agent, r in rewards:
                    assert isinstance(r, (int, float)) and math.isfinite(r), \
                        f"non-finite reward {r!r} for {agent} after garbage actions"


def check_determinism(env_fn: Callable[[], Any], seeds: Sequence[int]) -> None:
    """Same seed and same actions -> same transcript (two fresh envs)."""
    for seed in seeds:
        runs = []
        for _ in range(2):
            env = env_fn()
            for agent in env.possible_agents:
                env.action_space(agent).seed(seed)
            runs.append(play_scripted(env, seed, lambda agent, step, env=env: env.action_space(agent).sample()))
        assert runs[0] == runs[1], f"seed {seed}: two envs with the same seed and actions diverged"


def check_agent(agent: Any, observations: Sequence[dict[str, str]]) -> list[Any]:
    """An agent is batched and seedable: one action per observation, same seed -> same actions."""
    agent.reset(123)
    first = agent.act(list(observations))
    assert len(first) == len(observations), "act must return one action per observation"
    agent.reset(123)
    again = agent.act(list(observations))
    assert _freeze(_actions(first)) == _freeze(_actions(again)), "same seed gave different actions"
    return first


def _actions(actions: Sequence[Any]) -> list[Any]:
    return [getattr(a, "action", a) for a in actions]


def _freeze(x: Any) -> Any:
    if isinstance(x, dict):
        return tuple(sorted((str(k), _freeze(v)) for k, v in x.items()))
    if isinstance(x, (list, tuple)):
        return tuple(_freeze(v) for v in x)
    if isinstance(x, np.ndarray):
        return ("ndarray", x.dtype.str, tuple(np.nan_to_num(x.astype(np.float64), nan=1e308).ravel().tolist())
                if x.dtype.kind in "fiu" else tuple(x.ravel().tolist()))
    if isinstance(x, float) and math.isnan(x):
        return "nan"
    return x
