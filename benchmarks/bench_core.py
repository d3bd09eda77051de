"""The core section: mplogger's ``log()`` path against the floor of its own design.

Every step logs a dict of 10 float keys (``--keys``). Measured, side by side, each in a fresh
interpreter (kinds interleaved over the repeats), with its store in a temporary folder:

mplogger
    ``log()`` µs per call over all N (batching, pickling, queue puts and any back-pressure from
    the store amortised into it) and over the first 4096 calls alone; ``init()`` cold (manager and
    worker start included; fork, spawn, forkserver) and of a second run; ``finish()``; end-to-end
    rows/s from the first ``log()`` until ``finish()`` returns. The stored row count, read back
    through ``mplogger.Api``, must equal N (and at N ≤ 20 000 every row is read back).
the floor
    A producer copies each dict into a list and, every 256 rows, pickles the batch and puts the
    bytes on a ``multiprocessing.SimpleQueue`` to a consumer that unpickles it and counts.
mp.Queue (not the floor)
    The same, putting the batch list on a ``multiprocessing.Queue`` (its feeder thread pickles).
"""

from __future__ import annotations

import pickle
import shutil
import statistics
import tempfile
import time
from typing import Any, Dict, List, Optional

from benchmarks.common import MASK, BenchmarkFailed, make_pool
from benchmarks.figures import Report
from benchmarks.registry import Options, keys, section
from benchmarks.runner import fresh

BATCH = 256  # rows per batch: the floor uses mplogger's default batch_size
BURST = 4096  # the first BURST calls are also timed alone: log() before back-pressure can matter
WARM_INITS = 5  # warm init() samples per mplogger subprocess (median taken)
CHILD_TIMEOUT_S = 600
SECTION = "core"

perf = time.perf_counter


def empty_loop_us(n: int) -> float:
    """µs per iteration of the bare timed loop (range + pool indexing), for reference."""
    pool = make_pool()
    count = min(n, 200_000)
    t0 = perf()
    for i in range(count):
        pool[i & MASK]
    return (perf() - t0) / count * 1e6


# --- children: each runs in a fresh interpreter (benchmarks.runner.fresh) -----------------------


def child_mplogger(n: int, start_method: Optional[str], log_rows: bool = True) -> Dict[str, Any]:
    t = perf()
    import mplogger
    import_s = perf() - t
    t = perf()
    for name in mplogger.__all__:  # the first use of its names imports the code behind them
        getattr(mplogger, name)
    names_s = perf() - t
    from mplogger._ipc import _launch
    settings = {"start_method": start_method} if start_method else None
    resolved = _launch.choose_start_method(start_method or "auto")
    root = tempfile.mkdtemp(prefix="mplogger-bench-")
    out: Dict[str, Any] = {"import_s": import_s, "names_s": names_s, "start_method": resolved}
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
            raise BenchmarkFailed(f"mplogger stored {stored.rows} rows of run {run.id}; {n} were logged")
        if n <= 20_000:  # --quick: also read every row back and check the steps
            history = stored.history()
            steps = [row["_step"] for row in history]
            last_key = f"k{keys() - 1}"
            if steps != list(range(n)) or history[-1][last_key] != pool[(n - 1) & MASK][last_key]:
                raise BenchmarkFailed(f"mplogger history of run {run.id} does not match what was logged")
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
        raise BenchmarkFailed(f"{kind}: the consumer did not start")

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
        raise BenchmarkFailed(f"{kind}: the consumer unpickled {count} records; {n} were sent")
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


def floor_child(n: int) -> Dict[str, Any]:
    """The floor alone (pickled batches over a SimpleQueue), for other sections that compare with it."""
    return fresh("benchmarks.bench_core:child_pipe", CHILD_TIMEOUT_S, n=n, kind="floor")


# --- the parent -------------------------------------------------------------------------------

#: (row, target, its arguments besides n) of every fresh process of one repeat
PLAN = [
    ("floor", "child_pipe", {"kind": "floor"}),
    ("mp.Queue", "child_pipe", {"kind": "mpqueue"}),
    ("mplogger", "child_mplogger", {"start_method": None}),
    ("init spawn", "child_mplogger", {"start_method": "spawn", "log_rows": False}),
    ("init forkserver", "child_mplogger", {"start_method": "forkserver", "log_rows": False}),
]


def collect(n: int, repeats: int) -> Report:
    """Every kind ``repeats`` times, interleaved, each in a fresh interpreter; the figures."""
    samples: Dict[str, List[Dict[str, Any]]] = {row: [] for row, _, _ in PLAN}
    for _ in range(repeats):
        for row, target, kwargs in PLAN:
            rows = n if kwargs.get("log_rows", True) else 0
            samples[row].append(fresh(f"benchmarks.bench_core:{target}", CHILD_TIMEOUT_S, n=rows, **kwargs))
    report = Report()
    burst = min(BURST, n)

    def add(row: str, name: str, key: str, unit: str, scale: float = 1.0, baseline: Optional[str] = None,
            source: Optional[str] = None) -> None:
        report.add(SECTION, row, name, [s[key] * scale for s in samples[source or row]], unit, baseline)

    mp = samples["mplogger"]
    for row in ("mplogger", "floor", "mp.Queue"):
        base = "floor" if row != "floor" else None
        mine = row == "mplogger"
        add(row, "log() per call, all N", "log_us" if mine else "record_us", "µs", baseline=base)
        add(row, f"log() per call, first {burst:,}", "log_burst_us" if mine else "record_burst_us", "µs",
            baseline=base)
        add(row, "end to end", "e2e_rows_per_s", "rows/s", baseline=base)
        add(row, "finish() (floor: drain) after the last row", "finish_s" if mine else "drain_s", "ms", 1e3,
            baseline=base)
    method = mp[0]["start_method"]
    add("mplogger", f"init() cold ({method}, the default)", "init_cold_s", "ms", 1e3)
    add("mplogger", "init() cold (spawn)", "init_cold_s", "ms", 1e3, source="init spawn")
    add("mplogger", "init() cold (forkserver)", "init_cold_s", "ms", 1e3, source="init forkserver")
    add("mplogger", "init() of a second run, same process", "init_warm_s", "ms", 1e3)
    add("mplogger", "finish() of an empty run", "finish_empty_s", "ms", 1e3)
    add("mplogger", "import mplogger", "import_s", "ms", 1e3)
    add("mplogger", "first use of its names (imports the run code)", "names_s", "ms", 1e3)
    add("mplogger", "teardown()", "teardown_s", "ms", 1e3)
    floors = samples["floor"]
    spread = "median [min–max]" if repeats > 1 else "one run"
    report.notes += [
        f"{keys()} float keys per row, N={n:,} rows, {repeats} repeat(s), {spread}, each kind in a fresh "
        f"process; batch {BATCH} rows; bare loop overhead "
        f"{statistics.median(s['empty_loop_us'] for s in floors):.3f} µs/iter (in every per-call figure)",
        f"verified: mplogger stored rows == N in every repeat ({[s['rows_stored'] for s in mp]}); floor consumer "
        f"counts {[s['count'] for s in floors]}; mp.Queue consumer counts {[s['count'] for s in samples['mp.Queue']]}",
    ]
    if repeats > 1:
        per_repeat = [a["log_us"] / b["record_us"] for a, b in zip(mp, floors)]
        report.notes.append("log() ÷ floor per repeat: " + ", ".join(f"{r:.2f}×" for r in per_repeat))
    if all(s.get("history_checked") for s in mp):
        report.notes.append("verified: mplogger history read back row by row (steps 0..N-1, last values)")
    return report


@section(SECTION, "mplogger's log(), init(), finish() and end-to-end rows/s next to the floor (batched "
                  "SimpleQueue) and a plain multiprocessing.Queue")
def core(o: Options) -> Report:
    return collect(n=o.n or o.sized(200_000, 5000), repeats=o.repeats or o.sized(3, 1))
