"""What every benchmark script shares: the machine facts, the JSON results file, number text."""

from __future__ import annotations

import json
import math
import os
import platform
from typing import Any, Dict, List, Optional, Sequence


def machine() -> Dict[str, Any]:
    """The facts a figure means nothing without: Python, platform, CPUs."""
    return {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()}


def write_results(path: str, document: Dict[str, Any]) -> None:
    """``document`` plus :func:`machine` as indented JSON at ``path`` (its folder made if needed)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as out:
        json.dump({**document, **machine()}, out, indent=2, default=str)
        out.write("\n")
    print(f"wrote {path}")


def format_number(value: Optional[Any]) -> str:
    """A figure for a table: fewer decimals as it grows, thousands separated; None as ``-``."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return str(value)
    magnitude = abs(value)
    if magnitude >= 1e5:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 0.1 or value == 0:
        return f"{value:.2f}"
    return f"{value:.3f}"


def table_lines(headers: Sequence[str], cells: Sequence[Sequence[str]], left: Sequence[int] = (0,)) -> List[str]:
    """A plain-text table: the header, a rule, a line per row; columns in ``left`` are left-aligned."""
    widths = [max(len(headers[i]), *(len(row[i]) for row in cells)) for i in range(len(headers))]
    left = {i % len(headers) for i in left}

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(widths[i]) if i in left else v.rjust(widths[i]) for i, v in enumerate(values)).rstrip()

    return [line(headers), line(["-" * w for w in widths])] + [line(row) for row in cells]
