"""Exceptions raised by mplogger (every process): the classes, their notes, and how a process exit is named.

How an exception travels back from another process is :mod:`mplogger._ipc._remote`.
"""

from __future__ import annotations

import signal
from typing import Optional, Type, TypeVar

_Reply = TypeVar("_Reply")

__all__ = [
    "Error",
    "UsageError",
    "ConfigError",
    "NotInMplogger",
    "ManagerError",
    "RunError",
    "StoreGone",
    "describe_exit",
    "add_note",
    "describe",
]


class Error(Exception):
    """Base class of every error mplogger raises."""


class UsageError(Error):
    """The library was called in a way it cannot serve (e.g. ``log()`` before ``init()``)."""


class ConfigError(Error, ValueError):
    """A config key already set would change without ``allow_val_change`` (wandb's ConfigError)."""


class NotInMplogger(Error, NotImplementedError):
    """A wandb feature that mplogger does not have (artifacts, sweeps, some media): named, not hidden."""

    def __init__(self, feature: str, hint: str = "") -> None:
        super().__init__(f"{feature} is not available in mplogger (it logs locally: metrics, config, summary, "
                         f"Table, Image, Histogram, console and system metrics){'; ' + hint if hint else ''}")
        self.feature = feature


class ManagerError(Error):
    """The manager process (or its pool) is gone or did not answer in time."""


class RunError(Error):
    """A run's records could not be stored; the cause holds the remote traceback."""


class StoreGone(RunError):
    """The store's database file was deleted or replaced while a worker was writing to it."""


def add_note(exc: BaseException, note: str) -> BaseException:
    """Attach what a failure cost (PEP 678 notes, also on Python 3.10) and return ``exc``."""
    if note:
        exc.__notes__ = [*getattr(exc, "__notes__", ()), note]  # type: ignore[attr-defined]
    return exc


def describe(exc: BaseException) -> str:
    """``Type: message`` with the exception's notes, for an error raised in the user process."""
    notes = "".join(f"; {note}" for note in getattr(exc, "__notes__", ()) if isinstance(note, str))
    return f"{type(exc).__name__}: {exc}{notes}"


def describe_exit(exitcode: Optional[int]) -> str:
    """Name a process's exit the way a person reads it: ``SIGKILL(-9)`` or ``exit code 3``."""
    if exitcode is None:
        return "still running"
    if exitcode < 0:
        try:
            return f"{signal.Signals(-exitcode).name}({exitcode})"
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"


def expect(reply: object, kind: Type[_Reply], what: str) -> _Reply:
    """``reply`` if it is a ``kind``; else a ManagerError naming what was expected and what came.

    A real check, not an ``assert``: it still holds under ``python -O``.
    """
    if not isinstance(reply, kind):
        raise ManagerError(
            f"mplogger protocol error: {what}: expected a {kind.__name__} reply, got {type(reply).__name__} {reply!r:.200}"
        )
    return reply
