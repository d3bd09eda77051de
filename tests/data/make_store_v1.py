"""How tests/data/store-v1 was made: mplogger at commit 2a05e37 (schema 1), run as
``MPLOGGER_DIR=tests/data/store-v1 python make_store_v1.py x``; ``store-v1.expected.json`` is what
that version read back (``StoredRun._scan(None, load_media=False)`` and the other fields)."""
import math, multiprocessing, sys
import mplogger

root = sys.argv[1]

def child(run):
    run.log({"child_metric": 7.5})

if __name__ == "__main__":
    a = mplogger.init(project="v1", name="plain", id="v1plain", config={"lr": 0.01, "layers": [1, 2]},
                      settings={"console": "off", "system_metrics": False} if False else None)
    for i in range(300):
        a.log({"loss": 1.0 / (i + 1), "acc": i * 0.001, "epoch": i // 100})
    a.summary["best"] = 0.99
    a.finish()

    b = mplogger.init(project="v1", name="mixed", id="v1mixed")
    b.define_metric("val/step")
    b.define_metric("val/loss", step_metric="val/step", summary="min")
    b.log({"x": math.nan, "y": math.inf, "z": -math.inf})
    b.log({"nested": {"a": 1, "b": {"c": "deep"}}, "text": "héllo \udcff", "none": None, "flag": True})
    b.log({"partial": 1.0}, commit=False)
    b.log({"partial2": 2.0})
    b.log({"sparse": 3}, step=10)
    b.log({"val/step": 1, "val/loss": 0.5})
    b.log({"val/loss": 0.25, "val/step": 2})
    import numpy as np
    b.log({"image": mplogger.Image(np.zeros((4, 4, 3), dtype=np.uint8))})
    b.log({"big": 2**62, "neg": -(2**63)})
    b.alert("hello", "an alert")
    print("a printed line")
    p = multiprocessing.get_context("fork").Process(target=child, args=(b,))
    p.start(); p.join()
    b.finish()

    c = mplogger.init(project="v1", name="resumable", id="v1resume")
    for i in range(5):
        c.log({"loss": float(i)})
    c.finish(exit_code=1)
    print("made", root)
