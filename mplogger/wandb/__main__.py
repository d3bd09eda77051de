"""``python -m wandb`` under ``mplogger run`` (the CLI)."""

from mplogger.wandb.cli.cli import cli

raise SystemExit(cli())
