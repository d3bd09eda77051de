"""Reading stored runs: ``Api().runs()``, ``Api().run(id)``, history and summaries.

Readers only read: they open the SQLite store under the root and never write. Reading while
runs are being written is safe (WAL mode): a reader sees every committed row.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Dict, Iterator, List, Optional, Sequence

from mplogger import _store
from mplogger._settings import resolve_root
from mplogger._media import load_media
from mplogger._values import from_json, pick

__all__ = ["Api", "StoredRun"]


class Api:
    """The runs stored under a root folder (``dir``, else ``MPLOGGER_DIR``, else ``./mplogger``)."""

    def __init__(self, dir: Optional[str] = None) -> None:
        self.root = resolve_root(dir)
        self._conn: Optional[sqlite3.Connection] = None

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = _store.connect(self.root, create=False)
        return self._conn

    def _ready(self) -> bool:
        """False while the store's file exists but its first writer has not created the tables."""
        return self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'runs'").fetchone() is not None

    def runs(self, project: Optional[str] = None, group: Optional[str] = None) -> List["StoredRun"]:
        """Stored runs, newest first, optionally of one project and/or one group."""
        if not self._ready():
            return []
        query = f"SELECT {', '.join(_store.RUN_COLUMNS)} FROM runs"
        where = [(column, value) for column, value in (("project", project), ("run_group", group))
                 if value is not None]
        if where:
            query += " WHERE " + " AND ".join(f"{column} = ?" for column, _ in where)
        query += " ORDER BY created DESC, id"
        params = tuple(value for _, value in where)
        return [StoredRun(self, dict(zip(_store.RUN_COLUMNS, row))) for row in self.conn.execute(query, params)]

    def run(self, run_id: str) -> "StoredRun":
        """One stored run by id; KeyError names the closest ids when it is not there."""
        record = _store.fetch_run(self.conn, run_id) if self._ready() else None
        if record is None:
            known = [row[0] for row in self.conn.execute("SELECT id FROM runs ORDER BY created DESC")] if self._ready() else []
            close = [k for k in known if k.startswith(run_id[:3])][:5]
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise KeyError(f"no run {run_id!r} in {self.root}{hint}")
        return StoredRun(self, record)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __repr__(self) -> str:
        return f"Api({self.root!r})"


class StoredRun:
    """A run as stored: its fields, config, summary and history."""

    def __init__(self, api: Api, record: Dict[str, Any]) -> None:
        self._api = api
        self._record = record
        self.id: str = record["id"]
        self.name: str = record["name"]
        self.project: str = record["project"]
        self.group: Optional[str] = record["run_group"]
        self.job_type: Optional[str] = record["job_type"]
        self.tags: List[str] = json.loads(record["tags"])
        self.notes: Optional[str] = record["notes"]
        self.state: str = record["state"]
        self.exit_code: Optional[int] = record["exit_code"]
        self.created: float = record["created"]
        self.updated: float = record["updated"]
        self.finished: Optional[float] = record["finished"]
        self.config: Dict[str, Any] = from_json(record["config"])
        self.summary: Dict[str, Any] = from_json(record["summary"])
        self.host: Optional[str] = record["host"]
        self.pid: Optional[int] = record["pid"]
        self.python: Optional[str] = record["python"]
        self.argv: List[str] = json.loads(record["argv"])
        self.rows: int = record["rows"]
        self.entity: Optional[str] = record["entity"]
        self.metadata: Dict[str, Any] = from_json(record["metadata"])
        self.dir = _store.run_dir(api.root, self.id)

    @property
    def duration(self) -> float:
        """Seconds from start to finish (to the last stored write while it runs)."""
        end = self.finished if self.finished is not None else self.updated
        return max(0.0, end - self.created)

    def scan_history(self, keys: Optional[Sequence[str]] = None, page_size: int = 1000) -> Iterator[Dict[str, Any]]:
        """Every row in step order, read page by page (for large runs).

        With ``keys``, only rows that have every one of them, each with just those keys (dotted
        keys reach into nested dicts) plus ``_step``, ``_timestamp`` and ``_runtime``.
        """
        conn = self._api.conn
        after = 0
        while True:
            page = conn.execute(
                "SELECT seq, step, timestamp, runtime, data FROM history "
                "WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                (self.id, after, page_size),
            ).fetchall()
            for seq, step, timestamp, runtime, data in page:
                values = from_json(data)
                if '"_type"' in data:  # media references: objects (histogram, table) or file paths
                    values = self._load_media(values)
                if keys is not None:
                    try:
                        values = {key: pick(values, key) for key in keys}
                    except KeyError:
                        continue
                values["_step"] = step
                values["_timestamp"] = timestamp
                values["_runtime"] = runtime
                yield values
            if len(page) < page_size:
                return
            after = page[-1][0]

    def _load_media(self, values: Dict[str, Any]) -> Dict[str, Any]:
        return {key: load_media(value, self.dir) if isinstance(value, dict) and "_type" in value
                else self._load_media(value) if isinstance(value, dict) else value
                for key, value in values.items()}

    def output(self, meta: bool = False) -> List[Any]:
        """What the run printed, line by line; ``meta=True``: (timestamp, stream, line) tuples."""
        rows = self._api.conn.execute(
            "SELECT timestamp, stream, line FROM output WHERE run_id = ? ORDER BY rowid", (self.id,))
        return [tuple(row) for row in rows] if meta else [row[2] for row in rows]

    def system_metrics(self) -> List[Dict[str, Any]]:
        """The system metrics sampled while the run was open, each with ``_timestamp``."""
        rows = self._api.conn.execute(
            "SELECT timestamp, data FROM system_metrics WHERE run_id = ? ORDER BY timestamp", (self.id,))
        return [{**from_json(data), "_timestamp": timestamp} for timestamp, data in rows]

    def history(self, keys: Optional[Sequence[str]] = None, pandas: bool = False) -> Any:
        """All rows as a list of dicts, or a pandas DataFrame with ``pandas=True``."""
        rows = list(self.scan_history(keys))
        if not pandas:
            return rows
        try:
            import pandas as pd
        except ImportError:
            raise ImportError(
                "history(pandas=True) needs pandas: pip install 'mplogger[pandas]'"
            ) from None
        return pd.DataFrame(rows)

    def _last_row(self) -> Optional[Dict[str, Any]]:
        """The last stored row (with ``_step``, ``_timestamp``, ``_runtime``), or None."""
        row = self._api.conn.execute(
            "SELECT step, timestamp, runtime, data FROM history WHERE run_id = ? ORDER BY seq DESC LIMIT 1",
            (self.id,),
        ).fetchone()
        if row is None:
            return None
        values = from_json(row[3])
        values.update(_step=row[0], _timestamp=row[1], _runtime=row[2])
        return values

    def _view(self, latest: bool = True) -> Dict[str, Any]:
        """What the notebook display shows (see :mod:`mplogger._display`)."""
        view: Dict[str, Any] = {
            "kind": "StoredRun", "id": self.id, "name": self.name, "project": self.project,
            "group": self.group, "job_type": self.job_type, "tags": self.tags, "notes": self.notes,
            "state": self.state, "exit_code": self.exit_code, "root": self._api.root,
            "dir": self.dir, "created": self.created, "finished": self.finished, "rows": self.rows,
            "config": self.config, "summary": self.summary,
        }
        if latest:
            try:
                view["latest"] = self._last_row()
            except Exception as exc:  # the display shows what it has
                view["note"] = f"could not read the latest row: {type(exc).__name__}: {exc}"
        return view

    def _repr_html_(self) -> str:
        from mplogger._display import run_html

        return run_html(self._view())

    def plot(self, keys: Optional[Sequence[str]] = None) -> Any:
        """A matplotlib figure: one subplot per numeric key (all when ``keys`` is None) against ``_step``."""
        from mplogger._display import plot_history

        return plot_history(self.history(), keys, title=f"{self.name} ({self.id})")

    def __repr__(self) -> str:
        from mplogger._display import run_text

        return run_text(self._view(latest=False))
