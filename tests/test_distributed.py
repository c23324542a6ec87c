"""Training under torchrun: 2 CPU processes (gloo) train like one process.

`fit` shards every micro-batch by rank, weights examples by the count over all processes and
all-reduces the gradients before clipping; so both ranks end bit-identical, and within 1e-5 of
the same update run in a single process. `arena train` under torchrun splits each round's
episodes over the ranks, gathers them, trains on every rank and writes the run once (rank 0)."""
from __future__ import annotations

import collections
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

needs_gloo = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                reason="torch.distributed with gloo is not available")
ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent('''
    import os, sys
    import torch
    from safetensors.torch import save_file
    from agents.batch import completion_logprobs, encode_pairs
    from agents.learners import DPOLearner, Optimization, SFTLearner, fit, reference_policy
    from agents.losses import sft_nll
    from agents.tiny import new_tiny_causal_lm
    from types import SimpleNamespace

    torch.set_num_threads(1)
    out, tag = sys.argv[1], sys.argv[2]
    rank = int(os.environ.get("RANK", 0))
    pairs = [(f"{a}+{b}=", str(a + b)) for a in range(5) for b in range(3)]  # 15 examples

    def save(model, name):
        save_file({k: v.clone().contiguous() for k, v in model.state_dict().items()},
                  f"{out}/{tag}-{name}-rank{rank}.safetensors")

    # A. the gradient itself: `fit` with plain SGD (lr 1, so weights move by the clipped gradient).
    # Uneven shards (micro-batches of 5 over 2 ranks), accumulation over 3 and clipping all in play.
    model, tok = new_tiny_causal_lm(seed=0, init_std=0.3)

    def loss_of(idx):
        batch = encode_pairs(tok, [pairs[i][0] for i in idx], [pairs[i][1] for i in idx])
        loss = sft_nll(*completion_logprobs(model, batch))
        return loss, {"nll": loss.item()}  # a per-example mean: its step mean is the same however sharded

    opt = Optimization(batch_size=5, grad_accum_steps=3, epochs=2, max_grad_norm=0.5)
    m0 = fit(model, torch.optim.SGD(model.parameters(), lr=1.0), len(pairs), loss_of, opt,
             torch.Generator().manual_seed(3))
    save(model, "sgd")

    # B. the learners as recipes use them (AdamW): SFT, then DPO against the reference policy.
    # AdamW's first steps are ~lr * sign(g): where |g| is near its eps, summation order alone moves a
    # weight by up to lr, so lr is 1e-6 here (part A checks the gradients to 1e-5 at lr 1).
    model, tok = new_tiny_causal_lm(seed=0, init_std=0.3)
    agent = SimpleNamespace(model=model, tokenizer=tok)
    sft = SFTLearner(data=pairs, opt=Optimization(lr=1e-6, batch_size=5, grad_accum_steps=2, epochs=2))
    sft.reset(7)
    m1 = sft.update(agent, [])
    dpo = DPOLearner(data=[(p, c, c + "9") for p, c in pairs], reference=reference_policy(model),
                     opt=Optimization(lr=1e-6, batch_size=4, epochs=1))
    dpo.reset(8)
    m2 = dpo.update(agent, [])
    save(model, "adamw")
    with open(f"{out}/{tag}-rank{rank}.txt", "w") as f:
        f.write(repr((m0["loss"], m0["nll"], m1["loss"], m2["loss"], m1["steps"], m2["steps"])))
''')


def clean_env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    return env


def torchrun(nproc: int = 2) -> list[str]:
    """torchrun on this interpreter; `--standalone` rendezvouses on a free local port."""
    exe = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    return [exe, "--standalone", "--nproc_per_node", str(nproc)]


@pytest.mark.slow
@needs_gloo
def test_two_gloo_processes_train_bit_identical_and_like_one_process(tmp_path):
    from safetensors.torch import load_file

    script = tmp_path / "fit_script.py"
    script.write_text(SCRIPT)
    env = clean_env()
    one = subprocess.run([sys.executable, str(script), str(tmp_path), "one"], env=env, capture_output=True,
                         text=True, timeout=600)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([*torchrun(), str(script), str(tmp_path), "two"],
                         env=env, capture_output=True, text=True, timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]
    for part in ("sgd", "adamw"):
        single = load_file(str(tmp_path / f"one-{part}-rank0.safetensors"))
        r0, r1 = (load_file(str(tmp_path / f"two-{part}-rank{r}.safetensors")) for r in (0, 1))
        for k in single:
            assert torch.equal(r0[k], r1[k]), f"{part}: ranks differ at {k}"
            diff = (r0[k] - single[k]).abs().max().item()
            assert diff <= 1e-5, f"{part}: 2 processes vs 1 at {k}: {diff:.2e}"
    # the figures the learners report agree too (summed over the ranks)
    m_one = eval((tmp_path / "one-rank0.txt").read_text())
    m_r0, m_r1 = (eval((tmp_path / f"two-rank{r}.txt").read_text()) for r in (0, 1))
    assert m_r0 == m_r1 and m_r0 == pytest.approx(m_one, rel=1e-5)


# `arena train` itself, each rank's final weights dumped when its trainer closes (a patch made by this
# script only: the product has no test hooks).
TRAIN = textwrap.dedent('''
    import os, sys
    import torch
    from safetensors.torch import save_file
    import arena.selfplay as selfplay
    from arena.cli import main

    torch.set_num_threads(1)
    out = sys.argv[1]
    close = selfplay.Trainer.close

    def dump_then_close(self):
        from accelerate import PartialState

        rank = int(os.environ.get("RANK", 0))
        with open(f"{out}/learners-rank{rank}.txt", "w") as f:  # the processes the learners' `fit` saw
            f.write(str(PartialState().num_processes))
        for seat, s in self.setup.seats.items():
            state = {k: v.detach().clone().contiguous() for k, v in s.agent.model.state_dict().items()}
            save_file(state, f"{out}/{seat}-rank{rank}.safetensors")
        close(self)

    selfplay.Trainer.close = dump_then_close
    sys.exit(main(sys.argv[2:]))
''')
SMALL = ["verifier_samples=4", "verifier_problems=8", "verifier_epochs=1", "prover_steps=1", "prover_problems=2",
         "bon_problems=4", "bon_samples=8", "pool_size=200"]


def train_args(runs: Path, rounds: int = 2) -> list[str]:
    sets = [x for kv in SMALL for x in ("--set", kv)]
    return ["--runs-dir", str(runs), "train", "prover-verifier-v1", "--rounds", str(rounds), "--episodes", "8",
            "--concurrency", "4", "--seed", "3", "--run", "pv", "--plain", *sets]


def arena(script: Path, out: Path, args: list[str], processes: int) -> subprocess.CompletedProcess:
    """`arena <args>` through `script`, in one process or under torchrun (`--` ends torchrun's own
    options: its argparse would take `--run` for its `--run-path`)."""
    out.mkdir(exist_ok=True)
    launch = [sys.executable] if processes == 1 else [*torchrun(processes), "--"]
    done = subprocess.run([*launch, str(script), str(out), *args], env=clean_env(), capture_output=True, text=True,
                          timeout=900, cwd=out)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The same 2-round `arena train` in one process and in 2 gloo processes."""
    from games.prover_verifier.pretraining import ASSETS

    if not (ASSETS / "prover").is_dir():
        pytest.skip("tiny bases not shipped")
    base = tmp_path_factory.mktemp("torchrun")
    script = base / "train_script.py"
    script.write_text(TRAIN)
    one = arena(script, base / "one", train_args(base / "one" / "runs"), 1)
    two = arena(script, base / "two", train_args(base / "two" / "runs"), 2)
    return script, base / "one", base / "two", one, two


def episodes(run: Path) -> list[tuple]:
    with sqlite3.connect(run / "arena.db") as c:
        rows = c.execute("SELECT round, idx, seed, rewards, transcript FROM episodes ORDER BY round, idx").fetchall()
    return [(r, i, seed, json.loads(rewards), [(s["seat"], s["action"]) for s in json.loads(t)])
            for r, i, seed, rewards, t in rows]


def assert_same_episodes(one: list[tuple], two: list[tuple], n: int = 16) -> None:
    """Same episodes, same texts; numbers (the verifier's scores, rewards) to 1e-5: the verifier that
    scored round 1 differs from the one-process one by float rounding (see below)."""
    assert [e[:3] for e in two] == [e[:3] for e in one] and len(one) == n
    for a, b in zip(one, two):
        assert b[3] == pytest.approx(a[3], abs=1e-5)
        assert [s for s, _ in b[4]] == [s for s, _ in a[4]]
        for (_, x), (_, y) in zip(a[4], b[4]):
            assert y == x if isinstance(x, str) else y == pytest.approx(x, abs=1e-5)


@needs_gloo
@pytest.mark.slow
def test_arena_train_under_torchrun_splits_rounds_trains_alike_and_writes_once(trained):
    """2 gloo processes vs one on the same `arena train` (prover-verifier-v1, both seats tiny LLMs
    trained through `fit`, 2 rounds of 8 episodes): the ranks end bit-identical; the round-0
    checkpoints are within float rounding (amplified by AdamW, below) of the one-process run's; the
    same episodes are played, round 0's identically; events.jsonl has each event once and the checkpoints exist once.

    Round 1's weights are not compared at 1e-5: AdamW's first step of a round moves a weight by
    about lr * sign(g), so where |g| is near AdamW's eps the float rounding of the round-0 weights
    (<= 4e-6) moves that weight by up to 2 * lr (measured: 1.0e-3 = 2 * 5e-4 on ~1% of the weights).
    Since the verifier became a likelihood scorer (scores near -10) the
    same holds within round 0: its all-reduced steps round differently (measured: 4.8e-5 on a verifier
    weight) and reach the prover through its rewards (8.3e-5). So round 0's weights are compared at
    2 * each seat's lr, and round 1's episodes, which that prover samples, by their keys only (a token
    can flip); round 0's are compared whole."""
    from safetensors.torch import load_file

    from games.prover_verifier.recipe import CheckabilityParams

    params = CheckabilityParams()
    _, out_one, out_two, _, two = trained
    said = " ".join(two.stdout.split())
    assert said.count("round 1 episodes=8") == 1 and said.count("run written to") == 1  # rank 0 only

    assert (out_one / "learners-rank0.txt").read_text() == "1"
    assert [(out_two / f"learners-rank{r}.txt").read_text() for r in (0, 1)] == ["2", "2"]  # sharded, all-reduced
    for seat in ("prover", "verifier"):
        single = load_file(str(out_one / f"{seat}-rank0.safetensors"))
        r0, r1 = (load_file(str(out_two / f"{seat}-rank{r}.safetensors")) for r in (0, 1))
        assert single.keys() == r0.keys() == r1.keys()
        for k in r0:
            assert torch.equal(r0[k], r1[k]), f"{seat}: the ranks differ at {k}"
        first_one, first_two = (load_file(str(d / "runs" / "pv" / "checkpoints" / seat / "round-0"
                                              / "model.safetensors")) for d in (out_one, out_two))
        for k in first_one:
            diff = (first_two[k] - first_one[k]).abs().max().item()
            tol = 2 * (params.verifier_lr if seat == "verifier" else params.prover_lr)  # 2 * the seat's lr (see above)
            assert diff <= tol, f"{seat} round 0: 2 processes vs 1 at {k}: {diff:.2e}"

    run_one, run_two = out_one / "runs" / "pv", out_two / "runs" / "pv"
    one, two_eps = episodes(run_one), episodes(run_two)
    assert [e[:3] for e in two_eps] == [e[:3] for e in one]  # the same episodes were played, in the same order
    assert_same_episodes([e for e in one if e[0] == 0], [e for e in two_eps if e[0] == 0], n=8)
    events = [json.loads(line) for line in (run_two / "events.jsonl").read_text().splitlines()]
    assert len({json.dumps({**e, "time": 0}, sort_keys=True) for e in events}) == len(events)  # nothing twice
    counts = collections.Counter(e["type"] for e in events)
    assert counts == collections.Counter(json.loads(line)["type"]
                                         for line in (run_one / "events.jsonl").read_text().splitlines())
    assert counts["run_start"] == 1 and counts["run_end"] == 1 and counts["round_end"] == 2 and counts["episode"] == 16
    assert sorted(e["done"] for e in events if e["type"] == "episode" and e["round"] == 1) == list(range(1, 9))
    for seat in ("prover", "verifier"):
        assert sorted(p.name for p in (run_two / "checkpoints" / seat).iterdir()) == ["round-0", "round-1"]
    assert sorted(p.name for p in (out_two / "runs").iterdir()) == ["pv"]  # no setup directory left
    assert {p.name for p in run_two.iterdir()} == {p.name for p in run_one.iterdir()}
    if (run_two / "tensorboard").is_dir():  # when the tensorboard package is installed: one log
        assert len(list((run_two / "tensorboard").iterdir())) == 1
    with sqlite3.connect(run_two / "arena.db") as c:
        assert c.execute("SELECT round FROM rounds WHERE completed=1 ORDER BY round").fetchall() == [(0,), (1,)]
        assert c.execute("SELECT count(*) FROM checkpoints").fetchone() == (4,)
    summaries = [json.loads(line)["summary"] for line in (run_two / "events.jsonl").read_text().splitlines()
                 if json.loads(line)["type"] == "round_end"]
    reference = [json.loads(line)["summary"] for line in (run_one / "events.jsonl").read_text().splitlines()
                 if json.loads(line)["type"] == "round_end"]
    assert summaries[0]["metrics"] == pytest.approx(reference[0]["metrics"], abs=1e-5)
    for seat in ("prover", "verifier"):  # means over a round's steps of weights that differ as above (2.0e-4 measured)
        assert summaries[0]["losses"][seat] == pytest.approx(reference[0]["losses"][seat], rel=1e-3, abs=1e-6)


@needs_gloo
@pytest.mark.slow
def test_resume_under_torchrun_ends_as_the_uninterrupted_run(trained):
    """1 round under torchrun, then `arena resume --rounds 2` under torchrun: every rank loads the
    round-0 checkpoints and ends bit-identical to the uninterrupted 2-process run."""
    from safetensors.torch import load_file

    script, _, out_two, _, _ = trained
    out = out_two.parent / "resumed"
    arena(script, out, train_args(out / "runs", rounds=1), 2)
    resumed = arena(script, out, ["--runs-dir", str(out / "runs"), "resume", "pv", "--rounds", "2", "--plain"], 2)
    assert " ".join(resumed.stdout.split()).count("resumed and finished") == 1  # rank 0 only
    for seat in ("prover", "verifier"):
        whole = load_file(str(out_two / f"{seat}-rank0.safetensors"))
        for r in (0, 1):
            mine = load_file(str(out / f"{seat}-rank{r}.safetensors"))
            assert all(torch.equal(mine[k], whole[k]) for k in whole), f"{seat} rank {r}"
        assert sorted(p.name for p in (out / "runs" / "pv" / "checkpoints" / seat).iterdir()) == ["round-0", "round-1"]
    types = [json.loads(line)["type"] for line in (out / "runs" / "pv" / "events.jsonl").read_text().splitlines()]
    assert types.count("round_end") == 2 and types.count("run_start") == 2 and types.count("episode") == 16


@needs_gloo
@pytest.mark.slow
def test_a_setup_error_on_rank_0_stops_every_rank_with_one_line(tmp_path):
    """The run exists already: rank 0's claim fails; rank 1 hears of it rather than waiting for a round."""
    runs = tmp_path / "runs"
    (runs / "taken").mkdir(parents=True)
    (runs / "taken" / "config.json").write_text("{}")
    two = subprocess.run([*torchrun(), "-m", "--", "arena.cli", "--runs-dir", str(runs), "train", "prover-verifier-v1",
                          "--recipe", "scripted", "--rounds", "1", "--run", "taken", "--plain"],
                         env=clean_env(), capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert two.returncode != 0
    lines = [line for line in two.stderr.splitlines() if "already exists" in line]
    assert len(lines) == 2, two.stderr[-2000:]
    assert all(line.startswith("error: run 'taken' already exists") for line in lines), two.stderr[-2000:]
    assert sorted(p.name for p in runs.iterdir()) == ["taken"]


def test_ray_workers_and_several_processes_are_refused_before_anything_is_made(runs, monkeypatch):
    from arena.runs.config import TrainConfig
    from arena.selfplay import new_run
    from arena.types import ArenaError

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ArenaError, match="do not combine"):
        new_run(TrainConfig(game="prover-verifier-v1", recipe="scripted", rounds=1, run="w", workers=2), runs)
    assert not (runs / "w").exists() and not list(runs.glob(".setup-*"))


def test_each_rank_plays_a_contiguous_share_and_the_stats_add_up():
    from arena.rollout.distributed import merge_stats, share_of
    from arena.runner import PlayStats

    for n in (0, 1, 7, 8, 64):
        for world in (1, 2, 3, 5):
            shares = [share_of(n, r, world) for r in range(world)]
            assert [i for lo, hi in shares for i in range(lo, hi)] == list(range(n))
            assert max(hi - lo for lo, hi in shares) - min(hi - lo for lo, hi in shares) <= 1
    a = PlayStats(wall_s=2.0, completion_tokens=10, episodes=4)
    b = PlayStats(wall_s=3.0, completion_tokens=5, episodes=3)
    a.act_s["p"], a.act_calls["p"], a.act_batch["p"] = 1.0, 2, 8
    b.act_s["p"], b.act_calls["p"], b.act_batch["p"] = 2.0, 3, 6
    m = merge_stats([a, b])
    assert (m.wall_s, m.completion_tokens, m.episodes, m.act_s["p"], m.act_calls["p"]) == (3.0, 15, 7, 1.5, 5)
    assert m.mean_batch == pytest.approx(14 / 5) and m.overhead_fraction == pytest.approx(0.5)
