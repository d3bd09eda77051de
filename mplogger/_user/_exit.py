"""The status the user process really exits with, as seen from an atexit handler.

Python tells an atexit handler nothing, and by then it has dropped the exception that ended the
program, so the status is rebuilt from what is left (checked on CPython 3.10 to 3.13):

- **How the program ended.** The main thread's outermost frame (the script's ``<module>``, or
  ``runpy``'s under ``-m``) is kept when the hooks are installed. At exit, the instruction it
  stopped at tells a normal end (a return: status 0, even after a ``SystemExit`` that was caught)
  from an end by an exception.
- **An uncaught exception.** Python's top-level handler puts it in ``sys.last_value`` (and
  ``sys.last_exc``) before it calls ``sys.excepthook``, so it is seen whatever hook the user
  installed (``rich.traceback.install()`` replaces it): status 1, 130 for KeyboardInterrupt.
- **A SystemExit.** It never reaches ``sys.last_value``: its status is the one noted when it was
  raised in the main thread. ``sys.exit`` and the ``exit``/``quit`` builtins are wrapped on every
  version; on 3.12+ a ``sys.monitoring`` PY_UNWIND callback also sees a ``raise SystemExit(n)``
  written out, as it leaves its frame (about 0.3 µs for each frame an exception leaves; one
  caught in the frame that raised it costs nothing).

Limits: on 3.10 and 3.11 (and on 3.12+ when every free ``sys.monitoring`` tool id is taken) a
written-out ``raise SystemExit(n)`` cannot be seen: the runs are stored ``failed`` with exit code
1 and a notice says so; if an earlier ``sys.exit`` was caught, its status is used instead. At the
plain interactive prompt (``python``, ``python -i``) the status is that of the last
``SystemExit`` of the main thread, caught or not, else 0. ``os._exit`` and signals skip atexit:
the manager marks the runs ``crashed``.
"""

from __future__ import annotations

import atexit
import builtins
import dis
import functools
import multiprocessing.util  # noqa: F401  (registers its atexit first, so ours runs before it)
import os
import sys
import threading
from types import FrameType
from typing import Any, Callable, Dict, Optional

from mplogger._shared._terminal import notice_once

__all__ = ["exit_code", "install_hooks", "register", "status_of", "status_of_exception"]

_RETURNS = frozenset(dis.opmap[name] for name in ("RETURN_VALUE", "RETURN_CONST") if name in dis.opmap)
_TOOL_IDS = (4, 3)  # ids no convention claims (0 debugger, 1 coverage, 2 profiler, 5 optimizer)
_UNSEEN = 1

_state: Dict[str, Any] = {"installed": False, "main": None, "main_thread": None, "system_exit": None,
                          "interactive": False}


def status_of(code: Any) -> int:
    """The exit status Python gives ``SystemExit(code)``: None 0, an int itself (mod 256 on POSIX), else 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        if not -(1 << 63) <= code < 1 << 63:  # beyond a C long Python exits with -1, i.e. 255
            return 0xFF if os.name == "posix" else -1
        return code & 0xFF if os.name == "posix" else code
    return 1


def status_of_exception(exc: Optional[BaseException]) -> int:
    """The exit status an exception gives when it ends the program (0 for none)."""
    if exc is None:
        return 0
    if isinstance(exc, SystemExit):
        return status_of(exc.code)
    return 130 if isinstance(exc, KeyboardInterrupt) else 1


def _record(exc: SystemExit) -> None:
    """Note the status of a SystemExit raised in the main thread (elsewhere it ends only a thread)."""
    if threading.get_ident() == _state["main_thread"]:
        _state["system_exit"] = status_of(exc.code)


def _recording(call: Callable) -> Callable:
    """``call`` (``sys.exit``, ``Quitter.__call__``), noting the SystemExit it raises."""
    @functools.wraps(call)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return call(*args, **kwargs)
        except SystemExit as exc:
            _record(exc)
            raise
    return wrapper


def _on_unwind(code: Any, offset: int, exc: BaseException) -> None:
    """sys.monitoring PY_UNWIND callback: note a SystemExit leaving a frame, however raised."""
    if isinstance(exc, SystemExit):
        _record(exc)


def _watch_unwinds() -> bool:
    """On 3.12+, see every SystemExit that leaves a frame, through a free sys.monitoring tool id."""
    monitoring = getattr(sys, "monitoring", None)
    if monitoring is None:
        return False
    for tool in _TOOL_IDS:
        if monitoring.get_tool(tool) is not None:
            continue
        try:
            monitoring.use_tool_id(tool, "mplogger")
        except ValueError:  # taken meanwhile
            continue
        monitoring.register_callback(tool, monitoring.events.PY_UNWIND, _on_unwind)
        monitoring.set_events(tool, monitoring.events.PY_UNWIND)
        return True
    return False


def _main_stack() -> list:
    """The frames the main thread is running now, innermost first."""
    frame = sys._current_frames().get(_state["main_thread"])
    stack = []
    while frame is not None:
        stack.append(frame)
        frame = frame.f_back
    return stack


def _returned(frame: FrameType) -> bool:
    """Whether a finished frame ended with a return (not unwound by an exception)."""
    code = frame.f_code.co_code
    return 0 <= frame.f_lasti < len(code) and code[frame.f_lasti] in _RETURNS


def _uncaught(main: FrameType) -> Optional[BaseException]:
    """The exception Python's top-level handler reported for ``main`` (whatever sys.excepthook is)."""
    exc = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
    tb = getattr(exc, "__traceback__", None)
    return exc if tb is not None and tb.tb_frame is main else None


def _interactive() -> bool:
    """The plain interactive prompt, whose statements leave no frame to look at.

    Decided when the hooks were installed: a ``code.interact()`` later in a script sets
    ``sys.ps1`` for good, and the script's own end still tells its status.
    """
    return _state["interactive"]


def exit_code() -> int:
    """The status this process exits with; while it still runs, that of the exception being handled."""
    main = _state["main"]
    if main is not None and main in _main_stack():
        return status_of_exception(sys.exc_info()[1])
    recorded = _state["system_exit"]
    if main is None or _interactive():
        return recorded or 0
    if _returned(main):
        return 0
    uncaught = _uncaught(main)
    if uncaught is not None:
        return status_of_exception(uncaught)
    if recorded is not None:
        return recorded
    notice_once(f"the program ended with a `raise SystemExit(...)`, whose status Python "
                f"{sys.version_info.major}.{sys.version_info.minor} hides from libraries: its open runs are "
                f"stored as failed (exit code {_UNSEEN}); end with sys.exit(...) to store the real status")
    return _UNSEEN


def _outermost_main_frame() -> Optional[FrameType]:
    """The bottom frame of the main thread: the one whose end is the program's end."""
    stack = _main_stack()
    return stack[-1] if stack else None


def install_hooks() -> None:
    """Start following how the program ends (idempotent): see the module's docstring."""
    if _state["installed"]:
        return
    _state["installed"] = True
    _state["main_thread"] = threading.main_thread().ident
    _state["main"] = _outermost_main_frame()
    _state["interactive"] = hasattr(sys, "ps1") and "IPython" not in sys.modules
    sys.exit = _recording(sys.exit)
    quitter = type(getattr(builtins, "exit", None))
    if quitter.__module__ == "_sitebuiltins":
        quitter.__call__ = _recording(quitter.__call__)
    _watch_unwinds()


def register(handler: Callable[[], None]) -> None:
    """Run ``handler`` at exit, before multiprocessing joins its children."""
    atexit.register(handler)
