"""``wandb.sdk.lib`` (user process): ``RunDisabled``, the run of ``mode="disabled"``."""

from mplogger._user._disabled import DisabledRun as RunDisabled
from mplogger.wandb.sdk.lib import config_util

__all__ = ["RunDisabled", "config_util"]
