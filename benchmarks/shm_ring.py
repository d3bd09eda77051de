"""A single-producer/single-consumer byte ring in shared memory (x86-64 only): the ``shm-ring``
transport of :mod:`benchmarks.transports`."""

from __future__ import annotations

import struct
import sys
import time
from multiprocessing import shared_memory
from typing import Any, Callable, Tuple

clock = time.monotonic

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

