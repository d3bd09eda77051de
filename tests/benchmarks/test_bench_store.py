"""The store benchmark at a tiny size, through ``python -m benchmarks --only store``'s own code path:
every figure present and positive, the table printed, and a verification failure raising.

No time (or any other figure) is compared with a target here.
"""

from __future__ import annotations

import json
import math
import os

import pytest

from benchmarks import bench_core, bench_store, harness

N = 2000


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def section():
    assert harness.KEYS_VARIABLE not in os.environ, "an earlier test left the key count set"
    printed = []
    result = harness.run(["store"], harness.Options(quick=True, n=N), echo=printed.append)
    return result["sections"]["store"], "\n".join(printed)


def test_every_figure_exists_and_is_positive(section):
    store, _ = section
    figures = store["figures"]
    assert figures["sizes"] == [N // 10, N] and figures["verified"] is True
    for size in figures["sizes"]:
        by_size = figures["by_size"][str(size)]
        installed = by_size["pandas"] == "ok"
        for name, *_ in bench_store.SPEC:
            value = by_size["figures"][name]
            if name.startswith("pandas") and not installed:
                assert value is None and by_size["pandas"] == "not installed"
                continue
            if name.endswith("_rss_mb"):  # a tiny read may fit in memory the process already held
                assert isinstance(value, float) and math.isfinite(value), (size, name, value)
                continue
            assert _positive(value), (size, name, value)
            assert by_size["ratios"][name] is not None and math.isfinite(by_size["ratios"][name]), (size, name)
        for name, _ in bench_store.FLOOR_LABELS:
            if name.endswith("_rss_mb"):
                assert math.isfinite(by_size["floors"][name])
            else:
                assert _positive(by_size["floors"][name]), (size, name)
    for sample in figures["samples"][str(N)]:
        details = sample["details"]
        assert details["write"]["rows_stored"] == N and details["write"]["rows_counted"] == N
        assert details["write_floor"]["count"] == N
        for kind in ("key", "full", "floor-read"):
            assert details["reads"][kind]["rows"] == N
    assert set(figures["goals"]) == {name for name, *_, goal in bench_store.SPEC if goal}


def test_table_and_json(section):
    store, printed = section
    assert "=== store ===" in printed
    table = store["table"]
    for label in ('history(keys=["k3"]) s', "mplogger report RUN", "h.csv", "bytes a row", "peak RSS",
                  "floor: one SELECT into dicts", "growth", f"N={N:,}"):
        assert label in table, label
    json.dumps(store["figures"], allow_nan=False)  # what --json writes


def test_a_wrong_row_count_fails_loudly():
    with pytest.raises(bench_core.BenchmarkFailed, match="rows were logged"):
        bench_store.measure(300, expect=299)


def test_checks_catch_a_wrong_value_and_a_short_read():
    pool = bench_core.make_pool()
    rows = [{"k3": pool[i]["k3"], "_step": i, "_timestamp": 1.0 + i, "_runtime": float(i)} for i in range(10)]
    bench_store.check_rows(rows, 10, ["k3"], "ok")
    with pytest.raises(bench_core.BenchmarkFailed, match="read 9 rows; 10 were logged"):
        bench_store.check_rows(rows[:9], 10, ["k3"], "short")
    rows[5] = dict(rows[5], k3=rows[5]["k3"] + 1)
    with pytest.raises(bench_core.BenchmarkFailed, match="row 5"):
        bench_store.check_rows(rows, 10, ["k3"], "wrong")
