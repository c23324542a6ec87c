"""Rollout benchmark: the engine's batched runner against a naive one-`generate`-per-move loop.

    arena bench                                  # tiny random model, prover-verifier-v1, CPU
    arena bench --model runs/tiny-pv --eos
    arena bench --preset qwen2-0.5b --device cuda --dtype bfloat16
    arena bench --floors --threads 1             # each step against its memory and compute floors
    arena bench --gpu-suite                      # every GPU figure: one JSON, one table (docs/benchmarks.md)

Both modes play the same game with the same model and sampling settings:

(a) batched: `arena.runner.play` with K concurrent episodes; every Text seat is a
    `GeneratorAgent` (left-padded batched decoding with a KV cache);
(b) naive: one episode at a time, one `model.generate` call per move on a single
    prompt, as TextArena-style agents do (still with transformers' KV cache).

By default generation length is fixed (EOS suppressed in both modes) so both do
exactly the same number of tokens; `--eos` lets completions end early. Box seats
(verifier, reward model) get the generic `scripted:random` bot, so the comparison
is about generation; `--seat verifier=scorer` puts a `ScorerAgent` on a fresh tiny
scorer there instead, and `--seat SEAT=SPEC` any other agent (e.g.
`--seat verifier=scripted:spot-check`). A scorer reads whole texts in one forward
pass, which is compute-bound on a CPU even for one text, so it gains little from
batching there and dilutes the ratio.

Both modes run on the same torch threads (`--threads`; default torch's choice,
one per physical core): the batched runner's large ops use every core, the naive
loop's batch-1 ops are too small to split.

Printed per mode: completion tokens/s, episodes/s, the fraction of wall time
outside the agents' `act` calls (`PlayStats.overhead_fraction`, batched only),
the fraction outside model forward passes (timed by forward hooks on every model,
synchronised on CUDA), and the process's peak RSS (plus the Python heap peak
from a separate `tracemalloc` pass, and CUDA peak memory on a GPU). Then one
`generate` call on K of the run's prompts as K/G distinct prompts x G is timed
against K distinct ones (`--group-size`; the agent prefills a prompt once), and
one learner step of each loss in `agents.learners` on data from the run, and the prefill and
decode step against their floors (`bench.floors`; `--no-floors` skips it).

Modules: `players` (building the seats), `modes` (what is timed), `clock`
(forward-pass timing, CPU time, memory), `report` (the figures and the table), `floors` (steps
against their floors), `suite` (`--gpu-suite`); this one parses the command line and runs them in order.
"""
from __future__ import annotations

import argparse
import json
import sys
import tracemalloc
from pathlib import Path

import torch

from arena.seeding import derive
from arena.types import ArenaError
from bench.clock import cuda_peak_mb, measure, peak_rss_mb
from bench.modes import grouped_generation, grouped_update, learner_steps, run_batched, run_naive
from bench.players import PRESETS, build_seats, models_of
from bench.report import ModeResult, render


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="arena bench", description=__doc__.split("\n\n")[0],
                                epilog="Figures are printed; --json writes them to a file too.")
    p.add_argument("--game", default="prover-verifier-v1", help="game id (default: %(default)s)")
    p.add_argument("--model", default="", help="hf spec of the generator (dir, hub id, .gguf); default: "
                   "a fresh random model of --preset")
    p.add_argument("--preset", choices=sorted(PRESETS), help="random model shape (default: tiny; smollm2-135m "
                   "with --memory)")
    p.add_argument("--episodes", type=int, default=128, help="episodes in the batched run (default: %(default)s)")
    p.add_argument("--concurrency", type=int, default=64, help="concurrent episodes (default: %(default)s)")
    p.add_argument("--naive-episodes", type=int, default=16, help="episodes in the naive run (default: %(default)s)")
    p.add_argument("--max-new-tokens", type=int, default=32, help="tokens per move (default: %(default)s)")
    p.add_argument("--eos", action="store_true", help="let completions end at EOS (default: fixed length)")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--seat", action="append", default=[], metavar="SEAT=SPEC",
                   help="agent for a seat: an agent spec, `generator` (the benchmarked model) or `scorer` "
                   "(a tiny ScorerAgent); default: Text seats = generator, others = scripted:random")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default="float32", help="float32, bfloat16, float16")
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads for both modes (default: 0 = torch's choice, one per physical core; "
                   "on a busy machine use fewer than its free cores, or every op spin-waits)")
    p.add_argument("--group-size", type=int, default=4,
                   help="also time one generate call on K prompts as K/G distinct prompts x G against K distinct "
                   "(0: skip; default: %(default)s)")
    p.add_argument("--no-learners", action="store_true", help="skip timing the learner steps")
    p.add_argument("--learner-batch", type=int, default=8, help="micro-batch for learner steps (default: 8)")
    p.add_argument("--no-tracemalloc", action="store_true", help="skip the Python-heap pass")
    p.add_argument("--no-floors", action="store_true", help="skip the prefill/decode floors table")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="also write the figures to this file")
    m = p.add_argument_group("learner memory (--memory: fp32, bf16 and LoRA learner steps side by side; "
                             "see bench/memory.py)")
    m.add_argument("--memory", action="store_true", help="run the learner memory benchmark instead of the rollout "
                   "one (--preset default there: smollm2-135m)")
    m.add_argument("--memory-modes", default="fp32,bf16-autocast,bf16,lora,lora+ckpt,lora-bf16",
                   help="modes to run, comma-separated (default: %(default)s)")
    m.add_argument("--seq-len", type=int, default=256, help="tokens per sequence (default: %(default)s)")
    m.add_argument("--steps", type=int, default=3,
                   help="timed steps per mode, after one warm-up (default: %(default)s)")
    m.add_argument("--lora-rank", type=int, default=16, help="LoRA rank (default: %(default)s)")
    r = p.add_argument_group("rollout backends (--rollouts: one round in process and on Ray workers side by "
                             "side; see bench/rollouts.py)")
    r.add_argument("--rollouts", action="store_true", help="run the rollout-backend benchmark instead (needs ray)")
    r.add_argument("--ray-workers", type=lambda v: [int(x) for x in v.split(",")], default=[1, 2], metavar="N,N",
                   help="Ray worker counts to compare with in-process (default: 1,2)")
    r.add_argument("--repeats", type=int, default=5,
                   help="repeats of every timed figure (rounds per backend, calls per batch, floor runs; "
                   "default: %(default)s)")
    v = p.add_argument_group("vLLM (--vllm: the HF agent and the vLLM agent on the same model and prompts; "
                             "see bench/vllm.py)")
    v.add_argument("--vllm", action="store_true", help="run the HF-vs-vLLM generation benchmark instead (needs vllm)")
    v.add_argument("--batches", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 64, 256],
                   metavar="N,N", help="batch sizes (default: 1,8,64,256); --repeats timed calls each")
    v.add_argument("--gpu-memory-utilization", type=float, default=0.5, help="the engine's share of the GPU")
    v.add_argument("--vllm-optional", action="store_true", help="without vllm in this Python, time the HF agent "
                   "alone and say why (default: a one-line error)")
    v.add_argument("--hbm-gbps", type=float, default=0.0, help="memory bandwidth in GB/s (e.g. 4800 for an H200): "
                   "print the fraction of that roofline the weight reads reach")
    f = p.add_argument_group("floors (--floors: the prefill and the decode step of --concurrency rows against "
                             "their memory-traffic and compute floors; see bench/floors.py)")
    f.add_argument("--floors", action="store_true", help="run only the floors table")
    f.add_argument("--bw-mib", type=int, default=256, help="buffer copied to measure the copy bandwidth, MiB "
                   "(default: %(default)s; larger than the CPU's last cache)")
    f.add_argument("--matmul-n", type=int, default=0, help="side of the square matmul that measures FLOP/s "
                   "(default 0: 1024 on a CPU, 8192 on a GPU)")
    g = p.add_argument_group("GPU suite (--gpu-suite: every GPU figure in one run, one JSON + one table; "
                             "see bench/suite.py)")
    g.add_argument("--gpu-suite", action="store_true", help="run the suite (needs a GPU unless --dry-run)")
    g.add_argument("--dry-run", action="store_true", help="the suite with tiny shapes on the CPU (a minute)")
    g.add_argument("--vllm-python", default="", help="the Python that runs the suite's vLLM part (default: "
                   ".venv-vllm/bin/python when it exists, else this one)")
    g.add_argument("--out", type=Path, default=Path("runs/gpu-check"), help="the suite's folder for its JSON, table "
                   "and parts (default: %(default)s)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from arena.registry import make

    args = parse_args(argv)
    if args.preset is None:
        args.preset = "smollm2-135m" if args.memory else "tiny"
    for name in ("episodes", "concurrency", "naive_episodes", "max_new_tokens"):
        if getattr(args, name) < 1:
            raise ArenaError(f"--{name.replace('_', '-')} must be at least 1")
    if args.threads < 0:
        raise ArenaError("--threads must be 0 (torch's choice) or more")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.gpu_suite:
        from bench import suite

        return suite.run(args)
    if args.floors:
        from bench import floors

        return floors.run(args)
    if args.memory:
        from bench import memory

        for name in ("seq_len", "steps", "lora_rank", "learner_batch"):
            if getattr(args, name) < 1:
                raise ArenaError(f"--{name.replace('_', '-')} must be at least 1")
        return memory.run(args)
    if args.vllm:
        from bench import vllm

        return vllm.run(args)
    if args.rollouts:
        from bench import rollouts

        return rollouts.run(args)
    device = torch.device(args.device)
    make_env = lambda: make(args.game)  # noqa: E731
    seats = build_seats(args, make_env())
    models = models_of(seats)
    n_params = {type(m).__name__: sum(p.numel() for p in m.parameters()) for m in models}
    print(f"game {args.game}  seats {', '.join(f'{s}={type(a).__name__}' for s, a in seats.items())}  "
          f"models {n_params}  device {device}  threads {torch.get_num_threads()}  "
          f"max_new_tokens {args.max_new_tokens}{' (EOS on)' if args.eos else ' (fixed length)'}")

    # warm-up: first calls pay for lazy init, allocator growth, kernel selection
    run_batched(args, make_env, seats, min(args.concurrency, 8), derive(args.seed, "warmup"))
    run_naive(make_env, seats, 1, derive(args.seed, "warmup"))

    (tokens, _), wall_n, cpu_n, clock_n = measure(
        lambda: run_naive(make_env, seats, args.naive_episodes, args.seed), models, device)
    naive = ModeResult("naive", args.naive_episodes, wall_n, cpu_n, wall_n, tokens, clock_n.seconds, clock_n.calls,
                       peak_rss_mb=peak_rss_mb(), cuda_peak_mb=cuda_peak_mb(device))

    (episodes, stats), wall_b, cpu_b, clock_b = measure(
        lambda: run_batched(args, make_env, seats, args.episodes, args.seed), models, device)
    batched = ModeResult("batched", len(episodes), wall_b, cpu_b, stats.wall_s, stats.completion_tokens,
                         clock_b.seconds, clock_b.calls, act_overhead=stats.overhead_fraction,
                         mean_batch=stats.mean_batch, peak_rss_mb=peak_rss_mb(), cuda_peak_mb=cuda_peak_mb(device))
    if not args.no_tracemalloc:  # a separate pass: tracing slows Python code, so it is not timed
        for result, fn in ((naive, lambda: run_naive(make_env, seats, 2, args.seed)),
                           (batched, lambda: run_batched(args, make_env, seats, args.concurrency, args.seed))):
            tracemalloc.start()
            fn()
            result.python_heap_peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()

    print(render(naive, batched))
    gen_seat = next((s for s, a in seats.items() if hasattr(a, "generate")), None)
    grouped = grouped_generation(seats[gen_seat], episodes[:args.concurrency], gen_seat, args.group_size,
                                 device) if gen_seat and args.group_size > 1 else {}
    if grouped:
        print(f"shared prompts: {grouped['rows']:.0f} rows as {grouped['rows'] / grouped['group']:.0f} distinct "
              f"prompts x {grouped['group']:.0f} in {grouped['grouped_s'] * 1000:.0f} ms, "
              f"{grouped['rows']:.0f} distinct in {grouped['distinct_s'] * 1000:.0f} ms "
              f"({grouped['distinct_s'] / grouped['grouped_s']:.2f}x; each distinct prompt is prefilled once)")
    update = {} if args.no_learners or not gen_seat or args.group_size < 2 else \
        grouped_update(seats[gen_seat], episodes[:args.concurrency], gen_seat, args.group_size, device, args.seed)
    if update:
        print(f"shared prompts, learner: a policy-gradient update (KL, one step) on {update['rows']:.0f} completions "
              f"after {update['rows'] / update['group']:.0f} prompts x {update['group']:.0f} in "
              f"{update['grouped_s'] * 1000:.0f} ms, after {update['rows']:.0f} distinct prompts in "
              f"{update['distinct_s'] * 1000:.0f} ms ({update['distinct_s'] / update['grouped_s']:.2f}x; "
              f"each repeated prompt goes through the model once, and each copied row: "
              f"{update['grouped_distinct_rows']:.0f} of the grouped side's {update['rows']:.0f} rows are distinct)")
    learners = {} if args.no_learners else learner_steps(args, seats, episodes)
    if learners:
        print("learner step (one update, one optimizer step on a micro-batch of "
              f"{args.learner_batch}):")
        for name, s in learners.items():
            print(f"  {name:<20} {s * 1000:9.1f} ms" if isinstance(s, float) else f"  {name}: {s}")
    floor_figures = {}
    if not args.no_floors and args.max_new_tokens >= 2:
        from bench import floors

        floor_figures = floors.measure(argparse.Namespace(**{**vars(args), "json": None}))
        print(floors.render(floor_figures))
    if args.json:
        args.json.write_text(json.dumps({
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "device": str(device), "threads": torch.get_num_threads(), "parameters": n_params, "floors": floor_figures,
            "naive": naive.to_json(), "batched": batched.to_json(), "shared_prompts": grouped,
            "shared_prompts_update": update,
            "speedup_tokens": batched.tokens_per_s / naive.tokens_per_s,
            "speedup_tokens_cpu": batched.tokens_per_cpu_s / naive.tokens_per_cpu_s,
            "speedup_episodes": batched.episodes_per_s / naive.episodes_per_s,
            "learner_step_s": learners}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
