"""Scripts run as a user runs them, under every start method: start, exit paths and exit codes."""

from __future__ import annotations

import pytest

import mplogger

from conftest import START_METHODS, run_script, script_env

UNGUARDED = """
    import sys
    import mplogger
    print("BODY RAN", flush=True)
    run = mplogger.init(project="unguarded", dir=sys.argv[1])
    for i in range(5000):
        run.log({"i": i, "half": i / 2})
    print("RUN", run.id, flush=True)
"""


@pytest.fixture(params=START_METHODS)
def start_method(request) -> str:
    return request.param


def test_unguarded_script_runs_once_and_stores_every_row(script, root, start_method):
    """No __main__ guard, init at module level: the body runs once, the manager never re-runs it."""
    result = run_script(script(UNGUARDED), root, env=script_env(MPLOGGER_START_METHOD=start_method))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("BODY RAN") == 1
    run_id = result.stdout.split("RUN ")[1].split()[0]
    stored = mplogger.Api(root).run(run_id)
    assert (stored.state, stored.exit_code) == ("finished", 0)
    assert [r["i"] for r in stored.history()] == list(range(5000))


@pytest.mark.parametrize(
    "ending, code, state",
    [
        ("pass", 0, "finished"),
        ("sys.exit(0)", 0, "finished"),
        ("sys.exit(3)", 3, "failed"),
        ("raise RuntimeError('boom')", 1, "failed"),
        ("sys.exit('bad thing')", 1, "failed"),
    ],
)
def test_exit_without_finish_closes_the_run_with_the_exit_status(script, root, start_method, ending, code, state):
    body = f"""
        import sys
        import mplogger
        run = mplogger.init(dir=sys.argv[1])
        for i in range(3000):
            run.log({{"i": i}})
        print("RUN", run.id, flush=True)
        {ending}
    """
    result = run_script(script(body), root, env=script_env(MPLOGGER_START_METHOD=start_method))
    assert result.returncode == code, result.stderr
    run_id = result.stdout.split("RUN ")[1].split()[0]
    stored = mplogger.Api(root).run(run_id)
    assert (stored.state, stored.exit_code, stored.rows) == (state, code, 3000)
    assert "mplogger:" not in result.stderr


def test_finish_then_exit_leaves_no_process_behind(script, root):
    body = """
        import sys, mplogger
        run = mplogger.init(dir=sys.argv[1])
        run.log({"x": 1})
        run.finish()
        client = mplogger._session.current().client
        print("PIDS", client.process.pid, *client.worker_pids, flush=True)
    """
    result = run_script(script(body), root)
    assert result.returncode == 0, result.stderr
    from conftest import process_gone, wait_for

    pids = [int(p) for p in result.stdout.split("PIDS ")[1].split()]
    for pid in pids:
        wait_for(lambda: process_gone(pid), 10, f"process {pid} to exit")


def test_teardown_then_init_starts_a_new_manager(root):
    first = mplogger.init(dir=root)
    first.log({"x": 1})
    mplogger.teardown()
    assert mplogger.run is None and mplogger.Api(root).run(first.id).state == "finished"
    second = mplogger.init(dir=root)
    second.log({"x": 2})
    second.finish()
    assert mplogger.Api(root).run(second.id).summary == {"x": 2}


def test_setup_is_idempotent(root):
    mplogger.setup()
    client = mplogger._session.current().client
    mplogger.setup()
    run = mplogger.init(dir=root)
    assert mplogger._session.current().client is client
    run.finish()
