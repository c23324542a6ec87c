"""Learners under torchrun: 2 CPU processes (gloo) train like one process.

`fit` shards every micro-batch by rank, weights examples by the count over all processes and
all-reduces the gradients before clipping; so both ranks end bit-identical, and within 1e-5 of
the same update run in a single process."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

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


@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="torch.distributed with gloo is not available")
def test_two_gloo_processes_train_bit_identical_and_like_one_process(tmp_path):
    from safetensors.torch import load_file

    script = tmp_path / "fit_script.py"
    script.write_text(SCRIPT)
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    one = subprocess.run([sys.executable, str(script), str(tmp_path), "one"], env=env, capture_output=True,
                         text=True, timeout=600)
    assert one.returncode == 0, one.stderr[-3000:]
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    two = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", str(script), str(tmp_path), "two"],
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


def test_train_under_several_processes_is_refused_in_one_line(capsys, runs, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    from arena.cli import main

    assert main(["train", "prover-verifier-v0", "--recipe", "scripted", "--rounds", "1", "--run", "ws"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "WORLD_SIZE=2" in err and not (runs / "ws").exists()
