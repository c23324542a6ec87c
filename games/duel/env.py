"""duel-v0: two policies answer the same prompt; a judge (or a gold scoring function) decides.

The game tournaments use to rate policy checkpoints like an arena.

| | |
|---|---|
| Agents | `policy_a`, `policy_b` (Text actions); `judge` (Box action) unless `judge="gold"` |
| Turn order | policy_a, policy_b (each sees only the prompt), then judge |
| Observation | Dict of Text: `prompt` (what an LLM reads), `task_prompt`, `answer_a`, `answer_b` |
| Judge prompt | `Prompt: <p>\\nAnswer A: <a>\\nAnswer B: <b>\\nWhich is better?` |
| Judge action | one float: > 0 prefers A, < 0 prefers B, 0 is a draw; NaN/inf is invalid |
| Policy rewards | +1 win, -1 loss, 0 draw (zero-sum); an invalid judge score is a draw |
| Judge reward | +1 if its verdict agrees with the gold verdict, -1 if not (or invalid), 0 on a gold draw |
| Info | gold_a, gold_b, gold_verdict, verdict, valid_score |

`task` is a name in `rules.TASKS` (default `sum`), or, from Python code only, an object
with `sample(rng)` and `score(prompt, answer)`. A string is never imported: settings come
from command lines and run directories' config.json, which are data. Seats `policy_a` and
`policy_b` are symmetric (tournaments play them round robin).

Recipe (`games.duel.recipe`): with `judge="gold"` the game is Nash learning from human feedback
(`arena train duel-v0 --env judge=gold [--opponents nash]`): both policies are the tiny LLM SFT'd on
sums, each trained by policy gradient on its +1/-1/0 reward with a KL penalty to that start; its
NashConv is 2 x P(inexact answer) (`games.duel.nash`). Under `judge="seat"` it trains nothing.

Version history: v0 -- first version.
"""
from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from arena.game import TextGame, end_episode, start_episode
from arena.gameinfo import GameInfo
from arena.spaces import as_score, as_text, sanitize, score_space, text_space
from games.duel import rules

FIELDS = ("prompt", "task_prompt", "answer_a", "answer_b")
MAX_ANSWER = 1024


class DuelEnv(TextGame):
    """Two policies answer the same prompt; a judge or a gold scoring function decides."""

    metadata = {"name": "duel-v0", "is_parallelizable": False, "render_modes": []}
    game_info = GameInfo(
        description="Two policies answer the same prompt; a judge or gold score decides the winner.",
        headline=("win_rate_a", "draw_rate", "judge_agreement"),
        symmetric_seats=("policy_a", "policy_b"),
        bots={"adder": "games.duel.bots:Adder", "checker": "games.duel.bots:Checker"},
        recipes={"default": "games.duel.recipe:build"},
        recipe_params={"default": "games.duel.recipe:Params"},
        exploitability="games.duel.nash:exploitability",
    )

    def __init__(self, task: str = "sum", judge: str = "seat", render_mode: str | None = None):
        super().__init__()
        if judge not in ("seat", "gold"):
            raise ValueError(f"judge must be 'seat' or 'gold', not {judge!r}")
        if isinstance(task, str):
            if task not in rules.TASKS:
                raise ValueError(f"task must be one of {', '.join(rules.TASKS)}, not {task[:80]!r}")
            self.task = rules.TASKS[task]
        elif callable(getattr(task, "sample", None)) and callable(getattr(task, "score", None)):
            self.task = task
        else:
            raise ValueError(f"task must be a task name or an object with sample() and score(), "
                             f"not a {type(task).__name__}")
        self.judge_mode = judge
        self.render_mode = render_mode
        self.possible_agents = ["policy_a", "policy_b"] + (["judge"] if judge == "seat" else [])
        self.set_spaces(FIELDS, {"policy_a": partial(text_space, MAX_ANSWER),
                                 "policy_b": partial(text_space, MAX_ANSWER), "judge": score_space})

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> None:
        self.rng = np.random.default_rng(seed)
        self.task_prompt = sanitize(self.task.sample(self.rng))
        self.answers = {"policy_a": "", "policy_b": ""}
        start_episode(self, "policy_a")

    def observe(self, agent: str) -> dict[str, str]:
        a, b = (sanitize(self.answers[s], MAX_ANSWER) for s in ("policy_a", "policy_b"))
        if agent == "judge":
            prompt = f"Prompt: {self.task_prompt}\nAnswer A: {a}\nAnswer B: {b}\nWhich is better?"
            return {"prompt": prompt, "task_prompt": self.task_prompt, "answer_a": a, "answer_b": b}
        return {"prompt": self.task_prompt, "task_prompt": self.task_prompt, "answer_a": "", "answer_b": ""}

    def move(self, agent: str, action: Any) -> None:
        if agent in self.answers:
            self.answers[agent] = as_text(action) or ""
            if agent == "policy_a":
                self.agent_selection = "policy_b"
            elif self.judge_mode == "seat":
                self.agent_selection = "judge"
            else:
                self._decide(None)
        else:
            self._decide(as_score(action))
        self._accumulate_rewards()

    def _decide(self, judge_score: float | None) -> None:
        gold_a = float(self.task.score(self.task_prompt, self.answers["policy_a"]))
        gold_b = float(self.task.score(self.task_prompt, self.answers["policy_b"]))
        gold = rules.verdict(gold_a, gold_b)
        if self.judge_mode == "gold":
            decided, valid = gold, True
        else:
            valid = judge_score is not None
            decided = int(np.sign(judge_score)) if valid else 0
            self.rewards["judge"] = -1.0 if not valid else (0.0 if gold == 0 else (1.0 if decided == gold else -1.0))
        self.rewards["policy_a"], self.rewards["policy_b"] = float(decided), float(-decided)
        info = {"gold_a": gold_a, "gold_b": gold_b, "gold_verdict": gold, "verdict": decided, "valid_score": valid}
        end_episode(self, info)

    @staticmethod
    def round_metrics(episodes) -> dict[str, float]:
        infos = [next(iter(ep.info.values())) for ep in episodes if ep.info]
        infos = [i for i in infos if "verdict" in i]
        n = max(1, len(infos))
        judged = [i for i in infos if i["gold_verdict"] != 0]
        return {
            "win_rate_a": sum(i["verdict"] > 0 for i in infos) / n,
            "draw_rate": sum(i["verdict"] == 0 for i in infos) / n,
            "judge_agreement": sum(i["verdict"] == i["gold_verdict"] for i in judged) / max(1, len(judged)),
            "gold_a": float(np.mean([i["gold_a"] for i in infos])) if infos else 0.0,
            "gold_b": float(np.mean([i["gold_b"] for i in infos])) if infos else 0.0,
        }
