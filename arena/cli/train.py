"""`arena train` and `arena resume`: self-play rounds with the live view, and their end-of-run report.

The run's `report.html` is rewritten while it trains (after a round, at most every
`REPORT_EVERY_S` seconds, under the lock the training holds) and when the command ends, however
it ends: a crashed or stopped run's report shows the rounds it completed (quietly: the one line
such a command prints is its error).
"""
from __future__ import annotations

import argparse
import dataclasses
import time

from rich.console import Console

from arena.cli.common import add_config_flag, global_options, runs_dir_of
from arena.gameinfo import GameInfo
from arena.options import parse_pairs
from arena.runs.config import TrainConfig
from arena.types import ArenaError

REPORT_EVERY_S = 60.0
"""Least seconds between two rewrites of report.html during training (a page takes a second or two)."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("train", help="self-play training with a live view", parents=[global_options()],
                       description="Self-play training: each round plays episodes, updates learners, writes "
                                   "checkpoints and shows a summary row.")
    s.add_argument("game", help="game id (name-vN) or import path module:Class")
    for name in ("rounds", "episodes", "concurrency", "seed"):
        add_config_flag(s, TrainConfig, name)
    s.add_argument("--run", help="run name (default <game>-s<seed>)")
    add_config_flag(s, TrainConfig, "keep_last", metavar="K")
    add_config_flag(s, TrainConfig, "keep_every", metavar="N")
    add_config_flag(s, TrainConfig, "recipe")
    add_config_flag(s, TrainConfig, "workers", metavar="N")
    add_config_flag(s, TrainConfig, "ray_address", metavar="ADDR")
    s.add_argument("--seat", action="append", metavar="SEAT=SPEC", help="override a seat's agent")
    s.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a recipe hyper-parameter")
    s.add_argument("--env", action="append", metavar="KEY=VALUE",
                   help="game setting: a constructor argument, or text_field=NAME (the observation field LLM "
                        "seats read, docs/outside-games.md); the run, its replays and tournaments keep it")
    s.add_argument("--opponents", action="append", metavar="[SEAT=]RULE",
                   help="league self-play (docs/league.md): SEAT (default: the first seat) learns and the other "
                        "seat is played by a pool of its past checkpoints, drawn per episode by RULE: latest, "
                        "uniform (fictitious self-play), pfsp (weight (1-p)^power, p: the learner's chance to win) "
                        "or nash (the Nash mixture of the pool's meta-game, PSRO); without it both seats play "
                        "as the recipe built them")
    s.add_argument("--pool", action="append", metavar="SPEC",
                   help="with --opponents: a fixed agent (e.g. a scripted bot or ckpt:<run>/<seat>) that joins the "
                        "pool and is never trained; repeatable")
    add_config_flag(s, TrainConfig, "league_episodes", metavar="N")
    add_config_flag(s, TrainConfig, "pfsp_power", metavar="P")
    for name in ("exploiters", "exploiter_steps", "exploiter_episodes"):
        add_config_flag(s, TrainConfig, name, metavar="N")
    s.add_argument("--plain", action="store_true", help="one plain line per round instead of the live view")
    add_tensorboard_flag(s)
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("resume", help="continue a run after a crash", parents=[global_options()],
                       description="Continue a run from its last completed round; it ends as if never stopped.")
    s.add_argument("run", help="run name or path")
    s.add_argument("--rounds", type=int, help="extend the run to this many rounds (at least the rounds it asked for)")
    s.add_argument("--game", dest="game_path", metavar="MODULE:CLASS",
                   help="the game's import path, for a run of a game that is not registered")
    s.add_argument("--plain", action="store_true", help="plain lines instead of the live view")
    s.add_argument("--workers", type=int, metavar="N", help="Ray rollout workers from here on (default: as the "
                   "run was started; 0: in this process); the transcripts do not depend on it")
    s.add_argument("--ray-address", metavar="ADDR", help="with workers: the Ray cluster to join from here on")
    add_tensorboard_flag(s)
    s.set_defaults(func=cmd_resume)


def add_tensorboard_flag(s: argparse.ArgumentParser) -> None:
    s.add_argument("--tensorboard", action=argparse.BooleanOptionalAction, default=None,
                   help="log every round's metrics to <run>/tensorboard/ (default: on when the tensorboard "
                        "package is installed)")


def tracked(args: argparse.Namespace, view):
    """The event sink of a training command: the live view, plus TensorBoard when asked or available.
    Returns (sink, attach, logs): attach(run_dir) starts the TensorBoard log once the run exists;
    the caller closes the logs."""
    from arena import tracking

    wanted = tracking.available() if args.tensorboard is None else args.tensorboard
    if wanted and not tracking.available():
        raise ArenaError("--tensorboard needs the tensorboard package: pip install tensorboard")
    logs: list = []

    def sink(event):
        view(event)
        for log in logs:
            log(event)

    def attach(run_dir):
        if wanted:
            logs.append(tracking.TensorBoardLog(run_dir))

    return sink, attach, logs


class ReportRefresh:
    """Keeps the run's report.html up to date while a trainer plays rounds: an event sink that
    rewrites it after a round when `REPORT_EVERY_S` have passed since it last did (the trainer
    holds the run's lock then, and lends it), and `final()` for the end of the command."""

    def __init__(self, sink):
        self.sink, self.trainer, self.last = sink, None, time.monotonic()

    def __call__(self, event) -> None:
        self.sink(event)
        t = self.trainer
        if event.get("type") == "round_end" and t is not None and t.lock is not None \
                and time.monotonic() - self.last >= REPORT_EVERY_S:
            from arena.report.html import refresh_report

            try:
                refresh_report(t.run_dir, lock=t.lock)
            except ArenaError:
                pass  # training goes on; the final rewrite says what is wrong
            self.last = time.monotonic()

    def final(self, run_dir) -> str:
        """Rewrite the report once the trainer let go of the run; the line to print."""
        from arena.report.html import refresh_line

        return refresh_line(run_dir)

    def after_failure(self, run_dir) -> None:
        """A training that failed or was stopped: the report shows the rounds it completed. A best
        effort, quietly: the command's one line is the training's own error (a full disk that
        stopped the training stops this too)."""
        from arena.report.html import refresh_report

        try:
            refresh_report(run_dir)
        except Exception:  # noqa: BLE001 (best effort, as the docstring says)
            pass

    def close(self, trainer, logs, failed: bool) -> None:
        """Close the trainer (releasing the run) and the trackers' logs; after a failed or stopped
        training, the report shows the rounds it completed (`after_failure`)."""
        trainer.close()
        for log in logs:
            log.close()
        if failed:
            self.after_failure(trainer.run_dir)


def cmd_train(args: argparse.Namespace) -> int:
    from arena.dashboard import LiveView
    from arena.selfplay import new_run

    cfg = TrainConfig(game=args.game, rounds=args.rounds, episodes=args.episodes, concurrency=args.concurrency,
                      seed=args.seed, run=args.run or "", recipe=args.recipe, seats=parse_pairs(args.seat, "--seat"),
                      params=parse_pairs(args.set, "--set"), env=parse_pairs(args.env, "--env"),
                      device=getattr(args, "device", None),
                      keep_last=args.keep_last, keep_every=args.keep_every, workers=args.workers,
                      ray_address=args.ray_address, opponents=opponent_rules(args.opponents, args.game),
                      pool=list(args.pool or []), league_episodes=args.league_episodes, pfsp_power=args.pfsp_power,
                      exploiters=args.exploiters, exploiter_steps=args.exploiter_steps,
                      exploiter_episodes=args.exploiter_episodes)
    view = LiveView(Console(force_terminal=False) if args.plain else None)
    sink, attach, logs = tracked(args, view)
    refresh = ReportRefresh(sink)
    trainer = new_run(cfg, runs_dir_of(args), on_event=refresh)
    if not trainer.ranks.main:  # torchrun: the other ranks train beside rank 0, which shows and writes
        return train_quietly(trainer, trainer.restore)
    refresh.trainer = trainer
    attach(trainer.run_dir)
    failed = True
    try:
        with view:
            trainer.run(trainer.restore())
        failed = False
    finally:
        refresh.close(trainer, logs, failed)
    print_report(trainer)
    print_phases(trainer)
    Console().print(f"run written to {trainer.run_dir} (arena.db, events.jsonl, checkpoints/)\n"
                    f"{refresh.final(trainer.run_dir)}", highlight=False, markup=False, soft_wrap=True)
    return 0


def opponent_rules(values: list[str] | None, game: str) -> dict[str, str]:
    """`--opponents [SEAT=]RULE` as {seat: rule}; a bare RULE is for the game's first seat."""
    if not values:
        return {}
    if len(values) > 1:
        raise ArenaError("--opponents is given once: one learner seat, its opponents' rule")
    if "=" in values[0]:
        return parse_pairs(values, "--opponents")
    from arena.registry import spec as game_spec

    return {game_spec(game).make().possible_agents[0]: values[0]}


def print_phases(trainer) -> None:
    """Where this run's training time went, over its rounds (each round's `phases` in events.jsonl)."""
    from arena.dashboard import phase_table
    from arena.selfplay import phase_totals
    from arena.store import read_round_summaries

    totals = phase_totals(read_round_summaries(trainer.run_dir))
    if totals:
        Console().print(phase_table(totals, "where the training time went (every round)"))


def cmd_resume(args: argparse.Namespace) -> int:
    from arena.dashboard import LiveView
    from arena.selfplay import load_run
    from arena.store import find_run

    base = runs_dir_of(args)
    run_dir = find_run(args.run, base)
    view = LiveView(Console(force_terminal=False) if args.plain else None)
    sink, attach, logs = tracked(args, view)
    refresh = ReportRefresh(sink)
    trainer = load_run(run_dir, base, on_event=refresh, game=args.game_path, device=getattr(args, "device", None))
    rollouts = {k: v for k, v in (("workers", args.workers), ("ray_address", args.ray_address)) if v is not None}
    trainer.cfg = dataclasses.replace(trainer.cfg, **rollouts)  # where rounds are played: no effect on results
    if not trainer.ranks.main:
        return train_quietly(trainer, lambda: resumed_start(trainer, args))
    refresh.trainer = trainer
    failed = False  # a refused resume (checked before any round) writes nothing, its report neither
    try:
        start = resumed_start(trainer, args)
        if start >= trainer.cfg.rounds:
            trainer.finish_events()
            Console().print(f"run {run_dir} already completed its {trainer.cfg.rounds} rounds "
                            "(use --rounds N to extend)")
            return 0
        attach(run_dir)  # once the run is checked and loaded: a refused resume writes nothing
        failed = True
        with view:
            trainer.run(start)
        failed = False
    finally:
        refresh.close(trainer, logs, failed)
    print_report(trainer)
    print_phases(trainer)
    Console().print(f"run {run_dir} resumed and finished\n{refresh.final(run_dir)}", highlight=False, markup=False,
                    soft_wrap=True)
    return 0


def resumed_start(trainer, args: argparse.Namespace) -> int:
    """The round a resumed run starts at; `--rounds` checked and saved."""
    if args.rounds is not None and args.rounds < trainer.cfg.rounds:
        raise ArenaError(f"--rounds {args.rounds}: the run asks for {trainer.cfg.rounds} rounds; "
                         "resume can extend a run, not shorten it")
    start = trainer.restore()  # its checkpoints load before the extended round count is saved
    if args.rounds is not None and args.rounds != trainer.cfg.rounds:
        trainer.cfg.rounds = args.rounds
        trainer.save_config()
    return start


def train_quietly(trainer, start) -> int:
    """A rank other than 0 (torchrun / accelerate launch): train beside rank 0; it writes nothing."""
    try:
        k = start()
        if k < trainer.cfg.rounds:
            trainer.run(k)
    finally:
        trainer.close()
    return 0


def print_report(trainer) -> None:
    """A game's own end-of-run report (`GameInfo.report`, e.g. ReST's table in the paper's layout)."""
    from arena.registry import load_attr

    entry = GameInfo.of(trainer.game_cls).report
    if entry:
        Console().print(load_attr(entry)(trainer.run_dir))
