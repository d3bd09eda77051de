"""The sections of ``python -m benchmarks``: ``@section("name", help)`` on a function of
:class:`Options` returning a :class:`~benchmarks.figures.Report` is all a new section takes."""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Dict, Optional, Tuple

from benchmarks.figures import Report

KEYS_VARIABLE = "MPLOGGER_BENCH_KEYS"


@dataclasses.dataclass
class Options:
    """Sizes for every section; None means the section's default (or its quick size). ``params``:
    a section's own parameters (``--set section.name=value``)."""

    quick: bool = False
    n: Optional[int] = None
    repeats: Optional[int] = None
    batch_sizes: Optional[Tuple[int, ...]] = None
    artifact_mb: Optional[int] = None
    params: Dict[str, Dict[str, Any]] = dataclasses.field(default_factory=dict)

    def param(self, section: str, name: str, default: Any) -> Any:
        """``--set section.name=value`` if given, else ``default``."""
        return self.params.get(section, {}).get(name, default)

    def listed(self, section: str, name: str, default: Any) -> Any:
        """:meth:`param` as a list (``--set s.name=a`` or ``a,b``); ``default`` when not given."""
        value = self.param(section, name, None)
        if value is None:
            return default
        return list(value) if isinstance(value, (list, tuple)) else [value]

    def sized(self, full: Any, quick: Any) -> Any:
        return quick if self.quick else full


@dataclasses.dataclass(frozen=True)
class Section:
    name: str
    help: str
    measure: Callable[[Options], Report]


SECTIONS: Dict[str, Section] = {}


def section(name: str, help: str) -> Callable[[Callable[[Options], Report]], Callable[[Options], Report]]:
    """Register ``function(options) -> Report`` as the section ``name``."""
    def register(function: Callable[[Options], Report]) -> Callable[[Options], Report]:
        SECTIONS[name] = Section(name, help, function)
        return function
    return register


def keys() -> int:
    """Float keys per logged row in this run (``--keys``; read by every child from the environment)."""
    return int(os.environ.get(KEYS_VARIABLE, "10"))
