"""``init(mode="disabled")``: a run whose methods are cheap no-ops and which writes nothing (user process)."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

from mplogger._store import new_run_id

__all__ = ["DisabledRun"]


class _AttrDict(dict):
    """A dict with attribute access, standing in for config and summary."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def update(self, data: Any = (), allow_val_change: Optional[bool] = None, **more: Any) -> None:  # type: ignore[override]
        if data is not None and not isinstance(data, Mapping) and hasattr(data, "__dict__"):
            data = vars(data)
        super().update(data or {}, **more)

    def setdefaults(self, data: Mapping[str, Any]) -> None:
        for key, value in dict(data).items():
            self.setdefault(key, value)

    def as_dict(self) -> Dict[str, Any]:
        return dict(self)


def _nothing(*args: Any, **kwargs: Any) -> None:
    return None


class DisabledRun:
    """Accepts every call a Run accepts and does nothing (``log()`` keeps the summary only)."""

    def __init__(self, name: Optional[str], project: Optional[str], config: Mapping[str, Any]) -> None:
        self.id = new_run_id()
        self.name = name or "disabled"
        self.project = project or "uncategorized"
        self.entity = self.group = self.job_type = self.notes = self.url = self.dir = self.root = None
        self.tags: tuple = ()
        self.state = "disabled"
        self.step = 0
        self.disabled = True
        self.resumed = self.offline = False
        self._attach_id = self.sweep_id = self.start_time = None
        self.config = _AttrDict(config)
        self.summary = _AttrDict()

    def log(self, data: Mapping[str, Any], step: Optional[int] = None, commit: Optional[bool] = None,
            sync: Optional[bool] = None) -> None:
        if isinstance(data, Mapping):
            self.summary.update(data)

    def flush(self, timeout: Optional[float] = None) -> None:
        pass

    def finish(self, exit_code: Optional[int] = None, quiet: Optional[bool] = None) -> None:
        pass

    def define_metric(self, name: str, *args: Any, **kwargs: Any) -> None:
        pass

    def save(self, *args: Any, **kwargs: Any) -> List[str]:
        return []

    def watch(self, *args: Any, **kwargs: Any) -> None:
        pass

    def alert(self, *args: Any, **kwargs: Any) -> None:
        pass

    def _label(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __enter__(self) -> "DisabledRun":
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        """Any other run method a library calls (``log_artifact``, ``unwatch``, ...): a no-op, as wandb's.

        Attributes a library tests (``resumed``, ``offline``, ``_attach_id``, ...) are set above, so
        only methods reach this."""
        if name.startswith("__"):
            raise AttributeError(name)
        return _nothing

    def __repr__(self) -> str:
        return f"<mplogger.DisabledRun {self.id} {self.name!r}>"
