"""Scripts run as a user runs them, under every start method: start, exit paths and exit codes."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import mplogger

from conftest import REPO, START_METHODS, run_script, script_env, write_script

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
        manager = mplogger.setup()  # the handle of the manager that served the run
        print("PIDS", manager.pid, *manager.worker_pids, flush=True)
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
    first = mplogger.setup()
    assert mplogger.setup().pid == first.pid
    run = mplogger.init(dir=root)
    assert mplogger.setup().pid == first.pid and first.running
    run.finish()


EDITABLE_INSTALL = f"""
    import importlib.machinery, sys
    class EditableFinder:  # what the .pth of `pip install -e` appends to sys.meta_path at startup
        @classmethod
        def find_spec(cls, name, path=None, target=None):
            if name == "mplogger":
                return importlib.machinery.PathFinder.find_spec(name, [{str(REPO)!r}])
    sys.meta_path.append(EditableFinder)
"""


def only_dependencies(folder: Path) -> str:
    """A folder holding links to mplogger's dependencies only (not mplogger), for ``PYTHONPATH``."""
    folder.mkdir()
    for name in ("attr", "attrs", "cloudpickle", "tblib"):
        spec = importlib.util.find_spec(name)
        (folder / name).symlink_to(Path(spec.origin).parent, target_is_directory=True)
    return str(folder)


def test_a_script_run_twice_where_the_default_store_is_made_still_imports_the_package(tmp_path):
    """The default store is made in the working directory, which is first on ``sys.path``; with
    an editable install the package comes from a finder consulted after the path, so a store
    folder named like the package would be imported as ``mplogger`` on the next run."""
    work = tmp_path / "project"
    work.mkdir()
    path = write_script(work, textwrap.dedent(EDITABLE_INSTALL) + textwrap.dedent("""
        import mplogger
        run = mplogger.init(project="shadow")
        run.log({"x": 1})
        print("RUN", run.id, mplogger.__file__, flush=True)
    """))
    env = {key: value for key, value in os.environ.items() if key not in ("MPLOGGER_DIR", "WANDB_DIR")}
    env.update(PYTHONPATH=only_dependencies(tmp_path / "deps"), MPLOGGER_START_METHOD="fork",
               MPLOGGER_SYSTEM_INTERVAL="0")
    ids = []
    for attempt in ("first", "second"):
        # -S: no site-packages, so the package can come only through the editable finder
        result = subprocess.run([sys.executable, "-S", str(path)], capture_output=True, text=True, timeout=60,
                                env=env, cwd=work)
        assert result.returncode == 0, f"{attempt} run: {result.stderr}"
        run_id, module = result.stdout.split("RUN ")[1].split()[:2]
        assert Path(module).resolve() == (REPO / "mplogger" / "__init__.py").resolve()
        ids.append(run_id)
    stores = [p for p in work.iterdir() if (p / "mplogger.db").exists()]
    assert [p.name for p in stores] == ["mplogger-runs"]
    assert sorted(r.id for r in mplogger.Api(str(stores[0])).runs()) == sorted(ids)


def test_teardown_reports_a_run_it_could_not_commit_and_still_closes_the_others(root, capsys, monkeypatch):
    broken = mplogger.init(dir=root)
    other = mplogger.init(dir=root, reinit="create_new")
    broken.log({"x": 1}, commit=False)
    other.log({"y": 2})
    commit = mplogger.Run._commit_pending

    def failing(run):
        if run is broken:
            raise RuntimeError("the disk is on fire")
        commit(run)

    monkeypatch.setattr(mplogger.Run, "_commit_pending", failing)
    mplogger.teardown()
    err = capsys.readouterr().err
    assert f"run {broken.id}" in err and "RuntimeError: the disk is on fire" in err
    api = mplogger.Api(root)
    assert (api.run(other.id).state, api.run(other.id).rows) == ("finished", 1)
    assert api.run(broken.id).state == "finished"


WRONG_INIT_REPLY = """
    import sys
    import mplogger
    from mplogger._user import _client
    if not sys.flags.optimize:
        raise SystemExit("run this under python -O")
    request = _client.Client.request

    def wrong_reply(self, make, what, timeout=None):
        reply = request(self, make, what, timeout)
        return "not a reply" if what == "init" else reply

    _client.Client.request = wrong_reply
    try:
        mplogger.init(dir=sys.argv[1])
    except mplogger.ManagerError as exc:
        print("RAISED", exc)
"""


def test_a_wrong_reply_raises_a_manager_error_even_under_python_O(script, root):
    result = subprocess.run([sys.executable, "-O", str(script(WRONG_INIT_REPLY)), root], capture_output=True,
                            text=True, timeout=60, env=script_env())
    assert result.returncode == 0, result.stderr
    assert "RAISED mplogger protocol error: init: expected a RunReady reply, got str" in result.stdout


def test_a_wrong_summary_reply_raises_a_manager_error(root, monkeypatch):
    run = mplogger.init(dir=root)
    run.define_metric("x", summary="max")  # a summary only the worker knows: read through the manager
    run.log({"x": 1})
    client = mplogger._user._session.current().client
    request = client.request
    monkeypatch.setattr(client, "request", lambda make, what, timeout=None: (
        "not a reply" if what.startswith("summary") else request(make, what, timeout)))
    with pytest.raises(mplogger.ManagerError, match=f"summary of run {run.id}: expected a SummaryReply"):
        run.summary["x"]


def test_a_wrong_stop_reply_is_reported_and_the_process_is_let_go(root, capsys, monkeypatch):
    run = mplogger.init(dir=root)
    run.log({"x": 1})
    client = mplogger._user._session.current().client
    request = client.request
    monkeypatch.setattr(client, "request", lambda make, what, timeout=None: (
        "not a reply" if what == "ManagerStop" else request(make, what, timeout)))
    mplogger.teardown()
    assert run.id in capsys.readouterr().err
    assert client.stopped and mplogger._user._session.current().client is None
