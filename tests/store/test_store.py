"""The store, schema 2: history in blocks, written by the real worker and read back exactly.

Round trips of every kind of value through the real manager and worker, the writer and readers
on their own (hypothesis), a version-1 store made by mplogger 0.1 (committed under
``tests/data``), read and upgraded, and the two ``sqlite3`` queries of the README.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from hypothesis import given, settings, strategies as st

import mplogger
from mplogger import _store
from mplogger._shared._values import from_json, to_json

from conftest import REPO, TESTS

DATA = str(TESTS / "data")
V1_STORE = os.path.join(DATA, "store-v1")
README = str(REPO / "README.md")


def canonical(value) -> str:
    """One text for equal values, whatever their keys' order (NaN equals NaN; 1 and 1.0 differ)."""
    return json.dumps(json.loads(to_json(value)), sort_keys=True)


def _history(root: str, run_id: str, keys=None) -> list:
    api = mplogger.Api(root)
    try:
        return list(api.run(run_id).scan_rows(keys, load_media=False))
    finally:
        api.close()


# --- round trips through the real manager and worker --------------------------------------
ROWS = [
    {"x": math.nan, "y": math.inf, "z": -math.inf},
    {"nested": {"a": 1, "b": {"c": "deep", "n": math.nan}}, "text": "h\u00e9llo \udcff", "none": None, "flag": True},
    {"big": 2 ** 63 - 1, "neg": -(2 ** 63)},
    {"x": 1.0},
    {"x": "now a string", "flag": False},
]


def test_every_kind_of_value_reads_back_exactly(root):
    run = mplogger.init(dir=root)
    for row in ROWS:
        run.log(row)
    run.finish()
    stored = _history(root, run.id)
    assert [canonical({k: v for k, v in row.items() if not k.startswith("_")}) for row in stored] == \
        [canonical(row) for row in ROWS]
    assert [row["_step"] for row in stored] == list(range(len(ROWS)))
    picked = _history(root, run.id, keys=["nested.b.c"])
    assert [(row["nested.b.c"], row["_step"]) for row in picked] == [("deep", 1)]
    assert canonical(mplogger.Api(root).run(run.id).summary) == canonical(
        {"x": "now a string", "y": math.inf, "z": -math.inf, "nested": ROWS[1]["nested"], "text": ROWS[1]["text"],
         "none": None, "flag": False, "big": 2 ** 63 - 1, "neg": -(2 ** 63)})


def test_sparse_keys_merges_and_step_metrics_across_blocks(root):
    run = mplogger.init(dir=root)
    run.define_metric("val/step")
    run.define_metric("val/loss", step_metric="val/step")
    expected = []
    for i in range(2500):  # three blocks
        row = {"loss": i * 0.5}
        if i % 7 == 0:
            row["every7"] = i
        if i % 1000 == 999:
            run.log({"val/loss": float(i)}, commit=False)
            run.log({"val/step": i // 1000})
            expected.append({"val/loss": float(i), "val/step": i // 1000})
        run.log(row)
        expected.append(dict(row))
    run.finish()
    stored = _history(root, run.id)
    assert [canonical({k: v for k, v in row.items() if not k.startswith("_")}) for row in stored] == \
        [canonical(row) for row in expected]
    assert [row["_step"] for row in stored] == list(range(len(expected)))
    assert len(_history(root, run.id, keys=["every7"])) == len([r for r in expected if "every7" in r])
    assert [row["val/loss"] for row in _history(root, run.id, keys=["val/loss", "val/step"])] == [999.0, 1999.0]
    api = mplogger.Api(root)
    frame_rows = api.run(run.id).history(keys=["every7", "loss"])
    assert all(row["loss"] == row["every7"] * 0.5 for row in frame_rows)
    conn = _store.connect_reader(root)
    try:
        assert [b.count for b in _store.blocks(conn, run.id)] == [1024, 1024, len(expected) - 2048]
        assert _store.stored_rows(conn, run.id) == api.run(run.id).rows == len(expected)
    finally:
        conn.close()


def test_steps_that_jump_keep_their_steps(root):
    run = mplogger.init(dir=root)
    run.log({"a": 1.0}, step=5)
    run.log({"a": 2.0}, step=9, commit=True)
    run.log({"a": 3.0})
    run.log({"b": 4.0}, step=2 ** 40)
    run.finish()
    assert [(row["_step"], row.get("a")) for row in _history(root, run.id)] == [
        (5, 1.0), (9, 2.0), (10, 3.0), (2 ** 40, None)]


def test_timestamps_and_runtimes_are_kept_to_the_microsecond(root):
    before = time.time()
    run = mplogger.init(dir=root)
    run.log({"a": 1.0})
    run.finish()
    row = _history(root, run.id)[0]
    stored = mplogger.Api(root).run(run.id)
    assert before - 1e-3 <= row["_timestamp"] <= time.time()
    assert abs(row["_timestamp"] - stored.created - row["_runtime"]) < 2e-6
    assert row["_runtime"] >= 0


def test_history_as_pandas_is_built_from_columns(root):
    pd = pytest.importorskip("pandas")
    run = mplogger.init(dir=root)
    for i in range(1500):
        run.log({"a": float(i), **({"b": i} if i % 2 else {})})
    run.finish()
    stored = mplogger.Api(root).run(run.id)
    frame = stored.history(pandas=True)
    assert isinstance(frame, pd.DataFrame) and len(frame) == 1500
    assert list(frame["_step"]) == list(range(1500)) and frame["a"].iloc[1499] == 1499.0
    assert frame["b"].isna().sum() == 750
    picked = stored.history(keys=["b"], pandas=True)
    assert list(picked.columns) == ["b", "_step", "_timestamp", "_runtime"] and len(picked) == 750


# --- the writer and the readers on their own ----------------------------------------------
values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers(-(2 ** 63), 2 ** 63 - 1) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text("abc", min_size=1, max_size=3), inner, max_size=3),
    max_leaves=6)
rows = st.lists(st.dictionaries(st.sampled_from(["a", "b", "c.d", "e"]), values, max_size=4), max_size=60)


@settings(max_examples=60, deadline=None)
@given(rows=rows, cut=st.integers(1, 60))
def test_writer_and_reader_round_trip(tmp_path_factory, rows, cut):
    root = str(tmp_path_factory.mktemp("store"))
    conn = _store.connect(root)
    try:
        writer = _store.HistoryWriter("r", 1000.0, 0, 0)
        batch = [(step, 1000.0 + step, row) for step, row in enumerate(rows)]
        for start in range(0, len(batch), cut):
            _store.begin(conn)
            writer.add_rows(batch[start:start + cut])
            writer.write(conn)
            _store.commit(conn)
            writer.committed()
        read = list(_store.scan_rows(conn, "r"))
        assert [seq for seq, _, _ in read] == list(range(1, len(rows) + 1))
        assert [canonical({k: v for k, v in row.items() if k[0] != "_"}) for _, row, _ in read] == \
            [canonical(row) for row in rows]
        assert [row["_step"] for _, row, _ in read] == list(range(len(rows)))
        with_a = [row for row in rows if "a" in row]
        assert canonical([row["a"] for page, _ in _store.read_keys(conn, "r", ["a"]) for row in page]) == \
            canonical([row["a"] for row in with_a])
    finally:
        conn.close()


def test_a_write_that_is_rolled_back_forgets_exactly_the_rows_not_committed(root):
    conn = _store.connect(root)
    writer = _store.HistoryWriter("r", 0.0, 0, 0)
    _store.begin(conn)
    writer.add_rows([(step, float(step), {"x": float(step)}) for step in range(1000)])
    writer.write(conn)
    _store.commit(conn)
    writer.committed()
    _store.begin(conn)
    writer.add_rows([(step, float(step), {"x": float(step)}) for step in range(1000, 1100)])
    writer.write(conn)
    _store.rollback(conn)
    assert writer.rolled_back() == _store.Lost(100, 1000, 1099)
    _store.begin(conn)
    writer.add_rows([(step, float(step), {"y": "s"}) for step in range(1000, 1030)])
    writer.write(conn)
    _store.commit(conn)
    writer.committed()
    read = [row for _, row, _ in _store.scan_rows(conn, "r")]
    assert [row["_step"] for row in read] == list(range(1030))
    assert read[999] == {"x": 999.0, "_step": 999, "_timestamp": 999.0, "_runtime": 999.0}
    assert read[1000]["y"] == "s" and "x" not in read[1000]
    conn.close()


def test_a_busy_worker_holds_rows_until_a_block_fills_or_they_are_old(root):
    import pickle

    from mplogger._ipc._messages import FinishRun, InitRun, LogBatch
    from mplogger._worker._writer import Worker

    worker = Worker(0)
    record = {"id": "r1", "project": "p", "name": "r1", "created": time.time(), "config": "{}",
              "metadata": "{}", "tags": "[]", "argv": "[]"}
    worker.handle_all([InitRun(1, root, record)])
    batch = [(step, time.time(), {"x": float(step)}) for step in range(300)]
    worker.handle_all([LogBatch("r1", pickle.dumps(batch), 300)], idle=False)
    assert mplogger.Api(root).run("r1").rows == 0 and worker.runs["r1"].history.pending == 300
    worker.runs["r1"].history.since -= _store.TAIL_AGE_S  # as if the rows had waited that long
    worker.write_pending(idle=False)
    assert mplogger.Api(root).run("r1").rows == 300
    worker.handle_all([FinishRun(2, "r1", "finished", 0)])
    assert len(mplogger.Api(root).run("r1").history()) == 300
    worker.close()


# --- version 1 stores ---------------------------------------------------------------------
@pytest.fixture
def v1_root(tmp_path):
    target = str(tmp_path / "mplogger-runs")
    shutil.copytree(V1_STORE, target)
    return target


def _read_all(root: str) -> dict:
    api = mplogger.Api(root)
    try:
        out = {}
        for run in api.runs():
            out[run.id] = {
                "state": run.state, "rows": run.rows, "last_step": run.last_step, "config": run.config,
                "summary": run.summary, "output": run.output(), "system_metrics": run.system_metrics(),
                "history": list(run.scan_rows(None, load_media=False)),
                "history_keys": list(run.scan_history(keys=["loss"] if run.id != "v1mixed" else ["nested.b.c"])),
            }
        return out
    finally:
        api.close()


def _expected() -> dict:
    with open(os.path.join(DATA, "store-v1.expected.json")) as handle:
        return from_json(handle.read())


def _version(root: str) -> int:
    conn = sqlite3.connect(_store.db_path(root))
    try:
        return _store.schema_version(conn)
    finally:
        conn.close()


def test_a_v1_store_reads_exactly_as_mplogger_0_1_read_it_before_and_after_the_upgrade(v1_root):
    assert _version(v1_root) == 1
    assert canonical(_read_all(v1_root)) == canonical(_expected())
    assert _version(v1_root) == 1  # readers write nothing
    _store.connect(v1_root).close()  # the first writer upgrades it
    assert _version(v1_root) == _store.SCHEMA_VERSION
    assert canonical(_read_all(v1_root)) == canonical(_expected())
    findings = mplogger.Api(v1_root).doctor(repair=False)
    assert all(f.ok for f in findings), findings


def test_a_v1_run_resumes_and_new_runs_join_it(v1_root):
    run = mplogger.init(id="v1resume", resume="allow", dir=v1_root)
    for i in range(3):
        run.log({"loss": 10.0 + i})
    run.finish()
    fresh = mplogger.init(dir=v1_root, project="v2")
    fresh.log({"loss": 1.0})
    fresh.finish()
    stored = mplogger.Api(v1_root).run("v1resume")
    history = stored.history()
    assert [(row["_step"], row["loss"]) for row in history] == [(i, float(i)) for i in range(5)] + \
        [(5, 10.0), (6, 11.0), (7, 12.0)]
    assert stored.rows == 8 and stored.summary["loss"] == 12.0 and stored.state == "finished"
    assert [row["loss"] for row in stored.history(keys=["loss"])] == [0.0, 1.0, 2.0, 3.0, 4.0, 10.0, 11.0, 12.0]
    assert {run.id for run in mplogger.Api(v1_root).runs()} == {"v1plain", "v1mixed", "v1resume", fresh.id}
    assert stored.delete()["history"] == 8
    assert all(f.ok for f in mplogger.Api(v1_root).doctor(repair=False))


UPGRADE_KILLED = r"""
import os, signal, sys
from mplogger._store import _schema
real = _schema._statements
def statements(script):
    found = real(script)
    return found[:3] + [None]  # a statement the upgrade never reaches: the process dies first
class Conn:
    def __init__(self, conn): self.conn = conn
    def execute(self, statement, *args):
        if statement is None:
            os.kill(os.getpid(), signal.SIGKILL)
        return self.conn.execute(statement, *args)
    def __getattr__(self, name): return getattr(self.conn, name)
_schema._statements = statements
real_ensure = _schema._ensure_schema
_schema._ensure_schema = lambda conn: real_ensure(Conn(conn))
_schema.connect(sys.argv[1])
"""


def test_an_upgrade_killed_midway_leaves_the_v1_store_readable_and_upgradable(v1_root):
    done = subprocess.run([sys.executable, "-c", UPGRADE_KILLED, v1_root], timeout=60)
    assert done.returncode == -signal.SIGKILL
    assert _version(v1_root) == 1
    assert canonical(_read_all(v1_root)) == canonical(_expected())
    _store.connect(v1_root).close()
    assert _version(v1_root) == _store.SCHEMA_VERSION
    assert canonical(_read_all(v1_root)) == canonical(_expected())


def test_a_schema_2_store_gains_the_artifact_tables_and_keeps_its_runs(root):
    run = mplogger.init(dir=root)
    run.log({"x": 1.5})
    run.finish()
    mplogger.teardown()
    conn = sqlite3.connect(_store.db_path(root), isolation_level=None)
    for table in ("artifacts", "artifact_files", "artifact_aliases", "artifact_runs", "artifact_logs"):
        conn.execute(f"DROP TABLE {table}")
    conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    conn.close()
    assert mplogger.Api(root).artifacts() == [] and mplogger.Api(root).run(run.id).history()[0]["x"] == 1.5
    _store.connect(root).close()
    assert _version(root) == _store.SCHEMA_VERSION == 3
    assert mplogger.Api(root).run(run.id).history()[0]["x"] == 1.5 and mplogger.Api(root).artifacts() == []


def test_a_store_from_a_newer_mplogger_is_refused_clearly(root):
    _store.connect(root).close()
    conn = sqlite3.connect(_store.db_path(root), isolation_level=None)
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.close()
    with pytest.raises(RuntimeError, match="newer mplogger"):
        _store.connect(root)


# --- the sqlite3 queries of the README ----------------------------------------------------
def _readme_queries() -> list:
    """The ``sqlite3`` command lines of the README's store section, in order."""
    with open(README) as handle:
        text = handle.read()
    section = text[text.index("## The store"):text.index("## Settings")]
    return [line.strip() for line in section.splitlines() if line.strip().startswith("sqlite3 ")]


def _run_query(command: str, root: str, run_id: str) -> list:
    """Run one README command (``sqlite3 DB "SQL"``) on ``root``'s store for ``run_id``: with the
    ``sqlite3`` program when there is one, and always through Python's SQLite (the same engine)."""
    statement = command.split('"', 1)[1].rsplit('"', 1)[0].replace("abcd1234", run_id)
    conn = sqlite3.connect(_store.db_path(root))
    try:
        rows = [list(row) for row in conn.execute(statement)]
    finally:
        conn.close()
    program = shutil.which("sqlite3")
    if program is not None:
        shell = subprocess.run([program, "-json", _store.db_path(root), statement], capture_output=True,
                               text=True, timeout=60, check=True)
        assert len(json.loads(shell.stdout or "[]")) == len(rows)
    return rows


def test_the_readme_sqlite3_queries_read_a_metric_and_the_rows(root):
    queries = _readme_queries()
    assert len(queries) == 2, queries
    run = mplogger.init(dir=root)
    logged = []
    for i in range(1500):
        row = {"loss": 1.0 / (i + 1), "acc": {"top1": i * 0.5}}
        if i % 500 == 0:
            row["note"] = f"step {i}"
        if i == 3:
            row["loss"] = math.nan
        run.log(row)
        logged.append(row)
    run.finish()
    series = _run_query(queries[0], root, run.id)
    assert [step for step, _ in series] == list(range(1500))
    assert [value for _, value in series[:3]] == [1.0, 0.5, 1.0 / 3]
    assert json.loads(series[3][1]) == {"_type": "float", "value": "NaN"}
    rows = _run_query(queries[1], root, run.id)
    assert [row[0] for row in rows] == list(range(1500))
    assert [from_json(row[-1]) for row in rows[:3]] == [
        {"loss": 1.0, "acc": {"top1": 0.0}, "note": "step 0"}, {"loss": 0.5, "acc": {"top1": 0.5}},
        {"loss": 1.0 / 3, "acc": {"top1": 1.0}}]
    assert math.isnan(from_json(rows[3][-1])["loss"])


def test_a_reader_paging_through_a_live_run_reads_each_row_once(root):
    run = mplogger.init(dir=root)
    count = 63 * 1024 + 500  # 64 blocks: one whole page of a keyed read, the last block open
    for i in range(count):
        run.log({"x": float(i)})
    run.flush()
    stored = mplogger.Api(root).run(run.id)
    for rows in (stored.scan_history(keys=["x"]), stored.scan_history()):
        got = [next(rows)]
        for i in range(count, count + 10):  # the open block is rewritten, longer, meanwhile
            run.log({"x": float(i)})
        run.flush()
        got += list(rows)
        assert [row["_step"] for row in got] == list(range(len(got))) and len(got) >= count
        count += 10
    run.finish()


def test_history_as_pandas_tells_a_logged_none_from_a_missing_key(root):
    pytest.importorskip("pandas")
    run = mplogger.init(dir=root)
    run.log({"b": True})
    run.log({"b": None})
    run.log({"other": 1.0})
    run.finish()
    column = list(mplogger.Api(root).run(run.id).history(pandas=True)["b"])
    assert column[0] is True and column[1] is None and math.isnan(column[2])


CORRUPTIONS = {
    "steps shorter than the block": "UPDATE history_blocks SET steps = '[0, 1]'",
    "steps not a list": "UPDATE history_blocks SET steps = '5'",
    "runtimes of text": "UPDATE history_blocks SET runtime_us = '[\"a\", \"b\", \"c\"]'",
    "keys not a list": "UPDATE history_blocks SET keys = '7'",
    "values not JSON": "UPDATE history_columns SET vals = '[1, 2'",
    "values nested past any depth": "UPDATE history_columns SET vals = '[' || replace(hex(zeroblob(3000)), '00', '[') || ']'",
    "a block of a billion rows": "UPDATE history_blocks SET count = 1000000000",
}


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_a_hand_edited_history_is_a_clear_error_for_every_reader(root, corruption):
    run = mplogger.init(dir=root, id="edited")
    for i in range(3):
        run.log({"x": float(i), "y": i})
    run.finish()
    conn = sqlite3.connect(_store.db_path(root), isolation_level=None)
    conn.execute(CORRUPTIONS[corruption])
    conn.close()
    stored = mplogger.Api(root).run("edited")
    readers = [stored.history, lambda: stored.history(keys=["x"]), lambda: stored.history(keys=["y"])]
    if _has_pandas():
        readers.append(lambda: stored.history(pandas=True))
    for read in readers:  # the rows it can vouch for, or ValueError: never another exception
        try:
            rows = read()
        except ValueError as exc:
            assert "history" in str(exc)
        else:
            assert len(rows) <= 3
    for command in (["history", "edited"], ["report", "-o", os.path.join(root, "r.html")]):
        done = subprocess.run([sys.executable, "-m", "mplogger", command[0], "--dir", root, *command[1:]],
                              capture_output=True, text=True, timeout=120)
        assert "Traceback" not in done.stderr, done.stderr


def _has_pandas() -> bool:
    try:
        import pandas  # noqa: F401
    except ImportError:
        return False
    return True
