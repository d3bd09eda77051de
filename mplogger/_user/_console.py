"""Capturing what the user process prints into the run, while it still reaches the terminal.

``console="wrap"`` (the default) puts a tee in place of ``sys.stdout``/``sys.stderr``: print,
``sys.stdout.write`` and the ``logging`` module are captured. ``console="redirect"`` captures at
the file-descriptor level (fds 1 and 2), so output written by C code is captured too; it is
opt-in, because a C extension writing a lot while holding the GIL could fill the pipe before
the reading thread gets to run. ``console="off"`` captures nothing.

Text becomes lines: a carriage return starts the line over (a progress bar's redraws are kept
as their final state), a newline ends it.
"""

from __future__ import annotations

import codecs
import os
import select
import sys
import threading
import time
from typing import Any, Callable, List, Optional, Tuple


__all__ = ["LineSplitter", "Capture", "capturing"]

_active: List["Capture"] = []  # inherited by forked children, whose output it already captures


def capturing() -> bool:
    """True while a capture (this process's, or one inherited through fork) is in place."""
    return bool(_active)



MAX_LINE = 1 << 20  # characters of one line kept; a longer line is cut with a note


class LineSplitter:
    """Written text in, finished lines out; ``\\r`` makes the next text replace the line."""

    def __init__(self) -> None:
        self.parts: List[str] = []  # the unfinished line, joined once it ends (no quadratic copies)
        self.size = 0
        self.restart = False

    def _add(self, part: str) -> None:
        if self.restart:
            self.parts, self.size, self.restart = [], 0, False
        if self.size < MAX_LINE:
            self.parts.append(part[: MAX_LINE - self.size])
        self.size += len(part)

    def _take(self) -> str:
        line = "".join(self.parts)
        if self.size > MAX_LINE:
            line += f" [mplogger: line cut, {self.size - MAX_LINE} more characters]"
        self.parts, self.size, self.restart = [], 0, False
        return line

    def feed(self, text: str) -> List[str]:
        lines = []
        for index, piece in enumerate(text.split("\n")):
            if index:
                lines.append(self._take())
            for part_index, part in enumerate(piece.split("\r")):
                if part_index:
                    self.restart = True
                if part:
                    self._add(part)
        return lines

    def rest(self) -> Optional[str]:
        """The unfinished last line, if any (at the end of capture)."""
        line = self._take()
        return line or None


class _WrappedWrite:
    """Wraps the ``write`` of a stream object itself (``sys.stdout``/``sys.stderr``), so that
    every holder of that object is captured too: ``print``, and ``logging`` handlers created
    before the run started. Output still goes where it went."""

    def __init__(self, stream: Any, name: str, capture: "Capture") -> None:
        self.stream = stream
        self.name = name
        self.capture = capture
        self.splitter = LineSplitter()
        self.lock = threading.Lock()

        def write(text: Any) -> Any:
            written = self.previous(text)
            if isinstance(text, str) and text:
                try:
                    with self.lock:
                        lines = self.splitter.feed(text)
                    if lines:
                        self.capture.emit(self.name, lines)
                except Exception:  # capture must never break the program's output
                    pass
            return written

        self.function = write
        self.install()

    def installed(self) -> bool:
        return getattr(self.stream, "__dict__", {}).get("write") is self.function

    def install(self) -> None:
        """Put the wrapper in place (again: IPython 9 restores its own ``write`` after each cell)."""
        if self.installed():
            return
        self.had_own = "write" in getattr(self.stream, "__dict__", {})
        self.previous = self.stream.write
        self.stream.write = self.function  # raises where a stream takes no attributes

    def end(self) -> None:
        rest = self.splitter.rest()
        if rest is not None:
            self.capture.emit(self.name, [rest])
        if not self.installed():  # someone else put their own write back since: leave it
            return
        try:
            if self.had_own:
                self.stream.write = self.previous
            else:
                del self.stream.write
        except AttributeError:
            pass


class _FdPump:
    """fd-level capture of one of fds 1/2: a pipe in its place, a thread copying to the original."""

    def __init__(self, fd: int, stream: str, capture: "Capture") -> None:
        self.fd = fd
        self.saved = os.dup(fd)
        read_end, write_end = os.pipe()
        try:
            import fcntl

            fcntl.fcntl(write_end, 1031, 1 << 20)  # a larger pipe: fewer stalls for bursts of output
        except (ImportError, OSError):
            pass
        os.dup2(write_end, fd)
        os.close(write_end)
        self.read_end = read_end
        self.stream = stream
        self.capture = capture
        self.splitter = LineSplitter()
        self.forwarding = True
        self.thread = threading.Thread(target=self._pump, name=f"mplogger-console-{stream}", daemon=True)
        self.thread.start()

    def _forward(self, data: bytes) -> None:
        """Copy to the original fd; if it fails (reader gone, EPIPE), stop forwarding but keep
        draining, so the program's own writes never block on a pipe nobody empties."""
        view = memoryview(data)
        while view and self.forwarding:
            try:
                view = view[os.write(self.saved, view):]
            except BlockingIOError:
                select.select([], [self.saved], [], 0.1)
            except OSError:
                self.forwarding = False

    def _pump(self) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")("replace")  # characters split across reads
        while True:
            try:
                data = os.read(self.read_end, 65536)
            except OSError:
                break
            final = not data
            if data:
                self._forward(data)
            try:
                lines = self.splitter.feed(decoder.decode(data, final))
                if lines:
                    self.capture.emit(self.stream, lines)
            except Exception:
                pass
            if final:
                break
        rest = self.splitter.rest()
        if rest is not None:
            self.capture.emit(self.stream, [rest])
        for fd in (self.read_end, self.saved):  # only the pump closes them, once it is done
            try:
                os.close(fd)
            except OSError:
                pass

    def stop(self) -> None:
        """Put the original fd back; the pump drains what is left and closes its own fds.

        A child process still holding the pipe keeps the pump alive: it is left to finish
        on its own (its fds are never closed under it, so they cannot be reused meanwhile).
        """
        os.dup2(self.saved, self.fd)
        self.thread.join(2.0)


class Capture:
    """The process's console capture; lines go to ``sink(target, stream, lines)``."""

    def __init__(self, mode: str, sink: Callable[[Any, str, List[Tuple[float, str]]], None]) -> None:
        self.mode = mode
        self.sink = sink
        self.target: Any = None
        _active.append(self)
        self._wrapped: List[_WrappedWrite] = []
        self._pumps: List[_FdPump] = []
        if mode == "wrap":
            for stream, name in ((sys.stdout, "stdout"), (sys.stderr, "stderr")):
                if stream is None or any(w.stream is stream for w in self._wrapped):
                    continue  # sys.stdout = sys.stderr: one wrapper, or every line twice
                try:
                    self._wrapped.append(_WrappedWrite(stream, name, self))
                except (AttributeError, TypeError):
                    pass
        elif mode == "redirect":
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except Exception:
                    pass
            self._pumps = [_FdPump(1, "stdout", self), _FdPump(2, "stderr", self)]

    def reinstall(self) -> None:
        """Make sure the wrappers are in place (called before every notebook cell)."""
        for wrapped in self._wrapped:
            try:
                wrapped.install()
            except (AttributeError, TypeError):
                pass

    def emit(self, stream: str, lines: List[str]) -> None:
        now = time.time()
        self.sink(self.target, stream, [(now, line) for line in lines])

    def stop(self) -> None:
        """Put everything back as it was; the last unfinished lines are kept."""
        if self in _active:
            _active.remove(self)
        for wrapped in self._wrapped:
            wrapped.end()
        self._wrapped = []
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        for pump in self._pumps:
            pump.stop()
        self._pumps = []
