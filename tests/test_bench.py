"""`arena bench` runs end to end and reports consistent counts (its speed is printed, never asserted)."""
from __future__ import annotations

import json

import torch

from bench import command as bench


def test_bench_counts_tokens_episodes_and_forward_calls(tmp_path, capsys):
    threads = torch.get_num_threads()
    out = tmp_path / "bench.json"
    try:
        rc = bench.main(["--episodes", "6", "--concurrency", "3", "--naive-episodes", "2", "--max-new-tokens", "4",
                         "--learner-batch", "2", "--threads", "1", "--group-size", "2", "--no-tracemalloc",
                         "--json", str(out)])
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
    assert 0.0 <= batched["outside_forward_loop"] < 1.0 and batched["forward_s"] > 0
    assert set(figures["learner_step_s"]) == {"sft", "dpo", "rpo-sum", "rpo-mean", "bradley-terry", "verifier",
                                              "policy-gradient+kl", "filtered-nll"}
    assert all(s > 0 for s in figures["learner_step_s"].values())
    printed = capsys.readouterr().out
    assert "speed-up:" in printed and "tokens/s" in printed
