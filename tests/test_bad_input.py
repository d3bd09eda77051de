"""Bad input: a clear error at the call site, and the run goes on unharmed."""

from __future__ import annotations

import pytest

import mplogger
from mplogger import UsageError


@pytest.mark.parametrize(
    "data, error, words",
    [
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
