"""vllm: agents. The one-line errors run everywhere; the engine tests run where `vllm` is importable
(`make vllm` builds .venv-vllm; `.venv-vllm/bin/python -m pytest -q tests/test_vllm.py`) and are
skipped elsewhere (the normal .venv, CI)."""
import importlib.util
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

from agents.hf import GeneratorAgent, SamplingConfig, encode_prompt
from agents.tiny import new_tiny_causal_lm
from arena.registry import spec as game_spec
from arena.specs import AgentContext, build_agent
from arena.types import ArenaError

ROOT = Path(__file__).resolve().parents[1]
HAS_VLLM = importlib.util.find_spec("vllm") is not None
needs_vllm = pytest.mark.skipif(not HAS_VLLM, reason="vllm is not installed (make vllm; docs/scaling.md#vllm)")

SHAPE = dict(hidden_size=64, intermediate_size=192, num_hidden_layers=2, num_attention_heads=2,
             num_key_value_heads=2)  # head_dim 32: one vLLM's CPU backend runs
PROMPTS = ["Q: 12+7=", "What is 3*4?", "a", "The quick brown fox", "x=1; y=", "hello world, hello",
           "0123456789", "Proof: since", "?", "Let n be even. Then", "ab" * 20, "Zz", "The answer is",
           "7 7 7 7", "[[", "if a then b"]


def ctx_for(seat: str, tmp_path) -> AgentContext:
    return AgentContext.for_seat(game_spec("prover-verifier-v1"), seat, tmp_path / "runs", "cpu")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    model, tok = new_tiny_causal_lm(0, init_std=0.15, **SHAPE)  # wider than the default: well separated greedy choices
    d = tmp_path_factory.mktemp("tiny32")
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


# -- one-line errors, before vLLM is imported (every venv) ------------------------------

def test_missing_vllm_is_one_line_naming_the_extra_and_readme(model_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # find_spec("vllm") is None: as if not installed
    with pytest.raises(ArenaError) as e:
        build_agent(f"vllm:{model_dir}", ctx_for("prover", tmp_path))
    msg = str(e.value)
    assert "\n" not in msg and ".[vllm]" in msg and "make vllm" in msg and "docs/scaling.md#vllm" in msg


def test_unsupported_head_dim_refused_before_loading(tmp_path, monkeypatch):
    import agents.vllm.config as cfg

    monkeypatch.setattr(cfg, "engine_on_cpu", lambda: True)
    monkeypatch.setitem(sys.modules, "vllm", None)  # the shape check comes first, without vLLM
    with pytest.raises(ArenaError) as e:
        build_agent("vllm:games/prover_verifier/assets/prover", ctx_for("prover", tmp_path))
    msg = str(e.value)
    assert "\n" not in msg and "head_dim 24" in msg and "CPU backend" in msg and "hf:" in msg


def test_head_dim_check_reads_the_config():
    from agents.tiny import tiny_config
    from agents.vllm import CPU_HEAD_SIZES, check_head_dim

    check_head_dim(tiny_config(197, **SHAPE), "m", on_cpu=True)  # 64 / 2 = 32: fine
    check_head_dim(tiny_config(197, hidden_size=96, num_attention_heads=4), "m", on_cpu=False)  # GPU: not ours to judge
    with pytest.raises(ArenaError, match="head_dim 24"):
        check_head_dim(tiny_config(197, hidden_size=96, num_attention_heads=4), "m", on_cpu=True)
    assert 24 not in CPU_HEAD_SIZES and 32 in CPU_HEAD_SIZES


def test_bad_specs_are_one_line(model_dir, tmp_path):
    with pytest.raises(ArenaError, match="vllm agents play Text seats"):
        build_agent(f"vllm:{model_dir}", ctx_for("verifier", tmp_path))
    with pytest.raises(ArenaError, match="LoRA"):
        build_agent(f"vllm:{model_dir}?lora=4", ctx_for("prover", tmp_path))
    with pytest.raises(ArenaError, match="gpu_memory_utilization") as e:
        build_agent(f"vllm:{model_dir}?no_such_option=1", ctx_for("prover", tmp_path))
    assert "temperature" in str(e.value)  # the hf options are listed too
    with pytest.raises(ArenaError, match="gpu_memory_utilization"):
        build_agent(f"vllm:{model_dir}?gpu_memory_utilization=2", ctx_for("prover", tmp_path))


# -- the engine (where vllm is installed) ------------------------------------------------

@pytest.fixture(scope="module")
def agents(model_dir, tmp_path_factory):
    """(the vLLM agent built from its spec, an HF GeneratorAgent on the very same model object)."""
    if not HAS_VLLM:
        pytest.skip("vllm is not installed")
    ctx = AgentContext.for_seat(game_spec("prover-verifier-v1"), "prover", tmp_path_factory.mktemp("runs"), "cpu")
    vl = build_agent(f"vllm:{model_dir}?temperature=0&max_new_tokens=24&stop=%3F%3F", ctx)
    return vl, GeneratorAgent(vl.model, vl.tokenizer, vl.sampling)


def prompt_ids(agent, prompts=PROMPTS):
    return [encode_prompt(agent.tokenizer, p, agent.sampling) for p in prompts]


def assert_same_greedy(vl, hf):
    a, b = vl.generate(prompt_ids(vl), list(range(len(PROMPTS)))), hf.generate(prompt_ids(hf))
    for x, y in zip(a, b):
        assert (x.completion_ids, x.text, x.finish) == (y.completion_ids, y.text, y.finish)
        assert max(abs(p - q) for p, q in zip(x.logprobs, y.logprobs)) < 1e-5
    return a


@needs_vllm
@pytest.mark.slow
def test_greedy_equals_the_hf_agent_with_eos_stop_strings_and_length(agents):
    vl, hf = agents
    first = hf.generate(prompt_ids(hf)[:1])[0].completion_ids
    stop_token = first[len(first) // 2]  # a token the model does emit: some rows end on it ("eos")
    saved = vl.stop_token_ids, hf.stop_token_ids
    vl.stop_token_ids = hf.stop_token_ids = {*vl.stop_token_ids, stop_token}
    try:
        out = assert_same_greedy(vl, hf)
    finally:
        vl.stop_token_ids, hf.stop_token_ids = saved
    assert {c.finish for c in out} >= {"eos", "length"}
    assert vl.kind == "hf" and vl.seeded and vl.produces == "text"


@needs_vllm
@pytest.mark.slow
def test_sampled_logprobs_are_the_models_own_at_temperature_one(agents):
    vl, _ = agents
    old = vl.sampling
    vl.sampling = SamplingConfig(temperature=0.7, top_k=20, top_p=0.9, max_new_tokens=16)
    try:
        outs = vl.generate(prompt_ids(vl), list(range(100, 100 + len(PROMPTS))))
    finally:
        vl.sampling = old
    worst = 0.0
    with torch.no_grad():
        for c in outs:
            ids = torch.tensor([c.prompt_ids + c.completion_ids])
            lp = torch.log_softmax(vl.model(ids).logits[0].float(), -1)
            n = len(c.prompt_ids)
            ref = [lp[n - 1 + i, t].item() for i, t in enumerate(c.completion_ids)]
            worst = max(worst, max(abs(a - b) for a, b in zip(c.logprobs, ref)))
    assert worst < 1e-5
    assert any(c.completion_ids != outs[0].completion_ids for c in outs[1:])  # really sampled


@needs_vllm
@pytest.mark.slow
def test_seeded_samples_do_not_depend_on_the_batch(agents):
    vl, _ = agents
    old = vl.sampling
    vl.sampling = SamplingConfig(temperature=1.0, max_new_tokens=12)
    long = [f"{i}: {p} " * 8 for i, p in enumerate(PROMPTS * 4)]  # 64 prompts, ~7k tokens: more than one
    try:                                                             # engine step's default token budget
        ids, seeds = prompt_ids(vl, long), [7 * i + 1 for i in range(len(long))]
        together = vl.generate(ids, seeds)
        order = list(reversed(range(len(ids))))
        reversed_ = vl.generate([ids[i] for i in order], [seeds[i] for i in order])
        alone = [vl.generate([ids[i]], [seeds[i]])[0] for i in (0, 5)]
        again = vl.generate(ids[:1], [seeds[0] + 1])[0]
    finally:
        vl.sampling = old
    assert [c.completion_ids for c in together] == [reversed_[order.index(i)].completion_ids for i in range(len(ids))]
    assert [c.completion_ids for c in alone] == [together[0].completion_ids, together[5].completion_ids]
    assert again.completion_ids != together[0].completion_ids  # the seed matters


@needs_vllm
@pytest.mark.slow
def test_new_weights_reach_the_engine_before_the_next_generation(agents, tmp_path):
    vl, hf = agents
    before = vl.generate(prompt_ids(vl), [0] * len(PROMPTS))
    assert not vl.sync()  # nothing changed: no reload
    opt = torch.optim.SGD(vl.model.parameters(), lr=2.0)
    batch = torch.tensor([prompt_ids(vl, ["The answer is 42. The answer is 42."])[0]])
    vl.model.train()
    loss = vl.model(batch, labels=batch).loss
    loss.backward()
    opt.step()
    vl.model.eval()
    reloads = vl.reloads
    after = assert_same_greedy(vl, hf)  # generate syncs first, then equals the HF agent on the new weights
    assert vl.reloads == reloads + 1
    assert [c.completion_ids for c in after] != [c.completion_ids for c in before]
    vl.save(tmp_path / "ckpt")  # an hf: checkpoint: the HF agent reloads it and decodes the same
    again = build_agent(f"hf:{tmp_path / 'ckpt'}", ctx_for("prover", tmp_path))
    assert isinstance(again, GeneratorAgent) and again.sampling == vl.sampling
    assert [c.completion_ids for c in again.generate(prompt_ids(again))] == [c.completion_ids for c in after]
    vl.load(tmp_path / "ckpt")  # loading in place bumps the versions: one more reload, same outputs
    assert vl.sync() and not vl.sync()


# -- arena bench --vllm ------------------------------------------------------------------

def test_bench_vllm_without_vllm_is_one_line(monkeypatch):
    from bench.command import main

    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(ArenaError, match=r"\.\[vllm\]"):
        main(["--vllm", "--batches", "1", "--repeats", "1", "--max-new-tokens", "2"])


def test_bench_vllm_table_has_one_row_per_batch_and_the_median_ratio():
    from bench.vllm import render, spread

    rows = [{"batch": b, "hf": spread([100.0 * b, 200.0 * b, 300.0 * b]),
             "vllm": spread([50.0 * b, 400.0 * b, 500.0 * b]), "ratio": 2.0,
             "per_cpu_s": {"hf": 1000.0, "vllm": 3000.0}} for b in (1, 8)]
    text = render(rows, weight_bytes=10**9, hbm_gbps=4000.0, push=spread([0.01, 0.02, 0.04])).splitlines()
    assert len(text) == 4 and "roofline" in text[0]
    assert text[1].split()[:8] == ["1", "100", "/", "200", "/", "300", "50", "/"] and "2.00x" in text[1]
    assert "1,000" in text[1] and "3,000" in text[1]  # tokens per CPU-second
    assert "200.00" in text[1] and "5.0%" in text[1]  # 200 tok/s / batch 1 x 1 GB: 200 GB/s of 4000
    assert "10.0 / 20.0 / 40.0 ms" in text[3]


@needs_vllm
@pytest.mark.slow
def test_bench_vllm_runs_both_agents_at_each_batch(tmp_path):
    import json

    from bench.command import main

    out = tmp_path / "b.json"
    assert main(["--vllm", "--batches", "1,3", "--repeats", "2", "--max-new-tokens", "4", "--threads", "1",
                 "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["batch"] for r in rows] == [1, 3]
    assert all(r[k]["min"] <= r[k]["median"] <= r[k]["max"] and r[k]["min"] > 0 for r in rows for k in ("hf", "vllm"))


# -- several processes (torchrun): vLLM's external_launcher, one engine per process -----------

def test_launcher_options_only_under_a_launcher(monkeypatch):
    from agents.vllm.agent import launcher_options

    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    assert launcher_options() == {}
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert launcher_options() == {}
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ArenaError, match="without RANK and LOCAL_RANK") as e:
        launcher_options()
    assert "\n" not in str(e.value)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert launcher_options() == {"distributed_executor_backend": "external_launcher", "tensor_parallel_size": 1}


RANKS_SCRIPT = '''
import json, sys
import torch
from agents.hf import GeneratorAgent, SamplingConfig, encode_prompt
from agents.tiny import new_tiny_causal_lm
from agents.vllm.agent import VLLMAgent
from arena.rollout.distributed import join_ranks

torch.set_num_threads(1)
out, tag = sys.argv[1], sys.argv[2]
ranks = join_ranks("cpu")  # as `arena train` joins the launcher's group, before any seat is built
model, tok = new_tiny_causal_lm(0, init_std=0.15, **SHAPE)
greedy = SamplingConfig(temperature=0.0, max_new_tokens=16)
vl, hf = VLLMAgent.from_model(model, tok, greedy), GeneratorAgent(model, tok, greedy)
ids = [encode_prompt(tok, p, greedy) for p in PROMPTS]
res = {"before": [c.completion_ids for c in vl.generate(ids, list(range(len(ids))))],
       "before_hf": [c.completion_ids for c in hf.generate(ids)]}
for _ in range(ranks.rank):  # the ranks call the engine unevenly (they play different episodes)
    vl.generate(ids[:2], [0, 1])
opt = torch.optim.SGD(model.parameters(), lr=2.0)
batch = torch.tensor([ids[0] + ids[1]])
model.train()
model(batch, labels=batch).loss.backward()
opt.step()
model.eval()
res["after"] = [c.completion_ids for c in vl.generate(ids, list(range(len(ids))))]
res["after_hf"] = [c.completion_ids for c in hf.generate(ids)]
vl.sampling = SamplingConfig(temperature=1.0, max_new_tokens=16)
res["sampled"] = [c.completion_ids for c in vl.generate(ids, [5 * i + 1 for i in range(len(ids))])]
res["reloads"] = vl.reloads
with open(f"{out}/{tag}-rank{ranks.rank}.json", "w") as f:
    json.dump(res, f)
'''


def launched(args: list[str], processes: int, cwd: Path) -> None:
    """`python <args>` in one process, or under `torchrun --standalone` with `processes` (gloo on CPU)."""
    if not (torch.distributed.is_available() and torch.distributed.is_gloo_available()):
        pytest.skip("torch.distributed with gloo is not available")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    launch = [sys.executable] if processes == 1 else [torchrun, "--standalone", "--nproc_per_node", str(processes)]
    done = subprocess.run([*launch, *args], env=env, capture_output=True, text=True, timeout=900, cwd=cwd)
    assert done.returncode == 0, done.stderr[-3000:]


@needs_vllm
@pytest.mark.slow
def test_two_torchrun_processes_each_run_an_engine_like_one_process(tmp_path):
    """2 CPU processes under torchrun (gloo), one engine each (external_launcher): greedy equals the HF
    agent before and after a training step on both ranks, and every output equals one process's."""
    script = tmp_path / "ranks.py"
    script.write_text(f"SHAPE = {SHAPE!r}\nPROMPTS = {PROMPTS!r}\n" + textwrap.dedent(RANKS_SCRIPT))
    for processes, tag in ((1, "one"), (2, "two")):
        launched([str(script), str(tmp_path), tag], processes, tmp_path)
    one, r0, r1 = (json.loads((tmp_path / f"{t}.json").read_text()) for t in ("one-rank0", "two-rank0", "two-rank1"))
    for res in (one, r0, r1):
        assert res["before"] == res["before_hf"] and res["after"] == res["after_hf"]
        assert res["after"] != res["before"] and res["reloads"] == 1  # the step reached the engine, once
        assert len({tuple(c) for c in res["sampled"]}) > 1
    assert r0 == one and r1 == one


SMALL = ["verifier_samples=4", "verifier_problems=8", "verifier_epochs=1", "prover_steps=1", "prover_problems=2",
         "bon_problems=4", "bon_samples=8", "pool_size=200"]


@needs_vllm
@pytest.mark.slow
def test_arena_train_with_a_vllm_seat_under_torchrun_plays_like_one_process(model_dir, tmp_path):
    """`arena train` (2 rounds, prover on vLLM) in one process and under torchrun with 2 processes:
    the same 16 episodes (round 1 is played after round 0's update reached each rank's engine) and
    round 0's prover checkpoint within float rounding (`fit`'s all-reduce sums in another order)."""
    from safetensors.torch import load_file

    runs = {}
    for processes in (1, 2):
        runs[processes] = tmp_path / f"p{processes}" / "runs"
        sets = [x for kv in SMALL for x in ("--set", kv)]
        args = ["--runs-dir", str(runs[processes]), "train", "prover-verifier-v1", "--rounds", "2", "--episodes", "8",
                "--concurrency", "4", "--seed", "3", "--run", "pv", "--plain",
                "--seat", f"prover=vllm:{model_dir}?max_new_tokens=24", *sets]
        (tmp_path / f"p{processes}").mkdir()
        launched(["-m", "arena.cli", *args] if processes == 1 else ["-m", "--", "arena.cli", *args], processes,
                 tmp_path / f"p{processes}")

    def episodes(run: Path) -> list[tuple]:
        with sqlite3.connect(run / "arena.db") as c:
            rows = c.execute("SELECT round, idx, seed, rewards, transcript FROM episodes ORDER BY round, idx")
            return [(r, i, seed, json.loads(w), [(x["seat"], x["action"]) for x in json.loads(t)])
                    for r, i, seed, w, t in rows.fetchall()]

    one, two = episodes(runs[1] / "pv"), episodes(runs[2] / "pv")
    assert len(one) == 16 and {e[0] for e in one} == {0, 1}
    assert [(e[0], e[1], e[2], e[4]) for e in two] == [(e[0], e[1], e[2], e[4]) for e in one]  # every text
    for a, b in zip(one, two):
        assert b[3] == pytest.approx(a[3], abs=1e-5)
    ckpt = "checkpoints/prover/round-0/model.safetensors"
    w1, w2 = load_file(str(runs[1] / "pv" / ckpt)), load_file(str(runs[2] / "pv" / ckpt))
    assert w1.keys() == w2.keys() and max((w1[k] - w2[k]).abs().max().item() for k in w1) <= 1e-5
