"""Tests for ``mplogger._shared._metrics``: wandb's ``define_metric`` rules, summaries and step filling."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings, strategies as st

from mplogger._shared._metrics import SUMMARY_OPS, MetricRules
from mplogger._shared._values import from_json, to_json

from conftest import same

NAN = float("nan")


def run_rows(rules: MetricRules, rows, summary=None) -> dict:
    summary = {} if summary is None else summary
    for row in rows:
        rules.observe(row, summary)
    return summary


LOSSES = [3, 1.5, NAN, "skip", 2.0, None, 4]  # numbers: 3, 1.5, 2.0, 4


# -- summary options ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "summary, goal, expected",
    [
        (None, None, 4),
        ("copy", None, 4),
        ("min", None, {"min": 1.5}),
        ("max", None, {"max": 4}),
        ("mean", None, {"mean": (3 + 1.5 + 2.0 + 4) / 4}),
        ("last", None, {"last": 4}),
        ("first", None, {"first": 3}),
        ("best", None, {"best": 1.5}),
        ("best", "minimize", {"best": 1.5}),
        ("best", "maximize", {"best": 4}),
        ("best", "max", {"best": 4}),
        ("best", "MIN", {"best": 1.5}),
        ("min,max", None, {"min": 1.5, "max": 4}),
        (" max , min ", None, {"max": 4, "min": 1.5}),
        ("min,max,mean,last,best,first", "max",
         {"min": 1.5, "max": 4, "mean": 2.625, "last": 4, "best": 4, "first": 3}),
        ("min,copy", None, {"min": 1.5, "last": 4}),
        ("copy,last", None, {"last": 4}),
        ("min,min,MIN", None, {"min": 1.5}),
    ],
)
def test_summary_options(summary, goal, expected):
    rules = MetricRules()
    rules.define("loss", summary=summary, goal=goal)
    assert same(run_rows(rules, [{"loss": v} for v in LOSSES]), {"loss": expected})


@pytest.mark.parametrize("summary", ["none", "none,min", "min,none,copy"])
def test_none_keeps_the_key_out_of_the_summary(summary):
    rules = MetricRules()
    rules.define("loss", summary=summary)
    out = run_rows(rules, [{"loss": 1.0, "acc": 0.5}, {"loss": 0.5, "acc": 0.7}])
    assert out == {"acc": 0.7}


def test_default_is_the_last_value_nested_dicts_as_given():
    rules = MetricRules()
    rows = [{"a": 1, "m": {"x": 1}}, {"a": "two", "m": {"y": 2}}, {"b": None}]
    assert run_rows(rules, rows) == {"a": "two", "m": {"y": 2}, "b": None}
    rules.define("other", summary="min")  # a rule elsewhere changes nothing for these keys
    assert run_rows(rules, rows) == {"a": "two", "m": {"y": 2}, "b": None}


def test_summary_is_updated_in_place_and_other_keys_kept():
    rules = MetricRules()
    rules.define("loss", summary="min")
    summary = {"by_hand": 1, "loss": 99}
    run_rows(rules, [{"loss": 5.0}, {"loss": 7.0}], summary)
    assert summary == {"by_hand": 1, "loss": {"min": 5.0}}


@pytest.mark.parametrize(
    "values, expected",
    [
        ([NAN, NAN], None),                        # no number yet: nothing written
        ([NAN, 2.0, NAN], {"min": 2.0, "max": 2.0, "mean": 2.0}),
        (["a", True, {"x": 1}, None], None),      # bool is not a number here
        ([math.inf, 1.0], {"min": 1.0, "max": math.inf, "mean": math.inf}),
        ([-1, 2], {"min": -1, "max": 2, "mean": 0.5}),
    ],
)
def test_nan_and_non_numbers_skipped_by_min_max_mean(values, expected):
    rules = MetricRules()
    rules.define("m", summary="min,max,mean")
    out = run_rows(rules, [{"m": v} for v in values])
    assert same(out, {} if expected is None else {"m": expected})


def test_first_and_last_take_any_value():
    rules = MetricRules()
    rules.define("m", summary="first,last,min")
    out = run_rows(rules, [{"m": "start"}, {"m": 1.0}, {"m": {"k": 1}}])
    assert out == {"m": {"first": "start", "last": {"k": 1}, "min": 1.0}}
    out = run_rows(MetricRules.from_list(rules.to_list()), [{"m": NAN}])
    assert same(out, {"m": {"first": NAN, "last": NAN}})


def test_int_aggregates_stay_int():
    rules = MetricRules()
    rules.define("n", summary="min,max,mean")
    out = run_rows(rules, [{"n": 3}, {"n": 1}])
    assert same(out["n"], {"min": 1, "max": 3, "mean": 2.0})


def test_aggregates_start_when_the_rule_is_defined():
    rules = MetricRules()
    summary = run_rows(rules, [{"loss": 0.1}, {"loss": 5.0}])
    rules.define("loss", summary="min,first")
    run_rows(rules, [{"loss": 3.0}, {"loss": 4.0}], summary)
    assert summary == {"loss": {"min": 3.0, "first": 3.0}}


def test_redefining_with_a_new_goal_uses_the_kept_state():
    rules = MetricRules()
    rules.define("acc", summary="best", goal="min")
    summary = run_rows(rules, [{"acc": 0.2}, {"acc": 0.9}, {"acc": 0.5}])
    assert summary == {"acc": {"best": 0.2}}
    rules.define("acc", summary="best", goal="maximize")
    run_rows(rules, [{"acc": 0.4}], summary)
    assert summary == {"acc": {"best": 0.9}}


# -- globs -------------------------------------------------------------------------------------


def test_glob_rules_match_by_prefix():
    rules = MetricRules()
    rules.define("val/*", summary="max")
    rules.define("val/loss", summary="min")        # exact beats glob
    rules.define("val/sub/*", summary="first")    # longer prefix beats shorter
    out = run_rows(rules, [
        {"val/acc": 0.5, "val/loss": 2.0, "val/sub/x": 1, "train/acc": 0.1, "val": 3},
        {"val/acc": 0.4, "val/loss": 1.0, "val/sub/x": 2, "train/acc": 0.2, "val": 4},
    ])
    assert out == {
        "val/acc": {"max": 0.5}, "val/loss": {"min": 1.0}, "val/sub/x": {"first": 1},
        "train/acc": 0.2, "val": 4,
    }
    assert rules.match("val/acc")["name"] == "val/*"
    assert rules.match("val/sub/y")["name"] == "val/sub/*"
    assert rules.match("train/acc") is None


def test_star_glob_matches_everything_but_underscore_keys():
    rules = MetricRules()
    rules.define("*", summary="min")
    out = run_rows(rules, [{"a": 2, "_step": 0, "_runtime": 1.5}, {"a": 1, "_step": 1, "_runtime": 2.5}])
    assert out == {"a": {"min": 1}, "_step": 1, "_runtime": 2.5}
    assert rules.match("_step") is None


def test_underscore_keys_match_exact_rules():
    rules = MetricRules()
    rules.define("_step", summary="none")
    assert run_rows(rules, [{"_step": 0, "a": 1}]) == {"a": 1}


# -- step metrics ------------------------------------------------------------------------------


def test_step_metric_is_filled_from_the_last_seen_value():
    rules = MetricRules()
    rule = rules.define("val/*", step_metric="epoch")
    assert rule["step_sync"] is True
    summary: dict = {}
    row = {"val/acc": 0.1}
    assert rules.fill_step(row) == {"val/acc": 0.1}          # no epoch seen yet
    rules.observe(rules.fill_step({"epoch": 1, "train/loss": 2.0}), summary)
    filled = rules.fill_step(row)
    assert filled == {"val/acc": 0.1, "epoch": 1} and row == {"val/acc": 0.1}  # input untouched
    rules.observe(filled, summary)
    assert rules.fill_step({"val/acc": 0.2, "epoch": 7}) == {"val/acc": 0.2, "epoch": 7}
    assert rules.fill_step({"train/loss": 1.0}) == {"train/loss": 1.0}  # no rule: no fill
    assert rules.fill_step({"_val": 1.0}) == {"_val": 1.0}              # globs skip "_" keys
    rules.observe({"epoch": 2}, summary)
    assert rules.fill_step({"val/x": "s"}) == {"val/x": "s", "epoch": 2}
    assert summary == {"epoch": 2, "train/loss": 2.0, "val/acc": 0.1}


def test_step_sync_false_does_not_fill():
    rules = MetricRules()
    rules.define("val/acc", step_metric="epoch", step_sync=False)
    rules.observe({"epoch": 3}, {})
    assert rules.fill_step({"val/acc": 1.0}) == {"val/acc": 1.0}


def test_step_metric_is_defined_implicitly_without_a_summary():
    rules = MetricRules()
    rules.define("train/*", summary="min", step_metric="train/step")
    assert rules.match("train/step") == {
        "name": "train/step", "step_metric": None, "step_sync": None, "hidden": None,
        "summary": None, "goal": None,
    }
    out = run_rows(rules, [{"train/step": 1, "train/loss": 2.0}, {"train/step": 2, "train/loss": 1.0}])
    assert out == {"train/step": 2, "train/loss": {"min": 1.0}}
    rules.define("epoch", summary="max")
    rules.define("val", step_metric="epoch")                  # an existing rule is kept
    assert rules.match("epoch")["summary"] == "max"


def test_several_step_metrics_in_one_row():
    rules = MetricRules()
    rules.define("a", step_metric="sa")
    rules.define("b", step_metric="sb")
    rules.observe({"sa": 1, "sb": 10}, {})
    assert rules.fill_step({"a": 0, "b": 0}) == {"a": 0, "b": 0, "sa": 1, "sb": 10}


# -- define: replace, merge, validation --------------------------------------------------------


def test_define_returns_a_plain_normalized_rule():
    rules = MetricRules()
    rule = rules.define("loss", summary=" Min, max ,min", goal="minimum", hidden=True)
    assert rule == {"name": "loss", "step_metric": None, "step_sync": None, "hidden": True,
                    "summary": "min,max", "goal": "minimize"}
    assert json.loads(json.dumps(rule)) == rule
    rule["summary"] = "first"                                  # a copy: the rule is unchanged
    assert rules.match("loss")["summary"] == "min,max"
    assert MetricRules().define(**rules.match("loss")) == rules.match("loss")


@pytest.mark.parametrize("overwrite", [None, True])
def test_a_later_define_replaces(overwrite):
    rules = MetricRules()
    rules.define("loss", summary="min", goal="max", step_metric="s")
    rule = rules.define("loss", summary="max", overwrite=overwrite)
    assert rule == {"name": "loss", "step_metric": None, "step_sync": None, "hidden": None,
                    "summary": "max", "goal": None}


def test_overwrite_false_merges_fields_given_win():
    rules = MetricRules()
    rules.define("loss", summary="min", goal="max", step_metric="s", step_sync=False)
    rule = rules.define("loss", summary="max", hidden=True, overwrite=False)
    assert rule == {"name": "loss", "step_metric": "s", "step_sync": False, "hidden": True,
                    "summary": "max", "goal": "maximize"}
    rule = rules.define("loss", step_metric="t", overwrite=False)   # step_sync defaults to True
    assert (rule["step_metric"], rule["step_sync"], rule["summary"]) == ("t", True, "max")
    assert MetricRules().define("new", goal="min", overwrite=False)["goal"] == "minimize"


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"summary": "min,avg"}, ["'avg'", "min", "max", "mean", "last", "best", "first", "none", "copy"]),
        ({"summary": ""}, ["''", "allowed"]),
        ({"summary": "min,,max"}, ["''"]),
        ({"goal": "up"}, ["'up'", "minimize", "maximize"]),
        ({"goal": "mi"}, ["'mi'"]),
        ({"goal": ""}, ["goal"]),
        ({"name": ""}, ["empty"]),
        ({"name": "a*b"}, ["'a*b'", "*"]),
        ({"name": "a**"}, ["'a**'"]),
        ({"name": "_*"}, ["'_*'", "_"]),
        ({"step_metric": ""}, ["step_metric"]),
        ({"step_metric": "s*"}, ["'s*'", "glob"]),
    ],
)
def test_bad_values_raise_value_error(kwargs, words):
    kwargs = {"name": "loss", **kwargs}
    with pytest.raises(ValueError) as info:
        MetricRules().define(**kwargs)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize(
    "kwargs, arg",
    [
        ({"name": 3}, "name"),
        ({"name": None}, "name"),
        ({"step_metric": 1}, "step_metric"),
        ({"step_sync": 1}, "step_sync"),
        ({"step_sync": "yes"}, "step_sync"),
        ({"hidden": 0}, "hidden"),
        ({"summary": ["min"]}, "summary"),
        ({"goal": 1}, "goal"),
        ({"overwrite": "no"}, "overwrite"),
    ],
)
def test_bad_types_raise_type_error_naming_the_argument(kwargs, arg):
    kwargs = {"name": "loss", **kwargs}
    with pytest.raises(TypeError, match=f"'{arg}'"):
        MetricRules().define(**kwargs)


def test_a_failed_define_changes_nothing():
    rules = MetricRules()
    rules.define("loss", summary="min")
    with pytest.raises(ValueError):
        rules.define("loss", summary="max,bad")
    assert rules.to_list() == [{"name": "loss", "step_metric": None, "step_sync": None,
                                "hidden": None, "summary": "min", "goal": None}]


@pytest.mark.parametrize(
    "rules, error",
    [
        ("loss", TypeError),
        ({"name": "loss"}, TypeError),
        ([["loss"]], TypeError),
        ([{"summary": "min"}], TypeError),
        ([{"name": "loss", "colour": "red"}], TypeError),
        ([{"name": "loss", "summary": "avg"}], ValueError),
    ],
)
def test_from_list_rejects_bad_input(rules, error):
    with pytest.raises(error):
        MetricRules.from_list(rules)


# -- JSON round trips --------------------------------------------------------------------------


def test_rules_json_round_trip():
    rules = MetricRules()
    rules.define("epoch", summary="max")
    rules.define("val/*", step_metric="epoch", summary="min,last", goal="max", hidden=True)
    rules.define("train/*", step_metric="train/step", step_sync=False)
    rules.define("loss", summary="none")
    listed = rules.to_list()
    back = MetricRules.from_list(json.loads(json.dumps(listed)))
    assert back.to_list() == listed
    assert [r["name"] for r in listed] == ["epoch", "val/*", "train/*", "train/step", "loss"]
    rows = [{"epoch": 1, "val/a": 0.5, "train/step": 3, "train/x": 1, "loss": 1},
            {"val/a": 0.7}, {"epoch": 2, "train/x": 2}]
    a, b = {}, {}
    for row in rows:
        rules.observe(rules.fill_step(row), a)
        back.observe(back.fill_step(row), b)
    assert a == b == {"epoch": {"max": 2}, "val/a": {"min": 0.5, "last": 0.7},
                      "train/step": 3, "train/x": 2}


def test_state_json_round_trip_resumes_the_aggregates():
    rules = MetricRules()
    rules.define("loss", summary="min,max,mean,first,last", step_metric="epoch")
    summary = run_rows(rules, [{"loss": 2.0, "epoch": 0}, {"loss": NAN}, {"loss": math.inf}])
    state = rules.state_dict()
    for text in (json.dumps(state), to_json(state)):            # plain json, and the strict one
        resumed = MetricRules.from_list(rules.to_list())
        resumed.load_state(from_json(text))
        assert same(resumed.state_dict(), state)
        assert resumed.fill_step({"loss": 1.0}) == {"loss": 1.0, "epoch": 0}
        again = dict(summary)
        run_rows(resumed, [{"loss": 1.0}], again)
        assert same(again, {"loss": {"min": 1.0, "max": math.inf, "mean": math.inf,
                                     "first": 2.0, "last": 1.0}, "epoch": 0})


def test_state_dict_is_a_copy():
    rules = MetricRules()
    rules.define("m", summary="last")
    rules.observe({"m": {"k": 1}}, {})
    state = rules.state_dict()
    state["stats"]["m"]["last"]["k"] = 2
    assert rules.state_dict()["stats"]["m"]["last"] == {"k": 1}


@pytest.mark.parametrize(
    "state, error",
    [
        ([], TypeError),
        ({"version": 99, "stats": {}, "steps": {}}, ValueError),
        ({"version": 1, "stats": [], "steps": {}}, TypeError),
        ({"version": 1, "stats": {"m": {"count": "1"}}, "steps": {}}, ValueError),
        ({"version": 1, "stats": {"m": {"count": 1, "sum": 1, "first": 1, "last": 1}}, "steps": {}},
         ValueError),
    ],
)
def test_load_state_rejects_bad_state(state, error):
    with pytest.raises(error):
        MetricRules().load_state(state)


def test_summary_ops_are_the_documented_ones():
    assert set(SUMMARY_OPS) == {"min", "max", "mean", "last", "best", "first", "none", "copy"}


# -- properties --------------------------------------------------------------------------------

metric_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**6, 10**6),
    st.text(max_size=3), st.none(), st.booleans(),
)
metric_keys = st.sampled_from(["loss", "val/a", "val/b", "epoch", "other", "_step"])
rows_strategy = st.lists(st.dictionaries(metric_keys, metric_values, min_size=1, max_size=4),
                         max_size=25)
RULES = [
    {"name": "loss", "summary": "min,max,mean,last,best,first", "goal": "max"},
    {"name": "val/*", "summary": "best,copy", "step_metric": "epoch"},
    {"name": "other", "summary": "none"},
]


@settings(max_examples=150, deadline=None)
@given(rows=rows_strategy, cut=st.integers(min_value=0, max_value=25))
def test_state_round_trip_then_continuing_gives_the_same_summary(rows, cut):
    straight = MetricRules.from_list(RULES)
    expected, filled = {}, []
    for row in rows:
        row = straight.fill_step(row)
        filled.append(row)
        straight.observe(row, expected)

    first = MetricRules.from_list(RULES)
    summary: dict = {}
    for row in rows[:cut]:
        first.observe(first.fill_step(row), summary)
    second = MetricRules.from_list(json.loads(json.dumps(first.to_list())))
    second.load_state(from_json(to_json(first.state_dict())))
    summary = from_json(to_json(summary))
    again = []
    for row in rows[cut:]:
        row = second.fill_step(row)
        again.append(row)
        second.observe(row, summary)
    assert same(summary, expected)
    assert all(same(a, b) for a, b in zip(again, filled[cut:]))


@settings(max_examples=150, deadline=None)
@given(values=st.lists(metric_values, max_size=30))
def test_aggregates_match_a_direct_computation(values):
    rules = MetricRules()
    rules.define("m", summary="min,max,mean,first,last")
    summary = run_rows(rules, [{"m": v} for v in values])
    numbers = [v for v in values
               if type(v) in (int, float) and not (isinstance(v, float) and math.isnan(v))]
    if not values:
        assert summary == {}
        return
    expected = {"first": values[0], "last": values[-1]}
    if numbers:
        expected.update(min=min(numbers), max=max(numbers))
        total = 0
        for v in numbers:
            total += v
        expected["mean"] = total / len(numbers)
    assert same(summary["m"], {k: expected[k] for k in ("min", "max", "mean", "first", "last")
                               if k in expected})
