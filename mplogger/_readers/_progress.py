"""Progress of long operations (exports, reports) on stderr, for the CLI.

Library functions take ``progress``: a callable told how many more rows are done. The CLI passes
:class:`Progress`, which keeps one live line on a terminal and prints nothing when stderr is not
one (logs and pipes stay clean).
"""

from __future__ import annotations

import sys
import time
from typing import IO, Callable, Optional

__all__ = ["Progress", "ProgressCallback"]

ProgressCallback = Callable[[int], None]


class Progress:
    """A live ``label: done/total (pct)`` line, redrawn at most every ``interval`` seconds."""

    def __init__(self, label: str, total: Optional[int] = None, stream: Optional[IO[str]] = None,
                 enabled: Optional[bool] = None, interval: float = 0.1) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.interval = interval
        self._drawn_at: Optional[float] = None  # monotonic() counts from boot: 0.0 would delay the first draw
        self._drawn = False

    def __call__(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if self.enabled and (self._drawn_at is None or now - self._drawn_at >= self.interval):
            self._drawn_at = now
            self._draw()

    def _draw(self) -> None:
        if self.total:
            text = f"{self.label}: {self.done}/{self.total} ({100 * self.done // self.total}%)"
        else:
            text = f"{self.label}: {self.done}"
        self.stream.write("\r" + text + "\x1b[K")
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        """Draw the final count and end the line (only if anything was drawn)."""
        if self.enabled and self._drawn:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
