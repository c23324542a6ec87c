"""rest-v0: a Grow step of ReST for one source -- the policy writes N translations, each is scored.

Gulcehre et al. 2023, "Reinforced Self-Training (ReST) for Language Modeling"
(`docs/algorithms.md#rest`). One episode is one prompt x of the Grow
step: the policy samples `samples` completions y ~ π(·|x), and each (x, y) is
scored once with the reward R, normalised to [0, 1]. The Improve steps live in
the learner (`games.rest.learner`, set up by `games.rest.recipe`).

| | |
|---|---|
| Agents | `policy` (Text action); `reward` (Box action, one float) when `reward="seat"` |
| Turn order | policy `samples` times (the same prompt each time), then reward once per sample |
| Observation | Dict of Text: `prompt` (what a model reads), `source`, `completion`, `reference` |
| Policy prompt | `<source> =` (`rules.prompt`); the translation is the first line of the action, stripped |
| Reward prompt | `rules.reward_prompt(source, translation)` (reference-free, for a learned reward model); the observation's `reference` field lets a metric bot (`scripted:chrf`) play the seat |
| Reward R | `reward="chrf"`: chrF++ against the reference / 100. `reward="seat"`: the seat's score through `normalise` (`clip` or `sigmoid`) |
| Policy reward | mean R over its samples (a non-text action is an empty translation: R = 0 under chrF) |
| Reward-seat reward | mean (1 - abs(R - chrF)) over the samples: agreement with the metric; a NaN/inf/garbage score counts as R = 0 and earns 0 |
| Info (all seats) | source, reference, completions, rewards (R per sample), chrf, exact, valid, valid_scores, mean_reward, best_reward, mean_length |

Sources: `pool` sources of `split` (`train`, `valid`, `test`; disjoint by
construction) after the first `skip`, generated from `data_seed`, or the given
`sources`; each episode draws one with the env's RNG. With `skip=0` the `train`
pool is exactly the sources of the original data D the recipe behaviour-clones
on; `skip=|D|` gives sources outside D (ReST-EM's problems without human data).

Version history: v0 -- first version.
"""  # noqa: E501 (a table row is one line)
from __future__ import annotations

from functools import partial
from typing import Any, Sequence

import numpy as np

from arena.game import TextGame, end_episode, final_infos, start_episode
from arena.gameinfo import GameInfo
from arena.spaces import as_score, as_text, sanitize, score_space, text_space
from games.rest import rules

FIELDS = ("prompt", "source", "completion", "reference")
MAX_COMPLETION = 512


class RestEnv(TextGame):
    """One source of a ReST Grow step: N sampled translations, each scored by a metric or a reward model."""

    metadata = {"name": "rest-v0", "is_parallelizable": False, "render_modes": []}
    game_info = GameInfo(
        description="ReST Grow step on a toy translation task: N samples per source, scored by chrF or a reward model.",
        recipes={
            "default": "games.rest.recipe:rest",
            "rest": "games.rest.recipe:rest",
            "em": "games.rest.recipe:rest_em",
            "online": "games.rest.online:online",
        },
        recipe_params={"default": "games.rest.recipe:Params", "rest": "games.rest.recipe:Params",
                       "em": "games.rest.recipe:EMParams", "online": "games.rest.online:OnlineParams"},
        headline=("reward", "best_of_n", "chrf", "exact"),
        live_losses=("BC", "Dg", "Dg_R", "best_I"),
        extra_seats={"reward": {"reward": "seat"}},
        bots={
            "rule": "games.rest.bots:RuleTranslator",
            "human": "games.rest.bots:HumanTranslator",
            "chrf": "games.rest.bots:ChrfScorer",
        },
        report="games.rest.report:report",
        pretrain="games.rest.recipe:pretrain",
    )

    def __init__(self, samples: int = 4, reward: str = "chrf", normalisation: str = "clip", split: str = "train",
                 pool: int = 512, skip: int = 0, data_seed: int = 0, sources: Sequence[str] | None = None,
                 render_mode: str | None = None):
        super().__init__()
        if reward not in ("chrf", "seat"):
            raise ValueError(f"reward must be 'chrf' or 'seat', not {reward!r}")
        if samples < 1:
            raise ValueError("samples must be at least 1")
        rules.normalise(0.0, normalisation)  # validates the mode
        self.samples, self.reward_mode, self.normalisation = int(samples), reward, normalisation
        self.pool = list(sources) if sources else rules.sources(split, skip + pool, data_seed)[skip:]
        self.render_mode = render_mode
        self.possible_agents = ["policy"] + (["reward"] if reward == "seat" else [])
        self.set_spaces(FIELDS, {"policy": partial(text_space, MAX_COMPLETION), "reward": score_space})

    # -- episode ----------------------------------------------------------------
    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> None:
        self.rng = np.random.default_rng(seed)
        self.source = self.pool[int(self.rng.integers(len(self.pool)))]
        self.reference = rules.translate(self.source)
        self.completions: list[str] = []
        self.valid: list[bool] = []
        self.scores: list[float | None] = []
        start_episode(self, "policy")

    def observe(self, agent: str) -> dict[str, str]:
        obs = {"prompt": rules.prompt(self.source), "source": self.source, "completion": "", "reference": ""}
        if agent == "reward" and len(self.scores) < len(self.completions):
            y = self.completions[len(self.scores)]
            obs.update(prompt=rules.reward_prompt(self.source, y), completion=y, reference=self.reference)
        return obs

    def move(self, agent: str, action: Any) -> None:
        if agent == "policy":
            text = as_text(action)
            self.valid.append(text is not None)
            self.completions.append(sanitize(rules.completion(text or ""), MAX_COMPLETION))
            if len(self.completions) == self.samples:
                if self.reward_mode == "chrf":
                    self._finish([None] * self.samples)
                else:
                    self.agent_selection = "reward"
        else:
            self.scores.append(as_score(action))
            if len(self.scores) == self.samples:
                self._finish(self.scores)
        self._accumulate_rewards()

    def _finish(self, scores: list[float | None]) -> None:
        chrf = [rules.chrf(y, self.reference) for y in self.completions]
        if self.reward_mode == "chrf":
            rewards = chrf
        else:
            rewards = [rules.normalise(s, self.normalisation) for s in scores]
            agreement = [0.0 if s is None else 1.0 - abs(r - c) for s, r, c in zip(scores, rewards, chrf)]
            self.rewards["reward"] = float(np.mean(agreement))
        self.rewards["policy"] = float(np.mean(rewards))
        end_episode(self, {
            "source": self.source, "reference": self.reference, "completions": list(self.completions),
            "rewards": rewards, "chrf": chrf, "exact": [y == self.reference for y in self.completions],
            "valid": list(self.valid),
            "valid_scores": [s is not None for s in scores] if self.reward_mode == "seat" else [],
            "mean_reward": float(np.mean(rewards)), "best_reward": float(np.max(rewards)),
            "mean_length": float(np.mean([len(y) for y in self.completions])),
        })

    # -- round metrics ------------------------------------------------------------
    @staticmethod
    def round_metrics(episodes) -> dict[str, float]:
        """The Grow step's samples: mean R, best-of-N R, chrF, exact-match rate, length, diversity."""
        return summarize(final_infos(episodes, "policy", "rewards"))


def summarize(infos: list[dict[str, Any]]) -> dict[str, float]:
    """Round metrics from the per-episode infos."""
    if not infos:
        return {}
    flat = lambda key: [x for i in infos for x in i[key]]  # noqa: E731
    return {
        "reward": float(np.mean(flat("rewards"))),
        "best_of_n": float(np.mean([i["best_reward"] for i in infos])),
        "chrf": float(np.mean(flat("chrf"))),
        "exact": float(np.mean(flat("exact"))),
        "mean_length": float(np.mean([len(y) for y in flat("completions")])),
        "distinct": float(np.mean([len(set(i["completions"])) / len(i["completions"]) for i in infos])),
        "invalid_rate": 1.0 - float(np.mean(flat("valid"))),
    }
