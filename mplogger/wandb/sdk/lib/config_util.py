"""``wandb.sdk.lib.config_util`` (user process): the error of a config value changed without leave."""

from mplogger._shared._errors import ConfigError

__all__ = ["ConfigError"]
