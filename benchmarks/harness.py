"""``python -m benchmarks``: every section of :data:`benchmarks.registry.SECTIONS`, side by side.

Each section returns :class:`~benchmarks.figures.Figure` values (and notes), printed as one table
by :func:`~benchmarks.figures.render`; ``--json`` writes them all with the machine's facts, and
``--png`` draws the summary chart (with matplotlib). ``--only`` picks sections, ``--quick`` takes
seconds, ``--n``, ``--keys``, ``--repeats``, ``--batch-sizes`` and ``--artifact-mb`` size them, and
``--set section.name=value`` passes a section its own parameter (``--set notebook.seconds=6``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from typing import Any, Callable, Dict, List, Optional

from benchmarks.common import machine, write_results
from benchmarks.figures import Report
from benchmarks.registry import KEYS_VARIABLE, SECTIONS, Options, keys

#: the modules whose ``@section`` entries make up the command, in the order they run
MODULES = ("bench_core", "transports", "scenarios", "peers", "bench_store", "bench_artifacts", "bench_notebook")


def load_sections() -> Dict[str, Any]:
    """Import every section module (each registers itself); the registry, in the order of MODULES."""
    import importlib

    for module in MODULES:
        importlib.import_module(f"benchmarks.{module}")
    place = {f"benchmarks.{module}": i for i, module in enumerate(MODULES)}
    ordered = sorted(SECTIONS.values(), key=lambda s: place.get(s.measure.__module__, len(place)))
    SECTIONS.clear()
    SECTIONS.update((s.name, s) for s in ordered)
    return SECTIONS


def run(names: List[str], options: Options, echo: Callable[[str], None] = print) -> Dict[str, Any]:
    """Run the named sections; return their figures and tables (printed as each finishes)."""
    sections = load_sections()
    out: Dict[str, Any] = {**machine(), "machine": platform.machine(), "options": vars(options), "keys": keys(),
                           "sections": {}}
    for name in names:
        started = time.perf_counter()
        echo(f"\n=== {name} ===")
        report: Report = sections[name].measure(options)
        table = report.render()
        echo(table)
        out["sections"][name] = {"figures": [f.as_dict() for f in report.figures], "notes": report.notes,
                                 "failures": report.failures, "table": table,
                                 "seconds": time.perf_counter() - started}
    return out


def _figure(result: Dict[str, Any], section: str, row: str, measure: str) -> Optional[float]:
    for f in (result["sections"].get(section) or {}).get("figures", []):
        if f["row"] == row and f["measure"].startswith(measure) and isinstance(f["value"], (int, float)):
            return f["value"]
    return None


def chart(result: Dict[str, Any], path: str) -> Optional[str]:
    """Bar charts of log() cost and end-to-end rate (core and peers), if matplotlib is installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    bars_us: Dict[str, float] = {}
    bars_rate: Dict[str, float] = {}
    bars = [("core", row, "log() per call, first", "end to end") for row in ("mplogger", "floor", "mp.Queue")]
    peers = {f["row"] for f in (result["sections"].get("peers") or {}).get("figures", [])}
    bars += [("peers", row, "log()", "end to end") for row in sorted(peers) if row != "mplogger"]
    for section, row, us, rate in bars:
        a, b = _figure(result, section, row, us), _figure(result, section, row, rate)
        if a is not None and b is not None:
            bars_us[row], bars_rate[row] = a, b
    if not bars_us:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.barh(list(bars_us), list(bars_us.values()), color="#4c72b0")
    left.set_xscale("log")
    left.set_xlabel("µs per log() call (10 floats; log scale)")
    right.barh(list(bars_rate), list(bars_rate.values()), color="#55a868")
    right.set_xscale("log")
    right.set_xlabel("rows/s end to end, until durable (log scale)")
    fig.suptitle(f"mplogger benchmarks — Python {result['python']}, {result['cpus']} CPUs")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _setting(text: str) -> tuple:
    """``section.name=value``: the value as JSON if it parses, a comma list if it has commas."""
    key, sep, raw = text.partition("=")
    section, dot, name = key.partition(".")
    if not sep or not dot or not name:
        raise argparse.ArgumentTypeError(f"expected section.name=value, got {text!r}")

    def parse(part: str) -> Any:
        try:
            return json.loads(part)
        except ValueError:
            return part

    value = [parse(p) for p in raw.split(",")] if "," in raw and not raw.startswith("[") else parse(raw)
    return section, name, value


def main(argv: Optional[List[str]] = None) -> int:
    sections = load_sections()
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description="Every benchmark of mplogger, side by side.",
                                     epilog="sections: " + "; ".join(f"{s.name}: {s.help}" for s in sections.values()))
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat: seconds, not minutes")
    parser.add_argument("--only", metavar="SECTIONS", help=f"comma list of {', '.join(sections)}")
    parser.add_argument("--n", type=int, help="rows per measurement (core, transports, peers; store: the larger of its two sizes)")
    parser.add_argument("--keys", type=int, help="float keys per row (default 10; every section)")
    parser.add_argument("--repeats", type=int, help="fresh-process repeats per measurement")
    parser.add_argument("--batch-sizes", help="comma list of batch sizes for the transports")
    parser.add_argument("--artifact-mb", type=int, metavar="MIB",
                        help="checkpoint size of the artifacts section in MiB (default $MPLOGGER_BENCH_ARTIFACT_MB "
                             "or 1024; --quick: 64)")
    parser.add_argument("--set", dest="settings", action="append", type=_setting, default=[], metavar="SECTION.NAME=VALUE",
                        help="a section's own parameter, e.g. notebook.seconds=6 or scenarios.memory.n=200000")
    parser.add_argument("--json", metavar="PATH", help="write every figure to PATH")
    parser.add_argument("--png", metavar="PATH", help="draw the summary chart to PATH (needs matplotlib)")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(sections)
    unknown = [s for s in names if s not in sections]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(sections)}")
    for value, flag in ((args.keys, "--keys"), (args.artifact_mb, "--artifact-mb"), (args.n, "--n"),
                        (args.repeats, "--repeats")):
        if value is not None and value < 1:
            parser.error(f"{flag} must be at least 1")
    if args.keys is not None:
        os.environ[KEYS_VARIABLE] = str(args.keys)  # read by every section and its children
    params: Dict[str, Dict[str, Any]] = {}
    for section, name, value in args.settings:
        if section not in sections:
            parser.error(f"--set {section}.{name}: no section {section!r}; choose from {', '.join(sections)}")
        params.setdefault(section, {})[name] = value
    batch_sizes = tuple(int(b) for b in args.batch_sizes.split(",")) if args.batch_sizes else None
    result = run(names, Options(args.quick, args.n, args.repeats, batch_sizes, args.artifact_mb, params))
    if args.json:
        write_results(args.json, result)
    if args.png:
        drawn = chart(result, args.png)
        print(f"chart written to {drawn}" if drawn else "no chart: pip install matplotlib")
    failures = [failure for section in result["sections"].values() for failure in section["failures"]]
    for failure in failures:
        print(f"failed: {failure}", file=sys.stderr)
    return 1 if failures else 0

