"""adversarial-rm-v0: a policy answers a prompt; an adversarial reward model scores it against the data.

Liu et al. 2024, "Provably Mitigating Overoptimization in RLHF: Your SFT Loss is
Implicitly an Adversarial Regularizer" (RPO; `docs/algorithms.md#rpo`).
One episode is one term of the max-min objective

    E_{x, a1~π, a0~π_base}[ r(x,a1) - r(x,a0) ]

with a0 the *chosen* answer of a preference pair (π_base = the data's chosen
responses). The reward model's data-fit term L_D(r) and the KL penalty on the
policy live in the learners (`games.adversarial_rm.recipe`).

| | |
|---|---|
| Agents | `policy` (Text action), `reward_model` (Box action, one unbounded float) |
| Turn order | policy answers; reward_model scores the policy's answer; reward_model scores the baseline answer |
| Observation | Dict of Text: `prompt` (what a model reads), `task_prompt`, `answer`, `which` |
| Policy prompt | the task prompt itself, e.g. `ceg>` (the answer is its continuation) |
| Reward-model prompt | `rm_input(task_prompt, answer)` = task prompt + answer + newline; `which` is `policy` or `baseline` |
| Policy reward | r(answer) - r(baseline) |
| Reward-model reward | r(baseline) - r(answer), minus 1 per invalid (NaN/inf/garbage) score, which counts as 0 |
| Info (both seats) | gold, gold_baseline (None without a gold reward), score, score_baseline, valid_answer, valid_scores, length, prompt, answer, baseline |

Data: by default `n_pairs` synthetic pairs of the letter task (`rules`, hidden
gold reward, BT label noise `noise`, seed `data_seed`, split `train` or
`heldout`); with `data=<file.jsonl>` real pairs (`prompt`, `chosen`, `rejected`)
and no gold reward. Each episode draws one pair with the env's RNG. A non-text
answer is empty (`valid_answer=False`); it is scored like any other text.

Recipes (`games.adversarial_rm.recipe`): `explicit` (default; the game itself),
`baseline` (policy gradient on a frozen Bradley-Terry proxy, no KL), `dpo`,
`rpo-sum`, `rpo-mean`. `arena experiment overoptimization` runs all five and
plots gold and proxy reward against KL (`games.adversarial_rm.experiment`).

Version history: v0 -- first version.
"""  # noqa: E501 (a table row is one line)
from __future__ import annotations

from functools import lru_cache, partial
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from arena.game import TextGame, end_episode, final_infos, start_episode
from arena.gameinfo import GameInfo
from arena.spaces import as_score, as_text, sanitize, score_space, text_space
from games.adversarial_rm import rules

FIELDS = ("prompt", "task_prompt", "answer", "which")
MAX_ANSWER = 1024
MAX_PROMPT = 4096


def rm_input(prompt: str, answer: str) -> str:
    """The text a reward model reads for (prompt, answer); learners score pairs with the same function."""
    return f"{sanitize(prompt, MAX_PROMPT)}{sanitize(answer, MAX_ANSWER)}\n"


def load_pairs(data: str | None = None, n_pairs: int = 1024, data_seed: int = 0, noise: float = 0.5,
               split: str = "train") -> tuple[rules.Pair, ...]:
    """The env's preference pairs: a JSONL file, or the synthetic task's (both cached: K envs share them)."""
    if data:
        try:
            mtime = Path(data).stat().st_mtime_ns
        except OSError as e:
            raise ValueError(f"cannot read preference data {data}: {e}") from None
        return _read_jsonl(str(data), mtime)
    return rules.preference_data(data_seed, n_pairs, noise, split)


@lru_cache(maxsize=4)
def _read_jsonl(path: str, mtime_ns: int) -> tuple[rules.Pair, ...]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise ValueError(f"cannot read preference data {path}: {e}") from None
    return tuple(rules.parse_preference_jsonl(lines))


class AdversarialRMEnv(TextGame):
    """A policy answers; a reward model prices its answer against the data's chosen answer."""

    metadata = {"name": "adversarial-rm-v0", "is_parallelizable": False, "render_modes": []}
    game_info = GameInfo(
        description="Policy vs adversarial reward model (RPO); a hidden gold reward measures over-optimisation.",
        recipes={
            "default": "games.adversarial_rm.recipe:explicit",
            "explicit": "games.adversarial_rm.recipe:explicit",
            "baseline": "games.adversarial_rm.recipe:baseline",
            "dpo": "games.adversarial_rm.recipe:dpo",
            "rpo-sum": "games.adversarial_rm.recipe:rpo_sum",
            "rpo-mean": "games.adversarial_rm.recipe:rpo_mean",
        },
        recipe_params={name: "games.adversarial_rm.prepare:Params"
                       for name in ("default", "explicit", "baseline", "dpo", "rpo-sum", "rpo-mean")},
        headline=("gold", "rm_margin", "length"),
        pretrain="games.adversarial_rm.recipe:pretrain",
    )

    def __init__(self, n_pairs: int = 1024, data_seed: int = 0, noise: float = 0.5, split: str = "train",
                 data: str | None = None, pairs: Sequence[rules.Pair] | None = None,
                 render_mode: str | None = None):
        super().__init__()
        self.pairs = tuple(pairs) if pairs is not None else load_pairs(data, n_pairs, data_seed, noise, split)
        if not self.pairs:
            raise ValueError("adversarial-rm-v0 needs at least one preference pair")
        self.render_mode = render_mode
        self.possible_agents = ["policy", "reward_model"]
        self.set_spaces(FIELDS, {"policy": partial(text_space, MAX_ANSWER), "reward_model": score_space})
        self.pair: rules.Pair | None = None

    # -- episode ----------------------------------------------------------------
    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> None:
        self.rng = np.random.default_rng(seed)
        self.pair = self.pairs[int(self.rng.integers(len(self.pairs)))]
        self.task_prompt = sanitize(self.pair.prompt, MAX_PROMPT)
        self.baseline = sanitize(self.pair.chosen, MAX_ANSWER)
        self.answer, self.valid_answer = "", True
        self.scores: list[float | None] = []
        start_episode(self, "policy")

    def observe(self, agent: str) -> dict[str, str]:
        p = self.task_prompt
        if agent == "policy" or self.pair is None:
            return {"prompt": p, "task_prompt": p, "answer": "", "which": ""}
        which = "policy" if not self.scores else "baseline"
        answer = self.answer if which == "policy" else self.baseline
        return {"prompt": rm_input(p, answer), "task_prompt": p, "answer": answer, "which": which}

    def move(self, agent: str, action: Any) -> None:
        if agent == "policy":
            text = as_text(action)
            self.valid_answer = text is not None
            self.answer = sanitize(text or "", MAX_ANSWER)
            self.agent_selection = "reward_model"
        else:
            self.scores.append(as_score(action))
            if len(self.scores) == 2:
                self._settle()
        self._accumulate_rewards()

    def _settle(self) -> None:
        score, score_baseline = self.scores
        self.rewards["policy"], self.rewards["reward_model"] = rules.payoffs(score, score_baseline)
        info = {"gold": rules.gold_reward(self.task_prompt, self.answer),
                "gold_baseline": rules.gold_reward(self.task_prompt, self.baseline),
                "score": score, "score_baseline": score_baseline, "valid_answer": self.valid_answer,
                "valid_scores": score is not None and score_baseline is not None,
                "length": len(self.answer), "prompt": self.task_prompt, "answer": self.answer,
                "baseline": self.baseline}
        end_episode(self, info)

    # -- round metrics ------------------------------------------------------------
    @staticmethod
    def round_metrics(episodes) -> dict[str, float]:
        """Gold reward of the policy's answers (and of the data's), reward-model scores, length."""
        return summarize(final_infos(episodes, "policy", "score"))


def summarize(infos: list[dict[str, Any]]) -> dict[str, float]:
    """Round metrics from per-episode infos; gold metrics only when the task has a gold reward."""
    if not infos:
        return {}
    val = lambda x: 0.0 if x is None else float(x)  # noqa: E731 (invalid score counts as 0)
    out = {
        "rm_score": float(np.mean([val(i["score"]) for i in infos])),
        "rm_margin": float(np.mean([val(i["score"]) - val(i["score_baseline"]) for i in infos])),
        "length": float(np.mean([i["length"] for i in infos])),
        "invalid_answer_rate": float(np.mean([not i["valid_answer"] for i in infos])),
        "invalid_score_rate": float(np.mean([not i["valid_scores"] for i in infos])),
    }
    gold = [(i["gold"], i["gold_baseline"]) for i in infos if i.get("gold") is not None]
    if gold:
        g, g0 = np.array(gold, dtype=float).T
        out["gold"] = float(g.mean())
        out["gold_baseline"] = float(g0.mean())
        out["gold_win_rate_vs_data"] = float(np.mean((g > g0) + 0.5 * (g == g0)))
    return out
