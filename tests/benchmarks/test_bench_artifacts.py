"""The artifact benchmark at a tiny size, through ``python -m benchmarks --only artifacts``'s own code
path: every row it logged is stored, the version is stored and downloads byte-identical, the table
is printed, and a failed check raises.

No time (or any other figure) is compared with a target here.
"""

from __future__ import annotations

import json
import os

import pytest

from benchmarks import bench_artifacts, bench_core, harness

SIZE_MB = 1


@pytest.fixture(scope="module")
def section():
    assert harness.KEYS_VARIABLE not in os.environ, "an earlier test left the key count set"
    printed = []
    result = harness.run(["artifacts"], harness.Options(quick=True, artifact_mb=SIZE_MB), echo=printed.append)
    return result["sections"]["artifacts"], "\n".join(printed)


def test_every_scenario_ran_once_at_the_size_given(section):
    figures = section[0]["figures"]
    assert figures["size"] == SIZE_MB * bench_artifacts.MB and figures["verified"] is True
    runs = {name: len(samples) for name, samples in figures["samples"].items()}
    assert runs == {name: 1 for name in bench_artifacts.SCENARIOS}
    assert figures["samples"]["floor"][0]["size"] == figures["size"]


def test_every_row_logged_is_stored(section):
    figures = section[0]["figures"]
    for name in ("baseline", *bench_artifacts.POLICIES):
        run = figures["samples"][name][0]
        assert run["rows_logged"] > 0 and run["state"] == "finished", name
        assert run["rows_stored"] == run["rows_counted"] == run["rows_logged"], name
        assert run["after"]["calls"] + run["before"]["calls"] == run["rows_logged"], name
        assert figures["rows"][name] == {"logged": run["rows_logged"], "stored": run["rows_logged"]}


def test_the_version_is_stored_and_downloads_byte_identical(section):
    figures = section[0]["figures"]
    assert figures["samples"]["baseline"][0]["versions"] == []
    for policy in bench_artifacts.POLICIES:
        run = figures["samples"][policy][0]
        assert run["policy"] == policy
        assert run["versions"] == ["ckpt:v0"] and run["version_size"] == figures["size"], policy
        assert run["identical"] is True and figures["identical"][policy] is True, policy


def test_table_and_json(section):
    store, printed = section
    assert "=== artifacts ===" in printed
    table = store["table"]
    for label in ("add_file + log_artifact call", "log_artifact -> durable", "MiB/s", "log() worst",
                  "log() p99", "copyfile", "rows stored / rows logged", "byte-identical", "mutable", "immutable",
                  f"a {SIZE_MB:,} MiB checkpoint"):
        assert label in table, label
    assert "NO" not in table.split()
    json.dumps(store["figures"], allow_nan=False)  # what --json writes


def _loop_result(**changes):
    run = {"policy": "mutable", "rows_logged": 10, "rows_stored": 10, "rows_counted": 10, "state": "finished",
           "versions": ["ckpt:v0"], "version_size": 5, "identical": True}
    run.update(changes)
    return run


def test_the_checks_fail_loudly():
    bench_artifacts.check_loop(_loop_result(), 5)
    bench_artifacts.check_loop(_loop_result(policy="none", versions=[]), 5)
    with pytest.raises(bench_core.BenchmarkFailed, match="10 rows were logged"):
        bench_artifacts.check_loop(_loop_result(rows_counted=9), 5)
    with pytest.raises(bench_core.BenchmarkFailed, match="one version ckpt:v0 of 5 bytes"):
        bench_artifacts.check_loop(_loop_result(versions=[]), 5)
    with pytest.raises(bench_core.BenchmarkFailed, match="one version ckpt:v0 of 5 bytes"):
        bench_artifacts.check_loop(_loop_result(version_size=4), 5)
    with pytest.raises(bench_core.BenchmarkFailed, match="differs"):
        bench_artifacts.check_loop(_loop_result(identical=False), 5)
