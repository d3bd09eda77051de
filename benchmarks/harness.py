"""``python -m benchmarks``: every benchmark of mplogger side by side, in one process tree.

Sections (each prints its own table; ``--only`` picks some):

- ``core``: mplogger's ``log()``, ``init()``, ``finish()`` and end-to-end rows/s next to the floor
  (batched ``SimpleQueue``) and a plain ``multiprocessing.Queue`` (:mod:`benchmarks.bench_core`);
- ``transports``: Queue, SimpleQueue, Pipe and a shared-memory ring, unbatched and batched, with
  1, 2 and 4 producers (:mod:`benchmarks.transports`);
- ``scenarios``: memory under back-pressure, a CPU-bound loop, wide rows, a sweep of short runs,
  exit time (:mod:`benchmarks.scenarios`);
- ``peers``: wandb (offline), MLflow, tensorboardX and trackio when installed, on the same
  workload, each result read back with the tool's own reader (:mod:`benchmarks.peers`).

Every section verifies that every record arrived. ``--json`` writes all figures; a PNG chart is
drawn when matplotlib is installed (``--png``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from typing import Any, Callable, Dict, List, Optional

SECTIONS = ("core", "transports", "scenarios", "peers")


def _core(quick: bool) -> Dict[str, Any]:
    from benchmarks import bench_core

    n, repeats = (5000, 1) if quick else (200_000, 3)
    result = bench_core.collect(n=n, repeats=repeats, progress=not quick)
    return {"figures": result["figures"], "table": bench_core.render(result, n, repeats)}


def _transports(quick: bool) -> Dict[str, Any]:
    from benchmarks import transports

    if quick:
        results = transports.run_transports(n=2000, producers=(1, 2), batch_sizes=(256,), repeats=1)
    else:
        results = transports.run_transports(n=100_000, repeats=3)
    return {"figures": results, "table": transports.format_table(results)}


def _scenarios(quick: bool) -> Dict[str, Any]:
    from benchmarks import scenarios

    results = scenarios.run_scenarios(quick=quick)
    return {"figures": results, "table": scenarios.format_scenarios(results)}


def _peers(quick: bool) -> Dict[str, Any]:
    from benchmarks import peers

    results = peers.run_peers(n=500 if quick else 20_000)
    return {"figures": results, "table": peers.format_peers(results)}


RUNNERS: Dict[str, Callable[[bool], Dict[str, Any]]] = {
    "core": _core, "transports": _transports, "scenarios": _scenarios, "peers": _peers,
}


def run(sections: List[str], quick: bool, echo: Callable[[str], None] = print) -> Dict[str, Any]:
    """Run the named sections; return their figures and tables (printed as they finish)."""
    out: Dict[str, Any] = {
        "python": platform.python_version(), "machine": platform.machine(),
        "cpus": os.cpu_count(), "quick": quick, "sections": {},
    }
    for name in sections:
        started = time.perf_counter()
        echo(f"\n=== {name} ===")
        section = RUNNERS[name](quick)
        section["seconds"] = time.perf_counter() - started
        echo(section["table"])
        out["sections"][name] = section
    return out


def chart(result: Dict[str, Any], path: str) -> Optional[str]:
    """Bar charts of log() cost and end-to-end rate, if matplotlib is installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    bars_us: Dict[str, float] = {}
    bars_rate: Dict[str, float] = {}
    core = result["sections"].get("core")
    if core:
        figures = core["figures"]
        bars_us["mplogger"] = figures["mplogger"]["log_burst_us"]["median"]
        bars_us["floor"] = figures["floor"]["record_burst_us"]["median"]
        bars_us["mp.Queue"] = figures["mpqueue"]["record_burst_us"]["median"]
        for name in ("mplogger", "floor", "mpqueue"):
            bars_rate[name if name != "mpqueue" else "mp.Queue"] = figures[name]["e2e_rows_per_s"]["median"]
    for row in (result["sections"].get("peers") or {}).get("figures", []):
        if row.get("status") == "ok" and row.get("peer") != "mplogger":
            bars_us[row["peer"]] = row["log_us"]
            bars_rate[row["peer"]] = row["expected"] / row["end_to_end_s"]
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


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat: seconds, not minutes")
    parser.add_argument("--only", metavar="SECTIONS", help=f"comma list of {', '.join(SECTIONS)}")
    parser.add_argument("--json", metavar="PATH", help="write every figure to PATH")
    parser.add_argument("--png", metavar="PATH", help="draw the summary chart to PATH (needs matplotlib)")
    args = parser.parse_args(argv)
    sections = args.only.split(",") if args.only else list(SECTIONS)
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    result = run(sections, args.quick)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(result, out, indent=1, default=str)
        print(f"\nfigures written to {args.json}")
    if args.png:
        drawn = chart(result, args.png)
        print(f"chart written to {drawn}" if drawn else "no chart: pip install matplotlib")
    return 0


if __name__ == "__main__":
    sys.exit(main())
