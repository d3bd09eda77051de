"""The embedded store: one SQLite database (WAL mode) under the root folder.

Layout of a root::

    <root>/mplogger.db          runs, history and the schema version
    <root>/runs/<run_id>/       a folder per run, for its files

Everything in the database is text, numbers or JSON (see :mod:`mplogger._values`): it can be
read with the ``sqlite3`` shell and JSON tools, and nothing in it is ever unpickled.

Only the internal workers write; readers (:mod:`mplogger._api`) read. Several processes may write
to one root at once: every write transaction starts with ``BEGIN IMMEDIATE`` (in WAL mode, a
deferred transaction that later needs to write fails at once with SQLITE_BUSY instead of waiting).
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from typing import Callable, Iterable, Optional, Sequence, TypeVar

__all__ = ["SCHEMA_VERSION", "DB_NAME", "connect", "db_path", "run_dir", "retry_locked"]

SCHEMA_VERSION = 1
DB_NAME = "mplogger.db"
BUSY_TIMEOUT_S = 30.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id         TEXT PRIMARY KEY,
    project    TEXT NOT NULL,
    name       TEXT NOT NULL,
    run_group  TEXT,
    job_type   TEXT,
    tags       TEXT NOT NULL DEFAULT '[]',
    notes      TEXT,
    state      TEXT NOT NULL,
    exit_code  INTEGER,
    created    REAL NOT NULL,
    updated    REAL NOT NULL,
    finished   REAL,
    config     TEXT NOT NULL DEFAULT '{}',
    summary    TEXT NOT NULL DEFAULT '{}',
    host       TEXT,
    pid        INTEGER,
    python     TEXT,
    argv       TEXT NOT NULL DEFAULT '[]',
    rows       INTEGER NOT NULL DEFAULT 0,
    last_step  INTEGER,
    entity     TEXT,
    metadata   TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS runs_project_created ON runs (project, created);
CREATE TABLE IF NOT EXISTS alerts (
    run_id    TEXT NOT NULL,
    timestamp REAL NOT NULL,
    level     TEXT NOT NULL,
    title     TEXT NOT NULL,
    text      TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS output (
    run_id    TEXT NOT NULL,
    timestamp REAL NOT NULL,
    stream    TEXT NOT NULL,
    line      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS output_run ON output (run_id);
CREATE TABLE IF NOT EXISTS system_metrics (
    run_id    TEXT NOT NULL,
    timestamp REAL NOT NULL,
    data      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS system_metrics_run ON system_metrics (run_id, timestamp);
CREATE TABLE IF NOT EXISTS history (
    run_id    TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    step      INTEGER NOT NULL,
    timestamp REAL NOT NULL,
    runtime   REAL NOT NULL,
    data      TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
"""

T = TypeVar("T")


def db_path(root: str) -> str:
    return os.path.join(root, DB_NAME)


def run_dir(root: str, run_id: str) -> str:
    return os.path.join(root, "runs", run_id)


def retry_locked(action: Callable[[], T], timeout: float = BUSY_TIMEOUT_S) -> T:
    """Run ``action``, retrying while SQLite says the database is locked (bounded)."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            return action()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() > deadline:
                raise
        time.sleep(delay * (1 + random.random()))  # backoff while another process holds the lock
        delay = min(delay * 2, 0.2)


def connect(root: str, create: bool = True) -> sqlite3.Connection:
    """Open (and, for writers, create) the store under ``root``, in WAL mode."""
    path = db_path(root)
    if create:
        os.makedirs(root, exist_ok=True)
    elif not os.path.exists(path):
        raise FileNotFoundError(f"no mplogger store at {root!r} (no {DB_NAME} there)")
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA synchronous=NORMAL")
    if create:
        retry_locked(lambda: _ensure_wal(conn))
        retry_locked(lambda: _ensure_schema(conn))
    return conn


def _ensure_wal(conn: sqlite3.Connection) -> None:
    mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    if mode.lower() != "wal":
        conn.execute("PRAGMA journal_mode=WAL")


def _ensure_schema(conn: sqlite3.Connection) -> None:
    row = None
    try:
        row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" not in str(exc):
            raise
    if row is not None:
        if int(row[0]) > SCHEMA_VERSION:
            raise RuntimeError(
                f"this store was written by a newer mplogger (schema {row[0]}, "
                f"this version reads up to {SCHEMA_VERSION})"
            )
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
            (str(SCHEMA_VERSION),),
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


RUN_COLUMNS = (
    "id", "project", "name", "run_group", "job_type", "tags", "notes", "state", "exit_code",
    "created", "updated", "finished", "config", "summary", "host", "pid", "python", "argv",
    "rows", "last_step", "entity", "metadata",
)


def insert_run(conn: sqlite3.Connection, record: dict) -> None:
    names = [c for c in RUN_COLUMNS if c in record]
    conn.execute(
        f"INSERT INTO runs ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
        [record[c] for c in names],
    )


def update_run(conn: sqlite3.Connection, run_id: str, **fields: object) -> None:
    sets = ", ".join(f"{name} = ?" for name in fields)
    conn.execute(f"UPDATE runs SET {sets} WHERE id = ?", [*fields.values(), run_id])


def insert_rows(conn: sqlite3.Connection, rows: Iterable[Sequence]) -> None:
    """Rows of (run_id, seq, step, timestamp, runtime, data JSON): all of them, or none."""
    conn.execute("SAVEPOINT batch")
    try:
        conn.executemany(
            "INSERT INTO history (run_id, seq, step, timestamp, runtime, data) VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
    except BaseException:
        conn.execute("ROLLBACK TO batch")
        conn.execute("RELEASE batch")
        raise
    conn.execute("RELEASE batch")


def fetch_run(conn: sqlite3.Connection, run_id: str) -> Optional[dict]:
    cursor = conn.execute(f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE id = ?", (run_id,))
    row = cursor.fetchone()
    return dict(zip(RUN_COLUMNS, row)) if row else None
