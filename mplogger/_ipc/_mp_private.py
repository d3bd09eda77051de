"""The private parts of the standard library's ``multiprocessing`` that mplogger relies on, in one
place (as loky keeps its own in ``backend/``): a queue's pipe ends and its semaphores, a pool's
processes, the set of children ``multiprocessing`` joins at exit, the semaphore finalizers and the
resource tracker's pipe. Any process may use them;
tests/ipc/test_mp_private.py checks each still means what it meant."""

from __future__ import annotations

import multiprocessing.process
from typing import Any, List, Optional, Tuple

__all__ = ["close_queue", "disown_child", "pool_processes", "queue_pipe", "queue_semaphore",
           "resource_tracker_fd", "unlink_semaphore_names"]


def queue_pipe(queue: Any) -> Tuple[Any, Any]:
    """The (reading, writing) connections under a ``multiprocessing.Queue``."""
    return queue._reader, queue._writer


def queue_semaphore(queue: Any) -> Any:
    """The semaphore a ``multiprocessing.Queue`` counts its free places with (None when unbounded)."""
    return queue._sem


def pool_processes(pool: Any) -> List[Any]:
    """The worker processes of a ``multiprocessing.Pool`` (empty where that cannot be seen)."""
    return list(getattr(pool, "_pool", []))


def disown_child(process: Any) -> None:
    """Stop ``multiprocessing`` from joining ``process`` at this process's exit (it is not ours:
    inherited across a fork)."""
    multiprocessing.process._children.discard(process)  # type: ignore[attr-defined]


def close_queue(queue: Any) -> None:
    """Close both ends of a queue in this process (its pipes' fds), whatever it was used for."""
    for connection in queue_pipe(queue):
        if connection is not None and not connection.closed:
            connection.close()


def unlink_semaphore_names(queue: Any) -> None:
    """Remove the names of a queue's semaphores once every process using them has opened them.

    Under spawn and forkserver a queue's semaphores have names in /dev/shm so the child can open
    them; multiprocessing's resource tracker removes them when the parent exits. A Jupyter kernel
    is killed with its whole process group, tracker included, and the names would stay behind.
    Unlinked early, the semaphores live exactly as long as the processes that hold them.
    """
    from multiprocessing import resource_tracker, synchronize, util

    names = set()
    for attribute in ("_rlock", "_wlock", "_sem"):
        lock = getattr(queue, attribute, None)
        name = getattr(getattr(lock, "_semlock", None), "name", None)
        if name is not None:
            names.add(name)
    if not names:
        return
    for finalizer in list(getattr(util, "_finalizer_registry", {}).values()):
        if getattr(finalizer, "_callback", None) is synchronize.SemLock._cleanup and \
                getattr(finalizer, "_args", ()) and finalizer._args[0] in names:
            finalizer.cancel()
    for name in names:
        try:
            synchronize.sem_unlink(name)
        except OSError:
            pass
        resource_tracker.unregister(name, "semaphore")


def resource_tracker_fd() -> Optional[int]:
    """The fd this process writes to ``multiprocessing``'s resource tracker on (None before it started)."""
    try:
        from multiprocessing import resource_tracker

        return resource_tracker._resource_tracker._fd  # type: ignore[attr-defined]
    except (ImportError, AttributeError):
        return None
