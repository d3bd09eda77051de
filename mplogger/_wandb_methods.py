"""Run methods of wandb's that every run answers alike (user process, and child processes logging
into it): accepted no-ops, and named refusals of what mplogger does not have."""

from __future__ import annotations

from typing import Any

from mplogger._errors import NotInMplogger
from mplogger._terminal import notice_once

__all__ = ["WandbRunMethods"]


class WandbRunMethods:
    """Mixed into :class:`~mplogger.Run` and :class:`~mplogger._child.ChildRun`."""

    id: str

    def watch(self, *args: Any, **kwargs: Any) -> None:
        """Accepted for wandb scripts; gradient/parameter watching is not done here."""
        notice_once("watch() does nothing in mplogger: log the values you want to keep")

    def unwatch(self, *args: Any, **kwargs: Any) -> None:
        """Accepted for wandb scripts, as ``watch()``; does nothing."""

    def mark_preempting(self) -> None:
        """Accepted for wandb scripts; a run cut short is stored as crashed or failed anyway."""

    def _label(self, *args: Any, **kwargs: Any) -> None:
        """Integrations call this private wandb hook (transformers: ``_label(code=...)``); nothing to do."""

    def log_artifact(self, *args: Any, **kwargs: Any) -> Any:
        """Not available yet: artifacts."""
        raise NotInMplogger("run.log_artifact(): artifacts")

    def use_artifact(self, *args: Any, **kwargs: Any) -> Any:
        """Not available yet: artifacts."""
        raise NotInMplogger("run.use_artifact(): artifacts")

    def link_artifact(self, *args: Any, **kwargs: Any) -> Any:
        """Not available: artifacts and wandb's model registry."""
        raise NotInMplogger("run.link_artifact(): artifacts")

    def log_model(self, *args: Any, **kwargs: Any) -> Any:
        """Not available yet: model artifacts."""
        raise NotInMplogger("run.log_model(): artifacts")

    def use_model(self, *args: Any, **kwargs: Any) -> Any:
        """Not available yet: model artifacts."""
        raise NotInMplogger("run.use_model(): artifacts")

    def log_code(self, *args: Any, **kwargs: Any) -> Any:
        """Not available: code artifacts (``init(save_code=True)`` keeps the script's source)."""
        raise NotInMplogger("run.log_code(): code artifacts", "init(save_code=True) keeps the script's source")
