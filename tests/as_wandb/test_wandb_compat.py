"""The wandb drop-in: each rule of wandb's API that mplogger follows, pinned by its own test."""

from __future__ import annotations

import argparse
import dataclasses
import enum
import json
import os
import pathlib
import sqlite3

import pytest

import mplogger
import mplogger as wandb


def stored(root, run):
    return mplogger.Api(root).run(run.id)


# --- module level -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["init", "log", "finish", "setup", "teardown", "save", "watch", "alert",
                                  "termlog", "termwarn", "termerror", "Settings", "Api", "Error",
                                  "__version__", "run", "config", "summary"])
def test_wandb_names_exist(name):
    assert hasattr(wandb, name)


def test_run_is_none_before_init_and_after_finish(root):
    assert wandb.run is None
    run = wandb.init(dir=root)
    assert wandb.run is run and run.url is None
    run._label(repo="x", code="y")  # integrations call this private hook
    wandb.finish()
    wandb.finish()
    assert wandb.run is None


def test_unknown_init_keyword_is_a_type_error(root):
    with pytest.raises(TypeError, match="colour"):
        wandb.init(dir=root, colour="blue")


# --- environment variables --------------------------------------------------------------------
def test_wandb_env_vars_fill_unset_arguments_and_ours_win(root, monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_PROJECT", "from-wandb")
    monkeypatch.setenv("WANDB_NAME", "wandb-name")
    monkeypatch.setenv("MPLOGGER_NAME", "our-name")
    monkeypatch.setenv("WANDB_NOTES", "some notes")
    monkeypatch.setenv("WANDB_TAGS", "a, b")
    monkeypatch.setenv("WANDB_RUN_GROUP", "grp")
    monkeypatch.setenv("WANDB_JOB_TYPE", "eval")
    monkeypatch.setenv("WANDB_ENTITY", "team")
    monkeypatch.setenv("WANDB_RUN_ID", "envrun01")
    monkeypatch.setenv("WANDB_DIR", root)
    run = wandb.init()
    run.finish()
    s = mplogger.Api(root).run("envrun01")
    assert (s.project, s.name, s.notes, s.tags, s.group, s.job_type, s.entity) == (
        "from-wandb", "our-name", "some notes", ["a", "b"], "grp", "eval", "team")
    explicit = wandb.init(project="explicit", dir=root, id="explicit1")
    explicit.finish()
    assert mplogger.Api(root).run("explicit1").project == "explicit"


@pytest.mark.parametrize("variable, value", [("WANDB_MODE", "disabled"), ("MPLOGGER_MODE", "disabled")])
def test_disabled_mode_from_env_writes_nothing(tmp_path, monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    root = tmp_path / "store"
    run = wandb.init(dir=str(root), config={"a": 1})
    run.log({"x": 1})
    run.config.b = 2
    run.summary["best"] = 3
    assert wandb.run is run and run.config.a == 1 and run.summary["x"] == 1
    run.finish()
    wandb.finish()
    assert wandb.run is None and not root.exists()
    assert mplogger._user._session.current().client is None  # no manager was started


@pytest.mark.parametrize("mode", ["online", "offline", "dryrun", None])
def test_online_and_offline_modes_log_locally(root, mode):
    run = wandb.init(dir=root, mode=mode)
    run.log({"x": 1})
    run.finish()
    assert stored(root, run).summary == {"x": 1}


def test_bad_mode(root):
    with pytest.raises(ValueError, match="mode"):
        wandb.init(dir=root, mode="cloudy")


# --- config -----------------------------------------------------------------------------------
def test_config_from_namespace_yaml_json_and_defaults_file(root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config-defaults.yaml").write_text("lr:\n  desc: learning rate\n  value: 0.1\nepochs: 3\n")
    (tmp_path / "extra.json").write_text(json.dumps({"epochs": 5, "opt": "adam"}))
    run = wandb.init(dir=root, config="extra.json")
    assert dict(run.config) == {"lr": 0.1, "epochs": 5, "opt": "adam"}
    run.finish()
    (tmp_path / "config-defaults.yaml").unlink()
    args = argparse.Namespace(batch=32, seed=1)
    second = wandb.init(dir=root, config=args, reinit=True)
    assert dict(second.config) == {"batch": 32, "seed": 1}
    second.finish()
    assert stored(root, second).config == {"batch": 32, "seed": 1}


def test_config_include_and_exclude_keys(root):
    run = wandb.init(dir=root, config={"a": 1, "b": 2, "c": 3}, config_exclude_keys=["b"])
    assert dict(run.config) == {"a": 1, "c": 3}
    run.finish()
    run = wandb.init(dir=root, config={"a": 1, "b": 2}, config_include_keys=["b"], reinit=True)
    assert dict(run.config) == {"b": 2}
    run.finish()


def test_changing_a_config_value_is_refused_unless_allowed(root):
    run = wandb.init(dir=root, config={"lr": 0.1})
    run.config.lr = 0.1  # same value: fine
    with pytest.raises(ValueError) as info:
        run.config.lr = 0.2
    assert "'lr'" in str(info.value) and "0.1" in str(info.value) and "0.2" in str(info.value)
    run.config.update({"lr": 0.3}, allow_val_change=True)
    run.config.setdefaults({"lr": 9, "new": 1})
    assert (run.config.lr, run.config["new"], run.config.get("missing", 7)) == (0.3, 1, 7)
    assert "lr" in run.config and sorted(run.config.keys()) == ["lr", "new"]
    run.finish()
    assert stored(root, run).config == {"lr": 0.3, "new": 1}
    relaxed = wandb.init(dir=root, config={"lr": 0.1}, allow_val_change=True, reinit=True)
    relaxed.config.lr = 0.5
    relaxed.finish()


class Colour(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Optim:
    name: str = "sgd"
    momentum: float = 0.9


def test_config_values_that_are_not_json_are_stored_as_wandb_stores_them(root):
    run = wandb.init(dir=root, config={"path": pathlib.Path("/data/x"), "colour": Colour.RED, "opt": Optim(),
                                       "ns": argparse.Namespace(k=1), "fn": len, "pair": (1, 2)})
    run.finish()
    assert stored(root, run).config == {"path": "/data/x", "colour": "red", "opt": {"name": "sgd", "momentum": 0.9},
                                        "ns": {"k": 1}, "fn": "<built-in function len>", "pair": [1, 2]}


# --- other calls ------------------------------------------------------------------------------
def test_entity_and_save_code_are_stored(root):
    run = wandb.init(dir=root, entity="team", save_code=True, anonymous="allow", magic=True,
                     monitor_gym=True, sync_tensorboard=False)
    run.finish()
    s = stored(root, run)
    assert s.entity == "team" and s.metadata["save_code"] is True


@pytest.mark.parametrize("policy", ["now", "end", "live"])
def test_save_copies_files_into_the_run_folder(root, tmp_path, policy):
    source = tmp_path / "ckpt"
    source.mkdir()
    (source / "model.txt").write_text("v1")
    run = wandb.init(dir=root)
    copies = run.save(str(source / "*.txt"), policy=policy)
    target = pathlib.Path(run.dir) / "files" / "model.txt"
    assert copies == [str(target)]
    assert target.exists() == (policy != "end")
    (source / "model.txt").write_text("version two")
    run.finish()
    assert not target.is_symlink()
    assert target.read_text() == ("v1" if policy == "now" else "version two")


def test_save_before_init_is_a_clear_error():
    with pytest.raises(mplogger.UsageError, match="init"):
        wandb.save("*.txt")


def test_alert_is_recorded_and_printed(root, capsys):
    run = wandb.init(dir=root)
    wandb.alert(title="loss exploded", text="loss is nan at step 3", level="WARN")
    run.finish()
    assert "loss exploded" in capsys.readouterr().err
    with sqlite3.connect(os.path.join(root, "mplogger.db")) as conn:
        assert conn.execute("SELECT level, title, text FROM alerts WHERE run_id = ?", (run.id,)).fetchall() == [
            ("WARN", "loss exploded", "loss is nan at step 3")]


def test_watch_is_a_one_time_notice(root, capsys):
    run = wandb.init(dir=root)
    wandb.watch(object(), log="all")
    run.watch(object())
    run.finish()
    assert capsys.readouterr().err.count("watch() does nothing") == 1


def test_termlog_repeat(capsys):
    wandb.termlog("hello once", repeat=False)
    wandb.termlog("hello once", repeat=False)
    wandb.termwarn("careful")
    wandb.termerror("broken")
    err = capsys.readouterr().err
    assert err.count("hello once") == 1 and "WARNING careful" in err and "ERROR broken" in err


# --- define_metric ----------------------------------------------------------------------------
def test_define_metric_summaries_goal_glob_and_step_sync(root):
    run = wandb.init(dir=root)
    wandb.define_metric("epoch")
    wandb.define_metric("val/*", step_metric="epoch", summary="min,max,mean,best,last", goal="maximize")
    run.define_metric("loss", summary="min")
    run.define_metric("quiet", summary="none")
    for epoch in range(4):
        run.log({"epoch": epoch, "loss": 4 - epoch, "quiet": epoch})
        run.log({"val/acc": [0.1, float("nan"), 0.3, 0.2][epoch]})
    run.finish()
    s = stored(root, run)
    assert s.summary["loss"] == {"min": 1}
    assert s.summary["val/acc"] == {"min": 0.1, "max": 0.3, "mean": pytest.approx(0.2), "best": 0.3, "last": 0.2}
    assert "quiet" not in s.summary and s.summary["epoch"] == 3
    synced = [(r["epoch"], r["val/acc"]) for r in s.history(keys=["val/acc", "epoch"])]
    assert [e for e, _ in synced] == [0, 1, 2, 3]


def test_define_metric_bad_arguments_fail_at_the_call_site(root):
    run = wandb.init(dir=root)
    with pytest.raises(ValueError, match="median"):
        run.define_metric("loss", summary="min,median")
    with pytest.raises(ValueError, match="goal"):
        run.define_metric("loss", goal="sideways")
    run.finish()


def test_define_metric_survives_resume(root):
    run = wandb.init(dir=root, id="metric01")
    run.define_metric("loss", summary="min")
    run.log({"loss": 3})
    run.finish()
    again = wandb.init(dir=root, id="metric01", resume="allow")
    again.log({"loss": 5})
    again.log({"loss": 1})
    again.finish()
    assert stored(root, again).summary["loss"] == {"min": 1}


# --- media and arrays -------------------------------------------------------------------------
def test_media_are_files_in_the_run_folder_and_read_back(root):
    np = pytest.importorskip("numpy")
    run = wandb.init(dir=root)
    table = wandb.Table(columns=["epoch", "note"])
    table.add_data(1, "ok")
    run.log({"hist": wandb.Histogram([1, 2, 2, 3], num_bins=3), "table": table,
             "image": wandb.Image(np.zeros((4, 6, 3), dtype=np.uint8), caption="black"),
             "weights": np.arange(100.0), "scalar_array": np.array([2.5])})
    run.finish()
    (row,) = stored(root, run).history()
    assert isinstance(row["hist"], wandb.Histogram) and sum(row["hist"].values) == 4
    assert isinstance(row["weights"], wandb.Histogram) and sum(row["weights"].values) == 100
    assert isinstance(row["table"], wandb.Table) and row["table"].data == [[1, "ok"]]
    assert row["image"].startswith(os.path.join(run.dir, "media")) and open(row["image"], "rb").read(4) == b"\x89PNG"
    assert row["scalar_array"] == 2.5
    with sqlite3.connect(os.path.join(root, "mplogger.db")) as conn:
        kind = conn.execute("SELECT json_extract(data, '$.image._type') FROM history").fetchone()[0]
    assert kind == "image-file"


def test_torch_tensors_are_taken_as_wandb_takes_them(root):
    torch = pytest.importorskip("torch")
    run = wandb.init(dir=root)
    run.log({"loss": torch.tensor(0.25), "grads": torch.ones(10)})
    run.finish()
    (row,) = stored(root, run).history()
    assert row["loss"] == 0.25 and isinstance(row["grads"], wandb.Histogram)


REALISTIC = """
    import argparse
    import math
    import mplogger as wandb

    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()

    wandb.init(project="mnist", config=args, tags=["baseline"])
    wandb.define_metric("epoch")
    wandb.define_metric("val/*", step_metric="epoch", summary="max")
    wandb.define_metric("train/loss", summary="min")
    step = 0
    for epoch in range(wandb.config.epochs):
        for batch in range(50):
            loss = math.exp(-(step / 40)) * (1 + 0.1 * math.sin(batch))
            wandb.log({"train/loss": loss, "train/lr": wandb.config.lr})
            step += 1
        wandb.log({"epoch": epoch, "val/acc": 0.5 + 0.1 * epoch})
    wandb.summary["final_note"] = "done"
    wandb.config.update({"batches": 50})
    print("RUN", wandb.run.id)
"""


def test_a_realistic_wandb_script_runs_unchanged(script, tmp_path):
    from conftest import run_script, script_env

    root = str(tmp_path / "store")
    result = run_script(script(REALISTIC, "train.py"), "--lr", "0.05",
                        env=script_env(WANDB_DIR=root, WANDB_MODE="offline"))
    assert result.returncode == 0, result.stderr
    run = mplogger.Api(root).run(result.stdout.split("RUN ")[1].split()[0])
    assert run.state == "finished" and run.project == "mnist" and run.tags == ["baseline"]
    assert run.config == {"lr": 0.05, "epochs": 3, "batches": 50}
    assert run.rows == 153 and run.summary["val/acc"] == {"max": pytest.approx(0.7)}
    assert run.summary["train/loss"]["min"] < 0.05 and run.summary["final_note"] == "done"
    epochs = [r["epoch"] for r in run.history(keys=["val/acc", "epoch"])]
    assert epochs == [0, 1, 2]


AUTO_RESUME = """
    import sys, mplogger
    run = mplogger.init(dir=sys.argv[1], resume="auto")
    run.log({"attempt": int(sys.argv[2])})
    print("RUN", run.id, run.step, flush=True)
    if sys.argv[2] == "1":
        sys.exit(3)
"""


def test_resume_auto_continues_the_scripts_last_unfinished_run(script, root):
    from conftest import run_script

    path = script(AUTO_RESUME, "train.py")
    first = run_script(path, root, "1")
    second = run_script(path, root, "2")
    third = run_script(path, root, "3")
    ids = [r.stdout.split("RUN ")[1].split()[0] for r in (first, second, third)]
    assert first.returncode == 3 and second.returncode == 0 and third.returncode == 0
    assert ids[0] == ids[1] != ids[2]  # the failed run is resumed; after a clean finish, a new run
    resumed = mplogger.Api(root).run(ids[0])
    assert [r["attempt"] for r in resumed.history()] == [1, 2] and resumed.state == "finished"


def test_resume_never_on_an_existing_run_is_refused(root):
    wandb.init(dir=root, id="exists01").finish()
    with pytest.raises(ValueError, match="already exists"):
        wandb.init(dir=root, id="exists01", resume="never")


# --- where runs go (init(dir=...), WANDB_DIR, MPLOGGER_DIR) -------------------------------------
def test_init_dir_keeps_the_store_in_a_folder_under_it_as_wandb_does(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = wandb.init(dir=".", name="here")  # Lightning's save_dir default
    run.finish()
    assert (tmp_path / "mplogger-runs" / "mplogger.db").exists()
    assert sorted(os.listdir(tmp_path)) == ["mplogger-runs"]
    for reader in (tmp_path, tmp_path / "mplogger-runs", None):
        assert [r.name for r in mplogger.Api(None if reader is None else str(reader)).runs()] == ["here"]


def test_a_folder_that_is_a_store_already_is_used_as_it_is(tmp_path):
    legacy = tmp_path / "old-store"
    legacy.mkdir()
    sqlite3.connect(legacy / "mplogger.db").close()  # a store made where dir= named the store itself
    run = wandb.init(dir=str(legacy))
    run.finish()
    assert not (legacy / "mplogger-runs").exists()
    assert [r.id for r in mplogger.Api(str(legacy)).runs()] == [run.id]


def test_wandb_dir_is_the_folder_above_the_store_and_mplogger_dir_is_the_store(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "w"))
    first = wandb.init()
    first.finish()
    assert first.root == str(tmp_path / "w" / "mplogger-runs")
    monkeypatch.setenv("MPLOGGER_DIR", str(tmp_path / "exact"))
    second = wandb.init(dir=str(tmp_path / "code-default"))  # the job's launcher wins over a library default
    second.finish()
    assert second.root == str(tmp_path / "exact") and not (tmp_path / "code-default").exists()
    assert [r.id for r in mplogger.Api().runs()] == [second.id]


def test_seeding_random_does_not_replay_run_ids(root):
    import random

    ids = []
    for _ in range(2):
        random.seed(0)  # as Lightning's seed_everything and transformers' set_seed do
        run = wandb.init(dir=root, resume="allow")  # Lightning's resume: a replayed id would resume a run
        ids.append(run.id)
        run.finish()
    assert ids[0] != ids[1]
    assert len(list(mplogger.Api(root).runs())) == 2


def test_a_file_named_like_the_store_folder_is_not_an_empty_store(tmp_path):
    (tmp_path / "mplogger-runs").write_text("not a folder")
    for given in (tmp_path, tmp_path / "mplogger-runs"):
        with pytest.raises(FileNotFoundError, match="not a folder"):
            list(mplogger.Api(str(given)).runs())
