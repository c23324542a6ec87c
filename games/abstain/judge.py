"""The learned comparison judge: a tiny scorer trained on (answer, reference) pairs labelled same / different.

Schulman's point that a model can learn the reward itself, in miniature: the judge
reads `rules.judge_prompt(answer, reference)` and outputs a logit for "same". Its
training pairs are made from the references of the *training* facts only (the
train split of known and unknown countries) -- never from an evaluation fact --
and labelled by the gold check:

- same (half): the reference as a person might write it (`rules.surface_variant`:
  lower case, spacing, a full stop, an article);
- different: a near miss (one letter substituted, dropped or inserted:
  `rules.near_miss`), another answer to the same kind of question (another capital,
  region or state), or another capital / the abstain phrase at random.

It is a fresh `LlamaForSequenceClassification` of `JUDGE_SHAPE`, trained with a
logistic loss on the score (`fit`, AdamW). `judge_accuracy` measures it on pairs
built the same way from the *evaluation* facts (references it never saw), per
kind of pair, as the pretraining report and the experiment show.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from games.abstain import rules

JUDGE_SHAPE: dict[str, Any] = dict(hidden_size=64, intermediate_size=192, num_hidden_layers=2, num_attention_heads=4,
                                   num_key_value_heads=4, max_position_embeddings=128)
"""About 0.11M parameters."""
PAIR_KINDS = ("same", "near_miss", "other", "random")


def comparison_pairs(facts: Sequence[rules.Fact], n: int, seed: int) -> list[tuple[str, str, float, str]]:
    """`n` (answer, reference, label, pair kind) items from these facts' references; half are 'same'."""
    rng = np.random.default_rng([seed, 5151])
    by_attribute: dict[str, list[str]] = {}
    for f in facts:
        by_attribute.setdefault(f.attribute, []).append(f.answer)
    for a in by_attribute:
        by_attribute[a] = sorted(set(by_attribute[a]))
    capitals = by_attribute.get("capital", ["Quelm"])
    out = []
    for _ in range(n):
        f = facts[int(rng.integers(len(facts)))]
        ref = f.answer
        r = rng.random()
        if r < 0.5:
            out.append((rules.surface_variant(ref, rng), ref, 1.0, "same"))
            continue
        if r < 0.75:
            answer, kind = rules.near_miss(ref, rng), "near_miss"
        elif r < 0.92:
            pool = [x for x in by_attribute[f.attribute] if x != ref] or capitals
            answer, kind = pool[int(rng.integers(len(pool)))], "other"
        else:
            answer = rules.ABSTAIN if rng.random() < 0.3 else capitals[int(rng.integers(len(capitals)))]
            kind = "random"
        if rng.random() < 0.3:
            answer = rules.surface_variant(answer, rng)
        label = float(rules.outcome(answer, ref) == "correct")
        out.append((answer, ref, label, kind))
    return out


def training_facts(base: rules.FactBase) -> list[rules.Fact]:
    """The facts whose references the judge may see in training: everything but the eval split."""
    return [f for f in base.facts if f.split != "eval"]


def train_judge(base: rules.FactBase, out_dir: Path, *, steps: int = 1500, seed: int = 0, lr: float = 2e-3,
                batch_size: int = 64, device: str | None = None, say=None) -> dict[str, Any]:
    """Fit the judge on `steps` batches of fresh training pairs; save it (and `judge.json`) to `out_dir`."""
    import torch
    import torch.nn.functional as F

    from agents.hf import ScorerAgent
    from agents.learners import Optimization, fit, make_optimizer
    from agents.tiny import new_tiny_scorer

    facts = training_facts(base)
    assert not any(f.split == "eval" for f in facts)
    data = comparison_pairs(facts, steps * batch_size, seed)
    model, tokenizer = new_tiny_scorer(seed, **JUDGE_SHAPE)
    if device:
        model.to(device)
    judge = ScorerAgent(model, tokenizer, seed=seed)
    texts = [rules.judge_prompt(a, r) for a, r, _, _ in data]
    labels = torch.tensor([y for _, _, y, _ in data])

    def loss_of(idx: list[int]):
        scores = judge.scores([texts[i] for i in idx], grad=True)  # (B,)
        y = labels[idx].to(scores.device)
        accuracy = float(((scores > 0).float() == y).float().mean())
        return F.binary_cross_entropy_with_logits(scores, y), {"accuracy": accuracy}

    opt = Optimization(lr=lr, batch_size=batch_size, epochs=1)
    fitted = fit(judge.model, make_optimizer(judge.model, opt), len(data), loss_of, opt,
                 torch.Generator().manual_seed(seed))
    report = {"fit": fitted, "pairs": len(data), "heldout": judge_accuracy(judge, base, seed=seed + 1),
              "parameters": sum(p.numel() for p in judge.model.parameters())}
    out_dir = Path(out_dir)
    judge.save(out_dir)
    (out_dir / "judge.json").write_text(json.dumps(report, indent=2))
    if say:
        say(f"judge: held-out accuracy {report['heldout']['accuracy']:.3f}")
    return report


def judge_accuracy(judge: Any, base: rules.FactBase, *, n: int = 2000, seed: int = 1) -> dict[str, float]:
    """Accuracy of `judge` (verdict = score > 0) on pairs from the evaluation facts, overall and per pair kind."""
    pairs = comparison_pairs([f for f in base.facts if f.split == "eval"], n, seed)
    scores = judge.scores([rules.judge_prompt(a, r) for a, r, _, _ in pairs]).cpu().numpy()
    hit = (scores > 0) == np.array([y > 0.5 for _, _, y, _ in pairs])
    out = {"accuracy": float(hit.mean()), "n": float(len(pairs))}
    for kind in PAIR_KINDS:
        sel = np.array([k == kind for *_, k in pairs])
        if sel.any():
            out[f"accuracy_{kind}"] = float(hit[sel].mean())
    return out
