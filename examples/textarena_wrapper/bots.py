"""A rule bot for TextArena board games that list the legal moves (`Available Moves: '[0]', '[4]'`).

    scripted:listed-move                 the first listed move
    scripted:listed-move?pick=random     a random listed move (hash of seed and observation)
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from arena.options import spec_options
from arena.seeding import stable_hash

MOVES_RE = re.compile(r"Available Moves:([^\n]*)")
MOVE_RE = re.compile(r"\[[^\]\n]*\]")


class ListedMove:
    """Plays one of the moves the game's latest board lists (`[0]` when it lists none)."""

    kind, name, produces = "scripted", "listed-move", "text"

    @dataclass
    class Params:
        pick: str = "first"
        """`first` or `random` (among the listed moves)."""

    def __init__(self, seat: str = "", options: str = ""):
        self.params = spec_options(self.Params, options, f"scripted:{self.name}")
        if self.params.pick not in ("first", "random"):
            raise ValueError(f"pick must be 'first' or 'random', not {self.params.pick!r}")
        self.seed = 0

    def reset(self, seed: int) -> None:
        self.seed = seed

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
                rng = np.random.default_rng(stable_hash(self.seed, obs["prompt"]))
                out.append(moves[int(rng.integers(len(moves)))])
        return out

    def save(self, directory: Path) -> None:
        (Path(directory) / "scripted.json").write_text(json.dumps({"bot": self.name, "params": asdict(self.params)}))

    def load(self, directory: Path) -> None:
        self.params = self.Params(**json.loads((Path(directory) / "scripted.json").read_text())["params"])
