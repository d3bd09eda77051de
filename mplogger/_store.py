"""The embedded store: one SQLite database (WAL mode) under the root folder.

Layout of a root::

    <root>/mplogger.db          runs, history and the schema version
    <root>/runs/<run_id>/       a folder per run, for its files

Everything in the database is text, numbers or JSON (see :mod:`mplogger._values`): it can be
read with the ``sqlite3`` shell and JSON tools, and nothing in it is ever unpickled.

Only the internal workers write; readers (:mod:`mplogger._api`) read, through
:func:`connect_reader`, which writes nothing, so a read-only store can be read. Several processes
may write to one root at once: every write transaction starts with ``BEGIN IMMEDIATE`` (in WAL
mode, a deferred transaction that later needs to write fails at once with SQLITE_BUSY instead of
waiting).

A run id is also its folder's name, so every id that enters (``init(id=...)``, a resume record, a
row read from a store someone else made) must pass :func:`check_run_id`, and :func:`run_dir`
applies it: 1 to 128 ASCII letters, digits, ``_``, ``.`` and ``-``, starting with a letter, digit
or ``_`` (so never ``.``, ``..``, a hidden name or a command-line option), and no path separator
or control character.
"""

from __future__ import annotations

import os
import random
import string
import re
import sqlite3
import time
import urllib.parse
from typing import Any, Callable, Iterable, Optional, Sequence, TypeVar

__all__ = ["SCHEMA_VERSION", "DB_NAME", "RUN_ID_RULE", "check_run_id", "connect", "connect_reader", "db_path",
           "has_database", "is_run_id", "run_dir", "retry_locked"]

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


RUN_ID_MAX = 128
_RUN_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,%d}" % (RUN_ID_MAX - 1))
RUN_ID_RULE = (f"a run id is its folder name: 1 to {RUN_ID_MAX} ASCII letters, digits, '_', '.' or '-', "
               "starting with a letter, a digit or '_'")


def is_run_id(value: Any) -> bool:
    """Whether ``value`` is a usable run id (see :func:`check_run_id`)."""
    return isinstance(value, str) and _RUN_ID.fullmatch(value) is not None


UNSEEDED = random.SystemRandom()
"""Random choices that user code cannot replay: scripts seed ``random`` (Lightning's
``seed_everything``, transformers' ``set_seed``), and every run of such a script would get the same id."""


def new_run_id(length: int = 8) -> str:
    """A fresh run id: ``length`` lowercase letters and digits, as wandb's."""
    return "".join(UNSEEDED.choices(string.ascii_lowercase + string.digits, k=length))


def check_run_id(run_id: Any, where: str) -> str:
    """``run_id`` if it is safe as a folder name; else ValueError naming it and ``where`` it came from."""
    if not is_run_id(run_id):
        raise ValueError(f"{where}: {run_id!r} is not a usable run id ({RUN_ID_RULE})")
    return run_id


def run_dir(root: str, run_id: str) -> str:
    """The folder of run ``run_id``: always inside ``<root>/runs``, else ValueError.

    A bad id is refused, and so is a ``runs`` folder or a run folder that is a symbolic link
    leading elsewhere (a store from someone else may hold one, pointing at your files).
    """
    folder = os.path.join(root, "runs", check_run_id(run_id, f"the run folder in {root}"))
    if os.path.realpath(folder) != os.path.join(os.path.realpath(root), "runs", run_id):
        raise ValueError(f"the folder of run {run_id!r} in {root} is a symbolic link that leads out of "
                         "the store; refusing to use it")
    return folder


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


def has_database(root: str) -> bool:
    """Whether ``root`` holds a database: False for a folder with none yet (an empty store).

    FileNotFoundError when ``root`` is not a folder at all.
    """
    if os.path.exists(db_path(root)):
        return True
    if os.path.isdir(root) or (os.path.basename(root) == "mplogger-runs" and not os.path.lexists(root)
                               and os.path.isdir(os.path.dirname(root))):
        return False  # a folder whose store init(dir=folder) has not made yet
    raise _no_database(root)


def _no_database(root: str) -> FileNotFoundError:
    """The error for a root without a database: no such folder, or a folder without a store."""
    if os.path.isdir(root):
        return FileNotFoundError(f"no mplogger store at {root!r} (no {DB_NAME} there)")
    parent = os.path.dirname(root)
    if os.path.basename(root) == "mplogger-runs" and not os.path.exists(parent):
        root = parent  # looked for under a folder that is not there: name the folder the user gave
    why = "not a folder" if os.path.exists(root) else "there is no such folder"
    return FileNotFoundError(f"no mplogger store at {root!r} ({why})")


def connect(root: str, create: bool = True) -> sqlite3.Connection:
    """Open (and, for writers, create) the store under ``root``, in WAL mode."""
    path = db_path(root)
    if create:
        os.makedirs(root, exist_ok=True)
    elif not os.path.exists(path):
        raise _no_database(root)
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA synchronous=NORMAL")
    if create:
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
        raise _no_database(root)
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
            f"writes not yet in {DB_NAME}, which only a writable copy can read ({reason})")
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
        if conn.in_transaction:  # SQLite may have rolled the whole transaction back already
            conn.execute("ROLLBACK TO batch")
            conn.execute("RELEASE batch")
        raise
    conn.execute("RELEASE batch")


def fetch_run(conn: sqlite3.Connection, run_id: str) -> Optional[dict]:
    cursor = conn.execute(f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE id = ?", (run_id,))
    row = cursor.fetchone()
    return dict(zip(RUN_COLUMNS, row)) if row else None


def file_identity(root: str) -> Optional[tuple]:
    """(device, inode) of the store's database file, or None when it is gone.

    A writer compares it after each commit: a store deleted (or replaced) under a live process
    would otherwise take its rows into an unlinked file, silently.
    """
    try:
        stat = os.stat(db_path(root))
    except FileNotFoundError:
        return None
    return (stat.st_dev, stat.st_ino)


def insert_output(conn: sqlite3.Connection, run_id: str, lines: Iterable[Sequence]) -> None:
    """Console lines of a run: (timestamp, stream, line) each."""
    conn.executemany("INSERT INTO output (run_id, timestamp, stream, line) VALUES (?, ?, ?, ?)",
                     [(run_id, t, stream, line) for t, stream, line in lines])


def insert_system_sample(conn: sqlite3.Connection, run_id: str, timestamp: float, data: str) -> None:
    conn.execute("INSERT INTO system_metrics (run_id, timestamp, data) VALUES (?, ?, ?)",
                 (run_id, timestamp, data))


def insert_alert(conn: sqlite3.Connection, run_id: str, alert: dict) -> None:
    conn.execute("INSERT INTO alerts (run_id, timestamp, level, title, text) VALUES (?, ?, ?, ?, ?)",
                 (run_id, alert["timestamp"], alert["level"], alert["title"], alert["text"]))


def merge_environment(conn: sqlite3.Connection, run_id: str, environment: str) -> None:
    """Set ``metadata.environment`` of a run, whatever else its metadata holds by now."""
    conn.execute("UPDATE runs SET metadata = json_set(metadata, '$.environment', json(?)) WHERE id = ?",
                 (environment, run_id))


def mark_crashed(root: str, run_id: str) -> None:
    """Mark one run ``crashed`` in a transaction of its own (when no worker is left to do it)."""
    conn = connect(root)
    try:
        retry_locked(lambda: conn.execute("BEGIN IMMEDIATE"))
        update_run(conn, run_id, state="crashed", finished=time.time())
        conn.execute("COMMIT")
    finally:
        conn.close()
