"""``wandb.Settings`` (user process): wandb's settings, as mplogger's :class:`~mplogger.Settings` and init arguments.

mplogger's own setting names are taken as they are. wandb's names that mean something here are
translated (``start_method="thread"`` runs as ``"auto"``; ``x_disable_stats`` turns system metrics
off; ``console="wrap_raw"`` is ``"wrap"``); wandb's other known names, and its ``x_``/``_``
experimental ones, are accepted and have no effect. Any other name is a :class:`TypeError`.
"""

from __future__ import annotations

import logging
from typing import Any, Dict

import attrs

from mplogger._settings import Settings as _Settings

__all__ = ["Settings"]

_logger = logging.getLogger("mplogger")

_IGNORED = frozenset("""
    allow_offline_artifacts allow_val_change anonymous api_key app_url base_url code_dir console_multipart
    disable_code disable_git disable_job_creation email entity fork_from git_commit git_remote git_remote_url
    git_root heartbeat_seconds host http_proxy https_proxy identity_token_file ignore_globs init_timeout
    insecure_disable_ssl job_name job_source label_disable launch launch_config_path login_timeout mode
    notebook_name program program_abspath program_relpath project quiet reinit relogin resume resume_from
    resumed root_dir run_group run_id run_job_type run_name run_notes run_tags sagemaker_disable save_code
    show_colors show_emoji show_errors show_info show_warnings silent strict summary_timeout sweep_id
    sync_tensorboard table_raise_on_max_row_limit_exceeded username
""".split())

_START_METHODS = {"thread": "auto", "auto": "auto", "fork": "fork", "forkserver": "forkserver", "spawn": "spawn"}
_CONSOLES = {"auto": "auto", "off": "off", "wrap": "wrap", "redirect": "redirect", "wrap_raw": "wrap",
             "wrap_emu": "wrap"}
_OURS = frozenset(f.name for f in attrs.fields(_Settings))
_INIT_ARGUMENTS = {"mode": "mode", "project": "project", "entity": "entity", "run_name": "name", "run_id": "id",
                   "run_tags": "tags", "run_group": "group", "run_job_type": "job_type", "run_notes": "notes",
                   "resume": "resume", "root_dir": "dir", "save_code": "save_code", "reinit": "reinit",
                   "allow_val_change": "allow_val_change", "resume_from": "resume_from", "fork_from": "fork_from"}


class Settings:
    """wandb's ``Settings(...)``: mplogger's settings (:attr:`mplogger_settings`) and the ``init()``
    arguments wandb also takes as settings (``mode``, ``project``, ``run_name``, ``run_id``, ...),
    which ``init()`` uses when its own argument is not given."""

    def __init__(self, **settings: Any) -> None:
        values: Dict[str, Any] = {}
        init: Dict[str, Any] = {}
        for name, value in settings.items():
            key = name[2:] if name.startswith("x_") else name.lstrip("_")
            if value is None:
                continue  # wandb: None means "not set"
            if name in _INIT_ARGUMENTS:
                init[_INIT_ARGUMENTS[name]] = value
            elif name == "start_method":
                if value not in _START_METHODS:
                    raise ValueError(f"Settings(start_method={value!r}): use fork, spawn, forkserver or thread")
                values["start_method"] = _START_METHODS[value]
            elif name == "console":
                if value not in _CONSOLES:
                    raise ValueError(f"Settings(console={value!r}): use auto, off, wrap or redirect")
                values["console"] = _CONSOLES[value]
            elif key == "disable_stats":
                if value:
                    values["system_interval"] = 0.0
            elif key in ("stats_sampling_interval", "stats_sample_rate_seconds"):
                values.setdefault("system_interval", float(value))
            elif name in _OURS:
                values[name] = value
            elif name in _IGNORED or name != key:
                _logger.debug("wandb setting %s=%r has no effect in mplogger", name, value)
            else:
                raise TypeError(f"Settings(): unknown setting {name!r} (neither wandb's nor mplogger's)")
        self.mplogger_settings = _Settings(**values)
        self.init_arguments = init

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("mplogger_settings", "init_arguments"):
            raise AttributeError(name)
        if name in _OURS:
            return getattr(self.mplogger_settings, name)
        wanted = _INIT_ARGUMENTS.get(name)
        if wanted is not None:
            return self.init_arguments.get(wanted)
        raise AttributeError(f"Settings has no setting {name!r}")

    def __repr__(self) -> str:
        return f"wandb.Settings({self.mplogger_settings!r}, init={self.init_arguments!r})"
