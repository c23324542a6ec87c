"""`completion_logprobs` runs each repeated prompt once, and each row that is a copy of another once: the
same log-probs and gradients as one pass over every row."""
from __future__ import annotations

import pytest
import torch

import agents.batch as batch_mod
from agents.batch import batch_from_token_ids, completion_logprobs, copied_rows, repeat_rows, shared_prompts
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
    # rows 0 and 6 are copies: 6 distinct rows, their 3 prompts (longest 9), then their 6 completions (longest 6)
    assert seen == [(3, 9), (6, 6)]
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

    torch.manual_seed(0)  # peft draws the random LoRA weights from the global generator: fix them here
    model = get_peft_model(tiny_llama(64, seed=3), LoraConfig(r=4, target_modules=["q_proj", "v_proj"],
                                                               init_lora_weights=False)).train()
    assert batch_mod._continues_from_cache(model)
    lp1, _, g1 = logprobs_and_grads(model, batch(), False, monkeypatch)
    lp2, _, g2 = logprobs_and_grads(model, batch(), True, monkeypatch)
    torch.testing.assert_close(lp2, lp1, rtol=0, atol=1e-5)
    grads = [(a, c) for a, c, p in zip(g2, g1, model.parameters()) if p.requires_grad]
    # random LoRA weights give gradients of ~100: float32 rounding of sums that size is ~1e-5, so an
    # element near 0 is compared at 1e-6 of its tensor's largest (a fixed 1e-5 failed on ~2% of draws)
    assert grads and all(torch.allclose(a, c, rtol=1e-4, atol=1e-6 * float(c.abs().max())) for a, c in grads)
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


def test_copied_rows_finds_the_copies_and_their_first_rows():
    keep, inverse = copied_rows(batch())
    assert keep.tolist() == [0, 1, 2, 3, 4, 5] and inverse.tolist() == [0, 1, 2, 3, 4, 5, 0]
    assert copied_rows(batch_from_token_ids(PROMPTS, COMPLETIONS[:3], 0)) is None
    # the same tokens with another prompt/completion split are not a copy (the completion mask differs)
    assert copied_rows(batch_from_token_ids([[1, 5], [1]], [[6], [5, 6]], 0)) is None


def test_copies_run_once_and_give_every_row_the_one_pass_logprobs_and_gradients(monkeypatch):
    model = tiny_llama(64, seed=3).train()
    b = batch()
    monkeypatch.setattr(batch_mod, "_merges_copies", lambda m: False)
    lp1, _, g1 = logprobs_and_grads(model, b, True, monkeypatch)
    monkeypatch.undo()
    assert batch_mod._merges_copies(model)
    lp2, _, g2 = logprobs_and_grads(model, b, True, monkeypatch)
    torch.testing.assert_close(lp2, lp1, rtol=0, atol=1e-5)
    assert torch.equal(lp2[0], lp2[6])
    for a, c in zip(g2, g1):
        torch.testing.assert_close(a, c, rtol=1e-4, atol=1e-5)
    assert max(float(g.abs().max()) for g in g1) > 1e-3


def test_dropout_in_training_keeps_every_copy():
    from peft import LoraConfig, get_peft_model

    model = tiny_llama(64, seed=3)
    model.config.attention_dropout = 0.5  # a config's dropout (each attention layer applies its copy in training)
    for layer in model.model.layers:
        layer.self_attn.attention_dropout = 0.5
    assert batch_mod._merges_copies(model)  # eval mode
    model.train()
    with torch.no_grad():
        assert batch_mod._merges_copies(model)  # nothing to differentiate: no mask per copy to keep
    assert not batch_mod._merges_copies(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        lp, _ = completion_logprobs(model, batch())
    assert not torch.equal(lp[0], lp[6])  # each copy drew its own dropout mask
    model.config.attention_dropout = 0.0
    assert batch_mod._merges_copies(model)
    lora = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj"], lora_dropout=0.1)).train()
    assert not batch_mod._merges_copies(lora)  # an nn.Dropout module


@pytest.mark.parametrize("threads", [1, 2])
def test_repeat_rows_backward_is_index_selects_bit_for_bit(threads):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 4, 10, 6, generator=g)
    index = torch.randint(0, 8, (32,), generator=g)
    grad = torch.randn(32, 4, 13, 6, generator=g)[:, :, :10]  # sliced out of a cat: not contiguous
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
        a.index_select(0, index).backward(grad)
        out = repeat_rows(b, index)
        out.backward(grad)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(out, x.index_select(0, index)) and torch.equal(b.grad, a.grad)
    assert float(b.grad.abs().max()) > 0
