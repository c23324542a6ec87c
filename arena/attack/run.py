"""Running an attack: the missing (round, seed) units, each a step loop, each stored as one file."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from arena.attack.analysis import RoundSummary, summarize
from arena.attack.parallel import Job, play_parallel, worker_count
from arena.attack.plan import AttackConfig, AttackPlan, plan_attack
from arena.attack.unit import attack_unit, unit_path
from arena.store import write_json_atomic
from arena.types import ArenaError


@dataclass
class AttackResult:
    plan: AttackPlan
    units: list[dict[str, Any]]
    summaries: list[RoundSummary]
    attacker: str
    metric: str
    threshold: float

    @property
    def out_dir(self) -> Path:
        return self.plan.out_dir


def check_config(plan: AttackPlan) -> None:
    """Register this attack's config, or refuse one that differs from what is stored under its name."""
    path = plan.out_dir / "config.json"
    key = plan.config.key()
    if path.is_file():
        stored = json.loads(path.read_text())
        old = stored.get("key") if isinstance(stored.get("key"), dict) else {}
        if old == key:
            return
        if larger_budget(old, key):  # units that exploited within the old budget stand; censored ones replay
            for unit in read_units(plan.out_dir):
                if unit.get("steps_to_exploit") is None:
                    unit_path(plan.out_dir, int(unit["round"]), int(unit["seed"])).unlink(missing_ok=True)
            write_json_atomic(path, {**stored, "key": key, "extended_from": old["budget"]})
            return
        raise ArenaError(f"attack {plan.config.name!r} of {plan.run_dir.name} was run with {stored.get('key')}, "
                         f"not {key}: use another --name")
    (plan.out_dir / "units").mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {"key": key, "game": plan.game_id, "created": time.time()})


def larger_budget(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """The same attack with a larger budget (and stop-at-exploit): an attack seed that exploited within
    the old budget did so at the same step under the new one (the same seed, the same steps), so only
    the censored units need playing again."""
    rest = lambda k: {n: v for n, v in k.items() if n != "budget"}  # noqa: E731
    return (rest(old) == rest(new) and not new.get("full") and isinstance(old.get("budget"), int)
            and old["budget"] < new["budget"])


def read_units(out_dir: Path) -> list[dict[str, Any]]:
    units = []
    for p in sorted((out_dir / "units").glob("round-*-seed-*.json")):
        try:
            units.append(json.loads(p.read_text()))
        except ValueError:
            continue  # never happens with atomic writes; a hand-edited file is skipped, then replayed
    return units


def run_attack(cfg: AttackConfig, runs_dir: Path,
               say: Callable[[str, bool], None] = lambda line, final: None,
               targets: dict[int, Path] | None = None, beside: Sequence[Job] = ()) -> AttackResult:
    """Play the attack's missing units (resumable: stored units are kept), then summarise.

    `say(line, final)`: a progress line per step (final False) and one per finished unit (True).
    `targets`: round -> checkpoint directory, instead of the run's stored checkpoints (`plan_attack`).
    `beside`: other work, run in the attack's worker processes after the units start (one process:
    after the units, here, printing as it goes)."""
    plan = plan_attack(cfg, runs_dir, targets)
    check_config(plan)

    def finished(unit: dict[str, Any]) -> None:
        say(f"round {unit['round']} seed {unit['seed']}: " + (
            f"exploited at step {unit['steps_to_exploit']}" if unit["steps_to_exploit"]
            else f"not exploited in {unit['steps_played']} steps") + f", {unit['metric']} at end "
            f"{unit['final_success']:.2f} ({unit['seconds']:.0f}s)", True)

    missing = [(k, s) for k, s in plan.units() if not unit_path(plan.out_dir, k, s).is_file()]
    workers, threads = worker_count(cfg, len(missing) + len(beside))
    if workers > 1:  # later rounds first: their checkpoints trained longest and tend to hold out longest,
        # and the longest units started first end soonest together (a unit's record is the same in any order)
        missing.sort(key=lambda ks: -ks[0])
        play_parallel(cfg, runs_dir, targets, missing, workers, threads, say, finished, beside)
    else:
        for k, s in missing:
            unit = attack_unit(plan, k, s, say)
            write_json_atomic(unit_path(plan.out_dir, k, s), unit)
            finished(unit)
        for job in beside:
            job()
    wanted = set(plan.units())
    units = [u for u in read_units(plan.out_dir) if (u["round"], u["seed"]) in wanted]
    if not units:
        raise ArenaError("no attack units")
    return AttackResult(plan, units, summarize(units, cfg.budget, rng_seed=cfg.seed), units[0]["attacker"],
                        units[0]["metric"], units[0]["threshold"])
