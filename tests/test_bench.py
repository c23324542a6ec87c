"""`arena bench` runs end to end and reports consistent counts (its speed is printed, never asserted)."""
from __future__ import annotations

import importlib.util
import json
import re
import shlex
from pathlib import Path

import pytest
import torch

from bench import command as bench
from bench.floors import Shape, shape_of, step_costs, timed_generate

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


@pytest.mark.slow
def test_bench_counts_tokens_episodes_and_forward_calls(tmp_path, capsys):
    threads = torch.get_num_threads()
    out = tmp_path / "bench.json"
    try:
        rc = bench.main(["--episodes", "6", "--concurrency", "3", "--naive-episodes", "2", "--max-new-tokens", "4",
                         "--learner-batch", "2", "--threads", "1", "--group-size", "2", "--no-tracemalloc",
                         "--bw-mib", "4", "--matmul-n", "64", "--repeats", "2", "--json", str(out)])
    finally:
        torch.set_num_threads(threads)
    assert rc == 0
    figures = json.loads(out.read_text())
    naive, batched = figures["naive"], figures["batched"]
    # fixed length: every prover move is exactly 4 tokens; one prover move per episode
    assert naive["completion_tokens"] == 2 * 4 and batched["completion_tokens"] == 6 * 4
    assert naive["episodes"] == 2 and batched["episodes"] == 6
    # naive: one generate per move = 4 forwards per move; batched: 2 waves of 3 episodes, 4 forwards each
    assert naive["forward_calls"] == 2 * 4 and batched["forward_calls"] == 2 * 4
    assert batched["mean_batch"] == 3.0
    shared = figures["shared_prompts"]  # 3 prompts of the first wave -> 2 rows: 1 distinct x 2 vs 2 distinct
    assert (shared["rows"], shared["group"]) == (2.0, 2.0) and shared["grouped_s"] > 0 and shared["distinct_s"] > 0
    update = figures["shared_prompts_update"]  # the same 2 rows, one policy-gradient update each way
    assert (update["rows"], update["group"]) == (2.0, 2.0) and update["grouped_s"] > 0 and update["distinct_s"] > 0
    assert update["grouped_distinct_rows"] in (1.0, 2.0)  # 1 where the two rows sampled the same completion
    assert 0.0 <= batched["outside_forward_loop"] < 1.0 and batched["forward_s"] > 0
    assert set(figures["learner_step_s"]) == {"sft", "dpo", "rpo-sum", "rpo-mean", "bradley-terry", "verifier",
                                              "policy-gradient+kl", "filtered-nll"}
    assert all(s > 0 for s in figures["learner_step_s"].values())
    printed = capsys.readouterr().out
    assert f"{update['grouped_distinct_rows']:.0f} of the grouped side's 2 rows are distinct" in printed
    assert "speed-up:" in printed and "tokens/s" in printed and "shared prompts, learner:" in printed
    assert [r["step"] for r in figures["floors"]["rows"]] == [  # 3 rows: no chunks
        "prefill (one pass)", "decode step", "decode step (transformers' forward, sdpa)"]
    assert "steps against their floors" in printed


# -- floors ---------------------------------------------------------------------------------

def test_step_costs_count_weights_kv_cache_and_flops_by_hand():
    s = Shape(linear_params=1000, out_embedding=300, weight_bytes=5200, hidden=10, layers=2, heads=4, kv_heads=2,
              head_dim=5, elem=4)
    c = step_costs(s, [3, 5], new_tokens=3)
    kv_token = 2 * 2 * 2 * 5 * 4  # K and V x layers x kv heads x head_dim x bytes = 160
    pair = 4 * 2 * 4 * 5  # QK^T and PV, 2 FLOPs a multiply-add, x layers x heads x head_dim = 160
    assert c["prefill"] == {"bytes": 5200 + 8 * kv_token,
                            "flops": 2 * 1000 * 8 + 2 * 300 * 2 + pair * (3 * 4 // 2 + 5 * 6 // 2)}
    # decode steps 1 and 2: (3+1)+(5+1) = 10 and (3+2)+(5+2) = 12 keys; 11 on average
    assert c["decode"] == {"bytes": 5200 + 11 * kv_token, "flops": (2 * 1000 + 2 * 300) * 2 + pair * 11}


def test_shape_of_the_tiny_model():
    from agents.tiny import new_tiny_causal_lm

    model, _ = new_tiny_causal_lm(0)
    s = shape_of(model)
    per_layer = 4 * 128 * 128 + 3 * 128 * 384  # q, k, v, o; gate, up, down
    assert s.linear_params == 4 * per_layer and s.out_embedding == 197 * 128
    assert s.weight_bytes == 4 * sum(p.numel() for p in model.parameters())  # tied embedding: once
    assert (s.layers, s.heads, s.kv_heads, s.head_dim, s.elem) == (4, 4, 4, 32, 4)


def test_timed_generate_splits_a_chunked_prefill_from_the_decode_steps():
    from agents.hf import GeneratorAgent, SamplingConfig, encode_prompt
    from agents.tiny import new_tiny_causal_lm

    model, tok = new_tiny_causal_lm(0)
    agent = GeneratorAgent(model, tok, SamplingConfig(max_new_tokens=5, ignore_eos=True, chat_template=False))
    prompts = [encode_prompt(tok, f"Question: {i} + {i}?", agent.sampling) for i in range(5)]
    T = max(map(len, prompts))
    t = timed_generate(agent, prompts, list(range(5)), 2 * T)  # two rows a pass: 3 passes
    assert (t["prefill_calls"], t["decode_steps"]) == (3, 4) and t["prefill_s"] > 0 and t["decode_step_s"] > 0
    assert agent.prefill_tokens is None  # the agent's own setting is back
    assert timed_generate(agent, prompts, list(range(5)), 0)["prefill_calls"] == 1


def test_floors_rows_are_time_over_the_larger_floor(tmp_path):
    threads = torch.get_num_threads()
    out = tmp_path / "floors.json"
    try:
        assert bench.main(["--floors", "--concurrency", "3", "--max-new-tokens", "3", "--repeats", "2", "--bw-mib", "4",
                           "--matmul-n", "64", "--threads", "1", "--json", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    f = json.loads(out.read_text())
    assert f["batch"] == 3 and f["new_tokens"] == 3 and f["repeats"] == 2
    assert [r["step"] for r in f["rows"]] == ["prefill (one pass)", "decode step",
                                              "decode step (transformers' forward, sdpa)"]  # fp32 on a CPU: both ways
    for r in f["rows"]:
        floor = max(r["memory_s"], r["compute_s"])
        assert r["ratio"]["median"] == pytest.approx(r["seconds"]["median"] / floor)
        assert r["ratio_memory"]["max"] == pytest.approx(r["seconds"]["max"] / r["memory_s"])
        assert r["memory_s"] == pytest.approx(r["bytes"] / f["copy_bandwidth"]["max"])
        assert r["compute_s"] == pytest.approx(r["flops"] / f["matmul_flops"]["max"])
    a, s = f["attention"], f["shape"]  # the decode step's attention alone, beside a plain read of its cache
    assert a["rows"] == 3 and a["context"] == round(f["prompt_tokens"] / 3 + 3 / 2)
    assert a["capacity"] == f["max_prompt"] + 3
    assert a["kv_bytes"] == 2 * 3 * s["kv_heads"] * a["context"] * s["head_dim"] * s["elem"]
    for way in ("sdpa", "sum"):
        assert 0 < a[way]["seconds"]["min"] <= a[way]["seconds"]["median"] <= a[way]["seconds"]["max"]
        assert a[way]["gbps"] == pytest.approx(a["kv_bytes"] / a[way]["seconds"]["median"] / 1e9)


# -- the GPU suite, dry run --------------------------------------------------------------------

@pytest.mark.skipif(torch.cuda.is_available(), reason="with a GPU, --gpu-suite would run the real suite")
def test_gpu_suite_without_a_gpu_is_one_line_naming_the_dry_run(tmp_path):
    from arena.types import ArenaError

    with pytest.raises(ArenaError, match="needs a CUDA GPU.*--dry-run") as e:
        bench.main(["--gpu-suite", "--out", str(tmp_path / "gc")])
    assert "\n" not in str(e.value) and not (tmp_path / "gc").exists()  # nothing written


def suite_command() -> list[str]:
    """The dry run's command as docs/benchmarks.md shows it (the block marked as run here)."""
    text = DOCS.read_text()
    block = re.search(r"<!-- runs in tests/test_bench.py -->\n```bash\n(.*?)```", text, re.S)
    assert block, "docs/benchmarks.md lost the dry run's block"
    lines = [ln for ln in block.group(1).splitlines() if ln.startswith("arena bench --gpu-suite --dry-run")]
    assert len(lines) == 1
    return shlex.split(lines[0].split("#")[0])[2:]


@pytest.mark.slow
def test_gpu_suite_dry_run_writes_one_json_and_one_table_with_every_part(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the docs' command writes ./runs/gpu-check
    assert bench.main(suite_command()) == 0
    out = tmp_path / "runs" / "gpu-check"
    suite = json.loads((out / "suite.json").read_text())
    parts = suite["parts"]
    assert list(parts) == ["floors", "generation", "memory", "checkability"]
    assert all(p["status"] == "ok" and p["figures"] for p in parts.values()), {n: p["status"] for n, p in parts.items()}
    floors = parts["floors"]["figures"]
    assert [r["step"] for r in floors["rows"]] == ["prefill (one pass)", "decode step",
                                                   "decode step (transformers' forward, sdpa)"]
    assert all(r["ratio"]["min"] > 0 for r in floors["rows"])
    gen = parts["generation"]["figures"]
    assert [r["batch"] for r in gen["rows"]] == [1, 4]
    if importlib.util.find_spec("vllm") is None:  # this venv: the HF agent alone, and why
        assert "vllm package is not installed" in gen["vllm_skipped"] and "vllm" not in gen["rows"][0]
    assert suite["roofline_gbps"]["value"] == pytest.approx(2 * floors["copy_bandwidth"]["max"] / 1e9)
    memory = {r["mode"]: r for r in parts["memory"]["figures"]}
    assert set(memory) == {"fp32", "bf16", "lora"} and memory["lora"]["trained"] < memory["fp32"]["trained"]
    rounds = parts["checkability"]["figures"]["rounds"]
    assert [r["round"] for r in rounds] == [0, 1] and all("learn: prover" in r["phases"] for r in rounds)
    table = (out / "suite.json").with_suffix(".md").read_text()
    for title in ("Steps against their floors", "Generation", "Learner step", "Checkability: two rounds"):
        assert f"## {title}" in table
    assert table.count("| ok |") == 4 and table.strip() in capsys.readouterr().out
    assert "decode attention alone, per layer" in table and floors["attention"]["sdpa"]["gbps"] > 0
