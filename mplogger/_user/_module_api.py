"""The module-level calls of ``mplogger`` (user process): ``init``, ``log``, ``finish``, ``setup``,
``teardown`` and the shortcuts to the active run, and the globals they point.

``mplogger.run``, ``config``, ``summary`` and ``log`` are attributes of the package itself, set
here (:func:`set_globals`): code that did ``import mplogger`` sees the run ``init()`` started.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import socket
import sys
import time
import warnings
from typing import Any, Callable, Mapping, Optional, Sequence, Union

from mplogger import _store
from mplogger._ipc._channel import sigint_deferred
from mplogger._ipc._messages import FinishRun, InitRun, RunReady
from mplogger._readers._api import Api, StoredRun
from mplogger._shared._errors import ManagerError, RunError, UsageError, expect
from mplogger._shared._processes import in_jupyter
from mplogger._shared._settings import Settings, init_root
from mplogger._shared._terminal import termwarn
from mplogger._shared._values import from_json, jsonable, to_json
from mplogger._user import _init_args, _session
from mplogger._user._child import ChildRun
from mplogger._user._disabled import DisabledRun
from mplogger._user._run import Run, manager_alive, serving

__all__ = ["NoRun", "NO_CONFIG", "NO_SUMMARY", "log_before_init", "set_globals", "setup", "init", "finish", "teardown", "save", "define_metric",
           "log_artifact", "use_artifact", "log_model", "use_model", "watch", "alert", "report"]

class NoRun:
    """``mplogger.config`` / ``summary`` while no run is active: any use says to call ``init()``
    first (wandb's pre-init object), instead of an AttributeError on None inside a library."""

    __slots__ = ("_name", "_why")

    def __init__(self, name: str, why: str = "call mplogger.init() before") -> None:
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_why", why)

    def _refuse(self, use: str) -> UsageError:
        return UsageError(f"{self._why} mplogger.{self._name}{use}")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # copy, pickle and getattr(x, "_private", None) probes
            raise AttributeError(name)
        raise self._refuse(f".{name}")

    def __len__(self) -> int:
        raise self._refuse(" (len)")

    def __bool__(self) -> bool:
        return True  # as wandb's pre-init object: a test of truth is not a use

    def __copy__(self) -> "NoRun":
        return self

    def __deepcopy__(self, memo: dict) -> "NoRun":
        return self

    def __reduce__(self) -> tuple:
        return (NoRun, (self._name, self._why))

    def __setattr__(self, name: str, value: Any) -> None:
        raise self._refuse(f".{name} = ...")

    def __getitem__(self, key: Any) -> Any:
        raise self._refuse(f"[{key!r}]")

    def __setitem__(self, key: Any, value: Any) -> None:
        raise self._refuse(f"[{key!r}] = ...")

    def __delitem__(self, key: Any) -> None:
        raise self._refuse(f"[{key!r}]")

    def __iter__(self) -> Any:
        raise self._refuse(" (iterating)")

    def __repr__(self) -> str:
        return f"<mplogger.{self._name}: no active run>"


NO_CONFIG = NoRun("config")
NO_SUMMARY = NoRun("summary")


def log_before_init(data: Mapping[str, Any], step: Optional[int] = None, commit: Optional[bool] = None,
                     sync: Optional[bool] = None) -> None:
    """Placeholder until ``init()``: logging needs a run."""
    raise UsageError("call mplogger.init() before mplogger.log()")


_logger = logging.getLogger("mplogger")

_ADJECTIVES = ("amber", "brisk", "calm", "dapper", "eager", "fluent", "gentle", "hardy", "ivory",
               "jolly", "keen", "lucid", "mellow", "nimble", "olive", "proud", "quiet", "rapid",
               "sunny", "tidy", "vivid", "witty", "young", "zesty")
_NOUNS = ("river", "meadow", "falcon", "comet", "harbor", "forest", "ember", "glacier", "lantern",
          "orchid", "pebble", "quartz", "summit", "tundra", "valley", "willow", "breeze", "canyon")


def _new_run_name() -> str:
    pick = _store.UNSEEDED
    return f"{pick.choice(_ADJECTIVES)}-{pick.choice(_NOUNS)}-{pick.randint(1, 999)}"


def _log_after_finish(finished: Run) -> Callable[..., None]:
    """``mplogger.log`` once ``finished`` is over: as ``run.log()`` on it, a warning and nothing stored."""
    warned = []

    def log(data: Mapping[str, Any], step: Optional[int] = None, commit: Optional[bool] = None,
            sync: Optional[bool] = None) -> None:
        if not warned:
            warned.append(True)
            warnings.warn(f"run {finished.id} is finished; mplogger.log() ignored "
                          "(call mplogger.init() for a new run)", stacklevel=2)

    return log


def set_globals(active: Optional[Run], finished: Optional[Run] = None) -> None:
    """Point ``mplogger.run/config/summary/log`` at ``active``; without one, ``log`` warns about
    ``finished`` if given, else it raises as before ``init()``."""
    package = sys.modules["mplogger"]
    _session.console_target(active if isinstance(active, Run) else None)
    package.run = active
    why = (f"run {finished.id} is finished; call mplogger.init() for a new run before" if finished is not None
           else "call mplogger.init() before")
    package.config = active.config if active is not None else NoRun("config", why)
    if isinstance(active, ChildRun):  # a run attached from another process: its summary is kept there
        package.summary = NoRun("summary", f"run {active.id} keeps its summary in the process that called "
                                           "init() (log() values instead); refused:")
    elif active is not None:
        package.summary = active.summary
    else:
        package.summary = NoRun("summary", why)
    if active is not None:
        package.log = active.log
    else:
        package.log = _log_after_finish(finished) if finished is not None else log_before_init


def _current() -> Any:
    """``mplogger.run``: the package attribute is the one place the active run is kept."""
    return sys.modules["mplogger"].run


def _on_finish(finished: Run) -> None:
    """A run closed: forget it, and if it was ``mplogger.run``, the globals warn about it."""
    session = _session.current()
    session.runs.pop(finished.id, None)
    if _current() is finished:
        set_globals(None, finished)


def setup(settings: Optional[Union[Settings, Mapping[str, Any]]] = None) -> "_session.Manager":
    """Start this process's manager and its worker pool, wait until they serve, and return a handle
    on them (their pids). Optional: ``init()`` calls it when needed. Later calls start nothing while
    the manager runs, and return its handle."""
    return _session.Manager(_session.setup(settings))


def init(
    project: Optional[str] = None,
    entity: Optional[str] = None,
    name: Optional[str] = None,
    notes: Optional[str] = None,
    tags: Optional[Sequence[str]] = None,
    group: Optional[str] = None,
    job_type: Optional[str] = None,
    config: Any = None,
    config_exclude_keys: Optional[Sequence[str]] = None,
    config_include_keys: Optional[Sequence[str]] = None,
    allow_val_change: Optional[bool] = None,
    dir: Optional[Union[str, os.PathLike]] = None,
    id: Optional[str] = None,
    resume: Union[bool, str, None] = None,
    reinit: Union[bool, str, None] = None,
    mode: Optional[str] = None,
    save_code: Optional[bool] = None,
    settings: Optional[Union[Settings, Mapping[str, Any]]] = None,
    anonymous: Optional[str] = None,
    magic: Any = None,
    monitor_gym: Optional[bool] = None,
    sync_tensorboard: Optional[bool] = None,
) -> Union[Run, DisabledRun]:
    """Start a run and return it once it exists in the store; also sets ``mplogger.run``.

    The arguments are wandb's. Unset ones come from ``MPLOGGER_<NAME>``, then ``WANDB_<NAME>``
    (PROJECT, ENTITY, NAME, NOTES, TAGS, RUN_GROUP, JOB_TYPE, DIR, RUN_ID, MODE). ``mode``
    ``"online"``/``"offline"`` log locally (there is no server); ``"disabled"`` returns a run that
    does nothing. While a run is active, ``init()`` returns it unless ``reinit`` is True or
    ``"finish_previous"`` (finish it first; the default in Jupyter) or ``"create_new"`` (an
    independent run that does not replace ``mplogger.run``). ``anonymous``, ``magic``,
    ``monitor_gym`` and ``sync_tensorboard`` are accepted and ignored. ``dir`` is, as in wandb, the
    folder that holds the store (``<dir>/mplogger-runs``) unless it is a store already;
    ``MPLOGGER_DIR`` (the store itself) wins over it.
    """
    for ignored, value in (("anonymous", anonymous), ("magic", magic), ("monitor_gym", monitor_gym),
                           ("sync_tensorboard", sync_tensorboard)):
        if value is not None:
            _logger.debug("init(%s=...) is accepted for wandb scripts and has no effect", ignored)
    in_notebook = in_jupyter()
    if reinit is None and in_notebook:
        reinit = "finish_previous"  # a notebook re-runs cells: a new init() starts a new run
    if reinit not in (None, False, True, "default", "return_previous", "finish_previous", "create_new"):
        raise ValueError(
            f"init(reinit={reinit!r}): use None, True, 'return_previous', 'finish_previous' or 'create_new'"
        )
    if resume not in (None, False, True, "allow", "must", "never", "auto"):
        raise ValueError(f"init(resume={resume!r}): use 'allow', 'must', 'never', 'auto' or True")
    run_mode = _init_args.resolve_mode(mode)
    if run_mode != "disabled":
        _logger.debug("mode %r: mplogger always logs to the local store; there is no cloud", run_mode)
    tag_list = _init_args.tags_from(tags)
    config_values = _init_args.load_config(config, config_include_keys, config_exclude_keys)
    if run_mode == "disabled":
        disabled = DisabledRun(_init_args.from_env("NAME", name), _init_args.from_env("PROJECT", project),
                               config_values)
        set_globals(disabled)  # type: ignore[arg-type]
        return disabled
    current = _current()
    active = current if isinstance(current, Run) else None
    if active is not None and reinit in (None, False, "default", "return_previous") and serving(active):
        return active
    if active is not None and reinit in (True, "finish_previous") and manager_alive(active):
        try:
            active.finish()
        except (RunError, ManagerError) as exc:  # its error was raised before; the new run goes on
            termwarn(f"the previous run {active.id} ended with an error: {exc}")
    resume_mode = {None: None, False: None, True: "allow", "auto": "allow"}.get(resume, resume)  # type: ignore[arg-type]
    id_source = "init(id=...)" if id is not None else "MPLOGGER_RUN_ID/WANDB_RUN_ID"
    id = _init_args.from_env("RUN_ID", id)
    auto = resume in (True, "auto")
    if id is not None:
        id = _store.check_run_id(id, id_source)
    session = _session.current()
    client = _session.setup(settings)
    root = init_root(dir)
    if auto and id is None:  # wandb: resume this script's last run here if it did not finish
        id = _init_args.auto_resume_id(root)
    record = {
        "id": id or _store.new_run_id(),
        "project": _text("project", project, "PROJECT") or "uncategorized",
        "entity": _text("entity", entity, "ENTITY"),
        "name": _text("name", name, "NAME") or _new_run_name(),
        "run_group": _text("group", group, "RUN_GROUP"),
        "job_type": _text("job_type", job_type, "JOB_TYPE"),
        "tags": json.dumps(tag_list),
        "notes": _text("notes", notes, "NOTES"),
        "created": time.time(),
        "config": to_json(jsonable(config_values)),
        "metadata": to_json({"mode": run_mode, "save_code": bool(save_code)}),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "python": platform.python_version(),
        "argv": json.dumps(list(sys.argv)),
    }
    try:
        environment = _init_args.client_facts(sys.argv, bool(save_code))
        reply = client.request(lambda r: InitRun(r, root, record, resume_mode, environment), "init")
    except KeyboardInterrupt:
        # The run may exist already: close it as failed rather than leave it to nobody. The
        # close follows the InitRun on the same ordered pipe; its reply is not waited for.
        with sigint_deferred():
            client.send(FinishRun(client.new_request(), record["id"], "failed", 130))
        raise
    stored = dict(expect(reply, RunReady, "init").record)
    stored["tags_list"] = json.loads(stored.get("tags") or "[]")
    allow = in_notebook if allow_val_change is None else bool(allow_val_change)
    new_run = Run(client, stored, root, from_json(stored["config"]), _on_finish, allow,
                  _init_args.auto_resume_file(root) if auto else None, _session.stop_console)
    session.runs[new_run.id] = new_run
    if reinit != "create_new":
        set_globals(new_run)
    return new_run


def _text(param: str, value: Any, env: str) -> Optional[str]:
    return _init_args.text_arg(param, _init_args.from_env(env, value))


def finish(exit_code: Optional[int] = None) -> None:
    """Finish ``mplogger.run`` (if any). Safe to call twice. A run attached from another process
    is only let go here: the process that called ``init()`` finishes it."""
    run = _current()
    if isinstance(run, (DisabledRun, ChildRun)):
        if isinstance(run, ChildRun):
            run.finish(exit_code)  # warns that its owner finishes it
        set_globals(None)
    elif run is not None:
        run.finish(exit_code)


def teardown(exit_code: Optional[int] = None) -> None:
    """Finish every open run of this process and stop its manager (what happens at exit)."""
    _session.teardown(exit_code)
    set_globals(None)


def _active(what: str) -> Any:
    """The run that ``mplogger.<what>()`` acts on, or a UsageError saying why there is none."""
    run = _current()
    if isinstance(run, ChildRun):
        if hasattr(run, what):
            return run
        raise UsageError(f"mplogger.{what}(): run {run.id} is attached from another process here; "
                         f"{what}() is done in the process that called init() (pid {run.owner_pid})")
    if not isinstance(run, Run):
        raise UsageError(f"call mplogger.init() before mplogger.{what}()")
    return run


def save(glob_str: str, base_path: Optional[str] = None, policy: str = "live") -> Any:
    """``run.save()`` of the active run: copy matching files into its folder."""
    run = _current()
    if isinstance(run, DisabledRun):
        return []
    return _active("save").save(glob_str, base_path, policy)


def define_metric(name: str, step_metric: Optional[str] = None, step_sync: Optional[bool] = None,
                  hidden: Optional[bool] = None, summary: Optional[str] = None, goal: Optional[str] = None,
                  overwrite: Optional[bool] = None) -> Any:
    """``run.define_metric()`` of the active run (see there)."""
    run = _current()
    if isinstance(run, DisabledRun):
        return None
    return _active("define_metric").define_metric(name, step_metric, step_sync, hidden, summary, goal, overwrite)


def log_artifact(artifact_or_path: Any, name: Optional[str] = None, type: Optional[str] = None,
                 aliases: Optional[Sequence[str]] = None, tags: Optional[Sequence[str]] = None) -> Any:
    """``run.log_artifact()`` of the active run (see there)."""
    run = _current()
    if isinstance(run, DisabledRun):
        return None
    return _active("log_artifact").log_artifact(artifact_or_path, name, type, aliases, tags)


def use_artifact(artifact_or_name: Any, type: Optional[str] = None, aliases: Optional[Sequence[str]] = None,
                 use_as: Optional[str] = None) -> Any:
    """``run.use_artifact()`` of the active run (see there); without a run, read ``Api().artifact()``."""
    run = _current()
    if isinstance(run, DisabledRun):
        return None
    return _active("use_artifact").use_artifact(artifact_or_name, type, aliases, use_as)


def log_model(path: Any, name: Optional[str] = None, aliases: Optional[Sequence[str]] = None) -> Any:
    """``run.log_model()`` of the active run: a file or folder as an artifact of type ``model``."""
    run = _current()
    if isinstance(run, DisabledRun):
        return None
    return _active("log_model").log_model(path, name, aliases)


def use_model(name: str) -> Any:
    """``run.use_model()`` of the active run: download a model artifact, return its folder."""
    return _active("use_model").use_model(name)


def watch(*args: Any, **kwargs: Any) -> None:
    """Accepted for wandb scripts; does nothing (a one-time notice says so)."""
    run = _current()
    if run is not None:
        run.watch(*args, **kwargs)


def alert(title: str, text: str, level: str = "INFO", wait_duration: Any = None) -> None:
    """``run.alert()`` of the active run: recorded in the store and printed."""
    run = _current()
    if isinstance(run, DisabledRun):
        return
    _active("alert").alert(title, text, level, wait_duration)


def report(runs: Union[None, str, StoredRun, Sequence[Union[str, StoredRun]]] = None, output: str = "report.html",
           *, dir: Optional[str] = None, project: Optional[str] = None, group: Optional[str] = None,
           state: Union[str, Sequence[str], None] = None, tags: Union[str, Sequence[str], None] = None,
           filters: Optional[Mapping[str, Any]] = None, title: Optional[str] = None,
           max_points: int = 1000) -> str:
    """Write one self-contained HTML report (a chart per metric, config and summary tables).

    ``runs``: run ids or stored runs; without them, every run that ``project``, ``group``,
    ``state``, ``tags`` and ``filters`` select (as ``Api().runs()``). Returns the file's path.
    """
    from mplogger._readers._report import write_report  # here: only report() needs it

    api = Api(dir)
    if runs is None:
        chosen = list(api.runs(project=project, group=group, state=state, tags=tags, filters=filters))
    else:
        items = [runs] if isinstance(runs, (str, StoredRun)) else list(runs)
        chosen = [item if isinstance(item, StoredRun) else api.run(item) for item in items]
    return write_report(chosen, output, title=title, max_points=max_points)
