"""The artifacts section at a tiny size, through ``python -m benchmarks --only artifacts``'s own code
path: every row logged is stored, the version downloads byte-identical, the table has every figure
against its base; a failed check raises.

No figure is compared with anything.
"""

from __future__ import annotations

import json

import pytest

from benchmarks import bench_artifacts, harness
from benchmarks.common import BenchmarkFailed
from bench_toys import labels

SIZE_MB = 1


@pytest.fixture(scope="module")
def section():
    printed = []
    result = harness.run(["artifacts"], harness.Options(quick=True, artifact_mb=SIZE_MB), echo=printed.append)
    return result["sections"]["artifacts"], "\n".join(printed)


def _value(figures, row, measure):
    (value,) = [f["value"] for f in figures if f["row"] == row and f["measure"] == measure]
    return value


def test_every_row_logged_is_stored_and_the_version_is_identical(section):
    figures = section[0]["figures"]
    for row in (bench_artifacts.NO_CHECKPOINT, *bench_artifacts.POLICIES):
        stored, logged = _value(figures, row, "rows stored / logged").split(" / ")
        assert stored == logged and int(logged.replace(",", "")) > 0, row
    for policy in bench_artifacts.POLICIES:
        assert _value(figures, policy, "download byte-identical") == "yes", policy


def test_the_table_has_every_figure_against_its_base(section):
    store, printed = section
    assert "=== artifacts ===" in printed
    lines = store["table"].splitlines()
    assert lines[0].split() == ["copyfile", "+", "sha256", "mutable", "÷", "base", "immutable", "÷", "base",
                                "no", "checkpoint"]
    rows = labels(store["table"])
    for label, unit, _, _ in bench_artifacts.SPEC:
        assert (f"{label}, {unit}" if unit else label).strip() in rows, label
    for figure in store["figures"]:
        if figure["row"] in bench_artifacts.POLICIES and figure["baseline"]:
            assert figure["baseline"] in (bench_artifacts.NO_CHECKPOINT, bench_artifacts.COPY)
    assert f"a {SIZE_MB:,} MiB checkpoint" in store["table"]
    json.dumps(store["figures"], allow_nan=False)  # what --json writes


def _loop_result(**changes):
    run = {"policy": "mutable", "rows_logged": 10, "rows_stored": 10, "rows_counted": 10, "state": "finished",
           "versions": ["ckpt:v0"], "version_size": 5, "identical": True}
    run.update(changes)
    return run


def test_the_checks_fail_loudly():
    bench_artifacts.check_loop(_loop_result(), 5)
    bench_artifacts.check_loop(_loop_result(policy="none", versions=[]), 5)
    with pytest.raises(BenchmarkFailed, match="10 rows were logged"):
        bench_artifacts.check_loop(_loop_result(rows_counted=9), 5)
    with pytest.raises(BenchmarkFailed, match="one version ckpt:v0 of 5 bytes"):
        bench_artifacts.check_loop(_loop_result(versions=[]), 5)
    with pytest.raises(BenchmarkFailed, match="one version ckpt:v0 of 5 bytes"):
        bench_artifacts.check_loop(_loop_result(version_size=4), 5)
    with pytest.raises(BenchmarkFailed, match="differs"):
        bench_artifacts.check_loop(_loop_result(identical=False), 5)
