"""`arena play`: play episodes of a game (or of a run's checkpoints) and print transcripts.

Model text reaches the terminal exactly as written: it is never read as markup.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from typing import Any

from rich.console import Console
from rich.table import Column, Table
from rich.text import Text

from arena.cli.common import add_config_flag, global_options, runs_dir_of
from arena.gameinfo import round_metrics
from arena.options import env_settings, parse_pairs
from arena.textobs import shown_text
from arena.types import ArenaError
from arena.web.host import WebConfig, WebHost


@dataclass
class PlayConfig:
    """What `arena play` plays by default."""

    episodes: int = 4
    """Episodes to play."""
    concurrency: int = 8
    """Episodes in flight at once (the batch an agent's `act` sees)."""
    seed: int = 0
    """Seed of the episodes (and of the agents' samplers)."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("play", help="play episodes and print transcripts", parents=[global_options()],
                       description="Play N episodes of a game with the given agents; print transcripts and results. "
                                   "Given a run instead of a game, its game as the run set it up, with the run's "
                                   "checkpoints of the last round (or --round) in every seat that has them.")
    s.add_argument("game", help="game id (name-vN), import path module:Class, or a run (name or path)")
    s.add_argument("--round", type=int, help="with a run: play its round-K checkpoints (default: the last round's)")
    s.add_argument("--game", dest="game_path", metavar="MODULE:CLASS",
                   help="with a run of a game that is not registered: the game's import path (code named on "
                        "the command line is imported; a run directory never names code to import)")
    s.add_argument("--seat", action="append", metavar="SEAT=SPEC", help="agent for a seat (default scripted:random)")
    add_config_flag(s, PlayConfig, "episodes", "-n", "--episodes")
    add_config_flag(s, PlayConfig, "concurrency")
    add_config_flag(s, PlayConfig, "seed")
    s.add_argument("--env", action="append", metavar="KEY=VALUE",
                   help="game setting: a constructor argument, or text_field=NAME (the observation field LLM seats "
                        "read, for a game that does not name it: docs/outside-games.md)")
    add_config_flag(s, WebConfig, "host", "--web-host",
                    help="human:web seats: address the rating page is served on (localhost: this machine only)")
    add_config_flag(s, WebConfig, "port", "--web-port",
                    help="human:web seats: port of the rating page (0: any free one)")
    s.add_argument("-q", "--quiet", action="store_true", help="results only, no transcripts")
    s.set_defaults(func=cmd_play)


def _play_target(args: argparse.Namespace) -> tuple[Any, dict[str, Any], dict[str, str]]:
    """(game spec, env kwargs, default seat specs) of `arena play <game or run>`.

    A run (by name or path) plays its game as its recipe set it up, each seat
    played by its checkpoint of round `--round` (default: the last one), or by the
    agent spec the run used where the seat has no checkpoints."""
    from arena import registry
    from arena.runs.opening import run_game
    from arena.store import find_run, read_checkpoints, read_run_config

    try:
        gspec = registry.spec(args.game)
    except ArenaError as unknown_game:
        try:
            run_dir = find_run(args.game, runs_dir_of(args))
        except ArenaError:
            raise ArenaError(f"{unknown_game}; nor is it a run in {runs_dir_of(args)}/") from None
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
    gspec = run_game(config, args.game_path)
    return gspec, {**(config.get("env_kwargs") or {}), **env_settings(gspec.load(), args.env)}, specs


def cmd_play(args: argparse.Namespace) -> int:
    from arena.runner import mean_rewards, play
    from arena.specs import AgentContext, build_agent

    for name in ("episodes", "concurrency"):
        if getattr(args, name) < 1:
            raise ArenaError(f"--{name} must be at least 1")
    gspec, env_kwargs, default_specs = _play_target(args)
    given = parse_pairs(args.seat, "--seat")
    seats_of_game = list(gspec.make(**env_kwargs).possible_agents)
    seat_specs = {s: given.get(s) or default_specs.get(s) or "scripted:random" for s in seats_of_game}
    unknown = sorted(set(given) - set(seats_of_game))
    if unknown:
        raise ArenaError(f"unknown seat(s) {', '.join(unknown)} for {gspec.id}; seats: {', '.join(seats_of_game)}")
    agents = {}
    device = getattr(args, "device", None)
    console = Console()
    # served only if a human:web seat asks for it (it starts on the first move that seat must make)
    web = WebHost(WebConfig(args.host, args.port), say=lambda line: console.print(line, markup=False, highlight=False,
                                                                                  soft_wrap=True))
    for seat in seats_of_game:
        ctx = replace(AgentContext.for_seat(gspec, seat, runs_dir_of(args), device, **env_kwargs), web=web)
        agents[seat] = build_agent(seat_specs[seat], ctx)
        agents[seat].reset(args.seed + seats_of_game.index(seat))

    def on_episode(ep) -> None:
        if not args.quiet:
            print_episode(console, ep)
        for agent in agents.values():  # e.g. a human:web seat tells its people how the episode ended
            if callable(getattr(agent, "episode_over", None)):
                agent.episode_over(ep)

    try:
        episodes, stats = play(lambda: gspec.make(**env_kwargs), agents, args.episodes,
                               concurrency=args.concurrency, seed=args.seed, on_episode=on_episode)
    finally:
        web.stop(linger_s=2.0 if web.started else 0.0)
    summary = Table("seat", Column("agent", overflow="fold"), "mean reward", "ms/move", header_style="bold",
                    title=f"{gspec.id}: {len(episodes)} episodes")
    means = mean_rewards(episodes)
    for seat in seats_of_game:
        moves = stats.act_batch.get(seat, 0)  # time in the seat's act calls, shared by the moves of a batch
        summary.add_row(seat, Text(seat_specs[seat]), f"{means.get(seat, 0.0):.3f}",
                        f"{1000 * stats.act_s[seat] / moves:.1f}" if moves else "-")
    console.print(summary)
    metrics = round_metrics(gspec.load(), episodes)
    if metrics:
        console.print("  ".join(f"{k}={v:.3g}" for k, v in metrics.items()), markup=False)
    console.print(f"{stats.episodes / max(stats.wall_s, 1e-9):.1f} episodes/s, mean batch {stats.mean_batch:.1f}")
    return 0


def print_episode(console: Console, ep) -> None:
    """One episode's transcript; the texts are printed as plain text, never as markup."""
    console.rule(Text(f"episode {ep.index} (seed {ep.seed})"))
    for step in ep.transcript:
        action = step.action if isinstance(step.action, str) else show_action(step.action)
        prompt = f"{shown_text(step.observation)!r:.300}"
        console.print(Text.assemble((step.seat, "bold"), " ← ", prompt), highlight=False)
        console.print(Text.assemble((step.seat, "bold"), " → ", action[:600]), highlight=False)
    console.print(Text("rewards: " + ", ".join(f"{s}={r:+.3f}" for s, r in ep.rewards.items())), highlight=False)


def show_action(action: Any) -> str:
    """A non-text action (a score) as a short number."""
    import numpy as np

    arr = np.asarray(action) if isinstance(action, (np.ndarray, float, int)) else None
    return f"{float(arr.reshape(-1)[0]):.4g}" if arr is not None and arr.size == 1 else repr(action)
