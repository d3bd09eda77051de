"""Both ends of a ``multiprocessing.Queue`` with every wait bounded.

Writing: ``Queue.put`` only appends to a buffer that a feeder thread pickles and writes later;
behind a busy loop that thread gets the GIL rarely, and whatever it holds dies with a SIGKILL of
the process. :class:`QueueWriter` pickles and writes in the caller instead, so once ``put``
returns the message is in the pipe, where it survives the writer's death. It waits for room in
the pipe (back-pressure) in bounded slices and gives up when the reader is gone.

Reading: ``Queue.get()`` reads a length header and then blocks until the whole message has
arrived.
``Queue.get()`` reads a length header and then blocks until the whole message has arrived. A
writer killed with SIGKILL in the middle of a large message leaves only part of it in the pipe,
and a reader blocked on the rest waits forever. :class:`QueueReader` reads only the bytes that are
already in the pipe, hands out complete messages, and keeps a partial one until it is complete,
so every wait in mplogger can be bounded with ``multiprocessing.connection.wait``.

The queues themselves stay ordinary ``multiprocessing.Queue`` objects; the writers use ``put``.
"""

from __future__ import annotations

import os
import select
import struct
import threading
import time
from multiprocessing.queues import Queue
from typing import Any, Callable, List

from multiprocessing.reduction import ForkingPickler

__all__ = ["QueueReader", "QueueWriter"]

_CHUNK = 1 << 20
_PIPE_SIZE = 1 << 20
_F_SETPIPE_SZ = 1031  # Linux: raise a pipe's capacity
_SLICE_S = 0.2
_HEADER = struct.Struct("!i")
_LONG_HEADER = struct.Struct("!Q")


class QueueReader:
    """The reading end of one ``multiprocessing.Queue``, for exactly one reading process."""

    def __init__(self, queue: Queue) -> None:
        self._queue = queue
        self._conn = queue._reader  # type: ignore[attr-defined]
        self._sem = queue._sem  # type: ignore[attr-defined]
        self._fd = self._conn.fileno()
        os.set_blocking(self._fd, False)  # a read takes what is there, even after a false wake-up
        self._buffer = bytearray()
        self.eof = False

    def fileno(self) -> int:
        """Waitable with ``multiprocessing.connection.wait`` and ``select``."""
        return self._fd

    def read_available(self) -> List[Any]:
        """Every complete message now in the pipe (never blocks)."""
        try:
            data = os.read(self._fd, _CHUNK)
        except BlockingIOError:
            data = None
        if data == b"":
            self.eof = True
        elif data:
            self._buffer += data
        return self._take_messages()

    def has_partial(self) -> bool:
        """True if part of a message has arrived and the rest has not."""
        return bool(self._buffer)

    def _take_messages(self) -> List[Any]:
        messages = []
        buf = self._buffer
        pos = 0
        end = len(buf)
        while True:
            if end - pos < 4:
                break
            (size,) = _HEADER.unpack_from(buf, pos)
            start = pos + 4
            if size == -1:
                if end - pos < 12:
                    break
                (size,) = _LONG_HEADER.unpack_from(buf, start)
                start += 8
            if end - start < size:
                break
            messages.append(ForkingPickler.loads(bytes(buf[start : start + size])))
            self._sem.release()
            pos = start + size
        if pos:
            del buf[:pos]
        return messages


def _frame(message: Any) -> bytes:
    data = ForkingPickler.dumps(message)
    size = len(data)
    if size > 0x7FFFFFFF:
        return _HEADER.pack(-1) + _LONG_HEADER.pack(size) + bytes(data)
    return _HEADER.pack(size) + bytes(data)


class QueueWriter:
    """The writing end of one ``multiprocessing.Queue``, writing synchronously.

    Thread-safe within one process. ``ready()`` is called between bounded waits and raises
    (e.g. "the reader died") to give up; ``timeout`` bounds the whole wait for room.
    """

    def __init__(self, queue: Queue) -> None:
        self._sem = queue._sem  # type: ignore[attr-defined]
        self._fd = queue._writer.fileno()  # type: ignore[attr-defined]
        os.set_blocking(self._fd, False)
        try:
            import fcntl

            fcntl.fcntl(self._fd, _F_SETPIPE_SZ, _PIPE_SIZE)
        except (ImportError, OSError):
            pass
        self._lock = threading.Lock()

    def put(self, message: Any, ready: Callable[[], None], timeout: float) -> None:
        """Write one message; block (bounded) while the queue or the pipe is full."""
        frame = _frame(message)
        deadline = time.monotonic() + timeout
        while not self._sem.acquire(True, _SLICE_S):
            self._check(ready, deadline, timeout)
        with self._lock:
            view = memoryview(frame)
            while view:
                try:
                    written = os.write(self._fd, view)
                except BlockingIOError:
                    written = 0
                view = view[written:]
                if view:
                    poller = select.poll()
                    poller.register(self._fd, select.POLLOUT)
                    if not poller.poll(_SLICE_S * 1000):
                        self._check(ready, deadline, timeout)

    @staticmethod
    def _check(ready: Callable[[], None], deadline: float, timeout: float) -> None:
        ready()
        if time.monotonic() > deadline:
            raise TimeoutError(f"the queue's reader took nothing for {timeout:g} s")
