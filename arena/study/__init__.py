"""`arena study`: a blind, timed legibility study over a run's checkpoints, taken by people.

Kirchner et al. (2024) measure legibility with people: contractors judge each helpful
solution of a checkpoint in 45 seconds; their accuracy and speed, round by round and
against a correctness-only baseline, are the evidence. Here:

    items.py      which checkpoints (this run's rounds, other runs' by path) and their items: the
                  game's study hook writes helpful solutions on held-out problems
    session.py    serve the items, shuffled and unlabelled, to raters in the browser (`arena.web`),
                  one time limit per item; every judgement goes into the run's store at once
    analysis.py   per checkpoint: judge accuracy (Wilson 95%) and median seconds (bootstrap 95%),
                  beside the automated legibility measure when one is given
    report.py     the terminal table, `<run>/studies/<name>/study.json` and the paper-style plot
    command.py    the command line

The game's hook (`GameInfo.study`, or `--items-fn` on the command line):

    items(agent, n: int, *, seed: int, settings: dict) -> list[dict]

`agent` is the checkpoint, built for the studied seat; the hook returns up to `n` items, each
`{"problem_id": str, "prompt_text": str, "correct": bool}` -- the same held-out problems (and
ids) for every checkpoint, chosen by `seed` alone, the first n of one sequence (so a study
extended to more items keeps its first ones); `settings` are the run's game settings.
A study is stored under its name in the run's `arena.db` and survives a restart; run the same
command again to go on, with more checkpoints or more items to extend it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_NAME = "legibility"


@dataclass
class StudyConfig:
    """What `arena study` runs (defaults are the paper's where it has one)."""

    run: str = ""
    """The run whose checkpoints are studied (name or path)."""
    name: str = DEFAULT_NAME
    """The study's name in the run's store (run the same name again to go on or extend it)."""
    checkpoints: list[str] = field(default_factory=list)
    """Checkpoints to study: `prover/round-2` (this run's), or `[LABEL=]<ckpt spec or dir>` of another
    run (e.g. a correctness-only baseline); default: every round of the studied seat in this run."""
    items: int = 8
    """Items (held-out problems) per checkpoint."""
    time_limit: float = 45.0
    """Seconds a rater has per item (0: no limit); the paper's contractors had 45."""
    per_item: int = 1
    """Judgements wanted per item, each from a different rater."""
    seed: int = 0
    """Seed of the held-out problems, of the checkpoints' samples and of each rater's item order."""
    seat: str = ""
    """The seat whose checkpoints are studied (default: the one the game's study hook names)."""
    items_fn: str = ""
    """`module:attr` of the items hook, for a game that names none (code named here is imported)."""
    game: str = ""
    """The run's game as `module:Class`, for a run of a game that is not registered."""
    bootstrap: int = 1000
    """Bootstrap resamples of the median-seconds intervals."""


__all__ = ["DEFAULT_NAME", "StudyConfig"]
