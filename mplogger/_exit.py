"""How the process is exiting: ``sys.exit(n)`` and uncaught exceptions, seen by atexit.

An atexit handler cannot see the exit status, so ``sys.exit`` and ``sys.excepthook`` are wrapped
(once, chaining to whatever was there) to record it.
"""

from __future__ import annotations

import atexit
import multiprocessing.util  # noqa: F401  (registers its atexit first, so ours runs before it)
import sys
from typing import Any, Callable

__all__ = ["exit_code", "install_hooks", "register"]

_state = {"code": 0, "installed": False}


def _code_of(arg: Any) -> int:
    if arg is None:
        return 0
    if isinstance(arg, int):
        return arg
    return 1


def exit_code() -> int:
    """The status the process is exiting with, as far as it can be seen."""
    return _state["code"]


def install_hooks() -> None:
    """Wrap ``sys.exit`` and ``sys.excepthook`` to record the exit status (idempotent)."""
    if _state["installed"]:
        return
    _state["installed"] = True
    original_exit = sys.exit
    original_hook = sys.excepthook

    def exit(status: Any = None) -> None:
        _state["code"] = _code_of(status)
        original_exit(status)

    def excepthook(kind: type, value: BaseException, tb: Any) -> None:
        _state["code"] = 130 if issubclass(kind, KeyboardInterrupt) else 1
        original_hook(kind, value, tb)

    exit.__wrapped__ = original_exit  # type: ignore[attr-defined]
    sys.exit = exit
    sys.excepthook = excepthook


def register(handler: Callable[[], None]) -> None:
    """Run ``handler`` at exit, before multiprocessing joins its children."""
    atexit.register(handler)
