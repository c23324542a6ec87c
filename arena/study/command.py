"""`arena study <run>`: sample the items, serve them to raters, report per checkpoint."""
from __future__ import annotations

import argparse
import secrets
from pathlib import Path
from typing import Any, Callable, Mapping

from rich.console import Console

from arena.checkpoints import parse_checkpoint_path
from arena.cli.common import add_config_flag, global_options, runs_dir_of
from arena.study import StudyConfig
from arena.types import ArenaError
from arena.web.host import WebConfig

RESUMABLE = ("items", "time_limit", "per_item", "seed")
"""Flags whose value a study keeps between runs of the command unless given again (`seed` must match)."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser(
        "study", help="a blind, timed legibility study of a run's checkpoints, taken by people in a browser",
        parents=[global_options()],
        description="Sample helpful solutions of chosen checkpoints on held-out problems (the game's study "
                    "hook), serve them shuffled and unlabelled on a local page with a time limit per item, and "
                    "store every judgement in the run. Prints the link to give raters; ends when every item has "
                    "its judgements (Ctrl-C stops early; the same command goes on later, and extends the study "
                    "given more checkpoints or items). Then reports judge accuracy and median seconds per "
                    "checkpoint with 95% intervals (terminal, studies/<name>/, report.html).")
    s.add_argument("run", help="run name or path")
    add_config_flag(s, StudyConfig, "name")
    s.add_argument("--checkpoint", action="append", dest="checkpoints", metavar="[LABEL=]CKPT",
                   help="a checkpoint to study (repeat): prover/round-2 (this run's), or another run's "
                        "<run>/<seat>/round-<k> or checkpoint directory, optionally labelled (baseline=...); "
                        "default: every round of the studied seat")
    for name in RESUMABLE:
        add_config_flag(s, StudyConfig, name)
    add_config_flag(s, StudyConfig, "seat")
    add_config_flag(s, StudyConfig, "items_fn", "--items-fn")
    add_config_flag(s, StudyConfig, "game", "--game", metavar="MODULE:CLASS")
    add_config_flag(s, StudyConfig, "bootstrap")
    add_config_flag(s, WebConfig, "host", "--web-host", help="address of the page (127.0.0.1: this machine "
                                                             "only; 0.0.0.0 lets other machines in)")
    add_config_flag(s, WebConfig, "port", "--web-port", help="port of the page (0: any free one)")
    s.add_argument("--report-only", action="store_true",
                   help="serve nothing: report the judgements stored so far")
    s.set_defaults(func=cmd_study, **{name: None for name in RESUMABLE})


def cmd_study(args: argparse.Namespace) -> int:
    from arena.runs.opening import run_game
    from arena.store import RunStore, StudyTables, find_run, read_run_config
    from arena.study import items as study_items
    from arena.study.session import serve, study_desk
    from arena.web import WebHost

    err = Console(stderr=True)

    def say(line: str) -> None:
        err.print(line, markup=False, highlight=False, soft_wrap=True)

    run_dir = find_run(args.run, runs_dir_of(args))
    config = read_run_config(run_dir)
    gspec = run_game(config, args.game or None)
    store = RunStore(run_dir)
    try:
        tables = StudyTables(store)
        stored = tables.config(args.name)
        if args.report_only:
            if stored is None:
                raise ArenaError(f"run {run_dir.name} has no study named {args.name!r} (studies: "
                                 f"{', '.join(tables.names()) or 'none'})")
            report_study(run_dir, args.name, console=Console(), bootstrap=args.bootstrap)
            return 0
        cfg = settle_config(args, stored, gspec.load(), run_dir, runs_dir_of(args), study_items.study_seat)
        checkpoints = {label: Path(p) for label, p in cfg["checkpoints"].items()}
        have = study_items.stored_problems(tables, args.name)
        short = any(len(have.get(label, ())) < cfg["items"] for label in checkpoints)
        hook = study_items.items_hook(gspec.load(), cfg["seat"], args.items_fn) if short else None
        tables.register(args.name, gspec.id, cfg)
        env_kwargs = config.get("env_kwargs") or {}
        build = study_items.checkpoint_builder(gspec, cfg["seat"], runs_dir_of(args), getattr(args, "device", None),
                                               env_kwargs, cfg["seed"])
        added = study_items.fill_items(tables, args.name, checkpoints, cfg["items"], cfg["seed"], build, hook,
                                       env_kwargs, say)
        items, judged = tables.items(args.name), tables.judgements(args.name)
    finally:
        store.close()
    if not items:
        raise ArenaError(f"the study hook gave no items for {', '.join(checkpoints)}")
    desk, writer = study_desk(run_dir, args.name, items, judged, time_limit=cfg["time_limit"],
                              per_item=cfg["per_item"], seed=cfg["seed"])
    host = WebHost(WebConfig(args.host, args.port), desk=desk, token=cfg["token"], say=say,
                   heading=f"legibility study · {args.name}")
    say(f"study {args.name}: {len(items)} items ({len(checkpoints)} checkpoints, {added} new), "
        f"{cfg['per_item']} judgement(s) each, {cfg['time_limit']:g} s per item; {len(judged)} judgements stored")
    interrupted = False
    try:
        serve(host, len(items) * cfg["per_item"], say)
    except KeyboardInterrupt:
        interrupted = True
        say("stopped: every judgement so far is stored; run the same command to go on")
    finally:
        writer.close()
    report_study(run_dir, args.name, console=Console(), bootstrap=args.bootstrap)
    return 130 if interrupted else 0


def settle_config(args: argparse.Namespace, stored: dict[str, Any] | None, game_cls: type, run_dir: Path,
                  runs_dir: Path, pick_seat: Callable[[type, str], str]) -> dict[str, Any]:
    """The study's config: a stored study's, extended by what this command adds; a new one's from the flags."""
    from arena.study.items import resolve_checkpoints

    defaults = StudyConfig()
    old = stored or {}
    seat = old.get("seat") or pick_seat(game_cls, args.seat)
    if args.seat and args.seat != seat:
        raise ArenaError(f"study {args.name} is of seat {seat!r}, not {args.seat!r}: a new study needs a new --name")
    if stored is not None and args.seed is not None and args.seed != old.get("seed"):
        raise ArenaError(f"study {args.name} was sampled with --seed {old.get('seed')}: a new seed needs a new --name")
    cfg = {name: getattr(args, name) if getattr(args, name) is not None else old.get(name, getattr(defaults, name))
           for name in RESUMABLE}
    if cfg["items"] < 1 or cfg["per_item"] < 1 or cfg["time_limit"] < 0:
        raise ArenaError("--items and --per-item must be at least 1, --time-limit 0 or more")
    cfg["items"] = max(cfg["items"], int(old.get("items", 0)))  # a study is extended, never shrunk
    checkpoints: dict[str, str] = dict(old.get("checkpoints") or {})
    if args.checkpoints or not checkpoints:
        for label, path in resolve_checkpoints(run_dir, seat, args.checkpoints or [], runs_dir).items():
            if label in checkpoints and Path(checkpoints[label]) != path.resolve():
                raise ArenaError(f"study {args.name} already has a checkpoint labelled {label} "
                                 f"({checkpoints[label]}): label this one differently (LABEL=...)")
            checkpoints[label] = str(path.resolve())
    rounds = {label: _round_of(Path(p)) for label, p in checkpoints.items()}
    return {**cfg, "seat": seat, "checkpoints": checkpoints, "rounds": rounds,
            "token": old.get("token") or secrets.token_urlsafe(16)}


def _round_of(path: Path) -> int | None:
    ref = parse_checkpoint_path(path)
    return ref.round if ref else None


def report_study(run_dir: Path, name: str, *, console: Console, legibility: Mapping[str, Any] | None = None,
                 bootstrap: int = 1000) -> list:
    """Print the study's table and write studies/<name>/ and report.html from the stored judgements."""
    from arena.report.html import write_report
    from arena.store import RunStore, StudyTables
    from arena.study.analysis import analyze, read_legibility
    from arena.study.report import STUDIES_DIR, study_table, write_outputs

    store = RunStore(run_dir)
    try:
        tables = StudyTables(store)
        cfg = tables.config(name) or {}
        items, judged = tables.items(name), tables.judgements(name)
    finally:
        store.close()
    rows = analyze(items, judged, list(cfg.get("checkpoints") or {}), seed=int(cfg.get("seed", 0)),
                   rounds=bootstrap, legibility=read_legibility(run_dir, legibility))
    limit = cfg.get("time_limit")
    console.print(study_table(name, rows, limit))
    summary = {"name": name, "seat": cfg.get("seat"), "time_limit": limit, "per_item": cfg.get("per_item"),
               "items_per_checkpoint": cfg.get("items"), "seed": cfg.get("seed"), "judgements": len(judged),
               "raters": len({j.rater for j in judged}), "items": len(items)}
    paths = write_outputs(run_dir / STUDIES_DIR / name, summary, rows, dict(cfg.get("rounds") or {}))
    report = write_report(run_dir)
    console.print(f"wrote {', '.join(str(p) for p in paths.values())}, {report}", markup=False, highlight=False,
                  soft_wrap=True)
    return rows
