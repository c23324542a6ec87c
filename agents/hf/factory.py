"""`build`: the `hf:` agent factory (the `arena.agents` entry point `hf = "agents.hf:build"`).

The seat decides the agent: a gymnasium `Text` action space gets a
`GeneratorAgent`, a `Box` action space a `ScorerAgent`. For a dir these agents
saved, the sampling settings in its `arena_agent.json` come first and the spec's
own options override them.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from agents.hf.config import LoadConfig, parse_hf_arg, sampling_from_meta, split_options
from agents.hf.generator import GeneratorAgent
from agents.hf.loading import read_agent_meta
from agents.hf.scorer import ScorerAgent
from arena.types import ArenaError


def seat_action_space(ctx) -> Any:
    """The action space of `ctx.seat`: `ctx.action_space`, else from a default-constructed env."""
    if getattr(ctx, "action_space", None) is not None:
        return ctx.action_space
    env = ctx.game_cls()
    try:
        return env.action_space(ctx.seat)
    finally:
        close = getattr(env, "close", None)
        if callable(close):
            close()


def build(arg: str, ctx) -> GeneratorAgent | ScorerAgent:
    """`arena.agents` entry point for `hf:<model>[?options]` (and `ckpt:` dirs these agents wrote)."""
    from gymnasium import spaces

    ref, gguf, options = parse_hf_arg(arg)
    space = seat_action_space(ctx)
    meta = read_agent_meta(ref) if gguf is None else {}
    if isinstance(space, spaces.Box):
        _, load = split_options(options, generator=False)
        load = _with_ctx_device(load, ctx)
        return ScorerAgent.from_pretrained(ref, gguf_file=gguf, load=load)
    if isinstance(space, spaces.Text):
        sampling, load = split_options(options, generator=True, base_sampling=sampling_from_meta(meta))
        return GeneratorAgent.from_pretrained(ref, gguf_file=gguf, sampling=sampling,
                                              load=_with_ctx_device(load, ctx))
    raise ArenaError(f"seat {ctx.seat!r} of {ctx.game_id} has a {type(space).__name__} action space; "
                     "hf agents play Text seats (generator) and Box seats (scorer)")


def _with_ctx_device(load: LoadConfig, ctx) -> LoadConfig:
    if not load.device and getattr(ctx, "device", None):
        return dataclasses.replace(load, device=ctx.device)
    return load
