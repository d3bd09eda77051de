"""Peer benchmark: the same workload in other experiment loggers, each read back by its own reader.

Workload: N rows (default 20,000; ``--quick`` 500) of a dict of 10 floats ``{"k0".."k9"}`` (``--keys`` in ``python -m benchmarks`` changes the count),
logged one row per step. For every peer, in a fresh subprocess of its own:

log µs per call
    the timed loop of N calls divided by N (dicts are cycled from a pool built before the loop,
    as in :mod:`benchmarks.bench_core`, so no dict is built inside the loop);
end-to-end s
    from the first log call until the tool's finish/close has returned;
rows read back
    what the tool's own reader finds on disk right after that, in the same subprocess; it must
    equal N (and the last row must hold the last values logged), else the peer is "failed".

Peers (each optional; a peer whose package is not importable is reported "not installed" with
the pip line that gets it):

``mplogger``      ``init``/``log``/``finish``; read back with ``mplogger.Api(root).run(id)``
                  (``.rows`` and every row through ``scan_history``).
``wandb``         offline mode (``WANDB_MODE=offline``, no login) ``init``/``log``/``finish``; the
                  run's ``.wandb`` transaction log is read with wandb's ``DataStore`` where the
                  installed version has it, else with wandb's own ``wandb leet inspect --json``,
                  else by walking the log's LevelDB-style framing and parsing every record with
                  wandb's protobuf ``Record``; ``read_method`` says which.
``mlflow``        sqlite store in a temp folder, ``log_metrics(d, step=i, synchronous=True)``;
                  read back with ``MlflowClient.get_metric_history`` for ``k0`` and ``k9``.
``mlflow-async``  the same with ``synchronous=False``, then ``flush_async_logging()`` and
                  ``end_run()`` inside the end-to-end time.
``mlflow-file``   the synchronous variant on the file store (``file://``; MLflow 3 keeps it in
                  maintenance mode behind ``MLFLOW_ALLOW_FILE_STORE=true``).
``tensorboardX``  ``SummaryWriter(logdir)``, ten ``add_scalar`` per step, ``close()``; read back
                  with tensorboard's ``EventAccumulator`` if tensorboard is installed, else by
                  parsing the TFRecord event file with tensorboardX's ``Event`` protobuf.
``trackio``       ``init``/``log``/``finish`` with ``TRACKIO_DIR`` in a temp folder; read back
                  through trackio's ``SQLiteStorage`` (its local store).

Every subprocess gets its own temporary working folder and store (removed afterwards), the
network-facing features of the peers are switched off by environment variables, and each has a
timeout (300 s, 60 s for quick runs) after which its whole process group is killed.

Run ``python -m benchmarks.peers --help``.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import json
import os
import platform
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional

from benchmarks.common import format_number, write_results

KEYS = int(os.environ.get("MPLOGGER_BENCH_KEYS", "10"))  # float keys per logged dict
LAST_KEY = f"k{KEYS - 1}"
POOL = 1024  # distinct dicts cycled through, so no dict is built inside the timed loop
MASK = POOL - 1
DEFAULT_N = 20_000
QUICK_N = 500
TIMEOUT_S = 300
QUICK_TIMEOUT_S = 60
RESULT_MARK = "@@PEER_RESULT@@ "
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT = "bench"

perf = time.perf_counter

# peer name -> (module that must be importable, pip line that installs it)
PEERS: Dict[str, Dict[str, str]] = {
    "mplogger": {"module": "mplogger", "pip": "pip install mplogger"},
    "wandb": {"module": "wandb", "pip": "pip install wandb"},
    "mlflow": {"module": "mlflow", "pip": "pip install mlflow"},
    "mlflow-async": {"module": "mlflow", "pip": "pip install mlflow"},
    "mlflow-file": {"module": "mlflow", "pip": "pip install mlflow"},
    "tensorboardX": {"module": "tensorboardX", "pip": "pip install tensorboardX tensorboard"},
    "trackio": {"module": "trackio", "pip": "pip install trackio"},
}
DEFAULT_PEERS = list(PEERS)


def make_pool() -> List[Dict[str, float]]:
    """POOL distinct dicts of KEYS floats (keys k0..k9), as in benchmarks.bench_core."""
    return [{f"k{j}": (i * KEYS + j) * 0.001 + 0.5 for j in range(KEYS)} for i in range(POOL)]


def last_row(n: int) -> Dict[str, float]:
    """The values of the last row logged by a run of n rows."""
    return make_pool()[(n - 1) & MASK]


def _close(a: Any, b: float) -> bool:
    try:
        return abs(float(a) - b) <= 1e-6 * max(1.0, abs(b))
    except (TypeError, ValueError):
        return False


class ReadBackError(RuntimeError):
    pass


def _version(module: str) -> str:
    try:
        from importlib import metadata

        return metadata.version(module)
    except Exception:  # noqa: BLE001 - a version is informative only
        mod = sys.modules.get(module)
        return str(getattr(mod, "__version__", "?"))


# --------------------------------------------------------------------------------------------
# children: each runs in a fresh interpreter, in a temp cwd, and prints one RESULT_MARK line
# --------------------------------------------------------------------------------------------


def _timed_loop(log: Callable[[Dict[str, float]], Any], n: int) -> Dict[str, float]:
    pool = make_pool()
    t0 = perf()
    for i in range(n):
        log(pool[i & MASK])
    t1 = perf()
    return {"t0": t0, "t1": t1}


def child_mplogger(n: int, work: str) -> Dict[str, Any]:
    import mplogger

    root = os.path.join(work, "store")
    t = perf()
    run = mplogger.init(project=PROJECT, dir=root)
    init_s = perf() - t
    loop = _timed_loop(run.log, n)
    run.finish()
    t2 = perf()
    stored = mplogger.Api(root).run(run.id)
    rows = stored.rows
    history = list(stored.scan_history(keys=["k0", LAST_KEY]))
    if len(history) != rows:
        raise ReadBackError(f"run {run.id}: .rows says {rows}, scan_history gave {len(history)} rows")
    _check_last(history[-1] if history else None, n)
    mplogger.teardown()
    return _figures(loop, t2, n, rows, init_s,
                    read_method="mplogger.Api(root).run(id).rows + scan_history(keys=['k0','" + LAST_KEY + "'])",
                    version=mplogger.__version__)


# --- wandb ------------------------------------------------------------------------------------


def child_wandb(n: int, work: str) -> Dict[str, Any]:
    import wandb

    t = perf()
    run = wandb.init(project=PROJECT)
    init_s = perf() - t
    run_id = run.id
    loop = _timed_loop(wandb.log, n)
    wandb.finish()
    t2 = perf()
    files = glob.glob(os.path.join(os.environ["WANDB_DIR"], "wandb", f"*-{run_id}", f"run-{run_id}.wandb"))
    if len(files) != 1:
        raise ReadBackError(f"expected one run-{run_id}.wandb under WANDB_DIR, found {files}")
    rows, last, method = read_wandb_history(files[0])
    _check_last(last, n)
    return _figures(loop, t2, n, rows, init_s, read_method=method, version=wandb.__version__)


def read_wandb_history(path: str) -> "tuple[int, Optional[Dict[str, Any]], str]":
    """Count the history records of a ``.wandb`` file: (count, last row, method used)."""
    errors = []
    for reader in (_wandb_datastore, _wandb_leet_inspect, _wandb_framing):
        try:
            count, last = reader(path)
        except ReadBackError:
            raise
        except Exception as exc:  # noqa: BLE001 - that reader is not usable here: try the next
            errors.append(f"{_WANDB_SHORT[reader.__name__]}: {type(exc).__name__}")
            continue
        method = _WANDB_METHODS[reader.__name__]
        if errors:
            method += " (not usable here: " + "; ".join(errors) + ")"
        return count, last, method
    raise ReadBackError("no wandb reader usable: " + " | ".join(errors))


_WANDB_SHORT = {"_wandb_datastore": "DataStore", "_wandb_leet_inspect": "leet inspect",
                "_wandb_framing": "framing"}
_WANDB_METHODS = {
    "_wandb_datastore": "wandb.sdk.internal.datastore.DataStore + wandb_internal_pb2.Record",
    "_wandb_leet_inspect": "`wandb leet inspect --json` (wandb-core's transaction-log reader)",
    "_wandb_framing": "LevelDB-log framing walked here + wandb_internal_pb2.Record.ParseFromString",
}


def _history_items(record: Any) -> Dict[str, Any]:
    row = {}
    for item in record.history.item:
        key = item.key or "/".join(item.nested_key)
        row[key] = json.loads(item.value_json)
    return row


def _wandb_datastore(path: str) -> "tuple[int, Optional[Dict[str, Any]]]":
    from wandb.proto import wandb_internal_pb2
    from wandb.sdk.internal import datastore  # gone from recent wandb versions

    store = datastore.DataStore()
    store.open_for_scan(path)
    count, last = 0, None
    while True:
        data = store.scan_data()
        if data is None:
            break
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        if record.WhichOneof("record_type") == "history":
            count += 1
            last = record
    return count, (_history_items(last) if last is not None else None)


def _wandb_leet_inspect(path: str) -> "tuple[int, Optional[Dict[str, Any]]]":
    env = dict(os.environ, WANDB_MODE="offline")
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json", path],
                              stdout=out, stderr=err, env=env, timeout=120)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"exit code {proc.returncode}: {err.read().decode(errors='replace')[-300:]}")
        count, last = 0, None
        for line in out:
            if b'"history"' not in line:
                continue
            record = json.loads(line)
            if record.get("type") == "history":
                count += 1
                last = record
    if count == 0:
        raise RuntimeError("no history records in the inspect output")
    return count, (last["history"]["item"] if last else None)


def _wandb_framing(path: str) -> "tuple[int, Optional[Dict[str, Any]]]":
    """The .wandb file: a 7-byte header (":W&B", magic 0xBEE1, version), then LevelDB log
    blocks of 32 KiB holding chunks (crc32c u32, length u16, type u8: 1 full, 2 first,
    3 middle, 4 last), each record one serialized ``wandb_internal_pb2.Record``."""
    from wandb.proto import wandb_internal_pb2

    block, header_len = 32768, 7
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b":W&B":
        raise RuntimeError("not a .wandb file (no :W&B header)")
    pos, count, last, parts = header_len, 0, None, []
    while pos + header_len <= len(data):
        left = block - pos % block
        if left < header_len:  # trailer padding of a block
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + header_len])
        pos += header_len
        chunk = data[pos:pos + length]
        pos += length
        if kind == 0 and length == 0:
            continue
        parts.append(chunk)
        if kind in (1, 4):  # full or last: a whole record
            record = wandb_internal_pb2.Record()
            record.ParseFromString(b"".join(parts))
            parts = []
            if record.WhichOneof("record_type") == "history":
                count += 1
                last = record
    return count, (_history_items(last) if last is not None else None)


# --- mlflow -----------------------------------------------------------------------------------


def child_mlflow(n: int, work: str, variant: str) -> Dict[str, Any]:
    import mlflow
    from mlflow import MlflowClient

    if variant == "file":
        uri = "file://" + os.path.join(work, "mlruns")
    else:
        uri = "sqlite:///" + os.path.join(work, "mlflow.db")
    synchronous = variant != "async"
    mlflow.set_tracking_uri(uri)
    t = perf()
    mlflow.set_experiment(PROJECT)
    run = mlflow.start_run()
    init_s = perf() - t
    run_id = run.info.run_id
    step = [0]
    log_metrics = mlflow.log_metrics

    def log(d: Dict[str, float]) -> None:
        log_metrics(d, step=step[0], synchronous=synchronous)
        step[0] += 1

    loop = _timed_loop(log, n)
    if not synchronous:
        mlflow.flush_async_logging()
    mlflow.end_run()
    t2 = perf()
    client = MlflowClient(tracking_uri=uri)
    counts, last = {}, {}
    for key in ("k0", LAST_KEY):
        history = client.get_metric_history(run_id, key)
        counts[key] = len(history)
        steps = {m.step for m in history}
        if len(steps) != len(history):
            raise ReadBackError(f"{key}: {len(history)} values over {len(steps)} distinct steps")
        if history:
            last[key] = max(history, key=lambda m: m.step).value
    if counts["k0"] != counts[LAST_KEY]:
        raise ReadBackError(f"metric histories differ in length: {counts}")
    _check_last(last, n, keys=("k0", LAST_KEY))
    store = "sqlite" if variant != "file" else "file"
    return _figures(loop, t2, n, counts["k0"], init_s,
                    read_method=f"MlflowClient.get_metric_history(run_id, 'k0'/'{LAST_KEY}') on the {store} store",
                    version=mlflow.__version__)


# --- tensorboardX -----------------------------------------------------------------------------


def child_tensorboardx(n: int, work: str) -> Dict[str, Any]:
    import tensorboardX

    logdir = os.path.join(work, "tb")
    t = perf()
    writer = tensorboardX.SummaryWriter(logdir)
    init_s = perf() - t
    add_scalar = writer.add_scalar
    step = [0]

    def log(d: Dict[str, float]) -> None:
        i = step[0]
        for key, value in d.items():
            add_scalar(key, value, i)
        step[0] = i + 1

    loop = _timed_loop(log, n)
    writer.close()
    t2 = perf()
    try:
        counts, last = _read_tb_accumulator(logdir)
        method = "tensorboard EventAccumulator (size_guidance scalars=0: keep all)"
    except ImportError:
        counts, last = _read_tb_tfrecord(logdir)
        method = "TFRecord parse of the events file + tensorboardX.proto.event_pb2.Event"
    if counts.get("k0", 0) != counts.get(LAST_KEY, 0):
        raise ReadBackError(f"scalar counts differ: {counts}")
    _check_last(last, n, keys=("k0", LAST_KEY))
    return _figures(loop, t2, n, counts.get("k0", 0), init_s, read_method=method,
                    version=tensorboardX.__version__)


def _read_tb_accumulator(logdir: str):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(logdir, size_guidance={"scalars": 0})
    acc.Reload()
    counts, last = {}, {}
    tags = set(acc.Tags().get("scalars", []))
    for key in ("k0", LAST_KEY):
        events = acc.Scalars(key) if key in tags else []
        counts[key] = len(events)
        if events:
            last[key] = max(events, key=lambda e: e.step).value
    return counts, last


def _read_tb_tfrecord(logdir: str):
    """TFRecord: u64 length, u32 masked crc of the length, data, u32 masked crc of the data."""
    from tensorboardX.proto import event_pb2

    counts: Dict[str, int] = {"k0": 0, LAST_KEY: 0}
    last: Dict[str, Any] = {}
    best: Dict[str, int] = {}
    for path in sorted(glob.glob(os.path.join(logdir, "events.out.tfevents.*"))):
        with open(path, "rb") as f:
            data = f.read()
        pos = 0
        while pos + 12 <= len(data):
            (length,) = struct.unpack("<Q", data[pos:pos + 8])
            body = data[pos + 12:pos + 12 + length]
            pos += 12 + length + 4
            event = event_pb2.Event()
            event.ParseFromString(body)
            for value in event.summary.value:
                if value.tag in counts:
                    counts[value.tag] += 1
                    if event.step >= best.get(value.tag, -1):
                        best[value.tag] = event.step
                        last[value.tag] = value.simple_value
    return counts, last


# --- trackio ----------------------------------------------------------------------------------


def child_trackio(n: int, work: str) -> Dict[str, Any]:
    import trackio
    from trackio.sqlite_storage import SQLiteStorage

    t = perf()
    run = trackio.init(project=PROJECT, embed=False)
    init_s = perf() - t
    name = run.name
    loop = _timed_loop(trackio.log, n)
    trackio.finish()
    t2 = perf()
    rows = SQLiteStorage.get_log_count(PROJECT, run=name)
    logs = SQLiteStorage.get_logs(PROJECT, run=name)
    if len(logs) != rows:
        raise ReadBackError(f"get_log_count says {rows}, get_logs gave {len(logs)} rows")
    _check_last(max(logs, key=lambda r: r["step"]) if logs else None, n)
    return _figures(loop, t2, n, rows, init_s,
                    read_method="trackio SQLiteStorage.get_log_count + get_logs (its local SQLite store)",
                    version=_version("trackio"))


# --- shared -----------------------------------------------------------------------------------


def _check_last(row: Optional[Dict[str, Any]], n: int, keys=("k0", LAST_KEY)) -> None:
    """The last row read back must hold the last values logged."""
    want = last_row(n)
    if row is None:
        raise ReadBackError("no rows read back")
    for key in keys:
        if not _close(row.get(key), want[key]):
            raise ReadBackError(f"last row read back has {key}={row.get(key)!r}, logged {want[key]!r}")


def _figures(loop: Dict[str, float], t2: float, n: int, rows: int, init_s: float, **extra: Any) -> Dict[str, Any]:
    t0, t1 = loop["t0"], loop["t1"]
    return {
        "n": n,
        "log_us": (t1 - t0) / n * 1e6,
        "log_loop_s": t1 - t0,
        "finish_s": t2 - t1,
        "end_to_end_s": t2 - t0,
        "init_s": init_s,
        "rows_read_back": rows,
        **extra,
    }


CHILDREN: Dict[str, Callable[[int, str], Dict[str, Any]]] = {
    "mplogger": child_mplogger,
    "wandb": child_wandb,
    "mlflow": lambda n, work: child_mlflow(n, work, "sqlite"),
    "mlflow-async": lambda n, work: child_mlflow(n, work, "async"),
    "mlflow-file": lambda n, work: child_mlflow(n, work, "file"),
    "tensorboardX": child_tensorboardx,
    "trackio": child_trackio,
}


def child_env(peer: str, work: str) -> Dict[str, str]:
    """The environment of a peer's subprocess: everything it writes goes under ``work``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    for key in ("MPLOGGER_START_METHOD", "MPLOGGER_WORKERS", "MPLOGGER_DIR", "MLFLOW_TRACKING_URI",
                "WANDB_API_KEY", "WANDB_BASE_URL", "WANDB_RUN_ID", "WANDB_RESUME"):
        env.pop(key, None)
    env.update(
        DO_NOT_TRACK="1",
        # wandb: offline, no login, silent, no git
        WANDB_MODE="offline",
        WANDB_DIR=os.path.join(work, "wandb-dir"),
        WANDB_CONFIG_DIR=os.path.join(work, "wandb-config"),
        WANDB_CACHE_DIR=os.path.join(work, "wandb-cache"),
        WANDB_DATA_DIR=os.path.join(work, "wandb-data"),
        WANDB_SILENT="true",
        WANDB_DISABLE_GIT="true",
        WANDB_DISABLE_CODE="true",
        WANDB_ERROR_REPORTING="false",
        # mlflow: local only, no telemetry; its file store needs an explicit opt-in in MLflow 3
        MLFLOW_DISABLE_TELEMETRY="true",
        MLFLOW_ALLOW_FILE_STORE="true",
        # trackio (and the Hugging Face hub / gradio under it): local store only
        TRACKIO_DIR=os.path.join(work, "trackio"),
        HF_HOME=os.path.join(work, "hf-home"),
        HF_HUB_OFFLINE="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        GRADIO_ANALYTICS_ENABLED="False",
    )
    for key in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "TRACKIO_DIR",
                "HF_HOME"):
        os.makedirs(env[key], exist_ok=True)
    return env


def child_main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.peers --child")
    parser.add_argument("--child", required=True, choices=sorted(CHILDREN))
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--work", required=True)
    args = parser.parse_args(argv)
    try:
        result = CHILDREN[args.child](args.n, args.work)
        result["status"] = "ok"
    except ReadBackError as exc:
        result = {"status": f"failed: read back: {exc}"}
    sys.stdout.write("\n" + RESULT_MARK + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


# --------------------------------------------------------------------------------------------
# the parent: one fresh subprocess per peer and repeat, aggregated into one row per peer
# --------------------------------------------------------------------------------------------


def resolve_peers(peers: Optional[List[str]]) -> List[str]:
    if peers is None:
        return list(DEFAULT_PEERS)
    lower = {name.lower(): name for name in PEERS}
    out = []
    for name in peers:
        name = name.strip()
        if not name:
            continue
        if name.lower() not in lower:
            raise ValueError(f"unknown peer {name!r}; known: {', '.join(PEERS)}")
        if lower[name.lower()] not in out:
            out.append(lower[name.lower()])
    return out


def installed(peer: str) -> bool:
    module = PEERS[peer]["module"]
    if peer == "mplogger":
        return True  # the repository's own package: on PYTHONPATH in the child
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _tail(text: str, limit: int = 400) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    # the exception line of a traceback, else the last line
    for line in reversed(lines):
        if not line.startswith(("File ", "^", "~")) and (":" in line or "Error" in line):
            return line[-limit:]
    return lines[-1][-limit:]


def run_child(peer: str, n: int, timeout: float) -> Dict[str, Any]:
    """Run one measurement of ``peer`` in a fresh subprocess; never raises for the peer's sake."""
    work = tempfile.mkdtemp(prefix=f"mplogger-peer-{peer}-")
    try:
        env = child_env(peer, work)
        cwd = os.path.join(work, "cwd")
        os.makedirs(cwd)
        cmd = [sys.executable, "-m", "benchmarks.peers", "--child", peer, "--n", str(n), "--work", work]
        with open(os.path.join(work, "stdout"), "w+b") as out, open(os.path.join(work, "stderr"), "w+b") as err:
            # files, not pipes: a grandchild that keeps an inherited pipe open cannot stall us
            proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=err, start_new_session=True)
            timed_out = False
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
            _kill_group(proc)
            out.seek(0)
            err.seek(0)
            stdout = out.read().decode(errors="replace")
            stderr = err.read().decode(errors="replace")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if timed_out:
        return {"status": f"failed: timed out after {timeout:g} s (process group killed)",
                "stderr_tail": stderr[-2000:]}
    lines = [line for line in stdout.splitlines() if line.startswith(RESULT_MARK)]
    if proc.returncode != 0 or not lines:
        reason = _tail(stderr) or _tail(stdout) or "no output"
        return {"status": f"failed: exit code {proc.returncode}: {reason}", "stderr_tail": stderr[-2000:]}
    return json.loads(lines[-1][len(RESULT_MARK):])


def _kill_group(proc: "subprocess.Popen[bytes]") -> None:
    """Kill whatever is left of the child's own process group (it was started in a new session)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def run_peers(n: int, repeats: int = 1, peers: Optional[List[str]] = None,
              timeout: Optional[float] = None, progress: bool = False) -> List[Dict[str, Any]]:
    """Measure every peer ``repeats`` times (peers interleaved), each in a fresh subprocess.

    Returns one dict per peer: ``peer``, ``status`` ("ok", "not installed" or "failed: <reason>"),
    ``log_us`` and ``end_to_end_s`` (medians over the repeats), ``rows_read_back`` (the smallest
    count over the repeats), ``expected`` (n), and more: ``version``, ``read_method``, ``init_s``,
    ``finish_s``, ``samples``, ``pip`` (for a peer not installed).
    """
    if n < 1 or repeats < 1:
        raise ValueError("n and repeats must be at least 1")
    names = resolve_peers(peers)
    if timeout is None:
        timeout = QUICK_TIMEOUT_S if n <= QUICK_N else TIMEOUT_S
    samples: Dict[str, List[Dict[str, Any]]] = {name: [] for name in names}
    present = {name: installed(name) for name in names}
    for rep in range(repeats):
        for name in names:
            if not present[name]:
                continue
            if progress:
                sys.stderr.write(f"\r  repeat {rep + 1}/{repeats}: {name:<14}")
                sys.stderr.flush()
            samples[name].append(run_child(name, n, timeout))
    if progress:
        sys.stderr.write("\r" + " " * 40 + "\r")
        sys.stderr.flush()

    results = []
    for name in names:
        row: Dict[str, Any] = {"peer": name, "status": "", "log_us": None, "end_to_end_s": None,
                               "rows_read_back": None, "expected": n}
        if not present[name]:
            row.update(status="not installed", pip=PEERS[name]["pip"])
            results.append(row)
            continue
        runs = samples[name]
        failed = [s["status"] for s in runs if s.get("status") != "ok"]
        ok = [s for s in runs if s.get("status") == "ok"]
        wrong = [s["rows_read_back"] for s in ok if s["rows_read_back"] != n]
        if failed:
            row["status"] = failed[0]
        elif wrong:
            row["status"] = f"failed: read back {wrong[0]} rows, {n} logged"
        else:
            row["status"] = "ok"
        if ok:
            row.update(
                log_us=statistics.median(s["log_us"] for s in ok),
                end_to_end_s=statistics.median(s["end_to_end_s"] for s in ok),
                rows_read_back=min(s["rows_read_back"] for s in ok),
                init_s=statistics.median(s["init_s"] for s in ok),
                finish_s=statistics.median(s["finish_s"] for s in ok),
                version=ok[0].get("version"),
                read_method=ok[0].get("read_method"),
            )
        row["samples"] = runs
        results.append(row)
    return results


# --- printing ---------------------------------------------------------------------------------



def format_peers(results: List[Dict[str, Any]]) -> str:
    """A plain-text table of ``run_peers`` results, then how each was read back."""
    head = ["peer", "version", "status", "log µs/call", "end-to-end s", "rows/s e2e", "init s",
            "read back"]
    body = []
    for r in results:
        e2e = r.get("end_to_end_s")
        read = "-" if r.get("rows_read_back") is None else f"{r['rows_read_back']:,}/{r['expected']:,}"
        status = r["status"] if len(r["status"]) <= 40 else r["status"][:37] + "..."
        body.append([
            r["peer"], str(r.get("version") or "-"), status, format_number(r.get("log_us")), format_number(e2e),
            format_number(r["expected"] / e2e) if e2e else "-", format_number(r.get("init_s")), read,
        ])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    right = {3, 4, 5, 6, 7}

    def line(cells: List[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    out = [line(head), line(["-" * w for w in widths])] + [line(b) for b in body]
    ref = next((r for r in results if r["peer"] == "mplogger" and r["status"] == "ok"), None)
    notes = []
    for r in results:
        if r["status"] == "not installed":
            notes.append(f"  {r['peer']}: not installed ({r['pip']})")
        elif r["status"] != "ok":
            notes.append(f"  {r['peer']}: {r['status']}")
        elif r.get("read_method"):
            ratio = ""
            if ref is not None and r is not ref and ref["log_us"] and ref["end_to_end_s"]:
                ratio = (f" [log {r['log_us'] / ref['log_us']:.1f}x, end-to-end "
                         f"{r['end_to_end_s'] / ref['end_to_end_s']:.1f}x mplogger's]")
            notes.append(f"  {r['peer']}: {r['rows_read_back']:,} rows read back via {r['read_method']}{ratio}")
    if notes:
        out += ["", "read back / notes:"] + notes
    return "\n".join(out)


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--child":
        return child_main(argv)
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.peers",
        description="Log N rows of 10 floats in each peer logger (fresh subprocess each), "
                    "time log() and end to end, and read the rows back with the peer's own reader.")
    parser.add_argument("--n", type=int, default=None, help=f"rows per run (default {DEFAULT_N:,})")
    parser.add_argument("--repeats", type=int, default=1, help="subprocesses per peer (medians reported)")
    parser.add_argument("--quick", action="store_true", help=f"N={QUICK_N} and a {QUICK_TIMEOUT_S} s timeout")
    parser.add_argument("--peers", default=None, help=f"comma list of: {','.join(PEERS)} (default all)")
    parser.add_argument("--timeout", type=float, default=None,
                        help=f"seconds per subprocess (default {TIMEOUT_S}, {QUICK_TIMEOUT_S} quick)")
    parser.add_argument("--json", metavar="PATH", default=None, help="also write the results as JSON")
    args = parser.parse_args(argv)
    n = args.n if args.n is not None else (QUICK_N if args.quick else DEFAULT_N)
    timeout = args.timeout if args.timeout is not None else (QUICK_TIMEOUT_S if args.quick else TIMEOUT_S)
    peers = args.peers.split(",") if args.peers else None
    try:
        names = resolve_peers(peers)
    except ValueError as exc:
        parser.error(str(exc))
    print(f"peers: N={n:,} rows of {KEYS} floats, one row per step; {args.repeats} fresh subprocess(es) "
          f"per peer; python {platform.python_version()}, {os.cpu_count()} CPUs", flush=True)
    results = run_peers(n, repeats=args.repeats, peers=names, timeout=timeout, progress=sys.stderr.isatty())
    print(format_peers(results))
    if args.json:
        write_results(args.json, {"n": n, "repeats": args.repeats, "timeout_s": timeout, "results": results})
    return 1 if any(r["status"].startswith("failed") for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
