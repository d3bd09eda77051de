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
import pickle
import queue
import signal
import sqlite3
import threading
import time
from typing import Dict, List, Optional, Sequence

from mplogger import _environment, _store
from mplogger._channel import QueueReader
from mplogger._errors import pack_exception
from mplogger._messages import (
    BatchesDone,
    ErrorReply,
    FinishRun,
    FlushRun,
    GetSummary,
    InitRun,
    LogBatch,
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
from mplogger._metrics import MetricRules
from mplogger._values import from_json, to_json

__all__ = ["init_process", "serve"]

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
    __slots__ = ("run_id", "root", "conn", "seq", "start", "summary", "last_step", "dirty", "metadata",
                 "rules")

    def __init__(self, run_id: str, root: str, conn: sqlite3.Connection, record: dict) -> None:
        self.run_id = run_id
        self.root = root
        self.conn = conn
        self.seq = record["rows"]
        self.start = record["created"]
        self.summary = from_json(record["summary"])
        self.last_step = record["last_step"]
        self.dirty = False
        self.metadata = from_json(record.get("metadata") or "{}")
        self.rules: Optional[MetricRules] = None
        if self.metadata.get("metrics"):  # a resumed run keeps its define_metric rules and state
            self.rules = MetricRules.from_list(self.metadata["metrics"])
            self.rules.load_state(self.metadata.get("metric_state") or {})

    def metadata_json(self) -> str:
        if self.rules is not None:
            self.metadata["metrics"] = self.rules.to_list()
            self.metadata["metric_state"] = self.rules.state_dict()
        return to_json(self.metadata)


class Worker:
    """Applies messages to the store; replies only after the commit that made them durable."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.stores: Dict[str, sqlite3.Connection] = {}
        self.runs: Dict[str, _OpenRun] = {}
        self.in_transaction: Optional[sqlite3.Connection] = None
        self.replies: list = []
        self.batches = self.batch_rows = self.batch_bytes = 0
        self.deferred: list = []
        self.collected: "queue.Queue" = queue.Queue()
        self.collecting = 0

    def store(self, root: str) -> sqlite3.Connection:
        conn = self.stores.get(root)
        if conn is None:
            conn = self.stores[root] = _store.connect(root)
        return conn

    def begin(self, conn: sqlite3.Connection) -> None:
        """Open a write transaction on ``conn``, first committing one open on another store.

        A worker holds at most one store's write lock at a time: two workers each holding one
        store and waiting for the other's would deadlock (runs of one process may use two roots).
        """
        if self.in_transaction is conn:
            return
        if self.in_transaction is not None:
            self.commit_store(self.in_transaction)
        _store.retry_locked(lambda: conn.execute("BEGIN IMMEDIATE"))
        self.in_transaction = conn

    def handle_all(self, messages: List[object]) -> List[object]:
        """Apply ``messages`` in order, commit, and return the replies to send."""
        for message in messages:
            try:
                self.handle(message)
            except Exception as exc:
                self.replies.append(
                    ErrorReply(
                        getattr(message, "request", None),
                        getattr(message, "run_id", None),
                        pack_exception(exc, f"mplogger worker {self.index} (pid {os.getpid()})"),
                    )
                )
        self.commit()
        replies, self.replies = self.replies, []
        if self.batches:
            replies.append(BatchesDone(self.index, self.batch_rows, self.batch_bytes))
            self.batches = self.batch_rows = self.batch_bytes = 0
        return replies

    def handle(self, message: object) -> None:
        kind = type(message)
        if kind is LogBatch:
            self.batches += 1
            self.batch_rows += message.rows
            self.batch_bytes += len(message.payload)
            self.log_batch(message)
        elif kind is UpdateRun:
            self.update_run(message)
        elif kind is ConsoleLines:
            run = self.runs.get(message.run_id)
            if run is None:
                return  # printed while the run was finishing: output is never worth an error
            self.begin(run.conn)
            lines = [(t, stream, line.encode("utf-8", "backslashreplace").decode("utf-8"))
                     for t, stream, line in message.lines]  # lone surrogates stay readable
            run.conn.executemany("INSERT INTO output (run_id, timestamp, stream, line) VALUES (?, ?, ?, ?)",
                                 [(run.run_id, t, stream, line) for t, stream, line in lines])
            with open(os.path.join(_store.run_dir(run.root, run.run_id), "output.log"), "a",
                      encoding="utf-8", errors="backslashreplace") as log_file:
                log_file.write("".join(line + "\n" for _, _, line in lines))
        elif kind is SystemSample:
            run = self.open_run(message.run_id)
            self.begin(run.conn)
            run.conn.execute("INSERT INTO system_metrics (run_id, timestamp, data) VALUES (?, ?, ?)",
                             (run.run_id, message.timestamp, to_json(message.values)))
        elif kind is FlushRun:
            run = self.runs.get(message.run_id)
            self.replies.append(RunFlushed(message.request, message.run_id, run.seq if run else 0))
        elif kind is GetSummary:
            run = self.open_run(message.run_id)
            self.replies.append(SummaryReply(message.request, message.run_id, dict(run.summary)))
        elif kind is InitRun:
            self.init_run(message)
        elif kind is FinishRun:
            self.finish_run(message)
        else:
            raise TypeError(f"worker got an unknown message {kind.__name__}")

    def open_run(self, run_id: str) -> _OpenRun:
        run = self.runs.get(run_id)
        if run is None:
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
        if message.environment is not None:
            self.deferred.append((run_id, message.environment))
        reply = dict(stored)
        self.replies.append(RunReady(message.request, run_id, reply))

    def log_batch(self, message: LogBatch) -> None:
        run = self.open_run(message.run_id)
        rows = pickle.loads(message.payload)
        self.begin(run.conn)
        seq = run.seq
        start = run.start
        run_id = run.run_id
        params = []
        append = params.append
        if message.origin == 0 and run.rules is None:  # the common case, kept tight
            update = run.summary.update
            step = run.last_step
            for step, timestamp, values in rows:
                seq += 1
                append((run_id, seq, step, timestamp, timestamp - start, to_json(values)))
                update(values)
            run.last_step = step
        else:
            # A child's rows are stored at the run's current step and leave it alone;
            # define_metric rules fill step metrics into each row and keep aggregates.
            rules = run.rules
            current = run.last_step if run.last_step is not None else 0
            for step, timestamp, values in rows:
                seq += 1
                if message.origin:
                    step = current
                if rules is not None:
                    values = rules.fill_step(values)
                    rules.observe(values, run.summary)
                else:
                    run.summary.update(values)
                append((run_id, seq, step, timestamp, timestamp - start, to_json(values)))
            if not message.origin and rows:
                run.last_step = step
        _store.insert_rows(run.conn, params)
        run.seq = seq
        run.dirty = True

    def update_run(self, message: UpdateRun) -> None:
        run = self.open_run(message.run_id)
        self.begin(run.conn)
        fields = {}
        if message.config is not None:
            fields["config"] = to_json(message.config)
        if message.summary is not None or message.summary_deleted:
            run.summary.update(message.summary or {})
            for key in message.summary_deleted:
                run.summary.pop(key, None)
            run.dirty = True
        if fields:
            _store.update_run(run.conn, run.run_id, **fields)
        if message.metrics:
            if run.rules is None:
                run.rules = MetricRules()
            for rule in message.metrics:
                run.rules.define(**rule)
            run.dirty = True
        if message.alert is not None:
            alert = message.alert
            run.conn.execute(
                "INSERT INTO alerts (run_id, timestamp, level, title, text) VALUES (?, ?, ?, ?, ?)",
                (run.run_id, alert["timestamp"], alert["level"], alert["title"], alert["text"]))

    def finish_run(self, message: FinishRun) -> None:
        run = self.runs.pop(message.run_id, None)
        if run is None and message.root is not None:
            conn = self.store(message.root)
            self.begin(conn)
            _store.update_run(conn, message.run_id, state=message.state,
                              exit_code=message.exit_code, finished=time.time())
            self.replies.append(RunFinished(message.request, message.run_id, message.state, -1))
            return
        if run is None:
            raise KeyError(f"run {message.run_id!r} is not open in this worker")
        self.begin(run.conn)
        _store.update_run(
            run.conn, run.run_id, state=message.state, exit_code=message.exit_code,
            finished=time.time(), updated=time.time(), summary=to_json(run.summary),
            rows=run.seq, last_step=run.last_step, metadata=run.metadata_json(),
        )
        run.dirty = False
        self.replies.append(RunFinished(message.request, run.run_id, message.state, run.seq, dict(run.summary)))

    def commit_store(self, conn: sqlite3.Connection) -> None:
        """Write the summaries of ``conn``'s changed runs and commit its transaction."""
        now = time.time()
        for run in self.runs.values():
            if run.dirty and run.conn is conn:
                fields = {"summary": to_json(run.summary), "rows": run.seq, "last_step": run.last_step,
                          "updated": now}
                if run.rules is not None:
                    fields["metadata"] = run.metadata_json()
                _store.update_run(conn, run.run_id, **fields)
                run.dirty = False
        self.in_transaction = None
        try:
            conn.execute("COMMIT")
        except Exception as exc:
            conn.execute("ROLLBACK")
            failed = [r for r in self.replies if not isinstance(r, ErrorReply)]
            self.replies = [
                ErrorReply(getattr(r, "request", None), getattr(r, "run_id", None),
                           pack_exception(exc, f"mplogger worker {self.index}"))
                for r in failed
            ]

    def commit(self) -> None:
        """Commit everything this read of messages changed, one store at a time."""
        for conn in {run.conn for run in self.runs.values() if run.dirty}:
            if self.in_transaction is not conn:
                self.begin(conn)
            self.commit_store(conn)
        if self.in_transaction is not None:
            self.commit_store(self.in_transaction)

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
            conn = self.store(root)
            self.begin(conn)  # the run may have finished meanwhile: merge into what is stored
            conn.execute("UPDATE runs SET metadata = json_set(metadata, '$.environment', json(?)) WHERE id = ?",
                         (to_json(environment), run_id))
            stored = True
        if stored:
            self.commit()

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


def serve(index: int) -> None:
    """The loop of one worker: run inside a pool process until WorkerStop or manager death."""
    _serving.set()
    rec = QueueReader(_rec_qs[index])
    rsp = _rsp_qs[index]
    worker = Worker(index)
    rsp.put(WorkerHello(index, os.getpid()))
    sentinel = multiprocessing.parent_process().sentinel
    stop = False
    try:
        while not stop:
            ready = multiprocessing.connection.wait([rec, sentinel], timeout=0.05 if worker.collecting else 1.0)
            messages = rec.read_available() if rec in ready else []
            for position, message in enumerate(messages):
                if type(message) is WorkerStop:
                    del messages[position:]
                    stop = True
                    break
            if messages:
                for reply in worker.handle_all(messages):
                    rsp.put(reply)
            if messages or worker.collecting:
                worker.run_deferred()
            if not stop and not messages and not manager_alive():
                worker.crash_open_runs()
                break
    finally:
        worker.store_collected(block=True)  # a run that ended at once still gets its environment
        worker.close()
        rsp.close()
        rsp.join_thread()
        os._exit(0)
