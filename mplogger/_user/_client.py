"""The user process's side of the queues: StartProcess, EnsureUp, requests, batches, stop.

Every wait here is bounded and also watches the manager's process sentinel, so a manager that
died is reported at once, named with its signal, instead of being waited for.
"""

from __future__ import annotations

import itertools
import multiprocessing
import multiprocessing.connection
import os
import threading
import time
from typing import Callable, Dict, List, Optional

from mplogger._ipc import _launch
from mplogger._ipc._channel import QueueReader, QueueWriter, remove_fifo_folder
from mplogger._ipc._mp_private import close_queue, unlink_semaphore_names
from mplogger._shared._errors import ManagerError, add_note, describe_exit, expect
from mplogger._ipc._remote import unpack_exception
from mplogger._ipc._messages import (
    Busy,
    pack_rows,
    PROTOCOL_VERSION,
    ConsoleLines,
    ErrorReply,
    Hello,
    LogBatch,
    ManagerPoll,
    ManagerStop,
    PollReply,
    Ready,
    StopAck,
)
from mplogger._shared._settings import Settings

__all__ = ["Client", "RunSender"]

_STASH_LIMIT = 1000


class Client:
    """One manager per user process; this object owns it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pid = os.getpid()
        self.start_method = _launch.choose_start_method(settings.start_method)
        self._requests = itertools.count(1)
        self._reply_lock = threading.RLock()
        self._run_errors: Dict[str, List[BaseException]] = {}
        self._stash: List[object] = []
        self._manager_errors: List[BaseException] = []
        self._background: Dict[int, tuple] = {}  # requests not waited for now: request -> (run id, on_reply)
        self._results: Dict[int, object] = {}  # their replies (an exception for an error reply)
        self.senders: Dict[str, "RunSender"] = {}
        self._closing = threading.Event()
        self._flusher: Optional[threading.Thread] = None
        self.stopped = False
        self._start()

    # --- StartProcess [1,2] and EnsureUp [3,4] ------------------------------------------
    def _start(self) -> None:
        ctx = multiprocessing.get_context(self.start_method)
        self.mgr_i = ctx.Queue()
        self.mgr_o = ctx.Queue()
        self.inbox = QueueWriter(self.mgr_i)
        self.process = ctx.Process(
            target=_launch.manager_main,
            args=(self.mgr_i, self.mgr_o, self.settings, os.getpid()),
            name="mplogger-manager",
        )
        _launch.start(self.process)
        self.replies = QueueReader(self.mgr_o)
        self._put(Hello(PROTOCOL_VERSION, os.getpid()))
        ready = self._wait(lambda m: type(m) is Ready or (type(m) is ErrorReply and m.request == 0),
                           self.settings.start_timeout(), "EnsureUp")
        if type(ready) is ErrorReply:
            raise ManagerError(ready.error.message)
        self.manager_pid = ready.manager_pid
        self.worker_pids = ready.worker_pids
        self.attach_path = ready.attach_path
        for queue in (self.mgr_i, self.mgr_o):  # the manager has opened them: names not needed
            unlink_semaphore_names(queue)

    # --- waiting and sending -------------------------------------------------------------
    def manager_alive(self) -> bool:
        return not multiprocessing.connection.wait([self.process.sentinel], 0)

    def manager_died(self) -> ManagerError:
        exitcode = self.process.exitcode if os.getpid() == self.pid else None
        error = ManagerError(
            f"the mplogger manager (pid {self.process.pid}) died: {describe_exit(exitcode)}; "
            "records not yet stored are lost. Call mplogger.init() to start a new manager."
        )
        if self._manager_errors:
            error.__cause__ = self._manager_errors[-1]
        return error

    def _wait(self, match: Callable[[object], bool], timeout: float, what: str,
              request: Optional[int] = None) -> object:
        """The first reply ``match`` takes, within ``timeout`` seconds; a heartbeat (Busy) for
        ``request`` starts the ``timeout`` again, so a long store is waited for while it moves."""
        deadline = time.monotonic() + timeout
        with self._reply_lock:
            for index, message in enumerate(self._stash):  # read earlier by another thread
                if match(message):
                    del self._stash[index]
                    return message
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ManagerError(
                        f"the mplogger manager did not answer {what} within {timeout:g} s"
                    )
                ready = multiprocessing.connection.wait([self.replies, self.process.sentinel], remaining)
                if self.replies in ready:
                    found = None
                    for message in self.replies.read_available():
                        if type(message) is Busy:
                            if message.request == request:
                                deadline = time.monotonic() + timeout
                        elif found is None and match(message):
                            found = message
                        else:
                            self._file(message)
                    if found is not None:
                        return found
                elif ready:
                    raise self.manager_died()

    def _file(self, message: object) -> None:
        """Keep a reply for the thread waiting for it, or an asynchronous error for its run."""
        if type(message) is Busy:
            return  # a heartbeat for a wait of another thread, or one that gave up
        request = getattr(message, "request", None)
        if request in self._background:
            run_id = self._replied(request)
            if type(message) is ErrorReply:
                error = add_note(unpack_exception(message.error), message.note)
                self._run_errors.setdefault(run_id, []).append(error)  # raised at the run's next call
                message = error
            self._results[request] = message
        elif type(message) is ErrorReply and message.request is None:
            error = add_note(unpack_exception(message.error), message.note)
            if message.run_id is None:
                self._manager_errors.append(error)
            else:
                self._run_errors.setdefault(message.run_id, []).append(error)
        else:
            self._stash.append(message)
            del self._stash[:-_STASH_LIMIT]  # replies to waits that gave up are not kept for ever

    def poll(self) -> None:
        """Collect replies that arrived without waiting (asynchronous errors)."""
        if multiprocessing.connection.wait([self.replies], 0) and self._reply_lock.acquire(False):
            try:
                for message in self.replies.read_available():
                    self._file(message)
            finally:
                self._reply_lock.release()

    def take_errors(self, run_id: str) -> List[BaseException]:
        return self._run_errors.pop(run_id, [])

    def has_errors(self, run_id: str) -> bool:
        """Whether errors of ``run_id`` arrived that it has not raised yet."""
        self.poll()
        return bool(self._run_errors.get(run_id))

    def _put(self, message: object, on_written: Optional[Callable[[], None]] = None,
             timeout: Optional[float] = None) -> None:
        """Write to the manager (in the pipe on return); block, bounded, while it is full."""
        timeout = self.settings.shutdown_timeout if timeout is None else timeout
        try:
            self.inbox.put(message, self._check_manager, timeout, on_written)
        except TimeoutError:
            raise ManagerError(f"the mplogger manager accepted nothing for {timeout:g} s") from None

    def _check_manager(self) -> None:
        if not self.manager_alive():
            raise self.manager_died()

    def send(self, message: object, on_written: Optional[Callable[[], None]] = None,
             timeout: Optional[float] = None) -> None:
        if self.stopped:
            raise ManagerError("the mplogger manager was stopped; call mplogger.init() to start again")
        self._put(message, on_written, timeout)

    def new_request(self) -> int:
        """A fresh request id (for a message whose reply nobody waits for)."""
        return next(self._requests)

    def request(self, make: Callable[[int], object], what: str, timeout: Optional[float] = None) -> object:
        """Send the message ``make(request_id)`` and wait (bounded) for its reply."""
        request = next(self._requests)
        self.send(make(request))
        reply = self._wait(lambda m: getattr(m, "request", None) == request,
                           timeout or self.settings.shutdown_timeout, what, request)
        if type(reply) is ErrorReply:
            raise add_note(unpack_exception(reply.error), reply.note)
        return reply

    def submit(self, make: Callable[[int], object], run_id: str,
               on_reply: Optional[Callable[[], None]] = None) -> int:
        """Send the request ``make(request_id)`` without waiting; its reply is kept for :meth:`result`
        and an error reply is also raised at the run's next call. ``on_reply`` runs once the reply
        (or an error in its place) has arrived. Returns the request id."""
        request = next(self._requests)
        self._background[request] = (run_id, on_reply)
        try:
            self.send(make(request))
        except BaseException:
            self._replied(request)
            raise
        return request

    def _replied(self, request: int) -> str:
        run_id, on_reply = self._background.pop(request)
        if on_reply is not None:
            try:
                on_reply()
            except Exception:  # a clean-up: never in the way of the reply
                pass
        return run_id

    def result(self, request: int, timeout: Optional[float], what: str) -> object:
        """The reply to a request sent with :meth:`submit`, waiting (bounded) for it."""
        with self._reply_lock:
            if request not in self._results:
                reply = self._wait(lambda m: getattr(m, "request", None) == request,
                                   timeout or self.settings.shutdown_timeout, what, request)
                if request in self._background:
                    self._replied(request)
                if type(reply) is ErrorReply:
                    raise add_note(unpack_exception(reply.error), reply.note)
                return reply
            reply = self._results.pop(request)
        if isinstance(reply, BaseException):
            for errors in self._run_errors.values():
                if any(error is reply for error in errors):
                    errors[:] = [error for error in errors if error is not reply]  # raised here instead
            raise reply
        return reply

    # --- batches -------------------------------------------------------------------------
    def sender(self, run_id: str) -> "RunSender":
        """The buffer of a new run (and the flusher thread, once per client)."""
        sender = self.senders[run_id] = RunSender(self, run_id, self.settings.batch_size)
        if self._flusher is None:
            self._flusher = threading.Thread(target=self._flush_loop, name="mplogger-flusher", daemon=True)
            self._flusher.start()
        return sender

    def forget(self, run_id: str) -> None:
        self.senders.pop(run_id, None)

    def flush_all(self) -> None:
        """Send every run's buffered rows now (they are not waited for)."""
        for sender in list(self.senders.values()):
            sender.flush()

    def _flush_loop(self) -> None:
        interval = self.settings.batch_interval
        while not self._closing.wait(interval):
            for sender in list(self.senders.values()):
                if sender.rows or sender.lines:
                    try:
                        sender.flush()
                    except Exception as exc:
                        # keep one error for the run's next call; what cannot be sent is dropped
                        self._run_errors.setdefault(sender.run_id, [exc])
                        if isinstance(exc, ManagerError):
                            sender.lines.clear()
                            del sender.rows[:]

    # --- ManagerStop [b,c] and ManagerPoll [d,e] -------------------------------------------
    def stop(self, exit_code: int) -> tuple:
        """Finish every open run with ``exit_code`` and stop the manager. Returns runs left open."""
        if self.stopped:
            return ()
        self._closing.set()
        pending: tuple = ()
        try:
            self.flush_all()
            timeout = self.settings.shutdown_timeout
            deadline = time.monotonic() + timeout
            ack = expect(self.request(lambda r: ManagerStop(r, exit_code), "ManagerStop"), StopAck, "ManagerStop")
            pending = ack.pending
            pause = 0.001
            while True:
                reply = expect(self.request(lambda r: ManagerPoll(r), "ManagerPoll"), PollReply, "ManagerPoll")
                pending = reply.pending
                if reply.done:
                    pending = ()
                    break
                if time.monotonic() > deadline:
                    break
                time.sleep(pause)  # poll interval of the ManagerPoll protocol
                pause = min(pause * 2, 0.05)
        except ManagerError:
            pending = tuple(self.senders)
        finally:
            self.stopped = True
            self.release(join_timeout=min(5.0, self.settings.shutdown_timeout) if not pending else 0.5)
        return pending

    def release(self, join_timeout: float) -> None:
        """Wait (bounded) for the manager to exit, then free threads, pipes and fds."""
        self._closing.set()
        self.process.join(join_timeout)
        if self.process.exitcode is None:
            self.process.kill()
            self.process.join(1.0)
        close_queue(self.mgr_i)
        close_queue(self.mgr_o)
        if self._flusher is not None and self._flusher is not threading.current_thread():
            self._flusher.join(1.0)
        if self.process.exitcode is not None:
            attach_path = getattr(self, "attach_path", None)
            if self.process.exitcode != 0 and attach_path and os.getpid() == self.pid:
                remove_fifo_folder(os.path.dirname(attach_path))  # a killed manager left its pipe
            self.process.close()


class RunSender:
    """A run's rows waiting to be sent: one pickled LogBatch per ``size`` rows or per tick.

    Appending takes no lock: ``rows`` is never replaced, and a sender takes the first ``n``
    rows with a slice and a ``del`` (each atomic), so rows appended meanwhile stay for the next
    batch. Taking and sending happen under one lock, so batches leave in order.
    """

    __slots__ = ("client", "run_id", "size", "rows", "lock", "lines", "sent", "observe")

    def __init__(self, client: Client, run_id: str, size: int) -> None:
        self.client = client
        self.run_id = run_id
        self.size = size
        self.rows: list = []
        self.lines: list = []  # captured console output: (timestamp, stream, text)
        self.lock = threading.Lock()
        self.sent = 0  # rows in the pipe so far: a child given the run now is ordered after them
        self.observe: Optional[Callable[[list, int], None]] = None  # told of each batch of rows sent

    def send(self) -> None:
        """Send what is buffered now (the caller then checks the run for errors)."""
        with self.lock:
            self._send_locked(None)
        self.client.poll()

    flush = send

    def send_if_free(self, timeout: float) -> bool:
        """Send what is buffered if no other send is under way and the pipe takes it in ``timeout``.

        For a fork hook, which must never wait on a lock: a signal handler that forks may have
        interrupted a send of this very thread. Returns whether everything was sent.
        """
        if not self.lock.acquire(False):
            return False
        try:
            self._send_locked(timeout)
            return True
        except ManagerError:
            return False
        finally:
            self.lock.release()

    def _send_locked(self, timeout: Optional[float]) -> None:
        """Send the buffered console lines, then the rows (the caller holds ``lock``)."""
        lines, rows = self.lines, self.rows
        taken = len(lines)  # lines appended meanwhile (other threads print) wait for the next send
        if taken:
            self.client.send(ConsoleLines(self.run_id, tuple(lines[:taken])),
                             lambda: lines.__delitem__(slice(0, taken)), timeout)
        count = len(rows)
        if not count:
            return
        payload, columns = pack_rows(rows[:count])
        # the rows leave the buffer only once they are in the pipe (with Ctrl-C held back)
        self.client.send(LogBatch(self.run_id, payload, count, columns=columns), lambda: self._sent(count), timeout)

    def _sent(self, count: int) -> None:
        if self.observe is not None:
            self.observe(self.rows, count)
        del self.rows[:count]
        self.sent += count
