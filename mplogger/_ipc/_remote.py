"""How an exception raised in the manager or a worker travels back (every process).

A failure there is packed into a :class:`RemoteError` message with its traceback (``tblib``) and
raised in the user process at the next call that can report it; the original exception, with
its original traceback, is the ``__cause__``.
"""

from __future__ import annotations

import traceback as _traceback
from typing import Optional

import cloudpickle
from tblib import Traceback

from mplogger._ipc._messages import RemoteError

__all__ = ["RemoteTraceback", "pack_exception", "unpack_exception"]


class RemoteTraceback(Exception):
    """The formatted traceback of an exception raised in another process."""

    def __init__(self, formatted: str) -> None:
        super().__init__(formatted)
        self.formatted = formatted

    def __str__(self) -> str:
        return "\n\n" + self.formatted


def pack_exception(exc: BaseException, process: str) -> RemoteError:
    """Turn an exception into a message that any process can rebuild."""
    original_tb = exc.__traceback__
    formatted = "".join(_traceback.format_exception(type(exc), exc, original_tb))
    try:
        tb = Traceback(original_tb).to_dict() if original_tb else None
    except Exception:
        tb = None
    try:
        pickled = cloudpickle.dumps(exc.with_traceback(None))
    except Exception:
        pickled = None
    finally:
        exc.with_traceback(original_tb)
    return RemoteError(
        type_name=type(exc).__qualname__,
        message=str(exc),
        traceback=tb,
        formatted=f"[in {process}]\n{formatted}",
        exception=pickled,
        process=process,
    )


def unpack_exception(remote: RemoteError) -> BaseException:
    """Rebuild the remote exception with its original traceback attached."""
    exc: Optional[BaseException] = None
    if remote.exception is not None:
        try:
            exc = cloudpickle.loads(remote.exception)
        except Exception:
            exc = None
    if not isinstance(exc, BaseException):
        exc = RemoteTraceback(remote.formatted)
    if remote.traceback is not None:
        try:
            exc = exc.with_traceback(Traceback.from_dict(remote.traceback).as_traceback())
        except Exception:
            pass
    if not isinstance(exc, RemoteTraceback):
        exc.__cause__ = RemoteTraceback(remote.formatted)
    return exc
