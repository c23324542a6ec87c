"""What a Ray rollout worker is: an actor (`Replica`) holding replicas of the trainer's agents, and
how agents travel to it (`arena.rollout.ray` runs the actors).

An agent travels whole once (`portable`: a shallow copy without the driver's pool); after that as a
*shell* (`shell`: the agent without its torch modules and tokenizer) plus the `state_dict` of every
module whose weights changed (`weights_version`, `pack_state`), so an unchanged model costs nothing.
"""
from __future__ import annotations

import copy
import itertools
import os
from typing import Any, Callable

import torch

from arena.runner import PlayStats, play
from arena.types import Agent

TOKENIZER_ATTRS = ("tokenizer",)
"""Attributes a shell leaves out besides torch modules: they never change during a run."""


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
