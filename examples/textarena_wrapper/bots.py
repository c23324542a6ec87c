"""A rule bot for TextArena board games that list the legal moves (`Available Moves: '[0]', '[4]'`).

    scripted:listed-move                 the first listed move
    scripted:listed-move?pick=random     a random listed move (hash of seed and observation)
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from arena.bots import SavedBot

MOVES_RE = re.compile(r"Available Moves:([^\n]*)")
MOVE_RE = re.compile(r"\[[^\]\n]*\]")


class ListedMove(SavedBot):
    """Plays one of the moves the game's latest board lists (`[0]` when it lists none)."""

    name, produces = "listed-move", "text"

    @dataclass
    class Params:
        pick: str = "first"
        """`first` or `random` (among the listed moves)."""

    def __init__(self, seat: str = "", options: str = ""):
        super().__init__(seat, options)
        if self.params.pick not in ("first", "random"):
            raise ValueError(f"pick must be 'first' or 'random', not {self.params.pick!r}")

    def act(self, observations: Sequence[dict[str, str]]) -> list[str]:
        out = []
        for obs in observations:
            listed = MOVES_RE.findall(obs["prompt"])
            moves = MOVE_RE.findall(listed[-1]) if listed else []
            if not moves:
                out.append("[0]")
            elif self.params.pick == "first":
                out.append(moves[0])
            else:
                out.append(moves[int(self.rng(obs).integers(len(moves)))])
        return out
