"""Attack units side by side: one process per CPU core, each playing whole units with its share of the threads.

An attack's units (round, attack seed) are independent -- each builds its own attacker from the
run's files and its own seed -- so they can run at once. On a CPU, one process per core with one
thread each beats one process with every thread on a tiny model: torch's threads share the work of
each small matmul and wait for each other at every op, while separate processes never wait. A unit
gives the same record wherever it runs (up to the float differences between thread counts, which
can flip a near-tie in sampling).

Workers are started with `spawn` (a fresh interpreter: no inherited torch threads or locks), rebuild
the plan from the run's directory, write each unit's file themselves (so an interrupted attack keeps
every finished unit) and send their progress lines back through a queue. Units end at different
steps; once fewer units than workers are left, the ones still running take the idle workers'
threads (checked at every step), so the last long attack does not run on one core of two.
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import queue as queue_mod
from pathlib import Path
from typing import Any, Callable

from arena.attack.plan import AttackConfig


def worker_count(cfg: AttackConfig, missing: int) -> tuple[int, int]:
    """(processes, torch threads each) for `missing` units: `cfg.workers`, or (0) one per torch CPU thread on
    a CPU -- `torch.get_num_threads()`, so `--threads 1` keeps one process -- and one on any other device."""
    import torch

    threads = torch.get_num_threads()
    workers = cfg.workers
    if workers == 0:
        device = cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
        workers = threads if str(device).startswith("cpu") else 1
    workers = max(1, min(workers, missing))
    return workers, max(1, threads // workers)


def _play(cfg: AttackConfig, runs_dir: Path, targets: dict[int, Path] | None, k: int, s: int, total: int,
          running: Any, lines: Any) -> dict[str, Any]:
    """A worker's unit: the plan rebuilt from the run, the unit played and written. Its torch threads are
    `total` shared among the `running` units, read at every step."""
    import torch

    from arena.attack.plan import plan_attack
    from arena.attack.unit import attack_unit, unit_path
    from arena.store import write_json_atomic

    def step(line: str, final: bool) -> None:
        threads = max(1, total // max(1, running.value))
        if threads != torch.get_num_threads():
            torch.set_num_threads(threads)
        lines.put((line, final))

    step("", False)  # this unit's threads before its first step
    plan = plan_attack(cfg, runs_dir, targets)
    unit = attack_unit(plan, k, s, step)
    write_json_atomic(unit_path(plan.out_dir, k, s), unit)
    return unit


def play_parallel(cfg: AttackConfig, runs_dir: Path, targets: dict[int, Path] | None, units: list[tuple[int, int]],
                  workers: int, threads: int, say: Callable[[str, bool], None],
                  finished: Callable[[dict[str, Any]], None]) -> None:
    """Play `units` on `workers` processes; `say` gets every progress line, `finished` every unit record
    (in the order they end). A worker's error is raised here: the units not started are cancelled, the
    running ones end and are kept."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        lines, running = manager.Queue(), manager.Value("i", workers)
        pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
        try:
            todo = {pool.submit(_play, cfg, runs_dir, targets, k, s, workers * threads, running, lines)
                    for k, s in units}
            while todo:
                done, todo = cf.wait(todo, timeout=0.2, return_when=cf.FIRST_COMPLETED)
                running.value = min(workers, len(todo))
                _drain(lines, say)
                for f in done:
                    finished(f.result())
            _drain(lines, say)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _drain(lines: Any, say: Callable[[str, bool], None]) -> None:
    while True:
        try:
            line, final = lines.get_nowait()
        except queue_mod.Empty:
            return
        if line:
            say(line, final)
