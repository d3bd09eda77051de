"""Shared fixtures: a fresh store per test, a clean session, bounded waits and subprocess runs."""

from __future__ import annotations

import math
import os
import pty
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Callable, Optional

import pytest

import mplogger

TESTS = Path(__file__).resolve().parent  # the tests, by folder as the package is; clients/ and data/ here
REPO = TESTS.parent
START_METHODS = ["fork", "forkserver", "spawn"]


@pytest.fixture
def root(tmp_path: Path) -> str:
    """A store of its own for each test (named mplogger-runs, so `dir=` uses it as it is)."""
    return str(tmp_path / "mplogger-runs")


@pytest.fixture(autouse=True)
def clean_session():
    """Every test starts without a manager and leaves none behind."""
    yield
    mplogger.teardown()


def same(a, b) -> bool:
    """Equal, with NaN equal to NaN, dicts compared deeply and int/float told apart."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b and type(a) is type(b)


def wait_for(condition: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> object:
    """Poll ``condition`` until it is truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)  # poll


def process_gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except OSError:
        return True


def processes_with(mark: str) -> list:
    """Live processes (not zombies) whose environment holds ``mark`` (``NAME=value``): what a case left running."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as environ:
                if mark.encode() not in environ.read().split(b"\0"):
                    continue
            if not process_gone(int(name)):
                found.append(int(name))
        except OSError:
            continue
    return found


def require_installed(module: str, why: str = "") -> None:
    """Skip unless ``module`` is installed, without importing it here: real wandb patches
    ``sys.stdout``/``sys.stderr`` at import, which would leak into every later test of the session."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed{': ' + why if why else ''}")


def script_env(**extra: str) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def write_script(tmp_path: Path, body: str, name: str = "script.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def run_script(path: Path, *args: str, timeout: float = 60, env: Optional[dict] = None) -> subprocess.CompletedProcess:
    """Run a Python script as a user would; a hang fails the test instead of blocking it."""
    return subprocess.run(
        [sys.executable, str(path), *args], capture_output=True, text=True,
        timeout=timeout, env=env or script_env(),
    )


def on_a_terminal(args: list, stream: str = "stdout") -> str:
    """What ``args`` writes to ``stream`` ("stdout" or "stderr") when that stream is a terminal.

    The command must exit 0; the other stream is a pipe.
    """
    leader, follower = pty.openpty()
    other = "stderr" if stream == "stdout" else "stdout"
    try:
        proc = subprocess.Popen(args, **{stream: follower, other: subprocess.PIPE}, env=script_env())
        os.close(follower)
        follower = -1
        seen = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the terminal's other end is closed and drained
                break
            if not chunk:
                break
            seen += chunk
        assert proc.wait(60) == 0, getattr(proc, other).read()
    finally:
        os.close(leader)
        if follower >= 0:
            os.close(follower)
    return seen.decode()


@pytest.fixture
def script(tmp_path: Path):
    """Write a script into the test's folder and return a runner for it."""
    def make(body: str, name: str = "script.py") -> Path:
        return write_script(tmp_path, body, name)
    return make


@pytest.fixture
def without(script):
    """Run a script as a user would whose environment lacks ``package`` (a real failed import)."""
    def run(package: str, body: str, *args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
        blocked = f"import sys\nsys.modules[{package!r}] = None  # as when it is not installed\n"
        path = script(blocked + textwrap.dedent(body), name=f"without_{package}.py")
        return subprocess.run([sys.executable, str(path), *args], capture_output=True, text=True,
                              timeout=timeout, env=script_env(**env))
    return run
