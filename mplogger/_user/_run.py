"""The ``Run`` object a user logs to, with its ``config`` and ``summary`` (user process)."""

from __future__ import annotations

import copy
import glob
import json
import os
import sys
import shutil
import time
import warnings
from typing import Any, Callable, Dict, Iterator, List, Mapping, MutableMapping, Optional

from mplogger import _store
from mplogger._readers._artifact import Artifact, as_artifact, check_aliases, mark_sent, prepare_log, use_spec
from mplogger._user._child import Attachment, ChildRun, attach, attachment_token
from mplogger._user._client import Client
from mplogger._shared._errors import ConfigError, ManagerError, RunError, UsageError, describe, expect
from mplogger._user._exit import status_of_exception
from mplogger._ipc._messages import (ArtifactUsed, FinishRun, FlushRun, GetSummary, LogArtifact, RunFinished,
                                    SummaryReply, UpdateRun, UseArtifact)
from mplogger._shared._metrics import MetricRules
from mplogger._shared._terminal import termlog
from mplogger._user._wandb_methods import WandbRunMethods
from mplogger._shared._values import FAST_TYPES, from_json, check_row, check_step, jsonable, same_value, scalars_fit, store_media

__all__ = ["Run", "Config", "Summary", "add_output", "become_child", "before_fork", "close_at_exit", "commit_pending",
           "manager_alive", "serving"]

_time = time.time


def _copy(source: str, target: str) -> None:
    os.makedirs(os.path.dirname(target), exist_ok=True)
    shutil.copy2(source, target)


def _changed(source: str, target: str) -> bool:
    a, b = os.stat(source), os.stat(target)
    return (a.st_size, a.st_mtime_ns) != (b.st_size, b.st_mtime_ns)


class Config(MutableMapping):
    """A run's configuration: a dict with attribute access; every change reaches the store.

    Values are kept as stored (see :func:`mplogger._shared._values.jsonable`, which also refuses what
    cannot be stored, naming the key). Changing a key that is set to a different value (NaN is
    the same as NaN) raises ``ValueError`` naming the key and both values, unless allowed:
    ``update(..., allow_val_change=True)``, ``init(allow_val_change=True)``, or in Jupyter.
    """

    def __init__(self, run: "Run", data: Optional[Mapping[str, Any]] = None,
                 allow_val_change: bool = False) -> None:
        object.__setattr__(self, "_run", run)
        object.__setattr__(self, "_data", dict(data or {}))
        object.__setattr__(self, "_allow_val_change", allow_val_change)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __delitem__(self, key: str) -> None:
        del self._data[key]
        self._run._config_changed({}, (key,))

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_data", "_run", "_allow_val_change"):
            raise AttributeError(name)  # copy and pickle probe these before __init__ has run
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(f"config has no key {name!r}") from None

    def __copy__(self) -> Dict[str, Any]:
        """A copy is a plain dict of the values: the config itself stays the run's one view."""
        return dict(self._data)

    def __deepcopy__(self, memo: dict) -> Dict[str, Any]:
        import copy

        return copy.deepcopy(self._data, memo)

    def __reduce__(self) -> tuple:
        return (dict, (self._data,))

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def update(self, data: Any = (), allow_val_change: Optional[bool] = None, **more: Any) -> None:  # type: ignore[override]
        """Set several keys at once (a dict, an ``argparse.Namespace`` or keywords)."""
        if data is None:
            data = {}
        elif not isinstance(data, Mapping) and hasattr(data, "__dict__") and not isinstance(data, (list, tuple)):
            data = vars(data)
        values = dict(data, **more)
        for key, value in values.items():
            if not isinstance(key, str):
                raise TypeError(f"config keys must be strings; got {key!r} ({type(key).__name__})")
            values[key] = jsonable(value, key)
        allowed = self._allow_val_change if allow_val_change is None else allow_val_change
        for key, value in values.items():
            if not allowed and key in self._data and not same_value(self._data[key], value):
                raise ConfigError(
                    f"config key {key!r} is already {self._data[key]!r}; refusing to change it to "
                    f"{value!r}. Pass allow_val_change=True to change it."
                )
        self._data.update(values)
        self._run._config_changed(values, ())

    def setdefaults(self, data: Mapping[str, Any]) -> None:
        """Set the keys of ``data`` that are not set yet; keep the others."""
        self.update({k: v for k, v in dict(data).items() if k not in self._data})

    def as_dict(self) -> Dict[str, Any]:
        return dict(self._data)

    def __repr__(self) -> str:
        return f"Config({self._data!r})"


class Summary(MutableMapping):
    """A run's summary: the last value of each logged key, unless set here (then that wins)."""

    def __init__(self, run: "Run") -> None:
        object.__setattr__(self, "_run", run)

    def _current(self) -> Dict[str, Any]:
        return self._run._fetch_summary()

    def __getitem__(self, key: str) -> Any:
        return self._current()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __delitem__(self, key: str) -> None:
        if key not in self._current():
            raise KeyError(key)
        self._run._send(UpdateRun(self._run.id, summary_deleted=(key,)))
        self._run._summary_set({}, (key,))

    def __iter__(self) -> Iterator[str]:
        return iter(self._current())

    def __len__(self) -> int:
        return len(self._current())

    def __getattr__(self, name: str) -> Any:
        try:
            return self._current()[name]
        except KeyError:
            raise AttributeError(f"summary has no key {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def update(self, data: Any = (), **more: Any) -> None:  # type: ignore[override]
        """Set keys by hand, checked as ``log()`` values are (media stored as ``log()`` stores them)."""
        values = check_row(dict(data, **more), _reject_reserved, "summary")
        self._run._commit_pending()
        values = self._run._store_media(values)
        self._run._send(UpdateRun(self._run.id, summary=values))
        self._run._summary_set(values, ())

    def __repr__(self) -> str:
        return f"Summary({self._current()!r})"


def _reject_reserved(key: str) -> None:
    raise ValueError(f"key {key!r} is set by mplogger and cannot be set by hand")


def _latest_values(rows: list, count: int, known: int) -> Dict[str, Any]:
    """The newest value of each key in ``rows[:count]`` (rows are (step, time, values)); reading
    from the newest row back, it stops once it has seen ``known`` keys (every key ever logged)."""
    latest: Dict[str, Any] = {}
    for position in range(min(count, len(rows)) - 1, -1, -1):
        values = rows[position][2]
        if not latest:
            latest = dict(values)
        else:
            for key, value in values.items():
                latest.setdefault(key, value)
        if len(latest) >= known:
            break
    return latest


class Run(WandbRunMethods):
    """A run: log rows to it, then finish it. Use it as a context manager to finish on exit."""

    def __init__(self, client: Client, record: Dict[str, Any], root: str, config: Mapping[str, Any],
                 on_finish: Callable[["Run"], None], allow_val_change: bool = False,
                 resume_file: Optional[str] = None,
                 on_closing: Callable[["Run"], None] = lambda run: None) -> None:
        self._client = client
        self._record = record
        self.id: str = record["id"]
        self.name: str = record["name"]
        self.project: str = record["project"]
        self.group: Optional[str] = record.get("run_group")
        self.job_type: Optional[str] = record.get("job_type")
        self.notes: Optional[str] = record.get("notes")
        self.tags: tuple = tuple(record.get("tags_list", ()))
        self.root = root
        self.dir = _store.run_dir(root, self.id)
        self.start_time: float = record["created"]
        self.entity: Optional[str] = record.get("entity")
        self.url: Optional[str] = None  # there is no server: nothing to link to
        self.config = Config(self, config, allow_val_change)
        self.summary = Summary(self)
        self.state = "running"
        self._on_finish = on_finish
        self._closed = False
        self._step = 0 if record.get("last_step") is None else record["last_step"] + 1
        self._pending: Optional[Dict[str, Any]] = None
        self._closing = False
        self._fast = True  # no pending row and not closed: log(dict) skips the step rules
        self._pending_time = 0.0
        self._known_keys: set = set()
        self._dropped = 0
        self._final_summary: Dict[str, Any] = {}
        self._saved: Dict[str, str] = {}
        self._on_closing = on_closing
        self._console_cap = client.settings.console_lines
        self._console_count = self._console_dropped = 0
        self._resume_file = resume_file
        if resume_file is not None:
            os.makedirs(os.path.dirname(resume_file), exist_ok=True)
            with open(resume_file, "w") as out:
                json.dump({"run_id": self.id}, out)
        self._metric_rules = MetricRules()
        self._child: Optional[ChildRun] = None
        self._sender = client.sender(self.id)
        self._rows = self._sender.rows
        # The summary as the worker keeps it, followed here from what this process sends: read
        # without a round trip while nothing else changes it (a child, define_metric aggregates).
        stored_summary = record.get("summary")
        self._summary: Optional[Dict[str, Any]] = dict(from_json(stored_summary)) if isinstance(
            stored_summary, str) else {}
        if '"metrics"' in str(record.get("metadata") or ""):
            self._summary = None  # a resumed run's define_metric rules: the worker keeps aggregates
        self._sender.observe = self._observe_sent
        self._batch_size = self._sender.size

    # --- logging -------------------------------------------------------------------------
    @property
    def step(self) -> int:
        """The step the next committed row gets."""
        return self._step

    def log(self, data: Mapping[str, Any], step: Optional[int] = None, commit: Optional[bool] = None,
            sync: Optional[bool] = None) -> None:
        """Log a row of metrics. Returns at once: rows are stored in the background.

        ``step``/``commit`` follow wandb: ``commit=False`` adds keys to the pending row; a larger
        ``step`` commits the pending row and jumps; a smaller one is dropped with a warning.
        ``sync`` (deprecated in wandb) is accepted and ignored.
        """
        if step is None and commit is None and self._fast and type(data) is dict:
            if data.keys() <= self._known_keys and (
                    FAST_TYPES.issuperset(map(type, data.values())) or scalars_fit(data.values())):
                values = data.copy()
            else:
                values = self._check(data)
            rows = self._rows
            step = self._step
            self._step = step + 1  # before the append: an interrupt can skip a step, never repeat one
            rows.append((step, _time(), values))
            if len(rows) >= self._batch_size:
                self._send_batch()
            return
        self._log_general(data, step, commit)

    def _send_batch(self) -> None:
        self._sender.send()
        self._raise_errors()

    def _check(self, data: Any) -> Dict[str, Any]:
        values = check_row(data, self._warn_reserved)
        self._known_keys.update(values)
        return self._store_media(values)

    def _store_media(self, values: Dict[str, Any]) -> Dict[str, Any]:
        """Media values are written under the run folder; the row keeps a JSON reference."""
        return store_media(values, self.dir, self._step)

    def _warn_reserved(self, key: str) -> None:
        warnings.warn(f"log() key {key!r} is set by mplogger; the value given is ignored",
                      stacklevel=4)

    def _log_general(self, data: Any, step: Optional[int], commit: Optional[bool]) -> None:
        if self._child is not None:
            return self._child.log(data, step, commit)
        if self._closed or self._closing:
            warnings.warn(f"run {self.id} is finished; log() ignored", stacklevel=3)
            return
        values = self._check(data)
        if step is not None:
            step = check_step(step)
            if step < self._step:
                self._drop(values, step)
                return
            if step > self._step:
                self._commit_pending()
                self._step = step
            self._merge(values)
            if commit:
                self._commit_pending()
        else:
            self._merge(values)
            if commit is None or commit:
                self._commit_pending()

    def _observe_sent(self, rows: list, count: int) -> None:
        """The first ``count`` of ``rows`` were sent: follow them in the summary (newest first, O(keys))."""
        summary = self._summary
        if summary is not None and count:
            summary.update(_latest_values(rows, count, len(self._known_keys)))

    def _summary_set(self, values: Dict[str, Any], deleted: tuple) -> None:
        """Keys set or deleted by hand, as the worker applies them."""
        if self._summary is not None:
            self._summary.update(values)
            for key in deleted:
                self._summary.pop(key, None)

    def _summary_unknown(self) -> None:
        """From now on the worker's summary differs from what this process can know: ask it."""
        self._summary = None

    def _drop(self, values: Dict[str, Any], step: int) -> None:
        self._dropped += 1
        if self._dropped == 1:
            keys = ", ".join(repr(k) for k in list(values)[:3])
            warnings.warn(
                f"run {self.id}: log() with step={step} is below the current step {self._step}; "
                f"the row ({keys}) was dropped (steps must increase; later drops are counted "
                "in summary['_dropped_rows'])", stacklevel=4)
        self._send(UpdateRun(self.id, summary={"_dropped_rows": self._dropped}))
        self._summary_set({"_dropped_rows": self._dropped}, ())

    def _merge(self, values: Dict[str, Any]) -> None:
        if self._pending is None:
            self._pending = {}
            self._fast = False
        self._pending.update(values)
        self._pending_time = _time()

    def _commit_pending(self) -> None:
        if self._pending is not None:
            self._rows.append((self._step, self._pending_time, self._pending))
            self._pending = None
            self._fast = not self._closed
            self._step += 1
            if len(self._rows) >= self._batch_size:
                self._send_batch()

    def _raise_errors(self) -> None:
        errors = self._client.take_errors(self.id)
        if errors:
            self._summary = None  # some of what was sent was not stored: the worker knows what was
            cause = errors[0]
            raise RunError(
                f"run {self.id}: the store reported {describe(cause)}"
                + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else "")
            ) from cause

    def _send(self, message: object) -> None:
        if self._closed:
            warnings.warn(f"run {self.id} is finished; the change is ignored", stacklevel=3)
            return
        self._sender.flush()
        self._client.send(message)

    def _config_changed(self, changes: Dict[str, Any], deleted: tuple) -> None:
        """The whole config goes to the store; in a forked child, only what it changed (as any child)."""
        if self._child is not None:
            return self._child._config_changed(changes, deleted)
        self._send(UpdateRun(self.id, config=jsonable(self.config.as_dict())))

    def _fetch_summary(self) -> Dict[str, Any]:
        if self._closed:
            return dict(self._final_summary)
        self._commit_pending()
        if self._summary is not None and self._client.has_errors(self.id):
            self._summary = None  # some of what was sent was not stored: the worker knows what was
        summary = self._summary
        if summary is not None:
            rows = self._rows[:]  # another thread may send (and take) rows meanwhile
            current = dict(summary)
            current.update(_latest_values(rows, len(rows), len(self._known_keys)))
            return {key: copy.deepcopy(value) if isinstance(value, (dict, list)) else value
                    for key, value in current.items()}
        self._sender.flush()
        what = f"summary of run {self.id}"
        return expect(self._client.request(lambda r: GetSummary(r, self.id), what), SummaryReply, what).summary

    # --- flush and finish ----------------------------------------------------------------
    def flush(self, timeout: Optional[float] = None) -> None:
        """Return once everything logged so far by this run is durable in the store."""
        if self._child is not None:
            return self._child.flush(timeout)
        if self._closed:
            return
        self._commit_pending()
        self._sender.flush()
        self._request(lambda r: FlushRun(r, self.id), "flush", timeout)
        self._raise_errors()

    def _request(self, make: Callable[[int], object], what: str, timeout: Optional[float]) -> object:
        try:
            return self._client.request(make, f"{what} of run {self.id}", timeout)
        except ManagerError:
            raise
        except Exception as exc:
            raise RunError(f"run {self.id}: {what} failed: {describe(exc)}") from exc

    def finish(self, exit_code: Optional[int] = None, quiet: Optional[bool] = None) -> None:
        """Store everything, mark the run finished (or failed, for a non-zero exit code).

        ``quiet`` is wandb's and has no effect (mplogger prints no summary at finish)."""
        if self._child is not None:
            return self._child.finish(exit_code)
        if self._closed:
            return
        self._fast = False  # from here on, log() from another thread takes the checked path
        self._closing = True
        self._on_closing(self)  # console capture ends here, its last lines still go to this run
        if self._console_dropped:
            self._sender.lines.append((_time(), "stderr", f"[mplogger] {self._console_dropped} more lines "
                                      f"of output were not kept (console_lines={self._console_cap})"))
        exit_code = 0 if exit_code is None else exit_code
        state = "finished" if exit_code == 0 else "failed"
        try:
            self._copy_saved_files()
            self._commit_pending()
            self._sender.flush()
            reply = self._request(lambda r: FinishRun(r, self.id, state, exit_code), "finish", None)
            reply = expect(reply, RunFinished, f"finish of run {self.id}")
            self.state = reply.state
            self._final_summary = reply.summary
            self._forget_resume()
        finally:
            self._closed = True
            self._fast = False
            self._client.forget(self.id)
            if self._rows:  # logged from another thread while this one was finishing
                warnings.warn(f"run {self.id}: {len(self._rows)} row(s) logged while the run was "
                              "finishing (from another thread) were not stored")
                self._rows.clear()
            self._on_finish(self)
            self._end_live_cards()
        self._raise_errors()

    def _add_output(self, stream: str, lines: List[Any]) -> None:
        """Captured console lines of ``stream`` for this run, kept up to ``console_lines``."""
        if self._child is not None:
            return self._child.add_output(stream, lines)
        if self._closed:
            return
        room = self._console_cap - self._console_count
        if len(lines) > room:
            self._console_dropped += len(lines) - max(room, 0)
            lines = lines[:max(room, 0)]
        self._console_count += len(lines)
        self._sender.lines.extend((stamp, stream, text) for stamp, text in lines)

    def _forget_resume(self) -> None:
        """A cleanly finished run is not resumed by ``resume="auto"``."""
        if self._resume_file is not None and self.state == "finished":
            try:
                os.unlink(self._resume_file)
            except OSError:
                pass

    def _close_at_exit(self, state: str) -> None:
        """The manager finished this run at exit; stop accepting rows."""
        self._closed = True
        self._fast = False
        self.state = state
        self._forget_resume()
        self._on_finish(self)
        self._end_live_cards()

    def attachment(self, flush: bool = True) -> Attachment:
        """What another process needs to log into this run.

        The rows logged so far are sent first (``flush``), and the attachment counts them: the
        manager stores a child's rows only after those, so what came first stays first.
        """
        if flush and not self._closed:
            try:
                self._sender.flush()
            except ManagerError:  # raised again at this run's next call; the child still gets the run
                pass
        self._summary_unknown()  # the process given it may log to this run
        return Attachment(
            run_id=self.id, name=self.name, project=self.project, root=self.root, dir=self.dir,
            config=self.config.as_dict(), attach_path=self._client.attach_path,
            manager_pid=self._client.manager_pid, owner_pid=self._client.pid,
            timeout=self._client.settings.shutdown_timeout, console=self._client.settings.console,
            after=self._sender.sent, allow_val_change=self.config._allow_val_change,
        )

    def __reduce__(self) -> tuple:
        return (attach, (self.attachment(),))

    # --- what wandb scripts also call -------------------------------------------------------
    def save(self, glob_str: str, base_path: Optional[str] = None, policy: str = "live") -> List[str]:
        """Copy files matching ``glob_str`` into the run's folder (``<run dir>/files/``).

        Paths inside are kept relative to ``base_path`` (default: the glob's folder). Policy
        ``"now"`` copies now, ``"end"`` at finish, ``"live"`` now and again at finish if the
        file changed. Returns the copies' paths (for ``"end"``, where they will be).
        """
        if policy not in ("live", "now", "end"):
            raise ValueError(f"save(policy={policy!r}): use 'live', 'now' or 'end'")
        if not isinstance(glob_str, (str, os.PathLike)):
            raise TypeError(f"save() takes a path or glob, not {type(glob_str).__name__}")
        pattern = os.path.abspath(os.fspath(glob_str))
        base = os.path.abspath(base_path) if base_path is not None else os.path.dirname(
            pattern.split("*", 1)[0].split("?", 1)[0].split("[", 1)[0] + "x")
        copies = []
        for source in sorted(glob.glob(pattern, recursive=True)):
            if not os.path.isfile(source):
                continue
            relative = os.path.relpath(source, base)
            if relative.startswith(".."):
                raise ValueError(f"save(): {source} is not under base_path {base}")
            target = os.path.join(self.dir, "files", relative)
            if policy != "end":
                _copy(source, target)
            if policy != "now":
                self._saved[source] = target
            copies.append(target)
        return copies

    def _copy_saved_files(self) -> None:
        for source, target in self._saved.items():
            try:
                if not os.path.exists(target) or _changed(source, target):
                    _copy(source, target)
            except OSError as exc:
                warnings.warn(f"run {self.id}: could not copy {source}: {exc}")

    def define_metric(self, name: str, step_metric: Optional[str] = None, step_sync: Optional[bool] = None,
                      hidden: Optional[bool] = None, summary: Optional[str] = None,
                      goal: Optional[str] = None, overwrite: Optional[bool] = None) -> Dict[str, Any]:
        """Say how a metric is summarised and which metric is its x axis (wandb's define_metric).

        ``summary``: a comma list of min, max, mean, last, best, first, copy, none; the results are
        stored as ``summary[name]["min"]`` and so on (``best`` follows ``goal``, "minimize" by
        default; NaN is skipped). ``step_metric`` with ``step_sync`` fills that metric's last value
        into rows that lack it. ``name`` may end with ``*`` to match a prefix. Returns the rule.
        """
        rule = self._metric_rules.define(name, step_metric, step_sync, hidden, summary, goal, overwrite)
        self._commit_pending()
        self._sender.flush()
        self._summary_unknown()  # the worker keeps aggregates and fills step metrics
        self._send(UpdateRun(self.id, metrics=tuple(
            r for r in self._metric_rules.to_list() if r["name"] in (name, step_metric))))
        return rule

    def alert(self, title: str, text: str, level: str = "INFO", wait_duration: Any = None) -> None:
        """Record an alert in the store (table ``alerts``) and print it; nothing is sent anywhere."""
        level = getattr(level, "value", level)
        if str(level).upper() not in ("INFO", "WARN", "ERROR"):
            raise ValueError(f"alert(level={level!r}): use INFO, WARN or ERROR")
        termlog(f"alert [{str(level).upper()}] {title}: {text}")
        self._send(UpdateRun(self.id, alert={"timestamp": _time(), "level": str(level).upper(),
                                             "title": str(title), "text": str(text)}))

    # --- artifacts ---------------------------------------------------------------------------
    def log_artifact(self, artifact_or_path: Any, name: Optional[str] = None, type: Optional[str] = None,
                     aliases: Optional[List[str]] = None, tags: Optional[List[str]] = None) -> Artifact:
        """Store a version of an artifact (or of a file or folder path) with this run, in order
        with its rows. Returns at once; ``artifact.wait()`` returns once the version is stored."""
        if self._child is not None:
            return self._child.log_artifact(artifact_or_path, name, type, aliases, tags)
        artifact = as_artifact(artifact_or_path, name, type, "run.log_artifact")
        aliases = check_aliases(aliases)
        self._artifacts_here("log_artifact")
        self._commit_pending()
        self._sender.flush()
        fields = prepare_log(artifact, self.root, aliases)
        staging = fields["staging"] or None
        request = self._client.submit(lambda request: LogArtifact(request, self.id, self.project, **fields), self.id,
                                      None if staging is None else lambda: shutil.rmtree(staging, ignore_errors=True))
        mark_sent(artifact, ("reply", self._client, request), self.root)
        self._raise_errors()
        return artifact

    def use_artifact(self, artifact_or_name: Any, type: Optional[str] = None, aliases: Optional[List[str]] = None,
                     use_as: Optional[str] = None) -> Artifact:
        """The stored version ``name:alias`` (``name:latest``, ``name:v0``, ``project/name:alias``), recorded
        as used by this run. An Artifact not logged yet is logged first."""
        if self._child is not None:
            return self._child.use_artifact(artifact_or_name, type, aliases, use_as)
        self._artifacts_here("use_artifact")
        project, name, alias = use_spec(self, artifact_or_name, type, aliases)
        self._commit_pending()
        self._sender.flush()
        reply = expect(self._client.request(
            lambda r: UseArtifact(r, self.id, project or self.project, name, alias, type),
            f"use_artifact {name}:{alias} of run {self.id}"), ArtifactUsed, "use_artifact")
        return Artifact.from_record(self.root, reply.record)

    def _artifacts_here(self, what: str) -> None:
        if self._closed:
            raise UsageError(f"run {self.id} is finished: {what}() needs a running run")

    @property
    def _attach_id(self) -> str:
        """What ``wandb._attach()`` in another process needs to log into this run (Lightning's spawn)."""
        return attachment_token(self.attachment())

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, kind: Any, value: Any, tb: Any) -> None:
        self.finish(exit_code=status_of_exception(value))

    def __repr__(self) -> str:
        return f"<mplogger.Run {self.id} {self.name!r} project={self.project!r} state={self.state}>"

    # --- notebooks -------------------------------------------------------------------------
    def _view(self) -> Dict[str, Any]:
        """What the notebook display shows: this object's fields, then the store's (after a flush).

        Never raises: what cannot be read is left out and named in ``view["note"]``.
        """
        view: Dict[str, Any] = {
            "kind": "Run", "id": self.id, "name": self.name, "project": self.project,
            "group": self.group, "job_type": self.job_type, "tags": list(self.tags),
            "notes": self.notes, "state": self.state, "root": self.root, "dir": self.dir,
            "created": self.start_time, "config": None, "summary": None,
        }
        problems: List[str] = []
        try:
            view["config"] = self.config.as_dict()
        except Exception as exc:
            problems.append(f"config: {type(exc).__name__}: {exc}")
        try:
            self.flush(timeout=10.0)  # a no-op once closed; a child run flushes its own rows
            flushed = True
        except Exception as exc:
            flushed = False
            problems.append(f"flush failed ({type(exc).__name__}: {exc}); showing what the store has")
        if flushed and not self._closed:
            try:
                view["summary"] = self._fetch_summary()  # one round trip (dict(self.summary) makes one per key)
            except Exception as exc:
                problems.append(f"summary: {type(exc).__name__}: {exc}")
        try:
            from mplogger._readers._api import Api  # here, not at module level: data flows store -> Api only
            from mplogger._readers._display import card_charts

            api = Api(self.root)
            try:
                stored = api.run(self.id)
                view.update(state=stored.state, exit_code=stored.exit_code, finished=stored.finished,
                            rows=stored.rows, latest=stored.last_row())
                if view["summary"] is None:
                    view["summary"] = stored.summary
                try:
                    view.update(card_charts(stored))
                except Exception as exc:
                    problems.append(f"charts: {type(exc).__name__}: {exc}")
            finally:
                api.close()
        except Exception as exc:
            problems.append(f"could not read the store: {type(exc).__name__}: {exc}")
        if view["summary"] is None and self._final_summary:
            view["summary"] = dict(self._final_summary)
        if problems:
            view["note"] = "; ".join(problems)
        return view

    def _repr_html_(self) -> str:
        """The run as an HTML card for Jupyter (flushes first, so the numbers are current)."""
        from mplogger._readers._display import run_html

        try:
            return run_html(self._view())
        except Exception as exc:  # a display must never raise
            import html

            return f"<pre>{html.escape(repr(self))}\n{html.escape(f'{type(exc).__name__}: {exc}')}</pre>"

    def _ipython_display_(self) -> None:
        """In a notebook: the card, kept up to date from the store while the run is live."""
        from mplogger._readers._display import run_html
        from mplogger._readers._live import show

        try:
            view = self._view()
            html = run_html(view)
        except Exception:  # a display must never raise
            view, html = {}, self._repr_html_()
        show(self.root, self.id, "Run", html, repr(self), live=lambda: not self._closed,
             mark=(view.get("rows"), view.get("state")))

    def _end_live_cards(self) -> None:
        """Cards displayed for this run get their last update now (only once a card was shown)."""
        live = sys.modules.get("mplogger._readers._live")
        if live is not None:
            live.finished(self.root, self.id)

    def plot(self, keys: Optional[List[str]] = None) -> Any:
        """Flush, then charts of the stored history, one per numeric metric (``keys``: those only).

        A notebook shows them as inline SVG; ``.figure()`` gives a matplotlib figure instead.
        """
        from mplogger._readers._api import Api
        from mplogger._readers._display import Charts

        self.flush()
        api = Api(self.root)
        try:
            return Charts([api.run(self.id)], keys, title=f"{self.name} ({self.id})")
        finally:
            api.close()


def become_child(run: Run) -> None:
    """In a forked child: from now on ``run`` logs like a run passed to a child process."""
    if not run._closed:
        run._child = ChildRun(run.attachment(flush=False))  # the parent sent its rows before the fork
    run._closed = True
    run._fast = False


# --- what the session and the module-level calls do to a run (they own it) ------------------
def before_fork(run: Run, timeout: float) -> None:
    """Send ``run``'s buffered rows if that takes under ``timeout``; a child may log to it from now
    on, so its summary is asked of the worker."""
    run._sender.send_if_free(timeout)
    run._summary_unknown()


def commit_pending(run: Run) -> None:
    """Send the row ``run`` holds for ``commit=False`` logging."""
    run._commit_pending()


def close_at_exit(run: Run, state: str) -> None:
    """The process exits: ``run`` ends in ``state`` without asking the manager."""
    run._close_at_exit(state)


def add_output(run: Run, stream: str, lines: List[Any]) -> None:
    """Captured console ``lines`` of ``stream`` for ``run``."""
    run._add_output(stream, lines)


def serving(run: Run) -> bool:
    """Whether ``run`` is open and its manager still serves it."""
    return not run._closed and run._client.manager_alive()


def manager_alive(run: Run) -> bool:
    """Whether the manager ``run`` logs through is alive."""
    return run._client.manager_alive()
