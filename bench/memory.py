"""Learner memory benchmark (`arena bench --memory`): one learner step's peak memory and time for full
fp32, bf16 and LoRA, side by side.

    arena bench --memory                                   # SmolLM2-135M's shape, random weights, CPU
    arena bench --memory --preset tiny --seq-len 32 --steps 1   # the tiny model: seconds
    arena bench --memory --device cuda --preset qwen2-0.5b

Each mode runs in its own process (peak memory is a per-process high-water mark), on the same
random model (`--preset`, default `smollm2-135m`) and the same batch (`--learner-batch` sequences of
`--seq-len` tokens), through the project's own learner (`SFTLearner`: `fit`, accelerate, a fresh AdamW
per step, so the optimizer's state is part of the peak). Per mode: parameters trained, peak memory
of the step over the loaded model (CUDA: `max_memory_allocated`; CPU: peak RSS less the RSS once the
model is loaded), and step time min / median / max over `--steps` steps after one warm-up step.

Modes: `fp32` (full fine-tuning), `bf16-autocast` (full, fp32 weights, bf16 autocast through
accelerate), `bf16` (full, bf16 weights and optimizer state), `lora` (rank `--lora-rank`, fp32 base),
`lora+ckpt` (the same with gradient checkpointing), `lora-bf16` (bf16 base, the adapter in bf16 autocast).
"""
from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

import torch

MODES = ("fp32", "bf16-autocast", "bf16", "lora", "lora+ckpt", "lora-bf16")


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def one_mode(mode: str, preset: str, device: str, batch: int, seq_len: int, steps: int, rank: int,
             seed: int) -> dict[str, Any]:
    """Build the model for `mode`, take 1 + `steps` learner steps; the figures of this process."""
    from agents.hf import GeneratorAgent, LoadConfig, SamplingConfig
    from agents.hf.lora import wrap_lora
    from agents.learners import Optimization, SFTLearner
    from bench.players import new_random_causal_lm

    dev = torch.device(device)
    model, tok = new_random_causal_lm(preset, seed)
    weights_bf16 = mode in ("bf16", "lora-bf16")
    model.to(device=dev, dtype=torch.bfloat16 if weights_bf16 else torch.float32)
    load = LoadConfig(lora=rank if mode.startswith("lora") else 0, seed=seed,
                      gradient_checkpointing=mode == "lora+ckpt",
                      mixed_precision="bf16" if mode in ("bf16-autocast", "lora-bf16") else "no")
    if load.gradient_checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    if load.lora:
        model = wrap_lora(model, load, "generator")
        if load.gradient_checkpointing:
            model.enable_input_require_grads()
        if weights_bf16:  # the adapter trains in fp32 under autocast; the base stays bf16
            for p in model.parameters():
                if p.requires_grad:
                    p.data = p.data.float()
    model.arena_mixed_precision = load.mixed_precision
    agent = GeneratorAgent(model, tok, SamplingConfig(chat_template=False))
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    # the batch: `batch` sequences of `seq_len` tokens (half prompt, half completion) of random chars
    g = torch.Generator().manual_seed(seed)
    chars = [c for c in tok.convert_ids_to_tokens(list(range(len(tok)))) if len(c) == 1 and c.isalnum()]
    text = lambda n: "".join(chars[i] for i in torch.randint(len(chars), (n,), generator=g).tolist())  # noqa: E731
    pairs = [(text(seq_len // 2 - 1), text(seq_len // 2)) for _ in range(batch)]
    learner = SFTLearner(data=pairs, opt=Optimization(lr=1e-5, batch_size=batch))
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base_mb = torch.cuda.memory_allocated() / 2**20
    else:
        base_mb = current_rss_mb()
    times = []
    for i in range(steps + 1):
        learner.reset(seed + i)
        t0 = time.perf_counter()
        learner.update(agent, [])
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - t0)
    peak = (torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else peak_rss_mb()) - base_mb
    return {"mode": mode, "parameters": total, "trained": trained, "model_mb": base_mb,
            "step_peak_mb": peak, "step_s": times, "threads": torch.get_num_threads(), "device": str(dev),
            "preset": preset, "batch": batch, "seq_len": seq_len}


def run(args) -> int:
    """`arena bench --memory`: every mode in its own process, then the table."""
    modes = [m.strip() for m in args.memory_modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if bad:
        from arena.types import ArenaError
        raise ArenaError(f"unknown memory mode(s) {', '.join(bad)}; known: {', '.join(MODES)}")
    preset = args.preset
    threads = args.threads or torch.get_num_threads()
    results = []
    for mode in modes:
        cmd = [sys.executable, "-m", "bench.memory", json.dumps({
            "mode": mode, "preset": preset, "device": args.device, "batch": args.learner_batch,
            "seq_len": args.seq_len, "steps": args.steps, "rank": args.lora_rank, "seed": args.seed,
            "threads": threads})]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode:
            results.append({"mode": mode, "error": (out.stderr.strip().splitlines() or ["failed"])[-1]})
        else:
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(render_row(results[-1]), flush=True)
    print(render(results, preset, args.device, threads))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def render_row(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"  {r['mode']:<14} error: {r['error']}"
    t = r["step_s"]
    return (f"  {r['mode']:<14} trained {r['trained'] / 1e6:8.2f}M  step peak {r['step_peak_mb']:8.0f} MiB  "
            f"step {min(t):.2f} / {statistics.median(t):.2f} / {max(t):.2f} s")


def render(results: list[dict[str, Any]], preset: str, device: str, threads: int) -> str:
    ok = [r for r in results if "error" not in r]
    if not ok:
        return "no mode ran"
    r0 = ok[0]
    lines = [f"learner step (SFT, one AdamW step), {preset} shape ({r0['parameters'] / 1e6:.1f}M parameters, "
             f"random weights), {r0['batch']} x {r0['seq_len']} tokens, device {device}, {threads} threads",
             "| mode | trained parameters | step peak over the loaded model | step time min / median / max |",
             "|---|---|---|---|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['mode']} | error: {r['error']} | | |")
            continue
        t = r["step_s"]
        lines.append(f"| {r['mode']} | {r['trained'] / 1e6:.2f}M | {r['step_peak_mb']:.0f} MiB "
                     f"(loaded: {r['model_mb']:.0f} MiB) | "
                     f"{min(t):.2f} / {statistics.median(t):.2f} / {max(t):.2f} s |")
    return "\n".join(lines)


if __name__ == "__main__":  # one mode, in a process of its own: `python -m bench.memory '<json>'`
    kw = json.loads(sys.argv[1])
    torch.set_num_threads(int(kw.pop("threads")))
    print(json.dumps(one_mode(**kw)))
