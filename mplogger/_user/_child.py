"""A run seen from a child process: its rows go to the parent's manager, through a named pipe.

A ``Run`` passed to a child process (``multiprocessing.Process`` or ``Pool`` under any start
method, ``concurrent.futures.ProcessPoolExecutor``), or inherited by a forked child, becomes a
:class:`ChildRun` there. Its ``log()`` checks the row like the parent's and writes it straight
through to the manager (no buffer: a child killed or terminated right after ``log()`` returned
loses nothing). The run's step counter belongs to the process that called ``init()``: a child's
rows are stored at the run's current step and do not advance it, and ``step=`` is refused.
"""

from __future__ import annotations

import os
import pickle
import time
import uuid
import warnings
from typing import Any, Dict, List, Mapping, Optional

import attrs

from mplogger._ipc._channel import FifoWriter
from mplogger._shared._errors import ManagerError, UsageError
from mplogger._ipc._messages import ConsoleLines, LogArtifact, LogBatch, UpdateRun, UseArtifact
from mplogger._shared._values import check_row, from_json, jsonable, store_media, to_json
from mplogger._user._wandb_methods import WandbRunMethods

__all__ = ["Attachment", "ChildRun", "attach", "attachment_token", "attach_token"]


@attrs.frozen
class Attachment:
    """What a child process needs to log into a run of another process."""

    run_id: str
    name: str
    project: str
    root: str
    dir: str
    config: dict
    attach_path: str
    manager_pid: int
    owner_pid: int
    timeout: float
    console: str = "off"
    after: int = 0
    allow_val_change: bool = False


def attachment_token(attachment: Attachment) -> str:
    """``attachment`` as one line of JSON, for APIs that pass an id string between processes."""
    return to_json(attrs.asdict(attachment))


def attach_token(token: str) -> Any:
    """The run that :func:`attachment_token` names, for this process (``wandb._attach``)."""
    if not isinstance(token, str):
        raise TypeError(f"_attach(attach_id): expected the string run._attach_id, got {type(token).__name__}")
    try:
        fields = from_json(token)
        attachment = Attachment(**fields)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"_attach(attach_id): not a run's _attach_id: {token[:80]!r}") from exc
    return attach(attachment)


def _finished_marker(attachment: Attachment) -> str:
    return os.path.join(os.path.dirname(attachment.attach_path), f"finished-{attachment.run_id}")


class ChildRun(WandbRunMethods):
    """The child-process side of a run: ``log()`` works; finishing stays with the parent."""

    def __init__(self, attachment: Attachment) -> None:
        self._attachment = attachment
        self.id = attachment.run_id
        self.name = attachment.name
        self.project = attachment.project
        self.root = attachment.root
        self.dir = attachment.dir
        from mplogger._user._run import Config  # the parent's rules for config changes, one copy of them

        self.config = Config(self, attachment.config, attachment.allow_val_change)
        self._writer = FifoWriter(attachment.attach_path)
        self._marker = _finished_marker(attachment)
        self._pending: Dict[str, Any] = {}
        self._warned = False

    def log(self, data: Mapping[str, Any], step: Optional[int] = None, commit: Optional[bool] = None,
            sync: Optional[bool] = None) -> None:
        """Log a row from this child process into the parent's run (written through at once)."""
        if step is not None:
            raise ValueError(
                f"run {self.id}: log(step=...) is not accepted in a child process (pid {os.getpid()}): "
                "the run's step belongs to the process that called init(). "
                "Log a key of your own instead, e.g. {'worker_step': n}."
            )
        values = self._check(data)
        if commit is False:
            self._pending.update(values)
            return
        if self._pending:
            self._pending.update(values)
            values, self._pending = self._pending, {}
        self._send(values)

    def _check(self, data: Any) -> Dict[str, Any]:
        """The row checked as the parent checks it, media written into the run's folder here.

        Only plain JSON-able values leave this process. The child does not know the run's step,
        so its media file names carry step 0 (the row's ``_step`` is still the run's).
        """
        return store_media(check_row(data, self._reserved), self.dir, 0)

    def _reserved(self, key: str) -> None:
        warnings.warn(f"log() key {key!r} is set by mplogger; the value given is ignored", stacklevel=5)

    def _send(self, values: Dict[str, Any]) -> None:
        if os.path.exists(self._marker):
            return self._ignore("the run was finished by the process that started it")
        payload = pickle.dumps([(None, time.time(), values)], pickle.HIGHEST_PROTOCOL)
        try:
            self._writer.put(LogBatch(self.id, payload, 1, os.getpid(), self._attachment.after), self._check_manager,
                             self._attachment.timeout)
        except (BrokenPipeError, TimeoutError) as exc:
            return self._ignore(f"its manager is gone ({exc})")
        if os.path.exists(self._marker):  # the parent finished while this row was on its way
            self._ignore("the run was finished by the process that started it (this row may not be stored)")

    def _config_changed(self, changes: Dict[str, Any], deleted: tuple) -> None:
        """A config change made here goes to the run as a change only, merged there with the parent's."""
        if os.path.exists(self._marker):
            return self._ignore("the run was finished by the process that started it", "a config change")
        message = UpdateRun(self.id, config_changes=jsonable(changes), config_deleted=tuple(deleted),
                            origin=os.getpid())
        try:
            self._writer.put(message, self._check_manager, self._attachment.timeout)
        except (BrokenPipeError, TimeoutError) as exc:
            self._ignore(f"its manager is gone ({exc})", "a config change")

    def define_metric(self, name: str, step_metric: Optional[str] = None, step_sync: Optional[bool] = None,
                      hidden: Optional[bool] = None, summary: Optional[str] = None, goal: Optional[str] = None,
                      overwrite: Optional[bool] = None) -> Dict[str, Any]:
        """As the parent's ``define_metric``: the rule goes to the run and is applied where it is stored."""
        from mplogger._shared._metrics import MetricRules

        rule = MetricRules().define(name, step_metric, step_sync, hidden, summary, goal, overwrite)
        try:
            self._writer.put(UpdateRun(self.id, metrics=(rule,), origin=os.getpid()), self._check_manager,
                             self._attachment.timeout)
        except (BrokenPipeError, TimeoutError) as exc:
            self._ignore(f"its manager is gone ({exc})", "define_metric()")
        return rule

    def log_artifact(self, artifact_or_path: Any, name: Optional[str] = None, type: Optional[str] = None,
                     aliases: Optional[List[str]] = None, tags: Optional[List[str]] = None) -> Any:
        """As the parent's: the files are staged here and the worker stores them; nothing is replied
        here, so ``artifact.wait()`` looks the version up in the store (an error goes to the parent)."""
        from mplogger._readers._artifact import as_artifact, check_aliases, mark_sent, prepare_log

        artifact = as_artifact(artifact_or_path, name, type, "run.log_artifact")
        aliases = check_aliases(aliases)
        if os.path.exists(self._marker):
            raise UsageError(f"run {self.id} was finished by the process that started it: log_artifact() needs "
                             "a running run")
        fields = prepare_log(artifact, self.root, aliases)
        token = uuid.uuid4().hex
        self._put(LogArtifact(None, self.id, self.project, **fields, token=token, origin=os.getpid()))
        mark_sent(artifact, ("store", token, self._manager_alive), self.root)
        return artifact

    def use_artifact(self, artifact_or_name: Any, type: Optional[str] = None, aliases: Optional[List[str]] = None,
                     use_as: Optional[str] = None) -> Any:
        """As the parent's: the version is read from the store here and its use recorded with the run."""
        from mplogger._readers._api import Api
        from mplogger._readers._artifact import use_spec

        project, name, alias = use_spec(self, artifact_or_name, type, aliases)
        api = Api(self.root)
        try:
            artifact = api.artifact(f"{project or self.project}/{name}:{alias}", type=type)
        finally:
            api.close()
        self._put(UseArtifact(None, self.id, artifact.project, name, artifact.version, origin=os.getpid()))
        return artifact

    def _manager_alive(self) -> None:
        """ManagerError once the run's manager has exited (a zombie not reaped yet counts as gone)."""
        from mplogger._shared._processes import process_alive

        pid = self._attachment.manager_pid
        if not process_alive(pid, time.time()):
            raise ManagerError(f"run {self.id}: its manager is gone (pid {pid} has exited)")

    def _put(self, message: object) -> None:
        try:
            self._writer.put(message, self._check_manager, self._attachment.timeout)
        except (BrokenPipeError, TimeoutError) as exc:
            raise ManagerError(f"run {self.id}: its manager is gone ({exc})") from None

    @property
    def _attach_id(self) -> str:
        """This run for yet another process (``wandb._attach``), as the parent's ``run._attach_id``."""
        return attachment_token(self._attachment)

    def _check_manager(self) -> None:
        try:
            os.kill(self._attachment.manager_pid, 0)
        except ProcessLookupError:
            raise BrokenPipeError(f"manager pid {self._attachment.manager_pid} has exited") from None

    def _ignore(self, why: str, what: str = "log()") -> None:
        if not self._warned:
            self._warned = True
            warnings.warn(f"run {self.id}: {why}; {what} from pid {os.getpid()} is ignored", stacklevel=4)

    def add_output(self, stream: str, lines: Any) -> None:
        """Console lines printed by this child (through an inherited capture) go to the run."""
        if os.path.exists(self._marker):
            return
        message = ConsoleLines(self.id, tuple((stamp, stream, text) for stamp, text in lines), os.getpid())
        try:
            self._writer.put(message, self._check_manager, self._attachment.timeout)
        except (BrokenPipeError, TimeoutError):
            pass

    def flush(self, timeout: Optional[float] = None) -> None:
        """Send a pending ``commit=False`` row. Rows are written through, so nothing else waits."""
        if self._pending:
            values, self._pending = self._pending, {}
            self._send(values)

    def finish(self, exit_code: Optional[int] = None, quiet: Optional[bool] = None) -> None:
        """Only the process that called ``init()`` finishes a run; here this only warns."""
        warnings.warn(f"run {self.id} is finished by the process that started it "
                      f"(pid {self._attachment.owner_pid}), not by pid {os.getpid()}", stacklevel=2)

    @property
    def summary(self) -> Any:
        raise UsageError(f"run {self.id}: the summary is kept by the process that called init(); "
                         "log() values from a child process instead")

    def __reduce__(self) -> tuple:
        return (attach, (self._attachment,))

    @property
    def owner_pid(self) -> int:
        """The pid of the process that called ``init()`` for this run (it finishes the run)."""
        return self._attachment.owner_pid

    def __repr__(self) -> str:
        return f"<mplogger.ChildRun {self.id} {self.name!r} of pid {self._attachment.owner_pid}>"


def attach(attachment: Attachment) -> Any:
    """Unpickling a run: the live ``Run`` in its own process, a :class:`ChildRun` elsewhere."""
    if os.getpid() == attachment.owner_pid:
        from mplogger._user import _session
        live = _session.current().runs.get(attachment.run_id)
        if live is not None:
            return live
    child = ChildRun(attachment)
    _capture_here(child)
    return child


_child_capture: Dict[int, Any] = {}


def _capture_here(child: ChildRun) -> None:
    """A child process logging into a run: what it prints goes to that run too (once per process)."""
    from mplogger._user._console import Capture, capturing

    mode = child._attachment.console
    if mode == "off" or os.getpid() in _child_capture or capturing():
        return

    capture = Capture("wrap" if mode == "auto" else mode,
                      lambda target, stream, lines: target.add_output(stream, lines))
    capture.target = child
    _child_capture[os.getpid()] = capture
