"""``wandb.env`` (user process): the ``WANDB_*`` variable names and their setters."""

from __future__ import annotations

import os

__all__ = ["DIR", "ENTITY", "MODE", "NAME", "PROJECT", "RUN_GROUP", "RUN_ID", "set_entity", "set_project"]

PROJECT = "WANDB_PROJECT"
ENTITY = "WANDB_ENTITY"
NAME = "WANDB_NAME"
RUN_ID = "WANDB_RUN_ID"
RUN_GROUP = "WANDB_RUN_GROUP"
MODE = "WANDB_MODE"
DIR = "WANDB_DIR"


def set_project(value: str) -> None:
    """The project of runs started from now on without ``project=``."""
    os.environ[PROJECT] = value


def set_entity(value: str) -> None:
    """The entity of runs started from now on without ``entity=``."""
    os.environ[ENTITY] = value
