"""GeneratorAgent / ScorerAgent: batching, KV cache, seeding, log-probs, checkpoints (the specs and
the factory: tests/test_hf_specs.py)."""
from __future__ import annotations

import copy
from dataclasses import replace as dataclass_replace

import numpy as np
import pytest
import torch
from hf_tiny import GREEDY, PROMPTS, ids_of, obs

from agents.hf import GeneratorAgent, LoadConfig, SamplingConfig, ScorerAgent, encode_prompt
from arena.spaces import score_space
from arena.types import ArenaError, Move
# -- generation ----------------------------------------------------------------------

def test_batched_greedy_equals_one_at_a_time_and_transformers_generate(tiny):
    model, tok = tiny
    agent = GeneratorAgent(model, tok, dataclass_replace(GREEDY, ignore_eos=True))
    batched = agent.act(obs(PROMPTS))
    single = [agent.act(obs([p]))[0] for p in PROMPTS]
    assert ids_of(batched) == ids_of(single)
    assert all(len(c) == 12 for c in ids_of(batched))
    assert [m.action for m in batched] == [m.action for m in single]

    # transformers' own greedy generate over the same left-padded batch
    enc = tok(PROMPTS, padding=True, padding_side="left", return_tensors="pt")
    with torch.no_grad():
        ref = model.generate(**enc, do_sample=False, max_new_tokens=12, eos_token_id=None, pad_token_id=0)
    T = enc["input_ids"].shape[1]
    assert ids_of(batched) == [row[T:].tolist() for row in ref]
    assert batched[0].extras["prompt_ids"] == tok(PROMPTS[0])["input_ids"]


@pytest.mark.parametrize("prompts", [PROMPTS, PROMPTS + ["Role: helpful\nQuestion: 2+2?"]],
                         ids=["compacted", "carried"])
def test_finished_rows_leave_the_others_exact(tiny, prompts):
    # 1 of 4 rows ending compacts the batch at once; 1 of 5 is carried along as a dead row
    model, tok = tiny
    agent = GeneratorAgent(model, tok, dataclass_replace(GREEDY, ignore_eos=True))
    full = ids_of(agent.act(obs(prompts)))
    # make row 1's 3rd token an EOS: that row stops early
    agent.stop_token_ids = {full[1][2]}
    agent.sampling = GREEDY
    moves = agent.act(obs(prompts))
    assert moves[1].extras["finish"] == "eos" and moves[1].extras["completion_ids"] == full[1][:3]
    assert len(moves[1].extras["logprobs"]) == 3
    for i in set(range(len(prompts))) - {1}:  # others run to full length or stop at that same token
        c = moves[i].extras["completion_ids"]
        assert c == full[i][:len(c)]
        assert len(c) == 12 or c[-1] == full[1][2]


def test_repeated_prompts_are_prefilled_once_and_decode_as_if_alone(tiny):
    model, tok = tiny
    agent = GeneratorAgent(model, tok, dataclass_replace(GREEDY, ignore_eos=True))
    agent.cpu_decode = False  # every decode step through the model's forward, where the hook sees its rows
    prompts = [PROMPTS[2], PROMPTS[0], PROMPTS[2], PROMPTS[1], PROMPTS[0], PROMPTS[2]]
    batch_rows = []
    hook = model.register_forward_pre_hook(lambda m, args, kw: batch_rows.append(kw["input_ids"].shape),
                                           with_kwargs=True)
    try:
        moves = agent.act(obs(prompts))
    finally:
        hook.remove()
    assert batch_rows[0] == (3, len(tok(PROMPTS[2])["input_ids"]))  # prefill: the 3 distinct prompts
    assert batch_rows[1] == (6, 1)  # then every row decodes
    single = {p: agent.act(obs([p]))[0] for p in set(prompts)}
    assert ids_of(moves) == [single[p].extras["completion_ids"] for p in prompts]
    for m, p in zip(moves, prompts):
        np.testing.assert_allclose(m.extras["logprobs"], single[p].extras["logprobs"], atol=1e-5)
    # sampled: rows of the same prompt still draw their own completions
    agent.sampling = SamplingConfig(temperature=1.0, max_new_tokens=12, ignore_eos=True)
    agent.reset(0)
    assert len({tuple(c) for c in ids_of(agent.act(obs([PROMPTS[0]] * 4)))}) > 1


@pytest.mark.parametrize("own", [False, True], ids=["transformers", "own-step"])
def test_a_prefill_in_chunks_of_rows_fills_the_one_cache_as_one_pass_does(tiny, own, monkeypatch):
    from agents.hf.decode_step import LlamaStep

    model, tok = tiny
    prompts = PROMPTS * 3  # 12 distinct-enough rows, some repeated: prefilled once each
    sampling = SamplingConfig(temperature=1.0, max_new_tokens=12, ignore_eos=True)
    seeds = list(range(len(prompts)))
    whole = GeneratorAgent(model, tok, sampling)
    whole.prefill_tokens = 0
    chunked = GeneratorAgent(model, tok, sampling)
    T = max(len(tok(p)["input_ids"]) for p in PROMPTS)
    chunked.prefill_tokens = T  # one row a pass
    whole.cpu_decode = chunked.cpu_decode = own  # own: agents.hf.decode_step's prefill and decode steps
    passes, forwards = [], []
    prefill = LlamaStep.prefill
    monkeypatch.setattr(LlamaStep, "prefill", lambda step, ids, *args: passes.append(tuple(ids.shape)) or
                        prefill(step, ids, *args))
    hook = model.register_forward_pre_hook(lambda m, args, kw: forwards.append(tuple(kw["input_ids"].shape)),
                                           with_kwargs=True)
    try:
        a, b = whole.act(obs(prompts), seeds=seeds), chunked.act(obs(prompts), seeds=seeds)
    finally:
        hook.remove()
    if own:
        assert forwards == [] and passes == [(4, T)] + [(1, T)] * 4  # 4 distinct prompts
    else:
        assert passes == [] and forwards[0] == (4, T) and forwards[12:16] == [(1, T)] * 4  # after 11 decode steps
    assert ids_of(a) == ids_of(b)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x.extras["logprobs"], y.extras["logprobs"], atol=1e-5)


def test_the_kv_cache_buffers_are_kept_between_batches_and_change_no_token(tiny, monkeypatch):
    import pickle

    import agents.hf.generator as gen_mod

    model, tok = tiny
    sampling = SamplingConfig(temperature=1.0, max_new_tokens=12, ignore_eos=True)
    prompts, seeds = PROMPTS * 2, list(range(2 * len(PROMPTS)))
    fresh = GeneratorAgent(model, tok, sampling)
    monkeypatch.setattr(fresh, "_buffer_pool", lambda dev: None)  # new buffers every batch, as before the pool
    kept = GeneratorAgent(model, tok, sampling)

    def run(agent, n):
        out = agent.generate([ids for ids in (encode_prompt(tok, p, sampling) for p in prompts[:n])], seeds[:n])
        return [(c.completion_ids, c.logprobs) for c in out]

    assert run(kept, 8) == run(fresh, 8)
    pool = kept._buffers
    layers = model.config.num_hidden_layers
    assert sorted(pool.buffers) == sorted((i, w) for i in range(layers) for w in "kv")
    where = {k: b.data_ptr() for k, b in pool.buffers.items()}
    assert run(kept, 3) == run(fresh, 3) and run(kept, 8) == run(fresh, 8)  # a smaller batch, then the first again
    assert {k: b.data_ptr() for k, b in pool.buffers.items()} == where  # the same memory each time
    assert not pickle.loads(pickle.dumps(kept))._buffers.buffers and not copy.deepcopy(kept)._buffers.buffers

    monkeypatch.setattr(gen_mod, "CPU_KV_POOL_BYTES", next(iter(pool.buffers.values())).nbytes)
    small = GeneratorAgent(model, tok, sampling)  # room for one layer's K: that one is kept, the rest are new
    assert run(small, 8) == run(fresh, 8) and list(small._buffers.buffers) == [(0, "k")]


def test_a_buffer_pool_views_what_it_keeps_and_stays_within_its_limit():
    from agents.hf.kvcache import BufferPool

    like = torch.zeros(1)
    pool = BufferPool(limit=4 * 100)  # 100 floats
    a = pool.empty((0, "k"), (2, 30), like)
    b = pool.empty((0, "k"), (4, 10), like)  # smaller: a view of the same buffer
    assert b.data_ptr() == a.data_ptr() and b.shape == (4, 10) and pool.buffers[(0, "k")].numel() == 60
    c = pool.empty((0, "k"), (80,), like)  # larger: a new buffer, kept in the old one's place
    assert c.data_ptr() != a.data_ptr() and pool.buffers[(0, "k")].numel() == 80
    d = pool.empty((0, "v"), (30,), like)  # 80 + 30 floats would pass the limit: new, not kept
    assert (0, "v") not in pool.buffers and d.shape == (30,)
    assert pool.empty((0, "k"), (5,), like.double()).dtype == torch.float64  # another dtype: replaced
    assert pool.buffers[(0, "k")].dtype == torch.float64


def test_same_seed_same_samples_different_seed_different(tiny):
    model, tok = tiny
    agent = GeneratorAgent(model, tok, SamplingConfig(temperature=1.0, max_new_tokens=16, ignore_eos=True))
    state = torch.random.get_rng_state()
    agent.reset(7)
    a = agent.act(obs(PROMPTS))
    agent.reset(7)
    b = agent.act(obs(PROMPTS))
    agent.reset(8)
    c = agent.act(obs(PROMPTS))
    assert ids_of(a) == ids_of(b)
    assert ids_of(a) != ids_of(c)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG was neither used nor seeded


def test_a_row_sample_depends_on_its_prompt_and_seed_not_on_its_batch(tiny):
    model, tok = tiny
    agent = GeneratorAgent(model, tok, SamplingConfig(temperature=1.0, max_new_tokens=16))
    seeds = [11, 12, 13, 14]
    together = ids_of(agent.act(obs(PROMPTS), seeds=seeds))
    alone = [ids_of(agent.act(obs([p]), seeds=[s]))[0] for p, s in zip(PROMPTS, seeds)]
    reordered = ids_of(agent.act(obs(PROMPTS[::-1]), seeds=seeds[::-1]))[::-1]
    assert together == alone == reordered
    assert ids_of(agent.act(obs(PROMPTS), seeds=[s + 100 for s in seeds])) != together
    # the same prompt with two seeds (a sampled group) gives two different completions
    pair = ids_of(agent.act(obs([PROMPTS[0]] * 2), seeds=[1, 2]))
    assert pair[0] != pair[1]


def test_recorded_logprobs_match_a_fresh_forward_pass(tiny):
    model, tok = tiny
    agent = GeneratorAgent(model, tok, SamplingConfig(temperature=0.8, top_p=0.9, max_new_tokens=10))
    agent.reset(3)
    for move in agent.act(obs(PROMPTS)):
        p, c, lp = move.extras["prompt_ids"], move.extras["completion_ids"], move.extras["logprobs"]
        assert len(lp) == len(c) == move.extras["completion_tokens"] > 0
        with torch.no_grad():
            logits = model(torch.tensor([p + c])).logits[0].float()  # (T, V)
        expected = torch.log_softmax(logits, -1)[len(p) - 1:-1].gather(1, torch.tensor(c)[:, None])[:, 0]
        np.testing.assert_allclose(lp, expected.numpy(), atol=1e-4)
        assert all(x <= 0 for x in lp)


def test_both_agents_pass_the_arena_agent_contract(tiny, scorer_dir):
    from arena.testing import check_agent
    from arena.types import Agent, Checkpointable

    gen = GeneratorAgent(*tiny, SamplingConfig(max_new_tokens=6))
    scorer = ScorerAgent.from_pretrained(str(scorer_dir))
    for agent in (gen, scorer):
        assert isinstance(agent, Agent) and isinstance(agent, Checkpointable)
        check_agent(agent, obs(PROMPTS))


def test_top_k_1_and_tiny_top_p_are_greedy(tiny):
    model, tok = tiny
    greedy = ids_of(GeneratorAgent(model, tok, GREEDY).act(obs(PROMPTS)))
    for s in (SamplingConfig(top_k=1, max_new_tokens=12), SamplingConfig(top_p=1e-6, max_new_tokens=12)):
        agent = GeneratorAgent(model, tok, s)
        agent.reset(0)
        assert ids_of(agent.act(obs(PROMPTS))) == greedy


def test_stop_strings_cut_the_action_but_not_the_recorded_tokens(tiny):
    model, tok = tiny
    free = GeneratorAgent(model, tok, dataclass_replace(GREEDY, ignore_eos=True)).act(obs(PROMPTS[:1]))[0]
    text = tok.decode(free.extras["completion_ids"], skip_special_tokens=True)
    stop = text[4:6]
    cut = text.find(stop)
    agent = GeneratorAgent(model, tok, dataclass_replace(GREEDY, ignore_eos=True, stop=(stop,)))
    move = agent.act(obs(PROMPTS[:1]))[0]
    assert move.action == text[:cut]
    assert move.extras["finish"] == "stop"
    # the recorded tokens run exactly to the one that completed the stop string
    ids = free.extras["completion_ids"]
    k = next(k for k in range(len(ids) + 1) if stop in tok.decode(ids[:k], skip_special_tokens=True))
    assert move.extras["completion_ids"] == ids[:k]


def test_max_batch_chunks_give_the_same_result(tiny):
    model, tok = tiny
    whole = GeneratorAgent(model, tok, GREEDY).act(obs(PROMPTS))
    chunked = GeneratorAgent(model, tok, GREEDY, max_batch=3).act(obs(PROMPTS))
    assert ids_of(whole) == ids_of(chunked) and len(chunked) == len(PROMPTS)
    assert all(isinstance(m, Move) and isinstance(m.action, str) for m in chunked)


def test_chat_template_wraps_the_prompt_when_the_tokenizer_has_one(tiny):
    _, tok = tiny
    assert encode_prompt(tok, "hi") == tok("hi")["input_ids"]  # no template: raw prompt with <s>
    tok2 = copy.deepcopy(tok)
    tok2.chat_template = "{% for m in messages %}[{{ m.role }}]{{ m.content }}\n{% endfor %}[assistant]"
    ids = encode_prompt(tok2, "hi", SamplingConfig(system="be brief"))
    assert tok2.decode(ids) == "[system]be brief\n[user]hi\n[assistant]"
    assert encode_prompt(tok2, "hi", SamplingConfig(chat_template=False)) == tok("hi")["input_ids"]
    cut = encode_prompt(tok, "abcdef", SamplingConfig(max_prompt_tokens=3))
    assert cut == tok("def", add_special_tokens=False)["input_ids"]


# -- save / load ------------------------------------------------------------------------

def test_saving_a_model_off_rank_0_is_one_line_not_a_directory_without_weights(tiny, tmp_path, monkeypatch):
    """transformers' save_pretrained writes no weights on a torch.distributed rank other than 0."""
    import agents.hf.loading as loading

    monkeypatch.setattr(loading, "distributed_rank", lambda: 1)
    with pytest.raises(ArenaError, match=r"on process 1: under torchrun only rank 0 writes models"):
        GeneratorAgent(*tiny).save(tmp_path / "m")
    assert not list((tmp_path / "m").glob("*.safetensors"))
    monkeypatch.setattr(loading, "distributed_rank", lambda: 0)
    GeneratorAgent(*tiny).save(tmp_path / "m")
    assert list((tmp_path / "m").glob("*.safetensors"))


def test_saved_dir_reloads_with_plain_auto_classes_and_generates_the_same(tiny, model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tok = tiny
    before = GeneratorAgent(model, tok, GREEDY).act(obs(PROMPTS))
    assert (model_dir / "model.safetensors").is_file()
    assert not list(model_dir.glob("*.bin"))
    reloaded = GeneratorAgent(AutoModelForCausalLM.from_pretrained(model_dir),
                              AutoTokenizer.from_pretrained(model_dir), GREEDY).act(obs(PROMPTS))
    assert [m.action for m in reloaded] == [m.action for m in before]
    assert ids_of(reloaded) == ids_of(before)


def test_load_copies_weights_in_place(model_dir):
    agent = GeneratorAgent.from_pretrained(str(model_dir))
    params = list(agent.model.parameters())
    saved = {k: v.clone() for k, v in agent.model.state_dict().items()}
    with torch.no_grad():
        for p in params:
            p.add_(1.0)
    agent.load(model_dir)
    assert all(a is b for a, b in zip(params, agent.model.parameters()))  # an optimizer's references stay valid
    assert all(torch.equal(v, agent.model.state_dict()[k]) for k, v in saved.items())


# -- scorer --------------------------------------------------------------------------------

def test_scorer_returns_finite_float32_arrays_independent_of_batching(scorer_dir):
    scorer = ScorerAgent.from_pretrained(str(scorer_dir))
    actions = scorer.act(obs(PROMPTS))
    assert len(actions) == len(PROMPTS)
    for a in actions:
        assert isinstance(a, np.ndarray) and a.shape == (1,) and a.dtype == np.float32
        assert np.isfinite(a).all() and score_space().contains(a)
    singles = [scorer.act(obs([p]))[0][0] for p in PROMPTS]
    np.testing.assert_allclose([a[0] for a in actions], singles, atol=1e-5)  # right padding is ignored
    assert len({round(float(a[0]), 6) for a in actions}) > 1  # not a constant
    s = scorer.scores(PROMPTS[:2], grad=True)
    assert s.shape == (2,) and s.requires_grad
    s.sum().backward()
    assert scorer.model.score.weight.grad is not None


def test_scorer_chunks_stay_within_the_token_budget_and_score_as_one_pass(scorer_dir):
    scorer = ScorerAgent.from_pretrained(str(scorer_dir))
    texts = PROMPTS * 5  # 20 texts of 2..50 tokens
    lengths = [len(ids) for ids in scorer.tokenizer(texts)["input_ids"]]
    scorer.score_tokens, scorer.max_batch = 120, 6
    chunks = scorer._chunks(texts)
    assert [i for c in chunks for i in range(c.start, c.stop)] == list(range(len(texts)))  # in order, each once
    for c in chunks:
        rows = lengths[c]
        assert len(rows) <= 6 and (len(rows) == 1 or len(rows) * max(rows) <= 120)
    assert len(chunks) > len(texts) // 6  # the budget, not only max_batch, cut them
    chunked = scorer.scores(texts)
    scorer.score_tokens, scorer.max_batch = 0, 0  # one pass of all 20
    assert scorer._chunks(texts) == [slice(0, 64)]
    np.testing.assert_allclose(chunked.numpy(), scorer.scores(texts).numpy(), atol=1e-5)
    scorer.score_tokens = None  # the default on a CPU: CPU_SCORE_TOKENS (2048) cuts 60 texts of up to 48 tokens
    assert len(scorer._chunks(texts * 3)) == 2


def test_scorer_from_a_causal_lm_gets_a_seeded_head(model_dir):
    a = ScorerAgent.from_pretrained(str(model_dir), load=LoadConfig(seed=5))
    b = ScorerAgent.from_pretrained(str(model_dir), load=LoadConfig(seed=5))
    c = ScorerAgent.from_pretrained(str(model_dir), load=LoadConfig(seed=6))
    assert torch.equal(a.model.score.weight, b.model.score.weight)
    assert not torch.equal(a.model.score.weight, c.model.score.weight)
    assert torch.equal(a.scores(PROMPTS), b.scores(PROMPTS))


def test_scorer_save_load_round_trip(scorer_dir, tmp_path):
    scorer = ScorerAgent.from_pretrained(str(scorer_dir))
    before = scorer.scores(PROMPTS)
    scorer.save(tmp_path)
    with torch.no_grad():
        scorer.model.score.weight.mul_(-2.0)
    assert not torch.allclose(scorer.scores(PROMPTS), before)
    scorer.load(tmp_path)
    assert torch.allclose(scorer.scores(PROMPTS), before, atol=1e-6)

