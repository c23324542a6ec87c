"""`build`: the `hf:` agent factory (the `arena.agents` entry point `hf = "agents.hf:build"`).

The seat decides the agent: a gymnasium `Text` action space gets a
`GeneratorAgent`, a `Box` action space a `ScorerAgent`. A checkpoint says which it
is (`arena_agent.json`): a generator's checkpoint in a scoring seat, or a scorer's in a
text seat (a prover checkpoint as the verifier), is refused in one line. A hub model or
a model dir that is not a checkpoint may fill either (a scorer starts with a fresh head). For a dir these agents
saved, the sampling settings in its `arena_agent.json` come first and the spec's
own options override them.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from agents.hf.config import LoadConfig, parse_hf_arg, sampling_from_meta, split_options
from agents.hf.generator import GeneratorAgent
from agents.hf.likelihood import LikelihoodScorer, Readout, is_likelihood_meta
from agents.hf.loading import read_agent_meta
from agents.hf.scorer import ScorerAgent
from arena.checkpoints import CHECKPOINT_META
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


def build(arg: str, ctx) -> GeneratorAgent | ScorerAgent | LikelihoodScorer:
    """`arena.agents` entry point for `hf:<model>[?options]` (and `ckpt:` dirs these agents wrote),
    reading the seat's text field (`reading_field`)."""
    field = reading_field(ctx)  # a seat an LLM cannot read is refused before any weight is loaded
    agent = _build(arg, ctx)
    agent.text_field = field
    return agent


def reading_field(ctx) -> str:
    """The observation field an LLM in `ctx`'s seat reads: `AgentContext.llm_text_field` (one line
    where it is ambiguous); `prompt` for a context that does not say."""
    read = getattr(ctx, "llm_text_field", None)
    return read() if callable(read) else "prompt"


def _build(arg: str, ctx) -> GeneratorAgent | ScorerAgent | LikelihoodScorer:
    from gymnasium import spaces

    ref, gguf, options = parse_hf_arg(arg)
    space = seat_action_space(ctx)
    meta = read_agent_meta(ref) if gguf is None else {}
    saved = meta.get("agent")  # what an agent dir this project wrote plays: "generator" or "scorer"
    wanted = "scorer" if isinstance(space, spaces.Box) else "generator" if isinstance(space, spaces.Text) else None
    if wanted and saved in ("generator", "scorer") and saved != wanted and is_checkpoint(ref):
        writes = {"generator": "text", "scorer": "scores"}
        raise ArenaError(f"{ref} is a {saved}'s checkpoint (it writes {writes[saved]}), but seat {ctx.seat!r} of "
                         f"{ctx.game_id} needs a {wanted}; every move it made there would be invalid")
    if isinstance(space, spaces.Box):
        _, load = split_options(options, generator=False)
        load = _with_ctx_device(load, ctx)
        if is_likelihood_meta(meta):  # a generative verifier: its LM's token log-probabilities are the score
            return LikelihoodScorer.from_pretrained(ref, gguf_file=gguf, load=load,
                                                    readout=Readout.from_meta(meta["readout"]))
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


def is_checkpoint(ref: str) -> bool:
    """Whether `ref` is a checkpoint directory this engine wrote (it has `arena_checkpoint.json`)."""
    try:
        return (Path(ref) / CHECKPOINT_META).is_file()
    except (OSError, ValueError):
        return False
