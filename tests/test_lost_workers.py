"""A lost worker costs its chunk, not the run; a lost process ends the run in one line, never a hang
(docs/fault-tolerance.md).

- Ray, on a real local cluster (2 CPUs, 2 actors): a rollout actor killed with SIGKILL mid-round is
  replaced and its chunks are played again, so the run finishes and stores the episodes an
  in-process run stores; workers that keep dying (a chunk whose every worker dies) stop the run
  with one line.
- torchrun (2 gloo processes): a process killed mid-round ends the other with one line of its own,
  and `arena resume` finishes the run.

The game is written in this file (`Fragile`: rock-paper-scissors in words from test_outside_games,
which SIGKILLs the process that resets it with one seed); Ray's workers and torchrun's processes
import it from this directory, as a user's workers import the user's package.
"""
from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
import torch

from arena.seeding import derive
from test_outside_games import TextRPS

try:
    import ray  # the `test` extra installs it; the cluster tests are skipped only where Ray is absent
except ImportError:
    ray = None

needs_ray = pytest.mark.skipif(ray is None, reason="ray is not installed (pip install 'alignment-arena[ray]')")
needs_gloo = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                reason="torch.distributed with gloo is not available")
GAME = f"{__name__}:Fragile"
HERE = Path(__file__).resolve().parent


class Fragile(TextRPS):
    """TextRPS whose reset with `fatal_seed` kills the process it runs in (a worker: never the driver's)."""

    def __init__(self, stake: int = 1, fatal_seed: int = -1):
        super().__init__(stake)
        self.fatal_seed = fatal_seed

    def reset(self, seed=None, options=None):
        if seed == self.fatal_seed and os.getpid() != int(os.environ.get("ARENA_TEST_DRIVER", "0")):
            os.kill(os.getpid(), signal.SIGKILL)
        super().reset(seed, options)


@pytest.fixture(scope="module")
def cluster():
    """A 2-CPU cluster whose workers import this directory's modules (PYTHONPATH, inherited)."""
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "ARENA_TEST_DRIVER")}
    os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE), str(HERE.parent), *filter(None, [saved["PYTHONPATH"]])])
    os.environ["ARENA_TEST_DRIVER"] = str(os.getpid())
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    yield
    ray.shutdown()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def seats_cfg(**kw):
    from arena.runs.config import TrainConfig

    return TrainConfig(game=GAME, rounds=2, episodes=48, concurrency=4, seed=7, recipe="default",
                       seats={"player_0": "scripted:random", "player_1": "scripted:constant?value=paper"}, **kw)


def stored_episodes(trainer) -> list[dict]:
    return [ep.to_json() for ep in trainer.store.episodes()]


@needs_ray
@pytest.mark.slow  # a cluster start and two short runs (~30 s on a shared 2-core CPU)
def test_an_actor_killed_mid_round_is_replaced_and_the_run_stores_the_undisturbed_episodes(cluster, tmp_path):
    from arena.registry import spec
    from arena.rollout import EnvFactory
    from arena.rollout.ray import RayRollouts
    from arena.selfplay import new_run

    local = new_run(seats_cfg(run="local"), tmp_path)
    try:
        local.run(local.restore())
        undisturbed = stored_episodes(local)
    finally:
        local.close()

    killed: list[int] = []
    events: list[dict] = []

    def on_event(event):
        events.append(event)
        # the first chunk of round 0 is back, eleven are queued or in flight: kill worker 0 (kill -9)
        if event["type"] == "episode" and event["round"] == 0 and not killed:
            killed.append(pids[0])
            os.kill(pids[0], signal.SIGKILL)

    trainer = new_run(seats_cfg(run="ray", workers=2), tmp_path, on_event=on_event)
    trainer.rollouts = RayRollouts(EnvFactory(spec(GAME), dict(trainer.setup.env_kwargs)), 2)
    pids = trainer.rollouts.worker_pids()
    try:
        summaries = trainer.run(trainer.restore())
        replaced, replayed = trainer.rollouts.replaced, trainer.rollouts.replayed
        after = trainer.rollouts.worker_pids()
        episodes = stored_episodes(trainer)
    finally:
        trainer.close()
    assert killed and replaced == 1 and replayed >= 1  # worker 0 died mid-round: its chunks went again
    assert after[1] == pids[1] and after[0] not in pids  # worker 1 lived on; worker 0 is a fresh process
    assert [s["episodes"] for s in summaries] == [48, 48]
    assert len(episodes) == 96 and episodes == undisturbed  # the same episodes, whole, once each
    for k in (0, 1):  # the live view counted every episode once
        assert [e["done"] for e in events if e["type"] == "episode" and e["round"] == k] == list(range(1, 49))


@needs_ray
@pytest.mark.slow
def test_workers_that_keep_dying_stop_with_one_line(cluster):
    from arena import api
    from arena.registry import spec
    from arena.rollout import EnvFactory
    from arena.rollout.ray import RayRollouts
    from arena.types import ArenaError

    fatal = derive(11, "episode", 5)  # episode 5 of a round played with seed 11: chunk 4-7
    seats = {s: api.agent(GAME, s, "scripted:random") for s in ("player_0", "player_1")}
    rollouts = RayRollouts(EnvFactory(spec(GAME), {"fatal_seed": fatal}), 2)
    try:
        with pytest.raises(ArenaError, match=r"^Ray rollout workers keep dying: episodes 4-7 of round 0 lost its "
                                             r"worker 3 times \(last: .*\); the run stops here \(arena resume "
                                             r"continues it from its last completed round\)$") as e:
            rollouts.play(seats, 12, concurrency=4, seed=11, round=0)
        assert "\n" not in str(e.value)
        assert rollouts.replaced == 2 and rollouts.replayed == 2  # two more tries, each on a fresh worker
        # the backend still plays (the fatal seed is not among these episodes): the last dead worker is
        # replaced when it is next asked for work
        played, _ = rollouts.play(seats, 4, concurrency=4, seed=12, round=1)
        assert [ep.index for ep in played] == [0, 1, 2, 3] and rollouts.replaced == 3
    finally:
        rollouts.close()


# -- torchrun -------------------------------------------------------------------------------------

def launch(tmp_path: Path, fatal_episode: int, episodes: int) -> tuple[subprocess.CompletedProcess, str]:
    """`arena train` of Fragile under torchrun (2 gloo processes, 2 rounds), the process that plays
    round 1's episode `fatal_episode` killed as it resets it; (the launch, what process 0 wrote on
    stderr). Rank r plays the r-th half of a round's episodes."""
    from test_distributed import clean_env, torchrun

    fatal = derive(derive(3, "round", 1), "episode", fatal_episode)
    env = {**clean_env(), "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parent)])}
    env.pop("ARENA_TEST_DRIVER", None)
    done = subprocess.run([*torchrun(), "--log-dir", str(tmp_path / "logs"), "--redirects", "3", "-m", "--",
                           "arena.cli", "--runs-dir", str(tmp_path / "runs"), "train", GAME, "--rounds", "2",
                           "--episodes", str(episodes), "--concurrency", "4", "--seed", "3", "--run", "f", "--plain",
                           "--env", f"fatal_seed={fatal}", "--seat", "player_1=scripted:constant?value=paper"],
                          env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    [err] = (tmp_path / "logs").glob("*/attempt_0/0/stderr.log")
    return done, err.read_text()


@needs_gloo
@pytest.mark.slow  # two launches of 2 processes and a resume (~40 s on a shared 2-core CPU)
@pytest.mark.parametrize("fatal_episode,episodes", [(30, 40), (200, 400)],
                         ids=["process-0-in-a-collective", "process-0-still-playing"])
def test_a_torchrun_process_killed_mid_round_ends_the_other_in_one_line(tmp_path, runs, monkeypatch, capsys,
                                                                         fatal_episode, episodes):
    """Process 1 dies (SIGKILL) in round 1. Process 0 hears of it either in its next collective call
    (its share is short: it is waiting for process 1) or from torchrun's SIGTERM (its share is long:
    it is still playing); either way one line, the run keeps round 0, and a resume finishes it."""
    from arena.cli import main
    from arena.store import RunStore

    done, err = launch(tmp_path, fatal_episode, episodes)  # within the timeout: no hang
    assert done.returncode != 0 and "exitcode  : -9" in done.stderr  # process 1 was killed
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: process 0 of 2: "), err[-3000:]
    assert lines[0].endswith("the run stops here; arena resume continues it from its last completed round")
    assert "another process is gone (" in lines[0] or "stopped by the launcher (SIGTERM" in lines[0]
    run = tmp_path / "runs" / "f"
    store = RunStore(run)
    try:
        assert store.completed_rounds() == [0]
    finally:
        store.close()
    # nothing lost: resumed in this process (which the fatal seed spares), the run finishes round 1
    monkeypatch.setenv("ARENA_TEST_DRIVER", str(os.getpid()))
    assert main(["resume", str(run), "--game", GAME, "--plain"]) == 0
    store = RunStore(run)
    try:
        assert store.completed_rounds() == [0, 1] and len(store.episodes()) == 2 * episodes
    finally:
        store.close()
