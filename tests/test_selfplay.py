import json
import os
import signal
import sqlite3
import subprocess
import time

import pytest

from arena.runs.config import TrainConfig
from arena.selfplay import load_run, new_run
from arena.store import RunStore
from arena.types import ArenaError
from conftest import EXTERNAL, arena_cmd


def run_scripted_pv(runs, name, rounds=3, **kw):
    cfg = TrainConfig(game="prover-verifier-v1", recipe="scripted", rounds=rounds, episodes=24,
                      concurrency=6, seed=11, run=name, **kw)
    trainer = new_run(cfg, runs)
    try:
        return trainer, trainer.run(trainer.restore())
    finally:
        trainer.close()


def test_train_writes_rounds_checkpoints_config_and_events(runs):
    trainer, summaries = run_scripted_pv(runs, "pv")
    run_dir = runs / "pv"
    store = RunStore(run_dir)
    assert store.completed_rounds() == [0, 1, 2]
    assert len(store.episodes()) == 3 * 24
    ckpts = store.checkpoints()
    assert set(ckpts) == {"prover", "verifier"} and all(sorted(v) == [0, 1, 2] for v in ckpts.values())
    for seat_ckpts in ckpts.values():
        for path in seat_ckpts.values():
            assert (path / "arena_checkpoint.json").is_file()
    config = json.loads((run_dir / "config.json").read_text())
    assert config["game_id"] == "prover-verifier-v1" and config["seat_specs"]["verifier"] == "scripted:spot-check"
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert [e["round"] for e in events if e["type"] == "round_end"] == [0, 1, 2]
    assert sum(e["type"] == "episode" for e in events) == 72
    # The scripted verifier learner raises its check rate each round while sneaky solutions get through.
    rates = [s["losses"]["verifier"]["check_rate"] for s in summaries]
    assert rates == sorted(rates) and rates[-1] > rates[0]
    # Checkpoints hold the learned state: round-2's verifier has the last check rate.
    state = json.loads((ckpts["verifier"][2] / "scripted.json").read_text())
    assert state["params"]["check_rate"] == pytest.approx(rates[-1])


def test_existing_run_name_is_refused(runs):
    run_scripted_pv(runs, "dup", rounds=1)
    with pytest.raises(ArenaError, match="already exists"):
        run_scripted_pv(runs, "dup", rounds=1)


def test_in_process_resume_after_partial_round_matches_uninterrupted(runs):
    _, full = run_scripted_pv(runs, "full", rounds=3)
    cfg = TrainConfig(game="prover-verifier-v1", recipe="scripted", rounds=3, episodes=24,
                      concurrency=6, seed=11, run="crash")
    seen = []

    def crash_mid_round_1(event):
        seen.append(event)
        if event["type"] == "episode" and event["round"] == 1 and event["done"] == 10:
            raise KeyboardInterrupt

    trainer = new_run(cfg, runs, on_event=crash_mid_round_1)
    with pytest.raises(KeyboardInterrupt):
        trainer.run(trainer.restore())
    trainer.close()  # the crashed process is gone: its lock with it
    resumed = load_run(runs / "crash", runs)
    assert resumed.restore() == 1
    out = resumed.run(1)
    assert comparable(out) == comparable(full)
    assert episode_rewards(runs / "crash") == episode_rewards(runs / "full")


def comparable(summaries):
    return [(s["round"], s["metrics"], s["mean_reward"], s["losses"]) for s in summaries]


def episode_rewards(run_dir):
    with sqlite3.connect(run_dir / "arena.db") as c:
        return c.execute("SELECT round, idx, seed, rewards FROM episodes ORDER BY round, idx").fetchall()


def cli(*args, env=None, check=True, timeout=120):
    return subprocess.run([*arena_cmd(), *args], capture_output=True, text=True, env=env, timeout=timeout,
                          check=check)


@pytest.mark.slow
def test_kill_9_in_round_2_then_resume_matches_uninterrupted(runs):
    env = {**os.environ, "ARENA_RUNS_DIR": str(runs), "PYTHONPATH": str(EXTERNAL)}
    common = ["train", "ext_game:GuessEnv", "--rounds", "4", "--episodes", "40", "--concurrency", "4",
              "--seed", "3", "--seat", "guesser=scripted:noisy?delay=0.03", "--plain"]
    cli(*common, "--run", "straight", env=env)
    proc = subprocess.Popen([*arena_cmd(), *common, "--run", "killed"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    events = runs / "killed" / "events.jsonl"
    deadline = time.time() + 60
    killed = False
    while time.time() < deadline and proc.poll() is None:
        lines = events.read_text().splitlines() if events.exists() else []
        if any('"type": "episode", "round": 1, "done": 2' in line for line in lines):
            os.kill(proc.pid, signal.SIGKILL)
            killed = True
            break
        time.sleep(0.01)
    proc.wait()
    assert killed, "the run finished before it could be killed mid round 2"
    assert RunStore(runs / "killed").completed_rounds() == [0]
    refused = cli("resume", "killed", "--plain", env=env, check=False)  # a run dir never names code to import
    assert refused.returncode == 2 and "--game ext_game:GuessEnv" in refused.stderr
    out = cli("resume", "killed", "--plain", "--game", "ext_game:GuessEnv", env=env)
    assert "resumed and finished" in out.stdout
    assert comparable(RunStore(runs / "killed").round_summaries()) == \
        comparable(RunStore(runs / "straight").round_summaries())
    assert episode_rewards(runs / "killed") == episode_rewards(runs / "straight")
    # watch on the finished run shows the same rows (plain output when not a terminal)
    watched = cli("watch", "killed", "--once", env=env).stdout
    assert [line.split()[1] for line in watched.splitlines() if line.startswith("round ")] == ["0", "1", "2", "3"]


@pytest.mark.slow
def test_game_from_entry_point_group_plays_and_trains(tmp_path, runs):
    dist = tmp_path / "site" / "guessgame-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: guessgame\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[arena.games]\nguess-v0 = ext_game:GuessEnv\n")
    env = {**os.environ, "ARENA_RUNS_DIR": str(runs), "PYTHONPATH": f"{tmp_path / 'site'}:{EXTERNAL}"}
    assert "guess-v0" in cli("games", env=env).stdout
    played = cli("play", "guess-v0", "-n", "3", "--seat", "guesser=scripted:noisy?skill=1", env=env).stdout
    assert "guess-v0: 3 episodes" in played and "accuracy=1" in played
    cli("train", "guess-v0", "--rounds", "2", "--episodes", "8", "--run", "g", "--plain", env=env)
    assert RunStore(runs / "g").completed_rounds() == [0, 1]


def test_learner_progress_lines_reach_the_events_and_the_live_view(runs, external_game_path):
    from arena.dashboard import Snapshot

    trainer = new_run(TrainConfig(game="ext_game:GuessEnv", rounds=2, episodes=4, concurrency=4, run="prog",
                                  seats={"guesser": "scripted:noisy?skill=0.5"}), runs)
    seen = []
    trainer.on_event = seen.append
    trainer.run(trainer.restore())
    lines = [json.loads(line) for line in (runs / "prog" / "events.jsonl").read_text().splitlines()]
    progress = [e for e in lines if e["type"] == "learner_progress"]
    assert [(e["round"], e["seat"], e["message"]) for e in progress] == \
        [(0, "guesser", "skill 0.50 -> 0.65"), (1, "guesser", "skill 0.65 -> 0.80")]
    snap = Snapshot()
    for e in seen[:seen.index(next(e for e in seen if e["type"] == "learner_progress")) + 1]:
        snap.apply(e)
    assert snap.phase == "training guesser: skill 0.50 -> 0.65"


def test_train_or_reuse_reuses_extends_and_refuses_other_settings(tmp_path):
    """What `arena experiment ...` does per run: same settings reuse the rounds (none replayed), more
    rounds resume, other settings are one line."""
    from arena.runs.config import TrainConfig
    from arena.selfplay import train_or_reuse
    from arena.types import ArenaError

    def cfg(**kw):
        return TrainConfig(**{"game": "prover-verifier-v1", "recipe": "scripted", "rounds": 1, "episodes": 4,
                              "seed": 5, "run": "exp", **kw})

    events = []
    first = train_or_reuse(cfg(), tmp_path, events.append)
    assert [s["round"] for s in first] == [0] and sum(e["type"] == "round_end" for e in events) == 1
    events.clear()
    again = train_or_reuse(cfg(), tmp_path, events.append)
    assert again == first and not any(e["type"] == "round_end" for e in events)  # reused, nothing played
    longer = train_or_reuse(cfg(rounds=2), tmp_path, events.append)
    assert [s["round"] for s in longer] == [0, 1] and longer[0] == first[0]
    assert [e["round"] for e in events if e["type"] == "round_end"] == [1]
    with pytest.raises(ArenaError, match="run 'exp' exists with other settings; pass --name to start fresh"):
        train_or_reuse(cfg(episodes=8), tmp_path)
    # a run made before a TrainConfig setting existed: the missing setting reads as its default
    config_file = tmp_path / "exp" / "config.json"
    saved = json.loads(config_file.read_text())
    del saved["workers"], saved["ray_address"]
    config_file.write_text(json.dumps(saved))
    assert train_or_reuse(cfg(rounds=2), tmp_path) == longer
    with pytest.raises(ArenaError, match="exists with other settings"):
        train_or_reuse(cfg(rounds=2, workers=2), tmp_path)
