"""The loss library against values computed by hand, and DPO/RPO against an
independent implementation on a tiny causal LM.

Every expected value below is written out with `math.log`/`math.exp` on plain
floats, never by calling the function under test.
"""
from __future__ import annotations

import math

import pytest
import torch

from agents.batch import batch_from_token_ids, completion_logprobs, encode_pairs, sequence_logprobs
from agents.losses import (bradley_terry_loss, cgc_reward, dpo_loss, explicit_rm_loss, filtered_nll,
                           goodhart_reward, group_advantages, implicit_reward, kl_k1, kl_k3,
                           kl_shaped_rewards, policy_gradient_loss, rpo_loss, sft_nll, src_reward,
                           verifier_loss)

NAN = float("nan")




def log_sigmoid(x: float) -> float:
    return math.log(1.0 / (1.0 + math.exp(-x)))


def t(*rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


def close(a: torch.Tensor | float, b: float, tol: float = 1e-10) -> bool:
    return abs(float(a) - b) < tol


# --- token-level NLLs ------------------------------------------------------------------

# Row 0: prompt token masked out, two completion tokens (-2, -0.5).
# Row 1: two completion tokens (-0.3, -0.7), then padding holding garbage (NaN).
TOKEN_LOGPS = t([-1.0, -2.0, -0.5], [-0.3, -0.7, NAN])
MASK = torch.tensor([[False, True, True], [True, True, False]])


def test_sft_nll_by_hand():
    assert close(sft_nll(TOKEN_LOGPS, MASK, "sum"), (2.5 + 1.0) / 2)
    assert close(sft_nll(TOKEN_LOGPS, MASK, "mean"), (2.5 / 2 + 1.0 / 2) / 2)
    with pytest.raises(ValueError):
        sft_nll(TOKEN_LOGPS, MASK, "tokens")


def test_filtered_nll_by_hand():
    rewards = t(0.9, 0.2)
    assert close(filtered_nll(TOKEN_LOGPS, MASK, rewards, 0.5), (1 * 2.5 + 0 * 1.0) / 2)
    assert close(filtered_nll(TOKEN_LOGPS, MASK, rewards, 0.1), (2.5 + 1.0) / 2)
    assert close(filtered_nll(TOKEN_LOGPS, MASK, rewards, 0.9), 0.0)  # strict: R > τ


# --- preferences -----------------------------------------------------------------------

PI_C, PI_R, REF_C, REF_R = t(-3.0, -5.0), t(-4.0, -4.0), t(-3.5, -5.0), t(-3.5, -4.5)


def test_bradley_terry_by_hand():
    expected = -(log_sigmoid(1.0 - 0.0) + log_sigmoid(-0.5 - 0.5)) / 2
    assert close(bradley_terry_loss(t(1.0, -0.5), t(0.0, 0.5)), expected)


def test_implicit_reward_by_hand():
    assert torch.allclose(implicit_reward(PI_C, REF_C, 0.5), t(0.5 * 0.5, 0.5 * 0.0))


def dpo_by_hand(beta: float) -> float:
    z0 = beta * ((-3.0 + 3.5) - (-4.0 + 3.5))  # = beta * 1.0
    z1 = beta * ((-5.0 + 5.0) - (-4.0 + 4.5))  # = beta * -0.5
    return -(log_sigmoid(z0) + log_sigmoid(z1)) / 2


def test_dpo_by_hand():
    assert close(dpo_loss(PI_C, PI_R, REF_C, REF_R, 0.5), dpo_by_hand(0.5))
    assert close(dpo_loss(PI_C, PI_R, REF_C, REF_R, 0.5), -(log_sigmoid(0.5) + log_sigmoid(-0.25)) / 2)


def test_rpo_sum_by_hand():
    beta, eta = 0.5, 0.2
    expected = eta * beta * (3.0 + 5.0) / 2 + dpo_by_hand(beta)  # summed NLL of chosen: 3 and 5
    assert close(rpo_loss(PI_C, PI_R, REF_C, REF_R, beta, eta, variant="sum"), expected)


def test_rpo_mean_by_hand():
    beta, eta = 0.5, 0.2
    lengths = torch.tensor([2, 4])
    expected = eta * (3.0 / 2 + 5.0 / 4) / 2 + dpo_by_hand(beta)  # token-averaged NLL of chosen
    assert close(rpo_loss(PI_C, PI_R, REF_C, REF_R, beta, eta, variant="mean", chosen_lengths=lengths),
                 expected)
    with pytest.raises(ValueError):
        rpo_loss(PI_C, PI_R, REF_C, REF_R, beta, eta, variant="mean")


def test_explicit_rm_loss_by_hand():
    bt = -(log_sigmoid(1.0) + log_sigmoid(-1.0)) / 2
    expected = bt + 0.1 * ((2.0 + 4.0) / 2 - (1.0 + 0.0 + -1.0) / 3)
    assert close(explicit_rm_loss(t(1.0, -0.5), t(0.0, 0.5), t(2.0, 4.0), t(1.0, 0.0, -1.0), 0.1), expected)


# --- prover-verifier ----------------------------------------------------------------------

def test_verifier_loss_by_hand():
    v1, v2, sign = t(1.0, 0.2), t(0.5, 0.4), t(1.0, -1.0)
    allv = t(1.0, 0.2, 0.5, 0.4)
    expected = -(log_sigmoid((1.0 - 0.5) * 1) + log_sigmoid((0.2 - 0.4) * -1)) / 2 \
        + 0.1 * (1.0 + 0.04 + 0.25 + 0.16) / 4
    assert close(verifier_loss(v1, v2, sign, allv, 0.1), expected)
    bt = expected - 0.1 * (1.0 + 0.04 + 0.25 + 0.16) / 4
    assert close(verifier_loss(v1, v2, sign, allv, 0.1, "centred"), bt + 0.1 * ((1.0 + 0.2 + 0.5 + 0.4) / 4) ** 2)


def test_centred_verifier_penalty_moves_every_score_alike():
    """The centred term's gradient is the same for every score (it only removes a shift); the paper's
    pulls each score by its own size, the lowest hardest."""
    v = t(-10.0, -20.0).requires_grad_()
    verifier_loss(v[:0], v[:0], v[:0], v, 0.1, "centred").backward()
    assert close(v.grad[0], v.grad[1]) and close(v.grad[0], 2 * 0.1 * -15.0 / 2)
    v.grad = None
    verifier_loss(v[:0], v[:0], v[:0], v, 0.1, "paper").backward()
    assert close(v.grad[0], 2 * 0.1 * -10.0 / 2) and close(v.grad[1], 2 * 0.1 * -20.0 / 2)
    with pytest.raises(ValueError, match="centred or paper"):
        verifier_loss(v, v, v, v, 0.1, "other")


def test_src_reward_by_hand():
    v = t(1.0, 4.0, 3.0, 0.0)
    correct, helpful = torch.tensor([1, 0, 0, 1]), torch.tensor([1, 1, 0, 0])
    groups = torch.tensor([0, 0, 1, 1])
    # group 0: mean 2.5 -> V' = (-1.5, +1.5); group 1: mean 1.5 -> V' = (+1.5, -1.5)
    expected = [-1.0,                       # V' <= 0
                (2 * 0 - 1) * (2 * 1 - 1) * 1.5,   # helpful but incorrect: -1.5
                (2 * 0 - 1) * (2 * 0 - 1) * 1.5,   # sneaky and incorrect: +1.5
                -1.0]
    assert torch.allclose(src_reward(v, correct, helpful, groups), t(*expected))


def test_cgc_and_goodhart_by_hand():
    v = t(0.3, 0.7, -0.2)
    correct, helpful = torch.tensor([1, 0, 0]), torch.tensor([1, 1, 0])
    assert torch.allclose(cgc_reward(v, correct, helpful), t(0.3, -2.0, -0.2))
    assert torch.allclose(goodhart_reward(v), v)


# --- policy gradient -------------------------------------------------------------------

REWARDS = t(1.0, 2.0, 4.0, 10.0, 7.0)
GROUPS = torch.tensor([0, 0, 0, 1, 2])  # one group of three, two singletons


def test_group_advantages_rloo_by_hand():
    # leave-one-out means in group 0: (2+4)/2, (1+4)/2, (1+2)/2; singletons: no baseline
    expected = t(1 - 3.0, 2 - 2.5, 4 - 1.5, 10.0, 7.0)
    assert torch.allclose(group_advantages(REWARDS, GROUPS, "rloo"), expected)


def test_group_advantages_mean_and_std_by_hand():
    m = 7.0 / 3
    expected = t(1 - m, 2 - m, 4 - m, 0.0, 0.0)
    assert torch.allclose(group_advantages(REWARDS, GROUPS, "mean"), expected)
    std = math.sqrt(((1 - m) ** 2 + (2 - m) ** 2 + (4 - m) ** 2) / 2)  # unbiased
    got = group_advantages(REWARDS, GROUPS, "mean", normalize_std=True, eps=0.0)
    assert torch.allclose(got, t((1 - m) / std, (2 - m) / std, (4 - m) / std, 0.0, 0.0))
    assert torch.allclose(group_advantages(REWARDS, GROUPS, "none"), REWARDS)


PG_LOGPS = t([-1.0, -2.0], [-0.5, NAN])
PG_REF = t([-1.5, -1.0], [-0.5, 0.0])
PG_MASK = torch.tensor([[True, True], [True, False]])


def test_kl_estimators_by_hand():
    assert close(kl_k1(PG_LOGPS, PG_REF)[0, 0], -1.0 + 1.5)
    assert close(kl_k3(PG_LOGPS, PG_REF)[0, 1], math.exp(1.0) - 1.0 - 1)  # d = ref - pi = 1
    assert close(kl_k3(PG_LOGPS, PG_REF)[0, 0], math.exp(-0.5) + 0.5 - 1)


def test_policy_gradient_loss_by_hand():
    adv = t(2.0, -1.0)
    pg = -(2.0 * (-1.0 + -2.0) + (-1.0) * (-0.5)) / 2
    assert close(policy_gradient_loss(PG_LOGPS, PG_MASK, adv), pg)
    kl_row0 = (math.exp(-0.5) + 0.5 - 1) + (math.exp(1.0) - 1.0 - 1)
    kl_row1 = math.exp(0.0) - 0.0 - 1
    assert close(policy_gradient_loss(PG_LOGPS, PG_MASK, adv, PG_REF, 0.1), pg + 0.1 * (kl_row0 + kl_row1) / 2)


def test_kl_shaped_rewards_by_hand():
    k1_row0 = (-1.0 + 1.5) + (-2.0 + 1.0)
    assert torch.allclose(kl_shaped_rewards(t(1.0, 2.0), PG_LOGPS, PG_REF, PG_MASK, 0.1),
                          t(1.0 - 0.1 * k1_row0, 2.0 - 0.1 * 0.0))


def test_policy_gradient_gradient_points_up_for_positive_advantage():
    logps = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    policy_gradient_loss(logps, torch.ones(1, 2, dtype=torch.bool), torch.tensor([3.0])).backward()
    assert torch.allclose(logps.grad, torch.tensor([[-3.0, -3.0]]))  # descent raises log π by 3 each


# --- DPO / RPO against an independent implementation on a tiny LM ---------------------------


def char_tokenizer():
    """A character-level PreTrainedTokenizerFast: <pad>=0, <s>=1, </s>=2, <unk>=3, then chars."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    chars = "0123456789+-*=() abcdefghijklmnopqrstuvwxyz.,?!:"
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3}
    vocab.update({c: i + 4 for i, c in enumerate(chars)})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", unk_token="<unk>")


def tiny_llama(vocab_size: int, seed: int, *, classifier: bool = False):
    """A 2-layer, hidden-32 Llama, initialised from `seed` without touching the global RNG."""
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

    cfg = LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                      pad_token_id=0, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False,
                      num_labels=1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = (LlamaForSequenceClassification if classifier else LlamaForCausalLM)(cfg)
    return model.eval()


TRIPLES = [("2+3=", "5", "6"), ("10-4=", "6", "14"), ("what is 7*6? ", "it is 42.", "it is 41, no 40.")]


def independent_seq_logp(model, tokenizer, prompt: str, completion: str) -> tuple[float, int]:
    """log π(completion + EOS | prompt) from one unpadded sequence, a python loop over positions."""
    p = [tokenizer.bos_token_id] + [tokenizer.convert_tokens_to_ids(ch) for ch in prompt]
    c = [tokenizer.convert_tokens_to_ids(ch) for ch in completion] + [tokenizer.eos_token_id]
    ids = p + c
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].double()  # (T, V)
    total = 0.0
    for pos in range(len(p), len(ids)):  # token ids[pos] predicted from position pos-1
        row = logits[pos - 1].tolist()
        m = max(row)
        log_z = m + math.log(sum(math.exp(x - m) for x in row))
        total += row[ids[pos]] - log_z
    return total, len(c)


def library_seq_logps(model, tokenizer):
    prompts = [p for p, _, _ in TRIPLES]
    batch = encode_pairs(tokenizer, prompts + prompts, [c for _, c, _ in TRIPLES] + [r for _, _, r in TRIPLES])
    with torch.no_grad():
        token_logps, mask = completion_logprobs(model, batch)
    seq = (token_logps * mask).sum(dim=1)
    n = len(TRIPLES)
    return seq[:n], seq[n:], mask[:n].sum(dim=1)


@pytest.fixture(scope="module")
def lm_pair():
    tok = char_tokenizer()
    return tok, tiny_llama(len(tok), seed=1), tiny_llama(len(tok), seed=2)


def test_completion_logprobs_match_a_python_loop(lm_pair):
    tok, policy, _ = lm_pair
    pi_c, pi_r, lengths = library_seq_logps(policy, tok)
    for i, (p, c, r) in enumerate(TRIPLES):
        want_c, n_c = independent_seq_logp(policy, tok, p, c)
        want_r, _ = independent_seq_logp(policy, tok, p, r)
        assert abs(float(pi_c[i]) - want_c) < 1e-4 and abs(float(pi_r[i]) - want_r) < 1e-4
        assert int(lengths[i]) == n_c


@pytest.mark.parametrize("loss", ["dpo", "rpo-sum", "rpo-mean"])
def test_dpo_and_rpo_match_an_independent_implementation(lm_pair, loss):
    tok, policy, reference = lm_pair
    beta, eta = 0.1, 0.5
    # the library path: batched, padded, vectorised
    pi_c, pi_r, lengths = library_seq_logps(policy, tok)
    ref_c, ref_r, _ = library_seq_logps(reference, tok)
    if loss == "dpo":
        got = dpo_loss(pi_c, pi_r, ref_c, ref_r, beta)
    else:
        got = rpo_loss(pi_c, pi_r, ref_c, ref_r, beta, eta, variant=loss[4:], chosen_lengths=lengths)
    # the independent path: one sequence at a time, python floats, the formulas of docs/algorithms.md#rpo
    terms = []
    for p, c, r in TRIPLES:
        lp_c, n_c = independent_seq_logp(policy, tok, p, c)
        lp_r, _ = independent_seq_logp(policy, tok, p, r)
        lr_c, _ = independent_seq_logp(reference, tok, p, c)
        lr_r, _ = independent_seq_logp(reference, tok, p, r)
        term = -math.log(1 / (1 + math.exp(-(beta * (lp_c - lr_c) - beta * (lp_r - lr_r)))))
        if loss == "rpo-sum":
            term += eta * beta * -lp_c
        elif loss == "rpo-mean":
            term += eta * -lp_c / n_c
        terms.append(term)
    want = sum(terms) / len(terms)
    assert abs(float(got) - want) < 1e-5


def test_batch_from_token_ids_keeps_tokens_and_masks_the_prompt():
    b = batch_from_token_ids([[1, 5, 6], [1, 7]], [[8, 2], [9, 10, 11]], pad_id=0)
    assert b.input_ids.tolist() == [[1, 5, 6, 8, 2], [1, 7, 9, 10, 11]]
    assert b.completion_mask.tolist() == [[False, False, False, True, True], [False, False, True, True, True]]
    short = batch_from_token_ids([[1, 5, 6, 7]], [[8, 9, 2]], pad_id=0, max_length=5)
    assert short.input_ids.tolist() == [[6, 7, 8, 9, 2]]  # prompt cut from the left first
    assert short.completion_lengths.tolist() == [3]


def test_encode_pairs_right_pads_and_appends_eos():
    tok = char_tokenizer()
    b = encode_pairs(tok, ["1+1=", "2="], ["2", "22"])
    ids = tok.convert_tokens_to_ids
    assert b.input_ids.tolist() == [[1, ids("1"), ids("+"), ids("1"), ids("="), ids("2"), 2],
                                    [1, ids("2"), ids("="), ids("2"), ids("2"), 2, 0]]
    assert b.attention_mask.tolist() == [[1] * 7, [1] * 6 + [0]]
    assert b.completion_lengths.tolist() == [2, 3]


def test_sequence_logprobs_ignore_padding(lm_pair):
    tok, policy, _ = lm_pair
    with torch.no_grad():
        alone = sequence_logprobs(policy, encode_pairs(tok, ["2+3="], ["5"]))
        padded = sequence_logprobs(policy, encode_pairs(tok, ["2+3=", "what is 7*6? "], ["5", "it is 42."]))
    assert abs(float(alone[0]) - float(padded[0])) < 1e-5
