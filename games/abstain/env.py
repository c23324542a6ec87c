"""abstain-v0: a student answers a knowledge question or says "I don't know"; a judge compares.

Answer or abstain (`docs/algorithms.md#answer-or-abstain`; Goldberg's essay on
Schulman's talk): RL can price a wrong answer below an abstention, so a model can
learn to answer what it knows and abstain where its knowledge ends.

| | |
|---|---|
| Agents | `student` (Text action), `judge` (Box action, one float: > 0 means "same as the reference") |
| Turn order | student, then judge -- the judge only moves when the student answered (an abstention ends the episode) |
| Observation | Dict of Text: `prompt` (what a model reads), `question`, `answer`, `reference` |
| Student prompt | `Q: <question>\\nA: ` (`rules.student_prompt`); `answer` and `reference` are empty |
| Judge prompt | `Answer: <answer>\\nReference: <reference>\\n` (`rules.judge_prompt`); the question is in `question` |
| Student reward | by the gold check (`rules.outcome`: exact after `rules.normalise`): +1 correct, 0 abstain, -k wrong |
| Judge reward | 1 when its verdict agrees with the gold check, else 0 (a NaN/inf/garbage score earns 0) |
| Info (both seats) | question, attribute, kind (known/unknown), split, reference, answer, outcome, correct, abstained, valid, payoff, verdict, judged_payoff, valid_score, k |

The student is paid by the truth, whoever sits in the judge seat: the judge is a
player that predicts the gold check (`scripted:gold` is the rule itself, an `hf:`
scorer a learned comparison model) and is paid for agreeing with it. What the
judge's verdict would have paid the student is in the info (`judged_payoff`: 0
for an abstention, +1 if judged the same, -k otherwise); the `rl-judge` recipe
trains the student on that instead of the gold payoff. So tournaments rate
student checkpoints by their true payoff, whatever judge they meet.

Questions come from the fact base of `data_seed` (`rules.make_fact_base`: made-up
countries' capitals, regions, kingdom/republic; `known` ones are in the base
model's pretraining text, `unknown` ones never are), restricted to `split`
(`eval`, the default: the held-out questions; `train`: those recipes train on;
`all`) and `kind` (`all`, `known`, `unknown`); each episode draws one with the
env's RNG. Garbage never raises: a non-text or empty answer is a wrong answer
(`valid=False`), a non-finite score an unreadable verdict (`valid_score=False`).

Round metrics (`round_metrics`, `metrics.summarize`): accuracy, abstention,
hallucination (wrong / answered) and payoff, overall and `known_*` / `unknown_*`;
the judge's agreement with the gold check on the answers it saw.

Version history: v0 -- first version.
"""  # noqa: E501 (a table row is one line)
from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from arena.game import TextGame, end_episode, final_infos, start_episode
from arena.gameinfo import GameInfo
from arena.spaces import as_score, as_text, sanitize, score_space, text_space
from games.abstain import metrics, rules

FIELDS = ("prompt", "question", "answer", "reference")
MAX_ANSWER = 256


class AbstainEnv(TextGame):
    """Answer or abstain: a student answers knowledge questions (+1 / 0 / -k), a judge compares to the reference."""

    metadata = {"name": "abstain-v0", "is_parallelizable": False, "render_modes": []}
    game_info = GameInfo(
        description="Answer or abstain: +1 right, 0 'I don't know', -k wrong; SFT vs RL on a fact base the base "
                    "model partly knows.",
        recipes={
            "default": "games.abstain.recipe:rl",
            "sft": "games.abstain.recipe:sft",
            "sft-idk": "games.abstain.recipe:sft_idk",
            "rl": "games.abstain.recipe:rl",
            "rl-judge": "games.abstain.recipe:rl_judge",
        },
        recipe_params={name: "games.abstain.recipe:Params" for name in ("default", "sft", "sft-idk", "rl", "rl-judge")},
        headline=("payoff", "known_accuracy", "unknown_abstention", "hallucination"),
        live_losses=("loss", "kl", "reward_mean", "threshold", "known_answer_rate", "unknown_answer_rate"),
        bots={
            "always-answer": "games.abstain.bots:AlwaysAnswer",
            "always-abstain": "games.abstain.bots:AlwaysAbstain",
            "oracle": "games.abstain.bots:Oracle",
            "gold": "games.abstain.bots:GoldJudge",
        },
        pretrain="games.abstain.pretraining:pretrain_command",
    )

    def __init__(self, k: float = 1.0, split: str = "eval", kind: str = "all", data_seed: int = 0,
                 render_mode: str | None = None):
        super().__init__()
        if split not in ("train", "eval", "all"):
            raise ValueError(f"split must be train, eval or all, not {split!r}")
        if kind not in ("all", "known", "unknown"):
            raise ValueError(f"kind must be all, known or unknown, not {kind!r}")
        if not np.isfinite(k) or k < 0:
            raise ValueError(f"k must be a finite number >= 0, not {k!r}")
        self.k, self.split, self.kind, self.data_seed = float(k), split, kind, int(data_seed)
        base = rules.make_fact_base(self.data_seed)
        self.facts = [f for f in base.facts if f.kind in ("known", "unknown")
                      and (split == "all" or f.split == split) and (kind == "all" or f.kind == kind)]
        self.render_mode = render_mode
        self.possible_agents = ["student", "judge"]
        self.set_spaces(FIELDS, {"student": partial(text_space, MAX_ANSWER), "judge": score_space})
        self.fact: rules.Fact | None = None

    # -- episode ----------------------------------------------------------------
    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> None:
        self.rng = np.random.default_rng(seed)
        self.fact = self.facts[int(self.rng.integers(len(self.facts)))]
        self.answer, self.valid, self.result = "", True, "wrong"
        start_episode(self, "student")

    def observe(self, agent: str) -> dict[str, str]:
        q = self.fact.question if self.fact else ""
        if agent == "judge" and self.fact is not None:
            return {"prompt": rules.judge_prompt(self.answer, self.fact.answer), "question": q,
                    "answer": self.answer, "reference": self.fact.answer}
        return {"prompt": rules.student_prompt(q), "question": q, "answer": "", "reference": ""}

    def move(self, agent: str, action: Any) -> None:
        if agent == "student":
            text = as_text(action)
            self.valid = bool(text and text.strip())
            self.answer = sanitize((text or "").strip(), MAX_ANSWER)
            self.result = rules.outcome(text, self.fact.answer)
            if self.result == "abstain":
                self._settle(None, judged=False)
            else:
                self.agent_selection = "judge"
        else:
            self._settle(as_score(action), judged=True)
        self._accumulate_rewards()

    def _settle(self, score: float | None, judged: bool) -> None:
        correct = self.result == "correct"
        verdict = rules.judge_verdict(score) if judged else None
        self.rewards["student"] = rules.payoff(self.result, self.k)
        self.rewards["judge"] = rules.judge_payoff(correct, verdict) if judged else 0.0
        f = self.fact
        end_episode(self, {
            "question": f.question, "attribute": f.attribute, "kind": f.kind, "split": f.split,
            "reference": f.answer, "answer": self.answer, "outcome": self.result, "correct": correct,
            "abstained": self.result == "abstain", "valid": self.valid, "payoff": self.rewards["student"],
            "verdict": verdict, "judged_payoff": rules.judged_payoff(self.result, verdict, self.k),
            "judged": judged, "valid_score": (score is not None) if judged else None, "k": self.k})

    # -- round metrics ------------------------------------------------------------
    @staticmethod
    def round_metrics(episodes) -> dict[str, float]:
        """Accuracy, abstention, hallucination and payoff (overall, known, unknown); judge agreement."""
        infos = final_infos(episodes, "student", "outcome")
        out = metrics.summarize(infos)
        judged = [i for i in infos if i.get("judged")]
        if judged:
            out["judge_agreement"] = float(np.mean([i["verdict"] is not None and i["verdict"] == i["correct"]
                                                    for i in judged]))
            out["judged_payoff"] = float(np.mean([i["judged_payoff"] for i in infos]))
        return {k: v for k, v in out.items() if k != "n" and not k.endswith("_n")}
