"""The engine from Python: make a game, build agents from specs, play, train, run a tournament.

Everything here is what the command line does, callable from a notebook without internal
imports; each function takes the same settings as its command and returns plain objects
(episodes, round summaries, a tournament result). See `arena/__init__.py` for an example.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

from arena.types import Agent, Episode


def make(game: str, **settings: Any):
    """A game's PettingZoo env (`game`: an id such as `prover-verifier-v1`, or `module:Class`)."""
    from arena import registry

    return registry.spec(game).make(**settings)


def agent(game: str, seat: str, spec: str, *, seed: int = 0, runs_dir: str | Path = "runs",
          device: str | None = None, **settings: Any) -> Agent:
    """The agent an agent spec names (`scripted:helpful`, `hf:<dir>`, `ckpt:<run>/<seat>/round-<k>`)
    for one seat of a game, seeded and ready to `act`."""
    from arena import registry
    from arena.specs import AgentContext, build_agent

    gspec = registry.spec(game)
    built = build_agent(spec, AgentContext.for_seat(gspec, seat, Path(runs_dir), device, **settings))
    built.reset(seed)
    return built


def play(game: str, seats: Mapping[str, str | Agent], episodes: int = 4, *, seed: int = 0,
         concurrency: int = 8, runs_dir: str | Path = "runs", device: str | None = None,
         **settings: Any) -> list[Episode]:
    """Play `episodes` episodes; each seat is an agent spec or an agent (unnamed seats play
    `scripted:random`). Returns the episodes in order, with transcripts and rewards."""
    from arena import registry
    from arena.runner import play as run_episodes
    from arena.types import ArenaError

    gspec = registry.spec(game)
    seat_names = list(gspec.make(**settings).possible_agents)
    unknown = sorted(set(seats) - set(seat_names))
    if unknown:
        raise ArenaError(f"unknown seat(s) {', '.join(unknown)} for {gspec.id}; seats: {', '.join(seat_names)}")
    agents = {}
    for i, seat in enumerate(seat_names):
        given = seats.get(seat, "scripted:random")
        agents[seat] = (agent(game, seat, given, seed=seed + i, runs_dir=runs_dir, device=device, **settings)
                        if isinstance(given, str) else given)
    played, _ = run_episodes(lambda: gspec.make(**settings), agents, episodes, concurrency=concurrency, seed=seed)
    return played


def train(game: str, *, rounds: int = 3, episodes: int = 64, recipe: str = "default",
          seats: Mapping[str, str] | None = None, params: Mapping[str, Any] | None = None,
          run: str = "", seed: int = 0, concurrency: int = 16, runs_dir: str | Path = "runs",
          device: str | None = None, on_event: Callable[[dict[str, Any]], None] | None = None,
          workers: int = 0, ray_address: str = "", env: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Self-play training (`arena train`): a new run under `runs_dir`; returns the round summaries.
    `params` are the recipe's `--set` keys (`arena train <game> --help` lists them); `workers` /
    `ray_address` play the rounds on Ray actors (`--workers`, `--ray-address`); `env` are game
    settings (`--env`: constructor arguments, `text_field`)."""
    from arena.runs.config import TrainConfig
    from arena.selfplay import new_run

    cfg = TrainConfig(game=game, rounds=rounds, episodes=episodes, concurrency=concurrency, seed=seed, run=run,
                      recipe=recipe, seats=dict(seats or {}), params={k: str(v) for k, v in (params or {}).items()},
                      device=device, workers=workers, ray_address=ray_address,
                      env={k: str(v) for k, v in (env or {}).items()})
    trainer = new_run(cfg, Path(runs_dir), on_event=on_event)
    try:
        return trainer.run(trainer.restore())
    finally:
        trainer.close()


def run_tournament(run: str | Path, *, name: str = "", episodes: int = 32, seed: int = 0,
               seats: Mapping[str, list[str]] | None = None, runs_dir: str | Path = "runs",
               device: str | None = None, **settings: Any):
    """A tournament between a run's checkpoints (`arena tournament`): the result holds the ratings
    with CIs and the cross-play matrices; the files are written to `<run>/tournaments/<name>/`."""
    from arena.tournament import TournamentConfig
    from arena.tournament import run_tournament as run_one

    cfg = TournamentConfig(run=str(run), name=name, episodes=episodes, seed=seed, seats=dict(seats or {}),
                           env={k: v for k, v in settings.items()}, device=device)
    return run_one(cfg, Path(runs_dir))
