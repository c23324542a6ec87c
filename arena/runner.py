"""The batched episode runner: the one place that drives PettingZoo envs.

`play` keeps K envs in flight. At every tick it groups the envs by the seat
that must move and makes ONE `act` call per seat with all of that seat's
waiting observations, so an LLM agent generates for K episodes in one batch.
PettingZoo's dead steps (a terminated/truncated agent must be stepped with
`None`) are handled here and nowhere else.

Determinism: episode i is reset with `derive(seed, "episode", i)`, and an agent
that declares `seeded` gets one sampling seed per move, `derive(episode seed,
"move", n)` for the episode's n-th move. So the transcripts of a seed do not
depend on K, on how episodes are cut into batches, or on which process plays
which episode (`arena.rollout` splits them over ranks or Ray workers); scripted
bots, whose actions depend only on their observation, are independent of all that too.
"""
from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from arena.seeding import derive
from arena.textobs import record
from arena.types import Agent, ArenaError, Episode, Move, Step


@dataclass
class PlayStats:
    """Where a play's wall time went."""

    wall_s: float = 0.0
    act_s: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    act_calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    act_batch: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    completion_tokens: int = 0
    episodes: int = 0

    @property
    def agent_s(self) -> float:
        return sum(self.act_s.values())

    @property
    def overhead_fraction(self) -> float:
        """Fraction of wall time spent outside the agents' `act` calls."""
        return max(0.0, 1.0 - self.agent_s / self.wall_s) if self.wall_s > 0 else 0.0

    @property
    def mean_batch(self) -> float:
        calls = sum(self.act_calls.values())
        return sum(self.act_batch.values()) / calls if calls else 0.0


@dataclass
class _Slot:
    env: Any
    episode: int = -1
    seed: int = 0
    transcript: list[Step] = field(default_factory=list)
    rewards: dict[str, float] = field(default_factory=dict)
    infos: dict[str, dict[str, Any]] = field(default_factory=dict)


def play(
    env_fn: Callable[[], Any],
    seats: dict[str, Agent],
    n_episodes: int,
    *,
    concurrency: int = 8,
    seed: int = 0,
    on_episode: Callable[[Episode], None] | None = None,
    first_index: int = 0,
    round: int = 0,
) -> tuple[list[Episode], PlayStats]:
    """Play `n_episodes` episodes, K=`concurrency` at a time; return them in index order."""
    if n_episodes < 0 or concurrency < 1:  # never silently: a caller's bad count is a one-line error
        raise ArenaError(f"cannot play {n_episodes} episodes {concurrency} at a time: "
                         "episodes must be 0 or more, concurrency at least 1")
    if n_episodes == 0:
        return [], PlayStats()
    slots = [_Slot(env_fn()) for _ in range(min(concurrency, n_episodes))]
    seat_order = list(slots[0].env.possible_agents)
    missing = [s for s in seat_order if s not in seats]
    if missing:
        raise ArenaError(f"no agent for seat(s) {', '.join(missing)}; game seats: {', '.join(seat_order)}")
    stats, done = PlayStats(), []
    next_episode = 0
    t0 = time.perf_counter()

    def start(slot: _Slot) -> bool:
        nonlocal next_episode
        if next_episode >= n_episodes:
            return False
        slot.episode, next_episode = first_index + next_episode, next_episode + 1
        slot.seed = derive(seed, "episode", slot.episode)
        slot.transcript, slot.rewards, slot.infos = [], {a: 0.0 for a in seat_order}, {}
        slot.env.reset(seed=slot.seed)
        _snapshot_infos(slot)
        return True

    def finish(slot: _Slot) -> None:
        ep = Episode(slot.episode, slot.seed, dict(slot.rewards), slot.infos, slot.transcript, round)
        stats.completion_tokens += ep.completion_tokens
        done.append(ep)
        if on_episode is not None:
            on_episode(ep)

    active = [s for s in slots if start(s)]
    while active:
        waiting: dict[str, list[_Slot]] = defaultdict(list)
        still_active = []
        for slot in active:
            while _skip_dead_steps(slot):  # episode over: record it, refill the slot
                finish(slot)
                if not start(slot):
                    break
            else:
                waiting[slot.env.agent_selection].append(slot)
                still_active.append(slot)
        active = still_active
        for seat in seat_order:
            if waiting[seat]:
                _act_and_step(seat, seats[seat], waiting[seat], stats)
    stats.wall_s = time.perf_counter() - t0
    stats.episodes = len(done)
    return sorted(done, key=lambda e: e.index), stats


def _act_and_step(seat: str, agent: Agent, slots: list[_Slot], stats: PlayStats) -> None:
    observations = [slot.env.observe(seat) for slot in slots]
    t = time.perf_counter()
    kwargs: dict[str, Any] = {}
    if getattr(agent, "seeded", False):
        kwargs["seeds"] = [move_seed(slot.seed, len(slot.transcript)) for slot in slots]
    if getattr(agent, "wants_episodes", False):
        kwargs["episodes"] = [slot.episode for slot in slots]
    actions = agent.act(observations, **kwargs)
    stats.act_s[seat] += time.perf_counter() - t
    stats.act_calls[seat] += 1
    stats.act_batch[seat] += len(slots)
    if len(actions) != len(slots):
        raise ArenaError(f"agent for seat {seat!r} returned {len(actions)} actions for {len(slots)} observations")
    for slot, obs, act in zip(slots, observations, actions):
        move = act if isinstance(act, Move) else Move(act)
        slot.transcript.append(Step(seat, record(obs), move.action, move.extras))
        slot.env.step(move.action)
        _collect(slot)


def move_seed(episode_seed: int, n: int) -> int:
    """The sampling seed of an episode's n-th move (0-based, over all seats)."""
    return derive(episode_seed, "move", n)


def _skip_dead_steps(slot: _Slot) -> bool:
    """Step terminated/truncated agents with None; True when the episode is over."""
    env = slot.env
    while env.agents:
        agent = env.agent_selection
        if not (env.terminations[agent] or env.truncations[agent]):
            return False
        env.step(None)
        _collect(slot)
    return True


def _collect(slot: _Slot) -> None:
    for agent, r in slot.env.rewards.items():
        slot.rewards[agent] = slot.rewards.get(agent, 0.0) + float(r)
    _snapshot_infos(slot)


def _snapshot_infos(slot: _Slot) -> None:
    for agent, info in slot.env.infos.items():
        slot.infos[agent] = dict(info)


def mean_rewards(episodes: Sequence[Episode]) -> dict[str, float]:
    totals: dict[str, list[float]] = defaultdict(list)
    for ep in episodes:
        for seat, r in ep.rewards.items():
            totals[seat].append(r)
    return {seat: sum(v) / len(v) for seat, v in totals.items()}
