"""The progress line long CLI operations draw on a terminal (and never anywhere else)."""

from __future__ import annotations

import io
from types import SimpleNamespace

from mplogger._readers import _progress
from mplogger._readers._progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_sees_a_live_line_that_ends_with_the_total():
    screen = Terminal()
    with Progress("export", total=200, stream=screen, interval=0) as progress:
        for _ in range(200):
            progress(1)
    frames = screen.getvalue().split("\r")[1:]
    assert frames[0].startswith("export: 1/200 (0%)")
    assert frames[-1] == "export: 200/200 (100%)\x1b[K\n"
    assert len(frames) == 201


def test_without_a_total_it_counts():
    screen = Terminal()
    with Progress("rows", stream=screen, interval=0) as progress:
        progress(5)
    assert screen.getvalue().endswith("\rrows: 5\x1b[K\n")


def test_redraws_are_rate_limited():
    screen = Terminal()
    with Progress("rows", total=10_000, stream=screen, interval=3600) as progress:
        for _ in range(10_000):
            progress(1)
    assert screen.getvalue().count("\r") == 2  # the first draw, and the final one


def test_the_first_draw_does_not_wait_on_a_freshly_booted_machine(monkeypatch):
    """monotonic() counts from boot: a few ms after boot it is still below the interval."""
    clock = [0.01]
    monkeypatch.setattr(_progress, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    screen = Terminal()
    progress = Progress("rows", total=100, stream=screen, interval=1.0)
    progress(1)
    assert screen.getvalue() == "\rrows: 1/100 (1%)\x1b[K"
    clock[0] = 0.5
    progress(1)
    assert screen.getvalue().count("\r") == 1  # within the interval: no redraw
    clock[0] = 1.01
    progress(1)
    assert screen.getvalue().endswith("\rrows: 3/100 (3%)\x1b[K")


def test_a_pipe_or_file_gets_nothing():
    quiet = io.StringIO()
    with Progress("rows", total=3, stream=quiet) as progress:
        progress(3)
    assert quiet.getvalue() == ""
