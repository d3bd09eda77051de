"""Reading a ``multiprocessing.Queue`` without ever blocking on a half-written message.

``Queue.get()`` reads a length header and then blocks until the whole message has arrived. A
writer killed with SIGKILL in the middle of a large message leaves only part of it in the pipe,
and a reader blocked on the rest waits forever. :class:`QueueReader` reads only the bytes that are
already in the pipe, hands out complete messages, and keeps a partial one until it is complete,
so every wait in mplogger can be bounded with ``multiprocessing.connection.wait``.

The queues themselves stay ordinary ``multiprocessing.Queue`` objects; the writers use ``put``.
"""

from __future__ import annotations

import os
import struct
from multiprocessing.queues import Queue
from typing import Any, List

from multiprocessing.reduction import ForkingPickler

__all__ = ["QueueReader"]

_CHUNK = 1 << 20
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
