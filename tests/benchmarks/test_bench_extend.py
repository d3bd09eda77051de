"""Extending the benchmarks is one entry: a toy transport and a toy scenario, registered with one
line each, are measured (every record counted, every row read back) and rendered."""

from __future__ import annotations

import os
from pathlib import Path

import mplogger
from benchmarks import scenarios, transports
from benchmarks.runner import fresh
from bench_toys import labels

HERE = Path(__file__).resolve().parent


def test_a_toy_transport_is_one_entry(monkeypatch):
    import bench_toys

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH")) if p))
    monkeypatch.setitem(transports.TRANSPORTS, "toy", bench_toys.ToyTransport)  # the one entry
    rows = transports.run_transports(n=300, producers=(2,), batch_sizes=(8,), transports=["toy"])
    cells = [r for r in rows if r["kind"] == "transport"]
    assert [(r["batch"], r["received"], r["expected"]) for r in cells] == [(None, 600, 600), (8, 600, 600)]
    report = transports.report(rows)
    table = report.render()
    assert table.splitlines()[0].split()[:3] == ["who", "pickles", "put,"]
    for line in ("toy batch=- P=2", "toy batch=8 P=2"):
        (found,) = [text for text in table.splitlines() if text.startswith(line)]
        assert "caller (toy)" in found and found.endswith("all 600")


def test_a_toy_scenario_is_one_entry(monkeypatch, tmp_path):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH")) if p))

    def toy(sheet: scenarios.Sheet, timeout: float, n: int) -> None:
        root = str(tmp_path / "store")
        run_id = fresh("bench_toys:log_rows", timeout, root=root, n=n)["run_id"]
        api = mplogger.Api(root)
        try:
            stored = api.run(run_id).rows
        finally:
            api.close()
        sheet.add("rows logged", n, "rows")
        sheet.verified(n, stored)

    monkeypatch.setitem(scenarios.SCENARIOS, "toy", scenarios.Scenario(  # the one entry
        "{n} rows in a child", toy, full={"n": 1000}, quick={"n": 25}))
    report = scenarios.run_scenarios(quick=True, only=["toy"])
    table = report.render()
    rows = labels(table)
    assert rows == ["toy: rows logged", "toy: rows stored / logged"]
    assert "25 / 25" in table and "toy: 25 rows in a child" in table


def test_a_toy_peer_from_another_module_is_one_entry(monkeypatch):
    from benchmarks import peers
    import bench_toys

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH")) if p))
    monkeypatch.setitem(peers.PEERS, "toy", peers.Peer("json", "built in", bench_toys.start_peer,  # the one entry
                                                       bench_toys.read_peer))
    results = peers.run_peers(n=40, peers=["toy"])
    assert results["toy"]["status"] == "ok" and results["toy"]["samples"][0]["rows_read_back"] == 40
    table = peers.report(results, 40).render()
    (line,) = [text for text in table.splitlines() if text.startswith("toy ")]
    assert line.endswith("40/40")
