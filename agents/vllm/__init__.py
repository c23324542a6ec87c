"""vLLM agents: a `Text` seat trained as a transformers model and sampled by a vLLM engine.

Spec strings (the `vllm` kind, an optional extra: `pip install -e '.[vllm]'` on a GPU machine,
`make vllm` for the CPU build in its own virtual environment; see docs/scaling.md#vllm):

    vllm:<model dir, hub id or checkpoint dir>
    vllm:<model>?temperature=0.7&max_new_tokens=128&stop=%0A      every `hf:` generator option
    vllm:<model>?engine_dtype=bfloat16&gpu_memory_utilization=0.4  plus the engine's (`EngineConfig`)

The agent has `agents.hf.GeneratorAgent`'s public surface, so every learner trains it; new
weights reach the engine before the next generation (`VLLMAgent.sync`). Its checkpoints are
ordinary `hf:` checkpoints. Modules: `config` (`EngineConfig`, the checks made before loading),
`agent` (`VLLMAgent`, the engine), and `build` below (the `arena.agents` entry point).
"""
from __future__ import annotations

from agents.vllm.config import CPU_HEAD_SIZES, EngineConfig, check_head_dim, require_vllm, split_engine_options

__all__ = ["CPU_HEAD_SIZES", "EngineConfig", "build", "check_head_dim", "require_vllm", "split_engine_options"]


def build(arg: str, ctx):
    """`arena.agents` entry point for `vllm:<model>[?options]`: a generator seat on vLLM."""
    from gymnasium import spaces

    from agents.hf import parse_hf_arg, read_agent_meta, sampling_from_meta, seat_action_space, split_options
    from agents.hf.factory import _with_ctx_device, reading_field
    from agents.vllm.agent import VLLMAgent
    from arena.types import ArenaError

    ref, gguf, options = parse_hf_arg(arg)
    field = reading_field(ctx)  # a seat an LLM cannot read is refused before the engine starts
    space = seat_action_space(ctx)
    if not isinstance(space, spaces.Text):
        raise ArenaError(f"seat {ctx.seat!r} of {ctx.game_id} has a {type(space).__name__} action space; "
                         "vllm agents play Text seats (use hf: for a scorer)")
    engine, rest = split_engine_options(options)
    meta = read_agent_meta(ref) if gguf is None else {}
    if meta.get("agent") == "scorer":
        raise ArenaError(f"{ref} is a scorer's checkpoint (it writes scores); vllm agents generate text")
    try:
        sampling, load = split_options(rest, generator=True, base_sampling=sampling_from_meta(meta))
    except ArenaError as e:
        if "unknown hf option" not in str(e):
            raise
        raise ArenaError(f"{e}, and the engine's: {', '.join(EngineConfig.__dataclass_fields__)}") from None
    agent = VLLMAgent.from_pretrained(ref, gguf_file=gguf, sampling=sampling, load=_with_ctx_device(load, ctx),
                                      engine=engine)
    agent.text_field = field
    return agent
