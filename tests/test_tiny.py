"""The tiny default model: char tokenizer, seeded init, SFT pretraining to a plain HF directory."""
from __future__ import annotations

import json

import pytest
import torch

from agents.tiny import (SPECIAL_TOKENS, char_tokenizer, count_parameters, new_tiny_causal_lm, new_tiny_scorer,
                         pretrain, sft_batch)
from arena.spaces import CHARSET



SMALL = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
             num_key_value_heads=2, max_position_embeddings=128)


def test_char_tokenizer_round_trips_text_one_token_per_char(tmp_path):
    from transformers import AutoTokenizer

    tok = char_tokenizer()
    text = "Ann has 7 apples.\n\tGets 3 -> 10?  é ÿ ~"
    ids = tok(text)["input_ids"]
    assert ids[0] == tok.bos_token_id == 1
    assert len(ids) == len(text) + 1
    assert tok.decode(ids, skip_special_tokens=True) == text
    assert len(tok) == len(SPECIAL_TOKENS) + len(CHARSET)
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2, 3)
    # characters outside the charset are <unk>, never an error
    assert tok("€", add_special_tokens=False)["input_ids"] == [tok.unk_token_id]
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again(text)["input_ids"] == ids
    assert again.decode(ids, skip_special_tokens=True) == text
    assert again.pad_token_id == 0 and again.eos_token_id == 2


def test_tiny_models_are_seeded_and_leave_the_global_rng_alone():
    state = torch.random.get_rng_state()
    a, _ = new_tiny_causal_lm(seed=3, **SMALL)
    b, _ = new_tiny_causal_lm(seed=3, **SMALL)
    c, _ = new_tiny_causal_lm(seed=4, **SMALL)
    assert torch.equal(torch.random.get_rng_state(), state)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["model.embed_tokens.weight"], sc["model.embed_tokens.weight"])
    assert a.lm_head.weight is a.model.embed_tokens.weight  # tied


def test_default_size_is_in_the_tiny_range():
    model, tok = new_tiny_causal_lm(seed=0)
    n = count_parameters(model)
    assert 300_000 < n < 3_000_000
    assert model.config.model_type == "llama" and model.config.vocab_size == len(tok)


def test_tiny_scorer_outputs_one_value_per_sequence():
    model, tok = new_tiny_scorer(seed=0, **SMALL)
    enc = tok(["abc", "a longer text"], padding=True, return_tensors="pt")
    out = model(**enc).logits
    assert out.shape == (2, 1) and torch.isfinite(out).all()


def test_sft_batch_masks_the_prompt_and_ends_with_eos():
    tok = char_tokenizer()
    batch = sft_batch(tok, [("ab", "xyz"), ("abcd", "q")])
    # row 0: <s> a b x y z </s>; completion = x y z </s>
    assert batch.input_ids[0, :7].tolist() == [1, *tok("abxyz", add_special_tokens=False)["input_ids"], 2]
    assert batch.completion_mask[0].tolist() == [False] * 3 + [True] * 4
    assert batch.completion_mask[1].tolist() == [False] * 5 + [True] * 2
    assert batch.attention_mask[0].tolist() == [1] * 7 and batch.input_ids.shape == (2, 7)


@pytest.mark.slow
def test_pretrain_lowers_the_loss_and_writes_a_plain_hf_directory(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from agents.hf import GeneratorAgent, SamplingConfig

    # a copy task: "x:<w>=" -> "<w>"
    words = ["ab", "ba", "aab", "bba", "abab", "bb", "aa", "bab"]
    pairs = [(f"x:{w}=", w) for w in words]
    logs: list[str] = []
    out = tmp_path / "tiny"
    # Width 64 (not SMALL's 32): at width 32 whether 300 steps learn the copy depends on the
    # seed and on the CPU's float summation order; at 64, seeds 0-7 all reach 8/8 here.
    copier = dict(SMALL, hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=4)
    result = pretrain(pairs, out, steps=300, seed=0, lr=5e-3, batch_size=8, warmup=5, log_every=100,
                      progress=False, log=logs.append, sampling=SamplingConfig(max_new_tokens=8), **copier)
    assert result.final_loss < 0.15 < 4.0 < result.first_loss
    assert len(logs) == 3 and "step 300/300" in logs[-1]
    files = {p.name for p in out.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "pretrain.json"} <= files
    assert not any(f.endswith((".bin", ".pt", ".pkl")) for f in files)
    config = json.loads((out / "config.json").read_text())
    assert "auto_map" not in config and config["architectures"] == ["LlamaForCausalLM"]
    assert json.loads((out / "pretrain.json").read_text())["steps"] == 300

    model = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    agent = GeneratorAgent(model, tok, SamplingConfig(temperature=0, max_new_tokens=8))
    moves = agent.act([{"prompt": p} for p, _ in pairs])
    solved = sum(m.action == w for m, (_, w) in zip(moves, pairs))
    assert solved >= 7, [m.action for m in moves]  # it learned to copy (8/8 for seeds 0-7 when written)


def test_pretrain_rejects_empty_data(tmp_path):
    with pytest.raises(ValueError):
        pretrain([], tmp_path / "x", steps=1)
