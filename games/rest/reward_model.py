"""A learned reward model for rest-v0: a scorer regressed onto chrF of scored (source, translation) pairs.

The paper's rewards came from learned reward models, not from the metric; this
is the toy version. The scored pairs are rule-made candidates for training
sources -- the reference, flawed translations with one or two mistakes (as the
"human" data has), and the translation of another sentence -- each labelled
with chrF++ against the reference. The model reads `rules.reward_prompt`
(source and candidate, no reference) and is trained with a mean-squared error
to the label, so its score is on the [0, 1] scale (`normalise(..., "clip")`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np


def scored_pairs(n_sources: int, seed: int) -> list[tuple[str, str, float]]:
    """(source, candidate, chrF) triples: 4 candidates per training source."""
    from games.rest import rules

    rng = np.random.default_rng([seed, 11])
    srcs = rules.sources("train", n_sources, seed + 1000)
    out = []
    for src in srcs:
        sentence = rules.parse(src)
        ref = sentence.english()
        once = rules.corrupt(sentence, rng)
        twice = _second_mistake(once, rng)
        other = rules.translate(srcs[int(rng.integers(len(srcs)))])
        for y in (ref, once, twice, other):
            out.append((src, y, rules.chrf(y, ref)))
    return out


def _second_mistake(text: str, rng: np.random.Generator) -> str:
    words = text.split()
    if len(words) > 3:
        del words[int(rng.integers(1, len(words)))]
    return " ".join(words)


def train_reward_model(base: str, out_dir: Path, *, n_sources: int = 768, epochs: int = 6, lr: float = 3e-4,
                       batch_size: int = 64, seed: int = 0, data_seed: int | None = None,
                       device: str | None = None) -> Path:
    """Fit the scorer (backbone from `base`, head seeded by `seed`) on the scored pairs of
    `data_seed` (default `seed`) and save it to `out_dir`."""
    import torch
    import torch.nn.functional as F

    from agents.hf import LoadConfig, ScorerAgent
    from agents.learners import Optimization, fit, make_optimizer
    from games.rest import rules

    data_seed = seed if data_seed is None else data_seed
    data = scored_pairs(n_sources, data_seed)
    held = scored_pairs(64, data_seed + 1)
    scorer = ScorerAgent.from_pretrained(base, load=LoadConfig(device=device or "", seed=seed))
    texts = [rules.reward_prompt(s, y) for s, y, _ in data]
    labels = torch.tensor([c for _, _, c in data], dtype=torch.float32)

    def loss_of(idx: Sequence[int]):
        scores = scorer.scores([texts[i] for i in idx], grad=True)  # (B,)
        return F.mse_loss(scores, labels[list(idx)].to(scores.device)), {}

    opt = Optimization(lr=lr, batch_size=batch_size, epochs=epochs)
    metrics = fit(scorer.model, make_optimizer(scorer.model, opt), len(data), loss_of, opt,
                  torch.Generator().manual_seed(seed))
    pred = scorer.scores([rules.reward_prompt(s, y) for s, y, _ in held]).cpu().numpy()
    gold = np.array([c for _, _, c in held])
    quality = {"heldout_mae": float(np.mean(np.abs(pred - gold))),
               "heldout_corr": float(np.corrcoef(pred, gold)[0, 1]) if pred.std() > 0 else 0.0}
    scorer.save(Path(out_dir))
    (Path(out_dir) / "reward_model.json").write_text(json.dumps({"fit": metrics, **quality, "pairs": len(data)},
                                                                indent=2))
    return Path(out_dir)
