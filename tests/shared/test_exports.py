"""The package's lazy public names (``_shared/_exports.py``): imported on first use, kept once
imported, the live names (``config``, ``summary``, ``log``) standing in until ``init()`` sets
them, and a reload of the package starting again as before any run."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import pytest

from mplogger._shared._exports import lazy_exports

from conftest import script_env


@pytest.fixture
def package(monkeypatch):
    module = types.ModuleType("lazy_probe")
    monkeypatch.setitem(sys.modules, "lazy_probe", module)
    exports = {"dumps": "json:dumps", "live": "json:loads"}
    module.__getattr__, module.__dir__ = lazy_exports("lazy_probe", exports, live=("live",))
    return module


def test_a_name_is_imported_on_first_use_and_kept(package):
    assert "dumps" not in vars(package)
    assert package.dumps is json.dumps
    assert vars(package)["dumps"] is json.dumps


def test_a_live_name_is_looked_up_until_it_is_set(package):
    assert package.live is json.loads and "live" not in vars(package)
    package.live = len
    assert package.live is len


def test_an_unknown_name_is_an_attribute_error(package):
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        package.nothing
    assert not hasattr(package, "nothing")
    assert {"dumps", "live"} <= set(dir(package))


def test_a_reload_of_mplogger_forgets_the_run_set_before(tmp_path):
    code = (
        "import importlib, json, mplogger\n"
        f"run = mplogger.init(dir={str(tmp_path)!r}, settings={{'system_interval': 0}})\n"
        "importlib.reload(mplogger)\n"
        "try:\n    mplogger.log({'a': 1})\n    logged = 'stored'\nexcept mplogger.UsageError as exc:\n    logged = str(exc)\n"
        "print(json.dumps([mplogger.run is None, repr(mplogger.config), repr(mplogger.summary), logged]))\n"
        "run.finish()\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env=script_env())
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == [
        True, "<mplogger.config: no active run>", "<mplogger.summary: no active run>",
        "call mplogger.init() before mplogger.log()"]
