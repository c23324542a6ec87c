"""A toy text game for the people-at-the-table tests: `human:web` seats and `arena study`.

sums-v0: the `writer` writes a sum ("3 + 4 = 7"), the `checker` scores it (> 0: correct).
Its scripted writer errs on some problems, fewer as its `skill` rises (the recipe's learner
raises it every round, so a run's checkpoints differ), and the game names its study hook
(`GameInfo.study`), registered here the way a game package registers its own.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from arena.game import TextGame, end_episode, start_episode
from arena.gameinfo import GameInfo
from arena.seeding import derive, stable_hash
from arena.selfplay import SeatSetup, Setup
from arena.spaces import as_score, as_text, sanitize, score_space, text_space

SUM_RE = re.compile(r"(\d+)\s*\+\s*(\d+)\s*=\s*(-?\d+)")


def is_right(text: str) -> bool:
    m = SUM_RE.search(text)
    return bool(m) and int(m.group(1)) + int(m.group(2)) == int(m.group(3))


class SumsEnv(TextGame):
    """The writer writes a sum, the checker scores it."""

    metadata = {"name": "sums-v0", "is_parallelizable": False, "render_modes": []}
    game_info = GameInfo(description="Write a sum; check it.", recipes={"default": "study_toy:recipe"},
                         bots={"adder": "study_toy:Adder"}, study={"writer": "study_toy:sum_items"})

    def __init__(self, render_mode: str | None = None):
        super().__init__()
        self.possible_agents = ["writer", "checker"]
        self.set_spaces(("prompt",), {"writer": text_space, "checker": score_space})

    def reset(self, seed: int | None = None, options: Any = None) -> None:
        rng = np.random.default_rng(seed)
        self.a, self.b, self.text = int(rng.integers(1, 20)), int(rng.integers(1, 20)), ""
        start_episode(self, "writer")

    def observe(self, agent: str) -> dict[str, str]:
        if agent == "writer":
            return {"prompt": f"Add {self.a} and {self.b}."}
        return {"prompt": f"Is this right?\n{self.text}"}

    def move(self, agent: str, action: Any) -> None:
        if agent == "writer":
            self.text = sanitize(as_text(action) or "", 512)
            self.agent_selection = "checker"
            return
        score, right = as_score(action), is_right(self.text)
        self.rewards = {"writer": 1.0 if right else -1.0,
                        "checker": -1.0 if score is None else (1.0 if (score > 0) == right else -1.0)}
        self._accumulate_rewards()
        end_episode(self, {"right": right})


class Adder:
    """Writes `a + b = c`, off by one on a share of problems that shrinks as `skill` grows."""

    kind = "scripted"
    produces = "text"

    def __init__(self, seat: str = "", options: str = ""):
        self.skill, self.seed = int(dict(kv.split("=", 1) for kv in options.split("&") if "=" in kv)
                                    .get("skill", 0)), 0

    def reset(self, seed: int) -> None:
        self.seed = seed

    def act(self, observations):
        out = []
        for obs in observations:
            a, b = map(int, re.findall(r"\d+", obs["prompt"])[:2])
            wrong = stable_hash("adder", obs["prompt"]) % (self.skill + 2) == 0
            out.append(f"{a} + {b} = {a + b + (1 if wrong else 0)}")
        return out

    def save(self, directory: Path) -> None:
        (Path(directory) / "scripted.json").write_text(json.dumps({"bot": "adder", "params": {"skill": self.skill}}))

    def load(self, directory: Path) -> None:
        self.skill = int(json.loads((Path(directory) / "scripted.json").read_text())["params"]["skill"])


@dataclass
class SkillUp:
    progress: object = None

    def reset(self, seed: int) -> None:
        pass

    def update(self, agent: Adder, episodes) -> dict[str, float]:
        agent.skill += 1
        return {"skill": float(agent.skill)}


def recipe(ctx):
    writer, spec = ctx.agent("writer", "scripted:adder")
    checker, cspec = ctx.agent("checker", "scripted:random")
    return Setup({"writer": SeatSetup(writer, SkillUp() if isinstance(writer, Adder) else None, spec),
                  "checker": SeatSetup(checker, None, cspec)})


def problems(n: int, seed: int) -> list[tuple[int, int]]:
    """The first n held-out problems of a seed (the same for every checkpoint)."""
    rng = np.random.default_rng(derive(seed, "sums-study"))
    return [(int(rng.integers(20, 99)), int(rng.integers(20, 99))) for _ in range(n)]


def sum_items(agent: Any, n: int, *, seed: int, settings: dict[str, Any]) -> list[dict[str, Any]]:
    """The study hook: the writer checkpoint's sum for each held-out problem."""
    ps = problems(n, seed)
    texts = agent.act([{"prompt": f"Add {a} and {b}."} for a, b in ps])
    return [{"problem_id": f"{a}+{b}#{i}", "prompt_text": f"Solution:\n{t}", "correct": is_right(t)}
            for i, ((a, b), t) in enumerate(zip(ps, texts))]


EVIL = '<script>window.__pwned = 1</script><b id="bold">bold?</b><img src=x onerror="window.__pwned = 2">'


def evil_items(agent: Any, n: int, *, seed: int, settings: dict[str, Any]) -> list[dict[str, Any]]:
    """A hook whose solutions carry markup and script (named with --items-fn in the tests)."""
    return [{**it, "prompt_text": f"{it['prompt_text']}\n{EVIL}"} for it in sum_items(agent, n, seed=seed,
                                                                                       settings=settings)]


class ChatEnv(TextGame):
    """Two players take turns, two messages each: the multi-turn game of the chat-view test."""

    metadata = {"name": "chat-v0", "is_parallelizable": False, "render_modes": []}
    game_info = GameInfo(description="Take turns talking.")
    TURNS = 4

    def __init__(self, render_mode: str | None = None):
        super().__init__()
        self.possible_agents = ["player_1", "player_2"]
        self.set_spaces(("prompt",), {"player_1": text_space, "player_2": text_space})

    def reset(self, seed: int | None = None, options: Any = None) -> None:
        self.said: list[str] = []
        start_episode(self, "player_1")

    def observe(self, agent: str) -> dict[str, str]:
        last = self.said[-1] if self.said else "(nothing yet)"
        return {"prompt": f"Turn {len(self.said) + 1} of {self.TURNS}. The other player said: {last}"}

    def move(self, agent: str, action: Any) -> None:
        self.said.append(sanitize(as_text(action) or "", 200))
        if len(self.said) < self.TURNS:
            self.agent_selection = "player_2" if agent == "player_1" else "player_1"
            return
        self.rewards = {"player_1": float(len(self.said[0]) > len(self.said[1])), "player_2": 0.0}
        self._accumulate_rewards()
        end_episode(self, {})
