"""The worker in this process, on a real SQLite store: what a failed record or commit leaves.

A failure must reach the run it concerns (with the original exception), and nothing may be
counted that was not stored; the worker goes on serving.
"""

from __future__ import annotations

import pickle
import sqlite3
import time

import pytest

import mplogger
from mplogger import _store
from mplogger._ipc._remote import unpack_exception
from mplogger._ipc._messages import (
    ErrorReply,
    FinishRun,
    FlushRun,
    InitRun,
    LogBatch,
    RunFinished,
    RunFlushed,
    RunReady,
)
from mplogger._worker._writer import Worker


def _record(run_id: str) -> dict:
    return {"id": run_id, "project": "p", "name": run_id, "created": time.time(), "config": "{}",
            "metadata": "{}", "tags": "[]", "argv": "[]"}


def _batch(run_id: str, rows: list) -> LogBatch:
    return LogBatch(run_id, pickle.dumps(rows), len(rows))


def _rows(first: int, count: int, **extra) -> list:
    return [(step, time.time(), {"x": float(step), **extra}) for step in range(first, first + count)]


@pytest.fixture
def worker(root):
    serving = Worker(0)
    yield serving
    serving.close()


def _open(worker: Worker, root: str, run_id: str = "r1") -> None:
    replies = worker.handle_all([InitRun(1, root, _record(run_id))])
    assert [type(r) for r in replies] == [RunReady]


def _errors(replies: list) -> list:
    return [r for r in replies if type(r) is ErrorReply]


def test_a_row_that_cannot_be_encoded_costs_only_itself(worker, root):
    _open(worker, root)
    rows = _rows(0, 3)
    rows[1] = (1, time.time(), {"x": object()})  # got past the call-site check somehow
    replies = worker.handle_all([_batch("r1", rows), FlushRun(2, "r1")])
    errors = _errors(replies)
    assert len(errors) == 1 and errors[0].run_id == "r1" and errors[0].request is None
    assert "1 of the 3 rows" in errors[0].note
    assert isinstance(unpack_exception(errors[0].error), TypeError)
    assert [r.rows for r in replies if type(r) is RunFlushed] == [2]
    worker.handle_all([FinishRun(3, "r1", "finished", 0)])
    stored = mplogger.Api(root).run("r1")
    assert [row["x"] for row in stored.history()] == [0.0, 2.0]
    assert stored.rows == 2 and stored.summary == {"x": 2.0}


def _fill_up(worker: Worker, root: str) -> None:
    """Let the store grow no further: SQLite's own 'database or disk is full' from here on."""
    conn = worker.stores[root]
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")


def test_a_full_store_reports_the_lost_rows_and_counts_only_what_was_stored(worker, root):
    _open(worker, root)
    worker.handle_all([_batch("r1", _rows(0, 10))])
    _fill_up(worker, root)
    replies = worker.handle_all([_batch("r1", _rows(10, 2000, pad="x" * 200)), FlushRun(2, "r1")])
    errors = _errors(replies)
    assert len(errors) == 1 and errors[0].run_id == "r1" and "2000 rows" in errors[0].note
    cause = unpack_exception(errors[0].error)
    assert isinstance(cause, sqlite3.OperationalError) and "full" in str(cause)
    assert [r.rows for r in replies if type(r) is RunFlushed] == [10]  # durable: the first 10 only
    run = worker.runs["r1"]
    assert run.seq == 10 and run.last_step == 9 and run.summary == {"x": 9.0}

    worker.stores[root].execute("PRAGMA max_page_count = 1073741823")
    replies = worker.handle_all([_batch("r1", _rows(10, 5)), FinishRun(3, "r1", "finished", 0)])
    assert not _errors(replies)
    stored = mplogger.Api(root).run("r1")
    assert stored.state == "finished"
    assert [row["_step"] for row in stored.history()] == list(range(15))
    assert stored.rows == 15 and stored.summary == {"x": 14.0}


def test_a_run_created_in_a_write_that_fails_is_not_left_open(worker, root):
    _open(worker, root, "first")
    _fill_up(worker, root)
    replies = worker.handle_all([InitRun(5, root, _record("second")),
                                 _batch("second", _rows(0, 3000, pad="y" * 200))])
    assert any(type(r) is ErrorReply and r.request == 5 for r in replies)
    assert not any(type(r) is RunReady for r in replies)
    assert "second" not in worker.runs and "first" in worker.runs
    worker.stores[root].execute("PRAGMA max_page_count = 1073741823")
    assert not _errors(worker.handle_all([FinishRun(6, "first", "finished", 0)]))
    assert [run.id for run in mplogger.Api(root).runs()] == ["first"]


def test_a_finish_after_a_lost_batch_records_the_end_with_what_was_stored(worker, root):
    _open(worker, root)
    worker.handle_all([_batch("r1", _rows(0, 5))])
    _fill_up(worker, root)
    replies = worker.handle_all([_batch("r1", _rows(5, 3000, pad="z" * 200)),
                                 FinishRun(7, "r1", "finished", 0)])
    assert [r.note for r in _errors(replies)] == ["3000 rows (steps 5-3004) logged to it were not stored"]
    finish = next(r for r in replies if getattr(r, "request", None) == 7)
    assert type(finish) is RunFinished and finish.rows == 5
    assert "r1" not in worker.runs
    stored = mplogger.Api(root).run("r1")
    assert stored.rows == len(stored.history()) == 5
    assert stored.state == "finished"


def test_a_store_deleted_under_the_worker_is_an_error_and_a_new_run_recreates_it(worker, root):
    import shutil

    _open(worker, root)
    worker.handle_all([_batch("r1", _rows(0, 5))])
    shutil.rmtree(root)
    replies = worker.handle_all([_batch("r1", _rows(5, 5)), FlushRun(2, "r1")])
    flush = next(r for r in replies if getattr(r, "request", None) == 2)
    assert type(flush) is ErrorReply and flush.error.type_name == "StoreGone"
    assert "deleted" in flush.error.message
    replies = worker.handle_all([_batch("r1", _rows(10, 1)), FinishRun(3, "r1", "finished", 0)])
    assert any(type(r) is ErrorReply and r.request == 3 for r in replies)
    _open(worker, root, "r2")
    assert not _errors(worker.handle_all([_batch("r2", _rows(0, 2)), FinishRun(4, "r2", "finished", 0)]))
    assert [(run.id, run.rows) for run in mplogger.Api(root).runs()] == [("r2", 2)]


def test_a_run_live_in_another_process_is_not_resumed(worker, root, script, tmp_path):
    import subprocess
    import sys

    from conftest import script_env

    holder = script("""
        import sys, mplogger
        run = mplogger.init(dir=sys.argv[1], id="held")
        run.log({"x": 1}); run.flush()
        print("READY", flush=True)
        sys.stdin.read()
        run.finish()
    """)
    proc = subprocess.Popen([sys.executable, str(holder), root], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=script_env())
    try:
        assert proc.stdout.readline().strip() == "READY"
        replies = worker.handle_all([InitRun(1, root, _record("held") | {"pid": 1, "host": _host()},
                                             resume="allow")])
        assert type(replies[0]) is ErrorReply
        assert f"process {proc.pid}" in replies[0].error.message
        proc.stdin.close()
        assert proc.wait(60) == 0
    finally:
        proc.kill()
        proc.wait()
    replies = worker.handle_all([InitRun(2, root, _record("held") | {"pid": 1, "host": _host()},
                                         resume="allow")])
    assert type(replies[0]) is RunReady and replies[0].record["rows"] == 1


def _host() -> str:
    import socket

    return socket.gethostname()


def test_replies_of_other_runs_survive_a_failed_write(worker, root, tmp_path):
    other = str(tmp_path / "other")
    _open(worker, root, "full")
    _open(worker, other, "fine")
    _fill_up(worker, root)
    replies = worker.handle_all([_batch("fine", _rows(0, 3)), FlushRun(8, "fine"),
                                 _batch("full", _rows(0, 3000, pad="q" * 200)), FlushRun(9, "full")])
    by_request = {r.request: r for r in replies if getattr(r, "request", None) in (8, 9)}
    assert type(by_request[8]) is RunFlushed and by_request[8].rows == 3
    assert type(by_request[9]) is RunFlushed and by_request[9].rows == 0
    assert [r.run_id for r in _errors(replies)] == ["full"]
    assert not _errors(worker.handle_all([FinishRun(10, "fine", "finished", 0)]))
    assert type(worker.handle_all([FinishRun(11, "fine", "finished", 0)])[0]) is ErrorReply
    assert mplogger.Api(other).run("fine").rows == 3


def test_the_store_functions_used_here_write_what_they_say(root):
    conn = _store.connect(root)
    try:
        assert _store.file_identity(root) is not None
        assert _store.file_identity(root + "-missing") is None
    finally:
        conn.close()


def test_an_environment_the_store_cannot_take_is_reported_to_its_run(worker, root):
    _open(worker, root)
    worker.handle_all([_batch("r1", _rows(0, 3))])
    _fill_up(worker, root)
    worker.collecting += 1
    worker.collected.put(("r1", root, {"packages": ["p" * 100] * 5000}))
    worker.store_collected(block=False)
    errors = _errors(worker.take_replies())
    assert [(r.run_id, r.note) for r in errors] == [("r1", "its environment (git, packages) was not stored")]
    assert "full" in errors[0].error.message
    worker.stores[root].execute("PRAGMA max_page_count = 1073741823")
    assert not _errors(worker.handle_all([FinishRun(2, "r1", "finished", 0)]))
    assert mplogger.Api(root).run("r1").rows == 3


def test_a_failed_commit_keeps_the_rows_it_only_held_and_the_summary_made_of_them(worker, root):
    _open(worker, root)
    worker.handle_all([_batch("r1", _rows(0, 1))])
    _fill_up(worker, root)
    big = [(step, time.time(), {"x": float(step), "pad": "p" * 20000}) for step in range(1, 4)]
    replies = worker.handle_all([_batch("r1", big)], idle=False)  # held, not written; the summary does not fit
    assert not _errors(replies)
    run = worker.runs["r1"]
    assert run.history.pending == 3 and run.last_step == 3 and run.summary["x"] == 3.0
    worker.stores[root].execute("PRAGMA max_page_count = 1073741823")
    assert not _errors(worker.handle_all([FinishRun(2, "r1", "finished", 0)]))
    stored = mplogger.Api(root).run("r1")
    assert [row["_step"] for row in stored.history()] == [0, 1, 2, 3]
    assert stored.rows == 4 and stored.last_step == 3 and stored.summary["x"] == 3.0
