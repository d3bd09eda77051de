"""The transport benchmark harness (benchmarks/transports.py) runs, counts exactly and cleans up.

No timing value is asserted: only that every cell ran, every count matched and every figure is a
positive finite number.
"""

from __future__ import annotations

import math
import os
import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import transports as bt  # noqa: E402

FIGURES = ("put_us", "put_cpu_us", "put_us_per_message", "records_per_s", "e2e_s", "rss_producer_mib",
           "rss_consumer_mib", "rss_fork_base_mib")


def _positive_finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value) and value > 0


def _shm_segments() -> set:
    try:
        return set(os.listdir("/dev/shm"))
    except OSError:
        return set()


def test_every_cell_runs_and_counts_exactly(monkeypatch):
    created = []  # the names of the rings this harness creates (other processes use /dev/shm too)
    real_init = bt.ShmRing.__init__

    def recording_init(self, capacity):
        real_init(self, capacity)
        created.append(self.name.lstrip("/"))

    monkeypatch.setattr(bt.ShmRing, "__init__", recording_init)
    results = bt.run_transports(n=500, producers=(1, 2), batch_sizes=(16,), repeats=1)

    rows = [r for r in results if r["kind"] == "transport"]
    floors = [r for r in results if r["kind"] == "floor"]
    keys = [(r["transport"], r["batch"], r["producers"]) for r in rows]
    expected_keys = {(t, b, p) for t in bt.TRANSPORTS for b in (None, 16) for p in (1, 2)}
    assert set(keys) == expected_keys
    assert len(keys) == len(expected_keys)  # each cell exactly once
    for row in rows:
        cell = (row["transport"], row["batch"], row["producers"])
        assert row["expected"] == 500 * row["producers"], cell
        assert row["received"] == row["expected"], cell
        assert row["count_ok"] is True, cell
        for name in FIGURES:
            assert _positive_finite(row[name]), (cell, name, row[name])
        assert all(_positive_finite(v) for v in row["put_us_producers"]), cell
        assert len(row["put_us_producers"]) == row["producers"], cell
        messages = 500 * row["producers"] if row["batch"] is None \
            else row["producers"] * math.ceil(500 / row["batch"])
        assert row["messages"] == messages, cell
        assert row["who_pickles"], cell

    assert {f["floor"] for f in floors} == {
        "dict copy", "pickle.dumps 256-record batch", "pickle.loads 256-record batch"}
    assert all(_positive_finite(f["us_per_record"]) for f in floors)

    table = bt.format_table(results)
    for transport in bt.TRANSPORTS:
        assert transport in table
    assert "MISMATCH" not in table
    assert len(created) == 2 * 3  # 1 + 2 rings, unbatched and batched
    assert not (set(created) & _shm_segments()), "shared memory left behind"


def test_ring_wraps_with_a_skip_marker_and_keeps_every_byte():
    ring = bt.ShmRing(128)
    writer = reader = None
    try:
        writer, reader = ring.writer(timeout_s=1.0), ring.reader()
        got = []
        take = lambda view: got.append(bytes(view))  # noqa: E731
        writer.put(b"a" * 52)  # 4 + 52 = 56 bytes, at 0
        writer.put(b"b" * 52)  # at 56
        assert reader.drain(take) == 2
        writer.put(b"c" * 20)  # 24 bytes do not fit in the 16 left: SKIP at 112, frame at 0
        assert writer.w == 112 + 16 + 24
        assert bt._LEN.unpack_from(reader.data, 112)[0] == bt.SKIP
        assert reader.drain(take) == 1
        writer.put(b"")
        writer.put(b"d" * 5)
        writer.end()
        assert reader.drain(take) == 2
        assert reader.ended
        assert got == [b"a" * 52, b"b" * 52, b"c" * 20, b"", b"d" * 5]
        with pytest.raises(ValueError):
            writer.put(b"x" * 64)  # larger than half the ring
        writer.timeout_s = 0.05
        with pytest.raises(TimeoutError):  # full and nobody reads: a bounded wait
            for _ in range(5):
                writer.put(b"e" * 36)
    finally:
        for end_ in (writer, reader):
            if end_ is not None:
                end_.release()
        ring.close()
    assert ring.name.lstrip("/") not in _shm_segments()


def test_ring_wraps_many_times_across_processes():
    # a ring of a few frames: wrap-around and back-pressure on every other put
    for batch in (None, 8):
        row = bt.run_cell("shm-ring", batch, 2, 3000, ring_bytes=512)
        assert row["received"] == row["expected"] == 6000
        assert row["ring_bytes"] <= 8192  # ≪ the ~100 KB+ each producer writes: many wraps


def test_a_wrong_count_fails_loudly(monkeypatch):
    real = bt._produce

    def loses_one(put, pool, n, batch, pickle_it):  # runs in the forked producers
        return real(put, pool, n - 1, batch, pickle_it)

    monkeypatch.setattr(bt, "_produce", loses_one)
    with pytest.raises(bt.TransportBenchmarkFailed, match="received 598 records"):
        bt.run_cell("Pipe", None, 2, 300)


def test_a_hung_consumer_is_killed_within_the_timeout(monkeypatch):
    monkeypatch.setattr(bt.SimpleQueueTransport, "consume",
                        lambda self, producers, batch, timeout_s: threading.Event().wait(600))  # the hang under test
    with pytest.raises(bt.TransportBenchmarkFailed, match="timed out"):
        bt.run_cell("SimpleQueue", 16, 1, 100, timeout_s=1.0)  # the consumer is killed
