"""Notebook benchmark: a training loop in a real Jupyter kernel, with and without a live run card.

Each sample starts a fresh ipykernel of this interpreter (``jupyter_client.KernelManager`` and a
blocking client, a kernelspec written to a temporary folder whose argv is ``sys.executable -m
ipykernel_launcher -f {connection_file}``; the kernel's environment has no ``MPLOGGER_*``
variable and the repository first on ``PYTHONPATH``) and a store of its own in a temporary folder
(removed afterwards). The cells run as a notebook runs them, one ``execute`` request each, and
this process reads the kernel's iopub channel until each cell's ``status: idle``:

setup (both scenarios)
    ``mplogger`` imported; the step calibrated inside the kernel (``child_calibrate`` of
    :mod:`benchmarks.scenarios`: the loop count k of ``_work`` that takes ~50 µs); the first
    kernel's k is used by every sample, so all do the same work. Then ``run = mplogger.init(dir=...)``.

``no card``
    Nothing is displayed; the next cell is the training loop.

``live card``
    A cell whose last expression is ``run``: the card is displayed with a display id, and is live
    (a reader process re-renders it from the store about every second while rows change; a
    daemon thread of the kernel sends each as an ``update_display_data`` message). The next cell
    is the same training loop, while those updates arrive.

the loop (timed)
    For S seconds (``--seconds``, default 6): each step ``_work(k)`` (~50 µs of pure-Python
    work) then ``run.log()`` of a dict of 10 floats (from a pool built beforehand), every step
    timed in the kernel with ``time.perf_counter_ns()`` (end to end, back to back: the steps'
    sum is the loop's length). The cell prints one JSON line: the steps, steps/s, the step
    time's median, p99, p99.9 and worst, the steps over 1 ms and their summed time, and the
    slowest steps with when they happened. ``update_display_data`` messages on iopub during the
    loop cell are counted (all of them, whatever their parent), with when each arrived here:
    those with the card's display id for ``live card``, every one for ``no card`` (which fails
    unless 0).

then
    ``run.finish()`` (its time, which for ``live card`` includes the card's last render, done in
    the kernel before ``finish()`` returns; that last update is counted apart), and checked from
    this process through ``mplogger.Api(root).run(id)``: rows stored == steps logged and the run
    ``finished`` (:class:`BenchmarkFailed` otherwise). The kernel is shut down.

With repeats, the two scenarios are interleaved and their order rotated; each figure is the
median over repeats. Ratios: live / no card (for steps/s: no card / live), so above 1 is slower
with the card. Nothing else should run meanwhile (the kernel, mplogger's manager and worker and
the card's renderer share the machine's CPUs).
``python -m benchmarks --only notebook [--repeats R] [--set notebook.seconds=S] [--json PATH]``.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from benchmarks.common import BenchmarkFailed, code_digest, code_note
from benchmarks.figures import Report
from benchmarks.registry import Options, section
from benchmarks.runner import child_env

SCENARIOS = ("no card", "live card")
STEP_US = 50.0
SECONDS = 6.0  # of the timed loop
QUICK_SECONDS = 2.0
KEYS = 10
SLOW_NS = 1_000_000  # a step above this (1 ms) is counted as slow
SLOWEST = 5  # the slowest steps kept, with when they happened
KERNEL_NAME = "mplogger-bench-notebook"
STARTUP_TIMEOUT_S = 120
CELL_TIMEOUT_S = 180  # beyond the loop's own seconds
STORE_FOLDER = "mplogger-runs"
SECTION = "notebook"

SETUP_CELL = """\
import json, mplogger
from benchmarks.scenarios import child_calibrate
json.dump(child_calibrate({step_us!r}), open({out!r}, "w"))
"""

INIT_CELL = """\
run = mplogger.init(project="bench-notebook", dir={root!r})
json.dump({{"root": run.root, "id": run.id}}, open({out!r}, "w"))
"""

DISPLAY_CELL = "run"

LOOP_CELL = """\
def _bench_loop(run, k, seconds, keys):
    import array, itertools, time
    from benchmarks.common import percentile
    from benchmarks.scenarios import _work
    pool = [{{f"k{{j}}": (i * keys + j) * 0.001 + 0.5 for j in range(keys)}} for i in range(1024)]
    ns = time.perf_counter_ns
    work, log = _work, run.log
    spans = array.array("q")
    append = spans.append
    x, i = 0.5, 0
    start = t = ns()
    until = start + int(seconds * 1e9)
    while t < until:
        x = work(k, x + i * 1e-6)
        log(pool[i & 1023])
        e = ns()
        append(e - t)
        t = e
        i += 1
    elapsed = t - start
    ordered = sorted(spans)
    at = list(itertools.accumulate(spans, initial=0))
    slowest = sorted(sorted(range(len(spans)), key=spans.__getitem__, reverse=True)[:{slowest}])
    return {{"steps": i, "loop_s": elapsed / 1e9, "steps_per_s": i / (elapsed / 1e9),
            "median_us": percentile(ordered, 50) / 1e3, "p99_us": percentile(ordered, 99) / 1e3,
            "p999_us": percentile(ordered, 99.9) / 1e3, "worst_ms": ordered[-1] / 1e6,
            "slow_steps": sum(1 for s in spans if s > {slow_ns}),
            "slow_ms": sum(s for s in spans if s > {slow_ns}) / 1e6,
            "slowest": [{{"ms": spans[j] / 1e6, "at_s": at[j] / 1e9}} for j in slowest]}}
json.dump(_bench_loop(run, {k!r}, {seconds!r}, {keys!r}), open({out!r}, "w"))
"""

FINISH_CELL = """\
import time as _time
_t = _time.perf_counter()
run.finish()
json.dump({{"finish_ms": (_time.perf_counter() - _t) * 1e3}}, open({out!r}, "w"))
"""


def kernel_available() -> bool:
    """True when ipykernel and jupyter_client can be imported (the kernel runs this interpreter)."""
    try:
        import ipykernel  # noqa: F401
        import jupyter_client  # noqa: F401
    except ImportError:
        return False
    return True


def kernel_env(ipython_dir: str) -> Dict[str, str]:
    """The kernel's environment: a child's clean one, with an IPython profile folder of its own (no
    user startup files)."""
    return child_env({"IPYTHONDIR": ipython_dir, "JPY_PARENT_PID": None})


class Kernel:
    """A fresh ipykernel of this interpreter and a blocking client; cells run one at a time."""

    def __init__(self, folder: str) -> None:
        from jupyter_client.kernelspec import KernelSpecManager
        from jupyter_client.manager import KernelManager

        spec = os.path.join(folder, "kernels", KERNEL_NAME)
        os.makedirs(spec)
        with open(os.path.join(spec, "kernel.json"), "w") as out:
            json.dump({"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                       "display_name": "mplogger notebook benchmark", "language": "python"}, out)
        ipython_dir = os.path.join(folder, "ipython")
        os.makedirs(ipython_dir)
        self.km = KernelManager(kernel_name=KERNEL_NAME,
                                kernel_spec_manager=KernelSpecManager(kernel_dirs=[os.path.join(folder, "kernels")]))
        self.folder = folder
        self.log_path = os.path.join(folder, "kernel.log")
        with open(self.log_path, "wb") as log:  # the kernel's own output: shown when something fails
            self.km.start_kernel(env=kernel_env(ipython_dir), cwd=folder, stdout=log, stderr=subprocess.STDOUT)
        self.kc = self.km.client()
        self.kc.start_channels()
        try:
            self.kc.wait_for_ready(timeout=STARTUP_TIMEOUT_S)
        except BaseException:
            self.close()
            raise

    def execute(self, cell: str, timeout: float, display_id: Optional[str] = None, **fields: Any) -> Dict[str, Any]:
        """Run one cell (``cell`` formatted with ``fields`` and ``out``, the file it writes its JSON
        result to); its result, what it displayed, and the update_display_data messages seen on
        iopub until its ``status: idle`` (``display_id``: those of that id; else every one)."""
        out = os.path.join(self.folder, "cell-result.json")
        if os.path.exists(out):
            os.unlink(out)
        code = cell.format(out=out, **fields)
        msg_id = self.kc.execute(code)
        stdout: List[str] = []
        displays: List[Dict[str, Any]] = []
        errors: List[str] = []
        updates = other_updates = 0
        update_at: List[float] = []
        sent = time.monotonic()
        deadline = sent + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchmarkFailed(f"a cell ran past {timeout:.0f} s:\n{code}")
            try:
                msg = self.kc.get_iopub_msg(timeout=min(left, 1.0))
            except queue.Empty:
                if not self.km.is_alive():
                    raise BenchmarkFailed(f"the kernel died while running:\n{code}\n{self.output()}") from None
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "update_display_data":
                shown = (content.get("transient") or {}).get("display_id")
                if display_id is None or shown == display_id:
                    updates += 1
                    update_at.append(time.monotonic() - sent)
                else:
                    other_updates += 1
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if kind == "stream" and content.get("name") == "stdout":
                stdout.append(content["text"])
            elif kind == "display_data":
                displays.append(content)
            elif kind == "error":
                errors.append("\n".join(content.get("traceback") or [f"{content.get('ename')}: {content.get('evalue')}"]))
            elif kind == "status" and content.get("execution_state") == "idle":
                break
        if errors:
            raise BenchmarkFailed(f"a cell failed in the kernel:\n{code}\n{errors[0][-4000:]}\n{self.output()}")
        result = None
        if "{out" in cell:
            try:
                with open(out) as f:
                    result = json.load(f)
            except (OSError, ValueError) as exc:
                raise BenchmarkFailed(f"a cell wrote no result ({exc!r}):\n{code}\nit printed:\n"
                                      f"{''.join(stdout)[-4000:]}") from None
        return {"result": result, "displays": displays, "updates": updates, "other_updates": other_updates,
                "update_at_s": update_at}

    def output(self, chars: int = 4000) -> str:
        """The end of what the kernel process wrote on its stdout and stderr."""
        try:
            with open(self.log_path, "rb") as log:
                return log.read().decode(errors="replace")[-chars:]
        except OSError:
            return ""

    def close(self) -> None:
        try:
            self.kc.stop_channels()
        finally:
            self.km.shutdown_kernel(now=False)


def measure(scenario: str, seconds: float, k: Optional[int]) -> Dict[str, Any]:
    """One sample of ``scenario`` in a fresh kernel against a fresh store (``k``: the step's loop
    count; None: the one calibrated by this kernel); its checked figures."""
    folder = tempfile.mkdtemp(prefix="mplogger-bench-notebook-")
    try:
        kernel = Kernel(folder)
        try:
            calibration = kernel.execute(SETUP_CELL, CELL_TIMEOUT_S, step_us=STEP_US)["result"]
            k = calibration["k"] if k is None else k
            started = kernel.execute(INIT_CELL, CELL_TIMEOUT_S, root=os.path.join(folder, STORE_FOLDER))["result"]
            display_id = None
            if scenario == "live card":
                shown = kernel.execute(DISPLAY_CELL, CELL_TIMEOUT_S)
                ids = [(d.get("transient") or {}).get("display_id") for d in shown["displays"]]
                ids = [i for i in ids if i]
                if len(ids) != 1:
                    raise BenchmarkFailed(f"notebook {scenario}: displaying the run gave {len(shown['displays'])} "
                                          f"display(s) with display ids {ids}, expected one live card")
                display_id = ids[0]
            loop = kernel.execute(LOOP_CELL, seconds + CELL_TIMEOUT_S, display_id, k=k, seconds=float(seconds),
                                  keys=KEYS, slowest=SLOWEST, slow_ns=SLOW_NS)
            finish = kernel.execute(FINISH_CELL, CELL_TIMEOUT_S, display_id)
        finally:
            kernel.close()
        out = dict(loop["result"], scenario=scenario, k=k, calibration=calibration, run_id=started["id"],
                   updates=loop["updates"], other_updates=loop["other_updates"], update_at_s=loop["update_at_s"],
                   finish_ms=finish["result"]["finish_ms"], finish_updates=finish["updates"],
                   display_id=display_id)
        import mplogger

        api = mplogger.Api(started["root"])
        try:
            stored = api.run(started["id"])
            out.update(rows_stored=stored.rows, state=stored.state)
        finally:
            api.close()
        check(out)
        return out
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def check(result: Dict[str, Any]) -> None:
    """Every step logged is stored and the run finished; BenchmarkFailed otherwise."""
    what = f"notebook {result['scenario']}"
    if result["rows_stored"] != result["steps"] or result["state"] != "finished":
        raise BenchmarkFailed(f"{what}: {result['steps']} steps were logged; the stored run has "
                              f"{result['rows_stored']} rows, state {result['state']}")
    if result["scenario"] == "no card" and result["updates"]:
        raise BenchmarkFailed(f"{what}: {result['updates']} display updates arrived, yet nothing was displayed")


#: figure -> (label, unit, how a sample gives it, whether the ratio live / no card is shown)
SPEC: List[Tuple[str, str, Callable[[Dict[str, Any]], Optional[float]], bool]] = [
    ("steps", "steps/s", lambda r: r["steps_per_s"], True),
    ("step median", "µs", lambda r: r["median_us"], True),
    ("step p99", "µs", lambda r: r["p99_us"], True),
    ("step p99.9", "µs", lambda r: r["p999_us"], True),
    ("step worst", "ms", lambda r: r["worst_ms"], True),
    ("steps > 1 ms", "per s", lambda r: r["slow_steps"] / r["loop_s"], True),
    ("  time in them", "ms per s", lambda r: r["slow_ms"] / r["loop_s"], True),
    ("card updates during the loop", "", lambda r: r["updates"], False),
    ("finish()", "ms", lambda r: r["finish_ms"], True),
]
NO_CARD, LIVE = SCENARIOS


def collect(repeats: int = 3, seconds: float = SECONDS) -> Dict[str, Any]:
    """Both scenarios ``repeats`` times (interleaved, order rotated, each in a fresh kernel): their
    samples, and what the run was."""
    if repeats < 1 or seconds <= 0:
        raise ValueError("repeats must be >= 1 and seconds > 0")
    code_before, load_before = code_digest(), os.getloadavg()[0]
    samples: Dict[str, List[Dict[str, Any]]] = {name: [] for name in SCENARIOS}
    k: Optional[int] = None
    for rep in range(repeats):
        first = rep % len(SCENARIOS)
        for scenario in SCENARIOS[first:] + SCENARIOS[:first]:
            sample = measure(scenario, seconds, k)
            k = sample["k"]
            samples[scenario].append(sample)
    code_after = code_digest()
    return {"repeats": repeats, "seconds": seconds, "samples": samples,
            "code": code_before if code_before == code_after else f"{code_before} -> {code_after}",
            "load": (load_before, os.getloadavg()[0])}


def report(result: Dict[str, Any]) -> Report:
    """A column per scenario, the ratio live / no card, a line per figure; the slowest steps and
    the card's update times as notes."""
    out = Report()
    samples = result["samples"]
    for label, unit, get, compared in SPEC:
        for name in SCENARIOS:
            out.add(SECTION, name, label, [get(r) for r in samples[name]], unit,
                    NO_CARD if compared and name == LIVE else None)
    for name in SCENARIOS:
        out.add(SECTION, name, "rows stored / steps logged", f"{sum(r['rows_stored'] for r in samples[name]):,} / "
                                                              f"{sum(r['steps'] for r in samples[name]):,}")
    repeats = result["repeats"]
    first = samples[LIVE][0]
    out.notes += [
        f"a loop of ~{first['calibration']['step_us']:.0f} µs work + log() of {KEYS} floats per step for "
        f"{result['seconds']:g} s in a Jupyter kernel, without and with the run's live card displayed; "
        f"{'median of ' + str(repeats) + ' repeats' if repeats > 1 else 'single run'}, each in a fresh kernel; "
        "ratios live ÷ no card (steps/s: no card ÷ live), above 1 is slower with the card",
        f"the {SLOWEST} slowest steps of each loop, at seconds after its start:",
    ]
    for name in SCENARIOS:
        for rep, sample in enumerate(samples[name]):
            steps = ", ".join(f"{s['ms']:.1f} ms at {s['at_s']:.2f} s" for s in sample["slowest"])
            out.notes.append(f"  {name}{f' #{rep + 1}' if repeats > 1 else ''}: {steps}")
    out.notes.append("live card updates arrived (seconds after the loop cell was sent; the card was displayed "
                     "just before):")
    out.notes += [f"  #{rep + 1}: " + (", ".join(f"{t:.2f}" for t in sample["update_at_s"]) or "none")
                  for rep, sample in enumerate(samples[LIVE])]
    out.notes += [
        f"card updates at finish() (the last one, rendered in the kernel by finish()): "
        f"{sum(r['finish_updates'] for r in samples[LIVE])} over {len(samples[LIVE])} live run(s)",
        code_note(result["code"], result["load"]),
        "verified: rows stored (mplogger.Api) == steps logged, the run finished; no display update without a card",
    ]
    return out


@section(SECTION, "a training loop (~50 µs of work + log() of 10 floats a step) in a real Jupyter kernel, "
                  "without and with the run's live card displayed (needs ipykernel and jupyter_client)")
def notebook_section(o: Options) -> Report:
    if not kernel_available():
        return Report(notes=["skipped: needs ipykernel (pip install ipykernel jupyter_client)"])
    seconds = float(o.param(SECTION, "seconds", o.sized(SECONDS, QUICK_SECONDS)))
    return report(collect(repeats=o.repeats or o.sized(3, 1), seconds=seconds))
