"""What a run records by itself: its environment (``_environment``) and system metrics (``_system``)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import mplogger
from mplogger._shared._platform import system_metrics_unavailable

from conftest import run_script, script_env

needs_system_metrics = pytest.mark.skipif(system_metrics_unavailable(), reason="neither /proc nor psutil")

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


@needs_system_metrics
def test_system_metrics_are_sampled_at_the_set_interval(root):
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


def test_without_proc_or_psutil_a_one_time_note_says_how_to_get_it(script, root):
    body = """
        import sys
        sys.modules["psutil"] = None
        import mplogger, mplogger._shared._platform
        mplogger._shared._platform.PROC = sys.argv[1] + "/no-proc"  # as on a platform without /proc
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


@needs_system_metrics
def test_io_counters_start_with_each_run_and_exclude_mplogger_processes(script, root):
    """In a script with no other children: a second run's I/O counters start at zero, and the
    process count is the script alone (mplogger's manager and workers are not counted)."""
    body = """
        import sys, time, mplogger
        api = mplogger.Api(sys.argv[1])
        def first_sample(run):
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                samples = api.run(run.id).system_metrics() if api.runs() else []
                if samples:
                    return samples[0]
                time.sleep(0.02)  # poll
            raise SystemExit("no sample")
        first = mplogger.init(dir=sys.argv[1], settings={"system_interval": 0.1}, reinit="create_new")
        first_sample(first)
        second = mplogger.init(dir=sys.argv[1], reinit="create_new")
        sample = first_sample(second)
        print("SAMPLE", sample["system/network.sent"], sample["system/disk.in"], sample["system/proc.count"])
    """
    result = run_script(script(body), root)
    assert result.returncode == 0, result.stderr
    sent, disk_in, count = result.stdout.split("SAMPLE ")[1].split()
    assert float(sent) == 0 and float(disk_in) == 0 and int(count) == 1


def test_collecting_for_a_deleted_run_does_not_bring_its_folder_back(tmp_path):
    from mplogger._worker import _environment
    script_path = tmp_path / "train.py"
    script_path.write_text("print('hi')\n")
    gone = tmp_path / "store" / "runs" / "deleted1"
    facts = {"user": "u", "executable": sys.executable, "cwd": str(tmp_path), "script": str(script_path)}
    collected = _environment.collect(facts, str(gone))
    assert "No such file or directory" in collected["packages_error"]
    with pytest.raises(FileNotFoundError):  # the worker stores it as the environment's error
        _environment.collect({**facts, "save_code": True}, str(gone))
    assert not gone.exists()
