"""Playing a tournament: the missing pairings, each stored whole, then rating and reporting.

Every pairing is played for `episodes` episodes with the same `play` seed (the
same problems) and every agent reset with the same per-seat seed; a pairing's
episodes are committed in one transaction when it finishes, so an interrupted
tournament resumes by playing exactly the pairings that have no rows.
"""
from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import numpy as np

from arena.runner import play
from arena.seeding import derive
from arena.specs import AgentContext, build_agent
from arena.store import RunStore, TournamentTables
from arena.store import runs_dir as default_runs_dir
from arena.tournament.analysis import MatchRecord, TournamentResult, analyze
from arena.tournament.plan import Plan, TournamentConfig, plan_tournament
from arena.tournament.report import save_ratings, write_outputs
from arena.types import ArenaError


class _AgentCache:
    """Built agents by (seat, spec), least recently used dropped first."""

    def __init__(self, plan: Plan, size: int):
        self.plan, self.size = plan, max(1, size)
        self.agents: OrderedDict[tuple[str, str], Any] = OrderedDict()

    def get(self, seat: str, spec: str) -> Any:
        key = (seat, spec)
        if key in self.agents:
            self.agents.move_to_end(key)
            return self.agents[key]
        ctx = AgentContext.for_seat(self.plan.game, seat, self.plan.runs_dir, self.plan.cfg.device,
                                    **self.plan.cfg.env)
        agent = build_agent(spec, ctx)
        self.agents[key] = agent
        while len(self.agents) > self.size:
            self.agents.popitem(last=False)
        return agent


def open_tables(plan: Plan, store: RunStore) -> TournamentTables:
    """The store's tournament tables with this tournament registered (or checked: a tournament
    played before must have the same game, episodes, seed and env settings)."""
    tables = TournamentTables(store)
    fp = plan.fingerprint()
    registered = tables.config(plan.name)
    if registered is not None:
        old = {k: registered.get(k) for k in fp}
        if old != fp:
            changed = ", ".join(f"{k}={old[k]!r}" for k in fp if old[k] != fp[k])
            raise ArenaError(f"tournament {plan.name!r} in {plan.run_dir} was played with {changed}; "
                             f"use --name to start another")
    tables.register(plan.name, plan.game_id,
                    {**fp, "entrants": {g.name: [asdict(e) for e in g.entrants] for g in plan.groups}})
    return tables


def load_matches(tables: TournamentTables, plan: Plan) -> list[MatchRecord]:
    return [MatchRecord(p, seats, idx, seed, {k: float(v) for k, v in rewards.items()})
            for p, seats, idx, seed, rewards in tables.matches(plan.name)]


def run_tournament(cfg: TournamentConfig, runs_dir: Path | None = None, *,
                   on_event: Callable[[dict[str, Any]], None] | None = None) -> TournamentResult:
    """Plan, play the missing pairings, rate, write the output files; return the result."""
    plan = plan_tournament(cfg, default_runs_dir(runs_dir))
    emit = on_event or (lambda e: None)
    store = RunStore(plan.run_dir, create=plan.create_run)
    try:
        tables = open_tables(plan, store)
        play_missing(plan, tables, emit)
        matches = load_matches(tables, plan)
        rng = np.random.default_rng(derive(cfg.seed, "tournament", "bootstrap"))
        result = analyze(plan, matches, rounds=cfg.bootstrap, rng=rng)
        save_ratings(tables, result)
    finally:
        store.close()
    write_outputs(result, plan.out_dir)
    emit({"type": "tournament_end", "result": result})
    return result


def play_missing(plan: Plan, tables: TournamentTables, emit: Callable[[dict[str, Any]], None]) -> int:
    """Play every scheduled pairing that has no stored rows; return how many were played."""
    cfg = plan.cfg
    pairings = plan.pairings()
    tables.discard_incomplete(plan.name, cfg.episodes)  # leftovers of a pairing with another episode count
    done = tables.completed_pairings(plan.name, cfg.episodes)
    todo = [p for p in pairings if plan.pairing_id(p) not in done]
    matches = load_matches(tables, plan)
    emit({"type": "tournament_start", "name": plan.name, "game": plan.game_id, "run_dir": str(plan.run_dir),
          "pairings": len(pairings), "done": len(pairings) - len(todo), "episodes": cfg.episodes,
          "standings": analyze(plan, matches, rounds=0)})
    cache = _AgentCache(plan, cfg.max_cached_agents)
    episode_seed = derive(cfg.seed, "tournament")
    for n, pairing in enumerate(todo):
        pid = plan.pairing_id(pairing)
        emit({"type": "pairing_start", "pairing": pid, "index": len(pairings) - len(todo) + n})
        agents = {seat: cache.get(seat, e.spec) for seat, e in pairing.items()}
        for seat, agent in agents.items():
            agent.reset(derive(cfg.seed, "tournament", "agent", seat))
        counter = itertools.count(1)
        episodes, _ = play(lambda: plan.game.make(**cfg.env), agents, cfg.episodes,
                           concurrency=cfg.concurrency, seed=episode_seed,
                           on_episode=lambda ep, pid=pid, counter=counter: emit({"type": "episode", "pairing": pid,
                                                       "done": next(counter), "total": cfg.episodes}))
        labels = {seat: e.label for seat, e in pairing.items()}
        tables.add_pairing(plan.name, plan.game_id, pid, labels, episodes)
        matches += [MatchRecord(pid, labels, ep.index, ep.seed, {k: float(v) for k, v in ep.rewards.items()})
                    for ep in episodes]
        emit({"type": "pairing_end", "pairing": pid, "rewards": _mean_rewards(episodes),
              "standings": analyze(plan, matches, rounds=0)})
    return len(todo)


def _mean_rewards(episodes) -> dict[str, float]:
    seats = episodes[0].rewards if episodes else {}
    return {s: float(np.mean([ep.rewards[s] for ep in episodes])) for s in seats}
