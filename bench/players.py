"""The benchmark's players: the generator under test (a preset's random model or an `hf:` spec),
a fresh tiny scorer, and the agents of the other seats.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from arena.seeding import derive

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {},
    # Qwen2-0.5B's shape (494M parameters), randomly initialised; the char tokenizer's
    # ids are a subset of the 151936-token vocabulary (sampled ids beyond it decode to nothing).
    "qwen2-0.5b": dict(model_type="qwen2", vocab_size=151936, hidden_size=896, intermediate_size=4864,
                       num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                       max_position_embeddings=4096, rope_theta=1000000.0, rms_norm_eps=1e-6,
                       tie_word_embeddings=True),
    # SmolLM2-135M's shape (135M parameters), randomly initialised; the learner memory benchmark's default
    "smollm2-135m": dict(model_type="llama", vocab_size=49152, hidden_size=576, intermediate_size=1536,
                         num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                         max_position_embeddings=8192, rope_theta=100000.0, rms_norm_eps=1e-5,
                         tie_word_embeddings=True),
}


def build_generator(args):
    from agents.hf import GeneratorAgent, SamplingConfig, parse_hf_arg, split_options
    from agents.tiny import new_tiny_causal_lm

    sampling = SamplingConfig(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                              max_new_tokens=args.max_new_tokens, ignore_eos=not args.eos)
    if args.model:
        ref, gguf, options = parse_hf_arg(args.model)
        _, load = split_options(options, generator=True)
        load = dataclasses.replace(load, device=args.device, dtype=args.dtype)
        return GeneratorAgent.from_pretrained(ref, gguf_file=gguf, sampling=sampling, load=load)
    model, tok = new_random_causal_lm(args.preset, args.seed) if args.preset != "tiny" else \
        new_tiny_causal_lm(args.seed)
    model.to(device=args.device, dtype=_dtype(args.dtype)).eval()
    return GeneratorAgent(model, tok, sampling, seed=args.seed)


def new_random_causal_lm(preset: str, seed: int):
    """A randomly initialised model of a real architecture's shape (`tiny`: the project's tiny Llama),
    with the char tokenizer."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from agents.tiny import char_tokenizer, init_weights, new_tiny_causal_lm

    if preset == "tiny":
        return new_tiny_causal_lm(seed)

    kw = dict(PRESETS[preset])
    tok = char_tokenizer()
    config = AutoConfig.for_model(kw.pop("model_type"), pad_token_id=tok.pad_token_id,
                                  bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, **kw)
    with torch.random.fork_rng(devices=[]):
        model = AutoModelForCausalLM.from_config(config)
    return init_weights(model, seed), tok


def build_scorer(args):
    from agents.hf import ScorerAgent
    from agents.tiny import new_tiny_scorer

    model, tok = new_tiny_scorer(derive(args.seed, "scorer") % 2**31)
    model.to(args.device).eval()
    return ScorerAgent(model, tok)


def _dtype(name: str):
    from agents.hf import resolve_dtype

    d = resolve_dtype(name)
    return None if d == "auto" else d


def build_seats(args, env) -> dict[str, Any]:
    from gymnasium import spaces

    from arena.registry import spec as game_spec
    from arena.specs import AgentContext, build_agent

    overrides = dict(s.split("=", 1) for s in args.seat)
    gen = build_generator(args)
    seats = {}
    gspec = game_spec(args.game)
    for seat in env.possible_agents:
        space = env.action_space(seat)
        spec = overrides.get(seat, "generator" if isinstance(space, spaces.Text) else "scripted:random")
        if spec == "generator":
            seats[seat] = gen  # one model even if several seats generate (as in self-play)
        elif spec == "scorer":
            seats[seat] = build_scorer(args)
        else:
            seats[seat] = build_agent(spec, AgentContext.for_seat(gspec, seat, Path("runs"), args.device))
    return seats


def models_of(seats: dict[str, Any]) -> list[torch.nn.Module]:
    found: dict[int, torch.nn.Module] = {}
    for agent in seats.values():
        m = getattr(agent, "model", None)
        if isinstance(m, torch.nn.Module):
            found[id(m)] = m
    return list(found.values())

