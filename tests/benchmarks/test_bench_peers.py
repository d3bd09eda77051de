"""benchmarks.peers: every peer that is installed logs N rows and reads back exactly N.

Each measurement runs in a fresh subprocess; no assertion is made about speed.
"""

from __future__ import annotations

import json

import pytest

from benchmarks import peers as bench_peers
from conftest import require_installed

N_QUICK = 200


def _check_ok(row: dict, peer: str, n: int) -> None:
    assert row["peer"] == peer
    assert row["status"] == "ok", row
    assert row["expected"] == n
    assert row["rows_read_back"] == n, row
    assert row["log_us"] > 0 and row["end_to_end_s"] > 0, row
    assert row["read_method"], row


def test_mplogger_reference_reads_back_every_row():
    results = bench_peers.run_peers(n=N_QUICK, peers=["mplogger"])
    assert len(results) == 1
    _check_ok(results[0], "mplogger", N_QUICK)
    table = bench_peers.format_peers(results)
    assert "mplogger" in table and f"{N_QUICK}/{N_QUICK}" in table


@pytest.mark.parametrize("peer, module", [
    ("wandb", "wandb"),
    ("mlflow", "mlflow"),
    ("mlflow-async", "mlflow"),
    ("mlflow-file", "mlflow"),
    ("tensorboardX", "tensorboardX"),
    ("trackio", "trackio"),
])
def test_installed_peer_reads_back_every_row(peer, module):
    require_installed(module)  # run in a child: importing it here would patch this process
    (row,) = bench_peers.run_peers(n=N_QUICK, peers=[peer])
    _check_ok(row, peer, N_QUICK)


def test_missing_peer_is_reported_not_failed(monkeypatch):
    monkeypatch.setitem(bench_peers.PEERS, "trackio",
                        {"module": "no_such_module_for_peers_test", "pip": "pip install trackio"})
    (row,) = bench_peers.run_peers(n=10, peers=["trackio"])
    assert row["status"] == "not installed"
    assert row["pip"] == "pip install trackio"
    assert row["rows_read_back"] is None
    assert "not installed (pip install trackio)" in bench_peers.format_peers([row])


def test_unknown_peer_is_rejected():
    with pytest.raises(ValueError, match="unknown peer"):
        bench_peers.run_peers(n=10, peers=["nope"])


def test_main_writes_json(tmp_path, capsys):
    out = tmp_path / "peers.json"
    code = bench_peers.main(["--n", "50", "--peers", "mplogger", "--json", str(out)])
    assert code == 0
    assert "mplogger" in capsys.readouterr().out
    data = json.loads(out.read_text())
    assert data["n"] == 50
    (row,) = data["results"]
    assert row["status"] == "ok" and row["rows_read_back"] == 50
