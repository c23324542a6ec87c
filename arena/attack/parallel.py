"""Attack units side by side: one process per CPU core, each playing whole units with its share of the threads.

An attack's units (round, attack seed) are independent -- each builds its own attacker from the
run's files and its own seed -- so they can run at once. On a CPU, one process per core with one
thread each beats one process with every thread on a tiny model: torch's threads share the work of
each small matmul and wait for each other at every op, while separate processes never wait. A unit
gives the same record wherever it runs (up to the float differences between thread counts, which
can flip a near-tie in sampling).

Workers are started with `spawn` (a fresh interpreter: no inherited torch threads or locks), rebuild
the plan from the run's directory, write each unit's file themselves (so an interrupted attack keeps
every finished unit) and send their progress lines back through a queue. A unit keeps its threads
from its first step to its last, however many units are left: a unit that took an idle worker's
thread once the others had ended computed with other float rounding from then on, which RL turned into
another record (the demo's round-3 seed-1 attack: the same until step 182, then exploited at step
349 instead of 224), so the record depended on timing. `run_attack` starts the later rounds' units
first (they tend to run longest), so fewer cores idle at the end.

Other work can run beside the units (`Job`: `arena experiment checkability`'s cross-play tournament
and provers' evaluation): queued after them in the same workers, so a core that would wait for the
longest unit does it. A job's printed output is kept and passed on whole when it ends.
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import queue as queue_mod
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from arena.attack.plan import AttackConfig


@dataclass(frozen=True)
class Job:
    """Work beside an attack's units: `fn(*args, **kwargs)`, a module-level function (a worker process
    imports it by name) whose arguments pickle. What it prints comes back as text when it ends."""

    name: str
    fn: Callable[..., Any]
    args: tuple = ()
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __call__(self) -> Any:
        return self.fn(*self.args, **self.kwargs)


def worker_count(cfg: AttackConfig, missing: int) -> tuple[int, int]:
    """(processes, torch threads each) for `missing` pieces of work (units and jobs): `cfg.workers`, or (0)
    one per torch CPU thread on a CPU -- `torch.get_num_threads()`, so `--threads 1` keeps one process --
    and one on any other device."""
    import torch

    threads = torch.get_num_threads()
    workers = cfg.workers
    if workers == 0:
        device = cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
        workers = threads if str(device).startswith("cpu") else 1
    workers = max(1, min(workers, missing))
    return workers, max(1, threads // workers)


def _play(cfg: AttackConfig, runs_dir: Path, targets: dict[int, Path] | None, k: int, s: int, threads: int,
          lines: Any) -> dict[str, Any]:
    """A worker's unit on `threads` torch threads: the plan rebuilt from the run, the unit played and written."""
    import torch

    from arena.attack.plan import plan_attack
    from arena.attack.unit import attack_unit, unit_path
    from arena.store import write_json_atomic

    torch.set_num_threads(threads)
    plan = plan_attack(cfg, runs_dir, targets)
    unit = attack_unit(plan, k, s, lambda line, final: lines.put((line, final)))
    write_json_atomic(unit_path(plan.out_dir, k, s), unit)
    return unit


def _job(job: Job, threads: int, columns: int) -> tuple[str, float, str]:
    """A worker's job on `threads` torch threads: (name, seconds, what it printed). Its output is captured
    at the caller's console width (rich reads $COLUMNS where the output is no terminal)."""
    import contextlib
    import io
    import os

    import torch

    torch.set_num_threads(threads)
    os.environ["COLUMNS"] = str(columns)
    out = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(out):
        job()
    return job.name, time.perf_counter() - t0, out.getvalue()


def play_parallel(cfg: AttackConfig, runs_dir: Path, targets: dict[int, Path] | None, units: list[tuple[int, int]],
                  workers: int, threads: int, say: Callable[[str, bool], None],
                  finished: Callable[[dict[str, Any]], None], beside: Sequence[Job] = ()) -> None:
    """Play `units`, then the `beside` jobs, on `workers` processes; `say` gets every progress line and
    each job's output (final), `finished` every unit record (in the order they end). A worker's error is
    raised here: the work not started is cancelled, the running units end and are kept."""
    ctx = multiprocessing.get_context("spawn")
    columns = shutil.get_terminal_size((200, 24)).columns
    with ctx.Manager() as manager:
        lines = manager.Queue()
        pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
        try:
            todo = {pool.submit(_play, cfg, runs_dir, targets, k, s, threads, lines) for k, s in units}
            todo |= {pool.submit(_job, job, threads, columns) for job in beside}
            while todo:
                done, todo = cf.wait(todo, timeout=0.2, return_when=cf.FIRST_COMPLETED)
                _drain(lines, say)
                for f in done:
                    result = f.result()
                    if isinstance(result, dict):
                        finished(result)
                    else:
                        name, seconds, text = result
                        say(f"{text.rstrip()}\n{name}: {seconds:.1f}s, beside the attack".lstrip(), True)
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
