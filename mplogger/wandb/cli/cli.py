"""``wandb`` on the command line under ``mplogger run`` (the CLI: ``python -m wandb``, or a real wandb's
script).

Commands that only set up an account or a mode (``login``, ``offline``, ...) succeed and do
nothing, so a job's shell script that calls them goes on; the others need wandb's server and say
which ``mplogger`` command does the local equivalent.
"""

from __future__ import annotations

import sys
from typing import Optional, Sequence

from mplogger._shared._wandb_name import WANDB_VERSION

__all__ = ["cli"]

_NOTHING_TO_DO = ("login", "logout", "online", "offline", "enabled", "disabled", "status", "init", "verify")
_LOCAL = {"sync": "runs are stored as they are logged: mplogger ls",
          "artifact": "artifacts are not in mplogger yet", "sweep": "sweeps are not in mplogger",
          "agent": "sweeps are not in mplogger", "server": "there is no server: mplogger report -o report.html",
          "local": "there is no server: mplogger report -o report.html"}


def cli(args: Optional[Sequence[str]] = None) -> int:
    """Run ``wandb ARGS``; returns (and, as a console script, exits with) the status."""
    argv = list(sys.argv[1:] if args is None else args)
    if not argv or argv[0] in ("-h", "--help"):
        print(f"wandb {WANDB_VERSION}: mplogger answers to the name wandb in this job (`mplogger run`); "
              "runs go to the local store. Use the `mplogger` command to look at them.")
        return 0
    if argv[0] == "--version":
        print(f"wandb, version {WANDB_VERSION}")
        return 0
    if argv[0] in _NOTHING_TO_DO:
        print(f"wandb {argv[0]}: nothing to do, mplogger logs locally with no account", file=sys.stderr)
        return 0
    hint = _LOCAL.get(argv[0], "see `mplogger --help`")
    print(f"wandb {argv[0]}: not available under mplogger ({hint})", file=sys.stderr)
    return 1
