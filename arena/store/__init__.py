"""The run directory and its SQLite store (all of the engine's SQL: runs here, tournaments in
`arena.store.tournaments`, legibility studies in `arena.store.studies`).

    runs/<run>/config.json          the resolved config
    runs/<run>/arena.db             SQLite (WAL): rounds, episodes, checkpoints, ...
    runs/<run>/events.jsonl         one JSON event per line (what `arena watch` tails)
    runs/<run>/checkpoints/<seat>/round-<k>/
    runs/.setup-<run>/              a run being set up (renamed to runs/<run> once whole)

A round's rows are committed in one transaction together with its `completed`
mark; rows of a round that never completed are dropped on resume, and rows of a
completed round are never rewritten.
"""
from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from arena.types import ArenaError, Episode

RUN_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

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


def runs_dir(flag: str | os.PathLike | None = None) -> Path:
    """`--runs-dir`, else `$ARENA_RUNS_DIR`, else `./runs` (which must be a directory, if it exists)."""
    path = Path(flag or os.environ.get("ARENA_RUNS_DIR") or "runs")
    if path.exists() and not path.is_dir():
        raise ArenaError(f"runs dir {path} is a file, not a directory")
    return path


SETUP_PREFIX = ".setup-"
"""`<runs>/.setup-<name>/`: where a new run is built before one rename gives it its name
(`arena.runs.claim_new_run`); no command reads it as a run."""

MAX_RUN_NAME = 100
"""Longest run name: a run's directory and its setup directory stay well under a file name's limit."""


def check_run_name(name: str) -> str:
    if len(name) > MAX_RUN_NAME:
        raise ArenaError(f"invalid run name {name[:40]!r}...: at most {MAX_RUN_NAME} characters, not {len(name)}")
    if ".." in name or "/" in name or "\\" in name or not RUN_NAME_RE.match(name):
        raise ArenaError(f"invalid run name {name!r}: use letters, digits, '.', '_' and '-' (no '/' or '..')")
    return name


def find_run(name_or_path: str, base: Path) -> Path:
    """An existing run by name (under `base`) or by path."""
    p = Path(name_or_path)
    if (p / "arena.db").is_file():
        return p
    if "/" in name_or_path or os.sep in name_or_path:
        raise ArenaError(f"no run at {name_or_path} (no arena.db there)")
    check_run_name(name_or_path)
    if not (base / name_or_path / "arena.db").is_file():
        interrupted = (base / f"{SETUP_PREFIX}{name_or_path}").is_dir()
        raise ArenaError(f"no run named {name_or_path!r} in {base}/"
                         + (" (its setup was interrupted before it finished: `arena train ... --run "
                            f"{name_or_path}` starts it again)" if interrupted else ""))
    return base / name_or_path


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


CONFIG_FIELDS: dict[str, str] = {
    "game": "text", "game_id": "text", "run": "text", "recipe": "text", "run_id": "text",
    "rounds": "count", "episodes": "count", "concurrency": "count", "seed": "whole",
    "device": "text?", "seats": "names", "params": "names", "seat_specs": "names", "env": "names",
    "env_kwargs": "object", "recipe_params": "object?", "versions": "object", "ray_address": "text",
}
"""What each field of a run's `config.json` must hold (`?`: or null); other keys are ignored."""

_CHECKS = {
    "text": ("a string", lambda v: isinstance(v, str)),
    "count": ("a whole number >= 1", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1),
    "whole": ("a whole number", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "names": ("an object of strings", lambda v: isinstance(v, dict)
              and all(isinstance(x, str) for kv in v.items() for x in kv)),
    "object": ("an object", lambda v: isinstance(v, dict)),
}


def read_run_config(run_dir: Path) -> dict[str, Any]:
    """A run's `config.json` (`{}` when it has none), every known field type-checked: the file is
    data someone may hand you, and each reader (play, tournament, runs, resume) gets it checked."""
    path = Path(run_dir) / "config.json"
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise ArenaError(f"cannot read {path}: {e}") from None
    return check_run_config(raw, path)


def check_run_config(raw: Any, path: Path | str = "config.json") -> dict[str, Any]:
    """`raw` if it is a JSON object whose known fields have their types (`CONFIG_FIELDS`)."""
    if not isinstance(raw, dict):
        raise ArenaError(f"{path} is not a JSON object (it is a {type(raw).__name__})")
    for key, want in CONFIG_FIELDS.items():
        nullable = want.endswith("?")
        if key not in raw or (nullable and raw[key] is None):
            continue
        what, ok = _CHECKS[want.rstrip("?")]
        if not ok(raw[key]):
            raise ArenaError(f"{path}: {key} must be {what}{' or null' if nullable else ''}, "
                             f"not {json.dumps(raw[key])[:80]}")
    return raw


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


def read_matches(run_dir: Path, tournament: str) -> list[tuple[dict[str, str], dict[str, Any]]]:
    """`(seats, info)` of every stored episode of a run's tournament, in the order written."""
    from arena.store.tournaments import TournamentTables

    store = RunStore(run_dir)
    try:
        return TournamentTables(store).match_infos(tournament)
    finally:
        store.close()


def append_event(run_dir: Path, event: dict[str, Any]) -> None:
    """Append one event line; a line is written whole with a single write."""
    line = json.dumps({"time": time.time(), **event}, default=str) + "\n"
    with open(Path(run_dir) / "events.jsonl", "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()


def read_events(run_dir: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Events appended since byte `offset`, and the new offset (partial lines wait)."""
    path = Path(run_dir) / "events.jsonl"
    if not path.is_file():
        return [], offset
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read()
    end = data.rfind(b"\n") + 1
    events = []
    for line in data[:end].splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue  # a line cut short by a crash (or not ours): the store is the record, not this log
        if isinstance(event, dict):
            events.append(event)
    return events, offset + end


def write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    os.replace(tmp, path)


from arena.store.tournaments import TOURNAMENT_SCHEMA, TournamentTables  # noqa: E402,F401 (the store owns all SQL)
from arena.store.studies import STUDY_SCHEMA, StudyTables  # noqa: E402,F401
