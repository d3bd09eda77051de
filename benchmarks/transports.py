"""Transport benchmark: ways to move logged records from producer processes to ONE consumer.

Every record is a dict of 10 float keys (``k0`` .. ``k9``), copied from a pool of 1024 distinct
dicts so that no dict is built inside a timed loop. Each cell of the table is one transport, one
batching mode and one number of producer processes (default 1, 2 and 4); every cell runs in
freshly forked processes: P producers, one consumer, the harness (this process) only starts,
watches and reaps them.

Transports, and who pickles (the caller pays whatever is done inside ``put``/``send``):

``Queue``        ``multiprocessing.Queue``, shared by all producers.
                 Unbatched: ``put(record)`` only appends to a deque; the queue's *feeder thread*
                 pickles and writes it later (same process, same GIL), so the put figure does
                 **not** include pickling. Batched: the producer pickles each batch once itself
                 (``pickle.dumps``) and puts the bytes; the feeder re-pickles that bytes object
                 (a memcpy) and writes it. The consumer's ``get`` unpickles (and, batched, the
                 consumer ``pickle.loads`` the batch).
``SimpleQueue``  ``multiprocessing.SimpleQueue``, shared by all producers. ``put`` pickles
                 synchronously in the caller (before taking the lock), then writes under the
                 queue's write lock. Batched: the list itself is put (``put`` pickles it once).
``Pipe``         one ``Pipe(duplex=False)`` per producer; ``send`` pickles synchronously in the
                 caller and writes. The consumer waits on all read ends with
                 ``multiprocessing.connection.wait``. Batched: the list itself is sent.
``shm-ring``     one single-producer/single-consumer ring per producer in
                 ``multiprocessing.shared_memory.SharedMemory`` (see :class:`ShmRing`). The
                 producer pickles each record/batch itself (``pickle.dumps``) and copies the bytes
                 into the ring; the consumer polls the rings round-robin and ``pickle.loads``.

Every mode copies each record (``dict.copy``) before handing it on, as a logger must snapshot the
caller's dict before returning; the copy is redundant where pickling happens synchronously, but it
is kept so that every row does the same work (the "dict copy" floor gives its cost). Batched
modes append the copies to a list and hand the list on every ``batch`` records (and a final
partial batch).

Figures per cell:

put µs/record    producer loop wall time / records sent (copying, batching, pickling where the
                 caller pays, the put/send/write and any back-pressure: a full pipe or ring, or
                 waiting for one of the 2 cores); median across the producers of the cell. Per
                 *record*, also when batched. The JSON also has ``put_cpu_us`` (CPU time of the
                 producing thread per record: no waits, and not the Queue's feeder thread) and
                 ``put_us_per_message``.
records/s        end to end: from the moment the harness sets the producers' start event until
                 the consumer has received and unpickled every record (and every producer's end
                 marker); ``time.monotonic`` (CLOCK_MONOTONIC, system-wide on Linux) in both
                 processes. The consumer counts every record; the count must equal producers × n
                 exactly, or the benchmark fails (raises :class:`TransportBenchmarkFailed`).
RSS MiB          peak resident set (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) read in each
                 child at its end: the largest of the producers, and the consumer. Children are
                 forked, and pages shared with the parent count as resident in the child from the
                 start, so these include the harness's own RSS at fork time (reported as
                 ``rss_fork_base_mib`` and printed under the table).

Floors, measured in the harness process in the same run: a bare ``dict.copy`` loop (µs/record),
``pickle.dumps`` of a 256-record batch (µs/record) and ``pickle.loads`` of it (µs/record).

Processes use the ``fork`` start method (module-level targets, nothing pickled to start them).
Every wait of the harness is bounded: readiness and results come over one report pipe per child,
read with ``multiprocessing.connection.wait`` under a deadline; children that die are noticed at
once; every child is joined with a timeout and killed if it is still alive. Children also arm
``signal.alarm`` (default action: terminate) so that none outlives a harness that was itself
killed. Consumers of ``Queue``/``SimpleQueue`` block in a plain ``get()`` (a ``get(timeout=)``
would add a poll system call per message to the figure being measured); the harness deadline and
the alarm bound them instead.

Run ``python -m benchmarks.transports --help``; ``--quick`` runs in a few seconds.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import pickle
import platform
import resource
import signal
import statistics
import struct
import sys
import time
import traceback
from multiprocessing import shared_memory
from multiprocessing.connection import wait as wait_connections
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from benchmarks.common import write_results

KEYS = int(os.environ.get("MPLOGGER_BENCH_KEYS", "10"))  # float keys per record
POOL = 1024  # distinct dicts cycled through
MASK = POOL - 1
FLOOR_BATCH = 256  # records per batch of the pickle floors
HIGHEST = pickle.HIGHEST_PROTOCOL
TRANSPORTS = ("Queue", "SimpleQueue", "Pipe", "shm-ring")
DEFAULT_RING_BYTES = 1 << 20  # data area of each ring (at least 4 of the largest frames)
JOIN_TIMEOUT_S = 10.0

perf = time.perf_counter  # intervals inside one process
clock = time.monotonic  # instants compared across processes (CLOCK_MONOTONIC on Linux)


class TransportBenchmarkFailed(RuntimeError):
    """A cell did not complete: a child failed or hung, or the consumer's count was wrong."""


def make_pool() -> List[Dict[str, float]]:
    """POOL distinct dicts of KEYS floats (keys k0..k9)."""
    return [{f"k{j}": (i * KEYS + j) * 0.001 + 0.5 for j in range(KEYS)} for i in range(POOL)]


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
# --------------------------------------------------------------------------------------------

RING_HEADER = 128  # write offset at byte 0, read offset at byte 64: separate cache lines
_W = 0  # index of the write offset in the header viewed as uint64s
_R = 8  # index of the read offset (byte 64)
_LEN = struct.Struct("<I")  # frame prefix: payload length, or a marker
SKIP = 0xFFFFFFFF  # rest of the data area up to its end is unused: continue at 0
END = 0xFFFFFFFE  # the producer has finished (no payload)
MAX_FRAME = 0xFFFFFFF0


def _frame_size(payload_len: int) -> int:
    """Bytes a frame occupies: 4-byte prefix + payload, rounded up to a multiple of 8."""
    return (4 + payload_len + 7) & ~7


class ShmRing:
    """One single-producer/single-consumer byte ring in a ``SharedMemory`` segment.

    Layout: a 128-byte header, then ``capacity`` data bytes (a multiple of 8). The header holds
    two unsigned 64-bit counters, native byte order (little-endian on the machines this runs on;
    checked), read and written through ``memoryview.cast("Q")``: the *write offset* (byte 0,
    written only by the producer) and the *read offset* (byte 64, written only by the consumer).
    Offsets count bytes since the start and only grow; the position in the data area is
    ``offset % capacity``; the ring is empty when they are equal and holds ``write - read``
    bytes.

    A frame is a 4-byte little-endian length, the pickled payload, and padding to a multiple of 8
    bytes, so that frames start 8-aligned and at least 8 bytes remain before the end of the data
    area whenever a frame does not fit there: the producer then writes a SKIP marker and the
    frame goes to position 0 (wrap-around by a skip marker; frames are never split). An END
    marker (no payload) closes the stream. A frame larger than half the capacity is refused.

    Protocol. The producer writes the frame (marker, prefix and payload) into the data area and
    only *then* publishes the new write offset with one store. The consumer reads the write
    offset, reads the frames below it, unpickles each (``pickle.loads`` copies everything out of
    the buffer), and only then publishes the new read offset; the producer reads the read offset
    to know how much space is free, and waits (sleeping 10 µs, doubling up to 1 ms, bounded by a
    timeout) while the ring is full. The consumer caches the offsets it owns; so does the
    producer, and it re-reads the read offset only when the space it last saw is not enough.

    Memory-ordering assumption. There are no explicit barriers (the stdlib has none). This is
    correct on x86-64, whose TSO model keeps stores in program order as seen by other cores and
    never reorders a load with an older load nor a store with an older load: the producer's data
    stores become visible before its store of the write offset, and the consumer's loads of the
    data cannot be satisfied before its load of the write offset. The counters are single aligned
    8-byte stores/loads (``memoryview`` item access copies them with a fixed-size 8-byte memcpy,
    which an optimising C compiler emits as one ``mov``; the mapping is page-aligned and the
    counters sit at bytes 0 and 64), and x86-64 performs those atomically; even a torn read would only show a value
    between the old and the new one, which at worst under-reports progress. The CPython side
    needs no more: each process has its own GIL, which orders nothing across processes, but every
    step here is a separate opaque C call (slice assignment, item store), so the C compiler cannot
    move the data copy past the offset store. On a weakly ordered CPU (ARM, POWER) this would
    need release/acquire barriers, which pure Python cannot issue: do not trust it there.

    The harness creates the segment before forking and the children inherit the mapping (no
    attach by name, so no resource-tracker registration in the children). :meth:`close` closes
    and unlinks it; the harness calls it in ``finally``.
    """

    def __init__(self, capacity: int) -> None:
        if sys.byteorder != "little":
            raise RuntimeError("ShmRing stores its offsets in native order and assumes little-endian")
        capacity = max(64, (int(capacity) + 7) & ~7)
        self.capacity = capacity
        self.shm = shared_memory.SharedMemory(create=True, size=RING_HEADER + capacity)
        self.name = self.shm.name
        hdr = self.shm.buf[:RING_HEADER].cast("Q")
        try:
            hdr[_W] = 0
            hdr[_R] = 0
        finally:
            hdr.release()

    def _views(self) -> Tuple[memoryview, memoryview]:
        buf = self.shm.buf
        return buf[:RING_HEADER].cast("Q"), buf[RING_HEADER:RING_HEADER + self.capacity]

    def writer(self, timeout_s: float = 60.0) -> "RingWriter":
        return RingWriter(self, timeout_s)

    def reader(self) -> "RingReader":
        return RingReader(self)

    def close(self) -> None:
        """Close and unlink the segment (unlink even if close fails)."""
        try:
            self.shm.close()
        finally:
            try:
                self.shm.unlink()
            except FileNotFoundError:
                pass


class RingWriter:
    """The producer end of a :class:`ShmRing` (one per ring, in one process)."""

    def __init__(self, ring: ShmRing, timeout_s: float) -> None:
        self.hdr, self.data = ring._views()
        self.cap = ring.capacity
        self.timeout_s = timeout_s
        self.w = self.hdr[_W]
        self.r = self.hdr[_R]  # cached; re-read only when the ring looks full
        self.full_waits = 0  # sleeps while the ring was full

    def put(self, payload: bytes) -> None:
        """Append one frame holding ``payload``; waits (bounded) while the ring is full."""
        self._frame(len(payload), payload)

    def end(self) -> None:
        """Append the END marker."""
        self._frame(END, b"")

    def _frame(self, code: int, payload: bytes) -> None:
        length = len(payload)
        if length > MAX_FRAME:
            raise ValueError(f"frame of {length} bytes is too large")
        size = _frame_size(length)
        cap = self.cap
        if size > cap // 2:
            raise ValueError(f"frame of {size} bytes exceeds half the ring ({cap} bytes): "
                             "give the ring more bytes")
        w = self.w
        pos = w % cap
        tail = cap - pos
        need = size if size <= tail else tail + size
        if cap - (w - self.r) < need:
            self._wait_for_space(need)
        data = self.data
        if size > tail:  # does not fit before the end: mark the rest unused, wrap to 0
            _LEN.pack_into(data, pos, SKIP)
            w += tail
            pos = 0
        _LEN.pack_into(data, pos, code)
        if length:
            data[pos + 4:pos + 4 + length] = payload
        w += size
        self.w = w
        self.hdr[_W] = w  # publish only after the frame is written (see ShmRing)

    def _wait_for_space(self, need: int) -> None:
        deadline = clock() + self.timeout_s
        delay = 1e-5
        hdr, cap, w = self.hdr, self.cap, self.w
        while True:
            self.r = r = hdr[_R]
            if cap - (w - r) >= need:
                return
            if clock() > deadline:
                raise TimeoutError(f"shm ring full for {self.timeout_s} s (consumer gone?)")
            self.full_waits += 1
            time.sleep(delay)
            delay = min(delay * 2, 1e-3)

    def release(self) -> None:
        self.hdr.release()
        self.data.release()


class RingReader:
    """The consumer end of a :class:`ShmRing` (one per ring, in one process)."""

    def __init__(self, ring: ShmRing) -> None:
        self.hdr, self.data = ring._views()
        self.cap = ring.capacity
        self.r = self.hdr[_R]
        self.ended = False

    def drain(self, on_frame: Callable[[memoryview], Any]) -> int:
        """Call ``on_frame(view)`` for every complete frame now in the ring; return how many.

        ``view`` is only valid during the call (the space is handed back right after it).
        Sets :attr:`ended` once the END marker is read.
        """
        hdr, data, cap = self.hdr, self.data, self.cap
        w = hdr[_W]
        r = self.r
        frames = 0
        unpack = _LEN.unpack_from
        while r < w:
            pos = r % cap
            code = unpack(data, pos)[0]
            if code == SKIP:
                r += cap - pos
                continue
            if code == END:
                r += _frame_size(0)
                self.ended = True
                break
            view = data[pos + 4:pos + 4 + code]
            try:
                on_frame(view)
            finally:
                view.release()
            r += _frame_size(code)
            hdr[_R] = r  # hand the space back after the payload was consumed
            frames += 1
        self.r = r
        hdr[_R] = r
        return frames

    def release(self) -> None:
        self.hdr.release()
        self.data.release()


# --------------------------------------------------------------------------------------------
# transports: set up in the harness, used by the forked children
# --------------------------------------------------------------------------------------------


class _Transport:
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


class QueueTransport(_Transport):
    name = "Queue"

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


class SimpleQueueTransport(_Transport):
    name = "SimpleQueue"

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


class PipeTransport(_Transport):
    name = "Pipe"

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
            ready = wait_connections(live, timeout=timeout_s)
            if not ready:
                raise TimeoutError(f"no message from any producer for {timeout_s} s")
            for conn in ready:
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


class ShmRingTransport(_Transport):
    name = "shm-ring"

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


TRANSPORT_CLASSES = {cls.name: cls for cls in
                     (QueueTransport, SimpleQueueTransport, PipeTransport, ShmRingTransport)}


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


def _producer_main(transport: _Transport, index: int, n: int, batch: Optional[int], start,
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


def _consumer_main(transport: _Transport, producers: int, batch: Optional[int], report,
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
            raise TransportBenchmarkFailed(
                f"{cell}: timed out waiting for '{stage}' from {sorted(pending.values())}")
        for conn in wait_connections(list(pending), timeout=min(remaining, 0.25)):
            label = pending.pop(conn)
            try:
                message = conn.recv()
            except (EOFError, OSError) as exc:
                raise TransportBenchmarkFailed(f"{cell}: {label} closed its report pipe ({exc!r})")
            if message.get("stage") == "error":
                raise TransportBenchmarkFailed(f"{cell}: {label} failed:\n{message['error']}")
            if message.get("stage") != stage:
                raise TransportBenchmarkFailed(f"{cell}: {label} sent {message!r}, expected '{stage}'")
            got[label] = message
        for conn, label in list(pending.items()):
            proc = procs[label]
            if proc.exitcode is not None and not conn.poll():
                raise TransportBenchmarkFailed(
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
    if transport not in TRANSPORT_CLASSES:
        raise ValueError(f"unknown transport {transport!r}; known: {', '.join(TRANSPORTS)}")
    ctx = ctx or multiprocessing.get_context("fork")
    expected = n * producers
    if timeout_s is None:
        timeout_s = 30.0 + 50e-6 * expected
    cell = f"{transport} batch={batch} producers={producers} n={n}"
    if transport == "shm-ring":
        ring_bytes = _ring_capacity(ring_bytes, batch, make_pool())
    plumbing = TRANSPORT_CLASSES[transport](ctx, producers, ring_bytes)
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
            raise TransportBenchmarkFailed(f"{cell}: " + "; ".join(problems))
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
        raise TransportBenchmarkFailed(
            f"{cell}: the consumer received {received} records, the producers sent {sent}; "
            f"expected exactly {expected}")
    e2e_s = consumer["t_end"] - t0
    if not e2e_s > 0:
        raise TransportBenchmarkFailed(f"{cell}: end-to-end time {e2e_s} s is not positive")
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


def run_transports(n: int, producers: Sequence[int] = (1, 2, 4),
                   batch_sizes: Sequence[int] = (64, 256), repeats: int = 1,
                   transports: Optional[Sequence[str]] = None, *,
                   ring_bytes: int = DEFAULT_RING_BYTES, timeout_s: Optional[float] = None,
                   progress: bool = False) -> List[Dict[str, Any]]:
    """Every (transport, batching, producers) cell ``repeats`` times, and the floors.

    Returns one dict per cell and repeat (``kind == "transport"``; see :func:`run_cell` for the
    keys: transport, batch (None = unbatched), producers, put_us, records_per_s,
    rss_producer_mib, rss_consumer_mib, received, expected, count_ok, ...) and one per floor and
    repeat (``kind == "floor"``). Repeats are interleaved: every cell once, then again. Raises
    :class:`TransportBenchmarkFailed` if any cell fails or any count is wrong.
    """
    transports = tuple(TRANSPORTS if transports is None else transports)
    for name in transports:
        if name not in TRANSPORT_CLASSES:
            raise ValueError(f"unknown transport {name!r}; known: {', '.join(TRANSPORTS)}")
    producers = tuple(int(p) for p in producers)
    batch_sizes = tuple(int(b) for b in batch_sizes)
    if n < 1 or repeats < 1 or not producers or min(producers) < 1 or \
            (batch_sizes and min(batch_sizes) < 1):
        raise ValueError("n, repeats, producers and batch sizes must be >= 1")
    ctx = multiprocessing.get_context("fork")
    modes: Tuple[Optional[int], ...] = (None, *batch_sizes)
    cells = [(t, b, p) for t in transports for b in modes for p in producers]
    results: List[Dict[str, Any]] = []
    for rep in range(repeats):
        for floor in measure_floors(n):
            results.append({**floor, "repeat": rep})
        for i, (transport, batch, procs) in enumerate(cells):
            if progress:
                sys.stderr.write(f"\r  repeat {rep + 1}/{repeats}  cell {i + 1}/{len(cells)}: "
                                 f"{transport} batch={batch} producers={procs}        ")
                sys.stderr.flush()
            row = run_cell(transport, batch, procs, n, ring_bytes=ring_bytes,
                           timeout_s=timeout_s, ctx=ctx)
            row["repeat"] = rep
            results.append(row)
    if progress:
        sys.stderr.write("\r" + " " * 90 + "\r")
        sys.stderr.flush()
    return results


# --------------------------------------------------------------------------------------------
# printing
# --------------------------------------------------------------------------------------------


def _num(value: float) -> str:
    if value >= 1e6:
        return f"{value / 1e6:.2f}M"
    if value >= 1e4:
        return f"{value / 1e3:.0f}k"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _spread(values: List[float]) -> str:
    if len(values) == 1:
        return _num(values[0])
    return f"{_num(statistics.median(values))} ({_num(min(values))}–{_num(max(values))})"


def format_table(results: List[Dict[str, Any]]) -> str:
    """The medians, with min–max over repeats in parentheses, of every cell; then the floors."""
    groups: Dict[Tuple[str, Optional[int], int], List[Dict[str, Any]]] = {}
    floors: Dict[str, List[float]] = {}
    for row in results:
        if row.get("kind") == "floor":
            floors.setdefault(row["floor"], []).append(row["us_per_record"])
        else:
            groups.setdefault((row["transport"], row["batch"], row["producers"]), []).append(row)
    headers = ("transport", "who pickles", "batch", "P", "put µs/record", "records/s",
               "RSS prod MiB", "RSS cons MiB", "count")
    lines_ = []
    for (transport, batch, procs), rows in groups.items():
        lines_.append([
            transport, rows[0]["who_pickles"], "-" if batch is None else str(batch), str(procs),
            _spread([r["put_us"] for r in rows]),
            _spread([r["records_per_s"] for r in rows]),
            _spread([r["rss_producer_mib"] for r in rows]),
            _spread([r["rss_consumer_mib"] for r in rows]),
            ("ok" if all(r["received"] == r["expected"] for r in rows) else "MISMATCH")
            + f" {rows[0]['expected']:,}",
        ])
    widths = [max([len(h)] + [len(c[i]) for c in lines_]) for i, h in enumerate(headers)]
    left = {0, 1}

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(widths[i]) if i in left else v.rjust(widths[i])
                         for i, v in enumerate(values)).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    previous = None
    for cells in lines_:
        if previous is not None and cells[0] != previous:
            out.append("")
        previous = cells[0]
        out.append(line(cells))
    repeats = max((len(rows) for rows in groups.values()), default=0)
    bases = [r["rss_fork_base_mib"] for rows in groups.values() for r in rows]
    out.append("")
    if floors:
        out.append("floors (same run, µs/record): " + "; ".join(
            f"{name} {_spread(values)}" for name, values in floors.items()))
    spread = f"median (min–max) over {repeats} repeats" if repeats > 1 else "one run per cell"
    out.append(
        f"values: {spread}. put: producer loop time / records (copy, batching, caller-side "
        "pickling, put/send, back-pressure), median of the producers. records/s: start signal "
        "-> consumer has unpickled every record.")
    if bases:
        out.append(
            "RSS: ru_maxrss of each child (largest producer); children are forked, so pages "
            "still shared with the harness count too (harness RSS at fork "
            f"{_num(statistics.median(bases))} MiB). count: received == expected records.")
    return "\n".join(out)


def _int_list(text: str) -> Tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of integers: {text!r}")
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"every value must be >= 1: {text!r}")
    return values


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.transports",
        description="Move dicts of 10 floats from producer processes to one consumer over "
        "multiprocessing Queue, SimpleQueue, Pipe and a shared-memory ring; unbatched and "
        "batched, 1/2/4 producers.")
    parser.add_argument("--n", type=int, default=100_000,
                        help="records per producer (default 100000)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats per cell (default 3)")
    parser.add_argument("--producers", type=_int_list, default=(1, 2, 4),
                        help="comma list of producer counts (default 1,2,4)")
    parser.add_argument("--batch-sizes", type=_int_list, default=(64, 256),
                        help="comma list of batch sizes (default 64,256); unbatched always runs")
    parser.add_argument("--transports", default=",".join(TRANSPORTS),
                        help=f"comma list among {','.join(TRANSPORTS)} (default all)")
    parser.add_argument("--quick", action="store_true", help="n=2000, repeats=1")
    parser.add_argument("--json", metavar="PATH", help="also write every result as JSON to PATH")
    args = parser.parse_args(argv)
    n, repeats = (2000, 1) if args.quick else (args.n, args.repeats)
    if n < 1 or repeats < 1:
        parser.error("--n and --repeats must be >= 1")
    if not args.producers:
        parser.error("--producers: give at least one count")
    transports = tuple(t.strip() for t in args.transports.split(",") if t.strip())
    unknown = [t for t in transports if t not in TRANSPORT_CLASSES]
    if unknown or not transports:
        parser.error(f"--transports: unknown {unknown}; known: {', '.join(TRANSPORTS)}")
    started = perf()
    try:
        results = run_transports(n, args.producers, args.batch_sizes, repeats, transports,
                                 progress=sys.stderr.isatty())
    except TransportBenchmarkFailed as exc:
        sys.stderr.write(f"\nTRANSPORT BENCHMARK FAILED: {exc}\n")
        return 1
    wall = perf() - started
    print(f"transport benchmark: dicts of {int(os.environ.get('MPLOGGER_BENCH_KEYS', KEYS))} floats, n={n:,} records per producer, "
          f"{repeats} repeat(s), fork start method")
    print(f"python {platform.python_version()} on {platform.system()} {platform.machine()}, "
          f"{os.cpu_count()} CPUs; pickle protocol {HIGHEST} where the caller pickles")
    print()
    print(format_table(results))
    print(f"(wall time {wall:.1f} s)")
    if args.json:
        write_results(args.json, {"n": n, "repeats": repeats, "producers": list(args.producers),
                                  "batch_sizes": list(args.batch_sizes), "transports": list(transports),
                                  "wall_s": wall, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
