"""Lightning's WandbLogger(log_model=True) with a ModelCheckpoint, unchanged: the best checkpoint is
logged at the end of fit as the artifact ``model-<run id>`` (aliases latest and best), file ``model.ckpt``.
Argument `ddp` or `ddp_spawn`: that strategy, devices=2 on CPU (rank 0 logs the artifact)."""

import sys

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import WandbLogger

from lightning_wandb import Tiny  # the module of test_lightning_wandb_logger (this folder is on sys.path)


def main() -> None:
    strategy = sys.argv[1] if len(sys.argv) > 1 else "auto"
    ddp = strategy != "auto"
    L.seed_everything(0)
    x = torch.randn(64, 4)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8)
    logger = WandbLogger(project="lightning-demo", name=f"tiny-ckpt-{strategy}" if ddp else "tiny-ckpt",
                         log_model=True)
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", devices=2 if ddp else 1,
                        strategy=strategy, logger=logger, log_every_n_steps=1,
                        callbacks=[ModelCheckpoint(monitor="train_loss", mode="min")],
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(Tiny(), data)


if __name__ == "__main__":
    main()
