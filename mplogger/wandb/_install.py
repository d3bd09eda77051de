"""``import wandb`` as mplogger's compatibility package, in this process (user process): the
modules in ``sys.modules`` and a distribution finder for ``importlib.metadata``."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.metadata
import pathlib
import pkgutil
import sys
from typing import Any, Iterator

from mplogger._shared._wandb_name import DIST_INFO

__all__ = ["install", "installed"]


class _WandbDistribution(importlib.abc.MetaPathFinder):
    """Lets ``importlib.metadata`` find mplogger's ``wandb`` metadata first (``install()`` only)."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        return None

    def find_distributions(self, context: Any = importlib.metadata.DistributionFinder.Context()) -> Iterator[Any]:
        if context.name is None or context.name.lower().replace("_", "-").replace(".", "-") == "wandb":
            yield importlib.metadata.PathDistribution(pathlib.Path(DIST_INFO))


def installed() -> bool:
    """True when ``import wandb`` gives mplogger's compatibility package in this process."""
    module = sys.modules.get("wandb")
    return module is not None and getattr(module, "__name__", None) == "mplogger.wandb"


def install() -> Any:
    """From now on, in this process, ``import wandb`` (and ``wandb.sdk...``) is ``mplogger.wandb``.

    Also makes ``importlib.metadata.version("wandb")`` answer, as libraries check it. A real wandb
    imported earlier is dropped from ``sys.modules`` (modules that hold it keep it; a warning says so).
    """
    package = importlib.import_module("mplogger.wandb")
    if installed():
        return package
    previous = sys.modules.get("wandb")
    if previous is not None and not getattr(previous, "MPLOGGER_STAND_IN", False):
        from mplogger._shared._terminal import termwarn

        termwarn("mplogger.wandb.install(): a wandb module was imported before; code that imported it "
                 "keeps it, `import wandb` from now on gives mplogger's")
        for name in [name for name in sys.modules if name == "wandb" or name.startswith("wandb.")]:
            del sys.modules[name]
    for info in pkgutil.walk_packages(package.__path__, "mplogger.wandb."):
        if info.name.endswith(".__main__"):  # `python -m wandb` runs it; importing it would too
            continue
        sys.modules["wandb." + info.name[len("mplogger.wandb."):]] = importlib.import_module(info.name)
    sys.modules["wandb"] = package
    if not any(isinstance(finder, _WandbDistribution) for finder in sys.meta_path):
        sys.meta_path.insert(0, _WandbDistribution())
    return package
