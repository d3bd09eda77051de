"""Whether this platform can give system metrics (every process: the user's asks to warn once,
the manager's sampler to choose its reader): Linux's ``/proc`` or an installed ``psutil``."""

from __future__ import annotations

import importlib.util
import os
import sys

__all__ = ["PROC", "SYS_BLOCK", "proc_usable", "psutil_installed", "system_metrics_unavailable"]

PROC = "/proc"
SYS_BLOCK = "/sys/block"

def proc_usable() -> bool:
    """True on Linux with a readable /proc (system metrics need nothing installed)."""
    return sys.platform.startswith("linux") and all(
        os.access(os.path.join(PROC, name), os.R_OK) for name in ("stat", "meminfo"))


def psutil_installed() -> bool:
    """True when ``import psutil`` would succeed (without importing it)."""
    if "psutil" in sys.modules:
        return sys.modules["psutil"] is not None
    return importlib.util.find_spec("psutil") is not None


def system_metrics_unavailable() -> bool:
    """True when neither /proc nor psutil can give CPU, memory, process and I/O metrics."""
    return not proc_usable() and not psutil_installed()
