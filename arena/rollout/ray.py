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
"""
from __future__ import annotations

import copy
import itertools
import math
import os
import time
from collections import deque
from typing import Any, Callable, Sequence

import torch

from arena.runner import PlayStats, play
from arena.types import Agent, ArenaError, Episode

TOKENIZER_ATTRS = ("tokenizer",)
"""Attributes a shell leaves out besides torch modules: they never change during a run."""


def import_ray():
    """Ray, or the one-line error naming the extra."""
    try:
        import ray
    except ImportError:
        raise ArenaError("--workers needs Ray: pip install 'alignment-arena[ray]'") from None
    return ray


# -- what travels ------------------------------------------------------------------

def _is_module(x: Any) -> bool:
    return isinstance(x, torch.nn.Module)


def portable(agent: Agent) -> Agent:
    """The agent as it travels whole: a shallow copy without its pool (the pool is the driver's)."""
    out = copy.copy(agent)
    if getattr(out, "pool", None) is not None:
        out.pool = None
    return out


def shell(agent: Agent) -> tuple[Agent, dict[str, Any], list[str]]:
    """(the agent without its torch modules and tokenizer, {attribute: module}, the attributes
    left out). Those are None on the shell; a replica puts its own back."""
    out = portable(agent)
    state = getattr(out, "__dict__", {})
    modules = {k: v for k, v in state.items() if _is_module(v)}
    left_out = [*modules, *(a for a in TOKENIZER_ATTRS if state.get(a) is not None)]
    for k in left_out:
        setattr(out, k, None)
    return out, modules, left_out


def weights_version(module: Any) -> tuple:
    """Changes whenever a parameter or buffer is written in place or replaced (cheap: no data read)."""
    return tuple((t.data_ptr(), t._version) for t in itertools.chain(module.parameters(), module.buffers()))


def weight_checksums(agent: Agent) -> dict[str, str]:
    """{module attribute: sha256 of its state_dict} of an agent (empty for agents without modules)."""
    import hashlib

    out = {}
    for name, module in shell(agent)[1].items():
        h = hashlib.sha256()
        for key, t in sorted(module.state_dict().items()):
            h.update(key.encode())
            h.update(t.detach().to("cpu").contiguous().view(-1).view(torch.uint8).numpy().tobytes())
        out[name] = h.hexdigest()
    return out


def pack_state(module: Any) -> dict[str, Any]:
    """A module's state_dict as raw byte arrays, which Ray's object store holds once and every actor
    reads without a copy (pickled torch tensors were copied at every step: a 400 MiB push took
    6-8 s to 2 actors, as byte arrays 0.3-1.5 s). Tensors that share memory (tied embeddings) go once."""
    arrays, meta, first = {}, {}, {}
    for key, t in module.state_dict().items():
        t = t.detach().to("cpu").contiguous()
        meta[key] = (str(t.dtype).removeprefix("torch."), tuple(t.shape))
        where = (t.data_ptr(), t.dtype, tuple(t.shape))
        if t.numel() and where in first:
            meta[key] += (first[where],)  # an alias of an earlier key
            continue
        first[where] = key
        arrays[key] = t.view(-1).view(torch.uint8).numpy()
    return {"arrays": arrays, "meta": meta}


def unpack_state(packed: dict[str, Any]) -> dict[str, Any]:
    import warnings

    out = {}
    with warnings.catch_warnings():  # the store's arrays are read-only; load_state_dict only reads them
        warnings.simplefilter("ignore", UserWarning)
        for key, (dtype, shape, *alias) in packed["meta"].items():
            out[key] = out[alias[0]] if alias else \
                torch.from_numpy(packed["arrays"][key]).view(getattr(torch, dtype)).view(shape)
    return out


class Replica:
    """One Ray actor: replicas of the trainer's agents; plays chunks of episodes, generates rows."""

    def __init__(self, env_fn: Callable[[], Any], threads: int = 1):
        torch.set_num_threads(threads)  # one core per actor (num_cpus=1): no oversubscribed thread pools
        self.env_fn, self.agents = env_fn, {}
        self.rows: dict[str, int] = {}
        """Rows generated per seat through `act` (a `SeatPool`'s calls), for tests and figures."""

    def ready(self) -> int:
        return os.getpid()

    def load(self, agents: dict[str, Any]) -> None:
        """{seat: agent, or the reference of one put alone} (Ray resolves only top-level references)."""
        import ray

        self.agents.update({s: ray.get(a) if isinstance(a, ray.ObjectRef) else a for s, a in agents.items()})

    def sync(self, shells: dict[str, tuple[Agent, list[str]]], weights: dict[str, dict[str, dict]]) -> None:
        for seat, (new, kept) in shells.items():
            old = self.agents[seat]
            for name in kept:
                setattr(new, name, getattr(old, name))
            self.agents[seat] = new
        for seat, modules in weights.items():
            for name, state in modules.items():
                getattr(self.agents[seat], name).load_state_dict(unpack_state(state))

    def play(self, n: int, concurrency: int, seed: int, round: int, first_index: int):
        episodes, stats = play(self.env_fn, self.agents, n, concurrency=concurrency, seed=seed,
                               first_index=first_index, round=round)
        return episodes, _plain(stats)

    def act(self, seat: str, observations: list[dict[str, Any]], seeds: list[int]) -> list[Any]:
        self.rows[seat] = self.rows.get(seat, 0) + len(observations)
        return self.agents[seat].act(observations, seeds=seeds)

    def report(self) -> dict[str, Any]:
        """What this replica holds: a checksum of every module's weights per seat, and `rows`."""
        return {"weights": {seat: weight_checksums(a) for seat, a in self.agents.items()}, "rows": dict(self.rows)}


def _plain(stats: PlayStats) -> dict[str, Any]:
    return {"act_s": dict(stats.act_s), "act_calls": dict(stats.act_calls), "act_batch": dict(stats.act_batch),
            "completion_tokens": stats.completion_tokens, "episodes": stats.episodes}


def _merge(into: PlayStats, part: dict[str, Any]) -> None:
    """Add a chunk's stats. Agent seconds add up over actors working at once, so with several
    workers `agent_s` can exceed the driver's wall time (`overhead_fraction` is then 0)."""
    for name in ("act_s", "act_calls", "act_batch"):
        for seat, v in part[name].items():
            getattr(into, name)[seat] += v
    into.completion_tokens += part["completion_tokens"]
    into.episodes += part["episodes"]


# -- the backend -------------------------------------------------------------------

class RayRollouts:
    """`Rollouts` on `workers` Ray actors (see the module docstring)."""

    in_flight = 2
    """Chunks queued per actor, so an actor never waits for the driver between chunks."""

    def __init__(self, env_fn: Callable[[], Any], workers: int, address: str = "", *, threads: int = 1):
        ray = self.ray = import_ray()
        if workers < 1:
            raise ArenaError(f"--workers must be at least 1 for Ray rollouts, not {workers}")
        t0 = time.perf_counter()
        self.started, self.actors, self._pooled = False, [], []
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
                                 f"{str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}") from e
            self.started = True
        cpus = ray.cluster_resources().get("CPU", 0)
        if cpus < workers:
            self.close()
            raise ArenaError(f"--workers {workers}: the Ray cluster has {cpus:g} CPUs (one per worker)")
        actor = ray.remote(num_cpus=1)(Replica)
        self.actors = [actor.remote(env_fn, threads) for _ in range(workers)]
        self._get([a.ready.remote() for a in self.actors])
        self.timing: dict[str, float] = {"startup_s": time.perf_counter() - t0, "ship_s": 0.0, "sync_s": 0.0,
                                         "play_s": 0.0, "gather_s": 0.0, "pushed_mb": 0.0}
        """Where the backend's time went: start-up (cluster + actors), the first ship of the agents,
        the last sync (shells + changed weights), the last play and, of it, fetching the results."""
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
        queue = deque(range(0, n_episodes, chunk))
        inflight: dict[Any, int] = {}

        def submit(a: int) -> None:
            start = queue.popleft()
            n = min(chunk, n_episodes - start)
            inflight[self.actors[a].play.remote(n, min(concurrency, n), seed, round, start)] = a

        for a in itertools.islice(itertools.cycle(range(len(self.actors))), self.in_flight * len(self.actors)):
            if queue:
                submit(a)
        stats, done, gather = PlayStats(), [], 0.0
        while inflight:
            (ref,), _ = self.ray.wait(list(inflight), num_returns=1)
            a = inflight.pop(ref)
            t = time.perf_counter()
            episodes, part = self._get(ref)
            gather += time.perf_counter() - t
            if queue:
                submit(a)
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
            self.ray.kill(a)
        self.actors = []
        if self.started and self.ray.is_initialized():
            self.ray.shutdown()
        self.started = False

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
        if new:
            ref = self.ray.put({s: self._travelling(s, a) for s, a in new.items()})
            self._get([actor.load.remote(ref) for actor in self.actors])
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
            self._get([actor.sync.remote(s_ref, w_ref) for actor in self.actors])
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
            first = str(root).strip().splitlines()[0] if str(root).strip() else type(root).__name__
            raise ArenaError(f"--workers: seat {seat!r}'s agent ({type(agent).__name__}) cannot be sent to "
                             f"Ray actors: {first}") from e

    def _attach(self, seat: str, agent: Agent) -> None:
        if hasattr(agent, "pool") and getattr(agent, "pool") is None:
            agent.pool = SeatPool(self, seat)
            self._pooled.append(agent)

    def reports(self) -> list[dict[str, Any]]:
        """Every actor's `Replica.report()`, in actor order."""
        return self._get([a.report.remote() for a in self.actors])

    def _get(self, refs):
        """`ray.get`, with a worker's own error re-raised as itself (an ArenaError stays one line)."""
        try:
            return self.ray.get(refs)
        except self.ray.exceptions.RayTaskError as e:
            cause = getattr(e, "cause", None)
            if isinstance(cause, Exception):
                raise cause from None
            raise
        except self.ray.exceptions.RayActorError as e:
            raise ArenaError(f"a Ray rollout worker died: {str(e).strip().splitlines()[0]}") from e


class SeatPool:
    """Generation of one seat's (trainer-side) agent, spread over the backend's actors.

    `act(agent, observations, seeds)`: the agent is pushed first (as in `RayRollouts.sync`: its
    sampling settings always, its weights when they changed), then the rows are cut into one
    contiguous part per actor and the moves come back in order."""

    def __init__(self, rollouts: RayRollouts, seat: str):
        self.rollouts, self.seat = rollouts, seat

    def act(self, agent: Agent, observations: Sequence[dict[str, Any]], seeds: Sequence[int]) -> list[Any]:
        r = self.rollouts
        if not r.actors:
            raise ArenaError("the Ray rollout workers are closed")
        r.sync({self.seat: agent})
        n, w = len(observations), len(r.actors)
        size = max(1, math.ceil(n / w))
        refs = [r.actors[j].act.remote(self.seat, list(observations[i:i + size]), list(seeds[i:i + size]))
                for j, i in enumerate(range(0, n, size))]
        return [m for part in r._get(refs) for m in part]

    def __reduce__(self):  # never travels: a replica generates itself
        return (type(None), ())
