"""Evaluating a run's provers on held-out problems: accuracy, legibility and sneaky errors per
checkpoint, written to `<run>/legibility.json` (`arena study` shows its `legibility` beside people's).

For the initial prover (the run's `--seat prover` spec) and every round's prover checkpoint, on the
held-out best-of-n problems (prover half, never trained on by either player):

- helpful accuracy of `helpful` samples per problem (at the prover's own temperature);
- legibility: the balanced accuracy of two time-limited judges that never trained with this prover
  on those helpful samples (`games.prover_verifier.legibility`): a step checker with a budget of
  `checker_budget` steps, and a fresh copy of the verifier's base given `judge_steps` BT steps on
  this checkpoint's helpful samples of verifier-half problems -- with 95% bootstrap intervals;
- sneaky errors: the error profile of its incorrect sneaky samples (`games.prover_verifier.errors`)
  and how well a discriminator separates them from the initial prover's.

Runs that already hold a `legibility.json` made with the same settings are left as they are.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from games.prover_verifier import errors, legibility, rules

FILE = "legibility.json"
GAME = "prover-verifier-v1"
INITIAL = "prover/initial"
"""The label of the run's starting prover (its `--seat prover` spec); rounds are `prover/round-<k>`."""


def position(label: str) -> int:
    """Where a label sits on the rounds axis: -1 for the initial prover, k for `prover/round-<k>`."""
    return -1 if label == INITIAL else int(label.rsplit("-", 1)[1])


@dataclass(frozen=True)
class EvalConfig:
    """How a run's provers are evaluated (saved in the file; another config is measured anew)."""

    helpful: int = 4
    """Helpful samples per held-out problem."""
    sneaky: int = 2
    """Sneaky samples per held-out problem."""
    train_problems: int = 32
    """Verifier-half problems whose helpful samples (`helpful` each) the fresh judge trains on."""
    judge_steps: int = 25
    """The fresh judge's budget: Bradley-Terry steps (its "45 seconds")."""
    judge_batch: int = 8
    """Problems per step of the fresh judge."""
    judge_lr: float = 5e-4
    """The fresh judge's learning rate (the recipe's verifier rate)."""
    checker_budget: int = 2
    """Steps the step checker re-checks, from the top."""


def _agent(spec: str, seat: str, run_dir: Path, device: str | None, env_kwargs: dict[str, Any]) -> Any:
    from arena.registry import spec as game_spec
    from arena.specs import AgentContext, build_agent

    agent = build_agent(spec, AgentContext.for_seat(game_spec(GAME), seat, run_dir.parent, device, **env_kwargs))
    if hasattr(agent, "reset"):
        agent.reset(0)
    return agent


def evaluate_run(run_dir: Path, cfg: EvalConfig = EvalConfig(), *, device: str | None = None,
                 say: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Evaluate the initial prover and every round's prover of `run_dir`; write and return the file."""
    from arena.store import read_checkpoints, read_run_config, write_json_atomic
    from games.prover_verifier.recipe import CheckabilityParams, default_verifier_spec, problem_pool, problem_split
    from games.prover_verifier import data as pv_data

    run_dir = Path(run_dir)
    path = run_dir / FILE
    key = dataclasses.asdict(cfg)
    if path.is_file():
        done = json.loads(path.read_text())
        if done.get("config") == key:
            return done
    config = read_run_config(run_dir)
    known = {f.name for f in dataclasses.fields(CheckabilityParams)}
    params = CheckabilityParams(**{k: v for k, v in (config.get("recipe_params") or {}).items() if k in known})
    halves = pv_data.split_halves(problem_pool(params))
    held_out, _ = problem_split(params, halves)
    train = halves["verifier"][:cfg.train_problems]
    env_kwargs = {k: v for k, v in (config.get("env_kwargs") or {}).items() if k not in ("problems", "role")}
    specs = {INITIAL: config.get("seat_specs", {}).get("prover")}
    specs.update({f"prover/round-{k}": f"ckpt:{p}"
                  for k, p in sorted(read_checkpoints(run_dir).get("prover", {}).items())})
    base = _agent(default_verifier_spec(), "verifier", run_dir, device, env_kwargs)
    out: dict[str, Any] = {"config": key, "checkpoints": {}}
    initial_sneaky: list[str] = []
    for label, spec in specs.items():
        say(f"evaluating prover {label}: {len(held_out)} held-out problems")
        prover = _agent(spec, "prover", run_dir, device, env_kwargs)
        row = evaluate_prover(prover, base, held_out, train, cfg, seed=len(out["checkpoints"]))
        incorrect_sneaky = row.pop("_incorrect_sneaky")
        if label == INITIAL:
            initial_sneaky = incorrect_sneaky
        row["sneaky_discriminator_auc"] = errors.discriminator_auc(incorrect_sneaky, initial_sneaky) \
            if label != INITIAL else float("nan")
        out["checkpoints"][label] = row
    write_json_atomic(path, out)
    return out


def evaluate_prover(prover: Any, base: Any, held_out: list[rules.Problem], train: list[rules.Problem],
                    cfg: EvalConfig, *, seed: int) -> dict[str, Any]:
    """One prover's figures (see the module docstring); `_incorrect_sneaky` carries its incorrect
    sneaky texts for the discriminator."""
    from games.prover_verifier.sampling import rollout

    def rows(episodes):
        return [{"question": e.info["prover"]["question"], "solution": e.info["prover"]["solution"],
                 "reference": e.info["prover"]["reference"], "correct": bool(e.info["prover"]["correct"])}
                for e in episodes]

    helpful = rows(rollout(prover, held_out, ["helpful"], cfg.helpful))
    sneaky = rows(rollout(prover, held_out, ["sneaky"], cfg.sneaky))
    judge = legibility.fresh_verifier(base, rows(rollout(prover, train, ["helpful"], cfg.helpful)),
                                      steps=cfg.judge_steps, lr=cfg.judge_lr, batch=cfg.judge_batch, seed=seed)
    correct = [r["correct"] for r in helpful]
    rng = np.random.default_rng(seed)
    checker = legibility.StepChecker(cfg.checker_budget)
    by_checker = [checker.convinced(r["solution"]) for r in helpful]
    by_judge = legibility.judge_with_verifier(judge, helpful)
    wrong = [r["solution"] for r in sneaky if not r["correct"]]
    judged = legibility.balanced_accuracy(by_judge, correct)
    lower, upper = legibility.bootstrap_interval(by_judge, correct, rng)
    out = {"helpful_accuracy": float(np.mean(correct)), "helpful_samples": len(helpful),
           "legibility": judged, "lower": lower, "upper": upper,  # what `arena study` shows beside people
           "legibility_judge": judged, "legibility_judge_ci": [lower, upper],
           "legibility_checker": legibility.balanced_accuracy(by_checker, correct),
           "legibility_checker_ci": list(legibility.bootstrap_interval(by_checker, correct, rng)),
           "sneaky_incorrect": float(np.mean([not r["correct"] for r in sneaky])),
           **{f"sneaky_{k}": v for k, v in errors.mean_profile(wrong).items()},
           "_incorrect_sneaky": wrong}
    return out
