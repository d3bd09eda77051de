"""Answering to the name ``wandb`` (user process and every Python process a job starts).

Two ways, both asked for by the user: :func:`install` in this process (``sys.modules`` and a
distribution finder), and :func:`child_environment` for ``mplogger run``, which puts the folder
``_wandb_path`` (a ``wandb`` package that calls :func:`install`, and ``wandb`` package metadata)
first on ``PYTHONPATH``, so that every interpreter the job starts finds it before a real wandb.
Processes that were not asked pay nothing: no ``.pth`` file, no import hook.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.metadata
import os
import pathlib
import pkgutil
import sys
from typing import Any, Iterator, Mapping, MutableMapping, Optional

__all__ = ["WANDB_VERSION", "PATH_FOLDER", "child_environment", "install", "installed"]

WANDB_VERSION = "0.21.0+mplogger"
"""The wandb release whose API the compatibility package follows, with a local label saying whose it is."""

PATH_FOLDER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "_wandb_path")
_DIST_INFO = os.path.join(PATH_FOLDER, f"wandb-{WANDB_VERSION}.dist-info")


class _WandbDistribution(importlib.abc.MetaPathFinder):
    """Lets ``importlib.metadata`` find mplogger's ``wandb`` metadata first (``install()`` only)."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        return None

    def find_distributions(self, context: Any = importlib.metadata.DistributionFinder.Context()) -> Iterator[Any]:
        if context.name is None or context.name.lower().replace("_", "-").replace(".", "-") == "wandb":
            yield importlib.metadata.PathDistribution(pathlib.Path(_DIST_INFO))


def installed() -> bool:
    """True when ``import wandb`` gives mplogger's compatibility package in this process."""
    module = sys.modules.get("wandb")
    return module is not None and getattr(module, "__name__", None) == "mplogger.wandb"


def install() -> Any:
    """From now on, in this process, ``import wandb`` (and ``wandb.sdk...``) is ``mplogger.wandb``.

    Also makes ``importlib.metadata.version("wandb")`` answer, as libraries check it. A real wandb
    imported earlier is dropped from ``sys.modules`` (modules that hold it keep it; a warning says so).
    """
    package = importlib.import_module("mplogger.wandb")
    if installed():
        return package
    previous = sys.modules.get("wandb")
    if previous is not None and not getattr(previous, "MPLOGGER_STAND_IN", False):
        from mplogger._shared._terminal import termwarn

        termwarn("mplogger.wandb.install(): a wandb module was imported before; code that imported it "
                 "keeps it, `import wandb` from now on gives mplogger's")
        for name in [name for name in sys.modules if name == "wandb" or name.startswith("wandb.")]:
            del sys.modules[name]
    for info in pkgutil.walk_packages(package.__path__, "mplogger.wandb."):
        if info.name.endswith(".__main__"):  # `python -m wandb` runs it; importing it would too
            continue
        sys.modules["wandb." + info.name[len("mplogger.wandb."):]] = importlib.import_module(info.name)
    sys.modules["wandb"] = package
    if not any(isinstance(finder, _WandbDistribution) for finder in sys.meta_path):
        sys.meta_path.insert(0, _WandbDistribution())
    return package


def child_environment(environ: Optional[Mapping[str, str]] = None) -> MutableMapping[str, str]:
    """``environ`` (default: this process's) with mplogger's ``wandb`` first on ``PYTHONPATH``, and
    ``MPLOGGER_DIR`` made absolute (a job that changes its folder still writes to that store)."""
    env = dict(os.environ if environ is None else environ)
    given = env.get("PYTHONPATH")
    entries = [entry for entry in given.split(os.pathsep) if entry != PATH_FOLDER] if given else []
    env["PYTHONPATH"] = os.pathsep.join([PATH_FOLDER, *entries])  # empty entries (the current folder) kept
    if env.get("MPLOGGER_DIR"):
        env["MPLOGGER_DIR"] = os.path.abspath(env["MPLOGGER_DIR"])
    env["MPLOGGER_RUN_PYTHON"] = sys.executable  # named by the wandb folder if the job's Python lacks mplogger
    return env
