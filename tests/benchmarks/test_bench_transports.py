"""The transports section: every registered transport (mplogger's own queue writer included) runs
every cell in a fresh interpreter, counts every record exactly, renders its row, and leaves no
shared memory behind; the ring wraps correctly; a wrong count and a hung consumer fail loudly.

No figure is compared with anything.
"""

from __future__ import annotations

import math
import os
import threading

import pytest

from benchmarks import shm_ring, transports as bt
from benchmarks.common import BenchmarkFailed


def _shm_segments() -> set:
    try:
        return set(os.listdir("/dev/shm"))
    except OSError:
        return set()


def test_every_transport_counts_every_record_in_every_cell():
    assert {"Queue", "SimpleQueue", "Pipe", "shm-ring", "mplogger"} <= set(bt.TRANSPORTS)
    results = bt.run_transports(n=300, producers=(2,), batch_sizes=(16,), repeats=1)
    rows = [r for r in results if r["kind"] == "transport"]
    assert sorted((r["transport"], r["batch"] or 0) for r in rows) == sorted(
        (t, b) for t in bt.TRANSPORTS for b in (0, 16))
    for row in rows:
        cell = bt.cell_name(row)
        assert row["received"] == row["expected"] == 600, cell
        assert row["messages"] == (600 if row["batch"] is None else 2 * math.ceil(300 / 16)), cell
        assert len(row["put_us_producers"]) == 2 and row["who_pickles"], cell
    rings = [name.lstrip("/") for r in rows for name in r["rings"]]
    assert len(rings) == 2 * 2  # one ring per producer, unbatched and batched
    assert not (set(rings) & _shm_segments()), "shared memory left behind"

    report = bt.report(results)
    lines = report.render().splitlines()
    assert lines[0].split()[:3] == ["who", "pickles", "put,"]
    for row in rows:
        (line,) = [text for text in lines if text.startswith(bt.cell_name(row) + " ")]
        assert line.endswith("all 600"), line
    assert {f.row for f in report.figures if f.row.startswith("floor:")} == {
        "floor: dict copy", "floor: pickle.dumps 256-record batch", "floor: pickle.loads 256-record batch"}


def test_ring_wraps_with_a_skip_marker_and_keeps_every_byte():
    ring = shm_ring.ShmRing(128)
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
        assert shm_ring._LEN.unpack_from(reader.data, 112)[0] == shm_ring.SKIP
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
    with pytest.raises(BenchmarkFailed, match="received 598 records"):
        bt.run_cell("Pipe", None, 2, 300)


def test_a_hung_consumer_is_killed_within_the_timeout(monkeypatch):
    monkeypatch.setattr(bt.SimpleQueueTransport, "consume",
                        lambda self, producers, batch, timeout_s: threading.Event().wait(600))  # the hang under test
    with pytest.raises(BenchmarkFailed, match="timed out"):
        bt.run_cell("SimpleQueue", 16, 1, 100, timeout_s=1.0)  # the consumer is killed
