"""What a run records about where it ran (the worker): host, user, Python, script, git state, packages.

The user process gathers its few facts at ``init()`` (:func:`mplogger._user._init_args.client_facts`);
the worker collects the rest after the run's creation is committed and answered, so ``init()`` does
not wait for git or for listing the installed packages. Files go into the run folder:
``requirements.txt`` always, and with ``save_code`` the script and ``diff.patch`` (uncommitted
changes to tracked files).
"""

from __future__ import annotations

import os
import shutil
import time
from typing import Any, Dict, List, Optional, Tuple

__all__ = ["collect"]

_GIT_TIMEOUT_S = 5.0


def _git(args: list, cwd: str) -> Optional[str]:
    import subprocess  # here, not at import: only the worker runs git

    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=_GIT_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


_GIT_CACHE_S = 30.0
_git_cache: Dict[str, Tuple[float, Dict[str, Any]]] = {}
_requirements: Optional[List[str]] = None


def _git_state(folder: str) -> Dict[str, Any]:
    """Commit, branch, dirty flag and remote of the repository holding ``folder`` (cached a
    little while: a sweep of many short runs must not run git for every one)."""
    cached = _git_cache.get(folder)
    if cached is not None and time.monotonic() - cached[0] < _GIT_CACHE_S:
        return dict(cached[1])
    facts: Dict[str, Any] = {}
    top = _git(["rev-parse", "--show-toplevel"], folder)
    if top is not None:
        status = _git(["status", "--porcelain", "--untracked-files=no"], folder)
        remote = _git(["config", "--get", "remote.origin.url"], folder)
        facts = {
            "commit": (_git(["rev-parse", "HEAD"], folder) or "").strip() or None,
            "branch": (_git(["rev-parse", "--abbrev-ref", "HEAD"], folder) or "").strip() or None,
            "root": top.strip(),
            "dirty": bool(status and status.strip()),
            "remote": remote.strip() if remote else None,
        }
    _git_cache[folder] = (time.monotonic(), facts)
    return dict(facts)


def _git_facts(folder: str, run_dir: str, save_code: bool) -> Dict[str, Any]:
    facts = _git_state(folder)
    if not facts:
        return {}
    if save_code and facts["dirty"]:
        diff = _git(["diff", "HEAD"], folder)
        if diff:
            path = os.path.join(_code_folder(run_dir), "diff.patch")
            with open(path, "w") as out:
                out.write(diff)
            facts["diff"] = os.path.relpath(path, run_dir)
    return facts


def _code_folder(run_dir: str) -> str:
    """``<run_dir>/code``, made if needed; never the run folder itself, which a deleted run lacks."""
    path = os.path.join(run_dir, "code")
    try:
        os.mkdir(path)
    except FileExistsError:
        pass
    return path


def _packages(run_dir: str) -> int:
    """Write ``requirements.txt`` (like ``pip freeze``) into the run folder; return the count."""
    global _requirements
    if _requirements is None:  # once per worker process: the installed packages do not change
        from importlib import metadata as importlib_metadata  # costly to import: only here

        seen = {}
        for dist in importlib_metadata.distributions():
            name = dist.metadata["Name"] if dist.metadata else None
            if name and name.lower() not in seen:
                seen[name.lower()] = f"{name}=={dist.version}"
        _requirements = sorted(seen.values(), key=str.lower)
    lines = _requirements
    with open(os.path.join(run_dir, "requirements.txt"), "w") as out:
        out.write("\n".join(lines) + "\n")
    return len(lines)


def collect(facts: Dict[str, Any], run_dir: str) -> Dict[str, Any]:
    """The environment of a run, from the user process's ``facts``; writes its files."""
    out: Dict[str, Any] = {k: facts.get(k) for k in ("user", "executable", "cwd", "script")}
    save_code = bool(facts.get("save_code"))
    script = facts.get("script")
    folder = os.path.dirname(script) if script else facts.get("cwd") or os.getcwd()
    out["git"] = _git_facts(folder, run_dir, save_code) or None
    if save_code and script and os.path.isfile(script):
        target = os.path.join(_code_folder(run_dir), os.path.basename(script))
        shutil.copy2(script, target)
        out["code"] = os.path.relpath(target, run_dir)
    try:
        out["packages"] = _packages(run_dir)
        out["requirements"] = "requirements.txt"
    except OSError as exc:
        out["packages_error"] = str(exc)
    return out
