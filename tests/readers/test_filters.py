"""The run filter language: wandb-style filter dicts and the CLI's ``--where`` terms."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import given, strategies as st

from mplogger._readers._filters import check_filters, matches, parse_where


def run(**fields):
    base = dict(id="abc", name="n", project="p", group=None, job_type=None, state="finished", tags=[],
                notes=None, created=0.0, finished=1.0, duration=1.0, rows=10, host="h", exit_code=0,
                config={}, summary={})
    base.update(fields)
    return SimpleNamespace(**base)


R = run(config={"lr": 0.1, "opt": {"name": "adam"}, "layers": [1, 2]}, summary={"acc": 0.95, "loss": None},
        tags=["sweep", "best"], name="bright-sun-1")


@pytest.mark.parametrize("filters, expected", [
    ({"config.lr": 0.1}, True),
    ({"config.lr": 0.2}, False),
    ({"config.opt.name": "adam"}, True),
    ({"config.opt": {"name": "adam"}}, True),
    ({"summary.acc": {"$gt": 0.9, "$lte": 0.95}}, True),
    ({"summary_metrics.acc": {"$lt": 0.9}}, False),
    ({"tags": "best"}, True),
    ({"tags": {"$in": ["x", "sweep"]}}, True),
    ({"tags": {"$nin": ["best"]}}, False),
    ({"display_name": {"$regex": "^bright"}}, True),
    ({"state": {"$ne": "crashed"}}, True),
    ({"summary.missing": {"$exists": False}}, True),
    ({"summary.missing": {"$gt": 0}}, False),
    ({"summary.missing": {"$ne": 1}}, True),
    ({"summary.loss": {"$gt": 0}}, False),
    ({"config.opt.name": {"$gt": 3}}, False),
    ({"$or": [{"config.lr": 1}, {"tags": "sweep"}]}, True),
    ({"$and": [{"config.lr": 0.1}, {"tags": "nope"}]}, False),
    ({"$nor": [{"config.lr": 1}]}, True),
    ({"config.lr": {"$not": {"$gt": 0.05}}}, False),
    ({}, True),
    ({"config.layers": {"$in": [2]}}, True),
])
def test_filters_match_like_mongodb(filters, expected):
    check_filters(filters)
    assert matches(R, filters) is expected


@pytest.mark.parametrize("filters, message", [
    ({"colour": "red"}, "unknown filter field 'colour'"),
    ({"config.lr": {"$gtt": 1}}, "unknown filter operator '$gtt'"),
    ({"$or": {"config.lr": 1}}, "$or takes a list of filters"),
    ({"$xor": []}, "unknown filter operator '$xor'"),
    ({"tags": {"$in": "best"}}, "$in takes a list"),
    ({"$and": [{"ok": 1}]}, "unknown filter field 'ok'"),
    ({"name": {"$regex": "["}}, "$regex '[' is not a regular expression"),
])
def test_bad_filters_are_refused_before_any_run_is_read(filters, message):
    with pytest.raises(ValueError) as error:
        check_filters(filters)
    assert message in str(error.value)


def test_filters_must_be_a_dict():
    with pytest.raises(TypeError, match="filters must be a dict, not list"):
        check_filters([("config.lr", 1)])


@pytest.mark.parametrize("terms, expected", [
    (["summary.acc>0.9"], {"$and": [{"summary.acc": {"$gt": 0.9}}]}),
    (["config.opt = adam", "state!=crashed"], {"$and": [{"config.opt": {"$eq": "adam"}}, {"state": {"$ne": "crashed"}}]}),
    (["config.flag=true", "config.n<=3"], {"$and": [{"config.flag": {"$in": [True, "true"]}}, {"config.n": {"$lte": 3}}]}),
    (["name!=123"], {"$and": [{"name": {"$nin": [123, "123"]}}]}),
    (["name~^a.*1$"], {"$and": [{"name": {"$regex": "^a.*1$"}}]}),
    ([], {}),
])
def test_where_terms_become_filters(terms, expected):
    assert parse_where(terms) == expected


@pytest.mark.parametrize("term", ["summary.acc", ">3", ""])
def test_unreadable_where_terms_say_how_to_write_them(term):
    with pytest.raises(ValueError, match="write KEY OP VALUE"):
        parse_where([term])


@given(st.floats(allow_nan=False, allow_infinity=False), st.floats(allow_nan=False, allow_infinity=False))
def test_where_comparisons_agree_with_python(value, bound):
    target = run(summary={"x": value})
    assert matches(target, parse_where([f"summary.x>{bound!r}"])) is (value > bound)
    assert matches(target, parse_where([f"summary.x<={bound!r}"])) is (value <= bound)
    assert matches(target, parse_where([f"summary.x={value!r}"]))


def test_a_bool_matches_only_a_bool():
    flagged = run(config={"flag": True, "n": 1, "off": False, "zero": 0})
    assert matches(flagged, parse_where(["config.flag=true"]))
    assert not matches(flagged, parse_where(["config.flag=1"]))
    assert not matches(flagged, parse_where(["config.n=true"]))
    assert not matches(flagged, parse_where(["config.off=0"])) and not matches(flagged, parse_where(["config.zero=false"]))
    assert not matches(flagged, {"config.n": {"$gte": True}})


def test_where_values_that_look_like_numbers_still_match_text():
    assert matches(run(name="123"), parse_where(["name=123"]))
    assert matches(run(config={"seed": 123}), parse_where(["config.seed=123"]))
    assert not matches(run(name="123"), parse_where(["name!=123"]))


def test_a_bad_regex_in_where_is_a_value_error():
    with pytest.raises(ValueError, match="is not a regular expression"):
        parse_where(["name~["])
