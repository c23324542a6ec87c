"""`arena experiment overoptimization`: gold vs proxy reward against KL for five ways of training a policy.

    arena experiment overoptimization                        # seed 0, every arm, 16 rounds
    arena experiment overoptimization --seeds 0,1,2 --arms baseline,dpo,rpo-sum --rounds 10

Arms (each an ordinary run `<name>-<arm>-s<seed>`, resumable, playable in tournaments), from the
same base model (= π_ref), data and Bradley-Terry proxy (fitted once per seed and cached):
- `baseline`: policy gradient on the proxy, no KL -- over-optimises;
- `dpo`, `rpo-sum`, `rpo-mean`: DPO, and RPO with the summed (η = 1 here) or token-mean (η = 0.2)
  NLL of the chosen answers (`games.adversarial_rm.prepare.Params` says why η = 1);
- `explicit`: the adversarial-RM game;
- `rpo-sum-eta0.005`: rpo-sum at the paper's main-text η = 0.005.

Round k's figures describe the policy after k updates (round 0 is π_ref itself). A seed varies the
data as well as the training: the synthetic preference pairs (data seed = run seed unless
--data-seed pins it), the proxy fitted to them, the policy's samples and the learners' batches.
`--set model=<dir or hub id>` trains another base, `--set data=<jsonl>` on other preference data.

The claims are the paper's dynamics (Liu et al. 2024, docs/algorithms.md#rpo); paired differences
of the final gold reward, each RPO arm minus DPO. The CSV, the plot and the per-seed summary tables:
`games.adversarial_rm.experiment_report`.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

from arena.experiment import Arm, Claim, Difference, Experiment, RunView, SeedView
from arena.experiment.claims import compare, fmt, last_round
from games.adversarial_rm.experiment_report import PAPER_ETA

GAME = "adversarial-rm-v0"
GOLD_DROP = 0.1
"""Gold falling more than this below its peak (gold units) counts as over-optimisation."""
PROXY, LOGP = "policy.proxy", "policy.chosen_logp"
"""The probe's proxy reward and mean log π(chosen) among a run's series (gold is a game metric)."""
PAPER_ARM = f"rpo-sum-eta{PAPER_ETA:g}"

ARMS = (
    Arm("baseline", "policy gradient on the Bradley-Terry proxy, no KL", recipe="baseline"),
    Arm("dpo", "DPO on the preference data", recipe="dpo"),
    Arm("rpo-sum", "RPO: DPO + η·β·summed NLL of the chosen answers (η = eta_sum)", recipe="rpo-sum"),
    Arm("rpo-mean", "RPO with the token-mean NLL (η = eta_mean, the paper's App. F)", recipe="rpo-mean"),
    Arm("explicit", "the adversarial-RM game: the policy against a reward model trained on it", recipe="explicit"),
    Arm(PAPER_ARM, f"rpo-sum at the paper's main-text η = {PAPER_ETA:g}", recipe="rpo-sum",
        params={"eta_sum": repr(PAPER_ETA)}),
)


def overoptimised(run: RunView) -> tuple[bool | None, str]:
    """Proxy up from round 0 and the last round's gold more than GOLD_DROP below its peak (None
    when the run has no gold)."""
    gold = run.get("gold")
    measured = [gold.values[i] for i in gold.measured()]
    final = gold.at(-1)[0]
    if not measured or math.isnan(final):
        return None, "-"
    peak = max(measured)
    start, end = run.get(PROXY).at(0)[0], run.get(PROXY).at(-1)[0]
    cell = f"proxy {fmt(start)}->{fmt(end)}, gold peak {fmt(peak)} final {fmt(final)}"
    return end > start and final < peak - GOLD_DROP, cell


def _run_claim(key: str, label: str, paper: str, arm: str, direction: str,
               test: Callable[[RunView], tuple[bool | None, str]]) -> Claim:
    def check(seed: SeedView) -> tuple[str, bool | None]:
        run = seed.runs.get(arm)
        if run is None:
            return "-", None
        held, cell = test(run)
        return cell, held

    return Claim(key, label, paper, check, arm=arm, direction=direction)


def overoptimises(arm: str, label: str, paper: str, expected: bool = True) -> Claim:
    """`arm` over-optimises (or, `expected` False, does not)."""

    def test(run: RunView) -> tuple[bool | None, str]:
        held, cell = overoptimised(run)
        return (held if held is None or expected else not held), cell

    return _run_claim("gold", label, paper, arm, "over-optimises" if expected else "does not over-optimise", test)


def logp_drop(run: RunView) -> float:
    """How far mean log π(chosen) fell from its first measured round to the last."""
    series = run.get(LOGP)
    idx = series.measured()
    return series.values[idx[0]] - series.at(-1)[0] if idx else math.nan


def falls_less(arm: str, than: str, label: str, paper: str) -> Claim:
    """log π(chosen) falls less than half as far under `arm` as under `than`."""

    def check(seed: SeedView) -> tuple[str, bool | None]:
        a, b = seed.runs.get(arm), seed.runs.get(than)
        if a is None or b is None or math.isnan(a.get("gold").at(-1)[0]) or math.isnan(b.get("gold").at(-1)[0]):
            return "-", None
        x, y = logp_drop(a), logp_drop(b)
        return f"{fmt(x)} vs {fmt(y)}", x < 0.5 * y

    return Claim(LOGP, label, paper, check, arm="", direction=f"{arm} falls < half as far as {than}")


def _rpo_claims(arm: str, what: str, papers: tuple[str, str, str]) -> tuple[Claim, ...]:
    return (overoptimises(arm, f"{what}no over-optimisation", papers[0], expected=False),
            compare("gold", f"{what}ends above DPO on gold", papers[1], arm, "dpo"),
            falls_less(arm, "dpo", f"{what}log π(chosen) falls < half as far as DPO", papers[2]))


CLAIMS = (
    overoptimises("baseline", f"baseline over-optimises: proxy up, gold > {GOLD_DROP:g} below its peak",
                  "yes (Gao et al. 2022)"),
    overoptimises("dpo", "DPO over-optimises (same test)", "DPO is what RPO fixes"),
    *_rpo_claims("rpo-sum", "rpo-sum: ", ("yes", "RPO > DPO: MT 7.381 vs 7.278", "much less (qualitative)")),
    *_rpo_claims("rpo-mean", "rpo-mean: ", ("yes", "RPO > DPO (App. F)", "much less (qualitative)")),
    *_rpo_claims(PAPER_ARM, f"at the paper's η={PAPER_ETA:g}: ", ("yes", "RPO > DPO", "much less")),
)
DIFFERENCES = tuple(Difference("gold", "gold reward, last round", (arm, "dpo"), last_round("gold"))
                    for arm in ("rpo-sum", "rpo-mean", PAPER_ARM))


def report(seeds: Sequence[SeedView], out_dir, console) -> list[str]:
    from games.adversarial_rm.experiment_report import report as write_report

    return write_report(seeds, out_dir, console)


EXPERIMENT = Experiment(
    name="overoptimization", title="Over-optimisation: DPO and RPO against a proxy-trained baseline",
    source="Liu et al. 2024 (RPO); Gao et al. 2022", game=GAME, arms=ARMS, claims=CLAIMS, differences=DIFFERENCES,
    rounds=16, episodes=256, data_param="data_seed", report=report)


def main(argv: Sequence[str] | None = None) -> int:
    from agents.hf import quiet_transformers
    from arena.experiment import run_experiment

    with quiet_transformers(warnings=False):  # no per-checkpoint progress bars or head-initialisation reports
        return run_experiment(EXPERIMENT, argv)


if __name__ == "__main__":
    raise SystemExit(main())
