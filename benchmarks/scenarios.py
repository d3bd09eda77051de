"""The scenarios section: mplogger under the loads users put on it, one entry each in :data:`SCENARIOS`.

Each scenario runs its measurements in fresh interpreters (:func:`benchmarks.runner.fresh`)
against a store in a temporary folder, and verifies what it logged by reading the row counts
back (``mplogger.Api`` and the store's own count): a missing row fails it
(:class:`BenchmarkFailed`). Figures are reported, never compared with targets.

memory: N rows logged flat out; peak RSS of the user process, the manager and every worker just
before ``finish()``. cpu_loop: a ~50 µs pure-Python step with and without ``log()`` of 10 floats,
alternating in fresh processes: the slowdown. wide_rows: rows of 200 keys. sweep: many short runs
in one process. exit_after_finish: a script's last line after ``finish()`` until its process is
gone, as its parent sees it.

A new scenario is a function ``(sheet, timeout, **sizes)`` that adds its figures to the
:class:`Sheet` and calls :meth:`Sheet.verified`, and one :class:`Scenario` entry naming it.
"""

from __future__ import annotations

import dataclasses
import os
import select
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

from benchmarks.common import MASK, BenchmarkFailed, make_pool, percentile
from benchmarks.figures import Report, Value
from benchmarks.registry import Options, keys, section
from benchmarks.runner import child_env, fresh

SECTION = "scenarios"
TIMEOUT_FULL_S = 600  # bound on every subprocess wait
TIMEOUT_QUICK_S = 120
FINISH_MARK = "@@FINISHED@@"

perf = time.perf_counter


# --- helpers shared by children and the parent ------------------------------------------------


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
    """Read back every run in ``expected`` (id -> rows); raise BenchmarkFailed on any shortfall."""
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
        raise BenchmarkFailed(f"{len(problems)} of {len(expected)} runs are not stored in full: {shown}{more}")
    return {"runs": len(expected), "rows_expected": sum(expected.values()),
            "rows_stored": stored_total, "rows_counted": counted_total, "states": states}


def _work(k: int, x: float) -> float:
    """The ~50 µs of CPU-bound pure-Python work of one cpu_loop step (k iterations)."""
    acc = x
    for j in range(k):
        acc = acc * 0.999 + j * 1e-3
    return acc


# --- children: each runs in a fresh interpreter ---------------------------------------------------


def child_memory(root: str, n: int) -> Dict[str, Any]:
    import resource

    import mplogger

    run = mplogger.init(project="scenario-memory", dir=root)
    manager = mplogger.setup()
    manager_pid = manager.pid
    worker_pids = manager.worker_pids
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
    manager = mplogger.setup()
    pids = [os.getpid(), manager.pid, *manager.worker_pids]
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
            manager_pid = mplogger.setup().pid
            probes["after_first"] = {"user_rss_mib": proc_status(os.getpid())["VmRSS"],
                                     "manager_rss_mib": proc_status(manager_pid).get("VmRSS", 0.0),
                                     "fds": float(open_fds()),
                                     "threads": proc_status(os.getpid()).get("Threads", 0.0)}
    total = perf() - t_total
    manager = mplogger.setup()
    probes["at_end"] = {"user_rss_mib": proc_status(os.getpid())["VmRSS"],
                        "manager_rss_mib": proc_status(manager.pid).get("VmRSS", 0.0),
                        "fds": float(open_fds()),
                        "threads": proc_status(os.getpid()).get("Threads", 0.0)}
    same_manager = manager.pid == manager_pid
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
    proc = subprocess.Popen([sys.executable, script, *args], cwd=cwd, env=child_env(),
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
                raise BenchmarkFailed(f"{os.path.basename(script)} {' '.join(args)} ran past {timeout:g} s")
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
            raise BenchmarkFailed(f"{os.path.basename(script)}: its output did not end after its exit") from exc
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
        raise BenchmarkFailed(f"{os.path.basename(script)} {' '.join(args)} exited with "
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

# --- the parent ----------------------------------------------------------------------------------


class Sheet:
    """What one scenario reports: its figures (one row each) and the rows it verified."""

    def __init__(self, report: Report, name: str) -> None:
        self.report, self.name = report, name

    def add(self, label: str, value: Value, unit: str = "") -> None:
        self.report.add(SECTION, f"{self.name}: {label}", "value", value, unit)

    def verified(self, logged: int, stored: int, runs: Optional[int] = None) -> None:
        """Every row logged is stored, else BenchmarkFailed; the count becomes a figure."""
        if stored != logged:
            raise BenchmarkFailed(f"{self.name}: {logged} rows logged, {stored} stored")
        extra = f" in {runs:,} runs" if runs is not None else ""
        self.add("rows stored / logged", f"{stored:,} / {logged:,}{extra}")


def _child(name: str, timeout: float, **kwargs: Any) -> Dict[str, Any]:
    return fresh(f"benchmarks.scenarios:child_{name}", timeout, **kwargs)


def _verified(name: str, result: Dict[str, Any]) -> int:
    """The rows a child's ``verify_runs`` found, after checking both counts agree with the log."""
    v = result["verified"]
    if not v["rows_stored"] == v["rows_counted"] == v["rows_expected"]:
        raise BenchmarkFailed(f"{name}: {v['rows_expected']} rows logged, {v['rows_stored']} in runs.rows, "
                              f"{v['rows_counted']} in the history")
    return v["rows_stored"]


def memory(out: Sheet, timeout: float, n: int) -> None:
    with tempfile.TemporaryDirectory(prefix="mplogger-scenario-") as root:
        r = _child("memory", timeout, root=root, n=n)
    out.add("user RSS before the loop", r["user_rss_before_mib"], "MiB")
    out.add("user peak RSS (VmHWM, before finish)", r["user_hwm_mib"], "MiB")
    out.add("user peak RSS (getrusage ru_maxrss)", r["user_maxrss_mib"], "MiB")
    out.add("user RSS at the end of the loop", r["user_rss_end_mib"], "MiB")
    out.add("user RSS growth over the loop", r["user_rss_end_mib"] - r["user_rss_before_mib"], "MiB")
    out.add("user peak RSS - RSS before the loop", r["user_hwm_mib"] - r["user_rss_before_mib"], "MiB")
    out.add("manager peak RSS (VmHWM)", r["manager_hwm_mib"], "MiB")
    for i, hwm in enumerate(r["worker_hwm_mib"]):
        out.add(f"worker {i} peak RSS (VmHWM)", hwm, "MiB")
    for i, hwm in enumerate(r["other_hwm_mib"]):
        out.add(f"other process {i} under the manager, peak RSS", hwm, "MiB")
    out.add("sum of all peaks", r["user_hwm_mib"] + r["manager_hwm_mib"] + sum(r["worker_hwm_mib"])
            + sum(r["other_hwm_mib"]), "MiB")
    out.add("log() per call", r["log_s"] / n * 1e6, "µs")
    out.add("finish() after the last log", r["finish_s"] * 1e3, "ms")
    out.add("end to end (first log to finish)", n / r["e2e_s"], "rows/s")
    out.verified(n, _verified("memory", r))


def cpu_loop(out: Sheet, timeout: float, steps: int, repeats: int, step_us: float) -> None:
    cal = _child("calibrate", timeout, step_us=step_us)
    bare: List[Dict[str, Any]] = []
    logged: List[Dict[str, Any]] = []
    for _ in range(repeats):
        bare.append(_child("cpu_loop", timeout, root="", steps=steps, k=cal["k"], with_mplogger=False))
        with tempfile.TemporaryDirectory(prefix="mplogger-scenario-") as root:
            logged.append(_child("cpu_loop", timeout, root=root, steps=steps, k=cal["k"], with_mplogger=True))
    stored = sum(_verified("cpu_loop", r) for r in logged)
    a = [r["loop_s"] for r in bare]
    b = [r["loop_s"] for r in logged]
    med_a, med_b = statistics.median(a), statistics.median(b)
    in_a = statistics.median(r["in_log_s"] for r in bare)
    in_b = statistics.median(r["in_log_s"] for r in logged)
    extra_us = (med_b - med_a) / steps * 1e6
    out.add(f"calibrated work per step (k={cal['k']})", cal["step_us"], "µs")
    out.add("building the 10-float row (in (a) and (b))", cal["dict_us"], "µs")
    out.add("(a) loop without mplogger, median", med_a, "s")
    out.add("(b) loop with log() every step, median", med_b, "s")
    out.add("(a) per step", med_a / steps * 1e6, "µs")
    out.add("(b) per step", med_b / steps * 1e6, "µs")
    out.add("(b) - (a) per step", extra_us, "µs")
    out.add("  of which inside the log() call", (in_b - in_a) / steps * 1e6, "µs")
    out.add("  of which outside it (work slowed down)", extra_us - (in_b - in_a) / steps * 1e6, "µs")
    out.add("slowdown median(b)/median(a) - 1", (med_b / med_a - 1.0) * 100.0, "%")
    out.add("slowdown counting (b)'s finish() too",
            (statistics.median(r["loop_s"] + r["finish_s"] for r in logged) / med_a - 1.0) * 100.0, "%")
    out.add("per-repeat slowdown", ", ".join(f"{(y / x - 1.0) * 100.0:+.1f}" for x, y in zip(a, b)), "%")
    out.add("finish() after the loop", statistics.median(r["finish_s"] for r in logged) * 1e3, "ms")
    out.verified(steps * repeats, stored)


def wide_rows(out: Sheet, timeout: float, n: int, keys: int) -> None:
    with tempfile.TemporaryDirectory(prefix="mplogger-scenario-") as root:
        r = _child("wide_rows", timeout, root=root, n=n, keys=keys)
    out.add("log() per call", r["log_s"] / n * 1e6, "µs")
    out.add("log() per key", r["log_s"] / n / keys * 1e9, "ns")
    out.add("finish() after the last log", r["finish_s"] * 1e3, "ms")
    out.add("end to end", n / r["e2e_s"], "rows/s")
    out.add("end to end, values", n * keys / r["e2e_s"], "values/s")
    out.add("user peak RSS (VmHWM)", r["hwm_mib"][0], "MiB")
    out.add("user peak RSS - RSS before the loop", r["hwm_mib"][0] - r["rss_before_mib"][0], "MiB")
    out.add("manager peak RSS (VmHWM)", r["hwm_mib"][1], "MiB")
    out.add("manager peak RSS - RSS before the loop", r["hwm_mib"][1] - r["rss_before_mib"][1], "MiB")
    for i, hwm in enumerate(r["hwm_mib"][2:]):
        out.add(f"worker {i} peak RSS (VmHWM)", hwm, "MiB")
    out.verified(n, _verified("wide_rows", r))


def sweep(out: Sheet, timeout: float, runs: int, rows: int) -> None:
    with tempfile.TemporaryDirectory(prefix="mplogger-scenario-") as root:
        r = _child("sweep", timeout, root=root, runs=runs, rows=rows)
    if r["verified"]["runs"] != runs:
        raise BenchmarkFailed(f"sweep: {runs} runs made, {r['verified']['runs']} verified")
    warm = r["init_s"][1:] or r["init_s"]
    first, end = r["probes"]["after_first"], r["probes"]["at_end"]
    out.add("total", r["total_s"], "s")
    out.add(f"per run (init + {rows} logs + finish)", r["total_s"] / runs * 1e3, "ms")
    out.add("first init() (manager start)", r["init_s"][0] * 1e3, "ms")
    out.add("init() median (runs 2..)", statistics.median(warm) * 1e3, "ms")
    out.add("init() p90 (runs 2..)", percentile(warm, 90) * 1e3, "ms")
    out.add(f"{rows} log() calls, median", statistics.median(r["log_s"]) * 1e3, "ms")
    out.add("finish() median", statistics.median(r["finish_s"]) * 1e3, "ms")
    out.add("finish() p90", percentile(r["finish_s"], 90) * 1e3, "ms")
    out.add("finish() max", max(r["finish_s"]) * 1e3, "ms")
    out.add("reading every run back", r["verify_s"], "s")
    out.add("user RSS growth, run 1 to the end", end["user_rss_mib"] - first["user_rss_mib"], "MiB")
    out.add("manager RSS growth, run 1 to the end", end["manager_rss_mib"] - first["manager_rss_mib"], "MiB")
    out.add("user open fds growth, run 1 to the end", end["fds"] - first["fds"], "fds")
    out.add("user threads growth, run 1 to the end", end["threads"] - first["threads"], "threads")
    out.add("one manager for every run", "yes" if r["same_manager"] else "NO")
    out.verified(runs * rows, _verified("sweep", r), runs=r["verified"]["runs"])


def exit_after_finish(out: Sheet, timeout: float, n: int, repeats: int, pace_us: float) -> None:
    samples: Dict[str, List[Dict[str, Any]]] = {"flat": [], "paced": [], "plain": [], "import": []}
    with tempfile.TemporaryDirectory(prefix="mplogger-scenario-") as root:
        scripts = {}
        for kind, text in (("log", EXIT_SCRIPT), ("plain", PLAIN_EXIT_SCRIPT), ("import", IMPORT_EXIT_SCRIPT)):
            scripts[kind] = os.path.join(root, f"{kind}_exit.py")
            with open(scripts[kind], "w") as f:
                f.write(text)
        store = os.path.join(root, "store")
        for _ in range(repeats):
            samples["flat"].append(time_script_exit(scripts["log"], [store, str(n), "0"], root, timeout))
            samples["paced"].append(time_script_exit(scripts["log"], [store, str(n), repr(pace_us)], root, timeout))
            samples["plain"].append(time_script_exit(scripts["plain"], [], root, timeout))
            samples["import"].append(time_script_exit(scripts["import"], [], root, timeout))
        expected = {s["run_id"]: n for kind in ("flat", "paced") for s in samples[kind]}
        stored = _verified("exit_after_finish", _child("verify", timeout, root=store, expected=expected))
        listed = _child("list_runs", timeout, root=store, project="scenario-exit")["runs"]
    if len(listed) != len(expected):
        raise BenchmarkFailed(f"exit_after_finish: {len(expected)} runs made, {len(listed)} stored")

    def med(kind: str, key: str, scale: float = 1.0) -> float:
        return statistics.median(s[key] for s in samples[kind]) * scale

    seen = "pidfd" if _pidfd(os.getpid()) is not None else "poll 0.5 ms"
    out.add(f"print after finish() -> exit, median (seen by {seen})", med("flat", "exit_after_print_s"), "s")
    out.add("print after finish() -> exit, max", max(s["exit_after_print_s"] for s in samples["flat"]), "s")
    out.add("same, paced logging", med("paced", "exit_after_print_s"), "s")
    out.add("  of which atexit handlers (mplogger's, multiprocessing's)", med("flat", "atexit_handlers_s"), "s")
    out.add("  of which interpreter shutdown after them", med("flat", "after_atexit_s"), "s")
    out.add("reference: plain python print -> exit", med("plain", "exit_after_print_s"), "s")
    out.add("reference: import mplogger, no run, print -> exit", med("import", "exit_after_print_s"), "s")
    out.add(f"finish() after {n:,} logs flat out", med("flat", "finish_s", 1e3), "ms")
    out.add(f"finish() after {n:,} logs paced ~{pace_us:g} µs", med("paced", "finish_s", 1e3), "ms")
    out.add("log() per call, flat out", med("flat", "log_s", 1e6 / n), "µs")
    out.add(f"log() per call incl. ~{pace_us:g} µs pacing", med("paced", "log_s", 1e6 / n), "µs")
    out.verified(n * len(expected), stored, runs=len(expected))


@dataclasses.dataclass(frozen=True)
class Scenario:
    """One scenario: what it measures (formatted with its sizes), its function, its sizes."""

    title: str
    function: Callable[..., None]
    full: Dict[str, Any]
    quick: Dict[str, Any]


SCENARIOS: Dict[str, Scenario] = {
    "memory": Scenario("{n:,} rows of 10 floats flat out, peaks read just before finish()", memory,
                       full={"n": 1_000_000}, quick={"n": 20_000}),
    "cpu_loop": Scenario("{steps:,} steps of ~{step_us:g} µs pure-Python work, {repeats} alternating repeat(s) "
                         "in fresh processes", cpu_loop,
                         full={"steps": 20_000, "repeats": 5, "step_us": 50.0},
                         quick={"steps": 2_000, "repeats": 1, "step_us": 50.0}),
    "wide_rows": Scenario("{n:,} rows of {keys} float keys", wide_rows,
                          full={"n": 20_000, "keys": 200}, quick={"n": 1_000, "keys": 200}),
    "sweep": Scenario("{runs:,} runs in one process, {rows} rows each", sweep,
                      full={"runs": 1000, "rows": 10}, quick={"runs": 50, "rows": 10}),
    "exit_after_finish": Scenario("{n:,} rows then finish(), median of {repeats}", exit_after_finish,
                                  full={"n": 20_000, "repeats": 5, "pace_us": 5.0},
                                  quick={"n": 20_000, "repeats": 2, "pace_us": 5.0}),
}


def _loadavg() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def run_scenarios(quick: bool = False, only: Optional[Sequence[str]] = None,
                  params: Optional[Dict[str, Dict[str, Any]]] = None) -> Report:
    """The scenarios (all, or those in ``only``) at their quick or full sizes (``params`` overrides
    per scenario); their figures, and a note per scenario."""
    names = list(only or SCENARIOS)
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown:
        raise ValueError(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    timeout = TIMEOUT_QUICK_S if quick else TIMEOUT_FULL_S
    report = Report(turn=False)
    for name in names:
        scenario = SCENARIOS[name]
        sizes = {**(scenario.quick if quick else scenario.full), **(params or {}).get(name, {})}
        started, load = perf(), _loadavg()
        scenario.function(Sheet(report, name), timeout, **sizes)
        report.notes.append(f"{name}: {scenario.title.format(**sizes)}; {perf() - started:.1f} s, load average "
                            f"(1 min) {load:.2f} -> {_loadavg():.2f}")
    report.notes.append(f"{keys()} float keys per row where not said otherwise; every row logged was read back "
                        "(runs.rows and the stored history agree)")
    return report


@section(SECTION, "memory under back-pressure, a CPU-bound loop, wide rows, a sweep of short runs, exit time")
def scenarios_section(o: Options) -> Report:
    params: Dict[str, Dict[str, Any]] = {}
    for key, value in o.params.get(SECTION, {}).items():  # --set scenarios.memory.n=200000
        name, _, size = key.partition(".")
        if size:
            params.setdefault(name, {})[size] = value
    return run_scenarios(quick=o.quick, only=o.listed(SECTION, "only", None), params=params)
