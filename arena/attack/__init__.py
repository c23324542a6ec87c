"""Attacks on frozen checkpoints: how many optimisation steps a fresh attacker needs to exploit each round.

    arena attack runs/pvg-1 --seat verifier                  every round's verifier
    arena attack pvg-1 --seat verifier --rounds 0,3 --seeds 3 --budget 48

The robustness measure of Kirchner et al. 2024 (docs/algorithms.md#checkability), as an
engine feature: for each chosen round's checkpoint of the target seat, frozen,
a fresh attacker (the other seat's *initial* model, in an adversarial role the
game names: sneaky-only for prover-verifier) is trained for up to `budget`
steps. Each step returns the game's success metric on that step's batch; the
attack has *exploited* the target at the first step where the mean success over
the last `window` steps reaches the game's threshold. Reported per round, with
95% bootstrap intervals over attack seeds: steps-to-exploit (a seed that never
exploits counts as the budget, a lower bound, and the table says how many did)
and the success at the end of the attack.

The game says how to attack it through `GameInfo.attack`: `module:attr` of
`build(ctx: AttackContext) -> Attack` (the protocol below). A game without one
is a one-line error.

Store. Files, not tables: `<run>/attacks/<name>/config.json` and one
`units/round-<k>-seed-<s>.json` per (round, attack seed), each written
atomically when its attack ends. A unit is the only thing worth resuming, it is
written once, and nothing queries across units, so a file per unit gives
resume-by-presence without touching the run's database schema (whose tables
belong to `arena.store`). An interrupted attack re-run with the same command
plays exactly the missing units; a different config under the same name is refused.

Modules, one job each:
    plan.py      AttackConfig, AttackContext, Attack (the game's side), plan_attack
    run.py       run_attack: the missing units, their files, the summary
    unit.py      attack_unit: one unit's step loop and its file's path
    parallel.py  units side by side in worker processes (and other work beside them: Job)
    analysis.py  steps_to_exploit, summarize (pure)
    report.py    table, CSV, plot
"""
from arena.attack.analysis import RoundSummary, steps_to_exploit, summarize
from arena.attack.parallel import Job
from arena.attack.plan import Attack, AttackConfig, AttackContext, AttackPlan, plan_attack
from arena.attack.report import attack_table, write_outputs
from arena.attack.run import AttackResult, run_attack

__all__ = ["Attack", "AttackConfig", "AttackContext", "AttackPlan", "AttackResult", "Job", "RoundSummary",
           "attack_table", "plan_attack", "run_attack", "steps_to_exploit", "summarize", "write_outputs"]
