"""rest-v0's `online` recipe: the ReST paper's online-RL baseline, where it reports reward hacking.

Gulcehre et al. 2023 (docs/algorithms.md#rest) compare ReST with online PPO on the same
reward model: PPO raised the reward-model score a little (70.9 -> 71.6) while its
BLEU fell ~8 points -- the policy learned what the reward model likes, not better
translations. Here the reward model is `reward=model` (`games.rest.reward_model`)
and chrF++ plays BLEU's part (the true metric).

| online RL | here |
|---|---|
| the start | the same cached behaviour-cloned policy as ReST (`recipe.bc_model`, same `Params` and data seed) |
| sampling | each round's play: `--episodes` sources x `samples` completions at `temperature`, scored once by the env with R (a Grow step's play) |
| the update | `agents.learners.PolicyGradientLearner` on those samples: each completion's own R, leave-one-out (RLOO) baseline over the `samples` completions of a source, KL penalty `beta` to the BC policy |
| the evaluation | after every round, `Evaluation.step` of `games.rest.learner` (greedy on the validation and test sources, exactly as ReST's Improve steps are judged): R and chrF per round |

Deviations from the paper: REINFORCE with an RLOO baseline instead of PPO (no value
function, no importance ratio or clipping; one pass over each round's own
samples, so the update is on-policy); the KL to the BC policy is folded into
each sample's reward (`kl_estimator="k1"`, PPO-RLHF's form) with a small `beta`.

Measured (seeds 0-2, 20 rounds, test set, greedy, x100; reward=model is the experiment's
arm, `arena experiment rest --seeds 0,1,2 --arms online`, reward=chrf `arena train
rest-v0 --recipe online --rounds 20 --seed S`): under reward=model, R BC -> last 78.9 ->
79.6, 77.8 -> 77.3, 80.6 -> 81.6 and chrF 91.2 -> 90.5, 84.2 -> 81.7, 89.1 -> 88.6 (the
paper's direction on 2 of 3 seeds, and smaller than its BLEU -8); under reward=chrf,
chrF 91.2 -> 91.9, 84.2 -> 83.3, 89.1 -> 93.1. The same runs judged on 256 test sources
(`--set n_test=256 --set n_valid=256`): R 78.7 -> 79.3, 78.1 -> 78.2, 79.9 -> 80.6, chrF
90.5 -> 90.5, 85.7 -> 84.0, 90.3 -> 87.9, exact matches down on 3/3: true quality falls
while R does not, R's rise within noise.

ReST's Improve-step settings (`gaps`, `thresholds`, `lr_decay`, `keep_best`,
`binary_cut`, `cap`, `original_data`, `restart`, `bon_*`) are inherited from
`Params` with the data and model settings; they are not used here, and a value
other than ReST's default is refused rather than ignored.
"""  # noqa: E501 (a table row is one line)
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from arena.selfplay import RecipeContext, Setup, resolve_params, with_data_seed
from arena.types import ArenaError, Episode
from games.rest.recipe import Params, build

HISTORY_FILE = "online_history.json"
REST_ONLY = ("gaps", "thresholds", "lr_decay", "keep_best", "binary_cut", "cap", "original_data", "restart",
             "bon_sources", "bon_max")


@dataclass
class OnlineParams(Params):
    """Online RL from the BC policy (`--set name=value`); the data, BC and reward-model settings are ReST's."""

    samples: int = 4
    """Completions sampled per source each round: the RLOO group (at least 2)."""
    lr: float = 1e-4
    """AdamW learning rate of the policy gradient (AdamW's moments are kept from round to round). A fresh
    AdamW moves every weight by about `lr` whatever the gradient's size: at 3e-4 (seed 0, reward=model)
    one round took the KL to BC to 6.5 and three took test chrF from 91 to 58, R down with it."""
    beta: float = 0.02
    """KL coefficient: β·Σ_t (log π − log π_BC) is subtracted from each sample's R (k1, PPO-RLHF's form)."""
    epochs: int = 1
    """Passes over each round's samples (1: on-policy REINFORCE)."""
    batch_size: int = 32
    """Samples per gradient step."""
    gaps: tuple[float, ...] = Params.gaps
    """ReST's Improve steps only (not used here)."""
    thresholds: tuple[float, ...] = Params.thresholds
    """ReST's Improve steps only (not used here)."""
    lr_decay: float = Params.lr_decay
    """ReST's Improve steps only (not used here)."""
    keep_best: bool = Params.keep_best
    """ReST's Improve steps only (not used here)."""
    binary_cut: float = Params.binary_cut
    """ReST-EM only (not used here)."""
    cap: int = Params.cap
    """ReST-EM only (not used here)."""
    original_data: bool = Params.original_data
    """ReST's D_g only (not used here)."""
    restart: bool = Params.restart
    """ReST-EM only (not used here)."""
    bon_sources: int = Params.bon_sources
    """ReST's Best-of-N curve only (not used here)."""
    bon_max: int = Params.bon_max
    """ReST's Best-of-N curve only (not used here)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        unused = [f for f in REST_ONLY if getattr(self, f) != getattr(Params, f)]
        if unused:
            raise ArenaError(f"online does not use {', '.join(unused)} (ReST's Improve steps and Best-of-N)")
        if self.samples < 2:
            raise ArenaError("online needs samples >= 2 (the leave-one-out baseline's group)")
        if self.beta < 0 or self.lr <= 0:
            raise ArenaError("online needs beta >= 0 and lr > 0")


def per_sample(episodes: Sequence[Episode], seat: str = "policy") -> tuple[list[Episode], list[float]]:
    """One episode per sampled completion, with that completion's own R (the env scores each of a
    source's `samples` completions; an episode's reward is their mean)."""
    out, rewards = [], []
    for ep in episodes:
        for step, r in zip(ep.moves(seat), ep.info.get(seat, {}).get("rewards", [])):
            out.append(Episode(ep.index, ep.seed, {seat: float(r)}, {}, [step], ep.round))
            rewards.append(float(r))
    return out, rewards


@dataclass(kw_only=True)
class OnlineLearner:
    """A policy-gradient step on each round's samples, then the ReST evaluation of the policy."""

    pg: Any
    """`agents.learners.PolicyGradientLearner` (its `reference` is the frozen BC policy)."""
    evaluation: Any
    """`games.rest.learner.Evaluation`: the sets and the greedy evaluation ReST's steps are judged by."""
    reward_name: str = "chrf"
    """R's name (`chrf` or `model`), recorded with the history."""
    out_dir: Path | None = None
    """Where `history.json` and `steps.csv` are written (the run's `rest/`)."""
    progress: Callable[[str], None] | None = field(default=None, repr=False, compare=False)
    history: dict[str, Any] = field(default_factory=lambda: {"steps": [], "bon": {}})

    # -- Learner protocol and checkpoints
    def reset(self, seed: int) -> None:
        self.pg.reset(seed)

    def save(self, directory: Path) -> None:
        self.pg.save(directory)
        (Path(directory) / HISTORY_FILE).write_text(json.dumps(self.history, indent=1))

    def load(self, directory: Path) -> None:
        self.pg.load(directory)
        path = Path(directory) / HISTORY_FILE
        if path.is_file():
            self.history = json.loads(path.read_text())

    # -- the algorithm
    def update(self, agent: Any, episodes: Sequence[Episode]) -> dict[str, float]:
        steps = self.history["steps"]
        self.history.update(reward=self.reward_name, variant="online")
        if not steps:  # the policy that played round 0 is the behaviour-cloned one
            steps.append({"round": 0, "grow": 0, "improve": -1, "label": "BC", **self.evaluation.step(agent)})
        samples, rewards = per_sample(episodes)
        fitted = self.pg.fit_rewards(agent, samples, rewards)
        n = 1 + max(s["round"] for s in steps)
        row = {"round": n, "grow": n, "improve": 0, "label": f"RL {n}", "pairs": len(samples),
               "samples_R": float(np.mean(rewards)) if rewards else 0.0, "kl": fitted.get("kl", 0.0),
               "loss": fitted.get("loss", float("nan")), **self.evaluation.step(agent)}
        steps.append(row)
        if self.progress:
            self.progress(f"RL {n}: test R {100 * row['test']:.1f}, chrF {100 * row['test_chrf']:.1f}")
        self.write_files()
        bc = steps[0]
        return {"samples_R": row["samples_R"], "kl": row["kl"], "BC.R": bc["test"], "BC.chrF": bc["test_chrf"],
                "test.R": row["test"], "test.chrF": row["test_chrf"], "test.len": row["test_length"]}

    def write_files(self) -> None:
        if self.out_dir is not None:
            from games.rest.report import write_outputs

            write_outputs(self.history, Path(self.out_dir))


def online(ctx: RecipeContext) -> Setup:
    """Online RL (REINFORCE + RLOO, KL to BC) from ReST's BC policy, on R; evaluated as ReST is."""
    from agents.learners import Optimization, PolicyGradientLearner, reference_policy

    p = with_data_seed(resolve_params(OnlineParams, ctx.params), ctx.seed)
    setup = build(ctx, p)  # ReST's seats, env and evaluation sets from the same params
    seat = setup.seats["policy"]
    rest = seat.learner
    agent = seat.agent
    pg = PolicyGradientLearner(seat="policy", reference=reference_policy(agent.model), beta=p.beta,
                               kl_estimator="k1", baseline="rloo",
                               opt=Optimization(lr=p.lr, batch_size=p.batch_size, epochs=p.epochs, keep_state=True))
    learner = OnlineLearner(pg=pg, evaluation=rest.evaluation, reward_name=rest.reward.name,
                            out_dir=Path(ctx.run_dir) / "rest")
    seats = {**setup.seats, "policy": dataclasses.replace(seat, learner=learner)}
    return dataclasses.replace(setup, seats=seats)
