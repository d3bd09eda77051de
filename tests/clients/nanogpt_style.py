"""A nanoGPT-style script, unchanged: module-level wandb calls, 0-d tensors logged, no finish()."""

import torch

wandb_log = True
wandb_project = "owt"
wandb_run_name = "gpt2-tiny"
learning_rate = 6e-4
max_iters = 12
config = {k: v for k, v in globals().items() if not k.startswith("_") and isinstance(v, (int, float, bool, str))}

if wandb_log:
    import wandb
    wandb.init(project=wandb_project, name=wandb_run_name, config=config)

torch.manual_seed(0)
weights = torch.nn.Parameter(torch.randn(8))
for iter_num in range(max_iters):
    loss = (weights ** 2).mean()
    loss.backward()
    with torch.no_grad():
        weights -= learning_rate * 100 * weights.grad
        weights.grad = None
    if wandb_log and iter_num % 2 == 0:
        wandb.log({"iter": iter_num, "train/loss": loss.detach(), "lr": torch.tensor(learning_rate),
                   "mfu": 12.5})
