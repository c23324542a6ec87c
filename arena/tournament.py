"""Tournaments between checkpoints: schedule, play, store, rate, report.

    arena tournament runs/pvg-1                       every checkpoint of every seat
    arena tournament pvg-1 --seat verifier=ckpt:pvg-1/verifier/round-0,ckpt:pvg-2/verifier/round-4
    arena tournament --game duel-v0 --seat policy_a=ckpt:a/policy_a/round-0,ckpt:b/policy_a/round-3 \\
                     --seat judge=scripted:gold

Game. A tournament of a run plays the game as the run's recipe set it up (the
`env_kwargs` in its `config.json`, e.g. a data file or a reward setting); `--env`
overrides single settings.

Entrants. Each seat gets a list of agent specs: the `--seat SEAT=SPEC[,SPEC...]`
list when given, else every checkpoint the run wrote for that seat
(`RunStore.checkpoints()`, as `ckpt:<dir>`), else the spec the run's config used
for that seat (a fixed opponent, e.g. a scripted bot). Labels are
`<seat>/round-<k>` for the run's own checkpoints, `<run>/<seat>/round-<k>` for
another run's, and `<seat>/<spec>` otherwise; ratings are keyed by
`<game id>/<label>`, e.g. `prover-verifier-v0/prover/round-3`.

Schedule. Seats listed in the game's `GameInfo.symmetric_seats` (duel-v0's
`policy_a`, `policy_b`) share one pool of entrants and play round robin: every
ordered pair of distinct entrants, so each pair meets in both seat orders and a
first-mover advantage cancels. Every other seat is crossed with everything
(cross-play). A pairing is one assignment of an entrant to every seat; each is
played for `episodes` episodes with the SAME `play` seed, hence the same episode
seeds (the same problems) for every pairing, and every agent is reset with the
same per-seat seed before each pairing: differences come from the players.

Store. Matches go into the run's `arena.db` (tables `tournaments`, `matches`,
`ratings`, created here). A pairing's episodes are committed in one
transaction when the pairing finishes, so an interrupted tournament resumes by
playing exactly the pairings that have no rows; re-running after more training
rounds plays only the new checkpoints' pairings.

Ratings (pure functions in `arena.ratings`):
- Symmetric seats: every episode is a match between the two entrants, decided
  by who got the higher reward (equal rewards: a draw). Bradley–Terry with
  bootstrap 95% intervals, plus online Elo in schedule order.
- An asymmetric seat (prover, verifier): entrants of one seat never meet each
  other, so they are compared *paired*: two checkpoints of the seat that faced
  the same opponents on the same episode seed form one match, won by the one
  paid more (a draw if paid the same). This is a paired comparison under
  identical conditions — what the shared seeds buy — and the BT fit over all of
  them ranks the seat's checkpoints. Seats with one entrant are not rated.
- The bootstrap resamples episode seeds (all matches made on one seed move
  together: a cluster bootstrap), because comparisons on one seed share the
  opponent's move and are not independent.
- Cross-play matrix: mean reward of the row entrant against the column entrant,
  per-cell 95% normal-approximation intervals (mean ± 1.96·s/√n over the cell's
  episodes). For symmetric seats one matrix (both seat orders pooled); for an
  asymmetric game one matrix per seat of the two seats with the most entrants
  (rows: first seat's entrants, columns: second's), other seats pooled.

Output: rich tables, and `runs/<run>/tournaments/<name>/` with `ratings.csv`,
`crossplay.csv`, `tournament.json` and `crossplay.png`.
"""
from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table

from arena import ratings
from arena.gameinfo import GameInfo
from arena.options import env_settings
from arena.registry import GameSpec
from arena.registry import spec as game_spec
from arena.runner import play
from arena.seeding import derive
from arena.checkpoints import read_checkpoint_meta, resolve_checkpoint
from arena.specs import AgentContext, agent_factories, build_agent, parse_spec
from arena.store import RunStore, check_run_name, find_run, read_checkpoints, read_run_config
from arena.store import runs_dir as default_runs_dir
from arena.types import ArenaError, jsonable

SCHEMA = """
CREATE TABLE IF NOT EXISTS tournaments (
    name TEXT PRIMARY KEY,
    game TEXT NOT NULL,
    config TEXT NOT NULL,
    created REAL
);
CREATE TABLE IF NOT EXISTS matches (
    tournament TEXT NOT NULL,
    game TEXT NOT NULL,
    pairing TEXT NOT NULL,
    seats TEXT NOT NULL,
    idx INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    rewards TEXT NOT NULL,
    info TEXT NOT NULL,
    PRIMARY KEY (tournament, pairing, idx)
);
CREATE TABLE IF NOT EXISTS ratings (
    tournament TEXT NOT NULL,
    key TEXT NOT NULL,
    method TEXT NOT NULL,
    rating REAL, lower REAL, upper REAL,
    PRIMARY KEY (tournament, key, method)
);
"""
"""`matches.seats` is JSON seat -> entrant label; `pairing` is the readable id
`seat=label | seat=label`; `rewards`/`info` are the episode's per-seat JSON."""


@dataclass
class TournamentConfig:
    """What `arena tournament` was asked to do."""

    run: str | None = None
    """Run name or path: entrants default to its checkpoints; results go to its arena.db."""
    game: str | None = None
    """Game id; taken from the run's config when omitted (required without a run)."""
    seats: dict[str, list[str]] = field(default_factory=dict)
    """Explicit agent specs per seat (`--seat prover=ckpt:a,ckpt:b`); override the run's."""
    name: str = ""
    """Tournament name (folder under `<run>/tournaments/`); default `default`, or
    `<game>-tournament` without a run (then also the name of the run directory created)."""
    episodes: int = 32
    """Episodes per pairing (the same episode seeds for every pairing)."""
    seed: int = 0
    """Tournament seed: episode seeds, agent seeds and the bootstrap derive from it."""
    concurrency: int = 16
    """Episodes in flight at once per pairing."""
    env: dict[str, Any] = field(default_factory=dict)
    """Game constructor kwargs (`--env key=value`)."""
    bootstrap: int = 1000
    """Bootstrap rounds for the rating intervals (0: no intervals)."""
    device: str | None = None
    """Torch device for model agents."""
    max_cached_agents: int = 8
    """Built agents kept in memory between pairings (LRU); pairings are ordered so
    that the first seat's entrant changes slowest."""

    def __post_init__(self) -> None:
        for name in ("episodes", "concurrency"):
            if getattr(self, name) < 1:
                raise ArenaError(f"--{name} must be at least 1")
        if self.bootstrap < 0:
            raise ArenaError("--bootstrap must be 0 or more")
        if self.run is None and not self.game:
            raise ArenaError("give a run (its checkpoints) or --game with --seat SEAT=SPEC[,SPEC...]")
        if self.name:
            check_run_name(self.name)


# -- the plan: who plays whom -----------------------------------------------------

@dataclass(frozen=True)
class Entrant:
    label: str
    """Unique within the tournament, e.g. `prover/round-3`."""
    spec: str
    """Agent spec that builds it (`ckpt:<dir>` for checkpoints)."""


@dataclass(frozen=True)
class SeatGroup:
    """One seat, or the game's symmetric seats sharing one pool of entrants."""

    seats: tuple[str, ...]
    entrants: tuple[Entrant, ...]

    @property
    def name(self) -> str:
        return "/".join(self.seats)

    @property
    def symmetric(self) -> bool:
        return len(self.seats) > 1


@dataclass
class Plan:
    cfg: TournamentConfig
    game: GameSpec
    seat_order: list[str]
    groups: list[SeatGroup]
    run_dir: Path
    runs_dir: Path
    name: str
    create_run: bool = False

    @property
    def game_id(self) -> str:
        return self.game.id

    @property
    def out_dir(self) -> Path:
        return self.run_dir / "tournaments" / self.name

    def key(self, label: str) -> str:
        return f"{self.game_id}/{label}"

    def pairings(self) -> list[dict[str, Entrant]]:
        """Every assignment of entrants to seats, in schedule order (first group slowest)."""
        per_group = [itertools.permutations(g.entrants, len(g.seats)) for g in self.groups]
        out = []
        for combo in itertools.product(*per_group):
            assignment = {seat: e for g, es in zip(self.groups, combo) for seat, e in zip(g.seats, es)}
            out.append({seat: assignment[seat] for seat in self.seat_order})
        return out

    def pairing_id(self, pairing: dict[str, Entrant]) -> str:
        return " | ".join(f"{seat}={pairing[seat].label}" for seat in self.seat_order)

    def fingerprint(self) -> dict[str, Any]:
        """What must not change between the invocations of one tournament."""
        return {"game": self.game_id, "episodes": self.cfg.episodes, "seed": self.cfg.seed,
                "env": jsonable(self.cfg.env)}


def plan_tournament(cfg: TournamentConfig, runs_dir: Path) -> Plan:
    """Resolve the run, game, seats and entrants; every bad input is one ArenaError line."""
    runs_dir = Path(runs_dir)
    run_config: dict[str, Any] = {}
    run_ckpts: dict[str, dict[int, Path]] = {}
    if cfg.run is not None:
        run_dir = find_run(cfg.run, runs_dir)
        run_config, run_ckpts = read_run_config(run_dir), read_checkpoints(run_dir)
        if not run_ckpts and not cfg.seats:
            raise ArenaError(f"run {run_dir} has no checkpoints (no completed rounds); train it first "
                             f"or name agents with --seat SEAT=SPEC[,SPEC...]")
    run_game = run_config.get("game_id") or run_config.get("game")
    game_name = cfg.game or run_game
    # the game as the run's recipe set it up (e.g. its data or reward settings); --env overrides
    cfg = replace(cfg, env={**(run_config.get("env_kwargs") or {}), **cfg.env})
    if not game_name:
        raise ArenaError(f"cannot tell which game run {cfg.run} is (no config.json); give --game")
    gspec = game_spec(game_name)
    if run_game and cfg.game and game_spec(run_game).id != gspec.id:
        raise ArenaError(f"run {cfg.run} is a {game_spec(run_game).id} run, not {gspec.id}")
    seat_order = list(gspec.make(**cfg.env).possible_agents)
    unknown = sorted(set(cfg.seats) - set(seat_order))
    if unknown:
        raise ArenaError(f"unknown seat(s) {', '.join(unknown)} for {gspec.id}; seats: {', '.join(seat_order)}")

    if cfg.run is not None:
        name = cfg.name or "default"
    else:
        name = cfg.name or check_run_name(f"{gspec.id}-tournament")
        run_dir = runs_dir / name

    declared = list(GameInfo.of(gspec.load()).symmetric_seats)
    symmetric = tuple(s for s in seat_order if s in declared) if len(declared) > 1 else ()
    if symmetric and len(symmetric) != len(declared):
        symmetric = ()  # the game's declared seats are not all present with these env kwargs

    plan = Plan(cfg, gspec, seat_order, [], run_dir, runs_dir, name, create_run=cfg.run is None)
    groups: list[SeatGroup] = []
    for seat in seat_order:
        if seat in symmetric and seat != symmetric[0]:
            continue
        seats = symmetric if seat in symmetric else (seat,)
        entrants: list[Entrant] = []
        for s in seats:
            entrants += _entrants_for_seat(plan, s, seats, cfg.seats.get(s), run_ckpts.get(s, {}),
                                           run_config.get("seat_specs", {}).get(s))
        unique = list(OrderedDict((e.label, e) for e in entrants).values())
        if not unique:
            raise ArenaError(f"no agent for seat {seat!r} of {gspec.id}: give --seat {seat}=SPEC[,SPEC...]")
        if len(seats) > 1 and len(unique) < 2:
            raise ArenaError(f"round robin over seats {', '.join(seats)} needs at least 2 agents, got {len(unique)}")
        groups.append(SeatGroup(seats, tuple(unique)))
    plan.groups = groups
    return plan


def _entrants_for_seat(plan: Plan, seat: str, group_seats: tuple[str, ...], explicit: list[str] | None,
                       ckpts: dict[int, Path], run_spec: str | None) -> list[Entrant]:
    if explicit is not None:
        specs = [s.strip() for s in explicit if s.strip()]
    elif ckpts:
        specs = [f"ckpt:{path}" for _, path in sorted(ckpts.items())]
    elif run_spec:
        specs = [run_spec]
    else:
        specs = []
    return [_entrant(plan, seat, group_seats, spec) for spec in specs]


def _entrant(plan: Plan, seat: str, group_seats: tuple[str, ...], spec: str) -> Entrant:
    kind, arg = parse_spec(spec)
    if kind != "ckpt":
        known = agent_factories()
        if kind not in known:  # fail before any pairing is played
            raise ArenaError(f"unknown agent kind {kind!r} in {spec!r}; known: {', '.join(sorted([*known, 'ckpt']))}")
        return Entrant(spec if len(group_seats) > 1 else f"{seat}/{spec}", spec)
    path = resolve_checkpoint(arg, plan.runs_dir)
    meta = read_checkpoint_meta(path)
    if meta.get("game") and meta["game"] != plan.game_id:
        raise ArenaError(f"checkpoint {path} is for game {meta['game']!r}, not {plan.game_id!r}")
    ck_seat = meta.get("seat") or path.parent.name
    if ck_seat not in group_seats:
        raise ArenaError(f"checkpoint {path} is for seat {ck_seat!r}, not {seat!r}")
    rnd = f"round-{meta['round']}" if "round" in meta else path.name
    ck_run = path.parent.parent.parent
    same_run = ck_run.resolve() == plan.run_dir.resolve()
    label = f"{ck_seat}/{rnd}" if same_run else f"{ck_run.name}/{ck_seat}/{rnd}"
    return Entrant(label, f"ckpt:{path.resolve()}")


# -- playing ---------------------------------------------------------------------

@dataclass(frozen=True)
class MatchRecord:
    """One stored episode of one pairing."""

    pairing: str
    seats: dict[str, str]
    """seat -> entrant label."""
    idx: int
    seed: int
    rewards: dict[str, float]


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


def open_store(plan: Plan) -> RunStore:
    """The run's store with the tournament tables; registers (or checks) this tournament."""
    store = RunStore(plan.run_dir, create=plan.create_run)
    store.conn.executescript(SCHEMA)
    fp = plan.fingerprint()
    row = store.conn.execute("SELECT config FROM tournaments WHERE name=?", (plan.name,)).fetchone()
    if row is not None:
        old = {k: json.loads(row[0]).get(k) for k in fp}
        if old != fp:
            changed = ", ".join(f"{k}={old[k]!r}" for k in fp if old[k] != fp[k])
            store.close()
            raise ArenaError(f"tournament {plan.name!r} in {plan.run_dir} was played with {changed}; "
                             f"use --name to start another")
    config = {**fp, "entrants": {g.name: [asdict(e) for e in g.entrants] for g in plan.groups}}
    store.conn.execute("INSERT INTO tournaments VALUES (?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET config=excluded.config",
                       (plan.name, plan.game_id, json.dumps(config), time.time()))
    return store


def completed_pairings(store: RunStore, plan: Plan) -> set[str]:
    """Pairings with all their episodes stored (a pairing is committed whole)."""
    rows = store.conn.execute("SELECT pairing, count(*) FROM matches WHERE tournament=? GROUP BY pairing",
                              (plan.name,)).fetchall()
    return {p for p, n in rows if n == plan.cfg.episodes}


def load_matches(store: RunStore, plan: Plan) -> list[MatchRecord]:
    rows = store.conn.execute("SELECT pairing, seats, idx, seed, rewards FROM matches WHERE tournament=? "
                              "ORDER BY rowid", (plan.name,))
    return [MatchRecord(p, json.loads(s), idx, seed, {k: float(v) for k, v in json.loads(r).items()})
            for p, s, idx, seed, r in rows]


def run_tournament(cfg: TournamentConfig, runs_dir: Path | None = None, *,
                   on_event: Callable[[dict[str, Any]], None] | None = None) -> "TournamentResult":
    """Plan, play the missing pairings, rate, write the output files; return the result."""
    plan = plan_tournament(cfg, default_runs_dir(runs_dir))
    emit = on_event or (lambda e: None)
    store = open_store(plan)
    try:
        play_missing(plan, store, emit)
        matches = load_matches(store, plan)
        rng = np.random.default_rng(derive(cfg.seed, "tournament", "bootstrap"))
        result = analyze(plan, matches, rounds=cfg.bootstrap, rng=rng)
        save_ratings(store, result)
    finally:
        store.close()
    write_outputs(result, plan.out_dir)
    emit({"type": "tournament_end", "result": result})
    return result


def play_missing(plan: Plan, store: RunStore, emit: Callable[[dict[str, Any]], None]) -> int:
    """Play every scheduled pairing that has no stored rows; return how many were played."""
    cfg = plan.cfg
    pairings = plan.pairings()
    done = completed_pairings(store, plan)
    with store.transaction() as c:  # leftovers of a pairing with a different episode count
        for pid in {p for (p,) in c.execute("SELECT DISTINCT pairing FROM matches WHERE tournament=?",
                                            (plan.name,))} - done:
            c.execute("DELETE FROM matches WHERE tournament=? AND pairing=?", (plan.name, pid))
    todo = [p for p in pairings if plan.pairing_id(p) not in done]
    matches = [m for m in load_matches(store, plan)]
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
                           on_episode=lambda ep: emit({"type": "episode", "pairing": pid,
                                                       "done": next(counter), "total": cfg.episodes}))
        labels = {seat: e.label for seat, e in pairing.items()}
        with store.transaction() as c:
            for ep in episodes:
                c.execute("INSERT INTO matches VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                          (plan.name, plan.game_id, pid, json.dumps(labels), ep.index, ep.seed,
                           json.dumps(jsonable(ep.rewards)), json.dumps(jsonable(ep.info))))
        matches += [MatchRecord(pid, labels, ep.index, ep.seed, {k: float(v) for k, v in ep.rewards.items()})
                    for ep in episodes]
        emit({"type": "pairing_end", "pairing": pid, "rewards": _mean_rewards(episodes),
              "standings": analyze(plan, matches, rounds=0)})
    return len(todo)


def _mean_rewards(episodes) -> dict[str, float]:
    seats = episodes[0].rewards if episodes else {}
    return {s: float(np.mean([ep.rewards[s] for ep in episodes])) for s in seats}


# -- analysis (pure: plan + match records -> result) ------------------------------

@dataclass
class GroupResult:
    """Ratings of one seat's (or the symmetric seats') entrants."""

    seats: tuple[str, ...]
    labels: list[str]
    keys: list[str]
    specs: list[str]
    reward: ratings.MeanCI
    """Mean reward per entrant over all its episodes in these seats, with 95% CIs."""
    bt: ratings.RatingsCI | None
    """Bradley–Terry ratings with bootstrap CIs (None for a single entrant or no matches)."""
    elo: np.ndarray | None
    """Online Elo over the same matches in schedule order."""
    n_matches: int
    method: str
    """`direct` (symmetric seats meet) or `paired` (same opponents, same seed)."""

    @property
    def name(self) -> str:
        return "/".join(self.seats)

    def order(self) -> list[int]:
        """Entrants best first: by BT rating, else by mean reward."""
        score = self.bt.rating if self.bt is not None else np.nan_to_num(self.reward.mean, nan=-np.inf)
        return sorted(range(len(self.labels)), key=lambda i: -score[i])


@dataclass
class CrossPlay:
    """Mean reward of `paid_seat` for row entrant vs column entrant."""

    title: str
    row_seat: str
    col_seat: str
    paid_seat: str
    row_labels: list[str]
    col_labels: list[str]
    cells: ratings.MeanCI
    """(rows, cols) arrays with normal-approximation 95% intervals."""


@dataclass
class TournamentResult:
    name: str
    game_id: str
    run_dir: Path
    out_dir: Path
    episodes: int
    pairings_total: int
    pairings_done: int
    n_episodes: int
    groups: list[GroupResult]
    crossplay: list[CrossPlay]

    def to_json(self) -> dict[str, Any]:
        def arr(x):
            return [[_num(v) for v in row] for row in np.asarray(x).tolist()] if np.ndim(x) == 2 \
                else [_num(v) for v in np.asarray(x).tolist()]

        return {
            "name": self.name, "game": self.game_id, "run_dir": str(self.run_dir),
            "episodes_per_pairing": self.episodes, "pairings": self.pairings_total,
            "pairings_done": self.pairings_done, "episodes": self.n_episodes,
            "ratings": [dict(zip(RATING_COLUMNS, row)) for row in rating_rows(self)],
            "crossplay": [{"title": c.title, "row_seat": c.row_seat, "col_seat": c.col_seat,
                           "paid_seat": c.paid_seat, "rows": c.row_labels, "cols": c.col_labels,
                           "mean": arr(c.cells.mean), "lower": arr(c.cells.lower),
                           "upper": arr(c.cells.upper),
                           "episodes": np.asarray(c.cells.count, dtype=int).tolist()}
                          for c in self.crossplay],
        }


def _num(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _cmp(x: float, y: float) -> float:
    return 1.0 if x > y else (0.0 if x < y else 0.5)


def analyze(plan: Plan, matches: Sequence[MatchRecord], *, rounds: int = 0,
            rng: np.random.Generator | None = None) -> TournamentResult:
    """Ratings and cross-play matrices from the stored matches of the scheduled pairings."""
    rng = rng if rng is not None else np.random.default_rng(0)
    order = {plan.pairing_id(p): i for i, p in enumerate(plan.pairings())}
    matches = sorted((m for m in matches if m.pairing in order), key=lambda m: (order[m.pairing], m.idx))
    groups = [_rate_group(plan, g, matches, rounds, rng) for g in plan.groups]
    return TournamentResult(plan.name, plan.game_id, plan.run_dir, plan.out_dir, plan.cfg.episodes,
                            len(order), len({m.pairing for m in matches}), len(matches), groups,
                            _crossplay(plan, matches))


def _rate_group(plan: Plan, g: SeatGroup, matches: list[MatchRecord], rounds: int,
                rng: np.random.Generator) -> GroupResult:
    labels = [e.label for e in g.entrants]
    index = {label: i for i, label in enumerate(labels)}
    who, paid = [], []
    for m in matches:
        for seat in g.seats:
            who.append(index[m.seats[seat]])
            paid.append(m.rewards[seat])
    reward = ratings.mean_ci(paid, who, len(labels))
    a, b, s, cluster = [], [], [], []
    if g.symmetric:  # the entrants meet: one match per pair of symmetric seats per episode
        for m in matches:
            for s1, s2 in itertools.combinations(g.seats, 2):
                a.append(index[m.seats[s1]]), b.append(index[m.seats[s2]])
                s.append(_cmp(m.rewards[s1], m.rewards[s2])), cluster.append(m.idx)
    else:  # paired: same opponents, same episode seed
        seat = g.seats[0]
        contexts: dict[tuple, list[tuple[int, float]]] = OrderedDict()
        for m in matches:
            ctx = (tuple(m.seats[x] for x in plan.seat_order if x != seat), m.idx)
            contexts.setdefault(ctx, []).append((index[m.seats[seat]], m.rewards[seat]))
        for (_, idx), played in contexts.items():
            for (i, ri), (j, rj) in itertools.combinations(played, 2):
                a.append(i), b.append(j), s.append(_cmp(ri, rj)), cluster.append(idx)
    bt = elo = None
    if len(labels) > 1 and a:
        bt = ratings.bootstrap_bradley_terry(a, b, s, len(labels), rng=rng, rounds=rounds, groups=cluster)
        elo = ratings.elo(a, b, s, len(labels))
    return GroupResult(g.seats, labels, [plan.key(x) for x in labels], [e.spec for e in g.entrants],
                       reward, bt, elo, len(a), "direct" if g.symmetric else "paired")


def _crossplay(plan: Plan, matches: list[MatchRecord]) -> list[CrossPlay]:
    sym = [g for g in plan.groups if g.symmetric]
    if sym:
        g = sym[0]
        labels = [e.label for e in g.entrants]
        index = {x: i for i, x in enumerate(labels)}
        rows, cols, pay = [], [], []
        for m in matches:
            for s1, s2 in itertools.permutations(g.seats, 2):
                rows.append(index[m.seats[s1]]), cols.append(index[m.seats[s2]]), pay.append(m.rewards[s1])
        cells = ratings.payoff_matrix(rows, cols, pay, len(labels), len(labels))
        return [CrossPlay(f"mean reward of row vs column ({g.name}, both seat orders)", g.name, g.name,
                          g.name, labels, labels, cells)]
    if len(plan.groups) < 2:
        return []
    by_size = sorted(plan.groups, key=lambda g: -len(g.entrants))[:2]
    rg, cg = sorted(by_size, key=lambda g: plan.seat_order.index(g.seats[0]))
    rl, cl = [e.label for e in rg.entrants], [e.label for e in cg.entrants]
    ri, ci = {x: i for i, x in enumerate(rl)}, {x: i for i, x in enumerate(cl)}
    rows = [ri[m.seats[rg.seats[0]]] for m in matches]
    cols = [ci[m.seats[cg.seats[0]]] for m in matches]
    out = []
    for paid in (rg.seats[0], cg.seats[0]):
        cells = ratings.payoff_matrix(rows, cols, [m.rewards[paid] for m in matches], len(rl), len(cl))
        out.append(CrossPlay(f"mean {paid} reward ({rg.name} rows × {cg.name} columns)", rg.name, cg.name,
                             paid, rl, cl, cells))
    return out


# -- output -----------------------------------------------------------------------

RATING_COLUMNS = ["group", "rank", "key", "label", "spec", "bt_rating", "bt_lower", "bt_upper", "elo",
                  "mean_reward", "reward_lower", "reward_upper", "episodes", "method"]


def rating_rows(result: TournamentResult) -> list[list[Any]]:
    """One row per entrant (RATING_COLUMNS), best first within each group."""
    out = []
    for g in result.groups:
        for rank, i in enumerate(g.order(), 1):
            bt = [float(g.bt.rating[i]), float(g.bt.lower[i]), float(g.bt.upper[i])] if g.bt else [None] * 3
            out.append([g.name, rank, g.keys[i], g.labels[i], g.specs[i], *[_num(x) for x in bt],
                        _num(float(g.elo[i])) if g.elo is not None else None,
                        _num(float(g.reward.mean[i])), _num(float(g.reward.lower[i])),
                        _num(float(g.reward.upper[i])), int(g.reward.count[i]), g.method])
    return out


def save_ratings(store: RunStore, result: TournamentResult) -> None:
    with store.transaction() as c:
        c.execute("DELETE FROM ratings WHERE tournament=?", (result.name,))
        for g in result.groups:
            for i, key in enumerate(g.keys):
                if g.bt is not None:
                    c.execute("INSERT INTO ratings VALUES (?, ?, 'bradley-terry', ?, ?, ?)",
                              (result.name, key, *(_num(float(x[i])) for x in (g.bt.rating, g.bt.lower, g.bt.upper))))
                    c.execute("INSERT INTO ratings VALUES (?, ?, 'elo', ?, NULL, NULL)",
                              (result.name, key, float(g.elo[i])))
                c.execute("INSERT INTO ratings VALUES (?, ?, 'mean-reward', ?, ?, ?)",
                          (result.name, key, *(_num(float(x[i])) for x in
                                               (g.reward.mean, g.reward.lower, g.reward.upper))))


def write_outputs(result: TournamentResult, out_dir: Path) -> dict[str, Path]:
    """ratings.csv, crossplay.csv, tournament.json and crossplay.png (when there is a matrix)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"ratings": out_dir / "ratings.csv", "crossplay": out_dir / "crossplay.csv",
             "json": out_dir / "tournament.json", "png": out_dir / "crossplay.png"}
    with open(paths["ratings"], "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(RATING_COLUMNS)
        w.writerows([["" if v is None else v for v in row] for row in rating_rows(result)])
    with open(paths["crossplay"], "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["paid_seat", "row_seat", "row", "col_seat", "col", "mean", "lower", "upper", "episodes"])
        for c in result.crossplay:
            for i, j in itertools.product(range(len(c.row_labels)), range(len(c.col_labels))):
                w.writerow([c.paid_seat, c.row_seat, c.row_labels[i], c.col_seat, c.col_labels[j],
                            *["" if _num(float(x[i, j])) is None else float(x[i, j])
                              for x in (c.cells.mean, c.cells.lower, c.cells.upper)],
                            int(c.cells.count[i, j])])
    tmp = paths["json"].with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result.to_json(), indent=2))
    tmp.replace(paths["json"])
    if result.crossplay:
        heatmap(result, paths["png"])
    else:
        paths.pop("png")
    return paths


def heatmap(result: TournamentResult, path: Path) -> None:
    """One annotated heatmap panel per cross-play matrix (matplotlib's Agg canvas, no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = result.crossplay
    cell = 0.9
    widest = max(max(len(c.col_labels) for c in panels), 2)
    tallest = max(max(len(c.row_labels) for c in panels), 2)
    fig = Figure(figsize=(len(panels) * (cell * widest + 3.0), cell * tallest + 2.5), layout="constrained")
    FigureCanvasAgg(fig)
    for k, c in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), k + 1)
        m = np.asarray(c.cells.mean, dtype=float)
        finite = m[np.isfinite(m)]
        lim = float(np.max(np.abs(finite))) if finite.size else 1.0
        im = ax.imshow(np.ma.masked_invalid(m), cmap="RdYlGn", vmin=-lim or -1, vmax=lim or 1)
        for i, j in itertools.product(range(m.shape[0]), range(m.shape[1])):
            if np.isfinite(m[i, j]):
                half = (c.cells.upper[i, j] - c.cells.lower[i, j]) / 2
                txt = f"{m[i, j]:.2f}" + (f"\n±{half:.2f}" if np.isfinite(half) else "")
                ax.text(j, i, txt, ha="center", va="center", fontsize=7)
        ax.set_xticks(range(len(c.col_labels)), c.col_labels, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(len(c.row_labels)), c.row_labels, fontsize=7)
        ax.set_xlabel(c.col_seat)
        ax.set_ylabel(c.row_seat)
        ax.set_title(f"{c.paid_seat} reward", fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle(f"{result.game_id}: cross-play ({result.name}, {result.episodes} episodes/pairing, 95% CI)",
                 fontsize=10)
    fig.savefig(path, dpi=120)


def _fmt(x: Any, spec: str = ".0f") -> str:
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)


def ratings_table(result: TournamentResult) -> Table:
    """Ratings with CIs, best first within each seat group (a pure function of the result).

    Rows show labels; the full keys (`<game id>/<label>`) are in the CSV/JSON.
    """
    t = Table("#", Column("agent", overflow="fold"), Column("BT rating (95% CI)", no_wrap=True),
              Column("Elo", no_wrap=True), Column("mean reward (95% CI)", no_wrap=True), "n",
              title=f"ratings: {result.game_id} · {result.name} · "
                    f"{result.pairings_done}/{result.pairings_total} pairings",
              header_style="bold")
    last = None
    for row in rating_rows(result):
        r = dict(zip(RATING_COLUMNS, row))
        if last is not None and r["group"] != last:
            t.add_section()
        last = r["group"]
        bt = _fmt(r["bt_rating"]) + (f" [{_fmt(r['bt_lower'])}, {_fmt(r['bt_upper'])}]"
                                     if r["bt_lower"] is not None else "")
        reward = _fmt(r["mean_reward"], "+.2f") + (f" [{_fmt(r['reward_lower'], '+.2f')}, "
                                                   f"{_fmt(r['reward_upper'], '+.2f')}]"
                                                   if r["reward_lower"] is not None else "")
        t.add_row(str(r["rank"]), r["label"], bt, _fmt(r["elo"]), reward, str(r["episodes"]))
    return t


def crossplay_table(c: CrossPlay) -> Table:
    """The cross-play matrix: `mean ±half-width` per cell."""
    corner = f"{c.row_seat} \\ {c.col_seat}" if c.row_seat != c.col_seat else "row \\ column"
    t = Table(Column(corner, overflow="fold"), *(Column(x, overflow="fold") for x in c.col_labels),
              title=c.title, header_style="bold")
    for i, label in enumerate(c.row_labels):
        cells = []
        for j in range(len(c.col_labels)):
            m, lo, hi = (float(x[i, j]) for x in (c.cells.mean, c.cells.lower, c.cells.upper))
            cells.append("-" if not math.isfinite(m) else
                         f"{m:+.2f}" + (f" ±{(hi - lo) / 2:.2f}" if math.isfinite(hi - lo) else ""))
        t.add_row(label, *cells)
    return t


class TournamentView:
    """Progress and live standings while a tournament plays; plain lines off a terminal."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console()
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=self.console)
        self.pairings = self.progress.add_task("pairings", total=None)
        self.episodes = self.progress.add_task("episodes", total=None)
        self.standings: TournamentResult | None = None
        self.live = Live(self.render(), console=self.console, refresh_per_second=4) \
            if self.console.is_terminal else None

    def render(self) -> Group:
        parts: list[Any] = [self.progress]
        if self.standings is not None and self.standings.n_episodes:
            parts.append(ratings_table(self.standings))
        return Group(*parts)

    def __enter__(self) -> "TournamentView":
        if self.live:
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live:
            self.live.update(self.render())
            self.live.__exit__(*exc)

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "tournament_start":
            self.progress.update(self.pairings, total=event["pairings"], completed=event["done"])
            self.standings = event["standings"]
            if not self.live:
                self.console.print(f"tournament {event['name']} ({event['game']}): {event['pairings']} pairings, "
                                   f"{event['done']} already played, {event['episodes']} episodes each",
                                   highlight=False, markup=False)
        elif kind == "pairing_start":
            self.progress.update(self.episodes, description=event["pairing"], completed=0, total=None)
        elif kind == "episode":
            self.progress.update(self.episodes, completed=event["done"], total=event["total"])
        elif kind == "pairing_end":
            self.progress.advance(self.pairings)
            self.standings = event["standings"]
            if not self.live:
                rewards = ", ".join(f"{s}={r:+.3f}" for s, r in event["rewards"].items())
                self.console.print(f"[{self.standings.pairings_done}/{self.standings.pairings_total}] "
                                   f"{event['pairing']}: {rewards}", highlight=False, markup=False)
        if self.live:
            self.live.update(self.render())


# -- command line ---------------------------------------------------------------------

def parse_seat_lists(items: Sequence[str] | None) -> dict[str, list[str]]:
    """`--seat prover=a,b --seat prover=c` -> {"prover": ["a", "b", "c"]}."""
    out: dict[str, list[str]] = {}
    for item in items or []:
        seat, sep, specs = item.partition("=")
        if not sep or not seat.strip() or not specs.strip():
            raise ArenaError(f"malformed --seat {item!r}: expected SEAT=SPEC[,SPEC...]")
        out.setdefault(seat.strip(), []).extend(s.strip() for s in specs.split(",") if s.strip())
    return out


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    s = subparsers.add_parser(
        "tournament", help="rate checkpoints: cross-play matrix, ratings with CIs, heatmap",
        description="Play every pairing of a run's checkpoints (or of the --seat agents) with the same episode "
                    "seeds, then report Bradley-Terry ratings with bootstrap 95% CIs, Elo, and the cross-play "
                    "matrix; files go to <run>/tournaments/<name>/. Interrupted? Run the same command again.")
    s.add_argument("run", nargs="?", help="run name or path (entrants default to all its checkpoints)")
    s.add_argument("--game", help="game id (default: the run's game; required without a run)")
    s.add_argument("--seat", action="append", metavar="SEAT=SPEC[,SPEC...]",
                   help="agents for a seat, comma-separated (repeatable); replaces the run's checkpoints for it")
    s.add_argument("--name", help="tournament name (default 'default'); a new name starts a new tournament")
    s.add_argument("-n", "--episodes", type=int, default=32, help="episodes per pairing (default 32)")
    s.add_argument("--seed", type=int, default=0, help="tournament seed (default 0)")
    s.add_argument("--concurrency", type=int, default=16, help="episodes in flight at once (default 16)")
    s.add_argument("--env", action="append", metavar="KEY=VALUE", help="game constructor argument")
    s.add_argument("--bootstrap", type=int, default=1000, help="bootstrap rounds for the CIs (default 1000)")
    s.add_argument("--device", help="torch device for model agents (default: cuda if available)")
    s.add_argument("--plain", action="store_true", help="plain lines instead of the live view")
    s.set_defaults(func=run_command)
    return s


def run_command(args: argparse.Namespace) -> int:
    cfg = TournamentConfig(run=args.run, game=args.game, seats=parse_seat_lists(args.seat), name=args.name or "",
                           episodes=args.episodes, seed=args.seed, concurrency=args.concurrency,
                           env=env_settings(None, args.env),
                           bootstrap=args.bootstrap, device=args.device)
    console = Console()
    view = TournamentView(Console(force_terminal=False) if args.plain else console)
    with view:
        result = run_tournament(cfg, default_runs_dir(getattr(args, "runs_dir", None)), on_event=view)
    console.print(ratings_table(result))
    for c in result.crossplay:
        console.print(crossplay_table(c))
    console.print(f"wrote ratings.csv, crossplay.csv, tournament.json"
                  f"{', crossplay.png' if result.crossplay else ''} to {result.out_dir}", highlight=False)
    return 0
