"""Tests for ``mplogger._readers._admin``: deleting runs and the store doctor."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import mplogger
from mplogger import _store
from mplogger._readers._admin import Deleted, KeptArtifact, delete_run, doctor, summary_line
from mplogger._shared._processes import process_alive


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


# --- artifacts -----------------------------------------------------------------------------------
def _log(run: mplogger.Run, tmp_path: Path, name: str, text: str) -> mplogger.Artifact:
    source = tmp_path / f"{name}-{len(list(tmp_path.iterdir()))}.txt"
    source.write_text(text)
    artifact = mplogger.Artifact(name, "dataset")
    artifact.add_file(str(source), "data.txt")
    run.log_artifact(artifact)
    return artifact.wait(timeout=60)


def _stray_object(root: str, tmp_path: Path, text: str) -> str:
    """An object no version holds (what a log_artifact cut short leaves), put as the worker puts one."""
    staged = tmp_path / f"stray-{len(list(tmp_path.iterdir()))}"
    staged.write_text(text)
    digest, _ = _store.hash_file(str(staged))
    return _store.put_object(root, str(staged), digest)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(60)
    return child.pid


def test_delete_run_keeps_a_version_another_run_used_and_says_so(root, tmp_path):
    maker = mplogger.init(dir=root, project="p", reinit="create_new")
    shared = _log(maker, tmp_path, "shared", "kept")
    own = _log(maker, tmp_path, "own", "goes")
    maker.finish()
    user = mplogger.init(dir=root, project="p", reinit="create_new")
    user.use_artifact("shared:v0")
    user.finish()
    own_object = _store.object_path(root, own.get_entry("data.txt").digest)
    shared_object = _store.object_path(root, shared.get_entry("data.txt").digest)

    deleted = delete_run(root, maker.id)
    assert isinstance(deleted, Deleted) and deleted["artifacts"] == 1 and deleted["history"] == 0
    assert deleted.kept == [KeptArtifact("shared:v0", (user.id,))] and deleted.objects_left == 0
    assert not os.path.exists(own_object) and os.path.isfile(shared_object)
    assert [a.name for a in mplogger.Api(root).artifacts()] == ["shared:v0"]
    assert _sql(root, "SELECT count(*) FROM artifact_runs WHERE run_id = ?", maker.id) == [(0,)]
    assert "artifacts" not in delete_run(root, _finished_run(root).id), "a run without artifacts: counts as before"
    second = delete_run(root, user.id)  # the last run that held the kept version: it goes now
    assert second == {"history": 0, "output": 0, "system_metrics": 0, "alerts": 0, "artifacts": 1}
    assert second.kept == [] and mplogger.Api(root).artifacts() == [] and not os.path.exists(shared_object)
    assert summary_line(doctor(root)) == "store is healthy (1 checks)"


def test_delete_run_leaves_freed_files_for_doctor_while_a_run_is_live(root, tmp_path):
    maker = mplogger.init(dir=root, project="p", reinit="create_new")
    own = _log(maker, tmp_path, "own", "goes")
    maker.finish()
    path = _store.object_path(root, own.get_entry("data.txt").digest)
    live = mplogger.init(dir=root, project="p", reinit="create_new")
    live.log({"x": 1})
    live.flush()
    deleted = delete_run(root, maker.id)
    assert deleted["artifacts"] == 1 and deleted.objects_left == 1 and os.path.isfile(path)
    assert [f.detail for f in doctor(root) if f.check == "objects"] == [
        f"1 artifact file(s) (4 B) in {root}/artifacts belong to no version; kept while runs are running ({live.id}): "
        "they may be storing them (run doctor again once they have finished)"]
    assert os.path.isfile(path)
    live.finish()
    fixed = [f for f in doctor(root) if f.check == "objects"]
    assert [(f.ok, f.repaired) for f in fixed] == [(False, True)] and fixed[0].detail.endswith("; deleted")
    assert not os.path.exists(path)


def test_doctor_removes_a_dead_process_staging_folder_and_an_unreferenced_object(root, tmp_path):
    run = _finished_run(root)
    logger = mplogger.init(dir=root, project="p", reinit="create_new")
    kept = _log(logger, tmp_path, "kept", "held")
    logger.finish()
    held = _store.object_path(root, kept.get_entry("data.txt").digest)
    stray = _stray_object(root, tmp_path, "nobody's")
    pid = _dead_pid()
    staging = os.path.join(root, "artifacts", "staging", f"{pid}-{int(time.time())}-0123456789ab")
    os.makedirs(staging)
    Path(staging, "x").write_text("half a checkpoint")
    foreign = os.path.join(root, "artifacts", "staging", "mine-do-not-touch")
    os.makedirs(foreign)
    ours = _store.new_staging(root)  # this process is alive: its folder is being filled

    dry = {f.check: f for f in doctor(root, repair=False) if f.check in ("objects", "staging") and not f.ok}
    assert set(dry) == {"objects", "staging"} and not any(f.repaired for f in dry.values())
    assert os.path.isdir(staging) and os.path.isfile(stray)

    findings = doctor(root)
    assert {(f.check, f.ok, f.repaired, f.detail) for f in findings if f.check in ("objects", "staging")} == {
        ("objects", False, True, f"1 artifact file(s) (8 B) in {root}/artifacts belong to no version; deleted"),
        ("staging", True, False, f"{root}/artifacts/staging holds 'mine-do-not-touch', which mplogger did not make "
                                 "(left as it is)"),
        ("staging", False, True, f"staging folder {staging} was left by process {pid}, which is gone; removed"),
    }
    assert not os.path.exists(staging) and not os.path.exists(stray)
    assert os.path.isdir(foreign) and os.path.isdir(ours) and os.path.isfile(held)
    downloaded = mplogger.Api(root).artifact("kept").download(root=str(tmp_path / "dl"))
    assert (Path(downloaded) / "data.txt").read_text() == "held"
    assert summary_line(doctor(root)) == "store is healthy (2 checks)"  # integrity, and the folder left alone
    assert mplogger.Api(root).run(run.id).rows == 20


def test_doctor_keeps_an_unreferenced_object_while_a_run_is_live(root, tmp_path):
    live = mplogger.init(dir=root, project="p")
    live.log({"x": 1})
    live.flush()
    stray = _stray_object(root, tmp_path, "in flight?")
    (found,) = [f for f in doctor(root) if f.check == "objects"]
    assert found.ok and not found.repaired and f"kept while runs are running ({live.id})" in found.detail
    assert os.path.isfile(stray)
    live.finish()
    assert [f.repaired for f in doctor(root) if f.check == "objects"] == [True]
    assert not os.path.exists(stray)


def test_doctor_reports_a_version_whose_file_is_missing(root, tmp_path):
    run = mplogger.init(dir=root, project="p")
    lost = _log(run, tmp_path, "lost", "soon gone")
    run.finish()
    path = _store.object_path(root, lost.get_entry("data.txt").digest)
    os.chmod(os.path.dirname(path), 0o755)
    os.unlink(path)
    findings = [f for f in doctor(root) if f.check == "artifacts"]
    assert [(f.ok, f.repaired, f.detail) for f in findings] == [
        (False, False, "artifact p/lost:v0 lost 1 of its files ('data.txt'): they cannot be restored "
                       "(log the artifact again)")]
    assert summary_line(doctor(root)) == "1 problem(s) found, 0 repaired"


def test_doctor_deletes_nothing_a_symbolic_link_leads_out_of_the_store(root, tmp_path):
    _finished_run(root)
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / ("c" * 62)
    victim.write_text("not the store's")
    os.makedirs(os.path.join(root, "artifacts", "objects"))
    os.symlink(outside, os.path.join(root, "artifacts", "objects", "ab"))
    away = tmp_path / "away"  # a folder named as a dead process's staging folder, reached by a link
    (away / f"{_dead_pid()}-{int(time.time())}-0123456789ab").mkdir(parents=True)
    os.symlink(away, os.path.join(root, "artifacts", "staging"))
    findings = doctor(root)
    assert victim.read_text() == "not the store's"
    assert len(os.listdir(away)) == 1
    assert [f.ok for f in findings if f.check == "staging"] == [True]
