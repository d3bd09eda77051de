"""Messages to the terminal, as wandb's ``termlog``/``termwarn``/``termerror``, and :func:`printable`
(every process).

Text read from a store (names, keys, ids, file names) may hold terminal escape sequences: it goes
through :func:`printable` before it is printed.
"""

from __future__ import annotations

import sys
from typing import Set

__all__ = ["termlog", "termwarn", "termerror", "notice_once", "printable", "CONTROL"]

_seen: Set[str] = set()

_BIDI = (0x061c, 0x200e, 0x200f, *range(0x202a, 0x202f), *range(0x2066, 0x206a))
CONTROL = {code: f"\\x{code:02x}" for code in (*range(0x20), 0x7f, *range(0x80, 0xa0))}
CONTROL.update({code: f"\\u{code:04x}" for code in _BIDI})


def printable(text: object) -> str:
    """``text`` with control and bidi characters escaped (``\\x1b``): stored text cannot drive the terminal."""
    return str(text).translate(CONTROL)


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
