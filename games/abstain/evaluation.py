"""What a student would do on each question, read exactly off its model (no sampling).

For every question, one batched greedy decode gives

- `p_abstain`: the probability that the student's answer starts the abstain phrase
  (its first token: `I` of "I don't know"), i.e. 1 - its answer rate on that question;
- its answer: the greedy completion with that first token ruled out, i.e. what it
  says when it does answer;
- `confidence`: that answer's sequence probability (stop token included) given that
  it answers -- the first token's probability is renormalised without the abstain
  token. This is "the model's own confidence" on the x-axis of the answer-rate curve;
- `correct`: whether that answer passes the gold check.

`question_stats` returns these per question (with kind and attribute), and
`curve_metrics` the scalar summaries a round reports: answer rate by kind, mean
confidence, the learned threshold (`metrics.logistic_threshold`: where a logistic
fit of its answer rate on its confidence crosses 1/2; and `metrics.learned_threshold`,
the best step rule with its interval), the payoff-optimal step rule on the same
questions, and the nominal k/(1+k).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from games.abstain import metrics, rules


def _first_token(tokenizer: Any, text: str) -> int:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return int(ids[0])


def _stop_ids(tokenizer: Any) -> set[int]:
    stops = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    nl = tokenizer("\n", add_special_tokens=False)["input_ids"]
    return stops | ({int(nl[0])} if len(nl) == 1 else set())


@torch.inference_mode()
def decide(model: Any, tokenizer: Any, prompt_ids: Sequence[Sequence[int]], *, max_new_tokens: int = 16,
           chunk: int = 256) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(p_abstain (N,), greedy non-abstain answers, their confidence (N,)) for tokenised prompts."""
    banned = _first_token(tokenizer, rules.ABSTAIN)
    stops = _stop_ids(tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    p_abs, texts, conf = [], [], []
    try:
        for start in range(0, len(prompt_ids), chunk):
            part = [list(p) for p in prompt_ids[start:start + chunk]]
            B, T = len(part), max(len(p) for p in part)
            ids = torch.full((B, T), pad, dtype=torch.long)
            mask = torch.zeros((B, T), dtype=torch.long)
            for i, p in enumerate(part):  # left padding: every prompt ends at column T-1
                ids[i, T - len(p):] = torch.tensor(p)
                mask[i, T - len(p):] = 1
            ids, mask = ids.to(device), mask.to(device)
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
            logp_sum = torch.zeros(B, device=device)
            done = torch.zeros(B, dtype=torch.bool, device=device)
            out: list[list[int]] = [[] for _ in range(B)]
            result = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True)
            next_pos = pos[:, -1:] + 1  # (B, 1)
            for step in range(max_new_tokens):
                logp = torch.log_softmax(result.logits[:, -1].float(), -1)  # (B, V)
                if step == 0:
                    p_abs.append(logp[:, banned].exp().cpu())
                    logp[:, banned] = -torch.inf
                    logp = logp - torch.logsumexp(logp, -1, keepdim=True)  # renormalised: given it answers
                tok = logp.argmax(-1)  # (B,)
                logp_sum += torch.where(done, 0.0, logp.gather(1, tok[:, None]).squeeze(1))
                stopped = torch.tensor([t in stops for t in tok.tolist()], device=device)
                for i, t in enumerate(tok.tolist()):
                    if not done[i] and not stopped[i]:
                        out[i].append(t)
                done |= stopped
                if bool(done.all()):
                    break
                mask = torch.cat([mask, mask.new_ones((B, 1))], 1)
                result = model(input_ids=tok[:, None], attention_mask=mask, position_ids=next_pos,
                               cache=result.cache, use_cache=True)
                next_pos = next_pos + 1
            texts += [tokenizer.decode(o, skip_special_tokens=True) for o in out]
            conf.append(logp_sum.exp().cpu())
    finally:
        model.train(was_training)
    if not texts:
        return np.zeros(0), [], np.zeros(0)
    return torch.cat(p_abs).numpy().astype(float), texts, torch.cat(conf).numpy().astype(float)


def question_stats(agent: Any, facts: Sequence[rules.Fact]) -> list[dict[str, Any]]:
    """Per question: kind, attribute, p_answer, the greedy answer, confidence, correct."""
    from agents.hf import encode_prompt

    sampling = getattr(agent, "sampling", None)
    prompts = [encode_prompt(agent.tokenizer, rules.student_prompt(f.question), sampling) for f in facts]
    max_new = min(getattr(sampling, "max_new_tokens", 16) or 16, 24)
    p_abs, answers, conf = decide(agent.model, agent.tokenizer, prompts, max_new_tokens=max_new)
    return [{"question": f.question, "kind": f.kind, "attribute": f.attribute, "exposure": f.exposure,
             "p_answer": float(1.0 - pa), "answer": a, "confidence": float(c),
             "correct": float(rules.outcome(a, f.answer) == "correct")}
            for f, pa, a, c in zip(facts, p_abs, answers, conf)]


def curve_metrics(stats: Sequence[dict[str, Any]], k: float) -> dict[str, float]:
    """Round summaries of `question_stats`: exact answer rates, confidence, thresholds."""
    if not stats:
        return {}
    out: dict[str, float] = {}
    for kind in ("known", "unknown"):
        rs = [s for s in stats if s["kind"] == kind]
        if rs:
            out[f"{kind}_answer_rate"] = float(np.mean([s["p_answer"] for s in rs]))
            out[f"{kind}_confidence"] = float(np.mean([s["confidence"] for s in rs]))
            out[f"{kind}_greedy_accuracy"] = float(np.mean([s["correct"] for s in rs]))
    conf = [s["confidence"] for s in stats]
    t, lo, hi = metrics.learned_threshold(conf, [s["p_answer"] for s in stats])
    o, olo, ohi = metrics.optimal_threshold(conf, [s["correct"] for s in stats], k)
    logistic = metrics.logistic_threshold(conf, [s["p_answer"] for s in stats])
    out.update({"threshold": t, "threshold_lo": lo, "threshold_hi": hi, "threshold_logistic": logistic,
                "optimal_threshold": o, "optimal_lo": olo, "optimal_hi": ohi,
                "nominal_threshold": rules.answer_threshold(k),
                "greedy_payoff": float(np.mean([s["p_answer"] * (s["correct"] - k * (1 - s["correct"]))
                                                  for s in stats]))})
    return out
