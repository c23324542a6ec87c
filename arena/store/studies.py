"""The legibility-study tables of a run's store: studies, their items, and people's judgements
(SQL only; `arena.study` builds items, serves them and reports).

A judgement is one row, written (autocommit) the moment a rater answers or runs out of
time, before the page is told it was taken: a study killed at any point keeps every
judgement a rater saw accepted, and goes on from there when started again.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from arena.store.db import RegisteredTables

STUDY_SCHEMA = """
CREATE TABLE IF NOT EXISTS studies (
    name TEXT PRIMARY KEY,
    game TEXT NOT NULL,
    config TEXT NOT NULL,
    created REAL
);
CREATE TABLE IF NOT EXISTS study_items (
    study TEXT NOT NULL,
    item TEXT NOT NULL,
    checkpoint TEXT NOT NULL,
    problem_id TEXT NOT NULL,
    prompt TEXT NOT NULL,
    correct INTEGER NOT NULL,
    PRIMARY KEY (study, item),
    UNIQUE (study, checkpoint, problem_id)
);
CREATE TABLE IF NOT EXISTS judgements (
    study TEXT NOT NULL,
    rater TEXT NOT NULL,
    item TEXT NOT NULL,
    checkpoint TEXT NOT NULL,
    verdict REAL,
    seconds REAL NOT NULL,
    timed_out INTEGER NOT NULL,
    correct INTEGER,
    time_limit REAL,
    created REAL NOT NULL,
    PRIMARY KEY (study, rater, item)
);
"""
"""`study_items.correct`: the item's ground truth (the solution is correct). `judgements.verdict`:
+1 convincing, -1 not (NULL when the time ran out); `judgements.correct`: whether the verdict
matched the ground truth (NULL when the time ran out)."""


@dataclass(frozen=True)
class StudyItem:
    """One item of a study: what raters read, and (never shown to them) whose and whether correct."""

    item: str
    checkpoint: str
    problem_id: str
    prompt: str
    correct: bool


@dataclass(frozen=True)
class Judgement:
    """One rater's judgement of one item."""

    rater: str
    item: str
    checkpoint: str
    verdict: float | None
    seconds: float
    timed_out: bool
    correct: bool | None
    time_limit: float | None


class StudyTables(RegisteredTables):
    """The study tables (`studies`, `study_items`, `judgements`) of one run's store."""

    schema, table = STUDY_SCHEMA, "studies"

    def names(self) -> list[str]:
        return [n for (n,) in self.store.conn.execute("SELECT name FROM studies ORDER BY created, name")]

    def add_items(self, name: str, items: list[StudyItem]) -> None:
        """Add items in one transaction (an item already there is kept as it was)."""
        with self.store.transaction() as c:
            for it in items:
                c.execute("INSERT OR IGNORE INTO study_items VALUES (?, ?, ?, ?, ?, ?)",
                          (name, it.item, it.checkpoint, it.problem_id, it.prompt, int(it.correct)))

    def items(self, name: str) -> list[StudyItem]:
        rows = self.store.conn.execute("SELECT item, checkpoint, problem_id, prompt, correct FROM study_items "
                                       "WHERE study=? ORDER BY rowid", (name,))
        return [StudyItem(i, c, p, t, bool(k)) for i, c, p, t, k in rows]

    def add_judgement(self, name: str, j: Judgement) -> None:
        """One judgement, committed at once (a second one by the same rater of the same item fails)."""
        self.store.conn.execute(
            "INSERT INTO judgements VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (name, j.rater, j.item, j.checkpoint, j.verdict, float(j.seconds), int(j.timed_out),
             None if j.correct is None else int(j.correct), j.time_limit, time.time()))

    def judgements(self, name: str) -> list[Judgement]:
        rows = self.store.conn.execute(
            "SELECT rater, item, checkpoint, verdict, seconds, timed_out, correct, time_limit FROM judgements "
            "WHERE study=? ORDER BY rowid", (name,))
        return [Judgement(r, i, c, v, s, bool(t), None if k is None else bool(k), lim)
                for r, i, c, v, s, t, k, lim in rows]
