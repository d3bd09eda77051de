"""Writing a file so that no reader ever sees half of it (any process): a temporary file beside
it, renamed over it once complete."""

from __future__ import annotations

import os
import tempfile
from typing import Callable, TypeVar

__all__ = ["write_atomically"]

T = TypeVar("T")


def write_atomically(path: str, write: Callable[[str], T], keep_mode: bool = True) -> T:
    """``write(temporary)`` a file named ``<name>.part-*`` beside ``path``, then rename it to ``path``;
    on any failure the temporary file is removed and ``path`` is as it was. Returns what ``write`` did.

    ``keep_mode``: the file gets the permissions of the one it replaces, or those a new file gets
    under this process's umask; else it keeps the temporary file's (owner only).
    """
    folder = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(prefix=os.path.basename(path) + ".part-", dir=folder)
    os.close(fd)
    try:
        result = write(temporary)
        if keep_mode:
            os.chmod(temporary, _mode_for(path))
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    return result


def _mode_for(path: str) -> int:
    try:
        return os.stat(path).st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask
