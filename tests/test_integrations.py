"""Real libraries that log to wandb, unchanged, through ``mplogger run --``, read back through the Api.

Each client script in ``tests/clients`` runs in a clean subprocess (libraries switch themselves off
under pytest, and ranks must start the way a user's job does). Each job must leave one finished run
with the right rows, keys and config, and no process behind (found by a marker in the environment).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import mplogger
from conftest import REPO, processes_with, wait_for

CLIENTS = Path(__file__).resolve().parent / "clients"

pytest.importorskip("torch", reason="the integration clients need torch (the test extra installs it on CPython 3.11)")


def run_job(tmp_path: Path, *command: str, timeout: float = 240) -> "mplogger.Api":
    """``mplogger run -- COMMAND`` in ``tmp_path`` with a clean environment; the runs it stored."""
    mark = f"MPLOGGER_JOB_MARK={uuid.uuid4().hex}"
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "TMPDIR") if key in os.environ}
    env.update(PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1",
               TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
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
