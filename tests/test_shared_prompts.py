"""`completion_logprobs` runs each repeated prompt once: the same log-probs and gradients as one pass."""
from __future__ import annotations

import pytest
import torch

import agents.batch as batch_mod
from agents.batch import batch_from_token_ids, completion_logprobs, shared_prompts
from test_losses import tiny_llama

PROMPTS = [[1, 5, 6, 7, 8], [1, 9, 10, 11, 12, 13, 14, 15, 16], [1, 20, 21]]
ROWS = [0, 0, 1, 1, 1, 2, 0]  # groups of unequal size, prompts of unequal length, interleaved
COMPLETIONS = [[30, 31, 2], [32, 33, 34, 35, 36, 2], [37], [38, 39, 40, 2], [41, 2], [42, 43, 44, 45, 46], [30, 31, 2]]


def batch(max_length=None):
    return batch_from_token_ids([PROMPTS[r] for r in ROWS], COMPLETIONS, 0, max_length)


def logprobs_and_grads(model, b, share: bool, monkeypatch):
    monkeypatch.setattr(batch_mod, "_continues_from_cache", lambda m: share)
    model.zero_grad()
    lp, mask = completion_logprobs(model, b)
    weights = torch.arange(1, lp.numel() + 1, dtype=lp.dtype).view_as(lp)  # every entry its own weight
    (lp * weights).sum().backward()
    return lp.detach(), mask, [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("max_length", [None, 9])
def test_shared_prompts_give_the_one_pass_logprobs_and_gradients(monkeypatch, max_length):
    model = tiny_llama(64, seed=3).train()
    b = batch(max_length)
    assert shared_prompts(b) is not None
    lp1, m1, g1 = logprobs_and_grads(model, b, False, monkeypatch)
    lp2, m2, g2 = logprobs_and_grads(model, b, True, monkeypatch)
    assert torch.equal(m1, m2) and int(m1.sum()) == int(b.completion_mask.sum())
    torch.testing.assert_close(lp2, lp1, rtol=0, atol=1e-5)
    assert torch.all(lp2[~m2] == 0) and torch.all(lp2[m2] < 0)
    for a, c in zip(g2, g1):
        torch.testing.assert_close(a, c, rtol=1e-4, atol=1e-5)
    assert max(float(g.abs().max()) for g in g1) > 1e-3  # the comparison is not between zeros


def test_each_repeated_prompt_goes_through_the_model_once():
    model = tiny_llama(64, seed=3)
    seen: list[tuple[int, ...]] = []
    model.register_forward_pre_hook(lambda m, args, kw: seen.append(tuple(kw["input_ids"].shape)), with_kwargs=True)
    b = batch()
    with torch.no_grad():
        completion_logprobs(model, b)
    assert seen == [(3, 9), (7, 6)]  # 3 unique prompts (longest 9), then 7 completions (longest 6)
    unique, source = shared_prompts(b)
    assert unique == PROMPTS and source == ROWS


def test_nothing_to_share_or_no_cache_is_one_pass():
    distinct = batch_from_token_ids(PROMPTS, COMPLETIONS[:3], 0)
    assert shared_prompts(distinct) is None
    assert shared_prompts(batch_from_token_ids([[], []], [[5, 6], [5, 6]], 0)) is None  # no prompt token before

    class Plain(torch.nn.Module):  # a model that takes no KV cache: one pass, whatever the prompts
        def __init__(self):
            super().__init__()
            self.inner = tiny_llama(64, seed=3)
            self.config = self.inner.config
            self.calls = 0

        def forward(self, input_ids, attention_mask):
            self.calls += 1
            return self.inner(input_ids=input_ids, attention_mask=attention_mask)

    from transformers import MistralConfig, MistralForCausalLM  # sliding-window layers: one pass

    windowed = MistralForCausalLM(MistralConfig(vocab_size=64, hidden_size=32, intermediate_size=64,
                                                num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                                sliding_window=4))
    assert not batch_mod._continues_from_cache(windowed) and batch_mod._continues_from_cache(tiny_llama(64, seed=3))

    plain = Plain()
    with torch.no_grad():
        lp, _ = completion_logprobs(plain, batch())
        ref, _ = completion_logprobs(plain.inner, batch())
    assert plain.calls == 1
    torch.testing.assert_close(lp, ref, rtol=0, atol=1e-5)


def test_a_lora_model_shares_its_prompts_too(monkeypatch):
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(tiny_llama(64, seed=3), LoraConfig(r=4, target_modules=["q_proj", "v_proj"],
                                                               init_lora_weights=False)).train()
    assert batch_mod._continues_from_cache(model)
    lp1, _, g1 = logprobs_and_grads(model, batch(), False, monkeypatch)
    lp2, _, g2 = logprobs_and_grads(model, batch(), True, monkeypatch)
    torch.testing.assert_close(lp2, lp1, rtol=0, atol=1e-5)
    grads = [(a, c) for a, c, p in zip(g2, g1, model.parameters()) if p.requires_grad]
    assert grads and all(torch.allclose(a, c, rtol=1e-4, atol=1e-5) for a, c in grads)
    assert max(float(c.abs().max()) for _, c in grads) > 1e-3


def test_the_shared_backward_is_the_same_bits_every_time_on_two_threads():
    # the repeated prompt rows sum their gradients in a fixed order (an index-put with atomic adds on
    # two threads did not: the demo's runs differed from one run to the next)
    from agents.tiny import new_tiny_causal_lm

    model, _ = new_tiny_causal_lm(0)
    model.train()
    g = torch.Generator().manual_seed(0)
    prompts = [torch.randint(4, 100, (90 + i,), generator=g).tolist() for i in range(8)]
    completions = [torch.randint(4, 100, (20 + i % 7,), generator=g).tolist() for i in range(32)]
    order = torch.randperm(32, generator=g).tolist()  # a shuffled micro-batch: each prompt's rows interleaved
    b = batch_from_token_ids([prompts[i // 4] for i in order], [completions[i] for i in order], 0)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        grads = []
        for _ in range(4):
            model.zero_grad()
            lp, _ = completion_logprobs(model, b)
            (lp * torch.linspace(0, 1, lp.numel()).view_as(lp)).sum().backward()
            grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(grads[0], x) for x in grads[1:])
