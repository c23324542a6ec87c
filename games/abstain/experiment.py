"""`arena experiment abstention`: SFT against RL with negative feedback on abstain-v0.

    arena experiment abstention                          # seed 0, every arm, 7 rounds (6 updates)
    arena experiment abstention --seeds 0,1,2 --arms sft,rl,rl-judge

Arms (each an ordinary run `<name>-<arm>-s<seed>`, resumable, playable in tournaments), from the
same base model on the same fact base:
- `sft`, `sft-idk`, `rl`, `rl-judge`: the four recipes (games/abstain/recipe.py), wrong answers at
  -k with k = 1;
- `rl-k0.25`, `rl-k4`: rl at the other penalties of the threshold sweep (k/(1+k) = 0.2 and 0.8).

Round r is the student after r updates (round 0: the base): the last round only measures (the
recipe's `max_updates` is --rounds - 1), so --rounds 7 makes 6 updates. The figures are every
held-out question, 2 sampled answers each (`games.abstain.training`). A seed varies the fact base
as well as training (data seed = run seed unless --data-seed pins it); a data seed other than the
shipped base's (0) pretrains its own base and judge once (6-13 minutes on a 2-core CPU).

The claims are the sources' (docs/algorithms.md#answer-or-abstain), which give directions, not numbers on this
task; paired differences rl - sft (and rl-judge - sft, sft-idk - sft) at the last round. The CSVs,
the plot and each seed's tables: `games.abstain.experiment_report`.
"""
from __future__ import annotations

import argparse
import math
from typing import Sequence

from arena.experiment import Arm, Claim, Difference, Experiment, SeedView
from arena.experiment.claims import compare, fmt, last_round, trend
from arena.types import ArenaError

GAME = "abstain-v0"
H = "student.heldout_"
"""Prefix of the student's held-out figures among a run's series."""
THRESHOLD = "student.threshold_logistic"
NOMINAL = "student.nominal_threshold"

ARMS = (
    Arm("sft", "SFT on a teacher's correct answers to every training question, known and unknown", recipe="sft"),
    Arm("sft-idk", "SFT with 'I don't know' where the teacher guesses the student does not know (20% mislabelled)",
        recipe="sft-idk"),
    Arm("rl", "policy gradient + KL to the base on +1 / 0 / -k from the gold check, k = 1", recipe="rl"),
    Arm("rl-judge", "the same, the reward read off a learned comparison judge", recipe="rl-judge"),
    Arm("rl-k0.25", "rl at k = 0.25 (threshold sweep)", recipe="rl", params={"k": "0.25"}),
    Arm("rl-k4", "rl at k = 4 (threshold sweep)", recipe="rl", params={"k": "4.0"}),
)
RL_ARMS = tuple(a.name for a in ARMS if a.recipe == "rl")


def thresholds_rise(key: str, label: str, paper: str) -> Claim:
    """rl's learned threshold at the last round rises with k across the rl arms that ran (k read from
    each run's k/(1+k)); it holds when strictly increasing over two or more arms."""

    def check(seed: SeedView) -> tuple[str, bool | None]:
        points = sorted((run.get(NOMINAL).at(-1)[0], run.get(key).at(-1)[0])
                        for a in RL_ARMS for run in [seed.runs.get(a)] if run is not None)
        points = [(n, t) for n, t in points if not math.isnan(t) and not math.isnan(n)]
        if len(points) < 2:
            return "-", None
        ts = [t for _, t in points]
        cell = " < ".join(fmt(t) for t in ts) + " (k/(1+k) " + " ".join(fmt(n) for n, _ in points) + ")"
        return cell, all(b > a for a, b in zip(ts, ts[1:]))

    return Claim(key, label, paper, check, arm="rl", direction="rises with k")


CLAIMS = (
    trend(H + "unknown_abstention", "SFT learns to guess: unknown-fact abstention falls below the base's",
          "SFT on facts the model lacks teaches confident answers (Goldberg / Schulman 2023)", "sft", "falls"),
    trend(H + "hallucination", "SFT raises hallucination (wrong / answered) above the base's",
          "rises as unknown examples are fitted (Gekhman et al. 2024)", "sft", "rises"),
    compare(H + "unknown_abstention", "RL abstains on unknown facts more than SFT",
            "RL scoring wrong below abstain teaches 'I don't know' (Goldberg / Schulman 2023)", "rl", "sft"),
    compare(H + "hallucination", "RL hallucinates less than SFT",
            "RL learns to abstain where its knowledge ends (Goldberg / Schulman 2023)", "rl", "sft", relation="lower"),
    compare(H + "known_accuracy", "RL answers the facts it knows better than SFT (known accuracy)",
            "abstains *only* where its knowledge ends (Goldberg / Schulman 2023)", "rl", "sft"),
    compare(H + "payoff", "RL's payoff (+1 right, 0 abstain, -k wrong) beats SFT's",
            "the game's optimum is a calibrated threshold, which SFT never learns", "rl", "sft"),
    thresholds_rise(THRESHOLD, "RL's learned answer threshold rises with the penalty k",
                    "answering pays iff P(correct) > k/(1+k)"),
    compare(H + "unknown_abstention", "a learned judge as the reward: rl-judge abstains on unknown facts more than SFT",
            "a learned comparison model can replace the human reward (Goldberg / Schulman 2023)", "rl-judge", "sft"),
    compare(H + "unknown_abstention", "'I don't know' labels (sft-idk) teach refusal: unknown abstention above SFT's",
            "R-Tuning teaches refusal (Zhang et al. 2024)", "sft-idk", "sft"),
)
DIFFERENCES = (
    Difference(H + "unknown_abstention", "unknown abstention, last round", ("rl", "sft"),
               last_round(H + "unknown_abstention")),
    Difference(H + "hallucination", "hallucination, last round", ("rl", "sft"), last_round(H + "hallucination")),
    Difference(H + "payoff", "payoff, last round", ("rl", "sft"), last_round(H + "payoff")),
    Difference(H + "unknown_abstention", "unknown abstention, last round", ("rl-judge", "sft"),
               last_round(H + "unknown_abstention")),
    Difference(H + "unknown_abstention", "unknown abstention, last round", ("sft-idk", "sft"),
               last_round(H + "unknown_abstention")),
)


def settings(args: argparse.Namespace) -> dict[str, str]:
    """Every round but the last trains: the last measures the last update."""
    if args.rounds < 2:
        raise ArenaError("--rounds must be at least 2 (round 0 measures the base, the last round the last update)")
    return {"max_updates": str(args.rounds - 1)}


def report(seeds: Sequence[SeedView], out_dir, console) -> list[str]:
    from games.abstain.experiment_report import report as write_report

    return write_report(seeds, out_dir, console)


EXPERIMENT = Experiment(
    name="abstention", title="Answer or abstain: SFT against RL with negative feedback",
    source="Goldberg / Schulman 2023; Gekhman et al. 2024; Zhang et al. 2024", game=GAME, arms=ARMS,
    claims=CLAIMS, differences=DIFFERENCES, rounds=7, episodes=32, data_param="data_seed", settings=settings,
    report=report, notes="Round r is the student after r updates (round 0: the base); the last round only "
                         "measures, so --rounds 7 makes 6 updates. The figures: every held-out question, 2 "
                         "sampled answers each (--episodes only feeds the live view).")


def main(argv: Sequence[str] | None = None) -> int:
    from agents.hf import quiet_transformers
    from arena.experiment import run_experiment

    with quiet_transformers(warnings=False):  # no load progress bars or head-initialisation reports
        return run_experiment(EXPERIMENT, argv)


if __name__ == "__main__":
    raise SystemExit(main())
