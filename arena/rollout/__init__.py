"""Where a round's episodes are played: the rollout backend seam.

The trainer asks a `Rollouts` to play each round and tells it when the learners have
updated the agents. Backends:

- `LocalRollouts` (the default): this process, through `arena.runner.play`.
- `arena.rollout.ray` (`arena train --workers N [--ray-address ...]`): Ray actors holding
  agent replicas; the trainer's agents stay the source of truth and `updated` pushes them.
- `arena.rollout.distributed` (under torchrun / `accelerate launch`): each process plays its
  share of the round and every process gathers all of it.

Every backend must return the same episodes for the same seed: episode i is reset with
`derive(seed, "episode", i)` and seeded agents get per-move seeds (`arena.runner`), so how
episodes are split over workers or batches does not change a transcript.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

from arena.runner import PlayStats, play
from arena.types import Agent, Episode


@dataclass(frozen=True)
class EnvFactory:
    """A picklable env maker: the game spec and the run's env settings (no lambda, so it can
    travel to another process)."""

    game: Any
    """An `arena.registry.GameSpec`."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)

    def __call__(self):
        return self.game.make(**self.env_kwargs)


class Rollouts(Protocol):
    """A rollout backend."""

    def play(self, seats: dict[str, Agent], n_episodes: int, *, concurrency: int, seed: int, round: int,
             on_episode: Callable[[Episode], None] | None = None) -> tuple[list[Episode], PlayStats]:
        """Play episodes 0..n-1 of a round with `seats`' agents; return them in index order.
        `on_episode` is called in this process as each episode comes back."""
        ...

    def updated(self, seats: dict[str, Agent], trained: Sequence[str]) -> None:
        """The learners of `trained` seats have changed their agents: bring replicas up to date."""
        ...

    def close(self) -> None:
        ...


class LocalRollouts:
    """Play in this process: the agents are the trainer's own, so there is nothing to sync."""

    def __init__(self, env_fn: Callable[[], Any]):
        self.env_fn = env_fn

    def play(self, seats, n_episodes, *, concurrency, seed, round, on_episode=None):
        return play(self.env_fn, seats, n_episodes, concurrency=concurrency, seed=seed,
                    on_episode=on_episode, round=round)

    def updated(self, seats, trained) -> None:
        pass

    def close(self) -> None:
        pass


def make_rollouts(cfg: Any, env_fn: EnvFactory, ranks: Any = None) -> Rollouts:
    """The backend `cfg` (an `arena.selfplay.TrainConfig`) asks for; under several processes
    (`ranks`, an `arena.rollout.distributed.Ranks`; default: joined from `WORLD_SIZE`) the ranks
    split each round."""
    from arena.rollout.distributed import DistributedRollouts, join_ranks, refuse_workers, world_size

    if ranks is None and world_size() > 1:
        ranks = join_ranks(getattr(cfg, "device", None), getattr(cfg, "workers", 0))
    if ranks is not None and ranks.world > 1:
        refuse_workers(getattr(cfg, "workers", 0))
        return DistributedRollouts(env_fn, ranks)
    if getattr(cfg, "workers", 0):
        from arena.rollout.ray import RayRollouts

        return RayRollouts(env_fn, workers=cfg.workers, address=cfg.ray_address)
    return LocalRollouts(env_fn)
