"""Each learner's `update` on a tiny random Llama: parameters change, the loss on a
fixed batch falls, a reference model stays frozen and untouched."""
from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch

from agents.batch import batch_from_token_ids, completion_logprobs, encode_pairs
from agents.learners import (BestWeights, BradleyTerryLearner, DPOLearner, FilteredNLLLearner, Optimization,
                             PolicyGradientLearner, SFTLearner, VerifierLearner, read_implicit_reward)
from agents.losses import (bradley_terry_loss, dpo_loss, filtered_nll, group_advantages, masked_sum,
                           policy_gradient_loss, rpo_loss, sft_nll, verifier_loss)
from arena.types import ArenaError, Episode, Step
from test_losses import char_tokenizer, tiny_llama

TOK = char_tokenizer()


FAST = dict(lr=3e-3, batch_size=4, epochs=4)  # a few steps of a high learning rate


def generator_agent(seed: int = 1):
    model = tiny_llama(len(TOK), seed)
    return SimpleNamespace(model=model, tokenizer=TOK, device=torch.device("cpu"))


class FakeScorer:
    """The scorer-agent surface learners use: model, tokenizer, scores(texts, grad)."""

    def __init__(self, seed: int = 3):
        self.model = tiny_llama(len(TOK), seed, classifier=True)
        self.tokenizer = TOK
        self.device = torch.device("cpu")

    def scores(self, texts, grad=False):
        enc = TOK(list(texts), padding=True, return_tensors="pt")
        with torch.set_grad_enabled(grad):
            return self.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits[:, 0]


def params(model) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def changed(before, model) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def assert_frozen_and_untouched(reference, before):
    assert not changed(before, reference)
    assert all(not p.requires_grad for p in reference.parameters())
    assert not reference.training


PAIRS = [("2+3=", "5"), ("4+4=", "8"), ("1+6=", "7"), ("9-2=", "7"), ("3*3=", "9"), ("8-8=", "0")]


def sft_loss_on(agent, pairs) -> float:
    with torch.no_grad():
        tl, mask = completion_logprobs(agent.model, encode_pairs(TOK, [p for p, _ in pairs], [c for _, c in pairs]))
        return float(sft_nll(tl, mask))


def test_sft_learner_lowers_nll():
    agent = generator_agent()
    before, loss0 = params(agent.model), sft_loss_on(agent, PAIRS)
    learner = SFTLearner(data=PAIRS, opt=Optimization(**FAST))
    learner.reset(0)
    metrics = learner.update(agent, [])
    assert changed(before, agent.model)
    assert sft_loss_on(agent, PAIRS) < loss0 - 0.1
    assert metrics["loss_last"] < metrics["loss_first"]
    assert not agent.model.training  # handed back in the mode it came in


TRIPLES = [("2+3=", "5", "6"), ("4+4=", "8", "9"), ("1+6=", "7", "1"), ("9-2=", "7", "11"),
           ("3*3=", "9", "33")]


def preference_loss_on(agent, reference, loss: str, beta: float, eta: float) -> float:
    prompts = [p for p, _, _ in TRIPLES]
    batch = encode_pairs(TOK, prompts + prompts, [c for _, c, _ in TRIPLES] + [r for _, _, r in TRIPLES])
    n = len(TRIPLES)
    with torch.no_grad():
        pi_tl, mask = completion_logprobs(agent.model, batch)
        ref_tl, _ = completion_logprobs(reference, batch)
    pi, ref = masked_sum(pi_tl, mask), masked_sum(ref_tl, mask)
    if loss == "dpo":
        return float(dpo_loss(pi[:n], pi[n:], ref[:n], ref[n:], beta))
    return float(rpo_loss(pi[:n], pi[n:], ref[:n], ref[n:], beta, eta, loss[4:], mask[:n].sum(1)))


@pytest.mark.parametrize("loss", ["dpo", "rpo-sum", "rpo-mean"])
def test_dpo_learner_lowers_its_loss_and_leaves_the_reference_alone(loss):
    agent = generator_agent()
    reference = copy.deepcopy(agent.model)  # π_ref = the starting policy, as in DPO
    ref_before = params(reference)
    beta, eta = 0.5, 0.5
    learner = DPOLearner(data=lambda episodes: TRIPLES, reference=reference, loss=loss, beta=beta, eta=eta,
                         opt=Optimization(**FAST))
    assert_frozen_and_untouched(reference, ref_before)  # frozen on construction
    before = params(agent.model)
    loss0 = preference_loss_on(agent, reference, loss, beta, eta)
    metrics = learner.update(agent, [])
    assert changed(before, agent.model)
    assert preference_loss_on(agent, reference, loss, beta, eta) < loss0 - 0.05
    assert metrics["reward_margin"] > 0
    assert_frozen_and_untouched(reference, ref_before)
    # the adversarial reward model DPO/RPO fit, read out: chosen now above rejected on average
    r_c = read_implicit_reward(agent, reference, [p for p, _, _ in TRIPLES], [c for _, c, _ in TRIPLES], beta)
    r_r = read_implicit_reward(agent, reference, [p for p, _, _ in TRIPLES], [r for _, _, r in TRIPLES], beta)
    assert float((r_c - r_r).mean()) > 0


SCORED = [("good: 5", "bad: 6"), ("good: 8", "bad: 9"), ("good: 7", "bad: 1"), ("good: 9", "bad: 33")]


def test_bradley_terry_learner_lowers_its_loss():
    scorer = FakeScorer()
    before = params(scorer.model)
    loss0 = float(bradley_terry_loss(scorer.scores([c for c, _ in SCORED]), scorer.scores([r for _, r in SCORED])))
    learner = BradleyTerryLearner(data=SCORED, opt=Optimization(**FAST))
    learner.update(scorer, [])
    assert changed(before, scorer.model)
    loss1 = float(bradley_terry_loss(scorer.scores([c for c, _ in SCORED]), scorer.scores([r for _, r in SCORED])))
    assert loss1 < loss0 - 0.05


def test_bradley_terry_learner_explicit_rpo_game_prices_policy_answers_down():
    scorer = FakeScorer()
    policy, baseline = ["policy: 77", "policy: 78"], ["good: 5", "good: 8"]
    gap0 = float(scorer.scores(policy).mean() - scorer.scores(baseline).mean())
    learner = BradleyTerryLearner(data=SCORED, adversarial=lambda eps: (policy, baseline), eta=1.0,
                                  opt=Optimization(**FAST))
    metrics = learner.update(scorer, [])
    assert "policy_minus_baseline" in metrics
    assert float(scorer.scores(policy).mean() - scorer.scores(baseline).mean()) < gap0


SOLUTIONS = [("p1", "2+3=5", True), ("p1", "2+3=6", False), ("p1", "2+3=4", False),
             ("p2", "4*2=8", True), ("p2", "4*2=6", False), ("p3", "1+1=2", True)]


def verifier_loss_on(scorer, lam: float) -> float:
    with torch.no_grad():
        v = scorer.scores([t for _, t, _ in SOLUTIONS])
    pairs = [(0, 1), (0, 2), (3, 4)]  # (correct, incorrect) within p1 and p2
    v1, v2 = v[[a for a, _ in pairs]], v[[b for _, b in pairs]]
    return float(verifier_loss(v1, v2, torch.ones(3), v, lam))


def test_verifier_learner_lowers_its_loss():
    scorer = FakeScorer()
    before, loss0 = params(scorer.model), verifier_loss_on(scorer, 0.01)
    learner = VerifierLearner(data=SOLUTIONS, lam=0.01, opt=Optimization(lr=3e-3, batch_size=3, epochs=6))
    metrics = learner.update(scorer, [])
    assert changed(before, scorer.model)
    assert verifier_loss_on(scorer, 0.01) < loss0 - 0.05
    assert 0 <= metrics["pair_accuracy"] <= 1


def pg_episodes() -> list[Episode]:
    """Two prompts, three sampled completions each; the prover move records its token ids."""
    samples = {"2+3=": ["5", "6", "55"], "1+1=": ["2", "3", "11"]}
    episodes = []
    for prompt, completions in samples.items():
        for c in completions:
            ids = TOK(prompt)["input_ids"]
            cids = TOK(c, add_special_tokens=False)["input_ids"] + [TOK.eos_token_id]
            step = Step("prover", {"prompt": prompt}, c, {"prompt_ids": ids, "completion_ids": cids,
                                                          "completion_tokens": len(cids)})
            correct = str(eval(prompt[:-1])) == c
            episodes.append(Episode(len(episodes), 0, {"prover": float(correct)}, {"prover": {"correct": correct}},
                                    [step]))
    return episodes


def pg_loss_on(agent, episodes) -> float:
    """The REINFORCE objective with advantages fixed at the round's RLOO values."""
    moves = [e.moves("prover")[0] for e in episodes]
    batch = batch_from_token_ids([m.extras["prompt_ids"] for m in moves], [m.extras["completion_ids"] for m in moves],
                                 0)
    rewards = torch.tensor([e.rewards["prover"] for e in episodes])
    groups = torch.tensor([0, 0, 0, 1, 1, 1])
    with torch.no_grad():
        tl, mask = completion_logprobs(agent.model, batch)
    return float(policy_gradient_loss(tl, mask, group_advantages(rewards, groups, "rloo")))


@pytest.mark.parametrize("kl_estimator", ["k3", "k1"])
def test_policy_gradient_learner_raises_rewarded_completions(kl_estimator):
    agent = generator_agent()
    reference = copy.deepcopy(agent.model)
    ref_before, before = params(reference), params(agent.model)
    episodes = pg_episodes()
    loss0 = pg_loss_on(agent, episodes)
    learner = PolicyGradientLearner(seat="prover", reward_fn=lambda eps: [e.rewards["prover"] for e in eps],
                                    reference=reference, beta=0.01, kl_estimator=kl_estimator,
                                    opt=Optimization(lr=3e-3, batch_size=3, epochs=4))
    metrics = learner.update(agent, episodes)
    assert changed(before, agent.model)
    assert pg_loss_on(agent, episodes) < loss0 - 0.05
    assert metrics["groups"] == 2 and metrics["samples"] == 6
    assert metrics["kl"] == pytest.approx(0.0, abs=1e-5)  # π = π_ref before the first update
    assert_frozen_and_untouched(reference, ref_before)


def test_the_kl_before_the_update_is_the_same_read_from_the_one_steps_forward_or_its_own():
    """`kl` (Σ_t k1 under π before the update, mean over samples) by hand, against fit_rewards' figure when
    the update is one optimizer step (read from the loss's forward) and when it is several (own forward)."""
    agent = generator_agent()
    reference = copy.deepcopy(agent.model)
    episodes = pg_episodes()
    rewards = [e.rewards["prover"] for e in episodes]
    PolicyGradientLearner(seat="prover", opt=Optimization(lr=3e-2, batch_size=6)).fit_rewards(agent, episodes, rewards)
    moves = [e.moves("prover")[0] for e in episodes]
    batch = batch_from_token_ids([m.extras["prompt_ids"] for m in moves], [m.extras["completion_ids"] for m in moves],
                                 0)
    with torch.no_grad():
        pi, mask = completion_logprobs(agent.model, batch)
        ref, _ = completion_logprobs(reference, batch)
    by_hand = float(masked_sum(pi - ref, mask).mean())
    assert abs(by_hand) > 1e-3  # π moved away from π_ref, so the figure means something
    for opt in (Optimization(lr=1e-3, batch_size=6, epochs=1), Optimization(lr=1e-3, batch_size=3, epochs=2)):
        learner = PolicyGradientLearner(seat="prover", reference=reference, beta=0.01, opt=opt)
        metrics = learner.fit_rewards(copy.deepcopy(agent), episodes, rewards)
        assert metrics["kl"] == pytest.approx(by_hand, abs=1e-5)


def test_policy_gradient_learner_needs_a_reference_for_kl():
    with pytest.raises(ArenaError):
        PolicyGradientLearner(seat="prover", reward_fn=lambda eps: [], beta=0.1)


def test_data_given_per_call_trains_exactly_as_data_given_at_construction():
    """`fit_solutions` / `fit_rewards` (the recipe builds the round's data) = `update` with `data` / `reward_fn`."""
    def weights_after(learner, agent, fit):
        learner.reset(5)
        fit(learner, agent)
        return params(agent.model)

    opt = Optimization(lr=3e-3, batch_size=3, epochs=2)
    a = weights_after(VerifierLearner(data=SOLUTIONS, opt=opt), FakeScorer(), lambda learner, g: learner.update(g, []))
    b = weights_after(VerifierLearner(opt=opt), FakeScorer(), lambda learner, g: learner.fit_solutions(g, SOLUTIONS))
    assert all(torch.equal(x, y) for x, y in zip(a, b))

    episodes = pg_episodes()
    rewards = [e.rewards["prover"] for e in episodes]
    a = weights_after(PolicyGradientLearner(seat="prover", reward_fn=lambda eps: rewards, opt=opt),
                      generator_agent(), lambda learner, g: learner.update(g, episodes))
    b = weights_after(PolicyGradientLearner(seat="prover", opt=opt), generator_agent(),
                      lambda learner, g: learner.fit_rewards(g, episodes, rewards))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    with pytest.raises(ArenaError, match="one per episode"):
        PolicyGradientLearner(seat="prover", opt=opt).fit_rewards(generator_agent(), episodes, rewards[:-1])


REST = [("2+3=", "5", 1.0), ("4+4=", "8", 0.9), ("1+6=", "7", 0.8), ("2+3=", "6", 0.1), ("4+4=", "9", 0.0)]


def filtered_loss_on(agent, tau: float) -> float:
    batch = encode_pairs(TOK, [p for p, _, _ in REST], [c for _, c, _ in REST])
    with torch.no_grad():
        tl, mask = completion_logprobs(agent.model, batch)
    return float(filtered_nll(tl, mask, torch.tensor([r for _, _, r in REST]), tau))


def test_filtered_nll_learner_lowers_the_filtered_loss():
    agent = generator_agent()
    before, loss0 = params(agent.model), filtered_loss_on(agent, 0.5)
    evals = iter([0.2, 0.7, 0.5])
    learner = FilteredNLLLearner(data=REST, thresholds=(0.5, 0.85, 0.95), lr_decay=0.5,
                                 eval_fn=lambda a: next(evals), opt=Optimization(**FAST))
    metrics = learner.update(agent, [])
    assert changed(before, agent.model)
    assert filtered_loss_on(agent, 0.5) < loss0 - 0.1
    assert [metrics[f"improve{i}_kept"] for i in range(3)] == [3.0, 2.0, 1.0]
    assert metrics["eval_best"] == 0.7


def test_best_weights_keeps_the_earliest_best_step_and_restores_it():
    model = torch.nn.Linear(2, 1)
    best, seen = BestWeights(), []
    for step, score in enumerate([0.2, 0.7, 0.7, 0.5]):
        with torch.no_grad():
            model.weight.add_(1.0)
        seen.append(model.weight.detach().clone())
        best.offer(model, score, step)
    best.restore(model)
    assert (best.step, best.score) == (1, 0.7) and torch.equal(model.weight, seen[1])


def test_same_seed_same_update_and_optimizer_state_round_trips(tmp_path):
    def run(seed: int):
        agent = generator_agent()
        learner = SFTLearner(data=PAIRS, opt=Optimization(lr=1e-3, batch_size=2, keep_state=True))
        learner.reset(seed)
        learner.update(agent, [])
        return agent, learner

    (a1, l1), (a2, _) = run(7), run(7)
    assert all(torch.equal(p, q) for p, q in zip(a1.model.parameters(), a2.model.parameters()))
    l1.save(tmp_path)
    restored = SFTLearner(data=PAIRS, opt=Optimization(lr=1e-3, batch_size=2, keep_state=True))
    restored.load(tmp_path)
    opt1 = l1.optimizer_for(a1.model, l1.opt)
    opt2 = restored.optimizer_for(a1.model, restored.opt)
    s1, s2 = opt1.state_dict()["state"], opt2.state_dict()["state"]
    assert s1.keys() == s2.keys() and len(s1) > 0
    for k in s1:
        for name in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(torch.as_tensor(s1[k][name]), torch.as_tensor(s2[k][name]))
