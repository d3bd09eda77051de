"""Reading stored runs (a reader, in any process): ``Api().runs()``, ``Api().run(id)``, history and summaries.

Readers only read: they open the SQLite store under the root read-only (a read-only store reads
too) and never write; the two maintenance calls, ``StoredRun.delete()`` and ``Api.doctor()``, go
through :mod:`mplogger._readers._admin`. Reading while runs are being written is safe (WAL mode): a reader
sees every committed row. A folder without a database yet is an empty store.

A store may come from someone else: a run row whose id is not a usable run id
(:func:`mplogger._store.check_run_id`) is skipped with a warning and never becomes a
:class:`StoredRun`, so no id read from a store becomes a path that leaves it.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import sqlite3
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from mplogger._readers import _admin

from mplogger import _store
from mplogger._readers._admin import Finding
from mplogger._readers._artifact import Artifact, parse_spec
from mplogger._readers._filters import check_filters, matches
from mplogger._shared._settings import resolve_root
from mplogger._shared._media import load_media
from mplogger._shared._terminal import printable, termwarn
from mplogger._shared._values import flatten, from_json

__all__ = ["Api", "Runs", "StoredRun", "STATES"]

STATES = ("running", "finished", "failed", "crashed")


def _as_list(name: str, value: Union[str, Sequence[str], None]) -> List[str]:
    if value is None:
        return []
    values = [value] if isinstance(value, str) else list(value)
    for item in values:
        if not isinstance(item, str):
            raise TypeError(f"{name} must be a string or a list of strings, not {type(item).__name__} {item!r}")
    return values


class Api:
    """The runs stored under a root folder (``dir``, else ``MPLOGGER_DIR``, else ``./mplogger-runs``)."""

    def __init__(self, dir: Optional[str] = None) -> None:
        self.root = resolve_root(dir)
        self._conn: Optional[sqlite3.Connection] = None

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = _store.connect_reader(self.root)
        return self._conn

    def _ready(self) -> bool:
        """False while the folder has no database yet, or its first writer has not created the tables."""
        if self._conn is None and not _store.has_database(self.root):
            return False
        return _store.runs_table_ready(self.conn)

    def _usable(self, run_id: Any) -> bool:
        """Whether a stored id is a usable run id; a warning (once) names one that is not."""
        if _store.is_run_id(run_id):
            return True
        termwarn(printable(f"skipped a run in {self.root} whose id {run_id!r} is not a usable run id "
                           "(`mplogger doctor` lists it)"), repeat=False)
        return False

    def _load(self, record: Dict[str, Any]) -> Optional["StoredRun"]:
        """The run of a stored row, or None (with a warning, once) for a row that is not one."""
        try:
            return StoredRun(self, record)
        except ValueError as exc:
            termwarn(printable(f"skipped a run in {self.root}: {exc} (`mplogger doctor` lists it)"), repeat=False)
            return None

    def runs(self, project: Optional[str] = None, group: Optional[str] = None,
             state: Union[str, Sequence[str], None] = None, tags: Union[str, Sequence[str], None] = None,
             filters: Optional[Mapping[str, Any]] = None,
             predicate: Optional[Callable[["StoredRun"], bool]] = None) -> "Runs":
        """Stored runs, newest first, narrowed by every argument given.

        ``project`` (``"entity/project"`` is read as the project), ``group``, ``state`` (one or a
        list), ``tags`` (runs carrying all of them), ``filters`` (wandb-style, e.g.
        ``{"summary.acc": {"$gt": 0.9}}``, see :mod:`mplogger._readers._filters`) and ``predicate`` (a
        function of the run, e.g. ``lambda r: r.config["lr"] < 0.01``).
        """
        if filters is not None:
            check_filters(filters)
        if predicate is not None and not callable(predicate):
            raise TypeError(f"predicate must be a function of the run, not {type(predicate).__name__}")
        states = _as_list("state", state)
        unknown = sorted(set(states) - set(STATES))
        if unknown:
            raise ValueError(f"unknown state {unknown[0]!r}; states are {', '.join(STATES)}")
        wanted_tags = _as_list("tags", tags)
        if not self._ready():
            return Runs([])
        found = (self._load(record) for record in _store.select_runs(self.conn, project, group, states)
                 if self._usable(record["id"]))
        return Runs(run for run in found if run is not None
                    and set(wanted_tags) <= set(run.tags)
                    and (filters is None or matches(run, filters))
                    and (predicate is None or predicate(run)))

    def run(self, run_id: str) -> "StoredRun":
        """One stored run by id, a unique id prefix, or a wandb path ``entity/project/id``.

        KeyError names the closest ids when there is no such run (or the prefix is ambiguous);
        ValueError when ``run_id`` cannot be (the start of) a run id at all, e.g. ``..``.
        """
        if not isinstance(run_id, str) or not run_id.strip("/"):
            raise TypeError(f"run id must be a non-empty string, not {run_id!r}")
        run_id = _store.check_run_id(run_id.rstrip("/").rsplit("/", 1)[-1], f"looking up a run in {self.root}")
        record = _store.fetch_run(self.conn, run_id) if self._ready() else None
        if record is not None:
            return StoredRun(self, record)
        known = [run_id for run_id in _store.run_ids(self.conn) if self._usable(run_id)] if self._ready() else []
        prefixed = [k for k in known if k.startswith(run_id)]
        if len(prefixed) == 1:
            return self.run(prefixed[0])
        if prefixed:
            raise KeyError(f"run id prefix {run_id!r} is ambiguous in {self.root}: "
                           f"{', '.join(prefixed[:8])}{' ...' if len(prefixed) > 8 else ''}")
        close = list(dict.fromkeys(difflib.get_close_matches(run_id, known, n=5, cutoff=0.5)
                                   + [k for k in known if k[:3] == run_id[:3]]))[:5]
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise KeyError(f"no run {run_id!r} in {self.root}{hint}")

    # --- artifacts ---------------------------------------------------------------------------
    def _artifact_records(self) -> bool:
        return self._ready() and _store.artifact_tables_ready(self.conn)

    def artifact(self, name: str, type: Optional[str] = None) -> Artifact:
        """The stored version ``name:alias`` (``name`` alone is ``name:latest``; ``name:v2``;
        ``project/name:alias`` when two projects have the name). KeyError names what there is."""
        project, base, alias = parse_spec(name)
        if type is not None and not isinstance(type, str):
            raise TypeError(f"artifact(type=...) must be a string, not {type!r}")
        found = _store.find_versions(self.conn, project, base, alias) if self._artifact_records() else []
        if not found:
            versions = _store.select_versions(self.conn, project, base) if self._artifact_records() else []
            if versions:
                have = sorted({f"v{r['version']}" for r in versions} | {a for r in versions for a in r["aliases"]})
                raise KeyError(f"artifact {base!r} has no version or alias {alias!r} in {self.root}; it has "
                               + ", ".join(have[:20]))
            names = sorted({r["name"] for r in _store.select_versions(self.conn)}) if self._artifact_records() else []
            close = difflib.get_close_matches(base, names, n=5, cutoff=0.5)
            raise KeyError(f"no artifact {base!r} in {self.root}" + (f"; did you mean {', '.join(close)}?" if close else ""))
        projects = sorted({record["project"] for record in found})
        if len(projects) > 1:
            raise ValueError(f"artifact {base}:{alias} is in several projects ({', '.join(projects)}); "
                             f"name it as '{projects[0]}/{base}:{alias}'")
        record = found[0]
        if type is not None and record["type"] != type:
            raise ValueError(f"artifact {base}:{alias} is of type {record['type']!r}, not {type!r}")
        stored = self._artifacts_of([record])
        if not stored:
            raise ValueError(printable(f"the stored version {base}:{alias} is not a valid artifact version "
                                       f"(see the warning above)"))
        return stored[0]

    def _artifacts_of(self, records: Iterable[Dict[str, Any]]) -> List[Artifact]:
        """The versions of stored rows; a row that is not one is skipped with a warning (once)."""
        found = []
        for record in records:
            try:
                found.append(Artifact.from_record(self.root, record))
            except (ValueError, TypeError) as exc:
                termwarn(printable(f"skipped an artifact version in {self.root}: {exc}"), repeat=False)
        return found

    def artifacts(self, type: Optional[str] = None, name: Optional[str] = None,
                  project: Optional[str] = None) -> List[Artifact]:
        """Stored artifact versions, by project and name, newest version first, narrowed by each argument."""
        for what, value in (("type", type), ("name", name), ("project", project)):
            if value is not None and not isinstance(value, str):
                raise TypeError(f"artifacts({what}=...) must be a string, not {value!r}")
        if name is not None and ("/" in name or ":" in name):
            project, name, _ = parse_spec(name)
        if not self._artifact_records():
            return []
        return self._artifacts_of(_store.select_versions(self.conn, project, name, type))

    def artifact_versions(self, name: str, type: Optional[str] = None) -> List[Artifact]:
        """Every version of the artifact ``name`` (``project/name``), newest first; KeyError if none."""
        project, base, _ = parse_spec(name)
        versions = self.artifacts(type=type, name=base, project=project)
        if not versions:
            raise KeyError(f"no artifact {base!r}{f' of type {type!r}' if type else ''} in {self.root}")
        projects = sorted({artifact.project for artifact in versions})
        if len(projects) > 1:
            raise ValueError(f"artifact {base!r} is in several projects ({', '.join(projects)}); "
                             f"name it as '{projects[0]}/{base}'")
        return versions

    def doctor(self, repair: bool = True) -> List[Finding]:
        """Check the store (SQLite integrity, counts, stuck runs); with ``repair``, fix what is safe.

        A run left ``running`` whose process on this host is gone becomes ``crashed``.
        """
        return _admin.doctor(self.root, repair=repair)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __repr__(self) -> str:
        return f"Api({self.root!r})"


class Runs(List["StoredRun"]):
    """A list of stored runs that can become one table: ``Api().runs(...).to_pandas()``."""

    def to_pandas(self) -> Any:
        """A DataFrame, one row a run: its fields, then ``config.*`` and ``summary.*`` flattened."""
        pd = _pandas("Runs.to_pandas()")
        frame = pd.DataFrame([run._table_row() for run in self],
                             columns=None if self else list(StoredRun._TABLE_FIELDS))
        for column in ("created", "finished"):
            frame[column] = pd.to_datetime(frame[column], unit="s", utc=True)
        return frame

    def __getitem__(self, index: Any) -> Any:
        found = super().__getitem__(index)
        return Runs(found) if isinstance(index, slice) else found

    def __add__(self, other: Iterable["StoredRun"]) -> "Runs":
        return Runs([*self, *other])

    def __repr__(self) -> str:
        return f"<Runs: {len(self)} runs>"

    def _repr_html_(self) -> str:
        """A notebook's view: the runs as a table and their shared metrics as overlaid charts."""
        from mplogger._readers._display import runs_html

        return runs_html(self)


def _pandas(what: str) -> Any:
    try:
        import pandas as pd
    except ImportError:
        raise ImportError(f"{what} needs pandas: pip install 'mplogger[pandas]'") from None
    return pd


class _Fields:
    """The columns of a stored run row, each checked to hold what it should (a store may be hostile)."""

    def __init__(self, record: Dict[str, Any]) -> None:
        self.record = record

    def _bad(self, column: str, wanted: str) -> ValueError:
        return ValueError(f"run {self.record.get('id')!r}: column {column!r} holds "
                          f"{self.record.get(column)!r:.60}, not {wanted}")

    def text(self, column: str, optional: bool = False) -> Any:
        value = self.record.get(column)
        if isinstance(value, str) or (optional and value is None):
            return value
        raise self._bad(column, "text")

    def number(self, column: str, kinds: Any, optional: bool = False) -> Any:
        value = self.record.get(column)
        if (isinstance(value, kinds) and not isinstance(value, bool)) or (optional and value is None):
            return value
        raise self._bad(column, "a number")

    def json(self, column: str, kind: type, read: Callable[[str], Any]) -> Any:
        try:
            value = read(self.record.get(column))
        except (TypeError, ValueError):
            raise self._bad(column, "JSON text") from None
        if not isinstance(value, kind) or (kind is list and not all(isinstance(item, str) for item in value)):
            raise self._bad(column, f"a JSON {'object' if kind is dict else 'list of strings'}")
        return value


class StoredRun:
    """A run as stored: its fields, config, summary and history."""

    def __init__(self, api: Api, record: Dict[str, Any]) -> None:
        """A run of a stored row; ValueError names a column that does not hold what it should."""
        self._api = api
        self._record = record
        field = _Fields(record)
        self.id: str = _store.check_run_id(record["id"], f"a run row of {api.root}")
        self.name: str = field.text("name")
        self.project: str = field.text("project")
        self.group: Optional[str] = field.text("run_group", optional=True)
        self.job_type: Optional[str] = field.text("job_type", optional=True)
        self.tags: List[str] = field.json("tags", list, json.loads)
        self.notes: Optional[str] = field.text("notes", optional=True)
        self.state: str = field.text("state")
        self.exit_code: Optional[int] = field.number("exit_code", int, optional=True)
        self.created: float = field.number("created", (int, float))
        self.updated: float = field.number("updated", (int, float))
        self.finished: Optional[float] = field.number("finished", (int, float), optional=True)
        self.config: Dict[str, Any] = field.json("config", dict, from_json)
        self.summary: Dict[str, Any] = field.json("summary", dict, from_json)
        self.host: Optional[str] = field.text("host", optional=True)
        self.pid: Optional[int] = field.number("pid", int, optional=True)
        self.python: Optional[str] = field.text("python", optional=True)
        self.argv: List[str] = field.json("argv", list, json.loads)
        self.rows: int = field.number("rows", int)
        self.last_step: Optional[int] = field.number("last_step", int, optional=True)
        self.entity: Optional[str] = field.text("entity", optional=True)
        self.metadata: Dict[str, Any] = field.json("metadata", dict, from_json)
        self.root: str = api.root

    @property
    def dir(self) -> str:
        """The run's folder (ValueError if the store leads it elsewhere, e.g. by a symbolic link)."""
        return _store.run_dir(self.root, self.id)

    @property
    def duration(self) -> float:
        """Seconds from start to finish (to the last stored write while it runs)."""
        end = self.finished if self.finished is not None else self.updated
        return max(0.0, end - self.created)

    def scan_history(self, keys: Optional[Sequence[str]] = None, page_size: int = 1000) -> Iterator[Dict[str, Any]]:
        """Every row in step order, read block by block (for large runs).

        With ``keys``, only rows that have every one of them, each with just those keys (dotted
        keys reach into nested dicts) plus ``_step``, ``_timestamp`` and ``_runtime``; only the
        columns of those keys are read.
        """
        return self.scan_rows(keys, page_size, load_media=True)

    def scan_rows(self, keys: Optional[Sequence[str]], page_size: int = 1000,
              load_media: bool = True, until: Optional[int] = None) -> Iterator[Dict[str, Any]]:
        """:meth:`scan_history`; media stay as their stored references without ``load_media``.

        The rows stored when it starts (or up to sequence number ``until``), and no more: a run
        being written cannot keep it going.
        """
        last = self.last_seq() if until is None else until
        if keys is None:
            for _, values in self.rows_after(0, page_size, load_media, until=last):
                yield values
            return
        for page, media in _store.read_keys(self._api.conn, self.id, _as_list("keys", keys), until_seq=last):
            if load_media and media:
                page = [self._load_media(row) for row in page]
            yield from page

    @property
    def conn(self) -> sqlite3.Connection:
        """The read-only connection to the store this run is read through (its Api's)."""
        return self._api.conn

    def last_seq(self) -> int:
        """The sequence number of the last stored row (0 for none)."""
        return _store.last_seq(self._api.conn, self.id)

    def rows_after(self, after: int, page_size: int = 1000, load_media: bool = True,
                    until: Optional[int] = None) -> Iterator[Tuple[int, Dict[str, Any]]]:
        """(seq, row) for every stored row after sequence number ``after`` (up to ``until``), in order."""
        for seq, values, media in _store.scan_rows(self._api.conn, self.id, after, until):
            yield seq, (self._load_media(values) if load_media and media else values)

    def _load_media(self, values: Dict[str, Any]) -> Dict[str, Any]:
        return {key: self._load_value(value) for key, value in values.items()}

    def _load_value(self, value: Any) -> Any:
        """A stored value with its media references loaded (in dicts, and in lists: a gallery)."""
        if isinstance(value, dict):
            return load_media(value, self.dir) if "_type" in value else self._load_media(value)
        if type(value) is list and value and all(isinstance(item, dict) and "_type" in item for item in value):
            return [load_media(item, self.dir) for item in value]
        return value

    def output(self, meta: bool = False) -> List[Any]:
        """What the run printed, line by line; ``meta=True``: (timestamp, stream, line) tuples."""
        rows = _store.output_rows(self._api.conn, self.id)
        return rows if meta else [row[2] for row in rows]

    def system_metrics(self) -> List[Dict[str, Any]]:
        """The system metrics sampled while the run was open, each with ``_timestamp``."""
        return [{**from_json(data), "_timestamp": timestamp}
                for timestamp, data in _store.system_rows(self._api.conn, self.id)]

    def history(self, keys: Optional[Sequence[str]] = None, pandas: bool = False) -> Any:
        """All rows (with ``keys``: the rows holding them, as :meth:`scan_history`) as a list of
        dicts, or as a pandas DataFrame with ``pandas=True`` (built from columns)."""
        if not pandas:
            return list(self.scan_history(keys))
        pd = _pandas("history(pandas=True)")
        table, media = _store.read_table(self._api.conn, self.id, None if keys is None else _as_list("keys", keys),
                                         missing=math.nan)  # as pandas marks a key a row lacks
        for key in media:
            table[key] = [self._load_value(value) for value in table[key]]
        return pd.DataFrame(table)

    _TABLE_FIELDS = ("id", "name", "project", "group", "job_type", "state", "tags", "created",
                     "finished", "duration", "rows", "host")

    def _table_row(self) -> Dict[str, Any]:
        """This run as one flat row: fields, ``config.*``, ``summary.*`` (for tables and CSV)."""
        row: Dict[str, Any] = {field: getattr(self, field) for field in self._TABLE_FIELDS}
        row["tags"] = list(self.tags)
        row.update({f"config.{key}": value for key, value in flatten(self.config).items()})
        row.update({f"summary.{key}": value for key, value in flatten(self.summary).items()})
        return row

    def delete(self, force: bool = False) -> "_admin.Deleted":
        """Delete this run from the store (record, rows, output, folder, the artifact versions only it
        holds); counts of rows deleted, with ``.kept`` (versions other runs use, kept) and
        ``.objects_left`` (files left for ``doctor`` while a run is live).

        A run still running in a live process on this host is refused unless ``force``.
        """
        return _admin.delete_run(self._api.root, self.id, force=force)

    def logged_artifacts(self) -> List[Artifact]:
        """The artifact versions this run logged, in order."""
        return self._artifacts("logged")

    def used_artifacts(self) -> List[Artifact]:
        """The artifact versions this run used, in order."""
        return self._artifacts("used")

    def _artifacts(self, role: str) -> List[Artifact]:
        if not self._api._artifact_records():
            return []
        return self._api._artifacts_of(_store.run_artifacts(self._api.conn, self.id, role))

    def files(self) -> List[str]:
        """Paths (relative to the run's folder) of the files stored with the run."""
        found = []
        for folder, _, names in os.walk(self.dir):
            found.extend(os.path.relpath(os.path.join(folder, name), self.dir) for name in names)
        return sorted(found)

    def last_row(self) -> Optional[Dict[str, Any]]:
        """The last stored row (with ``_step``, ``_timestamp``, ``_runtime``), or None."""
        return _store.last_row(self._api.conn, self.id)

    def _view(self, latest: bool = True, charts: bool = False) -> Dict[str, Any]:
        """What the notebook display shows (see :mod:`mplogger._readers._display`); ``charts``: with the card's charts."""
        view: Dict[str, Any] = {
            "kind": "StoredRun", "id": self.id, "name": self.name, "project": self.project,
            "group": self.group, "job_type": self.job_type, "tags": self.tags, "notes": self.notes,
            "state": self.state, "exit_code": self.exit_code, "root": self._api.root,
            "dir": self.dir, "created": self.created, "finished": self.finished, "rows": self.rows,
            "config": self.config, "summary": self.summary,
        }
        problems = []
        if latest:
            try:
                view["latest"] = self.last_row()
            except Exception as exc:  # the display shows what it has
                problems.append(f"could not read the latest row: {type(exc).__name__}: {exc}")
        if charts:
            from mplogger._readers._display import card_charts

            try:
                view.update(card_charts(self))
            except Exception as exc:
                problems.append(f"charts: {type(exc).__name__}: {exc}")
        if problems:
            view["note"] = "; ".join(problems)
        return view

    def _repr_html_(self) -> str:
        from mplogger._readers._display import run_html

        return run_html(self._view(charts=True))

    def _ipython_display_(self) -> None:
        """In a notebook: the card, kept up to date from the store while the run is being written."""
        from mplogger._readers._display import run_html
        from mplogger._readers._live import show

        view = self._view(charts=True)
        show(self._api.root, self.id, "StoredRun", run_html(view), repr(self), live=self.state == "running",
             mark=(self.rows, self.state))

    def plot(self, keys: Optional[Sequence[str]] = None) -> Any:
        """Charts of the history, one per numeric metric (``keys``: those only), against ``_step``.

        A notebook shows them as inline SVG; ``.figure()`` gives a matplotlib figure instead.
        """
        from mplogger._readers._display import Charts

        return Charts([self], keys, title=f"{self.name} ({self.id})")

    def __repr__(self) -> str:
        from mplogger._readers._display import run_text

        return run_text(self._view(latest=False))
