"""Artifact versions, their files, aliases and lineage: all of their SQL (the worker writes, a reader reads).

A version is a row of ``artifacts`` (name, ``version`` number, type, metadata as JSON, the digest
of its manifest); its files are rows of ``artifact_files`` (name inside the artifact, SHA-256 of
the content, size, and for a reference the URI it points at); ``artifact_aliases`` holds each
alias of a name once (so an alias moves, never doubles); ``artifact_runs`` says which runs logged
and used which versions; ``artifact_logs`` which version each log call gave (a child process,
which gets no reply, looks its version up there). A version is inserted with its files and aliases in the worker's
transaction, so a reader sees all of it or nothing.
"""

from __future__ import annotations

import hashlib
import sqlite3
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple

__all__ = ["ARTIFACT_COLUMNS", "FileRow", "add_version", "artifact_files", "artifact_runs", "artifact_tables_ready",
           "delete_run_artifacts", "find_versions", "held_digests", "manifest_digest", "record_use",
           "referenced_digests", "run_artifacts", "select_versions", "stored_files", "version_record"]

ARTIFACT_COLUMNS = ("id", "project", "name", "version", "type", "digest", "description", "metadata", "size",
                    "files", "run_id", "created")

FileRow = Tuple[str, str, Optional[int], Optional[str]]  # (path, digest, size, reference URI or None)


def artifact_tables_ready(conn: sqlite3.Connection) -> bool:
    """Whether the store has the artifact tables (a store of an older mplogger, read-only, may not)."""
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'artifacts'").fetchone() is not None


def manifest_digest(files: Iterable[FileRow]) -> str:
    """The digest of a version's content: its file names, their digests and sizes, and references."""
    digest = hashlib.sha256()
    for path, file_digest, size, ref in sorted(files):
        digest.update(f"{path}\0{file_digest}\0{'' if size is None else size}\0{ref or ''}\n".encode("utf-8",
                                                                                                   "surrogatepass"))
    return digest.hexdigest()


def _record(conn: sqlite3.Connection, row: Sequence[Any]) -> Dict[str, Any]:
    record = dict(zip(ARTIFACT_COLUMNS, row))
    record["aliases"] = [alias for (alias,) in conn.execute(
        "SELECT alias FROM artifact_aliases WHERE artifact_id = ? ORDER BY alias = 'latest' DESC, alias",
        (record["id"],))]
    return record


_SELECT = f"SELECT {', '.join(ARTIFACT_COLUMNS)} FROM artifacts"


def version_record(conn: sqlite3.Connection, artifact_id: int) -> Optional[Dict[str, Any]]:
    row = conn.execute(f"{_SELECT} WHERE id = ?", (artifact_id,)).fetchone()
    return None if row is None else _record(conn, row)


def add_version(conn: sqlite3.Connection, project: str, name: str, type: str, description: Optional[str],
                metadata: str, files: List[FileRow], aliases: Sequence[str], run_id: Optional[str],
                now: float, token: str = "") -> Tuple[Dict[str, Any], bool]:
    """Store a version of ``name`` with ``files``, or find the version with the same content.

    Returns (the version's record, whether it is new). ``aliases`` move to it; ``latest`` always
    names the newest version. ValueError when ``name`` already holds artifacts of another type.
    """
    known = conn.execute("SELECT type, next_version FROM artifact_names WHERE project = ? AND name = ?",
                         (project, name)).fetchone()
    if known is not None and known[0] != type:
        raise ValueError(f"artifact {name!r} of project {project!r} holds {known[0]!r} versions; "
                         f"a version of type {type!r} cannot be added to it (use another name)")
    digest = manifest_digest(files)
    same = conn.execute("SELECT id FROM artifacts WHERE project = ? AND name = ? AND digest = ? ORDER BY version LIMIT 1",
                        (project, name, digest)).fetchone()
    created = same is None
    if created:
        number = 0 if known is None else known[1]  # never reused, even after versions were deleted
        conn.execute("INSERT OR REPLACE INTO artifact_names (project, name, type, next_version) VALUES (?, ?, ?, ?)",
                     (project, name, type, number + 1))
        size = sum(size or 0 for _, _, size, ref in files if ref is None)
        artifact_id = conn.execute(
            "INSERT INTO artifacts (project, name, version, type, digest, description, metadata, size, files, "
            "run_id, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (project, name, number, type, digest, description, metadata, size, len(files), run_id, now)).lastrowid
        conn.executemany("INSERT INTO artifact_files (artifact_id, path, digest, size, ref) VALUES (?, ?, ?, ?, ?)",
                         [(artifact_id, *row) for row in files])
    else:
        artifact_id = same[0]
    for alias in dict.fromkeys(aliases):
        if alias != "latest":
            conn.execute("INSERT OR REPLACE INTO artifact_aliases (project, name, alias, artifact_id) VALUES (?, ?, ?, ?)",
                         (project, name, alias, artifact_id))
    _point_latest(conn, project, name)
    if run_id is not None:
        conn.execute("INSERT OR IGNORE INTO artifact_runs (run_id, artifact_id, role, at) VALUES (?, ?, 'logged', ?)",
                     (run_id, artifact_id, now))
    if token:
        conn.execute("INSERT OR REPLACE INTO artifact_logs (token, artifact_id) VALUES (?, ?)", (token, artifact_id))
    return version_record(conn, artifact_id), created


def refuse_log(conn: sqlite3.Connection, token: str, error: str) -> None:
    """Record that the log call ``token`` stored nothing, and why (for a child process waiting on it)."""
    conn.execute("INSERT OR REPLACE INTO artifact_logs (token, artifact_id, error) VALUES (?, NULL, ?)",
                 (token, error))


def logged_version(conn: sqlite3.Connection, token: str) -> Optional[Tuple[Optional[Dict[str, Any]], Optional[str]]]:
    """(the version the log call ``token`` stored or found, None) or (None, why it stored nothing),
    once either is committed; None before."""
    if not artifact_tables_ready(conn):
        return None
    row = conn.execute("SELECT artifact_id, error FROM artifact_logs WHERE token = ?", (token,)).fetchone()
    if row is None:
        return None
    return (None, str(row[1])) if row[0] is None else (version_record(conn, row[0]), None)


def _point_latest(conn: sqlite3.Connection, project: str, name: str) -> None:
    newest = conn.execute("SELECT id FROM artifacts WHERE project = ? AND name = ? ORDER BY version DESC LIMIT 1",
                          (project, name)).fetchone()
    if newest is None:
        conn.execute("DELETE FROM artifact_aliases WHERE project = ? AND name = ? AND alias = 'latest'", (project, name))
    else:
        conn.execute("INSERT OR REPLACE INTO artifact_aliases (project, name, alias, artifact_id) "
                     "VALUES (?, ?, 'latest', ?)", (project, name, newest[0]))


def find_versions(conn: sqlite3.Connection, project: Optional[str], name: str, alias: str) -> List[Dict[str, Any]]:
    """The versions ``name:alias`` names (``alias`` is an alias or ``vN``), one per project that has
    it (only ``project``'s when given)."""
    where, args = ("a.project = ? AND ", [project]) if project is not None else ("", [])
    if alias[:1] == "v" and alias[1:].isdigit():
        rows = conn.execute(f"{_SELECT} a WHERE {where}a.name = ? AND a.version = ? ORDER BY a.project",
                            (*args, name, int(alias[1:]))).fetchall()
    else:
        rows = conn.execute(
            f"SELECT {', '.join('a.' + c for c in ARTIFACT_COLUMNS)} FROM artifact_aliases l "
            f"JOIN artifacts a ON a.id = l.artifact_id WHERE {where.replace('a.project', 'l.project')}"
            "l.name = ? AND l.alias = ? ORDER BY a.project", (*args, name, alias)).fetchall()
    return [_record(conn, row) for row in rows]


def select_versions(conn: sqlite3.Connection, project: Optional[str] = None, name: Optional[str] = None,
                    type: Optional[str] = None) -> List[Dict[str, Any]]:
    """Versions, newest first within each name, narrowed by each argument given."""
    clauses, args = [], []
    for column, value in (("project", project), ("name", name), ("type", type)):
        if value is not None:
            clauses.append(f"{column} = ?")
            args.append(value)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = conn.execute(f"{_SELECT}{where} ORDER BY project, name, version DESC", args).fetchall()
    return [_record(conn, row) for row in rows]


def artifact_files(conn: sqlite3.Connection, artifact_id: int) -> List[FileRow]:
    """The files of a version, by name."""
    return [tuple(row) for row in conn.execute(
        "SELECT path, digest, size, ref FROM artifact_files WHERE artifact_id = ? ORDER BY path", (artifact_id,))]


def record_use(conn: sqlite3.Connection, run_id: str, artifact_id: int, now: float) -> None:
    conn.execute("INSERT OR IGNORE INTO artifact_runs (run_id, artifact_id, role, at) VALUES (?, ?, 'used', ?)",
                 (run_id, artifact_id, now))


def run_artifacts(conn: sqlite3.Connection, run_id: str, role: str) -> List[Dict[str, Any]]:
    """The versions a run ``logged`` or ``used``, in the order it did."""
    rows = conn.execute(f"SELECT {', '.join('a.' + c for c in ARTIFACT_COLUMNS)} FROM artifact_runs r "
                        "JOIN artifacts a ON a.id = r.artifact_id WHERE r.run_id = ? AND r.role = ? ORDER BY r.at, a.id",
                        (run_id, role)).fetchall()
    return [_record(conn, row) for row in rows]


def artifact_runs(conn: sqlite3.Connection, artifact_id: int, role: str) -> List[str]:
    """The ids of the runs that ``logged`` or ``used`` a version."""
    return [run_id for (run_id,) in conn.execute(
        "SELECT run_id FROM artifact_runs WHERE artifact_id = ? AND role = ? ORDER BY at", (artifact_id, role))]


def referenced_digests(conn: sqlite3.Connection) -> Set[str]:
    """The digests of every stored (not referenced) file that some version holds."""
    return {digest for (digest,) in conn.execute("SELECT DISTINCT digest FROM artifact_files WHERE ref IS NULL")}


def delete_run_artifacts(conn: sqlite3.Connection, run_id: str) -> Tuple[int, List[Tuple[str, List[str]]], Set[str]]:
    """Forget what a deleted run logged and used.

    A version the run created goes with it unless another run used (or also logged) it; it is
    then kept, and is no longer said to be the run's. A version kept that way earlier goes once
    the last run that used it is deleted too. Returns (versions deleted, [(``name:vN``,
    the runs that keep it)], the digests that no version holds any more).
    """
    deleted, kept, freed = 0, [], set()
    candidates = conn.execute(
        "SELECT id, project, name, version, run_id FROM artifacts WHERE run_id = ? OR (run_id IS NULL AND id IN "
        "(SELECT artifact_id FROM artifact_runs WHERE run_id = ?)) ORDER BY id", (run_id, run_id)).fetchall()
    conn.execute("DELETE FROM artifact_runs WHERE run_id = ?", (run_id,))
    for artifact_id, project, name, version, owner in candidates:
        others = [other for (other,) in conn.execute(
            "SELECT DISTINCT run_id FROM artifact_runs WHERE artifact_id = ? ORDER BY run_id", (artifact_id,))]
        if others:
            if owner is not None:  # handed to another run that logged it, if one did
                logger = conn.execute("SELECT run_id FROM artifact_runs WHERE artifact_id = ? AND role = 'logged' "
                                      "ORDER BY at LIMIT 1", (artifact_id,)).fetchone()
                conn.execute("UPDATE artifacts SET run_id = ? WHERE id = ?", (logger and logger[0], artifact_id))
                kept.append((f"{name}:v{version}", others))
            continue
        digests = {digest for (digest,) in conn.execute(
            "SELECT digest FROM artifact_files WHERE artifact_id = ? AND ref IS NULL", (artifact_id,))}
        conn.execute("DELETE FROM artifact_files WHERE artifact_id = ?", (artifact_id,))
        conn.execute("DELETE FROM artifact_aliases WHERE artifact_id = ?", (artifact_id,))
        conn.execute("DELETE FROM artifact_logs WHERE artifact_id = ?", (artifact_id,))
        conn.execute("DELETE FROM artifacts WHERE id = ?", (artifact_id,))
        _point_latest(conn, project, name)
        deleted += 1
        freed |= digests
    return deleted, kept, freed - held_digests(conn, freed)


def held_digests(conn: sqlite3.Connection, digests: Iterable[str]) -> Set[str]:
    """Those of ``digests`` that some version still holds as a stored (not referenced) file."""
    wanted = sorted(set(digests))
    held: Set[str] = set()
    for start in range(0, len(wanted), 500):  # well under SQLite's limit on bound parameters
        chunk = wanted[start:start + 500]
        marks = ", ".join("?" * len(chunk))
        held |= {digest for (digest,) in conn.execute(
            f"SELECT DISTINCT digest FROM artifact_files WHERE ref IS NULL AND digest IN ({marks})", chunk)}
    return held


def stored_files(conn: sqlite3.Connection) -> List[Tuple[Any, ...]]:
    """(project, name, version, file name, digest) of every stored (not referenced) file of every
    version, by version (unchecked: a store may hold anything; the caller validates)."""
    return conn.execute(
        "SELECT a.project, a.name, a.version, f.path, f.digest FROM artifact_files f "
        "JOIN artifacts a ON a.id = f.artifact_id WHERE f.ref IS NULL "
        "ORDER BY a.project, a.name, a.version, f.path").fetchall()
