"""The one layout every experiment prints: claims by seed beside the paper, then paired differences."""
from __future__ import annotations

from typing import Sequence

from rich.console import Console
from rich.table import Table

from arena.experiment.claims import PairedDifference, Verdict, fmt
from arena.experiment.spec import Experiment, SeedView


def claims_table(exp: Experiment, seeds: Sequence[SeedView], verdicts: Sequence[Verdict]) -> Table:
    t = Table("claim", "arm", *[f"seed {s.seed}" for s in seeds], "paper", "held on",
              title=f"{exp.title}: what {exp.source} reports, per seed", header_style="bold",
              caption="cells: first round -> last round (or arm vs arm); >= marks a lower bound (censored)")
    for v in verdicts:
        held, told = v.count
        cells = [c + ("" if h is None else " ✓" if h else " ✗") for c, h in zip(v.cells, v.held)]
        t.add_row(v.claim.label, v.claim.arm or "-", *cells, v.claim.paper, f"{held}/{told}" if told else "-")
    return t


def differences_table(differences: Sequence[PairedDifference]) -> Table:
    t = Table("paired difference", "per seed", "mean [95% CI over seeds]", "censored",
              title="arm minus arm, paired by seed (and data seed)", header_style="bold",
              caption="CI: percentile bootstrap over seeds; censored: share of the measurements that are bounds")
    for d in differences:
        a, b = d.difference.arms
        digits = d.difference.digits
        per = ", ".join(f"s{s}: {fmt(x, c, digits)}" for s, x, c in zip(d.seeds, d.values, d.censored)) or "-"
        t.add_row(f"{d.difference.label} ({a} - {b})", per,
                  f"{fmt(d.mean, digits=2)} [{fmt(d.lower, digits=2)}, {fmt(d.upper, digits=2)}]",
                  fmt(d.censored_fraction, digits=2))
    return t


def print_results(console: Console, exp: Experiment, seeds: Sequence[SeedView], verdicts: Sequence[Verdict],
                  differences: Sequence[PairedDifference]) -> None:
    console.rule(f"{exp.name}: {len(seeds)} seed(s)")
    console.print(claims_table(exp, seeds, verdicts))
    if differences:
        console.print(differences_table(differences))
    for v in verdicts:
        held, told = v.count
        if told:
            console.print(f"{v.claim.label}{f' ({v.claim.arm})' if v.claim.arm else ''}: held on {held} of {told} "
                          f"seed(s)", highlight=False)
