"""Faults with real signals: the user process, a pool worker or the manager killed with SIGKILL.

Each case must end in a clear error or a readable run marked ``crashed``; never a hang and never
a process left behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

import mplogger
from mplogger import ManagerError, RunError

from conftest import START_METHODS, process_gone, script_env, wait_for

KILLED_USER = """
    import sys, time, mplogger
    run = mplogger.init(dir=sys.argv[1])
    for i in range(20000):
        run.log({"i": i})
    run.flush()
    manager = mplogger.setup()  # the running manager's handle
    print("READY", run.id, manager.pid, *manager.worker_pids, flush=True)
    sys.stdin.read()
"""


@pytest.mark.parametrize("start_method", START_METHODS)
def test_sigkill_of_the_user_process_leaves_a_crashed_readable_run(script, root, start_method):
    proc = subprocess.Popen(
        [sys.executable, str(script(KILLED_USER)), root], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True, env=script_env(MPLOGGER_START_METHOD=start_method),
    )
    try:
        line = proc.stdout.readline().split()
        assert line and line[0] == "READY", line
        run_id, pids = line[1], [int(p) for p in line[2:]]
        proc.kill()
        proc.wait(10)
        for pid in pids:
            wait_for(lambda: process_gone(pid), 5, f"manager/worker {pid} to exit after the user died")
        stored = mplogger.Api(root).run(run_id)
        assert stored.state == "crashed"
        assert [r["i"] for r in stored.history()] == list(range(20000))
    finally:
        proc.kill()
        proc.wait()


def _client():
    return mplogger._user._session.current().client


def test_sigkill_of_a_pool_worker_is_a_clear_error_not_a_hang(root):
    run = mplogger.init(dir=root, settings={"workers": 2})
    run.log({"x": 1})
    run.flush()
    victim = mplogger.setup().worker_pids[0]
    os.kill(victim, signal.SIGKILL)
    with pytest.raises((RunError, ManagerError)) as info:
        for i in range(100):
            run.log({"x": i})
            run.flush()
    message = str(info.value) + str(info.value.__cause__ or "")
    assert "SIGKILL" in message and str(victim) in message
    with pytest.raises((RunError, ManagerError)):
        run.finish()
    assert mplogger.run is None
    wait_for(lambda: mplogger.Api(root).run(run.id).state == "crashed", 10, "run marked crashed")
    other = mplogger.init(dir=root)
    other.log({"y": 2})
    other.finish()
    assert mplogger.Api(root).run(other.id).summary == {"y": 2}


def test_sigkill_of_the_manager_is_a_clear_error_and_workers_follow(root):
    run = mplogger.init(dir=root)
    run.log({"x": 1})
    run.flush()
    handle = mplogger.setup()
    manager, workers = handle.pid, handle.worker_pids
    os.kill(manager, signal.SIGKILL)
    with pytest.raises(ManagerError, match=r"manager \(pid \d+\) died: SIGKILL"):
        for i in range(1000):
            run.log({"x": i})
        run.flush()
    for pid in workers:
        wait_for(lambda: process_gone(pid), 10, f"worker {pid} to exit after the manager died")
    wait_for(lambda: mplogger.Api(root).run(run.id).state == "crashed", 10, "run marked crashed")
    assert mplogger.Api(root).run(run.id).history()[0]["x"] == 1
    mplogger.teardown()
    again = mplogger.init(dir=root)
    again.log({"x": 5})
    again.finish()
    assert mplogger.Api(root).run(again.id).summary == {"x": 5}


def test_manager_gone_before_a_batch_is_sent_raises_within_bounds(root):
    run = mplogger.init(dir=root, settings={"shutdown_timeout": 5})
    manager = mplogger.setup()
    os.kill(manager.pid, signal.SIGKILL)
    wait_for(lambda: not manager.running, 5, "manager to die")
    with pytest.raises(ManagerError, match="died"):
        run.finish()


def test_frozen_manager_at_exit_warns_and_the_process_still_exits(script, root):
    """shutdown_timeout bounds the exit: a clear warning names the run that may be incomplete."""
    body = """
        import os, signal, sys, mplogger
        run = mplogger.init(dir=sys.argv[1], settings={"shutdown_timeout": 1})
        run.log({"x": 1})
        client = mplogger._user._session.current().client
        print("RUN", run.id, client.process.pid, flush=True)
        os.kill(client.process.pid, signal.SIGSTOP)
    """
    result = subprocess.run([sys.executable, str(script(body)), root], capture_output=True, text=True,
                            timeout=60, env=script_env())
    run_id, manager = result.stdout.split("RUN ")[1].split()[:2]
    try:
        assert result.returncode == 0
        assert "did not confirm" in result.stderr and run_id in result.stderr
        wait_for(lambda: process_gone(int(manager)), 10, "the frozen manager to be killed")
    finally:
        if not process_gone(int(manager)):
            os.kill(int(manager), signal.SIGKILL)


def test_a_worker_exception_arrives_with_its_original_traceback(root):
    """The store fails under the worker: RunError names the run; the cause keeps the worker's frames."""
    import sqlite3
    import traceback

    run = mplogger.init(dir=root)
    run.log({"x": 1})
    run.flush()
    conn = sqlite3.connect(f"{root}/mplogger.db")
    conn.execute("DROP TABLE history_columns")
    conn.commit()
    conn.close()
    run.log({"x": 2})
    with pytest.raises(RunError, match=run.id) as info:
        run.flush()
    cause = info.value.__cause__
    assert isinstance(cause, sqlite3.OperationalError) and "history" in str(cause)
    frames = [frame.filename for frame in traceback.extract_tb(cause.__traceback__)]
    assert any(os.path.join("mplogger", "_worker", "") in name for name in frames)  # a frame of the worker
    assert "Traceback" in str(cause.__cause__)
    run.finish()


def test_ctrl_c_while_logging_leaves_the_run_usable_and_the_store_consistent(script, root):
    """KeyboardInterrupt lands at random points of log() hundreds of times; the run goes on,
    no frame is torn, no row is stored twice, and every row whose log() returned is stored."""
    body = """
        import json, os, signal, sys, threading, mplogger
        run = mplogger.init(dir=sys.argv[1])
        calls, interrupted = 0, []
        stop, armed = threading.Event(), threading.Event()
        def interrupter():
            while not stop.is_set():
                armed.wait()  # one interrupt per pass, only while the main thread is in the try
                armed.clear()
                if not stop.wait(0.002):
                    os.kill(os.getpid(), signal.SIGINT)
        threading.Thread(target=interrupter, daemon=True).start()
        while len(interrupted) < 300:
            try:
                armed.set()
                while True:
                    calls += 1
                    run.log({"n": calls, "payload": "x" * 200})
            except KeyboardInterrupt:
                interrupted.append(calls)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stop.set()
        armed.set()
        run.finish()
        print("RESULT", json.dumps([run.id, calls, interrupted]), flush=True)
    """
    result = subprocess.run([sys.executable, str(script(body)), root], capture_output=True, text=True,
                            timeout=120, env=script_env())
    assert result.returncode == 0, result.stderr[-3000:]
    run_id, calls, interrupted = json.loads(result.stdout.split("RESULT ")[1])
    stored = mplogger.Api(root).run(run_id)
    values = [row["n"] for row in stored.history()]
    assert stored.state == "finished"
    assert len(values) == len(set(values)), "a row was stored twice"
    assert set(values) <= set(range(1, calls + 1))
    returned = set(range(1, calls + 1)) - set(interrupted)
    assert not returned - set(values), f"{len(returned - set(values))} rows whose log() returned are missing"


def test_init_after_the_manager_died_starts_a_new_one(root):
    run = mplogger.init(dir=root)
    run.log({"x": 1})
    run.flush()
    os.kill(mplogger.setup().pid, signal.SIGKILL)
    with pytest.raises(ManagerError, match="Call mplogger.init"):
        run.flush()
    again = mplogger.init(dir=root)  # no teardown() first, as the error message says
    assert again is not run
    again.log({"y": 2})
    again.finish()
    assert mplogger.Api(root).run(again.id).summary == {"y": 2}
    wait_for(lambda: mplogger.Api(root).run(run.id).state == "crashed", 10, "the first run marked crashed")


def test_ctrl_c_while_log_waits_for_a_stalled_store(script, root):
    """Back-pressure with the store stalled: Ctrl-C interrupts the wait (before the timeout),
    no batch is lost, and the run goes on once the store moves again."""
    body = """
        import json, os, signal, sys, threading, mplogger
        run = mplogger.init(dir=sys.argv[1], settings={"workers": 1, "shutdown_timeout": 60})
        worker = mplogger.setup().worker_pids[0]
        os.kill(worker, signal.SIGSTOP)
        threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
        calls = 0
        try:
            while True:
                calls += 1
                run.log({"n": calls, "pad": "p" * 200})
        except KeyboardInterrupt:
            outcome = "interrupted"
        except Exception as exc:
            outcome = type(exc).__name__
        os.kill(worker, signal.SIGCONT)
        run.log({"n": calls + 1, "pad": ""})
        run.finish()
        print("RESULT", json.dumps([run.id, calls, outcome]), flush=True)
    """
    result = subprocess.run([sys.executable, str(script(body)), root], capture_output=True, text=True,
                            timeout=120, env=script_env())
    assert result.returncode == 0, result.stderr[-2000:]
    run_id, calls, outcome = json.loads(result.stdout.split("RESULT ")[1])
    assert outcome == "interrupted"
    values = [row["n"] for row in mplogger.Api(root).run(run_id).history()]
    assert len(values) == len(set(values))
    assert set(range(1, calls)) | {calls + 1} <= set(values) <= set(range(1, calls + 2))


def test_sigterm_to_the_manager_stores_what_it_received_and_marks_the_run_crashed(root):
    """ipykernel ends its child processes with SIGTERM at shutdown; nothing sent may be lost."""
    run = mplogger.init(dir=root)
    for i in range(5000):
        run.log({"i": i})
    client = _client()
    client.flush_all()  # sent (in the pipe), not flushed: no durability promised yet
    manager = client.process.pid
    os.kill(manager, signal.SIGTERM)
    wait_for(lambda: process_gone(manager), 10, "the manager to exit on SIGTERM")
    stored = mplogger.Api(root).run(run.id)
    assert stored.state == "crashed" and [r["i"] for r in stored.history()] == list(range(5000))
    with pytest.raises(ManagerError):
        run.flush()

