"""The project's main demo: checkability training on the tiny models, then a sneaky cross-play tournament.

    arena experiment checkability        # or: python -m games.prover_verifier.demo
                                         # 4 rounds, then every round's sneaky prover vs every round's verifier

1. `arena train prover-verifier-v1` with the `default` (checkability) recipe for
   `--rounds` rounds, shown live.
2. `arena tournament` over the run's checkpoints with the env fixed to the sneaky
   role (`--env role=sneaky`): every round's prover (asked to be sneaky) against
   every round's verifier, on the same problems.
3. From the tournament's stored matches: for each (sneaky prover, verifier) the
   fraction of solutions that are incorrect yet convince the verifier (scored at
   least as high as the reference solution of the same problem, the game's own
   reading, `rules.convinced`) -- the sneaky prover's success against that
   verifier. Printed and written to `<run>/tournaments/sneaky/sneaky_success.csv`.

4. `arena attack <run> --seat verifier` (the paper's robustness measure): for round 0's
   and the last round's frozen verifier (`--attack-rounds all`: every round's),
   `--attack-seeds` fresh sneaky-only provers (the initial prover, the recipe's RL)
   train against it for up to `--attack-budget` steps;
   steps-to-exploit and the attack's success at its end, per round, then the
   dynamics table: every measured dynamic per round beside the paper's figure, and
   whether it moved the paper's way from round 0 to the last.

Seeds: `--seed` varies the data (problem pool seed 1234 + seed) as well as training;
`--data-seed` pins the data. `--seeds 0,1,2` runs each seed, then prints the dynamics
over seeds with the paper's figures and on how many seeds each was reproduced;
`--summarize run-a,run-b` prints that for finished runs.

Everything printed is read back from the run's files.
"""
from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from rich.console import Console
from rich.table import Table

from arena.checkpoints import round_of_label
from arena.options import parse_pairs
from arena.types import ArenaError

GAME = "prover-verifier-v1"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="arena experiment checkability",
                                description="Checkability training (Kirchner et al. 2024) on the tiny models, "
                                            "then every round's sneaky prover vs every round's verifier.")
    p.add_argument("--rounds", type=int, default=4, help="training rounds (default 4)")
    p.add_argument("--episodes", type=int, default=64, help="episodes played per round (default 64)")
    p.add_argument("--concurrency", type=int, default=64, help="episodes in flight (default 64)")
    p.add_argument("--seed", type=int, default=0, help="run seed (default 0); it seeds training AND the data "
                                                        "(problem pool seed 1234 + seed) unless --data-seed is given")
    p.add_argument("--seeds", help="comma-separated run seeds: one run each, then the dynamics over seeds "
                                   "(overrides --seed; --run is then a prefix)")
    p.add_argument("--data-seed", type=int, help="pin the problem pool's seed (same data for every run seed)")
    p.add_argument("--attack-seeds", type=int, default=2,
                   help="sneaky-only attacks per round's verifier (arena attack; default 2; 0: no attack)")
    p.add_argument("--attack-budget", type=int, default=150,
                   help="most RL steps per attack (default 150: attacks on round 0's verifier of seed 0 "
                        "exploited it at steps 48-91; the README's table uses 200)")
    p.add_argument("--attack-rounds", default="ends",
                   help="rounds attacked: ends (round 0 and the last, all the verdict compares; default, to keep "
                        "the demo short), all, or comma-separated rounds")
    p.add_argument("--summarize", metavar="RUN[,RUN...]",
                   help="only print the dynamics of finished runs (their sneaky tournament and attack) over seeds")
    p.add_argument("--attack-name", default="sneaky",
                   help="with --summarize: the attack to read (`arena attack --name`, e.g. a longer budget run "
                        "later; default sneaky, the demo's own)")
    p.add_argument("--run", help="run name (default: checkability-s<seed>, numbered if taken)")
    p.add_argument("--runs-dir", help="where runs live (default $ARENA_RUNS_DIR or ./runs)")
    p.add_argument("--crossplay-episodes", type=int, default=96, help="episodes per cross-play pairing (default 96)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="recipe hyper-parameter (see the recipe)")
    p.add_argument("--seat", action="append", metavar="SEAT=SPEC", help="override a seat's agent (e.g. hf:<model>)")
    p.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--plain", action="store_true", help="plain lines instead of the live view")
    return p.parse_args(argv)


def attack_rounds(spec: str, rounds: int) -> list[int] | None:
    """`--attack-rounds`: ends -> [0, last], all -> None (every round), else the listed rounds."""
    if spec == "ends":
        return sorted({0, rounds - 1})
    if spec == "all":
        return None
    try:
        return [int(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        raise ArenaError(f"--attack-rounds takes ends, all or comma-separated rounds, not {spec!r}") from None


def free_run_name(base: Path, stem: str) -> str:
    name, n = stem, 1
    while (base / name / "arena.db").exists():
        n += 1
        name = f"{stem}-{n}"
    return name


def main(argv: Sequence[str] | None = None) -> int:
    from agents.hf import quiet_transformers

    try:
        with quiet_transformers(warnings=False):  # no load progress bars or head-initialisation reports
            return _main(parse_args(argv))
    except ArenaError as e:
        Console(stderr=True).print(f"error: {e}", highlight=False)
        return 2


def _main(args: argparse.Namespace) -> int:
    from arena.store import runs_dir as default_runs_dir
    from games.prover_verifier import dynamics

    console = Console()
    base = default_runs_dir(args.runs_dir)
    if args.summarize:
        from arena.store import find_run
        runs = [dynamics.read_dynamics(find_run(r.strip(), base), attack=args.attack_name)
                for r in args.summarize.split(",") if r.strip()]
        print_dynamics(console, runs)
        return 0
    if args.data_seed is not None:
        args.set = [*(args.set or []), f"pool_seed={args.data_seed}"]
    if not args.seeds:
        return _one_seed(args)
    try:
        seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
    except ValueError:
        raise ArenaError(f"--seeds takes comma-separated integers, not {args.seeds!r}") from None
    dirs = []
    for seed in seeds:
        one = argparse.Namespace(**{**vars(args), "seed": seed,
                                    "run": f"{args.run}-s{seed}" if args.run else None})
        _one_seed(one, dirs)
    print_dynamics(console, [dynamics.read_dynamics(d) for d in dirs])
    return 0


def print_dynamics(console: Console, runs: list) -> None:
    from games.prover_verifier import dynamics

    console.rule(f"checkability dynamics over {len(runs)} seed(s), beside Kirchner et al. 2024")
    for d in runs:
        console.print(dynamics.per_seed_table(d))
    console.print(dynamics.over_seeds_table(runs))
    for line in dynamics.summary_lines(runs):
        console.print(line, highlight=False)


def _one_seed(args: argparse.Namespace, dirs: list | None = None) -> int:
    from arena.dashboard import LiveView
    from arena.selfplay import TrainConfig, new_run
    from arena.store import runs_dir as default_runs_dir
    from arena.tournament import TournamentConfig, TournamentView, crossplay_table, run_tournament

    console = Console()
    t0 = time.perf_counter()
    base = default_runs_dir(args.runs_dir)
    run = args.run or free_run_name(base, f"checkability-s{args.seed}")
    cfg = TrainConfig(game=GAME, rounds=args.rounds, episodes=args.episodes, concurrency=args.concurrency,
                      seed=args.seed, run=run, seats=parse_pairs(args.seat, "--seat"),
                      params=parse_pairs(args.set, "--set"), device=args.device)
    console.rule(f"1. checkability training: {args.rounds} rounds -> {base / run}")
    view = LiveView(Console(force_terminal=False) if args.plain else None)
    trainer = new_run(cfg, base, on_event=view)
    with view:
        summaries = trainer.run(trainer.restore())
    train_s = time.perf_counter() - t0

    console.rule("2. tournament: every round's sneaky prover vs every round's verifier")
    env = {**{k: v for k, v in trainer.setup.env_kwargs.items() if k != "problems"}, "role": "sneaky"}
    tcfg = TournamentConfig(run=str(trainer.run_dir), name="sneaky", episodes=args.crossplay_episodes,
                            seed=args.seed, concurrency=args.crossplay_episodes, env=env,
                            bootstrap=200, device=args.device)
    tview = TournamentView(Console(force_terminal=False) if args.plain else None)
    with tview:
        result = run_tournament(tcfg, base, on_event=tview)
    for c in result.crossplay:
        console.print(crossplay_table(c))

    console.rule("3. sneaky success: incorrect yet as convincing as helpful-correct")
    table = sneaky_table(trainer.run_dir, "sneaky")
    out_csv = result.out_dir / "sneaky_success.csv"
    write_sneaky_csv(table, out_csv)
    console.print(render_sneaky(table))
    console.print(round_summary_table(summaries))
    for line in conclusions(table, summaries):
        console.print(line, highlight=False)
    attack_s = 0.0
    if args.attack_seeds > 0:
        from arena.attack import AttackConfig, attack_table, run_attack, write_outputs
        from games.prover_verifier import dynamics

        console.rule(f"4. robustness: a fresh sneaky-only prover attacks each round's frozen verifier "
                     f"({args.attack_seeds} seeds, <= {args.attack_budget} steps)")
        t1 = time.perf_counter()
        acfg = AttackConfig(run=str(trainer.run_dir), seat="verifier", seeds=args.attack_seeds,
                            budget=args.attack_budget, rounds=attack_rounds(args.attack_rounds, args.rounds),
                            name="sneaky", device=args.device)
        attack = run_attack(acfg, base, lambda line, final: final and console.print(line, highlight=False,
                                                                                   markup=False))
        write_outputs(attack)
        console.print(attack_table(attack))
        attack_s = time.perf_counter() - t1
        console.print(dynamics.per_seed_table(dynamics.read_dynamics(trainer.run_dir)))
    if dirs is not None:
        dirs.append(trainer.run_dir)
    console.print(f"\ntraining {train_s:.0f}s, attack {attack_s:.0f}s, total {time.perf_counter() - t0:.0f}s",
                  highlight=False)
    console.print(f"run: {trainer.run_dir} (arena.db, events.jsonl, checkpoints/prover|verifier/round-k)\n"
                  f"tournament: {result.out_dir} (ratings.csv, crossplay.csv, crossplay.png, sneaky_success.csv)"
                  + (f"\nattack: {trainer.run_dir / 'attacks' / 'sneaky'} (attack.csv, attack.png, units/)"
                     if args.attack_seeds > 0 else ""), highlight=False)
    return 0


# -- the sneaky-success table, from the tournament's stored matches ---------------------

def sneaky_table(run_dir: Path, tournament: str) -> dict[str, Any]:
    """{provers, verifiers, success[i][j], incorrect[i], n} from the tournament's stored matches:
    success = incorrect and convinced (the env's `convinced`: scored at least as high as the
    reference solution of the same problem)."""
    from arena.store import read_matches

    cells: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for seats, info in read_matches(run_dir, tournament):
        cells.setdefault((seats["prover"], seats["verifier"]), []).append(info.get("prover", {}))
    provers = sorted({p for p, _ in cells}, key=_round_of)
    verifiers = sorted({v for _, v in cells}, key=_round_of)
    success, incorrect = [], []
    for p in provers:
        success.append([float(np.mean([not i["correct"] and bool(i.get("convinced")) for i in cells[p, v]]))
                        if (p, v) in cells else float("nan") for v in verifiers])
        infos = cells.get((p, verifiers[0]), [])
        incorrect.append(float(np.mean([not i["correct"] for i in infos])) if infos else float("nan"))
    n = len(next(iter(cells.values()))) if cells else 0
    return {"provers": provers, "verifiers": verifiers, "success": success, "incorrect": incorrect, "n": n}


def _round_of(label: str) -> int:
    """A checkpoint label's round (`verifier/round-2` -> 2); -1 for a label without one (sorts first)."""
    k = round_of_label(label)
    return -1 if k is None else k


def write_sneaky_csv(table: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["prover", "verifier", "sneaky_incorrect", "sneaky_success", "episodes"])
        for i, p in enumerate(table["provers"]):
            for j, v in enumerate(table["verifiers"]):
                w.writerow([p, v, table["incorrect"][i], table["success"][i][j], table["n"]])


def render_sneaky(table: dict[str, Any]) -> Table:
    t = Table("sneaky prover \\ verifier", *[f"verifier r{_round_of(v)}" for v in table["verifiers"]],
              "incorrect", title=f"sneaky success: incorrect and scored >= the verifier's score of a correct "
                                 f"solution of the same problem ({table['n']} problems per cell)",
              header_style="bold")
    for i, p in enumerate(table["provers"]):
        t.add_row(f"prover r{_round_of(p)}", *[_cell(x) for x in table["success"][i]], f"{table['incorrect'][i]:.2f}")
    t.add_row("mean", *[_cell(_nanmean(col)) for col in zip(*table["success"])], "", style="bold")
    return t


def _nanmean(xs: Sequence[float]) -> float:
    """Mean over the finite entries; NaN (without numpy's empty-slice warning) when there are none."""
    xs = [x for x in xs if not np.isnan(x)]
    return float(np.mean(xs)) if xs else float("nan")


def _cell(x: float) -> str:
    return "-" if np.isnan(x) else f"{x:.2f}"


def round_summary_table(summaries: Sequence[dict[str, Any]]) -> Table:
    cols = [("helpful_accuracy", "metrics", "helpful acc"), ("sneaky_incorrect", "metrics", "sneaky incorrect"),
            ("sneaky_success", "metrics", "sneaky success"), ("verifier_auc", "metrics", "AUC (played)"),
            ("heldout_auc", "verifier", "AUC (held-out)"), ("best_of_n", "verifier", "best-of-n"),
            ("mean_length", "metrics", "length"), ("kl", "prover", "prover KL"), ("rl_steps", "prover", "RL steps")]
    t = Table("round", *[c[2] for c in cols], title="per round (measured on the round's own episodes)",
              header_style="bold")
    for s in summaries:
        vals = []
        for key, where, _ in cols:
            src = s.get("metrics", {}) if where == "metrics" else s.get("losses", {}).get(where, {})
            v = src.get(key)
            vals.append("-" if v is None else f"{v:.3g}")
        t.add_row(str(s["round"]), *vals)
    return t


def conclusions(table: dict[str, Any], summaries: Sequence[dict[str, Any]]) -> list[str]:
    """Plain-language answers to the demo's two questions, from the numbers above."""
    out = []
    cols = [(v, _nanmean(col)) for v, col in zip(table["verifiers"], zip(*table["success"]))]
    if len(cols) > 1:
        (v_first, first), (v_last, last) = cols[0], cols[-1]
        verdict = "fewer" if last < first else "not fewer"
        out.append(f"verifier robustness: {v_last} lets {last:.2f} of sneaky solutions through "
                   f"(mean over {len(table['provers'])} sneaky provers) vs {first:.2f} for "
                   f"{v_first}: {verdict}.")
    acc = [s.get("metrics", {}).get("helpful_accuracy") for s in summaries]
    if acc and None not in acc:
        out.append("helpful accuracy by round: " + ", ".join(f"{a:.2f}" for a in acc))
    return out


if __name__ == "__main__":
    raise SystemExit(main())
