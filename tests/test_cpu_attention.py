"""The decode step's attention loop on a CPU (agents.hf.cpu_attention) against transformers' sdpa."""
from __future__ import annotations

import contextlib
import shutil
from dataclasses import replace as dataclass_replace

import pytest
import torch
from hf_tiny import GREEDY, PROMPTS, ids_of, obs
from transformers.integrations.sdpa_attention import sdpa_attention_forward

import agents.hf.cpu_attention as ca
from agents.hf import GeneratorAgent, SamplingConfig

needs_loop = pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                                reason="no C compiler: the loop is not built and sdpa runs (tested below)")


def _count_loop_calls(monkeypatch) -> list[str]:
    """The compiled loop's entries (attention alone; a Llama model's fused prefill and decode step layers), wrapped so
    that every call adds its name to the returned list (wherever they are looked up)."""
    calls = []

    def counting(name, fn):
        assert fn is not None  # a C compiler is here, so the loop must build

        def counted(*args):
            calls.append(name)
            return fn(*args)
        return lambda: counted

    monkeypatch.setattr(ca, "kernel", counting("attention", ca.kernel()))
    monkeypatch.setattr("agents.hf.decode_step.layer_kernel", counting("layer", ca.layer_kernel()))
    monkeypatch.setattr("agents.hf.decode_step.prefill_kernel", counting("prefill", ca.prefill_kernel()))
    return calls


def _greedy_without_and_with_the_loop(model, tok, monkeypatch):
    """The same greedy moves decoded with `cpu_decode` off (transformers' forward, sdpa), then on: (on, off, the
    loop's calls while on, by entry)."""
    agent = GeneratorAgent(model, tok, dataclass_replace(GREEDY, ignore_eos=True))
    agent.cpu_decode = False
    ref = agent.act(obs(PROMPTS))
    calls = _count_loop_calls(monkeypatch)
    agent.cpu_decode = True
    return agent.act(obs(PROMPTS)), ref, calls


@contextlib.contextmanager
def torch_threads(n: int):
    saved = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


class _Module:  # what sdpa_attention_forward reads of an attention module
    def __init__(self, groups: int):
        self.num_key_value_groups, self.is_causal, self.training = groups, True, False


def _case(b=5, h=4, kv=2, n=23, capacity=30, d=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, h, 1, d, generator=g)
    cache = torch.randn(2, b, kv, capacity, d, generator=g)
    k, v = cache[0, :, :, :n], cache[1, :, :, :n]  # views with gaps, as the KV cache hands them out
    mask = torch.ones(b, 1, 1, n, dtype=torch.bool)
    mask[1, ..., :7] = False  # left padding
    mask[3, ..., 4:9] = False
    return q, k, v, mask


@needs_loop
@pytest.mark.parametrize("kv,masked,d", [(4, True, 32), (2, True, 32), (1, True, 64), (4, False, 32), (2, True, 24)],
                         ids=["mha", "gqa", "mqa", "nomask", "dim24"])
def test_the_loop_equals_sdpa(kv, masked, d, monkeypatch):
    q, k, v, mask = _case(kv=kv, d=d)
    mask = mask if masked else None
    module = _Module(4 // kv)
    with torch.inference_mode():
        assert ca.loop_applies(q, k, v, mask, 0.0, {})
        ours, _ = ca.decode_attention(module, q, k, v, mask, scaling=0.3)
        ref, _ = sdpa_attention_forward(module, q, k, v, mask, scaling=0.3)
    assert ours.shape == ref.shape == (5, 1, 4, d)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)
    monkeypatch.setattr(ca, "PARALLEL_FLOATS", 0)  # its rows split over two threads: the same numbers
    with torch.inference_mode(), torch_threads(2):
        split, _ = ca.decode_attention(module, q, k, v, mask, scaling=0.3)
    assert torch.equal(split, ours)


def _prefill_case(b=6, h=4, kv=2, t=41, d=32, seed=1):
    """A prefill's queries: causal, left padding of 0..t-1 tokens (row 0 none, row 5 all but one), in a KV cache
    with room after them."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, t, h, d, generator=g).transpose(1, 2)  # (b, h, t, d) views of (b, t, h, d), as a model's
    cache = torch.randn(2, b, kv, t + 9, d, generator=g)
    k, v = cache[0, :, :, :t], cache[1, :, :, :t]
    pad = torch.tensor([0, 3, 17, 1, 9, t - 1])[:b]
    real = torch.arange(t)[None] >= pad[:, None]
    mask = (torch.tril(torch.ones(t, t, dtype=torch.bool))[None] & real[:, None, :])[:, None]  # (b, 1, t, t)
    return q, k, v, mask, real


@needs_loop
@pytest.mark.parametrize("kv,t,d", [(4, 41, 32), (2, 41, 32), (1, 70, 64), (2, 6, 16), (2, 41, 24)],
                         ids=["mha", "gqa", "mqa-long", "short", "dim24"])
def test_a_prefill_through_the_loop_equals_sdpa_for_every_real_query(kv, t, d, monkeypatch):
    q, k, v, mask, real = _prefill_case(kv=kv, t=t, d=d)
    module = _Module(4 // kv)
    with torch.inference_mode():
        assert ca.loop_applies(q, k, v, mask, 0.0, {})
        ours, _ = ca.decode_attention(module, q, k, v, mask, scaling=0.3)
        ref, _ = sdpa_attention_forward(module, q, k, v, mask, scaling=0.3)
    assert ours.shape == ref.shape == (6, t, 4, d)
    torch.testing.assert_close(ours[real], ref[real], rtol=1e-5, atol=2e-6)
    assert ours[~real].abs().max().item() == 0.0  # a padded query keeps no slot: zeros (sdpa's are not used)
    monkeypatch.setattr(ca, "PARALLEL_FLOATS", 0)  # its rows split over two threads: the same numbers
    with torch.inference_mode(), torch_threads(2):
        split, _ = ca.decode_attention(module, q, k, v, mask, scaling=0.3)
    assert torch.equal(split, ours)


@needs_loop
def test_a_prefill_mask_with_holes_and_one_for_every_row_are_kept_exactly():
    q, k, v, mask, _ = _prefill_case(t=37)
    mask = mask.clone()
    mask[:, :, 20:, 5:9] = False  # slots a later query may not see, inside its range
    with torch.inference_mode():
        ours, _ = ca.decode_attention(_Module(2), q, k, v, mask)
        ref, _ = sdpa_attention_forward(_Module(2), q, k, v, mask)
        shared = mask[:1]  # one row of masks for every batch row
        one, _ = ca.decode_attention(_Module(2), q, k, v, shared)
        one_ref, _ = sdpa_attention_forward(_Module(2), q, k, v, shared.expand(6, -1, -1, -1))
    real = mask.any(-1)[:, 0]
    torch.testing.assert_close(ours[real], ref[real], rtol=1e-5, atol=2e-6)
    torch.testing.assert_close(one, one_ref, rtol=1e-5, atol=2e-6)  # row 0 has no padding: every query is real


@needs_loop
def test_a_row_that_keeps_no_slot_gets_zeros_and_a_broadcast_mask_applies_to_every_row():
    q, k, v, mask = _case()
    mask[2] = False
    with torch.inference_mode():
        out, _ = ca.decode_attention(_Module(2), q, k, v, mask)
        assert out[2].abs().max().item() == 0.0
        one = mask[:1].clone()
        one[..., :5] = False
        ours, _ = ca.decode_attention(_Module(2), q, k, v, one)
        ref, _ = sdpa_attention_forward(_Module(2), q, k, v, one.expand(5, -1, -1, -1))
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)


def test_sdpa_runs_where_the_loop_does_not_apply():
    q, k, v, mask = _case()
    prefill = torch.randn(5, 4, 3, 32)
    assert not ca.loop_applies(prefill, k, v, None, 0.0, {})  # several queries and no mask: causal, sdpa's
    assert not ca.loop_applies(prefill, k, v, mask, 0.0, {})  # a mask of one query for three
    assert not ca.loop_applies(q.double(), k.double(), v.double(), mask, 0.0, {})
    assert not ca.loop_applies(q, k, v, mask, 0.1, {})  # dropout
    assert not ca.loop_applies(q, k, v, mask, 0.0, {"softcap": 30.0})
    assert not ca.loop_applies(q, k, v, mask.float(), 0.0, {})  # an additive mask
    assert not ca.loop_applies(q, k, v, torch.ones(5, 4, 1, 23, dtype=torch.bool), 0.0, {})  # one per head
    grad_q = q.clone().requires_grad_()
    assert not ca.loop_applies(grad_q, k, v, mask, 0.0, {})
    out, _ = ca.decode_attention(_Module(2), grad_q, k, v, mask)  # a gradient flows, through sdpa
    out.sum().backward()
    assert grad_q.grad is not None and grad_q.grad.abs().sum() > 0


@needs_loop
def test_the_generator_decodes_the_same_tokens_with_the_loop_and_restores_sdpa(tiny, monkeypatch):
    model, tok = tiny
    ours, ref, calls = _greedy_without_and_with_the_loop(model, tok, monkeypatch)
    assert ids_of(ours) == ids_of(ref)
    assert max(abs(a - b) for x, y in zip(ours, ref) for a, b in
               zip(x.extras["logprobs"], y.extras["logprobs"])) < 1e-4
    layers = model.config.num_hidden_layers
    assert calls == ["prefill"] * layers + ["layer"] * (11 * layers)  # the fused prefill, then every decode step
    assert model.config._attn_implementation == "sdpa"


def test_without_a_compiler_the_generator_keeps_sdpa(tiny, monkeypatch):
    model, tok = tiny
    monkeypatch.setattr(ca, "kernel", lambda: None)
    agent = GeneratorAgent(model, tok, SamplingConfig(max_new_tokens=6, ignore_eos=True))
    with ca.decode_attention_for(model) as used:
        assert not used and model.config._attn_implementation == "sdpa"
    assert all(len(c) == 6 for c in ids_of(agent.act(obs(PROMPTS))))


@needs_loop
def test_an_error_inside_leaves_sdpa_in_place(tiny):
    model, _ = tiny
    with pytest.raises(RuntimeError), ca.decode_attention_for(model) as used:
        assert used and model.config._attn_implementation == ca.NAME
        raise RuntimeError("inside")
    assert model.config._attn_implementation == "sdpa"


@needs_loop
def test_another_architecture_runs_the_loop_through_transformers_attention_interface(tiny, monkeypatch):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    _, tok = tiny
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2)).eval()
    ours, ref, calls = _greedy_without_and_with_the_loop(model, tok, monkeypatch)
    assert ids_of(ours) == ids_of(ref)
    assert calls == ["attention"] * (2 + 11 * 2)  # the prefill's and every decode step's, both layers
    assert model.config._attn_implementation == "sdpa"


def test_a_compiler_that_builds_nothing_leaves_sdpa_with_one_warning(monkeypatch):
    monkeypatch.setenv("CC", "false")
    ca._library.cache_clear()
    try:
        with pytest.warns(UserWarning, match="built no working decode loop; sdpa runs instead"):
            assert ca.kernel() is None and ca.layer_kernel() is None
    finally:
        monkeypatch.delenv("CC")
        ca._library.cache_clear()


@needs_loop
def test_the_fused_layer_refuses_a_position_outside_its_tables_and_more_slots_than_the_cache_holds():
    g = torch.Generator().manual_seed(3)
    qkv, cos, sin = torch.randn(2, 4 * 8, generator=g), torch.rand(6, 8, generator=g), torch.rand(6, 8, generator=g)
    k, v, out = torch.zeros(2, 1, 5, 8), torch.zeros(2, 1, 5, 8), torch.empty(2, 16)
    keep = torch.ones(2, 3, dtype=torch.bool)
    ca.run_layer(ca.layer_kernel(), qkv.clone(), cos, sin, torch.tensor([[2], [5]]), k, v, keep, out, 2, 0.5)
    assert k[:, :, 2].abs().sum() > 0 and torch.equal(v[:, 0, 2], qkv[:, 3 * 8:])  # slot n - 1 = 2 written
    with pytest.raises(ValueError, match="outside the rotary tables"):
        ca.run_layer(ca.layer_kernel(), qkv.clone(), cos, sin, torch.tensor([[2], [6]]), k, v, keep, out, 2, 0.5)
    with pytest.raises(ValueError, match="slots in caches of 5"):
        ca.run_layer(ca.layer_kernel(), qkv.clone(), cos, sin, torch.tensor([[2], [3]]), k, v,
                     torch.ones(2, 6, dtype=torch.bool), out, 2, 0.5)
