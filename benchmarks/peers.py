"""The peers section: the same workload in other experiment loggers, each read back by its own reader.

N rows (default 20 000; ``--quick`` 500) of a dict of 10 floats (``--keys``), one row per step,
in a fresh interpreter per peer and repeat (:func:`benchmarks.runner.fresh`) with everything it
writes in a temporary folder and its network features switched off. Timed: ``log()`` µs per call
(dicts cycled from a pool built before the loop), end to end from the first log until the tool's
finish returns; then the tool's own reader must find exactly N rows, the last holding the last
values logged, else the peer is "failed". A peer that is not installed is reported with its pip line.

A new peer is one :class:`Peer` entry in :data:`PEERS`: the module it needs, its pip line, the
function that starts a run in the child (returning its ``log`` and ``finish`` callables and what
the read-back needs) and the read-back.
"""

from __future__ import annotations

import dataclasses
import glob
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from benchmarks.common import MASK, make_pool
from benchmarks.figures import Report
from benchmarks.peer_readers import ReadBackError, read_tb_accumulator, read_tb_tfrecord, read_wandb_history
from benchmarks.registry import Options, keys, section
from benchmarks.runner import ChildFailed, fresh, resolve, where

SECTION = "peers"
DEFAULT_N = 20_000
QUICK_N = 500
TIMEOUT_S = 300
QUICK_TIMEOUT_S = 60
PROJECT = "bench"

perf = time.perf_counter

Row = Dict[str, float]
#: what a peer's start returns in the child: log(row), finish(), and facts for its read-back
Started = Tuple[Callable[[Row], Any], Callable[[], Any], Dict[str, Any]]
#: what a read-back returns: rows found, the last row (the keys checked), how it was read
ReadBack = Tuple[int, Optional[Dict[str, Any]], str]


def last_key() -> str:
    return f"k{keys() - 1}"


def _version(module: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(module)
    except metadata.PackageNotFoundError:
        return str(getattr(sys.modules.get(module), "__version__", "?"))


# --- mplogger ---------------------------------------------------------------------------------


def start_mplogger(work: str) -> Started:
    import mplogger

    run = mplogger.init(project=PROJECT, dir=os.path.join(work, "store"))
    return run.log, run.finish, {"run_id": run.id, "version": mplogger.__version__}


def read_mplogger(work: str, facts: Dict[str, Any]) -> ReadBack:
    import mplogger

    stored = mplogger.Api(os.path.join(work, "store")).run(facts["run_id"])
    history = list(stored.scan_history(keys=["k0", last_key()]))
    if len(history) != stored.rows:
        raise ReadBackError(f"run {stored.id}: .rows says {stored.rows}, scan_history gave {len(history)} rows")
    mplogger.teardown()
    return stored.rows, history[-1] if history else None, "mplogger.Api(root).run(id).rows + scan_history"


# --- wandb --------------------------------------------------------------------------------------


def start_wandb(work: str) -> Started:
    import wandb

    run = wandb.init(project=PROJECT)
    return wandb.log, wandb.finish, {"run_id": run.id, "version": wandb.__version__}


def read_wandb(work: str, facts: Dict[str, Any]) -> ReadBack:
    run_id = facts["run_id"]
    files = glob.glob(os.path.join(os.environ["WANDB_DIR"], "wandb", f"*-{run_id}", f"run-{run_id}.wandb"))
    if len(files) != 1:
        raise ReadBackError(f"expected one run-{run_id}.wandb under WANDB_DIR, found {files}")
    return read_wandb_history(files[0])


# --- mlflow -------------------------------------------------------------------------------------


def _mlflow_uri(work: str, variant: str) -> str:
    return "file://" + os.path.join(work, "mlruns") if variant == "file" else "sqlite:///" + os.path.join(work, "mlflow.db")


def start_mlflow(work: str, variant: str = "sqlite") -> Started:
    import mlflow

    mlflow.set_tracking_uri(_mlflow_uri(work, variant))
    mlflow.set_experiment(PROJECT)
    run = mlflow.start_run()
    synchronous = variant != "async"
    steps = iter(range(sys.maxsize))
    log_metrics = mlflow.log_metrics

    def log(row: Row) -> None:
        log_metrics(row, step=next(steps), synchronous=synchronous)

    def finish() -> None:
        if not synchronous:
            mlflow.flush_async_logging()
        mlflow.end_run()

    return log, finish, {"run_id": run.info.run_id, "variant": variant, "version": mlflow.__version__}


def read_mlflow(work: str, facts: Dict[str, Any]) -> ReadBack:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=_mlflow_uri(work, facts["variant"]))
    counts, last = {}, {}
    for key in ("k0", last_key()):
        history = client.get_metric_history(facts["run_id"], key)
        counts[key] = len(history)
        if len({m.step for m in history}) != len(history):
            raise ReadBackError(f"{key}: {len(history)} values over fewer distinct steps")
        if history:
            last[key] = max(history, key=lambda m: m.step).value
    if len(set(counts.values())) != 1:
        raise ReadBackError(f"metric histories differ in length: {counts}")
    store = "file" if facts["variant"] == "file" else "sqlite"
    return counts["k0"], last, f"MlflowClient.get_metric_history on the {store} store"


# --- tensorboardX -------------------------------------------------------------------------------


def start_tensorboardx(work: str) -> Started:
    import tensorboardX

    writer = tensorboardX.SummaryWriter(os.path.join(work, "tb"))
    add_scalar = writer.add_scalar
    steps = iter(range(sys.maxsize))

    def log(row: Row) -> None:
        step = next(steps)
        for key, value in row.items():
            add_scalar(key, value, step)

    return log, writer.close, {"version": tensorboardX.__version__}


def read_tensorboardx(work: str, facts: Dict[str, Any]) -> ReadBack:
    logdir, wanted = os.path.join(work, "tb"), ("k0", last_key())
    try:
        counts, last = read_tb_accumulator(logdir, wanted)
        method = "tensorboard EventAccumulator (size_guidance scalars=0: keep all)"
    except ImportError:
        counts, last = read_tb_tfrecord(logdir, wanted)
        method = "TFRecord parse of the events file + tensorboardX.proto.event_pb2.Event"
    if len(set(counts.values())) != 1:
        raise ReadBackError(f"scalar counts differ: {counts}")
    return counts["k0"], last, method


# --- trackio ------------------------------------------------------------------------------------


def start_trackio(work: str) -> Started:
    import trackio

    run = trackio.init(project=PROJECT, embed=False)
    return trackio.log, trackio.finish, {"name": run.name, "version": _version("trackio")}


def read_trackio(work: str, facts: Dict[str, Any]) -> ReadBack:
    from trackio.sqlite_storage import SQLiteStorage

    rows = SQLiteStorage.get_log_count(PROJECT, run=facts["name"])
    logs = SQLiteStorage.get_logs(PROJECT, run=facts["name"])
    if len(logs) != rows:
        raise ReadBackError(f"get_log_count says {rows}, get_logs gave {len(logs)} rows")
    return rows, max(logs, key=lambda r: r["step"]) if logs else None, "trackio SQLiteStorage.get_log_count + get_logs"


# --- the registry -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Peer:
    """A logger measured: the module that must be importable, the pip line that gets it, how the
    child starts a run (``start(work)``, called with ``options``) and reads it back."""

    module: str
    pip: str
    start: Callable[..., Started]
    read_back: Callable[[str, Dict[str, Any]], ReadBack]
    options: Dict[str, Any] = dataclasses.field(default_factory=dict)


PEERS: Dict[str, Peer] = {
    "mplogger": Peer("mplogger", "pip install mplogger", start_mplogger, read_mplogger),
    "wandb": Peer("wandb", "pip install wandb", start_wandb, read_wandb),
    "mlflow": Peer("mlflow", "pip install mlflow", start_mlflow, read_mlflow),
    "mlflow-async": Peer("mlflow", "pip install mlflow", start_mlflow, read_mlflow, {"variant": "async"}),
    "mlflow-file": Peer("mlflow", "pip install mlflow", start_mlflow, read_mlflow, {"variant": "file"}),
    "tensorboardX": Peer("tensorboardX", "pip install tensorboardX tensorboard", start_tensorboardx,
                         read_tensorboardx),
    "trackio": Peer("trackio", "pip install trackio", start_trackio, read_trackio),
}


# --- the child ----------------------------------------------------------------------------------


def _close(a: Any, b: float) -> bool:
    try:
        return abs(float(a) - b) <= 1e-6 * max(1.0, abs(b))
    except (TypeError, ValueError):
        return False


def check_last(row: Optional[Dict[str, Any]], n: int) -> None:
    """The last row read back must hold the last values logged."""
    want = make_pool()[(n - 1) & MASK]
    if row is None:
        raise ReadBackError("no rows read back")
    for key in ("k0", last_key()):
        if not _close(row.get(key), want[key]):
            raise ReadBackError(f"last row read back has {key}={row.get(key)!r}, logged {want[key]!r}")


def measure(peer: str, n: int, work: str, entry: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """In a fresh interpreter: ``peer`` logs ``n`` rows, then reads them back; the figures.
    ``entry``: the peer's :class:`Peer` as names (so one registered anywhere is found here too)."""
    found = PEERS[peer] if entry is None else Peer(entry["module"], entry["pip"], resolve(entry["start"]),
                                                   resolve(entry["read_back"]), entry["options"])
    return _measure(found, n, work)


def _measure(entry: Peer, n: int, work: str) -> Dict[str, Any]:
    pool = make_pool()
    package = importlib.import_module(entry.module)  # importing is not init(): not timed
    for name in getattr(package, "__all__", ()):
        getattr(package, name, None)  # a package that imports its names on first use (mplogger) loads them now
    t = perf()
    log, finish, facts = entry.start(work, **entry.options)
    t0 = perf()
    for i in range(n):
        log(pool[i & MASK])
    t1 = perf()
    finish()
    t2 = perf()
    try:
        rows, last, method = entry.read_back(work, facts)
        check_last(last, n)
    except ReadBackError as exc:
        return {"status": f"failed: read back: {exc}"}
    return {"status": "ok" if rows == n else f"failed: read back {rows} rows, {n} logged", "n": n,
            "log_us": (t1 - t0) / n * 1e6, "finish_s": t2 - t1, "end_to_end_s": t2 - t0, "init_s": t0 - t,
            "rows_read_back": rows, "read_method": method, "version": facts.get("version", "?")}


def peer_env(work: str) -> Dict[str, Optional[str]]:
    """What a peer's child adds to (None: drops from) its clean environment: every file under ``work``,
    no network."""
    env: Dict[str, Optional[str]] = {
        "DO_NOT_TRACK": "1",
        "WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DISABLE_GIT": "true",
        "WANDB_DISABLE_CODE": "true", "WANDB_ERROR_REPORTING": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_ALLOW_FILE_STORE": "true",  # MLflow 3: file store opt-in
        "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "GRADIO_ANALYTICS_ENABLED": "False",
    }
    env.update(dict.fromkeys(("MLFLOW_TRACKING_URI", "WANDB_API_KEY", "WANDB_BASE_URL", "WANDB_RUN_ID", "WANDB_RESUME")))
    for name, folder in (("WANDB_DIR", "wandb-dir"), ("WANDB_CONFIG_DIR", "wandb-config"),
                         ("WANDB_CACHE_DIR", "wandb-cache"), ("WANDB_DATA_DIR", "wandb-data"),
                         ("TRACKIO_DIR", "trackio"), ("HF_HOME", "hf-home")):
        env[name] = os.path.join(work, folder)
        os.makedirs(env[name], exist_ok=True)
    return env


# --- the parent ---------------------------------------------------------------------------------


def resolve_peers(peers: Optional[Sequence[str]]) -> List[str]:
    if peers is None:
        return list(PEERS)
    lower = {name.lower(): name for name in PEERS}
    unknown = [name for name in peers if name.strip().lower() not in lower]
    if unknown:
        raise ValueError(f"unknown peer {unknown[0]!r}; known: {', '.join(PEERS)}")
    return list(dict.fromkeys(lower[name.strip().lower()] for name in peers))


def installed(peer: str) -> bool:
    if peer == "mplogger":
        return True  # the repository's own package: on PYTHONPATH in the child
    try:
        return importlib.util.find_spec(PEERS[peer].module) is not None
    except (ImportError, ValueError):
        return False


def measure_once(peer: str, n: int, timeout: float) -> Dict[str, Any]:
    """One measurement of ``peer`` in a fresh interpreter; a failure becomes its status, never raised."""
    work = tempfile.mkdtemp(prefix=f"mplogger-peer-{peer}-")
    try:
        cwd = os.path.join(work, "cwd")
        os.makedirs(cwd)
        entry = PEERS.get(peer)
        named = None if entry is None else {"module": entry.module, "pip": entry.pip, "start": where(entry.start),
                                            "read_back": where(entry.read_back), "options": entry.options}
        return fresh("benchmarks.peers:measure", timeout, env=peer_env(work), cwd=cwd, peer=peer, n=n, work=work,
                     entry=named)
    except ChildFailed as exc:
        reason = exc.stderr.strip().splitlines()[-1][-400:] if exc.stderr.strip() else "no output"
        return {"status": f"failed: {exc.exit}: {reason}", "stderr_tail": exc.stderr[-2000:]}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_peers(n: int, repeats: int = 1, peers: Optional[Sequence[str]] = None,
              timeout: Optional[float] = None) -> Dict[str, Dict[str, Any]]:
    """Every peer ``repeats`` times (interleaved), each in a fresh interpreter: peer -> its samples,
    status ("ok", "not installed" or "failed: ..."), and for one not installed its pip line."""
    if n < 1 or repeats < 1:
        raise ValueError("n and repeats must be at least 1")
    names = resolve_peers(peers)
    timeout = timeout or (QUICK_TIMEOUT_S if n <= QUICK_N else TIMEOUT_S)
    results: Dict[str, Dict[str, Any]] = {}
    for name in names:
        results[name] = {"samples": []} if installed(name) else {"status": "not installed", "pip": PEERS[name].pip}
    for _ in range(repeats):
        for name in names:
            if "status" not in results[name]:
                results[name]["samples"].append(measure_once(name, n, timeout))
    for name, result in results.items():
        failed = [s["status"] for s in result.get("samples", []) if s["status"] != "ok"]
        result.setdefault("status", failed[0] if failed else "ok")
    return results


def report(results: Dict[str, Dict[str, Any]], n: int) -> Report:
    """A row per peer: log() µs and rows/s end to end (ratios to mplogger), init(), finish(), read back."""
    out = Report(turn=False)
    base = "mplogger" if results.get("mplogger", {}).get("status") == "ok" else None
    for name, result in results.items():
        ok = [s for s in result.get("samples", []) if s["status"] == "ok"]
        against = base if name != base else None
        out.add(SECTION, name, "version", ok[0]["version"] if ok else "-")
        out.add(SECTION, name, "log()", [s["log_us"] for s in ok], "µs", against)
        out.add(SECTION, name, "end to end", [n / s["end_to_end_s"] for s in ok], "rows/s", against)
        out.add(SECTION, name, "init()", [s["init_s"] for s in ok], "s")
        out.add(SECTION, name, "finish()", [s["finish_s"] for s in ok], "s")
        read = f"{min(s['rows_read_back'] for s in ok):,}/{n:,}" if ok else "-"
        out.add(SECTION, name, "read back", read if result["status"] == "ok" else result["status"][:40])
        if result["status"] == "not installed":
            out.notes.append(f"{name}: not installed ({result['pip']})")
        elif result["status"] != "ok":
            out.notes.append(f"{name}: {result['status']}")
            out.failures.append(f"peer {name}: {result['status']}")
        else:
            out.notes.append(f"{name}: read back via {ok[0]['read_method']}")
    out.notes.insert(0, f"{n:,} rows of {keys()} floats, one row per step, each peer in a fresh interpreter; "
                        "ratios ÷ mplogger (above 1: slower)")
    return out


@section(SECTION, "wandb (offline), MLflow, tensorboardX and trackio when installed, on the same workload, "
                  "each read back with the tool's own reader")
def peers_section(o: Options) -> Report:
    n = o.n or o.sized(DEFAULT_N, QUICK_N)
    results = run_peers(n, repeats=o.repeats or 1, peers=o.listed(SECTION, "peers", None))
    return report(results, n)
