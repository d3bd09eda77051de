"""The manager: a mux between one user process and a pool of internal workers.

::

    user process            manager (this module)              pool of workers
    ------------  mgr_i -->  route by run id, no decoding  -- rec_q[i] -->  _writer.serve(i)
                 <-- mgr_o   relay replies and errors    <-- rsp_q[i] --

Each run is pinned to one worker, so its records stay in order; runs on different workers are
written in parallel. The manager stops reading while a worker has more than ``inflight_rows``
rows or ``inflight_bytes`` bytes not yet committed: the user's ``log()`` then blocks
(back-pressure), and memory stays bounded however wide the rows are.

It lives in its own session (Ctrl-C and a Jupyter kernel's process-group kill do not reach it)
and watches the user process: when that dies without a word, it writes every record it has,
marks the open runs ``crashed`` and exits with its pool.
"""

from __future__ import annotations

import itertools
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
import warnings
from typing import Any, Callable, Dict, List, Optional

import attrs

from mplogger import _store
from mplogger._worker import _writer
from mplogger._ipc._channel import FifoReader, QueueReader
from mplogger._shared._errors import ManagerError, describe_exit
from mplogger._ipc._remote import pack_exception
from mplogger._ipc._messages import (
    from_child,
    internal,
    PROTOCOL_VERSION,
    BatchesDone,
    Busy,
    ErrorReply,
    FinishRun,
    FlushRun,
    GetSummary,
    LogArtifact,
    UseArtifact,
    Hello,
    InitRun,
    LogBatch,
    ManagerPoll,
    ManagerStop,
    PollReply,
    Ready,
    StopAck,
    SystemSample,
    UpdateRun,
    ConsoleLines,
    WorkerHello,
    WorkerStop,
)
from mplogger._ipc._mp_private import pool_processes, queue_pipe, resource_tracker_fd
from mplogger._shared._processes import process_alive
from mplogger._shared._settings import Settings
from mplogger._manager._system import SystemSampler

__all__ = ["main"]

_POLL_S = 0.5


_HOLD_S = 2.0
_RECORDS = (LogBatch, UpdateRun, ConsoleLines)
_CHILD_RECORDS = _RECORDS + (LogArtifact, UseArtifact)  # what a child may send, the last two with its origin
_REPLACEMENTS = 3


@attrs.define
class _Route:
    index: int
    root: str
    finish_request: Optional[int] = None
    counters: Optional[Dict[str, float]] = None
    parent_rows: int = 0
    held: List[tuple] = attrs.Factory(list)

    @property
    def finishing(self) -> bool:
        return self.finish_request is not None


@attrs.define(eq=False)
class _Worker:
    """One internal worker as the mux sees it: its queues, the requests it has not answered, the
    rows and bytes sent to it and not yet written, and its process."""

    rec_q: Any
    rsp_q: Any  # held here: the reader below has only its fd
    replies: QueueReader
    pid: int = 0
    process: Optional[multiprocessing.process.BaseProcess] = None
    waiting: Dict[int, str] = attrs.Factory(dict)  # request -> run id, until the worker replies
    rows: int = 0
    bytes: int = 0
    replaced: int = 0  # how many times a new process took its place
    dead: bool = False

    @classmethod
    def on_fresh_queues(cls, ctx: Any) -> "_Worker":
        rsp_q = ctx.Queue()
        return cls(ctx.Queue(), rsp_q, QueueReader(rsp_q))

    def send(self, message: object) -> None:
        self.rec_q.put(message)

    def send_batch(self, message: Any) -> None:
        """A batch of rows: counted as in flight until the worker says it wrote them."""
        self.rows += message.rows
        self.bytes += len(message.payload)
        self.rec_q.put(message)


class Mux:
    """The manager's state and loop."""

    def __init__(self, mgr_i, mgr_o, settings: Settings, client_pid: int) -> None:
        self.inbox = QueueReader(mgr_i)
        self.outbox = mgr_o
        self.settings = settings
        self.client_pid = client_pid
        self.client_sentinel = multiprocessing.parent_process().sentinel
        self.client_gone = False
        self.terminated = False
        self.client_checked = time.monotonic()
        self.routes: Dict[str, _Route] = {}
        self.broken: Dict[str, BaseException] = {}
        self.initializing: Dict[int, str] = {}
        self.internal: Dict[int, str] = {}
        self.internal_ids = itertools.count(-2, -1)
        self.stopping: Optional[float] = None
        self.done = False
        self.workers: List[_Worker] = []
        self.worker_exits: Dict[int, int] = {}  # a worker process's sentinel -> its index
        self.crash_marks: Dict[int, tuple] = {}
        self.pool = None
        self.children = FifoReader()
        self.sampler: Optional[SystemSampler] = None
        self.next_sample = time.monotonic() + settings.system_interval
        self.handlers = self.make_handlers()

    # --- start -------------------------------------------------------------------------
    def start_pool(self) -> None:
        ctx = multiprocessing.get_context("fork")
        count = self.settings.worker_count()
        self.workers = [_Worker.on_fresh_queues(ctx) for _ in range(count)]
        self.pool = ctx.Pool(count, initializer=_writer.init_process,
                             initargs=([w.rec_q for w in self.workers], [w.rsp_q for w in self.workers], os.getpid()))
        for index in range(count):
            self.pool.apply_async(_writer.serve, (index,))
        deadline = time.monotonic() + self.settings.start_timeout()
        pending = set(range(count))
        while pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ManagerError(f"internal workers {sorted(pending)} did not start in time")
            ready = multiprocessing.connection.wait([self.workers[i].replies for i in pending], remaining)
            for reader in ready:
                for message in reader.read_available():
                    if type(message) is WorkerHello:
                        self.workers[message.index].pid = message.pid
                        pending.discard(message.index)
        # The pool reaps its dead workers itself; holding its process objects keeps their
        # sentinels open and their exit codes readable whichever thread reaps them.
        processes = {p.pid: p for p in pool_processes(self.pool)}
        for index, worker in enumerate(self.workers):
            worker.process = processes.get(worker.pid)
            if worker.process is not None:
                self.worker_exits[worker.process.sentinel] = index

    # --- loop --------------------------------------------------------------------------
    def serve(self) -> None:
        while not self.done:
            waitables: list = [worker.replies for worker in self.workers if not worker.dead]
            waitables.extend(self.worker_exits)
            if not self.client_gone:
                waitables.append(self.client_sentinel)
                if not self.paused():
                    waitables.append(self.inbox)
                    waitables.append(self.children)
            timeout = _POLL_S
            if self.settings.system_interval > 0:
                timeout = max(0.0, min(timeout, self.next_sample - time.monotonic()))
            ready = multiprocessing.connection.wait(waitables, timeout)
            for item in ready:
                if item is self.inbox and not self.client_gone:  # on_client_gone drained it
                    self.drain_children()  # what children wrote before the parent's rows comes first
                    for message in self.inbox.read_available():
                        self.route(message)
                elif item is self.children:
                    self.drain_children()
                elif item is self.client_sentinel:
                    self.on_client_gone()
                elif isinstance(item, int):
                    self.on_worker_exit(self.worker_exits.pop(item))
                else:
                    index = self.worker_reading(item)
                    if index is not None:  # not the queue of a worker replaced meanwhile
                        for message in item.read_available():
                            self.relay(index, message)
            now = time.monotonic()
            if self.terminated and not self.client_gone:
                self.on_client_gone()
            if not self.client_gone and now - self.client_checked >= _POLL_S:
                self.client_checked = now
                if not process_alive(self.client_pid):
                    self.on_client_gone()
            self.release_stale(now)
            if self.stopping is not None:
                self.check_stopped()
            elif self.settings.system_interval > 0 and now >= self.next_sample:
                self.sample_system(now)

    def worker_reading(self, replies: object) -> Optional[int]:
        """The index of the worker whose replies ``replies`` reads, if it still serves."""
        return next((index for index, worker in enumerate(self.workers) if worker.replies is replies), None)

    def terminate(self) -> None:
        """SIGTERM: stop serving as if the user process were gone (handled in the loop)."""
        self.terminated = True

    def sample_system(self, now: float) -> None:
        """One sample of the machine and the user process, stored with every open run."""
        self.next_sample = now + self.settings.system_interval
        open_runs = [run_id for run_id, route in self.routes.items() if not route.finishing]
        if not open_runs:
            return
        if self.sampler is None:
            self.sampler = SystemSampler(self.client_pid)
        if not self.sampler.available:
            return
        values = self.sampler.sample()
        counters = self.sampler.counters()
        stamp = time.time()
        for run_id in open_runs:
            route = self.routes[run_id]
            if route.counters is None:  # disk and network I/O are counted from the run's first sample
                route.counters = counters
            since = {key: round(value - route.counters.get(key, value), 3) for key, value in counters.items()}
            self.workers[route.index].send(SystemSample(run_id, stamp, {**values, **since}))

    def paused(self) -> bool:
        rows, size = self.settings.inflight_rows, self.settings.inflight_bytes
        return any(worker.rows > rows or worker.bytes > size for worker in self.workers)

    def reply(self, message: object) -> None:
        if not self.client_gone:
            self.outbox.put(message)

    def error(self, request: Optional[int], run_id: Optional[str], exc: BaseException) -> None:
        self.reply(ErrorReply(request, run_id, pack_exception(exc, f"mplogger manager (pid {os.getpid()})")))

    # --- user -> workers ---------------------------------------------------------------
    def make_handlers(self) -> Dict[type, Callable[[Any], None]]:
        """What the manager does with each message from the user process or a child: the
        manager's whole protocol, one entry a message type."""
        return {
            LogBatch: self.route_record,  # records: to the run's worker, in order, never answered
            UpdateRun: self.route_record,
            ConsoleLines: self.route_record,
            LogArtifact: self.route_artifact,  # a request, or a record when a child sends it
            UseArtifact: self.route_artifact,
            FlushRun: self.route_request,  # requests: answered by the run's worker
            GetSummary: self.route_request,
            FinishRun: self.route_request,
            InitRun: self.init_run,  # opens the run's route, on the least loaded worker
            Hello: self.hello,  # control: answered here
            ManagerStop: self.stop,
            ManagerPoll: self.poll,
        }

    def route(self, message: object) -> None:
        handler = self.handlers.get(type(message))
        if handler is None:
            return self.error(getattr(message, "request", None), None,
                              TypeError(f"manager got an unknown message {type(message).__name__}"))
        handler(message)

    def route_artifact(self, message: Any) -> None:
        (self.route_record if from_child(message) else self.route_request)(message)

    def route_record(self, message: Any) -> None:
        """A run's record to its worker, in order; a child's batch waits for the parent's rows before it."""
        kind = type(message)
        route = self.routes.get(message.run_id)
        if kind is ConsoleLines and (route is None or route.finishing):
            return  # output printed while the run was finishing: dropped, never an error
        if from_child(message) and (route is None or route.finishing):
            return  # a child logging after the parent finished the run: it sees the marker
        if route is None:
            if message.run_id not in self.broken:  # a broken run's error was already sent
                self.error(None, message.run_id, KeyError(f"run {message.run_id!r} is not open"))
            return
        if kind is LogBatch:
            if from_child(message):
                if message.after > route.parent_rows:  # the parent's earlier rows are not here yet
                    route.held.append((time.monotonic(), message))
                    return
            else:
                route.parent_rows += message.rows
            self.workers[route.index].send_batch(message)
        else:
            self.workers[route.index].send(message)
        if route.held and kind is LogBatch and not from_child(message):
            self.release_held(route)

    def route_request(self, message: Any) -> None:
        """A request to the run's worker, after everything children logged before it."""
        kind = type(message)
        if kind is FinishRun and message.run_id in self.routes:
            self.mark_finished(message.run_id)  # children stop before the last drain below
        self.drain_children()  # rows a child logged before this request come first
        route = self.routes.get(message.run_id)
        if route is not None and route.held:
            self.release_held(route, everything=True)
        if route is None or route.finishing:
            cause = self.broken.get(message.run_id) or KeyError(f"run {message.run_id!r} is not open")
            return self.error(message.request, message.run_id, cause)
        if kind is FinishRun:
            route.finish_request = message.request
        self.forward(route.index, message.request, message.run_id, message)

    def hello(self, message: Hello) -> None:
        if message.protocol != PROTOCOL_VERSION:
            return self.error(0, None, ManagerError(
                f"protocol mismatch: client speaks {message.protocol}, "
                f"manager speaks {PROTOCOL_VERSION}"))
        self.reply(Ready(PROTOCOL_VERSION, os.getpid(), tuple(w.pid for w in self.workers), self.children.path))

    def poll(self, message: ManagerPoll) -> None:
        pending = self.pending()
        self.done = self.stopping is not None and not pending
        self.reply(PollReply(message.request, self.done, pending))

    def release_held(self, route: _Route, everything: bool = False) -> None:
        """Route the held child batches whose parent rows have arrived (or all of them)."""
        held, route.held = route.held, []
        for since, message in held:
            if everything or message.after <= route.parent_rows:
                self.workers[route.index].send_batch(message)
            else:
                route.held.append((since, message))

    def release_stale(self, now: float) -> None:
        """Held child batches wait at most ``_HOLD_S`` for parent rows that may never come."""
        for route in self.routes.values():
            if route.held and now - route.held[0][0] > _HOLD_S:
                self.release_held(route, everything=True)

    def drain_children(self) -> None:
        """Route every complete message the child processes have written so far."""
        while multiprocessing.connection.wait([self.children], 0):
            messages = self.children.read_available()
            if not messages:
                break
            for message in messages:
                if type(message) in _CHILD_RECORDS and (type(message) in _RECORDS or from_child(message)):
                    self.route(message)  # a child may send records only

    def forward(self, index: int, request: int, run_id: str, message: object) -> None:
        self.workers[index].waiting[request] = run_id
        self.workers[index].send(message)

    def init_run(self, message: InitRun) -> None:
        live = self.live_workers()
        if not live:
            return self.error(message.request, None, ManagerError("every internal worker has died"))
        load = {i: 0 for i in live}
        for route in self.routes.values():
            if route.index in load:
                load[route.index] += 1
        index = min(live, key=lambda i: (load[i], i))
        run_id = message.record["id"]
        if run_id in self.routes:
            return self.error(message.request, run_id, ValueError(
                f"a run with id {run_id!r} is open in this process; finish it before starting it again"))
        self.routes[run_id] = _Route(index, message.root)
        self.initializing[message.request] = run_id
        self.forward(index, message.request, run_id, message)

    def live_workers(self) -> List[int]:
        return [index for index, worker in enumerate(self.workers) if not worker.dead]

    # --- workers -> user ---------------------------------------------------------------
    def relay(self, index: int, message: object) -> None:
        """What worker ``index`` sends: notes for the manager itself, or a reply to pass on."""
        worker = self.workers[index]
        kind = type(message)
        if kind is BatchesDone:  # rows written: room for more
            worker.rows = max(0, worker.rows - message.rows)
            worker.bytes = max(0, worker.bytes - message.size)
        elif kind is WorkerHello:
            worker.pid = message.pid
        elif kind is Busy:  # a heartbeat for a request still waited on: no reply yet
            if not internal(message.request) and message.request in worker.waiting:
                self.reply(message)
        else:
            self.relay_reply(worker, message)

    def relay_reply(self, worker: _Worker, message: Any) -> None:
        """A worker's reply: it ends its request (and the run's route, for its FinishRun); the
        reply to one of the manager's own requests stays here, but its error is passed on."""
        request = message.request
        run_id = message.run_id
        worker.waiting.pop(request, None)
        initialized = self.initializing.pop(request, None) if request is not None else None
        if initialized is not None and type(message) is ErrorReply:
            self.routes.pop(initialized, None)  # the worker refused the run: no route stays behind
        route = self.routes.get(run_id)
        if route is not None and request is not None and request == route.finish_request:
            del self.routes[run_id]
        if internal(request):
            self.internal.pop(request, None)
            self.crash_marks.pop(request, None)
            if type(message) is ErrorReply:
                self.reply(ErrorReply(None, run_id, message.error, message.note))
            return
        self.reply(message)

    def mark_finished(self, run_id: str) -> None:
        """Tell child processes still holding the run that their rows are no longer taken."""
        try:
            with open(self.children.marker(f"finished-{run_id}"), "w"):
                pass
        except OSError:
            pass

    # --- stop and faults ---------------------------------------------------------------
    def finish_internally(self, run_id: str, state: str, exit_code: Optional[int]) -> None:
        route = self.routes[run_id]
        self.mark_finished(run_id)
        self.drain_children()
        request = next(self.internal_ids)
        route.finish_request = request
        self.internal[request] = run_id
        self.forward(route.index, request, run_id, FinishRun(request, run_id, state, exit_code))

    def stop(self, message: ManagerStop) -> None:
        if self.stopping is None:
            self.stopping = time.monotonic()
            state = "finished" if message.exit_code == 0 else "failed"
            for run_id, route in list(self.routes.items()):
                if not route.finishing:
                    self.finish_internally(run_id, state, message.exit_code)
        self.reply(StopAck(message.request, self.pending()))

    def pending(self) -> tuple:
        return tuple(sorted(self.routes))

    def check_stopped(self) -> None:
        """A live client ends the stop by polling; without one, the manager ends it (bounded)."""
        if self.client_gone and (
            not self.routes or time.monotonic() - self.stopping > self.settings.shutdown_timeout
        ):
            self.done = True

    def on_client_gone(self) -> None:
        """The user process died without ManagerStop: store what it sent, then mark crashed."""
        self.client_gone = True
        self.outbox.cancel_join_thread()
        while multiprocessing.connection.wait([self.inbox], 0):
            messages = self.inbox.read_available()
            if not messages:
                break
            for message in messages:
                self.route(message)
        self.drain_children()
        for run_id, route in list(self.routes.items()):
            if not route.finishing:
                self.finish_internally(run_id, "crashed", None)
        if self.stopping is None:
            self.stopping = time.monotonic()

    def on_worker_exit(self, index: int) -> None:
        """A worker died: its runs end ``crashed`` with an error naming the signal; a new one serves."""
        if self.stopping is not None and self.done:
            return
        worker = self.workers[index]
        worker.dead = True
        worker.rows = worker.bytes = 0
        worker.rec_q.cancel_join_thread()
        pid = worker.pid
        cause = ManagerError(
            f"mplogger internal worker {index} (pid {pid}) died: {self.exit_status(index)}; "
            "records of its runs that were not yet committed are lost")
        lost = {run_id: route.root for run_id, route in self.routes.items() if route.index == index}
        for request, run_id in worker.waiting.items():
            if request >= 0:
                self.error(request, run_id, cause)
            elif request in self.crash_marks:  # a crash mark sent to it before it died
                lost.setdefault(*self.crash_marks.pop(request))
            if run_id in self.routes:
                lost[run_id] = self.routes[run_id].root
        worker.waiting.clear()
        self.replace_worker(index)
        live = [index] if not self.workers[index].dead else self.live_workers()
        for run_id, root in sorted(lost.items()):
            self.broken[run_id] = cause
            self.mark_finished(run_id)
            self.routes.pop(run_id, None)
            self.internal = {r: v for r, v in self.internal.items() if v != run_id}
            self.error(None, run_id, cause)
            if live:
                request = next(self.internal_ids)
                self.internal[request] = run_id
                self.crash_marks[request] = (run_id, root)
                self.forward(live[0], request, run_id, FinishRun(request, run_id, "crashed", None, root))
            else:
                try:
                    _store.mark_crashed(root, run_id)
                except Exception as exc:  # the run stays "running" until `mplogger doctor`
                    self.error(None, run_id, exc)

    def replace_worker(self, index: int) -> None:
        """Start a worker on fresh queues in place of worker ``index`` (a few times at most).

        The dead worker's queues may hold half a message or a lock it took, so none is reused.
        """
        old = self.workers[index]
        if old.replaced >= _REPLACEMENTS or self.stopping is not None:
            return
        ctx = multiprocessing.get_context("fork")
        new = _Worker.on_fresh_queues(ctx)
        new.replaced = old.replaced + 1
        new.process = ctx.Process(target=_writer.serve_replacement, args=(index, new.rec_q, new.rsp_q, os.getpid()),
                                  name=f"mplogger-worker-{index}", daemon=True)
        new.process.start()
        old.rec_q.close()
        new.pid = new.process.pid
        self.workers[index] = new
        self.worker_exits[new.process.sentinel] = index

    def exit_status(self, index: int) -> str:
        process = self.workers[index].process
        if process is None:
            return "exit status unknown"
        deadline = time.monotonic() + 1.0
        while process.exitcode is None and time.monotonic() < deadline:
            process.join(0.05)
        return describe_exit(process.exitcode)

    def shutdown(self) -> None:
        """Tell the workers to stop and make sure every reply has left; do not wait for them.

        Every run is committed by now: a worker exits on WorkerStop or, failing that, as soon as
        its watchdog sees the manager gone, so waiting here would only slow the user's exit.
        """
        for worker in self.workers:
            if not worker.dead:
                queue = worker.rec_q
                queue.put(WorkerStop())
                flusher = threading.Thread(target=queue.join_thread, daemon=True)
                queue.close()
                flusher.start()
                flusher.join(0.5)
        self.children.close()
        if not self.client_gone:
            self.outbox.close()
            flusher = threading.Thread(target=self.outbox.join_thread, daemon=True)
            flusher.start()
            flusher.join(self.settings.shutdown_timeout)


def _release_inherited_fds(keep: set) -> None:
    """Let go of the user process's files and pipes that a forked manager holds copies of.

    Otherwise a pipe the user opened before ``init()`` (a subprocess's stdin, say) never sees
    its end while the manager lives, and whoever waits for that end hangs. Each such fd is
    pointed at /dev/null rather than closed: objects copied from the user process still hold
    their numbers, so a number is never reused while a stale object could close it again.
    """
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        for name in names:
            fd = int(name)
            if fd in keep or fd == null:
                continue
            try:
                os.fstat(fd)  # the listing's own fd is closed by now
                os.dup2(null, fd, inheritable=False)
            except OSError:
                pass
    finally:
        os.close(null)


def _forked_lifeline() -> Optional[int]:
    """Under ``fork``, the pipe end whose closing tells the user process this one has exited.

    ``multiprocessing`` keeps it only in a local of its fork launcher, a frame below this one;
    None where there is none (spawn and forkserver pass only the fds the manager needs).
    """
    frame = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if code.co_name == "_launch" and code.co_filename.endswith("popen_fork.py"):
            lifeline = frame.f_locals.get("child_w")
            return lifeline if isinstance(lifeline, int) else None
        frame = frame.f_back
    return None


def _fds_of(mgr_i, mgr_o, lifeline: int) -> set:
    """The fds the manager needs from before it started: its queues, its parent's sentinel."""
    keep = {0, 1, 2, lifeline}
    for queue in (mgr_i, mgr_o):
        for end in queue_pipe(queue):
            keep.add(end.fileno())
    parent = multiprocessing.parent_process()
    if parent is not None:
        keep.add(parent.sentinel)
    tracker = resource_tracker_fd()
    if tracker is not None:
        keep.add(tracker)
    return keep


def main(mgr_i, mgr_o, settings: Settings, client_pid: int) -> None:
    """The manager process: serve until stopped, or until the user process is gone."""
    try:
        os.setsid()
    except OSError:
        pass
    lifeline = _forked_lifeline()
    if lifeline is not None:
        _release_inherited_fds(_fds_of(mgr_i, mgr_o, lifeline))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*fork.*")
    mux = Mux(mgr_i, mgr_o, settings, client_pid)
    # SIGTERM (e.g. ipykernel ending its children at shutdown): store what was received, mark
    # the open runs crashed and exit, instead of dying with batches still in memory.
    signal.signal(signal.SIGTERM, lambda signum, frame: mux.terminate())
    code = 0
    try:
        mux.start_pool()
        mux.serve()
    except BaseException as exc:
        code = 1
        mux.error(None, None, exc)
    finally:
        try:
            mux.shutdown()
        finally:
            os._exit(code)
