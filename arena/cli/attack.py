"""`arena attack`: how many steps a fresh attacker needs to exploit each round's frozen checkpoint."""
from __future__ import annotations

import argparse

from rich.console import Console

from arena.cli.common import add_config_flag, global_options, runs_dir_of


def _rounds(text: str) -> list[int]:
    from arena.types import ArenaError

    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ArenaError(f"--rounds takes comma-separated round numbers, e.g. 0,3; not {text!r}") from None


def add_parser(sub: argparse._SubParsersAction) -> None:
    from arena.attack import AttackConfig

    s = sub.add_parser("attack", help="robustness: steps a fresh attacker needs to exploit each round's checkpoint",
                       parents=[global_options()],
                       description="For each chosen round's frozen checkpoint of SEAT, train a fresh attacker "
                                   "(the other seat's initial model in the adversarial role the game names, e.g. "
                                   "a sneaky-only prover against a verifier) for up to --budget steps; report "
                                   "steps-to-exploit and the success at the end, with 95% intervals over attack "
                                   "seeds. Stored in <run>/attacks/<name>/ (attack.csv, attack.json, attack.png, one "
                                   "JSON per round and seed) and shown in the run's report.html, which is rewritten. "
                                   "Interrupted? Run the same command again.")
    s.add_argument("run", help="run name or path")
    s.add_argument("--seat", required=True, help="the seat whose frozen checkpoints are attacked (e.g. verifier)")
    s.add_argument("--rounds", type=str, default=None, help="comma-separated rounds (default: every round)")
    for name in ("seeds", "budget", "window", "seed", "name", "workers"):
        add_config_flag(s, AttackConfig, name)
    s.add_argument("--full", action="store_true", help="train to the budget even after an exploit")
    s.add_argument("--best-response", action="store_true",
                   help="attack with a best response instead of the game's own attacker: the run's recipe rebuilt "
                        "with the attack seed, the other seat's initial agent trained by its learner against the "
                        "frozen checkpoint; success is its gain (r_attacker - r_target) / 2, and 2 x the final gain "
                        "estimates NashConv in a symmetric zero-sum game (docs/league.md)")
    s.add_argument("--option", action="append", metavar="KEY=VALUE",
                   help="a setting of the attacker; with --best-response: episodes (per step, default 64), "
                        "threshold (gain that counts as an exploit, default 0.1)")
    s.add_argument("--game", dest="game_path", metavar="MODULE:CLASS",
                   help="the game's import path, for a run of a game that is not registered")
    s.add_argument("--plain", action="store_true", help="plain progress lines")
    s.set_defaults(func=cmd_attack)


def cmd_attack(args: argparse.Namespace) -> int:
    from arena.attack import AttackConfig, attack_table, run_attack, write_outputs
    from arena.league.exploiter import BUILD
    from arena.options import parse_pairs
    from arena.types import ArenaError

    if args.option and not args.best_response:
        raise ArenaError("--option sets the best response's settings: use it with --best-response")
    cfg = AttackConfig(run=args.run, seat=args.seat, rounds=_rounds(args.rounds) if args.rounds else None,
                       seeds=args.seeds, budget=args.budget, window=args.window, full=args.full, name=args.name,
                       seed=args.seed, device=getattr(args, "device", None), attack=BUILD if args.best_response else "",
                       options=parse_pairs(args.option, "--option"), game=args.game_path, workers=args.workers)
    console = Console()

    def say(line: str, final: bool) -> None:  # every step with --plain, else one line per finished attack
        if final or args.plain:
            console.print(line, highlight=False, markup=False)

    result = run_attack(cfg, runs_dir_of(args), say)
    console.print(attack_table(result))
    files = write_outputs(result)
    console.print(f"wrote {', '.join(p.name for p in files)} to {result.out_dir}", highlight=False, markup=False)
    from arena.report.html import refresh_line

    console.print(refresh_line(result.plan.run_dir), highlight=False, markup=False, soft_wrap=True)
    return 0
