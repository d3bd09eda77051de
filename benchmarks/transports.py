"""The transports section: ways to move logged records from producer processes to ONE consumer.

Every record is a dict of 10 float keys (``--keys``) copied from a pool of 1024, so no dict is
built inside a timed loop. Each cell is one transport, one batching mode (unbatched, or a list
handed on every ``batch`` records) and one number of producers; each runs in a fresh interpreter
(:func:`benchmarks.runner.fresh`) that forks P producers and one consumer, starts them together
and reaps them, every wait bounded (children also arm ``signal.alarm``). The consumer counts every
record: the count must equal producers × n exactly (:class:`BenchmarkFailed` otherwise).

Transports (:data:`TRANSPORTS`; who pickles matters, the caller pays what ``put`` does):
``Queue`` (its feeder thread pickles; batched, the caller pickles the batch itself),
``SimpleQueue`` and ``Pipe`` (one per producer; both pickle in the caller), ``shm-ring`` (a
ring in shared memory per producer, :mod:`benchmarks.shm_ring`) and ``mplogger`` (mplogger's
``QueueWriter``/``QueueReader`` over one queue per producer, rows packed as mplogger packs a
batch). A new one is a :class:`Transport` subclass under ``@transport("name")``.

Figures per cell: put µs/record (producer loop time / records: copy, batching, caller-side
pickling, the put and any back-pressure; median of the producers) and its CPU time; records/s
from the start signal until the consumer has unpickled everything; peak RSS of the largest
producer and of the consumer. Floors, measured in the same run: ``dict.copy``, and
``pickle.dumps``/``loads`` of a 256-record batch, µs per record.
"""

from __future__ import annotations

import itertools
import math
import multiprocessing
import pickle
import resource
import signal
import statistics
import sys
import time
import traceback
from multiprocessing.connection import wait as wait_connections
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from benchmarks.common import MASK, BenchmarkFailed, make_pool
from benchmarks.figures import Report
from benchmarks.registry import Options, keys, section
from benchmarks.runner import fresh, resolve, where
from benchmarks.shm_ring import ShmRing, _frame_size

FLOOR_BATCH = 256  # records per batch of the pickle floors
HIGHEST = pickle.HIGHEST_PROTOCOL
DEFAULT_RING_BYTES = 1 << 20  # data area of each ring (at least 4 of the largest frames)
JOIN_TIMEOUT_S = 10.0
SECTION = "transports"

perf = time.perf_counter  # intervals inside one process
clock = time.monotonic  # instants compared across processes (CLOCK_MONOTONIC on Linux)


def _maxrss_mib() -> float:
    """Peak RSS of this process in MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _current_rss_mib() -> float:
    """Current RSS of this process in MiB (Linux /proc; peak RSS elsewhere)."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return _maxrss_mib()


# --------------------------------------------------------------------------------------------
# the shared-memory ring


class Transport:
    """Moves records from producer processes to one consumer. Made in the measuring process before
    the children fork (``factory(ctx, producers, ring_bytes)``); ``producer_end`` runs in each
    producer, ``consume`` in the consumer."""

    name = ""

    def who_pickles(self, batch: Optional[int]) -> str:
        raise NotImplementedError

    def producer_end(self, index: int, batch: Optional[int], timeout_s: float
                     ) -> Tuple[Callable[[Any], Any], bool, Callable[[], None], Callable[[], Dict[str, Any]]]:
        """In producer ``index``: (put, pickle_it_yourself, send_end_marker, extra_figures)."""
        raise NotImplementedError

    def consume(self, producers: int, batch: Optional[int], timeout_s: float) -> Tuple[int, int]:
        """In the consumer: receive until every producer's end marker; (records, messages)."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


#: name -> the class (or factory) of a transport; ``@transport("name")`` on a class adds one
TRANSPORTS: Dict[str, Callable[..., Transport]] = {}


def transport(name: str) -> Callable[[Any], Any]:
    """Register a :class:`Transport` subclass (or factory) under ``name``."""
    def register(factory: Any) -> Any:
        if isinstance(factory, type):
            factory.name = name
        TRANSPORTS[name] = factory
        return factory
    return register



def wait_any(ends: List[Any], timeout_s: float) -> List[Any]:
    """The reading ends among ``ends`` with something to read; TimeoutError after ``timeout_s``."""
    ready = wait_connections(ends, timeout=timeout_s)
    if not ready:
        raise TimeoutError(f"no message from any producer for {timeout_s} s")
    return ready


def _consume_gets(get: Callable[[], Any], producers: int, batch: Optional[int],
                  unpickle: bool) -> Tuple[int, int]:
    """Consumer loop over a shared queue; ``None`` is a producer's end marker."""
    loads = pickle.loads
    ends = records = messages = 0
    if batch is None:
        while ends < producers:
            item = get()
            if item is None:
                ends += 1
            else:
                records += 1
        return records, records
    while ends < producers:
        item = get()
        if item is None:
            ends += 1
            continue
        if unpickle:
            item = loads(item)
        records += len(item)
        messages += 1
    return records, messages


@transport("Queue")
class QueueTransport(Transport):

    def __init__(self, ctx, producers: int, ring_bytes: int) -> None:
        self.q = ctx.Queue()

    def who_pickles(self, batch):
        return "feeder thread" if batch is None else "caller + feeder (bytes)"

    def producer_end(self, index, batch, timeout_s):
        put = self.q.put
        return put, batch is not None, lambda: put(None), dict

    def consume(self, producers, batch, timeout_s):
        return _consume_gets(self.q.get, producers, batch, unpickle=batch is not None)

    def close(self):
        self.q.close()
        self.q.join_thread()  # the harness never puts: returns at once


@transport("SimpleQueue")
class SimpleQueueTransport(Transport):

    def __init__(self, ctx, producers: int, ring_bytes: int) -> None:
        self.q = ctx.SimpleQueue()

    def who_pickles(self, batch):
        return "caller (in put)"

    def producer_end(self, index, batch, timeout_s):
        put = self.q.put
        return put, False, lambda: put(None), dict

    def consume(self, producers, batch, timeout_s):
        return _consume_gets(self.q.get, producers, batch, unpickle=False)

    def close(self):
        self.q.close()


@transport("Pipe")
class PipeTransport(Transport):

    def __init__(self, ctx, producers: int, ring_bytes: int) -> None:
        self.pipes: List[Tuple[Any, Any]] = []
        try:
            for _ in range(producers):
                self.pipes.append(ctx.Pipe(duplex=False))  # (read end, write end)
        except BaseException:
            self.close()
            raise

    def who_pickles(self, batch):
        return "caller (in send)"

    def producer_end(self, index, batch, timeout_s):
        send = self.pipes[index][1].send
        return send, False, lambda: send(None), dict

    def consume(self, producers, batch, timeout_s):
        live = [reader for reader, _ in self.pipes]
        records = messages = 0
        while live:
            for conn in wait_any(live, timeout_s):
                item = conn.recv()
                if item is None:
                    live.remove(conn)
                elif batch is None:
                    records += 1
                else:
                    records += len(item)
                    messages += 1
        return records, (records if batch is None else messages)

    def close(self):
        for pair in self.pipes:
            for conn in pair:
                conn.close()


@transport("shm-ring")
class ShmRingTransport(Transport):

    def __init__(self, ctx, producers: int, ring_bytes: int) -> None:
        self.rings: List[ShmRing] = []
        try:
            for _ in range(producers):
                self.rings.append(ShmRing(ring_bytes))
        except BaseException:
            self.close()
            raise

    def who_pickles(self, batch):
        return "caller (dumps)"

    def producer_end(self, index, batch, timeout_s):
        writer = self.rings[index].writer(timeout_s)
        return writer.put, True, writer.end, lambda: {"ring_full_waits": writer.full_waits}

    def consume(self, producers, batch, timeout_s):
        readers = [ring.reader() for ring in self.rings]
        loads = pickle.loads
        counts = [0, 0]  # records, messages

        if batch is None:
            def on_frame(view):
                loads(view)
                counts[0] += 1
                counts[1] += 1
        else:
            def on_frame(view):
                counts[0] += len(loads(view))
                counts[1] += 1
        try:
            live = list(readers)
            delay = 2e-5
            idle_since = None
            while live:
                progressed = False
                for reader in live:  # round-robin: drain each ring in turn
                    if reader.drain(on_frame) or reader.ended:
                        progressed = True
                if progressed:
                    live = [reader for reader in live if not reader.ended]
                    delay = 2e-5
                    idle_since = None
                    continue
                now = clock()  # every ring empty: sleep briefly, bounded overall
                if idle_since is None:
                    idle_since = now
                elif now - idle_since > timeout_s:
                    raise TimeoutError(f"every shm ring empty for {timeout_s} s")
                time.sleep(delay)
                delay = min(delay * 2, 5e-4)
        finally:
            for reader in readers:
                reader.release()
        return counts[0], counts[1]

    def close(self):
        errors = []
        for ring in self.rings:
            try:
                ring.close()
            except Exception as exc:  # unlink the others anyway
                errors.append(exc)
        if errors:
            raise errors[0]


@transport("mplogger")
class MploggerTransport(Transport):
    """mplogger's own hop: per producer a ``multiprocessing.Queue`` written synchronously by
    :class:`QueueWriter` (framed pickles straight into the pipe) and read by :class:`QueueReader`,
    rows batched into ``LogBatch`` messages by ``pack_rows`` (one tuple of values per key)."""

    def __init__(self, ctx, producers: int, ring_bytes: int) -> None:
        self.queues = [ctx.Queue() for _ in range(producers)]

    def who_pickles(self, batch):
        return "caller (QueueWriter)"

    def producer_end(self, index, batch, timeout_s):
        from mplogger._ipc._channel import QueueWriter
        from mplogger._ipc._messages import LogBatch, pack_rows

        writer = QueueWriter(self.queues[index])
        steps = itertools.count()

        def put(records: Any) -> None:
            dicts = [records] if batch is None else records
            now = time.time()
            rows = [(next(steps), now, d) for d in dicts]
            payload, columns = pack_rows(rows)
            writer.put(LogBatch("bench", payload, len(rows), columns=columns), _ready, timeout_s)

        return put, False, lambda: writer.put(None, _ready, timeout_s), dict

    def consume(self, producers, batch, timeout_s):
        from mplogger._ipc._channel import QueueReader
        from mplogger._ipc._messages import unpack_rows

        live = [QueueReader(q) for q in self.queues]
        records = messages = 0
        while live:
            for reader in wait_any(live, timeout_s):
                for message in reader.read_available():
                    if message is None:
                        live.remove(reader)
                        continue
                    rows, columns = unpack_rows(message)
                    records += len(rows) if rows is not None else len(columns[0])
                    messages += 1
        return records, messages

    def close(self):
        for q in self.queues:
            q.close()
            q.join_thread()


def _ready() -> None:
    """QueueWriter's check between bounded waits: the consumer's death ends the cell by its timeout."""


# --------------------------------------------------------------------------------------------
# children (forked): producers and the consumer
# --------------------------------------------------------------------------------------------


def _child_setup(timeout_s: float) -> None:
    """Bound this child's life even if the harness is killed: SIGALRM's default action."""
    try:
        signal.signal(signal.SIGALRM, signal.SIG_DFL)  # forked from pytest-timeout, say
        signal.alarm(int(math.ceil(timeout_s)) + 10)
    except (ValueError, OSError, AttributeError):
        pass


def _produce(put: Callable[[Any], Any], pool: List[Dict[str, float]], n: int,
             batch: Optional[int], pickle_it: bool) -> int:
    """The timed producer loop; returns the number of messages put."""
    dumps = pickle.dumps
    if batch is None:
        if pickle_it:
            for i in range(n):
                put(dumps(pool[i & MASK].copy(), HIGHEST))
        else:
            for i in range(n):
                put(pool[i & MASK].copy())
        return n
    messages = 0
    rows: List[Dict[str, float]] = []
    append = rows.append
    if pickle_it:
        for i in range(n):
            append(pool[i & MASK].copy())
            if len(rows) >= batch:
                put(dumps(rows, HIGHEST))
                messages += 1
                rows = []
                append = rows.append
        if rows:
            put(dumps(rows, HIGHEST))
            messages += 1
    else:
        for i in range(n):
            append(pool[i & MASK].copy())
            if len(rows) >= batch:
                put(rows)
                messages += 1
                rows = []
                append = rows.append
        if rows:
            put(rows)
            messages += 1
    return messages


def _producer_main(transport: Transport, index: int, n: int, batch: Optional[int], start,
                   report, timeout_s: float) -> None:
    _child_setup(timeout_s)
    try:
        put, pickle_it, send_end, extra = transport.producer_end(index, batch, timeout_s)
        pool = make_pool()
        report.send({"stage": "ready"})
        if not start.wait(timeout_s):
            raise TimeoutError(f"no start signal within {timeout_s} s")
        c0, t0 = time.thread_time(), perf()
        messages = _produce(put, pool, n, batch, pickle_it)
        t1, c1 = perf(), time.thread_time()
        send_end()
        report.send({"stage": "done", "put_s": t1 - t0, "put_cpu_s": c1 - c0, "records": n,
                     "messages": messages,
                     "rss_mib": _maxrss_mib(), **extra()})
    except BaseException:
        report.send({"stage": "error", "error": traceback.format_exc()})
        raise


def _consumer_main(transport: Transport, producers: int, batch: Optional[int], report,
                   timeout_s: float) -> None:
    _child_setup(timeout_s)
    try:
        report.send({"stage": "ready"})
        records, messages = transport.consume(producers, batch, timeout_s)
        t_end = clock()
        report.send({"stage": "done", "received": records, "messages": messages,
                     "t_end": t_end, "rss_mib": _maxrss_mib()})
    except BaseException:
        report.send({"stage": "error", "error": traceback.format_exc()})
        raise


# --------------------------------------------------------------------------------------------
# the harness
# --------------------------------------------------------------------------------------------


def _collect(reports: Dict[Any, str], procs: Dict[str, Any], stage: str, deadline: float,
             cell: str) -> Dict[str, Dict[str, Any]]:
    """Read one ``stage`` message from every report pipe before ``deadline``; fail fast."""
    pending = dict(reports)
    got: Dict[str, Dict[str, Any]] = {}
    while pending:
        remaining = deadline - clock()
        if remaining <= 0:
            raise BenchmarkFailed(
                f"{cell}: timed out waiting for '{stage}' from {sorted(pending.values())}")
        for conn in wait_connections(list(pending), timeout=min(remaining, 0.25)):
            label = pending.pop(conn)
            try:
                message = conn.recv()
            except (EOFError, OSError) as exc:
                raise BenchmarkFailed(f"{cell}: {label} closed its report pipe ({exc!r})")
            if message.get("stage") == "error":
                raise BenchmarkFailed(f"{cell}: {label} failed:\n{message['error']}")
            if message.get("stage") != stage:
                raise BenchmarkFailed(f"{cell}: {label} sent {message!r}, expected '{stage}'")
            got[label] = message
        for conn, label in list(pending.items()):
            proc = procs[label]
            if proc.exitcode is not None and not conn.poll():
                raise BenchmarkFailed(
                    f"{cell}: {label} exited (code {proc.exitcode}) before sending '{stage}'")
    return got


def _reap(procs: Iterable[Any]) -> List[str]:
    """Join every child with a timeout; kill the ones still alive. Returns what went wrong."""
    problems = []
    deadline = clock() + JOIN_TIMEOUT_S
    for proc in procs:
        proc.join(max(0.0, deadline - clock()))
    for proc in procs:
        if proc.is_alive():
            problems.append(f"{proc.name} did not exit within {JOIN_TIMEOUT_S} s: killed")
            proc.kill()
            proc.join(5)
        elif proc.exitcode != 0:
            problems.append(f"{proc.name} exited with code {proc.exitcode}")
    return problems


def _ring_capacity(ring_bytes: int, batch: Optional[int], pool: List[Dict[str, float]]) -> int:
    """At least ``ring_bytes``, and room for 4 of the largest frames."""
    largest = len(pickle.dumps(pool[MASK].copy() if batch is None else
                               [pool[MASK].copy() for _ in range(batch)], HIGHEST))
    return max(int(ring_bytes), 4 * _frame_size(largest + largest // 8))


def run_cell(transport: str, batch: Optional[int], producers: int, n: int, *,
             ring_bytes: int = DEFAULT_RING_BYTES, timeout_s: Optional[float] = None,
             ctx=None) -> Dict[str, Any]:
    """One measurement: fresh processes, one transport, one batching mode, ``producers``."""
    if transport not in TRANSPORTS:
        raise ValueError(f"unknown transport {transport!r}; known: {', '.join(TRANSPORTS)}")
    ctx = ctx or multiprocessing.get_context("fork")
    expected = n * producers
    if timeout_s is None:
        timeout_s = 30.0 + 50e-6 * expected
    cell = f"{transport} batch={batch} producers={producers} n={n}"
    if transport == "shm-ring":
        ring_bytes = _ring_capacity(ring_bytes, batch, make_pool())
    plumbing = TRANSPORTS[transport](ctx, producers, ring_bytes)
    procs: Dict[str, Any] = {}
    report_pipes: List[Tuple[Any, Any]] = []
    reaped = False
    try:
        start = ctx.Event()
        reports: Dict[Any, str] = {}
        rss_base = _current_rss_mib()
        specs = [("consumer", _consumer_main, (plumbing, producers, batch))]
        specs += [(f"producer{i}", _producer_main, (plumbing, i, n, batch, start))
                  for i in range(producers)]
        for label, target, args in specs:
            reader, writer = ctx.Pipe(duplex=False)
            report_pipes.append((reader, writer))
            reports[reader] = label
            proc = ctx.Process(target=target, args=(*args, writer, timeout_s),
                               name=f"bench-{label}", daemon=True)
            procs[label] = proc
            proc.start()
        deadline = clock() + timeout_s
        _collect(reports, procs, "ready", deadline, cell)
        t0 = clock()
        start.set()
        done = _collect(reports, procs, "done", deadline, cell)
        problems = _reap(procs.values())
        reaped = True
        if problems:
            raise BenchmarkFailed(f"{cell}: " + "; ".join(problems))
    finally:
        if not reaped:
            for proc in procs.values():
                if proc.is_alive():
                    proc.kill()
            _reap(procs.values())
        try:
            plumbing.close()
        finally:
            for pair in report_pipes:
                for conn in pair:
                    conn.close()

    consumer = done["consumer"]
    producer_reports = [done[f"producer{i}"] for i in range(producers)]
    received = consumer["received"]
    sent = sum(p["records"] for p in producer_reports)
    if received != expected or sent != expected:
        raise BenchmarkFailed(
            f"{cell}: the consumer received {received} records, the producers sent {sent}; "
            f"expected exactly {expected}")
    e2e_s = consumer["t_end"] - t0
    if not e2e_s > 0:
        raise BenchmarkFailed(f"{cell}: end-to-end time {e2e_s} s is not positive")
    put_us = [p["put_s"] / p["records"] * 1e6 for p in producer_reports]
    messages = sum(p["messages"] for p in producer_reports)
    return {
        "kind": "transport",
        "transport": transport,
        "batch": batch,
        "producers": producers,
        "who_pickles": plumbing.who_pickles(batch),
        "n": n,
        "put_us": statistics.median(put_us),  # µs per record, median across producers
        "put_us_producers": put_us,
        # CPU time of the producing thread only (not the Queue's feeder thread), µs per record:
        # without the waits for a core, a full pipe or ring that put_us includes
        "put_cpu_us": statistics.median(p["put_cpu_s"] / p["records"] * 1e6 for p in producer_reports),
        "put_us_per_message": statistics.median(
            p["put_s"] / p["messages"] * 1e6 for p in producer_reports),
        "messages": messages,
        "e2e_s": e2e_s,
        "records_per_s": expected / e2e_s,
        "rss_producer_mib": max(p["rss_mib"] for p in producer_reports),
        "rss_consumer_mib": consumer["rss_mib"],
        "rss_fork_base_mib": rss_base,
        "received": received,
        "expected": expected,
        "count_ok": received == expected,
        "ring_bytes": ring_bytes if transport == "shm-ring" else None,
        "rings": [ring.name for ring in getattr(plumbing, "rings", [])],
        "ring_full_waits": sum(p.get("ring_full_waits", 0) for p in producer_reports)
        if transport == "shm-ring" else None,
    }


def measure_floors(n: int) -> List[Dict[str, Any]]:
    """The floors, in this process: dict copy, and pickle dumps/loads of a 256-record batch."""
    pool = make_pool()
    count = min(max(n, 20_000), 200_000)
    t0 = perf()
    for i in range(count):
        pool[i & MASK].copy()
    copy_us = (perf() - t0) / count * 1e6

    batch = [pool[i & MASK].copy() for i in range(FLOOR_BATCH)]
    reps = max(20, count // FLOOR_BATCH)
    dumps, loads = pickle.dumps, pickle.loads
    t0 = perf()
    for _ in range(reps):
        dumps(batch, HIGHEST)
    dumps_us = (perf() - t0) / (reps * FLOOR_BATCH) * 1e6
    payload = dumps(batch, HIGHEST)
    t0 = perf()
    for _ in range(reps):
        loads(payload)
    loads_us = (perf() - t0) / (reps * FLOOR_BATCH) * 1e6
    return [
        {"kind": "floor", "floor": "dict copy", "us_per_record": copy_us, "samples": count},
        {"kind": "floor", "floor": f"pickle.dumps {FLOOR_BATCH}-record batch",
         "us_per_record": dumps_us, "samples": reps * FLOOR_BATCH},
        {"kind": "floor", "floor": f"pickle.loads {FLOOR_BATCH}-record batch",
         "us_per_record": loads_us, "samples": reps * FLOOR_BATCH},
    ]


def cell(transport: str, factory: str, batch: Optional[int], producers: int, n: int, ring_bytes: int,
         timeout_s: Optional[float]) -> Dict[str, Any]:
    """One cell in this (fresh) interpreter; ``factory`` is where the transport is defined
    (``module:name``), so one registered anywhere is found here too."""
    TRANSPORTS.setdefault(transport, resolve(factory))
    return run_cell(transport, batch, producers, n, ring_bytes=ring_bytes, timeout_s=timeout_s)


def run_transports(n: int, producers: Sequence[int] = (1, 2, 4), batch_sizes: Sequence[int] = (64, 256),
                   repeats: int = 1, transports: Optional[Sequence[str]] = None, *,
                   ring_bytes: int = DEFAULT_RING_BYTES, timeout_s: Optional[float] = None) -> List[Dict[str, Any]]:
    """Every (transport, batching, producers) cell ``repeats`` times (interleaved), each in a fresh
    interpreter, and the floors; one dict per cell and repeat (``kind`` "transport", see
    :func:`run_cell`) and per floor and repeat (``kind`` "floor")."""
    names = tuple(TRANSPORTS if transports is None else transports)
    unknown = [name for name in names if name not in TRANSPORTS]
    if unknown:
        raise ValueError(f"unknown transport {unknown[0]!r}; known: {', '.join(TRANSPORTS)}")
    producers = tuple(int(p) for p in producers)
    batch_sizes = tuple(int(b) for b in batch_sizes)
    if n < 1 or repeats < 1 or not producers or min(producers) < 1 or (batch_sizes and min(batch_sizes) < 1):
        raise ValueError("n, repeats, producers and batch sizes must be >= 1")
    cells = [(t, b, p) for t in names for b in (None, *batch_sizes) for p in producers]
    results: List[Dict[str, Any]] = []
    for rep in range(repeats):
        results += [{**floor, "repeat": rep} for floor in measure_floors(n)]
        for name, batch, procs in cells:
            bound = (timeout_s or 30.0 + 50e-6 * n * procs) + 60.0
            row = fresh("benchmarks.transports:cell", bound, transport=name, factory=where(TRANSPORTS[name]),
                        batch=batch, producers=procs, n=n, ring_bytes=ring_bytes, timeout_s=timeout_s)
            results.append({**row, "repeat": rep})
    return results


def cell_name(row: Dict[str, Any]) -> str:
    return f"{row['transport']} batch={row['batch'] or '-'} P={row['producers']}"


def report(results: List[Dict[str, Any]]) -> Report:
    """One row per cell (values over the repeats), then one per floor."""
    out = Report(turn=False)
    groups: Dict[str, List[Dict[str, Any]]] = {}
    floors: Dict[str, List[float]] = {}
    for row in results:
        if row["kind"] == "floor":
            floors.setdefault(f"floor: {row['floor']}", []).append(row["us_per_record"])
        else:
            groups.setdefault(cell_name(row), []).append(row)
    for name, rows in groups.items():
        out.add(SECTION, name, "who pickles", rows[0]["who_pickles"])
        out.add(SECTION, name, "put", [r["put_us"] for r in rows], "µs/record")
        out.add(SECTION, name, "put, CPU", [r["put_cpu_us"] for r in rows], "µs/record")
        out.add(SECTION, name, "end to end", [r["records_per_s"] for r in rows], "records/s")
        out.add(SECTION, name, "RSS producer", [r["rss_producer_mib"] for r in rows], "MiB")
        out.add(SECTION, name, "RSS consumer", [r["rss_consumer_mib"] for r in rows], "MiB")
        counted = all(r["received"] == r["expected"] for r in rows)
        out.add(SECTION, name, "received", f"{'all' if counted else 'MISMATCH'} {rows[0]['expected']:,}")
    for name, values in floors.items():
        out.add(SECTION, name, "put", values, "µs/record")
    bases = [r["rss_fork_base_mib"] for rows in groups.values() for r in rows]
    sample = next(iter(groups.values()))[0] if groups else {"n": 0}
    out.notes += [
        f"dicts of {keys()} floats, n={sample['n']:,} records per producer, fork start method, each cell in a "
        "fresh interpreter; [min–max] over the repeats",
        "put: producer loop time / records (copy, batching, caller-side pickling, put/send, back-pressure), "
        "median of the producers; end to end: start signal -> the consumer has unpickled every record",
        "RSS: ru_maxrss of each forked child, which counts pages still shared with the interpreter it was forked "
        f"from ({statistics.median(bases) if bases else 0:.0f} MiB at fork); received: the consumer's count == "
        "producers × n",
    ]
    return out


@section(SECTION, "Queue, SimpleQueue, Pipe, a shared-memory ring and mplogger's own queue writer, "
                  "unbatched and batched, with 1, 2 and 4 producers")
def transports_section(o: Options) -> Report:
    batch_sizes = o.batch_sizes or o.sized((64, 256), (256,))
    producers = o.listed(SECTION, "producers", o.sized((1, 2, 4), (1, 2)))
    names = o.listed(SECTION, "transports", None)
    return report(run_transports(n=o.n or o.sized(100_000, 2000), producers=producers, batch_sizes=batch_sizes,
                                 repeats=o.repeats or o.sized(3, 1), transports=names))
