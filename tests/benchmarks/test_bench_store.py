"""The store section at a tiny size, through ``python -m benchmarks --only store``'s own code path:
every read verified in its child, the table with every figure, floor and size, and a wrong row
count failing loudly with the child's reason.

No figure is compared with anything.
"""

from __future__ import annotations

import json
import os

import pytest

from benchmarks import bench_store, harness
from benchmarks.common import BenchmarkFailed, make_pool
from benchmarks.registry import KEYS_VARIABLE
from benchmarks.runner import ChildFailed
from bench_toys import labels

N = 2000


@pytest.fixture(scope="module")
def section():
    assert KEYS_VARIABLE not in os.environ, "an earlier test left the key count set"
    printed = []
    result = harness.run(["store"], harness.Options(quick=True, n=N), echo=printed.append)
    return result["sections"]["store"], "\n".join(printed)


def test_every_read_was_verified(section):
    store, _ = section
    assert "verified: every read returned N rows, steps 0..N-1 and the logged values; both CSVs hold N lines; " \
           "the report names the run" in store["notes"]
    columns = {f["measure"] for f in store["figures"]}
    assert columns == {f"N={N // 10:,}", f"N={N:,}", "growth", f"goal at N={N:,}"}


def test_the_table_has_every_figure_and_floor(section):
    store, printed = section
    assert "=== store ===" in printed
    lines = store["table"].splitlines()
    assert lines[0].split() == [f"N={N // 10:,}", "÷", "base", f"N={N:,}", "÷", "base", "growth,", "×", "goal", "at",
                                f"N={N:,}"]
    rows = labels(store["table"])
    for _, label, *_ in bench_store.SPEC:
        assert label.strip() in rows, label
    for _, label, _ in bench_store.FLOORS:
        assert label in rows, label
    goals = [f["value"] for f in store["figures"] if f["measure"].startswith("goal")]
    assert len(goals) == sum(1 for *_, goal in bench_store.SPEC if goal)
    json.dumps(store["figures"], allow_nan=False)  # what --json writes


def test_a_wrong_row_count_fails_loudly():
    with pytest.raises(ChildFailed, match="rows were logged") as failed:
        bench_store.measure(300, expect=299)
    assert failed.value.target == "benchmarks.bench_store:child_write"


def test_checks_catch_a_wrong_value_and_a_short_read():
    pool = make_pool()
    rows = [{"k3": pool[i]["k3"], "_step": i, "_timestamp": 1.0 + i, "_runtime": float(i)} for i in range(10)]
    bench_store.check_rows(rows, 10, ["k3"], "ok")
    with pytest.raises(BenchmarkFailed, match="read 9 rows; 10 were logged"):
        bench_store.check_rows(rows[:9], 10, ["k3"], "short")
    rows[5] = dict(rows[5], k3=rows[5]["k3"] + 1)
    with pytest.raises(BenchmarkFailed, match="row 5"):
        bench_store.check_rows(rows, 10, ["k3"], "wrong")
