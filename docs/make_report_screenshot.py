"""Build a small demo store, write its HTML report and screenshot it to ``docs/report.png``.

Three runs of a toy training with different learning rates (loss, accuracy, lr; config and
summary), reported with :func:`mplogger._readers._report.write_report` and drawn by headless Chromium.

    python docs/make_report_screenshot.py [--keep DIR] [--width 1280] [--height 1700]
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import mplogger  # noqa: E402
from mplogger._readers._report import write_report  # noqa: E402

STEPS = 600
STEP_SECONDS = 0.004


def train(root: str, lr: float, seed: int) -> str:
    """One toy training run: a noisy decaying loss, a rising accuracy, a cosine schedule."""
    rng = random.Random(seed)
    config = {"lr": lr, "batch_size": 64, "epochs": 3, "optimizer": {"name": "adamw", "weight_decay": 0.01},
              "model": "resnet18", "seed": seed}
    run = mplogger.init(dir=root, project="cifar10", name=f"resnet18-lr{lr:g}", group="lr-sweep",
                        tags=["demo", "sweep"], config=config, reinit="create_new",
                        settings={"system_interval": 0.25})
    speed = min(1.0, lr * 300)
    best = 0.0
    for step in range(STEPS):
        schedule = lr * 0.5 * (1 + math.cos(math.pi * step / STEPS))
        loss = 2.3 * math.exp(-speed * step / 140) + 0.25 * (1 - speed) + rng.gauss(0, 0.04) * (1.2 - speed)
        acc = min(0.99, (0.95 - 0.3 * (1 - speed)) * (1 - math.exp(-speed * step / 110)) + rng.gauss(0, 0.01))
        best = max(best, acc)
        row = {"train": {"loss": loss}, "lr": schedule}
        if step % 20 == 19:
            row["val"] = {"accuracy": acc, "loss": loss * 1.08 + rng.gauss(0, 0.02)}
        run.log(row)
        time.sleep(STEP_SECONDS)  # a toy step takes time, so that the system metrics have samples
    run.summary["best_accuracy"] = best
    run.finish()
    return run.id


def chromium() -> str:
    for name in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser"),
                 shutil.which("google-chrome")):
        if name and os.path.exists(name):
            return name
    raise SystemExit("headless Chromium is needed for the screenshot (apt-get install chromium)")


def screenshot(html_path: str, png_path: str, width: int, height: int, profile: str) -> None:
    subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", f"--user-data-dir={profile}", f"--screenshot={png_path}",
         f"--window-size={width},{height}", "file://" + os.path.abspath(html_path)],
        check=True, timeout=120, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", help="build the store and report in this folder and keep them")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=2000)
    parser.add_argument("--out", default=os.path.join(HERE, "report.png"))
    args = parser.parse_args()
    work = args.keep or tempfile.mkdtemp(prefix="mplogger-report-")
    os.makedirs(work, exist_ok=True)
    try:
        root = os.path.join(work, "store")
        ids = [train(root, lr, seed) for seed, lr in enumerate((3e-3, 1e-3, 3e-4))]
        mplogger.teardown()
        api = mplogger.Api(root)
        runs = [api.run(run_id) for run_id in ids]
        report = write_report(runs, os.path.join(work, "report.html"), title="cifar10: learning-rate sweep")
        screenshot(report, args.out, args.width, args.height, os.path.join(work, "chromium-profile"))
        print(f"report {report}\nscreenshot {args.out}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
