"""An accelerate training loop with log_with="wandb", unchanged."""

import torch
from accelerate import Accelerator


def main() -> None:
    accelerator = Accelerator(log_with="wandb", cpu=True)
    accelerator.init_trackers("accelerate-demo", config={"lr": 0.1, "epochs": 1, "optimizer": "sgd"},
                              init_kwargs={"wandb": {"name": "accelerate-loop"}})
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model, optimizer = accelerator.prepare(model, optimizer)
    for step in range(10):
        x = torch.randn(8, 4)
        loss = torch.nn.functional.mse_loss(model(x), x.sum(1, keepdim=True))
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
        accelerator.log({"train_loss": loss.item(), "lr": 0.1}, step=step)
    accelerator.end_training()


if __name__ == "__main__":
    main()
