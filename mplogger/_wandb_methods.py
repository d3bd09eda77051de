"""Run methods of wandb's that every run answers alike (user process, and child processes logging
into it): accepted no-ops, and named refusals of what mplogger does not have."""

from __future__ import annotations

from typing import Any

from mplogger._errors import NotInMplogger, UsageError
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
        """Artifacts are logged by the process that called ``init()``; this run is attached from another."""
        raise self._owner_only("log_artifact")

    def use_artifact(self, *args: Any, **kwargs: Any) -> Any:
        """As ``log_artifact``: in the process that called ``init()`` (or read ``Api().artifact()`` here)."""
        raise self._owner_only("use_artifact", "mplogger.Api().artifact(name) reads one from any process")

    def log_model(self, *args: Any, **kwargs: Any) -> Any:
        """As ``log_artifact``."""
        raise self._owner_only("log_model")

    def use_model(self, *args: Any, **kwargs: Any) -> Any:
        """As ``use_artifact``."""
        raise self._owner_only("use_model", "mplogger.Api().artifact(name).download() reads one from any process")

    def _owner_only(self, what: str, hint: str = "") -> UsageError:
        return UsageError(f"run.{what}(): run {self.id} is attached from another process here; artifacts are "
                          f"logged and used by the process that called init(){'; ' + hint if hint else ''}")

    def link_artifact(self, *args: Any, **kwargs: Any) -> Any:
        """Not available: wandb's model registry."""
        raise NotInMplogger("run.link_artifact(): wandb's model registry", "aliases name versions: "
                            "run.log_artifact(artifact, aliases=[...])")

    def log_code(self, *args: Any, **kwargs: Any) -> Any:
        """Not available: code artifacts (``init(save_code=True)`` keeps the script's source)."""
        raise NotInMplogger("run.log_code(): code artifacts", "init(save_code=True) keeps the script's source")
