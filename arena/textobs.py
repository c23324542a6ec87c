"""Where a player reads from: the text of a seat's observations.

A game is playable when every seat observes some text: a bare `Text` space, or a `Dict` with at
least one `Text` field (its other fields may be anything; transcripts record them as JSON
values). Scripted and human seats play any such game. An LLM seat reads one field, its
*reading field*:

- the field the game names: `GameInfo(text_field=...)` (one name, or seat -> name), or, for a
  game one cannot edit, the game setting `text_field` (`--env text_field=NAME`, or a registered
  spec's kwargs), which the engine takes and never passes to the game's constructor;
- else `prompt`, when it is a `Text` field;
- else the only `Text` field of the `Dict`;
- else, for a bare `Text` observation, the observation itself (recorded under `text`).

A `Dict` with several `Text` fields, none of them named, has no reading field: an LLM seat there
is refused in one line that names the fields and how to choose (`AgentContext.llm_text_field`).
"""
from __future__ import annotations

from typing import Any, Mapping

from gymnasium import spaces

from arena.types import ArenaError

SETTING = "text_field"
"""The game setting that names the reading field (taken by the engine, never passed to the game)."""
BARE = "text"
"""The key a bare `Text` observation is recorded (and read) under."""
PROMPT = "prompt"
"""The field an LLM reads when the game names none and there is one."""


def text_fields(space: Any) -> tuple[str, ...]:
    """The text an observation space holds: its `Text` fields (a `Dict`), `(BARE,)` (a bare `Text`),
    or `()` (no text at all)."""
    if isinstance(space, spaces.Text):
        return (BARE,)
    if isinstance(space, spaces.Dict):
        return tuple(k for k, v in space.spaces.items() if isinstance(v, spaces.Text))
    return ()


def reading_field(space: Any, named: str | None = None) -> str | None:
    """The field an LLM reads in observations of `space` (see the module docstring); None where
    there is no text or several `Text` fields and none named. A `named` field that is not one of
    the space's `Text` fields is an error (`check_named`)."""
    fields = text_fields(space)
    if isinstance(space, spaces.Text):
        return BARE
    if named:
        return named if named in fields else None
    if PROMPT in fields:
        return PROMPT
    return fields[0] if len(fields) == 1 else None


def named_field(game_cls: type | None, seat: str, env_kwargs: Mapping[str, Any]) -> str | None:
    """The reading field named for `seat`: the `text_field` setting, else the game's
    `GameInfo.text_field` (a name, or seat -> name); None when neither names one."""
    from arena.gameinfo import GameInfo

    setting = env_kwargs.get(SETTING)
    if setting not in (None, ""):
        return str(setting)
    declared = GameInfo.of(game_cls).text_field if game_cls is not None else None
    if isinstance(declared, Mapping):
        declared = declared.get(seat)
    return str(declared) if declared else None


def check_named(space: Any, named: str | None, seat: str) -> str | None:
    """What is wrong with `named` as `seat`'s reading field ("needs ..."), or None where nothing is."""
    if not named or isinstance(space, spaces.Text):
        return None
    fields = text_fields(space)
    if named in fields:
        return None
    return (f"needs {SETTING} {named!r} to be a Text field of every seat's observation ({seat}'s Text fields: "
            f"{', '.join(fields) or 'none'})")


def ambiguity_error(seat: str, game_id: str, fields: tuple[str, ...]) -> ArenaError:
    """The one line an LLM seat gets where several `Text` fields are observed and none is named."""
    return ArenaError(f"seat {seat!r} of {game_id} observes several text fields ({', '.join(fields)}) and an LLM "
                      f"reads one: name it in the game (GameInfo(text_field={fields[0]!r})) or on the command line "
                      f"(--env {SETTING}={fields[0]})")


def read_text(observation: Any, field: str | None) -> str:
    """The text at `field` of an observation (a bare text observation is its own text); where
    `field` is None, every text value, `name: text` on its own lines (what a person or a hash sees)."""
    if isinstance(observation, str):
        return observation
    if field is not None:
        value = observation.get(field, "")
        return value if isinstance(value, str) else str(value)
    texts = [(k, v) for k, v in observation.items() if isinstance(v, str)]
    return "\n".join(f"{k}: {v}" for k, v in texts)


def record(observation: Any) -> dict[str, Any]:
    """An observation as a transcript keeps it: a dict (a bare text under `BARE`)."""
    if isinstance(observation, str):
        return {BARE: observation}
    return dict(observation)


def shown_text(record_: Mapping[str, Any]) -> str:
    """What a transcript shows of a recorded observation: its `prompt`, else its only text, else all
    of its texts (`name: text`)."""
    if isinstance(record_.get(PROMPT), str):
        return record_[PROMPT]
    texts = [k for k, v in record_.items() if isinstance(v, str)]
    return record_[texts[0]] if len(texts) == 1 else read_text(dict(record_), None)
