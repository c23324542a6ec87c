"""Tournaments between checkpoints: schedule, play, store, rate, report.

    arena tournament runs/pvg-1                       every checkpoint of every seat
    arena tournament pvg-1 --seat verifier=ckpt:pvg-1/verifier/round-0,ckpt:pvg-2/verifier/round-4
    arena tournament --game duel-v0 --seat policy_a=ckpt:a/policy_a/round-0,ckpt:b/policy_a/round-3 \\
                     --seat judge=scripted:gold

Game. A tournament of a run plays the game as the run's recipe set it up (the
`env_kwargs` in its `config.json`, e.g. a data file or a reward setting); `--env`
overrides single settings, typed by the game constructor's parameters (`arena.options`).

Entrants. Each seat gets a list of agent specs: the `--seat SEAT=SPEC[,SPEC...]`
list when given, else every checkpoint the run wrote for that seat
(`RunStore.checkpoints()`, as `ckpt:<dir>`), else the spec the run's config used
for that seat (a fixed opponent, e.g. a scripted bot). Labels are
`<seat>/round-<k>` for the run's own checkpoints, `<run>/<seat>/round-<k>` for
another run's, and `<seat>/<spec>` otherwise; ratings are keyed by
`<game id>/<label>`, e.g. `prover-verifier-v1/prover/round-3`.

Schedule. Seats listed in the game's `GameInfo.symmetric_seats` (duel-v0's
`policy_a`, `policy_b`) share one pool of entrants and play round robin: every
ordered pair of distinct entrants, so each pair meets in both seat orders and a
first-mover advantage cancels. Every other seat is crossed with everything
(cross-play). A pairing is one assignment of an entrant to every seat; each is
played for `episodes` episodes with the SAME `play` seed, hence the same episode
seeds (the same problems) for every pairing, and every agent is reset with the
same per-seat seed before each pairing: differences come from the players.

Store. Matches go into the run's `arena.db` (tables `tournaments`, `matches`,
`ratings`; their SQL is `arena.store.TournamentTables`). A pairing's episodes are committed in one
transaction when the pairing finishes, so an interrupted tournament resumes by
playing exactly the pairings that have no rows; re-running after more training
rounds plays only the new checkpoints' pairings.

Ratings (pure functions in `arena.ratings`):
- Symmetric seats: every episode is a match between the two entrants, decided
  by who got the higher reward (equal rewards: a draw). Bradley–Terry with
  bootstrap 95% intervals, plus online Elo in schedule order.
- An asymmetric seat (prover, verifier): entrants of one seat never meet each
  other, so they are compared *paired*: two checkpoints of the seat that faced
  the same opponents on the same episode seed form one match, won by the one
  paid more (a draw if paid the same). This is a paired comparison under
  identical conditions — what the shared seeds buy — and the BT fit over all of
  them ranks the seat's checkpoints. Seats with one entrant are not rated.
- The bootstrap resamples episode seeds (all matches made on one seed move
  together: a cluster bootstrap), because comparisons on one seed share the
  opponent's move and are not independent.
- Mean rewards (per entrant, and per cell of the cross-play matrix) get 95%
  intervals that stay inside the rewards' range (`ratings.bounded_mean_ci`): the
  Wilson score interval for two-valued rewards (win/loss, ±1), else the bootstrap
  percentile interval of the mean.
- Cross-play matrix: mean reward of the row entrant against the column entrant,
  with those per-cell intervals. For symmetric seats one matrix (both seat orders pooled); for an
  asymmetric game one matrix per seat of the two seats with the most entrants
  (rows: first seat's entrants, columns: second's), other seats pooled.

Output: rich tables that fit 80 columns (entrants by short label, `p3` for
`prover/round-3`, with a legend), and `runs/<run>/tournaments/<name>/` with
`ratings.csv`, `crossplay.csv`, `tournament.json` and `crossplay.png`; `arena report
<run>` puts them in the run's `report.html`.

Modules, one job each:
    plan.py      TournamentConfig, Entrant, SeatGroup, Plan, plan_tournament (who plays whom)
    play.py      run_tournament, play_missing: the missing pairings, the agent cache
    analysis.py  MatchRecord -> TournamentResult: ratings per group, cross-play (pure)
    report.py    CSV/JSON files, heatmap, stored ratings, rich tables, TournamentView
    command.py   `arena tournament`: add_parser, run_command
"""
from arena.tournament.analysis import (RATING_COLUMNS, CrossPlay, GroupResult, MatchRecord, TournamentResult,
                                       analyze, rating_rows)
from arena.tournament.command import add_parser, parse_seat_lists, run_command
from arena.tournament.plan import Entrant, Plan, SeatGroup, TournamentConfig, plan_tournament
from arena.tournament.play import play_missing, run_tournament
from arena.tournament.report import TournamentView, crossplay_table, ratings_table, save_ratings, write_outputs

__all__ = [
    "RATING_COLUMNS", "CrossPlay", "Entrant", "GroupResult", "MatchRecord", "Plan", "SeatGroup",
    "TournamentConfig", "TournamentResult", "TournamentView", "add_parser", "analyze", "crossplay_table",
    "parse_seat_lists", "plan_tournament", "play_missing", "rating_rows", "ratings_table",
    "run_command", "run_tournament", "save_ratings", "write_outputs",
]
