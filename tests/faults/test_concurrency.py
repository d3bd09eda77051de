"""Several processes on one store: writers log at once while a reader reads."""

from __future__ import annotations

import json
import subprocess
import sys

import mplogger

from conftest import script_env

WRITER = """
    import sys, mplogger
    run = mplogger.init(project="shared", name=sys.argv[2], dir=sys.argv[1])
    for i in range(int(sys.argv[3])):
        run.log({"i": i, "writer": sys.argv[2]})
    run.finish()
    print(run.id)
"""

READER = """
    import json, sys, time, mplogger
    api = mplogger.Api(sys.argv[1])
    seen, reads = {}, 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            runs = api.runs(project="shared")
        except FileNotFoundError:
            continue
        for run in runs:
            rows = len(run.history(keys=["i"]))
            assert rows >= seen.get(run.id, 0), "a reader saw rows disappear"
            seen[run.id] = rows
        reads += 1
        if len(runs) == int(sys.argv[2]) and all(r.state == "finished" for r in runs):
            break
    print(json.dumps({"reads": reads, "seen": seen}))
"""


def test_two_writers_and_a_reader_on_one_root(script, root):
    rows = 20000
    env = script_env()
    writers = [
        subprocess.Popen([sys.executable, str(script(WRITER, "writer.py")), root, name, str(rows)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for name in ("w1", "w2")
    ]
    reader = subprocess.Popen([sys.executable, str(script(READER, "reader.py")), root, "2"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    outputs = [w.communicate(timeout=120) for w in writers]
    for writer, (out, err) in zip(writers, outputs):
        assert writer.returncode == 0, err
        assert "locked" not in err
    out, err = reader.communicate(timeout=120)
    assert reader.returncode == 0, err
    report = json.loads(out)
    assert report["reads"] >= 1
    api = mplogger.Api(root)
    for (run_id, _), name in zip(outputs, ("w1", "w2")):
        stored = api.run(run_id.strip())
        assert stored.state == "finished" and stored.name == name
        assert [r["i"] for r in stored.history()] == list(range(rows))
        assert report["seen"][stored.id] == rows


def test_eight_writers_and_a_polling_reader(script, root):
    """8 scripts x 20 000 rows into one root: every row lands, no 'database is locked'."""
    rows, names = 20000, [f"w{k}" for k in range(8)]
    env = script_env()
    writer = script(WRITER, "writer.py")
    writers = [subprocess.Popen([sys.executable, str(writer), root, name, str(rows)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
               for name in names]
    reader = subprocess.Popen([sys.executable, str(script(READER, "reader.py")), root, "8"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    outputs = [w.communicate(timeout=300) for w in writers]
    for process, (out, err) in zip(writers, outputs):
        assert process.returncode == 0, err
        assert "locked" not in err
    out, err = reader.communicate(timeout=300)
    assert reader.returncode == 0, err
    report = json.loads(out)
    assert report["reads"] > 1
    api = mplogger.Api(root)
    stored = {r.name: r for r in api.runs(project="shared")}
    assert sorted(stored) == names
    for run in stored.values():
        assert run.state == "finished" and run.rows == rows
        assert [r["i"] for r in run.history(keys=["i"])] == list(range(rows))
        assert report["seen"][run.id] == rows


def test_runs_on_two_roots_in_one_process_do_not_deadlock_the_workers(tmp_path):
    """Each worker holds runs of both roots: a worker never holds two stores' write locks."""
    roots = [str(tmp_path / "a"), str(tmp_path / "b")]
    mplogger.setup({"workers": 2, "shutdown_timeout": 30})
    runs = [mplogger.init(dir=roots[k], reinit="create_new") for k in (0, 1, 1, 0)]
    for i in range(5000):
        for run in runs:
            run.log({"i": i, "pad": "x" * 100})
    for run in runs:
        run.finish()
    for run in runs:
        assert mplogger.Api(run.root).run(run.id).rows == 5000


def test_two_threads_flushing_at_once_both_get_their_replies(root):
    import threading

    mplogger.setup({"shutdown_timeout": 10})
    runs = [mplogger.init(dir=root, reinit="create_new") for _ in range(2)]
    errors: list = []

    def work(run):
        try:
            for i in range(200):
                run.log({"i": i})
                run.flush()
        except Exception as exc:  # recorded for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(run,)) for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    for run in runs:
        run.finish()
        assert mplogger.Api(root).run(run.id).rows == 200
