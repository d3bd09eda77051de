"""``wandb.errors`` (user process): wandb's exception names, for ``except`` clauses in libraries."""

from __future__ import annotations

from mplogger._shared._errors import ConfigError, Error, NotInMplogger, UsageError

__all__ = ["AuthenticationError", "CommError", "ConfigError", "Error", "NotInMplogger", "UnsupportedError",
           "UsageError"]


class CommError(Error):
    """wandb's network error; never raised here (there is no network)."""


class AuthenticationError(CommError):
    """wandb's login error; never raised here (there is no account)."""


UnsupportedError = NotInMplogger
