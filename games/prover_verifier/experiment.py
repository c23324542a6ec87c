"""`arena experiment checkability`: checkability training (Kirchner et al. 2024) beside its controls.

    arena experiment checkability                               # seed 0, the game arm: make demo
    arena experiment checkability --seeds 0,1,2,3,4,5,6,7 --arms game,initial,rules,correctness

Arms (each an ordinary run `<name>-<arm>-s<seed>`, resumable, playable in tournaments):
- `game`: the checkability game (verifier first, then the prover's RL against it);
- `initial`: a control without the game -- the prover never trains, so every round's verifier
  learns from the frozen initial prover's solutions; the same verifier compute every round;
- `rules`: a control without any prover -- the verifier learns from rule-made corruptions;
- `correctness`: the paper's correctness-only baseline (reward = correct, helpful role only).

After a run trains (`measure`), for the arms that train a verifier: `arena attack` (fresh
sneaky-only provers against round 0's and the last round's frozen verifier; `--attack-*`; the
`initial` arm's round-0 verifier is the game arm's -- same seed, same data, trained before any
prover update; a test checks they are equal -- so by default only its last round is attacked); for
the game arm also the sneaky cross-play tournament (every round's prover, asked to be sneaky,
against every round's verifier); for the game and correctness arms the provers' evaluation on
held-out problems (`games.prover_verifier.evaluation`: accuracy, legibility to two time-limited
judges, sneaky errors). Everything is read back from the runs' files (`read`).

The claims are what the paper reports (docs/algorithms.md#checkability), each beside its figure; the
paired differences game - initial and game - rules on the last round's verifier are what the
paper's design cannot show: whether the game itself makes the verifier robust.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Sequence

from arena.experiment import Arm, Claim, Difference, Experiment, MeasureContext, SeedView, Series
from arena.experiment.claims import compare, fmt, last_round, moved, trend
from games.prover_verifier.recipe import DATA_SEED_BASE

GAME = "prover-verifier-v1"
NAN = float("nan")
HOLD = 0.10
"""Helpful accuracy *holds* when the last round is at most this far below the first (no collapse)."""

ARMS = (
    Arm("game", "checkability training: each round's verifier learns from every round's provers"),
    Arm("initial", "control: the prover never trains; each round's verifier learns from the frozen initial "
                   "prover (same verifier compute)", params={"prover_steps": "0", "prover_min_steps": "0"}),
    Arm("rules", "control: no prover; each round's verifier learns from rule-made corruptions (same compute)",
        params={"prover_steps": "0", "prover_min_steps": "0", "verifier_data": "rules"}),
    Arm("correctness", "the paper's correctness-only baseline: reward = correct, helpful role only, same RL",
        recipe="correctness"),
)
VERIFIER_ARMS = ("game", "initial", "rules")
EVALUATED_ARMS = ("game", "correctness")


def _from_initial(key: str, label: str, paper: str, arm: str, direction: str) -> Claim:
    """A prover's figure from the initial prover (x = -1) to the last round's."""

    def check(seed: SeedView) -> tuple[str, bool | None]:
        run = seed.runs.get(arm)
        series = run.get(key) if run is not None else Series(())
        idx = series.measured()
        if len(idx) < 2:
            return "-", None
        first, last = series.at(idx[0]), series.at(idx[-1])
        return f"{fmt(*first)} -> {fmt(*last)}", moved(first, last, direction, HOLD)

    return Claim(key, label, paper, check, arm=arm, direction=direction)


CLAIMS = (
    trend("steps", "steps to exploit the verifier (robustness)", "rises; 1e-2 verifiers: no exploit after round 0",
          "game", "rises", digits=1),
    trend("attack_success", "sneaky-only attack's success at its end", "falls", "game", "falls"),
    trend("sneaky_cotrained", "sneaky success vs the co-trained verifier", "falls", "game", "falls"),
    trend("verifier.best_of_n", "balanced best-of-n (chance .5)", "~0.23 -> ~0.52 (n~600)", "game", "rises"),
    trend("helpful_accuracy", "helpful accuracy (falls < .10)", "does not fall", "game", "holds", tolerance=HOLD),
    _from_initial("legibility_judge", "legibility to a time-limited judge", "judges .76 -> .83 (humans, 45 s)",
                  "game", "rises"),
    _from_initial("accuracy", "helpful accuracy, correctness-only RL", "rises (Fig. 4)", "correctness", "rises"),
    _from_initial("legibility_judge", "legibility, correctness-only RL", "judges .82 -> .73 (legibility tax)",
                  "correctness", "falls"),
    compare("legibility_judge", "last round: game more legible than correctness-only", "yes (the tax)", "game",
            "correctness"),
    compare("accuracy", "last round: correctness-only more accurate than the game", "yes (the tax)",
            "correctness", "game"),
    _from_initial("sneaky_wrong_steps", "wrong steps per incorrect sneaky solution", "fall (more localised)",
                  "game", "falls"),
    compare("steps", "last round's verifier: game more robust than initial", "not measured (no such control)",
            "game", "initial", digits=1),
    compare("steps", "last round's verifier: game more robust than rules", "not measured (no such control)",
            "game", "rules", digits=1),
)
DIFFERENCES = (
    Difference("steps", "steps to exploit the last round's verifier", ("game", "initial"), last_round("steps"), 1),
    Difference("steps", "steps to exploit the last round's verifier", ("game", "rules"), last_round("steps"), 1),
    Difference("attack_success", "attack success on the last round's verifier", ("game", "initial"),
               last_round("attack_success")),
    *(Difference(key, f"last round's {label} (held-out problems)", ("game", "correctness"), last_round(key))
      for key, label in (("accuracy", "helpful accuracy"), ("legibility_judge", "legibility to the judge"),
                         ("legibility_checker", "legibility to the step checker"),
                         ("sneaky_wrong_steps", "wrong steps per incorrect sneaky solution"))),
)


def add_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--attack-seeds", type=int, default=2,
                   help="sneaky-only attacks per attacked verifier (arena attack; default %(default)s; 0: none)")
    p.add_argument("--attack-budget", type=int, default=400,
                   help="most RL steps per attack (default %(default)s: most attacks on the last round's verifier "
                        "then end in an exploit; a larger budget on stored attacks replays only the censored ones)")
    p.add_argument("--attack-rounds", default="ends",
                   help="verifiers attacked: ends (round 0 and the last; default), all, or comma-separated rounds")
    p.add_argument("--crossplay-episodes", type=int, default=96,
                   help="episodes per pairing of the game arm's sneaky cross-play tournament (default %(default)s; "
                        "0: none)")
    p.add_argument("--no-evaluate", action="store_true",
                   help="skip the provers' evaluation (accuracy, legibility, sneaky errors) on held-out problems")


def attack_rounds(spec: str, rounds: int) -> list[int] | None:
    """`--attack-rounds`: ends -> [0, last], all -> None (every round), else the listed rounds."""
    from arena.types import ArenaError

    if spec == "ends":
        return sorted({0, rounds - 1})
    if spec == "all":
        return None
    try:
        return [int(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        raise ArenaError(f"--attack-rounds takes ends, all or comma-separated rounds, not {spec!r}") from None


def measure(ctx: MeasureContext) -> None:
    """Attack, cross-play and evaluation of one trained run (each reuses what is already done). With an
    attack to play, the other two run beside its units, in its worker processes (`arena.attack.Job`):
    the phase is then the wall time of all three."""
    from arena.attack import Job

    args, arm = ctx.args, ctx.arm.name
    jobs = []
    if arm == "game" and args.crossplay_episodes > 0:
        from games.prover_verifier.crossplay import sneaky_tournament

        jobs.append(Job("sneaky cross-play tournament", sneaky_tournament,
                        (ctx.run_dir, ctx.runs_dir, args.crossplay_episodes, ctx.seed, args.device, args.plain)))
    if arm in EVALUATED_ARMS and not args.no_evaluate:
        from games.prover_verifier.evaluation import evaluate_run

        jobs.append(Job("provers' evaluation (legibility, sneaky errors)", evaluate_run, (ctx.run_dir,),
                        {"device": args.device, "say": print}))
    if not (arm in VERIFIER_ARMS and args.attack_seeds > 0):
        for job in jobs:
            with ctx.timed(job.name):
                job()
        return
    from arena.attack import AttackConfig, run_attack, write_outputs

    rounds = attack_rounds(args.attack_rounds, args.rounds)
    if arm == "initial" and args.attack_rounds == "ends":  # its round-0 verifier is the game arm's
        rounds = [args.rounds - 1]
    ctx.say(f"attacking {ctx.run_dir.name}'s verifiers: {args.attack_seeds} seeds, <= {args.attack_budget} steps"
            + "".join(f"; beside it: {job.name}" for job in jobs))
    acfg = AttackConfig(run=str(ctx.run_dir), seat="verifier", seeds=args.attack_seeds, budget=args.attack_budget,
                        rounds=rounds, name="sneaky", device=args.device)
    with ctx.timed("attack" + "".join(f", {job.name.split(' (')[0]}" for job in jobs)):
        write_outputs(run_attack(acfg, ctx.runs_dir, lambda line, final: final and ctx.say(line), beside=jobs))


def read(run_dir: Path) -> dict[str, Series]:
    """The series a run's own files hold beside its round summaries: attacks, cross-play, evaluation."""
    from games.prover_verifier.crossplay import cotrained_success
    from games.prover_verifier.evaluation import FILE, position

    out: dict[str, Series] = {}
    out.update(_attack_series(run_dir))
    cotrained = cotrained_success(run_dir)
    if cotrained:
        out["sneaky_cotrained"] = Series(tuple(cotrained))
    path = run_dir / FILE
    if path.is_file():
        rows = json.loads(path.read_text()).get("checkpoints", {})
        labels = sorted(rows, key=position)
        x = tuple(position(k) for k in labels)
        for key, field in (("accuracy", "helpful_accuracy"), ("legibility_judge", "legibility_judge"),
                           ("legibility_checker", "legibility_checker"), ("sneaky_wrong_steps", "sneaky_wrong_steps"),
                           ("sneaky_first_wrong", "sneaky_first_wrong"), ("sneaky_error_size", "sneaky_error_size"),
                           ("sneaky_discriminator_auc", "sneaky_discriminator_auc")):
            out[key] = Series(tuple(_num(rows[k].get(field)) for k in labels), x=x)
    return out


def _num(x) -> float:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else NAN


def _attack_series(run_dir: Path) -> dict[str, Series]:
    from arena.attack.analysis import summarize
    from arena.attack.run import read_units
    from arena.store import read_round_summaries

    attack_dir = run_dir / "attacks" / "sneaky"
    if not (attack_dir / "config.json").is_file():
        return {}
    n = len(read_round_summaries(run_dir))
    budget = json.loads((attack_dir / "config.json").read_text())["key"]["budget"]
    steps, success, censored, share = [NAN] * n, [NAN] * n, [False] * n, [NAN] * n
    for r in summarize(read_units(attack_dir), budget):
        if 0 <= r.round < n:
            steps[r.round], success[r.round], censored[r.round] = r.steps, r.success, bool(r.censored)
            share[r.round] = 1.0 - r.exploited / r.seeds if r.seeds else NAN
    return {"steps": Series(tuple(steps), tuple(censored)), "attack_success": Series(tuple(success)),
            "steps_censored_share": Series(tuple(share))}


def report(seeds: Sequence[SeedView], out_dir: Path, console) -> list[str]:
    from games.prover_verifier.experiment_report import print_report

    return print_report(seeds, out_dir, console)


EXPERIMENT = Experiment(
    name="checkability", title="Checkability training: helpful/sneaky prover vs verifier",
    source="Kirchner et al. 2024", game=GAME, arms=ARMS, claims=CLAIMS, differences=DIFFERENCES,
    rounds=4, episodes=64, data_param="pool_seed", data_offset=DATA_SEED_BASE, default_arms=("game",),
    read=read, measure=measure, add_flags=add_flags, report=report)


def main(argv: Sequence[str] | None = None) -> int:
    from agents.hf import quiet_transformers
    from arena.experiment import run_experiment

    with quiet_transformers(warnings=False):  # no load progress bars or head-initialisation reports
        return run_experiment(EXPERIMENT, argv)


if __name__ == "__main__":
    raise SystemExit(main())
