"""mplogger inside a real Jupyter kernel (ipykernel driven by nbclient).

The kernel is started from a kernelspec written into the test's own folder, whose argv is this
interpreter (``sys.executable -m ipykernel_launcher``), so the test needs no installed
``python3`` kernelspec and the kernel always runs the same Python as the test. ``PYTHONPATH``
puts this checkout first, so the kernel imports the mplogger under test.

Shutting the kernel down goes through nbclient's own cleanup, i.e. jupyter_client's
``KernelManager.shutdown_kernel(now=False)``: a shutdown_request, then SIGTERM and SIGKILL to
the kernel's process group if it does not exit in time. This is what Jupyter does when a
notebook's kernel is shut down.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
from jupyter_client.kernelspec import KernelSpecManager  # noqa: E402  (after the skips)
from jupyter_client.manager import AsyncKernelManager  # noqa: E402

import mplogger  # noqa: E402

from conftest import process_gone, wait_for  # noqa: E402

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mplogger targets Linux"),
    pytest.mark.timeout(120),
]

REPO = Path(__file__).resolve().parents[2]
KERNEL_NAME = "mplogger-test-python"


# --- helpers -------------------------------------------------------------------------------
def stored_run(root: str, run_id: str) -> "mplogger.StoredRun":
    api = mplogger.Api(root)
    try:
        return api.run(run_id)
    finally:
        api.close()


class Notebook:
    """A notebook whose cells are executed one at a time in a real kernel."""

    def __init__(self, client: "nbclient.NotebookClient") -> None:
        self.client = client
        self.nb = client.nb

    def cell(self, source: str) -> str:
        """Run one cell; return its stdout. A cell that raises fails the test."""
        cell = nbformat.v4.new_code_cell(source)
        self.nb.cells.append(cell)
        self.client.execute_cell(cell, len(self.nb.cells) - 1)
        return "".join(o.get("text", "") for o in cell.outputs
                       if o.get("output_type") == "stream" and o.get("name") == "stdout")

    def cell_error(self, source: str) -> str:
        """Run one cell that is expected to raise; return the error's name."""
        cell = nbformat.v4.new_code_cell(source)
        self.nb.cells.append(cell)
        self.client.allow_errors = True
        try:
            self.client.execute_cell(cell, len(self.nb.cells) - 1)
        finally:
            self.client.allow_errors = False
        errors = [o for o in cell.outputs if o.get("output_type") == "error"]
        assert errors, "the cell was expected to raise"
        return errors[0]["ename"]

    def value(self, output: str, key: str) -> str:
        found = re.findall(rf"^{key}=(.*)$", output, re.M)
        assert found, f"no {key}= line in the cell output: {output!r}"
        return found[-1].strip()


@pytest.fixture
def kernel_env(tmp_path: Path) -> Dict[str, str]:
    """The kernel's environment: this checkout first on the path, no outside MPLOGGER_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MPLOGGER_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    ipython_dir = tmp_path / "ipython"
    ipython_dir.mkdir()
    env["IPYTHONDIR"] = str(ipython_dir)  # no user profile or startup files
    env.pop("JPY_PARENT_PID", None)
    return env


@pytest.fixture
def notebook(tmp_path: Path, kernel_env: Dict[str, str]):
    """Start a kernel of this interpreter; yield ``(Notebook, shutdown)``.

    ``shutdown()`` shuts the kernel down the way Jupyter does; the fixture also calls it at
    teardown, so a failing test leaves no kernel behind.
    """
    spec_dir = tmp_path / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "mplogger test (this interpreter)",
        "language": "python",
    }))
    km = AsyncKernelManager(
        kernel_name=KERNEL_NAME,
        kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")]),
    )
    work = tmp_path / "work"
    work.mkdir()
    client = nbclient.NotebookClient(
        nbformat.v4.new_notebook(), km=km, timeout=60, startup_timeout=60,
        kernel_name=KERNEL_NAME, resources={"metadata": {"path": str(work)}},
    )
    assert client.shutdown_kernel == "graceful"  # i.e. km.shutdown_kernel(now=False)
    context = client.setup_kernel(cleanup_kc=True, env=kernel_env)
    context.__enter__()
    kernel_pid = km.provisioner.process.pid
    state = {"open": True}

    def restart() -> None:
        """Restart the kernel as Jupyter's "Restart" does (a shutdown_request with restart)."""
        nbclient.util.run_sync(km.restart_kernel)(now=False)
        nbclient.util.run_sync(client.kc.wait_for_ready)(timeout=60)

    def shutdown(now: bool = False) -> int:
        """Shut the kernel down; return its pid.

        By default as Jupyter does (a shutdown_request, then the group kill if it lingers);
        ``now=True`` is nbclient's "immediate" mode: SIGKILL to the kernel's process group.
        """
        if state["open"]:
            state["open"] = False
            client.shutdown_kernel = "immediate" if now else "graceful"
            context.__exit__(None, None, None)
        return kernel_pid

    try:
        notebook = Notebook(client)
        notebook.restart = restart
        yield notebook, shutdown
    finally:
        shutdown()


def start_run(nb: Notebook, root: str) -> Dict[str, Any]:
    """Cell 1: check the kernel, start a run; return its id and the manager's pid."""
    out = nb.cell(
        "import os, sys\n"
        "import mplogger, mplogger._user._session, mplogger._shared._processes\n"
        f"run = mplogger.init(project='jupyter', dir={root!r}, config={{'lr': 0.1}})\n"
        "print('EXECUTABLE=' + sys.executable)\n"
        "print('MODULE=' + mplogger.__file__)\n"
        "print('IN_JUPYTER=' + str(mplogger._shared._processes.in_jupyter()))\n"
        "print('RUN_ID=' + run.id)\n"
        "print('MANAGER_PID=' + str(mplogger.setup().pid))\n"
    )
    assert os.path.realpath(nb.value(out, "EXECUTABLE")) == os.path.realpath(sys.executable)
    assert Path(nb.value(out, "MODULE")).resolve() == (REPO / "mplogger" / "__init__.py").resolve()
    assert nb.value(out, "IN_JUPYTER") == "True"
    manager_pid = int(nb.value(out, "MANAGER_PID"))
    assert manager_pid > 0 and not process_gone(manager_pid)
    return {"run_id": nb.value(out, "RUN_ID"), "manager_pid": manager_pid}


def shm_semaphores() -> set:
    """Named semaphores in /dev/shm (multiprocessing's, under spawn and forkserver)."""
    try:
        return {name for name in os.listdir("/dev/shm") if name.startswith("sem.mp")}
    except FileNotFoundError:
        return set()


def log_cell(start: int, stop: int, extra_keys: int = 0) -> str:
    extra = "".join(f", 'e{k}': i + {k} * 0.25" for k in range(extra_keys))
    return f"for i in range({start}, {stop}):\n    run.log({{'x': i * 0.5, 'i': i{extra}}})\n"


def assert_rows(stored: "mplogger.StoredRun", count: int) -> List[dict]:
    history = stored.history()
    assert stored.rows == count
    assert len(history) == count
    assert [row["_step"] for row in history] == list(range(count))
    assert [row["i"] for row in history] == list(range(count))
    assert [row["x"] for row in history] == [i * 0.5 for i in range(count)]
    return history


# --- tests ---------------------------------------------------------------------------------
def test_run_spanning_cells_is_stored_and_finished(notebook, root):
    nb, shutdown = notebook
    started = start_run(nb, root)
    nb.cell(log_cell(0, 500))
    nb.cell(log_cell(500, 1000))
    out = nb.cell("run.finish()\nprint('STATE=' + run.state)\n")
    assert nb.value(out, "STATE") == "finished"

    stored = stored_run(root, started["run_id"])
    assert stored.state == "finished"
    assert stored.config == {"lr": 0.1}
    assert_rows(stored, 1000)
    assert stored.summary["x"] == 999 * 0.5
    assert stored.summary["i"] == 999

    # The kernel going away takes the manager with it.
    shutdown()
    wait_for(lambda: process_gone(started["manager_pid"]), 15, "the manager to exit")
    assert stored_run(root, started["run_id"]).state == "finished"


@pytest.mark.parametrize(
    "how, rows, extra_keys", [("graceful", 1000, 0), ("kill", 1000, 0), ("kill", 20000, 48)],
)
def test_run_left_open_at_kernel_shutdown_is_stored_and_closed(notebook, root, how, rows, extra_keys):
    """``graceful``: Jupyter's shutdown; the kernel exits, or is killed if it lingers, so the
    run ends ``finished`` (the kernel's own exit path) or ``crashed`` (the manager's).
    ``kill``: the kernel's process group is SIGKILLed at once; only the manager can close it.
    The large case logs more than the pipe holds: once the cell has returned, every row of it
    has left the kernel, so the kill loses none.
    """
    nb, shutdown = notebook
    semaphores_before = shm_semaphores()
    started = start_run(nb, root)
    nb.cell(log_cell(0, rows, extra_keys))  # no flush, no finish

    kernel_pid = shutdown(now=how == "kill")
    assert process_gone(kernel_pid)

    stored = wait_for(
        lambda: (lambda s: s if s.state != "running" else None)(stored_run(root, started["run_id"])),
        15, "the open run to be closed after the kernel shut down",
    )
    assert stored.state in (("crashed", "finished") if how == "graceful" else ("crashed",))
    history = assert_rows(stored, rows)
    assert stored.summary["i"] == rows - 1
    if extra_keys:
        assert history[-1][f"e{extra_keys - 1}"] == rows - 1 + (extra_keys - 1) * 0.25
    wait_for(lambda: process_gone(started["manager_pid"]), 15, "the manager to exit")
    # Names that other processes create and unlink come and go; a leak stays for ever.
    wait_for(lambda: not (shm_semaphores() - semaphores_before), 10, "no named semaphore left in /dev/shm")
    wait_for(lambda: process_gone(started["manager_pid"]), 15, "the manager to exit")


def test_init_in_a_later_cell_finishes_the_previous_run(notebook, root):
    nb, _ = notebook
    first = start_run(nb, root)
    nb.cell(log_cell(0, 10))
    nb.cell("run.config.lr = 0.2\n")  # notebooks re-run cells: changing a config value is allowed
    out = nb.cell(f"second = mplogger.init(dir={root!r})\nprint('SECOND=' + second.id)\n"
                  "print('SAME=' + str(second is run))\n")
    assert nb.value(out, "SAME") == "False"
    assert stored_run(root, first["run_id"]).state == "finished"
    assert stored_run(root, first["run_id"]).config == {"lr": 0.2}
    nb.cell("second.log({'y': 1})\nsecond.finish()\n")
    assert stored_run(root, nb.value(out, "SECOND")).summary == {"y": 1}


def test_interrupting_a_logging_cell_leaves_the_run_usable(notebook, root):
    """Interrupt (SIGINT, as the notebook's stop button does) lands inside a tight log() loop."""
    nb, _ = notebook
    started = start_run(nb, root)
    error = nb.cell_error(
        "import os, signal, threading\n"
        "threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()\n"
        "calls = 0\n"
        "while True:\n"
        "    calls += 1\n"
        "    run.log({'n': calls})\n"
    )
    assert error == "KeyboardInterrupt"
    out = nb.cell("for k in range(1, 101):\n    run.log({'n': calls + k})\n"
                  "run.finish()\nprint('CALLS=' + str(calls))\n")
    calls = int(nb.value(out, "CALLS"))
    stored = stored_run(root, started["run_id"])
    values = [row["n"] for row in stored.history()]
    assert stored.state == "finished"
    assert len(values) == len(set(values)), "a row was stored twice"
    expected = set(range(1, calls)) | set(range(calls + 1, calls + 101))  # `calls` itself was interrupted
    assert expected <= set(values) <= expected | {calls}


def test_restarting_the_kernel_keeps_earlier_runs(notebook, root):
    nb, _ = notebook
    started = start_run(nb, root)
    nb.cell(log_cell(0, 300))
    nb.restart()
    stored = wait_for(
        lambda: (lambda s: s if s.state != "running" else None)(stored_run(root, started["run_id"])),
        15, "the run from before the restart to be closed",
    )
    assert stored.state in ("finished", "crashed")
    assert_rows(stored, 300)
    wait_for(lambda: process_gone(started["manager_pid"]), 15, "the old kernel's manager to exit")
    again = start_run(nb, root)
    nb.cell(log_cell(0, 5) + "run.finish()\n")
    assert again["run_id"] != started["run_id"]
    assert stored_run(root, again["run_id"]).state == "finished"


def test_what_cells_print_is_captured_into_the_run(notebook, root):
    nb, _ = notebook
    started = start_run(nb, root)
    nb.cell("print('from a cell')\nimport sys\nsys.stderr.write('to stderr\\n')\n")
    nb.cell("import logging\nlogging.getLogger('demo').warning('a warning')\nrun.finish()\nprint('after')\n")
    lines = stored_run(root, started["run_id"]).output()
    assert "from a cell" in lines and "to stderr" in lines and "after" not in lines
