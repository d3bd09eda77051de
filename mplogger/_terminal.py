"""Messages to the terminal, as wandb's ``termlog``/``termwarn``/``termerror``."""

from __future__ import annotations

import sys
from typing import Set

__all__ = ["termlog", "termwarn", "termerror", "notice_once"]

_seen: Set[str] = set()


def _write(prefix: str, string: str, newline: bool, repeat: bool, show_prefix: bool) -> None:
    if not repeat:
        if string in _seen:
            return
        _seen.add(string)
    text = "\n".join(f"mplogger: {prefix}{line}" if show_prefix else line for line in string.split("\n"))
    sys.stderr.write(text + ("\n" if newline else ""))
    sys.stderr.flush()


def termlog(string: str = "", newline: bool = True, repeat: bool = True, prefix: bool = True) -> None:
    """Print a message from mplogger to stderr (``repeat=False``: only the first time)."""
    _write("", string, newline, repeat, prefix)


def termwarn(string: str, newline: bool = True, repeat: bool = True, prefix: bool = True) -> None:
    """Print a warning to stderr."""
    _write("WARNING ", string, newline, repeat, prefix)


def termerror(string: str, newline: bool = True, repeat: bool = True, prefix: bool = True) -> None:
    """Print an error to stderr."""
    _write("ERROR ", string, newline, repeat, prefix)


def notice_once(string: str) -> None:
    """A one-time notice, e.g. for an accepted wandb call that does nothing here."""
    termlog(string, repeat=False)
