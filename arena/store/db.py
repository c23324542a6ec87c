"""A run's SQLite database, `<run>/arena.db` (WAL): rounds, episodes, checkpoints and run metadata
(`kv`), through `RunStore`; and reading its marks, round summaries and checkpoints without writing
to it. The tournament and study tables live in the same file (`arena.store.tournaments`,
`arena.store.studies`), each headed by a table of what is registered by name (`RegisteredTables`).

A round's rows are committed in one transaction together with its `completed`
mark; rows of a round that never completed are dropped on resume, and rows of a
completed round are never rewritten.
"""
from __future__ import annotations

import json
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from arena.types import ArenaError, Episode

StoreError = sqlite3.Error
"""What the database raises when the machine says no (`database or disk is full`): the CLI reports it in
one line, and a run keeps its completed rounds."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS rounds (
    round INTEGER PRIMARY KEY,
    completed INTEGER NOT NULL DEFAULT 0,
    started REAL, finished REAL,
    summary TEXT
);
CREATE TABLE IF NOT EXISTS episodes (
    round INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    rewards TEXT NOT NULL,
    info TEXT NOT NULL,
    transcript TEXT NOT NULL,
    PRIMARY KEY (round, idx)
);
CREATE TABLE IF NOT EXISTS checkpoints (
    round INTEGER NOT NULL,
    seat TEXT NOT NULL,
    path TEXT NOT NULL,
    PRIMARY KEY (round, seat)
);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class RunStore:
    """SQLite access for one run directory."""

    def __init__(self, run_dir: Path, *, create: bool = False, any_thread: bool = False):
        """`any_thread`: the connection may be used from another thread than this one (the rating
        page's server thread); its user then serialises the calls (`arena.study` under the desk's lock)."""
        self.dir = Path(run_dir)
        db = self.dir / "arena.db"
        if not create and not db.is_file():
            raise ArenaError(f"no arena.db in {self.dir}")
        self.dir.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = sqlite3.connect(db, timeout=30, isolation_level=None, check_same_thread=not any_thread)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.executescript(SCHEMA)
            self.conn.execute("SELECT count(*) FROM rounds").fetchone()
        except sqlite3.DatabaseError as e:
            raise ArenaError(f"corrupt or unreadable run database {db}: {e}") from None

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # -- key/value (run metadata) --------------------------------------------
    def set(self, key: str, value: Any) -> None:
        self.conn.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (key, json.dumps(value)))

    def get(self, key: str, default: Any = None) -> Any:
        row = self.conn.execute("SELECT value FROM kv WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    # -- rounds ---------------------------------------------------------------
    def completed_rounds(self) -> list[int]:
        return [r for (r,) in self.conn.execute("SELECT round FROM rounds WHERE completed=1 ORDER BY round")]

    def round_summaries(self) -> list[dict[str, Any]]:
        rows = self.conn.execute("SELECT summary FROM rounds WHERE completed=1 ORDER BY round")
        return [json.loads(s) for (s,) in rows]

    def discard_incomplete(self) -> None:
        """Drop what an interrupted round left behind (it is replayed from scratch)."""
        with self.transaction() as c:
            c.execute("DELETE FROM episodes WHERE round NOT IN (SELECT round FROM rounds WHERE completed=1)")
            c.execute("DELETE FROM checkpoints WHERE round NOT IN (SELECT round FROM rounds WHERE completed=1)")
            c.execute("DELETE FROM rounds WHERE completed=0")

    def start_round(self, k: int) -> None:
        if k in self.completed_rounds():
            raise ArenaError(f"round {k} is already completed in {self.dir}")
        self.conn.execute("INSERT OR REPLACE INTO rounds(round, completed, started) VALUES (?, 0, ?)", (k, time.time()))

    def add_episode(self, ep: Episode) -> None:
        d = ep.to_json()
        self.conn.execute(
            "INSERT OR REPLACE INTO episodes VALUES (?, ?, ?, ?, ?, ?)",
            (ep.round, ep.index, ep.seed, json.dumps(d["rewards"]), json.dumps(d["info"]),
             json.dumps(d["transcript"])))

    def complete_round(self, k: int, summary: dict[str, Any], checkpoints: dict[str, Path]) -> None:
        with self.transaction() as c:
            for seat, path in checkpoints.items():
                c.execute("INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?)",
                          (k, seat, str(Path(path).relative_to(self.dir))))
            c.execute("UPDATE rounds SET completed=1, finished=?, summary=? WHERE round=?",
                      (time.time(), json.dumps(summary), k))

    def episodes(self, round: int | None = None) -> list[Episode]:
        q = "SELECT round, idx, seed, rewards, info, transcript FROM episodes"
        rows = self.conn.execute(q + (" WHERE round=? ORDER BY idx" if round is not None else " ORDER BY round, idx"),
                                 (() if round is None else (round,)))
        return [Episode.from_json({"index": idx, "seed": seed, "round": rnd, "rewards": json.loads(rw),
                                   "info": json.loads(info), "transcript": json.loads(tr)})
                for rnd, idx, seed, rw, info, tr in rows]

    def checkpoints(self) -> dict[str, dict[int, Path]]:
        """seat -> round -> checkpoint directory, for completed rounds only."""
        out: dict[str, dict[int, Path]] = {}
        rows = self.conn.execute(
            "SELECT c.seat, c.round, c.path FROM checkpoints c JOIN rounds r ON r.round=c.round "
            "WHERE r.completed=1 ORDER BY c.seat, c.round")
        for seat, rnd, path in rows:
            if (self.dir / path).is_dir():  # rounds pruned by --keep-last are not offered
                out.setdefault(seat, {})[rnd] = self.dir / path
        return out


def read_store_marks(run_dir: Path) -> tuple[Any, list[int]]:
    """(the `run_id` marker, the completed rounds) of a run's arena.db, read without writing to it
    (no schema is created in an emptied file): what opening a run checks before it trusts the store."""
    db = Path(run_dir) / "arena.db"
    try:
        conn = sqlite3.connect(db, timeout=30)
    except sqlite3.Error as e:
        raise ArenaError(f"corrupt or unreadable run database {db}: {e}") from None
    try:
        try:
            row = conn.execute("SELECT value FROM kv WHERE key='run_id'").fetchone()
            rounds = [r for (r,) in conn.execute("SELECT round FROM rounds WHERE completed=1 ORDER BY round")]
        except sqlite3.OperationalError as e:
            if "no such table" not in str(e):
                raise
            return None, []
        return (json.loads(row[0]) if row else None), rounds
    except (sqlite3.DatabaseError, ValueError) as e:
        raise ArenaError(f"corrupt or unreadable run database {db}: {e}") from None
    finally:
        conn.close()


class RegisteredTables:
    """Tables of one run's store headed by a registry table `name, game, config, created`: one row per
    tournament or study, by name (the schema creates it as `table`)."""

    schema = ""
    """The `CREATE TABLE IF NOT EXISTS` statements, run when the tables are opened."""
    table = ""
    """The registry table's name."""

    def __init__(self, store: RunStore):
        self.store = store
        store.conn.executescript(self.schema)

    def config(self, name: str) -> dict[str, Any] | None:
        """The config `name` was registered with (None: not registered yet)."""
        row = self.store.conn.execute(f"SELECT config FROM {self.table} WHERE name=?", (name,)).fetchone()
        return json.loads(row[0]) if row is not None else None

    def register(self, name: str, game: str, config: dict[str, Any]) -> None:
        """Register `name`, or replace its config (its creation time stays)."""
        self.store.conn.execute(
            f"INSERT INTO {self.table} VALUES (?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET config=excluded.config",
            (name, game, json.dumps(config), time.time()))


def read_round_summaries(run_dir: Path) -> list[dict[str, Any]]:
    """The summaries of a run's completed rounds, read without writing to its arena.db."""
    db = Path(run_dir) / "arena.db"
    conn = sqlite3.connect(db, timeout=30)
    try:
        rows = conn.execute("SELECT summary FROM rounds WHERE completed=1 ORDER BY round").fetchall()
        return [s for s in (json.loads(r) for (r,) in rows) if isinstance(s, dict)]
    except (sqlite3.Error, ValueError) as e:
        raise ArenaError(f"corrupt or unreadable run database {db}: {e}") from None
    finally:
        conn.close()


def read_checkpoints(run_dir: Path) -> dict[str, dict[int, Path]]:
    """seat -> round -> checkpoint directory of a run's completed rounds."""
    store = RunStore(run_dir)
    try:
        return store.checkpoints()
    finally:
        store.close()
