"""Where the name ``wandb`` comes from (the CLI's ``mplogger run``, and the user process): the
folder ``_wandb_path`` (a ``wandb`` package that calls :func:`mplogger.wandb.install`, and
``wandb`` package metadata) and :func:`child_environment`, which puts it first on ``PYTHONPATH`` so
that every interpreter a job starts finds it before a real wandb. Processes that were not asked
pay nothing: no ``.pth`` file, no import hook. ``install()`` itself is :mod:`mplogger.wandb._install`.
"""

from __future__ import annotations

import os
import sys
from typing import Mapping, MutableMapping, Optional

__all__ = ["WANDB_VERSION", "PATH_FOLDER", "DIST_INFO", "child_environment"]

WANDB_VERSION = "0.21.0+mplogger"
"""The wandb release whose API the compatibility package follows, with a local label saying whose it is."""

PATH_FOLDER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "_wandb_path")
DIST_INFO = os.path.join(PATH_FOLDER, f"wandb-{WANDB_VERSION}.dist-info")


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
