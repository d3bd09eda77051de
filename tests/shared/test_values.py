"""Tests for ``mplogger._shared._values``: call-site checks and the JSON written to disk."""

from __future__ import annotations

import json
import math
import re

import pytest
from hypothesis import given, strategies as st

from mplogger._shared._values import (
    INT_END, INT_MIN, MAX_DEPTH, check_row, check_step, from_json, is_float_marker, jsonable, same_value,
    scalars_fit, to_json,
)

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


# --------------------------------------------------------------------------- what is storable


def nested(levels: int, leaf=1) -> dict:
    """A dict ``levels`` deep: ``nested(2) == {"n": {"n": 1}}``."""
    value = leaf
    for _ in range(levels):
        value = {"n": value}
    return value


@pytest.mark.parametrize("value", [-(2**63), 2**63 - 1, 0, True])
def test_ints_within_64_bits_are_stored_as_ints(value):
    row = check_row({"i": value, "n": {"i": value}}, print)
    back = from_json(to_json(row))
    assert back == row and type(back["i"]) is type(value)


@pytest.mark.parametrize("value, shown", [
    (2**63, "9223372036854775808"), (-(2**63) - 1, "-9223372036854775809"),
    (10**5000, "<about 5001 digits>"), (-(10**400), "-<about 401 digits>"),
], ids=["2**63", "-2**63-1", "10**5000", "-10**400"])
def test_ints_outside_64_bits_are_refused_naming_key_value_and_range(value, shown):
    for row, key in (({"big": value}, "'big'"), ({"m": {"big": value}}, "'m.big'")):
        with pytest.raises(ValueError) as info:
            check_row(row, print)
        message = str(info.value)
        assert key in message and f"int {shown}" in message and "[-2**63, 2**63)" in message


def test_numpy_ints_outside_64_bits_are_refused():
    np = pytest.importorskip("numpy")
    with pytest.raises(ValueError, match=r"'u': int 18446744073709551615 is outside"):
        check_row({"u": np.uint64(2**64 - 1)}, print)
    assert check_row({"u": np.uint64(2**63 - 1)}, print) == {"u": 2**63 - 1}


def test_nesting_up_to_max_depth_is_stored_and_deeper_is_refused():
    assert from_json(to_json(check_row({"d": nested(MAX_DEPTH)}, print))) == {"d": nested(MAX_DEPTH)}
    with pytest.raises(ValueError, match=rf"'d\.n\.n.*nested more than {MAX_DEPTH} levels deep"):
        check_row({"d": nested(MAX_DEPTH + 1)}, print)
    with pytest.raises(ValueError, match="nested more than"):
        check_row({"d": nested(990)}, print)


def test_a_cycle_is_refused_naming_the_key_path():
    loop: dict = {"x": 1}
    loop["again"] = {"back": loop}
    with pytest.raises(ValueError, match=r"log\(\) key 'c\.again\.back': the dict contains itself \(this is 'c' again\)"):
        check_row({"c": loop}, print)


def test_a_dict_shared_twice_is_no_cycle():
    shared = {"a": 1.0}
    assert check_row({"x": {"p": shared, "q": shared}, "y": shared}, print) == {
        "x": {"p": {"a": 1.0}, "q": {"a": 1.0}}, "y": {"a": 1.0}}


@given(st.lists(st.one_of(
    st.none(), st.booleans(), st.text(max_size=3), st.floats(allow_nan=True, allow_infinity=True),
    st.integers(), st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 10**30])), max_size=8))
def test_the_fast_path_test_agrees_with_the_rule(values):
    """scalars_fit (log()'s fast path) says yes exactly when every int is within 64 bits."""
    assert scalars_fit(values) == all(type(v) is not int or INT_MIN <= v < INT_END for v in values)


def test_the_fast_path_test_refuses_what_is_not_a_plain_scalar():
    np = pytest.importorskip("numpy")
    assert not scalars_fit([1, np.float64(2.0)]) and not scalars_fit([1, {"a": 1}])
    assert scalars_fit([]) and scalars_fit([1, 2.5, True, None, "s"])


@pytest.mark.parametrize("step, error, words", [
    (0, None, []), (2**63 - 1, None, []), (2**63, ValueError, ["step", "[0, 2**63)", "9223372036854775808"]),
    (-1, ValueError, ["step", "-1"]), (10**5000, ValueError, ["step", "digits"]), (1.5, TypeError, ["step", "float"]),
], ids=["0", "max", "2**63", "-1", "huge", "float"])
def test_check_step(step, error, words):
    if error is None:
        assert check_step(step) == step
        return
    with pytest.raises(error) as info:
        check_step(step)
    assert all(word in str(info.value) for word in words)


def test_a_stored_dict_that_is_not_exactly_the_marker_reads_back_as_a_dict():
    assert from_json('{"a":{"_type":"float","value":"1.5"},"b":{"_type":"float","value":"NaN"}}')["a"] == {
        "_type": "float", "value": "1.5"}
    assert all(is_float_marker(json.loads(to_json(x))) for x in (math.nan, math.inf, -math.inf))
    assert is_float_marker({"_type": "float", "value": "NaN"}) and not is_float_marker({"_type": "float", "value": [1]})


# --------------------------------------------------------------------------- config (jsonable)


@pytest.mark.parametrize("value, words", [
    (10**5000, ["config key 'k'", "<about 5001 digits>", "64-bit"]),
    ([1, (2, {3: 2**63})], ["config key 'k[1][1].3'", "9223372036854775808"]),
    ({"deep": nested(MAX_DEPTH + 5)}, ["config key 'k.deep.n", f"more than {MAX_DEPTH} levels"]),
    ({"x": {"_type": "float", "value": "NaN"}}, ["config key 'k.x'", "non-finite float"]),
], ids=["huge", "2**63-in-list", "deep", "marker"])
def test_jsonable_refuses_what_cannot_be_stored_naming_the_key(value, words):
    with pytest.raises(ValueError) as info:
        jsonable(value, "k")
    assert all(word in str(info.value) for word in words), str(info.value)


def test_jsonable_refuses_cycles_of_lists_dicts_dataclasses_and_namespaces():
    import dataclasses
    import types

    looped: list = [1]
    looped.append(looped)
    mapping: dict = {}
    mapping["self"] = mapping

    @dataclasses.dataclass
    class Node:
        child: object = None

    node = Node()
    node.child = node
    space = types.SimpleNamespace()
    space.me = space
    for value, where in ((looped, "'k[1]'"), (mapping, "'k.self'"), (node, "'k.child'"), (space, "'k.me'")):
        with pytest.raises(ValueError, match="contains itself") as info:
            jsonable(value, "k")
        assert where in str(info.value)


def test_jsonable_of_a_whole_config_names_top_level_keys():
    with pytest.raises(ValueError, match=r"config key 'seed': int 18446744073709551615"):
        jsonable({"lr": 0.1, "seed": 2**64 - 1})


@given(st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(min_value=INT_MIN, max_value=INT_END - 1),
              st.floats(), st.text(max_size=5), st.sampled_from(["NaN", "Infinity", "-Infinity"])),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.tuples(inner, inner),
                            st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=10))
def test_whatever_jsonable_returns_encodes_and_reads_back(value):
    stored = jsonable(value, "k")
    assert same_value(from_json(to_json({"k": stored}))["k"], stored)


def test_same_value_has_nan_equal_to_nan_nested():
    assert same_value(math.nan, math.nan) and same_value({"a": [1, math.nan]}, {"a": [1, math.nan]})
    assert not same_value({"a": [1, math.nan]}, {"a": [1, 2.0]}) and not same_value([math.nan], [math.nan, 1])
    assert same_value(1, 1.0) and not same_value(0.1, 0.2)


def test_a_logged_dict_shaped_like_the_float_marker_is_refused_for_its_underscore_key():
    """It would read back as a float; log() and summary refuse keys starting with '_' anyway."""
    for what in ("log()", "summary"):
        with pytest.raises(ValueError, match=rf"{re.escape(what)} key m\._type: keys starting with '_'"):
            check_row({"m": {"_type": "float", "value": "NaN"}}, print, what)


wild_ints = st.one_of(st.integers(), st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1]),
                      st.integers(4400, 4500).map(lambda digits: 10**digits))  # beyond str()'s 4300 digits
wild = st.recursive(
    st.one_of(st.none(), st.booleans(), wild_ints, st.floats(), st.text(max_size=5)),
    lambda inner: st.dictionaries(keys, inner, max_size=3), max_leaves=12)


@given(st.dictionaries(keys, wild, max_size=4))
def test_what_check_row_accepts_pickles_encodes_and_reads_back(row):
    """The call-site rule is the only gate: a row it lets through can never fail later."""
    import pickle

    try:
        checked = check_row(row, print)
    except ValueError as exc:
        assert "outside the 64-bit range" in str(exc)
        return
    assert pickle.loads(pickle.dumps(checked, pickle.HIGHEST_PROTOCOL)) is not None
    assert same(from_json(to_json(checked)), checked)


# --- found by review ---------------------------------------------------------------------------
def test_subclasses_are_stored_as_their_base_value_not_their_own_conversions():
    from mplogger._shared._values import check_row

    class Odd(str):
        def __str__(self):
            return "WEIRD"

    class Bent(float):
        def __float__(self):
            return 99.0

    class Skewed(int):
        def __index__(self):
            return 7

        def __int__(self):
            return 7

    row = check_row({"s": Odd("orig"), "f": Bent(1.0), "i": Skewed(3)}, lambda key: None)
    assert row == {"s": "orig", "f": 1.0, "i": 3}
    assert [type(v) for v in row.values()] == [str, float, int]


def test_numpy_values_that_are_not_numbers_are_refused_naming_the_key_or_kept_as_text_in_config():
    np = pytest.importorskip("numpy")
    from mplogger._shared._values import check_row, jsonable

    for value in (np.longdouble(1.5), np.complex128(1 + 2j), np.datetime64("2020-01-01"), np.array(object())):
        with pytest.raises(TypeError, match="key 'k'"):
            check_row({"k": value}, lambda key: None)
    assert jsonable({"u": np.longdouble(1.5), "a": np.array([1.0], dtype=np.longdouble)}) == {
        "u": repr(np.longdouble(1.5)), "a": [repr(np.longdouble(1.0))]}


# --------------------------------------------------------------------------- lists of media


def test_a_list_or_tuple_of_media_is_checked_into_a_new_list_up_to_the_cap():
    from mplogger._shared._media import Histogram
    from mplogger._shared._values import MAX_MEDIA_LIST

    a, b = Histogram([1.0]), Histogram([2.0])
    given = [a, b]
    row = check_row({"g": given, "t": (b,), "n": {"deep": [a]}}, lambda key: None)
    assert row == {"g": [a, b], "t": [b], "n": {"deep": [a]}}
    assert type(row["t"]) is list and row["g"] is not given
    assert not scalars_fit(row.values())  # log()'s fast path sends such a row to the full check
    assert len(check_row({"g": [a] * MAX_MEDIA_LIST}, print)["g"]) == MAX_MEDIA_LIST
    with pytest.raises(ValueError, match=rf"log\(\) key 'g': a list of {MAX_MEDIA_LIST + 1} media; at most {MAX_MEDIA_LIST}"):
        check_row({"g": [a] * (MAX_MEDIA_LIST + 1)}, print)
    with pytest.raises(ValueError, match=rf"summary key 'n.g': a tuple of {MAX_MEDIA_LIST + 1} media"):
        check_row({"n": {"g": (a,) * (MAX_MEDIA_LIST + 1)}}, print, "summary")


def test_lists_that_are_not_all_media_are_refused_as_before_or_clearly():
    from mplogger._shared._media import Histogram

    h = Histogram([1.0])
    assert check_row({"ok": [h]}, print) == {"ok": [h]}
    with pytest.raises(TypeError, match=r"log\(\) key 'x': cannot store a value of type builtins\.list \(\[1, 2\]\)"):
        check_row({"x": [1, 2]}, print)
    with pytest.raises(TypeError, match=r"cannot store a value of type builtins\.list"):
        check_row({"x": list(range(10**6))}, print)  # a long list of numbers: the same message
    with pytest.raises(TypeError, match=r"log\(\) key 'x\.y': a list may hold only media .*item 2 is of type builtins\.str"):
        check_row({"x": {"y": [h, h, "s", 3]}}, print)
    with pytest.raises(TypeError, match=r"log\(\) key 'x': cannot store an empty list; a list may hold only media"):
        check_row({"x": []}, print)


def test_a_list_subclass_is_read_as_the_items_it_holds():
    from mplogger._shared._media import Histogram

    h = Histogram([1.0])

    class Lying(list):
        def __iter__(self):
            return iter([1, 2])

        def __len__(self):
            return 0

        def __getitem__(self, index):
            return 1

    assert check_row({"x": Lying([h])}, print) == {"x": [h]}


def test_a_media_list_counts_as_a_level_of_nesting():
    from mplogger._shared._media import Histogram

    assert check_row({"d": nested(MAX_DEPTH - 1, [Histogram([1.0])])}, print)
    with pytest.raises(ValueError, match=f"a list nested more than {MAX_DEPTH} levels deep"):
        check_row({"d": nested(MAX_DEPTH, [Histogram([1.0])])}, print)


def test_store_media_gives_each_item_of_a_list_its_own_file_even_for_long_keys(tmp_path):
    np = pytest.importorskip("numpy")
    from mplogger._shared._media import Image, item_key
    from mplogger._shared._values import store_media

    key = "k" * 200
    image = Image(np.zeros((2, 2), np.uint8))
    row = store_media(check_row({key: [image] * 12, "v": {"w": (image, image)}}, print), str(tmp_path), 4)
    paths = [ref["path"] for ref in row[key]] + [ref["path"] for ref in row["v"]["w"]]
    assert len(set(paths)) == 14 and all((tmp_path / p).is_file() for p in paths)
    assert row[key][11]["path"].split("/")[-1].startswith("k" * 77 + "_11_4_")
    assert row["v"]["w"][1]["path"].split("/")[-1].startswith("v.w_1_4_")
    assert item_key("a", 3) == "a_3" and from_json(to_json(row)) == row
