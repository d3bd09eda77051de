"""Resolving ``init()``'s arguments as wandb does (user process): environment variables, config
sources, mode; and the facts about this process that ``init()`` sends along.

Each setting comes from the argument, else ``MPLOGGER_<NAME>``, else ``WANDB_<NAME>`` (so
wandb users' environments keep working; our own names win).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from typing import Any, Dict, Iterable, Mapping, Optional

from mplogger import _store
from mplogger._shared._terminal import printable, termwarn

__all__ = ["client_facts", "from_env", "load_config", "resolve_mode", "MODES", "auto_resume_file", "auto_resume_id"]

MODES = ("online", "offline", "disabled")
_MODE_ALIASES = {"dryrun": "offline", "run": "online", "shared": "online"}
DEFAULTS_FILE = "config-defaults.yaml"


def from_env(name: str, given: Any = None) -> Any:
    """``given`` if not None, else ``MPLOGGER_<name>``, else ``WANDB_<name>``, else None."""
    if given is not None:
        return given
    return os.environ.get(f"MPLOGGER_{name}") or os.environ.get(f"WANDB_{name}") or None


def resolve_mode(mode: Optional[str]) -> str:
    """online/offline/None log locally (there is no cloud); disabled logs nothing."""
    chosen = from_env("MODE", mode) or "online"
    chosen = _MODE_ALIASES.get(chosen, chosen)
    if chosen not in MODES:
        raise ValueError(f"init(mode={chosen!r}): use one of {', '.join(MODES)} (or 'dryrun')")
    return chosen


def _read_file(path: str) -> Dict[str, Any]:
    if path.endswith((".yaml", ".yml")):
        try:
            import yaml
        except ImportError:
            raise ImportError(f"reading the config file {path} needs PyYAML: pip install pyyaml") from None
        with open(path) as source:
            data = yaml.safe_load(source) or {}
    elif path.endswith(".json"):
        with open(path) as source:
            data = json.load(source)
    else:
        raise ValueError(f"init(config={path!r}): a config file must end in .yaml, .yml or .json")
    if not isinstance(data, Mapping):
        raise ValueError(f"the config file {path} must hold a mapping, not {type(data).__name__}")
    # wandb's own files store each key as {"desc": ..., "value": ...}; "wandb_version" is its header
    return {
        key: value["value"] if isinstance(value, Mapping) and "value" in value else value
        for key, value in data.items() if key != "wandb_version"
    }


def load_config(config: Any, include: Optional[Iterable[str]] = None,
                exclude: Optional[Iterable[str]] = None, defaults_dir: str = ".") -> Dict[str, Any]:
    """The run's starting config: ``config-defaults.yaml`` if present, then ``config``.

    ``config`` is a dict, an ``argparse.Namespace`` or a path to a YAML/JSON file; then
    ``include`` keeps only the named keys and ``exclude`` drops the named ones.
    """
    values: Dict[str, Any] = {}
    defaults = os.path.join(defaults_dir, DEFAULTS_FILE)
    if os.path.isfile(defaults):
        values.update(_read_file(defaults))
    if config is None:
        pass
    elif isinstance(config, (str, os.PathLike)):
        values.update(_read_file(os.fspath(config)))
    elif isinstance(config, argparse.Namespace):
        values.update(vars(config))
    elif isinstance(config, Mapping):
        for key in config:
            if not isinstance(key, str):
                raise TypeError(f"init(config=...): keys must be strings; got {key!r}")
        values.update(config)
    else:
        raise TypeError(
            "init(config=...) takes a dict, an argparse.Namespace or a path to a YAML/JSON file, "
            f"not {type(config).__name__}"
        )
    if include is not None:
        keep = set(include)
        values = {k: v for k, v in values.items() if k in keep}
    if exclude is not None:
        drop = set(exclude)
        values = {k: v for k, v in values.items() if k not in drop}
    return values


def auto_resume_file(root: str) -> str:
    """Where ``resume="auto"`` remembers the last run of this script in this folder (wandb's
    ``wandb-resume.json``): a small JSON file in the root, removed when that run finishes cleanly."""
    import hashlib
    import sys

    script = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else "<interactive>"
    key = hashlib.sha1(f"{os.getcwd()}|{script}".encode()).hexdigest()[:16]
    return os.path.join(root, "resume", f"{key}.json")


def auto_resume_id(root: str) -> Optional[str]:
    """The run to resume for ``resume="auto"`` without an id: the last one that did not finish.

    A record whose id is not a usable run id (a store someone else made) is ignored with a
    warning: a new run starts, and the id never becomes a path.
    """
    path = auto_resume_file(root)
    try:
        with open(path) as source:
            record = json.load(source)
    except (OSError, ValueError):
        return None
    run_id = record.get("run_id") if isinstance(record, dict) else None
    if run_id is None:
        return None
    try:
        return _store.check_run_id(run_id, f"the resume record {path}")
    except ValueError as exc:
        termwarn(printable(f"{exc}; ignored, a new run starts"))
        return None


def tags_from(tags: Any) -> list:
    """Tags from the argument or a comma list in ``MPLOGGER_TAGS``/``WANDB_TAGS``."""
    if tags is None:
        env = from_env("TAGS")
        return [t.strip() for t in env.split(",") if t.strip()] if env else []
    if isinstance(tags, str) or not all(isinstance(t, str) for t in tags):
        raise TypeError("init(tags=...) takes a list of strings")
    return list(tags)


def text_arg(param: str, value: Any) -> Optional[str]:
    """An ``init()`` text argument (name, project, ...): a string of valid Unicode, or None."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"init({param}={value!r}): expected a string, not {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"init({param}={value!r}): not valid Unicode text ({exc.reason} at "
                         f"position {exc.start})") from None
    return value


def client_facts(argv: list, save_code: bool) -> Dict[str, Any]:
    """Facts only the user process knows, gathered at ``init()`` (cheap: no subprocess)."""
    main = sys.modules.get("__main__")
    script = getattr(main, "__file__", None)
    try:
        user = getpass.getuser()
    except Exception:  # no user name in this environment (e.g. an unnamed uid in a container)
        user = str(os.getuid()) if hasattr(os, "getuid") else None
    return {
        "user": user,
        "executable": sys.executable,
        "cwd": os.getcwd(),
        "script": os.path.abspath(script) if script else None,
        "argv": list(argv),
        "save_code": bool(save_code),
    }
