"""The mux on its own (``_manager/_mux.py``): routing, back-pressure and a worker's death, driven
message by message in this process over real queues, with no pool and no worker process."""

from __future__ import annotations

import multiprocessing
import os
import queue
import shutil
from typing import Any, Iterator, List

import pytest

from mplogger._ipc._messages import (BatchesDone, Busy, ConsoleLines, ErrorReply, FinishRun, FlushRun, InitRun,
                                     LogBatch, RunFinished, RunFlushed, RunReady, internal)
from mplogger._ipc._remote import unpack_exception
from mplogger._manager import _mux
from mplogger._shared._settings import Settings


class _Parent:
    """What ``multiprocessing.parent_process()`` gives the mux: a sentinel to wait on."""

    def __init__(self) -> None:
        self.read_end, self.write_end = os.pipe()
        self.sentinel = self.read_end


@pytest.fixture
def mux(monkeypatch, tmp_path) -> Iterator[_mux.Mux]:
    parent = _Parent()
    monkeypatch.setattr(multiprocessing, "parent_process", lambda: parent)
    ctx = multiprocessing.get_context("fork")
    mgr_i, mgr_o = ctx.Queue(), ctx.Queue()
    mux = _mux.Mux(mgr_i, mgr_o, Settings(inflight_rows=100, system_interval=0), os.getpid())
    mux.workers = [_mux._Worker.on_fresh_queues(ctx) for _ in range(2)]
    mux.root = str(tmp_path / "mplogger-runs")  # for the tests' messages
    yield mux
    os.close(parent.read_end)
    os.close(parent.write_end)
    shutil.rmtree(mux.children.folder, ignore_errors=True)


def sent_to_user(mux: _mux.Mux) -> List[Any]:
    """Every message the mux has put on ``mgr_o`` so far."""
    found = []
    while True:
        try:
            found.append(mux.outbox.get(timeout=1 if not found else 0.2))
        except queue.Empty:
            return found


def sent_to_worker(mux: _mux.Mux, index: int) -> List[Any]:
    found = []
    while True:
        try:
            found.append(mux.workers[index].rec_q.get(timeout=1 if not found else 0.2))
        except queue.Empty:
            return found


def open_run(mux: _mux.Mux, run_id: str, request: int = 1) -> int:
    """Open ``run_id`` as a user's InitRun does; return the worker it went to."""
    mux.route(InitRun(request, mux.root, {"id": run_id}))
    index = mux.routes[run_id].index
    mux.relay(index, RunReady(request, run_id, {"id": run_id}))
    assert [type(m) for m in sent_to_worker(mux, index)] == [InitRun]
    assert [type(m) for m in sent_to_user(mux)] == [RunReady]
    return index


def test_runs_go_to_the_least_loaded_worker_and_their_records_stay_on_it(mux):
    first, second = open_run(mux, "a", 1), open_run(mux, "b", 2)
    assert {first, second} == {0, 1}
    for n in range(3):
        mux.route(LogBatch("a", b"rows-%d" % n, 1))
    mux.route(ConsoleLines("a", (("stdout", 0.0, "hi"),)))
    assert [m.payload if type(m) is LogBatch else "console" for m in sent_to_worker(mux, first)] == [
        b"rows-0", b"rows-1", b"rows-2", "console"]
    assert sent_to_worker(mux, second) == []


def test_a_record_for_a_run_that_is_not_open_is_an_error_and_a_request_is_refused(mux):
    mux.route(LogBatch("nobody", b"x", 1))
    mux.route(FlushRun(7, "nobody"))
    errors = sent_to_user(mux)
    assert [(type(e), e.request, e.run_id) for e in errors] == [(ErrorReply, None, "nobody"), (ErrorReply, 7, "nobody")]
    assert "is not open" in str(unpack_exception(errors[1].error))


def test_an_unknown_message_is_answered_with_a_type_error(mux):
    mux.route(("not", "a message"))
    [error] = sent_to_user(mux)
    assert isinstance(unpack_exception(error.error), TypeError)


def test_rows_in_flight_past_the_limit_pause_reading_until_the_worker_wrote_them(mux):
    index = open_run(mux, "a")
    mux.route(LogBatch("a", b"x" * 10, 101))
    assert mux.paused()
    mux.relay(index, BatchesDone(index, 101, 10))
    assert not mux.paused()


def test_a_heartbeat_is_passed_on_only_while_its_request_is_waited_for(mux):
    index = open_run(mux, "a")
    mux.route(FlushRun(5, "a"))
    mux.relay(index, Busy(5, "a", 1))
    mux.relay(index, RunFlushed(5, "a", 1))
    mux.relay(index, Busy(5, "a", 2))  # late: the request was answered
    assert [(type(m), getattr(m, "moved", None)) for m in sent_to_user(mux)] == [(Busy, 1), (RunFlushed, None)]


def test_a_finish_closes_the_route_and_later_records_are_refused(mux):
    index = open_run(mux, "a")
    mux.route(FinishRun(9, "a", "finished", 0))
    mux.route(ConsoleLines("a", (("stdout", 0.0, "late"),)))  # printed while finishing: dropped
    assert [type(m) for m in sent_to_worker(mux, index)] == [FinishRun]
    mux.relay(index, RunFinished(9, "a", "finished", 0))
    assert "a" not in mux.routes
    mux.route(FlushRun(10, "a"))
    assert [type(m) for m in sent_to_user(mux)] == [RunFinished, ErrorReply]


def test_a_dead_workers_waiting_requests_get_an_error_and_its_runs_are_finished_crashed_elsewhere(mux):
    index = open_run(mux, "a")
    other = 1 - index
    mux.route(FlushRun(3, "a"))
    mux.workers[index].replaced = _mux._REPLACEMENTS  # no new process: the other worker takes over
    mux.on_worker_exit(index)
    replies = sent_to_user(mux)
    assert [(type(r), r.request, r.run_id) for r in replies] == [(ErrorReply, 3, "a"), (ErrorReply, None, "a")]
    assert "internal worker" in str(unpack_exception(replies[0].error))
    [crash] = sent_to_worker(mux, other)
    assert type(crash) is FinishRun and crash.state == "crashed" and crash.root == mux.root
    assert internal(crash.request) and mux.live_workers() == [other]
    mux.route(LogBatch("a", b"x", 1))  # the broken run's error was sent once: no second one
    mux.relay(other, RunFinished(crash.request, "a", "crashed", 0))  # the crash mark's reply stays in the manager
    assert sent_to_user(mux) == []
    mux.route(InitRun(4, mux.root, {"id": "b"}))  # a new run goes to the live worker
    assert mux.routes["b"].index == other


def test_with_every_worker_dead_a_new_run_is_refused(mux):
    for index in (0, 1):
        mux.workers[index].replaced = _mux._REPLACEMENTS
        mux.on_worker_exit(index)
    mux.route(InitRun(1, mux.root, {"id": "a"}))
    [error] = sent_to_user(mux)
    assert error.request == 1 and "every internal worker has died" in str(unpack_exception(error.error))


def test_a_childs_rows_wait_for_the_parents_rows_they_came_after(mux):
    index = open_run(mux, "a")
    mux.route(LogBatch("a", b"child", 1, origin=123, after=2))
    mux.route(LogBatch("a", b"parent-1", 1))
    assert [m.payload for m in sent_to_worker(mux, index)] == [b"parent-1"]
    mux.route(LogBatch("a", b"parent-2", 1))
    assert [m.payload for m in sent_to_worker(mux, index)] == [b"parent-2", b"child"]

