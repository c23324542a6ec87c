"""Every GPU figure in one command (`arena bench --gpu-suite`, `make gpu-check`): one JSON, one table.

    arena bench --gpu-suite                   # on one GPU: ~10 minutes at most (each part has a time limit)
    arena bench --gpu-suite --dry-run         # the same parts with tiny shapes on the CPU (about a minute)

Parts, each in a process of its own (a part that fails or runs out of time is recorded as such and
the others still run), in this order:

1. `floors`: copy bandwidth, matmul rate, and the prefill and decode step of 64 rows against their
   floors (`bench.floors`), on the Qwen2-0.5B shape in bf16;
2. `generation`: the HF agent against the vLLM agent, tokens/s at batch 1/8/64/256 on the same shape
   (`bench.vllm`), with the fraction of the memory roofline the weight reads reach (the roofline:
   `--hbm-gbps`, else the copy traffic part 1 measured, read + write). vLLM runs from `--vllm-python`
   (default `.venv-vllm/bin/python` when there is one, else this Python); without vllm there the
   HF agent is timed alone and the reason printed;
3. `memory`: one learner step's peak memory and time in fp32, bf16 and LoRA on the same shape
   (`bench.memory`);
4. `checkability`: two rounds of `arena train prover-verifier-v1` with a randomly initialised
   SmolLM2-135M-shaped prover (the char tokenizer) on the device, the shipped tiny verifier, small
   budgets; per round its wall time and where the time went.

Written to `--out` (default `runs/gpu-check/`): `suite.json` (every figure of every part, and the
machine) and `<out>/suite.md` (the tables, markdown); the parts' own JSON files beside them. `--dry-run` runs every
part with tiny shapes and budgets on the CPU, so the suite is exercised by the tests before a GPU
is ever at hand.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from arena.types import ArenaError

GPU = {
    "model": ["--preset", "qwen2-0.5b"],
    "dtype": ["--dtype", "bfloat16"],
    "floors": ["--concurrency", "64", "--max-new-tokens", "64", "--bw-mib", "1024"],
    "generation": ["--batches", "1,8,64,256", "--max-new-tokens", "64", "--gpu-memory-utilization", "0.6"],
    "memory": ["--memory-modes", "fp32,bf16,bf16-autocast,lora", "--learner-batch", "8", "--seq-len", "512",
               "--steps", "3"],
    "prover": "smollm2-135m",
    "train": ["--episodes", "64", "--concurrency", "64", "--set", "prover_steps=4", "--set", "prover_min_steps=4",
              "--set", "verifier_samples=16", "--set", "bon_problems=16", "--set", "bon_samples=8",
              "--set", "pool_size=1000"],
    "limits": {"floors": 90, "generation": 180, "memory": 150, "checkability": 150},
}
"""The parts' settings on a GPU (about 10 minutes in all at most: the sum of the limits, seconds)."""

DRY = {
    "model": ["--preset", "tiny", "--threads", "1"],
    "dtype": ["--dtype", "float32"],
    "floors": ["--concurrency", "4", "--max-new-tokens", "4", "--bw-mib", "8", "--matmul-n", "128",
               "--repeats", "2"],
    "generation": ["--batches", "1,4", "--max-new-tokens", "4", "--repeats", "2"],
    "memory": ["--memory-modes", "fp32,bf16,lora", "--learner-batch", "2", "--seq-len", "16", "--steps", "1"],
    "prover": "tiny",
    "train": ["--episodes", "4", "--concurrency", "4", "--set", "prover_steps=1", "--set", "prover_min_steps=1",
              "--set", "prover_problems=2", "--set", "verifier_samples=4", "--set", "verifier_problems=8",
              "--set", "verifier_batch=4", "--set", "verifier_epochs=1", "--set", "bon_problems=4",
              "--set", "bon_samples=8", "--set", "pool_size=200"],
    "limits": {"floors": 120, "generation": 120, "memory": 120, "checkability": 180},
}
"""The same parts with tiny shapes and budgets on the CPU (`--dry-run`)."""


def vllm_python(args) -> str:
    if args.vllm_python:
        return args.vllm_python
    venv = Path(".venv-vllm/bin/python")
    return str(venv) if venv.exists() and not args.dry_run else sys.executable


def part(name: str, cmd: list[str], limit: int, log: Path) -> dict[str, Any]:
    """Run one part; its exit, time and output tail (the whole output goes to `log`)."""
    print(f"[{name}] {' '.join(cmd)}", flush=True)
    t = time.perf_counter()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=limit, env=env)
        text, code = out.stdout + out.stderr, out.returncode
    except subprocess.TimeoutExpired as e:
        text, code = f"{e.stdout or ''}{e.stderr or ''}", None
        text = text.decode() if isinstance(text, bytes) else text
    seconds = time.perf_counter() - t
    log.write_text(text)
    status = "ok" if code == 0 else (f"ran out of its {limit} s" if code is None else f"exit {code}")
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    print(f"[{name}] {status} in {seconds:.0f} s", flush=True)
    if code != 0 and lines:
        print(f"[{name}] {lines[-1]}", flush=True)
    return {"status": status, "seconds": seconds, "command": cmd, "last_line": lines[-1] if lines else ""}


def save_prover(out: Path, preset: str, seed: int) -> Path:
    """A randomly initialised prover of `preset`'s shape with the char tokenizer, as an agent dir."""
    from agents.hf import GeneratorAgent, SamplingConfig
    from bench.players import new_random_causal_lm

    model, tok = new_random_causal_lm(preset, seed)
    d = out / f"prover-{preset}"
    GeneratorAgent(model, tok, SamplingConfig()).save(d)  # the shipped prover's sampling: the defaults
    return d


def round_summaries(run_dir: Path) -> list[dict[str, Any]]:
    rows = []
    path = run_dir / "events.jsonl"
    for line in path.read_text().splitlines() if path.exists() else []:
        ev = json.loads(line)
        if ev.get("type") == "round_end":
            s = ev["summary"]
            rows.append({"round": s["round"], "wall_s": s["wall_s"], "play_s": s["play_s"],
                         "tokens_per_s": s["tokens_per_s"], "phases": s["phases"],
                         "metrics": {k: s["metrics"].get(k) for k in s.get("headline", [])}})
    return rows


def run(args) -> int:
    if not args.dry_run and not torch.cuda.is_available():
        raise ArenaError("--gpu-suite needs a CUDA GPU visible to this torch; --dry-run runs it on the CPU")
    cfg, device = (DRY, "cpu") if args.dry_run else (GPU, "cuda")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    bench = [sys.executable, "-m", "bench", "--device", device, "--seed", str(args.seed)]
    machine = {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
               "device": torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or "cpu",
               "cpus": os.cpu_count(), "load_average": list(os.getloadavg()), "dry_run": args.dry_run}
    print(f"GPU suite{' (dry run: tiny shapes, CPU)' if args.dry_run else ''} on {machine['device']}; "
          f"writing {out / 'suite.json'} and {(out / 'suite.json').with_suffix('.md')}", flush=True)
    results: dict[str, Any] = {"machine": machine, "parts": {}}
    t0 = time.perf_counter()

    def timed_part(name: str, cmd: list[str]) -> dict[str, Any] | list | None:
        (out / f"{name}.json").unlink(missing_ok=True)  # figures of an earlier suite are never read as this one's
        meta = part(name, cmd, cfg["limits"][name], out / f"{name}.log")
        figures = None
        if (out / f"{name}.json").exists() and meta["status"] == "ok":
            figures = json.loads((out / f"{name}.json").read_text())
        results["parts"][name] = {**meta, "figures": figures}
        return figures

    floors = timed_part("floors", [*bench, "--floors", *cfg["model"], *cfg["dtype"], *cfg["floors"],
                                   "--json", str(out / "floors.json")])
    hbm = args.hbm_gbps or (2 * floors["copy_bandwidth"]["max"] / 1e9 if floors else 0.0)
    results["roofline_gbps"] = {"value": hbm, "source": "--hbm-gbps" if args.hbm_gbps else
                                "measured copy traffic (read + write), part floors"}
    vpy = vllm_python(args)
    roofline = ["--hbm-gbps", f"{hbm:.1f}"] if hbm else []
    timed_part("generation", [vpy, "-m", "bench", "--device", device, "--seed", str(args.seed), "--vllm",
                              "--vllm-optional", *cfg["model"], *cfg["dtype"], *cfg["generation"], *roofline,
                              "--json", str(out / "generation.json")])
    timed_part("memory", [*bench, "--memory", *cfg["model"], *cfg["memory"], "--json", str(out / "memory.json")])
    prover = save_prover(out, cfg["prover"], args.seed)
    runs = out / "runs"
    if (runs / "checkability").is_dir():  # this suite's own run of a previous time: replaced, like suite.json
        shutil.rmtree(runs / "checkability")
    train = part("checkability", [sys.executable, "-m", "arena.cli", "train", "prover-verifier-v1", "--rounds", "2",
                                  "--runs-dir", str(runs), "--run", "checkability", "--device", device, "--plain",
                                  "--no-tensorboard", "--seed", str(args.seed), "--seat", f"prover=hf:{prover}",
                                  *cfg["train"]], cfg["limits"]["checkability"], out / "checkability.log")
    rounds = round_summaries(runs / "checkability")
    results["parts"]["checkability"] = {**train, "figures": {"prover": cfg["prover"], "rounds": rounds}
                                        if rounds else None}
    results["total_s"] = time.perf_counter() - t0
    (out / "suite.json").write_text(json.dumps(results, indent=2, default=str))
    from bench.suite_report import render

    table = render(results)
    (out / "suite.json").with_suffix(".md").write_text(table + "\n")  # the tables, markdown
    print(table)
    return 0 if all(p["status"] == "ok" for p in results["parts"].values()) else 1
