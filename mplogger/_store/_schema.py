"""The store's SQLite schema (version 3), opening a store, and the upgrade of older stores (the
worker, a reader).

Only the internal workers and the maintenance calls write; readers open the store through
:func:`connect_reader`, which writes nothing, so a read-only store can be read. Every write
transaction starts with ``BEGIN IMMEDIATE``: in WAL mode, a deferred transaction that later
needs to write fails at once with SQLITE_BUSY instead of waiting.

A version-1 store (mplogger 0.1) is upgraded in place by the first writer that opens it, in one
transaction: its ``history`` table is renamed ``history_v1`` and kept as it is (those rows read
back exactly as before), the block tables and the views are added, and the version becomes 2.
A crash in the middle leaves the version-1 store untouched; readers read either version.
Version 3 adds the artifact tables (:mod:`._artifacts`); a version-2 store gains them the same way.
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
import urllib.parse
from typing import Callable, Optional, TypeVar

from mplogger._store._paths import db_path, no_database

__all__ = ["SCHEMA_VERSION", "BUSY_TIMEOUT_S", "connect", "connect_reader", "retry_locked", "schema_version"]

SCHEMA_VERSION = 3
BUSY_TIMEOUT_S = 30.0

_TABLES = """
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
"""

_V1_HISTORY = """
CREATE TABLE IF NOT EXISTS {name} (
    run_id    TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    step      INTEGER NOT NULL,
    timestamp REAL NOT NULL,
    runtime   REAL NOT NULL,
    data      TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
"""

_BLOCKS = """
CREATE TABLE IF NOT EXISTS history_blocks (
    run_id     TEXT NOT NULL,
    block      INTEGER NOT NULL,
    first_seq  INTEGER NOT NULL,
    count      INTEGER NOT NULL,
    first_step INTEGER NOT NULL,
    last_step  INTEGER NOT NULL,
    steps      TEXT,
    started    REAL NOT NULL,
    runtime_us TEXT NOT NULL,
    keys       TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS history_blocks_run ON history_blocks (run_id, block);
CREATE TABLE IF NOT EXISTS history_columns (
    run_id  TEXT NOT NULL,
    key     TEXT NOT NULL,
    block   INTEGER NOT NULL,
    rows    TEXT,
    vals    TEXT NOT NULL,
    count   INTEGER NOT NULL,
    vmin    REAL,
    vmax    REAL,
    vfirst  REAL,
    vlast   REAL
);
CREATE UNIQUE INDEX IF NOT EXISTS history_columns_key ON history_columns (run_id, key, block);
"""

_ARTIFACTS = """
CREATE TABLE IF NOT EXISTS artifact_names (
    project      TEXT NOT NULL,
    name         TEXT NOT NULL,
    type         TEXT NOT NULL,
    next_version INTEGER NOT NULL,
    PRIMARY KEY (project, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS artifacts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    project     TEXT NOT NULL,
    name        TEXT NOT NULL,
    version     INTEGER NOT NULL,
    type        TEXT NOT NULL,
    digest      TEXT NOT NULL,
    description TEXT,
    metadata    TEXT NOT NULL DEFAULT '{}',
    size        INTEGER NOT NULL,
    files       INTEGER NOT NULL,
    run_id      TEXT,
    created     REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS artifacts_version ON artifacts (project, name, version);
CREATE INDEX IF NOT EXISTS artifacts_digest ON artifacts (project, name, digest);
CREATE TABLE IF NOT EXISTS artifact_files (
    artifact_id INTEGER NOT NULL,
    path        TEXT NOT NULL,
    digest      TEXT NOT NULL,
    size        INTEGER,
    ref         TEXT,
    PRIMARY KEY (artifact_id, path)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS artifact_files_digest ON artifact_files (digest);
CREATE TABLE IF NOT EXISTS artifact_aliases (
    project     TEXT NOT NULL,
    name        TEXT NOT NULL,
    alias       TEXT NOT NULL,
    artifact_id INTEGER NOT NULL,
    PRIMARY KEY (project, name, alias)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS artifact_runs (
    run_id      TEXT NOT NULL,
    artifact_id INTEGER NOT NULL,
    role        TEXT NOT NULL,
    at          REAL NOT NULL,
    PRIMARY KEY (run_id, artifact_id, role)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS artifact_runs_artifact ON artifact_runs (artifact_id, role);
CREATE TABLE IF NOT EXISTS artifact_logs (
    token       TEXT PRIMARY KEY,
    artifact_id INTEGER,
    error       TEXT
) WITHOUT ROWID;
"""

# The views read the history as people do, in the sqlite3 shell; they need SQLite 3.38 (JSON's ->).
_VIEWS = """
CREATE VIEW IF NOT EXISTS history_block_values AS
SELECT run_id, first_seq + off AS seq,
       CASE WHEN steps IS NULL THEN first_step + off ELSE json_extract(steps, '$[' || off || ']') END AS step,
       started + json_extract(runtime_us, '$[' || off || ']') / 1e6 AS timestamp,
       json_extract(runtime_us, '$[' || off || ']') / 1e6 AS runtime,
       key, value, type, element
FROM (SELECT c.run_id, c.key, b.first_seq, b.first_step, b.steps, b.started, b.runtime_us, v.value, v.type,
             c.vals -> ('$[' || v.key || ']') AS element,
             CASE WHEN c.rows IS NULL THEN v.key ELSE json_extract(c.rows, '$[' || v.key || ']') END AS off
      FROM history_columns c JOIN history_blocks b ON b.run_id = c.run_id AND b.block = c.block,
           json_each(c.vals) v);
CREATE VIEW IF NOT EXISTS history_values AS
SELECT run_id, seq, step, timestamp, runtime, key, value, type FROM history_block_values
UNION ALL
SELECT h.run_id, h.seq, h.step, h.timestamp, h.runtime, j.key, j.value, j.type
FROM history_v1 h, json_each(h.data) j;
CREATE VIEW IF NOT EXISTS history AS
SELECT run_id, seq, step, timestamp, runtime, data FROM history_v1
UNION ALL
SELECT run_id, seq, step, timestamp, runtime, json_group_object(key, json(element)) AS data
FROM history_block_values GROUP BY run_id, seq;
"""
_VIEWS_SQLITE = (3, 38)

T = TypeVar("T")


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
    """Open (and, for writers, create or upgrade) the store under ``root``, in WAL mode."""
    path = db_path(root)
    if create:
        os.makedirs(root, exist_ok=True)
    elif not os.path.exists(path):
        raise no_database(root)
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA synchronous=NORMAL")
    retry_locked(lambda: _ensure_wal(conn))
    retry_locked(lambda: _ensure_schema(conn))
    return conn


def connect_reader(root: str) -> sqlite3.Connection:
    """Open the store under ``root`` only to read: nothing is written, so a read-only store reads too.

    A WAL database needs its ``-shm`` index to be read; where that cannot be created (a read-only
    folder, after the last writer closed), the database is read as immutable, which is exact
    while no write-ahead log is pending. With a pending log and no index, it refuses clearly.
    """
    path = db_path(root)
    if not os.path.exists(path):
        raise no_database(root)
    conn = _open_uri(path, "mode=ro")
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError as exc:
        conn.close()
        if "readonly" not in str(exc) and "unable to open" not in str(exc):
            raise
        reason = exc
    wal = f"{path}-wal"
    if os.path.exists(wal) and os.path.getsize(wal) > 0:
        raise PermissionError(
            f"cannot read the store at {root!r}: it is read-only and its write-ahead log {wal} holds "
            f"writes not yet in {os.path.basename(path)}, which only a writable copy can read ({reason})")
    conn = _open_uri(path, "immutable=1")
    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    return conn


def _open_uri(path: str, options: str) -> sqlite3.Connection:
    """A connection to ``path`` opened through an SQLite URI with ``options`` (e.g. ``mode=ro``)."""
    uri = f"file:{urllib.parse.quote(path)}?{options}"
    return sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)


def _ensure_wal(conn: sqlite3.Connection) -> None:
    mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    if mode.lower() != "wal":
        conn.execute("PRAGMA journal_mode=WAL")


def schema_version(conn: sqlite3.Connection) -> Optional[int]:
    """The store's schema version, or None for a database without mplogger's tables yet."""
    try:
        row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" not in str(exc):
            raise
        return None
    return None if row is None else int(row[0])


def _ensure_schema(conn: sqlite3.Connection) -> None:
    version = schema_version(conn)
    if version == SCHEMA_VERSION:
        return
    if version is not None and version > SCHEMA_VERSION:
        raise RuntimeError(f"this store was written by a newer mplogger (schema {version}, "
                           f"this version reads up to {SCHEMA_VERSION})")
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = schema_version(conn)  # another writer may have created or upgraded it meanwhile
        if version != SCHEMA_VERSION:
            if version == 1:
                conn.execute("ALTER TABLE history RENAME TO history_v1")
            script = _TABLES + _V1_HISTORY.format(name="history_v1") + _BLOCKS + _ARTIFACTS
            if sqlite3.sqlite_version_info >= _VIEWS_SQLITE:
                script += _VIEWS
            for statement in _statements(script):
                conn.execute(statement)
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                         (str(SCHEMA_VERSION),))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _statements(script: str) -> list:
    """The statements of ``script`` (views hold no ``;`` of their own)."""
    return [statement for statement in script.split(";") if statement.strip()]




def begin(conn: sqlite3.Connection, write: bool = True) -> None:
    """Open a transaction: a write one takes the write lock now (waiting, bounded, for it)."""
    retry_locked(lambda: conn.execute("BEGIN IMMEDIATE" if write else "BEGIN"))


def commit(conn: sqlite3.Connection) -> None:
    retry_locked(lambda: conn.execute("COMMIT"))


def rollback(conn: sqlite3.Connection) -> None:
    """Undo the open transaction, if SQLite has not already."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")
