"""Answering to the name wandb: ``mplogger run`` (every process of the job) and ``install()`` (this one).

Without either, nothing changes: a real wandb installed beside mplogger is the one that imports,
and a Python process that was not asked loads nothing of mplogger.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import zipfile

import pytest

import mplogger
from mplogger._shared._wandb_name import PATH_FOLDER, WANDB_VERSION, child_environment
from conftest import REPO, require_installed, script_env

WHICH_WANDB = """
import importlib.metadata, importlib.util, json, sys
spec = importlib.util.find_spec("wandb")
import wandb
print(json.dumps({"name": wandb.__name__, "version": importlib.metadata.version("wandb"),
                  "metadata_name": importlib.metadata.metadata("wandb")["Name"],
                  "dunder_version": getattr(wandb, "__version__", None), "spec": spec is not None,
                  "has_run": hasattr(wandb, "run")}))
"""


def mplogger_run(*command: str, cwd=None, env=None, **options) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mplogger", "run", *command], capture_output=True, text=True,
                          timeout=60, cwd=cwd, env=env or script_env(), **options)


def seen(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


# --- without being asked ----------------------------------------------------------------------
def test_outside_mplogger_run_the_real_wandb_is_the_one_that_imports():
    require_installed("wandb", "the test extra installs the real one")
    result = subprocess.run([sys.executable, "-c", WHICH_WANDB], capture_output=True, text=True, timeout=60,
                            env=script_env())
    found = seen(result)
    assert found["name"] == "wandb" and "mplogger" not in found["version"]
    assert found["dunder_version"] == found["version"]


def test_a_python_process_that_was_not_asked_loads_nothing_of_mplogger():
    probe = "import sys; print(sorted(name for name in sys.modules if name.startswith(('mplogger', 'wandb'))))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                            env=script_env())
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout + result.stderr


# --- mplogger run -----------------------------------------------------------------------------
def test_under_mplogger_run_import_wandb_is_mplogger_with_its_package_metadata():
    found = seen(mplogger_run("--", sys.executable, "-c", WHICH_WANDB))
    assert found == {"name": "mplogger.wandb", "version": WANDB_VERSION, "metadata_name": "wandb",
                     "dunder_version": WANDB_VERSION, "spec": True, "has_run": True}


def test_the_stand_in_is_told_from_a_real_wandb_wherever_either_lies(tmp_path):
    copied = tmp_path / "elsewhere"  # e.g. the folder of an installed mplogger, the package from a checkout
    shutil.copytree(PATH_FOLDER, copied)
    env = script_env()
    env["PYTHONPATH"] = os.pathsep.join([str(copied), env["PYTHONPATH"]])
    result = subprocess.run([sys.executable, "-c", WHICH_WANDB], capture_output=True, text=True, timeout=60,
                            env=env, cwd=tmp_path)
    assert seen(result)["name"] == "mplogger.wandb"
    assert "imported before" not in result.stderr, result.stderr


def test_every_python_process_the_job_starts_gets_the_name(tmp_path):
    child = tmp_path / "job.py"
    child.write_text(textwrap.dedent("""
        import json, multiprocessing, subprocess, sys

        def name(queue):
            import wandb
            queue.put(wandb.__name__)

        if __name__ == "__main__":
            names = []
            for method in ("spawn", "forkserver", "fork"):
                context = multiprocessing.get_context(method)
                queue = context.Queue()
                process = context.Process(target=name, args=(queue,))
                process.start()
                names.append(queue.get(timeout=30))
                process.join(30)
            names.append(subprocess.run([sys.executable, "-c", "import wandb; print(wandb.__name__)"],
                                        capture_output=True, text=True, timeout=30).stdout.strip())
            print(json.dumps(names))
    """))
    assert seen(mplogger_run(sys.executable, str(child))) == ["mplogger.wandb"] * 4


def test_the_command_takes_mplogger_runs_place_with_its_exit_status_and_streams():
    result = mplogger_run("--", sys.executable, "-c",
                          "import os, sys; print(os.getpid(), input()); sys.exit(3)", input="hello\n")
    assert result.returncode == 3
    assert result.stdout.split()[1] == "hello"

    proc = subprocess.Popen([sys.executable, "-m", "mplogger", "run", sys.executable, "-c",
                             "import os; print(os.getpid(), flush=True)"], stdout=subprocess.PIPE, text=True,
                            env=script_env())
    pid = int(proc.stdout.readline())
    assert proc.wait(60) == 0 and pid == proc.pid  # exec: the same process, no wrapper in between


def test_ctrl_c_reaches_the_command():
    body = textwrap.dedent("""
        import signal, sys
        signal.alarm(60)  # bounded: SIGALRM ends the command if SIGINT never comes
        try:
            print("ready", flush=True)  # inside: the signal may come as soon as the line is out
            signal.pause()
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            sys.exit(7)
    """)
    proc = subprocess.Popen([sys.executable, "-m", "mplogger", "run", sys.executable, "-c", body],
                            stdout=subprocess.PIPE, text=True, env=script_env())
    assert proc.stdout.readline().strip() == "ready"
    os.kill(proc.pid, signal.SIGINT)
    assert proc.wait(30) == 7
    assert proc.stdout.read().strip() == "interrupted"


def test_the_command_does_not_inherit_pythons_ignored_sigpipe():
    result = mplogger_run("sh", "-c", "grep SigIgn /proc/$$/status")
    mask = int(result.stdout.split()[1], 16)
    assert not mask & (1 << (signal.SIGPIPE - 1)), result.stdout


def test_a_missing_command_is_127_and_no_command_is_a_clear_error():
    missing = mplogger_run("--", "no-such-command-for-mplogger")
    assert missing.returncode == 127 and "command not found: no-such-command-for-mplogger" in missing.stderr
    empty = mplogger_run("--")
    assert empty.returncode == 1 and "give the command to run" in empty.stderr


def test_dir_sends_every_run_of_the_job_to_that_store(tmp_path):
    body = "import wandb; run = wandb.init(dir='elsewhere', name='d'); run.log({'x': 1}); run.finish()"
    result = mplogger_run("--dir", str(tmp_path / "jobs"), "--", sys.executable, "-c", body, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [run.name for run in mplogger.Api(str(tmp_path / "jobs")).runs()] == ["d"]
    assert not (tmp_path / "elsewhere").exists()


def test_a_python_that_cannot_import_mplogger_says_so_at_import_wandb(tmp_path):
    env = {"PATH": os.environ["PATH"]}
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "mplogger.py").write_text("raise ImportError('no mplogger here')\n")
    env["PYTHONPATH"] = os.pathsep.join([PATH_FOLDER, str(blocked)])
    result = subprocess.run([sys.executable, "-c", "import wandb"], capture_output=True, text=True, env=env,
                            timeout=60, cwd=tmp_path)
    assert result.returncode == 1
    assert "cannot import mplogger" in result.stderr and sys.executable in result.stderr
    env["MPLOGGER_RUN_PYTHON"] = "/opt/elsewhere/bin/python"  # set by mplogger run: the Python it runs in
    result = subprocess.run([sys.executable, "-c", "import wandb"], capture_output=True, text=True, env=env,
                            timeout=60, cwd=tmp_path)
    assert "mplogger run -- /opt/elsewhere/bin/python train.py" in result.stderr


def test_child_environment_puts_the_name_first_once_and_pins_the_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = child_environment({"PYTHONPATH": os.pathsep.join(["/a", PATH_FOLDER, "/b"]), "PATH": "/usr/bin",
                             "MPLOGGER_DIR": "store"})
    assert env["PYTHONPATH"].split(os.pathsep) == [PATH_FOLDER, "/a", "/b"]
    assert child_environment({"PYTHONPATH": ":/a"})["PYTHONPATH"].split(os.pathsep) == [PATH_FOLDER, "", "/a"]
    assert env["PATH"] == "/usr/bin"  # the job's own programs, as the user's shell finds them
    assert env["MPLOGGER_DIR"] == str(tmp_path / "store")  # a job that changes folder keeps its store
    assert env["MPLOGGER_RUN_PYTHON"] == sys.executable


@pytest.mark.parametrize("make, said", [
    (lambda path: path.mkdir(), "Permission denied"),
    (lambda path: path.write_text("echo hi\n"), "Permission denied"),  # not executable
    (lambda path: (path.write_text("echo hi\n"), path.chmod(0o755)), "a script needs a #! line"),
])
def test_a_command_that_cannot_be_executed_is_126(tmp_path, make, said):
    target = tmp_path / "job"
    make(target)
    result = mplogger_run("--", str(target))
    assert result.returncode == 126 and "cannot execute" in result.stderr and said in result.stderr, result.stderr


# --- install() in this process ----------------------------------------------------------------
def run_python(body: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(body)], capture_output=True, text=True,
                          timeout=60, env=script_env())


def test_install_makes_import_wandb_mplogger_in_this_process_from_then_on():
    found = seen(run_python(
        "import mplogger.wandb\nmplogger.wandb.install()\n" + WHICH_WANDB
        + "import wandb.sdk.lib.config_util, wandb.wandb_run\n"
        + "assert wandb.sdk.lib.config_util.ConfigError is mplogger.wandb.sdk.lib.config_util.ConfigError\n"
        + "assert wandb.wandb_run.Run is mplogger.Run\n"))
    assert found["name"] == "mplogger.wandb" and found["version"] == WANDB_VERSION and found["spec"]


def test_install_after_the_real_wandb_was_imported_replaces_it_and_says_so():
    require_installed("wandb", "the test extra installs the real one")
    result = run_python("""
        import wandb as real
        import mplogger.wandb
        mplogger.wandb.install()
        import wandb, importlib.metadata
        print(real.__name__, wandb.__name__, importlib.metadata.version("wandb"))
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["wandb", "mplogger.wandb", WANDB_VERSION]
    assert "a wandb module was imported before" in result.stderr


def test_a_rank_that_only_imports_starts_nothing():
    body = textwrap.dedent("""
        import multiprocessing, wandb
        from wandb.sdk.lib.config_util import ConfigError  # what transformers imports on every rank
        from wandb.sdk.lib import RunDisabled
        from wandb.wandb_run import Run
        import mplogger._user._session
        assert wandb.run is None
        print(mplogger._user._session.current().client is None, multiprocessing.active_children())
    """)
    result = mplogger_run(sys.executable, "-c", body)
    assert result.returncode == 0 and result.stdout.split() == ["True", "[]"], result.stdout + result.stderr


def test_a_built_wheel_carries_the_wandb_folder(tmp_path):
    source = tmp_path / "source"  # a copy: building in the checkout would leave build/ there
    shutil.copytree(REPO / "mplogger", source / "mplogger", ignore=shutil.ignore_patterns("__pycache__", "*.db*", "runs"))
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(source), "-w", str(tmp_path)],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = tmp_path.glob("mplogger-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"mplogger/_wandb_path/wandb/__init__.py", f"mplogger/_wandb_path/wandb-{WANDB_VERSION}.dist-info/METADATA",
            "mplogger/wandb/sdk/lib/config_util.py", "mplogger/wandb/__main__.py"} <= names
