"""What the benchmark tests share: the row labels of a rendered table, and what they run in fresh
interpreters (found there through ``PYTHONPATH``): a toy transport, a toy peer, a toy scenario's child, and
functions that print, fail, hang or are killed."""

from __future__ import annotations

import json
import os
import pickle
import re
import signal
import subprocess
import sys
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple

from benchmarks.transports import Transport, wait_any


def labels(table: str) -> List[str]:
    """The first cell of every line of a table rendered by benchmarks.figures.render (indent dropped)."""
    lines = table.split("\n\n")[0].splitlines()[2:]
    return [re.split(r" {2,}", line.strip())[0] for line in lines if line.strip()]


class ToyTransport(Transport):
    """One pipe per producer, records pickled by the caller: the smallest transport there is."""

    def __init__(self, ctx, producers: int, ring_bytes: int) -> None:
        self.pipes = [ctx.Pipe(duplex=False) for _ in range(producers)]

    def who_pickles(self, batch):
        return "caller (toy)"

    def producer_end(self, index, batch, timeout_s):
        send = self.pipes[index][1].send_bytes
        return send, True, lambda: send(b""), dict

    def consume(self, producers, batch, timeout_s):
        live, records, messages = [reader for reader, _ in self.pipes], 0, 0
        while live:
            for conn in wait_any(live, timeout_s):
                data = conn.recv_bytes()
                if not data:
                    live.remove(conn)
                    continue
                item = pickle.loads(data)
                records += 1 if batch is None else len(item)
                messages += 1
        return records, messages

    def close(self):
        for pair in self.pipes:
            for conn in pair:
                conn.close()


def log_rows(root: str, n: int) -> Dict[str, Any]:
    """The toy scenario's child: ``n`` rows logged into a run of the store ``root``."""
    import mplogger

    run = mplogger.init(project="toy", dir=root)
    for i in range(n):
        run.log({"x": float(i)})
    run.finish()
    mplogger.teardown()
    return {"run_id": run.id}


def chatty(value: int) -> Dict[str, Any]:
    """Prints to stdout (as the loggers measured do) and returns its argument and some environment."""
    print("noise on stdout", flush=True)
    return {"value": value, "cwd": os.getcwd(), "env": {k: os.environ.get(k) for k in
                                                       ("MPLOGGER_DIR", "MPLOGGER_BENCH_KEYS", "TOY_EXTRA", "TOY_GONE")}}


def fails(message: str) -> None:
    sys.stderr.write("about to fail\n")
    raise RuntimeError(message)


def killed() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def hangs(pid_file: str) -> None:
    """Starts a grandchild, writes its pid, and blocks: the hang under test."""
    grandchild = subprocess.Popen([sys.executable, "-c", "import threading; threading.Event().wait(120)"])
    with open(pid_file + ".part", "w") as out:
        out.write(str(grandchild.pid))
    os.replace(pid_file + ".part", pid_file)
    threading.Event().wait(120)


def start_peer(work: str) -> Tuple[Callable[[Dict[str, float]], Any], Callable[[], None], Dict[str, Any]]:
    """A toy peer: each row a JSON line in a file under ``work``."""
    path = os.path.join(work, "rows.jsonl")
    out = open(path, "w")
    return (lambda row: out.write(json.dumps(row) + "\n")), out.close, {"version": "1", "path": path}


def read_peer(work: str, facts: Dict[str, Any]) -> Tuple[int, Optional[Dict[str, Any]], str]:
    with open(facts["path"]) as rows_file:
        rows = [json.loads(line) for line in rows_file]
    return len(rows), rows[-1] if rows else None, "json lines"
