"""Runs survive kills, concurrent writers and hostile run directories (issue 13).

- A kill -9 sweep: `arena train` killed at 25+ points (setup, config write, the rename that
  creates the run, episodes, checkpoint writes and renames, the gap between a round's commit
  and its event, the run's last event, and kills during a resume), then recovered the way a
  user would (`arena resume`, or `arena train` again when no run exists): every recovered run
  ends identical to an uninterrupted one (summaries, episodes, checkpoint bytes), with one
  `round_end` per round and a final `run_end` in its events, and `arena watch` shows it.
- One writer per run: a second `arena train`/`arena resume` meets a one-line error that names
  the process holding the run, and the run's events get no duplicates.
- A run directory is data: a config.json naming `os:system` (or a duel task naming a module
  to import) makes no command run or import anything.

The kills come from tests/faults/sitecustomize.py (on PYTHONPATH only in these tests'
subprocesses): no hook in the product.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from conftest import EXTERNAL, arena_cmd

FAULTS = Path(__file__).parent / "faults"
TRAIN = ["train", "prover-verifier-v1", "--recipe", "scripted", "--rounds", "3", "--episodes", "12",
         "--concurrency", "4", "--seed", "5", "--plain", "--no-tensorboard", "--run", "k"]
TIMING = ("wall_s", "play_s", "elapsed_s", "eta_s", "episodes_per_s", "tokens_per_s", "overhead", "phases")


def arena(runs: Path, *args: str, fault: dict[str, str] | None = None, timeout: float = 60,
          pythonpath: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "ARENA_RUNS_DIR": str(runs), **(fault or {})}
    env["PYTHONPATH"] = os.pathsep.join([*([str(FAULTS)] if fault else []), *([pythonpath] if pythonpath else [])])
    return subprocess.run([*arena_cmd(), *args], capture_output=True, text=True, env=env, timeout=timeout)


def one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), (proc.returncode,
                                                                                         proc.stderr)
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# -- what a finished run is ------------------------------------------------------------

def run_state(run_dir: Path) -> dict:
    """Everything a run's numbers are: summaries without timings, every episode, every
    checkpoint's bytes, the round count in config.json."""
    with sqlite3.connect(run_dir / "arena.db") as c:
        summaries = [json.loads(s) for (s,) in c.execute(
            "SELECT summary FROM rounds WHERE completed=1 ORDER BY round")]
        incomplete = c.execute("SELECT count(*) FROM rounds WHERE completed=0").fetchone()[0]
        episodes = c.execute("SELECT round, idx, seed, rewards, info, transcript FROM episodes "
                             "ORDER BY round, idx").fetchall()
        ckpt_rows = c.execute("SELECT round, seat, path FROM checkpoints ORDER BY round, seat").fetchall()
    for s in summaries:
        for key in TIMING:
            s.pop(key, None)
    files = {str(p.relative_to(run_dir)): p.read_bytes()
             for p in sorted((run_dir / "checkpoints").rglob("*")) if p.is_file()}
    config = json.loads((run_dir / "config.json").read_text())
    return {"summaries": summaries, "incomplete": incomplete, "episodes": episodes, "ckpt_rows": ckpt_rows,
            "files": files, "rounds": config["rounds"], "game_id": config["game_id"]}


def check_events(run_dir: Path, rounds: int) -> None:
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    ends = [e["round"] for e in events if e["type"] == "round_end"]
    assert sorted(ends) == list(range(rounds)) and len(ends) == len(set(ends)), ends
    assert events[-1]["type"] == "run_end", events[-1]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted run, and how many events it writes."""
    runs = tmp_path_factory.mktemp("reference")
    proc = arena(runs, *TRAIN)
    assert proc.returncode == 0, proc.stderr
    events = (runs / "k" / "events.jsonl").read_text().splitlines()
    return {"state": run_state(runs / "k"), "n_events": len(events)}


# point -> how the kill is set; "after": right after the real call. Counts: 2 seats x 3 rounds
# of checkpoints, 12 episodes a round, one commit per round.
KILL_POINTS = [
    # setting the run up: nothing may be left that blocks `arena train` or that a command reads
    "build_setup:1", "build_setup:1:after", "set_marker:1", "save_config:1", "write_json:1",
    "write_json:1:after", "publish:1", "publish:1:after",
    # playing and committing rounds
    "start_round:1", "add_episode:1", "add_episode:7", "add_episode:20", "start_round:3",
    # checkpoint writes: before, inside (tmp dir written, not renamed), after, second seat, last round
    "write_checkpoint:1", "ckpt_rename:1", "ckpt_rename:1:after", "write_checkpoint:2",
    "write_checkpoint:4:after", "ckpt_rename:6",
    # the round's commit, and the gap between the commit and its round_end event
    "complete_round:1", "complete_round:1:after", "complete_round:2:after", "complete_round:3",
    "complete_round:3:after",
    # events: the first round's, and the run's last event (run_end)
    "append_event:3", "append_event:last",
]


def recover(runs: Path) -> list[str]:
    """Do what a user does after a crash; return the commands run."""
    if (runs / "k" / "config.json").exists():
        proc = arena(runs, "resume", "k", "--plain", "--no-tensorboard")
        assert proc.returncode == 0, proc.stderr
        return ["resume"]
    refused = arena(runs, "resume", "k")  # nothing is there: the setup never finished
    one_line_error(refused, "no run named 'k'", "setup was interrupted")
    assert not (runs / "k").exists()
    proc = arena(runs, *TRAIN)
    assert proc.returncode == 0, proc.stderr
    return ["train"]


def sweep_one(point: str, base: Path, reference: dict) -> str:
    runs = base / point.replace(":", "_")
    if point == "append_event:last":
        point = f"append_event:{reference['n_events']}"
    killed = arena(runs, *TRAIN, fault={"ARENA_TEST_KILL": point})
    assert killed.returncode == -signal.SIGKILL, f"{point}: not killed (rc {killed.returncode}) {killed.stderr}"
    recover(runs)
    state = run_state(runs / "k")
    assert state == reference["state"], f"{point}: the recovered run differs"
    check_events(runs / "k", 3)
    assert not list(runs.glob(".setup-*")), f"{point}: a setup directory was left"
    return point


@pytest.mark.slow  # ~60 processes: 25-60 s of CPU on 2 cores (the report each train/resume writes is ~1/3 of it)
def test_kill_9_sweep_recovers_identical_runs(tmp_path, reference):
    assert len(KILL_POINTS) >= 20
    with ThreadPoolExecutor(max_workers=2) as pool:  # a process at a time per run dir; two run dirs at once
        done = list(pool.map(lambda p: sweep_one(p, tmp_path, reference), KILL_POINTS))
    assert len(done) == len(KILL_POINTS)


@pytest.mark.slow
@pytest.mark.parametrize("point", ["restore:1:after", "replay_events:1:after", "complete_round:1:after"])
def test_a_resume_killed_too_still_ends_identical(tmp_path, reference, point):
    """Killed in round 1's commit/event gap, then the resume killed as well, then resumed."""
    runs = tmp_path
    assert arena(runs, *TRAIN, fault={"ARENA_TEST_KILL": "complete_round:2:after"}).returncode == -signal.SIGKILL
    again = arena(runs, "resume", "k", "--plain", "--no-tensorboard", fault={"ARENA_TEST_KILL": point})
    assert again.returncode == -signal.SIGKILL, again.stderr
    assert arena(runs, "resume", "k", "--plain", "--no-tensorboard").returncode == 0
    assert run_state(runs / "k") == reference["state"]
    check_events(runs / "k", 3)


@pytest.mark.slow
def test_sigint_during_the_config_write_leaves_nothing(tmp_path, reference):
    runs = tmp_path
    proc = arena(runs, *TRAIN, fault={"ARENA_TEST_FAULT": "write_json:1:sigint"})
    assert proc.returncode == 130 and "Traceback" not in proc.stderr, proc.stderr
    assert not (runs / "k").exists() and not list(runs.glob(".setup-*"))
    assert arena(runs, *TRAIN).returncode == 0
    assert run_state(runs / "k") == reference["state"]


@pytest.mark.slow
def test_watch_stops_on_a_run_that_nobody_writes(tmp_path):
    """Killed between round 1's commit and its round_end event: `arena watch` does not wait
    forever; it shows the committed rounds (from the store) and says the run is not running."""
    runs = tmp_path
    assert arena(runs, *TRAIN, fault={"ARENA_TEST_KILL": "complete_round:2:after"}).returncode == -signal.SIGKILL
    t0 = time.monotonic()
    watched = arena(runs, "watch", "k", "--timeout", "60", timeout=90)
    assert watched.returncode == 0 and time.monotonic() - t0 < 30
    assert [line.split()[1] for line in watched.stdout.splitlines() if line.startswith("round ")] == ["0", "1"]
    assert "is not running" in watched.stdout and "arena resume k" in watched.stdout


# -- one writer per run -----------------------------------------------------------------

def start_paused(runs: Path, args: list[str], point: str, tmp: Path, pythonpath: str = "") -> subprocess.Popen:
    """An arena process paused at `point` (holding whatever it holds there) until `tmp/release` exists."""
    env = {**os.environ, "ARENA_RUNS_DIR": str(runs), "ARENA_TEST_FAULT": f"{point}:pause",
           "ARENA_TEST_PAUSED": str(tmp / "paused"), "ARENA_TEST_RELEASE": str(tmp / "release"),
           "PYTHONPATH": os.pathsep.join([str(FAULTS), *([pythonpath] if pythonpath else [])])}
    (tmp / "paused").unlink(missing_ok=True)
    (tmp / "release").unlink(missing_ok=True)
    proc = subprocess.Popen([*arena_cmd(), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 60
    while not (tmp / "paused").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    return proc


@pytest.mark.slow
def test_a_second_writer_meets_a_one_line_error_naming_the_holder(tmp_path):
    runs, tmp = tmp_path / "runs", tmp_path
    # 1. while a run is being set up: a second `arena train` of the same name is refused
    first = start_paused(runs, TRAIN, "build_setup:1", tmp)
    second = arena(runs, *TRAIN)
    one_line_error(second, "is in use by", f"process {first.pid}", "arena")
    assert "no runs in" in arena(runs, "runs").stdout  # a run being set up is not a run yet
    (tmp / "release").touch()
    out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err

    # 2. while a run is being resumed: a second resume and a train of the same name are refused
    shutil.rmtree(runs)
    assert arena(runs, *TRAIN, fault={"ARENA_TEST_KILL": "complete_round:1:after"}).returncode == -signal.SIGKILL
    resuming = start_paused(runs, ["resume", "k", "--plain", "--no-tensorboard"], "restore:1", tmp)
    one_line_error(arena(runs, "resume", "k", "--plain"), "run 'k' is in use by", f"process {resuming.pid}",
                   "arena resume k")
    one_line_error(arena(runs, *TRAIN), "already exists")
    (tmp / "release").touch()
    out, err = resuming.communicate(timeout=60)
    assert resuming.returncode == 0, err
    check_events(runs / "k", 3)  # one round_end per round: nothing written twice

    # 3. two resumes racing from the start: one plays, the other is refused; no duplicate events
    shutil.rmtree(runs)
    assert arena(runs, *TRAIN, fault={"ARENA_TEST_KILL": "complete_round:1:after"}).returncode == -signal.SIGKILL
    env = {**os.environ, "ARENA_RUNS_DIR": str(runs)}
    procs = [subprocess.Popen([*arena_cmd(), "resume", "k", "--plain", "--no-tensorboard"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=60), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes in ([0, 0], [0, 2]), results  # the second may start after the first has finished
    for code, err in results:
        if code == 2:
            assert "is in use by process" in err or "already completed" in err, err
    check_events(runs / "k", 3)


@pytest.mark.slow
def test_two_trains_racing_for_one_name_make_one_run(tmp_path, reference):
    runs = tmp_path
    env = {**os.environ, "ARENA_RUNS_DIR": str(runs)}
    procs = [subprocess.Popen([*arena_cmd(), *TRAIN], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(3)]
    results = [(p.wait(timeout=60), p.stderr.read()) for p in procs]
    assert sorted(code for code, _ in results) == [0, 2, 2], results
    for code, err in results:
        if code == 2:
            assert ("already exists" in err or "is in use by process" in err) and "Traceback" not in err, err
    assert run_state(runs / "k") == reference["state"]
    check_events(runs / "k", 3)
    assert sorted(p.name for p in runs.iterdir()) == ["k"]


# -- a run directory is data -------------------------------------------------------------

@pytest.fixture
def hijacked(tmp_path):
    """A finished run whose config.json was edited to run a shell command, and a module on the
    path that leaves a mark if it is ever imported."""
    runs = tmp_path / "runs"
    assert arena(runs, *TRAIN).returncode == 0
    marker = tmp_path / "pwned"
    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / "hijack_mod.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('imported')\n"
                                        "class Task:\n    def sample(self, rng): return 'x'\n"
                                        "    def score(self, p, a): return 0.0\nTASK = Task()\n")
    return runs, marker, str(mods)


def edit_config(runs: Path, **changes) -> None:
    path = runs / "k" / "config.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


@pytest.mark.parametrize("command", [["play", "k", "-n", "1"], ["tournament", "k", "-n", "1", "--bootstrap", "0"],
                                     ["resume", "k", "--rounds", "4"]])
@pytest.mark.slow
def test_config_json_naming_code_runs_nothing(hijacked, command):
    runs, marker, mods = hijacked
    edit_config(runs, game_id="os:system", game="os:system", env_kwargs={"command": f"touch {marker}"})
    proc = arena(runs, *command, pythonpath=mods)
    one_line_error(proc, "'os:system'", "not a registered game", "--game")
    assert not marker.exists()
    edit_config(runs, game_id="hijack_mod:Task", game="hijack_mod:Task")
    one_line_error(arena(runs, *command, pythonpath=mods), "not a registered game")
    assert not marker.exists()
    listed = arena(runs, "runs", pythonpath=mods)  # listing reads the config, imports nothing
    assert listed.returncode == 0 and "k " in listed.stdout and not marker.exists()


@pytest.mark.slow
@pytest.mark.parametrize("command", [["play", "k", "-n", "1"], ["tournament", "k", "-n", "1", "--bootstrap", "0"]])
def test_a_duel_task_named_by_a_run_is_never_imported(hijacked, command):
    runs, marker, mods = hijacked
    edit_config(runs, game_id="duel-v0", game="duel-v0", env_kwargs={"task": "hijack_mod:TASK"},
                seat_specs={"policy_a": "scripted:random", "policy_b": "scripted:random", "judge": "scripted:random"})
    one_line_error(arena(runs, *command, pythonpath=mods), "task must be one of sum", "hijack_mod:TASK")
    assert not marker.exists()


@pytest.mark.slow
def test_a_game_named_on_the_command_line_is_the_users_choice(tmp_path):
    """What the user types in the same command may be imported (`--game module:Class`), checked
    against the run's game id; a run of an unregistered game never imports it by itself."""
    runs = tmp_path
    common = ["train", "ext_game:GuessEnv", "--rounds", "1", "--episodes", "4", "--run", "g", "--plain",
              "--no-tensorboard"]
    assert arena(runs, *common, pythonpath=str(EXTERNAL)).returncode == 0
    one_line_error(arena(runs, "tournament", "g", "-n", "1", "--bootstrap", "0", pythonpath=str(EXTERNAL)),
                   "not a registered game", "--game ext_game:GuessEnv")
    ok = arena(runs, "tournament", "g", "-n", "2", "--bootstrap", "0", "--game", "ext_game:GuessEnv",
               "--seat", "guesser=scripted:noisy?skill=1,scripted:noisy?skill=0", pythonpath=str(EXTERNAL))
    assert ok.returncode == 0, ok.stderr
    one_line_error(arena(runs, "tournament", "g", "-n", "1", "--game", "duel-v0", pythonpath=str(EXTERNAL)),
                   "is a guess-v0 run, not duel-v0")
    one_line_error(arena(runs, "play", "g", "-n", "1", "--game", "duel-v0", pythonpath=str(EXTERNAL)),
                   "but the run plays guess-v0")


@pytest.mark.slow
def test_an_emptied_or_replaced_store_is_refused_and_nothing_is_overwritten(tmp_path):
    runs = tmp_path
    assert arena(runs, *TRAIN).returncode == 0
    before = run_state(runs / "k")
    db = runs / "k" / "arena.db"
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    db.write_bytes(b"")
    one_line_error(arena(runs, "resume", "k", "--rounds", "4"), "does not belong to this run")
    assert db.read_bytes() == b"", "the emptied store was written to"
    files = {str(p.relative_to(runs / "k")): p.read_bytes() for p in sorted((runs / "k" / "checkpoints").rglob("*"))
             if p.is_file()}
    assert files == before["files"] and json.loads((runs / "k" / "config.json").read_text())["rounds"] == 3
    # another run's store in its place
    other = tmp_path / "other"
    assert arena(other, *TRAIN).returncode == 0
    shutil.copy(other / "k" / "arena.db", db)
    one_line_error(arena(runs, "resume", "k"), "does not belong to this run")
    # a config.json without the marker (an older run) and an emptied store: its checkpoints say so
    db.write_bytes(b"")
    edit_config(runs, run_id=None)
    config = json.loads((runs / "k" / "config.json").read_text())
    config.pop("run_id")
    (runs / "k" / "config.json").write_text(json.dumps(config))
    one_line_error(arena(runs, "resume", "k"), "has 0 completed round(s) but checkpoints/ holds round-2")


@pytest.mark.slow
def test_resume_rounds_cannot_shorten_or_zero_a_run(tmp_path):
    runs = tmp_path
    assert arena(runs, *TRAIN[:4], "--rounds", "2", *TRAIN[6:]).returncode == 0
    for rounds in ("0", "1", "-3"):
        proc = arena(runs, "resume", "k", "--rounds", rounds)
        one_line_error(proc, "--rounds")
        assert json.loads((runs / "k" / "config.json").read_text())["rounds"] == 2
    assert arena(runs, "resume", "k", "--rounds", "3", "--plain", "--no-tensorboard").returncode == 0
    assert json.loads((runs / "k" / "config.json").read_text())["rounds"] == 3
    check_events(runs / "k", 3)


# -- memory bounded by a batch size ------------------------------------------------------

def test_scoring_and_generation_are_cut_into_batches_of_max_batch():
    """A scoring pass over a whole held-out set, or an `act` over many observations, runs in
    forward passes of at most `max_batch` texts (0: 64), with the same results as one batch."""
    from agents.hf import GeneratorAgent, SamplingConfig, ScorerAgent
    from agents.tiny import new_tiny_causal_lm, new_tiny_scorer

    small = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                 num_key_value_heads=2, max_position_embeddings=256)
    texts = [f"Ann has {i} apples. Gets {i % 7}." for i in range(150)]
    for agent, call in ((ScorerAgent(*new_tiny_scorer(seed=1, **small)), lambda a: a.scores(texts)),
                        (GeneratorAgent(*new_tiny_causal_lm(seed=0, **small), SamplingConfig(max_new_tokens=2)),
                         lambda a: [m.action for m in a.act([{"prompt": t} for t in texts])])):
        sizes: list[int] = []
        hook = agent.model.register_forward_pre_hook(
            lambda m, args, kwargs, sizes=sizes: sizes.append(kwargs["input_ids"].shape[0]), with_kwargs=True)
        if isinstance(agent, GeneratorAgent):  # its own prefill and decode steps run without the model's forward
            generate = agent.generate
            agent.generate = lambda prompts, seeds=None, g=generate, sizes=sizes: sizes.append(len(prompts)) or \
                g(prompts, seeds)
        try:
            agent.reset(3)
            chunked = call(agent)
        finally:
            hook.remove()
        assert sizes and max(sizes) <= 64, sizes
        agent.max_batch = 200  # one batch: the same results
        agent.reset(3)
        whole = call(agent)
        if isinstance(chunked, list):
            assert len(chunked) == len(whole) == 150
        else:
            torch.testing.assert_close(chunked, whole, rtol=1e-4, atol=1e-5)
