"""Bad input of every kind is one line `error: ...`, exit status 2, no traceback, nothing left
behind (issue 13, items 7, 8, 10, 11; item 9, a game scores any string: test_any_action.py); what a model or
a file writes reaches a person as written.

Each case of items 8-11 is one parametrised test run through `arena.cli.main` in-process
(the faults that need a process of their own, a full disk, run as subprocesses).
"""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import torch
from rich.console import Console

from arena.cli import main
from conftest import arena_cmd

FAULTS = Path(__file__).parent / "faults"
PV = "prover-verifier-v1"
SMALL = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
             num_key_value_heads=2, max_position_embeddings=256)


# -- a runs dir with one run of each kind, made once ---------------------------------------

@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """runs/: `s` (scripted), `hf` (tiny hf prover and verifier, checkpoints of both), `hf-cut`
    (the same with its prover's model.safetensors cut in half), `list` (config.json is a list),
    `x` (rounds is "x"); models/: a tiny generator and scorer; a plain file `afile`."""
    from agents.hf import GeneratorAgent, SamplingConfig, ScorerAgent
    from agents.tiny import new_tiny_causal_lm, new_tiny_scorer

    base = tmp_path_factory.mktemp("world")
    runs, models = base / "runs", base / "models"
    gen, scorer = models / "gen", models / "scorer"
    GeneratorAgent(*new_tiny_causal_lm(seed=0, **SMALL), SamplingConfig(max_new_tokens=4)).save(gen)
    ScorerAgent(*new_tiny_scorer(seed=1, **SMALL)).save(scorer)
    common = ["--runs-dir", str(runs), "train", PV, "--recipe", "scripted", "--rounds", "1", "--episodes", "2",
              "--plain", "--no-tensorboard"]
    assert main([*common, "--run", "s"]) == 0
    assert main([*common, "--run", "hf", "--seat", f"prover=hf:{gen}", "--seat", f"verifier=hf:{scorer}"]) == 0
    shutil.copytree(runs / "hf", runs / "hf-cut")
    weights = runs / "hf-cut" / "checkpoints" / "prover" / "round-0" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    for name, edit in (("list", lambda c: [1, 2]), ("x", lambda c: {**c, "rounds": "x"})):
        shutil.copytree(runs / "s", runs / name)
        config = json.loads((runs / name / "config.json").read_text())
        (runs / name / "config.json").write_text(json.dumps(edit(config)))
    (base / "afile").write_text("not a directory")
    return {"base": base, "runs": runs, "gen": gen, "scorer": scorer, "afile": base / "afile"}


TOURNAMENT_TABLES = ("tournaments", "matches", "ratings")


def snapshot(root: Path) -> dict[str, object]:
    """Every file's bytes under `root`, and each SQLite store's rows (its files may be
    checkpointed differently without a change of content). A tournament that fails registers
    itself first (a rerun of the same command picks it up): its tables are not compared."""
    out: dict[str, object] = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.name.endswith(("-wal", "-shm")) or p.name == ".lock":
            continue
        if p.name == "arena.db":
            with sqlite3.connect(p) as c:
                out[rel] = [line for line in c.iterdump()
                            if not any(f"INTO \"{t}\"" in line or f"TABLE {t} " in line for t in TOURNAMENT_TABLES)]
        elif p.is_file():
            out[rel] = p.read_bytes()
        else:
            out[rel] = "dir"
    return out


def one_line_error(capsys, argv, *needles):
    code = main(argv)
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (code, err)
    assert "Traceback" not in err + out
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def device_case():
    """A device this torch cannot use: `cuda` on a CPU-only build, a CUDA index past the last GPU otherwise."""
    if torch.cuda.is_available():
        return "cuda:99", "CUDA device(s) visible"
    return "cuda", "cannot use CUDA"


LONG = "a" * 300
CASES = {
    # item 8
    "bot option it does not know": (["play", PV, "--seat", "verifier=scripted:spot-check?nokey=1", "-n", "1"],
                                    ["unknown scripted:spot-check option(s) nokey"]),
    "--env max_value=abc": (["play", PV, "--env", "max_value=abc", "-n", "1"], ["max_value takes a whole number"]),
    "300-character --run": (["train", PV, "--recipe", "scripted", "--run", LONG, "--rounds", "1"],
                            ["invalid run name", "at most 100"]),
    "config.json a list: play": (["play", "list", "-n", "1"], ["config.json is not a JSON object"]),
    "config.json a list: tournament": (["tournament", "list", "-n", "1"], ["config.json is not a JSON object"]),
    "config.json a list: resume": (["resume", "list"], ["config.json is not a JSON object"]),
    "rounds 'x': resume": (["resume", "x"], ["rounds must be a whole number >= 1, not \"x\""]),
    "rounds 'x': play": (["play", "x", "-n", "1"], ["rounds must be a whole number"]),
    "rounds 'x': tournament": (["tournament", "x", "-n", "1"], ["rounds must be a whole number"]),
    "truncated safetensors: play": (["play", "hf-cut", "-n", "1"], ["cannot load", "SafetensorError"]),
    "truncated safetensors: tournament": (["tournament", "hf-cut", "-n", "1", "--bootstrap", "0"],
                                          ["cannot load", "SafetensorError"]),
    "truncated safetensors: ckpt:": (["play", PV, "--seat", "prover=ckpt:hf-cut/prover/round-0", "-n", "1"],
                                     ["cannot load", "SafetensorError"]),
    "truncated safetensors: resume": (["resume", "hf-cut", "--rounds", "2"], ["cannot load", "SafetensorError"]),
    "--device this torch cannot use": (["play", PV, "--seat", "prover=hf:{gen}", "-n", "1", "--device", "{device}"],
                                       ["{device_error}"]),
    "scripted: spec over 255 characters": (["play", PV, "--seat", f"prover=scripted:{LONG}", "-n", "1"],
                                           ["unknown scripted agent", "(300 characters)"]),
    "--runs-dir a file: train": (["--runs-dir", "{afile}", "train", PV, "--recipe", "scripted", "--rounds", "1"],
                                 ["is a file, not a directory"]),
    "--runs-dir a file: runs": (["runs", "--runs-dir", "{afile}"], ["is a file, not a directory"]),
    "--runs-dir a file: tournament": (["tournament", "s", "--runs-dir", "{afile}"], ["is a file, not a directory"]),
    "pretrain --out a file": (["pretrain", PV, "--out", "{afile}", "--steps", "1"], ["is a file, not a directory"]),
    "pretrain --out under a file": (["pretrain", PV, "--out", "{afile}/sub", "--steps", "1"], ["Not a directory"]),
    # item 10
    "--set a key the recipe ignores": (["train", PV, "--recipe", "scripted", "--set", "reward=cgc", "--run", "ign"],
                                       ["--set reward", "recipe 'scripted'", "takes no parameters"]),
    "--set kl_coef=nan": (["train", PV, "--set", "kl_coef=nan", "--run", "nan"], ["kl_coef takes a finite number"]),
    "--set an unknown key": (["train", PV, "--set", "nope=1", "--run", "nope"], ["unknown parameter(s) nope"]),
    "play -n 0": (["play", PV, "-n", "0"], ["--episodes must be at least 1"]),
    "play -n -1": (["play", PV, "-n", "-1"], ["--episodes must be at least 1"]),
    "play --concurrency 0": (["play", PV, "--concurrency", "0"], ["--concurrency must be at least 1"]),
    "tournament -n 0": (["tournament", "s", "-n", "0"], ["--episodes must be at least 1"]),
    "tournament --concurrency 0": (["tournament", "s", "--concurrency", "0"], ["--concurrency must be at least 1"]),
    "train --episodes 0": (["train", PV, "--recipe", "scripted", "--episodes", "0"], ["--episodes must be at least 1"]),
    "hf temperature=nan": (["play", PV, "--seat", "prover=hf:{gen}?temperature=nan", "-n", "1"],
                           ["temperature takes a finite number"]),
    "pretrain --steps 0": (["pretrain", PV, "--out", "{base}/pt", "--steps", "0"], ["--steps must be at least 1"]),
    "a prover checkpoint in the verifier seat": (["play", PV, "--seat", "verifier=ckpt:hf/prover/round-0", "-n", "1"],
                                                 ["of seat 'prover', which writes texts", "takes a score"]),
    "a verifier checkpoint in the prover seat": (["play", PV, "--seat", "prover=ckpt:hf/verifier/round-0", "-n", "1"],
                                                 ["writes scores", "takes a text"]),
    "a prover checkpoint as hf: in the verifier seat": (
        ["play", PV, "--seat", "verifier=hf:{runs}/hf/checkpoints/prover/round-0", "-n", "1"],
        ["is a generator's checkpoint", "needs a scorer"]),
    "hf: a hub id not on disk": (["play", PV, "--seat", "prover=hf:no-such-org/no-such-model", "-n", "1"],
                                 ["not a local directory and not in the Hugging Face cache", "download=true"]),
    "hf: download=true while HF_HUB_OFFLINE": (
        ["play", PV, "--seat", "prover=hf:no-such-org/no-such-model?download=true", "-n", "1"],
        ["not in the Hugging Face cache and HF_HUB_OFFLINE is set"]),
    "bench --concurrency 0": (["bench", "--concurrency", "0"], ["--concurrency must be at least 1"]),
    "bench --episodes 0": (["bench", "--episodes", "0"], ["--episodes must be at least 1"]),
    "bench --floors with one new token": (["bench", "--floors", "--max-new-tokens", "1"],
                                          ["--floors needs --max-new-tokens of at least 2"]),
    "bench --floors --bw-mib 0": (["bench", "--floors", "--bw-mib", "0"], ["--bw-mib must be at least 1"]),
    # item 11
    "ckpt: that is neither a run's nor a path": (["play", PV, "--seat", "prover=ckpt:../..", "-n", "1"],
                                                 ["malformed checkpoint spec"]),
    "ckpt: a run name is looked up in the runs dir only": (
        ["play", PV, "--seat", "prover=ckpt:nope/prover/round-0", "-n", "1"], ["no checkpoint at {runs}/nope/"]),
    # item 3: resume cannot zero or shorten a run
    "resume --rounds 0": (["resume", "s", "--rounds", "0"], ["resume can extend a run, not shorten it"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_and_leaves_nothing(capsys, world, monkeypatch, case):
    argv, needles = CASES[case]
    device, device_error = device_case()
    fill = {"gen": world["gen"], "runs": world["runs"], "afile": world["afile"], "base": world["base"],
            "device": device, "device_error": device_error}
    monkeypatch.setenv("ARENA_RUNS_DIR", str(world["runs"]))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no test touches the network, whatever the machine
    before = snapshot(world["base"])
    t0 = time.monotonic()
    one_line_error(capsys, [a.format(**fill) for a in argv], *(n.format(**fill) for n in needles))
    assert time.monotonic() - t0 < 20, "an error should not take retries to come"
    assert snapshot(world["base"]) == before, "the failed command left something behind"


def test_arena_runs_lists_every_run_when_some_are_broken(capsys, world, monkeypatch):
    monkeypatch.setenv("ARENA_RUNS_DIR", str(world["runs"]))
    before = snapshot(world["base"])
    assert main(["runs"]) == 0
    assert snapshot(world["base"]) == before  # listing writes nothing
    out = " ".join(capsys.readouterr().out.split())
    assert "s prover-verifier-v1 · recipe scripted · 1/1 rounds" in out
    assert "list unreadable: " in out and "x unreadable: " in out and "hf prover-verifier-v1" in out


def test_ckpt_run_names_never_resolve_against_the_current_directory(capsys, world, monkeypatch, tmp_path):
    """`ckpt:s/verifier/round-0` is run `s` of the runs dir, even with a directory `s` here; a path
    (with a `/` before the run) is taken as typed."""
    monkeypatch.setenv("ARENA_RUNS_DIR", str(world["runs"]))
    monkeypatch.chdir(tmp_path)
    decoy = tmp_path / "s" / "checkpoints" / "verifier" / "round-0"
    shutil.copytree(world["runs"] / "s" / "checkpoints" / "verifier" / "round-0", decoy)
    state = json.loads((decoy / "scripted.json").read_text())
    state["params"]["check_rate"] = 0.0
    (decoy / "scripted.json").write_text(json.dumps(state))
    from arena.checkpoints import resolve_checkpoint

    assert resolve_checkpoint("s/verifier/round-0", world["runs"]) == world["runs"] / "s/checkpoints/verifier/round-0"
    assert resolve_checkpoint("./s/verifier/round-0", world["runs"]) == Path("./s/checkpoints/verifier/round-0")
    assert resolve_checkpoint(str(decoy), world["runs"]) == decoy
    rel = os.path.relpath(world["runs"] / "s", tmp_path)  # ../…/runs/s: a path, taken as typed
    assert resolve_checkpoint(f"{rel}/verifier/round-0", world["runs"]).resolve() == \
        (world["runs"] / "s/checkpoints/verifier/round-0").resolve()


# -- full disks -------------------------------------------------------------------------

def arena_with_fault(runs: Path, fault: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ARENA_RUNS_DIR": str(runs), "ARENA_TEST_FAULT": fault, "PYTHONPATH": str(FAULTS)}
    return subprocess.run([*arena_cmd(), *args], capture_output=True, text=True, env=env, timeout=120)


TRAIN = ["train", PV, "--recipe", "scripted", "--rounds", "2", "--episodes", "8", "--run", "d", "--plain",
         "--no-tensorboard"]


@pytest.mark.parametrize("fault, needle, exists", [
    ("add_episode:3:dbfull", "run database: database or disk is full", True),
    ("append_event:5:enospc", "No space left on device", True),
    ("set_marker:1:dbfull", "run database: database or disk is full", False),  # during setup: nothing left
    ("write_json:1:enospc", "No space left on device", False),
])
@pytest.mark.slow
def test_a_full_disk_is_one_line_and_the_run_resumes_after(tmp_path, fault, needle, exists):
    runs = tmp_path
    proc = arena_with_fault(runs, fault, *TRAIN)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and needle in lines[0] and "Traceback" not in proc.stderr, \
        proc.stderr
    assert (runs / "d").exists() == exists and not list(runs.glob(".setup-*"))
    env = {**os.environ, "ARENA_RUNS_DIR": str(runs)}
    again = ["resume", "d", "--plain", "--no-tensorboard"] if exists else TRAIN
    assert subprocess.run([*arena_cmd(), *again], env=env, capture_output=True, timeout=120).returncode == 0
    with sqlite3.connect(runs / "d" / "arena.db") as c:
        assert c.execute("SELECT count(*) FROM rounds WHERE completed=1").fetchone()[0] == 2


def test_a_really_full_disk(tmp_path):
    """A 160 KiB tmpfs in a private mount namespace (root and `unshare` only: skipped elsewhere)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("mount") is None:
        pytest.skip("needs root and unshare to mount a small tmpfs")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    script = (f"mount -t tmpfs -o size=160k tmpfs {mnt} || exit 77; "
              f"ARENA_RUNS_DIR={mnt} {' '.join(arena_cmd())} train {PV} --recipe scripted --rounds 3 "
              f"--episodes 64 --run d --plain --no-tensorboard; echo rc=$?")
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=120)
    if "rc=" not in proc.stdout:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()[:200]}")
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert "rc=2" in proc.stdout and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "disk is full" in lines[0] or "No space left on device" in lines[0], lines[0]


# -- item 7: what a model writes reaches a person exactly as written -----------------------

MODEL_TEXTS = ["[conceal]Answer: 999[/conceal]Answer: 4", "Answer: 4 [/bold]", "[link=http://x]y[/link] :smile:"]


@pytest.mark.parametrize("text", MODEL_TEXTS)
def test_the_human_seat_sees_model_text_as_written(text):
    from agents.human import HumanAgent
    from arena.spaces import score_space, text_space

    console = Console(record=True, width=200, force_terminal=False)
    typed = iter(["[bold]not a number[/bold]", "0.5"])
    judge = HumanAgent(score_space(), "verifier", console=console, read_line=lambda prompt: next(typed))
    move = judge.act([{"prompt": text}])[0]
    assert float(move.action[0]) == 0.5
    shown = console.export_text()
    assert text in shown and "[bold]not a number[/bold]" in shown
    writer = HumanAgent(text_space(), "prover", console=console, read_line=lambda prompt: "")
    writer.act([{"prompt": text}])
    assert console.export_text().count(text) == 1  # export_text clears what it returned


def test_the_live_view_prints_run_and_metric_names_as_written():
    from arena.dashboard import Snapshot, render

    snap = Snapshot().apply({"type": "run_start", "run": "r", "game": "[bold]g[/bold]", "rounds": 1, "episodes": 1,
                             "seats": ["[red]a"], "history": []})
    snap.apply({"type": "round_end", "round": 0, "summary": {
        "round": 0, "episodes": 1, "mean_reward": {"[red]a": 1.0}, "metrics": {"[i]m": "[b]v"},
        "headline": ["[i]m"], "losses": {}, "episodes_per_s": 1.0, "tokens_per_s": 0.0, "elapsed_s": 0.0,
        "eta_s": 0.0}})
    console = Console(record=True, width=200, force_terminal=False)
    console.print(render(snap, 200))
    shown = console.export_text()
    assert "[bold]g[/bold]" in shown and "R:[red]a" in shown and "[i]m" in shown and "[b]v" in shown


@pytest.mark.slow
def test_tournament_tables_print_agent_specs_as_written(capsys, world, monkeypatch):
    monkeypatch.setenv("ARENA_RUNS_DIR", str(world["runs"]))
    spec = "scripted:constant?value=[red]x[/red]"
    assert main(["tournament", "s", "-n", "2", "--bootstrap", "0", "--name", "markup", "--plain",
                 "--seat", f"prover={spec},scripted:role-play"]) == 0
    out = "".join(capsys.readouterr().out.split())  # undo the wrapping
    assert f"prover/{spec}" in out


def test_download_from_an_unreachable_hub_is_one_line_at_once(monkeypatch):
    """Not huggingface_hub's minute of retries: the endpoint is probed first (here a closed local port)."""
    import socket
    import time

    from agents.hf.loading import check_model_ref
    from arena.types import ArenaError

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    t = time.perf_counter()
    with pytest.raises(ArenaError,
                       match=r"cannot download hf:no-such-org/no-such-model: http://127.0.0.1:\d+ is not reachable"):
        check_model_ref("no-such-org/no-such-model", download=True)
    assert time.perf_counter() - t < 5
