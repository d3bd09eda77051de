"""The package's public names, imported on first use (every process): ``import mplogger`` stays
cheap, so ``mplogger --help`` or a library that only checks for mplogger loads nothing it does
not use, and a name's module is imported the first time the name is."""

from __future__ import annotations

import importlib
import sys
from typing import Any, Callable, Collection, List, Mapping, Tuple

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: Mapping[str, str],
                 live: Collection[str] = ()) -> Tuple[Callable[[str], Any], Callable[[], List[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``, whose ``exports`` map a public name to
    ``"module:attribute"``. A name is kept on the package once imported, except those in ``live``,
    which stand in until code sets them on the package (``init()`` sets ``mplogger.log``); what code
    set is dropped here, so that a reload of the package starts again as before any run."""
    for name in live:
        vars(sys.modules[package]).pop(name, None)

    def __getattr__(name: str) -> Any:
        target = exports.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attribute = target.partition(":")
        value = getattr(importlib.import_module(module), attribute)
        if name not in live:
            setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> List[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
