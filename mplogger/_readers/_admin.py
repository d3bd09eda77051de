"""Looking after a store (a reader: the API, the CLI): deleting runs and ``doctor`` (check, and
repair what is safe to repair).

These are the only writes outside the internal workers. Each is one ``BEGIN IMMEDIATE``
transaction, so a store being written by a live run stays consistent. A read-only store is
refused with one PermissionError naming it; ``doctor(repair=False)`` only reads, so it checks a
read-only store too. Ids and folder names read from the store pass
:func:`mplogger._store.check_run_id` before they touch the file system, and are never deleted
or followed when they do not.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sqlite3
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Set, Tuple

import attrs

from mplogger import _store
from mplogger._shared._processes import process_alive
from mplogger._shared._terminal import printable

__all__ = ["Deleted", "Finding", "KeptArtifact", "delete_run", "doctor", "format_size",
           "summary_line"]


_REPAIR_REFUSED = "doctor cannot repair it (`mplogger doctor --dry-run` only checks)"


def _read_only(root: str, refused: str) -> PermissionError:
    """The error for a write to a read-only store, saying what was refused."""
    return PermissionError(f"the store at {root!r} is read-only: {refused}")


def _check_writable(root: str, refused: str) -> None:
    """PermissionError naming the store when it cannot be written (a read-only file, folder or mount)."""
    if _store.has_database(root) and not (os.access(_store.db_path(root), os.W_OK) and os.access(root, os.W_OK)):
        raise _read_only(root, refused)


@contextlib.contextmanager
def _transaction(root: str, commit: bool = True,
                 refused: str = "nothing can be changed") -> Iterator[sqlite3.Connection]:
    """One write transaction on the store: committed (or, without ``commit``, a read-only one) at the end."""
    if commit:
        _check_writable(root, refused)
    conn = _store.connect(root, create=False) if commit else _store.connect_reader(root)
    try:
        try:
            _store.begin(conn, write=commit)
        except sqlite3.OperationalError as exc:
            if "readonly" in str(exc):
                raise _read_only(root, refused) from exc
            raise
        yield conn
        if commit:
            _store.commit(conn)
        else:
            _store.rollback(conn)
    except BaseException:
        _store.rollback(conn)
        raise
    finally:
        conn.close()


@attrs.frozen
class KeptArtifact:
    """An artifact version that a deleted run logged, kept because other runs logged or used it too."""

    name: str  # "name:vN", as stored (escape it before it reaches a terminal)
    runs: Tuple[str, ...]  # the ids of the runs that keep it


class Deleted(Dict[str, int]):
    """What :func:`delete_run` deleted: rows per table, and ``"artifacts"`` (the versions the run
    logged that went with it) when it logged any.

    ``kept``: the versions it logged that other runs still use (kept, no longer the run's).
    ``objects_left``: files that no version holds any more but that stay on disk because a run
    was live (it might be storing the same content again); ``doctor`` removes them later.
    """

    def __init__(self, counts: Mapping[str, int], kept: Iterable[KeptArtifact] = (), objects_left: int = 0) -> None:
        super().__init__(counts)
        self.kept: List[KeptArtifact] = list(kept)
        self.objects_left = objects_left


def delete_run(root: str, run_id: str, force: bool = False) -> Deleted:
    """Delete a run: its record, rows, output, metrics, alerts, folder and the artifact versions
    it logged that no other run used. Returns counts deleted (see :class:`Deleted`).

    A run still ``running`` in a live process on this host is refused unless ``force``; an id
    that is not a usable run id (e.g. ``..``) is refused before anything is touched. The files
    of the deleted versions are removed from disk after the commit, unless a run is live.
    """
    _store.check_run_id(run_id, f"deleting a run in {root}")
    folder = _store.run_dir(root, run_id)
    with _transaction(root, refused=f"run {run_id} cannot be deleted") as conn:
        record = _store.fetch_run(conn, run_id)
        if record is None:
            raise KeyError(f"no run {run_id!r} in {root}")
        alive = (record["state"] == "running" and record["host"] == socket.gethostname()
                 and process_alive(record["pid"], record["updated"]))
        if alive and not force:
            raise RuntimeError(
                f"run {run_id} is still running (pid {record['pid']}); finish it first, "
                "or delete it anyway with force")
        counts: Dict[str, int] = _store.delete_run_rows(conn, run_id)
        kept: List[KeptArtifact] = []
        freed: Set[str] = set()
        if _store.artifact_tables_ready(conn):
            deleted, kept_versions, freed = _store.delete_run_artifacts(conn, run_id)
            kept = [KeptArtifact(name, tuple(runs)) for name, runs in kept_versions]
            if deleted or kept:
                counts["artifacts"] = deleted
    shutil.rmtree(folder, ignore_errors=True)
    left = _remove_objects(root, freed, alive) if freed else 0
    return Deleted(counts, kept, left)


def _remove_objects(root: str, digests: Set[str], alive: bool) -> int:
    """Remove the objects no version holds any more; returns how many were left on disk.

    They are removed holding the store's write lock, and only while no run is live: a live run's
    worker moves a file into the objects before it adds the version holding it, so an object a
    version is about to hold cannot be told from a freed one.
    """
    try:
        with _transaction(root, refused="the deleted versions' files cannot be removed") as conn:
            if alive or _live_runs(conn):
                return len(digests)
            unheld = digests - _store.held_digests(conn, digests)
            for digest in sorted(unheld):
                _remove_object(root, digest)
    except (OSError, sqlite3.Error):  # the run is deleted; what is left is doctor's to remove
        return len(digests)
    return 0


def _remove_object(root: str, digest: Any) -> None:
    """Delete an object, unless its digest is no digest (as a store may hold) or a symbolic link on
    the way leads its folder out of the store."""
    if _store.is_digest(digest) and _store.in_store(root, os.path.dirname(_store.object_path(root, digest))):
        _store.remove_object(root, digest)


def _live_runs(conn: sqlite3.Connection) -> List[str]:
    """The runs marked running whose process may be alive: alive on this host, or on another host
    (which cannot be checked from here)."""
    host = socket.gethostname()
    return [run_id for run_id, run_host, pid, updated in _store.running_runs(conn)
            if run_host != host or not isinstance(pid, int) or not isinstance(updated, (int, float))
            or process_alive(pid, updated)]


@attrs.frozen
class Finding:
    """One thing ``doctor`` checked: what it found, and whether it was repaired."""

    check: str
    ok: bool
    detail: str
    repaired: bool = False
    run_id: Optional[str] = None


def doctor(root: str, repair: bool = True) -> List[Finding]:
    """Check a store; with ``repair``, mark runs whose process is gone ``crashed`` and fix counts.

    Artifacts: a staging folder left by a process that is gone is removed; artifact files that no
    version holds are deleted while no run is running (else kept and reported); a version whose
    files are missing is reported (it cannot be repaired). Folders mplogger did not name are
    reported and left as they are.

    A read-only store raises PermissionError with ``repair`` (``repair=False`` checks it); a
    folder without a database yet is an empty store, healthy.
    """
    if not _store.has_database(root):
        return [Finding("integrity", True, f"no {_store.DB_NAME} yet: an empty store")]
    if repair:
        _check_writable(root, _REPAIR_REFUSED)
    findings = [_integrity(root)]
    if not findings[0].ok:
        return findings
    with _transaction(root, commit=repair, refused=_REPAIR_REFUSED) as conn:
        findings += _bad_ids(conn)
        writing = {pid for _, host, pid, _ in _store.running_runs(conn) if host == socket.gethostname()}
        findings += _stuck_runs(conn, repair)
        findings += _row_counts(conn, repair)
        findings += _orphans(conn, repair)
        if _store.artifact_tables_ready(conn):
            findings += _lost_files(conn, root)
            findings += _unheld_objects(conn, root, repair)
        remote = [run_id for run_id, host, _, _ in _store.running_runs(conn) if host != socket.gethostname()]
        live = _live_runs(conn)
    findings += _stray_folders(root)
    findings += _staging(root, repair, remote, writing, live)
    return findings


def _integrity(root: str) -> Finding:
    try:
        conn = _store.connect_reader(root)
        try:
            problems, version = _store.integrity(conn)
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        return Finding("integrity", False, f"the database cannot be read: {exc}")
    if problems != ["ok"]:
        return Finding("integrity", False, "; ".join(problems[:10]))
    if version is None:
        return Finding("integrity", False, "no schema version: this is not an mplogger store")
    return Finding("integrity", True, f"SQLite integrity check passed (schema {version})")


def _bad_ids(conn: sqlite3.Connection) -> List[Finding]:
    """Run rows whose id is not a usable run id: readers skip them; reported (escaped), left as they are."""
    return [Finding("ids", False, printable(f"a run row has the id {run_id!r}, which is not a usable run id; "
                                            "readers skip it (left as it is)"))
            for run_id in _store.run_ids(conn, newest_first=False) if not _store.is_run_id(run_id)]


def _stuck_runs(conn: sqlite3.Connection, repair: bool) -> List[Finding]:
    """Runs still marked running: crashed when their process on this host is gone."""
    host = socket.gethostname()
    found = []
    for run_id, run_host, pid, updated in _store.running_runs(conn):
        if run_host != host:
            found.append(Finding("running", True, f"running on host {run_host!r}; cannot check its "
                                 "process from here", run_id=run_id))
        elif process_alive(pid, updated):
            found.append(Finding("running", True, f"running, process {pid} alive", run_id=run_id))
        else:
            if repair:
                _store.mark_run_crashed(conn, run_id, updated)
            found.append(Finding("running", False, f"marked running, but its process {pid} is gone"
                                 + ("; marked crashed" if repair else ""), repair, run_id))
    return found


def _row_counts(conn: sqlite3.Connection, repair: bool) -> List[Finding]:
    """Runs whose row count or last step disagree with their stored history."""
    found = []
    for run_id, counted, last_step, stored, max_step, state in _store.row_counts(conn):
        if state == "running" or counted == stored:
            continue
        if repair:
            _store.set_row_count(conn, run_id, stored, max_step)
        found.append(Finding("rows", False, f"run says {counted} rows, history holds {stored}"
                             + ("; corrected" if repair else ""), repair, run_id))
    return found


def _orphans(conn: sqlite3.Connection, repair: bool) -> List[Finding]:
    """Rows in run tables whose run record is gone (e.g. a delete interrupted by a crash)."""
    found = []
    for table in _store.RUN_TABLES:
        count = _store.orphan_count(conn, table)
        if count:
            if repair:
                _store.delete_orphans(conn, table)
            found.append(Finding("orphans", False, f"{count} {table} rows belong to no run"
                                 + ("; deleted" if repair else ""), repair))
    return found


def _stray_folders(root: str) -> List[Finding]:
    """Run folders with no run record (reported, never deleted: they may hold the user's files)."""
    runs_dir = os.path.join(root, "runs")
    if not os.path.isdir(runs_dir):
        return []
    conn = _store.connect_reader(root)
    try:
        known = set(_store.run_ids(conn))
    finally:
        conn.close()
    return [_stray_folder(runs_dir, name) for name in sorted(os.listdir(runs_dir)) if name not in known]


def _stray_folder(runs_dir: str, name: str) -> Finding:
    """The finding for one folder without a run; a name that is no run id is only quoted, escaped."""
    if _store.is_run_id(name):
        return Finding("folders", True, printable(f"folder {os.path.join(runs_dir, name)} has no run record "
                                                  "(left as it is)"), run_id=name)
    return Finding("folders", True, printable(f"{runs_dir} holds {name!r}, which is not a run id "
                                              "(left as it is)"))


def _lost_files(conn: sqlite3.Connection, root: str) -> List[Finding]:
    """Artifact versions whose stored files are missing from the objects (reported: not repairable)."""
    lost: Dict[Tuple[Any, Any, Any], List[Any]] = {}
    for project, name, version, path, digest in _store.stored_files(conn):
        if not _store.is_digest(digest) or not os.path.isfile(_store.object_path(root, digest)):
            lost.setdefault((project, name, version), []).append(path)
    found = []
    for (project, name, version), paths in lost.items():
        shown = ", ".join(repr(path) for path in paths[:5]) + (" ..." if len(paths) > 5 else "")
        found.append(Finding("artifacts", False, printable(
            f"artifact {project}/{name}:v{version} lost {len(paths)} of its files ({shown}): they cannot be "
            "restored (log the artifact again)")))
    return found


def _unheld_objects(conn: sqlite3.Connection, root: str, repair: bool) -> List[Finding]:
    """Artifact files no version holds (an artifact whose logging was cut short): deleted, but only
    while no run is live, since a live run's worker stores a file before the version holding it."""
    held = _store.referenced_digests(conn)
    unheld = [digest for digest in _store.objects(root) if digest not in held]
    if not unheld:
        return []
    size = 0
    for digest in unheld:
        with contextlib.suppress(OSError):
            size += os.path.getsize(_store.object_path(root, digest))
    what = (f"{len(unheld)} artifact file(s) ({format_size(size)}) in {_store.artifacts_dir(root)} "
            "belong to no version")
    live = _live_runs(conn)
    if live:
        shown = ", ".join(str(run_id) for run_id in live[:5]) + (" ..." if len(live) > 5 else "")
        return [Finding("objects", True, printable(
            f"{what}; kept while runs are running ({shown}): they may be storing them "
            "(run doctor again once they have finished)"))]
    busy = _busy_staging(root)
    if busy:
        return [Finding("objects", True, printable(
            f"{what}; kept while process {busy[0]} stores artifact files (its staging folder is in use; "
            "run doctor again once it has finished)"))]
    if repair:
        for digest in unheld:
            _remove_object(root, digest)
    return [Finding("objects", False, what + ("; deleted" if repair else ""), repair)]


def _busy_staging(root: str) -> List[int]:
    """The live workers that claimed staging folders and are moving their files into the objects
    (a manager goes on storing after its user process died)."""
    busy = []
    for folder in _store.staging_dirs(root):
        owner = _store.staging_owner(folder)
        if (_store.claimed(folder) and owner is not None and 0 < owner[0] < 2 ** 31
                and process_alive(owner[0], owner[1] + 1.0)):
            busy.append(owner[0])
    return busy


def _staging(root: str, repair: bool, remote: List[str], writing: set, live: List[str]) -> List[Finding]:
    """Staging folders (copies taken when files were added to an artifact) of processes that are gone:
    removed. A folder mplogger did not name is reported, never deleted; while runs of another host
    are running, a folder whose process is not alive here may be theirs, and is kept; so is the
    folder of a process whose run was still marked running (``writing``): its manager may still be
    storing what it logged last, and marks the run crashed once it has; and so is every folder while
    a run is live (``live``): a child process of that run may have logged it and exited before the
    run's worker took it."""
    found = []
    for folder in _store.staging_dirs(root):
        owner = _store.staging_owner(folder)
        if (owner is None or not 0 < owner[0] < 2 ** 31 or not os.path.isdir(folder)
                or not _store.in_store(root, folder)):
            found.append(Finding("staging", True, printable(
                f"{os.path.dirname(folder)} holds {os.path.basename(folder)!r}, which mplogger did not make "
                "(left as it is)")))
            continue
        pid, made = owner
        if process_alive(pid, made + 1.0):  # the name's time is whole seconds
            continue  # a live process is adding files to an artifact
        if pid in writing:
            found.append(Finding("staging", True, printable(
                f"staging folder {folder}: its process {pid} is gone, but its run was still marked running "
                "(its manager may still be storing the files); kept: run doctor again")))
            continue
        if remote:
            found.append(Finding("staging", True, printable(
                f"staging folder {folder}: its process {pid} is not alive on this host; kept, as it may be "
                f"of a process on another host, whose runs are running ({', '.join(map(str, remote[:5]))})")))
            continue
        if live:
            found.append(Finding("staging", True, printable(
                f"staging folder {folder}: its process {pid} is gone; kept while runs are live "
                f"({', '.join(map(str, live[:5]))}), as one of their child processes may have logged it: "
                "run doctor again once they have finished")))
            continue
        if repair:
            shutil.rmtree(folder, ignore_errors=True)
        found.append(Finding("staging", False, printable(
            f"staging folder {folder} was left by process {pid}, which is gone" + ("; removed" if repair else "")),
            repair))
    return found


def format_size(size: int) -> str:
    """A size as ``512 B``, ``1.5 KiB``, ``3.0 MiB``, ..."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # not reached


def summary_line(findings: List[Finding]) -> str:
    """One line: how many problems, how many repaired."""
    problems = [f for f in findings if not f.ok]
    repaired = [f for f in problems if f.repaired]
    if not problems:
        return f"store is healthy ({len(findings)} checks)"
    return f"{len(problems)} problem(s) found, {len(repaired)} repaired"

