"""Artifact benchmark: a checkpoint logged from a training loop, next to a loop without one and to
a plain copy + hash of the same file.

The file: SIZE MiB (default 1024; ``--artifact-mb`` or ``MPLOGGER_BENCH_ARTIFACT_MB``) of
``os.urandom`` written in 1 MiB chunks and fsync'd once, before anything is timed, in a temporary
folder on the file system of the stores (so it is in the page cache for every scenario alike).
``os.sync()`` runs before each scenario, so none starts with another's dirty pages.

Each scenario runs in a fresh interpreter against a store of its own (removed afterwards); with
repeats, the scenarios are interleaved and their order rotated, and each figure is the median:

loop (``baseline``, ``mutable``, ``immutable``)
    ``mplogger.init(dir=...)``, then a training loop: each step ~50 µs of pure-Python work
    (calibrated here, as the ``cpu_loop`` scenario) and ``run.log()`` of a dict of 10 floats, every
    call timed alone. After BEFORE seconds the loop logs the checkpoint:
    ``Artifact("ckpt", "model")``, ``add_file(path, policy=...)``, ``run.log_artifact(artifact)``
    (timed: the copy at log time), then a thread waits on ``artifact.wait()`` (its return is "the
    version is durable"), and the loop goes on for AFTER seconds more (default 5), or until the
    version is durable + 0.5 s if that is later. ``baseline`` is the same loop without the
    checkpoint for AFTER seconds. Reported for the AFTER window: its length, the worst ``log()``,
    p99 and p99.9, the calls over 1 ms and their summed time per second, and steps/s; and the worst
    and p99 of the calls made while the version was being stored (from ``log_artifact`` until
    ``wait()`` returned); and the share of the window spent inside ``log()`` (fewer steps/s with
    no more time in ``log()``: the work itself was slowed, e.g. by the worker on the other CPU). The worst of a longer window can only be larger: a ratio above 1 there
    means more when the windows are alike.
    Then ``finish()``, and checked through ``mplogger.Api``: rows stored == rows logged (``runs.rows``
    and the stored history), the run ``finished``, one version ``v0`` of SIZE bytes, and its
    download byte-identical to the original (``filecmp.cmp(shallow=False)``).

floor (measured in the same run)
    ``shutil.copyfile`` of the same file (the floor of ``add_file``'s copy) and ``hashlib.sha256`` of
    the copy in 1 MiB chunks (what a worker must do before the version can exist): the copy + hash
    time is the floor of "add_file until durable", and SIZE / that is the floor throughput.

Ratios: value / its baseline or floor (for steps/s and MiB/s: baseline / value), so above 1 is
slower than the loop without a checkpoint or than the plain copy + hash. A failed check raises
:class:`BenchmarkFailed`. ``python -m benchmarks.bench_artifacts [--artifact-mb N] [--repeats R]``.
"""

from __future__ import annotations

import argparse
import array
import filecmp
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from benchmarks.bench_core import (CHILD_TIMEOUT_S, clean_child_env, report_child, MASK, REPO_ROOT, RESULT_MARK, BenchmarkFailed, keys_now,
                                   make_pool, perf)
from benchmarks.common import format_number, table_lines
from benchmarks.scenarios import _work, child_calibrate, percentile

MB = 2 ** 20
SIZE_VARIABLE = "MPLOGGER_BENCH_ARTIFACT_MB"
DEFAULT_MB = 1024
QUICK_MB = 64
#: (seconds before the checkpoint, seconds after it) of the loop
WINDOWS = (1.0, 5.0)
QUICK_WINDOWS = (0.2, 1.0)
STEP_US = 50.0
SLOW_S = 1e-3  # a log() call above this is counted as a stall
SLOWEST = 5  # the slowest log() calls of the AFTER window kept, with when they happened
TAIL_S = 0.5  # the loop goes on this long after a version durable only after the AFTER window
POLICIES = ("mutable", "immutable")
SCENARIOS = ("floor", "baseline", *POLICIES)
STORE_FOLDER = "mplogger-runs"
FILE_NAME = "ckpt.bin"


def default_mb() -> int:
    """SIZE in MiB: ``MPLOGGER_BENCH_ARTIFACT_MB`` when set, else 1024."""
    value = os.environ.get(SIZE_VARIABLE)
    return int(value) if value else DEFAULT_MB


def code_digest() -> str:
    """12 hex digits of SHA-256 over mplogger's Python sources (names and contents): which code
    was measured, without asking a version-control tool."""
    digest = hashlib.sha256()
    package = os.path.join(REPO_ROOT, "mplogger")
    for base, dirs, files in os.walk(package):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(f for f in files if f.endswith(".py")):
            path = os.path.join(base, name)
            digest.update(os.path.relpath(path, package).encode() + b"\0")
            with open(path, "rb") as source:
                digest.update(source.read())
    return digest.hexdigest()[:12]


def make_file(path: str, size: int) -> None:
    """``size`` bytes of ``os.urandom`` at ``path``, in 1 MiB chunks, fsync'd."""
    with open(path, "xb") as out:
        left = size
        while left > 0:
            chunk = os.urandom(min(MB, left))
            out.write(chunk)
            left -= len(chunk)
        out.flush()
        os.fsync(out.fileno())


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    buffer = bytearray(MB)
    view = memoryview(buffer)
    with open(path, "rb") as source:
        while True:
            count = source.readinto(buffer)
            if not count:
                return digest.hexdigest()
            digest.update(view[:count])


# --------------------------------------------------------------------------------------------
# children: each runs in a fresh interpreter and prints one RESULT_MARK line of JSON
# --------------------------------------------------------------------------------------------


def latency_stats(durations: Sequence[float]) -> Dict[str, Any]:
    """Worst (ms), median / p99 / p99.9 (µs), calls over SLOW_S and their summed time (ms) of ``durations`` (s)."""
    if not durations:
        return {"calls": 0, "worst_ms": None, "median_us": None, "p99_us": None, "p999_us": None,
                "slow_calls": 0, "slow_ms": 0.0}
    slow = [d for d in durations if d > SLOW_S]
    return {"calls": len(durations), "worst_ms": max(durations) * 1e3,
            "median_us": percentile(durations, 50) * 1e6, "p99_us": percentile(durations, 99) * 1e6,
            "p999_us": percentile(durations, 99.9) * 1e6, "slow_calls": len(slow), "slow_ms": sum(slow) * 1e3}


def child_loop(root: str, source: str, policy: str, k: int, before_s: float, after_s: float) -> Dict[str, Any]:
    """The training loop (``policy`` "none": no checkpoint), then the checks' raw facts."""
    import mplogger
    from mplogger import _store

    pool = make_pool()
    work = _work
    size = os.path.getsize(source)
    out: Dict[str, Any] = {"policy": policy, "size": size, "k": k}
    starts = array.array("d")
    spans = array.array("d")
    waited: Dict[str, Any] = {}
    waiter: Optional[threading.Thread] = None
    artifact = None
    try:
        run = mplogger.init(project="bench-artifacts", dir=root)
        log = run.log
        x = 0.5
        i = 0

        def loop(until: float) -> None:
            nonlocal x, i
            append_start, append_span = starts.append, spans.append
            while True:
                x = work(k, x + i * 1e-6)
                t = perf()
                log(pool[i & MASK])
                e = perf()
                append_start(t)
                append_span(e - t)
                i += 1
                if e >= until:
                    return

        t_begin = perf()
        loop(t_begin + before_s)
        before_calls = i
        t0 = perf()
        if policy != "none":
            artifact = mplogger.Artifact("ckpt", "model")
            artifact.add_file(source, name=FILE_NAME, policy=policy)
            t1 = perf()
            run.log_artifact(artifact)
            t2 = perf()

            def wait() -> None:
                try:
                    artifact.wait(timeout=CHILD_TIMEOUT_S)
                    waited["t"] = perf()
                except BaseException as exc:  # noqa: BLE001 - reported, then raised by the parent
                    waited["error"] = f"{type(exc).__name__}: {exc}"

            waiter = threading.Thread(target=wait, name="bench-artifact-wait", daemon=True)
            waiter.start()
        else:
            t1 = t2 = t0
        loop(t2 + after_s)
        durable_in_window = waiter is None or "t" in waited
        if waiter is not None:
            # not durable yet: the loop goes on until it is, then TAIL_S more, so every call made
            # while the version was stored is timed
            give_up = t2 + CHILD_TIMEOUT_S / 2
            while waiter.is_alive() and perf() < give_up:
                loop(perf() + 0.05)
            waiter.join(max(0.0, give_up - perf()))
            if "error" in waited or "t" not in waited:
                raise BenchmarkFailed(f"artifact.wait() failed: {waited.get('error', 'did not return')}")
            if not durable_in_window:
                loop(waited["t"] + TAIL_S)
        t_end = perf()
        run.finish()
        out["finish_s"] = perf() - t_end
        out["run_id"] = run.id
    finally:
        mplogger.teardown()

    after_spans = spans[before_calls:]
    window = t_end - t2
    out.update(rows_logged=i, before=latency_stats(spans[:before_calls]), after=latency_stats(after_spans),
               after_s=window, steps_per_s=len(after_spans) / window if window > 0 else None,
               in_log_pct=sum(after_spans) / window * 100 if window > 0 else None,
               before_steps_per_s=before_calls / (t0 - t_begin) if t0 > t_begin else None,
               durable_in_window=durable_in_window)
    after_starts = starts[before_calls:]
    slowest = sorted(range(len(after_spans)), key=after_spans.__getitem__, reverse=True)[:SLOWEST]
    out["slowest"] = [{"ms": after_spans[j] * 1e3, "at_s": after_starts[j] - t1} for j in sorted(slowest)]
    if policy != "none":
        t_durable = waited["t"]
        out["durable_at_s"] = t_durable - t1
        storing = [span for start, span in zip(starts[before_calls:], after_spans) if start < t_durable]
        out.update(add_file_s=t1 - t0, log_artifact_s=t2 - t1, call_s=t2 - t0, durable_s=t_durable - t1,
                   total_s=t_durable - t0, mib_per_s=size / MB / (t_durable - t0), storing=latency_stats(storing))

    api = mplogger.Api(root)
    try:
        stored = api.run(out["run_id"])
        conn = _store.connect_reader(root)
        try:
            counted = _store.stored_rows(conn, stored.id)
        finally:
            conn.close()
        out.update(rows_stored=stored.rows, rows_counted=counted, state=stored.state)
        versions = stored.logged_artifacts()
        out["versions"] = [version.name for version in versions]
        if versions:
            version = versions[0]
            out["version_size"] = version.size
            folder = version.download(root=os.path.join(os.path.dirname(root), "download"))
            downloaded = os.path.join(folder, FILE_NAME)
            out["identical"] = os.path.isfile(downloaded) and filecmp.cmp(source, downloaded, shallow=False)
            os.unlink(downloaded)
    finally:
        api.close()
    return out


def child_floor(source: str, folder: str) -> Dict[str, Any]:
    """``shutil.copyfile`` of ``source``, then ``hashlib.sha256`` of the copy."""
    target = os.path.join(folder, "floor-copy.bin")
    t0 = perf()
    shutil.copyfile(source, target)
    t1 = perf()
    digest = sha256_file(target)
    t2 = perf()
    size = os.path.getsize(target)
    os.unlink(target)
    return {"size": size, "digest": digest, "copy_s": t1 - t0, "hash_s": t2 - t1, "total_s": t2 - t0,
            "mib_per_s": size / MB / (t2 - t0)}


def child_main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.bench_artifacts --child")
    parser.add_argument("--child", required=True, choices=("loop", "floor", "calibrate"))
    parser.add_argument("--params", default="{}")
    args = parser.parse_args(argv)
    params = json.loads(args.params)
    measure = {"loop": child_loop, "floor": child_floor, "calibrate": child_calibrate}[args.child]
    return report_child(lambda: measure(**params))


# --------------------------------------------------------------------------------------------
# the parent
# --------------------------------------------------------------------------------------------


def run_child(kind: str, params: Dict[str, Any], cwd: str) -> Dict[str, Any]:
    """``python -m benchmarks.bench_artifacts --child KIND`` in a fresh interpreter; its JSON result."""
    cmd = [sys.executable, "-m", "benchmarks.bench_artifacts", "--child", kind, "--params", json.dumps(params)]
    what = f"artifacts {kind} {params.get('policy', '')}".rstrip()
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=clean_child_env(), capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise BenchmarkFailed(f"{what} ran past {CHILD_TIMEOUT_S} s") from exc
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_MARK)]
    if proc.returncode != 0 or not lines:
        raise BenchmarkFailed(f"{what} failed with exit code {proc.returncode}:\n"
                              f"{(proc.stderr.strip() or proc.stdout.strip())[-4000:]}")
    if proc.stderr.strip():
        sys.stderr.write(f"[{what} stderr]\n{proc.stderr}")
    return json.loads(lines[-1][len(RESULT_MARK):])


def check_loop(result: Dict[str, Any], size: int) -> None:
    """Every row logged is stored, the run finished, and (with a checkpoint) one version ``v0`` of
    ``size`` bytes whose download equals the original; BenchmarkFailed otherwise."""
    what = f"artifacts {result['policy']}"
    logged = result["rows_logged"]
    if not (result["rows_stored"] == result["rows_counted"] == logged) or result["state"] != "finished":
        raise BenchmarkFailed(f"{what}: {logged} rows were logged; the run has runs.rows={result['rows_stored']}, "
                              f"{result['rows_counted']} history rows, state {result['state']}")
    if result["policy"] == "none":
        if result["versions"]:
            raise BenchmarkFailed(f"{what}: the baseline run logged no artifact, yet has {result['versions']}")
        return
    if result["versions"] != ["ckpt:v0"] or result.get("version_size") != size:
        raise BenchmarkFailed(f"{what}: expected one version ckpt:v0 of {size} bytes; the run has "
                              f"{result['versions']} ({result.get('version_size')} bytes)")
    if result.get("identical") is not True:
        raise BenchmarkFailed(f"{what}: the downloaded {FILE_NAME} differs from the file logged")


def measure(source: str, k: int, before_s: float, after_s: float, progress: Callable[[str], None],
            rotate: int = 0) -> Dict[str, Dict[str, Any]]:
    """One fresh-process run of every scenario against ``source`` (the order of SCENARIOS rotated
    by ``rotate``, so repeats do not always run one first); their checked results."""
    size = os.path.getsize(source)
    out: Dict[str, Dict[str, Any]] = {}
    first = rotate % len(SCENARIOS)
    for scenario in SCENARIOS[first:] + SCENARIOS[:first]:
        folder = tempfile.mkdtemp(prefix=f"mplogger-bench-artifacts-{scenario}-",
                                  dir=os.path.dirname(source))
        try:
            progress(scenario)
            os.sync()  # no scenario starts with another's dirty pages
            if scenario == "floor":
                out[scenario] = run_child("floor", {"source": source, "folder": folder}, folder)
                if out[scenario]["size"] != size:
                    raise BenchmarkFailed(f"artifacts floor: copied {out[scenario]['size']} bytes of {size}")
            else:
                policy = "none" if scenario == "baseline" else scenario
                result = run_child("loop", {"root": os.path.join(folder, STORE_FOLDER), "source": source,
                                            "policy": policy, "k": k, "before_s": before_s,
                                            "after_s": after_s}, folder)
                check_loop(result, size)
                out[scenario] = result
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return out


#: figure -> (label, how it is read from a loop result, what it is compared with, how)
#: compared with: ("floor", key) or ("baseline", key); how: "time" (value / base) or "rate" (base / value)
SPEC: List[Tuple[str, str, Callable[[Dict[str, Any]], Optional[float]], Tuple[str, str], str]] = [
    ("call_ms", "add_file + log_artifact call, ms", lambda r: r["call_s"] * 1e3, ("floor", "copy_ms"), "time"),
    ("add_file_ms", "  of which add_file, ms", lambda r: r["add_file_s"] * 1e3, ("floor", "copy_ms"), "time"),
    ("durable_s", "log_artifact -> durable (wait() returns), s", lambda r: r["durable_s"], ("floor", "total_s"),
     "time"),
    ("total_s", "add_file -> durable, s", lambda r: r["total_s"], ("floor", "total_s"), "time"),
    ("mib_per_s", "  throughput, MiB/s (SIZE / that)", lambda r: r["mib_per_s"], ("floor", "mib_per_s"), "rate"),
    ("after_s", "AFTER window (log_artifact .. loop end), s", lambda r: r["after_s"], ("baseline", "after_s"), "time"),
    ("after_worst_ms", "log() worst in the AFTER window, ms", lambda r: r["after"]["worst_ms"],
     ("baseline", "after_worst_ms"), "time"),
    ("after_p99_us", "log() p99 in the AFTER window, µs", lambda r: r["after"]["p99_us"],
     ("baseline", "after_p99_us"), "time"),
    ("after_p999_us", "log() p99.9 in the AFTER window, µs", lambda r: r["after"]["p999_us"],
     ("baseline", "after_p999_us"), "time"),
    ("after_slow_per_s", "log() calls > 1 ms in the AFTER window, per s",
     lambda r: r["after"]["slow_calls"] / r["after_s"],
     ("baseline", "after_slow_per_s"), "time"),
    ("after_slow_ms_per_s", "  time in them, ms per s", lambda r: r["after"]["slow_ms"] / r["after_s"],
     ("baseline", "after_slow_ms_per_s"), "time"),
    ("storing_worst_ms", "log() worst while the version is stored, ms", lambda r: r["storing"]["worst_ms"],
     ("baseline", "after_worst_ms"), "time"),
    ("storing_p99_us", "log() p99 while the version is stored, µs", lambda r: r["storing"]["p99_us"],
     ("baseline", "after_p99_us"), "time"),
    ("storing_calls", "  log() calls made meanwhile", lambda r: r["storing"]["calls"], ("baseline", "none"), "time"),
    ("steps_per_s", "loop steps/s in the AFTER window", lambda r: r["steps_per_s"], ("baseline", "steps_per_s"),
     "rate"),
    ("in_log_pct", "  share of the AFTER window inside log(), %", lambda r: r["in_log_pct"],
     ("baseline", "in_log_pct"), "time"),
    ("finish_ms", "finish() after the loop, ms", lambda r: r["finish_s"] * 1e3, ("baseline", "finish_ms"), "time"),
]
BASELINE: Dict[str, Callable[[Dict[str, Any]], Optional[float]]] = {
    "after_worst_ms": lambda r: r["after"]["worst_ms"],
    "after_p99_us": lambda r: r["after"]["p99_us"],
    "after_p999_us": lambda r: r["after"]["p999_us"],
    "after_slow_per_s": lambda r: r["after"]["slow_calls"] / r["after_s"],
    "after_slow_ms_per_s": lambda r: r["after"]["slow_ms"] / r["after_s"],
    "after_s": lambda r: r["after_s"],
    "steps_per_s": lambda r: r["steps_per_s"],
    "in_log_pct": lambda r: r["in_log_pct"],
    "finish_ms": lambda r: r["finish_s"] * 1e3,
}
FLOOR: Dict[str, Callable[[Dict[str, Any]], Optional[float]]] = {
    "copy_ms": lambda r: r["copy_s"] * 1e3,
    "hash_s": lambda r: r["hash_s"],
    "total_s": lambda r: r["total_s"],
    "mib_per_s": lambda r: r["mib_per_s"],
}
BASE_LABELS = {
    ("floor", "copy_ms"): "copyfile ms",
    ("floor", "total_s"): "copy+sha256 s",
    ("floor", "mib_per_s"): "copy+sha256 MiB/s",
}


def _median(values: List[Optional[float]]) -> Optional[float]:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _ratio(value: Optional[float], base: Optional[float], how: str) -> Optional[float]:
    if value is None or base is None or not base or not value:
        return None
    return base / value if how == "rate" else value / base


def collect(size_mb: Optional[int] = None, repeats: int = 1, windows: Tuple[float, float] = WINDOWS,
            step_us: float = STEP_US, progress: bool = True, folder: Optional[str] = None) -> Dict[str, Any]:
    """Every scenario ``repeats`` times (interleaved, each in a fresh process) against one file of
    ``size_mb`` MiB; the medians, their ratios to the baseline and the floor, and every sample."""
    size_mb = default_mb() if size_mb is None else size_mb
    before_s, after_s = windows
    if size_mb < 1 or repeats < 1 or before_s <= 0 or after_s <= 0:
        raise ValueError("size_mb and repeats must be >= 1, the windows > 0")
    echo = (lambda text: (sys.stderr.write(f"\r  {text:<60}"), sys.stderr.flush())) if progress else (lambda _: None)
    code_before = code_digest()
    load_before = os.getloadavg()[0]
    work = tempfile.mkdtemp(prefix="mplogger-bench-artifacts-", dir=folder)
    try:
        echo("calibrating the step")
        calibration = run_child("calibrate", {"step_us": step_us}, work)
        source = os.path.join(work, FILE_NAME)
        echo(f"writing {size_mb} MiB of os.urandom")
        make_file(source, size_mb * MB)
        samples: Dict[str, List[Dict[str, Any]]] = {name: [] for name in SCENARIOS}
        for rep in range(repeats):
            results = measure(source, calibration["k"], before_s, after_s,
                              lambda name, rep=rep: echo(f"{size_mb} MiB: {name} ({rep + 1}/{repeats})"), rep)
            for name, result in results.items():
                samples[name].append(result)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    code_after = code_digest()
    load_after = os.getloadavg()[0]
    if progress:
        sys.stderr.write("\r" + " " * 64 + "\r")

    floor = {name: _median([get(r) for r in samples["floor"]]) for name, get in FLOOR.items()}
    baseline = {name: _median([get(r) for r in samples["baseline"]]) for name, get in BASELINE.items()}
    figures: Dict[str, Dict[str, Optional[float]]] = {}
    ratios: Dict[str, Dict[str, Optional[float]]] = {}
    for policy in POLICIES:
        figures[policy], ratios[policy] = {}, {}
        for name, _, get, (kind, base), how in SPEC:
            value = _median([get(r) for r in samples[policy]])
            figures[policy][name] = value
            reference = (floor if kind == "floor" else baseline).get(base)
            ratios[policy][name] = _ratio(value, reference, how)
    rows = {name: {"logged": sum(r["rows_logged"] for r in samples[name]),
                   "stored": sum(r["rows_stored"] for r in samples[name])}
            for name in ("baseline", *POLICIES)}
    return {"size_mb": size_mb, "size": size_mb * MB, "repeats": repeats, "before_s": before_s, "after_s": after_s,
            "step_us": calibration["step_us"], "k": calibration["k"], "keys": keys_now(),
            "floor": floor, "baseline": baseline, "figures": figures, "ratios": ratios, "rows": rows,
            "durable_in_window": {p: all(r["durable_in_window"] for r in samples[p]) for p in POLICIES},
            "identical": {p: all(r["identical"] for r in samples[p]) for p in POLICIES},
            "code": code_before if code_before == code_after else f"{code_before} -> {code_after}",
            "loadavg_1min": {"before": load_before, "after": load_after}, "samples": samples, "verified": True}


def render(result: Dict[str, Any]) -> str:
    def ratio_cell(value: Optional[float]) -> str:
        return "-" if value is None else f"{value:.2f}x"

    def value_cell(name: str, value: Optional[float]) -> str:
        if value is not None and name.endswith("_calls"):
            return f"{value:,.0f}"
        return "-" if value is None else format_number(value)

    headers = ["figure", "base", "base is", "mutable", "/base", "immutable", "/base"]
    cells = []
    for name, label, _, (kind, base), _ in SPEC:
        reference = (result["floor"] if kind == "floor" else result["baseline"]).get(base)
        base_label = BASE_LABELS.get((kind, base), "no checkpoint" if kind == "baseline" and reference is not None
                                     else "")
        row = [label, value_cell(base, reference), base_label]
        for policy in POLICIES:
            row += [value_cell(name, result["figures"][policy][name]), ratio_cell(result["ratios"][policy][name])]
        cells.append(row)
    rows = result["rows"]
    cells.append(["rows stored / rows logged", f"{rows['baseline']['stored']:,} / {rows['baseline']['logged']:,}", ""]
                 + sum(([f"{rows[p]['stored']:,} / {rows[p]['logged']:,}", ""] for p in POLICIES), []))
    cells.append(["download byte-identical to the file", "", ""]
                 + sum((["yes" if result["identical"][p] else "NO", ""] for p in POLICIES), []))
    cells.append([f"durable within {result['after_s']:g} s of log_artifact", "", ""]
                 + sum((["yes" if result["durable_in_window"][p] else "no", ""] for p in POLICIES), []))
    floor = result["floor"]
    repeats = result["repeats"]
    slowest = []
    for name in ("baseline", *POLICIES):
        for rep, sample in enumerate(result["samples"][name]):
            calls = ", ".join(f"{c['ms']:.0f} ms at {c['at_s']:+.2f} s" for c in sample["slowest"])
            durable = f" (durable at {sample['durable_at_s']:+.2f} s)" if "durable_at_s" in sample else ""
            slowest.append(f"  {name}{f' #{rep + 1}' if repeats > 1 else ''}: {calls}{durable}")
    out = [
        f"mplogger artifact benchmark — a {result['size_mb']:,} MiB checkpoint logged from a loop of "
        f"~{result['step_us']:.0f} µs work + log() of {result['keys']} floats per step; "
        f"{result['before_s']:g} s before it, {result['after_s']:g} s after (the AFTER window); "
        f"{'median of ' + str(repeats) + ' repeats' if repeats > 1 else 'single run'}, "
        "each scenario in a fresh process",
        "ratios: value / the loop without a checkpoint or / copyfile + sha256 of the same file, measured in this "
        "run (steps/s, MiB/s: base / value); above 1 is slower",
        "",
        *table_lines(headers, cells, left=(0, 2)),
        "",
        f"the {SLOWEST} slowest log() calls of the AFTER window, at seconds after the log_artifact call:",
        *slowest,
        f"floor: shutil.copyfile {format_number(floor['copy_ms'])} ms + sha256 of the copy "
        f"{format_number(floor['hash_s'])} s = {format_number(floor['total_s'])} s",
        "durable: artifact.wait() returned in a thread started after log_artifact (a GIL hand-off, up to ~5 ms, "
        f"is included); the AFTER window is {result['after_s']:g} s, or until the version is durable + {TAIL_S:g} s "
        "if that is later",
        f"mplogger code: sources digest {result['code']}"
        + (" (CHANGED while this ran: figures mix two versions)" if "->" in result["code"] else "")
        + f"; machine load average (1 min) before/after: {result['loadavg_1min']['before']:.2f} / "
          f"{result['loadavg_1min']['after']:.2f} on {os.cpu_count()} CPUs",
        "verified: rows stored (runs.rows and the history) == rows logged, the run finished, version ckpt:v0 of "
        "SIZE bytes, its download equal byte for byte",
    ]
    return "\n".join(out)


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--child" in argv:
        return child_main(argv)
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_artifacts",
                                     description="a checkpoint artifact logged from a training loop, against "
                                                 "the loop without it and copyfile + sha256")
    parser.add_argument("--artifact-mb", type=int, help=f"checkpoint size in MiB (default ${SIZE_VARIABLE} or "
                                                        f"{DEFAULT_MB})")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--before-s", type=float, default=WINDOWS[0], help="loop seconds before the checkpoint")
    parser.add_argument("--after-s", type=float, default=WINDOWS[1], help="loop seconds after it")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_MB} MiB, windows {QUICK_WINDOWS} s")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    size = args.artifact_mb or (QUICK_MB if args.quick else None)
    windows = QUICK_WINDOWS if args.quick else (args.before_s, args.after_s)
    try:
        result = collect(size, args.repeats, windows, progress=sys.stderr.isatty())
    except BenchmarkFailed as exc:
        sys.stderr.write(f"\nBENCHMARK FAILED: {exc}\n")
        return 1
    print(render(result))
    if args.json:
        from benchmarks.common import write_results

        write_results(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
