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


def _count_loop_calls(monkeypatch) -> list[int]:
    """The compiled loop, wrapped so that every call adds to the returned list (wherever it is looked up)."""
    fn, calls = ca.kernel(), []
    assert fn is not None  # a C compiler is here, so the loop must build

    def counted(*args):
        calls.append(1)
        return fn(*args)

    monkeypatch.setattr(ca, "kernel", lambda: counted)
    monkeypatch.setattr("agents.hf.decode_step.kernel", lambda: counted)
    return calls


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
    assert not ca.loop_applies(prefill, k, v, None, 0.0, {})  # more than one query token
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
    agent = GeneratorAgent(model, tok, dataclass_replace(GREEDY, ignore_eos=True))
    agent.cpu_decode = False
    ref = agent.act(obs(PROMPTS))
    calls = _count_loop_calls(monkeypatch)
    agent.cpu_decode = True
    ours = agent.act(obs(PROMPTS))
    assert ids_of(ours) == ids_of(ref)
    assert max(abs(a - b) for x, y in zip(ours, ref) for a, b in
               zip(x.extras["logprobs"], y.extras["logprobs"])) < 1e-4
    assert len(calls) >= 11 * model.config.num_hidden_layers  # every decode step of every layer
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
    agent = GeneratorAgent(model, tok, dataclass_replace(GREEDY, ignore_eos=True))
    agent.cpu_decode = False
    ref = agent.act(obs(PROMPTS))
    calls = _count_loop_calls(monkeypatch)
    agent.cpu_decode = True
    ours = agent.act(obs(PROMPTS))
    assert ids_of(ours) == ids_of(ref)
    assert len(calls) == 11 * 2  # every decode step of both layers; the prefill through sdpa
    assert model.config._attn_implementation == "sdpa"


def test_a_compiler_that_builds_nothing_leaves_sdpa_with_one_warning(monkeypatch):
    monkeypatch.setenv("CC", "false")
    ca.kernel.cache_clear()
    try:
        with pytest.warns(UserWarning, match="built no working decode loop; sdpa runs instead"):
            assert ca.kernel() is None
    finally:
        monkeypatch.delenv("CC")
        ca.kernel.cache_clear()
