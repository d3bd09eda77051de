"""The house: each folder of ``mplogger`` is the code of one place it runs, and imports flow one way
(user -> ipc -> manager -> worker -> store; store -> readers; everything -> shared), checked from
the source of every module, its function-level imports included."""

from __future__ import annotations

import ast
import json
import pathlib
import re
import subprocess
import sys
from typing import Dict, Iterator, Optional, Tuple

import pytest

from conftest import REPO

PACKAGE = REPO / "mplogger"
MODULE_NAME = re.compile(r"mplogger(\.[A-Za-z_]\w*)+")

ALLOWED: Dict[str, frozenset] = {
    "_shared": frozenset({"_shared"}),
    "_ipc": frozenset({"_shared", "_ipc"}),
    "_store": frozenset({"_shared", "_store"}),
    "_readers": frozenset({"_shared", "_store", "_readers"}),
    "_worker": frozenset({"_shared", "_ipc", "_store", "_worker"}),
    "_manager": frozenset({"_shared", "_ipc", "_store", "_manager", "_worker"}),
    "_user": frozenset({"_shared", "_ipc", "_store", "_readers", "_user"}),
    "wandb": frozenset({"package", "_shared", "_store", "_readers", "_user", "wandb"}),
    "package": frozenset({"package", "_shared", "_store", "_readers", "_user", "wandb"}),
}

# Each crossing the rules do not allow, with why it is right.
CROSSINGS = {
    ("mplogger._ipc._launch", "mplogger._manager._mux"):
        "the manager process's entry point imports the mux there, after the process started",
}

WHERE_WORDS = ("user process", "user's process", "every process", "manager", "worker", "reader", "child",
               "kernel", "cli", "any process", "whatever process")


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in ("__init__", "__main__", "demo"):
        return "package"
    if parts[1] in ("wandb", "_wandb_path"):
        return "wandb"
    return parts[1]


def modules() -> Iterator[Tuple[str, pathlib.Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(relative.parts)
        if "_wandb_path" in parts:  # the stand-in that `mplogger run` puts on PYTHONPATH: module `wandb`
            parts = ["mplogger", "_wandb_path"]
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        yield ".".join(parts), path


def imports_of(module: str, path: pathlib.Path) -> Iterator[Tuple[str, int]]:
    """The mplogger modules ``module`` imports (a name imported from a package counts as its module),
    and those it names in a string (``importlib.import_module``, ``python -m``, a table of exports)."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "mplogger":
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base: Optional[str] = node.module
            if node.level:
                here = module.split(".") if is_package else module.split(".")[:-1]
                here = here[:len(here) - node.level + 1]
                base = ".".join(here + ([node.module] if node.module else []))
            if base is None or base.split(".")[0] != "mplogger":
                continue
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                yield (candidate if is_module(candidate) else base), node.lineno
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            named = node.value.partition(":")[0]  # "module" or "module:attribute"
            if MODULE_NAME.fullmatch(named) and is_module(named):
                yield named, node.lineno  # imported by name: import_module(), `python -m`, a lazy table


def is_module(name: str) -> bool:
    path = PACKAGE.parent / name.replace(".", "/")
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def test_the_package_has_a_folder_for_each_place_code_runs():
    folders = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert {"_shared", "_ipc", "_user", "_manager", "_worker", "_store", "_readers"} <= folders
    loose = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert loose == ["__init__.py", "__main__.py", "demo.py"]


def test_imports_flow_one_way():
    wrong = []
    for module, path in modules():
        layer = layer_of(module)
        for target, line in imports_of(module, path):
            if layer_of(target) not in ALLOWED[layer] and (module, target) not in CROSSINGS:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {layer} imports {target}")
    assert wrong == []


def test_each_crossing_is_still_there():
    found = {(module, target) for module, path in modules() for target, _ in imports_of(module, path)}
    assert set(CROSSINGS) <= found


def test_the_check_sees_a_wrong_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import importlib, subprocess, sys\n"
                   "def f():\n    from mplogger._user._run import Run\n"
                   "    importlib.import_module('mplogger._manager._mux')\n"
                   "    subprocess.run([sys.executable, '-m', 'mplogger._worker._writer'])\n"
                   "    return 'mplogger.run_id is a tag, not a module'\n")
    assert [layer_of(t) for t, _ in imports_of("mplogger._readers._bad", bad)] == ["_user", "_manager", "_worker"]
    assert not {"_user", "_manager", "_worker"} & ALLOWED[layer_of("mplogger._readers._bad")]


def test_the_package_file_holds_no_logic():
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    assert not [node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Lambda))]
    calls = [node.func.id for node in ast.walk(tree) if isinstance(node, ast.Call)]
    assert calls == ["lazy_exports"]


def test_every_public_name_is_exported_once_and_resolves():
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    typed = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.If)
             for inner in node.body if isinstance(inner, ast.ImportFrom) for alias in inner.names}
    result = subprocess.run([sys.executable, "-c", (
        "import json, sys, mplogger\n"
        "names = sorted(mplogger._EXPORTS)\n"
        "cheap = sorted(m for m in sys.modules if m.startswith('mplogger.') and m.count('.') > 1)\n"
        "for name in names: getattr(mplogger, name)\n"
        "print(json.dumps([names, mplogger.__all__, cheap, sorted(dir(mplogger))]))")],
        capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr
    names, public, loaded_by_import, listed = json.loads(result.stdout)
    [table] = [node.value for node in tree.body if isinstance(node, ast.Assign)
               and [getattr(target, "id", "") for target in node.targets] == ["_EXPORTS"]]
    keys = [key.value for key in table.keys]
    assert len(keys) == len(set(keys)) == len(names)  # each name once in the table
    assert set(names) == typed
    assert set(public) <= set(names) | {"run", "__version__"}
    assert loaded_by_import == ["mplogger._shared._exports"]
    assert set(names) <= set(listed)


@pytest.mark.parametrize("module,path", list(modules()), ids=[m for m, _ in modules()])
def test_each_module_says_where_it_runs(module, path):
    docstring = ast.get_docstring(ast.parse(path.read_text()))
    assert docstring, f"{module} has no docstring"
    first = docstring.split("\n\n")[0].lower()
    assert any(word in first for word in WHERE_WORDS), f"{module}: {first!r}"
