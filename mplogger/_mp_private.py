"""The private parts of the standard library's ``multiprocessing`` that mplogger relies on, in one
place (as loky keeps its own in ``backend/``): a queue's pipe ends and its semaphore, a pool's
processes, and the set of children ``multiprocessing`` joins at exit. Any process may use them;
tests/test_mp_private.py checks each still means what it meant."""

from __future__ import annotations

import multiprocessing.process
from typing import Any, List, Tuple

__all__ = ["disown_child", "pool_processes", "queue_pipe", "queue_semaphore"]


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
