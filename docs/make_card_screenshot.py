"""Screenshot a live run card, as a notebook shows it mid-training, to ``docs/card.png``.

A toy training logs half its steps; the card is then rendered by the same function that sends
the live updates (:func:`mplogger._readers._live_render.render`) and drawn by headless Chromium inside a
page shaped like a notebook's output, under a policy that runs no script and fetches nothing.

    python docs/make_card_screenshot.py [--out docs/card.png] [--width 1000] [--height 700]
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import mplogger  # noqa: E402
from make_report_screenshot import screenshot  # noqa: E402
from mplogger._readers._live_render import render  # noqa: E402

PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'none'; style-src 'unsafe-inline'">
</head><body style="margin:0;background:#fff;color:#1f2328;font-family:system-ui,sans-serif">
<div style="padding:14px 18px"><pre style="margin:0 0 8px;padding:8px 10px;background:#f6f8fa;border-radius:4px;
font-size:13px">run = mplogger.init(project="cifar10", config=config)
run            # the card below keeps itself up to date while the next cell trains</pre>{card}</div></body></html>"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(HERE, "card.png"))
    parser.add_argument("--width", type=int, default=1000)
    parser.add_argument("--height", type=int, default=700)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="mplogger-card-")
    try:
        rng = random.Random(3)
        run = mplogger.init(dir=os.path.join(work, "store"), project="cifar10", name="resnet18-lr0.001",
                            config={"lr": 1e-3, "batch_size": 64, "model": "resnet18"},
                            settings={"system_interval": 0.25})
        for step in range(800):
            loss = 2.3 * math.exp(-step / 160) + 0.3 + rng.gauss(0, 0.05)
            row = {"train/loss": loss, "lr": 1e-3 * 0.5 * (1 + math.cos(math.pi * step / 1600))}
            if step % 25 == 24:
                row["val/accuracy"] = min(0.95, 0.9 * (1 - math.exp(-step / 130)) + rng.gauss(0, 0.01))
            run.log(row)
            time.sleep(0.002)
        run.flush()
        html, _, _ = render(run.root, run.id, "Run")
        page = os.path.join(work, "card.html")
        with open(page, "w", encoding="utf-8") as out:
            out.write(PAGE.replace("{card}", html))
        screenshot(page, args.out, args.width, args.height, os.path.join(work, "chromium-profile"))
        run.finish()
        print(f"screenshot {args.out}")
    finally:
        mplogger.teardown()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
