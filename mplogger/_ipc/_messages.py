"""The wire messages: the only objects that cross process boundaries (every process).

Every message is a frozen ``attrs`` class holding plain data (str, int, float, bytes, tuples and
JSON-able dicts). ``PROTOCOL_VERSION`` is checked in the EnsureUp handshake [3,4], so a client and
a manager from different releases refuse each other with a clear error instead of misreading.

Step numbers in the comments refer to ``shared/design/seed-architecture.txt``.

The conventions every process keeps (each is checked through the function named):

- *Requests* carry a ``request`` id and get exactly one reply with it (or an ``ErrorReply``).
  Ids the manager gives its own requests are negative (:func:`internal`): their replies stay in
  the manager. A user process's ids are positive; 0 is the handshake's.
- *Records* (rows, config changes, output, samples, and a child's artifacts) are applied in
  order and never answered. A message with a non-zero ``origin`` comes from a child process
  logging into the run (:func:`from_child`): it is a record, whatever its type.
- ``FinishRun.root`` is set only when the manager closes, on another worker, a run whose worker
  died (:func:`finishes_lost_run`): the new worker has never opened it.
"""

from __future__ import annotations

import pickle
from operator import itemgetter
from typing import Any, List, Optional, Sequence, Tuple

import attrs

PROTOCOL_VERSION = 5


def internal(request: Optional[int]) -> bool:
    """Whether ``request`` is one the manager made itself (its reply is not for the user process)."""
    return request is not None and request < 0


def from_child(message: object) -> bool:
    """Whether ``message`` was sent by a child process logging into a run (never answered)."""
    return bool(getattr(message, "origin", 0))


def finishes_lost_run(message: object) -> bool:
    """Whether ``message`` closes the run of a dead worker (on a worker that never opened it)."""
    return type(message) is FinishRun and message.root is not None

__all__ = [
    "PROTOCOL_VERSION",
    "internal",
    "from_child",
    "finishes_lost_run",
    "Hello",
    "Ready",
    "InitRun",
    "RunReady",
    "LogBatch",
    "pack_rows",
    "unpack_rows",
    "UpdateRun",
    "SystemSample",
    "ConsoleLines",
    "FlushRun",
    "RunFlushed",
    "GetSummary",
    "SummaryReply",
    "LogArtifact",
    "ArtifactLogged",
    "Busy",
    "UseArtifact",
    "ArtifactUsed",
    "FinishRun",
    "RunFinished",
    "ManagerStop",
    "StopAck",
    "ManagerPoll",
    "PollReply",
    "RemoteError",
    "ErrorReply",
    "WorkerHello",
    "BatchesDone",
    "WorkerStop",
]


@attrs.frozen
class Hello:
    """EnsureUp [3]: the client asks whether the manager and its pool are serving."""

    protocol: int
    client_pid: int


@attrs.frozen
class Ready:
    """EnsureUp [4]: the manager and every worker are serving."""

    protocol: int
    manager_pid: int
    worker_pids: tuple
    attach_path: str = ""


@attrs.frozen
class InitRun:
    """UserInitMsg [5]: create (or resume) a run in the store at ``root``."""

    request: int
    root: str
    record: dict
    resume: Optional[str] = None
    environment: Optional[dict] = None


@attrs.frozen
class RunReady:
    """UserInitMsg reply [6]: the run exists in the store."""

    request: int
    run_id: str
    record: dict


@attrs.frozen
class LogBatch:
    """log() [7]: rows of one run, serialised once by the client and routed undecoded.

    ``origin`` is 0 for the process that started the run, else the pid of a child process
    logging into it; a child's rows carry no step of their own (see :mod:`mplogger._user._child`).
    ``after``, in a child's batch, is how many rows the parent had sent when the child got the
    run: the manager routes the batch only after those, so causal order holds across the pipes.
    """

    run_id: str
    payload: bytes
    rows: int
    origin: int = 0
    after: int = 0
    columns: bool = False  # the payload is (steps, timestamps, keys, one tuple of values per key)


Rows = List[Tuple[int, float, dict]]
Columns = Tuple[Sequence[int], Sequence[float], Tuple[str, ...], List[Sequence[Any]]]


def pack_rows(rows: Rows) -> Tuple[bytes, bool]:
    """A batch's payload, and whether it went as columns: rows that all hold the same keys (the
    usual training loop) go as one tuple of values per key, which is half the work to pickle
    and a fifth to unpickle; other batches go as the rows themselves."""
    if rows:
        steps, stamps, dicts = zip(*rows)
        keys = tuple(dicts[0])
        if keys and set(map(len, dicts)) == {len(keys)}:
            try:
                if len(keys) == 1:
                    columns = [tuple(map(itemgetter(keys[0]), dicts))]
                else:
                    columns = list(zip(*map(itemgetter(*keys), dicts)))
            except KeyError:
                pass
            else:
                return pickle.dumps((steps, stamps, keys, columns), pickle.HIGHEST_PROTOCOL), True
    return pickle.dumps(rows, pickle.HIGHEST_PROTOCOL), False


def unpack_rows(batch: LogBatch) -> Tuple[Optional[Rows], Optional[Columns]]:
    """(rows, None) or (None, columns) of a batch made by :func:`pack_rows`."""
    data = pickle.loads(batch.payload)
    return (None, data) if batch.columns else (data, None)


@attrs.frozen
class UpdateRun:
    """A change to a run's config, summary or tags, applied in order with its rows.

    ``config`` is the whole config of the process that called ``init()``; a child process sends
    only what it changed (``config_changes``, ``config_deleted``) with its pid as ``origin``, so
    neither side's keys are lost to the other's.
    """

    run_id: str
    config: Optional[dict] = None
    summary: Optional[dict] = None
    summary_deleted: tuple = ()
    alert: Optional[dict] = None
    metrics: tuple = ()
    config_changes: Optional[dict] = None
    config_deleted: tuple = ()
    origin: int = 0


@attrs.frozen
class ConsoleLines:
    """Captured output: ``lines`` of (timestamp, stream, text), stored in order per run."""

    run_id: str
    lines: tuple
    origin: int = 0


@attrs.frozen
class SystemSample:
    """System metrics sampled by the manager, stored with a run (table ``system_metrics``)."""

    run_id: str
    timestamp: float
    values: dict


@attrs.frozen
class FlushRun:
    """A barrier: reply once every earlier record of the run is committed."""

    request: int
    run_id: str


@attrs.frozen
class RunFlushed:
    request: int
    run_id: str
    rows: int


@attrs.frozen
class GetSummary:
    """Ask for a run's current summary (after every earlier record)."""

    request: int
    run_id: str


@attrs.frozen
class SummaryReply:
    request: int
    run_id: str
    summary: dict


@attrs.frozen
class LogArtifact:
    """``run.log_artifact()``: store a version of an artifact, in order with the run's rows.

    ``entries`` are ``(name in the artifact, kind, source, size, digest)``: kind ``"staged"`` is a
    copy taken at log time in ``staging`` (moved into the store), ``"file"`` a file the user
    promised not to change (``policy="immutable"``: the worker copies it), ``"ref"`` a reference
    (``source`` is its URI; kept with its digest, not copied). ``metadata`` is JSON text. The reply
    (:class:`ArtifactLogged`) is not waited for unless the user calls ``artifact.wait()``.

    From a child process (``origin`` its pid) ``request`` is None: nothing is replied; the child
    finds the version by ``token`` in the store, and an error goes to the run's owner.
    """

    request: Optional[int]
    run_id: str
    project: str
    name: str
    type: str
    description: Optional[str]
    metadata: str
    aliases: tuple
    entries: tuple
    staging: str = ""
    token: str = ""
    origin: int = 0


@attrs.frozen
class ArtifactLogged:
    """The version a :class:`LogArtifact` stored (or found with the same content), as the store keeps it."""

    request: int
    run_id: str
    record: dict
    created: bool = True


@attrs.frozen
class Busy:
    """A heartbeat while a request waits for artifact files being stored: ``moved`` more bytes
    since the last one. The client waits on as long as they come (a large checkpoint may take
    longer than a fixed timeout), and gives up only when storing stops moving."""

    request: int
    run_id: str
    moved: int


@attrs.frozen
class UseArtifact:
    """``run.use_artifact("name:alias")``: find the version in ``project`` and record that the run used it.

    From a child process (``origin`` its pid), which read the version itself, ``request`` is None
    and nothing is replied.
    """

    request: Optional[int]
    run_id: str
    project: str
    name: str
    alias: str
    type: Optional[str] = None
    origin: int = 0


@attrs.frozen
class ArtifactUsed:
    request: int
    run_id: str
    record: dict


@attrs.frozen
class FinishRun:
    """UserFinMsg [9]: commit everything, set the final state, close the run. ``root``: only for a
    dead worker's run, closed by another worker (:func:`finishes_lost_run`)."""

    request: int
    run_id: str
    state: str
    exit_code: Optional[int]
    root: Optional[str] = None


@attrs.frozen
class RunFinished:
    """UserFinMsg reply [a], with the run's final summary."""

    request: int
    run_id: str
    state: str
    rows: int
    summary: dict = attrs.Factory(dict)


@attrs.frozen
class ManagerStop:
    """ManagerStop [b]: finish every open run with ``exit_code`` and stop when done."""

    request: int
    exit_code: int


@attrs.frozen
class StopAck:
    """ManagerStop reply [c]: the runs still being closed."""

    request: int
    pending: tuple


@attrs.frozen
class ManagerPoll:
    """ManagerPoll [d]: is everything flushed and closed?"""

    request: int


@attrs.frozen
class PollReply:
    """ManagerPoll reply [e]."""

    request: int
    done: bool
    pending: tuple


@attrs.frozen
class RemoteError:
    """An exception raised in another process, with its traceback (via ``tblib``)."""

    type_name: str
    message: str
    traceback: Optional[dict]
    formatted: str
    exception: Optional[bytes] = None
    process: str = ""


@attrs.frozen
class ErrorReply:
    """A failure in the manager or a worker, for a request or (asynchronously) for a run.

    ``note`` says what the failure cost the run (e.g. "1024 rows (steps 0-1023) were not stored").
    """

    request: Optional[int]
    run_id: Optional[str]
    error: RemoteError
    note: str = ""


@attrs.frozen
class WorkerHello:
    """A worker announces itself on its ``rsp_q`` when its loop starts."""

    index: int
    pid: int


@attrs.frozen
class BatchesDone:
    """Flow control: a worker committed LogBatch messages holding ``rows`` rows, ``size`` bytes."""

    index: int
    rows: int
    size: int


@attrs.frozen
class WorkerStop:
    """The manager tells a worker to close its stores and return."""


def describe(message: Any) -> str:
    """A short name for a message, for error texts."""
    return type(message).__name__
