"""The core benchmark's quick mode: every figure present, sane, and every row read back."""

from __future__ import annotations

import math

from benchmarks import bench_core


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_quick_benchmark_produces_every_figure_and_verifies_rows():
    n = 2000
    result = bench_core.collect(n=n, repeats=1, progress=False)
    figures = result["figures"]
    mplogger_figures = figures["mplogger"]
    assert mplogger_figures["rows_stored"] == [n]
    for name in ("floor", "mpqueue"):
        assert figures[name]["count"] == [n]
        for key in ("record_us", "e2e_s", "e2e_rows_per_s"):
            assert _positive(figures[name][key]["median"]), (name, key)
    for key in ("log_us", "log_burst_us", "init_cold_ms", "init_cold_spawn_ms", "init_cold_forkserver_ms",
                "init_warm_ms", "finish_ms", "e2e_s", "e2e_rows_per_s"):
        assert _positive(mplogger_figures[key]["median"]), key
    for ratio in figures["ratios"].values():
        assert _positive(ratio["of_medians"])
    table = bench_core.render(result, n, 1)
    for label in ("log() µs per call", "end-to-end rows/s", "init() cold ms", "finish()", "ratios"):
        assert label in table
