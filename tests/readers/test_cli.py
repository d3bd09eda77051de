"""The ``mplogger`` command, run as users run it: the installed console script, in a subprocess."""

from __future__ import annotations

import csv
import json
import math
import os
import pty
import queue
import re
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import List

import pytest

import mplogger
from mplogger._readers import _cli
from conftest import on_a_terminal, script_env, wait_for

SCRIPT = Path(sys.executable).parent / "mplogger"


def cli(root: str, *args: str, timeout: float = 60, **popen: object) -> subprocess.CompletedProcess:
    """The console script with ``--dir root``; a hang fails the test."""
    assert SCRIPT.exists(), f"the console script is not installed next to {sys.executable}"
    return subprocess.run([str(SCRIPT), *args, "--dir", root], capture_output=True, text=True,
                          timeout=timeout, env=script_env(), **popen)


def make_runs(root: str) -> List[mplogger.Run]:
    """Three finished runs: two of a sweep in project 'vision', one in 'text'."""
    made = []
    for name, project, lr, tags in (("a", "vision", 0.1, ["sweep"]), ("b", "vision", 0.01, ["sweep", "best"]),
                                    ("c", "text", 0.01, [])):
        run = mplogger.init(dir=root, project=project, name=name, group="g1" if project == "vision" else None,
                            config={"lr": lr, "model": {"depth": 4}}, tags=tags)
        for step in range(30):
            run.log({"loss": 1.0 / (step + 1) / lr, "acc": step / 30, "opt": {"lr": lr}})
        run.finish()
        made.append(run)
    return made


@pytest.fixture
def runs(root):
    return make_runs(root)


# --- entry points and help ---------------------------------------------------------------------
def test_every_command_has_its_docstring_as_help(root):
    top = subprocess.run([str(SCRIPT), "--help"], capture_output=True, text=True, timeout=30)
    assert top.returncode == 0
    for name, (function, _) in _cli._COMMANDS.items():
        assert name in top.stdout
        sub = cli(root, name, "--help")
        assert sub.returncode == 0, sub.stderr
        first_words = " ".join(function.__doc__.split())[:40]
        assert first_words in " ".join(sub.stdout.split()), (name, sub.stdout)
    assert set(_cli._COMMANDS) == {"ls", "show", "history", "tail", "compare", "report", "rm", "doctor", "export", "run",
                                   "artifacts"}
    for group, subcommands in _cli._SUBCOMMANDS.items():
        for name, (function, _) in subcommands.items():
            sub = cli(root, group, name, "--help")
            assert sub.returncode == 0, sub.stderr
            assert " ".join(function.__doc__.split())[:40] in " ".join(sub.stdout.split()), (group, name, sub.stdout)
    assert set(_cli._SUBCOMMANDS) == {"artifacts"} and set(_cli._SUBCOMMANDS["artifacts"]) == {"ls", "show", "get"}


def test_python_dash_m_is_the_same_command(root, runs):
    result = subprocess.run([sys.executable, "-m", "mplogger", "ls", "--json", "--dir", root],
                            capture_output=True, text=True, timeout=60, env=script_env())
    assert result.returncode == 0, result.stderr
    assert {r["id"] for r in json.loads(result.stdout)} == {r.id for r in runs}


def test_a_missing_store_is_one_clear_line(tmp_path):
    result = cli(str(tmp_path / "nothing"), "ls")
    assert result.returncode == 1
    assert result.stderr.strip() == (f"mplogger: error: no mplogger store at {str(tmp_path / 'nothing')!r} "
                                     "(there is no such folder)")


def test_a_folder_without_a_store_yet_lists_no_runs(tmp_path):
    listed = cli(str(tmp_path), "ls")
    store = tmp_path / "mplogger-runs"  # where init(dir=tmp_path) would make it
    assert (listed.returncode, listed.stdout, listed.stderr) == (0, "", f"no runs in {store}\n")
    assert json.loads(cli(str(tmp_path), "ls", "--json").stdout) == []
    assert os.listdir(tmp_path) == [], "a reader created the store"


# --- ls ------------------------------------------------------------------------------------------
def test_ls_lists_runs_newest_first_with_summary_columns(root, runs):
    result = cli(root, "ls")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["id", "project", "name", "state", "started", "duration", "steps", "loss", "acc", "opt.lr"]
    assert [line.split()[0] for line in lines[1:]] == [r.id for r in reversed(runs)]
    assert all(" finished " in line and " 30 " in line for line in lines[1:])


@pytest.mark.parametrize("options, names", [
    (["--project", "vision"], {"a", "b"}),
    (["--group", "g1", "--tag", "best"], {"b"}),
    (["--tag", "sweep"], {"a", "b"}),
    (["--where", "config.lr<0.05"], {"b", "c"}),
    (["--where", "config.lr=0.01", "--where", "project=text"], {"c"}),
    (["--where", "name~^[ab]$"], {"a", "b"}),
    (["--where", "summary.acc>=0.9", "-p", "vision"], {"a", "b"}),
    (["--state", "crashed"], set()),
])
def test_ls_selects_runs(root, runs, options, names):
    result = cli(root, "ls", "--json", *options)
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert {r["name"] for r in listed} == names
    for entry in listed:
        assert entry["state"] == "finished" and entry["rows"] == 30 and entry["steps"] == 30


@pytest.mark.parametrize("where, message", [
    ("colour=red", "unknown filter field 'colour'"),
    ("summary.acc", "cannot read --where 'summary.acc'"),
])
def test_ls_bad_where_is_a_clear_error(root, runs, where, message):
    result = cli(root, "ls", "--where", where)
    assert result.returncode == 1
    assert result.stderr.startswith("mplogger: error: ") and message in result.stderr
    assert "Traceback" not in result.stderr


# --- show, compare -------------------------------------------------------------------------------
def test_show_prints_fields_config_summary_metadata_and_files(root, runs):
    run = runs[1]
    wait_for(lambda: "requirements.txt" in mplogger.Api(root).run(run.id).files(), 30, "the run's environment")
    result = cli(root, "show", run.id[:5])
    assert result.returncode == 0, result.stderr
    text = result.stdout
    for expected in (f"id         {run.id}", "name       b", "state      finished", "tags       [sweep, best]",
                     "config:", "  lr           0.01", "  model.depth  4", "summary:", "metadata:",
                     "files:", "requirements.txt"):
        assert expected in text, (expected, text)
    data = json.loads(cli(root, "show", run.id, "--json").stdout)
    assert data["config"] == {"lr": 0.01, "model": {"depth": 4}}
    assert data["summary"]["acc"] == 29 / 30 and data["summary"]["opt"] == {"lr": 0.01}
    assert "requirements.txt" in data["files"]


def test_an_unknown_run_names_the_closest_ids(root, runs):
    near = runs[0].id[:-1] + ("x" if runs[0].id[-1] != "x" else "y")
    result = cli(root, "show", near)
    assert result.returncode == 1
    assert f"no run {near!r}" in result.stderr and runs[0].id in result.stderr
    assert "Traceback" not in result.stderr


def test_compare_shows_config_differences_and_summaries_side_by_side(root, runs):
    a, b = runs[0], runs[1]
    result = cli(root, "compare", a.id, b.id)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "config: 1 keys differ, 1 the same"
    assert lines[2].split() == ["lr", "0.1", "0.01"]
    assert not any(line.startswith("model.depth") for line in lines[:lines.index("summary")])
    assert any(line.split() == ["acc", "0.966667", "0.966667"] for line in lines)
    data = json.loads(cli(root, "compare", a.id, b.id, "--json").stdout)
    assert data["config"] == {"lr": [0.1, 0.01]} and data["config_same"] == 1
    assert data["summary"]["loss"] == [pytest.approx(1 / 30 / 0.1), pytest.approx(1 / 30 / 0.01)]


# --- history -------------------------------------------------------------------------------------
@pytest.fixture
def odd_run(root):
    """Rows with nested keys, NaN, infinities, a string and a key that comes and goes."""
    run = mplogger.init(dir=root, project="odd")
    for step in range(2000):
        row = {"loss": float("nan") if step == 3 else step * 0.5, "nested": {"x": step, "y": -step}}
        if step % 2:
            row["sometimes"] = "odd"
        if step == 5:
            row["big"] = float("inf")
        run.log(row)
    run.finish()
    return run


def test_history_csv_is_complete_and_reads_back(root, odd_run, tmp_path):
    out = tmp_path / "h.csv"
    result = cli(root, "history", odd_run.id, "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert f"wrote 2000 rows of run {odd_run.id}" in result.stderr
    with open(out, newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert list(rows[0])[:3] == ["_step", "_runtime", "_timestamp"]
    assert set(rows[0]) == {"_step", "_runtime", "_timestamp", "loss", "nested.x", "nested.y", "sometimes", "big"}
    assert [int(r["_step"]) for r in rows] == list(range(2000))
    assert [int(r["nested.x"]) for r in rows] == list(range(2000))
    assert math.isnan(float(rows[3]["loss"])) and float(rows[5]["big"]) == math.inf and rows[4]["big"] == ""
    assert [r["sometimes"] for r in rows[:4]] == ["", "odd", "", "odd"]


def test_history_jsonl_to_stdout_keeps_nesting_and_non_finite_values(root, odd_run):
    result = cli(root, "history", odd_run.id, "--format", "jsonl")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 2000
    assert rows[7] == {"_step": 7, "_runtime": rows[7]["_runtime"], "_timestamp": rows[7]["_timestamp"],
                       "loss": 3.5, "nested": {"x": 7, "y": -7}, "sometimes": "odd"}
    assert math.isnan(rows[3]["loss"]) and rows[5]["big"] == math.inf


def test_history_keys_keep_only_rows_with_them(root, odd_run):
    result = cli(root, "history", odd_run.id, "--keys", "sometimes,nested.x", "-f", "jsonl")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["nested.x"] for r in rows] == list(range(1, 2000, 2))


def test_history_parquet_reads_back_with_pandas(root, odd_run, tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    out = tmp_path / "h.parquet"
    result = cli(root, "history", odd_run.id, "-o", str(out))
    assert result.returncode == 0, result.stderr
    frame = pd.read_parquet(out)
    assert len(frame) == 2000 and list(frame.columns[:3]) == ["_step", "_runtime", "_timestamp"]
    assert frame["nested.y"].tolist() == [-s for s in range(2000)]
    assert math.isnan(frame["loss"][3]) and frame["big"][5] == math.inf


def test_parquet_to_stdout_is_refused(root, odd_run):
    result = cli(root, "history", odd_run.id, "--format", "parquet")
    assert result.returncode == 1 and "give a file to write it to (-o FILE)" in result.stderr


def test_a_closed_pipe_ends_history_quietly(root, odd_run):
    result = subprocess.run(f"'{SCRIPT}' history {odd_run.id} --dir '{root}' | head -n 2", shell=True,
                            capture_output=True, text=True, timeout=60, env=script_env())
    assert result.stdout.splitlines()[0].startswith("_step,")
    assert "Traceback" not in result.stderr and "Error" not in result.stderr


# --- tail ----------------------------------------------------------------------------------------
LIVE = """
    import os, sys, time, mplogger
    root, go = sys.argv[1], sys.argv[2]
    resume = dict(id=sys.argv[3], resume="allow") if len(sys.argv) > 3 else {}
    run = mplogger.init(dir=root, project="live", **resume)
    print(run.id, flush=True)
    for step in range(5):
        run.log({"loss": step})
    run.flush()
    deadline = time.monotonic() + 60
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.01)  # poll for the test's go-ahead
    for step in range(5, 10):
        run.log({"loss": step})
    run.finish()
"""


class Lines:
    """A process's output lines, read by a thread, waited on with a bound."""

    def __init__(self, stream) -> None:
        self.lines: "queue.Queue[str]" = queue.Queue()
        self.seen: List[str] = []
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.put(line.rstrip("\n"))

    def until(self, predicate, timeout: float = 30) -> str:
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no line matched within {timeout} s; saw {self.seen}") from None
            self.seen.append(line)
            if predicate(line):
                return line


def _start_live(script, root, tmp_path, resume: str = ""):
    go = tmp_path / "go"
    rows = 5 + (len(mplogger.Api(root).run(resume).history()) if resume else 0)  # before it logs more
    live = subprocess.Popen([sys.executable, str(script(LIVE)), root, str(go), *([resume] if resume else [])],
                            stdout=subprocess.PIPE, text=True, env=script_env())
    run_id = live.stdout.readline().strip()
    assert run_id, "the live script did not start a run"
    wait_for(lambda: len(mplogger.Api(root).run(run_id).history()) == rows, 30, "the first five rows")
    return live, run_id, go


def test_tail_follows_a_live_run_until_it_finishes(script, root, tmp_path):
    live, run_id, go = _start_live(script, root, tmp_path)
    tail = subprocess.Popen([str(SCRIPT), "tail", run_id, "--dir", root, "--interval", "0.05"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=script_env())
    try:
        out = Lines(tail.stdout)
        out.until(lambda line: line.startswith("step      4"))
        go.touch()
        out.until(lambda line: line.startswith("step      9"))
        assert tail.wait(30) == 0
        steps = [int(line.split()[1]) for line in out.seen]
        assert steps == list(range(10))
        assert "loss=9" in out.seen[-1]
        assert f"run {run_id} is finished" in tail.stderr.read()
    finally:
        for proc in (tail, live):
            proc.kill()
            proc.wait()


def test_ctrl_c_stops_tail_cleanly(script, root, tmp_path):
    live, run_id, go = _start_live(script, root, tmp_path)
    tail = subprocess.Popen([str(SCRIPT), "tail", run_id, "--dir", root, "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=script_env())
    try:
        out = Lines(tail.stdout)
        last = out.until(lambda line: json.loads(line)["_step"] == 4)
        assert json.loads(last) == {"_step": 4, "_runtime": json.loads(last)["_runtime"], "loss": 4}
        tail.send_signal(signal.SIGINT)
        assert tail.wait(30) == 0
        assert "Traceback" not in tail.stderr.read()
        assert mplogger.Api(root).run(run_id).state == "running"
    finally:
        go.touch()
        assert live.wait(60) == 0
        tail.kill()
        tail.wait()
    assert mplogger.Api(root).run(run_id).state == "finished"


# --- rm ------------------------------------------------------------------------------------------
def _stored_everywhere(root: str, run_id: str) -> dict:
    conn = sqlite3.connect(os.path.join(root, "mplogger.db"))
    try:
        return {table: conn.execute(f"SELECT count(*) FROM {table} WHERE {column} = ?", (run_id,)).fetchone()[0]
                for table, column in (("runs", "id"), ("history", "run_id"), ("output", "run_id"))}
    finally:
        conn.close()


def test_rm_without_a_terminal_needs_yes(root, runs):
    run = runs[0]
    result = cli(root, "rm", run.id, stdin=subprocess.DEVNULL)
    assert result.returncode == 1 and "pass --yes" in result.stderr
    assert _stored_everywhere(root, run.id)["history"] == 30
    result = cli(root, "rm", run.id, "--yes")
    assert result.returncode == 0, result.stderr
    assert _stored_everywhere(root, run.id) == {"runs": 0, "history": 0, "output": 0}
    assert not os.path.exists(run.dir)
    assert {r.id for r in mplogger.Api(root).runs()} == {runs[1].id, runs[2].id}


@pytest.mark.parametrize("answer, deleted", [(b"y\n", True), (b"n\n", False), (b"\n", False)])
def test_rm_asks_on_a_terminal(root, runs, answer, deleted):
    run = runs[2]
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen([str(SCRIPT), "rm", run.id, "--dir", root], stdin=follower,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=script_env())
        os.write(leader, answer)
        assert proc.wait(60) == 0
        assert f"delete run {run.id} 'c' (text, finished, 30 rows)? [y/N]" in proc.stdout.read().decode()
    finally:
        os.close(leader)
        os.close(follower)
    assert (_stored_everywhere(root, run.id)["runs"] == 0) == deleted


@pytest.mark.parametrize("resumed", [False, True])
def test_rm_deletes_nothing_while_one_of_its_runs_is_live_unless_forced(script, root, runs, tmp_path, resumed):
    if resumed:  # a resumed run keeps its old creation time: its process is younger than the run
        old = mplogger.init(dir=root, project="live", reinit="create_new")
        old.log({"loss": -1})
        old.finish()
    live, run_id, go = _start_live(script, root, tmp_path, resume=old.id if resumed else "")
    try:
        result = cli(root, "rm", runs[0].id, run_id, "--yes")
        assert result.returncode == 1
        assert result.stderr == f"mplogger: error: nothing deleted: {run_id} still running (finish it first, or --force)\n"
        assert _stored_everywhere(root, run_id)["runs"] == 1 and _stored_everywhere(root, runs[0].id)["runs"] == 1
        doctor = cli(root, "doctor", "--dry-run")
        assert doctor.returncode == 0 and f"run {run_id}: running, process {live.pid} alive" in doctor.stdout
    finally:
        go.touch()
        assert live.wait(60) == 0
    assert mplogger.Api(root).run(run_id).state == "finished"


# --- doctor --------------------------------------------------------------------------------------
ALL_KILLED = """
    import os, signal, sys, mplogger
    run = mplogger.init(dir=sys.argv[1], project="doomed")
    for step in range(100):
        run.log({"loss": step})
    run.flush()
    print(run.id, flush=True)
    client = mplogger._user._session.current().client
    ours = [client.process.pid, *client.worker_pids]
    for pid in ours:  # stopped first, so none of them can mark the run before all are gone
        os.kill(pid, signal.SIGSTOP)
    for pid in ours:
        os.kill(pid, signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_doctor_marks_runs_left_running_by_killed_processes_crashed(script, root, runs):
    proc = subprocess.run([sys.executable, str(script(ALL_KILLED)), root], capture_output=True, text=True,
                          timeout=60, env=script_env())
    assert proc.returncode == -signal.SIGKILL
    run_id = proc.stdout.strip()
    assert mplogger.Api(root).run(run_id).state == "running"

    dry = cli(root, "doctor", "--dry-run")
    assert dry.returncode == 1
    assert f"PROBLEM  running    run {run_id}: marked running, but its process" in dry.stdout
    assert mplogger.Api(root).run(run_id).state == "running"

    fixed = cli(root, "doctor")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "marked crashed" in fixed.stdout
    stored = mplogger.Api(root).run(run_id)
    assert stored.state == "crashed"
    assert [r["loss"] for r in stored.history()] == list(range(100))
    assert stored.rows == 100 and stored.last_step == 99
    assert [f for f in json.loads(cli(root, "doctor", "--json").stdout) if not f["ok"]] == []


def test_tail_of_a_run_whose_processes_all_died_ends_with_a_hint(script, root):
    proc = subprocess.run([sys.executable, str(script(ALL_KILLED)), root], capture_output=True, text=True,
                          timeout=60, env=script_env())
    run_id = proc.stdout.strip()
    result = cli(root, "tail", run_id, "--interval", "0.05", timeout=60)
    assert result.returncode == 1
    assert [int(line.split()[1]) for line in result.stdout.splitlines()] == list(range(90, 100))
    assert "is still marked running, but its process" in result.stderr and "mplogger doctor" in result.stderr


def test_doctor_reports_a_damaged_database(root, runs):
    mplogger.teardown()
    path = os.path.join(root, "mplogger.db")
    with open(path, "r+b") as db:
        db.seek(4096)
        db.write(b"\xff" * 8192)
    result = cli(root, "doctor")
    assert result.returncode == 1
    assert "PROBLEM  integrity" in result.stdout
    assert "Traceback" not in result.stderr


# --- report and export ---------------------------------------------------------------------------
def test_report_writes_one_html_file_of_the_selected_runs(root, runs, tmp_path):
    out = tmp_path / "report.html"
    result = cli(root, "report", "--project", "vision", "-o", str(out))
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    assert text.lstrip().lower().startswith("<!doctype html")
    assert runs[0].id in text and runs[1].id in text and runs[2].id not in text
    assert "<svg" in text and "loss" in text
    assert f"wrote a report of 2 run(s) to {out}" in result.stderr


def test_report_of_nothing_is_a_clear_error(root, runs, tmp_path):
    result = cli(root, "report", "--project", "nope", "-o", str(tmp_path / "r.html"))
    assert result.returncode == 1 and "no runs match" in result.stderr
    assert not (tmp_path / "r.html").exists()


def test_export_to_tensorboard_needs_an_output_folder(root, runs):
    result = cli(root, "export", "--to", "tensorboard", runs[0].id)
    assert result.returncode == 1 and "needs -o DIR" in result.stderr


def test_export_to_tensorboard_reads_back_in_tensorboard(root, runs, tmp_path):
    pytest.importorskip("tensorboardX")
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    out = tmp_path / "tb"
    result = cli(root, "export", "--to", "tensorboard", runs[0].id, runs[1].id, "-o", str(out))
    assert result.returncode == 0, result.stderr
    targets = dict(line.split(" -> ") for line in result.stdout.splitlines())
    assert set(targets) == {runs[0].id, runs[1].id}
    for run in runs[:2]:
        events = accumulator.EventAccumulator(targets[run.id])
        events.Reload()
        scalars = events.Scalars("loss")
        assert [s.step for s in scalars] == list(range(30))
        assert [s.value for s in scalars] == pytest.approx([1.0 / (i + 1) / run.config["lr"] for i in range(30)])


def test_export_to_mlflow_reads_back_in_mlflow(root, runs, tmp_path):
    tracking = pytest.importorskip("mlflow.tracking")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = cli(root, "export", "--to", "mlflow", "--project", "vision", "--tracking-uri", uri, timeout=180)
    assert result.returncode == 0, result.stderr
    targets = dict(line.split(" -> ") for line in result.stdout.splitlines())
    client = tracking.MlflowClient(uri)
    for run in runs[:2]:
        exported = client.get_run(targets[run.id])
        assert exported.data.params["lr"] == str(run.config["lr"])
        history = client.get_metric_history(targets[run.id], "loss")
        assert [m.step for m in history] == list(range(30))
        assert [m.value for m in history] == pytest.approx([1.0 / (i + 1) / run.config["lr"] for i in range(30)])



BUSY_WRITER = """
    import os, sys, time, mplogger
    run = mplogger.init(dir=sys.argv[1], project="busy")
    print(run.id, flush=True)
    step = 0
    while step % 100 or not os.path.exists(sys.argv[2]):
        run.log({"loss": step, "acc": step * 2})
        step += 1
        if step % 100 == 0:
            time.sleep(0.005)  # bursts, not one endless burst: the run stays a few 10k rows long
    run.finish()
    print(step, flush=True)
"""


def test_maintenance_and_reads_beside_a_run_being_written(script, root, runs, tmp_path):
    go = tmp_path / "go"
    writer = subprocess.Popen([sys.executable, str(script(BUSY_WRITER)), root, str(go)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=script_env())
    try:
        run_id = writer.stdout.readline().strip()
        wait_for(lambda: mplogger.Api(root).run(run_id).last_step is not None, 30, "the first committed rows")
        doctor = cli(root, "doctor")
        assert doctor.returncode == 0, doctor.stdout + doctor.stderr
        assert f"ok       running    run {run_id}: running, process {writer.pid} alive" in doctor.stdout
        assert cli(root, "rm", runs[0].id, "--yes").returncode == 0
        exported = cli(root, "history", run_id, "-f", "jsonl")
        assert exported.returncode == 0, exported.stderr
        rows = [json.loads(line) for line in exported.stdout.splitlines()]
        assert [r["_step"] for r in rows] == list(range(len(rows))), "a read mid-run is a consistent prefix"
        assert cli(root, "report", run_id, "-o", str(tmp_path / "live.html")).returncode == 0
        assert mplogger.Api(root).run(run_id).state == "running"
        go.touch()
        assert writer.wait(120) == 0, writer.stderr.read()
        logged = int(writer.stdout.read())
    finally:
        go.touch()
        writer.kill()
        writer.wait()
    stored = mplogger.Api(root).run(run_id)
    assert stored.state == "finished" and stored.rows == logged > len(rows)
    assert [r["loss"] for r in stored.scan_history(keys=["loss"])] == list(range(logged))


def test_exporting_a_run_twice_to_mlflow_is_refused_in_one_line(root, runs, tmp_path):
    pytest.importorskip("mlflow.tracking")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert cli(root, "export", "--to", "mlflow", runs[2].id, "--tracking-uri", uri, timeout=180).returncode == 0
    again = cli(root, "export", "--to", "mlflow", runs[2].id, "--tracking-uri", uri, timeout=180)
    assert again.returncode == 1
    assert again.stderr.startswith("mplogger: error: ") and runs[2].id in again.stderr
    assert "Traceback" not in again.stderr


def test_ls_quiet_prints_ids_for_scripts(root, runs):
    result = cli(root, "ls", "-q", "--tag", "sweep", "-n", "1")
    assert result.returncode == 0 and result.stdout == f"{runs[1].id}\n"


def test_long_operations_draw_progress_on_a_terminal_only(root, odd_run, tmp_path):
    text = on_a_terminal([str(SCRIPT), "history", odd_run.id, "-o", str(tmp_path / "h.csv"), "--dir", root],
                         stream="stderr")
    assert f"\r{odd_run.id} rows: 2000/2000 (100%)" in text
    assert f"wrote 2000 rows of run {odd_run.id}" in text
    piped = cli(root, "history", odd_run.id, "-o", str(tmp_path / "h2.csv"))
    assert "\r" not in piped.stderr and "rows:" not in piped.stderr


# --- found by review -----------------------------------------------------------------------------
NEW_KEYS = """
    import os, sys, time, mplogger
    run = mplogger.init(dir=sys.argv[1], project="growing")
    print(run.id, flush=True)
    step = 0
    while (step % 50 or not os.path.exists(sys.argv[2])) and step < 6000:
        run.log({"loss": step, f"k{step // 20}": 1})  # a new key every 20 rows
        step += 1
        if step % 50 == 0:
            time.sleep(0.005)  # bursts: the run grows while it is read, not without bound
    deadline = time.monotonic() + 60
    while not os.path.exists(sys.argv[2]) and time.monotonic() < deadline:
        time.sleep(0.01)  # poll: at most 6000 rows (300 columns), so each export stays quick
    run.finish()
"""


def test_history_csv_of_a_run_gaining_keys_while_it_is_read(script, root, tmp_path):
    go = tmp_path / "go"
    writer = subprocess.Popen([sys.executable, str(script(NEW_KEYS)), root, str(go)], stdout=subprocess.PIPE,
                              text=True, env=script_env())
    try:
        run_id = writer.stdout.readline().strip()
        wait_for(lambda: (mplogger.Api(root).run(run_id).last_step or 0) > 100, 30, "rows")
        for _ in range(3):
            result = cli(root, "history", run_id, "-o", str(tmp_path / "live.csv"))
            assert result.returncode == 0, result.stderr
            with open(tmp_path / "live.csv", newline="") as stream:
                rows = list(csv.DictReader(stream))
            assert [int(r["loss"]) for r in rows] == list(range(len(rows)))
            assert all(rows[i][f"k{i // 20}"] == "1" for i in range(len(rows)))
    finally:
        go.touch()
        assert writer.wait(60) == 0


@pytest.fixture
def odd_names(root):
    """A run with NaN in its summary, terminal escapes in its name and notes, media and a slashed project."""
    run = mplogger.init(dir=root, project="team/proj", name="evil\x1b[31mred", notes="\x1b]0;pwned\x07",
                        reinit="create_new")
    run.log({"loss": float("nan"), "hist": mplogger.Histogram([1, 2, 3]), "ok": True})
    run.log({"loss": 1.0})
    run.finish()
    return run


def test_json_output_is_strict_json(root, odd_names):
    def strict(text):
        return json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))

    listed = strict(cli(root, "ls", "--json").stdout)
    assert listed[0]["summary"]["loss"] == 1.0
    shown = strict(cli(root, "show", odd_names.id, "--json").stdout)
    assert shown["name"] == "evil\x1b[31mred"
    tailed = [strict(line) for line in cli(root, "tail", odd_names.id, "--json").stdout.splitlines()]
    assert tailed[0]["loss"] is None and tailed[1]["loss"] == 1.0


def test_control_characters_in_names_are_shown_escaped(root, odd_names):
    for args in (("ls",), ("show", odd_names.id)):
        out = cli(root, *args).stdout
        assert "\x1b" not in out and "\x07" not in out
        assert "evil\\x1b[31mred" in out
    assert "\\x1b]0;pwned\\x07" in cli(root, "show", odd_names.id).stdout


def test_a_project_name_with_a_slash_can_be_selected(root, odd_names):
    assert [r["id"] for r in json.loads(cli(root, "ls", "--json", "--project", "team/proj").stdout)] == [odd_names.id]
    assert [r.id for r in mplogger.Api(root).runs(project="team/proj")] == [odd_names.id]


def test_media_are_one_column_not_their_fields(root, odd_names, tmp_path):
    cli(root, "history", odd_names.id, "-o", str(tmp_path / "m.csv"))
    with open(tmp_path / "m.csv", newline="") as stream:
        header = next(csv.reader(stream))
    assert "hist" in header and not any(column.startswith("hist.") for column in header)
    assert "hist" not in cli(root, "ls").stdout.splitlines()[0]


def test_parquet_keeps_a_bool_column_with_gaps_as_bools(root, odd_names, tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    cli(root, "history", odd_names.id, "-o", str(tmp_path / "m.parquet"))
    assert pd.read_parquet(tmp_path / "m.parquet")["ok"].tolist() == [True, None]


@pytest.mark.parametrize("args, code, message", [
    (("ls", "-n", "-1"), 2, "expected a whole number, 0 or more, not '-1'"),
    (("history", "RUN", "-o", "out.json"), 1, "cannot tell the format of 'out.json' from its extension"),
    (("history", "RUN", "-o", "/nonexistent/x.csv"), 1, "cannot write /nonexistent/x.csv: there is no folder /nonexistent"),
    (("compare", "RUN", "RUN"), 1, "compare needs two or more different runs"),
    (("ls", "--where", "name~["), 1, "is not a regular expression"),
])
def test_more_bad_command_lines_are_one_clear_line(root, runs, args, code, message):
    result = cli(root, *[runs[0].id if a == "RUN" else a for a in args])
    assert result.returncode == code and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_a_file_that_is_not_a_store_is_one_clear_line(tmp_path):
    (tmp_path / "mplogger.db").write_bytes(b"junk" * 1000)
    result = cli(str(tmp_path), "ls")
    assert result.returncode == 1 and result.stderr == "mplogger: error: file is not a database\n"


def test_sigterm_during_an_export_leaves_no_temporary_file(root, tmp_path):
    run = mplogger.init(dir=root, project="big")
    for step in range(100_000):
        run.log({"loss": step, "acc": step / 2})
    run.finish()
    out = tmp_path / "h.csv"
    proc = subprocess.Popen([str(SCRIPT), "history", run.id, "-o", str(out), "--dir", root],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=script_env())
    try:
        wait_for(lambda: any(p.name.startswith("h.csv.part-") for p in tmp_path.iterdir()) or proc.poll() is not None,
                 60, "the export to start writing")
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
    finally:
        proc.kill()
        proc.wait()
    assert code in (0, 128 + signal.SIGTERM)
    assert [p.name for p in tmp_path.iterdir() if ".part-" in p.name] == []


def test_export_goes_run_by_run_and_can_skip_what_is_there(root, runs, tmp_path):
    pytest.importorskip("tensorboardX")
    out = str(tmp_path / "tb")
    assert cli(root, "export", "--to", "tensorboard", runs[1].id, "-o", out).returncode == 0
    again = cli(root, "export", "--to", "tensorboard", runs[0].id, runs[1].id, runs[2].id, "-o", out)
    assert again.returncode == 1
    assert f"exported before it (kept): {runs[0].id}" in again.stderr and "--skip-exported" in again.stderr
    assert again.stdout.startswith(f"{runs[0].id} -> ")
    skipping = cli(root, "export", "--to", "tensorboard", *[r.id for r in runs], "-o", out, "--skip-exported")
    assert skipping.returncode == 0, skipping.stderr
    assert [line.split(" -> ")[0] for line in skipping.stdout.splitlines()] == [runs[2].id]
    assert f"{runs[0].id} skipped: already exported" in skipping.stderr


# --- artifacts -----------------------------------------------------------------------------------
def _log_artifact(run: mplogger.Run, tmp_path: Path, name: str, files: dict, type: str = "dataset",
                  aliases: tuple = (), metadata: object = None) -> mplogger.Artifact:
    """Log a version of ``name`` holding ``files`` (name -> text) with ``run``; returns it once stored."""
    source = tmp_path / f"src-{name}-{len(list(tmp_path.iterdir()))}"
    source.mkdir()
    artifact = mplogger.Artifact(name, type, metadata=metadata)
    for file_name, text in files.items():
        (source / file_name).write_text(text)
        artifact.add_file(str(source / file_name))
    run.log_artifact(artifact, aliases=list(aliases))
    return artifact.wait(timeout=60)


@pytest.fixture
def lineage(root, tmp_path):
    """Run ``maker`` logs dataset v0 (best) and v1, and model v0; run ``user`` uses dataset:best."""
    maker = mplogger.init(dir=root, project="vision", name="maker", reinit="create_new")
    _log_artifact(maker, tmp_path, "dataset", {"train.csv": "a,b\n1,2\n"}, aliases=("best",),
                  metadata={"rows": 1, "source": "unit test"})
    _log_artifact(maker, tmp_path, "dataset", {"train.csv": "a,b\n1,2\n3,4\n", "notes.txt": "second"})
    _log_artifact(maker, tmp_path, "model", {"weights.bin": "w" * 2000}, type="model")
    maker.finish()
    user = mplogger.init(dir=root, project="vision", name="user", reinit="create_new")
    assert user.use_artifact("dataset:best").version == "v0"
    user.finish()
    return maker, user


def test_artifacts_ls_lists_every_version(root, lineage):
    maker, _ = lineage
    result = cli(root, "artifacts", "ls")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["artifact", "type", "size", "aliases", "logged", "by", "created"]
    assert [line.split()[:3] for line in lines[1:]] == [
        ["vision/dataset:v1", "dataset", "18"], ["vision/dataset:v0", "dataset", "8"],
        ["vision/model:v0", "model", "2.0"]]
    assert lines[1].split()[4] == "latest" and lines[2].split()[4] == "best"
    assert all(maker.id in line for line in lines[1:])
    listed = json.loads(cli(root, "artifacts", "ls", "--json", "--type", "dataset").stdout)
    assert [(a["name"], a["version"], a["aliases"], a["size"], a["logged_by"]) for a in listed] == [
        ("dataset", "v1", ["latest"], 18, maker.id), ("dataset", "v0", ["best"], 8, maker.id)]
    assert listed[1]["metadata"] == {"rows": 1, "source": "unit test"}
    assert json.loads(cli(root, "artifacts", "--dir", root, "ls", "--json", "--project", "text").stdout) == []
    empty = cli(root, "artifacts", "ls", "--project", "text")
    assert (empty.returncode, empty.stdout) == (0, "") and "no artifacts in" in empty.stderr


def test_artifacts_show_prints_fields_metadata_files_and_lineage(root, lineage):
    maker, user = lineage
    result = cli(root, "artifacts", "show", "dataset:best")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    fields = dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in text[:text.index("\n\n")].splitlines()[1:])
    assert fields == {"artifact": "vision/dataset:v0", "type": "dataset", "version": "v0", "aliases": "[best]",
                      "size": "8 B", "files": "1", "digest": mplogger.Api(root).artifact("dataset:v0").digest,
                      "created": fields["created"], "logged by": f"{maker.id} (maker, finished)"}
    for expected in ("metadata:\n  rows    1\n  source  unit test\n", "files:\n  name ", "used by:\n",
                     f"  {user.id} (user, finished)"):
        assert expected in text, (expected, text)
    (file_line,) = [line for line in text.splitlines() if "train.csv" in line]
    digest = mplogger.Api(root).artifact("dataset:v0").get_entry("train.csv").digest
    assert file_line.split() == ["train.csv", "8", "B", digest[:12]]
    shown = json.loads(cli(root, "artifacts", "show", "vision/dataset:v1", "--json").stdout)
    assert [f["name"] for f in shown["files"]] == ["notes.txt", "train.csv"]
    assert shown["used_by"] == [] and shown["logged_by"] == maker.id and shown["aliases"] == ["latest"]
    assert "used by: (none)" in cli(root, "artifacts", "show", "model").stdout


def test_artifacts_get_downloads_a_version(root, lineage, tmp_path):
    out = tmp_path / "out"
    result = cli(root, "artifacts", "get", "dataset:v1", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{out}\n" and "wrote vision/dataset:v1 (2 files, 18 B)" in result.stderr
    assert (out / "train.csv").read_text() == "a,b\n1,2\n3,4\n" and (out / "notes.txt").read_text() == "second"
    default = cli(root, "artifacts", "get", "model", cwd=str(tmp_path))
    assert default.returncode == 0, default.stderr
    assert (tmp_path / "artifacts" / "model:v0" / "weights.bin").read_text() == "w" * 2000


@pytest.mark.parametrize("args, message", [
    (("show", "bad name!"), "artifact name 'bad name!' is not valid"),
    (("show", "nope"), "no artifact 'nope' in "),
    (("show", "datasets"), "did you mean dataset?"),
    (("get", "dataset:v9", "-o", "OUT"), "artifact 'dataset' has no version or alias 'v9' in "),
    (("show", "dataset:no/pe"), "artifact alias 'no/pe' is not valid"),
    (("get", "a/b/c/d"), "name it 'name', 'name:alias' or 'project/name:alias'"),
    (("show", "other/dataset"), "no artifact 'dataset' in "),
])
def test_bad_artifact_names_are_one_clear_line(root, lineage, tmp_path, args, message):
    result = cli(root, "artifacts", *[str(tmp_path / "out") if a == "OUT" else a for a in args])
    assert result.returncode == 1, result.stdout
    assert result.stderr.startswith("mplogger: error: ") and message in result.stderr, result.stderr
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_hostile_artifact_text_is_shown_escaped_and_a_hostile_file_name_is_refused(root, tmp_path):
    run = mplogger.init(dir=root, project="p", reinit="create_new")
    _log_artifact(run, tmp_path, "data", {"a.txt": "A"}, metadata={"note\x1b[2J": "\x1b]0;pwned\x07"})
    run.finish()
    conn = sqlite3.connect(os.path.join(root, "mplogger.db"), isolation_level=None)
    try:  # what someone else's store may hold
        conn.execute("UPDATE artifacts SET description = ?", ("desc\x1b[31m",))
        conn.execute("INSERT INTO artifact_aliases (project, name, alias, artifact_id) "
                     "SELECT project, name, ?, id FROM artifacts", ("evil\x1b[5m",))
        conn.execute("UPDATE artifact_files SET path = ?", ("../\x1b[1mescape.txt",))
    finally:
        conn.close()
    for args in (("ls",), ("show", "data")):
        result = cli(root, "artifacts", *args)
        assert result.returncode == 0, result.stderr
        assert "\x1b" not in result.stdout and "\x07" not in result.stdout
        assert "evil\\x1b[5m" in result.stdout
    shown = cli(root, "artifacts", "show", "data").stdout
    for escaped in ("note\\x1b[2J", "\\x1b]0;pwned\\x07", "desc\\x1b[31m", "../\\x1b[1mescape.txt"):
        assert escaped in shown, (escaped, shown)
    raw = cli(root, "artifacts", "show", "data", "--json").stdout
    assert "\x1b" not in raw and json.loads(raw)["description"] == "desc\x1b[31m"
    out = tmp_path / "deep" / "out"
    got = cli(root, "artifacts", "get", "data", "-o", str(out))
    assert got.returncode == 1 and "is not valid" in got.stderr and "\x1b" not in got.stderr
    assert "Traceback" not in got.stderr
    assert not (tmp_path / "deep").exists()


def test_show_lists_what_a_run_logged_and_used(root, lineage):
    maker, user = lineage
    made = cli(root, "show", maker.id).stdout
    section = made[made.index("artifacts:"):].splitlines()
    assert [line.split()[:3] for line in section[2:]] == [
        ["logged", "dataset:v0", "dataset"], ["logged", "dataset:v1", "dataset"], ["logged", "model:v0", "model"]]
    assert section[2].split()[3:] == ["best"] and section[3].split()[3:] == ["latest"]
    used = cli(root, "show", user.id).stdout
    assert [line.split()[:2] for line in used[used.index("artifacts:"):].splitlines()[2:]] == [["used", "dataset:v0"]]
    data = json.loads(cli(root, "show", user.id, "--json").stdout)
    assert data["used_artifacts"] == [{"project": "vision", "name": "dataset", "version": "v0", "type": "dataset",
                                       "aliases": ["best"]}]
    assert data["logged_artifacts"] == []
    assert "artifacts: (none)" in cli(root, "show", mplogger.init(dir=root, project="q", reinit="create_new").id).stdout


def test_rm_keeps_a_version_another_run_used_and_deletes_the_others_files(root, lineage):
    maker, user = lineage
    api = mplogger.Api(root)
    kept_path = mplogger._store.object_path(root, api.artifact("dataset:v0").get_entry("train.csv").digest)
    gone = [mplogger._store.object_path(root, entry.digest)
            for spec in ("dataset:v1", "model:v0") for entry in api.artifact(spec).files()]
    assert all(os.path.isfile(path) for path in [kept_path, *gone])
    result = cli(root, "rm", maker.id, "--yes")
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [f"deleted {maker.id}", f"kept artifact dataset:v0 (used by run {user.id})"]
    assert os.path.isfile(kept_path) and not any(os.path.exists(path) for path in gone)
    api = mplogger.Api(root)
    assert [a.name for a in api.artifacts()] == ["dataset:v0"]
    kept = api.artifact("dataset:best")
    assert kept.logged_by() is None and [run.id for run in kept.used_by()] == [user.id]
    assert kept.aliases == ["latest", "best"], "the newest version left is the latest again"
    assert (Path(kept.download(root=str(Path(root).parent / "dl"))) / "train.csv").read_text() == "a,b\n1,2\n"
    listed = cli(root, "artifacts", "ls").stdout.splitlines()
    assert len(listed) == 2 and listed[1].split()[6] == "-"
    assert cli(root, "doctor").returncode == 0
