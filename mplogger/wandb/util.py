"""``wandb.util`` (user process): the helpers libraries take from it."""

from __future__ import annotations

from mplogger._store import new_run_id

__all__ = ["generate_id"]


def generate_id(length: int = 8) -> str:
    """A random run id of lowercase letters and digits, as wandb's (not replayed by ``random.seed``)."""
    return new_run_id(length)
