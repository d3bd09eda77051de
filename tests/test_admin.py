"""Tests for ``mplogger._admin``: deleting runs and the store doctor."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time

import pytest

import mplogger
from mplogger._admin import delete_run, doctor, process_alive, summary_line


def _finished_run(root: str, rows: int = 20) -> mplogger.Run:
    run = mplogger.init(dir=root, project="p", reinit="create_new")
    for step in range(rows):
        run.log({"x": step})
    run.finish()
    return run


def _sql(root: str, statement: str, *params: object) -> list:
    conn = sqlite3.connect(os.path.join(root, "mplogger.db"), isolation_level=None)
    try:
        return conn.execute(statement, params).fetchall()
    finally:
        conn.close()


def test_process_alive_tells_a_live_process_from_a_dead_or_reused_pid():
    started = time.time()
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        assert process_alive(child.pid, since=time.time())
        assert not process_alive(child.pid, since=started - 3600), "a pid younger than the run is a reused pid"
    finally:
        child.kill()
        child.wait()
    assert not process_alive(child.pid, since=time.time())
    assert not process_alive(None, since=0) and not process_alive(0, since=0)


def test_a_healthy_store_has_nothing_to_repair(root):
    _finished_run(root)
    findings = doctor(root)
    assert [f.check for f in findings] == ["integrity"]
    assert summary_line(findings) == "store is healthy (1 checks)"


def test_doctor_corrects_row_counts_and_removes_orphan_rows(root):
    run = _finished_run(root)
    _sql(root, "UPDATE runs SET rows = 3, last_step = 2 WHERE id = ?", run.id)
    _sql(root, "INSERT INTO output (run_id, timestamp, stream, line) VALUES ('gone1234', 0, 'stdout', 'x')")

    dry = doctor(root, repair=False)
    assert {(f.check, f.ok, f.repaired) for f in dry} == {("integrity", True, False), ("rows", False, False),
                                                         ("orphans", False, False)}
    assert _sql(root, "SELECT rows FROM runs WHERE id = ?", run.id) == [(3,)]

    fixed = doctor(root)
    assert {(f.check, f.repaired) for f in fixed if not f.ok} == {("rows", True), ("orphans", True)}
    assert "run says 3 rows, history holds 20; corrected" in [f.detail for f in fixed if f.check == "rows"]
    assert _sql(root, "SELECT rows, last_step FROM runs WHERE id = ?", run.id) == [(20, 19)]
    assert _sql(root, "SELECT count(*) FROM output WHERE run_id = 'gone1234'") == [(0,)]
    assert summary_line(doctor(root)) == "store is healthy (1 checks)"


def test_doctor_leaves_live_and_foreign_runs_alone(root):
    live = mplogger.init(dir=root, project="p")
    live.log({"x": 1})
    live.flush()
    _sql(root, "INSERT INTO runs (id, project, name, state, created, updated, host, pid) "
               "VALUES ('far12345', 'p', 'far', 'running', 0, 0, 'another-host', 1)")
    findings = {f.run_id: f for f in doctor(root)}
    assert findings[live.id].ok and "alive" in findings[live.id].detail
    assert findings["far12345"].ok and "cannot check its process from here" in findings["far12345"].detail
    assert mplogger.Api(root).run(live.id).state == "running"
    live.finish()
    assert mplogger.Api(root).run(live.id).state == "finished"


def test_a_folder_without_a_run_is_reported_and_kept(root):
    _finished_run(root)
    stray = os.path.join(root, "runs", "stray000")
    os.makedirs(stray)
    findings = doctor(root)
    assert [f.detail for f in findings if f.check == "folders"] == [f"folder {stray} has no run record (left as it is)"]
    assert os.path.isdir(stray)


def test_a_file_that_is_not_a_database_is_a_finding_not_a_traceback(tmp_path):
    root = tmp_path / "store"
    root.mkdir()
    (root / "mplogger.db").write_bytes(b"this is not SQLite" * 100)
    findings = doctor(str(root))
    assert len(findings) == 1 and not findings[0].ok
    assert findings[0].detail.startswith("the database cannot be read: file is not a database")


def test_delete_of_an_unknown_run_changes_nothing(root):
    run = _finished_run(root)
    with pytest.raises(KeyError, match="no run 'nope1234'"):
        delete_run(root, "nope1234")
    assert _sql(root, "SELECT count(*) FROM history WHERE run_id = ?", run.id) == [(20,)]
