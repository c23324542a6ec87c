"""The likelihood scorer (a generative verifier): its score against an independent computation, its
readout as untrusted data, its checkpoints, and that Bradley-Terry training teaches it to check."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from agents.hf.likelihood import LikelihoodScorer, Readout
from agents.hf.loading import AGENT_META, save_agent_dir
from agents.tiny import new_tiny_causal_lm
from arena.registry import spec as game_spec
from arena.specs import AgentContext, build_agent
from arena.types import ArenaError

MARK = "Solution:\n"


def _agent(temperature: float = 3.0, seed: int = 0) -> LikelihoodScorer:
    model, tok = new_tiny_causal_lm(seed, init_std=0.3)
    return LikelihoodScorer(model, tok, readout=Readout(after=MARK, temperature=temperature))


def _token_logprobs(agent: LikelihoodScorer, text: str, end: bool = True) -> list[float]:
    """log p(x_j | x_<j) of every token after the marker, then of the end-of-text token: one text alone."""
    ids = agent.tokenizer(text, return_tensors="pt")["input_ids"]
    if end:
        ids = torch.cat([ids, torch.tensor([[agent.tokenizer.eos_token_id]])], 1)
    head = len(agent.tokenizer(text[:text.index(MARK) + len(MARK)])["input_ids"])
    with torch.no_grad():
        lp = torch.log_softmax(agent.model(input_ids=ids).logits[0].float(), -1)
    return [lp[j - 1, ids[0, j]].item() for j in range(head, ids.shape[1])]


def _soft_min(lps, t: float) -> float:
    return float(-t * np.log(np.exp(-np.asarray(lps) / t).sum()))


def test_score_is_the_soft_minimum_of_the_solution_and_end_token_logprobs_in_any_batch():
    agent = _agent(temperature=2.0)
    texts = ["Question: 1+2?\nSolution:\n1+2=3\nAnswer: 3\n", "Question: 7-5?\nSolution:\n7-5=3\nAnswer: 3\n",
             "Question: long one, 9-9?\nSolution:\n9-9=0\n"]
    got = agent.scores(texts)  # one padded batch
    for text, score in zip(texts, got.tolist()):
        assert score == pytest.approx(_soft_min(_token_logprobs(agent, text), 2.0), abs=1e-4)
        assert agent.scores([text]).item() == pytest.approx(score, abs=1e-4)  # alone: the same
    no_end = LikelihoodScorer(agent.model, agent.tokenizer,
                              readout=Readout(after=MARK, temperature=2.0, score_end=False, skip_last=1))
    for text, score in zip(texts, no_end.scores(texts).tolist()):
        assert score == pytest.approx(_soft_min(_token_logprobs(agent, text, end=False)[:-1], 2.0), abs=1e-4)


def test_a_solution_that_writes_the_marker_is_scored_whole():
    """The marker is the prompt template's (its first occurrence): a solution that itself writes
    `Solution:` leaves none of its steps unscored."""
    agent = _agent(temperature=0.5)
    text = "Question: 1+2?\nSolution:\n1+2=4\nSolution:\nAnswer: 4\n"
    whole = _soft_min(_token_logprobs(agent, text), 0.5)  # every token after the first marker
    assert agent.scores([text]).item() == pytest.approx(whole, abs=1e-4)


@pytest.mark.slow
def test_a_text_cut_short_pays_for_its_end(tmp_path):
    """The end-of-text token is scored: after an LM learned where solutions end, a solution cut after
    its first line scores below the whole one (with the end left out it would score above it)."""
    from agents.tiny import pretrain

    tmp = str(tmp_path)
    whole = "Question: Ann has 2.\nSolution:\n2+3=5\n5-1=4\nAnswer: 4\n"
    pretrain([(whole[:whole.index(MARK) + len(MARK)], whole[whole.index(MARK) + len(MARK):])] * 8, tmp, steps=200,
             seed=0, batch_size=8, progress=False, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
             num_attention_heads=2, num_key_value_heads=2)
    cut = "Question: Ann has 2.\nSolution:\n2+3=5\n"
    agent = LikelihoodScorer.from_pretrained(tmp, readout=Readout(after=MARK))
    assert agent.scores([cut]).item() < agent.scores([whole]).item() - 0.3
    blind = LikelihoodScorer(agent.model, agent.tokenizer, readout=Readout(after=MARK, score_end=False))
    assert blind.scores([cut]).item() > blind.scores([whole]).item()


def test_a_low_temperature_reads_the_least_likely_token_and_the_question_is_not_scored():
    agent = _agent(temperature=0.01)
    text = "Question: 4+4?\nSolution:\n4+4=8\nAnswer: 8\n"
    assert agent.scores([text]).item() == pytest.approx(min(_token_logprobs(agent, text)), abs=0.05)
    solution = LikelihoodScorer(agent.model, agent.tokenizer,
                                readout=Readout(after=MARK, temperature=0.01, score_end=False))
    everything = LikelihoodScorer(agent.model, agent.tokenizer,
                                  readout=Readout(after="", temperature=0.01, score_end=False))
    assert everything.scores([text]).item() < solution.scores([text]).item() - 1e-3  # more tokens: a lower minimum


@pytest.mark.parametrize("readout, message", [
    ({"kind": "likelihood", "temperature": -1}, "temperature"),
    ({"kind": "likelihood", "temperature": True}, "temperature"),
    ({"kind": "likelihood", "temperature": "3"}, "temperature"),
    ({"kind": "likelihood", "skip_last": 99}, "skip_last"),
    ({"kind": "likelihood", "after": ["x"]}, "after"),
    ({"kind": "likelihood", "score_end": 1}, "score_end"),
    ({"kind": "likelihood", "code": "import os"}, "unknown keys"),
    ({"kind": "python"}, "kind 'likelihood'"),
    ("likelihood", "kind 'likelihood'"),
])
def test_a_bad_readout_on_disk_is_one_line_error(tmp_path, readout, message):
    model, tok = new_tiny_causal_lm(0)
    save_agent_dir(model, tok, tmp_path / "v", {"agent": "scorer", "readout": readout})
    ctx = AgentContext.for_seat(game_spec("prover-verifier-v1"), "verifier", tmp_path, "cpu")
    with pytest.raises(ArenaError, match=message):
        build_agent(f"hf:{tmp_path / 'v'}", ctx)


def test_saved_scorer_loads_as_a_likelihood_scorer_with_the_same_scores(tmp_path):
    agent = _agent(temperature=1.5)
    agent.save(tmp_path / "v")
    meta = json.loads((tmp_path / "v" / AGENT_META).read_text())
    assert meta == {"agent": "scorer", "readout": {"kind": "likelihood", "after": MARK, "temperature": 1.5,
                                                   "skip_last": 0, "score_end": True}}
    ctx = AgentContext.for_seat(game_spec("prover-verifier-v1"), "verifier", tmp_path, "cpu")
    loaded = build_agent(f"hf:{tmp_path / 'v'}", ctx)
    assert isinstance(loaded, LikelihoodScorer) and loaded.readout == agent.readout
    texts = ["Question: 2+2?\nSolution:\n2+2=4\nAnswer: 4\n"]
    assert torch.allclose(loaded.scores(texts), agent.scores(texts), atol=1e-5)
    obs = {"prompt": texts[0]}
    assert loaded.act([obs])[0].shape == (1,)


@pytest.mark.slow
def test_bradley_terry_training_teaches_the_likelihood_scorer_to_check(tmp_path):
    """A weak LM (briefly pretrained on correct one-step solutions), then the verifier learner,
    unchanged, on rule-made pairs: held-out AUC of correct vs wrong rises well above its start."""
    from agents.learners import Optimization, VerifierLearner
    from agents.tiny import pretrain
    from games.prover_verifier import rules

    rng = np.random.default_rng(0)
    demos = [(rules.verifier_prompt(p.question, "")[:-1], rules.honest_solution(p))
             for p in (rules.generate_problem(rng, 1, 1, max_value=9) for _ in range(2000))]
    pretrain(demos, tmp_path / "lm", steps=150, seed=0, batch_size=32, progress=False, hidden_size=32,
             intermediate_size=96, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2)
    agent = LikelihoodScorer.from_pretrained(str(tmp_path / "lm"), readout=Readout(after=MARK, temperature=3.0))

    def pair(p):
        return (rules.verifier_prompt(p.question, rules.honest_solution(p)),
                rules.verifier_prompt(p.question, rules.sneaky_solution(p, rng, max_value=9)))

    train = [rules.generate_problem(rng, 1, 1, max_value=9) for _ in range(128)]
    test = [pair(rules.generate_problem(rng, 1, 1, max_value=9)) for _ in range(100)]
    data = [(i, text, ok) for i, p in enumerate(train) for text, ok in zip(pair(p), (True, False))]

    def auc() -> float:
        return rules.auc(agent.scores([g for g, _ in test]).tolist(), agent.scores([b for _, b in test]).tolist())

    before = auc()
    learner = VerifierLearner(lam=1e-2, opt=Optimization(lr=3e-3, batch_size=16, epochs=30))
    learner.reset(0)
    learner.fit_solutions(agent, data)
    after = auc()
    assert after > before + 0.15, (before, after)
