"""Several processes (torchrun / `accelerate launch`, one per GPU): who plays which episodes, who writes.

`join_ranks(device)` joins the process group the launcher describes (`WORLD_SIZE` > 1; gloo on
CPU, nccl on CUDA with each process on GPU `LOCAL_RANK`) and returns this process's `Ranks`;
one process gets `Ranks()`, under which every helper here calls straight through.

- **Rounds** (`DistributedRollouts`): rank r plays its contiguous share of the round's episode
  indices with the round's seed (`arena.runner.play(..., first_index=...)`), then every rank gathers
  the whole round in index order (the learners need all of it: group advantages, buffers). Episode
  i's transcript depends only on the seed and i (`arena.runner`), so the split changes nothing.
- **Learners**: every rank runs every learner on the same episodes; `agents.learners.fit` shards
  each micro-batch by rank and all-reduces the gradients, so the ranks stay bit-identical.
- **Writes**: only rank 0 writes the run (setup, lock, config.json, arena.db, events.jsonl,
  checkpoints, live view, report, TensorBoard); the others hold a `ReplicaStore`, which writes
  nothing. `Ranks.first` runs a rank-0 step and `Ranks.each` a step on every rank; both then
  agree, so an error on one rank is raised on every rank (one line each) instead of leaving the
  others waiting in the next collective call.
- **A process that dies** (a `kill -9`, a lost node) ends the run on the others with one line each,
  never a hang: their next collective call fails on the closed connection (`collective` turns
  that into `ProcessGone`), and a launcher that stops them with SIGTERM (torchrun does, once one
  process has ended) gets the same (`join_ranks` installs the handler). `arena resume` continues
  the run from its last completed round.
"""
from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from arena.runner import PlayStats, play
from arena.types import ArenaError, Episode

RESUME_HINT = "the run stops here; arena resume continues it from its last completed round"


class ProcessGone(ArenaError):
    """Another process of the launch ended (or the launcher stopped this one): the run cannot go on."""


@contextmanager
def collective(rank: int, world: int) -> Iterator[None]:
    """Around a collective call: a peer that is gone (the call fails on its closed connection) is
    a one-line `ProcessGone` naming this process, not a traceback."""
    try:
        yield
    except RuntimeError as e:  # gloo: "Connection closed by peer"; nccl: DistBackendError (a RuntimeError)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        _stopping()
        raise ProcessGone(f"process {rank} of {world}: another process is gone ({first[:300]}); {RESUME_HINT}") from e


@dataclass(frozen=True)
class Ranks:
    """This process's place among the launcher's processes (one process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    group: Any = None
    """The process group Python objects travel on (a gloo group beside nccl; None: the default group)."""

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes the run."""
        return self.rank == 0

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, by rank."""
        if self.world == 1:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        with collective(self.rank, self.world):
            dist.all_gather_object(out, obj, group=self.group)
        return out

    def first(self, fn: Callable[..., Any], *args: Any, shared: bool = False, **kwargs: Any) -> Any:
        """Run `fn(*args, **kwargs)` on rank 0 only; its result on rank 0 (on every rank when
        `shared`), None elsewhere. An error on rank 0 is raised on every rank."""
        return self._agree(fn if self.main else None, args, kwargs, shared)

    def each(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run `fn(*args, **kwargs)` on every rank; an error on any rank is raised on every rank."""
        return self._agree(fn, args, kwargs, False)

    def _agree(self, fn: Callable[..., Any] | None, args: tuple, kwargs: dict, shared: bool) -> Any:
        if self.world == 1:
            return fn(*args, **kwargs) if fn is not None else None
        out, error, status = None, None, None
        try:
            out = fn(*args, **kwargs) if fn is not None else None
        except ProcessGone:
            raise  # a peer is gone: there is no one to tell
        except Exception as e:  # noqa: BLE001 (raised again below, after the other ranks have heard)
            error = e
            status = str(e) if isinstance(e, ArenaError) else f"{type(e).__name__}: {e}"
        statuses = self.gather((status, out if shared and self.main else None))
        if error is not None:
            raise error
        failed = [(r, s) for r, (s, _) in enumerate(statuses) if s is not None]
        if failed:
            r, message = failed[0]
            raise ArenaError(message if r == 0 else f"process {r} of {self.world}: {message}")
        return statuses[0][1] if shared else out


def world_size() -> int:
    """The launcher's process count (`WORLD_SIZE`; 1 when not under torchrun / accelerate launch)."""
    world = os.environ.get("WORLD_SIZE", "1").strip()
    return int(world) if world.isdigit() and int(world) > 0 else 1


def join_ranks(device: str | None = None, workers: int = 0) -> Ranks:
    """Join the launcher's process group (once per process) and return this process's `Ranks`.

    On CUDA (unless `device` is cpu) each process takes GPU `LOCAL_RANK` and the group is nccl,
    with a gloo group beside it for Python objects; on CPU the group is gloo. A group someone
    already made (accelerate's state) is used as it is. Ray rollout `workers` are refused here."""
    if world_size() == 1:
        return Ranks()
    refuse_workers(workers)
    import torch
    import torch.distributed as dist

    if not dist.is_available():
        raise ArenaError(f"WORLD_SIZE={world_size()} but this torch has no torch.distributed")
    if not dist.is_initialized():
        cuda = torch.cuda.is_available() and not str(device or "").startswith("cpu")
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if cuda else "gloo")
    group = None if dist.get_backend() == "gloo" else dist.new_group(backend="gloo")
    ranks = Ranks(dist.get_rank(), dist.get_world_size(), group)
    stop_on_sigterm(ranks)
    return ranks


def stop_on_sigterm(ranks: Ranks) -> None:
    """SIGTERM (what torchrun sends the others once one process has ended) raises `ProcessGone`, so
    this process closes its run and says so in one line instead of vanishing without a word."""
    def stop(signum: int, frame: Any) -> None:
        _stopping()
        raise ProcessGone(f"process {ranks.rank} of {ranks.world}: stopped by the launcher (SIGTERM: another "
                          f"process ended, or the launch was stopped); {RESUME_HINT}")

    stop.arena_stop = True  # type: ignore[attr-defined]
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)


def _stopping() -> None:
    """This process is stopping with its one line: a later SIGTERM (the launcher stopping the rest,
    while this one closes its run) is ignored rather than raised again in the middle of the cleanup.
    (The launcher still kills a process that does not end within its own timeout.)"""
    if threading.current_thread() is threading.main_thread() and \
            getattr(signal.getsignal(signal.SIGTERM), "arena_stop", False):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def refuse_workers(workers: int) -> None:
    """Ray rollout workers and several processes do not combine (one line)."""
    if workers:
        raise ArenaError("--workers (Ray rollouts) and several processes (torchrun / accelerate launch) "
                         "do not combine: use one or the other")


def share_of(n: int, rank: int, world: int) -> tuple[int, int]:
    """Rank `rank`'s contiguous episode indices [lo, hi) of n (shares differ by at most one)."""
    return n * rank // world, n * (rank + 1) // world


class DistributedRollouts:
    """Each rank plays its share of a round; every rank gets the whole round back, in index order.
    `on_episode` (the store, the live view) runs on rank 0 only: for its own episodes as they
    finish, then for the other ranks' once gathered."""

    def __init__(self, env_fn: Callable[[], Any], ranks: Ranks):
        self.env_fn, self.ranks = env_fn, ranks

    def play(self, seats, n_episodes, *, concurrency, seed, round, on_episode=None):
        ranks = self.ranks
        lo, hi = share_of(n_episodes, ranks.rank, ranks.world)
        report = on_episode if ranks.main else None
        mine, stats = ranks.each(lambda: play(self.env_fn, seats, hi - lo, concurrency=concurrency, seed=seed,
                                              on_episode=report, first_index=lo, round=round))
        shares = ranks.gather((mine, stats))
        episodes = sorted((ep for eps, _ in shares for ep in eps), key=lambda e: e.index)
        if report is not None:
            for ep in episodes:
                if not lo <= ep.index < hi:
                    report(ep)
        return episodes, merge_stats([s for _, s in shares])

    def updated(self, seats, trained) -> None:
        pass  # every rank trained its own agents the same way

    def close(self) -> None:
        pass  # the process group belongs to the process (the launcher tears it down)


def merge_stats(parts: list[PlayStats]) -> PlayStats:
    """One round's stats from the ranks' own: wall time of the slowest rank, agent time per rank
    (the mean, so `overhead_fraction` is a rank's share spent outside `act`), calls, batches,
    tokens and episodes summed."""
    out = PlayStats(wall_s=max(p.wall_s for p in parts))
    for p in parts:
        out.completion_tokens += p.completion_tokens
        out.episodes += p.episodes
        for seat in p.act_calls:
            out.act_s[seat] += p.act_s[seat] / len(parts)
            out.act_calls[seat] += p.act_calls[seat]
            out.act_batch[seat] += p.act_batch[seat]
    return out


class ReplicaStore:
    """What a rank other than 0 holds instead of the run's store: it reads as an empty run and
    writes nothing (rank 0 shares what the others must know, e.g. the rounds done on resume)."""

    dir = None

    def set(self, key: str, value: Any) -> None:
        pass

    def get(self, key: str, default: Any = None) -> Any:
        return default

    def completed_rounds(self) -> list[int]:
        return []

    def round_summaries(self) -> list[dict[str, Any]]:
        return []

    def discard_incomplete(self) -> None:
        pass

    def start_round(self, k: int) -> None:
        pass

    def add_episode(self, ep: Episode) -> None:
        pass

    def complete_round(self, k: int, summary: dict[str, Any], checkpoints: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass
