"""A person at the terminal as a player (`--seat verifier=human`); `human:web` is one in a browser (`agents.web`).

Text seats type a reply (end with an empty line); Box seats type a number.
Each move records `seconds` (time to answer) in its extras, so a game can report a
person's accuracy and speed -- the legibility study of Kirchner et al., in a terminal.

What a model wrote reaches the person exactly as written: observations and echoed input
are rich `Text`, never markup (`[conceal]...[/conceal]` is shown, not obeyed).
"""
from __future__ import annotations

import sys
import time
from typing import Any, Callable, Sequence

import numpy as np
from gymnasium import spaces
from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from arena.specs import AgentContext
from arena.textobs import read_text
from arena.types import ArenaError, Move


class HumanAgent:
    """Asks a person for each move; not checkpointable (there is nothing to save)."""

    def __init__(self, space: spaces.Space, seat: str, console: Console | None = None,
                 read_line: Callable[[str], str] = input, text_field: str | None = "prompt"):
        self.space, self.seat, self.text_field = space, seat, text_field
        self.console = console or Console()
        self.read_line = read_line

    def reset(self, seed: int) -> None:
        pass

    def act(self, observations: Sequence[dict[str, str]]) -> list[Move]:
        return [self._ask(obs) for obs in observations]

    def _ask(self, obs: dict[str, str]) -> Move:
        # the seat's reading field; where the game names none among several, every text field
        self.console.print(Panel(Text(read_text(obs, self.text_field)), title=Text(f"you are {self.seat}")))
        t0 = time.monotonic()
        if isinstance(self.space, spaces.Box):
            action: Any = np.array([self._number()], dtype=np.float32)
        else:
            action = self._text()
        return Move(action, {"seconds": time.monotonic() - t0, "human": True})

    def _number(self) -> float:
        while True:
            raw = self._read("score (a number; > 0 = convincing/correct, < 0 = not): ")
            try:
                return float(raw)
            except ValueError:
                self.console.print(Text(f"not a number: {raw!r}", style="red"))

    def _text(self) -> str:
        lines = []
        self.console.print("your reply (end with an empty line):")
        while (line := self._read("")) != "":
            lines.append(line)
        return "\n".join(lines)

    def _read(self, prompt: str) -> str:
        try:
            return self.read_line(prompt)
        except EOFError:
            raise ArenaError("the human agent needs a terminal (stdin closed)") from None


def build(arg: str, ctx: AgentContext):
    """`human` (the terminal), `human:pipe` (stdin, for scripts) or `human:web[?chat=false]` (a browser,
    `agents.web`)."""
    kind, _, options = arg.partition("?")
    if kind == "web":
        from agents.web import build as build_web

        return build_web(ctx, options)
    if arg not in ("", "pipe"):
        raise ArenaError(f"unknown human seat {arg[:60]!r}: use human (the terminal), human:pipe or human:web")
    if not sys.stdin.isatty() and arg != "pipe":
        raise ArenaError("the human agent needs an interactive terminal (or use human:pipe to read stdin)")
    return HumanAgent(ctx.action_space, ctx.seat, text_field=ctx.text_field)
