"""The quick-start demo (a user process): log a small run to the default store and say how to read it back.

Run it with ``python -m mplogger.demo``.
"""

from __future__ import annotations

import math
import os
import sys

import mplogger


def main() -> None:
    run = mplogger.init(project="demo", config={"lr": 0.01, "epochs": 3, "model": "tiny-mlp"})
    for step in range(300):
        loss = 2.0 * math.exp(-step / 80) + 0.05 * math.sin(step / 5)
        run.log({"loss": loss, "accuracy": 1 - loss / 2.2, "epoch": step // 100})
    run.summary["best_loss"] = min(2.0 * math.exp(-s / 80) + 0.05 * math.sin(s / 5) for s in range(300))
    run.finish()

    stored = mplogger.Api(run.root).run(run.id)
    print(f"logged run {stored.id} ({stored.name}) of project {stored.project!r}: "
          f"{stored.rows} rows, state {stored.state}")
    print(f"stored in {run.root} (SQLite database mplogger.db; run files under runs/{run.id}/)")
    print(f"final loss {stored.summary['loss']:.4f}, best {stored.summary['best_loss']:.4f}")
    print("read it back:")
    print(f"    python -c \"import mplogger; r = mplogger.Api({run.root!r}).run({run.id!r}); "
          "print(r.summary); print(r.history()[-1])\"")
    print(f"    sqlite3 {run.root}/mplogger.db \"SELECT step, data FROM history "
          f"WHERE run_id = '{run.id}' ORDER BY seq DESC LIMIT 3\"")
    command = _command()
    print("look at it:")
    print(f"    {command} ls --dir {run.root}")
    print(f"    {command} report {run.id} --dir {run.root} -o report.html   # then open report.html")


def _command() -> str:
    """How to call the ``mplogger`` command from here: the console script beside this Python."""
    script = os.path.join(os.path.dirname(sys.executable), "mplogger")
    if os.path.exists(script):
        return os.path.relpath(script) if not os.path.relpath(script).startswith("..") else script
    return f"{sys.executable} -m mplogger"


if __name__ == "__main__":
    main()
