"""Pretraining the tiny prover and verifier bases (`arena pretrain prover-verifier-v0`).

The prover is SFT'd on demonstrations of both roles for the same problems: the
helpful one is `rules.honest_solution`, the sneaky one `rules.sneaky_solution`
(one planted error carried to the answer; half of them in the last step by +-1).
The verifier's base is a smaller LM pretrained to judge: it reads the verifier's
own input (`rules.verifier_prompt`) of a correct or a rule-made incorrect
solution and predicts `right` / `wrong` -- a stand-in for the math a real
pretrained verifier brings (an LM pretrained on correct solutions alone gave a
scorer that did not learn to check within a round's budget: held-out AUC ~0.5).
Its scalar head is added, freshly initialised, when it is loaded as a scorer, and
checkability training re-starts from exactly these weights every round. Problems come from a generator stream of their own seed, so they are
not the pools the game trains on (those are drawn from other seeds).

Shipped bases (`games/prover_verifier/assets/`) were made by

    arena pretrain prover-verifier-v0 --out games/prover_verifier/assets --steps 1500 --seed 0
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from games.prover_verifier import rules

PROVER_SHAPE: dict[str, Any] = dict(hidden_size=96, intermediate_size=288, num_hidden_layers=3,
                                    num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512)
"""The tiny prover: about 0.38M parameters."""
VERIFIER_SHAPE: dict[str, Any] = dict(hidden_size=64, intermediate_size=192, num_hidden_layers=2,
                                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512)
"""The tiny verifier: about 0.11M parameters (a third of the prover)."""
ASSETS = Path(__file__).parent / "assets"


MAX_VALUE = 9
"""The tiny task: one-digit arithmetic (every number in 0..9), so a tiny verifier can learn to check it."""


def prover_demos(n: int, seed: int, min_steps: int = 2, max_steps: int = 3,
                 max_value: int | None = MAX_VALUE) -> list[tuple[str, str]]:
    """(prompt, solution) pairs: each problem once helpful (correct) and once sneaky (one planted error)."""
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(n):
        p = rules.generate_problem(rng, min_steps, max_steps, max_value=max_value)
        pairs.append((rules.prover_prompt("helpful", p.question), rules.honest_solution(p)))
        sneaky = rules.sneaky_solution(p, rng, subtle=bool(rng.integers(2)), max_value=max_value)
        pairs.append((rules.prover_prompt("sneaky", p.question), sneaky))
    return pairs


def verifier_demos(n: int, seed: int, min_steps: int = 2, max_steps: int = 3,
                   max_value: int | None = MAX_VALUE) -> list[tuple[str, str]]:
    """(verifier input, `right` | `wrong`) pairs for the verifier's base LM, half of each."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        p = rules.generate_problem(rng, min_steps, max_steps, max_value=max_value)
        if rng.random() < 0.5:
            out.append((rules.verifier_prompt(p.question, rules.honest_solution(p)), "right"))
        else:
            wrong = rules.sneaky_solution(p, rng, subtle=bool(rng.integers(2)), max_value=max_value)
            out.append((rules.verifier_prompt(p.question, wrong), "wrong"))
    return out


def judge_to_scorer(directory: Path, good: str = "r", bad: str = "w") -> None:
    """Turn a judging causal LM in `directory` into a scorer there, in place.

    The scalar head is set to the difference of the LM head's rows for the first
    characters of `right` and `wrong`, so the scorer starts out scoring
    log p(right) - log p(wrong) at the last token: the pretrained judge, as a
    `LlamaForSequenceClassification` (one label) that loads with plain
    `AutoModelForSequenceClassification.from_pretrained`.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    from agents.hf import quiet_transformers, save_agent_dir

    directory = Path(directory)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    with quiet_transformers(warnings=False):  # the LM checkpoint has no score head: set just below
        lm = AutoModelForCausalLM.from_pretrained(directory)
        scorer = AutoModelForSequenceClassification.from_pretrained(directory, num_labels=1,
                                                                    pad_token_id=tokenizer.pad_token_id)
    ids = tokenizer.convert_tokens_to_ids([good, bad])
    with torch.no_grad():
        rows = lm.get_output_embeddings().weight  # (V, H)
        scorer.score.weight.copy_((rows[ids[0]] - rows[ids[1]])[None, :])  # (1, H)
    for f in directory.glob("*.safetensors"):
        f.unlink()
    save_agent_dir(scorer, tokenizer, directory, {"agent": "scorer"})


def pretrain(out_dir: Path, *, steps: int = 1500, seed: int = 0, verifier_steps: int | None = None,
             progress: bool = True) -> Path:
    """Write `<out_dir>/prover` (tiny causal LM) and `<out_dir>/verifier` (the verifier's base LM)."""
    from agents.tiny import pretrain as sft

    out_dir = Path(out_dir)
    prover = sft(prover_demos(20_000, seed + 1), out_dir / "prover", steps=steps, seed=seed,
                 batch_size=32, progress=progress, **PROVER_SHAPE)
    verifier = sft(verifier_demos(20_000, seed + 2), out_dir / "verifier", steps=verifier_steps or steps,
                   seed=seed + 3, batch_size=32, progress=progress, **VERIFIER_SHAPE)
    judge_to_scorer(out_dir / "verifier")
    info = {"command": f"arena pretrain prover-verifier-v0 --out {out_dir} --steps {steps} --seed {seed}",
            "prover": {"parameters": prover.parameters, "steps": prover.steps, "final_loss": prover.final_loss,
                       "seconds": prover.seconds},
            "verifier": {"parameters": verifier.parameters, "steps": verifier.steps,
                         "final_loss": verifier.final_loss, "seconds": verifier.seconds}}
    (out_dir / "pretrain.json").write_text(json.dumps(info, indent=2))
    return out_dir
