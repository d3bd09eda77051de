"""What every benchmark module shares: the machine facts, the JSON results file, number text, the
rows logged and the one failure type."""

from __future__ import annotations

import hashlib
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
    """A figure for a table: an int as it is, a float with fewer decimals as it grows, thousands
    separated; None as ``-``."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
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


POOL = 1024  # distinct dicts cycled through, so no dict is built inside a timed loop
MASK = POOL - 1


class BenchmarkFailed(RuntimeError):
    """A measurement found what it logged missing or wrong, or could not complete."""


def make_pool(keys: Optional[int] = None, size: int = POOL) -> List[Dict[str, float]]:
    """``size`` distinct dicts of ``keys`` floats (k0, k1, ...; default: this run's ``--keys``)."""
    from benchmarks.registry import keys as run_keys

    keys = run_keys() if keys is None else keys
    return [{f"k{j}": (i * keys + j) * 0.001 + 0.5 for j in range(keys)} for i in range(size)]


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of ``values``."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def code_digest() -> str:
    """12 hex digits of SHA-256 over mplogger's Python sources (names and contents): which code
    was measured, without asking a version-control tool."""
    digest = hashlib.sha256()
    package = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "mplogger")
    for base, dirs, files in os.walk(package):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(f for f in files if f.endswith(".py")):
            path = os.path.join(base, name)
            digest.update(os.path.relpath(path, package).encode() + b"\0")
            with open(path, "rb") as source:
                digest.update(source.read())
    return digest.hexdigest()[:12]


def code_note(code: str, load: Sequence[float]) -> str:
    """A note line: which mplogger sources were measured (two digests: they changed meanwhile) and
    the machine's load average before and after."""
    changed = " (CHANGED while this ran: figures mix two versions)" if "->" in code else ""
    return (f"mplogger code: sources digest {code}{changed}; load average (1 min) {load[0]:.2f} -> {load[1]:.2f} "
            f"on {os.cpu_count()} CPUs")
