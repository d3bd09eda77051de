"""Facts about processes on this host, asked from any process: whether one is alive (a zombie is
gone, a reused pid is not the process it was), this process's threads, and whether it is a
Jupyter kernel. The standard library only."""

from __future__ import annotations

import os
import sys
import threading
from typing import Any, Optional

__all__ = ["in_jupyter", "os_thread_count", "process_alive"]


def process_alive(pid: Optional[int], since: Optional[float] = None) -> bool:
    """Whether process ``pid`` on this host is alive (a zombie, exited but not reaped, is not).

    With ``since``, also whether it started before then: pass a run's ``updated`` time, since the
    process that writes a run started before its last write, while a process that reuses a dead
    writer's pid started after it.
    """
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # OverflowError: a number no pid can be
        return False
    except PermissionError:
        pass
    started = _process_start_time(pid)
    if started is None:
        return True
    if started is False:
        return False
    return since is None or started <= since + 1.0


def _process_start_time(pid: int) -> Any:
    """Wall-clock start of ``pid`` from /proc; False for a zombie, None where /proc cannot tell."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        with open("/proc/stat", "rb") as system:
            boot = next(float(line.split()[1]) for line in system if line.startswith(b"btime"))
    except (OSError, StopIteration, IndexError, ValueError):
        return None
    if fields[0] == b"Z":
        return False
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def os_thread_count() -> int:
    """Threads of this process as the OS sees them (C threads included, where /proc exists)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


def in_jupyter() -> bool:
    """True inside a Jupyter kernel (ipykernel), where cells run in one long-lived process."""
    if "ipykernel" not in sys.modules:
        return False
    try:
        ip = sys.modules["IPython"].get_ipython()
    except Exception:
        return False
    return ip is not None and hasattr(ip, "kernel")
