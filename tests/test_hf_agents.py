"""GeneratorAgent / ScorerAgent: batching, KV cache, seeding, log-probs, checkpoints, specs."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from agents.hf import (GeneratorAgent, LoadConfig, SamplingConfig, ScorerAgent, encode_prompt, parse_hf_arg,
                       split_options)
from agents.tiny import new_tiny_causal_lm, new_tiny_scorer
from arena.spaces import score_space, text_space
from arena.specs import AgentContext, build_agent
from arena.types import ArenaError, Move

# A small random model whose weights are large enough (init_std) that greedy
# choices are never near-ties, so batched and one-at-a-time decoding must agree.
SMALL = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
             num_key_value_heads=2, max_position_embeddings=256)
PROMPTS = ["Ann has 7 apples. Gets 3.", "Hi", "Question: Bob has 12 coins. Loses 4.\nSolution:\n", "x"]
GREEDY = SamplingConfig(temperature=0, max_new_tokens=12)




@pytest.fixture(scope="module")
def tiny():
    model, tok = new_tiny_causal_lm(seed=0, init_std=0.3, **SMALL)
    return model, tok


@pytest.fixture(scope="module")
def model_dir(tiny, tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-gen")
    GeneratorAgent(*tiny, SamplingConfig(max_new_tokens=9, top_k=5)).save(path)
    return path


@pytest.fixture(scope="module")
def scorer_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-scorer")
    model, tok = new_tiny_scorer(seed=1, init_std=0.3, **SMALL)
    ScorerAgent(model, tok).save(path)
    return path


def obs(prompts):
    return [{"prompt": p} for p in prompts]


def ids_of(moves):
    return [m.extras["completion_ids"] for m in moves]


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


def test_a_prefill_in_chunks_of_rows_fills_the_one_cache_as_one_pass_does(tiny):
    model, tok = tiny
    prompts = PROMPTS * 3  # 12 distinct-enough rows, some repeated: prefilled once each
    sampling = SamplingConfig(temperature=1.0, max_new_tokens=12, ignore_eos=True)
    seeds = list(range(len(prompts)))
    whole = GeneratorAgent(model, tok, sampling)
    whole.prefill_tokens = 0
    chunked = GeneratorAgent(model, tok, sampling)
    T = max(len(tok(p)["input_ids"]) for p in PROMPTS)
    chunked.prefill_tokens = T  # one row a pass
    passes = []
    hook = model.register_forward_pre_hook(lambda m, args, kw: passes.append(kw["input_ids"].shape), with_kwargs=True)
    try:
        a, b = whole.act(obs(prompts), seeds=seeds), chunked.act(obs(prompts), seeds=seeds)
    finally:
        hook.remove()
    steps = 12 - 1  # decode forwards after the prefill
    assert passes[0] == (4, T) and passes[1 + steps:1 + steps + 4] == [(1, T)] * 4  # 4 distinct prompts
    assert ids_of(a) == ids_of(b)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x.extras["logprobs"], y.extras["logprobs"], atol=1e-5)


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


# -- specs and the factory -------------------------------------------------------------------

class DummyGame:
    """A PettingZoo-like class with one Text seat and one Box seat."""

    possible_agents = ["writer", "judge"]

    def action_space(self, seat):
        return {"writer": text_space(64), "judge": score_space()}[seat]


def ctx_for(seat, game_cls=DummyGame, game_id="dummy-v0", runs_dir="runs"):
    from pathlib import Path

    return AgentContext(game_id, game_cls, seat, Path(runs_dir), "cpu")


def test_parse_hf_arg_and_options():
    assert parse_hf_arg("Qwen/Qwen2-0.5B") == ("Qwen/Qwen2-0.5B", None, {})
    assert parse_hf_arg("/m/x.Q4.gguf?temperature=0.5") == ("/m", "x.Q4.gguf", {"temperature": ["0.5"]})
    ref, gguf, opts = parse_hf_arg("org/repo::f.gguf?stop=%0A%0A&stop=END&ignore_eos=1&max_batch=8")
    assert (ref, gguf) == ("org/repo", "f.gguf")
    sampling, load = split_options(opts, generator=True)
    assert sampling.stop == ("\n\n", "END") and sampling.ignore_eos is True and load.max_batch == 8
    with pytest.raises(ArenaError, match="unknown hf option"):
        split_options({"temprature": ["1"]}, generator=True)
    with pytest.raises(ArenaError, match="unknown hf option"):
        split_options({"temperature": ["1"]}, generator=False)
    with pytest.raises(ArenaError, match="bad hf option top_k"):
        split_options({"top_k": ["many"]}, generator=True)
    with pytest.raises(ArenaError):
        SamplingConfig(top_p=0)


def test_text_options_are_kept_as_typed_and_numbers_follow_arena_options():
    _, _, opts = parse_hf_arg("m?system=+Be+brief.%0A&stop=,&temperature=+0.5&chat_template=off")
    sampling, _ = split_options(opts, generator=True)
    assert sampling.system == " Be brief.\n" and sampling.stop == (",",)
    assert sampling.temperature == 0.5 and sampling.chat_template is False
    with pytest.raises(ArenaError, match="bad hf option temperature"):
        split_options({"temperature": ["nan"]}, generator=True)


def test_quiet_transformers_restores_what_it_changed():
    import warnings

    from transformers.utils import logging as hf_logging

    from agents.hf import quiet_transformers

    before = (hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled(), list(warnings.filters))
    with pytest.raises(RuntimeError):
        with quiet_transformers(warnings=False):
            assert hf_logging.get_verbosity() == hf_logging.ERROR
            assert not hf_logging.is_progress_bar_enabled()
            with warnings.catch_warnings(record=True) as seen:
                warnings.warn_explicit("noise", UserWarning, "x.py", 1, module="transformers.modeling_utils")
            assert seen == []
            raise RuntimeError("the block fails")
    assert (hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled(), list(warnings.filters)) == before


def test_build_agent_picks_generator_or_scorer_from_the_action_space(model_dir):
    gen = build_agent(f"hf:{model_dir}?temperature=0&max_new_tokens=7", ctx_for("writer"))
    assert isinstance(gen, GeneratorAgent) and gen.kind == "hf"
    assert gen.sampling.temperature == 0 and gen.sampling.max_new_tokens == 7
    assert gen.sampling.top_k == 5  # saved with the model (arena_agent.json), not overridden
    assert len(gen.act(obs(["hello"]))[0].extras["completion_ids"]) <= 7
    judge = build_agent(f"hf:{model_dir}?max_batch=2", ctx_for("judge"))
    assert isinstance(judge, ScorerAgent) and judge.max_batch == 2
    assert judge.act(obs(PROMPTS))[0].shape == (1,)
    with pytest.raises(ArenaError, match="unknown hf option"):
        build_agent(f"hf:{model_dir}?temperature=0", ctx_for("judge"))
    with pytest.raises(ArenaError, match="no model at '/no/such/model/dir'"):
        build_agent("hf:/no/such/model/dir", ctx_for("writer"))
    with pytest.raises(ArenaError, match="cannot load a causal LM"):  # exists, but holds no model
        build_agent(f"hf:{model_dir.parent}", ctx_for("writer"))


def test_ckpt_spec_rebuilds_the_agent_with_its_sampling_settings(tiny, tmp_path):
    from arena.checkpoints import write_checkpoint

    model, tok = tiny
    agent = GeneratorAgent(model, tok, SamplingConfig(temperature=0, max_new_tokens=6))
    path = write_checkpoint(tmp_path / "run", "writer", 2, agent, None, {"game": "dummy-v0"})
    again = build_agent("ckpt:run/writer/round-2", ctx_for("writer", runs_dir=tmp_path))
    assert isinstance(again, GeneratorAgent) and again.sampling == agent.sampling
    assert ids_of(again.act(obs(PROMPTS))) == ids_of(agent.act(obs(PROMPTS)))
    assert (path / "model.safetensors").is_file()


def test_plays_prover_verifier_through_the_runner(model_dir, scorer_dir):
    pytest.importorskip("games.prover_verifier.env")
    from arena.registry import make, spec
    from arena.runner import play

    cls = spec("prover-verifier-v1").load()
    prover = build_agent(f"hf:{model_dir}?max_new_tokens=8",
                         ctx_for("prover", cls, "prover-verifier-v1"))
    verifier = build_agent(f"hf:{scorer_dir}", ctx_for("verifier", cls, "prover-verifier-v1"))
    assert isinstance(prover, GeneratorAgent) and isinstance(verifier, ScorerAgent)
    episodes, stats = play(lambda: make("prover-verifier-v1"), {"prover": prover, "verifier": verifier}, 6,
                           concurrency=4, seed=1)
    assert len(episodes) == 6 and stats.act_calls["prover"] == 2 and stats.mean_batch == 3.0
    for ep in episodes:
        p, judged = ep.moves("prover")[0], [v.observation["solution"] for v in ep.moves("verifier")]
        assert 1 <= p.extras["completion_tokens"] <= 8 and isinstance(p.action, str)
        assert p.action in judged and len(judged) == 2  # the solution, and the reference solution
        assert ep.info["verifier"]["valid_score"] is True
    assert stats.completion_tokens == sum(ep.completion_tokens for ep in episodes)
    # the runner does not reset agents; the same agent seed gives the same transcripts
    prover.reset(0)
    a, _ = play(lambda: make("prover-verifier-v1"), {"prover": prover, "verifier": verifier}, 6, concurrency=4, seed=1)
    prover.reset(0)
    b, _ = play(lambda: make("prover-verifier-v1"), {"prover": prover, "verifier": verifier}, 6, concurrency=4, seed=1)
    assert [e.to_json() for e in a] == [e.to_json() for e in b]
    # per-move seeds: the transcripts do not depend on the agent's own seed, on K, or on
    # which episodes are played together (two halves played apart, as two workers would)
    prover.reset(123)
    c, _ = play(lambda: make("prover-verifier-v1"), {"prover": prover, "verifier": verifier}, 6, concurrency=6, seed=1)
    halves = [play(lambda: make("prover-verifier-v1"), {"prover": prover, "verifier": verifier}, 3,
                   concurrency=2, seed=1, first_index=i)[0] for i in (0, 3)]
    for other in (c, halves[0] + halves[1]):  # floats differ between batch shapes in the last bits only
        assert [[(m.seat, m.action if isinstance(m.action, str) else None, m.extras.get("completion_ids"))
                 for m in e.transcript] for e in other] == \
               [[(m.seat, m.action if isinstance(m.action, str) else None, m.extras.get("completion_ids"))
                 for m in e.transcript] for e in a]
        assert [e.rewards["prover"] for e in other] == pytest.approx([e.rewards["prover"] for e in a], abs=1e-5)


def dataclass_replace(obj, **kw):
    import dataclasses

    return dataclasses.replace(obj, **kw)
