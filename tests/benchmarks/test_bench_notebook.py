"""The notebook section, small: a loop in a real Jupyter kernel with and without a live run card.
Every step logged is stored, the live card's updates arrive during the loop (none without a card),
and the table names every figure.

No figure is compared with anything.
"""

from __future__ import annotations

import json

import pytest

from benchmarks import bench_notebook
from bench_toys import labels

pytest.importorskip("ipykernel")
pytest.importorskip("jupyter_client")

#: the first live update arrives ~1.5 s after the card is displayed (the renderer's first look
#: is a second after it starts), so the loop is a little longer than that
SECONDS = 4.0


@pytest.mark.timeout(300)
def test_a_live_card_updates_during_the_loop_and_every_step_is_stored():
    result = bench_notebook.collect(repeats=1, seconds=SECONDS)
    samples = result["samples"]
    assert {name: len(runs) for name, runs in samples.items()} == {"no card": 1, "live card": 1}
    for name, (run,) in samples.items():
        assert run["scenario"] == name and run["state"] == "finished", name
        assert run["steps"] > 0 and run["rows_stored"] == run["steps"], name
        assert run["loop_s"] >= SECONDS, name
    (plain,), (live,) = samples["no card"], samples["live card"]
    assert plain["display_id"] is None and plain["updates"] == 0 and plain["finish_updates"] == 0
    assert live["display_id"] and live["updates"] > 0 and live["other_updates"] == 0
    assert len(live["update_at_s"]) == live["updates"]
    assert live["finish_updates"] == 1  # finish() draws the card a last time
    assert plain["k"] == live["k"]  # the same work per step in both kernels

    report = bench_notebook.report(result)
    lines = report.render().splitlines()
    assert lines[0].split() == ["no", "card", "live", "card", "÷", "no", "card"]
    rows = labels(report.render())
    for label, unit, _, _ in bench_notebook.SPEC:
        assert (f"{label}, {unit}" if unit else label).strip() in rows, label
    (updates,) = [line for line in lines if line.startswith("card updates during the loop")]
    assert updates.split()[-2:] == ["0", str(live["updates"])]
    (stored,) = [line for line in lines if line.startswith("rows stored / steps logged")]
    assert stored.split()[-6:] == [f"{plain['steps']:,}", "/", f"{plain['steps']:,}",
                                   f"{live['steps']:,}", "/", f"{live['steps']:,}"]
    json.dumps([f.as_dict() for f in report.figures], allow_nan=False)  # what --json writes
