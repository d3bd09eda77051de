"""Settings: what a user can tune, with their defaults and environment variables (every process)."""

from __future__ import annotations

import os
from typing import Any, Mapping, Optional, Union

import attrs

__all__ = ["CONSOLE_MODES", "MIN_START_S", "Settings", "START_METHODS", "STORE_FOLDER", "init_root", "resolve_root", "store_under"]

START_METHODS = ("auto", "fork", "forkserver", "spawn")


def _positive(instance: Any, attribute: attrs.Attribute, value: float) -> None:
    if value <= 0:
        raise ValueError(f"Settings.{attribute.name} must be > 0, got {value!r}")


def _start_method(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    if value not in START_METHODS:
        raise ValueError(
            f"Settings.start_method must be one of {', '.join(START_METHODS)}; got {value!r}"
        )


CONSOLE_MODES = ("auto", "wrap", "redirect", "off")  # what console capture can be set to
MIN_START_S = 10.0

@attrs.frozen(kw_only=True)
class Settings:
    """How mplogger runs. Every field has a default; ``MPLOGGER_*`` variables override them.

    start_method: how the manager process starts. ``auto`` forks when the process has a single
        thread (fast and safe) and uses ``spawn`` otherwise (a forked multi-threaded process can
        inherit locks that are never released).
    workers: size of the internal worker pool; each run is pinned to one worker.
    shutdown_timeout: the bound, in seconds, on every wait at finish and at exit.
    batch_size / batch_interval: a run's rows are sent to the manager every ``batch_size`` rows
        or ``batch_interval`` seconds, whichever comes first; they bound what a SIGKILL of the
        user process can lose. Fewer, larger batches wake the other processes less often.
    inflight_rows / inflight_bytes: how much may wait for a worker's store before the manager
        stops reading and ``log()`` blocks (back-pressure instead of unbounded memory); they
        also bound how long ``finish()`` waits after a burst.
    system_interval: seconds between system-metric samples, taken in the manager (0: off).
    console: capture of stdout/stderr into the run: ``wrap`` (Python level; ``auto`` means
        this), ``redirect`` (file descriptors 1 and 2, C output too) or ``off``;
        ``console_lines`` caps the lines kept per run.
    """

    start_method: str = attrs.field(default="auto", validator=_start_method)
    workers: int = attrs.field(default=0)
    shutdown_timeout: float = attrs.field(default=30.0, validator=_positive)
    batch_size: int = attrs.field(default=1024, validator=_positive)
    batch_interval: float = attrs.field(default=0.05, validator=_positive)
    inflight_rows: int = attrs.field(default=8192, validator=_positive)
    inflight_bytes: int = attrs.field(default=16 << 20, validator=_positive)
    system_interval: float = attrs.field(default=10.0)
    console: str = attrs.field(default="auto")
    console_lines: int = attrs.field(default=100_000, validator=_positive)

    @console.validator
    def _check_console(self, attribute: attrs.Attribute, value: str) -> None:
        if value not in CONSOLE_MODES:
            raise ValueError(f"Settings.console must be {', '.join(CONSOLE_MODES[:-1])} or {CONSOLE_MODES[-1]}; "
                             f"got {value!r}")

    @system_interval.validator
    def _check_system_interval(self, attribute: attrs.Attribute, value: float) -> None:
        if value < 0:
            raise ValueError(f"Settings.system_interval must be >= 0 (0 turns it off), got {value!r}")

    @classmethod
    def from_env(cls, base: Optional[Union["Settings", Mapping[str, Any]]] = None) -> "Settings":
        """Settings from ``base`` (a Settings or a dict), with ``MPLOGGER_*`` variables applied."""
        if base is None:
            values: dict = {}
        elif isinstance(base, Settings):
            values = {
                f.name: getattr(base, f.name)
                for f in attrs.fields(cls)
                if getattr(base, f.name) != f.default
            }
        elif isinstance(base, Mapping):
            unknown = set(base) - {f.name for f in attrs.fields(cls)}
            if unknown:
                raise TypeError(f"unknown setting(s): {', '.join(sorted(unknown))}")
            values = dict(base)
        else:
            raise TypeError(f"settings must be a Settings or a dict, not {type(base).__name__}")
        env = os.environ
        if "MPLOGGER_START_METHOD" in env and "start_method" not in values:
            values["start_method"] = env["MPLOGGER_START_METHOD"]
        if "MPLOGGER_CONSOLE" in env and "console" not in values:
            values["console"] = env["MPLOGGER_CONSOLE"]
        for name, cast in (("workers", int), ("shutdown_timeout", float), ("system_interval", float)):
            key = "MPLOGGER_" + name.upper()
            if key in env and name not in values:
                try:
                    values[name] = cast(env[key])
                except ValueError:
                    raise ValueError(f"{key}={env[key]!r} is not a valid {cast.__name__}") from None
        return cls(**values)

    def worker_count(self) -> int:
        """The pool size: the setting, else min(4, CPUs)."""
        return self.workers if self.workers > 0 else min(4, os.cpu_count() or 1)

    def start_timeout(self) -> float:
        """How long the manager's and its workers' start is waited for: ``shutdown_timeout``, but
        at least :data:`MIN_START_S` (a loaded machine starts processes slowly, and one that dies
        while starting is seen at once, never waited for)."""
        return max(self.shutdown_timeout, MIN_START_S)


STORE_FOLDER = "mplogger-runs"


def store_under(folder: Union[str, os.PathLike]) -> str:
    """The store that ``folder`` names: its ``mplogger-runs`` sub-folder, as wandb keeps ``wandb/``
    under ``dir``, unless ``folder`` is a store already (it holds ``mplogger.db``) or is itself
    called ``mplogger-runs``.

    The name is not a Python identifier on purpose: a ``./mplogger`` folder in the working
    directory, which comes first on ``sys.path``, would be imported as the package itself.
    """
    path = os.path.abspath(os.fspath(folder))
    if os.path.basename(path) == STORE_FOLDER or os.path.exists(os.path.join(path, "mplogger.db")):
        return path
    return os.path.join(path, STORE_FOLDER)


def resolve_root(dir: Optional[Union[str, os.PathLike]] = None) -> str:
    """The store a reader opens: under ``dir``; else ``MPLOGGER_DIR`` (the store itself); else under
    ``WANDB_DIR``; else ``./mplogger-runs``."""
    if dir is not None:
        return store_under(dir)
    exact = os.environ.get("MPLOGGER_DIR")
    if exact:
        return os.path.abspath(exact)
    return store_under(os.environ.get("WANDB_DIR") or os.curdir)


def init_root(dir: Optional[Union[str, os.PathLike]] = None) -> str:
    """The store ``init(dir=...)`` writes to: ``MPLOGGER_DIR`` wins when set, since it is chosen by
    whoever launches the job while ``dir=`` is often a library's default (Lightning passes ``"."``);
    otherwise as :func:`resolve_root`."""
    exact = os.environ.get("MPLOGGER_DIR")
    if exact:
        return os.path.abspath(exact)
    return resolve_root(dir)
