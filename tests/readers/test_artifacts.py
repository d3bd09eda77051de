"""Artifacts: versions by content, aliases, lineage, references, downloads, bad input and faults.

Everything runs through the real manager and worker into a real store, and is read back through
``mplogger.Api`` (or the store's tables with plain SQL, where what is on disk is the point).
"""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile

import pytest

import mplogger
from mplogger import _store
from conftest import START_METHODS, process_gone, script_env, wait_for, write_script


def _write(path, text) -> str:
    with open(path, "w") as out:
        out.write(text)
    return str(path)


def _objects(root) -> list:
    return list(_store.objects(root))


def _read(folder, name) -> str:
    with open(os.path.join(folder, name)) as file:
        return file.read()


def _dataset(tmp_path, text: str, name: str = "dataset", **kwargs) -> mplogger.Artifact:
    artifact = mplogger.Artifact(name, "dataset", **kwargs)
    artifact.add_file(_write(tmp_path / "train.csv", text))
    return artifact


# --- versions, content and aliases --------------------------------------------------------------
@pytest.mark.parametrize("start_method", START_METHODS)
def test_a_logged_file_is_stored_as_it_was_when_logged(tmp_path, root, start_method):
    run = mplogger.init(project="p", dir=root, settings={"start_method": start_method})
    artifact = _dataset(tmp_path, "a,b\n1,2\n", description="first rows", metadata={"rows": 1})
    logged = run.log_artifact(artifact, aliases=["raw"])
    _write(tmp_path / "train.csv", "overwritten by the training loop\n")  # after log_artifact returned
    assert logged is artifact and artifact.wait() is artifact
    assert (artifact.name, artifact.version, artifact.type) == ("dataset:v0", "v0", "dataset")
    assert artifact.aliases == ["latest", "raw"]
    assert artifact.size == len("a,b\n1,2\n") and len(artifact.digest) == 64
    run.finish()

    stored = mplogger.Api(root).artifact("dataset:raw")
    assert (stored.name, stored.project, stored.description, stored.metadata) == ("dataset:v0", "p", "first rows",
                                                                                {"rows": 1})
    folder = stored.download(str(tmp_path / "out"))
    assert _read(folder, "train.csv") == "a,b\n1,2\n"
    assert [(entry.path, entry.size) for entry in stored.files()] == [("train.csv", 8)]
    assert stored.get_entry("train.csv").digest == hashlib.sha256(b"a,b\n1,2\n").hexdigest()


def test_a_new_version_only_when_the_content_changed(tmp_path, root):
    run = mplogger.init(project="p", dir=root)
    first = run.log_artifact(_dataset(tmp_path, "one")).wait()
    second = run.log_artifact(_dataset(tmp_path, "two"), aliases=["best"]).wait()
    again = run.log_artifact(_dataset(tmp_path, "two"), aliases=["again"]).wait()
    run.finish()
    assert (first.version, second.version, again.version) == ("v0", "v1", "v1")
    assert again.digest == second.digest != first.digest
    versions = mplogger.Api(root).artifact_versions("dataset")
    assert [(v.version, v.aliases) for v in versions] == [("v1", ["latest", "again", "best"]), ("v0", [])]


def test_an_alias_moves_and_latest_is_always_the_newest(tmp_path, root):
    run = mplogger.init(project="p", dir=root)
    run.log_artifact(_dataset(tmp_path, "one"), aliases=["best"])
    run.log_artifact(_dataset(tmp_path, "two"))
    run.log_artifact(_dataset(tmp_path, "three"), aliases=["best"])
    run.log_artifact(_dataset(tmp_path, "one"), aliases=["old"])  # the content of v0: no new version
    run.finish()
    conn = sqlite3.connect(_store.db_path(root))
    aliases = conn.execute("SELECT a.version, l.alias FROM artifact_aliases l JOIN artifacts a ON a.id = l.artifact_id "
                           "ORDER BY l.alias").fetchall()
    assert aliases == [(2, "best"), (2, "latest"), (0, "old")]  # each alias on one version only
    api = mplogger.Api(root)
    assert api.artifact("dataset").version == "v2" and api.artifact("dataset:best").version == "v2"
    assert api.artifact("dataset:old").version == "v0" and api.artifact("dataset:v1").aliases == []


def test_files_are_stored_once_by_content(tmp_path, root):
    shared = _write(tmp_path / "vocab.txt", "a b c")
    runs = []
    for text in ("weights-1", "weights-2"):
        run = mplogger.init(project="p", dir=root)
        model = mplogger.Artifact("model", "model")
        model.add_file(shared)
        model.add_file(_write(tmp_path / "weights.bin", text))
        run.log_artifact(model)
        same = mplogger.Artifact("copy", "model")
        same.add_file(shared)
        run.log_artifact(same)
        run.finish()
        runs.append(run.id)
    assert len(_objects(root)) == 3  # vocab once, two weights: four versions, five files
    api = mplogger.Api(root)
    assert [a.version for a in api.artifact_versions("model")] == ["v1", "v0"]
    assert [a.version for a in api.artifact_versions("copy")] == ["v0"]  # the second run's is the first's
    assert [a.name for a in api.run(runs[1]).logged_artifacts()] == ["model:v1", "copy:v0"]
    assert api.artifact("copy:v0").logged_by().id == runs[0]
    assert not os.listdir(os.path.join(_store.artifacts_dir(root), "staging"))


def test_folders_new_files_and_immutable_files(tmp_path, root):
    folder = tmp_path / "ckpt"
    (folder / "sub").mkdir(parents=True)
    _write(folder / "config.json", "{}")
    _write(folder / "sub" / "shard.bin", "x" * 1000)
    big = _write(tmp_path / "frozen.bin", "frozen")
    run = mplogger.init(project="p", dir=root)
    artifact = mplogger.Artifact("bundle", "model")
    artifact.add_dir(str(folder), name="checkpoint")
    with artifact.new_file("notes/readme.md") as notes:
        notes.write("written into the artifact")
    with artifact.new_file("raw.bin", mode="wb") as raw:
        raw.write(b"\x00\xff")
    artifact.add_file(big, policy="immutable")
    run.log_artifact(artifact).wait()
    run.finish()
    stored = mplogger.Api(root).artifact("bundle:latest")
    assert sorted(entry.path for entry in stored.files()) == [
        "checkpoint/config.json", "checkpoint/sub/shard.bin", "frozen.bin", "notes/readme.md", "raw.bin"]
    out = stored.download(str(tmp_path / "out"))
    assert _read(out, "checkpoint/sub/shard.bin") == "x" * 1000 and _read(out, "frozen.bin") == "frozen"
    with open(os.path.join(out, "raw.bin"), "rb") as raw:
        assert raw.read() == b"\x00\xff"
    stored.verify(out)
    path = stored.get_entry("notes/readme.md").download(str(tmp_path / "one"))
    assert _read(os.path.dirname(path), "readme.md") == "written into the artifact"


def test_log_artifact_of_a_path_and_log_model(tmp_path, root, monkeypatch):
    monkeypatch.chdir(tmp_path)  # use_model downloads under ./artifacts, as wandb does
    run = mplogger.init(project="p", dir=root)
    run.log_artifact(_write(tmp_path / "table.csv", "x"), type="dataset").wait()
    model = run.log_model(_write(tmp_path / "model.pt", "weights"), aliases=["final"]).wait()
    assert model.type == "model" and model.aliases == ["latest", "final"]
    folder = run.use_model(model.name)
    assert _read(folder, "model.pt") == "weights"
    assert os.path.abspath(folder) == str(tmp_path / "artifacts" / f"{model.name}")
    run.finish()
    names = sorted(a.name for a in mplogger.Api(root).artifacts())
    assert names == [f"run-{run.id}-model.pt:v0", "table.csv:v0"]


# --- using versions: lineage ---------------------------------------------------------------------
def test_use_artifact_finds_versions_and_records_lineage(tmp_path, root):
    writer = mplogger.init(project="p", dir=root)
    writer.log_artifact(_dataset(tmp_path, "one"))
    writer.log_artifact(_dataset(tmp_path, "two"))
    writer.finish()
    reader = mplogger.init(project="p", dir=root)
    latest = reader.use_artifact("dataset:latest")
    first = mplogger.use_artifact("p/dataset:v0", type="dataset")
    assert _read(latest.download(str(tmp_path / "latest")), "train.csv") == "two"
    assert _read(first.download(str(tmp_path / "v0")), "train.csv") == "one"
    with pytest.raises(KeyError, match=r"no artifact dataset:v7 in project 'p'; it has v0, v1"):
        reader.use_artifact("dataset:v7")
    with pytest.raises(ValueError, match="of type 'dataset', not 'model'"):
        reader.use_artifact("dataset:latest", type="model")
    reader.log({"still": 1})  # a refused use costs the run nothing
    reader.finish()
    api = mplogger.Api(root)
    assert [a.name for a in api.run(reader.id).used_artifacts()] == ["dataset:v1", "dataset:v0"]
    assert [a.name for a in api.run(writer.id).logged_artifacts()] == ["dataset:v0", "dataset:v1"]
    assert [r.id for r in api.artifact("dataset:v0").used_by()] == [reader.id]
    assert api.artifact("dataset:v1").logged_by().id == writer.id
    assert api.run(reader.id).history()[0]["still"] == 1


def test_use_artifact_of_an_artifact_object_logs_it_first(tmp_path, root):
    run = mplogger.init(project="p", dir=root)
    used = run.use_artifact(_dataset(tmp_path, "inline"))
    run.finish()
    assert used.name == "dataset:v0"
    stored = mplogger.Api(root).run(run.id)
    assert [a.name for a in stored.logged_artifacts()] == [a.name for a in stored.used_artifacts()] == ["dataset:v0"]


def test_the_same_name_in_two_projects_must_be_told_apart(tmp_path, root):
    for project in ("a", "b"):
        run = mplogger.init(project=project, dir=root)
        run.log_artifact(_dataset(tmp_path, project))
        run.finish()
    api = mplogger.Api(root)
    with pytest.raises(ValueError, match="in several projects .* name it as 'a/dataset:latest'"):
        api.artifact("dataset")
    assert _read(api.artifact("b/dataset").download(str(tmp_path / "b")), "train.csv") == "b"
    assert _read(api.artifact("entity/a/dataset:v0").download(str(tmp_path / "a")), "train.csv") == "a"


def test_a_name_keeps_its_type(tmp_path, root):
    run = mplogger.init(project="p", dir=root)
    run.log_artifact(_dataset(tmp_path, "one")).wait()
    wrong = mplogger.Artifact("dataset", "model")
    wrong.add_file(_write(tmp_path / "w.bin", "w"))
    run.log_artifact(wrong)
    with pytest.raises(ValueError, match="holds 'dataset' versions") as raised:
        wrong.wait()
    assert "artifact 'dataset' was not stored" in "".join(getattr(raised.value, "__notes__", []))
    run.log({"after": 1})  # the error was raised once, where it was waited for
    run.finish()
    assert [a.version for a in mplogger.Api(root).artifact_versions("dataset")] == ["v0"]
    assert mplogger.Api(root).run(run.id).history()[0]["after"] == 1


def test_a_failure_nobody_waits_for_is_raised_at_the_next_call_and_loses_nothing_else(tmp_path, root):
    run = mplogger.init(project="p", dir=root)
    artifact = mplogger.Artifact("frozen", "model")
    artifact.add_file(_write(tmp_path / "gone.bin", "soon gone"), policy="immutable")
    os.unlink(tmp_path / "gone.bin")  # broken promise: the worker cannot copy it
    run.log_artifact(artifact)
    with pytest.raises(mplogger.RunError) as raised:
        run.flush()
    assert isinstance(raised.value.__cause__, FileNotFoundError)
    assert "artifact 'frozen' was not stored" in "".join(getattr(raised.value.__cause__, "__notes__", []))
    for step in range(5):
        run.log({"x": step})
    run.finish()
    stored = mplogger.Api(root).run(run.id)
    assert [row["x"] for row in stored.history()] == list(range(5)) and stored.state == "finished"
    assert mplogger.Api(root).artifacts() == []


def test_finish_stores_what_was_logged_without_waiting(tmp_path, root):
    run = mplogger.init(project="p", dir=root)
    for index in range(20):
        run.log({"loss": 1.0 / (index + 1)})
        if index % 5 == 4:
            run.log_artifact(_dataset(tmp_path, f"checkpoint {index}", name="ckpt"), aliases=[f"step-{index}"])
    run.finish()
    versions = mplogger.Api(root).artifact_versions("ckpt")
    assert [(v.version, v.aliases) for v in versions] == [
        ("v3", ["latest", "step-19"]), ("v2", ["step-14"]), ("v1", ["step-9"]), ("v0", ["step-4"])]


# --- references --------------------------------------------------------------------------------------
def test_references_keep_a_digest_not_a_copy(tmp_path, root):
    data = tmp_path / "data"
    data.mkdir()
    _write(data / "a.txt", "alpha")
    _write(data / "b.txt", "beta")
    run = mplogger.init(project="p", dir=root)
    artifact = mplogger.Artifact("refs", "dataset")
    artifact.add_reference(f"file://{data}", name="data")
    artifact.add_reference("s3://bucket/key.parquet")
    run.log_artifact(artifact).wait()
    run.finish()
    assert _objects(root) == []  # nothing copied
    stored = mplogger.Api(root).artifact("refs")
    entries = {entry.path: entry for entry in stored.files()}
    assert entries["data/a.txt"].ref == f"file://{data}/a.txt" and entries["data/a.txt"].size == 5
    assert entries["key.parquet"].ref_target() == "s3://bucket/key.parquet"
    with pytest.raises(FileNotFoundError, match="cannot be read offline"):
        stored.download(str(tmp_path / "out"))
    out = stored.download(str(tmp_path / "out"), allow_missing_references=True)
    assert _read(out, "data/b.txt") == "beta"
    _write(data / "a.txt", "changed")
    with pytest.raises(ValueError, match="changed since it was logged"):
        stored.download(str(tmp_path / "again"), allow_missing_references=True)


# --- bad input, at the call site ---------------------------------------------------------------------
@pytest.mark.parametrize("call, error, match", [
    (lambda t: mplogger.Artifact("bad name", "dataset"), ValueError, "artifact name 'bad name' is not valid"),
    (lambda t: mplogger.Artifact("x", 3), TypeError, "artifact type must be a string, not int 3"),
    (lambda t: mplogger.Artifact("x", "d", metadata=[1]), TypeError, "metadata must be a dict"),
    (lambda t: mplogger.Artifact("x", "d").add_file(str(t / "missing")), ValueError, "is not a file"),
    (lambda t: mplogger.Artifact("x", "d").add_file(str(t)), ValueError, "use add_dir for a folder"),
    (lambda t: mplogger.Artifact("x", "d").add_file(_write(t / "f", "f"), name="../f"), ValueError,
     "artifact file name '../f' is not valid"),
    (lambda t: mplogger.Artifact("x", "d").add_reference(str(t)), ValueError, "has no scheme"),
    (lambda t: mplogger.Artifact("x", "d").add_file(_write(t / "f", "f"), policy="later"), ValueError,
     "policy must be"),
])
def test_bad_artifacts_are_refused_where_they_are_made(tmp_path, call, error, match):
    with pytest.raises(error, match=match):
        call(tmp_path)


@pytest.mark.parametrize("aliases, error, match", [
    (["v3"], ValueError, "reserved"), (["a/b"], ValueError, "without '/' or ':'"),
    ([1], TypeError, "alias must be a string, not int 1"), ([""], ValueError, "not valid"),
])
def test_bad_aliases_are_refused_and_the_run_goes_on(tmp_path, root, aliases, error, match):
    run = mplogger.init(project="p", dir=root)
    with pytest.raises(error, match=match):
        run.log_artifact(_dataset(tmp_path, "x"), aliases=aliases)
    with pytest.raises(TypeError, match="takes an Artifact or the path"):
        run.log_artifact(42)
    with pytest.raises(ValueError, match="name it 'name', 'name:alias'"):
        run.use_artifact("a/b/c/d")
    run.log({"ok": 1})
    run.finish()
    assert mplogger.Api(root).run(run.id).history()[0]["ok"] == 1 and mplogger.Api(root).artifacts() == []


def test_a_logged_artifact_is_frozen_and_logged_once(tmp_path, root):
    run = mplogger.init(project="p", dir=root)
    artifact = run.log_artifact(_dataset(tmp_path, "x"))
    with pytest.raises(ValueError, match="was logged: its files cannot change"):
        artifact.add_file(_write(tmp_path / "more", "m"))
    with pytest.raises(ValueError, match="logged already"):
        run.log_artifact(artifact)
    with pytest.raises(ValueError, match="its metadata cannot change"):
        artifact.metadata = {"late": True}
    run.finish()
    with pytest.raises(mplogger.UsageError, match="is finished"):
        run.log_artifact(_dataset(tmp_path, "y"))
    with pytest.raises(ValueError, match="is not logged"):
        _dataset(tmp_path, "never").download(str(tmp_path / "out"))


def test_wandb_code_gets_the_same_artifacts(tmp_path, root):
    import mplogger.wandb as wandb

    assert wandb.Artifact is mplogger.Artifact
    run = wandb.init(project="p", dir=root)
    artifact = wandb.Artifact("model", type="model")
    artifact.add_file(_write(tmp_path / "m.bin", "m"))
    wandb.log_artifact(artifact, aliases=["best"])
    artifact.wait()
    run.finish()
    assert wandb.Api(root).artifact("model:best").version == "v0"


# --- a store from someone else ----------------------------------------------------------------------
@pytest.mark.parametrize("column, value, error", [
    ("path", "../../outside.txt", "is not valid"),
    ("path", "/etc/passwd", "is not valid"),
    ("digest", "../../../etc/passwd", "not a SHA-256 digest"),
])
def test_a_hostile_manifest_cannot_write_or_read_outside(tmp_path, root, column, value, error):
    run = mplogger.init(project="p", dir=root)
    run.log_artifact(_dataset(tmp_path, "x")).wait()
    run.finish()
    conn = sqlite3.connect(_store.db_path(root), isolation_level=None)
    conn.execute(f"UPDATE artifact_files SET {column} = ?", (value,))
    conn.close()
    with pytest.raises(ValueError, match=error):
        mplogger.Api(root).artifact("dataset").download(str(tmp_path / "deep" / "out"))
    assert not (tmp_path / "outside.txt").exists() and not (tmp_path / "deep" / "outside.txt").exists()


def test_a_hostile_artifact_name_is_skipped_with_a_warning(tmp_path, root, capsys):
    run = mplogger.init(project="p", dir=root)
    run.log_artifact(_dataset(tmp_path, "x")).wait()
    run.log_artifact(_dataset(tmp_path, "y", name="other")).wait()
    run.finish()
    conn = sqlite3.connect(_store.db_path(root), isolation_level=None)
    conn.execute("UPDATE artifacts SET name = '../\x1b[2Jevil' WHERE name = 'other'")
    conn.close()
    assert [a.name for a in mplogger.Api(root).artifacts()] == ["dataset:v0"]
    assert "\x1b" not in capsys.readouterr().err


# --- faults: kill -9 in the middle of a large add ---------------------------------------------------
_LARGE_ADD = """
    import os, sys
    import mplogger
    run = mplogger.init(project="p", dir=sys.argv[1], id="bigadd01")
    run.log({"before": 1})
    run.flush()
    path = os.path.join(sys.argv[2], "checkpoint.bin")
    with open(path, "wb") as out:
        for _ in range(int(sys.argv[3])):
            out.write(os.urandom(1 << 20))
    artifact = mplogger.Artifact("checkpoint", "model")
    print("copying", flush=True)
    artifact.add_file(path)
    run.log_artifact(artifact)
    print("logged", flush=True)
    sys.stdin.read()
"""


def _killed_after(script, args, line: str, before_kill=lambda: None) -> None:
    """Run ``script`` with ``args``, wait until it prints ``line`` (and ``before_kill``), then SIGKILL it."""
    process = subprocess.Popen([sys.executable, str(script), *args], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, env=script_env())
    try:
        assert process.stdout.readline() == line + "\n"
        before_kill()
        os.kill(process.pid, signal.SIGKILL)
        process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()


def _staged_bytes(root) -> int:
    total = 0
    for folder in _store.staging_dirs(root):
        for name in os.listdir(folder):
            total += os.path.getsize(os.path.join(folder, name))
    return total


def test_sigkill_of_the_user_process_while_it_copies_a_checkpoint_leaves_no_version(tmp_path, root):
    script = write_script(tmp_path, _LARGE_ADD)
    _killed_after(script, [root, str(tmp_path), "512"], "copying",
                  lambda: wait_for(lambda: _staged_bytes(root) > 0, 30, "the copy to start"))
    api = mplogger.Api(root)
    wait_for(lambda: api.run("bigadd01").state == "crashed", 30, "the run to be marked crashed")
    assert api.artifacts() == [] and api.run("bigadd01").history()[0]["before"] == 1
    assert list(_store.staging_dirs(root))  # what the copy left, for doctor
    findings = api.doctor()
    assert any(f.check == "staging" and f.repaired for f in findings), findings
    assert not list(_store.staging_dirs(root)) and _objects(root) == []


def test_sigkill_of_the_worker_while_it_stores_a_checkpoint_leaves_no_half_version(tmp_path, root):
    run = mplogger.init(project="p", dir=root, settings={"workers": 1})
    run.log({"before": 1})
    run.flush()
    path = tmp_path / "checkpoint.bin"
    with open(path, "wb") as out:
        for _ in range(384):
            out.write(os.urandom(1 << 20))
    artifact = mplogger.Artifact("checkpoint", "model")
    artifact.add_file(str(path))
    staging = os.path.dirname(artifact._staging)  # the worker claims (renames) the artifact's folder in it
    worker = mplogger.setup().worker_pids[0]
    run.log_artifact(artifact)
    wait_for(lambda: _reads_file(worker, staging), 30, "the worker to read the staged checkpoint")
    os.kill(worker, signal.SIGKILL)
    wait_for(lambda: process_gone(worker), 10, "the worker to exit")
    with pytest.raises((mplogger.RunError, mplogger.ManagerError)):
        artifact.wait(timeout=30)
        run.flush()
    mplogger.teardown()
    api = mplogger.Api(root)
    assert api.artifacts() == []
    assert api.run(run.id).state == "crashed" and api.run(run.id).history()[0]["before"] == 1
    api.doctor()
    assert not list(_store.staging_dirs(root)) and _objects(root) == []


def _reads_file(pid: int, folder: str) -> bool:
    """Whether process ``pid`` has a file of ``folder`` open (the worker hashing the staged copy)."""
    try:
        return any(os.readlink(f"/proc/{pid}/fd/{fd}").startswith(folder) for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return False


def test_a_large_file_is_copied_without_reading_it_into_memory(tmp_path, root):
    script = write_script(tmp_path, """
        import os, resource, sys
        import mplogger
        run = mplogger.init(project="p", dir=sys.argv[1])
        path = os.path.join(sys.argv[2], "big.bin")
        with open(path, "wb") as out:
            for _ in range(256):
                out.write(os.urandom(1 << 20))
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        artifact = mplogger.Artifact("big", "model")
        artifact.add_file(path)
        run.log_artifact(artifact).wait()
        out = artifact.download(os.path.join(sys.argv[2], "out"))
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        print(grown // 1024, os.path.getsize(os.path.join(out, "big.bin")) == os.path.getsize(path))
        run.finish()
    """)
    result = subprocess.run([sys.executable, str(script), root, str(tmp_path)], capture_output=True, text=True,
                            timeout=120, env=script_env())
    assert result.returncode == 0, result.stderr[-3000:]
    grown_mb, same_size = result.stdout.split()
    assert same_size == "True" and int(grown_mb) < 64, result.stdout  # a 256 MB file, streamed


# --- child processes -------------------------------------------------------------------------------
_CHILD = """
    import multiprocessing, os, sys
    import mplogger, mplogger.wandb as wandb

    def child(attach_id, folder):
        run = wandb._attach(attach_id) if attach_id else mplogger.run
        artifact = wandb.Artifact("ckpt", type="model", metadata={"rank": 0})
        with open(os.path.join(folder, "model.ckpt"), "w") as out:
            out.write("from the child")
        artifact.add_file(os.path.join(folder, "model.ckpt"))
        run.log_artifact(artifact, aliases=["best"])
        print("child logged", artifact.wait(timeout=60).name, artifact.aliases)
        used = run.use_artifact("data:latest")
        print("child used", used.name, open(os.path.join(used.download(os.path.join(folder, "d")), "x.txt")).read())

    if __name__ == "__main__":
        method = sys.argv[2]
        run = wandb.init(project="p", dir=sys.argv[1], id="child001")
        data = wandb.Artifact("data", type="dataset")
        with data.new_file("x.txt") as out:
            out.write("parent data")
        run.log_artifact(data).wait()
        context = multiprocessing.get_context(method)
        process = context.Process(target=child, args=(run._attach_id if method == "spawn" else None, sys.argv[3]))
        process.start()
        process.join(90)
        assert process.exitcode == 0, process.exitcode
        wandb.finish()
"""


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_a_child_process_logs_and_uses_artifacts_of_the_run(tmp_path, root, method):
    script = write_script(tmp_path, _CHILD)
    result = subprocess.run([sys.executable, str(script), root, method, str(tmp_path)], capture_output=True,
                            text=True, timeout=120, env=script_env())
    assert result.returncode == 0, result.stderr[-3000:]
    assert "child logged ckpt:v0 ['latest', 'best']" in result.stdout
    assert "child used data:v0 parent data" in result.stdout
    api = mplogger.Api(root)
    run = api.run("child001")
    assert [a.name for a in run.logged_artifacts()] == ["data:v0", "ckpt:v0"]
    assert [a.name for a in run.used_artifacts()] == ["data:v0"]
    assert api.artifact("ckpt:best").metadata == {"rank": 0} and not list(_store.staging_dirs(root))


# --- what a hostile review found --------------------------------------------------------------------
def test_version_numbers_are_never_reused_after_a_delete(tmp_path, root):
    first = mplogger.init(project="p", dir=root)
    first.log_artifact(_dataset(tmp_path, "one")).wait()
    first.finish()
    second = mplogger.init(project="p", dir=root)
    held = second.log_artifact(_dataset(tmp_path, "two")).wait()
    second.finish()
    mplogger.Api(root).run(second.id).delete()
    third = mplogger.init(project="p", dir=root)
    again = third.log_artifact(_dataset(tmp_path, "three")).wait()
    third.finish()
    assert (held.version, again.version) == ("v1", "v2") and again.id != held.id
    assert [a.version for a in mplogger.Api(root).artifact_versions("dataset")] == ["v2", "v0"]
    assert mplogger.Api(root).artifact("dataset").version == "v2"


def test_use_artifact_refuses_a_version_of_another_store(tmp_path, root):
    other = str(tmp_path / "other" / "mplogger-runs")
    run = mplogger.init(project="p", dir=other)
    foreign = run.log_artifact(_dataset(tmp_path, "theirs")).wait()
    run.finish()
    run = mplogger.init(project="p", dir=root)
    run.log_artifact(_dataset(tmp_path, "mine")).wait()
    with pytest.raises(ValueError, match="not in this run's store"):
        run.use_artifact(foreign)
    run.finish()
    assert mplogger.Api(root).run(run.id).used_artifacts() == []


def test_a_failed_log_is_raised_again_at_every_wait(tmp_path, root):
    run = mplogger.init(project="p", dir=root, settings={"shutdown_timeout": 5})
    run.log_artifact(_dataset(tmp_path, "one")).wait()
    wrong = mplogger.Artifact("dataset", "model")
    wrong.add_file(_write(tmp_path / "w.bin", "w"))
    run.log_artifact(wrong)
    for _ in range(2):
        with pytest.raises(ValueError, match="holds 'dataset' versions"):
            wrong.wait()
    with pytest.raises(ValueError, match="holds 'dataset' versions"):
        wrong.version
    run.finish()


def test_add_dir_follows_linked_folders_once_and_checks_every_name_first(tmp_path, root):
    data = tmp_path / "data"
    (data / "real").mkdir(parents=True)
    _write(data / "real" / "a.txt", "a")
    os.symlink(data / "real", data / "linked")
    os.symlink(data, data / "real" / "loop")  # a link back up is not followed again
    artifact = mplogger.Artifact("linked", "dataset")
    artifact.add_dir(str(data))
    assert sorted(entry.path for entry in artifact.files()) == ["linked/a.txt", "real/a.txt"]
    bad = tmp_path / "bad"
    bad.mkdir()
    _write(bad / "fine.txt", "f")
    _write(bad / "tab\tname.txt", "t")
    refused = mplogger.Artifact("bad", "dataset")
    with pytest.raises(ValueError, match="is not valid"):
        refused.add_dir(str(bad))
    assert refused.files() == []  # nothing was added before the bad name was found


def test_more_bad_input_is_refused_at_the_call_site(tmp_path, root):
    run = mplogger.init(project="p", dir=root)
    with pytest.raises(TypeError, match="aliases must be a string or a list of strings, not int 5"):
        run.log_artifact(_dataset(tmp_path, "x"), aliases=5)
    with pytest.raises(ValueError, match="not text"):
        mplogger.Artifact("x", "dataset", description="bad \udc80 text")
    run.finish()


def test_finish_waits_for_a_large_store_longer_than_the_timeout_while_it_moves(tmp_path, root):
    path = tmp_path / "big.bin"
    with open(path, "wb") as out:
        for _ in range(384):
            out.write(os.urandom(1 << 20))
    run = mplogger.init(project="p", dir=root, settings={"shutdown_timeout": 0.5})
    artifact = mplogger.Artifact("big", "model")
    artifact.add_file(str(path), policy="immutable")  # the worker copies and hashes 384 MiB
    run.log_artifact(artifact)
    run.finish()  # heartbeats from the worker keep the 0.5 s wait going while the store moves
    stored = mplogger.Api(root).artifact("big")
    assert stored.size == 384 << 20 and mplogger.Api(root).run(run.id).state == "finished"


def test_a_child_waiting_for_a_refused_version_is_told_why(tmp_path, root):
    script = write_script(tmp_path, """
        import multiprocessing, os, sys
        import mplogger

        def child(folder):
            artifact = mplogger.Artifact("dataset", "model")
            with artifact.new_file("w.txt") as out:
                out.write("w")
            mplogger.run.log_artifact(artifact)
            try:
                artifact.wait(timeout=60)
            except mplogger.RunError as exc:
                print("refused:", exc)

        if __name__ == "__main__":
            run = mplogger.init(project="p", dir=sys.argv[1])
            data = mplogger.Artifact("dataset", "dataset")
            with data.new_file("x.txt") as out:
                out.write("x")
            run.log_artifact(data).wait()
            process = multiprocessing.get_context("fork").Process(target=child, args=(sys.argv[1],))
            process.start()
            process.join(90)
            try:
                run.finish()
            except mplogger.RunError as exc:
                print("owner:", type(exc.__cause__).__name__)
    """)
    result = subprocess.run([sys.executable, str(script), root], capture_output=True, text=True, timeout=120,
                            env=script_env())
    assert result.returncode == 0, result.stderr[-3000:]
    assert "refused: artifact dataset was not stored: ValueError: artifact 'dataset' of project 'p' holds" in result.stdout


def test_doctor_right_after_a_kill_does_not_take_what_the_worker_still_stores(tmp_path, root):
    script = write_script(tmp_path, """
        import os, sys
        import mplogger
        run = mplogger.init(project="p", dir=sys.argv[1], id="stillgo1")
        path = os.path.join(sys.argv[2], "checkpoint.bin")
        with open(path, "wb") as out:
            for _ in range(512):
                out.write(os.urandom(1 << 20))
        artifact = mplogger.Artifact("checkpoint", "model")
        artifact.add_file(path, policy="immutable")
        run.log_artifact(artifact)
        print("logged", flush=True)
        sys.stdin.read()
    """)
    _killed_after(script, [root, str(tmp_path)], "logged")
    api = mplogger.Api(root)
    api.doctor()  # while the manager, which outlives its user process briefly, still stores the file
    api.doctor()
    wait_for(lambda: api.run("stillgo1").state == "crashed" and not list(_store.staging_dirs(root)), 60,
             "the manager to store the version and mark the run crashed")
    stored = api.artifact("checkpoint")
    assert stored.size == 512 << 20 and len(_objects(root)) == 1
    assert _store.hash_file(_store.object_path(root, stored.files()[0].digest))[0] == stored.files()[0].digest


def test_the_user_process_does_not_import_what_the_worker_stores_files_with():
    # concurrent.futures registers a fork hook that takes a lock: a process that forks from a
    # signal handler while it is already forking waited on it for ever (the fault table's case)
    result = subprocess.run([sys.executable, "-c", "import sys, mplogger, mplogger.wandb; "
                             "print(sorted(m for m in sys.modules if m.startswith('concurrent')))"],
                            capture_output=True, text=True, timeout=60, env=script_env())
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout + result.stderr


def test_files_added_before_init_move_into_the_runs_store(tmp_path, root, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MPLOGGER_DIR", raising=False)
    monkeypatch.delenv("WANDB_DIR", raising=False)
    early = _dataset(tmp_path, "added before init")  # staged under ./mplogger-runs, the default store
    assert early._staging.startswith(str(tmp_path / "mplogger-runs"))
    run = mplogger.init(project="p", dir=str(tmp_path / "elsewhere"))
    run.log_artifact(early).wait()
    run.finish()
    assert not (tmp_path / "mplogger-runs").exists()  # nothing left behind where it was staged
    stored = mplogger.Api(str(tmp_path / "elsewhere")).artifact("dataset")
    assert _read(stored.download(str(tmp_path / "out")), "train.csv") == "added before init"


def test_a_refused_log_artifact_leaves_the_staged_files_where_they_were(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MPLOGGER_DIR", raising=False)
    monkeypatch.delenv("WANDB_DIR", raising=False)
    early = _dataset(tmp_path, "added before init")  # staged under ./mplogger-runs
    staged = early._staging
    early.metadata["bad"] = object()  # found only when the version is logged
    run = mplogger.init(project="p", dir=str(tmp_path / "elsewhere"))
    with pytest.raises(TypeError):
        run.log_artifact(early)
    assert early._staging == staged and os.path.isdir(staged)
    assert not os.path.exists(_store.artifacts_dir(run.root))  # nothing moved into the run's store
    del early.metadata["bad"]
    run.log_artifact(early).wait()  # a retry logs it
    run.finish()
    assert mplogger.Api(run.root).artifact("dataset").version == "v0"


def test_a_disabled_run_stages_in_a_private_temporary_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = mplogger.init(mode="disabled")
    artifact = _dataset(tmp_path, "nothing is kept")
    base = artifact._staging.split(os.sep + "artifacts" + os.sep)[0]
    assert base.startswith(tempfile.gettempdir()) and os.stat(base).st_mode & 0o777 == 0o700
    assert oct(os.stat(os.path.join(artifact._staging, os.listdir(artifact._staging)[0])).st_mode & 0o777) == "0o600"
    assert run.log_artifact(artifact) is None and not (tmp_path / "mplogger-runs").exists()


_STALLED_WORKER = """
    import os, signal, sys
    import mplogger

    def child(kill_manager, manager):
        artifact = mplogger.Artifact("from-child", "model")
        with artifact.new_file("w.txt") as out:
            out.write("w")
        mplogger.run.log_artifact(artifact)
        if kill_manager:
            os.kill(manager, signal.SIGKILL)
            try:
                artifact.wait(timeout=300)
            except mplogger.ManagerError as exc:
                print("child:", exc, flush=True)
        os._exit(0)

    if __name__ == "__main__":
        kill_manager = sys.argv[2] == "kill"
        run = mplogger.init(project="p", dir=sys.argv[1], settings={"workers": 1})
        client = mplogger._user._session.current().client
        worker, manager = client.worker_pids[0], client.process.pid
        os.kill(worker, signal.SIGSTOP)  # the child's message waits, unclaimed, in the worker's queue
        pid = os.fork()
        if pid == 0:
            child(kill_manager, manager)
        os.waitpid(pid, 0)
        if kill_manager:
            os.kill(worker, signal.SIGCONT)
            sys.exit(0)
        findings = mplogger.Api(sys.argv[1]).doctor()
        print("doctor:", [f.detail for f in findings if f.check == "staging"], flush=True)
        os.kill(worker, signal.SIGCONT)
        run.finish()
        print("stored:", [a.name for a in mplogger.Api(sys.argv[1]).artifacts()])
"""


def test_doctor_keeps_a_dead_childs_staging_folder_while_its_run_is_live(tmp_path, root):
    script = write_script(tmp_path, _STALLED_WORKER)
    result = subprocess.run([sys.executable, str(script), root, "doctor"], capture_output=True, text=True,
                            timeout=120, env=script_env())
    assert result.returncode == 0, result.stderr[-3000:]
    assert "kept while runs are live" in result.stdout and "stored: ['from-child:v0']" in result.stdout


def test_a_childs_wait_ends_when_the_manager_dies(tmp_path, root):
    script = write_script(tmp_path, _STALLED_WORKER)
    result = subprocess.run([sys.executable, str(script), root, "kill"], capture_output=True, text=True,
                            timeout=120, env=script_env())
    assert "child: run" in result.stdout and "its manager is gone" in result.stdout, result.stdout + result.stderr
