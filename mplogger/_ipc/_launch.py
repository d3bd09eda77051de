"""Starting the manager process safely, under any start method, without re-running user code.

Under ``spawn`` and ``forkserver``, ``multiprocessing`` prepares a child by importing the parent's
``__main__`` again (by path or module name): a user script without an
``if __name__ == "__main__":`` guard would run twice. The manager needs nothing from
``__main__``, so for the moment of ``Process.start()`` the real ``__main__`` is hidden behind an
empty module and the child's preparation has nothing to re-import.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import sys
import threading
import types
from typing import Iterator

from mplogger._shared._processes import in_jupyter, os_thread_count

__all__ = ["choose_start_method", "main_module_hidden", "manager_main", "start"]

_hide_lock = threading.Lock()


def manager_main(*args: object) -> None:
    """The manager process's entry point: its code is imported there, never in the user process."""
    from mplogger._manager._mux import main

    main(*args)  # type: ignore[arg-type]


def choose_start_method(requested: str) -> str:
    """``auto``: fork when this process has one thread (fast, and safe), else spawn.

    Forking a process that runs other threads can copy a lock that one of them holds and that
    is never released in the child; a Jupyter kernel always has threads.
    """
    if requested != "auto":
        if requested not in multiprocessing.get_all_start_methods():
            raise ValueError(f"start method {requested!r} is not available on this platform")
        return requested
    if "fork" in multiprocessing.get_all_start_methods() and os_thread_count() == 1 and not in_jupyter():
        return "fork"
    return "spawn"


@contextlib.contextmanager
def main_module_hidden() -> Iterator[None]:
    """Hide ``__main__`` from a child's preparation (see the module docstring)."""
    with _hide_lock:
        real = sys.modules.get("__main__")
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            yield
        finally:
            if real is not None:
                sys.modules["__main__"] = real


def start(process: multiprocessing.process.BaseProcess) -> None:
    """``process.start()`` without re-importing the user's main module in the child.

    ``init()`` may run while ``multiprocessing`` is pickling another child for spawn (Lightning's
    ``WandbLogger.__getstate__`` starts its run then): starting the manager would end that
    spawn's record of itself, and the queues pickled after it would be refused. It is put back.
    """
    from multiprocessing import context

    spawning = context.get_spawning_popen()
    try:
        with main_module_hidden():
            process.start()
    finally:
        context.set_spawning_popen(spawning)
