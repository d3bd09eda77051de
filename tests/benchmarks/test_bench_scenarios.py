"""The scenarios section at small sizes: every scenario verifies every row it logged and renders
its rows; an unknown scenario is refused; a short store fails loudly.

No figure is compared with anything.
"""

from __future__ import annotations

import pytest

from benchmarks import scenarios
from benchmarks.common import BenchmarkFailed
from bench_toys import labels

SIZES = {
    "memory": {"n": 2000},
    "cpu_loop": {"steps": 300, "repeats": 1, "step_us": 50.0},
    "wide_rows": {"n": 200, "keys": 50},
    "sweep": {"runs": 5, "rows": 10},
    "exit_after_finish": {"n": 500, "repeats": 1, "pace_us": 5.0},
}


@pytest.fixture(scope="module")
def report():
    return scenarios.run_scenarios(quick=True, params=SIZES)


def test_every_scenario_verified_every_row(report):
    verified = {f.row.split(":")[0]: f.value for f in report.figures if f.row.endswith("rows stored / logged")}
    assert verified == {
        "memory": "2,000 / 2,000",
        "cpu_loop": "300 / 300",
        "wide_rows": "200 / 200",
        "sweep": "50 / 50 in 5 runs",
        "exit_after_finish": "1,000 / 1,000 in 2 runs",
    }


def test_the_table_names_every_scenario_and_its_figures(report):
    table = report.render()
    rows = set(labels(table))
    for row in ("memory: user peak RSS (VmHWM, before finish)", "memory: manager peak RSS (VmHWM)",
                "memory: worker 0 peak RSS (VmHWM)", "cpu_loop: slowdown median(b)/median(a) - 1",
                "wide_rows: end to end, values", "sweep: init() median (runs 2..)", "sweep: one manager for every run",
                "exit_after_finish: finish() after 500 logs flat out"):
        assert row in rows, row
    for name, scenario in scenarios.SCENARIOS.items():
        assert f"{name}: {scenario.title.format(**SIZES[name])};" in table
    assert [f.value for f in report.figures if f.row == "sweep: one manager for every run"] == ["yes"]


def test_unknown_scenario_is_refused():
    with pytest.raises(ValueError, match="unknown scenario"):
        scenarios.run_scenarios(quick=True, only=["nope"])


def test_missing_rows_fail_loudly(tmp_path):
    import mplogger

    root = str(tmp_path / "store")
    run = mplogger.init(project="scenario-check", dir=root)
    for i in range(5):
        run.log({"x": float(i)})
    run.finish()
    mplogger.teardown()
    assert scenarios.verify_runs(root, {run.id: 5})["rows_stored"] == 5
    with pytest.raises(BenchmarkFailed, match="not stored in full"):
        scenarios.verify_runs(root, {run.id: 6})
    with pytest.raises(BenchmarkFailed, match="5 rows logged, 4 stored"):
        scenarios.Sheet(scenarios.Report(), "toy").verified(5, 4)
