"""``wandb.cli`` (user process): the ``wandb`` command, as a job run by ``mplogger run`` may call it."""
