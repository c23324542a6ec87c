"""A person in a browser as a player (`--seat player_1=human:web`).

Each pending move becomes an item on the command's rating page (`arena.web`): the
prompt as plain text, and a reply box (Text seats) or a verdict/score widget (Box
seats: convincing = +1, not convincing = -1, or any number). The moves of one `act`
call are posted together, so several people at the page answer them in parallel. Each
move records `seconds` (from the item being shown to the answer) and the rater's id in
its extras, as the terminal seat records `seconds`.

The chat view (`human:web?chat=false` turns it off): the agent asks the runner for episode
indices (`wants_episodes`) and shows, above each new prompt, this seat's earlier prompts and replies in that episode;
once it is over (`episode_over`, called by `arena play`), its people get a note of their
seat's reward. It shows nothing the seat did not observe.
"""
from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from gymnasium import spaces

from arena.options import spec_options
from arena.specs import AgentContext
from arena.types import ArenaError, Episode, Move


class WebHumanAgent:
    """Posts each move to the page's desk and waits for a person's answer."""

    wants_episodes = True

    def __init__(self, host: Any, space: spaces.Space, seat: str):
        self.host, self.space, self.seat = host, space, seat
        self.kind = "score" if isinstance(space, spaces.Box) else "text"
        self.produces = self.kind
        self.history: dict[int, list[tuple[str, str]]] = {}
        self.raters: dict[int, set[str]] = {}  # episode -> who answered its moves
        self._ids = itertools.count()
        self._tag = secrets.token_hex(3)  # item ids of two web seats in one command never collide

    def reset(self, seed: int) -> None:
        pass

    def act(self, observations: Sequence[dict[str, str]], episodes: Sequence[int] | None = None) -> list[Move]:
        from arena.web import Item

        self.host.start()
        keys = list(episodes) if episodes is not None else [None] * len(observations)
        posted = []
        for obs, ep in zip(observations, keys):
            prompt = str(obs.get("prompt", ""))
            title = f"you are {self.seat}" + ("" if ep is None else f" · episode {ep}")
            item = Item(f"{self.seat}-{self._tag}-{next(self._ids)}", prompt, self.kind, title,
                        "Judge it: convincing (+1) or not (-1), or type a score." if self.kind == "score" else
                        "Write your move.", list(self.history.get(ep, [])) if ep is not None else [])
            posted.append((item, self.host.desk.post(item), ep, prompt))
        moves = []
        for item, event, ep, prompt in posted:
            while not event.wait(0.5):  # in slices, so Ctrl-C reaches the command
                pass
            ans = self.host.desk.answers(item.id)[0]
            if ep is not None:
                reply = ans.value if isinstance(ans.value, str) else f"score {ans.value:+g}"
                self.history.setdefault(ep, []).extend([("game", prompt), (self.seat, reply)])
                self.raters.setdefault(ep, set()).add(ans.rater)
            moves.append(Move(self._action(ans.value), {"seconds": ans.seconds, "human": True, "rater": ans.rater}))
        return moves

    def episode_over(self, episode: Episode) -> None:
        """Tell the people who played this seat in an episode how it ended (a note on their page)."""
        reward = episode.rewards.get(self.seat)
        self.history.pop(episode.index, None)
        for rater in sorted(self.raters.pop(episode.index, set())):
            if reward is not None:
                self.host.desk.note(rater, f"episode {episode.index} is over: {self.seat} scored {reward:+.3g}")

    def _action(self, value: Any) -> Any:
        if self.kind == "score":
            return np.array([float(value)], dtype=np.float32)
        return value


@dataclass
class WebOptions:
    """`human:web?chat=false`: options of a web seat."""

    chat: bool = True
    """Show the seat's earlier prompts and replies of the episode above each move (false: each move
    alone, exactly what a model in the seat would see)."""


def build(ctx: AgentContext, options: str = "") -> WebHumanAgent:
    opts = spec_options(WebOptions, options, "human:web")
    if ctx.web is None:
        raise ArenaError("human:web needs a command that serves the rating page (arena play, arena study); "
                         "use human for the terminal")
    agent = WebHumanAgent(ctx.web, ctx.action_space, ctx.seat)
    agent.wants_episodes = opts.chat
    return agent
