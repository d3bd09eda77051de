"""Run methods of wandb's that every run answers alike (user process, and child processes logging
into it): accepted no-ops, and named refusals of what mplogger does not have."""

from __future__ import annotations

import os
from typing import Any, List, Optional

from mplogger._shared._errors import NotInMplogger
from mplogger._shared._terminal import notice_once

__all__ = ["WandbRunMethods"]


class WandbRunMethods:
    """Mixed into :class:`~mplogger.Run` and :class:`~mplogger._user._child.ChildRun`."""

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

    def log_model(self, path: Any, name: Optional[str] = None, aliases: Optional[List[str]] = None) -> Any:
        """A file or folder logged as an artifact of type ``model`` (default name ``run-<id>-<base name>``)."""
        base = os.path.basename(os.path.normpath(os.fspath(path)))
        return self.log_artifact(path, name or f"run-{self.id}-{base}", "model", aliases)

    def use_model(self, name: str) -> str:
        """Download the model artifact ``name`` (``name:alias``) and return the path of its folder."""
        artifact = self.use_artifact(name)
        if artifact.type != "model":
            raise ValueError(f"use_model({name!r}): that artifact is of type {artifact.type!r}, not 'model'")
        return artifact.download()

    def link_artifact(self, *args: Any, **kwargs: Any) -> Any:
        """Not available: wandb's model registry."""
        raise NotInMplogger("run.link_artifact(): wandb's model registry", "aliases name versions: "
                            "run.log_artifact(artifact, aliases=[...])")

    def log_code(self, *args: Any, **kwargs: Any) -> Any:
        """Not available: code artifacts (``init(save_code=True)`` keeps the script's source)."""
        raise NotInMplogger("run.log_code(): code artifacts", "init(save_code=True) keeps the script's source")
