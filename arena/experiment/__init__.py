"""Experiments: a game's claims and arms, declared; one engine runs seeds x arms, judges, prints, writes.

    arena experiment checkability --seeds 0,1,2,3,4 --arms game,initial

A game declares an `Experiment` (spec.py): its arms (method, baseline, control: a recipe and its
settings), its claims (what the paper reports, each with the paper's figure and a check on one
seed's runs), paired differences between arms, and hooks for what it measures after training and
reads back from its runs. The engine knows no game:

    spec.py     the declarations: Experiment, Arm, Claim, Difference, Series, RunView, SeedView
    run.py      the command line every experiment shares, the seeds x arms loop (runs reused/resumed)
    claims.py   claim builders (trend, compare), verdicts over seeds, paired differences + bootstrap
    results.py  reading runs back into series; dynamics.json (one schema)
    table.py    the one printed layout
"""
from arena.experiment.run import main as run_experiment
from arena.experiment.spec import Arm, Claim, Difference, Experiment, MeasureContext, RunView, SeedView, Series

__all__ = ["Arm", "Claim", "Difference", "Experiment", "MeasureContext", "RunView", "SeedView", "Series",
           "run_experiment"]
