"""Store benchmark: writing a long run, reading it back, and the store's size, each next to its floor.

For each size N (default 10^5 and 10^6 rows of 10 floats, keys k0..k9 as :func:`bench_core.make_pool`),
in fresh interpreters, one measurement each, against a store in a temporary folder removed afterwards:

mplogger
    *write*: ``mplogger.init(dir=...)``, N ``log()`` calls flat out, ``finish()``: ``log()`` µs per
    call, end-to-end time from the first ``log()`` until ``finish()`` returns, and the store's bytes
    a row: ``mplogger.db`` plus ``mplogger.db-wal`` (if any) right after ``finish()``, before
    ``teardown()``, not checkpointed (``-shm`` is not counted), and the same after ``teardown()``. *reads* of that run, each in its own
    process: ``history(keys=["k3"])``, ``history()``, ``history(pandas=True)`` (when pandas is
    installed), timed from the call to its return, with peak RSS growth; *CLI* (wall time of the
    subprocess, interpreter start included): ``python -m mplogger report RUN`` and
    ``python -m mplogger history RUN -o h.csv``.

floors, measured in the same run
    *write*: bench_core's floor child (the same dicts built in a loop, every 256 pickled by the
    caller onto a ``SimpleQueue`` to a process that unpickles and discards them). *read*: the same N
    values of k3 in a plain SQLite table ``(step INTEGER PRIMARY KEY, ts REAL, rt REAL, v REAL)``,
    read with one ``SELECT step, ts, rt, v FROM t ORDER BY step`` into the list of dicts
    ``history(keys=["k3"])`` returns (its peak RSS growth is "what the floor's list itself needs").
    *report*: ``python -m mplogger report --help`` (the same CLI started and stopped). *CSV*: a
    fresh interpreter writing the same 13 columns with ``csv.writer`` from a plain SQLite table of
    every key. *bytes a row*: that plain table of every key (``step INTEGER PRIMARY KEY``, ``ts``,
    ``rt`` and one REAL column a key), file size over N.

Peak RSS growth of a read = ``ru_maxrss`` after the read minus ``VmRSS`` (``/proc/self/statm``)
just before it; on Linux the high-water mark is first reset to the current RSS by writing ``5`` to
``/proc/self/clear_refs`` (else a child's ``ru_maxrss`` starts from what its parent held at exec).

Every measurement verifies what it read (row count equal to N, the steps 0..N-1, the logged values
of the key read, spot checks of every key) and fails loudly (:class:`BenchmarkFailed`) otherwise.
Ratios are value / floor (for rows/s: floor / value), so above 1 is slower or larger than the floor.
"""

from __future__ import annotations

import argparse
import csv
import gc
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from benchmarks import bench_core
from benchmarks.bench_core import (CHILD_TIMEOUT_S, clean_child_env, report_child, MASK, RESULT_MARK, BenchmarkFailed, keys_now,
                                   make_pool, perf)
from benchmarks.common import format_number, table_lines

SIZES = (100_000, 1_000_000)
QUICK_SIZES = (10_000, 50_000)
STORE_FOLDER = "mplogger-runs"  # init(dir=...) and Api(...) use this folder as the store itself
MB = 2 ** 20
CSV_FLOOR_SCRIPT = r"""
import csv, sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
keys = sys.argv[3].split(",")
with open(sys.argv[2], "w", newline="") as out:
    writer = csv.writer(out)
    writer.writerow(["_step", "_runtime", "_timestamp"] + keys)
    writer.writerows(conn.execute("SELECT step, rt, ts, " + ", ".join(keys) + " FROM wide ORDER BY step"))
"""


def read_key() -> str:
    """The key the one-key reads use: k3 (the last key when fewer than 4 are logged)."""
    return f"k{min(3, keys_now() - 1)}"


def all_keys() -> List[str]:
    return [f"k{j}" for j in range(keys_now())]


# --------------------------------------------------------------------------------------------
# verification (raises BenchmarkFailed)
# --------------------------------------------------------------------------------------------


def _spots(n: int) -> List[int]:
    return sorted({0, n // 3, n // 2, n - 1}) if n > 0 else []


def check_rows(rows: Sequence[Dict[str, Any]], expected: int, keys: Sequence[str], what: str,
               exact_keys: bool = True) -> None:
    """``rows`` are the ``expected`` logged rows: steps 0..N-1, ``keys[0]`` as logged in every row,
    every key of ``keys`` at a few spots, and (``exact_keys``) nothing else but the _ fields."""
    if len(rows) != expected:
        raise BenchmarkFailed(f"{what}: read {len(rows)} rows; {expected} were logged")
    pool = make_pool()
    first = keys[0]
    for i, row in enumerate(rows):
        if row["_step"] != i or row[first] != pool[i & MASK][first]:
            raise BenchmarkFailed(f"{what}: row {i} is {row!r}; logged step {i} with "
                                  f"{first}={pool[i & MASK][first]!r}")
    wanted = set(keys) | {"_step", "_timestamp", "_runtime"}
    for i in _spots(expected):
        row = rows[i]
        if exact_keys and set(row) != wanted:
            raise BenchmarkFailed(f"{what}: row {i} has keys {sorted(row)}; expected {sorted(wanted)}")
        for key in keys:
            if row[key] != pool[i & MASK][key]:
                raise BenchmarkFailed(f"{what}: row {i} has {key}={row[key]!r}; logged {pool[i & MASK][key]!r}")
        if not isinstance(row["_timestamp"], float) or not isinstance(row["_runtime"], float):
            raise BenchmarkFailed(f"{what}: row {i} has no float _timestamp/_runtime: {row!r}")


def check_frame(frame: Any, expected: int, keys: Sequence[str], what: str) -> None:
    """A DataFrame of the ``expected`` logged rows (every key, steps 0..N-1, values as logged)."""
    if len(frame) != expected:
        raise BenchmarkFailed(f"{what}: {len(frame)} rows; {expected} were logged")
    missing = sorted((set(keys) | {"_step", "_timestamp", "_runtime"}) - set(frame.columns))
    if missing:
        raise BenchmarkFailed(f"{what}: columns {missing} are missing from {list(frame.columns)}")
    if frame["_step"].tolist() != list(range(expected)):
        raise BenchmarkFailed(f"{what}: the _step column is not 0..{expected - 1}")
    pool = make_pool()
    first = keys[0]
    if frame[first].tolist() != [pool[i & MASK][first] for i in range(expected)]:
        raise BenchmarkFailed(f"{what}: column {first} differs from what was logged")
    for i in _spots(expected):
        for key in keys:
            if frame[key].iloc[i] != pool[i & MASK][key]:
                raise BenchmarkFailed(f"{what}: row {i} has {key}={frame[key].iloc[i]!r}; "
                                      f"logged {pool[i & MASK][key]!r}")


def check_csv(path: str, expected: int, keys: Sequence[str], what: str) -> None:
    """A CSV file with a header naming ``keys`` and _step, ``expected`` data lines, and the first
    and last rows as logged."""
    with open(path, "rb") as f:
        lines = 0
        for chunk in iter(lambda: f.read(1 << 20), b""):
            lines += chunk.count(b"\n")
        f.seek(0)
        header_line = f.readline().decode()
        first_line = f.readline().decode()
        f.seek(max(0, os.path.getsize(path) - 64 * 1024))
        last_line = f.read().decode(errors="replace").rstrip("\r\n").rsplit("\n", 1)[-1]
    if lines != expected + 1:
        raise BenchmarkFailed(f"{what}: {path} has {lines - 1} data lines; {expected} rows were logged")
    header = next(csv.reader([header_line]))
    missing = sorted((set(keys) | {"_step"}) - set(header))
    if missing:
        raise BenchmarkFailed(f"{what}: columns {missing} are missing from the header {header}")
    pool = make_pool()
    for i, line in ((0, first_line), (expected - 1, last_line)):
        cells = dict(zip(header, next(csv.reader([line]))))
        if int(cells["_step"]) != i or any(float(cells[key]) != pool[i & MASK][key] for key in keys):
            raise BenchmarkFailed(f"{what}: data line {i + 1} of {path} is {line.strip()!r}; "
                                  f"logged step {i} with {pool[i & MASK]!r}")


# --------------------------------------------------------------------------------------------
# children: each runs in a fresh interpreter and prints one RESULT_MARK line of JSON
# --------------------------------------------------------------------------------------------


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return _peak_bytes()


def _peak_bytes() -> int:
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _reset_peak() -> bool:
    """Reset the RSS high-water mark to the current RSS (Linux); whether it could."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _measured(read: Callable[[], Any]) -> Tuple[Any, Dict[str, Any]]:
    """``read()``, timed, with the peak RSS growth it caused (its result kept alive meanwhile)."""
    gc.collect()
    reset = _reset_peak()
    before = _rss_bytes()
    t = perf()
    result = read()
    seconds = perf() - t
    peak = _peak_bytes()
    after = _rss_bytes()
    return result, {"s": seconds, "rss_before_mb": before / MB, "peak_growth_mb": (peak - before) / MB,
                    "retained_mb": (after - before) / MB, "peak_reset": reset}


def _store_size(root: str) -> Dict[str, int]:
    db = os.path.join(root, "mplogger.db")
    wal = db + "-wal"
    return {"db_bytes": os.path.getsize(db), "wal_bytes": os.path.getsize(wal) if os.path.exists(wal) else 0}


def child_write(root: str, n: int, expect: int) -> Dict[str, Any]:
    import mplogger
    from mplogger import _store

    pool = make_pool()
    out: Dict[str, Any] = {"n": n}
    try:
        t = perf()
        run = mplogger.init(project="bench-store", dir=root)
        out["init_s"] = perf() - t
        log = run.log
        t0 = perf()
        for i in range(n):
            log(pool[i & MASK])
        t1 = perf()
        run.finish()
        t2 = perf()
        size = _store_size(root)
        out.update(run_id=run.id, log_us=(t1 - t0) / n * 1e6, log_loop_s=t1 - t0, finish_s=t2 - t1,
                   e2e_s=t2 - t0, e2e_rows_per_s=n / (t2 - t0), **size,
                   bytes_per_row=(size["db_bytes"] + size["wal_bytes"]) / n)
    finally:
        mplogger.teardown()
    out["db_bytes_after_teardown"] = _store_size(root)["db_bytes"] + _store_size(root)["wal_bytes"]
    api = mplogger.Api(root)
    try:
        stored = api.run(out["run_id"])
        conn = _store.connect_reader(root)
        try:
            counted = _store.stored_rows(conn, stored.id)
        finally:
            conn.close()
        out.update(rows_stored=stored.rows, rows_counted=counted, state=stored.state)
    finally:
        api.close()
    if out["rows_stored"] != expect or counted != expect or out["state"] != "finished":
        raise BenchmarkFailed(f"mplogger write: run {out['run_id']} has runs.rows={out['rows_stored']}, "
                              f"stored_rows={counted}, state={out['state']}; {expect} rows were logged "
                              "and finished")
    return out


def child_read(kind: str, root: str, run_id: str, expect: int) -> Dict[str, Any]:
    import mplogger

    api = mplogger.Api(root)
    try:
        stored = api.run(run_id)
        key = read_key()
        if kind == "key":
            rows, out = _measured(lambda: stored.history(keys=[key]))
            check_rows(rows, expect, [key], f'history(keys=["{key}"])')
        elif kind == "full":
            rows, out = _measured(stored.history)
            keys = all_keys()
            check_rows(rows, expect, [key] + [k for k in keys if k != key], "history()")
        elif kind == "pandas":
            try:
                import pandas  # noqa: F401
            except ImportError:
                return {"status": "not installed"}
            rows, out = _measured(lambda: stored.history(pandas=True))
            check_frame(rows, expect, [key] + [k for k in all_keys() if k != key], "history(pandas=True)")
        else:
            raise ValueError(f"unknown read {kind!r}")
    finally:
        api.close()
    out["status"] = "ok"
    out["rows"] = len(rows)
    return out


def _floor_paths(folder: str) -> Tuple[str, str]:
    return os.path.join(folder, "floor-read.db"), os.path.join(folder, "floor-wide.db")


def child_floor_build(folder: str, n: int) -> Dict[str, Any]:
    """The plain SQLite tables of the floors: ``t`` (one key, for reading) and ``wide`` (every key)."""
    pool = make_pool()
    key = read_key()
    keys = all_keys()
    narrow, wide = _floor_paths(folder)
    started = 1.7e9

    conn = sqlite3.connect(narrow)
    conn.execute("CREATE TABLE t (step INTEGER PRIMARY KEY, ts REAL, rt REAL, v REAL)")
    conn.executemany("INSERT INTO t VALUES (?, ?, ?, ?)",
                     ((i, started + i * 1e-4, i * 1e-4, pool[i & MASK][key]) for i in range(n)))
    conn.commit()
    conn.close()

    conn = sqlite3.connect(wide)
    conn.execute(f"CREATE TABLE wide (step INTEGER PRIMARY KEY, ts REAL, rt REAL, {', '.join(k + ' REAL' for k in keys)})")
    conn.executemany(f"INSERT INTO wide VALUES ({', '.join('?' * (len(keys) + 3))})",
                     ((i, started + i * 1e-4, i * 1e-4, *(pool[i & MASK][k] for k in keys)) for i in range(n)))
    conn.commit()
    conn.close()
    return {"n": n, "narrow_bytes": os.path.getsize(narrow), "wide_bytes": os.path.getsize(wide),
            "plain_bytes_per_row": os.path.getsize(wide) / n}


def child_floor_read(folder: str, expect: int) -> Dict[str, Any]:
    narrow, _ = _floor_paths(folder)
    key = read_key()
    conn = sqlite3.connect(f"file:{narrow}?mode=ro", uri=True)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()

        def read() -> List[Dict[str, Any]]:
            return [{key: v, "_step": step, "_timestamp": ts, "_runtime": rt}
                    for step, ts, rt, v in conn.execute("SELECT step, ts, rt, v FROM t ORDER BY step")]

        rows, out = _measured(read)
    finally:
        conn.close()
    check_rows(rows, expect, [key], "read floor")
    out["rows"] = len(rows)
    return out


def child_main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.bench_store --child")
    parser.add_argument("--child", required=True, choices=("write", "key", "full", "pandas", "floor-build",
                                                           "floor-read"))
    parser.add_argument("--root", required=True, help="the store (write, reads) or the floors' folder")
    parser.add_argument("--n", type=int, required=True, help="rows to write (write, floor-build)")
    parser.add_argument("--expect", type=int, help="rows every check expects (default --n)")
    parser.add_argument("--run", help="the run to read")
    args = parser.parse_args(argv)
    expect = args.n if args.expect is None else args.expect
    def measure() -> Dict[str, Any]:
        if args.child == "write":
            return child_write(args.root, args.n, expect)
        if args.child == "floor-build":
            return child_floor_build(args.root, args.n)
        if args.child == "floor-read":
            return child_floor_read(args.root, expect)
        return child_read(args.child, args.root, args.run, expect)

    return report_child(measure)


# --------------------------------------------------------------------------------------------
# the parent: runs the children and the CLI, aggregates, prints the table
# --------------------------------------------------------------------------------------------


def _run(cmd: List[str], what: str, cwd: str) -> Tuple[float, subprocess.CompletedProcess]:
    t = perf()
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=clean_child_env(), capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise BenchmarkFailed(f"{what} ran past {CHILD_TIMEOUT_S} s") from exc
    wall = perf() - t
    if proc.returncode != 0:
        raise BenchmarkFailed(f"{what} failed with exit code {proc.returncode}:\n"
                              f"{(proc.stderr.strip() or proc.stdout.strip())[-4000:]}")
    return wall, proc


def run_child(kind: str, root: str, n: int, cwd: str, expect: Optional[int] = None,
              run_id: Optional[str] = None) -> Dict[str, Any]:
    """``python -m benchmarks.bench_store --child KIND`` in a fresh interpreter; its JSON result."""
    cmd = [sys.executable, "-m", "benchmarks.bench_store", "--child", kind, "--root", root, "--n", str(n)]
    if expect is not None:
        cmd += ["--expect", str(expect)]
    if run_id:
        cmd += ["--run", run_id]
    _, proc = _run(cmd, f"store {kind} (n={n})", cwd)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_MARK)]
    if not lines:
        raise BenchmarkFailed(f"store {kind} (n={n}) printed no result:\n{proc.stdout[-4000:]}")
    if proc.stderr.strip():
        sys.stderr.write(f"[store {kind} stderr]\n{proc.stderr}")
    return json.loads(lines[-1][len(RESULT_MARK):])


def _cli(args: List[str], what: str, cwd: str) -> float:
    wall, proc = _run([sys.executable, "-m", "mplogger", *args], what, cwd)
    return wall


def measure(n: int, expect: Optional[int] = None, progress: Callable[[str], None] = lambda _: None
            ) -> Dict[str, Any]:
    """Every figure of one size N (a fresh store, removed afterwards); ``expect``: the row count every
    check expects (default N; another value makes the checks fail, for the tests)."""
    expect = n if expect is None else expect
    folder = tempfile.mkdtemp(prefix="mplogger-bench-store-")
    try:
        root = os.path.join(folder, STORE_FOLDER)
        progress(f"N={n:,}: mplogger write")
        write = run_child("write", root, n, folder, expect)
        run_id = write["run_id"]
        progress(f"N={n:,}: write floor")
        floor = bench_core.run_child("floor", n)
        if floor["count"] != expect:
            raise BenchmarkFailed(f"write floor: the consumer unpickled {floor['count']} rows; expected {expect}")
        progress(f"N={n:,}: read floor tables")
        built = run_child("floor-build", folder, n, folder)
        reads = {}
        for kind in ("floor-read", "key", "full", "pandas"):
            progress(f"N={n:,}: read {kind}")
            reads[kind] = run_child(kind, folder if kind == "floor-read" else root, n, folder, expect, run_id)

        progress(f"N={n:,}: report")
        report = os.path.join(folder, "report.html")
        report_floor_s = _cli(["report", "--help"], "mplogger report --help", folder)
        report_s = _cli(["report", run_id, "--dir", root, "-o", report], f"mplogger report {run_id}", folder)
        with open(report, encoding="utf-8", errors="replace") as f:
            html = f.read()
        if run_id not in html or read_key() not in html:
            raise BenchmarkFailed(f"mplogger report: {report} does not name run {run_id} and key {read_key()}")

        progress(f"N={n:,}: CSV export")
        exported = os.path.join(folder, "h.csv")
        csv_s = _cli(["history", run_id, "-o", exported, "--dir", root], f"mplogger history {run_id} -o h.csv",
                     folder)
        check_csv(exported, expect, all_keys(), "mplogger history -o h.csv")
        os.unlink(exported)
        floor_csv = os.path.join(folder, "floor.csv")
        csv_floor_s, _ = _run([sys.executable, "-c", CSV_FLOOR_SCRIPT, _floor_paths(folder)[1], floor_csv,
                               ",".join(all_keys())], "CSV floor", folder)
        check_csv(floor_csv, expect, all_keys(), "CSV floor")
        os.unlink(floor_csv)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    pandas = reads["pandas"]
    has_pandas = pandas.get("status") == "ok"
    key_read, full, floor_read = reads["key"], reads["full"], reads["floor-read"]
    return {
        "n": n,
        "figures": {
            "log_us": write["log_us"],
            "write_e2e_s": write["e2e_s"],
            "write_rows_per_s": write["e2e_rows_per_s"],
            "finish_s": write["finish_s"],
            "key_read_s": key_read["s"],
            "full_read_s": full["s"],
            "pandas_read_s": pandas["s"] if has_pandas else None,
            "report_s": report_s,
            "csv_s": csv_s,
            "bytes_per_row": write["bytes_per_row"],
            "bytes_per_row_closed": write["db_bytes_after_teardown"] / n,
            "key_read_rss_mb": key_read["peak_growth_mb"],
            "full_read_rss_mb": full["peak_growth_mb"],
            "pandas_rss_mb": pandas["peak_growth_mb"] if has_pandas else None,
        },
        "floors": {
            "write_floor_us": floor["record_us"],
            "write_floor_e2e_s": floor["e2e_s"],
            "write_floor_rows_per_s": floor["e2e_rows_per_s"],
            "write_floor_drain_s": floor["drain_s"],
            "read_floor_s": floor_read["s"],
            "read_floor_rss_mb": floor_read["peak_growth_mb"],
            "report_floor_s": report_floor_s,
            "csv_floor_s": csv_floor_s,
            "plain_bytes_per_row": built["plain_bytes_per_row"],
        },
        "pandas": pandas.get("status", "ok"),
        "details": {"write": write, "write_floor": floor, "floor_tables": built, "reads": reads},
        "verified": True,
    }


#: figure -> (label, its floor, how the ratio is taken, goal at the larger size)
#: goal: ("ratio", x) the ratio to the floor at most x; ("value", x, unit) the value at most x
SPEC: List[Tuple[str, str, Optional[str], str, Optional[tuple]]] = [
    ("log_us", "log() µs per call, flat out", "write_floor_us", "time", ("ratio", 2.0)),
    ("write_e2e_s", "write end to end s (log..finish)", "write_floor_e2e_s", "time", ("ratio", 2.0)),
    ("write_rows_per_s", "  end-to-end rows/s", "write_floor_rows_per_s", "rate", None),
    ("finish_s", "  finish() s", "write_floor_drain_s", "time", None),
    ("key_read_s", 'history(keys=["k3"]) s', "read_floor_s", "time", ("ratio", 3.0)),
    ("full_read_s", "history() s, every key", "read_floor_s", "time", None),
    ("pandas_read_s", "history(pandas=True) s", "read_floor_s", "time", None),
    ("report_s", "mplogger report RUN s (wall)", "report_floor_s", "time", ("value", 3.0, "s")),
    ("csv_s", "mplogger history RUN -o h.csv s (wall)", "csv_floor_s", "time", ("value", 8.0, "s")),
    ("bytes_per_row", "store bytes a row (db + wal)", "plain_bytes_per_row", "size", ("value", 120.0, "B")),
    ("bytes_per_row_closed", "  … after teardown()", "plain_bytes_per_row", "size", None),
    ("key_read_rss_mb", "peak RSS growth, one-key read MB", "read_floor_rss_mb", "size", ("ratio", 1.2)),
    ("full_read_rss_mb", "peak RSS growth, history() MB", "read_floor_rss_mb", "size", None),
    ("pandas_rss_mb", "peak RSS growth, pandas MB", "read_floor_rss_mb", "size", None),
]
FLOOR_LABELS = [
    ("write_floor_us", "floor: µs per record (SimpleQueue)"),
    ("write_floor_e2e_s", "floor: write end to end s"),
    ("write_floor_rows_per_s", "floor: end-to-end rows/s"),
    ("write_floor_drain_s", "floor: drain after last record s"),
    ("read_floor_s", "floor: one SELECT into dicts s"),
    ("read_floor_rss_mb", "floor: peak RSS growth of its list MB"),
    ("report_floor_s", "floor: mplogger report --help s"),
    ("csv_floor_s", "floor: csv.writer of a plain table s"),
    ("plain_bytes_per_row", "floor: plain SQLite table bytes a row"),
]


def _ratio(value: Optional[float], floor: Optional[float], how: str) -> Optional[float]:
    if value is None or not floor or not value:
        return None
    return floor / value if how == "rate" else value / floor


def _median_of(samples: List[Dict[str, Any]], part: str) -> Dict[str, Optional[float]]:
    names = samples[0][part]
    out: Dict[str, Optional[float]] = {}
    for name in names:
        values = [s[part][name] for s in samples if s[part][name] is not None]
        out[name] = statistics.median(values) if values else None
    return out


def collect(sizes: Sequence[int] = SIZES, repeats: int = 1, progress: bool = True,
            expect: Optional[int] = None) -> Dict[str, Any]:
    """Every figure at every size (medians over ``repeats`` fresh measurements), their ratios to the
    floors, growth from the smallest to the largest size, and the goals checked at the largest."""
    sizes = sorted(set(sizes))
    if not sizes or sizes[0] < 1 or repeats < 1:
        raise ValueError("sizes and repeats must be >= 1")
    echo = (lambda text: (sys.stderr.write(f"\r  {text:<60}"), sys.stderr.flush())) if progress else (lambda _: None)
    by_size: Dict[str, Any] = {}
    samples: Dict[str, List[Dict[str, Any]]] = {}
    for n in sizes:
        runs = []
        for rep in range(repeats):
            runs.append(measure(n, expect, progress=lambda text, rep=rep: echo(f"{text} ({rep + 1}/{repeats})")))
        samples[str(n)] = runs
        figures, floors = _median_of(runs, "figures"), _median_of(runs, "floors")
        ratios = {name: _ratio(figures[name], floors[floor], how) for name, _, floor, how, _ in SPEC if floor}
        by_size[str(n)] = {"n": n, "figures": figures, "floors": floors, "ratios": ratios,
                           "pandas": runs[0]["pandas"], "repeats": repeats}
    if progress:
        sys.stderr.write("\r" + " " * 64 + "\r")
    small, large = by_size[str(sizes[0])], by_size[str(sizes[-1])]
    growth: Dict[str, Optional[float]] = {}
    if len(sizes) > 1:
        for name in [s[0] for s in SPEC]:
            a, b = small["figures"][name], large["figures"][name]
            growth[name] = b / a if a and b is not None else None
        for name, _ in FLOOR_LABELS:
            a, b = small["floors"][name], large["floors"][name]
            growth[name] = b / a if a and b is not None else None
    goals: Dict[str, Any] = {}
    for name, _, _, _, goal in SPEC:
        if goal is None:
            continue
        measured = large["ratios"][name] if goal[0] == "ratio" else large["figures"][name]
        goals[name] = {"kind": goal[0], "limit": goal[1], "measured": measured, "n": large["n"],
                       "met": None if measured is None else measured <= goal[1]}
    return {"sizes": sizes, "by_size": by_size, "growth": growth, "goals": goals, "keys": keys_now(),
            "read_key": read_key(), "samples": samples, "verified": True}


def _goal_text(goal: Optional[tuple]) -> str:
    if goal is None:
        return ""
    if goal[0] == "ratio":
        return f"<= {goal[1]:g}x floor"
    return f"<= {goal[1]:g} {goal[2]}"


def render(result: Dict[str, Any]) -> str:
    sizes = result["sizes"]
    small, large = result["by_size"][str(sizes[0])], result["by_size"][str(sizes[-1])]
    two = len(sizes) > 1

    def ratio_cell(value: Optional[float]) -> str:
        return "-" if value is None else f"{value:.2f}x"

    headers = ["figure", f"N={sizes[0]:,}", "/floor"]
    if two:
        headers += [f"N={sizes[-1]:,}", "/floor", "growth"]
    headers += [f"goal (at N={sizes[-1]:,})"]
    cells = []
    for name, label, _, _, goal in SPEC:
        label = label.replace('"k3"', f'"{result["read_key"]}"')
        row = [label, _value(small, name), ratio_cell(small["ratios"].get(name))]
        if two:
            row += [_value(large, name), ratio_cell(large["ratios"].get(name)), ratio_cell(result["growth"].get(name))]
        if goal is not None:
            met = result["goals"][name]["met"]
            row.append(f"{_goal_text(goal)}: " + ("-" if met is None else "ok" if met else "MISSED"))
        else:
            row.append("")
        cells.append(row)
    for name, label in FLOOR_LABELS:
        row = [label, format_number(small["floors"][name]), ""]
        if two:
            row += [format_number(large["floors"][name]), "", ratio_cell(result["growth"].get(name))]
        cells.append(row + [""])

    repeats = small["repeats"]
    out = [
        f"mplogger store benchmark — {result['keys']} float keys per row, N = "
        f"{' and '.join(f'{n:,}' for n in sizes)} rows, "
        f"{'median of ' + str(repeats) + ' repeats' if repeats > 1 else 'single run'}, each figure in a fresh process",
        "ratios: value / its floor of the same N, measured in this run (rows/s: floor / value); "
        + (f"growth: value at N={sizes[-1]:,} / value at N={sizes[0]:,} "
           f"(N grows {sizes[-1] / sizes[0]:g}x: linear totals grow {sizes[-1] / sizes[0]:g}x, per-row figures 1x)"
           if two else "one size: no growth"),
        "",
        *table_lines(headers, cells, left=(0, -1)),
        "",
        "store bytes: mplogger.db + mplogger.db-wal right after finish() (not checkpointed), and again after "
        "teardown(); -shm not counted",
        "peak RSS growth: ru_maxrss after the read (high-water mark reset first) - RSS just before it",
        "verified: every read returned N rows, steps 0..N-1 and the logged values; both CSVs hold N lines; "
        "the report names the run",
    ]
    if large["pandas"] != "ok":
        out.append(f"history(pandas=True): pandas {large['pandas']}")
    return "\n".join(out)


def _value(section: Dict[str, Any], name: str) -> str:
    value = section["figures"][name]
    if value is None and name.startswith("pandas"):
        return section["pandas"]
    return format_number(value)


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--child" in argv:
        return child_main(argv)
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_store",
                                     description="mplogger's store: write, read, report, CSV, size, against floors")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="comma list of row counts")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help=f"sizes {QUICK_SIZES}")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    sizes = QUICK_SIZES if args.quick else tuple(int(s) for s in args.sizes.split(","))
    try:
        result = collect(sizes, args.repeats, progress=sys.stderr.isatty())
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
