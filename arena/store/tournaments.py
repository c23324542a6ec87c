"""The tournament tables of a run's store: schema, registering a tournament, whole-pairing writes,
completed pairings, matches and ratings (SQL only; `arena.tournament` plans, plays and rates)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Sequence

from arena.store.db import RegisteredTables, RunStore
from arena.types import Episode, jsonable

TOURNAMENT_SCHEMA = """
CREATE TABLE IF NOT EXISTS tournaments (
    name TEXT PRIMARY KEY,
    game TEXT NOT NULL,
    config TEXT NOT NULL,
    created REAL
);
CREATE TABLE IF NOT EXISTS matches (
    tournament TEXT NOT NULL,
    game TEXT NOT NULL,
    pairing TEXT NOT NULL,
    seats TEXT NOT NULL,
    idx INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    rewards TEXT NOT NULL,
    info TEXT NOT NULL,
    PRIMARY KEY (tournament, pairing, idx)
);
CREATE TABLE IF NOT EXISTS ratings (
    tournament TEXT NOT NULL,
    key TEXT NOT NULL,
    method TEXT NOT NULL,
    rating REAL, lower REAL, upper REAL,
    PRIMARY KEY (tournament, key, method)
);
"""
"""`matches.seats` is JSON seat -> entrant label; `pairing` is the readable id
`seat=label | seat=label`; `rewards`/`info` are the episode's per-seat JSON."""


class TournamentTables(RegisteredTables):
    """The tournament tables (`tournaments`, `matches`, `ratings`) of one run's store.

    A pairing's episodes are written in one transaction, so a pairing has either all
    its rows or none; `completed_pairings` counts only pairings with every episode."""

    schema, table = TOURNAMENT_SCHEMA, "tournaments"

    def completed_pairings(self, name: str, episodes: int) -> set[str]:
        """Pairings of a tournament with exactly `episodes` stored episodes."""
        rows = self.store.conn.execute("SELECT pairing, count(*) FROM matches WHERE tournament=? GROUP BY pairing",
                                       (name,)).fetchall()
        return {p for p, n in rows if n == episodes}

    def discard_incomplete(self, name: str, episodes: int) -> None:
        """Drop the rows of pairings that do not have exactly `episodes` episodes."""
        with self.store.transaction() as c:
            for (pairing,) in c.execute("SELECT pairing FROM matches WHERE tournament=? GROUP BY pairing "
                                        "HAVING count(*) != ?", (name, episodes)).fetchall():
                c.execute("DELETE FROM matches WHERE tournament=? AND pairing=?", (name, pairing))

    def add_pairing(self, name: str, game: str, pairing: str, seats: dict[str, str],
                    episodes: Sequence[Episode]) -> None:
        """All episodes of one pairing (`seats`: seat -> entrant label), in one transaction."""
        with self.store.transaction() as c:
            for ep in episodes:
                c.execute("INSERT INTO matches VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                          (name, game, pairing, json.dumps(seats), ep.index, ep.seed,
                           json.dumps(jsonable(ep.rewards)), json.dumps(jsonable(ep.info))))

    def matches(self, name: str) -> list[tuple[str, dict[str, str], int, int, dict[str, Any]]]:
        """`(pairing, seats, idx, seed, rewards)` of every stored episode, in the order written."""
        rows = self.store.conn.execute("SELECT pairing, seats, idx, seed, rewards FROM matches "
                                       "WHERE tournament=? ORDER BY rowid", (name,))
        return [(p, json.loads(s), idx, seed, json.loads(r)) for p, s, idx, seed, r in rows]

    def match_infos(self, name: str) -> list[tuple[dict[str, str], dict[str, Any]]]:
        """`(seats, info)` of every stored episode, in the order written (a game's own tables)."""
        rows = self.store.conn.execute("SELECT seats, info FROM matches WHERE tournament=? ORDER BY rowid",
                                       (name,))
        return [(json.loads(s), json.loads(i)) for s, i in rows]

    def save_ratings(self, name: str, rows: Iterable[tuple[str, str, float | None, float | None, float | None]]
                     ) -> None:
        """Replace a tournament's ratings with `(key, method, rating, lower, upper)` rows."""
        with self.store.transaction() as c:
            c.execute("DELETE FROM ratings WHERE tournament=?", (name,))
            for row in rows:
                c.execute("INSERT INTO ratings VALUES (?, ?, ?, ?, ?, ?)", (name, *row))

    def ratings(self, name: str) -> list[tuple[str, str, float | None, float | None, float | None]]:
        """`(key, method, rating, lower, upper)` rows of a tournament, by key and method."""
        return self.store.conn.execute("SELECT key, method, rating, lower, upper FROM ratings WHERE tournament=? "
                                       "ORDER BY key, method", (name,)).fetchall()


def read_matches(run_dir: Path, tournament: str) -> list[tuple[dict[str, str], dict[str, Any]]]:
    """`(seats, info)` of every stored episode of a run's tournament, in the order written."""
    store = RunStore(run_dir)
    try:
        return TournamentTables(store).match_infos(tournament)
    finally:
        store.close()
