"""Scripted agents: the game's own bots (`GameInfo.bots`) and generic ones.

    scripted:<bot>[?k=v&...]   a bot the game provides (e.g. scripted:role-play)
    scripted:random            uniform samples of the seat's action space
    scripted:constant?value=x  always the same score (Box seats) or text (Text seats)

Generic bots draw from a hash of (seed, observation text): a move depends only on
what the bot sees, in any text game whatever its fields (`arena.textobs`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from gymnasium import spaces

from arena.bots import STATE_FILE
from arena.gameinfo import GameInfo
from arena.options import parse_query
from arena.registry import load_attr
from arena.seeding import stable_hash
from arena.specs import AgentContext
from arena.textobs import read_text
from arena.types import ArenaError


class RandomAgent:
    """Samples the seat's action space (garbage for Text seats: a useful fuzzer)."""

    kind = "scripted"
    name = "random"

    def __init__(self, space: spaces.Space, text_field: str | None = "prompt"):
        self.space, self.seed = space, 0
        self.text_field = text_field
        """The observation text a move is drawn from (the seat's reading field; None: all its texts)."""

    def reset(self, seed: int) -> None:
        self.seed = seed

    def act(self, observations: Sequence[Any]) -> list[Any]:
        out = []
        for obs in observations:
            self.space.seed(stable_hash(self.seed, read_text(obs, self.text_field)) % 2**32)
            out.append(self.space.sample())
        return out

    def save(self, directory: Path) -> None:
        (Path(directory) / STATE_FILE).write_text(json.dumps({"bot": self.name, "params": {}}))

    def load(self, directory: Path) -> None:
        pass


class ConstantAgent(RandomAgent):
    """Always the same action: `value` as a score on Box seats, as text on Text seats."""

    name = "constant"

    def __init__(self, space: spaces.Space, value: str = "0"):
        super().__init__(space, None)
        self.value = value

    def act(self, observations):
        if isinstance(self.space, spaces.Box):
            return [np.full(self.space.shape, float(self.value), dtype=np.float32) for _ in observations]
        return [self.value for _ in observations]

    def save(self, directory: Path) -> None:
        (Path(directory) / STATE_FILE).write_text(json.dumps({"bot": self.name, "params": {"value": self.value}}))

    def load(self, directory: Path) -> None:
        self.value = json.loads((Path(directory) / STATE_FILE).read_text())["params"]["value"]


def build(arg: str, ctx: AgentContext):
    """Factory for the `scripted` kind (also rebuilds scripted checkpoints)."""
    state_file = _state_file(arg)
    if state_file is not None:
        # a checkpoint is data: its bot must be one the game registers, its state must parse
        try:
            name = json.loads(state_file.read_text())["bot"]
            agent = _make(str(name), "", ctx)
            agent.load(Path(arg))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise ArenaError(f"unreadable scripted checkpoint {state_file}: {type(e).__name__}: {e}") from None
        return agent
    name, _, options = arg.partition("?")
    return _make(name, options, ctx)


def _state_file(arg: str) -> Path | None:
    """`<arg>/scripted.json` when `arg` is a scripted checkpoint directory, else None."""
    if not arg:
        return None
    try:
        path = Path(arg) / STATE_FILE
        return path if path.is_file() else None
    except (OSError, ValueError):  # not a path at all: a bot name with options longer than a file name may be
        return None


def _make(name: str, options: str, ctx: AgentContext):
    bots = GameInfo.of(ctx.game_cls).bots
    if name in bots:
        try:
            return load_attr(bots[name])(seat=ctx.seat, options=options)
        except (TypeError, ValueError) as e:
            raise ArenaError(f"bad options for scripted:{name}: {options!r} ({e})") from None
    if name == "random":
        return RandomAgent(ctx.action_space, ctx.text_field)
    if name == "constant":
        unknown = sorted(set(parse_query(options, "scripted:constant option")) - {"value"})
        if unknown:
            raise ArenaError(f"unknown scripted:constant option(s) {', '.join(unknown)}; known: value")
        value = parse_query(options, "scripted:constant option").get("value", ["0"])[-1]
        return ConstantAgent(ctx.action_space, value)
    known = ", ".join(sorted([*bots, "random", "constant"]))
    shown = repr(name) if len(name) <= 60 else f"{name[:60]!r}... ({len(name)} characters)"
    raise ArenaError(f"unknown scripted agent {shown} for {ctx.game_id}; known: {known}")
