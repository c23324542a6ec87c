"""Agent spec strings: `kind:arg`, resolved through the `arena.agents` entry points.

    scripted:random          a generic or game-provided scripted bot
    hf:<dir or hub id>       a Hugging Face model (agents package)
    ckpt:<run>/<seat>/round-<k>   any checkpoint this engine wrote
    human                    a person at the terminal
    human:web                a person in a browser (the page the command serves)

`arena` does not import `agents`: it finds each kind's factory by name. A factory
is `build(arg: str, ctx: AgentContext) -> Agent`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable

from arena.checkpoints import read_checkpoint_meta, resolve_checkpoint
from arena.types import ArenaError

AGENT_GROUP = "arena.agents"
SPEC_RE = re.compile(r"^([a-z][a-z0-9_-]*)(?::(.*))?$")


@dataclass(frozen=True)
class AgentContext:
    """What a factory may need to know about the seat it fills."""

    game_id: str
    game_cls: type
    seat: str
    runs_dir: Path
    device: str | None = None
    action_space: Any = None
    """The seat's gymnasium action space (`Text` seats generate, `Box` seats score)."""
    web: Any = None
    """The `arena.web.WebHost` a command serves to people (`human:web` seats post their moves there);
    None where the command serves no page."""
    text_field: str | None = None
    """The observation field an LLM in this seat reads (`arena.textobs.reading_field`); None where the
    seat observes several Text fields and none is named (scripted and human seats play it anyway)."""
    text_fields: tuple[str, ...] = ()
    """Every Text field the seat observes (`("text",)` for a bare Text observation)."""

    @classmethod
    def for_seat(cls, game_spec: Any, seat: str, runs_dir: Path, device: str | None = None,
                 **env_kwargs: Any) -> "AgentContext":
        from arena.textobs import named_field, reading_field, text_fields

        env = game_spec.make(**env_kwargs)
        if seat not in env.possible_agents:
            raise ArenaError(f"unknown seat {seat!r} for {game_spec.id}; seats: {', '.join(env.possible_agents)}")
        game_cls = game_spec.load()
        space = env.observation_space(seat)
        settings = {**(getattr(game_spec, "kwargs", None) or {}), **env_kwargs}  # a registered spec's, then these
        field = reading_field(space, named_field(game_cls, seat, settings))
        return cls(game_spec.id, game_cls, seat, Path(runs_dir), device, env.action_space(seat),
                   text_field=field, text_fields=text_fields(space))

    def llm_text_field(self) -> str:
        """The field an LLM agent reads in this seat; a one-line error where the seat observes several
        Text fields and none is named (an agent kind that reads text calls this when it is built)."""
        from arena.textobs import PROMPT, ambiguity_error

        if self.text_field is not None:
            return self.text_field
        if len(self.text_fields) > 1:
            raise ambiguity_error(self.seat, self.game_id, self.text_fields)
        return PROMPT  # a context made by hand, without the seat's spaces


def parse_spec(spec: str) -> tuple[str, str]:
    m = SPEC_RE.match(spec.strip())
    if not m:
        raise ArenaError(f"malformed agent spec {spec!r}: expected kind:arg, e.g. scripted:random or hf:<dir>")
    return m.group(1), m.group(2) or ""


def agent_factories() -> dict[str, Callable[..., Any]]:
    return {ep.name: ep for ep in entry_points(group=AGENT_GROUP)}


def build_agent(spec: str, ctx: AgentContext):
    """Build the agent a spec string names, for the seat in `ctx`; refuse one that writes the
    wrong kind of move for the seat (a generator in a scoring seat, a scorer in a text seat)."""
    kind, arg = parse_spec(spec)
    if kind == "ckpt":
        agent = load_checkpoint_agent(resolve_checkpoint(arg, ctx.runs_dir), ctx)
    else:
        factories = agent_factories()
        if kind not in factories:
            known = ", ".join(sorted([*factories, "ckpt"]))
            raise ArenaError(f"unknown agent kind {kind!r} in {spec!r}; known: {known}")
        agent = factories[kind].load()(arg, ctx)
    check_seat_fit(agent, ctx, spec)
    return agent


def seat_takes(space: Any) -> str | None:
    """What a seat's action space takes: "text" (a `Text` space), "score" (a `Box`), else None."""
    from gymnasium import spaces

    return "text" if isinstance(space, spaces.Text) else "score" if isinstance(space, spaces.Box) else None


def check_seat_fit(agent: Any, ctx: AgentContext, spec: str) -> None:
    """An agent that declares what it `produces` ("text" or "score") must fit its seat."""
    produces, takes = getattr(agent, "produces", None), seat_takes(ctx.action_space)
    if produces and takes and produces != takes:
        raise ArenaError(f"{spec[:200]} writes {produces}s, but seat {ctx.seat!r} of {ctx.game_id} takes a {takes}")


def load_checkpoint_agent(path: Path, ctx: AgentContext):
    """Rebuild an agent from a checkpoint dir via the factory named in its metadata."""
    meta = read_checkpoint_meta(path)
    if meta.get("game") and meta["game"] != ctx.game_id:
        raise ArenaError(f"checkpoint {path} is for game {meta['game']!r}, not {ctx.game_id!r}")
    produces, takes = meta.get("produces"), seat_takes(ctx.action_space)
    if produces in ("text", "score") and takes and produces != takes:  # e.g. a prover's checkpoint as the verifier
        raise ArenaError(f"checkpoint {path} is of seat {meta.get('seat')!r}, which writes {produces}s, but seat "
                         f"{ctx.seat!r} of {ctx.game_id} takes a {takes}")
    kind = meta.get("kind")
    factories = agent_factories()
    if not isinstance(kind, str) or kind not in factories:
        raise ArenaError(f"checkpoint {path} names unknown agent kind {kind!r}")
    return factories[kind].load()(str(path), ctx)
