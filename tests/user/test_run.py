"""Tests for ``mplogger._user._run`` through the real manager, workers and SQLite store."""

from __future__ import annotations

import math

import pytest

import mplogger


def test_end_to_end_10000_rows(root):
    """init -> 10 000 logs -> finish -> every row, the summary, the config and the state."""
    run = mplogger.init(project="e2e", name="ten-k", config={"lr": 0.1, "layers": [64, 32]}, dir=root)
    for i in range(10_000):
        run.log({"i": i, "loss": 1.0 / (i + 1), "tag": f"s{i % 3}"})
    run.finish()
    stored = mplogger.Api(root).run(run.id)
    rows = stored.history()
    assert len(rows) == 10_000 == stored.rows
    assert [r["_step"] for r in rows] == list(range(10_000))
    assert [r["i"] for r in rows] == list(range(10_000))
    assert all(r["_runtime"] >= 0 and r["_timestamp"] > 0 for r in rows)
    assert stored.summary == {"i": 9999, "loss": 1.0 / 10_000, "tag": "s0"}
    assert stored.config == {"lr": 0.1, "layers": [64, 32]}
    assert (stored.state, stored.exit_code, stored.project, stored.name) == ("finished", 0, "e2e", "ten-k")


def test_init_sets_and_finish_clears_module_globals(root):
    assert mplogger.run is None
    run = mplogger.init(dir=root, config={"a": 1})
    assert mplogger.run is run and mplogger.config is run.config and mplogger.summary is run.summary
    mplogger.log({"x": 1})
    assert mplogger.config.a == 1
    mplogger.finish()
    assert mplogger.run is None
    with pytest.raises(mplogger.UsageError, match=f"run {run.id} is finished; call mplogger.init.* before mplogger.config.update"):
        mplogger.config.update({"b": 2})
    assert mplogger.Api(root).run(run.id).history(keys=["x"])[0]["x"] == 1


def test_flush_makes_rows_readable_while_the_run_is_open(root):
    run = mplogger.init(dir=root)
    for i in range(1000):
        run.log({"x": i})
    run.flush()
    stored = mplogger.Api(root).run(run.id)
    assert stored.state == "running" and len(stored.history()) == 1000
    run.finish()


def test_finish_is_idempotent_and_failed_with_nonzero_code(root):
    run = mplogger.init(dir=root)
    run.log({"x": 1})
    run.finish(exit_code=2)
    run.finish()
    mplogger.finish()
    stored = mplogger.Api(root).run(run.id)
    assert (stored.state, stored.exit_code) == ("failed", 2)


def test_context_manager_marks_failed_on_exception(root):
    with pytest.raises(ZeroDivisionError):
        with mplogger.init(dir=root) as run:
            run.log({"x": 1})
            1 / 0
    assert mplogger.Api(root).run(run.id).state == "failed"
    with mplogger.init(dir=root) as ok:
        ok.log({"x": 1})
    assert mplogger.Api(root).run(ok.id).state == "finished"


def test_summary_is_last_value_and_explicit_sets_win_until_logged_again(root):
    run = mplogger.init(dir=root)
    run.log({"loss": 3.0, "acc": 0.1})
    run.log({"loss": 2.0})
    run.summary["loss"] = 0.5
    run.summary["best"] = 0.25
    assert run.summary["loss"] == 0.5 and run.summary.best == 0.25
    run.log({"acc": 0.9})
    assert run.summary["loss"] == 0.5
    run.log({"loss": 1.0})
    del run.summary["best"]
    run.finish()
    assert mplogger.Api(root).run(run.id).summary == {"loss": 1.0, "acc": 0.9}
    assert run.summary["loss"] == 1.0


def test_config_changes_reach_the_store(root):
    run = mplogger.init(dir=root, config={"lr": 0.1})
    run.config.batch = 32
    run.config["fn"] = print
    run.config.update({"opt": "adam"})
    run.finish()
    assert mplogger.Api(root).run(run.id).config == {
        "lr": 0.1, "batch": 32, "fn": "<built-in function print>", "opt": "adam"}


def test_nonfinite_and_nested_values_round_trip(root):
    run = mplogger.init(dir=root)
    run.log({"nan": float("nan"), "inf": float("inf"), "ninf": -float("inf"), "n": {"a": 1, "b": {"c": 2.5}}})
    run.finish()
    stored = mplogger.Api(root).run(run.id)
    (row,) = stored.history()
    assert math.isnan(row["nan"]) and row["inf"] == math.inf and row["ninf"] == -math.inf
    assert row["n"] == {"a": 1, "b": {"c": 2.5}}
    (dotted,) = stored.history(keys=["n.b.c", "inf"])
    assert dotted["n.b.c"] == 2.5 and dotted["inf"] == math.inf
    assert math.isnan(stored.summary["nan"])


def test_numpy_values_are_stored_as_numbers(root):
    np = pytest.importorskip("numpy")
    run = mplogger.init(dir=root)
    run.log({"f32": np.float32(0.5), "i64": np.int64(7), "zero_d": np.array(1.25)})
    run.finish()
    (row,) = mplogger.Api(root).run(run.id).history()
    assert (row["f32"], row["i64"], row["zero_d"]) == (0.5, 7, 1.25)


@pytest.mark.parametrize(
    "calls, expected",
    [
        ([({"a": 1}, {}), ({"a": 2}, {})], [(0, {"a": 1}), (1, {"a": 2})]),
        ([({"a": 1}, {"commit": False}), ({"b": 2}, {})], [(0, {"a": 1, "b": 2})]),
        ([({"a": 1}, {"commit": False}), ({"a": 3}, {"commit": False}), ({}, {})], [(0, {"a": 3})]),
        ([({"a": 1}, {"step": 5}), ({"b": 2}, {"step": 5}), ({"a": 3}, {"step": 7})],
         [(5, {"a": 1, "b": 2}), (7, {"a": 3})]),
        ([({"a": 1}, {"step": 2, "commit": True}), ({"a": 2}, {})], [(2, {"a": 1}), (3, {"a": 2})]),
    ],
)
def test_step_and_commit_rules(root, calls, expected):
    run = mplogger.init(dir=root)
    for data, kwargs in calls:
        run.log(data, **kwargs)
    run.finish()
    rows = mplogger.Api(root).run(run.id).history()
    assert [(r.pop("_step"), {k: v for k, v in r.items() if not k.startswith("_")}) for r in rows] == expected


def test_smaller_step_is_dropped_loudly_and_counted(root):
    run = mplogger.init(dir=root)
    run.log({"a": 1}, step=10)
    with pytest.warns(UserWarning, match="step=3 is below the current step"):
        run.log({"a": 2}, step=3)
    run.log({"a": 3}, step=4)
    run.finish()
    stored = mplogger.Api(root).run(run.id)
    assert [r["_step"] for r in stored.history()] == [10]
    assert stored.summary["_dropped_rows"] == 2


def test_two_runs_in_one_process_do_not_mix(root):
    a = mplogger.init(dir=root, name="a", reinit="create_new")
    b = mplogger.init(dir=root, name="b", reinit="create_new")
    for i in range(2000):
        a.log({"who": "a", "i": i})
        b.log({"who": "b", "i": i})
    a.finish()
    b.finish()
    api = mplogger.Api(root)
    for run, who in ((a, "a"), (b, "b")):
        rows = api.run(run.id).history()
        assert len(rows) == 2000 and {r["who"] for r in rows} == {who}
        assert [r["i"] for r in rows] == list(range(2000))


def test_init_while_active_returns_the_run_unless_reinit(root):
    first = mplogger.init(dir=root)
    assert mplogger.init(dir=root) is first
    second = mplogger.init(dir=root, reinit=True)
    assert second is not first and mplogger.Api(root).run(first.id).state == "finished"
    second.finish()


def test_resume_continues_steps_config_and_summary(root):
    run = mplogger.init(dir=root, id="resume01", config={"lr": 0.1})
    run.log({"x": 1})
    run.log({"x": 2})
    run.finish()
    again = mplogger.init(dir=root, id="resume01", resume="must", config={"epochs": 3})
    again.log({"x": 3})
    again.finish()
    stored = mplogger.Api(root).run("resume01")
    assert [r["_step"] for r in stored.history()] == [0, 1, 2]
    assert stored.config == {"lr": 0.1, "epochs": 3} and stored.summary == {"x": 3}
    with pytest.raises(ValueError, match="already exists"):
        mplogger.init(dir=root, id="resume01")
    with pytest.raises(ValueError, match="no run with id"):
        mplogger.init(dir=root, id="missing1", resume="must")


def test_run_id_is_safe_as_a_folder_name(root):
    run = mplogger.init(dir=root)
    assert run.id.isalnum() and run.dir.endswith(run.id)
    import os
    assert os.path.isdir(run.dir)
    run.finish()
    with pytest.raises(ValueError, match="folder name"):
        mplogger.init(dir=root, id="../escape")


def test_init_with_an_id_that_is_open_is_refused_and_the_open_run_is_unharmed(root):
    run = mplogger.init(dir=root, id="open0001")
    with pytest.raises(ValueError, match="is open in this process"):
        mplogger.init(dir=root, id="open0001", reinit="create_new")
    run.log({"x": 1})
    run.finish()
    stored = mplogger.Api(root).run("open0001")
    assert (stored.state, stored.rows) == ("finished", 1)


def test_strings_python_holds_are_stored_even_lone_surrogates(root):
    run = mplogger.init(dir=root)
    run.log({"s": "caf\u00e9 \ud800 \U0001F600"})
    run.log({"s": "next"})
    run.finish()
    stored = mplogger.Api(root).run(run.id)
    assert [r["s"] for r in stored.history()] == ["caf\u00e9 \ud800 \U0001F600", "next"]
    assert stored.state == "finished"


def test_media_in_the_summary_are_stored_as_log_stores_them(root):
    np = pytest.importorskip("numpy")
    from mplogger._shared._media import load_media

    run = mplogger.init(dir=root)
    run.log({"a": 1})
    table = mplogger.Table(columns=["k", "v"], data=[["x", 1.5], ["NaN", math.nan]])
    run.summary["w"] = mplogger.Histogram([1, 2, 2, 3], num_bins=3)
    run.summary.update({"t": table, "arr": np.arange(10.0), "m": {"h": mplogger.Histogram([1.0])}})
    assert run.summary["w"]["_type"] == "histogram"
    run.log({"a": 2})
    run.finish()
    stored = mplogger.Api(root).run(run.id)
    assert stored.state == "finished" and [r["a"] for r in stored.history()] == [1, 2]
    summary = stored.summary
    assert load_media(summary["w"], stored.dir) == mplogger.Histogram([1, 2, 2, 3], num_bins=3)
    assert load_media(summary["t"], stored.dir) == table
    assert load_media(summary["arr"], stored.dir) == mplogger.Histogram(np.arange(10.0))
    assert summary["m"]["h"]["_type"] == "histogram"


def test_setting_a_config_key_to_the_nan_it_holds_is_no_change(root):
    run = mplogger.init(dir=root, config={"n": math.nan, "deep": {"xs": [1.0, math.nan]}})
    run.config["n"] = math.nan
    run.config.update({"deep": {"xs": [1.0, float("nan")]}})
    with pytest.raises(ValueError, match="config key 'n' is already nan; refusing to change it to 1.0"):
        run.config["n"] = 1.0
    with pytest.raises(ValueError, match="config key 'deep'"):
        run.config["deep"] = {"xs": [1.0, 2.0]}
    run.finish()
    config = mplogger.Api(root).run(run.id).config
    assert math.isnan(config["n"]) and config["deep"]["xs"][0] == 1.0 and math.isnan(config["deep"]["xs"][1])


def test_strings_that_look_like_nonfinite_floats_stay_strings(root):
    from mplogger._shared._media import load_media

    run = mplogger.init(dir=root, config={"c": {"s": "NaN", "l": ["-Infinity"]}})
    row = {"s": "NaN", "t": "Infinity", "m": {"u": "-Infinity"}, "f": math.nan}
    run.log(row)
    run.log(row)  # the fast path
    run.log({"tab": mplogger.Table(columns=["s", "f"], data=[["NaN", math.nan], ["Infinity", 1.0]])})
    run.finish()
    stored = mplogger.Api(root).run(run.id)
    first, second, third = stored.history()
    for got in (first, second):
        assert (got["s"], got["t"], got["m"]) == ("NaN", "Infinity", {"u": "-Infinity"}) and math.isnan(got["f"])
    assert [r[0] for r in third["tab"].data] == ["NaN", "Infinity"] and math.isnan(third["tab"].data[0][1])
    assert stored.config == {"c": {"s": "NaN", "l": ["-Infinity"]}}
    assert stored.summary["s"] == "NaN" and load_media(stored.summary["tab"], stored.dir).data[0][0] == "NaN"


def test_module_log_after_finish_warns_once_naming_the_run_and_stores_nothing(root):
    import warnings

    run = mplogger.init(dir=root)
    mplogger.log({"x": 1})
    mplogger.finish()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mplogger.log({"x": 2})
        mplogger.log({"x": 3})
    assert [str(w.message) for w in caught] == [
        f"run {run.id} is finished; mplogger.log() ignored (call mplogger.init() for a new run)"]
    assert caught[0].filename == __file__
    assert mplogger.Api(root).run(run.id).rows == 1


def test_module_log_before_any_init_raises_and_a_new_run_takes_it_over(root):
    with pytest.raises(mplogger.UsageError, match="init"):
        mplogger.log({"x": 1})
    first = mplogger.init(dir=root)
    first.finish()
    second = mplogger.init(dir=root)
    mplogger.log({"x": 2})
    second.finish()
    assert (mplogger.Api(root).run(first.id).rows, mplogger.Api(root).run(second.id).rows) == (0, 1)


def _worker_summary(run) -> dict:
    """The summary as the worker keeps it (one round trip)."""
    from mplogger._ipc._messages import GetSummary, SummaryReply

    reply = run._client.request(lambda r: GetSummary(r, run.id), "summary")
    assert isinstance(reply, SummaryReply)
    return reply.summary


def test_reading_the_summary_needs_no_round_trip_and_agrees_with_the_worker(root, monkeypatch):
    run = mplogger.init(dir=root)
    for i in range(600):
        run.log({"loss": 1.0 / (i + 1), **({"eval": float(i)} if i % 250 == 0 else {})})
    run.summary["best"] = 0.5
    run.summary.update({"loss_note": "set by hand"})
    run.log({"loss": 9.0})
    del run.summary["loss_note"]
    run.log({"extra": "x"}, commit=False)

    def no_round_trip(*args, **kwargs):
        raise AssertionError("the summary was read through the manager")

    real_request = run._client.request
    monkeypatch.setattr(run._client, "request", no_round_trip)
    local = dict(run.summary)
    assert local == {"loss": 9.0, "eval": 500.0, "best": 0.5, "extra": "x"}
    assert run.summary["loss"] == 9.0 and "loss_note" not in run.summary
    monkeypatch.setattr(run._client, "request", real_request)
    run.flush()
    assert _worker_summary(run) == local
    run.finish()
    assert mplogger.Api(root).run(run.id).summary == local


def test_the_summary_is_asked_of_the_worker_once_it_keeps_aggregates(root, monkeypatch):
    run = mplogger.init(dir=root)
    run.define_metric("loss", summary="min")
    for value in (3.0, 1.0, 2.0):
        run.log({"loss": value})
    asked = []
    real_request = run._client.request
    monkeypatch.setattr(run._client, "request", lambda *a, **k: asked.append(1) or real_request(*a, **k))
    assert run.summary["loss"]["min"] == 1.0 and asked
    run.finish()


def test_a_resumed_run_reads_its_stored_summary_without_a_round_trip(root, monkeypatch):
    first = mplogger.init(dir=root, id="resumed1")
    first.log({"a": 1.0, "b": "kept"})
    first.finish()
    again = mplogger.init(dir=root, id="resumed1", resume="allow")
    again.log({"a": 2.0})
    monkeypatch.setattr(again._client, "request", lambda *a, **k: (_ for _ in ()).throw(AssertionError("asked")))
    assert dict(again.summary) == {"a": 2.0, "b": "kept"}
    monkeypatch.undo()
    again.finish()


def test_the_summary_follows_what_a_forked_child_logs(root):
    import multiprocessing

    run = mplogger.init(dir=root)
    run.log({"parent": 1})
    child = multiprocessing.get_context("fork").Process(target=_log_in_child, args=(run,))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    run.flush()
    assert dict(run.summary) == {"parent": 1, "child": 7}
    run.finish()


def _log_in_child(run) -> None:
    run.log({"child": 7})
    run.finish()


def test_the_summary_after_a_lost_batch_is_what_the_store_kept(root):
    import sqlite3

    run = mplogger.init(dir=root)
    run.log({"x": 1})
    run.flush()
    conn = sqlite3.connect(f"{root}/mplogger.db")
    conn.execute("DROP TABLE history_columns")  # the next write of rows fails
    conn.commit()
    conn.close()
    run.log({"x": 2})
    with pytest.raises(mplogger.RunError):
        run.flush()
    assert run.summary["x"] == 1
    run.finish()  # what was lost was said at the flush
    assert mplogger.Api(root).run(run.id).summary == {"x": 1}


def test_a_value_read_from_the_summary_is_a_copy(root):
    run = mplogger.init(dir=root)
    run.log({"n": {"x": 1}})
    run.summary["n"]["x"] = 99
    assert run.summary["n"] == {"x": 1}
    run.finish()
    assert mplogger.Api(root).run(run.id).summary == {"n": {"x": 1}}


def test_a_resumed_run_with_metric_rules_reads_its_aggregates(root):
    first = mplogger.init(dir=root, id="rules1")
    first.define_metric("loss", summary="min")
    for value in (3.0, 1.0):
        first.log({"loss": value})
    first.finish()
    again = mplogger.init(dir=root, id="rules1", resume="allow")
    again.log({"loss": 5.0})
    assert again.summary["loss"] == {"min": 1.0}
    again.finish()
    assert mplogger.Api(root).run("rules1").summary["loss"] == {"min": 1.0}


def test_the_summary_read_while_another_thread_sends_the_rows(root):
    """The flusher thread takes rows off the buffer while the summary reads it: never an error."""
    run = mplogger.init(dir=root, settings={"batch_size": 100000, "batch_interval": 0.001})
    for key in range(3000):  # many known keys: the summary reads the whole buffer
        run.log({f"k{key}": 0})
    logged = 0
    for _ in range(300):
        for _ in range(500):
            run.log({"x": logged})
            logged += 1
        assert run.summary["x"] == logged - 1
    run.finish()
