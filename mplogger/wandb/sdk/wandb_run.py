"""``wandb.sdk.wandb_run`` (user process): the run class."""

from mplogger._user._run import Run

__all__ = ["Run"]
