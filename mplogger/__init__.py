"""mplogger: a local-first experiment logger with the wandb API and no networking.

``import mplogger as wandb`` works for ordinary training scripts: ``init``, ``log``, ``finish``,
``config`` and ``summary`` behave as wandb's do, and runs are stored in a local SQLite store that
``mplogger.Api`` reads back.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import socket
import string
import sys
import time
from typing import Any, Mapping, Optional, Sequence, Union

from mplogger import _launch, _session
from mplogger._api import Api, StoredRun
from mplogger._errors import Error, ManagerError, RunError, UsageError
from mplogger._messages import InitRun, RunReady
from mplogger._run import Config, Run, Summary
from mplogger._settings import Settings, resolve_root
from mplogger._values import from_json, jsonable, to_json

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "Api",
    "Config",
    "Error",
    "ManagerError",
    "Run",
    "RunError",
    "Settings",
    "StoredRun",
    "Summary",
    "UsageError",
    "config",
    "finish",
    "init",
    "log",
    "run",
    "setup",
    "summary",
    "teardown",
]

run: Optional[Run] = None
config: Optional[Config] = None
summary: Optional[Summary] = None


def _log_before_init(data: Mapping[str, Any], step: Optional[int] = None, commit: Optional[bool] = None) -> None:
    """Placeholder until ``init()``: logging needs a run."""
    raise UsageError("call mplogger.init() before mplogger.log()")


log = _log_before_init

_ADJECTIVES = ("amber", "brisk", "calm", "dapper", "eager", "fluent", "gentle", "hardy", "ivory",
               "jolly", "keen", "lucid", "mellow", "nimble", "olive", "proud", "quiet", "rapid",
               "sunny", "tidy", "vivid", "witty", "young", "zesty")
_NOUNS = ("river", "meadow", "falcon", "comet", "harbor", "forest", "ember", "glacier", "lantern",
          "orchid", "pebble", "quartz", "summit", "tundra", "valley", "willow", "breeze", "canyon")


def _new_run_id() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "".join(random.choices(alphabet, k=8))


def _new_run_name() -> str:
    return f"{random.choice(_ADJECTIVES)}-{random.choice(_NOUNS)}-{random.randint(1, 999)}"


def _set_globals(active: Optional[Run]) -> None:
    global run, config, summary, log
    run = active
    config = active.config if active is not None else None
    summary = active.summary if active is not None else None
    log = active.log if active is not None else _log_before_init


def _on_finish(finished: Run) -> None:
    session = _session.current()
    session.runs.pop(finished.id, None)
    if run is finished:
        _set_globals(None)


def setup(settings: Optional[Union[Settings, Mapping[str, Any]]] = None) -> None:
    """Start this process's manager and its worker pool, and wait until they serve.

    Optional: ``init()`` calls it when needed. Later calls do nothing while the manager runs.
    """
    _session.setup(settings)


def _config_dict(config_arg: Any) -> dict:
    if config_arg is None:
        return {}
    if isinstance(config_arg, argparse.Namespace):
        return dict(vars(config_arg))
    if isinstance(config_arg, Mapping):
        for key in config_arg:
            if not isinstance(key, str):
                raise TypeError(f"init(config=...): keys must be strings; got {key!r}")
        return dict(config_arg)
    raise TypeError(
        f"init(config=...) takes a dict or an argparse.Namespace, not {type(config_arg).__name__}"
    )


def init(
    project: Optional[str] = None,
    name: Optional[str] = None,
    config: Any = None,
    dir: Optional[Union[str, os.PathLike]] = None,
    id: Optional[str] = None,
    tags: Optional[Sequence[str]] = None,
    notes: Optional[str] = None,
    group: Optional[str] = None,
    job_type: Optional[str] = None,
    reinit: Union[bool, str, None] = None,
    resume: Union[bool, str, None] = None,
    settings: Optional[Union[Settings, Mapping[str, Any]]] = None,
) -> Run:
    """Start a run and return it once it exists in the store; also sets ``mplogger.run``.

    While a run is active, ``init()`` returns it unless ``reinit`` is True or
    ``"finish_previous"`` (finish it first; the default in Jupyter) or ``"create_new"`` (an
    independent run that does not replace ``mplogger.run``).
    """
    session = _session.current()
    if reinit is None and _launch.in_jupyter():
        reinit = "finish_previous"  # a notebook re-runs cells: a new init() starts a new run
    if reinit not in (None, False, True, "default", "return_previous", "finish_previous", "create_new"):
        raise ValueError(
            f"init(reinit={reinit!r}): use None, True, 'return_previous', 'finish_previous' or 'create_new'"
        )
    if run is not None and not run._closed and reinit in (None, False, "default", "return_previous"):
        return run
    if run is not None and reinit in (True, "finish_previous"):
        run.finish()
    if resume not in (None, False, True, "allow", "must", "never", "auto"):
        raise ValueError(f"init(resume={resume!r}): use 'allow', 'must', 'never', 'auto' or True")
    resume_mode = {None: None, False: None, True: "allow", "auto": "allow"}.get(resume, resume)  # type: ignore[arg-type]
    if id is not None:
        if not isinstance(id, str) or not id or any(c in id for c in "/\\:*?\"<>| ") or id in (".", ".."):
            raise ValueError(f"init(id={id!r}): a run id must be a non-empty string usable as a folder name")
    if tags is not None and (isinstance(tags, str) or not all(isinstance(t, str) for t in tags)):
        raise TypeError("init(tags=...) takes a list of strings")
    config_values = _config_dict(config)
    client = _session.setup(settings)
    root = resolve_root(dir)
    record = {
        "id": id or _new_run_id(),
        "project": project or os.environ.get("MPLOGGER_PROJECT") or "uncategorized",
        "name": name or _new_run_name(),
        "run_group": group,
        "job_type": job_type,
        "tags": json.dumps(list(tags or [])),
        "notes": notes,
        "created": time.time(),
        "config": to_json(jsonable(config_values)),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "python": platform.python_version(),
        "argv": json.dumps(list(sys.argv)),
    }
    reply = client.request(lambda r: InitRun(r, root, record, resume_mode), "init")
    assert isinstance(reply, RunReady)
    stored = dict(reply.record)
    stored["tags_list"] = json.loads(stored.get("tags") or "[]")
    new_run = Run(client, stored, root, from_json(stored["config"]), _on_finish)
    session.runs[new_run.id] = new_run
    if reinit != "create_new":
        _set_globals(new_run)
    return new_run


def finish(exit_code: Optional[int] = None) -> None:
    """Finish ``mplogger.run`` (if any). Safe to call twice."""
    if run is not None:
        run.finish(exit_code)


def teardown(exit_code: Optional[int] = None) -> None:
    """Finish every open run of this process and stop its manager (what happens at exit)."""
    _session.teardown(exit_code)
    _set_globals(None)
