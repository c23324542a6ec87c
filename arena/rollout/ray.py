"""The Ray rollout backend: a round's episodes, and generation learners do, spread over Ray actors.

`RayRollouts(env_fn, workers, address)` starts (or, with `address`, joins) a Ray cluster and
`workers` actors (`Replica`, one CPU and one torch thread each). The trainer's agents stay the
source of truth; the actors hold replicas:

- the first `play` ships every seat's agent once (one `ray.put`, every actor loads it);
- before every play, and in `updated` after the learners, each seat goes again as a *shell*: the
  agent with its torch modules and tokenizer left out (so a bot's parameters and re-seeded RNG,
  or a generator's sampling settings, travel for a few bytes), plus the `state_dict` of every
  module whose weights changed since the last push, put once and loaded by every actor. A change
  is detected from the tensors' in-place version counters, which optimizer steps and
  `load_state_dict` bump, so an unchanged model costs nothing.

`play` cuts the round into chunks of at most `concurrency` episodes and hands them out as actors
free up (`ray.wait`); each actor plays its chunk with `arena.runner.play(..., seed=the round's
seed, first_index=chunk start)`. Episode i is reset with `derive(seed, "episode", i)` and seeded
agents get per-move seeds, so the transcripts do not depend on the split. Episodes reach
`on_episode` (the store, the live view) chunk by chunk as chunks finish.

Generation outside the runner (a learner's RL rollouts, ReST's Grow step) goes through the
seat agent's `act`. An agent that declares a `pool` attribute (None by default; see
`agents.hf.generator.GeneratorAgent`) gets a `SeatPool` attached while this backend lives: its
`act` draws the seeds first, then calls `pool.act(agent, observations, seeds)`, which pushes the
agent (weights only if changed) and splits the rows over the actors. Seeds are per row, so
the result does not depend on the split either.

A lost worker costs its chunk, not the run: when an actor dies (a `kill -9`, a pre-empted node),
its chunks in flight come back as errors; a fresh actor takes its place, is sent the trainer's
agents as they are now (the replicas' state), and plays those chunks again. Episodes are seeded
per index and per move, so a replayed chunk gives the episodes it would have given, and a round
stores the same episodes as an undisturbed one. The same holds for a learner's generation rows
and for the pushes between rounds. A chunk that loses its worker more than `chunk_retries` times
(workers that keep dying) or a replacement that cannot start within `replace_timeout_s` stops
the run with one line; `arena resume` continues it from its last completed round.
"""
from __future__ import annotations

import itertools
import math
import os
import time
from collections import Counter, deque
from typing import Any, Callable, Hashable, Iterator, Sequence

from arena.rollout.replica import Replica, pack_state, portable, shell, weights_version
from arena.runner import PlayStats
from arena.types import Agent, ArenaError, Episode


def import_ray():
    """Ray, or the one-line error naming the extra."""
    try:
        import ray
    except ImportError:
        raise ArenaError("--workers needs Ray: pip install 'alignment-arena[ray]'") from None
    return ray


def _merge(into: PlayStats, part: dict[str, Any]) -> None:
    """Add a chunk's stats. Agent seconds add up over actors working at once, so with several
    workers `agent_s` can exceed the driver's wall time (`overhead_fraction` is then 0)."""
    for name in ("act_s", "act_calls", "act_batch"):
        for seat, v in part[name].items():
            getattr(into, name)[seat] += v
    into.completion_tokens += part["completion_tokens"]
    into.episodes += part["episodes"]


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


# -- the backend -------------------------------------------------------------------

class RayRollouts:
    """`Rollouts` on `workers` Ray actors (see the module docstring)."""

    in_flight = 2
    """Chunks queued per actor, so an actor never waits for the driver between chunks."""
    chunk_retries = 2
    """Times one chunk (or part of a learner's generation) is played again after its worker died; a
    chunk that loses its worker once more stops the run (workers that keep dying)."""
    replace_timeout_s = 120.0
    """Seconds a replacement worker may take to start and load the agents (a cluster with no free
    CPU never places one) before the run stops."""

    def __init__(self, env_fn: Callable[[], Any], workers: int, address: str = "", *, threads: int = 1):
        ray = self.ray = import_ray()
        if workers < 1:
            raise ArenaError(f"--workers must be at least 1 for Ray rollouts, not {workers}")
        t0 = time.perf_counter()
        self.started, self.actors, self._pooled = False, [], []
        self.env_fn, self.threads = env_fn, threads
        if not ray.is_initialized():
            # workers' own output would garble the live view: it stays in Ray's session logs
            kw: dict[str, Any] = {"include_dashboard": False, "configure_logging": False, "log_to_driver": False}
            if address:
                kw["address"] = address
            else:  # a local cluster: at least one CPU per actor, or they would wait forever
                kw["num_cpus"] = max(workers, os.cpu_count() or 1)
            try:
                ray.init(**kw)
            except (ConnectionError, ValueError, RuntimeError) as e:
                raise ArenaError(f"cannot {'join the Ray cluster at ' + repr(address) if address else 'start Ray'}: "
                                 f"{_first_line(e)}") from e
            self.started = True
        cpus = ray.cluster_resources().get("CPU", 0)
        if cpus < workers:
            self.close()
            raise ArenaError(f"--workers {workers}: the Ray cluster has {cpus:g} CPUs (one per worker)")
        self._actor = ray.remote(num_cpus=1)(Replica)
        self.actors = [self._actor.remote(env_fn, threads) for _ in range(workers)]
        self._get([a.ready.remote() for a in self.actors])
        self.timing: dict[str, float] = {"startup_s": time.perf_counter() - t0, "ship_s": 0.0, "sync_s": 0.0,
                                         "play_s": 0.0, "gather_s": 0.0, "pushed_mb": 0.0}
        """Where the backend's time went: start-up (cluster + actors), the first ship of the agents,
        the last sync (shells + changed weights), the last play and, of it, fetching the results."""
        self.replaced = 0
        """Workers that died and were replaced while this backend lived."""
        self.replayed = 0
        """Chunks (or parts of a learner's generation) played again after their worker died."""
        self._seats: dict[str, Agent] = {}
        """The trainer's agents shipped so far, by seat (the live objects: what a replacement gets)."""
        self._shipped: set[str] = set()
        self._versions: dict[tuple[str, str], tuple] = {}

    # -- Rollouts
    def play(self, seats: dict[str, Agent], n_episodes: int, *, concurrency: int, seed: int, round: int,
             on_episode: Callable[[Episode], None] | None = None) -> tuple[list[Episode], PlayStats]:
        if n_episodes < 0 or concurrency < 1:
            raise ArenaError(f"cannot play {n_episodes} episodes {concurrency} at a time: "
                             "episodes must be 0 or more, concurrency at least 1")
        t0 = time.perf_counter()
        self.sync(seats)
        chunk = max(1, min(concurrency, math.ceil(n_episodes / len(self.actors))))

        def play_chunk(actor: Any, start: int) -> Any:
            n = min(chunk, n_episodes - start)
            return actor.play.remote(n, min(concurrency, n), seed, round, start)

        stats, done, gather = PlayStats(), [], 0.0
        for _, (episodes, part), get_s in self._spread(
                range(0, n_episodes, chunk), play_chunk, self.in_flight,
                lambda start: f"episodes {start}-{min(start + chunk, n_episodes) - 1} of round {round}"):
            gather += get_s
            _merge(stats, part)
            for ep in episodes:
                done.append(ep)
                if on_episode is not None:
                    on_episode(ep)
        stats.wall_s = time.perf_counter() - t0
        self.timing.update(play_s=stats.wall_s, gather_s=gather)
        return sorted(done, key=lambda e: e.index), stats

    def updated(self, seats: dict[str, Agent], trained: Sequence[str]) -> None:
        """Push the trained seats now (weights only where they changed), so replicas hold the
        learners' results when the round ends; `play` re-checks every seat anyway."""
        self.sync({s: seats[s] for s in trained if s in seats})

    def close(self) -> None:
        for agent in self._pooled:
            agent.pool = None
        self._pooled = []
        for a in self.actors:
            self._kill(a)
        self.actors = []
        if self.started and self.ray.is_initialized():
            self.ray.shutdown()
        self.started = False

    # -- work on the actors, surviving their loss
    def _spread(self, tasks: Sequence[Hashable], call: Callable[[Any, Any], Any], per_actor: int,
                name: Callable[[Any], str]) -> Iterator[tuple[Any, Any]]:
        """`call(actor, task)` (an object ref) for every task, at most `per_actor` at once on each actor,
        handed out as actors free up; yields `(task, result, seconds fetching it)` as each finishes. A task whose actor
        died goes again, first, to the actor's replacement; one that loses its actor more than
        `chunk_retries` times stops with one line (`name(task)` says which work it was)."""
        queue, losses = deque(tasks), Counter()
        inflight: dict[Any, tuple[int, Any, Any]] = {}

        def submit(a: int) -> None:
            task = queue.popleft()
            inflight[call(self.actors[a], task)] = (a, self.actors[a], task)

        for a in itertools.islice(itertools.cycle(range(len(self.actors))), per_actor * len(self.actors)):
            if queue:
                submit(a)
        while inflight:
            (ref,), _ = self.ray.wait(list(inflight), num_returns=1)
            a, actor, task = inflight.pop(ref)
            t = time.perf_counter()
            try:
                result = self._get(ref, lost=True)
            except self.ray.exceptions.RayActorError as e:
                losses[task] += 1
                if losses[task] > self.chunk_retries:
                    raise ArenaError(f"Ray rollout workers keep dying: {name(task)} lost its worker "
                                     f"{losses[task]} times (last: {_first_line(e)}); the run stops here "
                                     "(arena resume continues it from its last completed round)") from e
                if self.actors[a] is actor:  # the first of the dead actor's tasks to come back
                    self._replace(a, e)
                queue.appendleft(task)
                self.replayed += 1
                submit(a)
                continue
            if queue:
                submit(a)
            yield task, result, time.perf_counter() - t

    def _each(self, call: Callable[[Any], Any], *, again: bool = False) -> list[Any]:
        """`call(actor)` on every actor, results in actor order. An actor that died is replaced (the
        replacement already holds the agents as they are now); with `again`, it is asked too."""
        refs = [(a, actor, call(actor)) for a, actor in enumerate(self.actors)]
        out: list[Any] = [None] * len(refs)
        for a, actor, ref in refs:
            for attempt in range(self.chunk_retries + 1):
                try:
                    out[a] = self._get(ref, lost=True)
                    break
                except self.ray.exceptions.RayActorError as e:
                    if attempt == self.chunk_retries:
                        raise ArenaError(f"Ray rollout workers keep dying: worker {a} was lost {attempt + 1} "
                                         f"times in a row (last: {_first_line(e)})") from e
                    if self.actors[a] is actor:
                        self._replace(a, e)
                    actor = self.actors[a]
                    if not again:
                        break
                    ref = call(actor)
        return out

    def _replace(self, a: int, cause: BaseException) -> None:
        """A fresh actor in slot `a`, sent every shipped seat's agent as the trainer holds it now."""
        self._kill(self.actors[a])
        actor = self.actors[a] = self._actor.remote(self.env_fn, self.threads)
        refs = [actor.ready.remote()]
        if self._seats:
            refs.append(actor.load.remote(self.ray.put({s: self._travelling(s, x) for s, x in self._seats.items()})))
        try:
            self.ray.get(refs, timeout=self.replace_timeout_s)
        except self.ray.exceptions.GetTimeoutError:
            raise ArenaError(f"a Ray rollout worker died ({_first_line(cause)}) and no replacement started within "
                             f"{self.replace_timeout_s:g} s (no free CPU in the cluster?); the run stops here "
                             "(arena resume continues it)") from None
        except self.ray.exceptions.RayActorError as e:
            raise ArenaError(f"Ray rollout workers keep dying: a replacement died as it started "
                             f"({_first_line(e)}); the run stops here (arena resume continues it)") from e
        self.replaced += 1

    def _kill(self, actor: Any) -> None:
        try:
            self.ray.kill(actor)
        except Exception:  # noqa: BLE001 (already gone: nothing to stop)
            pass

    # -- pushing agents
    def sync(self, seats: dict[str, Agent]) -> None:
        """Bring every replica of `seats` up to date: new seats whole, the others as shells plus the
        weights that changed. Returns when every actor has them."""
        t0 = time.perf_counter()
        new = {s: a for s, a in seats.items() if s not in self._shipped}
        for seat, agent in new.items():
            devices = {str(t.device) for m in shell(agent)[1].values() for t in m.parameters()} - {"cpu"}
            if devices:
                raise ArenaError(f"--workers: seat {seat!r} has its model on {', '.join(sorted(devices))}; the Ray "
                                 "actors run on CPUs (train with --device cpu, or without --workers)")
        self._seats.update(seats)  # a worker replaced from here on gets these, as they are when it starts
        if new:
            ref = self.ray.put({s: self._travelling(s, a) for s, a in new.items()})
            self._each(lambda actor: actor.load.remote(ref))
            for seat, agent in new.items():
                for name, module in shell(agent)[1].items():
                    self._versions[(seat, name)] = weights_version(module)
                self._attach(seat, agent)
            self._shipped.update(new)
            self.timing["ship_s"] = time.perf_counter() - t0
        shells, weights, mb = {}, {}, 0.0
        for seat, agent in seats.items():
            if seat in new:
                continue
            sh, modules, left_out = shell(agent)
            shells[seat] = (sh, left_out)
            for name, module in modules.items():
                v = weights_version(module)
                if self._versions.get((seat, name)) != v:
                    state = weights.setdefault(seat, {})[name] = pack_state(module)
                    mb += sum(a.nbytes for a in state["arrays"].values()) / 2**20
                    self._versions[(seat, name)] = v
        if shells:
            s_ref, w_ref = self.ray.put(shells), self.ray.put(weights)
            self._each(lambda actor: actor.sync.remote(s_ref, w_ref))
        self.timing.update(sync_s=time.perf_counter() - t0, pushed_mb=mb)

    def _travelling(self, seat: str, agent: Agent) -> Any:
        """The agent as it is shipped: put alone first, so one that cannot travel (a person at a
        terminal, an engine holding a GPU) is named in one line."""
        try:
            return self.ray.put(portable(agent))
        except Exception as e:  # pickling errors have no common type (TypeError, PicklingError, ...)
            root = e
            while root.__cause__ is not None or root.__context__ is not None:  # Ray wraps the pickler's error
                root = root.__cause__ or root.__context__
            raise ArenaError(f"--workers: seat {seat!r}'s agent ({type(agent).__name__}) cannot be sent to "
                             f"Ray actors: {_first_line(root)}") from e

    def _attach(self, seat: str, agent: Agent) -> None:
        if hasattr(agent, "pool") and agent.pool is None:
            agent.pool = SeatPool(self, seat)
            self._pooled.append(agent)

    def reports(self) -> list[dict[str, Any]]:
        """Every actor's `Replica.report()`, in actor order."""
        return self._each(lambda actor: actor.report.remote(), again=True)

    def worker_pids(self) -> list[int]:
        """Every actor's process id, in actor order."""
        return self._each(lambda actor: actor.ready.remote(), again=True)

    def _get(self, refs, *, lost: bool = False):
        """`ray.get`, with a worker's own error re-raised as itself (an ArenaError stays one line). A
        lost worker is one line, or, with `lost`, Ray's own error (for the caller to replace it)."""
        try:
            return self.ray.get(refs)
        except self.ray.exceptions.RayTaskError as e:
            cause = getattr(e, "cause", None)
            if isinstance(cause, Exception):
                raise cause from None
            raise
        except self.ray.exceptions.RayActorError as e:
            if lost:
                raise
            raise ArenaError(f"a Ray rollout worker died: {_first_line(e)}") from e


class SeatPool:
    """Generation of one seat's (trainer-side) agent, spread over the backend's actors.

    `act(agent, observations, seeds)`: the agent is pushed first (as in `RayRollouts.sync`: its
    sampling settings always, its weights when they changed), then the rows are cut into one
    contiguous part per actor and the moves come back in order (a part whose actor died is
    generated again by its replacement)."""

    def __init__(self, rollouts: RayRollouts, seat: str):
        self.rollouts, self.seat = rollouts, seat

    def act(self, agent: Agent, observations: Sequence[dict[str, Any]], seeds: Sequence[int]) -> list[Any]:
        r = self.rollouts
        if not r.actors:
            raise ArenaError("the Ray rollout workers are closed")
        r.sync({self.seat: agent})
        n, w = len(observations), len(r.actors)
        size = max(1, math.ceil(n / w))

        def generate(actor: Any, i: int) -> Any:
            return actor.act.remote(self.seat, list(observations[i:i + size]), list(seeds[i:i + size]))

        parts = {i: part for i, part, _ in r._spread(range(0, n, size), generate, 1,
                                                      lambda i: f"{self.seat}'s rows {i}-{min(i + size, n) - 1}")}
        return [m for i in sorted(parts) for m in parts[i]]

    def __reduce__(self):  # never travels: a replica generates itself
        return (type(None), ())
