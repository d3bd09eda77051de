"""The byte channels between processes, with every wait bounded (every process: both ends).

Messages travel as frames: a 4-byte big-endian length (or -1 and an 8-byte length) and a pickle,
the framing of ``multiprocessing.Connection``.

- :class:`QueueWriter` writes into a ``multiprocessing.Queue`` synchronously. ``Queue.put`` only
  appends to a buffer that a feeder thread writes later; behind a busy loop that thread gets the
  GIL rarely, and what it holds dies with a SIGKILL of the process. Here, once ``put`` returns,
  the message is in the pipe, where it survives the writer's death. It waits for room (the
  queue's bound, then the pipe) in bounded slices and gives up when the reader is gone.
- :class:`QueueReader` reads one. ``Queue.get()`` blocks until a whole message has arrived, so
  a writer killed in the middle of one hangs the reader forever. This reader takes only the
  bytes already in the pipe and keeps a partial message until it is complete.
- :class:`FifoReader` / :class:`FifoWriter`: a named pipe that any process can open by path, so
  child processes (started by any method, at any time) can reach the manager without sockets.
  Each frame is written with one ``write`` of at most ``PIPE_BUF`` bytes, which the kernel makes
  atomic: writers need no lock, and a writer killed at any moment leaves no partial frame. A
  larger message is written to a file next to the pipe and announced by a small frame.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import signal
import stat
import struct
import tempfile
import threading
import time
from multiprocessing.queues import Queue
from multiprocessing.reduction import ForkingPickler
from typing import Any, Callable, Iterator, List, Optional

from mplogger._ipc._mp_private import queue_pipe, queue_semaphore

__all__ = [
    "FrameReader", "QueueReader", "QueueWriter", "FifoReader", "FifoWriter", "Spilled",
    "sigint_deferred", "remove_fifo_folder",
]

_CHUNK = 1 << 20
_PIPE_SIZE = 1 << 18
_F_SETPIPE_SZ = 1031  # Linux: raise a pipe's capacity
_F_GETPIPE_SZ = 1032
_SLICE_S = 0.2
_HEADER = struct.Struct("!i")
_LONG_HEADER = struct.Struct("!Q")
PIPE_BUF = getattr(select, "PIPE_BUF", 512)


def frame(message: Any) -> bytes:
    data = ForkingPickler.dumps(message)
    size = len(data)
    if size > 0x7FFFFFFF:
        return _HEADER.pack(-1) + _LONG_HEADER.pack(size) + bytes(data)
    return _HEADER.pack(size) + bytes(data)


def _raise_pipe_size(fd: int) -> None:
    try:
        import fcntl

        fcntl.fcntl(fd, _F_SETPIPE_SZ, _PIPE_SIZE)
    except (ImportError, OSError):
        pass


def _room(fd: int) -> Optional[int]:
    """Free bytes in the pipe behind ``fd`` (Linux), or None where that cannot be told."""
    try:
        import fcntl
        import termios

        capacity = fcntl.fcntl(fd, _F_GETPIPE_SZ)
        unread = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
        return capacity - unread
    except (ImportError, OSError):
        return None


def _pipe_capacity(fd: int) -> Optional[int]:
    try:
        import fcntl

        return fcntl.fcntl(fd, _F_GETPIPE_SZ)
    except (ImportError, OSError):
        return None


def _wait_writable(fd: int) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return bool(poller.poll(_SLICE_S * 1000))


@contextlib.contextmanager
def sigint_deferred() -> Iterator[None]:
    """Hold Ctrl-C back until the block is done, then deliver it.

    Python raises KeyboardInterrupt only in the main thread, between any two bytecodes: in the
    middle of writing a frame it would leave half a message in the pipe and corrupt every one
    after it, and between taking a batch and sending it, the batch would be lost.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if not callable(previous):
        yield
        return
    caught: list = []
    signal.signal(signal.SIGINT, lambda signum, frame: caught.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            previous(signal.SIGINT, caught[0])


class FrameReader:
    """Complete frames from a non-blocking fd, never waiting for the rest of a partial one."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        os.set_blocking(fd, False)  # a read takes what is there, even after a false wake-up
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

    def _taken(self) -> None:
        """Called once per message handed out."""

    def _take_messages(self) -> List[Any]:
        messages = []
        buf = self._buffer
        pos = 0
        end = len(buf)
        while end - pos >= 4:
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
            self._taken()
            pos = start + size
        if pos:
            del buf[:pos]
        return messages


class QueueReader(FrameReader):
    """The reading end of one ``multiprocessing.Queue``, for exactly one reading process."""

    def __init__(self, queue: Queue) -> None:
        self._sem = queue_semaphore(queue)
        super().__init__(queue_pipe(queue)[0].fileno())

    def _taken(self) -> None:
        self._sem.release()


class QueueWriter:
    """The writing end of one ``multiprocessing.Queue``, writing synchronously.

    Thread-safe within one process. ``ready()`` is called between bounded waits and raises
    (e.g. "the reader died") to give up; ``timeout`` bounds the whole wait for room.
    """

    def __init__(self, queue: Queue) -> None:
        self._sem = queue_semaphore(queue)
        self._fd = queue_pipe(queue)[1].fileno()
        os.set_blocking(self._fd, False)
        _raise_pipe_size(self._fd)
        self._capacity = _pipe_capacity(self._fd)
        self._lock = threading.Lock()

    def put(self, message: Any, ready: Callable[[], None], timeout: float,
            on_written: Optional[Callable[[], None]] = None) -> None:
        """Write one message; block (bounded) while the queue or the pipe is full.

        Waiting for room can be interrupted (Ctrl-C): nothing is written yet. Once the first
        byte is written, the interrupt is held back until the whole frame is in the pipe and
        ``on_written`` (e.g. dropping the sent rows from a buffer) has run.
        """
        data = frame(message)
        deadline = time.monotonic() + timeout
        while not self._sem.acquire(True, _SLICE_S):
            _check(ready, deadline, timeout)
        with self._lock:
            self._wait_for_room(len(data), ready, deadline, timeout)
            with sigint_deferred():
                self._write(data, ready, deadline, timeout)
                if on_written is not None:
                    on_written()

    def _wait_for_room(self, size: int, ready: Callable[[], None], deadline: float, timeout: float) -> None:
        """Wait, interruptibly, until the pipe can take the whole frame (or is empty, for a
        frame larger than the pipe): then the write that follows does not wait half-way."""
        capacity = self._capacity
        if capacity is None:
            while not _wait_writable(self._fd):
                _check(ready, deadline, timeout)
            return
        need = min(size, capacity)
        pause = 0.0005
        while True:
            room = _room(self._fd)
            if room is None or room >= need:
                return
            _check(ready, deadline, timeout)
            time.sleep(pause)  # back-pressure: the store is behind; poll the pipe's fill level
            pause = min(pause * 2, 0.02)

    def _write(self, data: bytes, ready: Callable[[], None], deadline: float, timeout: float) -> None:
        view = memoryview(data)
        while view:
            try:
                written = os.write(self._fd, view)
            except BlockingIOError:
                written = 0
            view = view[written:]
            if view and not _wait_writable(self._fd):
                _check(ready, deadline, timeout)


def _check(ready: Callable[[], None], deadline: float, timeout: float) -> None:
    ready()
    if time.monotonic() > deadline:
        raise TimeoutError(f"the reader took nothing for {timeout:g} s")


class Spilled:
    """A frame standing for a message too large for one atomic write: it is in ``path``."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (Spilled, (self.path,))


class FifoReader(FrameReader):
    """The manager's end of the named pipe that child processes write to."""

    def __init__(self) -> None:
        remove_stale_fifo_folders()
        self.folder = tempfile.mkdtemp(prefix=FIFO_PREFIX)
        self.path = os.path.join(self.folder, "in.fifo")
        os.mkfifo(self.path, 0o600)
        fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        # A writer of our own keeps the pipe from reporting end-of-file between children.
        self._keepalive = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
        _raise_pipe_size(fd)
        super().__init__(fd)

    def read_available(self) -> List[Any]:
        messages = super().read_available()
        for index, message in enumerate(messages):
            if type(message) is Spilled:
                try:
                    with open(message.path, "rb") as spilled:
                        messages[index] = ForkingPickler.loads(spilled.read())
                finally:
                    os.unlink(message.path)
        return messages

    def marker(self, name: str) -> str:
        """A path in the pipe's folder, for flags that children check (e.g. a finished run)."""
        return os.path.join(self.folder, name)

    def close(self) -> None:
        for fd in (self._fd, self._keepalive):
            try:
                os.close(fd)
            except OSError:
                pass
        remove_fifo_folder(self.folder)


FIFO_PREFIX = "mplogger-"
_STALE_AFTER_S = 60.0


def remove_fifo_folder(folder: str) -> None:
    """Remove a manager's pipe folder (the pipe, finished markers, spilled messages)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        try:
            os.unlink(os.path.join(folder, name))
        except OSError:
            pass
    try:
        os.rmdir(folder)
    except OSError:
        pass


def remove_stale_fifo_folders() -> None:
    """Remove the pipe folders of managers that are gone (killed before they could clean up).

    A folder is stale when its pipe has no reader: opening it to write fails with ENXIO. That
    tells a dead manager from a live one whatever its pid, in any pid namespace.
    """
    base = tempfile.gettempdir()
    try:
        names = [name for name in os.listdir(base) if name.startswith(FIFO_PREFIX)]
    except OSError:
        return
    uid = os.getuid()
    for name in names:
        folder = os.path.join(base, name)
        pipe = os.path.join(folder, "in.fifo")
        try:
            info = os.lstat(folder)
            if info.st_uid != uid or time.time() - info.st_mtime < _STALE_AFTER_S:
                continue  # a manager that is starting has made its pipe but not opened it yet
            if not stat.S_ISFIFO(os.lstat(pipe).st_mode):
                continue
            fd = os.open(pipe, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno == errno.ENXIO:
                remove_fifo_folder(folder)
            continue
        os.close(fd)


class FifoWriter:
    """A child process's end of the manager's named pipe: atomic, lock-free, bounded writes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: Optional[int] = None

    def put(self, message: Any, ready: Callable[[], None], timeout: float) -> None:
        """Write one message; raise ``BrokenPipeError`` when the manager is gone."""
        if self._fd is None:
            try:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except (FileNotFoundError, OSError) as exc:  # ENXIO: no reader
                raise BrokenPipeError(f"the manager's pipe {self.path} is gone: {exc}") from None
        data = frame(message)
        if len(data) > PIPE_BUF:
            data = self._spill(data)
        deadline = time.monotonic() + timeout
        while True:
            try:
                os.write(self._fd, data)  # <= PIPE_BUF: all of it or nothing
                return
            except BlockingIOError:
                if not _wait_writable(self._fd):
                    _check(ready, deadline, timeout)

    def _spill(self, data: bytes) -> bytes:
        folder = os.path.dirname(self.path)
        fd, path = tempfile.mkstemp(prefix="spill-", dir=folder)
        with os.fdopen(fd, "wb") as out:
            out.write(memoryview(data)[self._header_size(data):])
        return frame(Spilled(path))

    @staticmethod
    def _header_size(data: bytes) -> int:
        return 12 if _HEADER.unpack_from(data, 0)[0] == -1 else 4

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
