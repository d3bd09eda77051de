"""``wandb.wandb_run`` (user process): the run class, for ``isinstance`` checks in libraries."""

from mplogger._user._run import Run

__all__ = ["Run"]
