"""A study's checkpoints and items: which checkpoints, and the game hook's helpful solutions of each.

A checkpoint is named by a label: `<seat>/round-<k>` for this run's, `<run>:<seat>/round-<k>`
for another run's (or the `LABEL=` given with it). Items are stored once and never rewritten:
a study started again, or extended with more checkpoints or items, samples only what is missing.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Mapping

from arena.checkpoints import parse_checkpoint_path, read_checkpoint_meta, resolve_checkpoint, round_name
from arena.gameinfo import GameInfo
from arena.registry import GameSpec, load_attr
from arena.seeding import derive
from arena.spaces import MAX_TEXT
from arena.store import StudyTables, read_checkpoints
from arena.store.studies import StudyItem
from arena.types import ArenaError

OWN_RE = re.compile(r"^([A-Za-z0-9_.-]+)/round-(\d+)$")
LABEL_RE = re.compile(r"^[A-Za-z0-9_.:/+-]{1,100}$")


def study_seat(game_cls: type, given: str) -> str:
    """The studied seat: `given`, else the one seat the game's study hook names."""
    hooks = GameInfo.of(game_cls).study
    if given:
        return given
    if len(hooks) == 1:
        return next(iter(hooks))
    raise ArenaError("the game names no seat to study (GameInfo.study): give --seat SEAT and --items-fn MODULE:FUNC"
                     if not hooks else f"the game studies several seats ({', '.join(hooks)}): give --seat")


def items_hook(game_cls: type, seat: str, given: str) -> Callable[..., list[dict[str, Any]]]:
    """The items hook: `--items-fn` (typed now), else the game's for `seat` (a run's store never names code)."""
    path = given or GameInfo.of(game_cls).study.get(seat)
    if not path:
        raise ArenaError(f"the game has no study hook for seat {seat!r}: name one with --items-fn MODULE:FUNC")
    return load_attr(path)


def resolve_checkpoints(run_dir: Path, seat: str, given: list[str], runs_dir: Path) -> dict[str, Path]:
    """label -> checkpoint directory of the checkpoints a study names (default: every round of `seat`)."""
    own = read_checkpoints(run_dir).get(seat, {})
    if not given:
        if not own:
            raise ArenaError(f"run {run_dir.name} has no checkpoints of seat {seat!r} to study")
        return {f"{seat}/{round_name(k)}": path for k, path in sorted(own.items())}
    out: dict[str, Path] = {}
    for raw in given:
        label, _, spec = raw.rpartition("=")
        m = OWN_RE.match(spec)
        if m:
            rounds = read_checkpoints(run_dir).get(m.group(1), {})
            if int(m.group(2)) not in rounds:
                have = ", ".join(f"{m.group(1)}/{round_name(k)}" for k in sorted(rounds)) or "none"
                raise ArenaError(f"run {run_dir.name} has no checkpoint {spec} (it has: {have})")
            path = rounds[int(m.group(2))]
            label = label or spec
        else:
            path = resolve_checkpoint(spec, runs_dir)
            ref = parse_checkpoint_path(path)
            label = label or (f"{ref.run_dir.name}:{ref.label}" if ref else path.name)
        if not LABEL_RE.match(label):
            raise ArenaError(f"bad checkpoint label {label[:60]!r}: up to 100 letters, digits and . _ : / + -")
        meta_seat = read_checkpoint_meta(path).get("seat")
        if meta_seat != seat:
            raise ArenaError(f"checkpoint {label} is of seat {meta_seat!r}, but the study is of seat {seat!r}")
        if label in out and out[label] != path:
            raise ArenaError(f"two checkpoints are labelled {label}: give one of them LABEL=")
        out[label] = path
    return out


def item_id(seed: int, study: str, label: str, problem_id: str) -> str:
    """An opaque, stable id: it tells a rater (and the page) nothing of the checkpoint."""
    return f"{derive(seed, 'study-item', study, label, problem_id):016x}"


def check_items(raw: Any, label: str, n: int) -> list[dict[str, Any]]:
    """The hook's items, checked: a list of at most `n` dicts with problem_id, prompt_text, correct."""
    if not isinstance(raw, list):
        raise ArenaError(f"the study hook returned a {type(raw).__name__} for {label}, not a list of items")
    out, seen = [], set()
    for i, it in enumerate(raw[:n]):
        ok = (isinstance(it, Mapping) and isinstance(it.get("problem_id"), str)
              and isinstance(it.get("prompt_text"), str) and isinstance(it.get("correct"), bool))
        if not ok:
            raise ArenaError(f"study item {i} for {label} is not {{problem_id: str, prompt_text: str, correct: bool}}")
        if it["problem_id"] in seen:
            raise ArenaError(f"study items for {label} repeat problem_id {it['problem_id'][:60]!r}")
        seen.add(it["problem_id"])
        out.append({"problem_id": it["problem_id"][:200], "prompt_text": it["prompt_text"][:MAX_TEXT],
                    "correct": it["correct"]})
    return out


def stored_problems(tables: StudyTables, name: str) -> dict[str, set[str]]:
    """checkpoint label -> the problem ids it already has items for."""
    have: dict[str, set[str]] = {}
    for it in tables.items(name):
        have.setdefault(it.checkpoint, set()).add(it.problem_id)
    return have


def fill_items(tables: StudyTables, name: str, checkpoints: Mapping[str, Path], n: int, seed: int,
               build: Callable[[Path], Any], hook: Callable[..., list] | None,
               settings: Mapping[str, Any], say: Callable[[str], None]) -> int:
    """Sample the items each checkpoint still lacks (up to `n` each) with the items `hook`; returns how
    many were added. `build(path)` makes the checkpoint's agent."""
    have = stored_problems(tables, name)
    added = 0
    todo = [label for label in checkpoints if len(have.get(label, ())) < n]
    if todo and hook is None:
        raise ArenaError("no study hook to sample items with")
    for i, label in enumerate(todo, 1):
        say(f"sampling {n} items of {label} ({i}/{len(todo)})")
        raw = hook(build(checkpoints[label]), n, seed=seed, settings=dict(settings))
        new = [StudyItem(item_id(seed, name, label, it["problem_id"]), label, it["problem_id"], it["prompt_text"],
                         it["correct"]) for it in check_items(raw, label, n)
               if it["problem_id"] not in have.get(label, set())]
        new = new[:n - len(have.get(label, ()))]
        tables.add_items(name, new)
        added += len(new)
    return added


def checkpoint_builder(gspec: GameSpec, seat: str, runs_dir: Path, device: str | None,
                       env_kwargs: Mapping[str, Any], seed: int = 0) -> Callable[[Path], Any]:
    """`build(path)`: a checkpoint's agent for the studied seat, as `ckpt:` specs build them, its
    sampler seeded by the study's seed."""
    from arena.specs import AgentContext, build_agent

    def build(path: Path) -> Any:
        ctx = AgentContext.for_seat(gspec, seat, runs_dir, device, **dict(env_kwargs))
        agent = build_agent(f"ckpt:{path}", ctx)
        agent.reset(seed)
        return agent

    return build
