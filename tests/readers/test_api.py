"""Tests for ``mplogger._readers._api``: reading stored runs."""

from __future__ import annotations

import os
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


def _sweep(root):
    made = {}
    for name, lr, state, tags, project in (("a", 0.1, None, ["sweep"], "p"), ("b", 0.01, 1, ["sweep", "best"], "p"),
                                          ("c", 0.001, None, [], "q")):
        run = mplogger.init(dir=root, project=project, name=name, config={"lr": lr, "net": {"depth": 2}},
                            tags=tags, reinit="create_new")
        run.log({"acc": 1 - lr})
        run.finish(exit_code=state)
        made[name] = run
    return made


@pytest.mark.parametrize("query, names", [
    (dict(), "cba"),
    (dict(project="p"), "ba"),
    (dict(project="someone/p"), "ba"),
    (dict(state="failed"), "b"),
    (dict(state=["failed", "finished"]), "cba"),
    (dict(tags="sweep"), "ba"),
    (dict(tags=["sweep", "best"]), "b"),
    (dict(filters={"config.lr": {"$lt": 0.05}}), "cb"),
    (dict(filters={"summary.acc": {"$gte": 0.95}, "config.net.depth": 2}), "cb"),
    (dict(predicate=lambda run: run.config["lr"] > 0.005), "ba"),
    (dict(project="p", predicate=lambda run: "best" in run.tags), "b"),
])
def test_runs_are_narrowed_by_every_argument(root, query, names):
    _sweep(root)
    assert "".join(run.name for run in mplogger.Api(root).runs(**query)) == names


@pytest.mark.parametrize("query, error, message", [
    (dict(state="done"), ValueError, "unknown state 'done'; states are running, finished, failed, crashed"),
    (dict(tags=[1]), TypeError, "tags must be a string or a list of strings, not int 1"),
    (dict(filters={"colour": 1}), ValueError, "unknown filter field 'colour'"),
    (dict(predicate="lr>1"), TypeError, "predicate must be a function of the run, not str"),
])
def test_bad_run_queries_name_what_is_wrong(root, query, error, message):
    _sweep(root)
    with pytest.raises(error) as raised:
        mplogger.Api(root).runs(**query)
    assert message in str(raised.value)


def test_runs_to_pandas_is_one_row_a_run_with_flat_config_and_summary(root):
    pd = pytest.importorskip("pandas")
    made = _sweep(root)
    frame = mplogger.Api(root).runs(project="p").to_pandas()
    assert list(frame["name"]) == ["b", "a"]
    assert list(frame["config.lr"]) == [0.01, 0.1] and list(frame["config.net.depth"]) == [2, 2]
    assert list(frame["summary.acc"]) == [0.99, 0.9]
    assert list(frame["state"]) == ["failed", "finished"] and list(frame["id"]) == [made["b"].id, made["a"].id]
    assert isinstance(frame["created"][0], pd.Timestamp) and frame["rows"].tolist() == [1, 1]
    empty = mplogger.Api(root).runs(project="nope").to_pandas()
    assert len(empty) == 0 and "config.lr" not in empty.columns and "state" in empty.columns


def test_a_run_is_found_by_a_unique_prefix_or_a_wandb_path(root):
    for run_id in ("abcd1111", "abcd2222"):
        mplogger.init(dir=root, id=run_id, reinit="create_new").finish()
    api = mplogger.Api(root)
    assert api.run("abcd1").id == "abcd1111"
    assert api.run("me/uncategorized/abcd2222").id == "abcd2222"
    with pytest.raises(KeyError, match="run id prefix 'abcd' is ambiguous in .*: abcd2222, abcd1111"):
        api.run("abcd")
    with pytest.raises(TypeError, match="run id must be a non-empty string"):
        api.run("")


def test_delete_removes_the_run_its_rows_and_folder(root):
    made = _sweep(root)
    api = mplogger.Api(root)
    stored = api.run(made["a"].id)
    assert stored.delete() == {"history": 1, "output": 0, "system_metrics": 0, "alerts": 0}
    assert {run.name for run in api.runs()} == {"b", "c"}
    conn = sqlite3.connect(f"{root}/mplogger.db")
    assert conn.execute("SELECT count(*) FROM history WHERE run_id = ?", (made["a"].id,)).fetchone() == (0,)
    assert not os.path.exists(stored.dir)
    with pytest.raises(KeyError):
        stored.delete()


def test_report_function_writes_the_selected_runs(root, tmp_path):
    made = _sweep(root)
    path = mplogger.report(project="p", dir=root, output=str(tmp_path / "r.html"))
    text = open(path).read()
    assert made["a"].id in text and made["b"].id in text and made["c"].id not in text
    one = mplogger.report(made["c"].id, dir=root, output=str(tmp_path / "c.html"))
    assert made["c"].id in open(one).read()
