"""Pretraining the tiny prover and verifier bases (`arena pretrain prover-verifier-v1`).

The prover is SFT'd on demonstrations of both roles for the same problems: the
helpful one is `rules.honest_solution`, the sneaky one `rules.sneaky_solution`
(one planted error carried to the answer; half of them in the last step by +-1).
The verifier's base is a smaller LM pretrained briefly (`VERIFIER_STEPS`) on
correct solutions in the very format it scores (`rules.verifier_prompt`): a weak
LM that has seen the task's text but barely its arithmetic. It plays as a
likelihood scorer (`agents.hf.likelihood`, a generative verifier): its score is
the soft minimum of the log-probabilities of the solution's tokens and of its
end, so checkability training (Bradley-Terry on that score) teaches the LM itself
which steps are wrong, and re-starts from exactly these weights every round. (An earlier base, a
judge with a scalar head at the last token, plateaued at AUC 0.72-0.87 whatever
its size and never learned to check from the game's pairs.)
Problems come from a generator stream of their own seed, so they are not the
pools the game trains on (those are drawn from other seeds).

Shipped bases (`games/prover_verifier/assets/`) were made by

    arena pretrain prover-verifier-v1 --out games/prover_verifier/assets --steps 1500 --seed 0
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


VERIFIER_STEPS = 400
"""The verifier's base LM is pretrained this long on correct solutions of 2-4 step problems (the game's
task, `VERIFIER_MAX_STEPS`). Its pretraining compute is 10^-1.08 of the prover's ((400 x 119K) /
(1500 x 379K) parameter-steps), above the paper's working range (10^-3 to 10^-1.8): smaller bases were
useless on the task (75 steps, 10^-1.80: held-out paired AUC 0.38-0.45, below chance; 150 steps or a
33K model: 0.63-0.80, and training made them worse on some seeds). This one, read as a likelihood
scorer against the reference solution of the same problem, prefers the initial prover's sneaky solution
to the correct one on about 1% of held-out problems (paired AUC 0.88-0.93, seeds 0-1); the game's
Bradley-Terry training on 64 problems a round takes it to 0.78-0.80 (it overfits the mixture), where a
sneaky-only attacker can exploit it."""
VERIFIER_MAX_STEPS = 4
"""The verifier's base reads solutions of 2..4 steps, the game's task (`CheckabilityParams.max_steps`);
the prover was pretrained on 2..3 (so a 4-step problem is where it errs and can improve)."""
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
    """(verifier input up to the solution, honest solution and its closing newline) pairs: the
    verifier's base LM reads correct solutions only, in the very text it will score
    (`rules.verifier_prompt`, whose closing newline says the solution is over)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        p = rules.generate_problem(rng, min_steps, max_steps, max_value=max_value)
        text = rules.verifier_prompt(p.question, rules.honest_solution(p))
        head = rules.verifier_prompt(p.question, "")[:-1]
        out.append((head, text[len(head):]))
    return out


def lm_to_likelihood_scorer(directory: Path, after: str = rules.SOLUTION_MARKER) -> None:
    """Declare the causal LM in `directory` a likelihood scorer (`agents.hf.likelihood`), in place: its
    score is the soft-min log-probability of the solution's tokens and its end (`Readout`'s defaults)."""
    from agents.hf.likelihood import Readout
    from agents.hf.loading import AGENT_META

    meta_path = Path(directory) / AGENT_META
    meta = json.loads(meta_path.read_text())
    meta.update({"agent": "scorer", "readout": Readout(after=after).to_meta()})
    meta.pop("sampling", None)
    meta_path.write_text(json.dumps(meta, indent=2))


def pretrain(out_dir: Path, *, steps: int = 1500, seed: int = 0, verifier_steps: int = VERIFIER_STEPS,
             progress: bool = True) -> Path:
    """Write `<out_dir>/prover` (tiny causal LM) and `<out_dir>/verifier` (the verifier's base LM)."""
    from agents.tiny import pretrain as sft

    out_dir = Path(out_dir)
    prover = sft(prover_demos(20_000, seed + 1), out_dir / "prover", steps=steps, seed=seed,
                 batch_size=32, progress=progress, **PROVER_SHAPE)
    verifier = sft(verifier_demos(20_000, seed + 2, max_steps=VERIFIER_MAX_STEPS), out_dir / "verifier",
                   steps=min(verifier_steps, steps),
                   seed=seed + 3, batch_size=32, progress=progress, **VERIFIER_SHAPE)
    lm_to_likelihood_scorer(out_dir / "verifier")
    info = {"command": f"arena pretrain prover-verifier-v1 --out {out_dir} --steps {steps} --seed {seed}",
            "prover": {"parameters": prover.parameters, "steps": prover.steps, "final_loss": prover.final_loss,
                       "seconds": prover.seconds},
            "verifier": {"parameters": verifier.parameters, "steps": verifier.steps,
                         "final_loss": verifier.final_loss, "seconds": verifier.seconds}}
    (out_dir / "pretrain.json").write_text(json.dumps(info, indent=2))
    return out_dir
