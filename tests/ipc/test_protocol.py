"""The protocol in one place: every message has a handler in the process that receives it (the
manager's table, the worker's table), and the conventions are the functions of _messages."""

from __future__ import annotations

import attrs
import pytest

from mplogger._ipc import _messages
from mplogger._manager._mux import Mux
from mplogger._ipc._messages import (FinishRun, LogArtifact, LogBatch, UpdateRun, finishes_lost_run, from_child,
                                internal)
from mplogger._worker._writer import Worker

MESSAGES = {name: getattr(_messages, name) for name in _messages.__all__
            if attrs.has(getattr(_messages, name, None))}

FROM_USER = {"Hello", "InitRun", "LogBatch", "UpdateRun", "ConsoleLines", "FlushRun", "GetSummary",
             "LogArtifact", "UseArtifact", "FinishRun", "ManagerStop", "ManagerPoll"}
REPLIES = {"Ready", "RunReady", "RunFlushed", "SummaryReply", "ArtifactLogged", "ArtifactUsed", "RunFinished",
           "StopAck", "PollReply", "ErrorReply", "Busy"}  # to the user process
WORKER_NOTES = {"WorkerHello", "BatchesDone"}  # from a worker, for the manager alone
MANAGER_MADE = {"SystemSample", "WorkerStop"}  # from the manager to a worker (WorkerStop: its loop's)
PARTS = {"RemoteError"}  # inside an ErrorReply


def handled_by(cls: type) -> set:
    return {kind.__name__ for kind in cls.make_handlers(cls.__new__(cls))}


def test_every_message_has_one_known_role():
    roles = [FROM_USER, REPLIES, WORKER_NOTES, MANAGER_MADE, PARTS]
    assert set(MESSAGES) == set().union(*roles), "a new message needs a role and a handler"
    assert sum(len(role) for role in roles) == len(MESSAGES)  # no message has two


def test_the_manager_handles_everything_a_user_process_or_child_sends():
    assert handled_by(Mux) == FROM_USER


def test_the_worker_handles_everything_the_manager_forwards():
    forwarded = (FROM_USER - {"Hello", "ManagerStop", "ManagerPoll"}) | {"SystemSample"}
    assert handled_by(Worker) == forwarded


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_every_message_is_frozen(name):
    cls = MESSAGES[name]
    fields = attrs.fields(cls)
    message = cls(*[None] * sum(field.default is attrs.NOTHING for field in fields))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(message, fields[0].name if fields else "anything", "changed")


def test_the_conventions():
    assert internal(-2) and not internal(0) and not internal(7) and not internal(None)
    assert from_child(LogBatch("r", b"", 1, origin=1234)) and not from_child(LogBatch("r", b"", 1))
    assert from_child(LogArtifact(None, "r", "p", "a", "t", None, "{}", (), (), "", "tok", origin=5))
    assert not from_child(UpdateRun("r"))
    assert finishes_lost_run(FinishRun(-3, "r", "crashed", None, "/store"))
    assert not finishes_lost_run(FinishRun(4, "r", "finished", 0))
