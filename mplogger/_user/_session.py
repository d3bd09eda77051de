"""This process's logging session: its manager client, its open runs, and the exit path.

One manager per user process. A forked child does not inherit the session: the parent's open
runs log from the child through the parent's manager (see :mod:`mplogger._user._child`), and a child
that calls ``init()`` starts a session and a manager of its own.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any, Callable, Dict, List, Mapping, Optional, Union

from mplogger._user import _exit
from mplogger._user._client import Client
from mplogger._user._console import Capture
from mplogger._ipc._mp_private import disown_child
from mplogger._shared._platform import system_metrics_unavailable
from mplogger._shared._processes import in_jupyter
from mplogger._user._run import add_output, become_child, before_fork, close_at_exit, commit_pending
from mplogger._shared._settings import Settings
from mplogger._shared._terminal import notice_once

__all__ = ["Manager", "Session", "current", "setup", "teardown"]


class Session:
    def __init__(self) -> None:
        self.pid = os.getpid()
        self.client: Optional[Client] = None
        self.runs: Dict[str, Any] = {}
        self.lock = threading.RLock()
        self.settings: Optional[Settings] = None
        self.capture: Optional[Capture] = None


_session = Session()
_exit_registered_pid = 0
_jupyter_hooked = False


def current() -> Session:
    """The session of this process (a fresh one in a forked child)."""
    global _session
    if _session.pid != os.getpid():
        _session = Session()
    return _session


def _after_fork_in_child() -> None:
    """A forked child logs into the parent's open runs through the parent's manager."""
    for run in list(_session.runs.values()):
        become_child(run)
    if _session.client is not None:
        # the manager is the parent's child, not ours: multiprocessing must not join it at exit
        disown_child(_session.client.process)


_FORK_SEND_S = 0.05


def _before_fork() -> None:
    """Send this process's buffered rows before a fork, so the child's rows are stored after them."""
    if _session.pid != os.getpid() or _session.client is None or _session.client.stopped:
        return
    for run in list(_session.runs.values()):
        # Never waits: rows that cannot go at once stay buffered and are sent later; only their
        # order relative to the child's first rows is then not guaranteed.
        before_fork(run, _FORK_SEND_S)


os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)


def setup(settings: Optional[Union[Settings, Mapping[str, Any]]] = None) -> Client:
    """StartProcess + EnsureUp, once per process (later calls return the running client)."""
    global _exit_registered_pid
    session = current()
    with session.lock:
        if session.client is not None and not session.client.stopped:
            if session.client.manager_alive():
                return session.client
            _forget_dead_manager(session)
        resolved = Settings.from_env(settings)
        session.client = Client(resolved)
        session.settings = resolved
        _exit.install_hooks()
        if resolved.system_interval > 0 and system_metrics_unavailable():
            notice_once("system metrics need psutil on this platform: pip install 'mplogger[system]' "
                        "(or set MPLOGGER_SYSTEM_INTERVAL=0 to turn them off)")
        if _exit_registered_pid != os.getpid():
            _exit_registered_pid = os.getpid()
            _exit.register(_at_exit)
        _hook_jupyter(session.client)
        return session.client


class Manager:
    """This process's manager as :func:`mplogger.setup` returns it: which processes serve this one
    (for monitoring them, or for a fault test's ``kill -9``). The values are read when asked."""

    def __init__(self, client: Client) -> None:
        self._client = client

    @property
    def pid(self) -> int:
        """The manager's process id."""
        return self._client.process.pid

    @property
    def worker_pids(self) -> List[int]:
        """The process ids of its internal workers, in pool order (a replaced worker's new pid)."""
        return list(self._client.worker_pids)

    @property
    def running(self) -> bool:
        """Whether it still serves this process."""
        return not self._client.stopped and self._client.manager_alive()

    def __repr__(self) -> str:
        return f"<mplogger.Manager pid={self.pid} workers={self.worker_pids} running={self.running}>"


def console_target(run: Any) -> None:
    """Send captured console output to ``run`` (the active run); None stops the capture."""
    session = current()
    mode = session.settings.console if session.settings is not None else "off"
    if run is None or mode == "off":
        stop_console()
        return
    if session.capture is None:
        session.capture = Capture("wrap" if mode == "auto" else mode, _to_target)
    session.capture.target = run


def _to_target(target: Any, stream: str, lines: list) -> None:
    if target is not None:
        add_output(target, stream, lines)


def stop_console(run: Any = None) -> None:
    """End the capture (only if it serves ``run``, when given); nothing stays redirected."""
    session = current()
    capture = session.capture
    if capture is not None and (run is None or capture.target is run):
        session.capture = None
        capture.stop()  # its last unfinished lines still reach the target
        capture.target = None


def teardown(exit_code: Optional[int] = None, on_closed: Optional[Callable[[Any], None]] = None) -> None:
    """Finish every open run (state from ``exit_code``) and stop the manager, bounded in time."""
    session = current()
    with session.lock:
        client = session.client
        if client is None:
            return
        code = _exit.exit_code() if exit_code is None else exit_code
        stop_console()  # its last lines go to their run before the runs are closed
        for run in list(session.runs.values()):
            try:
                commit_pending(run)
            except Exception as exc:  # reported; the other runs are still closed
                sys.stderr.write(f"mplogger: run {run.id}: its last rows could not be sent before it was closed "
                                 f"and may be missing: {type(exc).__name__}: {exc}\n")
        pending = client.stop(code)
        state = "finished" if code == 0 else "failed"
        for run in list(session.runs.values()):
            close_at_exit(run, state)
        session.runs.clear()
        session.client = None
        if pending:
            sys.stderr.write(
                f"mplogger: the manager did not confirm within {client.settings.shutdown_timeout:g} s "
                f"that these runs are complete; their last records may be missing: {', '.join(pending)}\n"
            )


def _forget_dead_manager(session: Session) -> None:
    """The manager died (its workers mark the open runs crashed): close them here and let go."""
    client = session.client
    if client is None:
        return
    for run in list(session.runs.values()):
        close_at_exit(run, "crashed")
    session.runs.clear()
    client.stopped = True
    client.release(join_timeout=0.1)
    session.client = None


def _at_exit() -> None:
    if _session.pid == os.getpid() and _session.client is not None:
        if not _session.client.stopped and not _session.client.manager_alive():
            _forget_dead_manager(_session)  # nothing to stop: the error was reported already
            return
        teardown()


def _hook_jupyter(client: Client) -> None:
    """In a notebook, send buffered rows after every cell, so an idle kernel holds nothing."""
    global _jupyter_hooked
    if _jupyter_hooked or not in_jupyter():
        return
    ip = sys.modules["IPython"].get_ipython()

    def after_cell(*_: Any) -> None:
        session = current()
        if session.client is not None and not session.client.stopped:
            try:
                session.client.flush_all()
            except Exception as exc:  # never break the kernel over logging
                sys.stderr.write(f"mplogger: could not send rows after the cell: {exc}\n")

    def before_cell(*_: Any) -> None:
        capture = current().capture
        if capture is not None:
            capture.reinstall()  # IPython 9 puts its own stream write back after every cell

    ip.events.register("post_run_cell", after_cell)
    ip.events.register("pre_run_cell", before_cell)
    _jupyter_hooked = True
