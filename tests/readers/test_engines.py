"""Export to TensorBoard and MLflow (``mplogger._readers._engines``), read back with each tool's own reader.

Real runs (manager process, SQLite store), real event files read by TensorBoard's data provider
and hparams plugin, a real MLflow SQLite tracking store read by ``MlflowClient``. A missing engine
is a real import failure in a subprocess.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import mplogger
from conftest import script_env, wait_for
from mplogger._readers._engines import (PROGRESS_EVERY, AlreadyExportedError, export_mlflow, export_tensorboard,
                               mlflow_name)

NAN, INF = float("nan"), float("inf")
TIMEOUT = 120  # seconds for a subprocess


def image():
    np = pytest.importorskip("numpy")
    return mplogger.Image(np.zeros((2, 2, 3), dtype=np.uint8))


def mixed_rows():
    """Rows with nested keys, NaN, ±inf, bools, big ints, names MLflow refuses, strings and media."""
    return [
        {"loss": 1.5, "val": {"acc": 0.25, "top/k": 3}, "ok": True, "caption": "first", "acc@1": 7,
         "acc#1": 8, "a//b": 1, "../up": 2},
        {"loss": NAN, "val": {"acc": 0.5}, "ok": False, "caption": "second", "hist": mplogger.Histogram([1, 2, 3])},
        {"loss": INF, "table": mplogger.Table(columns=["a"], data=[[1]]), "none": None, "big": 2 ** 40},
        {"loss": -INF, "val": {"acc": 0.75, "top/k": 5}, "img": image()},
        {"loss": 0.1, "big": -(2 ** 40)},
    ]


SKIPPED = {"caption": 2, "hist": 1, "table": 1, "none": 1, "img": 1}
CONFIG = {"lr": 0.001, "model": {"layers": 4, "act": "gelu", "sizes": [8, 16]}, "debug": False, "seed": None}


def numbers(row, prefix=""):
    """The numeric leaves of a logged row under dotted keys, bools as 0/1 (what should be exported)."""
    for key, value in row.items():
        if isinstance(value, dict):
            yield from numbers(value, f"{prefix}{key}.")
        elif isinstance(value, (bool, int, float)):
            yield f"{prefix}{key}", float(value)


def make_run(root, rows, project="engines", exit_code=0, **init):
    """A finished run with ``rows`` logged, as the reader sees it."""
    run = mplogger.init(dir=root, project=project, reinit="create_new", **init)
    for row in rows:
        run.log(row)
    run.finish(exit_code=exit_code)
    return mplogger.Api(root).run(run.id)


def expected_points(stored, rows):
    """key -> [(step, timestamp, value)] for every numeric value logged, in step order."""
    expected = {}
    for row, read in zip(rows, stored.scan_history()):
        for key, value in numbers(row):
            expected.setdefault(key, []).append((read["_step"], read["_timestamp"], value))
    return expected


def same_number(a, b):
    return (math.isnan(a) and math.isnan(b)) or a == b


def float32(value):
    np = pytest.importorskip("numpy")
    with np.errstate(over="ignore"):
        return float(np.float32(value))


@pytest.fixture
def mixed(root):
    """A finished run with everything a history can hold, a hand-set summary value and all run fields."""
    rows = mixed_rows()
    run = mplogger.init(dir=root, project="engines", config=CONFIG, tags=["baseline", "gpu:0"], notes="first try",
                        group="sweep-1", job_type="train", name="mixed run")
    for row in rows:
        run.log(row)
    run.summary["best"] = 0.875
    run.finish()
    return mplogger.Api(root).run(run.id), rows


# --- TensorBoard -------------------------------------------------------------------------------
def tensorboard_read(logdir):
    """What TensorBoard serves for ``logdir``: scalars, text and hparams, through its own reader."""
    pytest.importorskip("tensorboard")
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider, plugin_event_accumulator, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import api_pb2, backend_context, get_experiment, list_session_groups

    multiplexer = plugin_event_multiplexer.EventMultiplexer(size_guidance={plugin_event_accumulator.TENSORS: 0})
    multiplexer.AddRunsFromDirectory(str(logdir))
    multiplexer.Reload()
    provider = data_provider.MultiplexerDataProvider(multiplexer, str(logdir))
    ctx = context.RequestContext()
    scalars = provider.read_scalars(ctx, experiment_id="", plugin_name="scalars", downsample=10 ** 9)
    texts = provider.read_tensors(ctx, experiment_id="", plugin_name="text", downsample=10)
    hparams = backend_context.Context(base_plugin.TBContext(data_provider=provider, logdir=str(logdir),
                                                            multiplexer=multiplexer))
    request = api_pb2.ListSessionGroupsRequest(start_index=0, slice_size=100, allowed_statuses=[
        api_pb2.STATUS_UNKNOWN, api_pb2.STATUS_SUCCESS, api_pb2.STATUS_FAILURE, api_pb2.STATUS_RUNNING])
    groups = list_session_groups.Handler(ctx, hparams, "", request).run().session_groups
    experiment = get_experiment.Handler(ctx, hparams, "", api_pb2.GetExperimentRequest()).run()
    return {
        "scalars": {run: {tag: [(d.step, d.wall_time, d.value) for d in data] for tag, data in tags.items()}
                    for run, tags in scalars.items()},
        "text": {run: _fenced_json(tags["mplogger/run"][-1].numpy[0]) for run, tags in texts.items()},
        "groups": {group.name: group for group in groups},
        "hparam_names": {info.name for info in experiment.hparam_infos},
    }


def _fenced_json(raw: bytes):
    text = raw.decode("utf-8")
    assert text.startswith("```json\n") and text.endswith("\n```")
    return json.loads(text[len("```json\n"):-len("\n```")])


def hparam(value):
    """A google.protobuf.Value from the hparams plugin as a Python value."""
    kind = value.WhichOneof("kind")
    return getattr(value, kind)


def test_tensorboard_reads_back_every_value_step_and_time(mixed, tmp_path):
    pytest.importorskip("tensorboardX")
    stored, rows = mixed
    out = tmp_path / "tb"
    exported = export_tensorboard([stored], str(out))
    folder = f"mixed run-{stored.id}"
    assert list(exported) == [str(out / folder)]
    assert exported.skipped == {stored.id: SKIPPED}
    read = tensorboard_read(out)
    scalars = read["scalars"][folder]
    expected = expected_points(stored, rows)
    assert [value for *_, value in expected["ok"]] == [1.0, 0.0]  # bools as 0/1
    assert [value for *_, value in expected["val.top/k"]] == [3.0, 5.0]  # nested keys, dotted
    assert set(scalars) == set(expected) | {"best"}
    for key, points in expected.items():
        got = scalars[key]
        assert [(step, wall) for step, wall, _ in got] == [(step, ts) for step, ts, _ in points], key
        assert all(same_number(value, float32(want)) for (_, _, value), (_, _, want) in zip(got, points)), key
    loss = [value for _, _, value in scalars["loss"]]
    assert math.isnan(loss[1]) and loss[2] == INF and loss[3] == -INF
    assert scalars["best"] == [(4, stored.finished, 0.875)]


def test_tensorboard_hparams_and_text_show_the_run(mixed, tmp_path):
    pytest.importorskip("tensorboardX")
    stored, _ = mixed
    out = tmp_path / "tb"
    export_tensorboard([stored], str(out))
    read = tensorboard_read(out)
    folder = f"mixed run-{stored.id}"
    group = read["groups"][folder]
    assert {name: hparam(value) for name, value in group.hparams.items()} == {
        "lr": 0.001, "model.layers": 4.0, "model.act": "gelu", "model.sizes": "[8, 16]", "debug": False,
        "seed": "null"}
    (session,) = group.sessions
    assert session.status == 1 and session.start_time_secs == stored.created  # STATUS_SUCCESS
    metrics = {value.name.tag: value.value for value in group.metric_values}
    assert metrics["best"] == 0.875 and metrics["val.acc"] == 0.75 and metrics["big"] == -(2 ** 40)
    text = read["text"][folder]
    assert (text["id"], text["name"], text["project"], text["group"], text["job_type"]) == (
        stored.id, "mixed run", "engines", "sweep-1", "train")
    assert (text["tags"], text["notes"], text["state"], text["config"]) == (
        ["baseline", "gpu:0"], "first try", "finished", CONFIG)
    assert text["skipped"] == SKIPPED and text["summary"]["best"] == 0.875


def test_tensorboard_runs_exported_apart_share_one_hparams_table(root, tmp_path):
    pytest.importorskip("tensorboardX")
    ok = make_run(root, [{"loss": 1.0}, {"loss": 0.5}], config={"lr": 0.1})
    failed = make_run(root, [{"loss": 2.0}], exit_code=3, config={"layers": 2})
    running = mplogger.init(dir=root, project="engines", config={"lr": 0.2}, reinit="create_new")
    running.log({"loss": 3.0})
    running.flush()
    out = tmp_path / "tb"
    (first,) = export_tensorboard([ok], str(out))
    second, third = export_tensorboard([failed, mplogger.Api(root).run(running.id)], str(out))
    running.finish()
    read = tensorboard_read(out)
    names = [os.path.basename(folder) for folder in (first, second, third)]
    assert set(read["groups"]) == set(names) == set(read["scalars"])
    assert read["hparam_names"] == {"lr", "layers"}
    statuses = [read["groups"][name].sessions[0].status for name in names]
    assert statuses == [1, 2, 3]  # success, failure, running
    assert read["groups"][names[0]].sessions[0].end_time_secs == ok.finished
    assert read["groups"][names[2]].sessions[0].end_time_secs == 0  # not ended
    assert [value for _, _, value in read["scalars"][names[1]]["loss"]] == [2.0]


def test_tensorboard_refuses_a_folder_with_event_files(root, tmp_path):
    pytest.importorskip("tensorboardX")
    done = make_run(root, [{"x": 1}])
    new = make_run(root, [{"x": 2}])
    out = tmp_path / "tb"
    (folder,) = export_tensorboard([done], str(out))
    before = sorted(os.listdir(folder))
    with pytest.raises(AlreadyExportedError, match=f"run {done.id}.*already holds TensorBoard event files"):
        export_tensorboard([new, done], str(out))
    assert sorted(os.listdir(folder)) == before
    assert not os.path.exists(out / f"{new.name}-{new.id}")  # checked before anything was written
    with pytest.raises(ValueError, match="given twice"):
        export_tensorboard([new, new], str(out))
    (out / f"{new.name}-{new.id}").mkdir()  # an empty folder is fine
    assert export_tensorboard([new], str(out)) == [str(out / f"{new.name}-{new.id}")]


def test_tensorboard_export_stopped_half_way_leaves_no_event_file(root, tmp_path):
    pytest.importorskip("tensorboardX")
    stored = make_run(root, [{"x": i} for i in range(PROGRESS_EVERY + 10)])
    out = tmp_path / "tb"

    def interrupt(n):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        export_tensorboard([stored], str(out), progress=interrupt)
    assert os.listdir(out / f"{stored.name}-{stored.id}") == []
    (folder,) = export_tensorboard([stored], str(out))
    assert len(tensorboard_read(out)["scalars"][os.path.basename(folder)]["x"]) == PROGRESS_EVERY + 10


# --- MLflow ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mlflow_template(tmp_path_factory):
    """An empty MLflow SQLite store, migrated once (MLflow's migrations take seconds)."""
    pytest.importorskip("mlflow")
    pytest.importorskip("sqlalchemy")
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow") / "template.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def mlflow_uri(mlflow_template, tmp_path, monkeypatch):
    """A fresh MLflow tracking store of this test's own (a copy of the migrated empty one)."""
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    path = tmp_path / "mlflow.db"
    shutil.copyfile(mlflow_template, path)
    return f"sqlite:///{path}"


def client(uri):
    from mlflow.tracking import MlflowClient

    return MlflowClient(uri)


def mlflow_value(value):
    """What MLflow stores for a metric value: NaN as NaN, ±inf as ±the largest float."""
    return math.copysign(sys.float_info.max, value) if math.isinf(value) else value


def test_mlflow_reads_back_every_value_param_and_tag(mixed, mlflow_uri):
    stored, rows = mixed
    exported = export_mlflow([stored], tracking_uri=mlflow_uri)
    assert exported.skipped == {stored.id: SKIPPED}
    mlflow = client(mlflow_uri)
    (mlflow_id,) = exported
    got = mlflow.get_run(mlflow_id)
    assert mlflow.get_experiment(got.info.experiment_id).name == "engines"
    assert (got.info.run_name, got.info.status) == ("mixed run", "FINISHED")
    assert (got.info.start_time, got.info.end_time) == (round(stored.created * 1000), round(stored.finished * 1000))
    assert got.data.params == {"lr": "0.001", "model.layers": "4", "model.act": "gelu", "model.sizes": "[8, 16]",
                               "debug": "False", "seed": "None"}
    tags = dict(got.data.tags)
    assert tags.pop("mlflow.runName") == "mixed run"
    renamed = json.loads(tags.pop("mplogger.renamed"))
    assert renamed == {"metrics.acc@1": "acc_1", "metrics.acc#1": renamed["metrics.acc#1"],
                       "metrics.a//b": "a/_/b", "metrics.../up": "__/up"}
    assert renamed["metrics.acc#1"].startswith("acc_1-") and len(renamed["metrics.acc#1"]) == len("acc_1-") + 8
    assert tags == {
        "mplogger.run_id": stored.id, "mplogger.project": "engines", "mplogger.state": "finished",
        "mplogger.group": "sweep-1", "mplogger.job_type": "train", "mplogger.exit_code": "0",
        "mplogger.tags": '["baseline", "gpu:0"]', "baseline": "true", "gpu_0": "true",
        "mlflow.note.content": "first try", "mplogger.skipped": json.dumps(SKIPPED)}
    names = {key: renamed.get(f"metrics.{key}", key) for key in expected_points(stored, rows)}
    for key, points in expected_points(stored, rows).items():
        history = sorted(mlflow.get_metric_history(mlflow_id, names[key]), key=lambda m: m.step)
        assert [(m.step, m.timestamp) for m in history] == [(step, round(ts * 1000)) for step, ts, _ in points], key
        assert all(same_number(m.value, mlflow_value(want)) for m, (_, _, want) in zip(history, points)), key
    loss = [m.value for m in sorted(mlflow.get_metric_history(mlflow_id, "loss"), key=lambda m: m.step)]
    assert math.isnan(loss[1]) and loss[2] == sys.float_info.max and loss[3] == -sys.float_info.max
    (best,) = mlflow.get_metric_history(mlflow_id, "best")
    assert (best.step, best.timestamp, best.value) == (4, round(stored.finished * 1000), 0.875)
    assert got.data.metrics["val.acc"] == 0.75 and got.data.metrics["big"] == -(2 ** 40)


def test_mlflow_cuts_long_params_and_respects_batch_limits(root, mlflow_uri):
    config = {f"p{i}": i for i in range(150)}  # more than 100 params: two log_batch calls
    config["long"] = "x" * 7000
    config["bad name!"] = "kept"
    wide = [{f"k{i}": i + step for i in range(1200)} for step in range(2)]  # 2,400 metrics: three calls
    stored = make_run(root, wide, project="wide", config=config)
    (mlflow_id,) = export_mlflow([stored], tracking_uri=mlflow_uri)
    got = client(mlflow_uri).get_run(mlflow_id)
    assert len(got.data.params) == 152
    assert got.data.params["long"] == "x" * 6000 and got.data.params["bad name_"] == "kept"
    assert json.loads(got.data.tags["mplogger.truncated"]) == {"params.long": 7000}
    assert json.loads(got.data.tags["mplogger.renamed"]) == {"params.bad name!": "bad name_"}
    assert got.data.metrics == {f"k{i}": float(i + 1) for i in range(1200)}
    history = client(mlflow_uri).get_metric_history(mlflow_id, "k1199")
    assert sorted((m.step, m.value) for m in history) == [(0, 1199.0), (1, 1200.0)]


def test_mlflow_status_follows_the_run_state(root, mlflow_uri, script):
    failed = make_run(root, [{"x": 1}], exit_code=2)
    running = mplogger.init(dir=root, project="engines", reinit="create_new")
    running.log({"x": 1})
    running.flush()
    crasher = script("""
        import os, signal, sys, mplogger
        run = mplogger.init(dir=sys.argv[1], project="engines")
        run.log({"x": 1})
        run.flush()
        print(run.id, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    done = subprocess.run([sys.executable, str(crasher), root], capture_output=True, text=True, timeout=TIMEOUT,
                          env=script_env())
    crashed_id = done.stdout.strip()
    wait_for(lambda: mplogger.Api(root).run(crashed_id).state == "crashed", 30, "the run marked crashed")
    runs = [failed, mplogger.Api(root).run(running.id), mplogger.Api(root).run(crashed_id)]
    ids = export_mlflow(runs, tracking_uri=mlflow_uri)
    infos = [client(mlflow_uri).get_run(mlflow_id).info for mlflow_id in ids]
    assert [info.status for info in infos] == ["FAILED", "RUNNING", "KILLED"]
    assert infos[1].end_time is None and infos[0].end_time == round(failed.finished * 1000)
    assert client(mlflow_uri).get_run(ids[0]).data.tags["mplogger.exit_code"] == "2"
    running.finish()


def test_mlflow_exports_a_run_once_per_experiment(root, mlflow_uri, monkeypatch):
    done = make_run(root, [{"x": 1}], project="once")
    new = make_run(root, [{"x": 2}], project="once")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)  # tracking_uri=None: MLflow's own default
    (first,) = export_mlflow([done])
    refused = f"run {done.id} .*already in MLflow experiment 'once' as run {first}"
    with pytest.raises(AlreadyExportedError, match=refused):
        export_mlflow([new, done], tracking_uri=mlflow_uri)
    mlflow = client(mlflow_uri)
    experiment = mlflow.get_experiment_by_name("once").experiment_id
    assert [r.info.run_id for r in mlflow.search_runs([experiment])] == [first]  # nothing written
    with pytest.raises(ValueError, match="given twice"):
        export_mlflow([new, new], tracking_uri=mlflow_uri)
    (elsewhere,) = export_mlflow([done], tracking_uri=mlflow_uri, experiment="elsewhere")
    assert mlflow.get_run(elsewhere).data.tags["mplogger.run_id"] == done.id
    mlflow.delete_run(first)  # a deleted MLflow run no longer blocks a new export
    (again,) = export_mlflow([done], tracking_uri=mlflow_uri)
    assert again != first and mlflow.get_run(again).info.experiment_id == experiment


def test_mlflow_export_stopped_half_way_is_deleted(root, mlflow_uri):
    stored = make_run(root, [{"x": i} for i in range(PROGRESS_EVERY + 10)], project="stopped")

    def interrupt(n):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        export_mlflow([stored], tracking_uri=mlflow_uri, progress=interrupt)
    mlflow = client(mlflow_uri)
    experiment = mlflow.get_experiment_by_name("stopped").experiment_id
    assert mlflow.search_runs([experiment]) == []
    (mlflow_id,) = export_mlflow([stored], tracking_uri=mlflow_uri)
    assert len(mlflow.get_metric_history(mlflow_id, "x")) == PROGRESS_EVERY + 10


def test_mlflow_names_are_valid_and_deterministic():
    assert [mlflow_name(key) for key in ("loss", "val.acc", "train/loss", "a b-c_d", "größe")] == [
        "loss", "val.acc", "train/loss", "a b-c_d", "größe"]
    assert [mlflow_name(key) for key in ("acc@top1", "a:b", "/abs", "a//b", "a/../b", "x/.", "tail/")] == [
        "acc_top1", "a_b", "_/abs", "a/_/b", "a/__/b", "x/_", "tail/_"]
    long = "k" * 300
    assert len(mlflow_name(long)) == 250 and mlflow_name(long) == mlflow_name(long)
    assert mlflow_name(long) != mlflow_name("k" * 299 + "j") and mlflow_name(long)[:241] == "k" * 241


# --- both --------------------------------------------------------------------------------------
def test_progress_counts_every_row_as_it_goes(root, tmp_path, mlflow_uri):
    pytest.importorskip("tensorboardX")
    runs = [make_run(root, [{"x": i} for i in range(n)], project="progress") for n in (2 * PROGRESS_EVERY + 5, 3)]
    for export in (lambda progress: export_tensorboard(runs, str(tmp_path / "tb"), progress=progress),
                   lambda progress: export_mlflow(runs, tracking_uri=mlflow_uri, progress=progress)):
        calls = []
        export(calls.append)
        assert sum(calls) == sum(run.rows for run in runs) == 2 * PROGRESS_EVERY + 8
        assert calls == [PROGRESS_EVERY, PROGRESS_EVERY, 5, 3]  # streamed, not counted at the end


MISSING = """
import mplogger
from mplogger._readers import _engines
run = mplogger.Api(sys.argv[1]).run(sys.argv[2])
try:
    getattr(_engines, sys.argv[3])([run], sys.argv[4])
except ImportError as exc:
    print("ImportError:", exc)
"""


@pytest.mark.parametrize("missing, function, hint", [
    ("tensorboardX", "export_tensorboard",
     "export --to tensorboard needs tensorboardX: pip install 'mplogger[tensorboard]'"),
    ("mlflow", "export_mlflow", "export --to mlflow needs MLflow: pip install 'mplogger[mlflow]'"),
    ("sqlalchemy", "export_mlflow", "export --to mlflow to a database tracking URI needs SQLAlchemy and Alembic "
                                    "(sqlalchemy is missing): pip install 'mplogger[mlflow]'"),
])
def test_a_missing_engine_names_the_extra(root, tmp_path, without, missing, function, hint):
    if missing == "sqlalchemy":
        pytest.importorskip("mlflow")
    stored = make_run(root, [{"x": 1}])
    target = str(tmp_path / "tb") if function == "export_tensorboard" else f"sqlite:///{tmp_path}/m.db"
    done = without(missing, MISSING, root, stored.id, function, target, timeout=TIMEOUT,
                   MLFLOW_DISABLE_TELEMETRY="true")
    assert done.returncode == 0, done.stderr
    assert f"ImportError: {hint}" in done.stdout, done.stdout
    assert not os.path.exists(tmp_path / "tb") and not os.path.exists(tmp_path / "m.db")


def test_importing_mplogger_imports_no_engine():
    code = ("import sys, mplogger, mplogger._readers._engines; "
            "print(sorted(m for m in ('mlflow', 'tensorboardX', 'tensorboard', 'sqlalchemy') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT,
                          env=script_env())
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_long_non_ascii_names_and_lone_surrogates_export(root, tmp_path, mlflow_uri):
    pytest.importorskip("tensorboardX")
    stored = make_run(root, [{"loss": 1.0, "file": "a\udcffb"}], name="实验" * 75,
                      config={"path": "data/\udcff.bin", "ok": True})
    folder = export_tensorboard([stored], str(tmp_path / "tb"))[0]
    assert len(os.path.basename(folder).encode("utf-8")) <= 255 and os.path.isdir(folder)
    mlflow_id = export_mlflow([stored], tracking_uri=mlflow_uri)[0]
    exported = client(mlflow_uri).get_run(mlflow_id)
    assert exported.data.params["path"] == "data/\\udcff.bin"


def test_mlflow_gets_the_artifacts_a_run_logged(root, tmp_path, mlflow_uri, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MLflow keeps a SQLite store's artifacts under ./mlruns
    source = tmp_path / "source"
    (source / "sub").mkdir(parents=True)
    (source / "train.csv").write_text("a,b\n1,2\n")
    (source / "sub" / "labels.txt").write_text("cat\ndog\n")
    run = mplogger.init(dir=root, project="arts", reinit="create_new")
    dataset = mplogger.Artifact("dataset", "dataset")
    dataset.add_dir(str(source))
    dataset.add_reference("s3://bucket/elsewhere.bin")  # cannot be read offline: left out
    run.log_artifact(dataset, aliases=["best"])
    dataset.wait(timeout=60)
    second = mplogger.Artifact("dataset", "dataset")
    second.add_file(str(source / "train.csv"), "v2.csv")
    run.log_artifact(second).wait(timeout=60)
    run.log({"loss": 1.0})
    run.finish()
    user = mplogger.init(dir=root, project="arts", reinit="create_new")
    user.use_artifact("dataset:best")
    user.finish()

    (mlflow_id,) = export_mlflow([mplogger.Api(root).run(run.id)], tracking_uri=mlflow_uri)
    mlflow = client(mlflow_uri)
    listed = sorted(f.path for f in mlflow.list_artifacts(mlflow_id, "artifacts/dataset"))
    assert listed == ["artifacts/dataset/v0", "artifacts/dataset/v1"]
    got = mlflow.download_artifacts(mlflow_id, "artifacts/dataset", str(tmp_path / "back"))
    assert sorted(os.path.relpath(os.path.join(folder, name), got)
                  for folder, _, names in os.walk(got) for name in names) == [
        "v0/sub/labels.txt", "v0/train.csv", "v1/v2.csv"]
    assert Path(got, "v0", "train.csv").read_text() == "a,b\n1,2\n"
    assert Path(got, "v0", "sub", "labels.txt").read_text() == "cat\ndog\n"
    tags = mlflow.get_run(mlflow_id).data.tags
    assert json.loads(tags["mplogger.artifacts"]) == {"logged": ["arts/dataset:v0", "arts/dataset:v1"]}
    (user_id,) = export_mlflow([mplogger.Api(root).run(user.id)], tracking_uri=mlflow_uri)
    assert json.loads(mlflow.get_run(user_id).data.tags["mplogger.artifacts"]) == {"used": ["arts/dataset:v0"]}
    assert mlflow.list_artifacts(user_id) == [], "a run gets the versions it logged, not those it used"
