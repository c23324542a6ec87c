"""One attack unit: a fresh attacker trained against one round's frozen checkpoint, step by step, and its file."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from arena.attack.analysis import steps_to_exploit, window_means
from arena.attack.plan import AttackContext, AttackPlan
from arena.types import ArenaError


def unit_path(out_dir: Path, k: int, s: int) -> Path:
    return out_dir / "units" / f"round-{k}-seed-{s}.json"


def attack_unit(plan: AttackPlan, k: int, s: int, say: Callable[[str, bool], None]) -> dict[str, Any]:
    """Train one fresh attacker against round k's frozen checkpoint; the unit record."""
    cfg = plan.config
    seed = cfg.seed * 1000 + s
    ctx = AttackContext(plan.run_dir, plan.run_config, plan.game_id, cfg.seat, plan.targets[k], k, seed,
                        cfg.device, plan.runs_dir, dict(cfg.options), cfg.game)
    attack = plan.build(ctx)
    t0 = time.perf_counter()
    history: list[dict[str, float]] = []
    exploit = None
    for t in range(cfg.budget):
        m = {key: float(v) for key, v in attack.step().items()}
        if "success" not in m:
            raise ArenaError(f"{plan.game_id}'s attack step returned no 'success' metric")
        history.append(m)
        if exploit is None:
            exploit = steps_to_exploit([h["success"] for h in history], attack.threshold, cfg.window)
        say(f"round {k} seed {s}: step {t + 1}/{cfg.budget} {attack.metric} {m['success']:.2f}"
            + (f" (exploited at {exploit})" if exploit else ""), False)
        if exploit is not None and not cfg.full:
            break
    means = window_means([h["success"] for h in history], cfg.window)
    return {"round": k, "seed": s, "attack_seed": seed, "target": str(plan.targets[k]),
            "steps_to_exploit": exploit, "steps_played": len(history), "final_success": means[-1],
            "threshold": attack.threshold, "metric": attack.metric, "attacker": attack.attacker,
            "seconds": time.perf_counter() - t0, "history": history}
