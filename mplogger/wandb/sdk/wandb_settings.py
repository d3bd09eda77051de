"""``wandb.Settings`` (user process): wandb's settings, as mplogger's :class:`~mplogger.Settings` and init arguments.

mplogger's own setting names are taken as they are. wandb's names that mean something here are
translated (``start_method="thread"`` runs as ``"auto"``; ``x_disable_stats`` turns system metrics
off; ``x_stats_sampling_interval`` is ``system_interval``; ``console="wrap_raw"`` is ``"wrap"``), and
the ones that are ``init()`` arguments (``mode``, ``project``, ``run_name``, ``run_id``, ...) are used
by ``init()`` when its own argument is not given. wandb's other settings (the names of wandb 0.31,
and the ``_private`` names of older releases) are accepted and have no effect. Any other name is
a :class:`TypeError` naming it.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Optional

import attrs

from mplogger._shared._settings import Settings as _Settings

__all__ = ["Settings"]

_logger = logging.getLogger("mplogger")

_WANDB_SETTINGS = frozenset("""
    allow_media_symlink allow_offline_artifacts allow_val_change anonymous api_key app_url_override
    azure_account_url_to_access_key base_url capture_loggers code_dir config_paths console
    console_chunk_max_bytes console_chunk_max_seconds console_multipart credentials_file
    disable_code disable_git disable_git_fork_point disable_job_creation docker email entity
    finish_timeout finish_timeout_raises force fork_from git_commit git_remote git_remote_url
    git_root heartbeat_seconds host http_proxy https_proxy identity_token_file ignore_globs
    init_timeout insecure_disable_ssl job_name job_source label_disable launch launch_config_path
    login_timeout max_end_of_run_history_metrics max_end_of_run_summary_metrics mode notebook_name
    organization program program_abspath program_relpath project quiet reinit relogin resume
    resume_from resumed root_dir run_group run_id run_job_type run_name run_notes run_tags
    sagemaker_disable save_code settings_system show_colors show_emoji show_errors show_info
    show_warnings silent stop_fn stop_on_fatal_error strict summary_timeout summary_warnings
    sweep_id sweep_param_path symlink sync_tensorboard table_raise_on_max_row_limit_exceeded
    use_dot_wandb username
""".split())
_WANDB_EXPERIMENTAL = frozenset("""
    x_cli_only_mode x_disable_machine_info x_disable_meta x_disable_stats x_disable_viewer
    x_executable x_extra_http_headers x_file_stream_max_bytes x_file_stream_max_line_bytes
    x_file_stream_no_gzip x_file_stream_retry_max x_file_stream_retry_wait_max_seconds
    x_file_stream_retry_wait_min_seconds x_file_stream_timeout_seconds
    x_file_stream_transmit_interval x_file_transfer_retry_max x_file_transfer_retry_wait_max_seconds
    x_file_transfer_retry_wait_min_seconds x_file_transfer_timeout_seconds x_files_dir
    x_flow_control_custom x_flow_control_disabled x_graphql_retry_max
    x_graphql_retry_wait_max_seconds x_graphql_retry_wait_min_seconds x_graphql_timeout_seconds
    x_history_value_encoding x_internal_check_process x_jupyter_name x_jupyter_path x_jupyter_root
    x_label x_live_policy_rate_limit x_live_policy_wait_time x_log_level x_network_buffer x_primary
    x_proxies x_runqueue_item_id x_save_requirements x_server_side_derived_summary
    x_service_transport x_service_wait x_skip_transaction_log x_start_time x_stats_buffer_size
    x_stats_coreweave_metadata_base_url x_stats_coreweave_metadata_endpoint x_stats_cpu_count
    x_stats_cpu_logical_count x_stats_dcgm_exporter x_stats_disk_paths x_stats_gpu_count
    x_stats_gpu_device_ids x_stats_gpu_type x_stats_neuron_monitor_config_path x_stats_no_cgroup
    x_stats_open_metrics_endpoints x_stats_open_metrics_filters x_stats_open_metrics_http_headers
    x_stats_pid x_stats_sampling_interval x_stats_self_usage x_stats_track_process_tree x_sync
    x_sync_dir_suffix x_transaction_log_flush_interval x_update_finish_state
""".split())

_START_METHODS = {"thread": "auto", "auto": "auto", "fork": "fork", "forkserver": "forkserver", "spawn": "spawn"}
_CONSOLES = {"auto": "auto", "off": "off", "wrap": "wrap", "redirect": "redirect", "wrap_raw": "wrap",
             "wrap_emu": "wrap"}
_OURS = frozenset(f.name for f in attrs.fields(_Settings))
_INIT_ARGUMENTS = {"mode": "mode", "project": "project", "entity": "entity", "run_name": "name", "run_id": "id",
                   "run_tags": "tags", "run_group": "group", "run_job_type": "job_type", "run_notes": "notes",
                   "resume": "resume", "root_dir": "dir", "save_code": "save_code", "reinit": "reinit",
                   "allow_val_change": "allow_val_change", "resume_from": "resume_from", "fork_from": "fork_from"}
_STATS_INTERVALS = ("x_stats_sampling_interval", "_stats_sample_rate_seconds", "_stats_sampling_interval")


def _choice(name: str, value: Any, choices: Dict[str, str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"Settings({name}={value!r}): use one of {', '.join(choices)}")
    return choices[value]


def _interval(name: str, value: Any) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"Settings({name}={value!r}): a number of seconds") from None
    if not seconds >= 0.1:
        raise ValueError(f"Settings({name}={value!r}): at least 0.1 s (x_disable_stats=True turns sampling off)")
    return seconds


class Settings:
    """wandb's ``Settings(...)``: mplogger's settings (:attr:`mplogger_settings`) and the ``init()``
    arguments among them (:attr:`init_arguments`); set an attribute or call :meth:`update` to change one."""

    def __init__(self, **settings: Any) -> None:
        values: Dict[str, Any] = {}
        init: Dict[str, Any] = {}
        for name, value in settings.items():
            if value is None:
                continue  # wandb: None means "not set"
            if name in _INIT_ARGUMENTS:
                init[_INIT_ARGUMENTS[name]] = value
            elif name == "start_method":
                values["start_method"] = _choice(name, value, _START_METHODS)
            elif name == "console":
                values["console"] = _choice(name, value, _CONSOLES)
            elif name in ("x_disable_stats", "_disable_stats"):
                if value:
                    values["system_interval"] = 0.0
            elif name in _STATS_INTERVALS:
                values.setdefault("system_interval", _interval(name, value))
            elif name in _OURS:
                values[name] = value
            elif name.lstrip("_").removeprefix("x_") in _OURS | set(_INIT_ARGUMENTS):
                raise TypeError(f"Settings(): unknown setting {name!r}; did you mean {name.lstrip('_').removeprefix('x_')!r}?")
            elif name in _WANDB_SETTINGS or name in _WANDB_EXPERIMENTAL or (name.startswith("_") and not name.startswith("__")):
                _logger.debug("wandb setting %s=%r has no effect in mplogger", name, value)
            else:
                raise TypeError(f"Settings(): unknown setting {name!r} (neither wandb's nor mplogger's)")
        object.__setattr__(self, "_given", dict(settings))
        object.__setattr__(self, "mplogger_settings", _Settings(**values))
        object.__setattr__(self, "init_arguments", init)

    def update(self, settings: Optional[Dict[str, Any]] = None, **more: Any) -> None:
        """Change some settings (wandb's ``Settings.update``); the others keep their values."""
        self.__init__(**{**self._given, **(settings or {}), **more})  # type: ignore[misc]

    def __setattr__(self, name: str, value: Any) -> None:
        self.update({name: value})

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name in ("mplogger_settings", "init_arguments"):
            raise AttributeError(name)
        if name in _OURS:
            return getattr(self.mplogger_settings, name)
        wanted = _INIT_ARGUMENTS.get(name)
        if wanted is not None:
            return self.init_arguments.get(wanted)
        if name in self._given:
            return self._given[name]
        raise AttributeError(f"Settings has no setting {name!r}")

    def __repr__(self) -> str:
        return f"wandb.Settings({self.mplogger_settings!r}, init={self.init_arguments!r})"
