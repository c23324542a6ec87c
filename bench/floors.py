"""Each generation step against its floors (`arena bench --floors`; also printed by a plain `arena bench`).

    arena bench --floors --threads 1                     # tiny random model, batch 64, CPU
    arena bench --floors --preset qwen2-0.5b --device cuda --dtype bfloat16

Two rates of the machine it runs on, measured beside every repeat (the best of the repeats is used):
- copy bandwidth: `dst.copy_(src)` of a `--bw-mib` MiB buffer (default 256: larger than a CPU's last
  cache), bytes copied per second (each read once and written once; STREAM would count both, 2x this);
- matmul rate: a square matmul of side `--matmul-n` in the model's dtype (default 1024 on a CPU,
  8192 on a GPU), FLOP/s.

Then `GeneratorAgent.generate` on the game's first `--concurrency` prompts (64 by default), a fixed
`--max-new-tokens` per row (EOS ignored), timed by hooks on the model's forward:
- prefill: every forward over the prompts (in chunks of rows where the agent chunks: a CPU), also
  once in a single pass (`prefill_tokens=0`) where that differs, interleaved, for the ratio;
- decode step: from the first one-token forward to the end of `generate`, per step: forward,
  sampling and bookkeeping.

Beside the table, the decode step's attention alone (`attention_read`): one query a row over a KV cache of
the step's mean length, in the model's shape, every layer's cache read in turn as a step reads them (so
from memory, not from the CPU's caches), against a plain sum over the same K and V: how fast the kernel
that runs reads the cache, and how fast one pass over it can be.

Floors (`step_costs`): the memory floor is the bytes a step must move once -- every weight (an untied
input embedding: the rows looked up) and, for a decode step, the KV cache of every row's real tokens
so far (padding excluded), for the prefill the KV cache it writes -- over the copy bandwidth. The
compute floor is its FLOPs over the matmul rate: 2 x (linear weights) per token, the output
embedding at the last position only, and 4 x heads x head_dim per (query, key) pair of real tokens
per layer. The ratio is the step's time over the larger floor, min / median / max over `--repeats`
(default 5). Nothing here is timed in the tests; they check the counts.
"""
from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from arena.seeding import derive
from bench.clock import around_own_steps


@dataclass(frozen=True)
class Shape:
    """What the floors need of a causal LM."""

    linear_params: int
    """Weights of the linear layers a token goes through (the output embedding excluded)."""
    out_embedding: int
    """Vocabulary x hidden: the output projection, applied at the last position only."""
    weight_bytes: int
    """Bytes of weights a step reads (an untied input embedding not counted: only looked-up rows are read)."""
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    elem: int
    """Bytes per element of the KV cache (the model's dtype)."""


def shape_of(model: torch.nn.Module) -> Shape:
    c = model.config
    out, inp = model.get_output_embeddings(), model.get_input_embeddings()
    params = {id(p): p for p in model.parameters()}
    weight_bytes = sum(p.numel() * p.element_size() for p in params.values())
    if inp is not None and out is not None and inp.weight is not out.weight:
        weight_bytes -= inp.weight.numel() * inp.weight.element_size()
    linear = sum(m.in_features * m.out_features for m in model.modules()
                 if isinstance(m, torch.nn.Linear) and m is not out)
    heads = c.num_attention_heads
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // heads
    elem = next(model.parameters()).element_size()
    return Shape(linear, out.weight.numel() if out is not None else 0, weight_bytes, c.hidden_size,
                 c.num_hidden_layers, heads, getattr(c, "num_key_value_heads", None) or heads, head_dim, elem)


def step_costs(s: Shape, lengths: list[int], new_tokens: int) -> dict[str, dict[str, float]]:
    """Bytes and FLOPs of the prefill of prompts of `lengths` tokens and of the mean decode step
    (`new_tokens` - 1 one-token steps after it, every row kept)."""
    kv_per_token = 2 * s.layers * s.kv_heads * s.head_dim * s.elem  # K and V, every layer
    attn_per_pair = 4 * s.layers * s.heads * s.head_dim  # QK^T and PV: 2 FLOPs per multiply-add each
    b, prompt = len(lengths), sum(lengths)
    prefill = {"bytes": s.weight_bytes + kv_per_token * prompt,
               "flops": 2 * s.linear_params * prompt + 2 * s.out_embedding * b
               + attn_per_pair * sum(t * (t + 1) // 2 for t in lengths)}
    # decode step k (k = 1 .. new_tokens - 1) feeds sampled token k: a row of t prompt tokens has t + k
    # keys, so the batch prompt + b * k; the mean over the steps is prompt + b * new_tokens / 2
    context = prompt + b * new_tokens / 2
    decode = {"bytes": s.weight_bytes + kv_per_token * context,
              "flops": (2 * s.linear_params + 2 * s.out_embedding) * b + attn_per_pair * context}
    return {"prefill": prefill, "decode": decode}


def copy_bandwidth(mib: int, device: torch.device) -> float:
    """Bytes copied per second by one `copy_` of a `mib` MiB buffer (after a warm-up copy)."""
    n = mib * 2**20 // 4
    src, dst = torch.ones(n, device=device), torch.empty(n, device=device)
    dst.copy_(src)
    sync(device)
    t = time.perf_counter()
    dst.copy_(src)
    sync(device)
    return n * 4 / (time.perf_counter() - t)


def matmul_rate(n: int, dtype: torch.dtype, device: torch.device) -> float:
    """FLOP/s of one (n x n) @ (n x n) matmul (after a warm-up one)."""
    g = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn((n, n), generator=g).to(device=device, dtype=dtype)
    a @ a
    sync(device)
    t = time.perf_counter()
    a @ a
    sync(device)
    return 2 * n**3 / (time.perf_counter() - t)


def attention_read(s: Shape, rows: int, context: int, capacity: int, dtype: torch.dtype, device: torch.device,
                   repeats: int) -> dict[str, Any]:
    """Seconds per layer (min / median / max over `repeats`) of `scaled_dot_product_attention` for one query a
    row over `context` cached tokens in slots of `capacity` (a bool mask, as a left-padded batch has), and of a
    sum over the same K and V; each repeat reads every layer's cache once, in turn. `gbps`: the K and V bytes
    over the median."""
    import torch.nn.functional as F

    from agents.hf import cpu_attention

    g = torch.Generator(device="cpu").manual_seed(0)

    def draw(*shape):
        return torch.randn(shape, generator=g).to(device=device, dtype=dtype)

    caches = [(draw(rows, s.kv_heads, capacity, s.head_dim), draw(rows, s.kv_heads, capacity, s.head_dim))
              for _ in range(s.layers)]
    q = draw(rows, s.heads, 1, s.head_dim)
    mask = torch.ones((rows, 1, 1, context), dtype=torch.bool, device=device)
    gqa = {"enable_gqa": True} if s.heads != s.kv_heads else {}
    ways = {"sdpa": lambda k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=mask, **gqa),
            "sum": lambda k, v: (k.sum(), v.sum())}
    k0, v0 = caches[0][0][:, :, :context], caches[0][1][:, :, :context]
    if cpu_attention.kernel() is not None and cpu_attention.loop_applies(q, k0, v0, mask, 0.0, {}):
        ways["loop"] = lambda k, v: cpu_attention.decode_attention(None, q, k, v, mask)  # what a decode step runs
    times: dict[str, list[float]] = {name: [] for name in ways}
    for i in range(repeats + 1):  # the first: a warm-up
        for name, way in ways.items():
            sync(device)
            t = time.perf_counter()
            for k, v in caches:
                way(k[:, :, :context], v[:, :, :context])
            sync(device)
            if i:
                times[name].append((time.perf_counter() - t) / s.layers)
    kv_bytes = 2 * rows * s.kv_heads * context * s.head_dim * s.elem
    return {"rows": rows, "context": context, "capacity": capacity, "kv_bytes": kv_bytes,
            **{name: {"seconds": spread(ts), "gbps": kv_bytes / statistics.median(ts) / 1e9}
               for name, ts in times.items()}}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_generate(agent, prompts: list[list[int]], seeds: list[int], prefill_tokens: int | None,
                   cpu_decode: bool | None = None) -> dict[str, float]:
    """One `generate` (with `prefill_tokens`, and `cpu_decode` where not None): seconds of the prefill forwards and
    of the mean decode step."""
    device, marks = agent.device, []

    def pre(module, args, kwargs):
        sync(device)
        marks.append(["pre", kwargs["input_ids"].shape[1], time.perf_counter()])

    def post(module, args, kwargs, output):
        sync(device)
        marks.append(["post", 0, time.perf_counter()])

    hooks = [agent.model.register_forward_pre_hook(pre, with_kwargs=True),
             agent.model.register_forward_hook(post, with_kwargs=True)]
    saved, agent.prefill_tokens = agent.prefill_tokens, prefill_tokens
    saved_decode = agent.cpu_decode
    if cpu_decode is not None:
        agent.cpu_decode = cpu_decode
    try:
        with around_own_steps(lambda tokens: marks.append(["pre", tokens, time.perf_counter()]),
                              lambda: marks.append(["post", 0, time.perf_counter()])):
            sync(device)
            agent.generate(prompts, seeds)
            sync(device)
            end = time.perf_counter()
    finally:
        agent.prefill_tokens, agent.cpu_decode = saved, saved_decode
        for h in hooks:
            h.remove()
    starts = [m for m in marks if m[0] == "pre"]
    first_step = next((i for i, m in enumerate(starts) if m[1] == 1), len(starts))  # prefill forwards before it
    pairs = list(zip(marks[::2], marks[1::2]))
    prefill = sum(b[2] - a[2] for a, b in pairs[:first_step])
    # The decode steps are the time from the prefill's end to the call's, over the new tokens after the first (which
    # the prefill's logits give): the sampling between steps counts.
    steps = agent.sampling.max_new_tokens - 1
    decode = (end - pairs[first_step - 1][1][2]) / steps if steps and first_step else 0.0
    return {"prefill_s": prefill, "decode_step_s": decode, "prefill_calls": first_step, "decode_steps": steps}


def spread(xs: list[float]) -> dict[str, float]:
    return {"min": min(xs), "median": statistics.median(xs), "max": max(xs)}


def run(args) -> int:
    """`arena bench --floors`: the table (and `--json`)."""
    print(render(measure(args)))
    return 0


def measure(args) -> dict[str, Any]:
    from agents.hf import encode_prompt
    from agents.hf.generator import CPU_PREFILL_TOKENS
    from arena.types import ArenaError
    from bench.players import build_generator
    from bench.vllm import game_prompts

    if args.repeats < 1 or args.bw_mib < 1 or args.matmul_n < 0:
        raise ArenaError("--repeats and --bw-mib must be at least 1, --matmul-n at least 0")
    if args.max_new_tokens < 2:
        raise ArenaError("--floors needs --max-new-tokens of at least 2 (a prefill and a decode step)")
    agent = build_generator(args)
    agent.sampling.ignore_eos = True  # fixed length: the floors count every row to the end
    device, dtype = agent.device, next(agent.model.parameters()).dtype
    prompts = [encode_prompt(agent.tokenizer, t, agent.sampling)
               for t in game_prompts(args.game, args.concurrency, args.seed)]
    seeds = [derive(args.seed, "row", i) % 2**62 for i in range(len(prompts))]
    shape = shape_of(agent.model)
    costs = step_costs(shape, [len(p) for p in prompts], args.max_new_tokens)
    chunked = device.type == "cpu" and agent.prefill_tokens is None and \
        CPU_PREFILL_TOKENS // max(map(len, prompts)) < len(prompts)
    n = args.matmul_n or (1024 if device.type == "cpu" else 8192)
    timed_generate(agent, prompts[:8], seeds[:8], None)  # warm-up: allocator growth, kernel selection
    own_decode = device.type == "cpu" and dtype == torch.float32 and agent.cpu_decode  # else only transformers'
    runs: dict[str, list[float]] = {"bandwidth": [], "flops": [], "prefill": [], "prefill_one_pass": [], "decode": [],
                                    "decode_transformers": []}
    for _ in range(args.repeats):  # interleaved, so a busy spell on the machine hits every figure alike
        runs["bandwidth"].append(copy_bandwidth(args.bw_mib, device))
        runs["flops"].append(matmul_rate(n, dtype, device))
        t = timed_generate(agent, prompts, seeds, None)
        runs["prefill"].append(t["prefill_s"])
        runs["decode"].append(t["decode_step_s"])
        if chunked:
            runs["prefill_one_pass"].append(timed_generate(agent, prompts, seeds, 0)["prefill_s"])
        if own_decode:  # the step before the project's own (agents.hf.decode_step, agents.hf.cpu_attention)
            runs["decode_transformers"].append(timed_generate(agent, prompts, seeds, None, False)["decode_step_s"])
    context = round(sum(map(len, prompts)) / len(prompts) + args.max_new_tokens / 2)  # a row's mean, as step_costs
    attention = attention_read(shape, len(prompts), context, max(map(len, prompts)) + args.max_new_tokens, dtype,
                               device, args.repeats)
    bw, flops = max(runs["bandwidth"]), max(runs["flops"])
    rows = []
    first = f"prefill (chunks of ~{CPU_PREFILL_TOKENS} tokens)" if chunked else "prefill (one pass)"
    for name, key, phase in [(first, "prefill", "prefill"), ("prefill (one pass)", "prefill_one_pass", "prefill"),
                             ("decode step", "decode", "decode"),
                             ("decode step (transformers' forward, sdpa)", "decode_transformers", "decode")]:
        if not runs[key]:
            continue
        c = costs[phase]
        floors = {"memory_s": c["bytes"] / bw, "compute_s": c["flops"] / flops}
        floor = max(floors.values())
        rows.append({"step": name, "seconds": spread(runs[key]), **floors, "bytes": c["bytes"], "flops": c["flops"],
                     "ratio": spread([x / floor for x in runs[key]]),
                     "ratio_memory": spread([x / floors["memory_s"] for x in runs[key]])})
    out = {"device": str(device), "dtype": str(dtype).replace("torch.", ""), "threads": torch.get_num_threads(),
           "batch": len(prompts), "prompt_tokens": sum(map(len, prompts)), "max_prompt": max(map(len, prompts)),
           "new_tokens": args.max_new_tokens, "repeats": args.repeats, "matmul_n": n, "bw_mib": args.bw_mib,
           "copy_bandwidth": spread(runs["bandwidth"]), "matmul_flops": spread(runs["flops"]),
           "shape": shape.__dict__, "rows": rows, "attention": attention}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return out


def render(r: dict[str, Any]) -> str:
    bw, fl = r["copy_bandwidth"], r["matmul_flops"]
    lines = [f"steps against their floors: batch {r['batch']} ({r['prompt_tokens']} prompt tokens, longest "
             f"{r['max_prompt']}), {r['new_tokens']} new tokens, {r['dtype']} on {r['device']}, "
             f"{r['threads']} threads, {r['repeats']} repeats",
             f"copy bandwidth ({r['bw_mib']} MiB copied) {bw['min'] / 1e9:.1f} / {bw['median'] / 1e9:.1f} / "
             f"{bw['max'] / 1e9:.1f} GB/s; matmul ({r['matmul_n']}^3) {fl['min'] / 1e9:.1f} / "
             f"{fl['median'] / 1e9:.1f} / {fl['max'] / 1e9:.1f} GFLOP/s (min / median / max; floors use the max)"]
    head = ["step", "ms min / median / max", "MB moved", "memory floor ms", "GFLOP", "compute floor ms",
            "x floor min / median / max", "x memory floor"]
    table = [head]
    for row in r["rows"]:
        s, x, m = row["seconds"], row["ratio"], row["ratio_memory"]
        table.append([row["step"], f"{s['min'] * 1e3:.2f} / {s['median'] * 1e3:.2f} / {s['max'] * 1e3:.2f}",
                      f"{row['bytes'] / 1e6:.1f}", f"{row['memory_s'] * 1e3:.2f}", f"{row['flops'] / 1e9:.3f}",
                      f"{row['compute_s'] * 1e3:.2f}", f"{x['min']:.2f} / {x['median']:.2f} / {x['max']:.2f}",
                      f"{m['median']:.2f}"])
    w = [max(len(row[i]) for row in table) for i in range(len(head))]
    lines += ["  ".join(c.ljust(w[0]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(row)) for row in table]
    return "\n".join(lines + [attention_line(r["attention"])])


def attention_line(a: dict[str, Any]) -> str:
    def one(name: str) -> str:
        x = a[name]
        return f"{x['seconds']['median'] * 1e3:.3f} ms ({x['gbps']:.1f} GB/s)"

    loop = f"; agents.hf.cpu_attention's loop (what a CPU decode step runs) {one('loop')}" if "loop" in a else ""
    return (f"decode attention alone, per layer ({a['rows']} rows x {a['context']} cached tokens, the layers' caches "
            f"read in turn; median, K and V read at): sdpa {one('sdpa')}{loop}; a plain sum over the same K and V "
            f"{one('sum')}")
