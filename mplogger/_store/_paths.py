"""Where a store keeps things, and the run-id rule that keeps every path inside it (every process
that opens a store; no SQL here).

A run id is also its folder's name, so every id that enters (``init(id=...)``, a resume record, a
row read from a store someone else made) must pass :func:`check_run_id`, and :func:`run_dir`
applies it: 1 to 128 ASCII letters, digits, ``_``, ``.`` and ``-``, starting with a letter, digit
or ``_`` (so never ``.``, ``..``, a hidden name or a command-line option), and no path separator
or control character.
"""

from __future__ import annotations

import os
import random
import re
import string
from typing import Any, Optional

__all__ = ["DB_NAME", "RUN_ID_RULE", "UNSEEDED", "check_run_id", "db_path", "file_identity", "has_database",
           "is_run_id", "new_run_id", "no_database", "run_dir"]

DB_NAME = "mplogger.db"


def db_path(root: str) -> str:
    return os.path.join(root, DB_NAME)


RUN_ID_MAX = 128
_RUN_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,%d}" % (RUN_ID_MAX - 1))
RUN_ID_RULE = (f"a run id is its folder name: 1 to {RUN_ID_MAX} ASCII letters, digits, '_', '.' or '-', "
               "starting with a letter, a digit or '_'")


def is_run_id(value: Any) -> bool:
    """Whether ``value`` is a usable run id (see :func:`check_run_id`)."""
    return isinstance(value, str) and _RUN_ID.fullmatch(value) is not None


UNSEEDED = random.SystemRandom()
"""Random choices that user code cannot replay: scripts seed ``random`` (Lightning's
``seed_everything``, transformers' ``set_seed``), and every run of such a script would get the same id."""


def new_run_id(length: int = 8) -> str:
    """A fresh run id: ``length`` lowercase letters and digits, as wandb's."""
    return "".join(UNSEEDED.choices(string.ascii_lowercase + string.digits, k=length))


def check_run_id(run_id: Any, where: str) -> str:
    """``run_id`` if it is safe as a folder name; else ValueError naming it and ``where`` it came from."""
    if not is_run_id(run_id):
        raise ValueError(f"{where}: {run_id!r} is not a usable run id ({RUN_ID_RULE})")
    return run_id


def run_dir(root: str, run_id: str) -> str:
    """The folder of run ``run_id``: always inside ``<root>/runs``, else ValueError.

    A bad id is refused, and so is a ``runs`` folder or a run folder that is a symbolic link
    leading elsewhere (a store from someone else may hold one, pointing at your files).
    """
    folder = os.path.join(root, "runs", check_run_id(run_id, f"the run folder in {root}"))
    if os.path.realpath(folder) != os.path.join(os.path.realpath(root), "runs", run_id):
        raise ValueError(f"the folder of run {run_id!r} in {root} is a symbolic link that leads out of "
                         "the store; refusing to use it")
    return folder


def has_database(root: str) -> bool:
    """Whether ``root`` holds a database: False for a folder with none yet (an empty store).

    FileNotFoundError when ``root`` is not a folder at all.
    """
    if os.path.exists(db_path(root)):
        return True
    if os.path.isdir(root) or (os.path.basename(root) == "mplogger-runs" and not os.path.lexists(root)
                               and os.path.isdir(os.path.dirname(root))):
        return False  # a folder whose store init(dir=folder) has not made yet
    raise no_database(root)


def no_database(root: str) -> FileNotFoundError:
    """The error for a root without a database: no such folder, or a folder without a store."""
    if os.path.isdir(root):
        return FileNotFoundError(f"no mplogger store at {root!r} (no {DB_NAME} there)")
    parent = os.path.dirname(root)
    if os.path.basename(root) == "mplogger-runs" and not os.path.exists(parent):
        root = parent  # looked for under a folder that is not there: name the folder the user gave
    why = "not a folder" if os.path.exists(root) else "there is no such folder"
    return FileNotFoundError(f"no mplogger store at {root!r} ({why})")


def file_identity(root: str) -> Optional[tuple]:
    """(device, inode) of the store's database file, or None when it is gone.

    A writer compares it after each commit: a store deleted (or replaced) under a live process
    would otherwise take its rows into an unlinked file, silently.
    """
    try:
        stat = os.stat(db_path(root))
    except FileNotFoundError:
        return None
    return (stat.st_dev, stat.st_ino)
