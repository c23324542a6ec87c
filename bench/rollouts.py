"""Rollout backends side by side (`arena bench --rollouts`): one round in process, on 1 and on 2 Ray workers.

    arena bench --rollouts                              # tiny random model, prover-verifier-v1, CPU
    arena bench --rollouts --preset smollm2-135m --episodes 32 --concurrency 16

The seats are the benchmark's (`bench.players.build_seats`: the generator under test on Text
seats, `scripted:random` elsewhere). A local Ray cluster is started once (timed: `cluster`).
Then, for each backend (`in-process`: `arena.rollout.LocalRollouts`; `ray xN`:
`arena.rollout.ray.RayRollouts` with N workers): start-up (actors up and the agents shipped
once), and `--repeats` rounds of: a stand-in learner step (every weight of the generator nudged
in place), the push of the changed weights (`Rollouts.updated`), and one round of `--episodes`
episodes (`play`; of it, `gather`: fetching finished chunks back to the driver). Min / median /
max over the repeats. Every backend plays the same seeds, so the transcripts must be equal
(`same`: actions and token ids of every move equal to the in-process run's).

On a 2-core machine the figures are overheads (start-up, push, gather), not speed-ups: the
in-process round already uses both cores (`--threads`), each worker uses one.
"""
from __future__ import annotations

import statistics
import time
from typing import Any

import torch

from arena.seeding import derive
from arena.types import ArenaError


def nudge(models: list[torch.nn.Module], k: int) -> None:
    """A stand-in for a learner step: every weight changes in place (so the push is a full state_dict)."""
    with torch.no_grad():
        for m in models:
            for p in m.parameters():
                p.mul_(1.0 + 1e-6 * (k + 1))


def moves(episodes) -> list[tuple[Any, ...]]:
    return [(e.index, s.seat, str(s.action), tuple(s.extras.get("completion_ids", ())))
            for e in episodes for s in e.transcript]


def backend_round(backend, seats: dict[str, Any], models, args, k: int) -> dict[str, float]:
    """One repeat: nudge, push, play; the times of each and the episodes."""
    nudge(models, k)
    t = time.perf_counter()
    backend.updated(seats, [s for s, a in seats.items() if getattr(a, "model", None) is not None])
    push = time.perf_counter() - t
    pushed_mb = getattr(backend, "timing", {}).get("pushed_mb", 0.0)
    seed = derive(args.seed, "round", k)
    for s, agent in seats.items():
        agent.reset(derive(seed, "agent", s))
    t = time.perf_counter()
    episodes, stats = backend.play(seats, args.episodes, concurrency=args.concurrency, seed=seed, round=k)
    play = time.perf_counter() - t
    timing = getattr(backend, "timing", {})
    return {"push_s": push, "play_s": play, "gather_s": timing.get("gather_s", 0.0),
            "pushed_mb": pushed_mb, "tokens": stats.completion_tokens, "episodes": episodes}


def spread(xs: list[float]) -> str:
    return f"{min(xs):.3f} / {statistics.median(xs):.3f} / {max(xs):.3f}"


def run(args) -> int:
    from arena.registry import make
    from arena.registry import spec as game_spec
    from arena.rollout import EnvFactory, LocalRollouts
    from arena.rollout.ray import RayRollouts, import_ray
    from bench.players import build_seats, models_of

    ray = import_ray()
    if args.repeats < 1:
        raise ArenaError("--repeats must be at least 1")
    seats = build_seats(args, make(args.game))
    models = models_of(seats)
    env_fn = EnvFactory(game_spec(args.game))
    n_params = sum(p.numel() for m in models for p in m.parameters())
    print(f"game {args.game}  seats {', '.join(f'{s}={type(a).__name__}' for s, a in seats.items())}  "
          f"parameters {n_params:,}  episodes {args.episodes}  concurrency {args.concurrency}  "
          f"max_new_tokens {args.max_new_tokens}  in-process threads {torch.get_num_threads()}  "
          f"repeats {args.repeats}")
    if min(args.ray_workers) < 1:
        raise ArenaError("--ray-workers: every count must be at least 1")
    t = time.perf_counter()
    started = not ray.is_initialized()  # a cluster already joined (tests) is used as it is
    if started:
        ray.init(num_cpus=max(args.ray_workers), include_dashboard=False, configure_logging=False)
    cluster_s = time.perf_counter() - t
    start = [{k: v.clone() for k, v in m.state_dict().items()} for m in models]
    rows, reference = [], None
    try:
        for workers in [0, *args.ray_workers]:
            for m, state in zip(models, start):  # every backend starts from the same weights
                m.load_state_dict(state)
            t = time.perf_counter()
            backend = LocalRollouts(env_fn) if workers == 0 else RayRollouts(env_fn, workers)
            try:
                if workers:  # start-up: cluster joined, actors up, the agents shipped once
                    backend.sync(seats)
                    startup = time.perf_counter() - t
                else:  # warm-up (lazy init), not counted
                    backend.play(seats, 1, concurrency=1, seed=0, round=0)
                    startup = 0.0
                rounds = [backend_round(backend, seats, models, args, k) for k in range(args.repeats)]
            finally:
                backend.close()
            same = [moves(r.pop("episodes")) for r in rounds]
            reference = reference or same
            rows.append({"mode": f"ray x{workers}" if workers else "in-process", "workers": workers,
                         "startup_s": startup, "rounds": rounds, "same": same == reference})
    finally:
        if started:
            ray.shutdown()
    print(f"Ray local cluster start (ray.init, {max(args.ray_workers)} CPUs): "
          + (f"{cluster_s:.2f} s" if started else "none (joined the running one)"))
    print(render(rows, args))
    if args.json:
        import json

        args.json.write_text(json.dumps({"cluster_s": cluster_s, "rows": rows, "episodes": args.episodes,
                                         "concurrency": args.concurrency, "parameters": n_params}, indent=2))
    return 0


def render(rows: list[dict[str, Any]], args) -> str:
    head = (f"{'backend':<11} {'start-up s':>10}  {'push s min/med/max':>24} {'MB':>6}  "
            f"{'play s min/med/max':>24}  {'gather s':>8}  {'episodes/s':>10}  {'x in-proc':>9}  same")
    lines = [head, "-" * len(head)]
    base = statistics.median(r["play_s"] for r in rows[0]["rounds"])
    for row in rows:
        rs = row["rounds"]
        play = statistics.median(r["play_s"] for r in rs)
        lines.append(f"{row['mode']:<11} {row['startup_s']:>10.2f}  {spread([r['push_s'] for r in rs]):>24} "
                     f"{statistics.median(r['pushed_mb'] for r in rs):>6.2f}  {spread([r['play_s'] for r in rs]):>24}  "
                     f"{statistics.median(r['gather_s'] for r in rs):>8.3f}  {args.episodes / play:>10.1f}  "
                     f"{base / play:>9.2f}  {'yes' if row['same'] else 'NO'}")
    return "\n".join(lines)
