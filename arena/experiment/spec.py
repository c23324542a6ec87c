"""What an experiment declares: its arms, its claims (each with the paper's figure), paired
differences between arms, and the hooks a game adds (measurements after training, extra series,
plots). Declarations only: `arena.experiment.run` runs them, `arena.experiment.claims` judges them.

A game's experiment is one `Experiment` value; `arena experiment <name>` runs it over seeds x arms.
"""
from __future__ import annotations

import argparse
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

NAN = float("nan")


@dataclass(frozen=True)
class Series:
    """One quantity over a run's rounds (NaN where not measured). `censored[i]`: the value is only a
    lower bound (e.g. an attack that never exploited within its budget reads as the budget). `x`:
    what each value is at (default: the run's rounds; e.g. -1 for a model before round 0)."""

    values: tuple[float, ...]
    censored: tuple[bool, ...] = ()
    x: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.censored and len(self.censored) != len(self.values):
            raise ValueError("censored needs one flag per value")
        if self.x and len(self.x) != len(self.values):
            raise ValueError("x needs one position per value")

    def at(self, i: int) -> tuple[float, bool]:
        """(value, censored) at round index i (negative from the end); (NaN, False) when absent."""
        if not self.values or not -len(self.values) <= i < len(self.values):
            return NAN, False
        return self.values[i], bool(self.censored[i]) if self.censored else False

    def measured(self) -> list[int]:
        """Indices of the rounds that have a value."""
        return [i for i, v in enumerate(self.values) if not math.isnan(v)]


@dataclass
class RunView:
    """What the engine read back from one finished run: per-round series by key."""

    arm: str
    seed: int
    run_dir: Path
    rounds: list[int]
    series: dict[str, Series] = field(default_factory=dict)
    data_seed: Any = None

    def get(self, key: str) -> Series:
        return self.series.get(key, Series(tuple(NAN for _ in self.rounds)))


@dataclass
class SeedView:
    """One seed of an experiment: each arm's run (arms that were not run are absent)."""

    seed: int
    runs: dict[str, RunView]


@dataclass(frozen=True)
class Arm:
    """One way of training: the method, a baseline or a control (a recipe and its settings)."""

    name: str
    description: str
    recipe: str = "default"
    params: dict[str, str] = field(default_factory=dict)
    """Recipe settings (`--set`) of this arm, over the experiment's and the user's."""
    rounds: int = 0
    """This arm's rounds when `--rounds` is not given (0: the experiment's `rounds`): for an arm whose
    round is another unit (one policy-gradient pass where the others' is a Grow step)."""


@dataclass(frozen=True)
class Claim:
    """Something the paper reports, checked on one seed's runs.

    `check(seed_view)` returns (the cell to print, held?) -- held is None when the seed cannot
    tell (the arm was not run, or the quantity was not measured)."""

    key: str
    label: str
    paper: str
    """The paper's figure (or what it says), printed beside every seed."""
    check: Callable[[SeedView], tuple[str, bool | None]]
    arm: str = ""
    """The arm the claim is about ("" when it compares arms)."""
    direction: str = ""
    """rises / falls / holds / a relation between arms, for the reader of dynamics.json."""


@dataclass(frozen=True)
class Difference:
    """A paired difference between two arms' runs of the same seed (`arms[0]` minus `arms[1]`), with
    a bootstrap interval over seeds. `pick(run)` -> (value, censored, censored share): the quantity
    of one run (e.g. the last round's steps to exploit) and how much of it is a bound."""

    key: str
    label: str
    arms: tuple[str, str]
    pick: Callable[[RunView], tuple[float, bool, float]]
    digits: int = 2
    """Decimals of the per-seed differences in the table."""


@dataclass(frozen=True)
class MeasureContext:
    """What a game's `measure` hook gets after one run has trained: the run, its arm and seed, the
    parsed command line (the experiment's own flags included) and a progress printer."""

    run_dir: Path
    runs_dir: Path
    arm: Arm
    seed: int
    args: argparse.Namespace
    say: Callable[[str], None]
    phases: dict[str, float] = field(default_factory=dict)
    """Seconds per measurement (`timed`), for the experiment's time breakdown and the run's events."""

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        """Add the block's wall time to `phases[name]`."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.phases[name] = self.phases.get(name, 0.0) + time.perf_counter() - t0


@dataclass
class Experiment:
    """A game's experiment, declared: `arena experiment <name>` runs seeds x arms of it."""

    name: str
    title: str
    source: str
    """The paper (authors, year) the claims come from."""
    game: str
    arms: Sequence[Arm]
    claims: Sequence[Claim]
    differences: Sequence[Difference] = ()
    rounds: int = 4
    """Default rounds per run (`--rounds`)."""
    episodes: int = 64
    """Default episodes per round (`--episodes`)."""
    data_param: str = ""
    """The recipe setting that seeds the data ("" if the recipe has none): the engine sets it to
    `data_offset + seed` (or to `--data-seed`), so seeds vary the data as well as training."""
    data_offset: int = 0
    notes: str = ""
    """What `--help` adds after the arms (e.g. what a round is in this experiment)."""
    default_arms: Sequence[str] = ()
    """Arms run when `--arms` is not given (default: all)."""
    settings: Callable[[argparse.Namespace], dict[str, str]] | None = None
    """Recipe settings that follow from the command line, for every arm (e.g. updates = `--rounds` - 1
    where the last round only measures); `--set` cannot change them."""
    read: Callable[[Path], dict[str, Series]] | None = None
    """Extra series from a finished run's files (attacks, tournaments), beside its round summaries."""
    measure: Callable[[MeasureContext], None] | None = None
    """After a run trains: what the game measures on it (idempotent: a rerun reuses what is done)."""
    add_flags: Callable[[argparse.ArgumentParser], None] | None = None
    """The experiment's own flags, beside the shared ones."""
    report: Callable[[list[SeedView], Path, Any], list[str]] | None = None
    """Tables, files and plots of the game's own, after the claims table: (seeds, out dir, console) ->
    lines to print."""

    def arm(self, name: str) -> Arm:
        for a in self.arms:
            if a.name == name:
                return a
        raise KeyError(name)
