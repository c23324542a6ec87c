"""alignment-arena's engine: alignment methods played as multi-agent games.

The same things the `arena` command does, from Python (`arena.api`):

>>> import arena
>>> episodes = arena.play("prover-verifier-v1", {"prover": "scripted:helpful",
...                                               "verifier": "scripted:spot-check"}, episodes=4)
>>> len(episodes), sorted(episodes[0].rewards)
(4, ['prover', 'verifier'])
>>> episodes[0].info["prover"]["correct"]
True
>>> bot = arena.agent("prover-verifier-v1", "prover", "scripted:sneaky")
>>> "Answer:" in bot.act([episodes[0].transcript[0].observation])[0]
True

`arena.train(game, rounds=..., runs_dir=...)` runs self-play training and returns the
round summaries; `arena.run_tournament(run_dir)` rates a run's checkpoints. `arena/` knows no
game and no model: games come from the `arena.games` entry points, agents from specs.
"""
from arena.api import agent, make, play, run_tournament, train
from arena.gameinfo import GameInfo
from arena.types import Agent, ArenaError, Episode, Learner, Move

__all__ = ["Agent", "ArenaError", "Episode", "GameInfo", "Learner", "Move",
           "agent", "make", "play", "run_tournament", "train"]
