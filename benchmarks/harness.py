"""``python -m benchmarks``: every benchmark of mplogger side by side, in one process tree.

Sections (each prints its own table; ``--only`` picks some):

- ``core``: mplogger's ``log()``, ``init()``, ``finish()`` and end-to-end rows/s next to the floor
  (batched ``SimpleQueue``) and a plain ``multiprocessing.Queue`` (:mod:`benchmarks.bench_core`);
- ``transports``: Queue, SimpleQueue, Pipe and a shared-memory ring, unbatched and batched, with
  1, 2 and 4 producers (:mod:`benchmarks.transports`);
- ``scenarios``: memory under back-pressure, a CPU-bound loop, wide rows, a sweep of short runs,
  exit time (:mod:`benchmarks.scenarios`);
- ``peers``: wandb (offline), MLflow, tensorboardX and trackio when installed, on the same
  workload, each result read back with the tool's own reader (:mod:`benchmarks.peers`);
- ``store``: writing 10^5 and 10^6 rows, reading them back (one key, every key, pandas), the
  HTML report, the CSV export, bytes a row and peak RSS, each as a ratio to its floor measured in
  the same run, and how each grows from the smaller size to the larger (:mod:`benchmarks.bench_store`);
- ``artifacts``: a checkpoint file (``--artifact-mb``, default 1024 MiB) logged with ``add_file`` +
  ``log_artifact`` (policy mutable and immutable) from a loop that logs 10 floats a step: the call's
  time, the time until the version is durable and its MiB/s next to ``shutil.copyfile`` + ``sha256``
  of the same file, and ``log()``'s worst and p99 latency afterwards next to the same loop without
  a checkpoint (:mod:`benchmarks.bench_artifacts`);
- ``notebook``: a training loop (~50 µs of work + ``log()`` of 10 floats a step) in a real Jupyter
  kernel, without and with the run's live card displayed: steps/s, step median, p99, p99.9 and
  worst, the card updates that arrived, as ratios live / no card (:mod:`benchmarks.bench_notebook`;
  skipped without ipykernel and jupyter_client).

Every section verifies that every record arrived. ``--n``, ``--keys``, ``--repeats``,
``--batch-sizes`` and ``--artifact-mb`` size the runs; ``--json`` writes all figures; a PNG chart
is drawn when matplotlib is installed (``--png``).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from benchmarks.common import machine, write_results

SECTIONS = ("core", "transports", "scenarios", "peers", "store", "artifacts", "notebook")
KEYS_VARIABLE = "MPLOGGER_BENCH_KEYS"


@dataclasses.dataclass
class Options:
    """Sizes for every section; None means the section's default (or its quick size)."""

    quick: bool = False
    n: Optional[int] = None
    repeats: Optional[int] = None
    batch_sizes: Optional[Tuple[int, ...]] = None
    artifact_mb: Optional[int] = None


def _core(o: Options) -> Dict[str, Any]:
    from benchmarks import bench_core

    n = o.n or (5000 if o.quick else 200_000)
    repeats = o.repeats or (1 if o.quick else 3)
    result = bench_core.collect(n=n, repeats=repeats, progress=not o.quick)
    return {"figures": result["figures"], "table": bench_core.render(result, n, repeats)}


def _transports(o: Options) -> Dict[str, Any]:
    from benchmarks import transports

    kwargs: Dict[str, Any] = {"n": o.n or (2000 if o.quick else 100_000), "repeats": o.repeats or (1 if o.quick else 3)}
    if o.quick:
        kwargs["producers"] = (1, 2)
    if o.batch_sizes or o.quick:
        kwargs["batch_sizes"] = o.batch_sizes or (256,)
    results = transports.run_transports(**kwargs)
    return {"figures": results, "table": transports.format_table(results)}


def _scenarios(o: Options) -> Dict[str, Any]:
    from benchmarks import scenarios

    results = scenarios.run_scenarios(quick=o.quick)
    return {"figures": results, "table": scenarios.format_scenarios(results)}


def _peers(o: Options) -> Dict[str, Any]:
    from benchmarks import peers

    results = peers.run_peers(n=o.n or (500 if o.quick else 20_000), repeats=o.repeats or 1)
    return {"figures": results, "table": peers.format_peers(results)}


def _store(o: Options) -> Dict[str, Any]:
    from benchmarks import bench_store

    small, large = bench_store.QUICK_SIZES if o.quick else bench_store.SIZES
    large = o.n or large  # --n: the larger size
    sizes = (small, large) if small < large else (max(1, large // 10), large)
    result = bench_store.collect(sizes=sizes, repeats=o.repeats or 1, progress=not o.quick)
    return {"figures": result, "table": bench_store.render(result)}


def _artifacts(o: Options) -> Dict[str, Any]:
    from benchmarks import bench_artifacts

    size_mb = o.artifact_mb or (bench_artifacts.QUICK_MB if o.quick else bench_artifacts.default_mb())
    windows = bench_artifacts.QUICK_WINDOWS if o.quick else bench_artifacts.WINDOWS
    result = bench_artifacts.collect(size_mb=size_mb, repeats=o.repeats or 1, windows=windows, progress=not o.quick)
    return {"figures": result, "table": bench_artifacts.render(result)}


def _notebook(o: Options) -> Dict[str, Any]:
    from benchmarks import bench_notebook

    if not bench_notebook.kernel_available():
        return {"figures": {"skipped": "needs ipykernel"},
                "table": "skipped: needs ipykernel (pip install ipykernel jupyter_client)"}
    seconds = bench_notebook.QUICK_SECONDS if o.quick else bench_notebook.SECONDS
    result = bench_notebook.collect(repeats=o.repeats or (1 if o.quick else 3), seconds=seconds, progress=not o.quick)
    return {"figures": result, "table": "\n".join(bench_notebook.render(result))}


RUNNERS: Dict[str, Callable[[Options], Dict[str, Any]]] = {
    "core": _core, "transports": _transports, "scenarios": _scenarios, "peers": _peers, "store": _store,
    "artifacts": _artifacts, "notebook": _notebook,
}


def run(sections: List[str], options: Options, echo: Callable[[str], None] = print) -> Dict[str, Any]:
    """Run the named sections; return their figures and tables (printed as they finish)."""
    out: Dict[str, Any] = {
        **machine(), "machine": platform.machine(),
        "options": dataclasses.asdict(options), "keys": int(os.environ.get(KEYS_VARIABLE, "10")),
        "sections": {},
    }
    for name in sections:
        started = time.perf_counter()
        echo(f"\n=== {name} ===")
        section = RUNNERS[name](options)
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
    parser.add_argument("--n", type=int, help="rows per measurement (core, transports, peers; store: the larger of its two sizes)")
    parser.add_argument("--keys", type=int, help="float keys per row (default 10; every section)")
    parser.add_argument("--repeats", type=int, help="fresh-process repeats per measurement")
    parser.add_argument("--batch-sizes", help="comma list of batch sizes for the transports")
    parser.add_argument("--artifact-mb", type=int, metavar="MIB",
                        help="checkpoint size of the artifacts section in MiB (default $MPLOGGER_BENCH_ARTIFACT_MB "
                             "or 1024; --quick: 64)")
    parser.add_argument("--json", metavar="PATH", help="write every figure to PATH")
    parser.add_argument("--png", metavar="PATH", help="draw the summary chart to PATH (needs matplotlib)")
    args = parser.parse_args(argv)
    sections = args.only.split(",") if args.only else list(SECTIONS)
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    if args.keys is not None:
        if args.keys < 1:
            parser.error("--keys must be at least 1")
        os.environ[KEYS_VARIABLE] = str(args.keys)  # read by every section and its children
    if args.artifact_mb is not None and args.artifact_mb < 1:
        parser.error("--artifact-mb must be at least 1")
    batch_sizes = tuple(int(b) for b in args.batch_sizes.split(",")) if args.batch_sizes else None
    result = run(sections, Options(args.quick, args.n, args.repeats, batch_sizes, args.artifact_mb))
    if args.json:
        write_results(args.json, result)
    if args.png:
        drawn = chart(result, args.png)
        print(f"chart written to {drawn}" if drawn else "no chart: pip install matplotlib")
    return 0


if __name__ == "__main__":
    sys.exit(main())
