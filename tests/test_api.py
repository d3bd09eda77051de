"""Tests for ``mplogger._api``: reading stored runs."""

from __future__ import annotations

import sqlite3

import pytest

import mplogger


def _make(root, project, name):
    run = mplogger.init(dir=root, project=project, name=name, tags=["t1"], notes="n", group="g",
                        job_type="train", reinit="create_new")
    run.log({"x": 1})
    run.finish()
    return run


def test_runs_newest_first_and_by_project(root):
    a = _make(root, "p1", "a")
    b = _make(root, "p2", "b")
    c = _make(root, "p1", "c")
    api = mplogger.Api(root)
    assert [r.id for r in api.runs()] == [c.id, b.id, a.id]
    assert [r.name for r in api.runs(project="p1")] == ["c", "a"]
    stored = api.run(a.id)
    assert (stored.tags, stored.notes, stored.group, stored.job_type) == (["t1"], "n", "g", "train")
    assert stored.pid > 0 and stored.python and isinstance(stored.argv, list) and stored.host


def test_unknown_run_names_the_closest_ids(root):
    run = _make(root, "p", "a")
    with pytest.raises(KeyError, match=f"did you mean {run.id}"):
        mplogger.Api(root).run(run.id[:3] + "zzzzz")


def test_missing_store_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no mplogger store"):
        mplogger.Api(str(tmp_path / "nothing")).runs()


def test_scan_history_pages_through_large_runs(root):
    run = mplogger.init(dir=root)
    for i in range(2500):
        run.log({"i": i, "sq": i * i} if i % 2 else {"i": i})
    run.finish()
    stored = mplogger.Api(root).run(run.id)
    assert [r["i"] for r in stored.scan_history(page_size=100)] == list(range(2500))
    only_sq = list(stored.scan_history(keys=["sq"], page_size=333))
    assert len(only_sq) == 1250 and set(only_sq[0]) == {"sq", "_step", "_timestamp", "_runtime"}


def test_store_is_plain_sqlite_and_json(root):
    run = mplogger.init(dir=root, config={"lr": 0.5})
    run.log({"loss": float("nan"), "acc": 0.5, "nested": {"a": 1}})
    run.finish()
    conn = sqlite3.connect(f"{root}/mplogger.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    acc, kind, nested = conn.execute(
        "SELECT json_extract(data, '$.acc'), json_extract(data, '$.loss._type'), "
        "json_extract(data, '$.nested.a') FROM history WHERE run_id = ?", (run.id,)).fetchone()
    assert (acc, kind, nested) == (0.5, "float", 1)
    assert conn.execute("SELECT json_extract(config, '$.lr'), state FROM runs").fetchone() == (0.5, "finished")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
