"""What the adversarial-RM recipes start from: hyper-parameters, preference data, base and proxy models.

- `Params`: the recipes' hyper-parameters (`--set name=value`);
- `preference_sets` / `env_kwargs`: the preference data D and the held-out pairs
  (synthetic letter task with a gold reward, or a JSONL file);
- `pretrain` / `base_model`: the base policy (= π_ref), the shipped tiny model or
  one pretrained on demand into the runs dir;
- `fit_proxy` / `proxy_model`: the Bradley-Terry proxy reward model, fitted once
  to D per (base, data, settings) and cached, so "proxy reward" is on one scale
  across methods; `pair_accuracy`: a reward's agreement with labels and gold.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from arena.cache import build_keyed
from arena.selfplay import RecipeContext
from arena.types import ArenaError
from games.adversarial_rm import rules
from games.adversarial_rm.env import load_pairs, rm_input

METHODS = ("baseline", "dpo", "rpo-sum", "rpo-mean", "explicit")
ASSETS = Path(__file__).parent / "assets"
TINY_SHAPE: dict[str, Any] = dict(hidden_size=96, intermediate_size=288, num_hidden_layers=2,
                                  num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=128)
"""The tiny policy for this task: about 0.26M parameters (small so five methods fit in minutes on a CPU)."""
SFT_DEMOS = 6000


@dataclass
class Params:
    """Hyper-parameters of the adversarial-RM recipes (`--set name=value`).

    Names follow docs/algorithms.md#rpo (β, η). Deviation from the paper: its
    η = 0.005 (β = 0.01-0.05, 7B models) does not stop over-optimisation here, so
    `rpo-sum` defaults to η = 1 and `rpo-mean` to the Appendix F η = 0.2.
    `--set eta_sum=0.005` restores the main-text value; the experiment runs it
    beside the default (arm `rpo-sum-eta0.005`). Why: on log π(chosen) the RPO gradient is
    β·(σ(−βΔ) + η) against DPO's β·σ(−βΔ) (βΔ = the implicit reward margin), so
    the SFT term weighs η/σ(−βΔ) of DPO's. With these noisy labels (BT noise 0.5)
    DPO's training margin βΔ stays below 0.45 while gold collapses (from round 2
    on), so σ(−βΔ) ≈ 0.4-0.5 and η = 0.005 adds ~1%. Measured (10 rounds, seeds
    0-2: `arena experiment overoptimization --seeds 0,1,2 --rounds 10 --arms
    baseline,dpo,rpo-sum`, and for each other η `--arms rpo-sum --set eta_sum=<η>
    --name overopt-eta<η>`): gold at the last round
    η = 0: -1.91/-0.76/-0.59, 0.005: -0.93/-1.30/-0.24, 0.05: 0.75/1.12/1.73,
    0.2: 1.55/1.92/1.77, 1: 1.51/1.67/1.58 (round 0: 0.77/0.92/0.79). The SFT term
    must weigh ~0.1-0.5 of DPO's (η ≈ 0.05-0.2) to hold gold on this task.
    Noiseless labels (`--set noise=0.0`) do not change this: DPO's margin still
    stays below 0.5 over 10 rounds, and at η = 0.005 gold still falls from its
    peak (~1.4) to 0.20/0.14/-1.19 (DPO: -0.70/-0.69/-2.45). η = 0.005 can only
    matter once σ(−βΔ) is itself ~0.005-0.05 (βΔ ≳ 3-5) before gold turns over,
    which no setting of this task tried here reaches.
    """

    model: str = ""
    """Base policy = π_ref (dir or hub id); empty: the shipped tiny model (pretrained on demand)."""
    data: str = ""
    """Preference JSONL (`prompt`, `chosen`, `rejected`); empty: the synthetic letter task with a gold reward."""
    n_pairs: int = 1024
    """Synthetic preference pairs in D."""
    heldout_pairs: int = 128
    """Synthetic held-out pairs (implicit-reward accuracy); with `data`, the last pairs of the file."""
    data_seed: int | None = None
    """Seed of the synthetic pairs (and so of the proxy's training data). Default (none): the run's
    --seed (`arena.selfplay.with_data_seed`), so seeds vary the data as well as the training;
    `--set data_seed=N` (the experiment's `--data-seed N`) pins the data and lets --seed vary
    training randomness only."""
    noise: float = 0.5
    """Bradley-Terry temperature of the synthetic labels (0 = always the gold order)."""
    max_new_tokens: int = 16
    """Longest answer the policy may write (4x the reference answers' longest)."""
    temperature: float = 1.0
    """Sampling temperature (1 keeps the sampled tokens' log-probs = π, as the KL estimate needs)."""
    beta: float = 0.1
    """β: DPO/RPO implicit-reward scale, and the explicit game's KL coefficient."""
    eta_sum: float = 1.0
    """η of `rpo-sum` (loss η·β·Σ_t NLL(chosen) + DPO)."""
    eta_mean: float = 0.2
    """η of `rpo-mean` (loss η·mean_t NLL(chosen) + DPO; the paper's Appendix F value)."""
    dpo_lr: float = 3e-4
    """AdamW learning rate of DPO/RPO."""
    dpo_epochs: int = 1
    """Passes over D per round for DPO/RPO."""
    pg_lr: float = 1e-3
    """AdamW learning rate of the policy-gradient policies (baseline, explicit)."""
    pg_steps: int = 2
    """Policy-gradient steps per round on the round's samples (one full batch each)."""
    rm_lr: float = 1e-3
    """AdamW learning rate of the reward models (proxy fit and adversarial RM)."""
    proxy_epochs: int = 10
    """Passes over D when fitting the proxy reward model."""
    rm_eta: float = 0.5
    """η of the explicit game's reward model: weight of mean r(policy) - mean r(baseline)."""
    rm_pairs: int = 256
    """Pairs of D the adversarial reward model revisits each round (its L_D term)."""
    batch_size: int = 64
    """Micro-batch size of every learner."""
    probe_chosen: int = 128
    """Chosen answers of D whose log-probability is tracked."""
    pretrain_steps: int = 600
    """SFT steps when the tiny base has to be pretrained."""

    def __post_init__(self) -> None:
        if self.n_pairs < 2 or self.heldout_pairs < 1:
            raise ArenaError("n_pairs must be at least 2 and heldout_pairs at least 1")



# -- data and models ----------------------------------------------------------------

def preference_sets(p: Params) -> tuple[list[rules.Pair], list[rules.Pair]]:
    """(D, held-out pairs)."""
    if p.data:
        pairs = load_pairs(p.data)
        n_held = min(p.heldout_pairs, len(pairs) // 5)
        if len(pairs) - n_held < 2 or n_held < 1:
            raise ArenaError(f"{p.data}: need at least 10 pairs (found {len(pairs)})")
        return pairs[:len(pairs) - n_held], pairs[len(pairs) - n_held:]
    return (load_pairs(None, p.n_pairs, p.data_seed, p.noise, "train"),
            load_pairs(None, p.heldout_pairs, p.data_seed, p.noise, "heldout"))


def env_kwargs(p: Params) -> dict[str, Any]:
    if p.data:
        return {"pairs": preference_sets(p)[0]}
    return {"n_pairs": p.n_pairs, "data_seed": p.data_seed, "noise": p.noise}


def pretrain(out_dir: Path, *, steps: int = 600, seed: int = 0, progress: bool = True) -> Path:
    """`arena pretrain adversarial-rm-v0`: the tiny reference policy, SFT on reference answers.

    Writes `<out_dir>/base` (a standard Hugging Face directory) and returns it.
    """
    from agents.hf import SamplingConfig
    from agents.tiny import pretrain as sft

    demos = rules.sft_pairs(np.random.default_rng([seed, 7]), SFT_DEMOS)
    out = Path(out_dir) / "base"
    sft(demos, out, steps=steps, seed=seed, lr=3e-3, batch_size=64, progress=progress,
        log=lambda s: None if progress else print(s), sampling=SamplingConfig(max_new_tokens=16), **TINY_SHAPE)
    return out


def base_model(p: Params, ctx: RecipeContext) -> str:
    """The base policy's dir/hub id: `model`, else the shipped tiny base, else one pretrained into the runs dir."""
    if p.model:
        return p.model
    if (ASSETS / "base" / "config.json").is_file():
        return str(ASSETS / "base")
    return str(build_keyed(ctx.runs_dir, "adversarial-rm", "tiny", {"steps": p.pretrain_steps},
                           lambda tmp: pretrain(tmp, steps=p.pretrain_steps, seed=0, progress=False),
                           done="base/config.json", what="the tiny base") / "base")


def _proxy_key(p: Params, base: str, seed: int = 0) -> dict[str, Any]:
    return {"base": str(Path(base).resolve()) if Path(base).exists() else base, "data": p.data, "seed": seed,
            "n_pairs": p.n_pairs, "data_seed": p.data_seed, "noise": p.noise, "epochs": p.proxy_epochs,
            "lr": p.rm_lr, "batch": p.batch_size}


def fit_proxy(p: Params, base: str, pairs: Sequence[rules.Pair], heldout: Sequence[rules.Pair], out: Path,
              device: str | None = None, seed: int = 0) -> Path:
    """Fit the Bradley-Terry proxy reward model on D (from the base LM + a fresh scalar head); save to `out`."""
    from agents.hf import LoadConfig, ScorerAgent
    from agents.learners import BradleyTerryLearner, Optimization

    scorer = ScorerAgent.from_pretrained(base, load=LoadConfig(device=device or "", seed=seed))
    learner = BradleyTerryLearner(data=[(rm_input(q.prompt, q.chosen), rm_input(q.prompt, q.rejected)) for q in pairs],
                                  opt=Optimization(lr=p.rm_lr, batch_size=p.batch_size, epochs=p.proxy_epochs))
    learner.reset(seed)
    metrics = learner.update(scorer, [])
    acc = pair_accuracy(scorer.scores([rm_input(q.prompt, q.chosen) for q in heldout]).cpu().numpy(),
                        scorer.scores([rm_input(q.prompt, q.rejected) for q in heldout]).cpu().numpy(), heldout)
    scorer.save(out)
    (out / "proxy.json").write_text(json.dumps({"fit": metrics, "heldout": acc, "pairs": len(pairs)}, indent=2))
    return out


def proxy_model(p: Params, ctx: RecipeContext, base: str, pairs, heldout) -> Path:
    """The proxy reward model's dir, fitted once per (base, data, settings, run seed) and cached in the
    runs dir; its head's initialisation and batches follow the run's seed."""
    return build_keyed(ctx.runs_dir, "adversarial-rm", "proxy", _proxy_key(p, base, ctx.seed),
                       lambda tmp: fit_proxy(p, base, pairs, heldout, tmp, ctx.device, seed=ctx.seed),
                       done="proxy.json", what="the proxy reward model")


def pair_accuracy(r_chosen, r_rejected, pairs: Sequence[rules.Pair]) -> dict[str, float]:
    """Agreement of a reward's order with the labels and, where known, with the gold order."""
    rc, rr = np.asarray(r_chosen, dtype=float), np.asarray(r_rejected, dtype=float)
    out = {"label_accuracy": float(np.mean((rc > rr) + 0.5 * (rc == rr)))}
    gold = [(i, q.gold_chosen - q.gold_rejected) for i, q in enumerate(pairs)
            if q.gold_chosen is not None and q.gold_chosen != q.gold_rejected]
    if gold:
        idx = np.array([i for i, _ in gold])
        sign = np.sign([d for _, d in gold])
        d = (rc - rr)[idx] * sign
        out["gold_accuracy"] = float(np.mean((d > 0) + 0.5 * (d == 0)))
    return out

