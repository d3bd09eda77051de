"""What a run records by itself: its environment (``_environment``) and system metrics (``_system``)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import mplogger

from conftest import run_script, script_env

SCRIPT = """
    import sys, mplogger
    run = mplogger.init(dir=sys.argv[1], save_code=True, settings={"system_interval": 0.1})
    for i in range(200):
        run.log({"i": i})
    run.flush()
    print("RUN", run.id, flush=True)
"""


def _git(folder, *args):
    subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"})


def test_environment_git_state_code_and_packages_are_recorded(tmp_path, root):
    repo = tmp_path / "repo"
    repo.mkdir()
    script = repo / "train.py"
    script.write_text(SCRIPT.replace("\n    ", "\n"))
    _git(repo, "init", "-q")
    _git(repo, "add", "train.py")
    _git(repo, "commit", "-q", "-m", "first")
    script.write_text(script.read_text() + "# an uncommitted change\n")
    result = run_script(script, root)
    assert result.returncode == 0, result.stderr
    stored = mplogger.Api(root).run(result.stdout.split("RUN ")[1].split()[0])
    env = stored.metadata["environment"]
    assert env["script"] == str(script) and env["executable"] == sys.executable and env["user"]
    assert env["git"]["dirty"] is True and len(env["git"]["commit"]) == 40 and env["git"]["branch"]
    assert "uncommitted change" in open(os.path.join(stored.dir, env["git"]["diff"])).read()
    assert open(os.path.join(stored.dir, env["code"])).read() == script.read_text()
    requirements = open(os.path.join(stored.dir, "requirements.txt")).read().splitlines()
    assert env["packages"] == len(requirements) > 0 and all("==" in line for line in requirements)


def test_system_metrics_are_sampled_at_the_set_interval(root):
    pytest.importorskip("psutil")
    run = mplogger.init(dir=root, settings={"system_interval": 0.1})
    from conftest import wait_for

    wait_for(lambda: len(mplogger.Api(root).run(run.id).system_metrics()) >= 3, 30, "three samples")
    run.finish()
    samples = mplogger.Api(root).run(run.id).system_metrics()
    stamps = [s["_timestamp"] for s in samples]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    for key in ("system/cpu", "system/memory", "system/proc.memory.rssMB", "system/disk.in", "system/network.sent"):
        assert key in samples[-1]
    assert samples[-1]["system/proc.memory.rssMB"] > 0


def test_system_metrics_can_be_turned_off(root):
    run = mplogger.init(dir=root, settings={"system_interval": 0})
    run.log({"x": 1})
    run.flush()
    run.finish()
    assert mplogger.Api(root).run(run.id).system_metrics() == []


def test_without_psutil_a_one_time_note_says_how_to_get_it(script, root):
    body = """
        import sys
        sys.modules["psutil"] = None
        import mplogger
        for _ in range(2):
            run = mplogger.init(dir=sys.argv[1], reinit=True)
            run.log({"x": 1})
        run.finish()
    """
    result = run_script(script(body), root, env=script_env())
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("mplogger[system]") == 1


def test_bad_system_interval():
    with pytest.raises(ValueError, match="system_interval"):
        mplogger.Settings(system_interval=-1)


def test_io_counters_start_with_each_run_and_exclude_mplogger_processes(root):
    pytest.importorskip("psutil")
    from conftest import wait_for

    first = mplogger.init(dir=root, settings={"system_interval": 0.1}, reinit="create_new")
    wait_for(lambda: len(mplogger.Api(root).run(first.id).system_metrics()) >= 1, 30, "a first sample")
    second = mplogger.init(dir=root, reinit="create_new")
    wait_for(lambda: len(mplogger.Api(root).run(second.id).system_metrics()) >= 1, 30, "a sample of the second")
    import psutil

    client = mplogger._session.current().client
    mplogger_tree = {client.process.pid, *client.worker_pids}
    others = [p for p in psutil.Process().children() if p.pid not in mplogger_tree]
    first.finish()
    second.finish()
    sample = mplogger.Api(root).run(second.id).system_metrics()[0]
    assert sample["system/network.sent"] == 0 and sample["system/disk.in"] == 0  # counted from its start
    assert sample["system/proc.count"] == 1 + len(others)  # the manager and its workers are not counted
