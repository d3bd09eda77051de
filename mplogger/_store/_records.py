"""Runs, console output, system metrics and alerts: their SQL, for writers, readers and maintenance."""

from __future__ import annotations

import time
import sqlite3
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from mplogger._store._schema import begin, commit, connect

__all__ = ["RUN_COLUMNS", "RUN_TABLES", "insert_run", "update_run", "fetch_run", "select_runs", "run_ids",
           "runs_table_ready", "insert_output", "insert_system_sample", "insert_alert", "merge_environment",
           "mark_crashed", "output_rows", "system_rows", "delete_run_rows", "integrity", "running_runs",
           "mark_run_crashed", "row_counts", "set_row_count", "orphan_count", "delete_orphans"]

RUN_TABLES = ("history_blocks", "history_columns", "history_v1", "output", "system_metrics", "alerts")

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


def fetch_run(conn: sqlite3.Connection, run_id: str) -> Optional[dict]:
    cursor = conn.execute(f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE id = ?", (run_id,))
    row = cursor.fetchone()
    return dict(zip(RUN_COLUMNS, row)) if row else None


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
        begin(conn)
        update_run(conn, run_id, state="crashed", finished=time.time())
        commit(conn)
    finally:
        conn.close()


def runs_table_ready(conn: sqlite3.Connection) -> bool:
    """Whether the first writer has created the tables yet."""
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'runs'").fetchone() is not None


def select_runs(conn: sqlite3.Connection, project: Optional[str] = None, group: Optional[str] = None,
                states: Sequence[str] = ()) -> Iterator[Dict[str, Any]]:
    """Run records, newest first, narrowed by project (``entity/project`` too), group and states."""
    where = []
    if project is not None:  # "entity/project" names the project; a project may hold "/" itself
        where.append(("project IN (?, ?)", (project, project.rsplit("/", 1)[-1])))
    if group is not None:
        where.append(("run_group = ?", (group,)))
    if states:
        where.append((f"state IN ({', '.join('?' * len(states))})", tuple(states)))
    query = f"SELECT {', '.join(RUN_COLUMNS)} FROM runs"
    if where:
        query += " WHERE " + " AND ".join(clause for clause, _ in where)
    query += " ORDER BY created DESC, id"
    params = tuple(value for _, values in where for value in values)
    return (dict(zip(RUN_COLUMNS, row)) for row in conn.execute(query, params))


def run_ids(conn: sqlite3.Connection, newest_first: bool = True) -> List[Any]:
    """Every run id as stored (unchecked: the caller validates)."""
    order = "DESC" if newest_first else ""
    return [row[0] for row in conn.execute(f"SELECT id FROM runs ORDER BY created {order}")]


def output_rows(conn: sqlite3.Connection, run_id: str) -> List[Tuple[float, str, str]]:
    """(timestamp, stream, line) of everything a run printed, in order."""
    return [tuple(row) for row in conn.execute(
        "SELECT timestamp, stream, line FROM output WHERE run_id = ? ORDER BY rowid", (run_id,))]


def system_rows(conn: sqlite3.Connection, run_id: str) -> List[Tuple[float, str]]:
    """(timestamp, JSON data) of a run's system samples, in time order."""
    return conn.execute("SELECT timestamp, data FROM system_metrics WHERE run_id = ? ORDER BY timestamp",
                        (run_id,)).fetchall()


def delete_run_rows(conn: sqlite3.Connection, run_id: str) -> Dict[str, int]:
    """Delete a run's record and everything stored with it; rows deleted per table."""
    from mplogger._store._history import stored_rows

    counts = {"history": stored_rows(conn, run_id)}
    for table in RUN_TABLES:
        deleted = conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,)).rowcount
        if not table.startswith("history"):
            counts[table] = deleted
    conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))
    return counts


def integrity(conn: sqlite3.Connection) -> Tuple[List[str], Optional[str]]:
    """SQLite's integrity check messages (``["ok"]`` when sound) and the schema version stored."""
    problems = [row[0] for row in conn.execute("PRAGMA integrity_check")]
    version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return problems, None if version is None else version[0]


def running_runs(conn: sqlite3.Connection) -> List[Tuple[Any, ...]]:
    """(id, host, pid, updated) of the runs marked running."""
    return conn.execute("SELECT id, host, pid, updated FROM runs WHERE state = 'running'").fetchall()


def mark_run_crashed(conn: sqlite3.Connection, run_id: str, when: float) -> None:
    conn.execute("UPDATE runs SET state = 'crashed', finished = ? WHERE id = ? AND state = 'running'",
                 (when, run_id))


def row_counts(conn: sqlite3.Connection) -> List[Tuple[Any, ...]]:
    """(id, rows counted, last_step, rows stored, largest step stored, state) of every run."""
    from mplogger._store._history import last_step, stored_rows

    return [(run_id, rows, step, stored_rows(conn, run_id), last_step(conn, run_id), state)
            for run_id, rows, step, state in conn.execute("SELECT id, rows, last_step, state FROM runs").fetchall()]


def set_row_count(conn: sqlite3.Connection, run_id: str, rows: int, last_step: Optional[int]) -> None:
    conn.execute("UPDATE runs SET rows = ?, last_step = ? WHERE id = ?", (rows, last_step, run_id))


def orphan_count(conn: sqlite3.Connection, table: str) -> int:
    """Rows of ``table`` (one of RUN_TABLES) whose run record is gone (0 for a table not there)."""
    if table not in RUN_TABLES:
        raise ValueError(f"{table!r} is not a table of run rows")
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone() is None:
        return 0
    return conn.execute(f"SELECT count(*) FROM {table} WHERE run_id NOT IN (SELECT id FROM runs)").fetchone()[0]


def delete_orphans(conn: sqlite3.Connection, table: str) -> None:
    if table not in RUN_TABLES:
        raise ValueError(f"{table!r} is not a table of run rows")
    conn.execute(f"DELETE FROM {table} WHERE run_id NOT IN (SELECT id FROM runs)")
