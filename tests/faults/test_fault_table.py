"""The fault table: each case a real script in a process of its own, under fork and spawn where
the start method matters. Two tables: values (``STORE_CASES``) and processes (``PROCESS_CASES``).

``STORE_CASES``: values that once passed the call-site check and then could not be stored,
poisoning the batch or the run (good rows lost, ``finish()`` failing, the run left ``running``).
Each case's script defines ``bad(run)`` (the input; a clear error at the call site, caught by the
script, when ``ERRORS`` names words for it) and may define ``check(stored)`` (assertions on what
was stored). The test asserts the error named the key, every good row is stored with its value,
the run is ``finished`` and the script exited 0 in time. Cases with children run under the
``fork`` and ``spawn`` multiprocessing contexts (and the same mplogger start method).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid

import pytest

import mplogger

from conftest import TESTS, processes_with, run_script, script_env, wait_for

TEMPLATE = '''
import math
import multiprocessing
import sys

import mplogger

START = sys.argv[2]


def check(stored):
    """Nothing more to check unless the case says so."""

{case}

if __name__ == "__main__":
    root = sys.argv[1]
    run = mplogger.init(dir=root, project="faults", settings={{"start_method": START}})
    for i in range(3):
        run.log({{"good": i}})
    try:
        bad(run)
    except (TypeError, ValueError) as exc:
        print("ERROR:", exc, flush=True)
    for i in range(3, 6):
        run.log({{"good": i}})
    run.finish()
    print("RUN:", run.id, flush=True)
    check(mplogger.Api(root).run(run.id))
    print("CHECKED", flush=True)
'''

DEEP = '''
def deep(levels):
    value = 1
    for _ in range(levels):
        value = {"n": value}
    return value
'''

CHILD_MEDIA = '''
import numpy as np


def child(run):
    run.log({"x": 1, "h": mplogger.Histogram([1.0, 2.0, 2.0]), "a": np.arange(6.0),
             "t": mplogger.Table(columns=["s", "f"], data=[["NaN", math.nan]])})
    try:
        run.log({"x": 2, "big": 2**63})
    except ValueError as exc:
        return str(exc)
    return "accepted"


def bad(run):
    with multiprocessing.get_context(START).Pool(1) as pool:
        message = pool.apply(child, (run,))
    if message != "accepted":
        raise ValueError(message)


def check(stored):
    (row,) = [r for r in stored.history() if "x" in r]
    assert row["h"] == mplogger.Histogram([1.0, 2.0, 2.0]) and row["a"] == mplogger.Histogram(np.arange(6.0))
    assert row["t"].data[0][0] == "NaN" and math.isnan(row["t"].data[0][1])
    assert stored.rows == 7
'''

# (case id, script body, words the call-site error must hold; None: the input is stored)
STORE_CASES = [
    ("int-10**5000-value", "def bad(run):\n    run.log({'huge': 10**5000})",
     ["log() key 'huge'", "<about 5001 digits>", "[-2**63, 2**63)"]),
    ("int-2**63-value", "def bad(run):\n    run.log({'big': 2**63, 'good': 100})",
     ["log() key 'big'", "9223372036854775808"]),
    ("int-2**63-fast-path", "def bad(run):\n    run.log({'good': 2**63})",
     ["log() key 'good'", "9223372036854775808"]),
    ("step-2**63", "def bad(run):\n    run.log({'good': 100}, step=2**63)",
     ["step", "[0, 2**63)", "9223372036854775808"]),
    ("dict-600-deep", DEEP + "\ndef bad(run):\n    run.log({'deep': deep(600)})",
     ["log() key 'deep.n.n", "more than 64 levels"]),
    ("dict-990-deep", DEEP + "\ndef bad(run):\n    run.log({'deep': deep(990)})",
     ["log() key 'deep.n.n", "more than 64 levels"]),
    ("dict-cycle", "def bad(run):\n    loop = {'x': 1}\n    loop['me'] = loop\n    run.log({'cyc': {'in': loop}})",
     ["log() key 'cyc.in.me'", "contains itself", "'cyc.in'"]),
    ("summary-histogram", '''
def bad(run):
    run.summary["w"] = mplogger.Histogram([1, 2, 3], num_bins=3)


def check(stored):
    from mplogger._shared._media import load_media
    assert load_media(stored.summary["w"], stored.dir) == mplogger.Histogram([1, 2, 3], num_bins=3)
''', None),
    ("summary-table", '''
TABLE = mplogger.Table(columns=["a", "s"], data=[[1, "NaN"], [math.inf, "x"]])


def bad(run):
    run.summary.update({"t": TABLE})


def check(stored):
    from mplogger._shared._media import load_media
    assert load_media(stored.summary["t"], stored.dir) == TABLE
''', None),
    ("summary-numpy-array", '''
import numpy as np


def bad(run):
    run.summary["arr"] = np.linspace(0, 1, 50)


def check(stored):
    from mplogger._shared._media import load_media
    assert load_media(stored.summary["arr"], stored.dir) == mplogger.Histogram(np.linspace(0, 1, 50))
''', None),
    ("summary-2**63", "def bad(run):\n    run.summary['best'] = {'at': 2**63}",
     ["summary key 'best.at'", "9223372036854775808"]),
    ("child-media", CHILD_MEDIA, ["log() key 'big'", "9223372036854775808"]),
    ("config-10**5000", "def bad(run):\n    run.config.update({'seed': 10**5000})",
     ["config key 'seed'", "digits"]),
    ("config-cyclic-list", "def bad(run):\n    loop = [1]\n    loop.append(loop)\n    run.config['layers'] = loop",
     ["config key 'layers[1]'", "contains itself"]),
    ("config-deep", DEEP + "\ndef bad(run):\n    run.config['tree'] = deep(500)",
     ["config key 'tree.n.n", "more than 64 levels"]),
    ("config-float-marker", "def bad(run):\n    run.config['m'] = {'x': [{'_type': 'float', 'value': 'NaN'}]}",
     ["config key 'm.x[0]'", "non-finite float"]),
    ("init-config-2**64", '''
def bad(run):
    mplogger.init(dir=sys.argv[1], config={"seed": 2**64}, reinit="create_new")
''', ["config key 'seed'", "18446744073709551616"]),
    ("config-nan-set-again", '''
def bad(run):
    run.config.update({"n": math.nan, "d": {"xs": [math.nan]}})
    run.config.update({"n": float("nan"), "d": {"xs": [float("nan")]}})


def check(stored):
    assert math.isnan(stored.config["n"]) and math.isnan(stored.config["d"]["xs"][0])
''', None),
    ("table-nan-strings", '''
def bad(run):
    run.log({"tab": mplogger.Table(columns=["s"], data=[["NaN"], ["Infinity"], ["-Infinity"]])})


def check(stored):
    (row,) = [r for r in stored.history() if "tab" in r]
    assert [r[0] for r in row["tab"].data] == ["NaN", "Infinity", "-Infinity"]
''', None),
    ("nan-strings-as-values", '''
def bad(run):
    run.log({"s": "NaN", "m": {"t": "Infinity", "u": "-Infinity"}})


def check(stored):
    (row,) = [r for r in stored.history() if "s" in r]
    assert (row["s"], row["m"]) == ("NaN", {"t": "Infinity", "u": "-Infinity"})
''', None),
]

CHILD_CASES = {"child-media"}


def _params():
    for case, body, words in STORE_CASES:
        for start in (("fork", "spawn") if case in CHILD_CASES else ("fork",)):
            yield pytest.param(body, words, start, id=f"{case}-{start}")


@pytest.mark.parametrize("body, words, start", list(_params()))
def test_a_bad_input_is_refused_at_the_call_site_and_the_run_is_unharmed(script, root, body, words, start):
    path = script(TEMPLATE.format(case=textwrap.dedent(body)))
    result = run_script(path, root, start, timeout=120, env=script_env(MPLOGGER_SYSTEM_INTERVAL="0"))
    assert result.returncode == 0, result.stdout + result.stderr
    errors = [line for line in result.stdout.splitlines() if line.startswith("ERROR:")]
    if words is None:
        assert errors == [], errors
    else:
        assert len(errors) == 1, result.stdout + result.stderr
        assert all(word in errors[0] for word in words), errors[0]
    assert "CHECKED" in result.stdout, result.stdout + result.stderr
    (run_id,) = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("RUN:")]
    stored = mplogger.Api(root).run(run_id)
    assert [row["good"] for row in stored.history() if "good" in row] == list(range(6))
    assert stored.state == "finished"


# ``PROCESS_CASES``: faults of the processes and the store around a run (a write refused, a
# worker or the manager killed, the store deleted, a second writer, children). Each script
# asserts what must hold and prints OK; the test adds that it exited 0 in time (no hang).

PROCESS_CASES = {
    "commit-fails-file-too-large": ("""
        import resource, signal, sqlite3, sys, mplogger
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing
        root, other = sys.argv[1], sys.argv[2]
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, resource.RLIM_INFINITY))
        run = mplogger.init(dir=root, settings={"shutdown_timeout": 120})
        workers = list(mplogger.setup().worker_pids)
        try:
            for i in range(300000):
                run.log({"i": i, "pad": "x" * 50})
            run.flush()
            raise AssertionError("a store past its size limit took every row")
        except mplogger.RunError as exc:
            assert isinstance(exc.__cause__, sqlite3.OperationalError), repr(exc.__cause__)
            assert "were not stored" in str(exc), str(exc)
        second = mplogger.init(dir=other, reinit="create_new")
        second.log({"y": 1})
        second.finish()
        assert mplogger.Api(other).run(second.id).summary == {"y": 1}
        assert list(mplogger.setup().worker_pids) == workers, "a worker was lost"
        try:
            run.finish()
        except mplogger.RunError:
            pass  # the rest of the losses are reported here
        stored = mplogger.Api(root).run(run.id)
        assert stored.rows == len(stored.history()) > 0, (stored.rows, len(stored.history()))
        assert stored.state == "finished", stored.state
        print("OK")
    """, ("fork", "spawn")),
    "last-worker-killed": ("""
        import os, signal, sys, mplogger
        from conftest import wait_for
        root = sys.argv[1]
        run = mplogger.init(dir=root, settings={"workers": 1})
        run.log({"x": 1}); run.flush()
        victim = mplogger.setup().worker_pids[0]
        os.kill(victim, signal.SIGKILL)
        try:
            for i in range(100):
                run.log({"x": i}); run.flush()
            raise AssertionError("the run went on without its worker")
        except (mplogger.RunError, mplogger.ManagerError) as exc:
            text = str(exc) + str(exc.__cause__ or "")
            assert "SIGKILL" in text and str(victim) in text, text
        wait_for(lambda: mplogger.Api(root).run(run.id).state == "crashed", 10, "the run marked crashed")
        for n in range(2):
            again = mplogger.init(dir=root, reinit=True)
            again.log({"y": n}); again.finish()
            assert mplogger.Api(root).run(again.id).summary == {"y": n}
        print("OK")
    """, ("fork", "spawn")),
    "worker-killed-while-writing-blocks": ("""
        import os, signal, sys, mplogger
        from conftest import wait_for
        root = sys.argv[1]
        run = mplogger.init(dir=root, settings={"workers": 1})
        run.log({"x": 0.0}); run.flush()
        victim = mplogger.setup().worker_pids[0]
        try:
            for i in range(1, 200000):
                run.log({"x": float(i), "y": i})
                if i == 60000:
                    os.kill(victim, signal.SIGKILL)  # the worker is busy: blocks in memory and on their way
            run.flush()
            raise AssertionError("the run went on without its worker")
        except (mplogger.RunError, mplogger.ManagerError):
            pass
        wait_for(lambda: mplogger.Api(root).run(run.id).state == "crashed", 10, "the run marked crashed")
        stored = mplogger.Api(root).run(run.id)
        history = stored.history()
        assert stored.rows == len(history) >= 1, (stored.rows, len(history))
        assert [row["x"] for row in history] == [float(i) for i in range(len(history))]
        assert [row["_step"] for row in stored.history(keys=["y"])] == list(range(1, len(history)))
        assert all(f.ok for f in mplogger.Api(root).doctor(repair=False)), mplogger.Api(root).doctor(repair=False)
        print("OK")
    """, ("fork",)),
    "every-worker-killed": ("""
        import os, signal, sys, mplogger
        from conftest import wait_for
        root = sys.argv[1]
        runs = [mplogger.init(dir=root, reinit="create_new", settings={"workers": 2}) for _ in range(2)]
        for run in runs:
            run.log({"x": 1}); run.flush()
        for pid in mplogger.setup().worker_pids:
            os.kill(pid, signal.SIGKILL)
        for run in runs:
            wait_for(lambda: mplogger.Api(root).run(run.id).state == "crashed", 10, "runs marked crashed")
        fresh = mplogger.init(dir=root, reinit="create_new")
        fresh.log({"y": 2}); fresh.finish()
        assert mplogger.Api(root).run(fresh.id).summary == {"y": 2}
        print("OK")
    """, ("fork",)),
    "store-deleted-under-a-live-manager": ("""
        import shutil, sys, mplogger
        root = sys.argv[1]
        run = mplogger.init(dir=root)
        run.log({"x": 1}); run.flush()
        shutil.rmtree(root)
        try:
            run.log({"x": 2}); run.flush()
            run.finish()
            raise AssertionError("rows went into a deleted store without a word")
        except mplogger.RunError as exc:
            assert "deleted" in str(exc), str(exc)
        fresh = mplogger.init(dir=root, reinit=True)
        fresh.log({"y": 3}); fresh.finish()
        stored = mplogger.Api(root).run(fresh.id)
        assert stored.state == "finished" and stored.summary == {"y": 3}
        print("OK")
    """, ("fork",)),
    "resume-of-a-run-live-elsewhere": ("""
        import subprocess, sys, mplogger
        root = sys.argv[1]
        import os
        release = os.path.abspath("release")
        code = "; ".join(["import os, sys, time, mplogger", "run = mplogger.init(dir=sys.argv[1], id='shared1')",
                          "run.log({'a': 1}); run.flush()", "print('READY', flush=True)",
                          "deadline = time.monotonic() + 60",
                          "exec('while not os.path.exists(sys.argv[2]) and time.monotonic() < deadline: "
                          "time.sleep(0.02)')",  # poll, bounded: a failed case never leaves it behind
                          "run.log({'a': 2}); run.finish()"])
        # Released by a file, not by closing its stdin: a manager forked later holds a copy of that pipe.
        holder = subprocess.Popen([sys.executable, "-c", code, root, release], stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout.readline().strip() == "READY"
            try:
                mplogger.init(dir=root, id="shared1", resume="allow")
                raise AssertionError("a run live in another process was resumed")
            except ValueError as exc:
                assert f"process {holder.pid}" in str(exc), str(exc)
        finally:
            open(release, "w").close()
        assert holder.wait(60) == 0
        run = mplogger.init(dir=root, id="shared1", resume="allow")
        run.log({"a": 3}); run.finish()
        stored = mplogger.Api(root).run("shared1")
        assert [r["a"] for r in stored.history()] == [1, 2, 3] and stored.rows == 3
        print("OK")
    """, ("fork",)),
    "parent-rows-before-a-child-process": ("""
        import multiprocessing, sys, mplogger
        def child(run):
            run.log({"who": "child"})
        if __name__ == "__main__":
            root, method = sys.argv[1], sys.argv[2]
            run = mplogger.init(dir=root)
            for i in range(5):
                run.log({"who": "parent", "i": i})
            worker = multiprocessing.get_context(method).Process(target=child, args=(run,))
            worker.start(); worker.join(60)
            assert worker.exitcode == 0
            run.finish()
            rows = mplogger.Api(root).run(run.id).history()
            assert [r["who"] for r in rows] == ["parent"] * 5 + ["child"], rows
            assert rows[-1]["_step"] == 4, rows[-1]
            print("OK")
    """, ("fork", "spawn")),
    "parent-rows-before-a-pool": ("""
        import multiprocessing, sys, mplogger
        def task(run, n):
            run.log({"task": n})
        if __name__ == "__main__":
            root, method = sys.argv[1], sys.argv[2]
            run = mplogger.init(dir=root)
            for i in range(3):
                run.log({"i": i})
            with multiprocessing.get_context(method).Pool(2) as pool:
                pool.starmap(task, [(run, n) for n in range(4)])
            run.finish()
            rows = mplogger.Api(root).run(run.id).history()
            assert [r.get("i") for r in rows[:3]] == [0, 1, 2], rows
            assert sorted(r["task"] for r in rows[3:]) == [0, 1, 2, 3], rows
            assert {r["_step"] for r in rows[3:]} == {2}, rows
            print("OK")
    """, ("fork", "spawn")),
    "fork-from-a-signal-handler-while-logging": ("""
        import os, signal, sys, time, mplogger
        root = sys.argv[1]
        run = mplogger.init(dir=root, settings={"batch_size": 1, "system_interval": 0, "console": "off"})
        forks = []
        def handler(signum, frame):  # may run inside log()'s own send, holding the run's lock
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            os.waitpid(pid, 0)
            forks.append(pid)
        signal.signal(signal.SIGALRM, handler)
        signal.setitimer(signal.ITIMER_REAL, 0.003, 0.003)
        logged = 0
        while len(forks) < 300:
            run.log({"x": logged}); logged += 1
        signal.setitimer(signal.ITIMER_REAL, 0)
        run.finish()
        assert [r["x"] for r in mplogger.Api(root).run(run.id).history()] == list(range(logged))
        print("OK")
    """, ("fork",)),
    "fork-while-the-store-stalls": ("""
        import os, signal, sys, threading, time, mplogger
        root = sys.argv[1]
        run = mplogger.init(dir=root, settings={"system_interval": 0, "console": "off", "shutdown_timeout": 600,
                                                "inflight_rows": 2000, "batch_size": 512})
        run.log({"x": 0}); run.flush()
        worker = mplogger.setup().worker_pids[0]
        os.kill(worker, signal.SIGSTOP)
        def logger():
            for i in range(10**7):
                run.log({"x": i, "pad": "y" * 200})
        threading.Thread(target=logger, daemon=True).start()
        held = 0
        while held < 20:  # until the logging thread is blocked in its send (back-pressure)
            held = held + 1 if run._sender.lock.locked() else 0
            time.sleep(0.01)  # poll
        pid = os.fork()  # must not wait for the stalled store (600 s)
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        os.kill(worker, signal.SIGCONT)
        print("OK", flush=True)
        os._exit(0)
    """, ("fork",)),
    "a-pipe-opened-before-init-is-not-held-by-the-manager": ("""
        import subprocess, sys, mplogger
        root = sys.argv[1]
        reader = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
        run = mplogger.init(dir=root)  # a forked manager gets a copy of every fd, reader's stdin too
        run.log({"x": 1})
        reader.stdin.close()
        assert reader.wait(30) == 0  # it sees the end of its input while the manager lives
        run.finish()
        print("OK")
    """, ("fork", "spawn")),
    "killed-manager-leaves-no-pipe-folder": ("""
        import os, signal, sys, mplogger
        root = sys.argv[1]
        run = mplogger.init(dir=root)
        folder = os.path.dirname(mplogger._user._session.current().client.attach_path)
        assert os.path.isdir(folder)
        os.kill(mplogger.setup().pid, signal.SIGKILL)
        try:
            run.log({"x": 1}); run.flush()
            raise AssertionError("the dead manager went unnoticed")
        except mplogger.ManagerError:
            pass
        mplogger.teardown()
        assert not os.path.exists(folder), os.listdir(folder)
        print("OK")
    """, ("fork",)),
}


def _fault_cases():
    for name, (body, methods) in PROCESS_CASES.items():
        for method in methods:
            yield pytest.param(body, method, id=f"{name}-{method}")


@pytest.mark.parametrize("body, start_method", list(_fault_cases()))
def test_a_process_fault_ends_in_a_clear_error_and_a_right_state(tmp_path, body, start_method):
    path = tmp_path / "case.py"
    path.write_text(textwrap.dedent(body))
    mark = f"MPLOGGER_FAULT_CASE={uuid.uuid4().hex}"
    env = script_env(MPLOGGER_START_METHOD=start_method, MPLOGGER_FAULT_CASE=mark.split("=")[1])
    env["PYTHONPATH"] += os.pathsep + str(TESTS)  # conftest.wait_for
    result = subprocess.run([sys.executable, str(path), str(tmp_path / "store"), start_method],
                            capture_output=True, text=True, timeout=90, env=env, cwd=tmp_path)
    assert result.returncode == 0 and "OK" in result.stdout, result.stdout[-2000:] + result.stderr[-4000:]
    wait_for(lambda: not processes_with(mark), 20, "the case's manager and workers to exit")


def test_a_stale_pipe_folder_of_a_dead_manager_is_removed_when_a_manager_starts(root, tmp_path):
    import shutil
    import tempfile

    import time

    stale, starting = tempfile.mkdtemp(prefix="mplogger-"), tempfile.mkdtemp(prefix="mplogger-")
    for folder in (stale, starting):
        os.mkfifo(os.path.join(folder, "in.fifo"), 0o600)  # no reader: its manager is gone (or starting)
        open(os.path.join(folder, "finished-abc"), "w").close()
    old = time.time() - 600
    os.utime(stale, (old, old))
    run = mplogger.init(dir=root)
    live = os.path.dirname(mplogger._user._session.current().client.attach_path)
    assert not os.path.exists(stale)
    assert os.path.exists(starting)  # too young to tell from a manager that has not opened it yet
    shutil.rmtree(starting)
    assert os.path.exists(live)
    run.finish()
