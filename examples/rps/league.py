"""The league on rock-paper-scissors: exploitability per round for each `--opponents` rule over seeds.

    PYTHONPATH=. python -m examples.rps.league --seeds 3 --rounds 20

trains `examples.rps.env:RPSEnv` once per (rule, seed) with `arena train --opponents player_0=RULE`
(the learner's REINFORCE step `--set lr=...`), reads each run's rounds and prints, per round and
rule, the NashConv of the learner's policy and of the league's meta-strategy (the mixture of the
pool that its opponents are drawn from), as the mean over seeds with a 95% t-interval, and the
learner's NashConv as `--exploiters` best responses estimate it (`arena.league.exploiter`), to set
beside the analytic value. The analytic
value: RPS's Nash equilibrium is uniform with value 0, so NashConv 0 is the floor; always-rock
scores 2. Runs go to `--runs-dir` (default a temporary directory) as `rps-<rule>-s<seed>`.
"""
from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

import numpy as np

from arena.league.meta import RULES
from arena.runs.config import TrainConfig
from arena.selfplay import new_run
from arena.ratings import t_interval
from arena.store import read_round_summaries

GAME = "examples.rps.env:RPSEnv"
def run_all(args: argparse.Namespace, runs: Path) -> dict[str, dict[str, np.ndarray]]:
    """{rule: {"learner": (seeds, rounds), "meta": ..., "exploiters": ...}} of NashConv (exploiters:
    the estimate of `--exploiters` best responses to the learner, NaN without them)."""
    out = {}
    for rule in args.rules:
        learner, meta, exploiters = [], [], []
        for seed in range(args.seeds):
            cfg = TrainConfig(game=GAME, rounds=args.rounds, episodes=args.episodes, concurrency=32, seed=seed,
                              run=f"rps-{rule}-s{seed}", opponents={"player_0": rule},
                              league_episodes=args.league_episodes, params={"lr": str(args.lr)},
                              exploiters=args.exploiters, exploiter_steps=args.exploiter_steps)
            if not (runs / cfg.run / "arena.db").exists():
                t = new_run(cfg, runs)
                t.run()
                t.close()
            rows = read_round_summaries(runs / cfg.run)
            learner.append([r["metrics"]["exploitability"] for r in rows])
            meta.append([r["metrics"]["meta_exploitability"] for r in rows])
            exploiters.append([r["metrics"].get("exploiter_nash_conv", math.nan) for r in rows])
        out[rule] = {"learner": np.array(learner), "meta": np.array(meta), "exploiters": np.array(exploiters)}
    return out


def table(results: dict[str, dict[str, np.ndarray]], which: str, every: int) -> str:
    rules = list(results)
    n = results[rules[0]][which].shape[1]
    lines = ["| round | " + " | ".join(rules) + " |", "|---|" + "---|" * len(rules)]
    for k in [*range(0, n, every), *([n - 1] if (n - 1) % every else [])]:
        cells = []
        for rule in rules:
            m, h = t_interval(list(results[rule][which][:, k]))
            cells.append(f"{m:.3f} ± {h:.3f}")
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--episodes", type=int, default=256)
    p.add_argument("--league-episodes", type=int, default=64)
    p.add_argument("--lr", type=float, default=8.0)
    p.add_argument("--rules", nargs="+", default=list(RULES), choices=RULES)
    p.add_argument("--exploiters", type=int, default=3,
                   help="best responses to each round's learner (0: none); their NashConv beside the analytic one")
    p.add_argument("--exploiter-steps", type=int, default=10)
    p.add_argument("--every", type=int, default=2, help="print every N-th round (and the last)")
    p.add_argument("--runs-dir", type=Path)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        results = run_all(args, args.runs_dir or Path(tmp))
    print(f"NashConv of the learner's policy (mean ± 95% t-interval over {args.seeds} seeds; Nash: 0)")
    print(table(results, "learner", args.every))
    print("\nNashConv of the league's meta-strategy (the opponents' mixture; Nash: 0)")
    print(table(results, "meta", args.every))
    if args.exploiters:
        print(f"\nNashConv of the learner's policy estimated by {args.exploiters} exploiters per seed "
              f"({args.exploiter_steps} steps each; 2 x their final gain, a lower bound of the analytic value above)")
        print(table(results, "exploiters", args.every))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
