"""Tests for ``mplogger._values``: call-site checks and the JSON written to disk."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, strategies as st

from mplogger._values import check_row, from_json, jsonable, to_json

from conftest import same

keys = st.text(min_size=1, max_size=8).filter(lambda k: not k.startswith("_"))
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20))
values = st.recursive(scalars, lambda inner: st.dictionaries(keys, inner, max_size=4), max_leaves=12)


@given(st.dictionaries(keys, values, max_size=6))
def test_json_round_trip(row):
    """Whatever log() accepts comes back equal, NaN and infinities included."""
    text = to_json(row)
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON token {c}"))
    assert same(row, from_json(text))


def test_nonfinite_is_strict_json():
    text = to_json({"a": float("nan"), "b": float("inf"), "c": -float("inf"), "d": 1.5})
    assert "NaN" not in text.replace('"NaN"', "")
    back = from_json(text)
    assert math.isnan(back["a"]) and back["b"] == math.inf and back["c"] == -math.inf and back["d"] == 1.5


def test_string_that_looks_like_nan_stays_a_string():
    assert from_json(to_json({"s": "NaN", "t": "Infinity"})) == {"s": "NaN", "t": "Infinity"}


@pytest.mark.parametrize(
    "row, error, words",
    [
        ([1, 2], TypeError, ["dict", "list"]),
        ({1: 2.0}, TypeError, ["1", "int"]),
        ({"x": object()}, TypeError, ["'x'", "object"]),
        ({"x": [1, 2]}, TypeError, ["'x'", "list"]),
        ({"x": {"y": {3}}}, TypeError, ["'x.y'", "set"]),
        ({"_secret": 1}, ValueError, ["'_secret'", "reserved"]),
        ({"": 1}, ValueError, ["empty"]),
    ],
)
def test_bad_rows_name_the_key_and_type(row, error, words):
    with pytest.raises(error) as info:
        check_row(row, lambda key: None)
    for word in words:
        assert word in str(info.value)


def test_reserved_keys_are_reported_and_dropped():
    seen = []
    assert check_row({"_step": 3, "a": 1}, seen.append) == {"a": 1}
    assert seen == ["_step"]


def test_numpy_scalars_become_python_scalars():
    np = pytest.importorskip("numpy")
    row = check_row({"a": np.float32(1.5), "b": np.int64(3), "c": np.array(2.5), "d": np.bool_(True)}, print)
    assert row == {"a": 1.5, "b": 3, "c": 2.5, "d": True}
    assert [type(v) for v in row.values()] == [float, int, float, bool]


def test_jsonable_keeps_containers_and_reprs_the_rest():
    def fn():
        pass

    out = jsonable({"f": fn, "t": (1, 2), "n": {"k": {1, 2}}})
    assert out["f"].startswith("<function") and out["t"] == [1, 2] and sorted(out["n"]["k"]) == [1, 2]
