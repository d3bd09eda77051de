"""Measure in a fresh interpreter: ``fresh("module:function", timeout, **kwargs)`` returns what the
function returned, passed back as JSON through a file (the loggers measured print to stdout).

The child runs ``python -m benchmarks.runner TARGET ARGS RESULT`` in its own process group and a
clean environment (no ``MPLOGGER_*`` setting but the benchmark's own, the repository on
``PYTHONPATH``); the whole group is killed when it overstays, and whatever it left behind once it
exited. Every failure raises :class:`ChildFailed`.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TAIL_CHARS = 4000


class ChildFailed(RuntimeError):
    """A measurement in a child process failed: its target, how it exited, the end of its stderr."""

    def __init__(self, target: str, exit: str, stderr: str) -> None:
        self.target, self.exit, self.stderr = target, exit, stderr
        super().__init__(f"{target} {exit}" + (f":\n{stderr}" if stderr else ""))


def child_env(extra: Optional[Mapping[str, Optional[str]]] = None) -> Dict[str, str]:
    """This environment without mplogger's settings (``MPLOGGER_BENCH_*`` kept), the repository first
    on ``PYTHONPATH``, then ``extra`` (a None value removes that variable)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MPLOGGER_") or k.startswith("MPLOGGER_BENCH_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO_ROOT, env.get("PYTHONPATH", "")) if p)
    for key, value in (extra or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def _exit_text(returncode: Optional[int]) -> str:
    if returncode is None:
        return "did not exit"
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with code {returncode}"


def _kill_group(proc: "subprocess.Popen[bytes]") -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def command(args: Sequence[str], timeout: float, *, what: str = "", env: Optional[Mapping[str, Optional[str]]] = None,
            cwd: Optional[str] = None) -> Tuple[float, str]:
    """Run ``args`` in a process group of its own under ``timeout``; (wall seconds, its stdout).
    Raises :class:`ChildFailed` on a non-zero exit or a timeout (the group is killed)."""
    what = what or " ".join(args)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        # files, not pipes: a grandchild holding an inherited pipe open cannot stall the wait
        started = time.perf_counter()
        proc = subprocess.Popen(list(args), cwd=cwd, env=child_env(env), stdin=subprocess.DEVNULL,
                                stdout=out, stderr=err, start_new_session=True)
        try:
            proc.wait(timeout=timeout)
            exit = None if proc.returncode == 0 else _exit_text(proc.returncode)
        except subprocess.TimeoutExpired:
            exit = f"ran past {timeout:g} s (its process group was killed)"
        finally:  # also on Ctrl-C here: the child is in a session of its own, the terminal's signal missed it
            wall = time.perf_counter() - started
            _kill_group(proc)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    if exit is not None:
        raise ChildFailed(what, exit, (stderr.strip() or stdout.strip())[-TAIL_CHARS:])
    return wall, stdout


def fresh(target: str, timeout: float, *, env: Optional[Mapping[str, Optional[str]]] = None,
          cwd: Optional[str] = None, **kwargs: Any) -> Any:
    """``module:function(**kwargs)`` in a fresh ``sys.executable``; its JSON-able result.

    ``env`` adds variables to the child's clean environment; ``cwd`` is its working folder (by
    default a temporary one, removed afterwards)."""
    folder = tempfile.mkdtemp(prefix="mplogger-bench-")
    try:
        arguments, result = os.path.join(folder, "args.json"), os.path.join(folder, "result.json")
        with open(arguments, "w") as out:
            json.dump(kwargs, out)
        work = cwd or os.path.join(folder, "cwd")
        os.makedirs(work, exist_ok=True)
        try:
            command([sys.executable, "-m", "benchmarks.runner", target, arguments, result], timeout,
                    what=target, env=env, cwd=work)
        except ChildFailed as exc:
            raise ChildFailed(target, exc.exit, exc.stderr) from None
        try:
            with open(result) as f:
                return json.load(f)
        except (OSError, ValueError) as exc:
            raise ChildFailed(target, "exited with code 0 but wrote no result", repr(exc)) from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def where(function: Any) -> str:
    """The ``module:qualified.name`` that :func:`resolve` finds ``function`` by in a child (it must be
    defined in an importable module, not in ``__main__``)."""
    if function.__module__ == "__main__":
        raise ValueError(f"{function.__qualname__} is defined in __main__: a fresh interpreter cannot find it; "
                         "define it in a module on PYTHONPATH")
    return f"{function.__module__}:{function.__qualname__}"


def resolve(target: str) -> Any:
    """The object ``module:qualified.name`` names."""
    module, _, name = target.partition(":")
    found: Any = importlib.import_module(module)
    for part in name.split("."):
        found = getattr(found, part)
    return found


def main(argv: List[str]) -> int:
    target, arguments, result = argv
    try:
        with open(arguments) as f:
            kwargs = json.load(f)
        value = resolve(target)(**kwargs)
        partial = result + ".part"
        with open(partial, "w") as out:
            json.dump(value, out)
        os.replace(partial, result)
    except BaseException:  # noqa: BLE001 - reported to the parent through stderr and the exit code
        traceback.print_exc()
        sys.stderr.flush()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
