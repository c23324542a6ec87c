"""The run directory and its SQLite store: all of the engine's SQL is in this package (a run's
rounds, episodes and checkpoints in `arena.store.db`, tournaments in `arena.store.tournaments`,
legibility studies in `arena.store.studies`); here, what else is in a run directory, and every
name the rest of the engine imports from the store.

    runs/<run>/config.json          the resolved config
    runs/<run>/arena.db             SQLite (WAL): rounds, episodes, checkpoints, ...
    runs/<run>/events.jsonl         one JSON event per line (what `arena watch` tails)
    runs/<run>/checkpoints/<seat>/round-<k>/
    runs/.setup-<run>/              a run being set up (renamed to runs/<run> once whole)
"""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

from arena.store.db import RunStore, StoreError, read_checkpoints, read_round_summaries, read_store_marks
from arena.store.studies import StudyTables
from arena.store.tournaments import TournamentTables, read_matches
from arena.types import ArenaError

__all__ = ["CONFIG_FIELDS", "MAX_RUN_NAME", "SETUP_PREFIX", "RunStore", "StoreError", "StudyTables",
           "TournamentTables", "append_event", "check_run_config", "check_run_name", "find_run", "read_checkpoints",
           "read_events", "read_matches", "read_round_summaries", "read_run_config", "read_store_marks", "runs_dir",
           "write_json_atomic"]

RUN_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def runs_dir(flag: str | os.PathLike | None = None) -> Path:
    """`--runs-dir`, else `$ARENA_RUNS_DIR`, else `./runs` (which must be a directory, if it exists)."""
    path = Path(flag or os.environ.get("ARENA_RUNS_DIR") or "runs")
    if path.exists() and not path.is_dir():
        raise ArenaError(f"runs dir {path} is a file, not a directory")
    return path


SETUP_PREFIX = ".setup-"
"""`<runs>/.setup-<name>/`: where a new run is built before one rename gives it its name
(`arena.runs.new.claim_new_run`); no command reads it as a run."""

MAX_RUN_NAME = 100
"""Longest run name: a run's directory and its setup directory stay well under a file name's limit."""


def check_run_name(name: str) -> str:
    if len(name) > MAX_RUN_NAME:
        raise ArenaError(f"invalid run name {name[:40]!r}...: at most {MAX_RUN_NAME} characters, not {len(name)}")
    if ".." in name or "/" in name or "\\" in name or not RUN_NAME_RE.match(name):
        raise ArenaError(f"invalid run name {name!r}: use letters, digits, '.', '_' and '-' (no '/' or '..')")
    return name


def find_run(name_or_path: str, base: Path) -> Path:
    """An existing run by name (under `base`) or by path."""
    p = Path(name_or_path)
    if (p / "arena.db").is_file():
        return p
    if "/" in name_or_path or os.sep in name_or_path:
        raise ArenaError(f"no run at {name_or_path} (no arena.db there)")
    check_run_name(name_or_path)
    if not (base / name_or_path / "arena.db").is_file():
        interrupted = (base / f"{SETUP_PREFIX}{name_or_path}").is_dir()
        raise ArenaError(f"no run named {name_or_path!r} in {base}/"
                         + (" (its setup was interrupted before it finished: `arena train ... --run "
                            f"{name_or_path}` starts it again)" if interrupted else ""))
    return base / name_or_path


CONFIG_FIELDS: dict[str, str] = {
    "game": "text", "game_id": "text", "run": "text", "recipe": "text", "run_id": "text",
    "rounds": "count", "episodes": "count", "concurrency": "count", "seed": "whole",
    "device": "text?", "seats": "names", "params": "names", "seat_specs": "names", "env": "names",
    "env_kwargs": "object", "recipe_params": "object?", "versions": "object", "ray_address": "text",
    "opponents": "names", "pool": "texts", "league_episodes": "count", "pfsp_power": "number",
}
"""What each field of a run's `config.json` must hold (`?`: or null); other keys are ignored."""

_CHECKS = {
    "text": ("a string", lambda v: isinstance(v, str)),
    "count": ("a whole number >= 1", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1),
    "whole": ("a whole number", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "names": ("an object of strings", lambda v: isinstance(v, dict)
              and all(isinstance(x, str) for kv in v.items() for x in kv)),
    "object": ("an object", lambda v: isinstance(v, dict)),
    "texts": ("a list of strings", lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v)),
    "number": ("a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)),
}


def read_run_config(run_dir: Path) -> dict[str, Any]:
    """A run's `config.json` (`{}` when it has none), every known field type-checked: the file is
    data someone may hand you, and each reader (play, tournament, runs, resume) gets it checked."""
    path = Path(run_dir) / "config.json"
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise ArenaError(f"cannot read {path}: {e}") from None
    return check_run_config(raw, path)


def check_run_config(raw: Any, path: Path | str = "config.json") -> dict[str, Any]:
    """`raw` if it is a JSON object whose known fields have their types (`CONFIG_FIELDS`)."""
    if not isinstance(raw, dict):
        raise ArenaError(f"{path} is not a JSON object (it is a {type(raw).__name__})")
    for key, want in CONFIG_FIELDS.items():
        nullable = want.endswith("?")
        if key not in raw or (nullable and raw[key] is None):
            continue
        what, ok = _CHECKS[want.rstrip("?")]
        if not ok(raw[key]):
            raise ArenaError(f"{path}: {key} must be {what}{' or null' if nullable else ''}, "
                             f"not {json.dumps(raw[key])[:80]}")
    return raw


def append_event(run_dir: Path, event: dict[str, Any]) -> None:
    """Append one event line; a line is written whole with a single write."""
    line = json.dumps({"time": time.time(), **event}, default=str) + "\n"
    with open(Path(run_dir) / "events.jsonl", "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()


def read_events(run_dir: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Events appended since byte `offset`, and the new offset (partial lines wait)."""
    path = Path(run_dir) / "events.jsonl"
    if not path.is_file():
        return [], offset
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read()
    end = data.rfind(b"\n") + 1
    events = []
    for line in data[:end].splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue  # a line cut short by a crash (or not ours): the store is the record, not this log
        if isinstance(event, dict):
            events.append(event)
    return events, offset + end


def write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    os.replace(tmp, path)
