"""A run directory's life outside the round loop, one job a module:

- `arena.runs.config`: `TrainConfig` (what `arena train` was asked to do, saved as the run's
  `config.json`) and reading a saved one back;
- `arena.runs.opening`: opening a run someone handed you, as data (its game, its store);
- `arena.runs.lock`: one writer per run (`RunLock`) and who holds a run now;
- `arena.runs.new`: creating a run, either a whole run or nothing (claim, publish, abandon).

The round loop that fills a run is `arena.selfplay`; the files in it, `arena.store`.
"""
