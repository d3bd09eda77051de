"""Live notebook cards: the renderer process on its own, and cards in a real Jupyter kernel.

In the kernel tests every iopub message is read (whatever cell it answers), so display updates
that arrive between cells are counted too.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

import mplogger

from conftest import REPO, process_gone, wait_for

pytestmark = [pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mplogger targets Linux"),
              pytest.mark.timeout(180)]


# --- the renderer process ----------------------------------------------------------------------
class Renderer:
    """``python -m mplogger._readers._live_render`` with its pipes."""

    def __init__(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MPLOGGER_")}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
        self.process = subprocess.Popen([sys.executable, "-m", "mplogger._readers._live_render"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, env=env)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.process.stdout, selectors.EVENT_READ)

    def send(self, **message: Any) -> None:
        self.process.stdin.write((json.dumps(message) + "\n").encode())
        self.process.stdin.flush()

    def receive(self, timeout: float = 20.0) -> Optional[Dict[str, Any]]:
        """The next card it sends, or None when none comes within ``timeout``."""
        if not self.selector.select(timeout):
            return None
        line = self.process.stdout.readline()
        return json.loads(line) if line else None

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)


@pytest.fixture
def renderer():
    started = Renderer()
    try:
        yield started
    finally:
        started.close()


def test_the_renderer_sends_a_card_when_rows_change_and_a_last_one_when_the_run_ends(root, renderer):
    run = mplogger.init(dir=root, name="watched")
    run.log({"loss": 1.0})
    run.flush()
    renderer.send(op="watch", id="card-1", root=run.root, run_id=run.id, kind="Run", mark=[1, "running"])
    for i in range(20):
        run.log({"loss": 1.0 / (i + 2), "acc": i})
    run.flush()
    card = renderer.receive()
    assert card is not None and card["id"] == "card-1" and not card["done"]
    assert card["html"].count("<svg") == 2 and "watched" in card["html"] and "rows=21" in card["text"]
    run.finish()
    last = renderer.receive()
    assert last is not None and last["done"] and "finished" in last["html"]
    renderer.send(op="watch", id="card-2", root=run.root, run_id=run.id, kind="Run", mark=[21, "finished"])
    assert renderer.receive(timeout=2.5) is None  # nothing changed: nothing is sent
    renderer.process.stdin.close()
    assert renderer.process.wait(10) == 0  # stdin closed: it exits


def test_the_renderer_takes_every_message_of_one_write(root, renderer):
    run = mplogger.init(dir=root)
    run.log({"x": 1})
    run.flush()
    watch = [json.dumps({"op": "watch", "id": f"c{n}", "root": run.root, "run_id": run.id, "kind": "Run",
                         "mark": [0, "running"]}) for n in (1, 2)]
    renderer.process.stdin.write(("\n".join(watch) + "\n").encode())  # both lines in one read
    renderer.process.stdin.flush()
    seen = {renderer.receive()["id"], renderer.receive()["id"]}
    assert seen == {"c1", "c2"}
    run.finish()


def test_the_renderer_reports_a_run_it_cannot_read_and_ignores_interrupts(root, renderer):
    run = mplogger.init(dir=root)
    run.log({"x": 1})
    run.finish()
    renderer.send(op="watch", id="gone", root=run.root, run_id="zzzzzzzz", kind="Run", mark=[])
    reply = renderer.receive()
    assert reply is not None and reply["id"] == "gone" and "zzzzzzzz" in reply["error"]
    os.kill(renderer.process.pid, signal.SIGINT)  # as an interrupt sent to a whole process group
    renderer.send(op="watch", id="again", root=run.root, run_id="zzzzzzzz", kind="Run", mark=[])
    reply = renderer.receive()
    assert reply is not None and reply["id"] == "again" and renderer.process.poll() is None


def test_the_renderer_exits_when_the_kernel_is_killed(tmp_path: Path):
    body = ("import subprocess, sys, time\n"
            "p = subprocess.Popen([sys.executable, '-m', 'mplogger._readers._live_render'], stdin=subprocess.PIPE)\n"
            "print(p.pid, flush=True)\n"
            "time.sleep(120)\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    parent = subprocess.Popen([sys.executable, "-c", body], stdout=subprocess.PIPE, text=True, env=env)
    try:
        child = int(parent.stdout.readline())
        assert not process_gone(child)
        parent.kill()
        parent.wait(10)
        wait_for(lambda: process_gone(child), timeout=15, what="the renderer to exit after its parent's kill -9")
    finally:
        if parent.poll() is None:
            parent.kill()


# --- in a real kernel -------------------------------------------------------------------------
class Kernel:
    """A real ipykernel of this interpreter, driven message by message."""

    def __init__(self, tmp_path: Path) -> None:
        from jupyter_client.kernelspec import KernelSpecManager
        from jupyter_client.manager import KernelManager

        spec = tmp_path / "kernels" / "mplogger-live"
        spec.mkdir(parents=True)
        (spec / "kernel.json").write_text(json.dumps({
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "mplogger live test", "language": "python"}))
        env = {k: v for k, v in os.environ.items() if not k.startswith("MPLOGGER_") and k != "MPLBACKEND"}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
        (tmp_path / "ipython").mkdir()
        env["IPYTHONDIR"] = str(tmp_path / "ipython")
        env.pop("JPY_PARENT_PID", None)
        self.manager = KernelManager(kernel_name="mplogger-live",
                                     kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")]))
        self.manager.start_kernel(env=env, cwd=str(tmp_path))
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)

    def run(self, code: str, timeout: float = 60.0) -> List[Dict[str, Any]]:
        """Execute ``code``; every iopub message up to its end (of any parent), errors raised."""
        msg_id = self.client.execute(code)
        deadline = time.monotonic() + timeout
        messages = []
        while True:
            message = self.client.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
            messages.append(message)
            if message["msg_type"] == "error":
                raise AssertionError("\n".join(message["content"]["traceback"]))
            if (message["msg_type"] == "status" and message["content"]["execution_state"] == "idle"
                    and message["parent_header"].get("msg_id") == msg_id):
                return messages

    def shutdown(self) -> None:
        if self.manager.has_kernel:
            self.client.stop_channels()
            self.manager.shutdown_kernel(now=False)


@pytest.fixture
def kernel(tmp_path: Path):
    pytest.importorskip("ipykernel")
    pytest.importorskip("jupyter_client")
    started = Kernel(tmp_path)
    try:
        yield started
    finally:
        started.shutdown()


def displays(messages: List[Dict[str, Any]], kind: str = "display_data") -> List[Dict[str, Any]]:
    return [m["content"] for m in messages if m["msg_type"] == kind]


def printed(messages: List[Dict[str, Any]]) -> str:
    return "".join(m["content"].get("text", "") for m in messages if m["msg_type"] == "stream")


def test_a_card_updates_while_the_next_cell_trains_and_never_after_finish(kernel, root):
    first = kernel.run(f"import mplogger, time\nrun = mplogger.init(dir={root!r}, name='live-card')\n"
                       "for i in range(50):\n    run.log({'loss': 1 / (i + 1), 'acc': i / 50})\nrun")
    (card,) = displays(first)
    display_id = card["transient"]["display_id"]
    assert card["data"]["text/html"].count("<svg") == 2 and "running" in card["data"]["text/html"]
    training = kernel.run("end = time.time() + 4\ni = 50\nwhile time.time() < end:\n"
                          "    run.log({'loss': 1 / (i + 1), 'acc': i / 50}); i += 1\n    time.sleep(0.001)\nprint(i)")
    steps = int(printed(training))
    updates = [u for u in displays(training, "update_display_data") if u["transient"]["display_id"] == display_id]
    assert len(updates) >= 2, f"{len(updates)} updates in 4 s"
    rows = [int(u["data"]["text/plain"].split("rows=")[1].rstrip(">")) for u in updates]
    assert rows == sorted(rows) and 50 < rows[-1] <= steps
    assert all(u["data"]["text/html"].count("<svg") == 2 for u in updates)
    finish = kernel.run("run.finish()")
    last = [u for u in displays(finish, "update_display_data") if u["transient"]["display_id"] == display_id]
    assert len(last) == 1 and "finished" in last[0]["data"]["text/html"]
    assert f"rows={steps}" in last[0]["data"]["text/plain"]
    # an observation window of more than two of the renderer's intervals: nothing may arrive
    after = kernel.run("import mplogger._readers._live\ntime.sleep(2.5)\nprint(mplogger._readers._live.live_cards())")
    assert not displays(after, "update_display_data") and printed(after).strip() == "[]"
    again = kernel.run("run")  # a finished run's card is static
    assert displays(again) and "display_id" not in (displays(again)[0].get("transient") or {})
    renderer = int(printed(kernel.run("print(mplogger._readers._live._renderer.process.pid)")))
    assert not process_gone(renderer)
    kernel.shutdown()
    wait_for(lambda: process_gone(renderer), timeout=15, what="the renderer to exit with its kernel")


def test_a_card_shown_again_or_through_a_link_to_the_store_ends_with_its_run(kernel, root, tmp_path):
    link = tmp_path / "link-to-store"
    kernel.run(f"import mplogger, os, time\nrun = mplogger.init(dir={root!r})\nrun.log({{'y': 0}})\n"
               f"os.symlink(run.root, {str(link)!r})")
    ids = [displays(kernel.run("run"))[0]["transient"]["display_id"] for _ in range(2)]  # a cell run twice
    linked = displays(kernel.run(f"mplogger.Api({str(link)!r}).run(run.id)"))[0]["transient"]["display_id"]
    training = kernel.run("end = time.time() + 3\nwhile time.time() < end:\n    run.log({'y': 1}); time.sleep(0.002)")
    updated = {u["transient"]["display_id"] for u in displays(training, "update_display_data")}
    assert updated == {ids[1], linked}  # the card shown first was replaced by the second: it rests
    finish = kernel.run("run.finish()")
    assert {u["transient"]["display_id"] for u in displays(finish, "update_display_data")} == {ids[1], linked}
    after = kernel.run("import mplogger._readers._live\ntime.sleep(2.5)\nprint(mplogger._readers._live.live_cards())")
    assert not displays(after, "update_display_data") and printed(after).strip() == "[]"


def test_a_stored_run_written_by_another_process_updates_until_it_ends(kernel, root, tmp_path):
    writer = tmp_path / "writer.py"
    writer.write_text("import sys, time, mplogger\n"
                      "run = mplogger.init(dir=sys.argv[1])\nprint(run.id, flush=True)\n"
                      "sys.stdin.readline()\n"
                      "for i in range(3000):\n    run.log({'y': i})\n    time.sleep(0.001)\nrun.finish()\n")
    kernel.run(f"import subprocess, sys, mplogger\nwriter = subprocess.Popen([sys.executable, {str(writer)!r}, {root!r}],"
               " stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)\nrun_id = writer.stdout.readline().strip()")
    shown = kernel.run("stored = mplogger.Api(" + repr(root) + ").run(run_id)\nstored")
    (card,) = displays(shown)
    display_id = card["transient"]["display_id"]
    done = kernel.run("writer.stdin.write('go\\n'); writer.stdin.flush()\nprint(writer.wait(60))\n"
                      "import time, mplogger._readers._live\nend = time.time() + 15\n"
                      "while mplogger._readers._live.live_cards() and time.time() < end:\n"
                      "    time.sleep(0.05)  # poll: the renderer sees the run end, sends its last card\n"
                      "print(mplogger._readers._live.live_cards())")
    assert printed(done).split() == ["0", "[]"]
    updates = [u for u in displays(done, "update_display_data") if u["transient"]["display_id"] == display_id]
    assert updates and "finished" in updates[-1]["data"]["text/html"]
    assert "rows=3000" in updates[-1]["data"]["text/plain"]


def test_plot_runs_and_compare_display_svg_without_matplotlib(kernel, root):
    out = kernel.run("import sys\nsys.modules['matplotlib'] = None  # as if it were not installed\n"
                     f"import mplogger\nfor lr in (0.1, 0.2):\n"
                     f"    run = mplogger.init(dir={root!r}, project='p', name=f'lr{{lr}}', config={{'lr': lr}})\n"
                     "    for i in range(30):\n        run.log({'loss': lr / (i + 1), '<b>x</b>': i})\n"
                     "    run.finish()\n"
                     "run.plot()")
    (plot,) = displays(out, "execute_result")
    assert plot["data"]["text/html"].count("<svg") == 2 and "&lt;b&gt;x&lt;/b&gt;" in plot["data"]["text/html"]
    assert "<b>x</b>" not in plot["data"]["text/html"]
    runs = kernel.run(f"mplogger.Api({root!r}).runs(project='p')")
    (table,) = displays(runs, "execute_result")
    html = table["data"]["text/html"]
    assert "lr0.1" in html and "lr0.2" in html and html.count("<svg") == 2
    assert html.count('class="series"') == 4  # both runs overlaid on both shared metrics
    compared = kernel.run(f"mplogger.compare(mplogger.Api({root!r}).runs(project='p'), keys=['loss'])")
    (chart,) = displays(compared, "execute_result")
    assert chart["data"]["text/html"].count("<svg") == 1 and chart["data"]["text/html"].count('class="series"') == 2
    error = kernel.client.execute("run.plot().figure()")
    while True:
        message = kernel.client.get_iopub_msg(timeout=60)
        if message["parent_header"].get("msg_id") == error and message["msg_type"] == "error":
            assert "needs matplotlib" in message["content"]["evalue"]
            break
