"""A game that lives outside the repo's packages: used to prove third-party games work.

guess-v0: one `guesser` seat sees a hint and guesses a hidden digit; +1 if right.
It has a scripted bot with a `skill` parameter and a recipe whose learner raises the
skill every round, so rounds differ and checkpoints/resume are exercised.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pettingzoo import AECEnv

from arena.gameinfo import GameInfo
from arena.seeding import stable_hash
from arena.selfplay import SeatSetup, Setup
from arena.spaces import as_text, text_dict_space, text_space


class GuessEnv(AECEnv):
    """Guess the hidden digit from a hint."""

    metadata = {"name": "guess-v0", "is_parallelizable": False, "render_modes": []}
    game_info = GameInfo(
        description="Guess a hidden digit.",
        recipes={"default": "ext_game:recipe"},
        headline=("accuracy",),
        bots={"noisy": "ext_game:NoisyGuesser"},
    )

    def __init__(self):
        super().__init__()
        self.possible_agents = ["guesser"]
        self._obs = text_dict_space("prompt")
        self._act = text_space(16)

    def observation_space(self, agent):
        return self._obs

    def action_space(self, agent):
        return self._act

    def reset(self, seed=None, options=None):
        self.rng = np.random.default_rng(seed)
        self.secret, self.nonce = int(self.rng.integers(10)), int(self.rng.integers(1 << 30))
        self.agents = ["guesser"]
        self.rewards = {"guesser": 0.0}
        self._cumulative_rewards = {"guesser": 0.0}
        self.terminations = {"guesser": False}
        self.truncations = {"guesser": False}
        self.infos = {"guesser": {}}
        self.agent_selection = "guesser"

    def observe(self, agent):
        return {"prompt": f"hint: the digit is {self.secret}. (puzzle {self.nonce})"}

    def step(self, action):
        if self.terminations[self.agent_selection]:
            self._was_dead_step(action)
            return
        self._clear_rewards()
        text = as_text(action) or ""
        right = text.strip() == str(self.secret)
        self.rewards["guesser"] = 1.0 if right else 0.0
        self.infos["guesser"] = {"right": right}
        self.terminations["guesser"] = True
        self._accumulate_rewards()

    @staticmethod
    def round_metrics(episodes):
        return {"accuracy": float(np.mean([ep.info["guesser"]["right"] for ep in episodes]))}


class NoisyGuesser:
    """Answers right with probability `skill`; sleeps `delay` seconds per act call."""

    kind = "scripted"

    def __init__(self, seat="", options=""):
        opts = dict(kv.split("=", 1) for kv in options.split("&") if "=" in kv)
        self.skill, self.delay = float(opts.get("skill", 0.2)), float(opts.get("delay", 0))
        self.seed = 0

    def reset(self, seed):
        self.seed = seed

    def act(self, observations):
        time.sleep(self.delay)
        out = []
        for obs in observations:
            rng = np.random.default_rng(stable_hash(self.seed, obs["prompt"]))
            digit = obs["prompt"].split("is ")[1][0]
            out.append(digit if rng.random() < self.skill else str((int(digit) + 1) % 10))
        return out

    def save(self, directory):
        (Path(directory) / "scripted.json").write_text(json.dumps({"bot": "noisy", "params": {"skill": self.skill}}))

    def load(self, directory):
        self.skill = json.loads((Path(directory) / "scripted.json").read_text())["params"]["skill"]


@dataclass
class SkillLearner:
    step: float = 0.15
    progress: object = None  # set by the trainer (arena.types.Learner)

    def reset(self, seed):
        pass

    def update(self, agent, episodes):
        if self.progress:
            self.progress(f"skill {agent.skill:.2f} -> {min(1.0, agent.skill + self.step):.2f}")
        agent.skill = min(1.0, agent.skill + self.step)
        return {"skill": agent.skill}


def recipe(ctx):
    agent, spec = ctx.agent("guesser", "scripted:noisy")
    learner = SkillLearner() if isinstance(agent, NoisyGuesser) else None
    return Setup({"guesser": SeatSetup(agent, learner, spec)})
