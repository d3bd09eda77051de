"""Real libraries that log to wandb, unchanged, through ``mplogger run --``, read back through the Api.

Each client script in ``tests/clients`` runs in a clean subprocess (libraries switch themselves off
under pytest, and ranks must start the way a user's job does). Each job must leave one finished run
with the right rows, keys and config, and no process behind (found by a marker in the environment).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Mapping, Optional

import pytest

import mplogger
from conftest import REPO, TESTS, processes_with, wait_for

CLIENTS = TESTS / "clients"

pytest.importorskip("torch", reason="the integration clients need torch (the test extra installs it on CPython 3.11)")


def run_job(tmp_path: Path, *command: str, timeout: float = 240,
            env_extra: Optional[Mapping[str, str]] = None) -> "mplogger.Api":
    """``mplogger run -- COMMAND`` in ``tmp_path`` with a clean environment (plus ``env_extra``); the runs it stored."""
    mark = f"MPLOGGER_JOB_MARK={uuid.uuid4().hex}"
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "TMPDIR") if key in os.environ}
    env.update(PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1",
               TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
    env.update(env_extra or {})
    env.update([mark.split("=", 1)])
    result = subprocess.run([sys.executable, "-m", "mplogger", "run", "--", *command], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    wait_for(lambda: not processes_with(mark), 20, "every process of the job to exit")
    return mplogger.Api(str(tmp_path))  # init(dir=".") and the default both store under ./mplogger-runs


def only_run(api: "mplogger.Api") -> "mplogger.StoredRun":
    runs = list(api.runs())
    assert len(runs) == 1, [(run.id, run.name, run.state) for run in runs]
    assert runs[0].state == "finished", runs[0].state
    return runs[0]


def keys_of(run: "mplogger.StoredRun") -> set:
    return {key for row in run.history() for key in row if not key.startswith("_")}


def check_hf_trainer(run: "mplogger.StoredRun", world_size: int) -> None:
    assert (run.project, run.name) == ("huggingface", "tiny-bert")
    history = run.history()
    assert [row["train/global_step"] for row in history] == [2, 4, 6, 8, 8]  # logging_steps=2, then the totals
    assert {"train/loss", "train/learning_rate", "train/grad_norm", "train/epoch"} <= keys_of(run)
    config = run.config
    assert config["model/num_parameters"] > 0 and config["hidden_size"] == 32
    assert config["id2label"] == {"0": "LABEL_0", "1": "LABEL_1"}  # int keys, as JSON stores them
    assert config["max_steps"] == 8 and config["report_to"] == ["wandb"]
    summary = run.summary
    assert summary["train_runtime"] > 0 and "train_loss" in summary  # set with run.summary[...] =


def test_hugging_face_trainer(tmp_path):
    check_hf_trainer(only_run(run_job(tmp_path, sys.executable, str(CLIENTS / "hf_trainer.py"))), 1)


def test_hugging_face_trainer_with_dataloader_workers(tmp_path):
    run = only_run(run_job(tmp_path, sys.executable, str(CLIENTS / "hf_trainer.py"), "2"))
    check_hf_trainer(run, 1)


def test_hugging_face_trainer_under_torchrun(tmp_path):
    run = only_run(run_job(tmp_path, sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node", "2", str(CLIENTS / "hf_trainer.py")))
    check_hf_trainer(run, 2)
    assert run.config["per_device_train_batch_size"] == 4


def check_lightning(run: "mplogger.StoredRun", steps: int) -> None:
    assert run.project == "lightning-demo"
    history = run.history()
    assert [row["trainer/global_step"] for row in history if "train_loss" in row] == list(range(steps))
    assert {"train_loss", "epoch", "trainer/global_step"} <= keys_of(run)
    assert (run.config["lr"], run.config["hidden"]) == (0.05, 8)  # save_hyperparameters -> config.update


def test_lightning_wandb_logger(tmp_path):
    run = only_run(run_job(tmp_path, sys.executable, str(CLIENTS / "lightning_wandb.py")))
    assert run.name == "tiny"
    check_lightning(run, 16)  # 64 samples / batch 8 = 8 steps an epoch, 2 epochs
    assert (tmp_path / "mplogger-runs" / "mplogger.db").exists()  # dir="." keeps the store in a folder
    assert not (tmp_path / "mplogger.db").exists() and not (tmp_path / "runs").exists()


def test_lightning_ddp_on_two_cpu_processes(tmp_path):
    run = only_run(run_job(tmp_path, sys.executable, str(CLIENTS / "lightning_wandb.py"), "ddp"))
    assert run.name == "tiny-ddp"
    check_lightning(run, 8)  # each rank sees half the data


def test_lightning_ddp_spawn_attaches_the_spawned_rank_to_the_run(tmp_path):
    # WandbLogger.__getstate__ starts the run while multiprocessing pickles the spawned ranks, and
    # the spawned rank 0 logs through wandb._attach(run._attach_id)
    run = only_run(run_job(tmp_path, sys.executable, str(CLIENTS / "lightning_wandb.py"), "ddp_spawn"))
    assert run.name == "tiny-ddp_spawn"
    check_lightning(run, 8)


def test_accelerate_log_with_wandb(tmp_path):
    run = only_run(run_job(tmp_path, sys.executable, str(CLIENTS / "accelerate_loop.py")))
    assert (run.project, run.name) == ("accelerate-demo", "accelerate-loop")
    assert [row["_step"] for row in run.history()] == list(range(10))  # accelerator.log(step=)
    assert keys_of(run) == {"train_loss", "lr"}
    assert run.config == {"lr": 0.1, "epochs": 1, "optimizer": "sgd"}


def test_nanogpt_style_module_level_script_without_finish(tmp_path):
    run = only_run(run_job(tmp_path, sys.executable, str(CLIENTS / "nanogpt_style.py")))
    assert (run.project, run.name) == ("owt", "gpt2-tiny")
    history = run.history()
    assert [row["iter"] for row in history] == [0, 2, 4, 6, 8, 10]
    assert all(isinstance(row["train/loss"], float) and isinstance(row["lr"], float) for row in history)
    assert run.config["learning_rate"] == 6e-4 and run.config["wandb_project"] == "owt"


# --- artifacts logged by the libraries themselves ----------------------------------------------

def test_hugging_face_trainer_logs_the_model_at_the_end(tmp_path):
    # WANDB_LOG_MODEL=end: WandbCallback.setup logs `model-<run name>` (the architecture, written
    # with new_file) as `base_model`; on_train_end saves the model to a temporary folder and logs
    # every file of it as the next version, `final_model`
    from safetensors.torch import load_file

    api = run_job(tmp_path, sys.executable, str(CLIENTS / "hf_trainer.py"), env_extra={"WANDB_LOG_MODEL": "end"})
    run = only_run(api)
    check_hf_trainer(run, 1)  # logging the model leaves the rows and config as they were
    versions = api.artifact_versions("model-tiny-bert")
    assert [(a.version, a.aliases) for a in versions] == [("v1", ["latest", "final_model"]), ("v0", ["base_model"])]
    assert all(a.type == "model" and a.project == "huggingface" for a in versions)

    base = api.artifact("model-tiny-bert:base_model")
    assert [entry.path for entry in base.files()] == ["model_architecture.txt"]
    assert base.metadata["initial_model"] is True
    assert base.metadata["num_parameters"] == run.config["model/num_parameters"]
    assert base.metadata["model_config"]["hidden_size"] == 32

    final = api.artifact("model-tiny-bert:latest")
    assert final.name == "model-tiny-bert:v1" and final.digest == versions[0].digest
    names = [entry.path for entry in final.files()]
    assert names == ["config.json", "model.safetensors", "model_architecture.txt", "training_args.bin"]
    assert final.get_entry("model_architecture.txt").digest == base.get_entry("model_architecture.txt").digest
    assert final.metadata["final_model"] is True
    assert final.metadata["train_loss"] == run.summary["train_loss"]  # the numbers of the summary, as HF takes them
    assert final.size == sum(entry.size for entry in final.files())

    folder = Path(final.download(tmp_path / "download"))
    final.verify(str(folder))
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == sorted(names)
    weights = load_file(str(folder / "model.safetensors"))
    assert weights["bert.embeddings.word_embeddings.weight"].shape == (100, 32)  # vocab_size x hidden_size
    assert weights["bert.encoder.layer.1.intermediate.dense.weight"].shape == (37, 32)  # 2 layers, intermediate 37
    assert weights["classifier.weight"].shape == (2, 32)  # num_labels
    assert all(t.isfinite().all() for t in weights.values())
    assert json.loads((folder / "config.json").read_text())["num_hidden_layers"] == 2
    assert (folder / "model_architecture.txt").read_text().startswith("BertForSequenceClassification(")

    assert final.logged_by().id == run.id and base.logged_by().id == run.id
    assert [a.name for a in run.logged_artifacts()] == ["model-tiny-bert:v0", "model-tiny-bert:v1"]
    assert run.used_artifacts() == [] and final.used_by() == []


def check_logged_checkpoint(tmp_path: Path, run: "mplogger.StoredRun", api: "mplogger.Api") -> None:
    """WandbLogger(log_model=True) kept the ModelCheckpoint and, at finalize, logged the checkpoint it
    kept (save_top_k=1) as `model-<run id>`, file model.ckpt, metadata score/original_filename."""
    versions = api.artifact_versions(f"model-{run.id}")
    assert len(versions) == 1, [(a.name, a.aliases) for a in versions]  # save_top_k=1: only the best is kept
    artifact = api.artifact(f"model-{run.id}:best", type="model")
    assert artifact.name == f"model-{run.id}:v0" and artifact.aliases == ["latest", "best"]
    assert [entry.path for entry in artifact.files()] == ["model.ckpt"]

    metadata = artifact.metadata
    assert metadata["original_filename"].endswith(".ckpt") and metadata["original_filename"].startswith("epoch=")
    assert isinstance(metadata["score"], float)  # best_model_score.item(): the best train_loss
    assert metadata["ModelCheckpoint"]["monitor"] == "train_loss" and metadata["ModelCheckpoint"]["mode"] == "min"
    assert metadata["ModelCheckpoint"]["save_top_k"] == 1
    losses = [row["train_loss"] for row in run.history() if "train_loss" in row]
    assert min(abs(metadata["score"] - loss) for loss in losses) < 1e-6  # a logged train_loss

    folder = Path(artifact.download(tmp_path / "download"))
    checkpoint_file = folder / "model.ckpt"
    original = tmp_path / "lightning-demo" / run.id / "checkpoints" / metadata["original_filename"]
    assert checkpoint_file.read_bytes() == original.read_bytes()  # Lightning's ckpt folder: save_dir/project/id
    checkpoint = torch_load(checkpoint_file)
    state = checkpoint["state_dict"]
    assert {key: tuple(value.shape) for key, value in state.items()} == {
        "net.0.weight": (8, 4), "net.0.bias": (8,), "net.2.weight": (1, 8), "net.2.bias": (1,)}
    assert checkpoint["hyper_parameters"] == {"lr": 0.05, "hidden": 8}
    assert metadata["original_filename"] == f"epoch={checkpoint['epoch']}-step={checkpoint['global_step']}.ckpt"
    assert artifact.logged_by().id == run.id
    assert [a.name for a in run.logged_artifacts()] == [f"model-{run.id}:v0"]


def test_lightning_wandb_logger_logs_the_best_checkpoint(tmp_path):
    api = run_job(tmp_path, sys.executable, str(CLIENTS / "lightning_log_model.py"))
    run = only_run(api)
    assert run.name == "tiny-ckpt"
    check_lightning(run, 16)
    check_logged_checkpoint(tmp_path, run, api)


def test_lightning_ddp_spawn_logs_the_best_checkpoint_from_the_spawned_rank(tmp_path):
    # WandbLogger.finalize runs in the spawned rank 0, whose run is attached (a ChildRun)
    api = run_job(tmp_path, sys.executable, str(CLIENTS / "lightning_log_model.py"), "ddp_spawn")
    run = only_run(api)
    assert run.name == "tiny-ckpt-ddp_spawn"
    check_lightning(run, 8)
    check_logged_checkpoint(tmp_path, run, api)


def torch_load(path: Path) -> dict:
    import torch

    return torch.load(path, map_location="cpu", weights_only=False)  # a checkpoint this test's job wrote
