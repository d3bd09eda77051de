"""The internal worker: writes the records of the runs pinned to it into the store.

Each worker of the manager's pool runs :func:`serve` for one index ``i``: it reads ``rec_q[i]``,
applies the messages in order, commits everything it read in one transaction per store, and only
then answers on ``rsp_q[i]`` (so a reply to a flush or finish means "durable").

A watchdog thread in every pool process ends the process when the manager dies, so no worker is
ever left behind; a worker that is serving first marks its open runs ``crashed``.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import queue
import shutil
import signal
import sqlite3
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple

from mplogger._worker import _environment

from mplogger import _store
from mplogger._ipc._channel import QueueReader
from mplogger._shared._processes import process_alive
from mplogger._shared._errors import StoreGone
from mplogger._ipc._remote import pack_exception
from mplogger._ipc._messages import (
    finishes_lost_run,
    ArtifactLogged,
    ArtifactUsed,
    Busy,
    LogArtifact,
    UseArtifact,
    BatchesDone,
    ErrorReply,
    FinishRun,
    FlushRun,
    GetSummary,
    InitRun,
    LogBatch,
    unpack_rows,
    RunFinished,
    RunFlushed,
    RunReady,
    SummaryReply,
    SystemSample,
    ConsoleLines,
    UpdateRun,
    WorkerHello,
    WorkerStop,
)
from mplogger._shared._metrics import MetricRules

if TYPE_CHECKING:  # concurrent.futures is imported where it is used, in a worker process only: at
    # import it registers a fork hook that takes a lock, and a user process that forks from a
    # signal handler (while already forking) would wait on that lock for ever
    from concurrent.futures import Future, ThreadPoolExecutor
from mplogger._shared._values import from_json, to_json

__all__ = ["init_process", "serve", "serve_replacement"]

_rec_qs: Sequence = ()
_rsp_qs: Sequence = ()
_serving = threading.Event()
_manager_pid = 0


def init_process(rec_qs: Sequence, rsp_qs: Sequence, manager_pid: int) -> None:
    """Pool initializer: keep the queues, ignore Ctrl-C, and watch the manager."""
    global _rec_qs, _rsp_qs, _manager_pid
    _rec_qs, _rsp_qs = rec_qs, rsp_qs
    _manager_pid = manager_pid
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_manager, name="mplogger-watchdog", daemon=True).start()


def manager_alive() -> bool:
    return os.getppid() == _manager_pid


def _watch_manager() -> None:
    sentinel = multiprocessing.parent_process().sentinel
    while manager_alive():
        multiprocessing.connection.wait([sentinel], timeout=1.0)
    if not _serving.is_set():
        os._exit(0)


class _OpenRun:
    __slots__ = ("run_id", "root", "conn", "history", "start", "summary", "last_step", "dirty", "metadata",
                 "rules", "config", "child_config")

    def __init__(self, run_id: str, root: str, conn: sqlite3.Connection, record: dict) -> None:
        self.run_id = run_id
        self.root = root
        self.conn = conn
        self.start = record["created"]
        self.history = _store.HistoryWriter(run_id, self.start, _store.last_seq(conn, run_id),
                                            _store.next_block(conn, run_id))
        self.summary = from_json(record["summary"])
        self.last_step = record["last_step"]
        self.dirty = False
        self.metadata = from_json(record.get("metadata") or "{}")
        self.rules: Optional[MetricRules] = None
        self.config: Dict[str, Any] = from_json(record.get("config") or "{}")
        self.child_config: Dict[str, Any] = {}  # keys child processes set: kept over the parent's whole config
        if self.metadata.get("metrics"):  # a resumed run keeps its define_metric rules and state
            self.rules = MetricRules.from_list(self.metadata["metrics"])
            self.rules.load_state(self.metadata.get("metric_state") or {})

    @property
    def seq(self) -> int:
        """Rows of this run the worker holds: stored, or waiting in its open block."""
        return self.history.added

    def metadata_json(self) -> str:
        if self.rules is not None:
            self.metadata["metrics"] = self.rules.to_list()
            self.metadata["metric_state"] = self.rules.state_dict()
        return to_json(self.metadata)

    def snapshot(self) -> tuple:
        """What this run's in-memory state is now, to put back if what follows is not stored."""
        rules = None if self.rules is None else (self.rules, self.rules.to_list(), self.rules.snapshot())
        return (self.last_step, dict(self.summary), dict(self.metadata), rules, self.dirty,
                dict(self.config), dict(self.child_config))

    def restore(self, saved: tuple, rows_lost: bool = True) -> None:
        """Put back a :meth:`snapshot` (the rows are the history writer's to forget).

        Without ``rows_lost`` (the rows this transaction took in are still held, to be written
        later) only what is not made from rows is put back; the summary stays, and is written again.
        """
        if not rows_lost:
            _, _, self.metadata, _, _, self.config, self.child_config = saved
            self.dirty = True
            return
        (self.last_step, self.summary, self.metadata, rules, self.dirty, self.config,
         self.child_config) = saved
        self.rules = None
        if rules is not None:
            self.rules, definitions, state = rules
            if self.rules.to_list() != definitions:
                self.rules = MetricRules.from_list(definitions)
            self.rules.restore(state)

    def batch_snapshot(self) -> tuple:
        """The part of :meth:`snapshot` a batch of rows can change (quick: once per batch)."""
        return (self.last_step, dict(self.summary), None if self.rules is None else self.rules.snapshot())

    def batch_restore(self, saved: tuple) -> None:
        self.last_step, self.summary, rules = saved
        if rules is not None and self.rules is not None:
            self.rules.restore(rules)


class _Transaction:
    """One open write transaction on one store, and what undoing it takes if it is not committed."""

    __slots__ = ("conn", "saved", "opened", "closed", "histories", "notes", "first_reply", "done_with")

    def __init__(self, conn: sqlite3.Connection, first_reply: int) -> None:
        self.conn = conn
        self.saved: Dict[str, tuple] = {}
        self.opened: set = set()
        self.closed: Dict[str, tuple] = {}
        self.histories: Dict[str, _store.HistoryWriter] = {}  # runs whose rows this transaction writes
        self.notes: Dict[str, str] = {}  # other writes a run loses with it, e.g. its environment
        self.first_reply = first_reply
        self.done_with: List[str] = []  # staging folders to remove once this transaction ends

    def touch(self, run: _OpenRun) -> None:
        """Keep ``run``'s state as it was before this transaction (once, when first changed)."""
        if run.run_id not in self.saved and run.run_id not in self.opened:
            self.saved[run.run_id] = run.snapshot()

    def concerns(self) -> set:
        return set(self.saved) | self.opened | set(self.closed)


_ENVIRONMENT_LOST = "its environment (git, packages) was not stored"


def _lost(entry: _store.Lost) -> str:
    count, first, last = entry
    steps = "" if first is None else (f" (step {first})" if first == last else f" (steps {first}-{last})")
    return f"{count} row{'s' if count != 1 else ''}{steps} logged to it were not stored"


class Worker:
    """Applies messages to the store; replies only after the commit that made them durable.

    A failure never ends the worker: a message that cannot be applied gets an error reply; a
    commit that fails is rolled back, the runs it concerns get their in-memory state back (their
    row counts and summaries never include what was not stored) and an error saying what was
    lost, and the worker goes on serving its other runs.
    """

    def __init__(self, index: int) -> None:
        self.index = index
        self.where = f"mplogger worker {index} (pid {os.getpid()})"
        self.stores: Dict[str, sqlite3.Connection] = {}
        self.roots: Dict[sqlite3.Connection, str] = {}
        self.files: Dict[sqlite3.Connection, tuple] = {}
        self.runs: Dict[str, _OpenRun] = {}
        self.lost: Dict[str, BaseException] = {}
        self.txn: Optional[_Transaction] = None
        self.replies: list = []
        self.batches = self.batch_rows = self.batch_bytes = 0
        self.deferred: list = []
        self.collected: "queue.Queue" = queue.Queue()
        self.collecting = 0
        self.storing: Dict[str, List[Tuple[LogArtifact, str, "Future"]]] = {}  # artifact files being stored, per run
        self.files_pool: Optional["ThreadPoolExecutor"] = None
        self.stored_bytes = 0  # bytes hashed or copied by the files thread so far
        self.notify: Optional[Callable[[object], None]] = None  # sends a message now (set by the serving loop)
        self.stored_r, self.stored_w = os.pipe()  # a byte per artifact whose files are stored
        os.set_blocking(self.stored_r, False)
        self.handlers = self.make_handlers()

    # --- stores and transactions ----------------------------------------------------------
    def store(self, root: str) -> sqlite3.Connection:
        """The connection to ``root``'s store; a store deleted meanwhile is created anew."""
        conn = self.stores.get(root)
        if conn is not None and (self.txn is None or self.txn.conn is not conn):
            try:
                self.check_file(conn)
            except StoreGone as exc:
                self.lose_store(conn, exc)
                conn = None
        if conn is None:
            conn = _store.connect(root)
            self.stores[root] = conn
            self.roots[conn] = root
            self.files[conn] = _store.file_identity(root)
        return conn

    def check_file(self, conn: sqlite3.Connection) -> None:
        """Raise StoreGone if the database file of ``conn`` was deleted or replaced."""
        root = self.roots[conn]
        if _store.file_identity(root) != self.files[conn]:
            raise StoreGone(f"the store {root} was deleted or replaced while runs were being written to it")

    def begin(self, conn: sqlite3.Connection) -> None:
        """Open a write transaction on ``conn``, first committing one open on another store.

        A worker holds at most one store's write lock at a time: two workers each holding one
        store and waiting for the other's would deadlock (runs of one process may use two roots).
        """
        if self.txn is not None:
            if self.txn.conn is conn:
                return
            self.commit_transaction()
        _store.begin(conn)
        self.txn = _Transaction(conn, len(self.replies))

    def commit_transaction(self) -> None:
        """Write the changed runs' summaries and commit what this read of messages changed.

        Never raises: a failure undoes the transaction and reports it (see :meth:`abandon`).
        """
        txn, self.txn = self.txn, None
        if txn is None:
            return
        conn = txn.conn
        try:
            now = time.time()
            for run in self.runs.values():
                if run.dirty and run.conn is conn:
                    fields = {"summary": to_json(run.summary), "rows": run.history.stored,
                              "last_step": run.last_step, "updated": now}
                    if run.rules is not None:
                        fields["metadata"] = run.metadata_json()
                    _store.update_run(conn, run.run_id, **fields)
            _store.commit(conn)
            self.check_file(conn)
        except Exception as exc:
            self.abandon(txn, exc)
            return
        for run in self.runs.values():
            if run.conn is conn:
                run.dirty = False
        for history in txn.histories.values():
            history.committed()
        _remove_folders(txn.done_with)

    def abandon(self, txn: _Transaction, exc: BaseException) -> None:
        """``txn`` was not stored: roll it back, restore its runs, and tell each what it lost."""
        conn = txn.conn
        try:
            _store.rollback(conn)
        except sqlite3.Error:
            pass
        _remove_folders(txn.done_with)  # what they held was moved into the objects: orphans for doctor
        for run_id in txn.opened:
            run = self.runs.pop(run_id, None)
            if run is not None:
                _remove_empty_dir(_store.run_dir(run.root, run_id))
        self.deferred = [item for item in self.deferred if item[0] not in txn.opened]
        for run_id, saved in txn.saved.items():
            run = self.runs.get(run_id) or (txn.closed[run_id][0] if run_id in txn.closed else None)
            if run is not None:
                run.restore(saved, rows_lost=run_id in txn.histories or run_id in txn.closed)
        lost = {}
        for run_id, history in txn.histories.items():
            entry = history.rolled_back()
            if entry is not None:
                lost[run_id] = entry
        packed = pack_exception(exc, self.where)
        concerned = txn.concerns() | set(lost)
        answered = set()
        for position in range(txn.first_reply, len(self.replies)):
            reply = self.replies[position]
            if type(reply) is not ErrorReply and reply.run_id in concerned:
                entry = lost.get(reply.run_id)
                note = _lost(entry) if entry and reply.run_id not in answered else "the write was not committed"
                answered.add(reply.run_id)
                self.replies[position] = ErrorReply(reply.request, reply.run_id, packed, note)
        for run_id, entry in lost.items():
            if run_id not in answered:
                self.replies.append(ErrorReply(None, run_id, packed, _lost(entry)))
        for run_id, note in txn.notes.items():
            if run_id not in answered and run_id not in lost:
                self.replies.append(ErrorReply(None, run_id, packed, note))
        if isinstance(exc, StoreGone):
            self.lose_store(conn, exc)
            return
        for run_id, (run, message) in txn.closed.items():
            if run_id not in txn.opened:
                self.close_after_failure(run, message)

    def close_after_failure(self, run: _OpenRun, message: FinishRun) -> None:
        """A finish whose commit failed: try once more to record the run's end, in a small write."""
        conn = run.conn
        try:
            _store.begin(conn)
            now = time.time()
            _store.update_run(conn, run.run_id, state=message.state, exit_code=message.exit_code,
                              finished=now, updated=now, summary=to_json(run.summary), rows=run.history.stored,
                              last_step=run.last_step, metadata=run.metadata_json())
            _store.commit(conn)
        except Exception:  # the end could not be recorded either: `mplogger doctor` marks it later
            try:
                _store.rollback(conn)
            except sqlite3.Error:
                pass

    def lose_store(self, conn: sqlite3.Connection, exc: BaseException) -> None:
        """The store's file is gone: its open runs end with an error; a new run creates it anew."""
        root = self.roots.pop(conn, None)
        self.files.pop(conn, None)
        if root is not None and self.stores.get(root) is conn:
            del self.stores[root]
        if self.txn is not None and self.txn.conn is conn:
            self.txn = None
        packed = pack_exception(exc, self.where)
        for run_id, run in list(self.runs.items()):
            if run.conn is conn:
                del self.runs[run_id]
                self.lost[run_id] = exc
                self.replies.append(ErrorReply(None, run_id, packed,
                                               "rows logged to it from now on are not stored"))
        try:
            conn.close()
        except sqlite3.Error:
            pass

    # --- messages -------------------------------------------------------------------------
    def handle_all(self, messages: List[object], idle: bool = True) -> List[object]:
        """Apply ``messages`` in order, write the rows due, commit, and return the replies to send.

        ``idle``: no more messages are waiting, so rows held are written sooner (a busy worker
        writes full blocks and rows older than ``TAIL_AGE_S``, each block once).
        """
        for message in messages:
            try:
                self.handle(message)
            except Exception as exc:
                self.failed(message, exc)
        self.write_pending(idle)
        replies = self.take_replies()
        if self.batches:
            replies.append(BatchesDone(self.index, self.batch_rows, self.batch_bytes))
            self.batches = self.batch_rows = self.batch_bytes = 0
        return replies

    def failed(self, message: object, exc: Exception) -> None:
        """``message`` could not be applied: an error reply saying what it cost its run."""
        txn = self.txn
        if txn is not None and not txn.conn.in_transaction:  # SQLite rolled it all back
            self.txn = None
            self.abandon(txn, exc)
        self.replies.append(ErrorReply(getattr(message, "request", None), getattr(message, "run_id", None),
                                       pack_exception(exc, self.where), _cost(message)))

    def write_pending(self, idle: bool, everything: bool = False) -> None:
        """Add the artifact versions whose files are stored, write the rows that are due (see
        ``HistoryWriter.due``; with ``everything``: all rows held), then commit."""
        self.add_stored_versions(block=everything)
        now = time.monotonic()
        for run in sorted(self.runs.values(), key=lambda run: self.txn is None or run.conn is not self.txn.conn):
            if run.history.pending and (everything or run.history.due(now, idle)):
                self.write_history(run)
        self.commit_transaction()

    def deadline(self) -> Optional[float]:
        """When (monotonic seconds) held rows must be written next; None when none are held."""
        deadlines = [d for d in (run.history.deadline() for run in self.runs.values()) if d is not None]
        return min(deadlines) if deadlines else None

    def write_history(self, run: _OpenRun) -> bool:
        """Write every row of ``run`` held so far into the open transaction; False if that failed
        (the transaction is then abandoned: its runs get their state back and an error each)."""
        if not run.history.pending:
            return True
        self.begin(run.conn)
        self.txn.touch(run)
        self.txn.histories[run.run_id] = run.history
        try:
            run.history.write(run.conn)
        except Exception as exc:
            txn, self.txn = self.txn, None
            self.abandon(txn, exc)
            return False
        run.dirty = True
        return True

    def take_replies(self) -> List[object]:
        replies, self.replies = self.replies, []
        return replies

    def handle(self, message: object) -> None:
        """Apply one message: the worker's whole protocol is the table :meth:`make_handlers` builds."""
        handler = self.handlers.get(type(message))
        if handler is None:
            raise TypeError(f"worker got an unknown message {type(message).__name__}")
        handler(message)

    def make_handlers(self) -> Dict[type, Callable[[Any], None]]:
        """What the worker does with each message it can get (from the manager, in a run's order)."""
        return {
            LogBatch: self.log_batch_counted,  # records: applied in order, never answered
            UpdateRun: self.update_run,
            ConsoleLines: self.console_lines,
            SystemSample: self.system_sample,
            InitRun: self.init_run,  # requests: each answered with one reply or an ErrorReply
            FlushRun: self.flush_run,
            GetSummary: self.get_summary,
            LogArtifact: self.log_artifact,
            UseArtifact: self.use_artifact,
            FinishRun: self.finish_run,
        }

    def log_batch_counted(self, message: LogBatch) -> None:
        self.batches += 1
        self.batch_rows += message.rows
        self.batch_bytes += len(message.payload)
        self.log_batch(message)

    def console_lines(self, message: ConsoleLines) -> None:
        run = self.runs.get(message.run_id)
        if run is None:
            return  # printed while the run was finishing: output is never worth an error
        self.begin(run.conn)
        lines = [(t, stream, line.encode("utf-8", "backslashreplace").decode("utf-8"))
                 for t, stream, line in message.lines]  # lone surrogates stay readable
        _store.insert_output(run.conn, run.run_id, lines)
        with open(os.path.join(_store.run_dir(run.root, run.run_id), "output.log"), "a",
                  encoding="utf-8", errors="backslashreplace") as log_file:
            log_file.write("".join(line + "\n" for _, _, line in lines))

    def system_sample(self, message: SystemSample) -> None:
        run = self.open_run(message.run_id)
        self.begin(run.conn)
        _store.insert_system_sample(run.conn, run.run_id, message.timestamp, to_json(message.values))

    def flush_run(self, message: FlushRun) -> None:
        self.add_stored_versions(message.run_id, block=True, request=message.request)
        run = self.runs.get(message.run_id)
        if run is None and message.run_id in self.lost:
            raise self.lost[message.run_id]
        if run is not None:
            self.write_history(run)
        self.replies.append(RunFlushed(message.request, message.run_id, run.history.stored if run else 0))

    def get_summary(self, message: GetSummary) -> None:
        run = self.open_run(message.run_id)
        self.replies.append(SummaryReply(message.request, message.run_id, dict(run.summary)))

    def open_run(self, run_id: str) -> _OpenRun:
        run = self.runs.get(run_id)
        if run is None:
            if run_id in self.lost:
                raise self.lost[run_id]
            raise KeyError(f"run {run_id!r} is not open in this worker")
        return run

    def init_run(self, message: InitRun) -> None:
        record = dict(message.record)
        run_id = record["id"]
        conn = self.store(message.root)
        self.begin(conn)
        existing = _store.fetch_run(conn, run_id)
        if existing is not None and message.resume in (None, "never"):
            raise ValueError(
                f"a run with id {run_id!r} already exists in {message.root}; "
                "pass resume='allow' (or 'must') to continue it, or use a new id"
            )
        if existing is None and message.resume == "must":
            raise ValueError(f"resume='must' but there is no run with id {run_id!r} in {message.root}")
        if existing is not None:
            _refuse_live(existing, record)
        now = time.time()
        if existing is None:
            record.update(state="running", updated=now, rows=0, last_step=None, summary="{}")
            _store.insert_run(conn, record)
            stored = record
        else:
            config = from_json(existing["config"])
            config.update(from_json(record["config"]))
            _store.update_run(conn, run_id, state="running", exit_code=None, finished=None,
                              updated=now, pid=record.get("pid"), host=record.get("host"),
                              config=to_json(config))
            stored = _store.fetch_run(conn, run_id)
        os.makedirs(_store.run_dir(message.root, run_id), exist_ok=True)
        self.runs[run_id] = _OpenRun(run_id, message.root, conn, stored)
        self.lost.pop(run_id, None)
        self.txn.opened.add(run_id)
        if message.environment is not None:
            self.deferred.append((run_id, message.environment))
        self.replies.append(RunReady(message.request, run_id, dict(stored)))

    def log_batch(self, message: LogBatch) -> None:
        run = self.open_run(message.run_id)
        rows, columns = unpack_rows(message)
        self.begin(run.conn)
        self.txn.touch(run)
        saved = run.batch_snapshot()
        try:
            if columns is not None and message.origin == 0 and run.rules is None:
                failed = self.add_columns(run, columns)
                if failed:  # one by one, so only the rows that cannot be stored are lost
                    failed = self.add_rows(run, _rows_of(columns), message.origin)
            else:
                failed = self.add_rows(run, rows if columns is None else _rows_of(columns), message.origin)
        except BaseException:
            run.batch_restore(saved)
            raise
        rows = message.rows
        run.dirty = True
        if failed:
            self.replies.append(ErrorReply(None, run.run_id, pack_exception(failed[0], self.where),
                                           f"{len(failed)} of the {rows} rows of a batch could not "
                                           "be encoded and were not stored"))

    @staticmethod
    def add_columns(run: _OpenRun, columns: tuple) -> list:
        """A batch that came as columns (the run's own rows, no define_metric rules): the problems
        of its values, if any (then nothing was added)."""
        steps, stamps, keys, values = columns
        failed = run.history.add_columns(steps, stamps, keys, values)
        if not failed and steps:
            run.last_step = steps[-1]
            run.summary.update(zip(keys, (column[-1] for column in values)))
        return failed

    @staticmethod
    def add_rows(run: _OpenRun, rows: list, origin: int) -> list:
        """Hand a batch's rows to the run's history writer, keeping the summary; the rows' failures.

        A child's rows are stored at the run's current step and leave it alone; define_metric
        rules fill step metrics into each row and keep aggregates.
        """
        history = run.history
        if origin == 0 and run.rules is None:  # the common case, kept tight
            uniform, failed = history.add_rows(rows)
            if not failed:
                if rows:
                    run.last_step = rows[-1][0]
                    if uniform:
                        run.summary.update(rows[-1][2])
                    else:
                        update = run.summary.update
                        for _, _, values in rows:
                            update(values)
                return []
        rules = run.rules
        last = run.last_step
        current = last if last is not None else 0
        failed: list = []
        for step, timestamp, values in rows:
            if origin:
                step = current
            if rules is not None:
                values = rules.fill_step(values)
            problem = history.problem(values)
            if problem is not None:
                failed.append(problem)
                continue
            if rules is not None:
                rules.observe(values, run.summary)
            else:
                run.summary.update(values)
            history.add_row(step, timestamp, values)
            if not origin:
                last = step
        run.last_step = last
        return failed

    def update_run(self, message: UpdateRun) -> None:
        run = self.open_run(message.run_id)
        self.begin(run.conn)
        self.txn.touch(run)
        saved = run.snapshot()
        try:
            self._update_run(run, message)
        except BaseException:
            run.restore(saved)
            raise

    @staticmethod
    def _update_run(run: _OpenRun, message: UpdateRun) -> None:
        if message.summary is not None or message.summary_deleted:
            run.summary.update(message.summary or {})
            for key in message.summary_deleted:
                run.summary.pop(key, None)
            to_json(run.summary)  # a summary that cannot be stored fails here, not at the commit
            run.dirty = True
        if message.config is not None or message.config_changes is not None or message.config_deleted:
            if message.origin:
                run.child_config.update(message.config_changes or {})
                run.config.update(message.config_changes or {})
                for key in message.config_deleted:
                    run.child_config.pop(key, None)
                    run.config.pop(key, None)
            else:
                run.config = {**(message.config or {}), **run.child_config}
            _store.update_run(run.conn, run.run_id, config=to_json(run.config))
        if message.metrics:
            if run.rules is None:
                run.rules = MetricRules()
            for rule in message.metrics:
                run.rules.define(**rule)
            run.dirty = True
        if message.alert is not None:
            _store.insert_alert(run.conn, run.run_id, message.alert)

    def finish_run(self, message: FinishRun) -> None:
        self.add_stored_versions(message.run_id, block=True, request=message.request)
        run = self.runs.get(message.run_id)
        if run is None and finishes_lost_run(message):
            conn = self.store(message.root)
            self.begin(conn)
            _store.update_run(conn, message.run_id, state=message.state,
                              exit_code=message.exit_code, finished=time.time())
            self.replies.append(RunFinished(message.request, message.run_id, message.state, -1))
            return
        if run is None:
            raise self.lost.get(message.run_id) or KeyError(f"run {message.run_id!r} is not open in this worker")
        if not self.write_history(run) and self.runs.get(run.run_id) is not run:
            raise RuntimeError(f"run {run.run_id!r} was not created: the write that created it failed")
        self.begin(run.conn)
        self.txn.touch(run)
        now = time.time()
        _store.update_run(
            run.conn, run.run_id, state=message.state, exit_code=message.exit_code,
            finished=now, updated=now, summary=to_json(run.summary),
            rows=run.history.stored, last_step=run.last_step, metadata=run.metadata_json(),
        )
        del self.runs[run.run_id]
        self.txn.closed[run.run_id] = (run, message)
        run.dirty = False
        self.replies.append(RunFinished(message.request, run.run_id, message.state, run.history.stored,
                                        dict(run.summary)))

    # --- artifacts ------------------------------------------------------------------------
    def log_artifact(self, message: LogArtifact) -> None:
        """Hash and move the staged files into the store in a thread (a large checkpoint must not
        hold up the run's rows, nor the store's write lock); the version is added once they are in.

        The staging folder is claimed at once (renamed for this process), so ``doctor`` sees a
        live owner until the version is committed. Until then an object no version holds is an
        orphan that ``doctor`` removes; no reader ever sees a version that is not complete.
        Versions of a run are added in the order they were logged, and before any later flush,
        finish or use_artifact of the run.
        """
        run = self.open_run(message.run_id)
        claimed = _store.claim_staging(message.staging) if _store.staging_owner(message.staging) else ""
        if self.files_pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self.files_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mplogger-artifact-files")
        future = self.files_pool.submit(self._store_files, run.root, message, claimed)
        future.add_done_callback(lambda _: os.write(self.stored_w, b"."))  # wakes the serving loop
        self.storing.setdefault(run.run_id, []).append((message, claimed, future))

    def _store_files(self, root: str, message: LogArtifact, claimed: str) -> List[_store.FileRow]:
        return [self._stored_file(root, message, entry, claimed) for entry in message.entries]

    def _progress(self, count: int) -> None:
        self.stored_bytes += count  # read by heartbeats: storing is moving

    def drain_stored(self) -> None:
        try:
            while os.read(self.stored_r, 4096):
                pass
        except BlockingIOError:
            pass

    def add_stored_versions(self, run_id: Optional[str] = None, block: bool = False,
                            request: Optional[int] = None) -> None:
        """Add the versions whose files are stored (with ``block``, waiting for those of ``run_id``,
        or of every run), each in the open transaction with its reply. While it waits for
        ``request``, a heartbeat tells the client five times a second that storing moves on."""
        for waiting in ([run_id] if run_id is not None else list(self.storing)):
            jobs = self.storing.get(waiting, [])
            while jobs and (block or jobs[0][2].done()):
                message, claimed, future = jobs.pop(0)
                try:
                    files = self._wait_stored(future, waiting, request)
                    run = self.open_run(waiting)
                    self.begin(run.conn)
                    self.txn.done_with.append(claimed)
                    self.txn.touch(run)
                    _check_objects(run.root, files)  # under the write lock: `rm` cannot delete them now
                    record, created = _store.add_version(run.conn, message.project, message.name, message.type,
                                                         message.description, message.metadata, files,
                                                         message.aliases, run.run_id, time.time(), message.token)
                    if message.request is not None:
                        self.replies.append(ArtifactLogged(message.request, run.run_id, record, created))
                except Exception as exc:
                    _remove_folders([claimed])
                    self.failed(message, exc)
                    self.refuse_log(waiting, message, exc)
            if not jobs:
                self.storing.pop(waiting, None)

    def _wait_stored(self, future: "Future", run_id: str, request: Optional[int]) -> List[_store.FileRow]:
        from concurrent.futures import TimeoutError as FutureTimeout

        seen = self.stored_bytes
        while True:
            try:
                return future.result(timeout=_HEARTBEAT_S)
            except FutureTimeout:
                if self.stored_bytes != seen and request is not None and request >= 0 and self.notify:
                    self.notify(Busy(request, run_id, self.stored_bytes - seen))
                seen = self.stored_bytes

    def refuse_log(self, run_id: str, message: LogArtifact, exc: Exception) -> None:
        """A child's log call gets no reply: record in the store that it stored nothing, and why."""
        run = self.runs.get(run_id)
        if not message.token or run is None:
            return
        try:
            self.begin(run.conn)
            _store.refuse_log(run.conn, message.token, f"{type(exc).__name__}: {exc}")
        except Exception:  # the child's wait is bounded; the owner has the error
            pass

    def _stored_file(self, root: str, message: LogArtifact, entry: tuple, claimed: str) -> _store.FileRow:
        path, kind, source, size, digest = entry
        if kind == "ref":
            return path, digest, size, source
        if not claimed:
            raise ValueError(f"artifact {message.name!r}: no staging folder for its files")
        if kind == "file":  # policy="immutable": copied now, off the training loop
            staged = os.path.join(claimed, f"copy-{uuid.uuid4().hex}")
            _store.clone_file(source, staged, self._progress)
            source = staged
        elif kind == "staged" and source.startswith(message.staging + os.sep):
            source = claimed + source[len(message.staging):]
        else:
            raise ValueError(f"artifact {message.name!r}: entry {path!r} is not a staged file")
        digest, size = _store.hash_file(source, self._progress)
        _store.put_object(root, source, digest)
        return path, digest, size, None

    def use_artifact(self, message: UseArtifact) -> None:
        self.add_stored_versions(message.run_id, block=True, request=message.request)
        run = self.open_run(message.run_id)
        self.begin(run.conn)
        found = _store.find_versions(run.conn, message.project, message.name, message.alias)
        if not found:
            versions = [f"v{record['version']}" for record in
                        _store.select_versions(run.conn, message.project, message.name)]
            raise KeyError(f"no artifact {message.name}:{message.alias} in project {message.project!r}"
                           + (f"; it has {', '.join(reversed(versions[:10]))}" if versions else ""))
        record = found[0]
        if message.type is not None and record["type"] != message.type:
            raise ValueError(f"artifact {message.name}:{message.alias} is of type {record['type']!r}, "
                             f"not {message.type!r}")
        self.txn.touch(run)
        _store.record_use(run.conn, run.run_id, record["id"], time.time())
        if message.request is not None:
            self.replies.append(ArtifactUsed(message.request, run.run_id, record))

    # --- environments ---------------------------------------------------------------------
    def run_deferred(self) -> None:
        """Start collecting new runs' environments (git state, installed packages) in a
        thread of their own, and store the ones that are ready. No message waits for them."""
        while self.deferred:
            run_id, facts = self.deferred.pop(0)
            run = self.runs.get(run_id)
            if run is not None:
                self.collecting += 1
                threading.Thread(target=self._collect, args=(run_id, run.root, facts),
                                 name="mplogger-environment", daemon=True).start()
        self.store_collected(block=False)

    def store_collected(self, block: bool) -> None:
        """Store the environments collected so far (with ``block``: wait, bounded, for all)."""
        deadline = time.monotonic() + 5.0
        stored = False
        while self.collecting:
            try:
                if block:
                    run_id, root, environment = self.collected.get(timeout=max(0.0, deadline - time.monotonic()))
                else:
                    run_id, root, environment = self.collected.get_nowait()
            except queue.Empty:
                break
            self.collecting -= 1
            run = self.runs.get(run_id)
            if run is not None:
                run.metadata["environment"] = environment
            try:
                conn = self.store(root)
                self.begin(conn)  # the run may have finished meanwhile: merge into what is stored
                _store.merge_environment(conn, run_id, to_json(environment))
                self.txn.notes[run_id] = _ENVIRONMENT_LOST
                stored = True
            except Exception as exc:
                txn = self.txn
                if txn is not None and not txn.conn.in_transaction:
                    self.txn = None
                    self.abandon(txn, exc)
                self.replies.append(ErrorReply(None, run_id, pack_exception(exc, self.where),
                                               _ENVIRONMENT_LOST))
        if stored:
            self.commit_transaction()

    def _collect(self, run_id: str, root: str, facts: dict) -> None:
        try:
            environment = _environment.collect(facts, _store.run_dir(root, run_id))
        except Exception as exc:  # metadata is a nicety: never let it break the run
            environment = {"error": f"{type(exc).__name__}: {exc}"}
        self.collected.put((run_id, root, environment))

    def crash_open_runs(self) -> None:
        """The manager is gone: mark every open run crashed (rows already committed stay)."""
        for run_id in list(self.runs):
            self.handle_all([FinishRun(-1, run_id, "crashed", None)])

    def close(self) -> None:
        for conn in self.stores.values():
            conn.close()
        self.stores.clear()
        if self.files_pool is not None:
            self.files_pool.shutdown(wait=False)
        for fd in (self.stored_r, self.stored_w):
            os.close(fd)


_HEARTBEAT_S = 0.2  # well under any timeout a client waits with


def _remove_folders(folders: List[str]) -> None:
    for folder in folders:
        if folder:
            shutil.rmtree(folder, ignore_errors=True)


def _check_objects(root: str, files: List[_store.FileRow]) -> None:
    """Every stored file of a version is in the objects (a concurrent ``rm`` may have deleted one
    after it was moved in and before this transaction took the write lock)."""
    for path, digest, _, ref in files:
        if ref is None and not os.path.isfile(_store.object_path(root, digest)):
            raise FileNotFoundError(f"the stored copy of {path!r} was deleted while the version was being added "
                                    "(a run deleted at the same time); log the artifact again")


def _cost(message: object) -> str:
    """What a message that failed cost its run, for the error's note."""
    if type(message) is LogBatch:
        return f"{message.rows} rows logged to it were not stored"
    if type(message) is LogArtifact:
        return f"artifact {message.name!r} was not stored"
    return ""


def _rows_of(columns: tuple) -> list:
    """The rows of a batch that came as columns: (step, timestamp, values) each."""
    steps, stamps, keys, values = columns
    return [(step, stamp, dict(zip(keys, row))) for step, stamp, row in zip(steps, stamps, zip(*values))]


def _refuse_live(existing: dict, record: dict) -> None:
    """Resuming a run that another live process on this host is writing would interleave rows."""
    pid, host = existing.get("pid"), existing.get("host")
    if (existing.get("state") == "running" and pid and pid != record.get("pid")
            and host == record.get("host") and process_alive(pid, existing["updated"])):
        raise ValueError(
            f"run {existing['id']!r} is being written by process {pid} on {host}; it cannot be resumed "
            "while that process is alive (finish it there first, or start a new run)")


def _remove_empty_dir(path: str) -> None:
    try:
        os.rmdir(path)
    except OSError:
        pass


def serve(index: int) -> None:
    """The loop of a pool worker: serve ``rec_q[index]`` until WorkerStop or manager death."""
    _serve(index, _rec_qs[index], _rsp_qs[index])


def serve_replacement(index: int, rec_q: object, rsp_q: object, manager_pid: int) -> None:
    """A worker started by the manager in place of one that died, on fresh queues."""
    init_process((), (), manager_pid)
    _serve(index, rec_q, rsp_q)


def _serve(index: int, rec_q: object, rsp: object) -> None:
    """Serve one worker's queues; whatever happens, the process ends (so its sentinel fires)."""
    _serving.set()
    code = 0
    worker = Worker(index)
    try:
        rec = QueueReader(rec_q)
        rsp.put(WorkerHello(index, os.getpid()))
        worker.notify = rsp.put
        sentinel = multiprocessing.parent_process().sentinel
        stop = False
        while not stop:
            deadline = worker.deadline()
            timeout = 0.05 if worker.collecting else 1.0
            if deadline is not None:
                timeout = min(timeout, max(0.0, deadline - time.monotonic()))
            ready = multiprocessing.connection.wait([rec, sentinel, worker.stored_r], timeout=timeout)
            if worker.stored_r in ready:
                worker.drain_stored()
            messages = rec.read_available() if rec in ready else []
            for position, message in enumerate(messages):
                if type(message) is WorkerStop:
                    del messages[position:]
                    stop = True
                    break
            if messages:
                replies = worker.handle_all(messages, idle=not multiprocessing.connection.wait([rec], 0))
            else:
                worker.write_pending(idle=True)
                replies = []
            if messages or worker.collecting:
                worker.run_deferred()
            for reply in replies + worker.take_replies():
                rsp.put(reply)
            if not stop and not messages and not manager_alive():
                worker.crash_open_runs()
                break
    except BaseException as exc:
        code = 1
        error = exc
        _quietly(lambda: rsp.put(ErrorReply(None, None, pack_exception(error, worker.where))))
    finally:
        if code == 0:
            _quietly(lambda: worker.write_pending(idle=True, everything=True))  # rows of runs not finished yet
            _quietly(lambda: worker.store_collected(block=True))  # a run that ended at once still gets its environment
            for reply in worker.take_replies():
                _quietly(lambda: rsp.put(reply))
        _quietly(worker.close)
        _quietly(rsp.close)
        _quietly(rsp.join_thread)
        os._exit(code)


def _quietly(action: Callable[[], object]) -> None:
    try:
        action()
    except BaseException:  # the process is ending: nothing here may keep it alive
        pass
