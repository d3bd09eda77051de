"""A store someone else made is safe to open: ids never become paths that leave it, stored text never
drives the terminal, a read-only store reads, and a folder without a store yet is an empty one.

Hostile stores are real ones (made with ``mplogger.init/log/finish``) with rows planted through
``sqlite3``, as anyone with the file could.
"""

from __future__ import annotations

import io
import json
import os
import select
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, List

import pytest

import mplogger
from mplogger._readers import _admin, _cli
from mplogger import _store
from conftest import on_a_terminal, run_script, script_env

SCRIPT = Path(sys.executable).parent / "mplogger"
RAW = ("\x1b", "\x07", "\x9b", "\u202e")
NOBODY = 65534


# --- helpers ------------------------------------------------------------------------------------
def cli(root: str, *args: str) -> subprocess.CompletedProcess:
    """The console script with ``--dir root``; a hang fails the test."""
    return subprocess.run([str(SCRIPT), *args, "--dir", root], capture_output=True, text=True, timeout=60,
                          env=script_env(), stdin=subprocess.DEVNULL)


def sql(root: str, statement: str, *params: Any) -> list:
    conn = sqlite3.connect(os.path.join(root, "mplogger.db"), isolation_level=None)
    try:
        return conn.execute(statement, params).fetchall()
    finally:
        conn.close()


def real_run(root: str, **options: Any) -> mplogger.Run:
    """A finished run of five rows."""
    run = mplogger.init(dir=root, project="p", reinit="create_new", **options)
    for step in range(5):
        run.log({"loss": 1.0 / (step + 1)})
    run.finish()
    return run


def plant(root: str, run_id: str, name: str = "planted") -> None:
    """A run row (and one history row) with ``run_id``, as a hostile store would hold it."""
    sql(root, "INSERT INTO runs (id, project, name, state, created, updated, rows) "
              "VALUES (?, 'p', ?, 'finished', 1, 1, 1)", run_id, name)
    sql(root, "INSERT INTO history_v1 (run_id, seq, step, timestamp, runtime, data) VALUES (?, 1, 0, 1, 0, '{}')", run_id)


def assert_no_raw_controls(text: str) -> None:
    found = [char for char in RAW if char in text]
    assert not found, f"raw {found!r} reached the terminal: {text!r}"


def read_only_copy(source: str, parent: str) -> str:
    """``source`` copied to ``parent/store``, every file and folder without write permission."""
    target = os.path.join(parent, "store")
    shutil.copytree(source, target)
    for folder, names, files in os.walk(target):
        for name in files:
            os.chmod(os.path.join(folder, name), 0o444)
        os.chmod(folder, 0o555)
    return target


def as_reader_without_write_access(source: str, action: Callable[[str], Any]) -> Any:
    """``action(store)`` on a read-only copy of ``source``, in a child that cannot write it.

    Root ignores file modes, so when the tests run as root the child becomes nobody first.
    """
    mplogger.teardown()
    parent = tempfile.mkdtemp(prefix="mplogger-ro-")
    os.chmod(parent, 0o755)
    try:
        store = read_only_copy(source, parent)
        readable, writable = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: drop privileges, act, report as JSON, never return into pytest
            try:
                os.close(readable)
                if os.geteuid() == 0:
                    os.setgroups([])
                    os.setgid(NOBODY)
                    os.setuid(NOBODY)
                try:
                    result = {"value": action(store)}
                except BaseException as exc:
                    result = {"error": f"{type(exc).__name__}: {exc}"}
                os.write(writable, json.dumps(result).encode())
            finally:
                os._exit(0)
        os.close(writable)
        data = b""
        while True:
            ready, _, _ = select.select([readable], [], [], 60)
            if not ready:
                os.kill(pid, 9)
                raise AssertionError("the read-only reader did not answer within 60 s")
            chunk = os.read(readable, 65536)
            if not chunk:
                break
            data += chunk
        os.close(readable)
        os.waitpid(pid, 0)
        return json.loads(data)
    finally:
        for folder, _, _ in os.walk(parent):
            os.chmod(folder, 0o755)
        shutil.rmtree(parent)


def cli_in_process(*args: str) -> dict:
    """``mplogger ARGS`` in this process: its exit status, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    sys.stdout, sys.stderr = out, err
    try:
        code = _cli.main(list(args))
    finally:
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    return {"code": code, "out": out.getvalue(), "err": err.getvalue()}


# --- the id rule --------------------------------------------------------------------------------
@pytest.mark.parametrize("run_id", ["abcd1234", "My_Run-1.2", "_x", "x" * 128])
def test_the_id_rule_accepts_generated_and_usual_ids(run_id, root):
    assert _store.check_run_id(run_id, "test") == run_id
    assert _store.run_dir(root, run_id) == os.path.join(root, "runs", run_id)


@pytest.mark.parametrize("run_id", ["", ".", "..", "../../victim", "a/b", "a\\b", "/abs", ".hidden", "-rf",
                                    "x" * 129, "a b", "caf\u00e9", "red\x1b[31m", "nul\x00", 12345678, None])
def test_run_dir_refuses_an_id_that_is_not_a_folder_name(run_id, root):
    with pytest.raises(ValueError, match="is not a usable run id") as error:
        _store.run_dir(root, run_id)
    assert repr(run_id) in str(error.value)


@pytest.mark.parametrize("run_id", ["red\x1b[31m", ".hidden", "-rf", "x" * 129, "caf\u00e9"])
def test_init_refuses_an_id_that_is_not_a_folder_name(run_id, root):
    with pytest.raises(ValueError, match=r"init\(id=\.\.\.\): .* is not a usable run id .*folder name"):
        mplogger.init(dir=root, id=run_id)
    assert not os.path.exists(os.path.join(root, "runs")) or os.listdir(os.path.join(root, "runs")) == []


# --- ids from the store never become paths -------------------------------------------------------
def test_a_stored_run_with_a_path_for_an_id_is_skipped_and_its_victim_survives(root, tmp_path, capsys):
    real = real_run(root)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    plant(root, "../../victim")
    assert os.path.realpath(os.path.join(root, "runs", "../../victim")) == str(victim)

    api = mplogger.Api(root)
    assert [run.id for run in api.runs()] == [real.id]
    assert "'../../victim' is not a usable run id" in capsys.readouterr().err
    with pytest.raises(KeyError, match="no run 'victim'"):  # read as the wandb path entity/project/id
        api.run("../../victim")
    with pytest.raises(ValueError, match="'..' is not a usable run id"):
        api.run("..")
    with pytest.raises(ValueError, match="'../../victim' is not a usable run id"):
        _admin.delete_run(root, "../../victim")
    assert (victim / "precious.txt").read_text() == "keep me"
    assert sql(root, "SELECT count(*) FROM runs WHERE id = '../../victim'") == [(1,)]


def test_rm_dotdot_is_one_clear_line_and_deletes_nothing(root):
    real = real_run(root)
    plant(root, "..")
    result = cli(root, "rm", "--yes", "..")
    assert result.returncode == 1
    assert result.stderr.startswith("mplogger: error: ") and "'..' is not a usable run id" in result.stderr
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr
    assert os.path.isdir(real.dir) and os.path.exists(os.path.join(root, "mplogger.db"))
    assert [run.id for run in mplogger.Api(root).runs()] == [real.id]
    assert sql(root, "SELECT count(*) FROM runs") == [(2,)]


HOSTILE_RESUME = """
    import json, os, sys, mplogger
    from mplogger._user import _init_args
    root = sys.argv[1]
    record = _init_args.auto_resume_file(root)
    os.makedirs(os.path.dirname(record), exist_ok=True)
    with open(record, "w") as out:
        json.dump({"run_id": "../../victim"}, out)
    run = mplogger.init(dir=root, resume="auto")
    run.log({"x": 1})
    print("RUN", run.id, flush=True)
    run.finish()
"""


def test_resume_auto_ignores_a_stored_id_that_is_not_a_folder_name(script, root, tmp_path):
    result = run_script(script(HOSTILE_RESUME, "train.py"), root)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "victim").exists(), "the resume record's id became a folder outside the store"
    run_id = result.stdout.split("RUN ")[1].split()[0]
    assert run_id != "../../victim" and _store.is_run_id(run_id)
    assert "'../../victim' is not a usable run id" in result.stderr and "a new run starts" in result.stderr
    assert os.path.isfile(os.path.join(root, "runs", run_id, "output.log"))


# --- stored text never drives the terminal --------------------------------------------------------
NAME, CONFIG_KEY, SUMMARY_KEY, FILE_NAME = "evil\x1b[31mred\x9b", "\x1b[32mck", "\x1b]0;title\x07", "\x1b[2Jgone.txt"


@pytest.fixture
def hostile(root) -> List[mplogger.Run]:
    """Two runs whose name, config key, summary key and file name hold terminal escapes."""
    made = []
    for lr in (0.1, 0.01):
        run = mplogger.init(dir=root, project="p", name=NAME, config={CONFIG_KEY: lr}, reinit="create_new")
        run.log({SUMMARY_KEY: lr, "loss": lr})
        run.finish()
        os.makedirs(os.path.join(run.dir, "files"), exist_ok=True)
        Path(run.dir, "files", FILE_NAME).write_text("x")
        made.append(run)
    return made


def test_ls_escapes_summary_keys_in_its_header(root, hostile):
    result = cli(root, "ls")
    assert result.returncode == 0, result.stderr
    assert_no_raw_controls(result.stdout + result.stderr)
    assert "\\x1b]0;title\\x07" in result.stdout.splitlines()[0]


def test_show_escapes_keys_values_and_file_names(root, hostile):
    result = cli(root, "show", hostile[0].id)
    assert result.returncode == 0, result.stderr
    assert_no_raw_controls(result.stdout + result.stderr)
    for escaped in ("evil\\x1b[31mred\\x9b", "\\x1b[32mck", "\\x1b]0;title\\x07", "files/\\x1b[2Jgone.txt"):
        assert escaped in result.stdout, escaped


def test_compare_escapes_run_names_in_its_headers(root, hostile):
    result = cli(root, "compare", hostile[0].id, hostile[1].id)
    assert result.returncode == 0, result.stderr
    assert_no_raw_controls(result.stdout + result.stderr)
    assert f"evil\\x1b[31mred\\x9b ({hostile[0].id})" in result.stdout


def test_tail_escapes_the_name_in_its_banner(root, hostile):
    result = cli(root, "tail", hostile[0].id)
    assert result.returncode == 0, result.stderr
    assert_no_raw_controls(result.stdout + result.stderr)
    assert "evil\\x1b[31mred\\x9b" in result.stderr and "\\x1b]0;title\\x07=0.1" in result.stdout


def test_history_escapes_its_header_on_a_terminal_and_keeps_data_exact_in_a_pipe(root, hostile):
    shown = on_a_terminal([str(SCRIPT), "history", hostile[0].id, "--dir", root])
    assert_no_raw_controls(shown)
    assert "\\x1b]0;title\\x07" in shown.splitlines()[0]
    piped = cli(root, "history", hostile[0].id)
    assert piped.returncode == 0 and SUMMARY_KEY in piped.stdout.splitlines()[0]


def test_json_output_escapes_c1_and_bidi_controls_and_reads_back_exactly(root):
    name = "a\x9b31mb\u202ec\x7f"
    run = real_run(root, name=name)
    result = cli(root, "ls", "--json")
    assert result.returncode == 0, result.stderr
    assert_no_raw_controls(result.stdout)
    assert "\x7f" not in result.stdout and "\\u009b" in result.stdout
    assert [(r["id"], r["name"]) for r in json.loads(result.stdout)] == [(run.id, name)]


def test_an_unknown_run_error_never_quotes_a_hostile_stored_id_raw(root):
    real_run(root, id="zzzz0001")
    plant(root, "zzzz\x1b]0;pwned\x07")
    result = cli(root, "show", "zzzy")
    assert result.returncode == 1 and "no run 'zzzy'" in result.stderr
    assert_no_raw_controls(result.stderr)
    error = result.stderr.splitlines()[-1]
    assert error.startswith("mplogger: error: ") and "zzzz0001" in error and "pwned" not in error


def test_doctor_reports_hostile_ids_and_folder_names_escaped_and_keeps_them(root):
    real_run(root)
    plant(root, "\x1b[31mbad")
    stray = Path(root, "runs", "\x1b]0;stray\x07")
    stray.mkdir()
    result = cli(root, "doctor")
    assert result.returncode == 1, result.stdout
    assert_no_raw_controls(result.stdout + result.stderr)
    assert "'\\x1b[31mbad', which is not a usable run id" in result.stdout
    assert "'\\x1b]0;stray\\x07', which is not a run id (left as it is)" in result.stdout
    assert stray.is_dir() and sql(root, "SELECT count(*) FROM runs WHERE id = ?", "\x1b[31mbad") == [(1,)]
    assert_no_raw_controls(cli(root, "doctor", "--json").stdout)


# --- a read-only store reads ---------------------------------------------------------------------
def test_a_read_only_store_can_be_read(root):
    run = real_run(root)
    found = as_reader_without_write_access(root, lambda store: [
        [(r.id, r.rows, len(r.history())) for r in mplogger.Api(store).runs()],
        cli_in_process("ls", "-q", "--dir", store),
        cli_in_process("doctor", "--dry-run", "--dir", store),
    ])
    assert "error" not in found, found
    listed, ls, dry = found["value"]
    assert listed == [[run.id, 5, 5]]
    assert (ls["code"], ls["out"]) == (0, f"{run.id}\n"), ls
    assert dry["code"] == 0 and "store is healthy" in dry["out"], dry


def test_doctor_on_a_read_only_store_is_one_line_saying_so(root):
    real_run(root)
    found = as_reader_without_write_access(root, lambda store: cli_in_process("doctor", "--dir", store))
    result = found["value"]
    assert result["code"] == 1 and result["out"] == "", result
    assert result["err"].startswith("mplogger: error: the store at ") and "is read-only" in result["err"]
    assert len(result["err"].splitlines()) == 1


def test_a_read_only_store_with_a_pending_log_is_refused_clearly_not_misread(root, tmp_path):
    run = real_run(root)
    mplogger.teardown()
    copy = tmp_path / "copy"
    copy.mkdir()
    writer = sqlite3.connect(os.path.join(root, "mplogger.db"), isolation_level=None)
    try:
        writer.execute("PRAGMA wal_autocheckpoint=0")
        writer.execute("UPDATE runs SET name = 'renamed' WHERE id = ?", (run.id,))
        for name in ("mplogger.db", "mplogger.db-wal"):  # a copy of a live store, without its -shm
            shutil.copy(os.path.join(root, name), copy / name)
    finally:
        writer.close()
    assert (copy / "mplogger.db-wal").stat().st_size > 0
    found = as_reader_without_write_access(str(copy), lambda store: [r.name for r in mplogger.Api(store).runs()])
    assert found.get("error", "").startswith("PermissionError: cannot read the store at "), found
    assert "write-ahead log" in found["error"]


# --- a folder without a store yet ----------------------------------------------------------------
def test_a_folder_without_a_database_is_an_empty_store_until_a_run_arrives(root):
    os.makedirs(root)
    api = mplogger.Api(root)
    assert list(api.runs()) == []
    with pytest.raises(KeyError, match="no run 'abcd1234'"):
        api.run("abcd1234")
    assert [f.ok for f in api.doctor()] == [True]
    assert os.listdir(root) == [], "a reader wrote into the folder"
    run = real_run(root)
    assert [r.id for r in api.runs()] == [run.id]


def test_a_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no mplogger store at '.*nothing' \(there is no such folder\)"):
        mplogger.Api(str(tmp_path / "nothing")).runs()


# --- found by review: links out of the store, and columns that do not hold what they should ----
@pytest.mark.parametrize("linked", ["runs", "run folder"])
def test_a_symbolic_link_out_of_the_store_is_never_followed(root, tmp_path, linked):
    run = real_run(root, id="Documents")
    victim = tmp_path / "victim"
    (victim / "Documents").mkdir(parents=True)
    (victim / "Documents" / "thesis.tex").write_text("years of work")
    runs = Path(root) / "runs"
    if linked == "runs":
        shutil.rmtree(runs)
        os.symlink(victim, runs)
    else:
        shutil.rmtree(runs / run.id)
        os.symlink(victim / "Documents", runs / run.id)
    stored = mplogger.Api(root).run(run.id)
    with pytest.raises(ValueError, match="symbolic link"):
        stored.files()
    with pytest.raises(ValueError, match="symbolic link"):
        stored.delete()
    removed = cli(root, "rm", "--yes", run.id)
    assert removed.returncode == 1 and removed.stderr.startswith("mplogger: error: ")
    shown = cli(root, "show", run.id)
    assert "thesis.tex" not in shown.stdout and "Traceback" not in shown.stderr
    assert (victim / "Documents" / "thesis.tex").read_text() == "years of work"
    assert [r.id for r in mplogger.Api(root).runs()] == [run.id]  # nothing deleted from the store either


@pytest.mark.parametrize("column, value", [
    ("summary", "5"), ("config", "[1]"), ("metadata", "null"), ("tags", '"a"'), ("argv", "null"),
    ("created", "yesterday"), ("pid", "many"), ("name", b"\x00bytes"), ("rows", 1.5),
])
def test_a_row_whose_columns_are_not_what_they_should_be_is_skipped_not_a_traceback(root, column, value):
    good = real_run(root)
    real_run(root, id="odd1")
    sql(root, f"UPDATE runs SET {column} = ? WHERE id = 'odd1'", value)
    assert [r.id for r in mplogger.Api(root).runs()] == [good.id]
    for args in (("ls",), ("ls", "--json"), ("show", "odd1"), ("report", "-o", os.path.join(root, "r.html"))):
        result = cli(root, *args)
        assert "Traceback" not in result.stderr, (args, result.stderr)
        assert result.returncode in (0, 1), (args, result.stderr)
    shown = cli(root, "show", "odd1")
    assert shown.returncode == 1 and column in shown.stderr
