"""System metrics read from Linux's /proc with the standard library (``_system.ProcReader``)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

import mplogger
from mplogger._manager import _system
from mplogger._manager._system import ProcReader, SystemSampler
from mplogger._shared import _platform
from mplogger._shared._platform import proc_usable

from conftest import wait_for

NAMES = ("system/cpu", "system/memory", "system/memory.availableMB", "system/proc.memory.rssMB",
         "system/proc.count", "system/disk.in", "system/disk.out", "system/network.sent", "system/network.recv")
linux = pytest.mark.skipif(not proc_usable(), reason="reads Linux's /proc")

LAUNCHER = """
    import json, os, signal, subprocess, sys, time
    ready = sys.argv[1]
    alloc = subprocess.Popen([sys.executable, "-c", (
        "import signal, sys\\n"
        "data = bytearray(b'x') * (60 << 20)  # every page written, so resident\\n"
        "open(sys.argv[1], 'w').close()\\n"
        "signal.pause()  # lives until the test kills it\\n"), ready + ".alloc"])
    manager = subprocess.Popen(["sh", "-c", "sleep 120 & wait"])
    deadline = time.monotonic() + 60
    while not os.path.exists(ready + ".alloc") and time.monotonic() < deadline:
        time.sleep(0.02)  # poll
    with open(ready + ".tmp", "w") as out:
        json.dump({"alloc": alloc.pid, "manager": manager.pid}, out)
    os.rename(ready + ".tmp", ready)
    signal.pause()  # lives until the test kills it
"""


@pytest.fixture
def process_tree(tmp_path: Path):
    """A launcher whose children are a process holding 60 MB and a shell with a child of its own."""
    launcher_path = tmp_path / "launcher.py"
    launcher_path.write_text(textwrap.dedent(LAUNCHER))
    ready = tmp_path / "ready.json"
    launcher = subprocess.Popen([sys.executable, str(launcher_path), str(ready)], start_new_session=True)
    try:
        wait_for(ready.exists, 60, "the process tree")
        pids = json.loads(ready.read_text())
        shell_children = wait_for(lambda: ProcReader(pids["manager"], own_pid=-1).tree()[1:], 10, "sleep")
        yield {"launcher": launcher.pid, "sleep": shell_children[0], **pids}
    finally:
        os.killpg(launcher.pid, signal.SIGKILL)
        launcher.wait()


@linux
def test_the_process_tree_is_the_user_process_and_its_children_without_mplogger_s_own(process_tree):
    """The shell stands for mplogger's manager (``own_pid``): neither it nor its child is counted."""
    reader = ProcReader(process_tree["launcher"], own_pid=process_tree["manager"])
    assert sorted(reader.tree()) == sorted([process_tree["launcher"], process_tree["alloc"]])
    scanning = ProcReader(process_tree["launcher"], own_pid=process_tree["manager"])
    scanning._has_children_files = False  # as on kernels without CONFIG_PROC_CHILDREN
    assert sorted(scanning.tree()) == sorted(reader.tree())
    values = reader.processes()
    assert values["system/proc.count"] == 2
    assert values["system/proc.memory.rssMB"] >= 60
    everything = ProcReader(process_tree["launcher"], own_pid=-1).tree()
    assert {process_tree["manager"], process_tree["sleep"]} <= set(everything)


@linux
def test_cpu_and_memory_of_this_machine_are_in_range(tmp_path):
    reader = ProcReader(os.getpid())
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        busy = wait_for(lambda: reader.cpu().get("system/cpu"), 10, "a busy CPU measured")
    finally:
        spinner.kill()
        spinner.wait()
    assert 0 < busy <= 100
    memory = reader.memory()
    total_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 20
    assert 0 < memory["system/memory"] < 100
    assert 0 < memory["system/memory.availableMB"] <= total_mb


def _loopback_traffic(size: int) -> None:
    """Send ``size`` bytes to ourselves over TCP on 127.0.0.1 and read them all back."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        received = []

        def serve() -> None:
            connection, _ = server.accept()
            with connection:
                while sum(received) < size:
                    chunk = connection.recv(65536)
                    if not chunk:
                        break
                    received.append(len(chunk))

        thread = threading.Thread(target=serve)
        thread.start()
        with socket.create_connection(server.getsockname()) as client:
            client.sendall(b"x" * size)
        thread.join(30)
        assert sum(received) == size


@linux
def test_network_counters_include_loopback_traffic_and_disk_counters_are_totals():
    reader = ProcReader(os.getpid())
    before = {**reader.network(), **reader.disk()}
    _loopback_traffic(1 << 20)
    after = {**reader.network(), **reader.disk()}
    assert after["system/network.sent"] - before["system/network.sent"] >= 1 << 20
    assert after["system/network.recv"] - before["system/network.recv"] >= 1 << 20
    for key in ("system/disk.in", "system/disk.out"):
        assert 0 <= before[key] <= after[key]


@linux
def test_readings_mean_what_psutil_s_mean():
    """/proc and psutil agree (psutil's counters lie between two /proc readings)."""
    psutil = pytest.importorskip("psutil")
    reader = ProcReader(os.getpid(), own_pid=-1)
    first = {**reader.disk(), **reader.network()}
    disk, net = psutil.disk_io_counters(), psutil.net_io_counters()
    last = {**reader.disk(), **reader.network()}
    assert first["system/disk.in"] <= disk.read_bytes / 2 ** 20 <= last["system/disk.in"]
    assert first["system/disk.out"] <= disk.write_bytes / 2 ** 20 <= last["system/disk.out"]
    assert first["system/network.sent"] <= net.bytes_sent <= last["system/network.sent"]
    assert first["system/network.recv"] <= net.bytes_recv <= last["system/network.recv"]
    memory = reader.memory()
    assert abs(memory["system/memory"] - psutil.virtual_memory().percent) <= 2
    tree = [psutil.Process()] + psutil.Process().children(recursive=True)
    processes = reader.processes()
    assert processes["system/proc.count"] == len(tree)
    assert abs(processes["system/proc.memory.rssMB"] - sum(p.memory_info().rss for p in tree) / 2 ** 20) <= 5


def _fake_proc(root: Path, stat: str) -> None:
    """A /proc with four whole disks and two partitions, two interfaces, and a tree 10 -> 11, 12 -> 13."""
    files = {
        "stat": stat,
        "meminfo": "MemTotal:       1000000 kB\nMemFree:         100000 kB\nMemAvailable:    250000 kB\n",
        "diskstats": ("   8       0 sda 1 0 100 0 2 0 200 0 0 0 0 0 0 0 0 0 0\n"
                      "   8       1 sda1 1 0 100 0 2 0 200 0 0 0 0 0 0 0 0 0 0\n"
                      "   7       1 loop1 1 0 10 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
                      "   7      10 loop10 1 0 10 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
                      " 259       0 nvme0n1 1 0 1000 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
                      " 259       1 nvme0n1p1 1 0 1000 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"),
        "net/dev": ("Inter-|   Receive\n face |bytes    packets\n"
                    "    lo:    1000 1 0 0 0 0 0 0     1000 1 0 0 0 0 0 0\n"
                    "  eth0: 5000 1 0 0 0 0 0 0 3000 1 0 0 0 0 0 0\n"),
        "10/statm": "100 10 0 0 0 0 0\n", "11/statm": "100 20 0 0 0 0 0\n",
        "12/statm": "100 40 0 0 0 0 0\n", "13/statm": "100 80 0 0 0 0 0\n",
        "10/task/10/children": "11 ", "10/task/15/children": "12",  # a child forked by each thread
        "11/task/11/children": "", "12/task/12/children": "13", "13/task/13/children": "",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_readings_follow_psutil_s_definitions_on_a_fake_proc(tmp_path):
    proc, sys_block = tmp_path / "proc", tmp_path / "sys_block"
    _fake_proc(proc, "cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3\n")
    for disk in ("sda", "loop1", "loop10", "nvme0n1"):
        (sys_block / disk).mkdir(parents=True)
    reader = ProcReader(10, own_pid=12, proc=str(proc), sys_block=str(sys_block))
    assert reader.cpu() == {}  # no clock tick since the reader was made
    (proc / "stat").write_text("cpu  130 0 130 720 120 0 0 0 20 0\n")  # +20 guest, already in user
    assert reader.cpu() == {"system/cpu": 60.0}  # busy 60 of 100 (idle 20, iowait 20)
    assert reader.memory() == {"system/memory": 75.0, "system/memory.availableMB": round(250000 / 1024, 1)}
    page = os.sysconf("SC_PAGE_SIZE")
    assert sorted(reader.tree()) == [10, 11]  # 12 is mplogger's own, and so is 13 below it
    assert reader.processes() == {"system/proc.memory.rssMB": round(30 * page / 2 ** 20, 1), "system/proc.count": 2}
    assert reader.disk() == {"system/disk.in": 1120 * 512 / 2 ** 20, "system/disk.out": 200 * 512 / 2 ** 20}
    assert reader.network() == {"system/network.sent": 4000, "system/network.recv": 6000}
    without_sys = ProcReader(10, own_pid=12, proc=str(proc), sys_block=str(tmp_path / "none"))
    assert without_sys.disk() == reader.disk()  # sda1 and nvme0n1p1 are partitions, loop10 is not


def test_without_children_files_the_tree_comes_from_each_process_s_parent(tmp_path):
    proc = tmp_path / "proc"
    _fake_proc(proc, "cpu  1 0 1 1 0 0 0 0 0 0\n")
    for pid, ppid in ((10, 1), (11, 10), (12, 10), (13, 12), (14, 11)):
        (proc / str(pid)).mkdir(exist_ok=True)
        (proc / str(pid) / "stat").write_text(f"{pid} (a (b) c) S {ppid} 0 0\n")
        for children in (proc / str(pid) / "task").glob("*/children"):
            children.unlink()
    assert sorted(ProcReader(10, own_pid=12, proc=str(proc)).tree()) == [10, 11, 14]


def test_a_reading_that_fails_leaves_only_its_metrics_out(tmp_path, monkeypatch):
    proc = tmp_path / "proc"
    _fake_proc(proc, "cpu  1 0 1 1 0 0 0 0 0 0\n")
    (proc / "meminfo").unlink()
    (proc / "net" / "dev").write_text("header\nheader\n  eth0: garbage\n")
    monkeypatch.setattr(_platform, "PROC", str(proc))
    monkeypatch.setattr(_platform, "SYS_BLOCK", str(tmp_path / "none"))
    monkeypatch.setattr(_platform, "proc_usable", lambda: True)
    sampler = SystemSampler(10)
    assert sampler.available
    assert set(sampler.sample()) == {"system/proc.memory.rssMB", "system/proc.count"}
    assert set(sampler.counters()) == {"system/disk.in", "system/disk.out"}


def test_where_proc_is_not_usable_psutil_gives_the_same_metrics(monkeypatch):
    pytest.importorskip("psutil")
    monkeypatch.setattr(_platform, "proc_usable", lambda: False)
    sampler = SystemSampler(os.getpid())
    assert isinstance(sampler._reader, _system.PsutilReader)

    def with_cpu():
        values = sampler.sample()
        return values if "system/cpu" in values else None

    values = wait_for(with_cpu, 10, "a CPU reading")
    values.update(sampler.counters())
    assert set(NAMES) <= set(values)
    assert values["system/proc.count"] >= 1 and values["system/proc.memory.rssMB"] > 0


@linux
def test_without_psutil_a_run_records_system_metrics_and_nothing_is_said_about_psutil(without, root):
    body = """
        import time, mplogger
        run = mplogger.init(dir=sys.argv[1], settings={"system_interval": 0.2})
        run.log({"x": 1})
        api = mplogger.Api(sys.argv[1])
        deadline = time.monotonic() + 20
        while len(api.run(run.id).system_metrics()) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)  # poll
        run.finish()
        print("RUN", run.id)
    """
    result = without("psutil", body, root)
    assert result.returncode == 0, result.stderr
    assert "psutil" not in result.stderr and "mplogger[system]" not in result.stderr
    samples = mplogger.Api(root).run(result.stdout.split("RUN ")[1].split()[0]).system_metrics()
    assert len(samples) >= 3
    assert set(NAMES) <= set().union(*samples)
    last = samples[-1]
    assert set(NAMES) <= set(last)
    assert last["system/proc.count"] == 1 and last["system/proc.memory.rssMB"] > 0
    assert 0 <= last["system/cpu"] <= 100
