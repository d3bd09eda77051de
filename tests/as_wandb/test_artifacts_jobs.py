"""Artifacts through the plain wandb API in real jobs (``mplogger run --``), read back through the Api.

``tests/clients/dataset_artifacts.py log`` logs one folder three times (changed once, then not);
``... use`` is a second run that uses two of the versions and downloads them. What each run saw is
in ``log.json`` / ``use.json``; the store must hold v0 and v1 only, and the lineage of both runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import mplogger
from conftest import REPO, TESTS, processes_with, wait_for

CLIENT = TESTS / "clients" / "dataset_artifacts.py"

V0 = {"notes/readme.txt": "first", "train.csv": "x,y\n1,2\n"}
V1 = {"extra.txt": "added", "notes/readme.txt": "first", "train.csv": "x,y\n1,2\n3,4\n"}


def job(tmp_path: Path, *args: str) -> dict:
    """``mplogger run -- python dataset_artifacts.py ARGS`` in ``tmp_path``; what the script saw."""
    mark = f"MPLOGGER_JOB_MARK={uuid.uuid4().hex}"
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "TMPDIR") if key in os.environ}
    env.update(PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    env.update([mark.split("=", 1)])
    result = subprocess.run([sys.executable, "-m", "mplogger", "run", "--", sys.executable, str(CLIENT), *args],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    wait_for(lambda: not processes_with(mark), 20, "every process of the job to exit")
    return json.loads((tmp_path / f"{args[0]}.json").read_text())


def contents(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def produced(tmp_path):
    """The store after the producer run, and what that run saw."""
    return job(tmp_path, "log")


def test_a_version_only_when_the_content_changed(tmp_path, produced):
    first, second, third = produced["first"], produced["second"], produced["third"]
    # aliases as each version had them when it was stored: `latest` then moved on from v0
    assert (first["name"], first["version"], first["aliases"]) == ("dataset:v0", "v0", ["latest"])
    assert (second["name"], second["aliases"]) == ("dataset:v1", ["latest", "changed"])
    assert third["name"] == "dataset:v1" and third["digest"] == second["digest"]  # unchanged: the same version
    assert third["aliases"] == ["latest", "changed", "unchanged"]  # with the alias it was logged with
    assert first["digest"] != second["digest"]
    assert second["files"] == sorted(V1) and first["files"] == sorted(V0)
    assert second["size"] == sum(len(text) for text in V1.values())

    api = mplogger.Api(str(tmp_path))
    assert [(a.version, a.aliases) for a in api.artifact_versions("dataset")] == [
        ("v1", ["latest", "changed", "unchanged"]), ("v0", [])]
    with pytest.raises(KeyError, match="v2"):
        api.artifact("dataset:v2")
    v0, v1 = api.artifact("dataset:v0", type="dataset"), api.artifact("dataset:latest")
    assert (v0.description, v0.metadata, v1.metadata) == ("toy rows", {"rows": 1}, {"rows": 2})
    assert contents(Path(v0.download(tmp_path / "v0"))) == V0
    assert contents(Path(v1.download(tmp_path / "v1"))) == V1  # not what was scribbled after log_artifact
    (run,) = api.runs()
    assert run.state == "finished" and run.id == produced["run_id"]
    assert [row["loss"] for row in run.history()] == [1.0, 0.5]
    assert [a.name for a in run.logged_artifacts()] == ["dataset:v0", "dataset:v1"]
    assert v0.logged_by().id == run.id and v1.logged_by().id == run.id


def test_a_second_run_uses_and_downloads_versions(tmp_path, produced):
    used = job(tmp_path, "use")
    latest, v0 = used["latest"], used["v0"]
    assert (latest["name"], latest["aliases"]) == ("dataset:v1", ["latest", "changed", "unchanged"])
    assert v0["name"] == "dataset:v0"
    assert used["metadata"] == [{"rows": 2}, {"rows": 1}]
    # download() with no root: ./artifacts/<name>:<version>, relative to the job's folder
    assert (latest["folder"], v0["folder"]) == (os.path.join(".", "artifacts", "dataset:v1"),
                                                os.path.join(".", "artifacts", "dataset:v0"))
    assert latest["content"] == V1 and v0["content"] == V0
    assert contents(tmp_path / "artifacts" / "dataset:v1") == V1
    assert contents(tmp_path / "artifacts" / "dataset:v0") == V0
    assert (latest["train.csv"], v0["train.csv"]) == (V1["train.csv"], V0["train.csv"])  # get_entry().download()

    api = mplogger.Api(str(tmp_path))
    runs = {run.name: run for run in api.runs()}
    assert sorted(runs) == ["consumer", "producer"] and {r.state for r in runs.values()} == {"finished"}
    producer, consumer = runs["producer"], runs["consumer"]
    assert consumer.id == used["run_id"] and producer.id == produced["run_id"]
    assert [a.name for a in consumer.used_artifacts()] == ["dataset:v1", "dataset:v0"]  # in the order used
    assert consumer.logged_artifacts() == [] and producer.used_artifacts() == []
    assert [a.name for a in producer.logged_artifacts()] == ["dataset:v0", "dataset:v1"]
    assert [r.id for r in api.artifact("dataset:v0").used_by()] == [consumer.id]
    assert [r.id for r in api.artifact("dataset:latest").used_by()] == [consumer.id]
    assert api.artifact("dataset:v0").logged_by().id == producer.id  # using a version does not change who logged it
    assert [a.name for a in api.artifact_versions("dataset")] == ["dataset:v1", "dataset:v0"]  # still no v2
    assert consumer.history()[0]["rows"] == 2
