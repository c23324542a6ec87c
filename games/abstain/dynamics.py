"""Answer-or-abstain dynamics over seeds, beside what the sources claim.

Each dynamic is read from one seed's `summary.json` (written by `arena experiment
abstention`): the base (round 0) and every method after the last update, held-out
questions, k = 1 unless the row says otherwise. A dynamic *holds* on a seed when the
comparison it names is strict in the claimed direction; a method that was not run
makes the cell `-` (not counted). The sources give directions, not numbers on this
task, so the `paper` column states the claim (docs/algorithms.md#answer-or-abstain).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

Reading = tuple[str, "bool | None"]
"""(what the cell shows, whether the dynamic held; None: not measured)."""


def _final(s: dict[str, Any], method: str, k: float = 1.0) -> dict[str, Any] | None:
    return next((r for r in s.get("final", []) if r["method"] == method and float(r["k"]) == k), None)


def _base(s: dict[str, Any]) -> dict[str, Any] | None:
    return (s.get("base") or [None])[0]


def _compare(a: dict[str, Any] | None, b: dict[str, Any] | None, key: str, names: tuple[str, str],
             higher: bool) -> Reading:
    """`b[key]` strictly above (higher) or below `a[key]`, shown as 'name_a x -> name_b y'."""
    if a is None or b is None or a.get(key) is None or b.get(key) is None:
        return "-", None
    x, y = float(a[key]), float(b[key])
    return f"{names[0]} {x:.2f} -> {names[1]} {y:.2f}", (y > x if higher else y < x)


def _thresholds_rise(s: dict[str, Any]) -> Reading:
    sweep = sorted((r for r in s.get("sweep", []) if r.get("threshold_logistic") is not None),
                   key=lambda r: float(r["k"]))
    if len(sweep) < 2:
        return "-", None
    ts = [float(r["threshold_logistic"]) for r in sweep]
    cell = " < ".join(f"{t:.2f}" for t in ts) + " (k/(1+k) " + " ".join(
        f"{float(r['k']) / (1 + float(r['k'])):.2f}" for r in sweep) + ")"
    return cell, all(b > a for a, b in zip(ts, ts[1:]))


@dataclass(frozen=True)
class Dynamic:
    label: str
    paper: str
    read: Callable[[dict[str, Any]], Reading]


DYNAMICS: tuple[Dynamic, ...] = (
    Dynamic("SFT learns to guess: unknown-fact abstention falls below the base's",
            "SFT on facts the model lacks teaches confident answers (Goldberg / Schulman 2023)",
            lambda s: _compare(_base(s), _final(s, "sft"), "unknown_abstention", ("base", "sft"), False)),
    Dynamic("SFT raises hallucination (wrong / answered) above the base's",
            "rises as unknown examples are fitted (Gekhman et al. 2024)",
            lambda s: _compare(_base(s), _final(s, "sft"), "hallucination", ("base", "sft"), True)),
    Dynamic("RL abstains on unknown facts more than SFT",
            "RL scoring wrong below abstain teaches 'I don't know' (Goldberg / Schulman 2023)",
            lambda s: _compare(_final(s, "sft"), _final(s, "rl"), "unknown_abstention", ("sft", "rl"), True)),
    Dynamic("RL hallucinates less than SFT",
            "RL learns to abstain where its knowledge ends (Goldberg / Schulman 2023)",
            lambda s: _compare(_final(s, "sft"), _final(s, "rl"), "hallucination", ("sft", "rl"), False)),
    Dynamic("RL answers the facts it knows better than SFT (known accuracy)",
            "abstains *only* where its knowledge ends (Goldberg / Schulman 2023)",
            lambda s: _compare(_final(s, "sft"), _final(s, "rl"), "known_accuracy", ("sft", "rl"), True)),
    Dynamic("RL's payoff (+1 right, 0 abstain, -k wrong) beats SFT's",
            "the game's optimum is a calibrated threshold, which SFT never learns",
            lambda s: _compare(_final(s, "sft"), _final(s, "rl"), "payoff", ("sft", "rl"), True)),
    Dynamic("RL's learned answer threshold rises with the penalty k",
            "answering pays iff P(correct) > k/(1+k)",
            _thresholds_rise),
    Dynamic("a learned judge as the reward: rl-judge abstains on unknown facts more than SFT",
            "a learned comparison model can replace the human reward (Goldberg / Schulman 2023)",
            lambda s: _compare(_final(s, "sft"), _final(s, "rl-judge"), "unknown_abstention", ("sft", "rl-judge"),
                               True)),
    Dynamic("'I don't know' labels (sft-idk) teach refusal: unknown abstention above SFT's",
            "R-Tuning teaches refusal (Zhang et al. 2024)",
            lambda s: _compare(_final(s, "sft"), _final(s, "sft-idk"), "unknown_abstention", ("sft", "sft-idk"),
                               True)),
)


def read_summary(out_dir: Path) -> dict[str, Any]:
    return json.loads((Path(out_dir) / "summary.json").read_text())


def verdicts(summaries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per dynamic: its cells per seed, the claim, and on how many measured seeds it held."""
    out = []
    for d in DYNAMICS:
        readings = [d.read(s) for s in summaries]
        measured = [ok for _, ok in readings if ok is not None]
        out.append({"dynamic": d.label, "paper": d.paper, "cells": [c for c, _ in readings],
                    "held": [ok for _, ok in readings], "held_on": sum(measured), "measured": len(measured)})
    return out


def over_seeds_table(seeds: Sequence[int], rows: Sequence[dict[str, Any]]):
    from rich.table import Table

    t = Table("dynamic", *[f"seed {s}" for s in seeds], "paper", "reproduced on",
              title="answer or abstain: each dynamic per seed (held-out questions, last update, k = 1)",
              header_style="bold", show_lines=True)
    for r in rows:
        cells = [c + ("" if ok is None else " ✓" if ok else " ✗") for c, ok in zip(r["cells"], r["held"])]
        t.add_row(r["dynamic"], *cells, r["paper"], f"{r['held_on']}/{r['measured']} seeds")
    return t
