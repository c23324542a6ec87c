"""The self-play round loop: play -> learners update -> checkpoints -> metrics -> event.

The seats (agent + optional learner each) come from the game's recipe (`arena.recipes`,
whose names are re-exported here: `RecipeContext`, `Setup`, `SeatSetup`, `resolve_params`,
`with_data_seed`).

Resume: every seed is derived from (run seed, round, ...), agents and learners are
rebuilt from the initial specs and then loaded from the last completed round's
checkpoints, so a resumed run ends exactly as an uninterrupted one.
"""
from __future__ import annotations

import dataclasses
import shutil
import tempfile
import time
import uuid
from functools import partial
from pathlib import Path
from typing import Any, Callable, Sequence

from arena.checkpoints import can_checkpoint, checkpoint_dir, prune_checkpoints, restore_checkpoint, write_checkpoint
from arena.gameinfo import GameInfo, round_metrics
from arena.recipes import RecipeContext, SeatSetup, Setup, build_setup, default_setup, resolve_params, with_data_seed
from arena.registry import GameSpec
from arena.registry import spec as game_spec
from arena.rollout import EnvFactory, Rollouts, make_rollouts
from arena.rollout.distributed import Ranks, ReplicaStore, join_ranks
from arena.runner import mean_rewards
from arena.runs.config import CONFIG_FILE, TrainConfig, config_from_json, package_versions
from arena.runs.lock import RunLock
from arena.runs.new import abandon_new_run, claim_new_run, publish_new_run
from arena.runs.opening import lock_checked_run, run_game
from arena.seeding import derive
from arena.store import RunStore, append_event, read_events, read_run_config, write_json_atomic
from arena.types import ArenaError, Episode, jsonable

__all__ = ["Trainer", "new_run", "load_run", "RecipeContext", "SeatSetup", "Setup",
           "build_setup", "default_setup", "resolve_params", "with_data_seed"]


# -- the loop -------------------------------------------------------------------

class Trainer:
    """Runs rounds of one run directory; reports progress through `on_event`. Under several
    processes (`ranks`, see `arena.rollout.distributed`) every rank trains and only rank 0 writes."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, runs_dir: Path,
                 on_event: Callable[[dict[str, Any]], None] | None = None, gspec: GameSpec | None = None,
                 *, create: bool = True, lock: RunLock | None = None, store_dir: Path | None = None,
                 ranks: Ranks | None = None):
        """`store_dir`: where the store and config.json are written while a new run is set up
        (its hidden setup directory; `run_dir` is where the run will live, which recipes see)."""
        self.cfg, self.run_dir, self.lock, self.ranks = cfg, Path(run_dir), lock, ranks or Ranks()
        self.gspec = gspec or game_spec(cfg.game)
        self.game_cls = self.gspec.load()
        self.game_id = self.gspec.id
        # a rank other than 0 writes nothing in the run: what its learners would write under the run
        # directory (ReST's history, abstain's evaluations) goes to a private scratch directory
        self.scratch = None if self.ranks.main else Path(tempfile.mkdtemp(prefix=f"arena-rank{self.ranks.rank}-"))
        try:
            self.setup = build_setup(cfg, self.gspec, self.scratch or self.run_dir, runs_dir)
        except BaseException:
            self.remove_scratch()
            raise
        self.league = None  # --opponents: the other seat is played by a pool (arena.league)
        if cfg.opponents:
            from arena.league.pool import League

            if self.ranks.world > 1:
                raise ArenaError("--opponents plays its rounds in one process, not under torchrun")
            self.league = League(cfg, self.gspec, self.setup, self.run_dir, runs_dir)
        self.store = RunStore(Path(store_dir or self.run_dir), create=create) if self.ranks.main else ReplicaStore()
        self.on_event = on_event or (lambda e: None)
        self.rollouts: Rollouts | None = None  # made when rounds start (a Ray cluster takes seconds)

    def close(self) -> None:
        if self.rollouts is not None:
            self.rollouts.close()
            self.rollouts = None
        self.store.close()
        self.remove_scratch()
        if self.lock is not None:
            self.lock.release()

    def remove_scratch(self) -> None:
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)

    def emit(self, event: dict[str, Any]) -> None:
        if not self.ranks.main:
            return
        append_event(self.run_dir, event)
        self.on_event(event)

    def learner_progress(self, k: int, seat: str, message: str) -> None:
        self.emit({"type": "learner_progress", "round": k, "seat": seat, "message": str(message)})

    def save_config(self) -> None:
        if not self.ranks.main:
            return
        params = self.setup.params
        resolved = {**dataclasses.asdict(self.cfg),
                    "game_id": self.game_id,
                    "run_id": self.store.get("run_id"),
                    "versions": package_versions(),
                    "seat_specs": {s: v.spec for s, v in self.setup.seats.items()},
                    "env_kwargs": jsonable(self.setup.env_kwargs),  # tournaments of this run play the same game
                    "recipe_params": dataclasses.asdict(params) if dataclasses.is_dataclass(params) else None}
        write_json_atomic(self.store.dir / CONFIG_FILE, resolved)

    def restore(self) -> int:
        """Load the last completed round's checkpoints; return the next round to play. Events of
        rounds the store committed but a crash kept out of events.jsonl are written first (by rank 0,
        which tells the others the rounds done; every rank loads the checkpoints)."""
        done = self.ranks.first(self._settle_store, shared=True)
        if not done:
            return 0
        self.ranks.each(self._load_checkpoints, done[-1])
        if self.league is not None:
            self.league.load(self.store.round_summaries()[-1].get("league"))
        return done[-1] + 1

    def _settle_store(self) -> list[int]:
        self.store.discard_incomplete()
        self.replay_missing_events()
        return self.store.completed_rounds()

    def _load_checkpoints(self, k: int) -> None:
        for seat, s in self.setup.seats.items():
            if can_checkpoint(s.agent):
                restore_checkpoint(checkpoint_dir(self.run_dir, seat, k), s.agent, s.learner)

    def replay_missing_events(self) -> None:
        """events.jsonl follows the store: a `round_end` for every committed round."""
        logged = {e.get("round") for e in read_events(self.run_dir)[0] if e.get("type") == "round_end"}
        for summary in self.store.round_summaries():
            if summary["round"] not in logged:
                self.emit({"type": "round_end", "round": summary["round"], "summary": summary})

    def finish_events(self) -> None:
        """A run whose rounds are all committed ends with `run_end` in its events (what `watch` waits for)."""
        events = read_events(self.run_dir)[0]
        done = self.store.completed_rounds()
        if len(done) >= self.cfg.rounds and not any(e.get("type") == "run_end" for e in events):
            self.emit({"type": "run_end", "run": self.cfg.run, "rounds": len(done)})

    def run(self, start: int = 0) -> list[dict[str, Any]]:
        """Play rounds `start`.. to the end; the run's lock is held until this returns or raises
        (taken again if this trainer gave it up), so no other writer can interleave."""
        if self.lock is None and self.ranks.main:
            self.lock = RunLock(self.run_dir).acquire()
        try:
            return self._run(start)
        finally:
            if self.lock is not None:
                self.lock.release()
            self.lock = None

    def _run(self, start: int) -> list[dict[str, Any]]:
        cfg = self.cfg
        previous = self.store.round_summaries()
        self.emit({"type": "run_start", "run": cfg.run, "game": self.game_id, "rounds": cfg.rounds,
                   "episodes": cfg.episodes, "start_round": start, "seats": list(self.setup.seats),
                   "live_losses": list(GameInfo.of(self.game_cls).live_losses),
                   "history": previous})
        summaries = list(previous)
        if self.rollouts is None:
            self.rollouts = make_rollouts(cfg, EnvFactory(self.gspec, dict(self.setup.env_kwargs)), self.ranks)
        for k in range(start, cfg.rounds):
            summaries.append(self.play_round(k, summaries))
        self.emit({"type": "run_end", "run": cfg.run, "rounds": len(summaries)})
        return summaries

    def play_round(self, k: int, history: list[dict[str, Any]]) -> dict[str, Any]:
        cfg, setup = self.cfg, self.setup
        t0 = time.perf_counter()
        self.store.start_round(k)
        self.emit({"type": "round_start", "round": k, "episodes": cfg.episodes})
        for seat, s in setup.seats.items():
            s.agent.reset(derive(cfg.seed, "round", k, "agent", seat))
            if s.learner is not None:
                s.learner.reset(derive(cfg.seed, "round", k, "learner", seat))
        n_done = 0

        def on_episode(ep: Episode) -> None:
            nonlocal n_done
            n_done += 1
            self.store.add_episode(ep)
            self.emit({"type": "episode", "round": k, "done": n_done, "total": cfg.episodes})

        agents = {s: v.agent for s, v in setup.seats.items()}
        league, counts = self.league, []
        if league is not None:
            episodes, stats, counts = league.play_round(k, agents[league.learner], on_episode)
        else:
            episodes, stats = self.rollouts.play(agents, cfg.episodes, concurrency=cfg.concurrency,
                                                 seed=derive(cfg.seed, "round", k), on_episode=on_episode, round=k)
        play_s = time.perf_counter() - t0
        phases = {f"play: {seat} acts": float(t) for seat, t in stats.act_s.items()}
        phases["play: game and runner"] = max(0.0, play_s - sum(phases.values()))
        losses = {}
        for seat in setup.learner_order or list(setup.seats):
            s = setup.seats[seat]
            if s.learner is not None and not (league is not None and seat == league.opponent):
                self.emit({"type": "learner_start", "round": k, "seat": seat})
                if hasattr(s.learner, "progress"):  # see arena.types.Learner
                    s.learner.progress = partial(self.learner_progress, k, seat)
                t1 = time.perf_counter()
                losses[seat] = {n: float(v) for n, v in s.learner.update(s.agent, episodes).items()}
                phases[f"learn: {seat}"] = time.perf_counter() - t1
        t1 = time.perf_counter()
        self.rollouts.updated(agents, list(losses))
        ckpts = self.ranks.first(self._write_checkpoints, k)
        metrics = round_metrics(self.game_cls, episodes)
        headline = list(GameInfo.of(self.game_cls).headline)
        phases["checkpoints and metrics"] = time.perf_counter() - t1
        pool = None if league is None else league.after_round(k, agents[league.learner], counts)
        for name in ("exploitability", "meta_exploitability", "exploiter_nash_conv") if pool is not None else ():
            if name in pool:
                metrics[name] = pool[name]
                headline.append(name)
        if pool is not None:
            phases["league: meta-game and exploiters"] = time.perf_counter() - t1 - phases["checkpoints and metrics"]
        wall = time.perf_counter() - t0
        elapsed = sum(h["wall_s"] for h in history) + wall
        summary = {
            "round": k, "episodes": len(episodes), "mean_reward": mean_rewards(episodes),
            "metrics": metrics, "headline": headline,
            "losses": losses, "episodes_per_s": len(episodes) / max(play_s, 1e-9),
            "tokens_per_s": stats.completion_tokens / max(play_s, 1e-9),
            "overhead": stats.overhead_fraction, "mean_batch": stats.mean_batch,
            "wall_s": wall, "play_s": play_s, "elapsed_s": elapsed, "phases": phases,
            "eta_s": elapsed / (k + 1) * (cfg.rounds - k - 1),
        }
        if pool is not None:
            summary["league"] = pool
        self.ranks.first(self._commit_round, k, summary, ckpts)
        self.emit({"type": "round_end", "round": k, "summary": summary})
        return summary

    def _write_checkpoints(self, k: int) -> dict[str, Path]:
        return {seat: write_checkpoint(self.run_dir, seat, k, s.agent, s.learner,
                                       {"game": self.game_id, "spec": s.spec})
                for seat, s in self.setup.seats.items() if can_checkpoint(s.agent)}

    def _commit_round(self, k: int, summary: dict[str, Any], ckpts: dict[str, Path]) -> None:
        self.store.complete_round(k, summary, ckpts)
        if self.cfg.keep_last:  # after the round is committed: a kill before this keeps one round too many
            prune_checkpoints(self.run_dir, self.store.completed_rounds(), self.cfg.keep_last, self.cfg.keep_every)


def phase_totals(summaries: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Seconds per phase over rounds (`summary["phases"]`: play per seat, each learner, checkpoints),
    plus what the store and the round's own bookkeeping took beyond them."""
    out: dict[str, float] = {}
    for s in summaries:
        for name, t in (s.get("phases") or {}).items():
            if isinstance(t, (int, float)):
                out[name] = out.get(name, 0.0) + float(t)
        rest = float(s.get("wall_s") or 0.0) - sum(float(t) for t in (s.get("phases") or {}).values())
        if s.get("phases") and rest > 0:
            out["store and events"] = out.get("store and events", 0.0) + rest
    return out


def new_run(cfg: TrainConfig, runs_dir: Path, on_event=None) -> Trainer:
    """Set up a new run: either a whole run or nothing. Everything is built and checked in a
    hidden setup directory under the run's lock, config.json is written last, and one rename
    gives the directory its run name (`arena.runs.new.claim_new_run`); a setup that fails or is
    killed leaves nothing that a command reads or that blocks `arena train` with the same name.
    Under several processes rank 0 sets the run up and every rank builds the same seats."""
    ranks = join_ranks(cfg.device, cfg.workers)
    runs_dir = Path(runs_dir)
    gspec = game_spec(cfg.game)  # an unknown game is refused before anything is made
    if cfg.workers:  # so is --workers without Ray (not once the run exists and its rounds start)
        from arena.rollout.ray import import_ray

        import_ray()
    run_dir = runs_dir / cfg.run
    staging, lock = ranks.first(claim_new_run, run_dir, runs_dir) or (None, None)
    trainer = None
    try:
        trainer = ranks.each(Trainer, cfg, run_dir, runs_dir, on_event, gspec, create=True, lock=lock,
                             store_dir=staging, ranks=ranks)
        ranks.first(_publish, trainer, staging, run_dir)
    except BaseException:
        if trainer is not None:
            trainer.store.close()
        if ranks.main:
            abandon_new_run(staging, lock)
        raise
    if ranks.main:
        trainer.store = RunStore(run_dir)
    return trainer


def _publish(trainer: Trainer, staging: Path, run_dir: Path) -> None:
    trainer.store.set("run_id", uuid.uuid4().hex)
    trainer.save_config()
    trainer.store.close()
    publish_new_run(staging, run_dir)


def load_run(run_dir: Path, runs_dir: Path, on_event=None, *, game: str | None = None,
             device: str | None = None) -> Trainer:
    """Reopen a run to resume it. Its `config.json` is data: the game must be registered or
    named by the user (`game`), every field is type-checked, and nothing in it is imported.
    Its arena.db must be the one the run wrote (`check_store_belongs`), checked under the lock
    (by rank 0, under several processes) before anything is built or written."""
    raw = read_run_config(run_dir)
    if not raw:
        raise ArenaError(f"{run_dir} has no config.json: its setup never finished; start it again with "
                         f"`arena train ... --run {Path(run_dir).name}`")
    gspec = run_game(raw, game)
    cfg = config_from_json(raw, device)
    ranks = join_ranks(cfg.device, cfg.workers)
    lock = ranks.first(lock_checked_run, Path(run_dir), raw)
    try:
        return ranks.each(Trainer, cfg, run_dir, runs_dir, on_event, gspec=gspec, create=False, lock=lock,
                          ranks=ranks)
    except BaseException:
        if lock is not None:
            lock.release()
        raise


def train_or_reuse(cfg: TrainConfig, runs_dir: Path, on_event=None) -> list[dict[str, Any]]:
    """An experiment's run, asked for again: a new run; or the existing run of that name, when its
    settings are the same (rounds aside), reused for the rounds it has and resumed to `cfg.rounds`.
    A run of that name with other settings is refused in one line. The first `cfg.rounds` round
    summaries. (What `arena experiment ...` does for each of its runs.)"""
    run_dir = Path(runs_dir) / cfg.run
    if not (run_dir / "arena.db").exists():
        trainer = new_run(cfg, runs_dir, on_event)
        try:
            return trainer.run()
        finally:
            trainer.close()
    saved = read_run_config(run_dir)
    mine = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "rounds"}
    # a setting added to TrainConfig after the run was made reads as its default there
    missing = dataclasses.MISSING
    default = {f.name: f.default_factory() if f.default is missing else f.default  # type: ignore[misc]
               for f in dataclasses.fields(cfg) if f.default is not missing or f.default_factory is not missing}
    if any(saved.get(k, default.get(k)) != v for k, v in mine.items()):
        raise ArenaError(f"run {cfg.run!r} exists with other settings; pass --name to start fresh")
    trainer = load_run(run_dir, runs_dir, on_event)
    try:
        trainer.cfg.rounds = cfg.rounds
        start = trainer.restore()
        summaries = trainer.store.round_summaries() if start >= cfg.rounds else trainer.run(start)
        return summaries[:cfg.rounds]
    finally:
        trainer.close()
