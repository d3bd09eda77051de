"""Store benchmark: writing a long run, reading it back, and the store's size, each next to its floor.

For each size N (default 10^5 and 10^6 rows of 10 floats; ``--keys``),
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

import csv
import gc
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from benchmarks.bench_core import floor_child
from benchmarks.common import MASK, BenchmarkFailed, make_pool
from benchmarks.figures import Report, ratio
from benchmarks.registry import Options, keys, section
from benchmarks.runner import command, fresh

CHILD_TIMEOUT_S = 600
SECTION = "store"

perf = time.perf_counter
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
    return f"k{min(3, keys() - 1)}"


def all_keys() -> List[str]:
    return [f"k{j}" for j in range(keys())]


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
# children: each runs in a fresh interpreter (benchmarks.runner.fresh)
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


# --------------------------------------------------------------------------------------------
# the parent: runs the children and the CLI, aggregates
# --------------------------------------------------------------------------------------------


def _child(name: str, cwd: str, **kwargs: Any) -> Dict[str, Any]:
    return fresh(f"benchmarks.bench_store:child_{name}", CHILD_TIMEOUT_S, cwd=cwd, **kwargs)


def _run(cmd: List[str], what: str, cwd: str) -> Tuple[float, str]:
    return command(cmd, CHILD_TIMEOUT_S, what=what, cwd=cwd)


def _cli(args: List[str], what: str, cwd: str) -> float:
    return _run([sys.executable, "-m", "mplogger", *args], what, cwd)[0]


def measure(n: int, expect: Optional[int] = None) -> Dict[str, Any]:
    """Every figure of one size N (a fresh store, removed afterwards); ``expect``: the row count every
    check expects (default N; another value makes the checks fail, for the tests)."""
    expect = n if expect is None else expect
    folder = tempfile.mkdtemp(prefix="mplogger-bench-store-")
    try:
        root = os.path.join(folder, STORE_FOLDER)
        write = _child("write", folder, root=root, n=n, expect=expect)
        run_id = write["run_id"]
        floor = floor_child(n)
        if floor["count"] != expect:
            raise BenchmarkFailed(f"write floor: the consumer unpickled {floor['count']} rows; expected {expect}")
        built = _child("floor_build", folder, folder=folder, n=n)
        reads = {}
        for kind in ("floor-read", "key", "full", "pandas"):
            reads[kind] = (_child("floor_read", folder, folder=folder, expect=expect) if kind == "floor-read"
                           else _child("read", folder, kind=kind, root=root, run_id=run_id, expect=expect))

        report = os.path.join(folder, "report.html")
        report_floor_s = _cli(["report", "--help"], "mplogger report --help", folder)
        report_s = _cli(["report", run_id, "--dir", root, "-o", report], f"mplogger report {run_id}", folder)
        with open(report, encoding="utf-8", errors="replace") as f:
            html = f.read()
        if run_id not in html or read_key() not in html:
            raise BenchmarkFailed(f"mplogger report: {report} does not name run {run_id} and key {read_key()}")

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


#: figure -> (label, unit, its floor, goal at the larger size): ("ratio", x) at most x times its
#: floor, or ("value", x) at most x in its unit
SPEC: List[Tuple[str, str, str, Optional[str], Optional[Tuple[str, float]]]] = [
    ("log_us", "log() per call, flat out", "µs", "write_floor_us", ("ratio", 2.0)),
    ("write_e2e_s", "write end to end (log..finish)", "s", "write_floor_e2e_s", ("ratio", 2.0)),
    ("write_rows_per_s", "  end to end", "rows/s", "write_floor_rows_per_s", None),
    ("finish_s", "  finish()", "s", "write_floor_drain_s", None),
    ("key_read_s", 'history(keys=["k3"])', "s", "read_floor_s", ("ratio", 3.0)),
    ("full_read_s", "history(), every key", "s", "read_floor_s", None),
    ("pandas_read_s", "history(pandas=True)", "s", "read_floor_s", None),
    ("report_s", "mplogger report RUN (wall)", "s", "report_floor_s", ("value", 3.0)),
    ("csv_s", "mplogger history RUN -o h.csv (wall)", "s", "csv_floor_s", ("value", 8.0)),
    ("bytes_per_row", "store bytes a row (db + wal)", "B", "plain_bytes_per_row", ("value", 120.0)),
    ("bytes_per_row_closed", "  … after teardown()", "B", "plain_bytes_per_row", None),
    ("key_read_rss_mb", "peak RSS growth, one-key read", "MB", "read_floor_rss_mb", ("ratio", 1.2)),
    ("full_read_rss_mb", "peak RSS growth, history()", "MB", "read_floor_rss_mb", None),
    ("pandas_rss_mb", "peak RSS growth, pandas", "MB", "read_floor_rss_mb", None),
]
FLOORS: List[Tuple[str, str, str]] = [
    ("write_floor_us", "floor: per record (SimpleQueue)", "µs"),
    ("write_floor_e2e_s", "floor: write end to end", "s"),
    ("write_floor_rows_per_s", "floor: end to end", "rows/s"),
    ("write_floor_drain_s", "floor: drain after the last record", "s"),
    ("read_floor_s", "floor: one SELECT into dicts", "s"),
    ("read_floor_rss_mb", "floor: peak RSS growth of its list", "MB"),
    ("report_floor_s", "floor: mplogger report --help", "s"),
    ("csv_floor_s", "floor: csv.writer of a plain table", "s"),
    ("plain_bytes_per_row", "floor: plain SQLite table bytes a row", "B"),
]
GROWTH = "growth"


def collect(sizes: Sequence[int] = SIZES, repeats: int = 1, expect: Optional[int] = None) -> Dict[int, List[Dict[str, Any]]]:
    """``repeats`` fresh measurements at every size: size -> its samples (see :func:`measure`)."""
    sizes = sorted(set(sizes))
    if not sizes or sizes[0] < 1 or repeats < 1:
        raise ValueError("sizes and repeats must be >= 1")
    return {n: [measure(n, expect) for _ in range(repeats)] for n in sizes}


def _label(label: str) -> str:
    return label.replace('"k3"', f'"{read_key()}"')


def report(samples: Dict[int, List[Dict[str, Any]]]) -> Report:
    """A row per figure and floor, a column per size (with the ratio to the floor), the growth from
    the smallest size to the largest, and the goal checked at the largest."""
    out = Report(turn=False)
    sizes = sorted(samples)
    for n in sizes:
        column = f"N={n:,}"
        runs = samples[n]
        for name, label, unit, floor, _ in SPEC:
            floor_label = next(f for key, f, _ in FLOORS if key == floor)
            note = "pandas not installed" if name.startswith("pandas") and runs[0]["pandas"] != "ok" else ""
            out.add(SECTION, _label(label), column, [r["figures"][name] for r in runs], unit, floor_label, note)
        for name, label, unit in FLOORS:
            out.add(SECTION, label, column, [r["floors"][name] for r in runs], unit)
    if len(sizes) > 1:
        small, large = f"N={sizes[0]:,}", f"N={sizes[-1]:,}"
        for label in [_label(s[1]) for s in SPEC] + [f[1] for f in FLOORS]:
            a, b = out.value(label, small), out.value(label, large)
            out.add(SECTION, label, GROWTH, b / a if isinstance(a, (int, float)) and a and isinstance(b, (int, float))
                    else None, "×")
    large_column = f"N={sizes[-1]:,}"
    by_label = {(f.row, f.measure): f for f in out.figures}
    for name, label, unit, floor, goal in SPEC:
        if goal is None:
            continue
        figure = by_label[(_label(label), large_column)]
        base = by_label.get((figure.baseline, large_column)) if figure.baseline else None
        if goal[0] == "ratio":
            measured, text = ratio(figure, base), f"≤ {goal[1]:g}× floor"
        else:
            measured, text = figure.value, f"≤ {goal[1]:g} {unit}"
        met = "-" if not isinstance(measured, (int, float)) else "ok" if measured <= goal[1] else "MISSED"
        out.add(SECTION, _label(label), f"goal at {large_column}", f"{text}: {met}")
    out.notes += [
        f"{keys()} float keys per row, each figure in a fresh process; ratios ÷ the floor of the same N, measured "
        "in this run (rows/s: floor ÷ value); growth: the value at the largest N ÷ at the smallest",
        "store bytes: mplogger.db + mplogger.db-wal right after finish() (not checkpointed), and after teardown(); "
        "-shm not counted; peak RSS growth: ru_maxrss after the read (high-water mark reset first) - RSS before it",
        "verified: every read returned N rows, steps 0..N-1 and the logged values; both CSVs hold N lines; the "
        "report names the run",
    ]
    return out


@section(SECTION, "writing 10^5 and 10^6 rows, reading them back (one key, every key, pandas), the HTML report, "
                  "the CSV export, bytes a row and peak RSS, each against its floor")
def store_section(o: Options) -> Report:
    small, large = o.sized(SIZES, QUICK_SIZES)
    large = o.n or large  # --n: the larger size
    sizes = (small, large) if small < large else (max(1, large // 10), large)
    return report(collect(sizes=sizes, repeats=o.repeats or 1))
