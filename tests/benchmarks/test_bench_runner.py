"""benchmarks.runner: a function in a fresh interpreter, its JSON result read from a file, every
failure reported with its target, its exit and its stderr, a timeout killing the whole group."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import runner
from conftest import REPO, process_gone, wait_for

HERE = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def toys_importable(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH")) if p))


def test_the_result_comes_back_whatever_the_child_prints(monkeypatch, tmp_path):
    monkeypatch.setenv("MPLOGGER_DIR", str(tmp_path))
    monkeypatch.setenv("MPLOGGER_BENCH_KEYS", "3")
    monkeypatch.setenv("TOY_GONE", "set here")
    result = runner.fresh("bench_toys:chatty", 60, env={"TOY_EXTRA": "yes", "TOY_GONE": None}, value=7)
    assert result["value"] == 7
    assert result["env"] == {"MPLOGGER_DIR": None, "MPLOGGER_BENCH_KEYS": "3", "TOY_EXTRA": "yes", "TOY_GONE": None}
    assert result["cwd"] != os.getcwd()  # a temporary folder of its own


def test_a_failure_names_the_target_and_carries_its_stderr():
    with pytest.raises(runner.ChildFailed) as failed:
        runner.fresh("bench_toys:fails", 60, message="the reason under test")
    error = failed.value
    assert error.target == "bench_toys:fails" and error.exit == "exited with code 1"
    assert "about to fail" in error.stderr and "RuntimeError: the reason under test" in error.stderr
    assert "bench_toys:fails exited with code 1" in str(error)


def test_a_killed_child_is_reported_by_its_signal():
    with pytest.raises(runner.ChildFailed, match="killed by SIGKILL"):
        runner.fresh("bench_toys:killed", 60)


def test_an_unknown_target_fails_with_its_import_error():
    with pytest.raises(runner.ChildFailed, match="ModuleNotFoundError"):
        runner.fresh("no_such_module_here:f", 60)


def test_a_timeout_kills_the_whole_process_group(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    with pytest.raises(runner.ChildFailed, match="ran past 3 s") as failed:
        runner.fresh("bench_toys:hangs", 3, pid_file=str(pid_file))
    assert failed.value.target == "bench_toys:hangs"
    grandchild = int(pid_file.read_text())
    wait_for(lambda: process_gone(grandchild), timeout=10, what="the grandchild killed with its group")


def test_ctrl_c_in_the_parent_kills_the_child_and_its_group(tmp_path):
    """The child runs in a session of its own, so the terminal's SIGINT reaches only the parent."""
    pid_file = tmp_path / "grandchild.pid"
    parent = subprocess.Popen([sys.executable, "-c", (
        "import sys\nfrom benchmarks import runner\n"
        f"runner.fresh('bench_toys:hangs', 120, pid_file={str(pid_file)!r})\n")], cwd=str(REPO),
        stderr=subprocess.PIPE)
    try:
        wait_for(pid_file.exists, timeout=60, what="the child to start its grandchild")
        grandchild = int(pid_file.read_text())
        parent.send_signal(signal.SIGINT)
        assert parent.wait(timeout=30) != 0 and b"KeyboardInterrupt" in parent.stderr.read()
        wait_for(lambda: process_gone(grandchild), timeout=10, what="the child's group killed at Ctrl-C")
    finally:
        parent.kill()
        parent.wait()


def test_command_returns_its_wall_time_and_stdout():
    wall, out = runner.command(["python3", "-c", "print('hello')"], 60)
    assert out == "hello\n" and wall > 0
    with pytest.raises(runner.ChildFailed, match="exited with code 3"):
        runner.command(["python3", "-c", "import sys; sys.exit(3)"], 60, what="exit 3")
