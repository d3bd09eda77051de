"""``wandb.plot`` (user process): wandb's custom charts, which need its web app; each one says so."""

from __future__ import annotations

from typing import Any, Callable

from mplogger._shared._errors import NotInMplogger


def __getattr__(name: str) -> Callable[..., Any]:
    if name.startswith("__"):
        raise AttributeError(name)

    def chart(*args: Any, **kwargs: Any) -> Any:
        raise NotInMplogger(f"wandb.plot.{name}(): wandb's custom charts",
                            "log the values (or a wandb.Table) and chart them with `mplogger report`")
    chart.__name__ = name
    return chart
