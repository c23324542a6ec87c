"""agents.hf.decode_step: a Llama model's decode step against transformers' forward."""
from __future__ import annotations

import copy

import pytest
import torch
from hf_tiny import PROMPTS, ids_of, obs

from agents.hf import GeneratorAgent, SamplingConfig
from agents.hf.decode_step import LlamaStep
from agents.hf.kvcache import cache_argument, new_kv_cache
from agents.tiny import new_tiny_causal_lm


def _prefilled(model, tok, prompts, capacity=40):
    enc = tok(prompts, padding=True, padding_side="left", return_tensors="pt")
    mask = enc["attention_mask"]
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = new_kv_cache(model.config, capacity, rows=len(prompts))
    model(input_ids=enc["input_ids"], attention_mask=mask, position_ids=pos, **{cache_argument(model): cache},
          use_cache=True)
    return cache, mask, pos[:, -1:] + 1


@pytest.mark.parametrize("kv_heads", [4, 2], ids=["mha", "gqa"])
def test_a_step_gives_transformers_logits_and_fills_the_cache_alike(kv_heads):
    model, tok = new_tiny_causal_lm(seed=1, init_std=0.3, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
                                    num_attention_heads=4, num_key_value_heads=kv_heads)
    model.eval()
    with torch.inference_mode():
        cache, mask, pos = _prefilled(model, tok, PROMPTS)
        twin = copy.deepcopy(cache)
        tokens = torch.tensor([5, 9, 17, 30])
        mask = torch.cat([mask, mask.new_ones((len(PROMPTS), 1))], dim=1)
        ref = model(input_ids=tokens[:, None], attention_mask=mask, position_ids=pos, **{cache_argument(model): twin},
                    use_cache=True).logits[:, -1].float()
        step = LlamaStep.of(model, cache)
        assert step is not None
        ours = step(tokens, pos, mask)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    for a, b in zip(cache.layers, twin.layers):
        assert a.length == b.length
        torch.testing.assert_close(a.keys, b.keys, rtol=1e-4, atol=1e-5)  # float rounding: joined matmuls
        torch.testing.assert_close(a.values, b.values, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kv_heads", [4, 2], ids=["mha", "gqa"])
def test_a_prefill_in_two_chunks_gives_transformers_logits_and_fills_the_real_slots_alike(kv_heads):
    model, tok = new_tiny_causal_lm(seed=2, init_std=0.3, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
                                    num_attention_heads=4, num_key_value_heads=kv_heads)
    model.eval()
    enc = tok(PROMPTS, padding=True, padding_side="left", return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    assert not mask.all()  # left padding in some rows
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    twin, cache = new_kv_cache(model.config, 60, rows=4), new_kv_cache(model.config, 60, rows=4)
    with torch.inference_mode():
        ref = model(input_ids=ids, attention_mask=mask, position_ids=pos, **{cache_argument(model): twin},
                    use_cache=True).logits[:, -1].float()
        step = LlamaStep.of(model, cache)
        ours = torch.cat([step.prefill(ids[:3], mask[:3], pos[:3], 0), step.prefill(ids[3:], mask[3:], pos[3:], 3)])
    assert ref.abs().max() > 5  # logits up to ~8: float32 rounding of another order of sums reaches ~3e-5
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=5e-5)
    real = mask.bool()[:, None, :, None]  # padded slots hold what no real query reads
    for a, b in zip(cache.layers, twin.layers):
        assert a.length == b.length == ids.shape[1]
        torch.testing.assert_close(a.keys * real, b.keys * real, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(a.values * real, b.values * real, rtol=1e-4, atol=1e-5)


def test_sampled_completions_are_the_same_with_the_step_and_without(tiny):
    model, tok = tiny
    agent = GeneratorAgent(model, tok, SamplingConfig(max_new_tokens=10, ignore_eos=False))
    prompts = obs(PROMPTS * 3)
    seeds = list(range(12))
    agent.cpu_decode = False
    ref = agent.act(prompts, seeds)
    agent.cpu_decode = True
    ours = agent.act(prompts, seeds)
    assert ids_of(ours) == ids_of(ref)
    assert [m.extras["finish"] for m in ours] == [m.extras["finish"] for m in ref]
    assert max(abs(a - b) for x, y in zip(ours, ref) for a, b in zip(x.extras["logprobs"], y.extras["logprobs"])) < 1e-4


def test_the_step_is_left_to_transformers_where_it_does_not_apply(tiny, monkeypatch):
    from transformers import DynamicCache, MistralConfig, MistralForCausalLM

    import agents.hf.decode_step as ds

    model, tok = tiny
    assert LlamaStep.of(model, new_kv_cache(model.config, 8)) is None  # rows not known: no buffers to write into
    cache = new_kv_cache(model.config, 8, rows=2)
    assert LlamaStep.of(model, cache) is not None
    monkeypatch.setattr(ds, "MAX_PARAMS", sum(p.numel() for p in model.parameters()) - 1)
    assert LlamaStep.of(model, cache) is None  # a larger model: transformers' forward, the loop inside it
    monkeypatch.undo()
    assert LlamaStep.of(model, DynamicCache(config=model.config)) is None  # not the generator's cache
    half = copy.deepcopy(model).to(torch.bfloat16)
    assert LlamaStep.of(half, cache) is None
    mistral = MistralForCausalLM(MistralConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                               num_attention_heads=2, num_key_value_heads=2))
    assert LlamaStep.of(mistral, new_kv_cache(mistral.config, 8, rows=2)) is None
    peft = pytest.importorskip("peft")
    lora = peft.get_peft_model(copy.deepcopy(model), peft.LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    assert LlamaStep.of(lora, cache) is None
    assert LlamaStep.of(lora.get_base_model(), cache) is None  # its layers are LoRA layers now


def test_the_step_refuses_a_token_outside_the_vocabulary_and_a_mask_that_is_not_the_cache_and_one():
    model, tok = new_tiny_causal_lm(seed=1, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                    num_attention_heads=2, num_key_value_heads=2)
    model.eval()
    with torch.inference_mode():
        cache, mask, pos = _prefilled(model, tok, PROMPTS)
        step = LlamaStep.of(model, cache)
        wider = torch.cat([mask, mask.new_ones((len(PROMPTS), 1))], dim=1)
        with pytest.raises(ValueError, match="outside the vocabulary"):
            step(torch.tensor([1, 2, len(tok) + 5, 3]), pos, wider)
        with pytest.raises(ValueError, match="a mask of"):
            step(torch.tensor([1, 2, 3, 4]), pos, mask)  # the new token's slot missing
        assert all(layer.length == mask.shape[1] for layer in cache.layers)  # nothing written
        assert step(torch.tensor([1, 2, 3, 4]), pos, wider).shape == (len(PROMPTS), model.config.vocab_size)


def test_the_c_is_used_only_where_it_computes_what_torch_does():
    import agents.hf.decode_step as ds

    lib = ds._library()
    assert lib is not None and ds._checks_out(lib)

    class Wrong:  # the right RMSNorm, a SiLU x up that writes nothing
        rms_norm = lib.rms_norm

        @staticmethod
        def silu_mul(*args):
            return 0

    assert not ds._checks_out(Wrong())
