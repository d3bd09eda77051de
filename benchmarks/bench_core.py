"""Core benchmark: mplogger's ``log()`` path against the floor of its own design.

Every step logs a dict of 10 float keys. Measured, side by side:

mplogger
    ``log()`` µs per call (the whole loop divided by N: the batching, pickling and queue puts
    are amortised into it, and so is any back-pressure from the store); ``init()`` cold (the
    first init of a fresh process, manager and worker pool start included) and warm (another
    run in the same process); ``finish()`` after the last of N logs; end-to-end rows/s from the
    first ``log()`` until ``finish()`` returns. The stored row count is read back through
    ``mplogger.Api`` and must equal N, else the benchmark fails.

the floor
    What the design cannot beat: a producer process copies each dict into a list and, every 256
    rows, pickles the batch and puts the bytes on a ``multiprocessing.SimpleQueue`` to a consumer
    process that unpickles it. µs per record on the producer side; end-to-end records/s until the
    consumer has unpickled all N (it reports its count back, which must equal N).

plain multiprocessing.Queue (not the floor)
    The same, putting the batch list on a ``multiprocessing.Queue``: its feeder thread pickles.

Each measurement runs in a fresh subprocess (one per kind and repeat, kinds interleaved), with
its store in a temporary folder that is removed afterwards. Run ``python -m benchmarks --help``.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional

from benchmarks.common import format_number, table_lines, write_results

KEYS = int(os.environ.get("MPLOGGER_BENCH_KEYS", "10"))  # float keys per logged dict


def keys_now() -> int:
    """The key count the child processes of this run use (the variable may be set after import)."""
    return int(os.environ.get("MPLOGGER_BENCH_KEYS", KEYS))
BATCH = 256  # rows per batch: the floor uses mplogger's default batch_size
POOL = 1024  # distinct dicts cycled through, so no dict is built inside a timed loop
MASK = POOL - 1
BURST = 4096  # the first BURST calls are also timed alone: log() before back-pressure can matter
WARM_INITS = 5  # warm init() samples per mplogger subprocess (median taken)
CHILD_TIMEOUT_S = 600
RESULT_MARK = "@@BENCH_RESULT@@ "
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def clean_child_env() -> Dict[str, str]:
    """A measuring child's environment: this repository importable, no MPLOGGER_* setting but the
    key count (MPLOGGER_DIR would send init(dir=...) elsewhere)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MPLOGGER_") or k == "MPLOGGER_BENCH_KEYS"}
    env["PYTHONPATH"] = REPO_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def report_child(measure: Callable[[], Dict[str, Any]]) -> int:
    """Run a child's measurement and print its JSON result for the parent; exit code 3 if a check failed."""
    try:
        result = measure()
    except BenchmarkFailed as exc:
        sys.stderr.write(f"VERIFICATION FAILED: {exc}\n")
        return 3
    sys.stdout.write(RESULT_MARK + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0

perf = time.perf_counter


def make_pool() -> List[Dict[str, float]]:
    """POOL distinct dicts of keys_now() floats (keys k0..k9 by default)."""
    keys = keys_now()
    return [{f"k{j}": (i * keys + j) * 0.001 + 0.5 for j in range(keys)} for i in range(POOL)]


def empty_loop_us(n: int) -> float:
    """µs per iteration of the bare timed loop (range + pool indexing), for reference."""
    pool = make_pool()
    count = min(n, 200_000)
    t0 = perf()
    for i in range(count):
        pool[i & MASK]
    return (perf() - t0) / count * 1e6


# --------------------------------------------------------------------------------------------
# children: each runs in a fresh interpreter and prints one RESULT_MARK line of JSON
# --------------------------------------------------------------------------------------------


def child_mplogger(n: int, start_method: Optional[str], log_rows: bool = True) -> Dict[str, Any]:
    t = perf()
    import mplogger
    from mplogger._ipc import _launch
    import_s = perf() - t
    settings = {"start_method": start_method} if start_method else None
    resolved = _launch.choose_start_method(start_method or "auto")
    root = tempfile.mkdtemp(prefix="mplogger-bench-")
    out: Dict[str, Any] = {"import_s": import_s, "start_method": resolved}
    try:
        t = perf()
        first = mplogger.init(project="bench", dir=root, settings=settings)
        out["init_cold_s"] = perf() - t
        t = perf()
        first.finish()
        out["finish_empty_s"] = perf() - t

        warm = []
        for _ in range(WARM_INITS):
            t = perf()
            extra = mplogger.init(project="bench", dir=root)
            warm.append(perf() - t)
            extra.finish()
        out["init_warm_s"] = statistics.median(warm)
        if not log_rows:
            return out

        pool = make_pool()
        run = mplogger.init(project="bench", dir=root)
        log = run.log
        burst = min(BURST, n)
        t0 = perf()
        for i in range(burst):
            log(pool[i & MASK])
        t1 = perf()
        for i in range(burst, n):
            log(pool[i & MASK])
        t2 = perf()
        run.finish()
        t3 = perf()
        out.update(
            n=n,
            log_us=(t2 - t0) / n * 1e6,
            log_burst_us=(t1 - t0) / burst * 1e6,
            burst=burst,
            log_loop_s=t2 - t0,
            finish_s=t3 - t2,
            e2e_s=t3 - t0,
            e2e_rows_per_s=n / (t3 - t0),
        )
        stored = mplogger.Api(root).run(run.id)
        out["rows_stored"] = stored.rows
        if stored.rows != n:
            raise SystemExit(f"mplogger stored {stored.rows} rows of run {run.id}; {n} were logged")
        if n <= 20_000:  # --quick: also read every row back and check the steps
            history = stored.history()
            steps = [row["_step"] for row in history]
            last_key = f"k{KEYS - 1}"
            if steps != list(range(n)) or history[-1][last_key] != pool[(n - 1) & MASK][last_key]:
                raise SystemExit(f"mplogger history of run {run.id} does not match what was logged")
            out["history_checked"] = True
        return out
    finally:
        t = perf()
        mplogger.teardown()
        out["teardown_s"] = perf() - t
        shutil.rmtree(root, ignore_errors=True)


def _consume_simple(q, done) -> None:
    done.put("ready")
    count = 0
    loads = pickle.loads
    get = q.get
    while True:
        payload = get()
        if payload is None:
            break
        count += len(loads(payload))
    done.put(count)


def _consume_queue(q, done) -> None:
    done.put("ready")
    count = 0
    get = q.get
    while True:
        rows = get()
        if rows is None:
            break
        count += len(rows)
    done.put(count)


def child_pipe(n: int, kind: str) -> Dict[str, Any]:
    """The floor (kind "floor": SimpleQueue of pickled batches) or kind "mpqueue"."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")  # start-up is not timed; fork is the quickest
    done = ctx.SimpleQueue()
    if kind == "floor":
        q = ctx.SimpleQueue()
        target = _consume_simple
    else:
        q = ctx.Queue()
        target = _consume_queue
    consumer = ctx.Process(target=target, args=(q, done), daemon=True)
    consumer.start()
    if done.get() != "ready":
        raise SystemExit(f"{kind}: the consumer did not start")

    pool = make_pool()
    put = q.put
    burst = min(BURST, n)
    HIGHEST = pickle.HIGHEST_PROTOCOL
    if kind == "floor":
        dumps = pickle.dumps
        batch: list = []
        append = batch.append
        t0 = perf()
        for i in range(burst):
            append(pool[i & MASK].copy())
            if len(batch) >= BATCH:
                put(dumps(batch, HIGHEST))
                batch = []
                append = batch.append
        t1 = perf()
        for i in range(burst, n):
            append(pool[i & MASK].copy())
            if len(batch) >= BATCH:
                put(dumps(batch, HIGHEST))
                batch = []
                append = batch.append
        t2 = perf()
        if batch:
            put(dumps(batch, HIGHEST))
    else:
        batch = []
        append = batch.append
        t0 = perf()
        for i in range(burst):
            append(pool[i & MASK].copy())
            if len(batch) >= BATCH:
                put(batch)
                batch = []
                append = batch.append
        t1 = perf()
        for i in range(burst, n):
            append(pool[i & MASK].copy())
            if len(batch) >= BATCH:
                put(batch)
                batch = []
                append = batch.append
        t2 = perf()
        if batch:
            put(batch)
    put(None)
    count = done.get()
    t3 = perf()
    consumer.join(10)
    if count != n:
        raise SystemExit(f"{kind}: the consumer unpickled {count} records; {n} were sent")
    return {
        "n": n,
        "record_us": (t2 - t0) / n * 1e6,
        "record_burst_us": (t1 - t0) / burst * 1e6,
        "burst": burst,
        "loop_s": t2 - t0,
        "drain_s": t3 - t2,
        "e2e_s": t3 - t0,
        "e2e_rows_per_s": n / (t3 - t0),
        "count": count,
        "empty_loop_us": empty_loop_us(n),
    }


def child_main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.bench_core --child")
    parser.add_argument("--child", required=True, choices=("mplogger", "init", "floor", "mpqueue"))
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--start-method", default=None)
    args = parser.parse_args(argv)
    if args.child == "mplogger":
        result = child_mplogger(args.n, args.start_method)
    elif args.child == "init":
        result = child_mplogger(args.n, args.start_method, log_rows=False)
    else:
        result = child_pipe(args.n, args.child)
    sys.stdout.write(RESULT_MARK + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


# --------------------------------------------------------------------------------------------
# the parent: runs the children, aggregates, prints the table
# --------------------------------------------------------------------------------------------


class BenchmarkFailed(RuntimeError):
    pass


def run_child(kind: str, n: int, start_method: Optional[str] = None) -> Dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.bench_core", "--child", kind, "--n", str(n)]
    if start_method:
        cmd += ["--start-method", start_method]
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("MPLOGGER_START_METHOD", None)
    env.pop("MPLOGGER_WORKERS", None)
    with tempfile.TemporaryDirectory(prefix="mplogger-bench-cwd-") as cwd:
        try:
            proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                                  timeout=CHILD_TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            raise BenchmarkFailed(f"{kind} (n={n}) ran past {CHILD_TIMEOUT_S} s") from exc
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_MARK)]
    if proc.returncode != 0 or not lines:
        raise BenchmarkFailed(
            f"{kind} (n={n}{', ' + start_method if start_method else ''}) failed "
            f"with exit code {proc.returncode}:\n{proc.stderr.strip() or proc.stdout.strip()}"
        )
    if proc.stderr.strip():
        sys.stderr.write(f"[{kind} stderr]\n{proc.stderr}")
    return json.loads(lines[-1][len(RESULT_MARK):])


def code_version() -> str:
    """The commit benchmarked, and whether mplogger/ differs from it (best effort)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "mplogger"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if not head:
        return "unknown"
    return head + (" + uncommitted changes in mplogger/" if dirty else "")


def stats(values: List[float]) -> Dict[str, Any]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "values": list(values)}


def collect(n: int, repeats: int, progress: bool = True) -> Dict[str, Any]:
    samples: Dict[str, List[Dict[str, Any]]] = {
        "floor": [], "mpqueue": [], "mplogger": [], "init_spawn": [], "init_forkserver": []}
    plan = [("floor", "floor", None), ("mpqueue", "mpqueue", None), ("mplogger", "mplogger", None),
            ("init_spawn", "init", "spawn"), ("init_forkserver", "init", "forkserver")]
    for rep in range(repeats):
        for name, kind, method in plan:
            if progress:
                sys.stderr.write(f"\r  repeat {rep + 1}/{repeats}: {name:<16}")
                sys.stderr.flush()
            samples[name].append(run_child(kind, n if kind != "init" else 0, method))
    if progress:
        sys.stderr.write("\r" + " " * 40 + "\r")

    def field(name: str, key: str, scale: float = 1.0) -> Dict[str, Any]:
        return stats([s[key] * scale for s in samples[name]])

    figures: Dict[str, Any] = {
        "mplogger": {
            "log_us": field("mplogger", "log_us"),
            "log_burst_us": field("mplogger", "log_burst_us"),
            "import_ms": field("mplogger", "import_s", 1e3),
            "init_cold_ms": field("mplogger", "init_cold_s", 1e3),
            "init_cold_spawn_ms": field("init_spawn", "init_cold_s", 1e3),
            "init_cold_forkserver_ms": field("init_forkserver", "init_cold_s", 1e3),
            "init_warm_ms": field("mplogger", "init_warm_s", 1e3),
            "finish_empty_ms": field("mplogger", "finish_empty_s", 1e3),
            "finish_ms": field("mplogger", "finish_s", 1e3),
            "teardown_ms": field("mplogger", "teardown_s", 1e3),
            "e2e_s": field("mplogger", "e2e_s"),
            "e2e_rows_per_s": field("mplogger", "e2e_rows_per_s"),
            "rows_stored": [s["rows_stored"] for s in samples["mplogger"]],
            "history_checked": all(s.get("history_checked") for s in samples["mplogger"]),
            "start_method": samples["mplogger"][0]["start_method"],
        },
    }
    for name in ("floor", "mpqueue"):
        figures[name] = {
            "record_us": field(name, "record_us"),
            "record_burst_us": field(name, "record_burst_us"),
            "drain_ms": field(name, "drain_s", 1e3),
            "e2e_s": field(name, "e2e_s"),
            "e2e_rows_per_s": field(name, "e2e_rows_per_s"),
            "count": [s["count"] for s in samples[name]],
        }
    figures["empty_loop_us"] = statistics.median(s["empty_loop_us"] for s in samples["floor"])
    m, f = samples["mplogger"], samples["floor"]
    figures["ratios"] = {
        # ratio of the medians, and the spread of the per-repeat ratios (repeat i with repeat i)
        "log_us_over_floor_us": {
            "of_medians": figures["mplogger"]["log_us"]["median"] / figures["floor"]["record_us"]["median"],
            **_ratio_spread([a["log_us"] / b["record_us"] for a, b in zip(m, f)]),
        },
        "log_burst_us_over_floor_burst_us": {
            "of_medians": figures["mplogger"]["log_burst_us"]["median"]
            / figures["floor"]["record_burst_us"]["median"],
            **_ratio_spread([a["log_burst_us"] / b["record_burst_us"] for a, b in zip(m, f)]),
        },
        "e2e_time_over_floor_e2e_time": {
            "of_medians": figures["mplogger"]["e2e_s"]["median"] / figures["floor"]["e2e_s"]["median"],
            **_ratio_spread([a["e2e_s"] / b["e2e_s"] for a, b in zip(m, f)]),
        },
    }
    return {"samples": samples, "figures": figures}


def _ratio_spread(values: List[float]) -> Dict[str, Any]:
    return {"min": min(values), "max": max(values), "values": values}


# --- printing ---------------------------------------------------------------------------------



def _cell(s: Optional[Dict[str, Any]], repeats: int) -> str:
    if s is None:
        return "-"
    if repeats == 1:
        return format_number(s["median"])
    return f"{format_number(s['median'])} [{format_number(s['min'])}–{format_number(s['max'])}]"


def render(result: Dict[str, Any], n: int, repeats: int) -> str:
    f = result["figures"]
    mp, fl, qu = f["mplogger"], f["floor"], f["mpqueue"]
    r = f["ratios"]
    rows = [
        ("log() µs per call / record (all N)", mp["log_us"], fl["record_us"], qu["record_us"]),
        (f"  … first {min(BURST, n)} calls only", mp["log_burst_us"], fl["record_burst_us"], qu["record_burst_us"]),
        ("end-to-end rows/s", mp["e2e_rows_per_s"], fl["e2e_rows_per_s"], qu["e2e_rows_per_s"]),
        ("end-to-end time s", mp["e2e_s"], fl["e2e_s"], qu["e2e_s"]),
        ("finish() / drain after last log, ms", mp["finish_ms"], fl["drain_ms"], qu["drain_ms"]),
        (f"init() cold ms ({mp['start_method']}, default)", mp["init_cold_ms"], None, None),
        ("init() cold ms (spawn)", mp["init_cold_spawn_ms"], None, None),
        ("init() cold ms (forkserver)", mp["init_cold_forkserver_ms"], None, None),
        ("init() second run, same process, ms", mp["init_warm_ms"], None, None),
        ("finish() of an empty run ms", mp["finish_empty_ms"], None, None),
        ("import mplogger ms", mp["import_ms"], None, None),
        ("teardown() ms", mp["teardown_ms"], None, None),
    ]
    headers = ("", "mplogger", "floor (SimpleQueue)", "mp.Queue (not floor)")
    cells = [[label, _cell(a, repeats), _cell(b, repeats), _cell(c, repeats)] for label, a, b, c in rows]
    spread = "median [min–max]" if repeats > 1 else "single run"
    out = [
        f"mplogger core benchmark — {keys_now()} float keys per row, N={n:,} rows, {repeats} repeat(s), "
        f"{spread}, each in a fresh process",
        f"python {platform.python_version()} on {platform.system()} {platform.machine()}, "
        f"{os.cpu_count()} CPUs; batch {BATCH} rows; bare loop overhead {f['empty_loop_us']:.3f} µs/iter "
        "(included in every per-call figure)",
        "",
        *table_lines(headers, cells),
        "",
        "ratios (mplogger / floor; ratio of medians, [min–max] of per-repeat ratios):",
    ]
    for label, key in (("log() µs / floor µs per record", "log_us_over_floor_us"),
                       (f"  … first {min(BURST, n)} calls", "log_burst_us_over_floor_burst_us"),
                       ("end-to-end time / floor end-to-end time", "e2e_time_over_floor_e2e_time")):
        ratio = r[key]
        extra = f" [{ratio['min']:.2f}–{ratio['max']:.2f}]" if repeats > 1 else ""
        out.append(f"  {label:<42} {ratio['of_medians']:6.2f}x{extra}")
    out += [
        "",
        f"verified: mplogger stored rows == N in every repeat ({mp['rows_stored']}); "
        f"floor consumer counts {fl['count']}; mp.Queue consumer counts {qu['count']}",
    ]
    if mp["history_checked"]:
        out.append("verified: mplogger history read back row by row (steps 0..N-1, last values)")
    return "\n".join(out)


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--child" in argv:
        return child_main(argv)
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="mplogger log()/init()/finish() and end-to-end throughput against the floor "
        "(pickled 256-row batches over a multiprocessing.SimpleQueue).",
    )
    parser.add_argument("--n", type=int, default=200_000, help="rows logged per measurement (default 200000)")
    parser.add_argument("--repeats", type=int, default=3, help="fresh-process repeats per measurement (default 3)")
    parser.add_argument("--quick", action="store_true", help="n=5000, repeats=1 (also checks the history row by row)")
    parser.add_argument("--json", metavar="PATH", help="also write every figure and sample as JSON to PATH")
    args = parser.parse_args(argv)
    n, repeats = (5000, 1) if args.quick else (args.n, args.repeats)
    if n < 1 or repeats < 1:
        parser.error("--n and --repeats must be >= 1")
    started = perf()
    version = code_version()
    try:
        result = collect(n, repeats, progress=sys.stderr.isatty())
    except BenchmarkFailed as exc:
        sys.stderr.write(f"\nBENCHMARK FAILED: {exc}\n")
        return 1
    print(render(result, n, repeats))
    print(f"mplogger code: {version}")
    print(f"(benchmark wall time {perf() - started:.1f} s)")
    if args.json:
        write_results(args.json, {"n": n, "repeats": repeats, "keys": keys_now(), "batch": BATCH,
                                  "code": version, "wall_s": perf() - started, **result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
