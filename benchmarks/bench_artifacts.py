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
:class:`BenchmarkFailed`. ``python -m benchmarks --only artifacts [--artifact-mb N] [--repeats R]``.
"""

from __future__ import annotations

import array
import filecmp
import hashlib
import os
import shutil
import tempfile
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from benchmarks.common import MASK, BenchmarkFailed, code_digest, code_note, format_number, make_pool, percentile
from benchmarks.figures import Report
from benchmarks.registry import Options, keys, section
from benchmarks.runner import fresh
from benchmarks.scenarios import _work

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
CHILD_TIMEOUT_S = 600
SECTION = "artifacts"

perf = time.perf_counter


def default_mb() -> int:
    """SIZE in MiB: ``MPLOGGER_BENCH_ARTIFACT_MB`` when set, else 1024."""
    value = os.environ.get(SIZE_VARIABLE)
    return int(value) if value else DEFAULT_MB


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
# children: each runs in a fresh interpreter (benchmarks.runner.fresh)
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


# --------------------------------------------------------------------------------------------
# the parent
# --------------------------------------------------------------------------------------------


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


def measure(source: str, k: int, before_s: float, after_s: float, rotate: int = 0) -> Dict[str, Dict[str, Any]]:
    """One fresh-process run of every scenario against ``source`` (the order of SCENARIOS rotated
    by ``rotate``, so repeats do not always run one first); their checked results."""
    size = os.path.getsize(source)
    out: Dict[str, Dict[str, Any]] = {}
    first = rotate % len(SCENARIOS)
    for scenario in SCENARIOS[first:] + SCENARIOS[:first]:
        folder = tempfile.mkdtemp(prefix=f"mplogger-bench-artifacts-{scenario}-",
                                  dir=os.path.dirname(source))
        try:
            os.sync()  # no scenario starts with another's dirty pages
            if scenario == "floor":
                out[scenario] = fresh("benchmarks.bench_artifacts:child_floor", CHILD_TIMEOUT_S, cwd=folder,
                                      source=source, folder=folder)
                if out[scenario]["size"] != size:
                    raise BenchmarkFailed(f"artifacts floor: copied {out[scenario]['size']} bytes of {size}")
            else:
                policy = "none" if scenario == "baseline" else scenario
                result = fresh("benchmarks.bench_artifacts:child_loop", CHILD_TIMEOUT_S, cwd=folder,
                               root=os.path.join(folder, STORE_FOLDER), source=source, policy=policy, k=k,
                               before_s=before_s, after_s=after_s)
                check_loop(result, size)
                out[scenario] = result
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return out


Get = Callable[[Dict[str, Any]], Optional[float]]
NO_CHECKPOINT, COPY = "no checkpoint", "copyfile + sha256"

#: figure -> (label, unit, how a policy's loop result gives it, how its base row's sample gives it):
#: the base row is COPY (the floor) or NO_CHECKPOINT (the baseline loop), None for no base
SPEC: List[Tuple[str, str, Get, Optional[Tuple[str, Get]]]] = [
    ("add_file + log_artifact call", "ms", lambda r: r["call_s"] * 1e3, (COPY, lambda f: f["copy_s"] * 1e3)),
    ("  of which add_file", "ms", lambda r: r["add_file_s"] * 1e3, (COPY, lambda f: f["copy_s"] * 1e3)),
    ("log_artifact -> durable (wait() returns)", "s", lambda r: r["durable_s"], (COPY, lambda f: f["total_s"])),
    ("add_file -> durable", "s", lambda r: r["total_s"], (COPY, lambda f: f["total_s"])),
    ("  throughput (SIZE / that)", "MiB/s", lambda r: r["mib_per_s"], (COPY, lambda f: f["mib_per_s"])),
    ("AFTER window (log_artifact .. loop end)", "s", lambda r: r["after_s"], (NO_CHECKPOINT, lambda r: r["after_s"])),
    ("log() worst in the AFTER window", "ms", lambda r: r["after"]["worst_ms"],
     (NO_CHECKPOINT, lambda r: r["after"]["worst_ms"])),
    ("log() p99 in the AFTER window", "µs", lambda r: r["after"]["p99_us"],
     (NO_CHECKPOINT, lambda r: r["after"]["p99_us"])),
    ("log() p99.9 in the AFTER window", "µs", lambda r: r["after"]["p999_us"],
     (NO_CHECKPOINT, lambda r: r["after"]["p999_us"])),
    ("log() calls > 1 ms in the AFTER window", "per s", lambda r: r["after"]["slow_calls"] / r["after_s"],
     (NO_CHECKPOINT, lambda r: r["after"]["slow_calls"] / r["after_s"])),
    ("  time in them", "ms per s", lambda r: r["after"]["slow_ms"] / r["after_s"],
     (NO_CHECKPOINT, lambda r: r["after"]["slow_ms"] / r["after_s"])),
    ("log() worst while the version is stored", "ms", lambda r: r["storing"]["worst_ms"],
     (NO_CHECKPOINT, lambda r: r["after"]["worst_ms"])),
    ("log() p99 while the version is stored", "µs", lambda r: r["storing"]["p99_us"],
     (NO_CHECKPOINT, lambda r: r["after"]["p99_us"])),
    ("  log() calls made meanwhile", "", lambda r: r["storing"]["calls"], None),
    ("loop steps in the AFTER window", "steps/s", lambda r: r["steps_per_s"], (NO_CHECKPOINT, lambda r: r["steps_per_s"])),
    ("  share of the AFTER window inside log()", "%", lambda r: r["in_log_pct"],
     (NO_CHECKPOINT, lambda r: r["in_log_pct"])),
    ("finish() after the loop", "ms", lambda r: r["finish_s"] * 1e3, (NO_CHECKPOINT, lambda r: r["finish_s"] * 1e3)),
]


def collect(size_mb: Optional[int] = None, repeats: int = 1, windows: Tuple[float, float] = WINDOWS,
            step_us: float = STEP_US, folder: Optional[str] = None) -> Dict[str, Any]:
    """Every scenario ``repeats`` times (interleaved, order rotated, each in a fresh process) against
    one file of ``size_mb`` MiB: the samples of each scenario, and what the run was."""
    size_mb = default_mb() if size_mb is None else size_mb
    before_s, after_s = windows
    if size_mb < 1 or repeats < 1 or before_s <= 0 or after_s <= 0:
        raise ValueError("size_mb and repeats must be >= 1, the windows > 0")
    code_before, load_before = code_digest(), os.getloadavg()[0]
    work = tempfile.mkdtemp(prefix="mplogger-bench-artifacts-", dir=folder)
    try:
        calibration = fresh("benchmarks.scenarios:child_calibrate", CHILD_TIMEOUT_S, step_us=step_us)
        source = os.path.join(work, FILE_NAME)
        make_file(source, size_mb * MB)
        samples: Dict[str, List[Dict[str, Any]]] = {name: [] for name in SCENARIOS}
        for rep in range(repeats):
            for name, result in measure(source, calibration["k"], before_s, after_s, rep).items():
                samples[name].append(result)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    code_after = code_digest()
    return {"size_mb": size_mb, "repeats": repeats, "before_s": before_s, "after_s": after_s,
            "step_us": calibration["step_us"], "k": calibration["k"], "samples": samples,
            "code": code_before if code_before == code_after else f"{code_before} -> {code_after}",
            "load": (load_before, os.getloadavg()[0])}


def report(result: Dict[str, Any]) -> Report:
    """Rows: the loop without a checkpoint, the copy + hash floor and each policy; a measure per figure,
    each policy's ratio to its base row; then the checks as rows and the slowest calls as notes."""
    out = Report()
    samples = result["samples"]
    base_samples = {NO_CHECKPOINT: samples["baseline"], COPY: samples["floor"]}
    for label, unit, get, base in SPEC:
        if base is not None:
            row, base_get = base
            out.add(SECTION, row, label, [base_get(r) for r in base_samples[row]], unit)
        for policy in POLICIES:
            out.add(SECTION, policy, label, [get(r) for r in samples[policy]], unit, base[0] if base else None)
    for name, row in (("baseline", NO_CHECKPOINT), *((p, p) for p in POLICIES)):
        runs = samples[name]
        out.add(SECTION, row, "rows stored / logged",
                f"{sum(r['rows_stored'] for r in runs):,} / {sum(r['rows_logged'] for r in runs):,}")
        if name in POLICIES:
            out.add(SECTION, row, "download byte-identical", "yes" if all(r["identical"] for r in runs) else "NO")
            out.add(SECTION, row, f"durable within {result['after_s']:g} s",
                    "yes" if all(r["durable_in_window"] for r in runs) else "no")
    repeats = result["repeats"]
    out.notes += [
        f"a {result['size_mb']:,} MiB checkpoint logged from a loop of ~{result['step_us']:.0f} µs work + log() of "
        f"{keys()} floats per step; {result['before_s']:g} s before it, {result['after_s']:g} s after (the AFTER "
        f"window); {'median of ' + str(repeats) + ' repeats' if repeats > 1 else 'single run'}, each scenario in a "
        "fresh process; ratios ÷ the loop without a checkpoint or ÷ copyfile + sha256 of the same file",
        f"the {SLOWEST} slowest log() calls of the AFTER window, at seconds after the log_artifact call:",
    ]
    for name in ("baseline", *POLICIES):
        for rep, sample in enumerate(samples[name]):
            calls = ", ".join(f"{c['ms']:.0f} ms at {c['at_s']:+.2f} s" for c in sample["slowest"])
            durable = f" (durable at {sample['durable_at_s']:+.2f} s)" if "durable_at_s" in sample else ""
            out.notes.append(f"  {name}{f' #{rep + 1}' if repeats > 1 else ''}: {calls}{durable}")
    floor = samples["floor"][0]
    out.notes += [
        f"floor: shutil.copyfile {format_number(floor['copy_s'] * 1e3)} ms + sha256 of the copy "
        f"{format_number(floor['hash_s'])} s",
        "durable: artifact.wait() returned in a thread started after log_artifact; the AFTER window lasts "
        f"{result['after_s']:g} s, or until the version is durable + {TAIL_S:g} s if that is later",
        code_note(result["code"], result["load"]),
        "verified: rows stored (runs.rows and the history) == rows logged, the run finished, version ckpt:v0 of "
        "SIZE bytes, its download equal byte for byte",
    ]
    return out


@section(SECTION, "a checkpoint file (--artifact-mb, default 1024 MiB) logged with add_file + log_artifact from a "
                  "loop that logs 10 floats a step, against copyfile + sha256 and the loop without it")
def artifacts_section(o: Options) -> Report:
    size_mb = o.artifact_mb or o.sized(default_mb(), QUICK_MB)
    default = o.sized(WINDOWS, QUICK_WINDOWS)
    windows = (o.param(SECTION, "before_s", default[0]), o.param(SECTION, "after_s", default[1]))
    return report(collect(size_mb=size_mb, repeats=o.repeats or 1, windows=windows))
