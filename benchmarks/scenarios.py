"""Scenario benchmarks: mplogger under the loads users actually put on it.

Each scenario runs in fresh Python subprocesses (``sys.executable``), against a store in a
temporary folder that is removed afterwards, and verifies what it logged by reading the stored
row counts back (``mplogger.Api(root).run(id).rows`` and the store's ``_store.stored_rows``):
a missing row fails the scenario loudly (:class:`ScenarioFailed`). Figures are reported, never
asserted against targets.

memory
    N rows (default 1,000,000) of a 10-float dict logged flat out, then ``finish()``. Peak RSS
    (VmHWM) of the user process, the manager and every worker, read from ``/proc`` just before
    ``finish()``; the user's ``ru_maxrss``; the user's RSS growth over the loop. Shows whether
    back-pressure keeps the user process bounded.
cpu_loop
    A pure-Python CPU-bound loop of ~50 µs per step (calibrated here), S steps, timed (a) without
    mplogger, (b) with ``run.log()`` of 10 floats every step; (a)/(b) alternate R times, each in
    a fresh process. Slowdown = median(b) / median(a) - 1 (the project's target is ≤ 3 %).
wide_rows
    Rows of 200 float keys: ``log()`` µs per call and end-to-end rows/s.
sweep
    Many short runs in one process (init, 10 rows, finish): init and finish ms per run.
exit_after_finish
    A script whose last statement follows ``run.finish()``: the time from a line printed right
    after ``finish()`` to the process's exit, seen by the parent (target ≤ 0.1 s); and
    ``finish()`` ms after 20,000 rows logged flat out and paced at ~5 µs of work per step.

``python -m benchmarks.scenarios [--quick] [--only NAME[,NAME]] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from benchmarks.common import format_number, write_results
from benchmarks.bench_core import code_version

SCENARIOS = ("memory", "cpu_loop", "wide_rows", "sweep", "exit_after_finish")

#: parameters of each scenario: full run, and --quick
FULL: Dict[str, Dict[str, Any]] = {
    "memory": {"n": 1_000_000},
    "cpu_loop": {"steps": 20_000, "repeats": 5, "step_us": 50.0},
    "wide_rows": {"n": 20_000, "keys": 200},
    "sweep": {"runs": 1000, "rows": 10},
    "exit_after_finish": {"n": 20_000, "repeats": 5, "pace_us": 5.0},
}
QUICK: Dict[str, Dict[str, Any]] = {
    "memory": {"n": 20_000},
    "cpu_loop": {"steps": 2_000, "repeats": 1, "step_us": 50.0},
    "wide_rows": {"n": 1_000, "keys": 200},
    "sweep": {"runs": 50, "rows": 10},
    "exit_after_finish": {"n": 20_000, "repeats": 2, "pace_us": 5.0},
}

KEYS = int(os.environ.get("MPLOGGER_BENCH_KEYS", "10"))  # float keys per row (memory, cpu_loop, exit_after_finish)
POOL = 1024  # distinct dicts cycled through by the flat-out loops
MASK = POOL - 1
TIMEOUT_FULL_S = 600  # bound on every subprocess wait
TIMEOUT_QUICK_S = 120
RESULT_MARK = "@@SCENARIO_RESULT@@ "
FINISH_MARK = "@@FINISHED@@"
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIB = 1024.0 * 1024.0

perf = time.perf_counter


class ScenarioFailed(RuntimeError):
    """A scenario's subprocess failed, hung, or the store is missing rows."""


# ============================================================================================
# helpers shared by children and the parent
# ============================================================================================


def proc_status(pid: int) -> Dict[str, float]:
    """VmRSS / VmHWM (MiB) and thread count of ``pid`` from /proc (empty if it is gone)."""
    out: Dict[str, float] = {}
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(value.split()[0]) / 1024.0  # kB -> MiB
                elif key == "Threads":
                    out[key] = float(value.split()[0])
    except OSError:
        pass
    return out


def descendants(pid: int) -> List[int]:
    """Every live process below ``pid`` (by walking /proc's parent links)."""
    children: Dict[int, List[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                ppid = int(stat.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found: List[int] = []
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(children.get(child, []))
    return sorted(found)


def open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def make_pool(keys: int = KEYS, size: int = POOL) -> List[Dict[str, float]]:
    return [{f"k{j}": (i * keys + j) * 0.001 + 0.5 for j in range(keys)} for i in range(size)]


def count_history(root: str, run_id: str) -> int:
    """The rows of ``run_id`` stored in the store ``root``, counted by the store's own function on a
    fresh read-only connection (independent of the ``runs.rows`` field ``Api`` reports)."""
    from mplogger import _store

    conn = _store.connect_reader(root)
    try:
        return _store.stored_rows(conn, run_id)
    finally:
        conn.close()


def verify_runs(root: str, expected: Dict[str, int]) -> Dict[str, Any]:
    """Read back every run in ``expected`` (id -> rows); raise ScenarioFailed on any shortfall."""
    import mplogger

    api = mplogger.Api(root)
    problems = []
    stored_total = 0
    counted_total = 0
    states: Dict[str, int] = {}
    try:
        for run_id, rows in expected.items():
            stored = api.run(run_id)
            counted = count_history(api.root, run_id)
            stored_total += stored.rows
            counted_total += counted
            states[stored.state] = states.get(stored.state, 0) + 1
            if stored.rows != rows or counted != rows or stored.state != "finished":
                problems.append(f"run {run_id}: logged {rows}, runs.rows={stored.rows}, "
                                f"stored_rows={counted}, state={stored.state}")
    finally:
        api.close()
    if problems:
        shown = "; ".join(problems[:10])
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        raise ScenarioFailed(f"{len(problems)} of {len(expected)} runs are not stored in full: {shown}{more}")
    return {"runs": len(expected), "rows_expected": sum(expected.values()),
            "rows_stored": stored_total, "rows_counted": counted_total, "states": states}


def _work(k: int, x: float) -> float:
    """The ~50 µs of CPU-bound pure-Python work of one cpu_loop step (k iterations)."""
    acc = x
    for j in range(k):
        acc = acc * 0.999 + j * 1e-3
    return acc


# ============================================================================================
# children: each runs in a fresh interpreter and prints one RESULT_MARK line of JSON
# ============================================================================================


def child_memory(root: str, n: int) -> Dict[str, Any]:
    import resource

    import mplogger

    run = mplogger.init(project="scenario-memory", dir=root)
    client = mplogger._user._session.current().client
    manager_pid = client.process.pid
    worker_pids = list(client.worker_pids)
    pool = make_pool()
    log = run.log
    before = proc_status(os.getpid())
    t0 = perf()
    for i in range(n):
        log(pool[i & MASK])
    t1 = perf()
    # just before finish(): the peaks of every process involved
    user = proc_status(os.getpid())
    maxrss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux
    manager = proc_status(manager_pid)
    workers = [proc_status(pid) for pid in worker_pids]
    others = [pid for pid in descendants(manager_pid) if pid not in worker_pids]
    other_status = [proc_status(pid) for pid in others]
    t2 = perf()
    run.finish()
    t3 = perf()
    verified = verify_runs(root, {run.id: n})
    mplogger.teardown()
    return {
        "n": n,
        "user_rss_before_mib": before["VmRSS"],
        "user_hwm_before_mib": before["VmHWM"],
        "user_rss_end_mib": user["VmRSS"],
        "user_hwm_mib": user["VmHWM"],
        "user_maxrss_mib": maxrss_mib,
        "manager_hwm_mib": manager.get("VmHWM", float("nan")),
        "manager_rss_mib": manager.get("VmRSS", float("nan")),
        "worker_hwm_mib": [w.get("VmHWM", float("nan")) for w in workers],
        "worker_rss_mib": [w.get("VmRSS", float("nan")) for w in workers],
        "other_pids": others,
        "other_hwm_mib": [o.get("VmHWM", float("nan")) for o in other_status],
        "user_threads": user.get("Threads", 0.0),
        "log_s": t1 - t0,
        "finish_s": t3 - t2,
        "e2e_s": (t1 - t0) + (t3 - t2),  # sampling /proc is left out
        "verified": verified,
    }


def child_calibrate(step_us: float) -> Dict[str, Any]:
    """Find k such that one ``_work(k)`` step takes ~``step_us`` µs on this machine."""
    k = 200
    for _ in range(4):
        reps = max(200, int(0.2e6 / step_us))
        t = perf()
        for i in range(reps):
            _work(k, i * 1e-3)
        per_step_us = (perf() - t) / reps * 1e6
        k = max(1, round(k * step_us / per_step_us))
    reps = max(500, int(0.3e6 / step_us))
    t = perf()
    for i in range(reps):
        _work(k, i * 1e-3)
    measured = (perf() - t) / reps * 1e6
    # what building the 10-float row costs (done in both (a) and (b), so not mplogger's cost)
    t = perf()
    for i in range(100_000):
        x = i * 1e-3
        {"loss": x, "step_time": x, "f2": x, "f3": x, "f4": x, "f5": x, "f6": x, "f7": x, "f8": x, "f9": x}
    dict_us = (perf() - t) / 100_000 * 1e6
    return {"k": k, "step_us": measured, "dict_us": dict_us}


def child_cpu_loop(root: str, steps: int, k: int, with_mplogger: bool) -> Dict[str, Any]:
    """(a) the bare loop, or (b) the same loop logging 10 floats per step."""
    out: Dict[str, Any] = {"steps": steps, "k": k, "with_mplogger": with_mplogger}
    run = None
    if with_mplogger:
        import mplogger

        run = mplogger.init(project="scenario-cpu-loop", dir=root)
        log = run.log
    else:
        def log(row: Dict[str, float]) -> None:  # what (a) does with the row: nothing
            pass
    assert "mplogger" not in sys.modules or with_mplogger
    work = _work
    x = 0.5
    in_log = 0.0  # time from the end of the work to after log(): the row, log() itself, a perf()
    t_prev = t0 = perf()
    for i in range(steps):
        x = work(k, x + i * 1e-6)
        now = perf()
        t = now - t_prev
        t_prev = now
        log({"loss": x, "step_time": t, "f2": x * 0.5, "f3": x * 0.25, "f4": x + 1.0,
             "f5": x - 1.0, "f6": t * 2.0, "f7": t * 0.5, "f8": float(i), "f9": x * t})
        in_log += perf() - now
    t1 = perf()
    out["loop_s"] = t1 - t0
    out["in_log_s"] = in_log
    if run is not None:
        run.finish()
        t2 = perf()
        out["finish_s"] = t2 - t1
        out["verified"] = verify_runs(root, {run.id: steps})
        import mplogger

        mplogger.teardown()
    return out


def child_wide_rows(root: str, n: int, keys: int) -> Dict[str, Any]:
    import mplogger

    pool = make_pool(keys, 64)
    run = mplogger.init(project="scenario-wide", dir=root)
    client = mplogger._user._session.current().client
    pids = [os.getpid(), client.process.pid, *client.worker_pids]
    before = [proc_status(pid).get("VmRSS", float("nan")) for pid in pids]
    log = run.log
    t0 = perf()
    for i in range(n):
        log(pool[i & 63])
    t1 = perf()
    peaks = [proc_status(pid).get("VmHWM", float("nan")) for pid in pids]
    t2 = perf()
    run.finish()
    t3 = perf()
    verified = verify_runs(root, {run.id: n})
    mplogger.teardown()
    return {"n": n, "keys": keys, "log_s": t1 - t0, "finish_s": t3 - t2,
            "e2e_s": (t1 - t0) + (t3 - t2), "rss_before_mib": before, "hwm_mib": peaks,
            "verified": verified}


def child_sweep(root: str, runs: int, rows: int) -> Dict[str, Any]:
    import mplogger

    init_s: List[float] = []
    finish_s: List[float] = []
    log_s: List[float] = []
    expected: Dict[str, int] = {}
    probes: Dict[str, Dict[str, float]] = {}
    manager_pid = 0
    t_total = perf()
    for i in range(runs):
        t = perf()
        run = mplogger.init(project="scenario-sweep", dir=root, name=f"trial-{i}",
                            config={"trial": i, "lr": 10 ** -(1 + i % 4)})
        t1 = perf()
        for step in range(rows):
            run.log({"loss": 1.0 / (step + 1), "acc": step / rows, "trial": i})
        t2 = perf()
        run.finish()
        t3 = perf()
        init_s.append(t1 - t)
        log_s.append(t2 - t1)
        finish_s.append(t3 - t2)
        expected[run.id] = rows
        if i == 0:
            manager_pid = mplogger._user._session.current().client.process.pid
            probes["after_first"] = {"user_rss_mib": proc_status(os.getpid())["VmRSS"],
                                     "manager_rss_mib": proc_status(manager_pid).get("VmRSS", 0.0),
                                     "fds": float(open_fds()),
                                     "threads": proc_status(os.getpid()).get("Threads", 0.0)}
    total = perf() - t_total
    client = mplogger._user._session.current().client
    probes["at_end"] = {"user_rss_mib": proc_status(os.getpid())["VmRSS"],
                        "manager_rss_mib": proc_status(client.process.pid).get("VmRSS", 0.0),
                        "fds": float(open_fds()),
                        "threads": proc_status(os.getpid()).get("Threads", 0.0)}
    same_manager = client.process.pid == manager_pid
    t = perf()
    verified = verify_runs(root, expected)
    verify_s = perf() - t
    mplogger.teardown()
    return {"runs": runs, "rows": rows, "total_s": total, "init_s": init_s, "log_s": log_s,
            "finish_s": finish_s, "probes": probes, "same_manager": same_manager,
            "verify_s": verify_s, "verified": verified}


def child_verify(root: str, expected: Dict[str, int]) -> Dict[str, Any]:
    return {"verified": verify_runs(root, expected)}


def child_list_runs(root: str, project: str) -> Dict[str, Any]:
    import mplogger

    api = mplogger.Api(root)
    try:
        return {"runs": {r.id: r.rows for r in api.runs(project=project)}}
    finally:
        api.close()


#: the script of exit_after_finish: its last statement follows run.finish()
EXIT_SCRIPT = textwrap.dedent(
    '''
    import atexit, sys, time
    # runs last at exit: after mplogger's handler and multiprocessing's (both registered later)
    atexit.register(lambda: print("@@ATEXIT_LAST@@", repr(time.time()), flush=True))
    import mplogger

    root, n, pace_us = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    perf = time.perf_counter
    rows = [{f"k{j}": (i * 10 + j) * 0.001 for j in range(10)} for i in range(1024)]
    run = mplogger.init(project="scenario-exit", dir=root)
    # runs first at exit: registered after mplogger's handler (init registers it)
    atexit.register(lambda: print("@@ATEXIT_FIRST@@", repr(time.time()), flush=True))
    log = run.log
    pace = pace_us * 1e-6
    t0 = perf()
    if pace > 0:
        for i in range(n):
            end = perf() + pace
            while perf() < end:
                pass
            log(rows[i & 1023])
    else:
        for i in range(n):
            log(rows[i & 1023])
    t1 = perf()
    run.finish()
    t2 = perf()
    print("@@FINISHED@@", run.id, repr(t1 - t0), repr(t2 - t1), repr(time.time()), flush=True)
    '''
)

#: the reference: a plain interpreter printing the same line and exiting
PLAIN_EXIT_SCRIPT = 'import time\nprint("@@FINISHED@@", "-", "0", "0", repr(time.time()), flush=True)\n'
#: the reference with mplogger imported but no run
IMPORT_EXIT_SCRIPT = 'import time, mplogger\nprint("@@FINISHED@@", "-", "0", "0", repr(time.time()), flush=True)\n'


def child_main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.scenarios --child")
    parser.add_argument("--child", required=True)
    parser.add_argument("--root", default="")
    parser.add_argument("--params", default="{}")
    args = parser.parse_args(argv)
    params = json.loads(args.params)
    children: Dict[str, Callable[..., Dict[str, Any]]] = {
        "memory": child_memory, "calibrate": child_calibrate, "cpu_loop": child_cpu_loop,
        "wide_rows": child_wide_rows, "sweep": child_sweep, "verify": child_verify,
        "list_runs": child_list_runs,
    }
    func = children[args.child]
    if args.child == "calibrate":
        result = func(**params)
    else:
        result = func(args.root, **params)
    sys.stdout.write(RESULT_MARK + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


# ============================================================================================
# the parent
# ============================================================================================


def _child_env() -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MPLOGGER_")}
    env["PYTHONPATH"] = REPO_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_child(kind: str, root: str, params: Dict[str, Any], timeout: float) -> Dict[str, Any]:
    """``python -m benchmarks.scenarios --child KIND`` in a fresh interpreter; its JSON result."""
    cmd = [sys.executable, "-m", "benchmarks.scenarios", "--child", kind, "--root", root,
           "--params", json.dumps(params)]
    cwd = root if root and os.path.isdir(root) else tempfile.gettempdir()
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=_child_env(), capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise ScenarioFailed(f"child {kind} {params} ran past {timeout:g} s") from exc
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_MARK)]
    if proc.returncode != 0 or not lines:
        raise ScenarioFailed(f"child {kind} {params} failed with exit code {proc.returncode}:\n"
                             f"{(proc.stderr.strip() or proc.stdout.strip())[-4000:]}")
    if proc.stderr.strip():
        sys.stderr.write(f"[{kind} stderr]\n{proc.stderr}")
    return json.loads(lines[-1][len(RESULT_MARK):])


class _Store:
    """A temporary store root (and working folder) for one scenario, removed afterwards."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.path = ""

    def __enter__(self) -> str:
        self.path = tempfile.mkdtemp(prefix=f"mplogger-scenario-{self.name}-")
        return self.path

    def __exit__(self, *exc: Any) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _check_rows(name: str, verified: Dict[str, Any]) -> None:
    if not (verified["rows_stored"] == verified["rows_counted"] == verified["rows_expected"]):
        raise ScenarioFailed(f"{name}: {verified['rows_expected']} rows logged, "
                             f"{verified['rows_stored']} in runs.rows, {verified['rows_counted']} in history")


# --- 1. memory ------------------------------------------------------------------------------


def scenario_memory(n: int = 1_000_000, timeout: float = TIMEOUT_FULL_S) -> Dict[str, Any]:
    with _Store("memory") as root:
        r = run_child("memory", root, {"n": n}, timeout)
    _check_rows("memory", r["verified"])
    figures: Dict[str, float] = {
        "user_rss_before_mib": r["user_rss_before_mib"],
        "user_peak_rss_mib": r["user_hwm_mib"],
        "user_maxrss_mib": r["user_maxrss_mib"],
        "user_rss_end_mib": r["user_rss_end_mib"],
        "manager_peak_rss_mib": r["manager_hwm_mib"],
    }
    for i, hwm in enumerate(r["worker_hwm_mib"]):
        figures[f"worker{i}_peak_rss_mib"] = hwm
    for i, hwm in enumerate(r["other_hwm_mib"]):
        figures[f"other{i}_peak_rss_mib"] = hwm
    figures["total_peak_rss_mib"] = (r["user_hwm_mib"] + r["manager_hwm_mib"] + sum(r["worker_hwm_mib"])
                                     + sum(r["other_hwm_mib"]))
    figures.update({
        "log_us": r["log_s"] / n * 1e6,
        "finish_ms": r["finish_s"] * 1e3,
        "e2e_rows_per_s": n / r["e2e_s"],
    })
    signed = {
        "user_rss_growth_mib": r["user_rss_end_mib"] - r["user_rss_before_mib"],
        "user_peak_growth_mib": r["user_hwm_mib"] - r["user_rss_before_mib"],
    }
    return {"params": {"n": n}, "figures": figures, "signed": signed,
            "rows": {"expected": n, "stored": r["verified"]["rows_stored"]}, "verified": True,
            "raw": r}


# --- 2. cpu_loop ----------------------------------------------------------------------------


def scenario_cpu_loop(steps: int = 20_000, repeats: int = 5, step_us: float = 50.0,
                      timeout: float = TIMEOUT_FULL_S) -> Dict[str, Any]:
    cal = run_child("calibrate", "", {"step_us": step_us}, timeout)
    bare: List[Dict[str, Any]] = []
    logged: List[Dict[str, Any]] = []
    for _ in range(repeats):
        bare.append(run_child("cpu_loop", "", {"steps": steps, "k": cal["k"], "with_mplogger": False},
                              timeout))
        with _Store("cpu-loop") as root:
            logged.append(run_child("cpu_loop", root,
                                    {"steps": steps, "k": cal["k"], "with_mplogger": True}, timeout))
    for r in logged:
        _check_rows("cpu_loop", r["verified"])
    a = [r["loop_s"] for r in bare]
    b = [r["loop_s"] for r in logged]
    b_total = [r["loop_s"] + r["finish_s"] for r in logged]
    med_a, med_b = statistics.median(a), statistics.median(b)
    figures = {
        "calibrated_step_us": cal["step_us"],
        "dict_build_us": cal["dict_us"],
        "bare_loop_s": med_a,
        "logged_loop_s": med_b,
        "bare_step_us": med_a / steps * 1e6,
        "logged_step_us": med_b / steps * 1e6,
        "finish_ms": statistics.median(r["finish_s"] for r in logged) * 1e3,
    }
    signed = {
        "slowdown_pct": (med_b / med_a - 1.0) * 100.0,
        "slowdown_incl_finish_pct": (statistics.median(b_total) / med_a - 1.0) * 100.0,
        "extra_us_per_step": (med_b - med_a) / steps * 1e6,
    }
    # where (b)'s extra time goes: inside the log() call, or in the work around it (the
    # manager and worker on the other CPU(s), the flusher thread, caches)
    in_a = statistics.median(r["in_log_s"] for r in bare)
    in_b = statistics.median(r["in_log_s"] for r in logged)
    signed["in_log_us_per_step"] = (in_b - in_a) / steps * 1e6
    signed["outside_log_us_per_step"] = signed["extra_us_per_step"] - signed["in_log_us_per_step"]
    pairs = [(y / x - 1.0) * 100.0 for x, y in zip(a, b)]
    return {"params": {"steps": steps, "repeats": repeats, "step_us": step_us, "k": cal["k"]},
            "figures": figures, "signed": signed,
            "rows": {"expected": steps * repeats,
                     "stored": sum(r["verified"]["rows_stored"] for r in logged)},
            "verified": True,
            "samples": {"bare_loop_s": a, "logged_loop_s": b, "paired_slowdown_pct": pairs,
                        "finish_s": [r["finish_s"] for r in logged]}}


# --- 3. wide_rows ---------------------------------------------------------------------------


def scenario_wide_rows(n: int = 20_000, keys: int = 200, timeout: float = TIMEOUT_FULL_S) -> Dict[str, Any]:
    with _Store("wide") as root:
        r = run_child("wide_rows", root, {"n": n, "keys": keys}, timeout)
    _check_rows("wide_rows", r["verified"])
    figures = {
        "log_us": r["log_s"] / n * 1e6,
        "log_ns_per_key": r["log_s"] / n / keys * 1e9,
        "finish_ms": r["finish_s"] * 1e3,
        "e2e_rows_per_s": n / r["e2e_s"],
        "e2e_values_per_s": n * keys / r["e2e_s"],
        "user_peak_rss_mib": r["hwm_mib"][0],
        "manager_peak_rss_mib": r["hwm_mib"][1],
    }
    for i, hwm in enumerate(r["hwm_mib"][2:]):
        figures[f"worker{i}_peak_rss_mib"] = hwm
    signed = {"user_peak_growth_mib": r["hwm_mib"][0] - r["rss_before_mib"][0],
              "manager_peak_growth_mib": r["hwm_mib"][1] - r["rss_before_mib"][1]}
    return {"params": {"n": n, "keys": keys}, "figures": figures, "signed": signed,
            "rows": {"expected": n, "stored": r["verified"]["rows_stored"]}, "verified": True}


# --- 4. sweep -------------------------------------------------------------------------------


def scenario_sweep(runs: int = 1000, rows: int = 10, timeout: float = TIMEOUT_FULL_S) -> Dict[str, Any]:
    with _Store("sweep") as root:
        r = run_child("sweep", root, {"runs": runs, "rows": rows}, timeout)
    _check_rows("sweep", r["verified"])
    if r["verified"]["runs"] != runs:
        raise ScenarioFailed(f"sweep: {runs} runs made, {r['verified']['runs']} verified")
    warm_init = r["init_s"][1:] or r["init_s"]
    first, end = r["probes"]["after_first"], r["probes"]["at_end"]
    figures = {
        "total_s": r["total_s"],
        "ms_per_run": r["total_s"] / runs * 1e3,
        "init_first_ms": r["init_s"][0] * 1e3,
        "init_median_ms": statistics.median(warm_init) * 1e3,
        "init_p90_ms": percentile(warm_init, 90) * 1e3,
        "log_median_ms": statistics.median(r["log_s"]) * 1e3,
        "finish_median_ms": statistics.median(r["finish_s"]) * 1e3,
        "finish_p90_ms": percentile(r["finish_s"], 90) * 1e3,
        "finish_max_ms": max(r["finish_s"]) * 1e3,
        "verify_s": r["verify_s"],
    }
    signed = {
        "user_rss_growth_run1_mib": end["user_rss_mib"] - first["user_rss_mib"],
        "manager_rss_growth_mib": end["manager_rss_mib"] - first["manager_rss_mib"],
        "fd_growth": end["fds"] - first["fds"],
        "thread_growth": end["threads"] - first["threads"],
    }
    return {"params": {"runs": runs, "rows": rows, "mode": "init/log/finish in sequence"},
            "figures": figures, "signed": signed,
            "rows": {"expected": runs * rows, "stored": r["verified"]["rows_stored"]},
            "runs_verified": r["verified"]["runs"], "same_manager": r["same_manager"],
            "verified": True}


# --- 5. exit_after_finish -------------------------------------------------------------------


def _pidfd(pid: int) -> Optional[int]:
    try:
        return os.pidfd_open(pid)  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        return None


def time_script_exit(script: str, args: Sequence[str], cwd: str, timeout: float) -> Dict[str, Any]:
    """Run ``script``; the time from its FINISH_MARK line's stamp to its exit, as the parent sees it.

    The exit is seen through a pidfd (exact); ``Popen.wait(timeout)`` polls with sleeps of up to
    50 ms and would blur a figure whose target is 0.1 s. Without pidfds, polls every 0.5 ms.
    """
    stderr = tempfile.TemporaryFile(mode="w+b")
    proc = subprocess.Popen([sys.executable, script, *args], cwd=cwd, env=_child_env(),
                            stdout=subprocess.PIPE, stderr=stderr)
    pidfd = _pidfd(proc.pid)
    deadline = time.monotonic() + timeout
    out = bytearray()
    exited_at: Optional[float] = None
    out_fd = proc.stdout.fileno()  # type: ignore[union-attr]
    watch = [out_fd] + ([pidfd] if pidfd is not None else [])
    try:
        while exited_at is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                proc.kill()
                proc.wait(5)
                raise ScenarioFailed(f"{os.path.basename(script)} {' '.join(args)} ran past {timeout:g} s")
            ready, _, _ = select.select(watch, [], [], min(remaining, 0.0005 if pidfd is None else remaining))
            now = time.time()
            if pidfd is not None and pidfd in ready:
                exited_at = now
            elif pidfd is None and proc.poll() is not None:
                exited_at = now
            if out_fd in ready:
                chunk = os.read(out_fd, 65536)
                if chunk:
                    out += chunk
                else:
                    watch = [fd for fd in watch if fd != out_fd]
                    if not watch:  # no pidfd and stdout closed: poll for the exit
                        while proc.poll() is None and time.monotonic() < deadline:
                            time.sleep(0.0005)
                        exited_at = time.time()
        try:
            rest, _ = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired as exc:
            raise ScenarioFailed(f"{os.path.basename(script)}: its output did not end after its exit") from exc
        out += rest or b""
    finally:
        if pidfd is not None:
            os.close(pidfd)
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    stderr.seek(0)
    err = stderr.read().decode(errors="replace")
    stderr.close()
    lines = [line for line in out.decode(errors="replace").splitlines() if line.startswith(FINISH_MARK)]
    if proc.returncode != 0 or not lines:
        raise ScenarioFailed(f"{os.path.basename(script)} {' '.join(args)} exited with "
                             f"{proc.returncode}:\n{err[-4000:] or out.decode(errors='replace')[-4000:]}")
    if err.strip():
        sys.stderr.write(f"[{os.path.basename(script)} stderr]\n{err}")
    _, run_id, log_s, finish_s, stamp = lines[-1].split()
    result = {"run_id": run_id, "log_s": float(log_s), "finish_s": float(finish_s),
              "exit_after_print_s": exited_at - float(stamp)}
    marks = {}
    for line in out.decode(errors="replace").splitlines():
        if line.startswith("@@ATEXIT_"):
            mark, value = line.split()
            marks[mark] = float(value)
    if "@@ATEXIT_FIRST@@" in marks and "@@ATEXIT_LAST@@" in marks:
        result["to_atexit_s"] = marks["@@ATEXIT_FIRST@@"] - float(stamp)
        result["atexit_handlers_s"] = marks["@@ATEXIT_LAST@@"] - marks["@@ATEXIT_FIRST@@"]
        result["after_atexit_s"] = exited_at - marks["@@ATEXIT_LAST@@"]
    return result


def scenario_exit_after_finish(n: int = 20_000, repeats: int = 5, pace_us: float = 5.0,
                               timeout: float = TIMEOUT_FULL_S) -> Dict[str, Any]:
    samples: Dict[str, List[Dict[str, Any]]] = {"flat": [], "paced": [], "plain": [], "import": []}
    with _Store("exit") as root:
        script = os.path.join(root, "log_then_finish.py")
        plain = os.path.join(root, "plain_exit.py")
        with open(script, "w") as f:
            f.write(EXIT_SCRIPT)
        with open(plain, "w") as f:
            f.write(PLAIN_EXIT_SCRIPT)
        imported = os.path.join(root, "import_exit.py")
        with open(imported, "w") as f:
            f.write(IMPORT_EXIT_SCRIPT)
        store = os.path.join(root, "store")
        for _ in range(repeats):
            samples["flat"].append(time_script_exit(script, [store, str(n), "0"], root, timeout))
            samples["paced"].append(time_script_exit(script, [store, str(n), repr(pace_us)], root, timeout))
            samples["plain"].append(time_script_exit(plain, [], root, timeout))
            samples["import"].append(time_script_exit(imported, [], root, timeout))
        expected = {s["run_id"]: n for kind in ("flat", "paced") for s in samples[kind]}
        verified = run_child("verify", store, {"expected": expected}, timeout)["verified"]
        listed = run_child("list_runs", store, {"project": "scenario-exit"}, timeout)["runs"]
    _check_rows("exit_after_finish", verified)
    if len(listed) != len(expected):
        raise ScenarioFailed(f"exit_after_finish: {len(expected)} runs made, {len(listed)} stored")

    def med(kind: str, key: str, scale: float = 1.0) -> float:
        return statistics.median(s[key] for s in samples[kind]) * scale

    figures = {
        "exit_after_finish_s": med("flat", "exit_after_print_s"),
        "exit_after_finish_max_s": max(s["exit_after_print_s"] for s in samples["flat"]),
        "exit_after_finish_paced_s": med("paced", "exit_after_print_s"),
        "exit_atexit_handlers_s": med("flat", "atexit_handlers_s"),
        "exit_after_atexit_s": med("flat", "after_atexit_s"),
        "exit_plain_python_s": med("plain", "exit_after_print_s"),
        "exit_import_only_s": med("import", "exit_after_print_s"),
        "finish_flat_ms": med("flat", "finish_s", 1e3),
        "finish_paced_ms": med("paced", "finish_s", 1e3),
        "log_flat_us": med("flat", "log_s", 1e6 / n),
        "log_paced_us": med("paced", "log_s", 1e6 / n),
    }
    return {"params": {"n": n, "repeats": repeats, "pace_us": pace_us,
                       "exit_seen_by": "pidfd" if _pidfd(os.getpid()) is not None else "poll 0.5 ms"},
            "figures": figures, "signed": {},
            "rows": {"expected": n * len(expected), "stored": verified["rows_stored"]},
            "verified": True,
            "samples": {kind: [{k: v for k, v in s.items() if k != "run_id"} for s in rows]
                        for kind, rows in samples.items()}}


# --- driver ---------------------------------------------------------------------------------

RUNNERS: Dict[str, Callable[..., Dict[str, Any]]] = {
    "memory": scenario_memory,
    "cpu_loop": scenario_cpu_loop,
    "wide_rows": scenario_wide_rows,
    "sweep": scenario_sweep,
    "exit_after_finish": scenario_exit_after_finish,
}


def _loadavg() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def run_scenarios(quick: bool = False, only: Optional[List[str]] = None,
                  params: Optional[Dict[str, Dict[str, Any]]] = None,
                  progress: bool = False) -> Dict[str, Dict[str, Any]]:
    """Run the scenarios (all, or those in ``only``); ``params`` overrides per scenario."""
    names = list(SCENARIOS) if not only else list(only)
    unknown = [name for name in names if name not in RUNNERS]
    if unknown:
        raise ValueError(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    base = QUICK if quick else FULL
    timeout = TIMEOUT_QUICK_S if quick else TIMEOUT_FULL_S
    results: Dict[str, Dict[str, Any]] = {}
    for name in names:
        kwargs = dict(base[name], **(params or {}).get(name, {}))
        if progress:
            sys.stderr.write(f"  {name} {kwargs} ...\n")
            sys.stderr.flush()
        started = perf()
        load_before = _loadavg()
        result = RUNNERS[name](timeout=timeout, **kwargs)
        result["wall_s"] = perf() - started
        result["loadavg_1min"] = {"before": load_before, "after": _loadavg()}
        results[name] = result
    return results


# --- printing -------------------------------------------------------------------------------

LABELS: Dict[str, Tuple[str, str]] = {
    # memory
    "user_rss_before_mib": ("user RSS before the loop", "MiB"),
    "user_peak_rss_mib": ("user peak RSS (VmHWM, before finish)", "MiB"),
    "user_maxrss_mib": ("user peak RSS (getrusage ru_maxrss)", "MiB"),
    "user_rss_end_mib": ("user RSS at the end of the loop", "MiB"),
    "user_rss_growth_mib": ("user RSS growth over the loop", "MiB"),
    "user_peak_growth_mib": ("user peak RSS - RSS before the loop", "MiB"),
    "manager_peak_rss_mib": ("manager peak RSS (VmHWM)", "MiB"),
    "total_peak_rss_mib": ("sum of all peaks", "MiB"),
    "log_us": ("log() per call", "µs"),
    "finish_ms": ("finish() after the last log", "ms"),
    "e2e_rows_per_s": ("end-to-end rows/s (first log to finish)", "rows/s"),
    # cpu_loop
    "calibrated_step_us": ("calibrated work per step", "µs"),
    "dict_build_us": ("building the 10-float row (in (a) and (b))", "µs"),
    "bare_loop_s": ("(a) loop without mplogger, median", "s"),
    "logged_loop_s": ("(b) loop with log() every step, median", "s"),
    "bare_step_us": ("(a) per step", "µs"),
    "logged_step_us": ("(b) per step", "µs"),
    "extra_us_per_step": ("(b) - (a) per step", "µs"),
    "slowdown_pct": ("slowdown median(b)/median(a) - 1 (target ≤ 3 %)", "%"),
    "slowdown_incl_finish_pct": ("slowdown counting (b)'s finish() too", "%"),
    "in_log_us_per_step": ("  of which inside the log() call", "µs"),
    "outside_log_us_per_step": ("  of which outside it (work slowed down)", "µs"),
    # wide_rows
    "log_ns_per_key": ("log() per key", "ns"),
    "e2e_values_per_s": ("end-to-end values/s", "values/s"),
    # sweep
    "total_s": ("total", "s"),
    "ms_per_run": ("per run (init + 10 logs + finish)", "ms"),
    "init_first_ms": ("first init() (manager start)", "ms"),
    "init_median_ms": ("init() median (runs 2..)", "ms"),
    "init_p90_ms": ("init() p90 (runs 2..)", "ms"),
    "log_median_ms": ("10 log() calls, median", "ms"),
    "finish_median_ms": ("finish() median", "ms"),
    "finish_p90_ms": ("finish() p90", "ms"),
    "finish_max_ms": ("finish() max", "ms"),
    "verify_s": ("reading every run back", "s"),
    "user_rss_growth_run1_mib": ("user RSS growth, run 1 to the end", "MiB"),
    "manager_peak_growth_mib": ("manager peak RSS - RSS before the loop", "MiB"),
    "manager_rss_growth_mib": ("manager RSS growth, run 1 to the end", "MiB"),
    "fd_growth": ("user open fds growth, run 1 to the end", "fds"),
    "thread_growth": ("user threads growth, run 1 to the end", "threads"),
    # exit_after_finish
    "exit_after_finish_s": ("print after finish() -> exit, median (target ≤ 0.1 s)", "s"),
    "exit_after_finish_max_s": ("print after finish() -> exit, max", "s"),
    "exit_after_finish_paced_s": ("same, paced logging", "s"),
    "exit_atexit_handlers_s": ("  of which atexit handlers (mplogger's, multiprocessing's)", "s"),
    "exit_after_atexit_s": ("  of which interpreter shutdown after them", "s"),
    "exit_plain_python_s": ("reference: plain python print -> exit", "s"),
    "exit_import_only_s": ("reference: import mplogger, no run, print -> exit", "s"),
    "finish_flat_ms": ("finish() after 20k logs flat out", "ms"),
    "finish_paced_ms": ("finish() after 20k logs paced ~5 µs", "ms"),
    "log_flat_us": ("log() per call, flat out", "µs"),
    "log_paced_us": ("log() per call incl. ~5 µs pacing", "µs"),
}

TITLES = {
    "memory": "memory — {n:,} rows of 10 floats flat out, peaks read just before finish()",
    "cpu_loop": "cpu_loop — {steps:,} steps of ~{step_us:g} µs pure-Python work (k={k}), "
                "{repeats} alternating repeat(s) in fresh processes",
    "wide_rows": "wide_rows — {n:,} rows of {keys} float keys",
    "sweep": "sweep — {runs:,} runs in one process, {rows} rows each ({mode})",
    "exit_after_finish": "exit_after_finish — {n:,} rows then finish(), median of {repeats} "
                         "(exit seen by {exit_seen_by})",
}


def _label(key: str) -> Tuple[str, str]:
    if key in LABELS:
        return LABELS[key]
    for prefix, what in (("worker", "worker"), ("other", "other process under the manager")):
        if key.startswith(prefix) and key.endswith("_peak_rss_mib"):
            index = key[len(prefix):-len("_peak_rss_mib")]
            return (f"{what} {index} peak RSS (VmHWM)", "MiB")
    return (key, "")



def format_scenarios(results: Dict[str, Dict[str, Any]]) -> str:
    """A readable table per scenario."""
    out = [f"mplogger scenarios — python {platform.python_version()} on {platform.system()} "
           f"{platform.machine()}, {os.cpu_count()} CPUs"]
    for name in [n for n in SCENARIOS if n in results] + [n for n in results if n not in SCENARIOS]:
        result = results[name]
        title = TITLES.get(name, name)
        try:
            title = title.format(**result.get("params", {}))
        except (KeyError, ValueError):
            pass
        rows = [(*_label(k), format_number(v)) for k, v in result.get("figures", {}).items()]
        rows += [(*_label(k), format_number(v)) for k, v in result.get("signed", {}).items()]
        width = max(len(label) for label, _, _ in rows) if rows else 0
        vwidth = max(len(value) for _, _, value in rows) if rows else 0
        out += ["", title, "-" * len(title)]
        out += [f"  {label:<{width}}  {value:>{vwidth}} {unit}" for label, unit, value in rows]
        rows_info = result.get("rows", {})
        extra = f", {result['runs_verified']} runs" if "runs_verified" in result else ""
        out.append(f"  verified: {rows_info.get('stored')} of {rows_info.get('expected')} rows stored{extra}"
                   f" (runs.rows and the stored history rows agree); scenario wall {result.get('wall_s', 0):.1f} s")
        load = result.get("loadavg_1min")
        if load:
            out.append(f"  machine load average (1 min) before/after: {load['before']:.2f} / {load['after']:.2f}")
        samples = result.get("samples")
        if name == "cpu_loop" and samples:
            out.append("  per-repeat slowdown %: " + ", ".join(f"{v:+.1f}" for v in samples["paired_slowdown_pct"]))
    return "\n".join(out)


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--child" in argv:
        return child_main(argv)
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scenarios",
                                     description="mplogger scenario benchmarks (each in fresh processes, "
                                                 "rows verified from the store).")
    parser.add_argument("--quick", action="store_true", help="small sizes (well under a minute)")
    parser.add_argument("--only", action="append", metavar="NAME[,NAME]",
                        help=f"run only these scenarios ({', '.join(SCENARIOS)})")
    parser.add_argument("--json", metavar="PATH", help="also write every figure as JSON to PATH")
    parser.add_argument("--memory-n", type=int, metavar="N", help="rows logged by the memory scenario")
    args = parser.parse_args(argv)
    only = [name.strip() for item in args.only or [] for name in item.split(",") if name.strip()] or None
    if only:
        unknown = [name for name in only if name not in SCENARIOS]
        if unknown:
            parser.error(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    params: Dict[str, Dict[str, Any]] = {}
    if args.memory_n is not None:
        if args.memory_n < 1:
            parser.error("--memory-n must be >= 1")
        params["memory"] = {"n": args.memory_n}
    started = perf()
    try:
        results = run_scenarios(quick=args.quick, only=only, params=params, progress=sys.stderr.isatty())
    except ScenarioFailed as exc:
        sys.stderr.write(f"\nSCENARIO FAILED: {exc}\n")
        return 1
    print(format_scenarios(results))
    version = code_version()
    print(f"\nmplogger code: {version}; wall time {perf() - started:.1f} s")
    if args.json:
        write_results(args.json, {"quick": args.quick, "code": version, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
