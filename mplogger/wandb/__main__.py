"""``python -m wandb`` under ``mplogger run``."""

from mplogger.wandb.cli.cli import cli

raise SystemExit(cli())
