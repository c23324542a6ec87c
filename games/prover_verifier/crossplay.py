"""The checkability game's sneaky cross-play: every round's prover, asked to be sneaky, against every
round's verifier (`arena tournament --env role=sneaky`, name `sneaky`), and what it shows.

For each (sneaky prover, verifier) the fraction of solutions that are incorrect yet convince the
verifier (scored at least as high as the reference solution of the same problem: the env's
`convinced`) -- the sneaky prover's success against that verifier -- written to
`<run>/tournaments/sneaky/sneaky_success.csv`. Its diagonal (round k's prover against round k's
verifier, the one it trained against) is the co-trained sneaky success.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from rich.console import Console
from rich.table import Table

from arena.checkpoints import round_of_label

NAME = "sneaky"


def sneaky_tournament(run_dir: Path, runs_dir: Path, episodes: int, seed: int, device: str | None,
                      plain: bool = False) -> Any:
    """Play (or finish) the run's sneaky cross-play tournament; print its tables; write the CSV."""
    from arena.store import read_run_config
    from arena.tournament import TournamentConfig, TournamentView, crossplay_table, run_tournament

    console = Console()
    env = {**{k: v for k, v in (read_run_config(run_dir).get("env_kwargs") or {}).items() if k != "problems"},
           "role": "sneaky"}
    console.rule(f"{run_dir.name}: every round's sneaky prover vs every round's verifier")
    cfg = TournamentConfig(run=str(run_dir), name=NAME, episodes=episodes, seed=seed, concurrency=episodes, env=env,
                           bootstrap=200, device=device)
    view = TournamentView(Console(force_terminal=False) if plain else None)
    with view:
        result = run_tournament(cfg, runs_dir, on_event=view)
    for c in result.crossplay:
        console.print(crossplay_table(c))
    table = sneaky_table(run_dir, NAME)
    write_sneaky_csv(table, result.out_dir / "sneaky_success.csv")
    console.print(render_sneaky(table))
    return result


def cotrained_success(run_dir: Path) -> list[float]:
    """Per round k: round k's sneaky prover against round k's verifier ([] without the tournament)."""
    if not (Path(run_dir) / "tournaments" / NAME).is_dir():
        return []
    t = sneaky_table(run_dir, NAME)
    rounds = {_round_of(p) for p in t["provers"]} & {_round_of(v) for v in t["verifiers"]}
    out = [float("nan")] * (max(rounds) + 1 if rounds else 0)
    for i, p in enumerate(t["provers"]):
        for j, v in enumerate(t["verifiers"]):
            if _round_of(p) == _round_of(v) >= 0:
                out[_round_of(p)] = t["success"][i][j]
    return out


def sneaky_table(run_dir: Path, tournament: str) -> dict[str, Any]:
    """{provers, verifiers, success[i][j], incorrect[i], n} from the tournament's stored matches:
    success = incorrect and convinced (the env's `convinced`: scored at least as high as the
    reference solution of the same problem)."""
    from arena.store import read_matches

    cells: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for seats, info in read_matches(run_dir, tournament):
        cells.setdefault((seats["prover"], seats["verifier"]), []).append(info.get("prover", {}))
    provers = sorted({p for p, _ in cells}, key=_round_of)
    verifiers = sorted({v for _, v in cells}, key=_round_of)
    success, incorrect = [], []
    for p in provers:
        success.append([float(np.mean([not i["correct"] and bool(i.get("convinced")) for i in cells[p, v]]))
                        if (p, v) in cells else float("nan") for v in verifiers])
        infos = cells.get((p, verifiers[0]), [])
        incorrect.append(float(np.mean([not i["correct"] for i in infos])) if infos else float("nan"))
    n = len(next(iter(cells.values()))) if cells else 0
    return {"provers": provers, "verifiers": verifiers, "success": success, "incorrect": incorrect, "n": n}


def write_sneaky_csv(table: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["prover", "verifier", "sneaky_incorrect", "sneaky_success", "episodes"])
        for i, p in enumerate(table["provers"]):
            for j, v in enumerate(table["verifiers"]):
                w.writerow([p, v, table["incorrect"][i], table["success"][i][j], table["n"]])


def render_sneaky(table: dict[str, Any]) -> Table:
    t = Table("sneaky prover \\ verifier", *[f"verifier r{_round_of(v)}" for v in table["verifiers"]],
              "incorrect", title=f"sneaky success: incorrect and scored >= the verifier's score of a correct "
                                 f"solution of the same problem ({table['n']} problems per cell)",
              header_style="bold")
    for i, p in enumerate(table["provers"]):
        t.add_row(f"prover r{_round_of(p)}", *[_cell(x) for x in table["success"][i]], f"{table['incorrect'][i]:.2f}")
    t.add_row("mean", *[_cell(_nanmean(col)) for col in zip(*table["success"])], "", style="bold")
    return t


def _nanmean(xs: Sequence[float]) -> float:
    """Mean over the finite entries; NaN (without numpy's empty-slice warning) when there are none."""
    xs = [x for x in xs if not np.isnan(x)]
    return float(np.mean(xs)) if xs else float("nan")


def _cell(x: float) -> str:
    return "-" if np.isnan(x) else f"{x:.2f}"


def _round_of(label: str) -> int:
    """A checkpoint label's round (`verifier/round-2` -> 2); -1 for a label without one (sorts first)."""
    k = round_of_label(label)
    return -1 if k is None else k
