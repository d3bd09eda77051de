"""Bad input: a clear error at the call site, and the run goes on unharmed."""

from __future__ import annotations

import math
import sys

import pytest

import mplogger
from mplogger import UsageError
from mplogger._shared._values import MAX_DEPTH


def nested(levels: int, leaf=1) -> dict:
    value = leaf
    for _ in range(levels):
        value = {"n": value}
    return value


def cyclic() -> dict:
    loop: dict = {"x": 1}
    loop["self"] = loop
    return loop


@pytest.mark.parametrize(
    "data, error, words",
    [
        ({"loss": 10**5000}, ValueError, ["'loss'", "<about 5001 digits>", "[-2**63, 2**63)"]),
        ({"loss": 2**63}, ValueError, ["'loss'", "int 9223372036854775808", "[-2**63, 2**63)"]),
        ({"m": {"loss": -(2**63) - 1}}, ValueError, ["'m.loss'", "-9223372036854775809"]),
        ({"deep": nested(600)}, ValueError, ["'deep.n.n", f"more than {MAX_DEPTH} levels"]),
        ({"cyc": cyclic()}, ValueError, ["'cyc.self'", "contains itself"]),
        ("loss", TypeError, ["dict", "str"]),
        ([("loss", 1.0)], TypeError, ["dict", "list"]),
        ({3: 1.0}, TypeError, ["3", "int"]),
        ({"loss": object()}, TypeError, ["'loss'", "object"]),
        ({"loss": [1.0, 2.0]}, TypeError, ["'loss'", "list"]),
        ({"m": {"inner": b"bytes"}}, TypeError, ["'m.inner'", "bytes"]),
        ({"_private": 1}, ValueError, ["'_private'"]),
    ],
)
def test_bad_log_raises_at_the_call_site_and_the_run_goes_on(root, data, error, words):
    run = mplogger.init(dir=root)
    run.log({"ok": 1})
    with pytest.raises(error) as info:
        run.log(data)
    for word in words:
        assert word in str(info.value)
    run.log({"ok": 2})
    run.finish()
    stored = mplogger.Api(root).run(run.id)
    assert [r["ok"] for r in stored.history()] == [1, 2]
    assert stored.state == "finished"


def test_bad_key_after_known_keys_is_still_caught(root):
    run = mplogger.init(dir=root)
    for i in range(300):
        run.log({"a": i})
    with pytest.raises(TypeError, match="'a'"):
        run.log({"a": {1, 2}})
    run.finish()
    assert mplogger.Api(root).run(run.id).rows == 300


@pytest.mark.parametrize("known, bad", [
    ({"a": 1}, {"a": 2**63}),
    ({"a": 1, "s": "x", "n": None}, {"a": 1, "s": "x", "n": None, "b": 1} | {"a": -(2**63) - 1}),
    ({"a": 1.0, "b": 1}, {"a": math.nan, "b": 10**5000}),
    ({"a": 1.0, "b": 1}, {"a": math.inf, "b": 2**63}),
], ids=["int", "with-str-and-None", "nan-first", "inf-first"])
def test_int_outside_64_bits_in_known_keys_is_caught_on_the_fast_path(root, known, bad):
    run = mplogger.init(dir=root)
    for _ in range(3):
        run.log(known)
    with pytest.raises(ValueError, match=r"log\(\) key '[ab]': int .* outside the 64-bit range"):
        run.log(bad)
    run.log(known)
    run.finish()
    stored = mplogger.Api(root).run(run.id)
    assert stored.rows == 4 and stored.state == "finished"


def test_ints_at_the_edges_of_64_bits_are_stored(root):
    run = mplogger.init(dir=root)
    run.log({"lo": -(2**63), "hi": 2**63 - 1})
    run.log({"lo": -(2**63), "hi": 2**63 - 1})  # the fast path
    run.finish()
    assert [(r["lo"], r["hi"]) for r in mplogger.Api(root).run(run.id).history()] == [(-(2**63), 2**63 - 1)] * 2


def test_the_deepest_value_logs_from_deep_inside_a_call_stack(root):
    """MAX_DEPTH leaves room: a row at the limit logs and is sent from 800 frames deep."""
    run = mplogger.init(dir=root, settings={"batch_size": 1})  # the row is pickled inside log()

    def at_depth(frames: int):
        if frames > 0:
            return at_depth(frames - 1)
        run.log({"d": nested(MAX_DEPTH)})
        run.flush()

    depth, frame = 0, sys._getframe()
    while frame is not None:
        depth, frame = depth + 1, frame.f_back
    at_depth(800 - depth)
    run.finish()
    (row,) = mplogger.Api(root).run(run.id).history()
    assert row["d"] == nested(MAX_DEPTH)


@pytest.mark.parametrize("step, words", [
    (2**63, ["step", "[0, 2**63)", "9223372036854775808"]),
    (10**5000, ["step", "digits"]),
    (-1, ["step", "-1"]),
], ids=["2**63", "10**5000", "-1"])
def test_step_outside_the_store_range_is_refused_at_the_call_site(root, step, words):
    run = mplogger.init(dir=root)
    run.log({"a": 1})
    with pytest.raises(ValueError) as info:
        run.log({"a": 2}, step=step)
    assert all(word in str(info.value) for word in words)
    run.log({"a": 3}, step=2**63 - 2)
    run.finish()
    stored = mplogger.Api(root).run(run.id)
    assert [(r["_step"], r["a"]) for r in stored.history()] == [(0, 1), (2**63 - 2, 3)]
    assert stored.state == "finished"


@pytest.mark.parametrize("value, error, words", [
    (2**63, ValueError, ["summary key 'best'", "9223372036854775808"]),
    ({"c": cyclic()}, ValueError, ["summary key 'best.c.self'", "contains itself"]),
    (nested(MAX_DEPTH + 1), ValueError, ["summary key 'best.n", "levels"]),
    (object(), TypeError, ["summary key 'best'", "object"]),
], ids=["2**63", "cycle", "deep", "object"])
def test_bad_summary_values_are_refused_at_the_call_site(root, value, error, words):
    run = mplogger.init(dir=root)
    run.log({"a": 1})
    with pytest.raises(error) as info:
        run.summary["best"] = value
    assert all(word in str(info.value) for word in words), str(info.value)
    with pytest.raises(error):
        run.summary.update({"fine": 1, "best": value})
    run.summary["best"] = 0.5
    run.finish()
    stored = mplogger.Api(root).run(run.id)
    assert stored.summary == {"a": 1, "best": 0.5} and stored.state == "finished"


@pytest.mark.parametrize("value, words", [
    (10**5000, ["config key 'seed'", "digits"]),
    ([2**64], ["config key 'seed[0]'", "18446744073709551616"]),
    (nested(200), ["config key 'seed.n", "levels"]),
    ({"m": {"_type": "float", "value": "Infinity"}}, ["config key 'seed.m'", "non-finite float"]),
], ids=["huge", "in-list", "deep", "marker"])
def test_bad_config_values_are_refused_naming_the_key(root, value, words):
    run = mplogger.init(dir=root, config={"lr": 0.1})
    for assign in (lambda: run.config.update({"seed": value}), lambda: setattr(run.config, "seed", value)):
        with pytest.raises(ValueError) as info:
            assign()
        assert all(word in str(info.value) for word in words), str(info.value)
    with pytest.raises(ValueError, match="config key 'seed"):
        mplogger.init(dir=root, config={"seed": value}, reinit="create_new")
    run.config["ok"] = 1
    run.log({"a": 1})
    run.finish()
    stored = mplogger.Api(root).run(run.id)
    assert stored.config == {"lr": 0.1, "ok": 1} and stored.rows == 1 and stored.state == "finished"


def test_a_cyclic_config_value_is_refused_naming_the_key(root):
    looped: list = []
    looped.append(looped)
    run = mplogger.init(dir=root)
    with pytest.raises(ValueError, match=r"config key 'c\[0\]': the list contains itself"):
        run.config["c"] = looped
    with pytest.raises(ValueError, match=r"config key 'c.self': the dict contains itself"):
        run.config.update(c=cyclic())
    run.finish()
    assert mplogger.Api(root).run(run.id).state == "finished"


def test_reserved_keys_are_ignored_with_a_warning(root):
    run = mplogger.init(dir=root)
    with pytest.warns(UserWarning, match="'_step' is set by mplogger"):
        run.log({"_step": 99, "a": 1})
    run.finish()
    (row,) = mplogger.Api(root).run(run.id).history()
    assert row["_step"] == 0 and row["a"] == 1


def test_bad_step_type(root):
    run = mplogger.init(dir=root)
    with pytest.raises(TypeError, match="step must be an int"):
        run.log({"a": 1}, step=1.5)
    run.finish()


def test_log_before_init_is_a_clear_error():
    with pytest.raises(UsageError, match="init"):
        mplogger.log({"a": 1})


def test_log_after_finish_warns_and_is_ignored(root):
    run = mplogger.init(dir=root)
    run.log({"a": 1})
    run.finish()
    with pytest.warns(UserWarning, match="finished"):
        run.log({"a": 2})
    assert mplogger.Api(root).run(run.id).rows == 1


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"config": [1, 2]}, TypeError, "config"),
        ({"config": {1: 2}}, TypeError, "keys must be strings"),
        ({"tags": "one"}, TypeError, "tags"),
        ({"reinit": "sometimes"}, ValueError, "reinit"),
        ({"resume": "maybe"}, ValueError, "resume"),
        ({"settings": {"no_such": 1}}, TypeError, "no_such"),
        ({"settings": {"start_method": "teleport"}}, ValueError, "start_method"),
    ],
)
def test_bad_init_arguments(root, kwargs, error, match):
    with pytest.raises(error, match=match):
        mplogger.init(dir=root, **kwargs)


def test_unknown_init_keyword_is_a_type_error(root):
    with pytest.raises(TypeError):
        mplogger.init(dir=root, colour="blue")


def test_history_pandas_without_pandas_is_a_clear_error(root, without):
    run = mplogger.init(dir=root)
    run.log({"a": 1})
    run.finish()
    body = """
        import mplogger
        try:
            mplogger.Api(sys.argv[1]).run(sys.argv[2]).history(pandas=True)
        except ImportError as exc:
            print("ERROR", exc)
    """
    result = without("pandas", body, root, run.id)
    assert "ERROR" in result.stdout and "mplogger[pandas]" in result.stdout


def test_history_pandas(root):
    pd = pytest.importorskip("pandas")
    run = mplogger.init(dir=root)
    for i in range(5):
        run.log({"a": i})
    run.finish()
    frame = mplogger.Api(root).run(run.id).history(pandas=True)
    assert isinstance(frame, pd.DataFrame) and list(frame["a"]) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("arguments, error, message", [
    (dict(name="s\udcff"), ValueError, r"init\(name='s\\udcff'\): not valid Unicode text \(surrogates not allowed at position 1\)"),
    (dict(project=3), TypeError, r"init\(project=3\): expected a string, not int"),
    (dict(notes=b"x"), TypeError, r"init\(notes=b'x'\): expected a string, not bytes"),
])
def test_init_text_arguments_are_checked_at_the_call_site(root, arguments, error, message):
    with pytest.raises(error, match=message):
        mplogger.init(dir=root, **arguments)
    run = mplogger.init(dir=root, name="fine")
    run.log({"x": 1})
    run.finish()
    assert [r.name for r in mplogger.Api(root).runs()] == ["fine"]
