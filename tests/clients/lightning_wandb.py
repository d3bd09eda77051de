"""A Lightning module with WandbLogger, unchanged; argument `ddp` or `ddp_spawn`: that strategy, devices=2 on CPU."""

import sys

import lightning as L
import torch
from lightning.pytorch.loggers import WandbLogger


class Tiny(L.LightningModule):
    def __init__(self, lr: float = 0.05, hidden: int = 8) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(torch.nn.Linear(4, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))

    def training_step(self, batch, index):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def main() -> None:
    strategy = sys.argv[1] if len(sys.argv) > 1 else "auto"
    ddp = strategy != "auto"
    L.seed_everything(0)
    x = torch.randn(64, 4)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8)
    logger = WandbLogger(project="lightning-demo", name=f"tiny-{strategy}" if ddp else "tiny")
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", devices=2 if ddp else 1,
                        strategy=strategy, logger=logger, log_every_n_steps=1,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(Tiny(), data)


if __name__ == "__main__":
    main()
