"""What each process imports: the user process and the CLI never load the manager's or the
worker's code (it is imported in those processes only), whatever the start method."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import script_env

PROCESS_CODE = ("mplogger._manager", "mplogger._worker")  # the packages, and every module in them


def loaded_after(code: str) -> list:
    """The modules of ``PROCESS_CODE`` (and concurrent.*) loaded once ``code`` has run."""
    probe = (f"{code}\nimport sys\n"
             f"print(sorted(m for m in sys.modules if m.split('.')[0] == 'concurrent'\n"
             f"             or any(m == p or m.startswith(p + '.') for p in {PROCESS_CODE!r})))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                            env=script_env())
    assert result.returncode == 0, result.stderr
    return eval(result.stdout.strip().splitlines()[-1])


def test_import_mplogger_loads_no_manager_or_worker_code():
    assert loaded_after("import mplogger, mplogger.wandb") == []


def test_the_cli_loads_no_manager_or_worker_code():
    code = ("from mplogger._readers._cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n")
    assert loaded_after(code) == []


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_a_whole_run_leaves_the_manager_and_worker_code_out_of_the_user_process(tmp_path, method):
    code = (f"import mplogger\nrun = mplogger.init(dir={str(tmp_path)!r}, settings={{'start_method': {method!r}}})\n"
            "run.log({'x': 1})\nrun.finish()\nassert mplogger.Api(run.root).run(run.id).rows == 1\n"
            "mplogger.teardown()")
    assert loaded_after(code) == []
