"""`arena bench --vllm`: the batched HF agent against the vLLM agent, side by side in one run.

Both agents hold the same model (the vLLM agent's engine is started on the HF agent's very
weights, in this process, on the same torch threads) and get the same prompts (the game's
first prompts) and seeds. For each batch size (`--batches`, default 1,8,64,256) each agent
decodes the batch `--repeats` times after one untimed warm-up, one `generate` call each
(the HF agent as one left-padded KV-cached batch; vLLM schedules its own steps), the two
agents' calls interleaved; by default EOS is ignored, so both decode exactly batch x
`--max-new-tokens` tokens. Printed: tokens/s
min/median/max per agent, the median ratio, tokens per CPU-second of the process (median; less
disturbed than wall time by other work on the machine), and the weight bytes each decode step reads
per second (median tokens/s / batch x weight bytes; `--hbm-gbps` turns it into a fraction of
the memory-bandwidth roofline on a GPU). Also: the engine's start-up, and the time to hand
new weights to it (`VLLMAgent.sync` after an in-place update), min/median/max. With
`--vllm-optional` and no `vllm` in this Python, the HF agent is timed alone and the reason printed
(`arena bench --gpu-suite` does this).

    .venv-vllm/bin/arena bench --vllm --threads 2
    arena bench --vllm --preset qwen2-0.5b --device cuda --dtype bfloat16 --hbm-gbps 4800
"""
from __future__ import annotations

import json
import statistics
import time
from functools import partial
from pathlib import Path
from typing import Any, Callable

import torch

from arena.seeding import derive
from arena.types import ArenaError


def game_prompts(game: str, n: int, seed: int) -> list[str]:
    """The first prompt of `n` episodes of `game` (the seat to move first), seeded as the runner seeds them."""
    from arena.registry import make

    prompts = []
    for i in range(n):
        env = make(game)
        env.reset(seed=derive(seed, "episode", i))
        obs = env.observe(env.agent_selection)
        if not isinstance(obs, dict) or not isinstance(obs.get("prompt"), str):
            raise ArenaError(f"{game}'s first seat gets no text prompt; pick a game whose first move is text")
        prompts.append(obs["prompt"])
    return prompts


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[Any, float, float]:
    """(fn(), wall seconds, this process's CPU seconds: all threads, the in-process engine's too)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - t0, time.process_time() - c0


def spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def vllm_missing() -> str | None:
    """Why the vLLM agent cannot run in this Python (None: it can)."""
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        return "vLLM skipped: the vllm package is not installed in this Python (make vllm; docs/scaling.md#vllm)"
    return None


def run(args) -> int:
    from agents.hf import encode_prompt
    from bench.players import build_generator

    if any(b < 1 for b in args.batches) or args.repeats < 1:
        raise ArenaError("--batches and --repeats must be at least 1")
    skipped = vllm_missing()
    if skipped and not args.vllm_optional:
        from agents.vllm.config import require_vllm

        require_vllm()  # the one-line error naming the extra
    device = torch.device(args.device)
    hf = build_generator(args)  # --model / --preset, --dtype, sampling from the flags
    weight_bytes = sum(p.numel() * p.element_size() for p in {id(p): p for p in hf.model.parameters()}.values())
    agents: dict[str, Any] = {"hf": hf}
    start_s = 0.0
    if skipped:
        print(skipped)
    else:
        from agents.vllm.agent import VLLMAgent
        from agents.vllm.config import EngineConfig

        engine = EngineConfig(engine_dtype=args.dtype, gpu_memory_utilization=args.gpu_memory_utilization,
                              max_num_seqs=max(args.batches))
        agents["vllm"], start_s, _ = timed(lambda: VLLMAgent.from_model(hf.model, hf.tokenizer, hf.sampling,
                                                                       engine=engine, seed=args.seed), device)
    print(f"model {type(hf.model).__name__} {weight_bytes / 2**20:,.1f} MiB of weights ({args.dtype})  "
          f"device {device}  torch threads {torch.get_num_threads()}  max_new_tokens {args.max_new_tokens}"
          f"{' (EOS on)' if args.eos else ' (fixed length)'}  temperature {args.temperature}  "
          f"repeats {args.repeats}" + ("" if skipped else f"  vLLM engine start {start_s:.1f} s"))
    texts = game_prompts(args.game, max(args.batches), args.seed)
    prompts = [encode_prompt(hf.tokenizer, t, hf.sampling) for t in texts]
    rows = []
    for b in args.batches:
        ids, seeds = prompts[:b], [derive(args.seed, "row", i) % 2**62 for i in range(b)]
        row: dict[str, Any] = {"batch": b, "prompt_tokens": sum(map(len, ids))}
        rates: dict[str, list[float]] = {name: [] for name in agents}
        per_cpu: dict[str, list[float]] = {name: [] for name in agents}
        for agent in agents.values():
            agent.generate(ids, seeds)  # warm-up: allocator growth, kernel selection
        for _ in range(args.repeats):  # interleaved, so a busy spell on the machine hits both alike
            for name, agent in agents.items():
                outs, s, cpu = timed(partial(agent.generate, ids, seeds), device)
                tokens = sum(len(c.completion_ids) for c in outs)
                rates[name].append(tokens / s)
                per_cpu[name].append(tokens / max(cpu, 1e-9))
        row.update({name: spread(r) for name, r in rates.items()})
        row["per_cpu_s"] = {name: statistics.median(r) for name, r in per_cpu.items()}
        if "vllm" in row:
            row["ratio"] = row["vllm"]["median"] / row["hf"]["median"]
        rows.append(row)
        print(f"  batch {b:>4}: " + "  ".join(f"{n} {row[n]['median']:>10,.0f} tok/s" for n in agents), flush=True)
    push = []
    for _ in range(max(3, args.repeats) if "vllm" in agents else 0):
        vl = agents["vllm"]
        with torch.no_grad():
            next(vl.model.parameters()).add_(0.0)  # an in-place update: the version counter moves
        _, s, _ = timed(vl.sync, device)
        push.append(s)
    print(render(rows, weight_bytes, args.hbm_gbps, spread(push) if push else None))
    if args.json:
        Path(args.json).write_text(json.dumps({
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "device": str(device), "threads": torch.get_num_threads(), "weight_bytes": weight_bytes,
            "vllm_skipped": skipped, "engine_start_s": start_s if not skipped else None,
            "weight_push_s": spread(push) if push else None, "rows": rows}, indent=2))
    return 0


def render(rows: list[dict[str, Any]], weight_bytes: int, hbm_gbps: float, push: dict[str, float] | None) -> str:
    names = [n for n in ("hf", "vllm") if rows and n in rows[0]]
    label = {"hf": "HF", "vllm": "vLLM"}
    head = ["batch", *(f"{label[n]} tok/s min / median / max" for n in names),
            *(["vLLM/HF"] if "vllm" in names else []), *(f"{label[n]} tok/CPU-s" for n in names),
            *(f"{label[n]} weight GB/s" for n in names), *(f"{label[n]} roofline" for n in names if hbm_gbps)]
    lines = []
    for r in rows:
        cells = [str(r["batch"])]
        for name in names:
            x = r[name]
            cells.append(f"{x['min']:,.0f} / {x['median']:,.0f} / {x['max']:,.0f}")
        if "vllm" in names:
            cells.append(f"{r['ratio']:.2f}x")
        cells += [f"{r['per_cpu_s'][n]:,.0f}" if "per_cpu_s" in r else "-" for n in names]
        gbps = {n: r[n]["median"] / r["batch"] * weight_bytes / 1e9 for n in names}  # weights read per step
        cells += [f"{gbps[n]:,.2f}" for n in names]
        if hbm_gbps:
            cells += [f"{gbps[n] / hbm_gbps:.1%}" for n in names]
        lines.append(cells)
    w = [max(len(c) for c in col) for col in zip(head, *lines)]
    out = ["  ".join(c.rjust(n) for c, n in zip(row, w)) for row in [head, *lines]]
    if push:
        out.append(f"new weights into the engine (VLLMAgent.sync): {push['min'] * 1000:.1f} / "
                   f"{push['median'] * 1000:.1f} / {push['max'] * 1000:.1f} ms (min / median / max)")
    return "\n".join(out)
