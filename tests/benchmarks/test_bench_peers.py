"""The peers section: every installed peer logs N rows in a fresh interpreter and its own reader
finds exactly N; a missing peer is reported with its pip line, a failing one with its reason.

No figure is compared with anything.
"""

from __future__ import annotations

import pytest

from benchmarks import peers as bench_peers
from conftest import require_installed

N = 200


def _check_ok(result: dict, n: int) -> None:
    assert result["status"] == "ok", result
    for sample in result["samples"]:
        assert sample["status"] == "ok" and sample["rows_read_back"] == n and sample["read_method"], sample


def test_mplogger_reads_back_every_row_and_the_table_says_so():
    results = bench_peers.run_peers(n=N, peers=["mplogger"])
    _check_ok(results["mplogger"], N)
    report = bench_peers.report(results, N)
    lines = report.render().splitlines()
    assert lines[0].split()[:4] == ["version", "log(),", "µs", "end"]
    (row,) = [line for line in lines if line.startswith("mplogger ")]
    assert row.endswith(f"{N}/{N}")
    assert any(note.startswith("mplogger: read back via mplogger.Api") for note in report.notes)


@pytest.mark.parametrize("peer", ["wandb", "mlflow", "mlflow-async", "mlflow-file", "tensorboardX", "trackio"])
def test_installed_peer_reads_back_every_row(peer):
    require_installed(bench_peers.PEERS[peer].module)  # run in a child: importing it here would patch this process
    results = bench_peers.run_peers(n=N, peers=[peer])
    _check_ok(results[peer], N)
    report = bench_peers.report(results, N)
    assert [f.value for f in report.figures if f.measure == "read back"] == [f"{N}/{N}"]


def test_missing_peer_is_reported_not_failed(monkeypatch):
    entry = bench_peers.PEERS["trackio"]
    monkeypatch.setitem(bench_peers.PEERS, "trackio", bench_peers.Peer("no_such_module_for_peers_test", entry.pip,
                                                                      entry.start, entry.read_back))
    results = bench_peers.run_peers(n=10, peers=["trackio"])
    assert results["trackio"] == {"status": "not installed", "pip": entry.pip}
    report = bench_peers.report(results, 10)
    assert f"trackio: not installed ({entry.pip})" in report.notes
    assert [f.value for f in report.figures if f.measure == "log()"] == [None]


def test_a_failing_peer_is_reported_with_its_reason():
    assert bench_peers.measure_once("mplogger", 0, 60) == {"status": "failed: read back: no rows read back"}
    crashed = bench_peers.measure_once("no-such-peer", 10, 60)  # the child finds no such entry
    assert crashed["status"] == "failed: exited with code 1: KeyError: 'no-such-peer'", crashed
    assert "Traceback" in crashed["stderr_tail"]
    report = bench_peers.report({"no-such-peer": {"samples": [crashed], "status": crashed["status"]}}, 10)
    assert report.failures == [f"peer no-such-peer: {crashed['status']}"]  # the command exits 1


def test_unknown_peer_is_rejected():
    with pytest.raises(ValueError, match="unknown peer"):
        bench_peers.run_peers(n=10, peers=["nope"])
