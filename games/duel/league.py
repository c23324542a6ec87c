"""duel-v0's league as Nash learning from human feedback: `--opponents nash` beside `latest`, per seed.

    OMP_NUM_THREADS=1 PYTHONPATH=. python -m games.duel.league --seeds 3 --rounds 12

trains duel-v0 with a gold judge (its default recipe, `games.duel.recipe`) once per (rule, seed)
with `arena train --opponents RULE --exploiters N`, reads each run's rounds and prints, per rule, one
table with a row per round and a column per seed: the meta-strategy the round drew its opponents
from (`used_weights`; members with weight >= 0.05), the learner's NashConv as the exploiters
estimate it (2 x their final gain, with the 95% interval over exploiter seeds) and as the game
knows it (`exploitability`: 2 x P(inexact answer), `games.duel.nash`). Then the win rate of each
run's last checkpoint against `init` (the learner as built), played in both seat orders. Runs go to
`--runs-dir` (default a temporary directory) as `duel-<rule>-s<seed>`, and are reused when there.
"""
from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from arena.checkpoints import checkpoint_dir
from arena.league.meta import RULES
from arena.registry import spec as game_spec
from arena.runner import play
from arena.runs.config import TrainConfig
from arena.selfplay import new_run
from arena.specs import AgentContext, build_agent, load_checkpoint_agent
from arena.ratings import t_interval
from arena.store import read_round_summaries

GAME = "duel-v0"
ENV = {"judge": "gold"}
def config(args: argparse.Namespace, rule: str, seed: int) -> TrainConfig:
    return TrainConfig(game=GAME, env={k: str(v) for k, v in ENV.items()}, rounds=args.rounds, episodes=args.episodes,
                       concurrency=128, seed=seed, run=f"duel-{rule}-s{seed}", opponents={"policy_a": rule},
                       league_episodes=args.league_episodes, exploiters=args.exploiters,
                       exploiter_steps=args.exploiter_steps, exploiter_episodes=args.exploiter_episodes)


def win_rate_against_init(run_dir: Path, runs: Path, episodes: int, seed: int = 12345) -> float:
    """P(the last checkpoint of the learner beats `init`), draws half, over `episodes` games in each seat order."""
    rows = read_round_summaries(run_dir)
    league = rows[-1]["league"]
    learner, init = league["learner"], next(m for m in league["members"] if m["label"] == "init")["spec"]
    gspec = game_spec(GAME)
    scores: list[float] = []
    for me, other in ((learner, league["opponent"]), (league["opponent"], learner)):
        ctx = {s: AgentContext.for_seat(gspec, s, runs, None, **ENV) for s in (me, other)}
        seats = {me: load_checkpoint_agent(checkpoint_dir(run_dir, learner, rows[-1]["round"]), ctx[me]),
                 other: build_agent(init, ctx[other])}
        for agent in seats.values():
            agent.reset(seed)
        eps, _ = play(lambda: gspec.make(**ENV), seats, episodes, concurrency=128, seed=seed)
        scores += [1.0 if ep.rewards[me] > 0 else 0.5 if ep.rewards[me] == 0 else 0.0 for ep in eps]
    return float(np.mean(scores))


def run_all(args: argparse.Namespace, runs: Path) -> dict[str, list[dict[str, Any]]]:
    """{rule: one dict per seed: its round summaries and last-vs-init win rate}."""
    out: dict[str, list[dict[str, Any]]] = {}
    for rule in args.rules:
        for seed in range(args.seeds):
            cfg = config(args, rule, seed)
            if not (runs / cfg.run / "arena.db").exists():
                trainer = new_run(cfg, runs)
                trainer.run()
                trainer.close()
            rows = read_round_summaries(runs / cfg.run)
            out.setdefault(rule, []).append({
                "rows": rows,
                "win_vs_init": win_rate_against_init(runs / cfg.run, runs, args.eval_episodes)})
    return out


def weights_text(league: dict[str, Any], threshold: float = 0.05) -> str:
    members = [m["label"] for m in league["members"]]
    w = sorted(((x, members[i]) for i, x in enumerate(league["used_weights"]) if x >= threshold), reverse=True)
    return " ".join(f"{label} {x:.2f}" for x, label in w)


def nash_conv_text(row: dict[str, Any]) -> str:
    ex = row["league"].get("exploiters")
    est = f"{ex['nash_conv']:.2f} [{ex['low']:.2f}, {ex['high']:.2f}]" if ex else "-"
    return f"{est} / {row['metrics'].get('exploitability', math.nan):.2f}"


def table(runs: list[dict[str, Any]], weights: bool = True) -> str:
    """Rows: rounds; columns: seeds; a cell: the round's weights (unless `weights` is False) ·
    exploiters' NashConv [95%] / the game's."""
    lines = ["| round | " + " | ".join(f"seed {s}" for s in range(len(runs))) + " |", "|---|" + "---|" * len(runs)]
    for k in range(len(runs[0]["rows"])):
        rows = [r["rows"][k] for r in runs]
        cells = [f"{weights_text(x['league'])} · {nash_conv_text(x)}" if weights else nash_conv_text(x) for x in rows]
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--rounds", type=int, default=12)
    p.add_argument("--episodes", type=int, default=512)
    p.add_argument("--league-episodes", type=int, default=32)
    p.add_argument("--exploiters", type=int, default=2)
    p.add_argument("--exploiter-steps", type=int, default=4)
    p.add_argument("--exploiter-episodes", type=int, default=256)
    p.add_argument("--eval-episodes", type=int, default=512, help="last checkpoint vs init: games per seat order")
    p.add_argument("--rules", nargs="+", default=["nash", "latest"], choices=RULES)
    p.add_argument("--runs-dir", type=Path)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        results = run_all(args, args.runs_dir or Path(tmp))
    print("Per round and seed: the meta-strategy the round drew its opponents from (weights >= 0.05) · the "
          "learner's NashConv: exploiters' estimate [95% over exploiter seeds] / the game's 2 x P(inexact)")
    for rule, runs in results.items():
        print(f"\n`--opponents {rule}`" + (" (the weights: 1 on the newest checkpoint, `init` in round 0)"
                                          if rule == "latest" else ""))
        print(table(runs, weights=rule != "latest"))
    print("\nthe last checkpoint against init: P(win) + P(draw)/2, "
          f"{2 * args.eval_episodes} games (mean ± 95% t-interval over seeds; per seed; wall seconds)")
    for rule, runs in results.items():
        m, h = t_interval([r["win_vs_init"] for r in runs])
        per_seed = ", ".join(f"{r['win_vs_init']:.3f}" for r in runs)
        seconds = ", ".join(f"{r['rows'][-1]['elapsed_s']:.0f}s" for r in runs)
        print(f"{rule}: {m:.3f} ± {h:.3f} ({per_seed}; {seconds})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
