"""`arena`: the command line. Every command explains itself with --help.

Errors a user can cause (unknown game, bad agent spec, missing run, corrupt
database...) print one line `error: ...` and exit with status 2.
"""
from __future__ import annotations

import argparse
import ast
import importlib.util
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Sequence

from rich.console import Console
from rich.table import Column, Table
from rich.text import Text

from arena.gameinfo import GameInfo, round_metrics
from arena.options import env_settings, parse_pairs
from arena.types import ArenaError

EXPERIMENTS_GROUP = "arena.experiments"
COMMANDS_GROUP = "arena.commands"


def _runs_dir(args: argparse.Namespace) -> Path:
    from arena.store import runs_dir

    return runs_dir(args.runs_dir)


# -- commands ---------------------------------------------------------------------

def cmd_games(args: argparse.Namespace) -> int:
    from arena import registry

    table = Table(header_style="bold")
    table.add_column("game", no_wrap=True)
    for col in ("seats", "recipes", "description"):
        table.add_column(col)
    for gid in registry.list_games():
        spec = registry.spec(gid)
        env = spec.make()
        recipes = ", ".join(GameInfo.of(spec.load()).recipes) or "-"
        table.add_row(gid, ", ".join(env.possible_agents), recipes, spec.description)
    Console().print(table)
    return 0


def _play_target(args: argparse.Namespace) -> tuple[Any, dict[str, Any], dict[str, str]]:
    """(game spec, env kwargs, default seat specs) of `arena play <game or run>`.

    A run (by name or path) plays its game as its recipe set it up, each seat
    played by its checkpoint of round `--round` (default: the last one), or by the
    agent spec the run used where the seat has no checkpoints."""
    from arena import registry
    from arena.store import find_run, read_checkpoints, read_run_config

    try:
        gspec = registry.spec(args.game)
    except ArenaError as unknown_game:
        try:
            run_dir = find_run(args.game, _runs_dir(args))
        except ArenaError:
            raise ArenaError(f"{unknown_game}; nor is it a run in {_runs_dir(args)}/") from None
    else:
        if args.round is not None:
            raise ArenaError("--round needs a run to play (arena play <run> --round K), not a game")
        return gspec, env_settings(gspec.load(), args.env), {}
    config, ckpts = read_run_config(run_dir), read_checkpoints(run_dir)
    specs = dict(config.get("seat_specs") or {})
    for seat, rounds in ckpts.items():
        k = max(rounds) if args.round is None else args.round
        if k not in rounds:
            raise ArenaError(f"run {args.game} has no round-{k} checkpoint for {seat} (rounds: "
                             f"{', '.join(map(str, sorted(rounds)))})")
        specs[seat] = f"ckpt:{args.game}/{seat}/round-{k}"
    gspec = registry.spec(config.get("game_id") or config["game"])
    return gspec, {**(config.get("env_kwargs") or {}), **env_settings(gspec.load(), args.env)}, specs


def cmd_play(args: argparse.Namespace) -> int:
    from arena.runner import mean_rewards, play
    from arena.specs import AgentContext, build_agent

    gspec, env_kwargs, default_specs = _play_target(args)
    given = parse_pairs(args.seat, "--seat")
    seats_of_game = list(gspec.make(**env_kwargs).possible_agents)
    seat_specs = {s: given.get(s) or default_specs.get(s) or "scripted:random" for s in seats_of_game}
    unknown = sorted(set(given) - set(seats_of_game))
    if unknown:
        raise ArenaError(f"unknown seat(s) {', '.join(unknown)} for {gspec.id}; seats: {', '.join(seats_of_game)}")
    agents = {}
    for seat in seats_of_game:
        ctx = AgentContext.for_seat(gspec, seat, _runs_dir(args), args.device, **env_kwargs)
        agents[seat] = build_agent(seat_specs[seat], ctx)
        agents[seat].reset(args.seed + seats_of_game.index(seat))
    console = Console()
    episodes, stats = play(lambda: gspec.make(**env_kwargs), agents, args.episodes,
                           concurrency=args.concurrency, seed=args.seed,
                           on_episode=None if args.quiet else lambda ep: print_episode(console, ep))
    summary = Table("seat", Column("agent", overflow="fold"), "mean reward", "ms/move", header_style="bold",
                    title=f"{gspec.id}: {len(episodes)} episodes")
    means = mean_rewards(episodes)
    for seat in seats_of_game:
        moves = stats.act_batch.get(seat, 0)  # time in the seat's act calls, shared by the moves of a batch
        summary.add_row(seat, seat_specs[seat], f"{means.get(seat, 0.0):.3f}",
                        f"{1000 * stats.act_s[seat] / moves:.1f}" if moves else "-")
    console.print(summary)
    metrics = round_metrics(gspec.load(), episodes)
    if metrics:
        console.print("  ".join(f"{k}={v:.3g}" for k, v in metrics.items()))
    console.print(f"{stats.episodes / max(stats.wall_s, 1e-9):.1f} episodes/s, mean batch {stats.mean_batch:.1f}")
    return 0


def print_episode(console: Console, ep) -> None:
    from rich.markup import escape

    console.rule(f"episode {ep.index} (seed {ep.seed})")
    for step in ep.transcript:
        action = step.action if isinstance(step.action, str) else _show_action(step.action)
        prompt = escape(f"{step.observation.get('prompt', '')!r:.300}")
        console.print(f"[bold]{step.seat}[/bold] ← {prompt}", highlight=False)
        console.print(f"[bold]{step.seat}[/bold] → {escape(action[:600])}", highlight=False)
    console.print("rewards: " + ", ".join(f"{s}={r:+.3f}" for s, r in ep.rewards.items()), highlight=False)


def _show_action(action: Any) -> str:
    import numpy as np

    arr = np.asarray(action) if isinstance(action, (np.ndarray, float, int)) else None
    return f"{float(arr.reshape(-1)[0]):.4g}" if arr is not None and arr.size == 1 else repr(action)


def cmd_train(args: argparse.Namespace) -> int:
    from arena.dashboard import LiveView
    from arena.selfplay import TrainConfig, new_run

    cfg = TrainConfig(game=args.game, rounds=args.rounds, episodes=args.episodes, concurrency=args.concurrency,
                      seed=args.seed, run=args.run or "", recipe=args.recipe, seats=parse_pairs(args.seat, "--seat"),
                      params=parse_pairs(args.set, "--set"), device=args.device)
    base = _runs_dir(args)
    view = LiveView(Console(force_terminal=False) if args.plain else None)
    trainer = new_run(cfg, base, on_event=view)
    try:
        with view:
            trainer.run(trainer.restore())
    finally:
        trainer.close()
    print_report(trainer)
    Console().print(f"run written to {trainer.run_dir} (arena.db, events.jsonl, checkpoints/)")
    return 0


def print_report(trainer) -> None:
    """A game's own end-of-run report (`GameInfo.report`, e.g. ReST's table in the paper's layout)."""
    from arena.registry import load_attr

    entry = GameInfo.of(trainer.game_cls).report
    if entry:
        Console().print(load_attr(entry)(trainer.run_dir))


def cmd_resume(args: argparse.Namespace) -> int:
    from arena.dashboard import LiveView
    from arena.selfplay import load_run
    from arena.store import find_run

    base = _runs_dir(args)
    run_dir = find_run(args.run, base)
    view = LiveView(Console(force_terminal=False) if args.plain else None)
    trainer = load_run(run_dir, base, on_event=view)
    try:
        if args.rounds is not None:
            trainer.cfg.rounds = args.rounds
            trainer.save_config()
        start = trainer.restore()
        if start >= trainer.cfg.rounds:
            Console().print(f"run {run_dir} already completed its {trainer.cfg.rounds} rounds "
                            "(use --rounds N to extend)")
            return 0
        with view:
            trainer.run(start)
    finally:
        trainer.close()
    print_report(trainer)
    Console().print(f"run {run_dir} resumed and finished")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    """Two lines per run: name, game, recipe, rounds, tournaments; the last round's headline figures."""
    from arena.dashboard import fmt_value
    from arena.store import RunStore, read_run_config

    base, console = _runs_dir(args), Console()
    dirs = sorted(d for d in base.glob("*") if (d / "arena.db").is_file()) if base.is_dir() else []
    if not dirs:
        console.print(f"no runs in {base}/ yet (arena train <game> writes one)")
        return 0
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True, style="bold")
    grid.add_column()
    for d in dirs:
        try:
            config = read_run_config(d)
            store = RunStore(d)
            try:
                summaries = store.round_summaries()
            finally:
                store.close()
        except ArenaError as e:
            grid.add_row(d.name, f"unreadable: {e}")
            continue
        tournaments = ", ".join(sorted(t.name for t in (d / "tournaments").glob("*") if t.is_dir()))
        grid.add_row(d.name, f"{config.get('game_id') or config.get('game', '?')} · recipe {config.get('recipe', '?')}"
                             f" · {len(summaries)}/{config.get('rounds', '?')} rounds"
                             + (f" · tournaments: {tournaments}" if tournaments else ""))
        last = summaries[-1] if summaries else {}
        figures = "  ".join(f"{h}={fmt_value(last['metrics'][h])}" for h in last.get("headline", [])
                            if h in last.get("metrics", {}))
        if figures:
            grid.add_row("", Text(f"round {last['round']}: {figures}", style="dim"))
    console.print(grid, highlight=False)
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    from arena.dashboard import watch
    from arena.store import find_run

    run_dir = find_run(args.run, _runs_dir(args))
    try:
        snap = watch(run_dir, follow=not args.once, timeout_s=args.timeout)
    except KeyboardInterrupt:
        return 0
    if not snap.rows and args.once:
        Console().print("no finished rounds yet")
    return 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    from arena import registry
    from arena.registry import load_attr

    gspec = registry.spec(args.game)
    entry = GameInfo.of(gspec.load()).pretrain
    if not entry:
        raise ArenaError(f"game {gspec.id!r} has no pretraining task")
    out = load_attr(entry)(Path(args.out), steps=args.steps, seed=args.seed)
    Console().print(f"tiny model written to {out}")
    return 0


def _plugin(group: str, name: str):
    found = {ep.name: ep for ep in entry_points(group=group)}
    if name not in found:
        raise ArenaError(f"unknown {group.split('.')[-1][:-1]} {name!r}; known: {', '.join(sorted(found)) or 'none'}")
    return found[name].load()


def cmd_experiment(args: argparse.Namespace) -> int:
    if args.name is None:
        names = sorted(ep.name for ep in entry_points(group=EXPERIMENTS_GROUP))
        Console().print("experiments: " + (", ".join(names) or "none"))
        return 0
    if args.runs_dir:
        os.environ["ARENA_RUNS_DIR"] = args.runs_dir  # experiments read it
    return int(_plugin(EXPERIMENTS_GROUP, args.name)(args.rest) or 0)


def cmd_plugin_command(args: argparse.Namespace) -> int:
    return int(_plugin(COMMANDS_GROUP, args.command)(args.rest) or 0)


# -- parser -------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="arena",
        description="Alignment methods played as multi-agent games: self-play training, tournaments, live view.",
        epilog="Agent specs: scripted:<bot> | scripted:random | hf:<dir or hub id> | ckpt:<run>/<seat>/round-<k> | human. "
               "Runs live in ./runs (or --runs-dir / $ARENA_RUNS_DIR).")
    p.add_argument("--runs-dir", help="where runs live (default: $ARENA_RUNS_DIR or ./runs)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    s = sub.add_parser("games", help="list registered games", description="List registered games with their seats and recipes.")
    s.set_defaults(func=cmd_games)

    s = sub.add_parser("play", help="play episodes and print transcripts",
                       description="Play N episodes of a game with the given agents; print transcripts and results. "
                                   "Given a run instead of a game, its game as the run set it up, with the run's "
                                   "checkpoints of the last round (or --round) in every seat that has them.")
    s.add_argument("game", help="game id (name-vN), import path module:Class, or a run (name or path)")
    s.add_argument("--round", type=int, help="with a run: play its round-K checkpoints (default: the last round's)")
    s.add_argument("--seat", action="append", metavar="SEAT=SPEC", help="agent for a seat (default scripted:random)")
    s.add_argument("-n", "--episodes", type=int, default=4, help="episodes to play (default 4)")
    s.add_argument("--concurrency", type=int, default=8, help="episodes in flight at once (default 8)")
    s.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    s.add_argument("--env", action="append", metavar="KEY=VALUE", help="game constructor argument")
    s.add_argument("--device", help="torch device for model agents (default: cuda if available)")
    s.add_argument("-q", "--quiet", action="store_true", help="results only, no transcripts")
    s.set_defaults(func=cmd_play)

    s = sub.add_parser("train", help="self-play training with a live view",
                       description="Self-play training: each round plays episodes, updates learners, writes "
                                   "checkpoints and shows a summary row.")
    s.add_argument("game", help="game id (name-vN) or import path module:Class")
    s.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    s.add_argument("--episodes", type=int, default=64, help="episodes per round (default 64)")
    s.add_argument("--concurrency", type=int, default=16, help="episodes in flight at once (default 16)")
    s.add_argument("--seed", type=int, default=0, help="run seed (default 0)")
    s.add_argument("--run", help="run name (default <game>-s<seed>)")
    s.add_argument("--recipe", default="default", help="which of the game's recipes (default 'default')")
    s.add_argument("--seat", action="append", metavar="SEAT=SPEC", help="override a seat's agent")
    s.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a recipe hyper-parameter")
    s.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    s.add_argument("--plain", action="store_true", help="one plain line per round instead of the live view")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("resume", help="continue a run after a crash",
                       description="Continue a run from its last completed round; it ends as if never stopped.")
    s.add_argument("run", help="run name or path")
    s.add_argument("--rounds", type=int, help="extend the run to this many rounds")
    s.add_argument("--plain", action="store_true", help="plain lines instead of the live view")
    s.set_defaults(func=cmd_resume)

    s = sub.add_parser("runs", help="list the runs: game, recipe, rounds done, last round's figures",
                       description="List the runs in the runs directory with their game, recipe, completed "
                                   "rounds, the last round's headline figures and their tournaments.")
    s.set_defaults(func=cmd_runs)

    s = sub.add_parser("watch", help="show a run's live view from another terminal",
                       description="Follow a run's events.jsonl and show the same live view until it finishes.")
    s.add_argument("run", help="run name or path")
    s.add_argument("--once", action="store_true", help="show what is there now and exit")
    s.add_argument("--timeout", type=float, help="stop following after this many seconds")
    s.set_defaults(func=cmd_watch)

    s = sub.add_parser("pretrain", help="train the tiny default model on a game's synthetic task",
                       description="Train the tiny default model by SFT on the game's synthetic task; "
                                   "writes a standard Hugging Face directory.")
    s.add_argument("game", help="game id")
    s.add_argument("--out", required=True, help="output directory")
    s.add_argument("--steps", type=int, default=1500, help="training steps (default 1500)")
    s.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    s.set_defaults(func=cmd_pretrain)

    s = sub.add_parser("experiment", help="run a named experiment (see `arena experiment`)",
                       description="Run an experiment a game ships, e.g. `arena experiment overoptimization --help`.")
    s.add_argument("name", nargs="?", help="experiment name (omit to list)")
    s.add_argument("rest", nargs=argparse.REMAINDER, help="the experiment's own arguments")
    s.set_defaults(func=cmd_experiment)

    from arena.tournament import add_parser as add_tournament_parser

    add_tournament_parser(sub)
    _add_plugin_parsers(sub)
    return p


def _add_plugin_parsers(sub: argparse._SubParsersAction) -> None:
    """Commands other packages contribute (`arena.commands` entry points, e.g. `bench`)."""
    for ep in sorted(entry_points(group=COMMANDS_GROUP), key=lambda e: e.name):
        summary = _module_summary(ep.module) or f"runs {ep.value}"
        s = sub.add_parser(ep.name, help=f"{summary} (--help: its options)", add_help=False,
                           description=f"Runs {ep.value}; its own --help lists the options.")
        s.add_argument("rest", nargs=argparse.REMAINDER)
        s.set_defaults(func=cmd_plugin_command)


def _module_summary(module: str) -> str:
    """First line of a module's docstring, read from its source without importing it
    (a plugin may import torch: `arena --help` stays fast)."""
    try:
        spec = importlib.util.find_spec(module)
        doc = ast.get_docstring(ast.parse(Path(spec.origin).read_text())) if spec and spec.origin else None
    except (ImportError, OSError, SyntaxError, ValueError):
        return ""
    return (doc or "").strip().split("\n")[0].rstrip(".")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    plugins = {ep.name for ep in entry_points(group=COMMANDS_GROUP)}
    if not argv:  # no command: show what there is to do
        parser.print_help()
        return 2
    if argv[0] in plugins:  # hand everything, --help included, to the plugin
        args = argparse.Namespace(func=cmd_plugin_command, command=argv[0], rest=argv[1:])
    elif len(argv) > 1 and argv[0] == "experiment" and not argv[1].startswith("-"):
        args = argparse.Namespace(func=cmd_experiment, name=argv[1], rest=argv[2:], runs_dir=None)
    else:
        args = parser.parse_args(argv)
    console = Console(stderr=True)
    try:
        return args.func(args)
    except ArenaError as e:
        console.print(f"error: {e}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        console.print("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
