"""``wandb.sdk`` (user process): the part of wandb's module tree that libraries import."""

from mplogger.wandb.sdk import lib, wandb_run, wandb_settings

__all__ = ["lib", "wandb_run", "wandb_settings"]
