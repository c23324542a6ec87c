"""Recipes for adversarial-rm-v0: five ways to push a policy against preference data.

| recipe | policy learner | reward-model seat |
|---|---|---|
| `baseline` | policy gradient on the proxy's score, **no KL** (the over-optimiser) | the frozen Bradley-Terry proxy |
| `dpo` | DPO on the data D | the frozen proxy (measurement only) |
| `rpo-sum` | RPO, paper main text: η·β·Σ_t NLL(chosen) + DPO | the frozen proxy (measurement only) |
| `rpo-mean` | RPO, Appendix F: η·mean_t NLL(chosen) + DPO | the frozen proxy (measurement only) |
| `explicit` (default) | policy gradient with β·KL(π‖π_ref) on the seat's score | the adversarial RM, trained each round on L_D(r) + η·(mean r(policy) − mean r(baseline)), starting from the proxy |

The *proxy* is one Bradley-Terry reward model fitted once to D (`fit_proxy`,
cached), shared by every recipe with the same data and base, so "proxy reward" is
on one scale across methods. The reference policy π_ref is a frozen copy of the
policy seat's model as the run builds it (the base), shared by the learners and
the probe.

Every recipe wraps its policy learner in a `RoundProbe`, which measures -- on the
round's own episodes, i.e. for the policy that played the round, before it is
updated -- KL(π‖π_ref) (k1 on the sampled tokens), the proxy's score of the
policy's answers, log π(chosen|x) on a fixed set of chosen answers, the implicit
reward's pairwise accuracy on held-out pairs, and the gold win rate against the
reference policy's (round 0) answers. They appear in the round summary under
`losses.policy`.

Defaults are sized for the tiny model on a 2-core CPU; `--set model=<hub id or
dir>` and `--set data=<pairs.jsonl>` run the same recipes on a real model and real
preference data (no gold reward then).
"""
from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from arena.selfplay import RecipeContext, SeatSetup, Setup, resolve_params
from arena.types import ArenaError, Episode
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

    Names follow ALGORITHMS.md section 1 (β, η). The paper's β = 0.01-0.05 and
    η = 0.005 are for 7B models; with η = 0.005 the SFT term of RPO is ~1e-3 of
    the DPO term on the tiny model and RPO behaves like DPO (measured: it
    over-optimises just as DPO does), so the defaults use η = 1 (`rpo-sum`) and
    the paper's Appendix F η = 0.2 (`rpo-mean`). `--set eta_sum=0.005` restores
    the main-text value.
    """

    model: str = ""
    """Base policy = π_ref (dir or hub id); empty: the shipped tiny model (pretrained on demand)."""
    data: str = ""
    """Preference JSONL (`prompt`, `chosen`, `rejected`); empty: the synthetic letter task with a gold reward."""
    n_pairs: int = 1024
    """Synthetic preference pairs in D."""
    heldout_pairs: int = 128
    """Synthetic held-out pairs (implicit-reward accuracy); with `data`, the last pairs of the file."""
    data_seed: int = 0
    """Seed of the synthetic pairs."""
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
    cache = Path(ctx.runs_dir) / "_cache" / "adversarial-rm" / f"tiny-steps{p.pretrain_steps}"
    if not (cache / "base" / "config.json").is_file():
        print(f"pretraining the tiny base into {cache} (once) ...", flush=True)
        pretrain(cache, steps=p.pretrain_steps, seed=0, progress=False)
    return str(cache / "base")


def _proxy_key(p: Params, base: str) -> str:
    key = {"base": str(Path(base).resolve()) if Path(base).exists() else base, "data": p.data,
           "n_pairs": p.n_pairs, "data_seed": p.data_seed, "noise": p.noise, "epochs": p.proxy_epochs,
           "lr": p.rm_lr, "batch": p.batch_size}
    return hashlib.blake2b(json.dumps(key, sort_keys=True).encode(), digest_size=6).hexdigest()


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
    """The proxy reward model's dir, fitted once per (base, data, settings) and cached in the runs dir."""
    out = Path(ctx.runs_dir) / "_cache" / "adversarial-rm" / f"proxy-{_proxy_key(p, base)}"
    if not (out / "proxy.json").is_file():
        tmp = out.with_name(out.name + ".tmp")
        fit_proxy(p, base, pairs, heldout, tmp, ctx.device)
        tmp.rename(out)
    return out


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


# -- the probe -----------------------------------------------------------------------

@dataclass(kw_only=True)
class RoundProbe:
    """Wraps the policy's learner: measures the policy that played the round, then updates it.

    Metrics (all for the pre-update policy of this round):
    `kl` = mean Σ_t [log π − log π_ref] over the sampled answers (unbiased for KL(π‖π_ref) at temperature 1);
    `proxy` / `proxy_margin` = the frozen proxy's score of the policy's answers (minus the chosen answers');
    `chosen_logp` = mean log π(chosen|x) over `chosen`; `implicit_accuracy` (and `implicit_gold_accuracy`) =
    how often β·log(π/π_ref) ranks a held-out pair as its label (gold) does; `gold_win_rate_vs_ref` =
    P(gold of an answer now > gold of a round-0 answer) + ties/2 (prompts are exchangeable in the task).
    """

    inner: Any
    reference: Any
    proxy: Any
    chosen: Sequence[tuple[str, str]]
    heldout: Sequence[rules.Pair]
    beta: float
    batch_size: int = 64
    seat: str = "policy"
    reference_golds: list[float] | None = field(default=None)

    def reset(self, seed: int) -> None:
        self.inner.reset(seed)

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if callable(getattr(self.inner, "save", None)):
            self.inner.save(directory)
        (directory / "probe.json").write_text(json.dumps({"reference_golds": self.reference_golds}))

    def load(self, directory: Path) -> None:
        if callable(getattr(self.inner, "load", None)):
            self.inner.load(directory)
        self.reference_golds = json.loads((Path(directory) / "probe.json").read_text())["reference_golds"]

    def update(self, agent: Any, episodes: Sequence[Episode]) -> dict[str, float]:
        measured = self.measure(agent, episodes)
        return {**self.inner.update(agent, episodes), **measured}

    def measure(self, agent: Any, episodes: Sequence[Episode]) -> dict[str, float]:
        import torch

        from agents.batch import batch_from_token_ids, completion_logprobs, encode_pairs, pad_id_of
        from agents.learners import read_implicit_reward, prompt_encoder
        from agents.losses import masked_sum

        out: dict[str, float] = {}
        moves = [s for e in episodes for s in e.moves(self.seat) if "completion_ids" in s.extras]
        infos = [e.info.get(self.seat, {}) for e in episodes]
        kls = []
        with torch.inference_mode():
            for i in range(0, len(moves), self.batch_size):
                chunk = moves[i:i + self.batch_size]
                batch = batch_from_token_ids([s.extras["prompt_ids"] for s in chunk],
                                             [s.extras["completion_ids"] for s in chunk], pad_id_of(agent.tokenizer))
                pi = masked_sum(*completion_logprobs(agent.model, batch))
                ref = masked_sum(*completion_logprobs(self.reference, batch))
                kls.append((pi - ref.to(pi.device)).cpu())
            if kls:
                out["kl"] = float(torch.cat(kls).mean())
            answered = [i for i in infos if "answer" in i]
            if answered and self.proxy is not None:
                r1 = self.proxy.scores([rm_input(i["prompt"], i["answer"]) for i in answered]).cpu().numpy()
                r0 = self.proxy.scores([rm_input(i["prompt"], i["baseline"]) for i in answered]).cpu().numpy()
                out["proxy"], out["proxy_margin"] = float(r1.mean()), float((r1 - r0).mean())
            encode = prompt_encoder(agent)
            logps = []
            for i in range(0, len(self.chosen), self.batch_size):
                part = self.chosen[i:i + self.batch_size]
                batch = encode_pairs(agent.tokenizer, [q for q, _ in part], [c for _, c in part], encode_prompt=encode)
                logps.append(masked_sum(*completion_logprobs(agent.model, batch)).cpu())
            if logps:
                out["chosen_logp"] = float(torch.cat(logps).mean())
        if self.heldout:
            prompts = [q.prompt for q in self.heldout]
            rc = read_implicit_reward(agent, self.reference, prompts, [q.chosen for q in self.heldout], self.beta)
            rr = read_implicit_reward(agent, self.reference, prompts, [q.rejected for q in self.heldout], self.beta)
            acc = pair_accuracy(rc.cpu().numpy(), rr.cpu().numpy(), self.heldout)
            out["implicit_accuracy"] = acc["label_accuracy"]
            if "gold_accuracy" in acc:
                out["implicit_gold_accuracy"] = acc["gold_accuracy"]
        golds = [float(i["gold"]) for i in infos if i.get("gold") is not None]
        if golds:
            if self.reference_golds is None:
                self.reference_golds = golds
            out["gold_win_rate_vs_ref"] = rules.prob_superiority(golds, self.reference_golds)
        return out


# -- the recipes ---------------------------------------------------------------------

def build(ctx: RecipeContext, method: str) -> Setup:
    """Seats and learners for one method (see the module docstring's table)."""
    from agents.hf import LoadConfig, ScorerAgent
    from agents.learners import (BradleyTerryLearner, DPOLearner, Optimization, PolicyGradientLearner,
                                 freeze)

    if method not in METHODS:
        raise ArenaError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
    p = resolve_params(Params, ctx.params)
    pairs, heldout = preference_sets(p)
    base = base_model(p, ctx)
    proxy_dir = proxy_model(p, ctx, base, pairs, heldout)

    policy, policy_spec = ctx.agent("policy", f"hf:{base}?max_new_tokens={p.max_new_tokens}"
                                              f"&temperature={p.temperature}")
    rm, rm_spec = ctx.agent("reward_model", f"hf:{proxy_dir}")
    if not (hasattr(policy, "model") and hasattr(policy, "tokenizer")):
        raise ArenaError("the policy seat needs a Hugging Face generator (hf:<model>) to be trained")
    device = next(policy.model.parameters()).device
    reference = freeze(copy.deepcopy(policy.model))  # π_ref = the policy as it starts (before any checkpoint resume)
    if method == "explicit":  # the seat's RM moves; measure against a frozen copy of the proxy
        proxy = ScorerAgent.from_pretrained(str(proxy_dir), load=LoadConfig(device=str(device)))
    else:
        proxy = rm
    proxy.model.requires_grad_(False)

    opt = dict(batch_size=p.batch_size)
    rm_learner = None
    if method in ("dpo", "rpo-sum", "rpo-mean"):
        triples = [(q.prompt, q.chosen, q.rejected) for q in pairs]
        eta = {"dpo": 0.0, "rpo-sum": p.eta_sum, "rpo-mean": p.eta_mean}[method]
        inner = DPOLearner(data=triples, reference=reference, loss=method, beta=p.beta, eta=eta,
                           opt=Optimization(lr=p.dpo_lr, epochs=p.dpo_epochs, **opt))
    else:
        explicit = method == "explicit"
        inner = PolicyGradientLearner(
            seat="policy", reward_fn=_policy_score, reference=reference if explicit else None,
            beta=p.beta if explicit else 0.0, kl_estimator="k1", baseline="rloo", normalize_std=True,
            group_fn=lambda e, s: 0,  # one group: a leave-one-out batch baseline (prompts rarely repeat)
            opt=Optimization(lr=p.pg_lr, batch_size=10**6, epochs=p.pg_steps))
        if explicit:
            rm_data = [(rm_input(q.prompt, q.chosen), rm_input(q.prompt, q.rejected)) for q in pairs]
            rm_learner = BradleyTerryLearner(
                data=_RoundSubset(rm_data, p.rm_pairs), adversarial=_policy_and_baseline_texts, eta=p.rm_eta,
                opt=Optimization(lr=p.rm_lr, **opt))
    probe = RoundProbe(inner=inner, reference=reference, proxy=proxy,
                       chosen=[(q.prompt, q.chosen) for q in pairs[:p.probe_chosen]], heldout=heldout,
                       beta=p.beta, batch_size=p.batch_size)
    return Setup({"policy": SeatSetup(policy, probe, policy_spec),
                  "reward_model": SeatSetup(rm, rm_learner, rm_spec)},
                 env_kwargs=env_kwargs(p), learner_order=["reward_model", "policy"], params=p)


def _policy_score(episodes: Sequence[Episode]) -> list[float]:
    """The policy's reward for its gradient: the reward-model seat's score of its answer.

    (The game's payoff subtracts r(baseline), which does not depend on the policy's answer.)
    """
    return [float(e.info.get("policy", {}).get("score") or 0.0) for e in episodes]


def _policy_and_baseline_texts(episodes: Sequence[Episode]) -> tuple[list[str], list[str]]:
    infos = [e.info.get("policy", {}) for e in episodes]
    infos = [i for i in infos if "answer" in i]
    return [rm_input(i["prompt"], i["answer"]) for i in infos], [rm_input(i["prompt"], i["baseline"]) for i in infos]


@dataclass
class _RoundSubset:
    """`n` items of `items` per round, chosen by the round number (deterministic, different each round)."""

    items: Sequence[Any]
    n: int

    def __call__(self, episodes: Sequence[Episode]) -> list[Any]:
        k = episodes[0].round if episodes else 0
        rng = np.random.default_rng([17, k])
        idx = rng.choice(len(self.items), size=min(self.n, len(self.items)), replace=False)
        return [self.items[i] for i in idx]


def baseline(ctx: RecipeContext) -> Setup:
    """Unregularised policy gradient against the frozen Bradley-Terry proxy."""
    return build(ctx, "baseline")


def dpo(ctx: RecipeContext) -> Setup:
    """DPO on D; the adversarial reward is the implicit β·log(π/π_ref)."""
    return build(ctx, "dpo")


def rpo_sum(ctx: RecipeContext) -> Setup:
    """RPO with the paper's summed NLL on chosen, weighted η·β."""
    return build(ctx, "rpo-sum")


def rpo_mean(ctx: RecipeContext) -> Setup:
    """RPO with a token-averaged NLL on chosen, weighted η (Appendix F)."""
    return build(ctx, "rpo-mean")


def explicit(ctx: RecipeContext) -> Setup:
    """The game itself: adversarial reward model vs KL-regularised policy gradient, alternating by round."""
    return build(ctx, "explicit")
