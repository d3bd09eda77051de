"""mplogger under wandb's name (user process): what ``import wandb`` gets under ``mplogger run`` or
after :func:`install`, and what ``import mplogger.wandb as wandb`` gives directly.

``run``, ``config``, ``summary`` and ``log`` are looked up on each access, so a library that kept
this module sees the run that ``init()`` started. Features mplogger does not have (the model
registry, sweeps, media other than Table, Image and Histogram) are present and raise
:class:`NotImplementedError` naming themselves, never an ``AttributeError`` from inside a library.
"""

from __future__ import annotations

import enum
import functools
import os
from typing import Any, Mapping

import mplogger as _mplogger
from mplogger import (Error, Histogram, Image, Run, Table, UsageError, alert, define_metric,
                      save, termerror, termlog, termwarn, watch)
from mplogger._shared._errors import NotInMplogger
from mplogger._shared._wandb_name import WANDB_VERSION
from mplogger.wandb._install import install
from mplogger.wandb import env, errors, plot, sdk, util, wandb_run
from mplogger.wandb.sdk.lib import RunDisabled
from mplogger.wandb.sdk.wandb_settings import Settings

__version__ = WANDB_VERSION

__all__ = [
    "__version__", "AlertLevel", "Api", "Artifact", "Audio", "Error", "Histogram", "Html", "Image", "Molecule",
    "Object3D", "Plotly", "Run", "RunDisabled", "Settings", "Table", "UsageError", "Video", "agent",
    "alert", "config", "controller", "define_metric", "env", "errors", "finish", "init", "install",
    "log", "log_artifact", "log_model", "login", "mark_preempting", "plot", "require", "restore", "run", "save", "sdk",
    "setup", "summary", "sweep", "teardown", "termerror", "termlog", "termwarn", "unwatch",
    "use_artifact", "use_model", "util", "wandb_run", "watch",
]

_LIVE = frozenset({"run", "config", "summary", "log"})


def __getattr__(name: str) -> Any:
    """``wandb.run`` / ``config`` / ``summary`` / ``log``: the current ones, read from mplogger."""
    if name in _LIVE:
        return getattr(_mplogger, name)
    raise AttributeError(f"module 'wandb' (mplogger's stand-in for wandb {__version__}) has no attribute {name!r}")


def __dir__() -> list:
    return sorted(set(globals()) | _LIVE)


_from_setup: dict = {}  # init arguments among the settings given to setup(): the defaults of later init() calls


def _settings(settings: Any) -> "tuple[Any, dict]":
    """mplogger's settings and (a copy of) the init arguments in ``settings`` (wandb's, mplogger's or a dict)."""
    if settings is None or isinstance(settings, _mplogger.Settings):
        return settings, {}
    if not isinstance(settings, Settings):
        settings = Settings(**dict(settings))
    return settings.mplogger_settings, dict(settings.init_arguments)


@functools.wraps(_mplogger.init)
def init(*args: Any, settings: Any = None, force: Any = None, tensorboard: Any = None,
         resume_from: Any = None, fork_from: Any = None, **kwargs: Any) -> Any:
    ours, from_settings = _settings(settings)
    from_settings = {**_from_setup, **from_settings}
    resume_from = from_settings.pop("resume_from", resume_from)
    fork_from = from_settings.pop("fork_from", fork_from)
    if resume_from is not None or fork_from is not None:
        raise NotInMplogger("init(resume_from=...)/init(fork_from=...): rewinding or forking a run",
                            "resume the run with init(id=..., resume='must') instead")
    for name, value in from_settings.items():  # wandb: an init() argument wins over the same setting
        if kwargs.get(name) is None:
            kwargs[name] = value
    if tensorboard is not None and kwargs.get("sync_tensorboard") is None:
        kwargs["sync_tensorboard"] = tensorboard
    return _mplogger.init(*args, settings=ours, **kwargs)


def finish(exit_code: Any = None, quiet: Any = None) -> None:
    """Finish ``wandb.run`` (if any); ``quiet`` is accepted and ignored."""
    _mplogger.finish(exit_code)


def setup(settings: Any = None) -> Any:
    """Start the manager now (optional: ``init()`` does it); takes wandb's or mplogger's settings.
    Init arguments among wandb's settings (``project``, ``run_name``, ...) are kept for later ``init()`` calls."""
    ours, from_settings = _settings(settings)
    _from_setup.clear()
    _from_setup.update(from_settings)
    return _mplogger.setup(ours)


def teardown(exit_code: Any = None) -> None:
    """Finish every open run and stop the manager (and forget what ``setup()`` was given)."""
    _from_setup.clear()
    _mplogger.teardown(exit_code)


class AlertLevel(str, enum.Enum):
    """The levels of ``wandb.alert(level=...)``."""

    INFO = "INFO"
    WARN = "WARN"
    ERROR = "ERROR"


class Api(_mplogger.Api):
    """``wandb.Api()``: the runs of the local store. wandb's ``overrides``, ``timeout`` and
    ``api_key`` are accepted and ignored (there is no server); a path as first argument, or
    ``dir=``, names the store as in :class:`mplogger.Api`."""

    def __init__(self, overrides: Any = None, timeout: Any = None, api_key: Any = None, *, dir: Any = None) -> None:
        if dir is None and isinstance(overrides, (str, os.PathLike)):
            dir, overrides = overrides, None
        if overrides is not None and not isinstance(overrides, Mapping):
            raise TypeError(f"Api(overrides=...): expected a dict (wandb's) or a store path, got {type(overrides).__name__}")
        super().__init__(dir)


def mark_preempting() -> None:
    """Accepted for wandb scripts; a run cut short is stored as crashed or failed anyway."""


def login(*args: Any, **kwargs: Any) -> bool:
    """There is no account to log in to: returns True (wandb's "logged in")."""
    return True


def require(*requirements: Any, **kwargs: Any) -> None:
    """wandb's feature flags (``require("service")``, ...): mplogger always works one way."""


def unwatch(*args: Any, **kwargs: Any) -> None:
    """As ``watch()``: accepted, does nothing."""


def _attach(attach_id: Any = None, run_id: Any = None, *, run: Any = None) -> Any:
    """Log from this process into the run whose ``run._attach_id`` another process passed
    (Lightning's spawn); it becomes ``wandb.run`` here, as in wandb."""
    from mplogger._user import _session
    from mplogger._user._child import attach_token
    from mplogger._user._module_api import set_globals

    if attach_id is None and run is not None:
        attach_id = run._attach_id
    if attach_id is None and run_id is not None:
        live = _session.current().runs.get(run_id)
        if live is None:
            raise UsageError(f"wandb._attach(run_id={run_id!r}): mplogger attaches another process's run by "
                             "its run._attach_id; pass that from the process that started the run")
        attached = live
    else:
        attached = attach_token(attach_id)
    set_globals(attached)
    return attached


def _missing_function(name: str, feature: str, hint: str = "") -> Any:
    def missing(*args: Any, **kwargs: Any) -> Any:
        raise NotInMplogger(f"wandb.{name}(): {feature}", hint)
    missing.__name__ = missing.__qualname__ = name
    missing.__doc__ = f"Not available in mplogger: {feature}."
    return missing


def _missing_class(name: str, feature: str, hint: str = "") -> type:
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        raise NotInMplogger(f"wandb.{name}: {feature}", hint)
    return type(name, (), {"__init__": __init__, "__doc__": f"Not available in mplogger: {feature}.",
                           "__module__": __name__})


Artifact = _mplogger.Artifact
log_artifact = _mplogger.log_artifact
use_artifact = _mplogger.use_artifact
log_model = _mplogger.log_model
use_model = _mplogger.use_model
link_model = _missing_function("link_model", "wandb's model registry")
restore = _missing_function("restore", "restoring files from wandb's server", "run.save() keeps files in the run's folder")
sweep = _missing_function("sweep", "sweeps")
agent = _missing_function("agent", "sweeps")
controller = _missing_function("controller", "sweeps")
Audio = _missing_class("Audio", "Audio media")
Video = _missing_class("Video", "Video media")
Html = _missing_class("Html", "Html media")
Object3D = _missing_class("Object3D", "Object3D media")
Molecule = _missing_class("Molecule", "Molecule media")
Plotly = _missing_class("Plotly", "Plotly charts")
Graph = _missing_class("Graph", "model graphs")
