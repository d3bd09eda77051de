"""The scenario benchmarks run end to end (quick sizes) and verify what they logged.

No time value or target is asserted here: only that every scenario produced its figures, that
they are finite (and positive where they are amounts), and that every logged row was stored.
"""

from __future__ import annotations

import math
import sys

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO))

from benchmarks import scenarios  # noqa: E402


@pytest.fixture(scope="module")
def results():
    return scenarios.run_scenarios(quick=True)


def _numbers(mapping):
    for key, value in mapping.items():
        assert isinstance(value, (int, float)) and not isinstance(value, bool), (key, value)
        yield key, value


def test_every_scenario_ran(results):
    assert list(results) == list(scenarios.SCENARIOS)


@pytest.mark.parametrize("name", scenarios.SCENARIOS)
def test_figures_positive_and_finite(results, name):
    result = results[name]
    figures = dict(_numbers(result["figures"]))
    assert figures, f"{name} reported no figures"
    for key, value in figures.items():
        assert math.isfinite(value) and value > 0, f"{name}.{key} = {value!r}"
    for key, value in _numbers(result["signed"]):  # deltas (a slowdown, a growth) may be <= 0
        assert math.isfinite(value), f"{name}.{key} = {value!r}"


@pytest.mark.parametrize("name", scenarios.SCENARIOS)
def test_rows_verified(results, name):
    result = results[name]
    assert result["verified"] is True
    rows = result["rows"]
    assert rows["expected"] > 0
    assert rows["stored"] == rows["expected"]


def test_scenario_specifics(results):
    quick = scenarios.QUICK
    memory = results["memory"]
    assert memory["rows"]["expected"] == quick["memory"]["n"]
    assert any(key.startswith("worker") for key in memory["figures"]), "no worker peak RSS reported"
    for key in ("user_peak_rss_mib", "user_maxrss_mib", "manager_peak_rss_mib"):
        assert key in memory["figures"]
    assert "user_rss_growth_mib" in memory["signed"]

    cpu = results["cpu_loop"]
    assert cpu["rows"]["expected"] == quick["cpu_loop"]["steps"] * quick["cpu_loop"]["repeats"]
    assert "slowdown_pct" in cpu["signed"]

    sweep = results["sweep"]
    assert sweep["runs_verified"] == quick["sweep"]["runs"]
    assert sweep["rows"]["expected"] == quick["sweep"]["runs"] * quick["sweep"]["rows"]

    exits = results["exit_after_finish"]
    for key in ("exit_after_finish_s", "finish_flat_ms", "finish_paced_ms"):
        assert key in exits["figures"]


def test_format_lists_every_scenario(results):
    text = scenarios.format_scenarios(results)
    for name in scenarios.SCENARIOS:
        assert name in text
    assert "verified" in text


def test_unknown_scenario_is_refused():
    with pytest.raises(ValueError, match="unknown scenario"):
        scenarios.run_scenarios(quick=True, only=["nope"])


def test_missing_rows_fail_loudly(tmp_path):
    """verify_runs raises when the store holds fewer rows than were logged."""
    import mplogger

    root = str(tmp_path / "store")
    run = mplogger.init(project="scenario-check", dir=root)
    for i in range(5):
        run.log({"x": float(i)})
    run.finish()
    mplogger.teardown()
    assert scenarios.verify_runs(root, {run.id: 5})["rows_stored"] == 5
    with pytest.raises(scenarios.ScenarioFailed, match="not stored in full"):
        scenarios.verify_runs(root, {run.id: 6})
