"""The base model of abstain-v0 and its judge (`arena pretrain abstain-v0`).

The base student is the tiny char-level Llama (`STUDENT_SHAPE`, about 0.35M
parameters) pretrained by SFT on `rules.pretraining_pairs` of one fact base: every
*known* fact 32, 64, 128 or 256 times (its exposure x 32), 30,000 questions about
one-off countries (each a fresh name, seen about once or twice: "I don't know"
half of the time, otherwise a blind guess), and no *unknown* fact. The one-off questions are the
"abstain demonstrations on other questions": they make abstaining reachable by
sampling -- an RL student can only be rewarded for abstaining if it sometimes
abstains -- and they teach the base what a corpus would, that a name it has never
seen gets a guess or a shrug; they never mention a country of the fact base.
`knowledge` measures what it learned (greedy answers by kind, attribute and
exposure) and goes into `pretrain.json`: the base must know its known facts and
not its unknown ones.

The judge (`games.abstain.judge`) is trained in the same command, on comparison
pairs from the training facts of the same fact base.

The fact base is `rules.make_fact_base(data_seed)`; `arena pretrain abstain-v0
--seed S` uses data seed S. The shipped assets (`games/abstain/assets/{base,judge}`)
were made by

    arena pretrain abstain-v0 --out games/abstain/assets --steps 1500 --seed 0

(20 minutes on this project's 2-core CPU while other jobs loaded it; the base alone
took 6 minutes for data seed 2 on a quieter machine.)

Recipes of other data seeds pretrain their own base once (`assets_for`, cached in
`<runs>/_cache/abstain/base-<key>/` by `arena.cache.build_keyed`).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from games.abstain import rules

ASSETS = Path(__file__).parent / "assets"
STUDENT_SHAPE: dict[str, Any] = dict(hidden_size=96, intermediate_size=256, num_hidden_layers=3,
                                     num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=128)
"""The tiny student: about 0.35M parameters."""
MAX_NEW_TOKENS = 16
"""Longest answer the student may give (the longest reference is 10 characters, the abstain phrase 12)."""
STEPS = 1500
JUDGE_STEPS = 3000


def sampling_config():
    from agents.hf import SamplingConfig

    return SamplingConfig(temperature=1.0, max_new_tokens=MAX_NEW_TOKENS, stop=("\n",))


def pretrain(out_dir: Path, *, steps: int = STEPS, seed: int = 0, data_seed: int | None = None,
             judge_steps: int = JUDGE_STEPS, lr: float = 3e-3, progress: bool = False,
             say: Callable[[str], None] | None = None) -> Path:
    """Write `<out_dir>/base` (the student's base LM), `<out_dir>/judge` and `<out_dir>/pretrain.json`."""
    from agents.tiny import pretrain as sft
    from games.abstain.judge import train_judge

    say = say or (lambda s: print(s, file=sys.stderr, flush=True))
    data_seed = seed if data_seed is None else int(data_seed)
    out_dir = Path(out_dir)
    base = rules.make_fact_base(data_seed)
    pairs = rules.pretraining_pairs(base)
    t0 = time.perf_counter()
    result = sft(pairs, out_dir / "base", steps=steps, seed=seed, lr=lr, batch_size=64, warmup=50,
                 progress=progress, log=lambda s: say(s) if s.startswith(f"pretrain step {steps}/") else None,
                 sampling=sampling_config(), **STUDENT_SHAPE)
    say(f"base: {result.parameters} parameters, loss {result.final_loss:.3f}, {result.seconds:.0f}s")
    judge = train_judge(base, out_dir / "judge", steps=judge_steps, seed=seed, say=say)
    info = {"command": f"arena pretrain abstain-v0 --out {out_dir} --steps {steps} --seed {seed}",
            "data_seed": data_seed, "seed": seed, "steps": steps, "pairs": len(pairs),
            "abstain_share": float(np.mean([c == rules.ABSTAIN for _, c in pairs])),
            "base": {"parameters": result.parameters, "final_loss": result.final_loss, "seconds": result.seconds},
            "knowledge": knowledge(out_dir / "base", base),
            "judge": {"parameters": judge["parameters"], "heldout": judge["heldout"]},
            "seconds": time.perf_counter() - t0}
    (out_dir / "pretrain.json").write_text(json.dumps(info, indent=2))
    k = info["knowledge"]
    say(f"base knows {k['known_accuracy']:.2f} of known facts, {k['unknown_accuracy']:.2f} of unknown ones "
        f"(greedy); answers {k['known_answer_rate']:.2f} / {k['unknown_answer_rate']:.2f} of them")
    return out_dir


def pretrain_command(out_dir: Path, *, steps: int = STEPS, seed: int = 0) -> Path:
    """`arena pretrain abstain-v0 --seed S`: the base and the judge for data seed S (one torch thread on a
    CPU: the tiny model's matrices gain nothing from a second, and on a shared CPU it mostly spins)."""
    import torch

    if not torch.cuda.is_available():
        torch.set_num_threads(1)
    return pretrain(out_dir, steps=steps, seed=seed, progress=sys.stderr.isatty())


def knowledge(model_dir: Path, base: rules.FactBase) -> dict[str, float]:
    """What a student knows: greedy accuracy, answer rate and confidence by kind, attribute and exposure."""
    from agents.hf import GeneratorAgent
    from games.abstain.evaluation import question_stats

    agent = GeneratorAgent.from_pretrained(str(model_dir))
    stats = question_stats(agent, [f for f in base.facts if f.kind in ("known", "unknown")])
    out: dict[str, float] = {}
    groups: dict[str, list[dict[str, Any]]] = {}
    for s in stats:
        for key in (s["kind"], f"{s['kind']}_{s['attribute']}",
                    *([f"known_exposure{s['exposure']}"] if s["kind"] == "known" else [])):
            groups.setdefault(key, []).append(s)
    for key, rs in sorted(groups.items()):
        out[f"{key}_accuracy"] = float(np.mean([s["correct"] for s in rs]))
        out[f"{key}_answer_rate"] = float(np.mean([s["p_answer"] for s in rs]))
        out[f"{key}_confidence"] = float(np.mean([s["confidence"] for s in rs]))
    return out


def assets_dir(data_seed: int, runs_dir: Path) -> Path:
    """Where the base/judge of a data seed are: the shipped assets when they were made from it, else
    `<runs>/_cache/abstain/base-<key>/` (built or not)."""
    from arena.cache import keyed_dir

    shipped = ASSETS / "pretrain.json"
    if shipped.is_file() and json.loads(shipped.read_text()).get("data_seed") == data_seed \
            and (ASSETS / "base" / "config.json").is_file():
        return ASSETS
    return keyed_dir(runs_dir, "abstain", "base", {"data_seed": int(data_seed)})


def assets_for(data_seed: int, runs_dir: Path, say: Callable[[str], None] | None = None) -> Path:
    """The base/judge directory of a data seed (`assets_dir`), pretrained once when it is not there
    (`arena.cache.build_keyed`)."""
    if assets_dir(data_seed, runs_dir) == ASSETS:
        return ASSETS
    from arena.cache import build_keyed

    say = say or (lambda s: print(s, file=sys.stderr, flush=True))
    return build_keyed(runs_dir, "abstain", "base", {"data_seed": int(data_seed)},
                       lambda tmp: pretrain(tmp, seed=data_seed, data_seed=data_seed, say=say),
                       done="pretrain.json", what=f"the base and judge of data seed {data_seed}")
